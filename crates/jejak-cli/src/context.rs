//! What every PC-side command starts from: the data folder, the language and the output
//! format, and from them the configuration and an open store.

use std::path::PathBuf;
use std::sync::Arc;

use crate::output::errln;
use jejak_agent::clock::{Clock, SystemClock};
use jejak_agent::config::{AgentConfig, STORE_FILE};
use jejak_agent::store::Store;
use jejak_domain::Lang;

/// What every PC-side command needs to know before it starts.
#[derive(Debug, Clone)]
pub struct Context {
    pub data_dir: PathBuf,
    pub lang: Lang,
    /// Print JSON for scripts instead of text for people.
    pub json: bool,
    /// `-v`: show the technical detail behind messages.
    pub verbose: bool,
}

/// The configuration and an open store for this PC.
pub struct Pc {
    pub config: AgentConfig,
    pub store: Store,
}

impl Context {
    pub fn config(&self) -> anyhow::Result<AgentConfig> {
        Ok(AgentConfig::load(&self.data_dir)?)
    }

    pub fn open_pc(&self) -> anyhow::Result<Pc> {
        let config = self.config()?;
        let identity = config.identity(&self.data_dir)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let (store, report) = Store::open(&self.data_dir.join(STORE_FILE), identity, clock)?;
        if let Some(moved) = report.quarantined {
            errln!(
                "{} {}",
                self.lang.pick(
                    "PERINGATAN: basis data rusak dan dipindahkan ke",
                    "WARNING: the store was damaged and was moved to"
                ),
                moved.display()
            );
        }
        Ok(Pc { config, store })
    }
}
