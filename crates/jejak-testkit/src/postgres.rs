//! PostgreSQL test databases: the server `JEJAK_TEST_POSTGRES` names (as
//! `scripts/pg-test-cluster.sh start` prints it), and a fresh database on it per test.
//!
//! Tests that run on PostgreSQL when it is there print a `SKIPPED:` line and pass when
//! no server is configured, unless `JEJAK_REQUIRE_POSTGRES=1` (CI), when they fail.

use uuid::Uuid;

/// The admin URL of the test server, if one is configured.
pub fn configured() -> Option<String> {
    std::env::var("JEJAK_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The admin URL of the test server, or `None` after a visible notice when none is
/// configured; panics when none is configured but `JEJAK_REQUIRE_POSTGRES=1`.
pub fn admin_or_skip() -> Option<String> {
    let admin = configured();
    if admin.is_none() {
        assert!(
            std::env::var("JEJAK_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "JEJAK_REQUIRE_POSTGRES=1 but JEJAK_TEST_POSTGRES is not set"
        );
        println!(
            "SKIPPED: PostgreSQL tests need JEJAK_TEST_POSTGRES (scripts/pg-test-cluster.sh start)"
        );
    }
    admin
}

/// A fresh, empty database on the test server; [`TestDatabase::remove`] drops it.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// The admin URL of the server it is on.
    pub admin: String,
    /// Its name: the prefix and a random suffix.
    pub name: String,
    /// Its URL, as `--database` and `PostgresStore::open` take it.
    pub url: String,
}

impl TestDatabase {
    /// Makes a database named `PREFIX_<random>` on the server at `admin`.
    pub async fn create(admin: &str, prefix: &str) -> TestDatabase {
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        let url = jejak_server::postgres::create_database(admin, &name)
            .await
            .unwrap_or_else(|e| panic!("cannot make test database {name}: {e}"));
        TestDatabase {
            admin: admin.to_string(),
            name,
            url,
        }
    }

    /// Drops the database (every connection to it must be closed first).
    pub async fn remove(self) {
        jejak_server::postgres::drop_database(&self.admin, &self.name)
            .await
            .unwrap_or_else(|e| panic!("cannot drop test database {}: {e}", self.name));
    }
}
