//! The two storage backends for the crate's own tests (the rollup property, the golden
//! reports): a fresh SQLite file, or a fresh PostgreSQL database on the server
//! `JEJAK_TEST_POSTGRES` names, dropped after. As in `tests/storage.rs`, PostgreSQL tests
//! print a SKIPPED line and pass when no server is configured, unless
//! `JEJAK_REQUIRE_POSTGRES=1` (CI), when they fail.

use std::sync::Arc;

use uuid::Uuid;

use crate::postgres::{PostgresOptions, PostgresStore, create_database, drop_database};
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
        match std::env::var("JEJAK_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres { admin: url }),
            _ => {
                assert!(
                    std::env::var("JEJAK_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                    "JEJAK_REQUIRE_POSTGRES=1 but JEJAK_TEST_POSTGRES is not set"
                );
                println!(
                    "SKIPPED: PostgreSQL tests need JEJAK_TEST_POSTGRES (scripts/pg-test-cluster.sh start)"
                );
                None
            }
        }
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
                let name = format!("jejak_test_{}", Uuid::new_v4().simple());
                let url = create_database(admin, &name).await.unwrap();
                let store = PostgresStore::open_with(
                    &url,
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
                    database: Some((admin.clone(), name)),
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
    /// The PostgreSQL admin URL and database name, dropped by `finish`.
    database: Option<(String, String)>,
}

impl TestStore {
    /// Closes the store and removes its file or database.
    pub(crate) async fn finish(self) {
        drop(self.store);
        drop(self.dir);
        if let Some((admin, name)) = self.database {
            drop_database(&admin, &name).await.unwrap();
        }
    }
}
