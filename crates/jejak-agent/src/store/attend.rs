//! Sessions nobody checked in: an operating-system login with no open session starts
//! one whose patron is not known yet (user kind `unknown`, no purposes, gender `X`, age
//! unknown), and a check-in while it is open fills that session in as its next revision
//! instead of starting another one.

use jejak_domain::{PatronProfile, Session, UserKind};

use super::{NetCounters, Store, StoreError, fail};

impl Store {
    /// Starts a session for a login nobody checked in, unless a session is already open
    /// (a patron checked in first, or the login was already seen): then nothing is
    /// written and `None` comes back. A session an earlier boot left open is closed at
    /// its last heartbeat first, as `power_loss`.
    pub fn start_unattended_session(
        &mut self,
        net: Option<NetCounters>,
    ) -> Result<Option<Session>, StoreError> {
        self.write(|w| {
            if let Some(row) = w.open_row()? {
                if row.boot_id == w.run.boot_id {
                    return Ok(None);
                }
                w.close_at_last_seen(row, jejak_domain::EndReason::PowerLoss)?;
            }
            w.insert_new_session(PatronProfile::default(), net)
                .map(Some)
        })
    }

    /// The open session if nobody has said who uses it yet (user kind `unknown` and no
    /// purposes): the check-in page offers to fill it in.
    pub fn unattended_open_session(&self) -> Result<Option<Session>, StoreError> {
        Ok(self
            .open_session()?
            .filter(|s| s.patron.user_kind == UserKind::Unknown && s.patron.purposes.is_empty()))
    }

    /// Fills in the open session with what the patron said at check-in: the session keeps
    /// its id, start and clocks, and its next revision (revision + 1) carries `profile`.
    /// `NoOpenSession` when no session of this boot is open. Its duration, bytes and
    /// online time are left to the next heartbeat, which knows the link's state.
    pub fn fill_in_open_session(&mut self, profile: PatronProfile) -> Result<Session, StoreError> {
        profile.validate()?;
        self.write(|w| match w.open_row()? {
            Some(mut row) if row.boot_id == w.run.boot_id => {
                row.patron = profile;
                w.commit_revision(row)
            }
            _ => Err(fail(StoreError::NoOpenSession)),
        })
    }
}
