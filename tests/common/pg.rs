//! A PostgreSQL database of one test's own, on the server at 127.0.0.1:5432 (or
//! `NANOTRADER_TEST_PG`, a URL without database): created, and dropped with the test. With no
//! server the test is skipped with a loud message, unless `NANOTRADER_REQUIRE_POSTGRES=1` (CI)
//! makes that a failure.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `f` on a thread of its own: the synchronous PostgreSQL client starts a runtime of its
/// own, which it cannot do on an async test's thread.
pub fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(answer) => answer,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A database of one test's own, dropped with it.
pub struct TestDb {
    pub server: String,
    pub name: String,
}

impl TestDb {
    /// A fresh database, or `None` (said loudly) when no server answers and none is required.
    pub fn create(test: &str) -> Option<Self> {
        off_runtime(|| {
            let server =
                std::env::var("NANOTRADER_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
            if let Err(e) = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls) {
                assert!(
                    std::env::var("NANOTRADER_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                    "NANOTRADER_REQUIRE_POSTGRES=1 but no PostgreSQL answers at {server}: {e}"
                );
                eprintln!(
                    "\n*** SKIPPED {test}: no PostgreSQL at {server} ({e}); start one (see .ci/run) or set \
                     NANOTRADER_TEST_PG ***\n"
                );
                return None;
            }
            Some(Self::create_here(&server, test))
        })
    }

    /// A fresh database on `server` (a URL without database), which must answer.
    pub fn create_on(server: &str, test: &str) -> Self {
        off_runtime(|| Self::create_here(server, test))
    }

    fn create_here(server: &str, test: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let mut admin = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("no PostgreSQL answers at {server}: {e}"));
        let name = format!(
            "nt_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            test.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(20)
                .collect::<String>()
        )
        .to_lowercase();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("the test database is created");
        Self {
            server: server.to_owned(),
            name,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).unwrap()
    }

    /// The advisory locks nanotrader holds in this database (its run claims).
    pub fn claims(&self) -> i64 {
        self.client()
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND classid = x'6e747200'::int::oid",
                &[],
            )
            .unwrap()
            .get(0)
    }

    /// Whether run `run_id` is claimed (its advisory lock held by a session).
    pub fn claimed(&self, run_id: i64) -> bool {
        self.client()
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND classid = x'6e747200'::int::oid AND objid = $1::int::oid",
                &[&(run_id as i32)],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 0
    }

    /// Fills stored twice for one (run, order): none ever, whatever the constraints say.
    pub fn duplicate_fills(&self) -> i64 {
        self.client()
            .query_one(
                "SELECT count(*) FROM (SELECT run_id, order_id FROM fills GROUP BY 1, 2 HAVING count(*) > 1) d",
                &[],
            )
            .unwrap()
            .get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        off_runtime(|| {
            if let Ok(mut admin) = postgres::Client::connect(&format!("{}/postgres", self.server), postgres::NoTls) {
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            }
        });
    }
}
