//! Which store a command uses: `--db-url` (`sqlite://DIR` or `postgres://...`; also
//! `NANOTRADER_DB_URL`, then `DATABASE_URL`, then the config file's `db-url`), else the SQLite
//! file in the data directory, as before. And opening it: for a run's writer (the data
//! directory's lock for SQLite, a per-run claim for PostgreSQL) or for reading.

use std::path::{Path, PathBuf};

use nanotrader_store::{DB_FILE, DataDirLock, RunStore, Store, StoreWriter, WriterHooks};
use nanotrader_store_pg::{KeyLock, PgStore, RunClaim};
use tokio::sync::mpsc;

use crate::app::AppError;

/// Where runs are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreTarget {
    /// The SQLite file in this data directory.
    Sqlite(PathBuf),
    /// A PostgreSQL database (the URL as given, password included: only for connecting).
    Postgres(String),
}

impl StoreTarget {
    /// From the layered `--db-url` (flag or `NANOTRADER_DB_URL`, then `DATABASE_URL`, then the
    /// config file), else the data directory.
    pub fn resolve(flag: Option<String>, file: Option<String>, data_dir: &Path) -> Result<Self, AppError> {
        let url = flag
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()))
            .or(file);
        match url {
            None => Ok(Self::Sqlite(data_dir.to_path_buf())),
            Some(url) => Self::parse(&url),
        }
    }

    fn parse(url: &str) -> Result<Self, AppError> {
        if nanotrader_store_pg::is_postgres_url(url) {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let Some(path) = url.strip_prefix("sqlite://").filter(|p| !p.is_empty()) else {
            return Err(AppError::input(format!(
                "--db-url {}: expected sqlite://DIR (a data directory) or postgres://USER@HOST/DATABASE",
                nanotrader_store_pg::redact(url)
            )));
        };
        // The SQLite store is the file nanotrader.sqlite in a data directory: name either.
        let path = Path::new(path);
        let dir = match path.file_name() {
            Some(name) if name == DB_FILE => path.parent().unwrap_or(Path::new(".")),
            _ => path,
        };
        Ok(Self::Sqlite(if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir.to_path_buf()
        }))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// What a writing command holds for as long as it runs: the data directory's lock (SQLite), or
/// the database's address (PostgreSQL, where each run is claimed on its own).
pub enum StoreHome {
    Sqlite(DataDirLock),
    Postgres(String),
}

impl StoreHome {
    /// Before anything else: a second SQLite writer is refused before it serves or touches
    /// the store.
    pub fn acquire(target: &StoreTarget) -> Result<Self, AppError> {
        Ok(match target {
            StoreTarget::Sqlite(dir) => Self::Sqlite(DataDirLock::acquire(dir)?),
            StoreTarget::Postgres(url) => Self::Postgres(url.clone()),
        })
    }
}

/// A store opened for a run.
pub enum OpenStore {
    Sqlite(Store),
    Postgres(PgStore),
}

impl OpenStore {
    /// Opens the store (brought up to date; a damaged SQLite file is refused).
    pub fn open(home: &StoreHome) -> Result<Self, AppError> {
        Ok(match home {
            StoreHome::Sqlite(lock) => {
                let store = Store::open(lock)?;
                store.check_intact()?;
                Self::Sqlite(store)
            }
            StoreHome::Postgres(url) => Self::Postgres(PgStore::connect(url)?),
        })
    }

    pub fn runs(&self) -> &dyn RunStore {
        match self {
            Self::Sqlite(store) => store,
            Self::Postgres(store) => store,
        }
    }

    /// PostgreSQL: holds finding-or-creating the run of `key` against other processes until
    /// the run is claimed. SQLite needs none: the data directory's lock already excludes them.
    pub fn lock_key(&self, key: &str) -> Result<Option<KeyLock<'_>>, AppError> {
        match self {
            Self::Sqlite(_) => Ok(None),
            Self::Postgres(store) => Ok(Some(store.lock_run_key(key)?)),
        }
    }

    /// PostgreSQL: claims the run for this process (refused, exit 2, when another holds it).
    pub fn claim(&self, run_id: i64) -> Result<Option<RunClaim>, AppError> {
        match self {
            Self::Sqlite(_) => Ok(None),
            Self::Postgres(store) => Ok(Some(RunClaim::take(store.url(), run_id)?)),
        }
    }

    /// The run's writer thread, on the claim's connection for PostgreSQL.
    pub fn spawn_writer(
        &self,
        claim: Option<RunClaim>,
        run_id: i64,
        series_id: i64,
        commands: mpsc::Receiver<nanotrader_store::StoreCmd>,
        hooks: WriterHooks,
    ) -> Result<StoreWriter, AppError> {
        Ok(match (self, claim) {
            (Self::Sqlite(store), _) => StoreWriter::spawn(store.path(), run_id, series_id, commands, hooks)?,
            (Self::Postgres(_), Some(claim)) => nanotrader_store_pg::spawn_writer(claim, series_id, commands, hooks)?,
            (Self::Postgres(_), None) => return Err(AppError::runtime("a PostgreSQL run's writer needs its claim")),
        })
    }
}

/// The store opened for reading only (`runs`, `fills`, `bars`).
pub fn open_reader(target: &StoreTarget) -> Result<Box<dyn RunStore>, AppError> {
    Ok(match target {
        StoreTarget::Sqlite(dir) => Box::new(Store::open_read_only(dir)?),
        StoreTarget::Postgres(url) => Box::new(PgStore::connect_read_only(url)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_db_url_names_sqlite_by_its_directory_or_file_or_postgres() {
        let dir = Path::new("d");
        let parse = |url: &str| StoreTarget::resolve(Some(url.to_owned()), None, dir);
        assert_eq!(
            parse("sqlite:///var/lib/nt").unwrap(),
            StoreTarget::Sqlite("/var/lib/nt".into())
        );
        assert_eq!(
            parse("sqlite://data/nanotrader.sqlite").unwrap(),
            StoreTarget::Sqlite("data".into())
        );
        assert_eq!(
            parse("sqlite://nanotrader.sqlite").unwrap(),
            StoreTarget::Sqlite(".".into())
        );
        assert!(parse("postgresql://u@h/db").unwrap().is_postgres());
        let err = parse("mysql://u:pw@h/db").err().unwrap();
        assert_eq!(err.code, 2);
        assert!(
            !err.message.contains("pw") && err.message.contains("expected sqlite://"),
            "{}",
            err.message
        );
        // The flag beats the config file.
        let target = StoreTarget::resolve(Some("sqlite://a".into()), Some("sqlite://b".into()), dir).unwrap();
        assert_eq!(target, StoreTarget::Sqlite("a".into()));
    }
}
