//! SQLite backend: WAL, `synchronous=FULL` by default, foreign keys on, a busy timeout, and exactly
//! one writer connection (SQLite admits one writer at a time; queueing in the pool is cheaper than
//! retrying on SQLITE_BUSY). Reads use a separate pool of connections, which WAL lets run alongside.
//!
//! The hottest point reads (a user by id, a client, a client grant, a user by login) bypass sqlx: its
//! SQLite driver runs each connection on a worker thread, and the two thread hops per query cost more
//! than the query. [`Fast`] runs them inline on plain `rusqlite` read-only connections — primary-key
//! lookups on a WAL database, microseconds each — and sees every committed write at once.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::OpenFlags;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Result, StoreError, StoreOptions};

type Db = sqlx::Sqlite;
type DbRow = sqlx::sqlite::SqliteRow;
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
        .connect_with(base.clone().read_only(true))
        .await
        .map_err(StoreError::from_sqlx)?;
    let path = base.get_filename().to_path_buf();
    let in_memory = path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:");
    let fast = (!in_memory).then(|| Fast { path, idle: Mutex::new(Vec::new()), closed: AtomicBool::new(false) });
    Ok(SqlBackend { read, write, fast })
}

/// Inline read-only `rusqlite` connections for point reads.
pub(crate) struct Fast {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    closed: AtomicBool,
}

/// Idle fast-read connections kept open.
const FAST_IDLE: usize = 16;

fn rusqlite_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            StoreError::Unavailable(sqlx::Error::PoolTimedOut)
        }
        other => StoreError::internal(other),
    }
}

impl Cols for rusqlite::Row<'_> {
    fn text(&self, col: &str) -> Result<Option<String>> {
        self.get(col).map_err(rusqlite_err)
    }
    fn int(&self, col: &str) -> Result<Option<i64>> {
        self.get(col).map_err(rusqlite_err)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        self.get(col).map_err(rusqlite_err)
    }
    fn json(&self, col: &str) -> Result<Value> {
        let s: String = self.get(col).map_err(rusqlite_err)?;
        serde_json::from_str(&s).map_err(|_| StoreError::Internal(format!("stored JSON is invalid: {col}").into()))
    }
}

impl Fast {
    fn open(&self) -> Result<rusqlite::Connection> {
        let c =
            rusqlite::Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(rusqlite_err)?;
        c.busy_timeout(Duration::from_secs(10)).map_err(rusqlite_err)?;
        c.set_prepared_statement_cache_capacity(32);
        Ok(c)
    }

    /// Close every idle connection; later reads fail as the pools do once closed.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Ok(mut v) = self.idle.lock() {
            v.clear();
        }
    }

    fn run<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(sqlx::Error::PoolClosed));
        }
        let conn = match self.idle.lock().ok().and_then(|mut v| v.pop()) {
            Some(c) => c,
            None => self.open()?,
        };
        let out = f(&conn);
        if let Ok(mut v) = self.idle.lock()
            && v.len() < FAST_IDLE
        {
            v.push(conn);
        }
        out
    }

    fn one<T>(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
        decode: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        self.run(|c| {
            let mut st = c.prepare_cached(sql).map_err(rusqlite_err)?;
            let mut rows = st.query(params).map_err(rusqlite_err)?;
            match rows.next().map_err(rusqlite_err)? {
                Some(r) => decode(r).map(Some),
                None => Ok(None),
            }
        })
    }

    pub(crate) fn user(&self, t: &TenantId, id: &UserId) -> Result<Option<User>> {
        self.one(&user_by_id_sql(), &[&t.as_str(), &id.as_str()], |r| decode::user(r))
    }

    pub(crate) fn client(&self, t: &TenantId, id: &ClientId) -> Result<Option<Client>> {
        self.one(&client_by_id_sql(), &[&t.as_str(), &id.as_str()], |r| decode::client(r))
    }

    pub(crate) fn client_grant(&self, t: &TenantId, client: &ClientId, audience: &str) -> Result<Option<ClientGrant>> {
        self.one(CLIENT_GRANT_SQL, &[&t.as_str(), &client.as_str(), &audience], |r| {
            Ok(ClientGrant {
                id: r.text("id")?.unwrap_or_default(),
                client_id: ClientId::from_trusted(r.text("client_id")?.unwrap_or_default()),
                audience: r.text("audience")?.unwrap_or_default(),
                scope: string_list(r.json("scope")?),
            })
        })
    }

    pub(crate) fn user_by_login(
        &self,
        t: &TenantId,
        connection: &ConnectionId,
        identifier: &str,
    ) -> Result<Option<(User, Option<String>)>> {
        let lower = identifier.to_lowercase();
        self.one(&user_by_login_sql(), &[&t.as_str(), &connection.as_str(), &lower], |r| {
            Ok((decode::user(r)?, r.text("password_hash")?))
        })
    }
}
