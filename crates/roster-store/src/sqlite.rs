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
    let batcher = Batcher::start(write.clone());
    Ok(SqlBackend { read, write, batcher, fast })
}

/// Group commit. SQLite with `synchronous=FULL` pays one fsync per commit; under concurrency that, not
/// the SQL, bounds the write rate. Transaction bodies (`in_tx`) queue here; one task runs every queued
/// body inside one transaction — each in its own savepoint, so a failing body rolls back alone — then
/// commits once and only then answers each caller. Nothing is acknowledged before it is durable.
pub(crate) struct Batcher {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

/// Most transaction bodies committed together.
const MAX_BATCH: usize = 128;

struct Done {
    ok: bool,
    /// Answers the caller once the batch's commit is known.
    finish: Box<dyn FnOnce(Result<()>) + Send>,
}

type JobRun = Box<
    dyn for<'c> FnOnce(&'c mut sqlx::SqliteConnection) -> std::pin::Pin<Box<dyn std::future::Future<Output = Done> + Send + 'c>>
        + Send,
>;

struct Job {
    run: JobRun,
    /// Answers the caller when the body could not even start (no connection, no transaction).
    abort: Box<dyn FnOnce(StoreError) + Send>,
}

impl Batcher {
    fn start(pool: sqlx::SqlitePool) -> Self {
        let (jobs, mut rx) = tokio::sync::mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => batch.push(j),
                        Err(_) => break,
                    }
                }
                run_batch(&pool, batch).await;
            }
        });
        Self { jobs }
    }
}

fn commit_failed() -> StoreError {
    StoreError::Internal("the transaction could not be committed".into())
}

async fn exec(conn: &mut sqlx::SqliteConnection, sql: &'static str) -> Result<()> {
    sqlx::query(sql).execute(conn).await.map(|_| ()).map_err(StoreError::from_sqlx)
}

async fn run_batch(pool: &sqlx::SqlitePool, batch: Vec<Job>) {
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            for j in batch {
                (j.abort)(StoreError::Unavailable(sqlx::Error::Protocol(msg.clone())));
            }
            return;
        }
    };
    if let Err(e) = exec(&mut conn, "BEGIN IMMEDIATE").await {
        let mut e = Some(e);
        for j in batch {
            (j.abort)(e.take().unwrap_or_else(commit_failed));
        }
        return;
    }
    let single = batch.len() == 1;
    let mut dones = Vec::with_capacity(batch.len());
    for j in batch {
        if !single && exec(&mut conn, "SAVEPOINT batch_item").await.is_err() {
            (j.abort)(commit_failed());
            continue;
        }
        let done = (j.run)(&mut conn).await;
        if !single {
            if !done.ok {
                let _ = exec(&mut conn, "ROLLBACK TO batch_item").await;
            }
            let _ = exec(&mut conn, "RELEASE batch_item").await;
        }
        dones.push(done);
    }
    let outcome = if single && dones.iter().all(|d| !d.ok) {
        exec(&mut conn, "ROLLBACK").await
    } else {
        match exec(&mut conn, "COMMIT").await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = exec(&mut conn, "ROLLBACK").await;
                Err(e)
            }
        }
    };
    let mut err = outcome.err();
    for d in dones {
        (d.finish)(match err.take() {
            None if d.ok => Ok(()),
            Some(e) => Err(e),
            None => Err(commit_failed()),
        });
    }
}

impl SqlBackend {
    async fn in_tx<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> TxFuture<'c, T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T>>();
        let reply = std::sync::Arc::new(Mutex::new(Some(reply)));
        let abort_reply = reply.clone();
        let send = move |slot: &std::sync::Arc<Mutex<Option<tokio::sync::oneshot::Sender<Result<T>>>>>, r: Result<T>| {
            if let Some(tx) = slot.lock().ok().and_then(|mut s| s.take()) {
                let _ = tx.send(r);
            }
        };
        let job = Job {
            run: Box::new(move |c| {
                Box::pin(async move {
                    match op(c).await {
                        Ok(v) => Done { ok: true, finish: Box::new(move |commit: Result<()>| send(&reply, commit.map(|()| v))) },
                        Err(e) => Done { ok: false, finish: Box::new(move |_| send(&reply, Err(e))) },
                    }
                })
            }),
            abort: Box::new(move |e| {
                if let Some(tx) = abort_reply.lock().ok().and_then(|mut s| s.take()) {
                    let _ = tx.send(Err(e));
                }
            }),
        };
        let closed = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        self.batcher.jobs.send(job).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
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
