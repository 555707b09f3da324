//! The two storage backends for the crate's own tests (the rollup property, the golden
//! reports): a fresh SQLite file, or a fresh PostgreSQL database on the server
//! `JEJAK_TEST_POSTGRES` names, dropped after (`jejak_testkit::postgres`: PostgreSQL tests
//! print a SKIPPED line and pass when no server is configured, unless
//! `JEJAK_REQUIRE_POSTGRES=1` (CI), when they fail).

use std::sync::Arc;

use jejak_testkit::postgres::TestDatabase;

use crate::postgres::{PostgresOptions, PostgresStore};
use crate::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{ServerClock, ServerStore};

/// Which backend a test runs on.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite,
    /// The admin URL of a server where databases can be made.
    Postgres {
        admin: String,
    },
}

impl Backend {
    /// PostgreSQL, or `None` after a visible notice when no server is configured.
    pub(crate) fn postgres() -> Option<Backend> {
        jejak_testkit::postgres::admin_or_skip().map(|admin| Backend::Postgres { admin })
    }

    /// A fresh, empty store with the given clock.
    pub(crate) async fn open(&self, clock: ServerClock) -> TestStore {
        match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let store =
                    SqliteStore::open_with(&dir.path().join("s.db"), SqliteOptions { clock })
                        .unwrap();
                TestStore {
                    store: Arc::new(store),
                    dir: Some(dir),
                    database: None,
                }
            }
            Backend::Postgres { admin } => {
                let database = TestDatabase::create(admin, "jejak_test").await;
                let store = PostgresStore::open_with(
                    &database.url,
                    PostgresOptions {
                        clock,
                        ..PostgresOptions::default()
                    },
                )
                .await
                .unwrap();
                TestStore {
                    store: Arc::new(store),
                    dir: None,
                    database: Some(database),
                }
            }
        }
    }
}

/// A store under test and what must be removed after it.
pub(crate) struct TestStore {
    pub(crate) store: Arc<dyn ServerStore>,
    /// The SQLite file's folder, removed when dropped.
    dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database, dropped by `finish`.
    database: Option<TestDatabase>,
}

impl TestStore {
    /// Closes the store and removes its file or database.
    pub(crate) async fn finish(self) {
        drop(self.store);
        drop(self.dir);
        if let Some(database) = self.database {
            database.remove().await;
        }
    }
}
