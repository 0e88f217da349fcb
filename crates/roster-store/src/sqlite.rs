//! SQLite backend: WAL, `synchronous=FULL` by default, foreign keys on, a busy timeout, and exactly
//! one writer connection (SQLite admits one writer at a time; queueing in the pool is cheaper than
//! retrying on SQLITE_BUSY). Reads use a separate pool of connections, which WAL lets run alongside.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Result, StoreError, StoreOptions};

type Db = sqlx::Sqlite;
/// SQLite locks the whole database for the writer; `BEGIN IMMEDIATE` takes that lock up front so a
/// transaction never fails half-way when it upgrades from read to write.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
const FOR_UPDATE: &str = "";
/// SQLite compares text byte-wise already.
const TEXT_ORDER: &str = "";

fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/sqlite")
}

include!("sql_common.rs");

pub(crate) async fn connect(opts: &StoreOptions) -> Result<SqlBackend> {
    let base = SqliteConnectOptions::from_str(&opts.url)
        .map_err(|e| StoreError::Config(format!("invalid SQLite URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if opts.sqlite_synchronous_full { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .pragma("temp_store", "memory");
    if let Some(parent) = base.get_filename().parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Config(format!("cannot create the database folder {}: {e}", parent.display())))?;
    }
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(opts.acquire_timeout)
        .connect_with(base.clone())
        .await
        .map_err(StoreError::from_sqlx)?;
    let read = SqlitePoolOptions::new()
        .max_connections(opts.max_connections.max(1))
        .acquire_timeout(opts.acquire_timeout)
        .connect_with(base.read_only(true))
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(SqlBackend { read, write })
}
