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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::OpenFlags;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::user_cache::UserCache;
use crate::{ConflictKind, Result, StoreError, StoreOptions};

type Db = sqlx::Sqlite;
type DbRow = sqlx::sqlite::SqliteRow;
/// SQLite locks the whole database for the writer; `BEGIN IMMEDIATE` takes that lock up front so a
/// transaction never fails half-way when it upgrades from read to write.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
const FOR_UPDATE: &str = "";
/// How a relay passes over rows another relay is claiming.
const SKIP_LOCKED: &str = "";
/// SQLite compares text byte-wise already.
const TEXT_ORDER: &str = "";

fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/sqlite")
}

// --- A user's log events. On SQLite the by-user index is the table `log_users`, written behind the log
// table by the group-commit writer ([`index_logs`]); readers take it up to the watermark and scan the
// log rows after it, so they see every event at once.

/// A user's events, newest first (`$1` tenant, `$2` user).
fn user_logs_sql(cols: &str, limit: u32) -> String {
    format!(
        "SELECT {cols} FROM logs WHERE tenant_id = $1 AND user_id = $2 AND log_id IN \
           (SELECT log_id FROM log_users WHERE tenant_id = $1 AND user_id = $2 ORDER BY log_id DESC LIMIT {limit}) \
         UNION \
         SELECT {cols} FROM logs WHERE rowid > (SELECT watermark FROM log_users_mark) AND tenant_id = $1 AND user_id = $2 \
         ORDER BY log_id DESC LIMIT {limit}"
    )
}

/// The statements that give a deleted user's events a pseudonym (`$1` tenant, `$2` user,
/// `$3` pseudonym, `$4` details): those indexed, then those after the watermark.
const PSEUDONYMIZE_LOGS: &[&str] = &[
    "UPDATE logs SET user_id = $3, user_name = NULL, ip = NULL, user_agent = NULL, details = $4 \
     WHERE tenant_id = $1 AND user_id = $2 AND log_id IN (SELECT log_id FROM log_users WHERE tenant_id = $1 AND user_id = $2)",
    "UPDATE logs SET user_id = $3, user_name = NULL, ip = NULL, user_agent = NULL, details = $4 \
     WHERE rowid > (SELECT watermark FROM log_users_mark) AND tenant_id = $1 AND user_id = $2",
];

/// Then the user's entries go (`$1` tenant, `$2` user).
const FORGET_LOG_USER: Option<&str> = Some("DELETE FROM log_users WHERE tenant_id = $1 AND user_id = $2");

/// After a tenant's rows are deleted: SQLite gives a new row the rowid after the largest one left, so
/// when the deleted tenant had the newest events, new rows would take rowids at or under the watermark
/// and never be indexed. The watermark comes down to the largest rowid left.
const AFTER_TENANT_DELETE: Option<&str> =
    Some("UPDATE log_users_mark SET watermark = min(watermark, (SELECT coalesce(max(rowid), 0) FROM logs)), epoch = epoch + 1");

include!("sql_common.rs");
include!("sql_mail.rs");
include!("sql_tickets.rs");
include!("sql_attack.rs");
include!("sql_account.rs");

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
    let fast = if in_memory {
        None
    } else {
        let writer = Batcher::start(&path, opts.sqlite_synchronous_full)?;
        let idle = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        housekeeping(Arc::downgrade(&idle), closed.clone(), &path, opts.sqlite_synchronous_full)?;
        Some(Fast { path, idle, closed, writer, users: UserCache::new(opts.user_cache_capacity).map(Arc::new) })
    };
    Ok(SqlBackend { read, write, fast })
}

/// Group commit. SQLite with `synchronous=FULL` pays one fsync per commit; under concurrency that, not
/// the SQL, bounds the write rate. The hot writes (user create/update, log and outbox rows) queue here;
/// one OS thread with its own `rusqlite` connection runs every queued write inside one transaction (a
/// write that fails before changing a row fails alone; see [`run_batch`]), commits once, and only then
/// answers each caller. Nothing is acknowledged before it is durable, and no statement pays an async hop.
/// Other (rare, administrative) writes use the sqlx write pool; the two writers serialize on SQLite's
/// write lock (`BEGIN IMMEDIATE` and a busy timeout).
pub(crate) struct Batcher {
    jobs: std::sync::mpsc::SyncSender<Job>,
    /// Writers of the sqlx write pool waiting for SQLite's write lock (see [`PoolTurn`]).
    pool_waiting: Arc<AtomicUsize>,
}

/// The longest the group-commit writer holds back for writers of the sqlx pool before it takes the
/// write lock again: enough for a pool writer's busy handler to retry (SQLite sleeps 1, 2, 5, 10 …
/// ms between tries), and a bound on what a stream of pool writes could cost the hot writes.
const POOL_TURN_MAX: Duration = Duration::from_millis(50);

/// A writer of the sqlx pool that wants SQLite's write lock, from before its `BEGIN IMMEDIATE` until
/// it has the lock or gave up (the guard's drop). The group-commit writer takes the lock again
/// microseconds after each commit, while a pool writer that found it taken sleeps in SQLite's busy
/// handler and retries at fixed times: under a saturating PATCH load a `DELETE /users/{id}` took up
/// to 0.95 s and the mail relay's claim over 1 s, and nothing bounded the wait but the 10 s busy
/// timeout. While one waits, the group-commit writer starts no transaction (up to [`POOL_TURN_MAX`]).
pub(crate) struct PoolTurn(Arc<AtomicUsize>);

impl PoolTurn {
    fn new(waiting: &Arc<AtomicUsize>) -> Self {
        waiting.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(waiting))
    }
}

impl Drop for PoolTurn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Before the group-commit writer begins a transaction: let waiting pool writers take the lock first,
/// for up to `max`.
fn let_pool_writers_in(waiting: &AtomicUsize, max: Duration) {
    if waiting.load(Ordering::SeqCst) == 0 {
        return;
    }
    let start = std::time::Instant::now();
    while waiting.load(Ordering::SeqCst) > 0 && start.elapsed() < max {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Most writes committed together.
const MAX_BATCH: usize = 256;

struct Done {
    ok: bool,
    /// Answers the caller once the batch's commit is known.
    finish: Box<dyn FnOnce(Result<()>) + Send>,
}

struct Job {
    run: Box<dyn FnOnce(&rusqlite::Connection) -> Done + Send>,
    /// Answers the caller when its write could not even start.
    abort: Box<dyn FnOnce(StoreError) + Send>,
}

fn conflict_or_internal(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            StoreError::Conflict(ConflictKind::from_violation(msg.as_deref().unwrap_or("")))
        }
        _ => rusqlite_err(e),
    }
}

/// The shared SQL uses `$n` placeholders, which sqlx binds by number. SQLite itself treats `$n` as a
/// *named* parameter numbered by first appearance, so for rusqlite they are rewritten to `?n` (truly
/// numbered): `UPDATE … SET a = $3 … WHERE id = $1` must not bind the id into `a`.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// The statements of the fast path, rewritten once.
struct Sql {
    user_by_id: String,
    user_by_login: String,
    client_by_id: String,
    client_grant: String,
    insert_log: String,
    insert_outbox: String,
    insert_user: String,
    upsert_credential: String,
    charge: String,
}

static SQL: std::sync::LazyLock<Sql> = std::sync::LazyLock::new(|| Sql {
    user_by_id: numbered(&user_by_id_sql()),
    user_by_login: numbered(&user_by_login_sql()),
    client_by_id: numbered(&client_by_id_sql()),
    client_grant: numbered(CLIENT_GRANT_SQL),
    insert_log: numbered(params::INSERT_LOG),
    insert_outbox: numbered(params::INSERT_OUTBOX),
    insert_user: numbered(params::INSERT_USER),
    upsert_credential: numbered(params::UPSERT_CREDENTIAL),
    charge: numbered(params::CHARGE),
});

/// Run one statement of [`SQL`] (already in `?n` form).
fn run_sql(c: &rusqlite::Connection, sql: &str, p: &[params::Param]) -> Result<usize> {
    let mut st = c.prepare_cached(sql).map_err(conflict_or_internal)?;
    st.execute(rusqlite::params_from_iter(p.iter())).map_err(conflict_or_internal)
}

fn write_effects(c: &rusqlite::Connection, t: &TenantId, e: &Effects) -> Result<()> {
    for ev in &e.logs {
        run_sql(c, &SQL.insert_log, &params::log(t, ev))?;
    }
    for m in &e.outbox {
        run_sql(c, &SQL.insert_outbox, &params::outbox(t, m))?;
    }
    // Rarer effects: the `?n` form is derived per call (the statement cache is keyed by the text).
    // Revocations first: a change may end the old tickets of a kind and issue a new one.
    for r in &e.revocations {
        for (sql, ps) in params::revocation(t, r) {
            run_sql(c, &numbered(sql), &ps)?;
        }
    }
    for k in &e.tickets {
        run_sql(c, &numbered(params::INSERT_TICKET), &params::ticket(t, k))?;
    }
    for (user, hash, at) in &e.password_history {
        for (sql, ps) in params::remember_password(t, user, hash, *at) {
            run_sql(c, &numbered(sql), &ps)?;
        }
    }
    Ok(())
}

type Reply<T> = std::sync::Arc<Mutex<Option<tokio::sync::oneshot::Sender<Result<T>>>>>;

fn answer<T>(slot: &Reply<T>, r: Result<T>) {
    if let Some(tx) = slot.lock().ok().and_then(|mut s| s.take()) {
        let _ = tx.send(r);
    }
}

impl Batcher {
    fn start(path: &std::path::Path, full_sync: bool) -> Result<Self> {
        Self::start_with(path, full_sync, POOL_TURN_MAX)
    }

    /// [`Batcher::start`] with another bound on a pool writer's turn (tests).
    fn start_with(path: &std::path::Path, full_sync: bool, pool_turn_max: Duration) -> Result<Self> {
        let conn = rusqlite::Connection::open(path).map_err(rusqlite_err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(rusqlite_err)?;
        let sync = synchronous(full_sync);
        // Temporary tables and indexes in memory, as the sqlx connections have them.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;"
        ))
        .map_err(rusqlite_err)?;
        // The sorted rows of a batch of the by-user log index (see `LogIndexing`), in memory.
        conn.execute_batch(CREATE_PENDING).map_err(rusqlite_err)?;
        conn.wal_hook(Some(count_commit));
        conn.set_prepared_statement_cache_capacity(64);
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(4096);
        let mut seen = data_version(&conn)?;
        let mut indexing = LogIndexing::new();
        let pool_waiting = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::clone(&pool_waiting);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                // A write that arrived while the last batch was committed.
                let mut next = None;
                loop {
                    // Idle, the writer still looks for other processes' commits every
                    // SNAPSHOT_MAX_AGE; busy, before every batch.
                    let first = match next.take().map_or_else(|| rx.recv_timeout(SNAPSHOT_MAX_AGE), Ok) {
                        Ok(j) => j,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            notice_other_writers(&conn, &mut seen);
                            let_pool_writers_in(&waiting, pool_turn_max);
                            indexing.turn(&conn, true, std::time::Instant::now());
                            continue;
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    };
                    notice_other_writers(&conn, &mut seen);
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(j) => batch.push(j),
                            Err(_) => break,
                        }
                    }
                    let_pool_writers_in(&waiting, pool_turn_max);
                    run_batch(&conn, batch);
                    let_pool_writers_in(&waiting, pool_turn_max);
                    // The index waits while writes do, unless it is behind (see `LogIndexing::turn`).
                    next = rx.try_recv().ok();
                    indexing.turn(&conn, next.is_none(), std::time::Instant::now());
                }
            })
            .map_err(StoreError::internal)?;
        Ok(Self { jobs, pool_waiting })
    }

    /// Queue a write and wait for its durable commit.
    async fn submit<T: Send + 'static>(&self, op: impl FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static) -> Result<T> {
        self.submit_then(op, || {}).await
    }

    /// Queue a write and wait for its durable commit. When `op` succeeded, `after` runs on the writer
    /// thread once the batch's commit (or rollback) is done and counted, before the caller is
    /// answered, and whether or not the caller still waits. (A failed `op` changed nothing.)
    async fn submit_then<T: Send + 'static>(
        &self,
        op: impl FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
        after: impl FnOnce() + Send + 'static,
    ) -> Result<T> {
        let (reply, rx) = tokio::sync::oneshot::channel::<Result<T>>();
        let reply: Reply<T> = std::sync::Arc::new(Mutex::new(Some(reply)));
        let abort_reply = reply.clone();
        let job = Job {
            run: Box::new(move |c| match op(c) {
                Ok(v) => Done {
                    ok: true,
                    finish: Box::new(move |commit: Result<()>| {
                        after();
                        answer(&reply, commit.map(|()| v))
                    }),
                },
                Err(e) => Done { ok: false, finish: Box::new(move |_| answer(&reply, Err(e))) },
            }),
            abort: Box::new(move |e| answer(&abort_reply, Err(e))),
        };
        let closed = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        self.jobs.send(job).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

/// How often the group-commit writer adds the new log rows to `log_users`, when it has a moment (see
/// [`LOG_INDEX_LAG`]). Written inline, each event took a random leaf of the by-user index (1.5 WAL
/// frames per event, two thirds of a metadata PATCH's disk bytes); a second's events, sorted, share
/// leaves (measured with `bench/log_index_sim.py`: 0.47 frames per event in batches of 5,000, 0.13 in
/// 20,000).
const LOG_INDEX_EVERY: Duration = Duration::from_secs(1);

/// The most the index waits for a moment when no write is queued: under a load that never leaves
/// one, a batch starts, and each of its slices is written, at least this often.
const LOG_INDEX_LAG: Duration = Duration::from_secs(3);

/// Rows of a batch written per transaction. A second's events at the bench's PATCH rate (~12k) touch
/// most leaves of `log_users`; written in one transaction they held the writer for 70–130 ms. Written
/// in slices of the sorted batch, each transaction covers its own range of keys, hence of leaves, so
/// a leaf is still written about once per batch while no transaction holds the writer long.
const LOG_INDEX_SLICE: i64 = 2_000;

/// The writer connection's table of a batch being written (`temp_store=MEMORY`).
const CREATE_PENDING: &str = "CREATE TEMP TABLE log_users_pending (seq INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, \
     user_id TEXT NOT NULL, log_id TEXT NOT NULL)";

/// The group-commit writer's work on `log_users`: every [`LOG_INDEX_EVERY`], the log rows after the
/// watermark are copied, sorted by key, into the temporary table `log_users_pending`; then one slice
/// of it per turn of the writer (after each batch, or when idle) goes into `log_users`, in its own
/// transaction, and the last slice moves the watermark. Readers scan the rows after the watermark
/// (and merge with `UNION`, since a batch half written has entries for some of them). Once a log
/// row's user changed since the batch began (a deleted user's events took a pseudonym and their
/// entries were removed; the trigger `logs_user_rewritten` counts it in `rewrites`), a slice adds only
/// the rows whose user is still the one copied: that check looks up each log row, and made up half of
/// the indexing's time when every slice did it. A tenant deletion (which bumps `epoch`) ends a batch
/// half written: the next one starts again from the lowered watermark. A failure ends the batch too and is
/// left to the next one: nothing is lost, as readers scan what is not indexed.
struct LogIndexing {
    last_start: std::time::Instant,
    batch: Option<IndexBatch>,
}

struct IndexBatch {
    /// The last log rowid the batch covers, and the tenant-deletion epoch it started in.
    upto: i64,
    epoch: i64,
    /// `log_users_mark.rewrites` when the batch began.
    rewrites: i64,
    /// The next slice's first `seq` in `log_users_pending`, and the last `seq`.
    next: i64,
    last: i64,
}

impl LogIndexing {
    fn new() -> Self {
        Self { last_start: std::time::Instant::now(), batch: None }
    }

    /// One step of the work, if due. `idle`: no write is waiting. The index's transactions hold
    /// the writer for milliseconds each (~6 µs per event), while the writes it holds up keep their
    /// callers, and the cores those would use, waiting: so a step is taken when no write is queued,
    /// or when the work is [`LOG_INDEX_LAG`] behind.
    fn turn(&mut self, c: &rusqlite::Connection, idle: bool, now: std::time::Instant) {
        let waited = now.saturating_duration_since(self.last_start);
        if self.batch.is_none() {
            if waited < if idle { LOG_INDEX_EVERY } else { LOG_INDEX_LAG } {
                return;
            }
            self.last_start = now;
            self.batch = start_index_batch(c).ok().flatten();
            return;
        }
        if !idle && waited < LOG_INDEX_LAG {
            return;
        }
        if let Some(b) = &mut self.batch {
            match index_slice(c, b) {
                Ok(false) => {}
                Ok(true) | Err(_) => self.batch = None,
            }
        }
    }
}

/// Copy the log rows after the watermark, sorted by key, into `log_users_pending`. `None` when there
/// are none.
fn start_index_batch(c: &rusqlite::Connection) -> rusqlite::Result<Option<IndexBatch>> {
    let (mark, epoch, rewrites): (i64, i64, i64) = c
        .prepare_cached("SELECT watermark, epoch, rewrites FROM log_users_mark")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let upto: i64 = c.prepare_cached("SELECT coalesce(max(rowid), 0) FROM logs")?.query_row([], |r| r.get(0))?;
    if upto <= mark {
        if upto < mark {
            // Rows above the watermark went away (tenant deletion lowers it itself; this is a backstop):
            // new rows would take their rowids.
            c.prepare_cached("UPDATE log_users_mark SET watermark = ?1 WHERE watermark > ?1")?.execute([upto])?;
        }
        return Ok(None);
    }
    exec_cached(c, "DELETE FROM temp.log_users_pending")?;
    c.prepare_cached(
        "INSERT INTO temp.log_users_pending (tenant_id, user_id, log_id) SELECT tenant_id, user_id, log_id FROM logs \
         WHERE rowid > ?1 AND rowid <= ?2 AND user_id IS NOT NULL ORDER BY 1, 2, 3",
    )?
    .execute([mark, upto])?;
    let (first, last): (i64, i64) = c
        .prepare_cached("SELECT coalesce(min(seq), 1), coalesce(max(seq), 0) FROM temp.log_users_pending")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Some(IndexBatch { upto, epoch, rewrites, next: first, last }))
}

/// Write the next slice of `b` in a transaction of its own; true when the batch is over (written, or
/// ended by a tenant deletion).
fn index_slice(c: &rusqlite::Connection, b: &mut IndexBatch) -> rusqlite::Result<bool> {
    exec_cached(c, "BEGIN IMMEDIATE")?;
    let slice = (|| {
        let (epoch, rewrites): (i64, i64) =
            c.prepare_cached("SELECT epoch, rewrites FROM log_users_mark")?.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if epoch != b.epoch {
            return Ok(true);
        }
        let end = (b.next + LOG_INDEX_SLICE - 1).min(b.last);
        let sql = if rewrites == b.rewrites {
            "INSERT OR IGNORE INTO log_users (tenant_id, user_id, log_id) \
             SELECT tenant_id, user_id, log_id FROM temp.log_users_pending WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq"
        } else {
            "INSERT OR IGNORE INTO log_users (tenant_id, user_id, log_id) \
             SELECT p.tenant_id, p.user_id, p.log_id FROM temp.log_users_pending p \
             JOIN logs l ON l.tenant_id = p.tenant_id AND l.log_id = p.log_id AND l.user_id = p.user_id \
             WHERE p.seq BETWEEN ?1 AND ?2 ORDER BY p.seq"
        };
        c.prepare_cached(sql)?.execute([b.next, end])?;
        b.next = end + 1;
        let done = b.next > b.last;
        if done {
            c.prepare_cached("UPDATE log_users_mark SET watermark = max(watermark, ?1) WHERE epoch = ?2")?
                .execute([b.upto, b.epoch])?;
        }
        Ok(done)
    })();
    match slice.and_then(|done| exec_cached(c, "COMMIT").map(|()| done)) {
        Ok(done) => Ok(done),
        Err(e) => {
            let _ = exec_cached(c, "ROLLBACK");
            Err(e)
        }
    }
}

/// Add the log rows after the watermark to `log_users`, sorted, and move the watermark to the last
/// row, inside the caller's transaction.
fn index_logs(c: &rusqlite::Connection) -> rusqlite::Result<()> {
    let mark: i64 = c.prepare_cached("SELECT watermark FROM log_users_mark")?.query_row([], |r| r.get(0))?;
    let last: i64 = c.prepare_cached("SELECT coalesce(max(rowid), 0) FROM logs")?.query_row([], |r| r.get(0))?;
    if last > mark {
        c.prepare_cached(
            "INSERT OR IGNORE INTO log_users (tenant_id, user_id, log_id) SELECT tenant_id, user_id, log_id FROM logs \
             WHERE rowid > ?1 AND rowid <= ?2 AND user_id IS NOT NULL ORDER BY 1, 2, 3",
        )?
        .execute([mark, last])?;
    }
    if last != mark {
        c.prepare_cached("UPDATE log_users_mark SET watermark = ?1")?.execute([last])?;
    }
    Ok(())
}

fn not_committed() -> StoreError {
    StoreError::Internal("the transaction could not be committed".into())
}

/// Run a fixed statement through the statement cache (no re-parse per write).
fn exec_cached(c: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Run a batch in one transaction. A write that fails before changing any row leaves the transaction
/// as it was (SQLite undoes a failing statement's own changes), so it fails alone and the others are
/// committed: that is every refusal in practice (validation before the first statement, a uniqueness
/// conflict on the first). A write that fails *after* changing rows cannot be undone alone without a
/// savepoint per write, which cost ~10% of the writer's time; then the whole batch is rolled back and
/// every write in it fails — only I/O-class errors do that, and they fail the commit anyway.
fn run_batch(c: &rusqlite::Connection, batch: Vec<Job>) {
    if let Err(e) = exec_cached(c, "BEGIN IMMEDIATE") {
        let mut e = Some(rusqlite_err(e));
        for j in batch {
            (j.abort)(e.take().unwrap_or_else(not_committed));
        }
        return;
    }
    let mut dones = Vec::with_capacity(batch.len());
    let mut half_done = false;
    for j in batch {
        let changes = c.total_changes();
        let done = (j.run)(c);
        half_done |= !done.ok && c.total_changes() != changes;
        dones.push(done);
    }
    let keep = !half_done && dones.iter().any(|d| d.ok);
    // Every write of the batch learns whether it was committed: the commit's own error goes to the
    // first, `not_committed` to the others (a failed write answers its own error whatever it gets).
    let (committed, mut err) = match exec_cached(c, if keep { "COMMIT" } else { "ROLLBACK" }) {
        Ok(()) => (keep, None),
        Err(e) => {
            let _ = exec_cached(c, "ROLLBACK");
            (false, Some(rusqlite_err(e)))
        }
    };
    for d in dones {
        let outcome = if committed && d.ok { Ok(()) } else { Err(err.take().unwrap_or_else(not_committed)) };
        (d.finish)(outcome);
    }
}

/// A user by id, on any connection (a fast-read one, or the writer's inside its transaction).
fn user_row(c: &rusqlite::Connection, t: &TenantId, id: &UserId) -> Result<Option<User>> {
    let mut st = c.prepare_cached(&SQL.user_by_id).map_err(rusqlite_err)?;
    let mut rows = st.query([t.as_str(), id.as_str()]).map_err(rusqlite_err)?;
    match rows.next().map_err(rusqlite_err)? {
        Some(r) => decode::user(&Indexed { row: r, names: USER_COLUMNS }).map(Some),
        None => Ok(None),
    }
}

/// Inline read-only `rusqlite` connections for point reads.
pub(crate) struct Fast {
    path: PathBuf,
    idle: std::sync::Arc<Mutex<Vec<ReadConn>>>,
    closed: std::sync::Arc<AtomicBool>,
    /// The group-commit writer for the hot writes.
    writer: Batcher,
    /// Users read by id (`None`: turned off).
    users: Option<Arc<UserCache>>,
}

/// Idle fast-read connections kept open.
const FAST_IDLE: usize = 16;

/// Commits made by this process's write connections: counted by the group-commit writer's WAL hook,
/// which SQLite calls once a commit is visible to new readers, and by [`written`] after each commit
/// of the sqlx write pool.
static COMMITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The longest a fast-read connection keeps one read transaction (snapshot) open, and so the most a
/// read can lag behind a write made by *another process* (e.g. `roster tenant …`); writes made by
/// this process end every older snapshot before their callers are answered.
const SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(10);

/// Commits of the sqlx write pool, counted after [`COMMITS`]: a user copy read under an older count
/// is stale (see `user_cache.rs`). A reader loads this before `COMMITS`, so a copy read under the
/// newer count was read from a snapshot that includes the commit.
static POOL_COMMITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A write of the sqlx write pool was committed (its connections have no WAL hook: installing one
/// would take `unsafe`). Called after the commit returns, before the caller is answered.
fn written() {
    COMMITS.fetch_add(1, Ordering::SeqCst);
    POOL_COMMITS.fetch_add(1, Ordering::SeqCst);
}

/// [`written`] for a commit of the write pool that changed outbox rows and nothing else (the mail
/// relay's bookkeeping, every poll that finds mail): read snapshots end, user copies stay.
fn written_outbox() {
    COMMITS.fetch_add(1, Ordering::SeqCst);
}

/// WAL hook of the group-commit writer: count the commit, then checkpoint as SQLite's own hook
/// (`wal_autocheckpoint`, which this replaces) does at 1000 pages, errors ignored as there.
fn count_commit(wal: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    COMMITS.fetch_add(1, Ordering::SeqCst);
    if pages >= 1000 {
        let _ = wal.checkpoint();
    }
    Ok(())
}

/// `PRAGMA data_version` of a connection: it moves when *another* connection committed a change since
/// this one last looked (its own commits and other connections' PASSIVE checkpoints leave it alone).
fn data_version(c: &rusqlite::Connection) -> Result<i64> {
    c.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(rusqlite_err)
}

/// On the group-commit writer's connection, other connections are this process's sqlx write pool,
/// whose commits are counted already, and other processes (`roster tenant …`, a second node, a tool):
/// when the version moved, count a commit of the pool's kind, which ends read snapshots and ages every
/// user copy. So another process's writes are seen within [`SNAPSHOT_MAX_AGE`] (checked when idle) or
/// at this node's next write. Errors are left to the next look (a failing database fails the writes).
fn notice_other_writers(c: &rusqlite::Connection, seen: &mut i64) {
    if let Ok(v) = data_version(c)
        && v != *seen
    {
        *seen = v;
        written();
    }
}

/// `PRAGMA synchronous` of the write connections.
fn synchronous(full: bool) -> &'static str {
    if full { "FULL" } else { "NORMAL" }
}

/// Housekeeping thread, every [`SNAPSHOT_MAX_AGE`], until the connections are dropped or closed:
/// - idle connections would keep their snapshots, and a snapshot held open stops checkpoints from
///   copying later commits back into the database (the WAL would grow while only writes happen):
///   it ends stale snapshots of idle connections;
/// - after commits, it runs a PASSIVE checkpoint on its own connection, so that the copying is done
///   beside the group-commit writer, whose own 1000-page checkpoint (in its WAL hook) then finds
///   little left to copy. The writer's checkpoint is kept: it is the one that completes while no
///   write is appending, which lets the next write start the WAL over (bounded WAL).
fn housekeeping(
    idle: std::sync::Weak<Mutex<Vec<ReadConn>>>,
    closed: std::sync::Arc<AtomicBool>,
    path: &std::path::Path,
    full_sync: bool,
) -> Result<()> {
    let ckpt = rusqlite::Connection::open(path).map_err(rusqlite_err)?;
    ckpt.execute_batch(&format!("PRAGMA synchronous={};", synchronous(full_sync))).map_err(rusqlite_err)?;
    std::thread::Builder::new()
        .name("sqlite-housekeeping".into())
        .spawn(move || {
            let mut checkpointed = COMMITS.load(Ordering::SeqCst);
            loop {
                let commits = COMMITS.load(Ordering::SeqCst);
                if commits != checkpointed {
                    checkpointed = commits;
                    let _ = ckpt.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
                std::thread::sleep(SNAPSHOT_MAX_AGE);
                let Some(idle) = idle.upgrade() else { return };
                if closed.load(Ordering::SeqCst) {
                    return;
                }
                let (commits, now) = (COMMITS.load(Ordering::SeqCst), std::time::Instant::now());
                if let Ok(mut v) = idle.try_lock() {
                    v.retain_mut(|rc| rc.end_stale(commits, now).is_ok());
                }
            }
        })
        .map(|_| ())
        .map_err(StoreError::internal)
}

/// A fast-read connection and the read transaction it holds open, if any: `(COMMITS when it began,
/// when it began)`.
struct ReadConn {
    conn: rusqlite::Connection,
    snapshot: Option<(u64, std::time::Instant)>,
}

impl ReadConn {
    /// End the open read transaction if a commit was made since it began or it is too old.
    fn end_stale(&mut self, commits: u64, now: std::time::Instant) -> Result<()> {
        if let Some((seen, since)) = self.snapshot
            && (seen != commits || now.duration_since(since) > SNAPSHOT_MAX_AGE)
        {
            self.snapshot = None;
            exec_cached(&self.conn, "COMMIT").map_err(rusqlite_err)?;
        }
        Ok(())
    }
}

fn rusqlite_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            StoreError::Unavailable(sqlx::Error::PoolTimedOut)
        }
        other => StoreError::internal(other),
    }
}

/// A rusqlite row read by column *position*: rusqlite's lookup by name asks SQLite for every column
/// name until one matches (quadratic in the column count, and ~5% of a `GET /users/{id}` profile).
/// `names` lists the statement's columns in order, as its SQL text does.
struct Indexed<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    names: &'static [&'static str],
}

impl Indexed<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, col: &str) -> Result<T> {
        match self.names.iter().position(|n| *n == col) {
            Some(i) => self.row.get(i),
            None => self.row.get(col),
        }
        .map_err(rusqlite_err)
    }
}

impl Cols for Indexed<'_, '_> {
    fn text(&self, col: &str) -> Result<Option<String>> {
        self.get(col)
    }
    fn int(&self, col: &str) -> Result<Option<i64>> {
        self.get(col)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        self.get(col)
    }
    fn json(&self, col: &str) -> Result<Value> {
        self.parse(col)
    }
    fn parse<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
        let s: String = self.get(col)?;
        serde_json::from_str(&s).map_err(|_| StoreError::Internal(format!("stored JSON is invalid: {col}").into()))
    }
}

/// The columns of `USER_COLS`, then the login query's extra column, in statement order.
const USER_COLUMNS: &[&str] = &[
    "user_id",
    "connection_id",
    "email",
    "email_verified",
    "username",
    "phone_number",
    "phone_verified",
    "name",
    "given_name",
    "family_name",
    "nickname",
    "picture",
    "user_metadata",
    "app_metadata",
    "blocked",
    "identities",
    "created_at",
    "updated_at",
    "last_login",
    "last_ip",
    "logins_count",
    "last_password_reset",
    "password_hash",
];

/// The columns of `CLIENT_COLS`, in order.
const CLIENT_COLUMNS: &[&str] = &[
    "client_id",
    "name",
    "secret_hash",
    "app_type",
    "is_management",
    "grant_types",
    "callbacks",
    "allowed_logout_urls",
    "token_endpoint_auth_method",
    "is_first_party",
    "description",
    "created_at",
    "token_endpoint_ip_header_trusted",
];

/// The columns of `CLIENT_GRANT_SQL`, in order.
const GRANT_COLUMNS: &[&str] = &["id", "client_id", "audience", "scope"];

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

    /// Run reads on an idle connection. Beginning and ending a read transaction takes and releases
    /// a WAL read lock (a mutex shared by every connection of the process and two `fcntl` calls),
    /// which cost more than the primary-key lookup itself; so a connection keeps its transaction
    /// open and the next read reuses that snapshot as long as no commit was made since, by this
    /// process, and it is younger than [`SNAPSHOT_MAX_AGE`]. A read therefore sees every write this
    /// process acknowledged before it began, exactly as with one transaction per read.
    fn run<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        self.run_seen(f).map(|(v, _)| v)
    }

    /// [`Fast::run`], also giving the commit count read before the read began.
    fn run_seen<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<(T, u64)> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(sqlx::Error::PoolClosed));
        }
        let mut rc = match self.idle.lock().ok().and_then(|mut v| v.pop()) {
            Some(c) => c,
            None => ReadConn { conn: self.open()?, snapshot: None },
        };
        // Read the counter before the transaction begins: a commit counted after this point ends
        // the snapshot at the next use even if the snapshot already includes it.
        let commits = COMMITS.load(Ordering::SeqCst);
        let now = std::time::Instant::now();
        rc.end_stale(commits, now)?;
        if rc.snapshot.is_none() {
            exec_cached(&rc.conn, "BEGIN").map_err(rusqlite_err)?;
            rc.snapshot = Some((commits, now));
        }
        let out = f(&rc.conn);
        // A failed read drops its connection (closing it ends its transaction).
        if out.is_ok()
            && let Ok(mut v) = self.idle.lock()
            && v.len() < FAST_IDLE
        {
            v.push(rc);
        }
        out.map(|v| (v, commits))
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

    pub(crate) fn user(&self, t: &TenantId, id: &UserId) -> Result<Option<Arc<User>>> {
        let read = |c: &rusqlite::Connection| Ok(user_row(c, t, id)?.map(Arc::new));
        let Some(cache) = &self.users else { return self.run(read) };
        self.check_open()?;
        // The pool's count before the commit count (see `POOL_COMMITS`).
        let pool = POOL_COMMITS.load(Ordering::SeqCst);
        if let Some(u) = cache.get(t, id, pool) {
            return Ok(Some(u));
        }
        let (found, commits) = self.run_seen(read)?;
        if let Some(u) = &found {
            cache.put(t, u, pool, commits, || COMMITS.load(Ordering::SeqCst));
        }
        Ok(found)
    }

    /// Forget the cached copy of a user once the write that changes it is committed (run on the
    /// writer thread, so a caller that stops waiting cannot skip it).
    fn forget_after(&self, t: &TenantId, id: &UserId) -> impl FnOnce() + Send + 'static {
        let target = self.users.clone().map(|c| (c, t.clone(), id.clone()));
        move || {
            if let Some((c, t, id)) = target {
                c.forget(&t, &id);
            }
        }
    }

    pub(crate) fn client(&self, t: &TenantId, id: &ClientId) -> Result<Option<Client>> {
        self.one(&SQL.client_by_id, &[&t.as_str(), &id.as_str()], |r| decode::client(&Indexed { row: r, names: CLIENT_COLUMNS }))
    }

    pub(crate) fn client_grant(&self, t: &TenantId, client: &ClientId, audience: &str) -> Result<Option<ClientGrant>> {
        self.one(&SQL.client_grant, &[&t.as_str(), &client.as_str(), &audience], |r| {
            let r = Indexed { row: r, names: GRANT_COLUMNS };
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
        self.one(&SQL.user_by_login, &[&t.as_str(), &connection.as_str(), &lower], |r| {
            let r = Indexed { row: r, names: USER_COLUMNS };
            Ok((decode::user(&r)?, r.text("password_hash")?))
        })
    }
    /// A writer of the sqlx pool is about to want the write lock (see [`PoolTurn`]).
    pub(crate) fn pool_turn(&self) -> PoolTurn {
        PoolTurn::new(&self.writer.pool_waiting)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(sqlx::Error::PoolClosed));
        }
        Ok(())
    }

    pub(crate) async fn update_user(
        &self,
        t: TenantId,
        id: UserId,
        mutate: UserMutation,
        new_password_hash: Option<String>,
        effects: Effects,
    ) -> Result<Option<User>> {
        self.check_open()?;
        let forget = self.forget_after(&t, &id);
        self.writer
            .submit_then(
                move |c| {
                    let Some(mut u) = user_row(c, &t, &id)? else { return Ok(None) };
                    let before = params::user_fields(&u);
                    mutate(&mut u).map_err(StoreError::Rejected)?;
                    if let Some((sql, ps)) = params::update_user(&t, &before, &u) {
                        run_sql(c, &numbered(&sql), &ps)?;
                    }
                    if let Some(h) = &new_password_hash {
                        run_sql(c, &SQL.upsert_credential, &params::credential(&t, &id, h, u.updated_at.millis()))?;
                    }
                    write_effects(c, &t, &effects)?;
                    Ok(Some(u))
                },
                forget,
            )
            .await
    }

    pub(crate) async fn charge(&self, t: TenantId, c: crate::model::Charge) -> Result<crate::model::AttackCounter> {
        self.check_open()?;
        self.writer
            .submit(move |conn| {
                let mut st = conn.prepare_cached(&SQL.charge).map_err(rusqlite_err)?;
                let mut rows = st.query(rusqlite::params_from_iter(params::charge(&t, &c).iter())).map_err(rusqlite_err)?;
                match rows.next().map_err(rusqlite_err)? {
                    Some(r) => decode::counter(&Indexed { row: r, names: params::COUNTER_COLUMNS }),
                    None => Err(StoreError::Internal("the charge returned no counter".into())),
                }
            })
            .await
    }

    pub(crate) async fn create_user(&self, t: TenantId, new: NewUser, effects: Effects) -> Result<()> {
        self.check_open()?;
        let forget = self.forget_after(&t, &new.user.user_id);
        self.writer
            .submit_then(
                move |c| {
                    let u = &new.user;
                    run_sql(c, &SQL.insert_user, &params::insert_user(&t, u))?;
                    if let Some(h) = &new.password_hash {
                        run_sql(c, &SQL.upsert_credential, &params::credential(&t, &u.user_id, h, u.created_at.millis()))?;
                    }
                    write_effects(c, &t, &effects)
                },
                forget,
            )
            .await
    }

    /// Bring `log_users` up to date now, through the writer (the writer does it every second).
    pub(crate) async fn index_logs_now(&self) -> Result<()> {
        self.check_open()?;
        self.writer.submit(|c| index_logs(c).map_err(rusqlite_err)).await
    }

    pub(crate) async fn append_logs(&self, events: Vec<(TenantId, LogEvent)>) -> Result<()> {
        self.check_open()?;
        self.writer
            .submit(move |c| {
                for (t, ev) in &events {
                    run_sql(c, &SQL.insert_log, &params::log(t, ev))?;
                }
                Ok(())
            })
            .await
    }

    pub(crate) async fn append_effects(&self, t: TenantId, effects: Effects) -> Result<()> {
        self.check_open()?;
        self.writer.submit(move |c| write_effects(c, &t, &effects)).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn column_lists_match_the_sql() {
        let cols = |s: &str| s.split(',').map(|c| c.trim().to_owned()).collect::<Vec<_>>();
        assert_eq!(cols(super::USER_COLS), super::USER_COLUMNS[..super::USER_COLUMNS.len() - 1].to_vec());
        assert_eq!(cols(super::CLIENT_COLS), super::CLIENT_COLUMNS.to_vec());
        assert!(super::user_by_login_sql().contains(") AS password_hash FROM users"));
        assert!(super::CLIENT_GRANT_SQL.starts_with("SELECT id, client_id, audience, scope FROM"));
    }

    /// A fresh WAL database file in a folder of its own, with one table `t (k TEXT PRIMARY KEY)`:
    /// `(folder, file)`.
    fn keys_db(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("roster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("b.db");
        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (k TEXT PRIMARY KEY);"))
            .expect("schema");
        (dir, path)
    }

    /// Three writes held back until they are all queued run as one batch: a write refused before it
    /// changed anything fails alone; a write that fails after changing a row takes the batch with it,
    /// and then no write of the batch is acknowledged or kept.
    #[test]
    fn a_batch_keeps_clean_refusals_and_drops_half_done_writes() {
        use super::{Batcher, StoreError};
        let (dir, path) = keys_db("batch");
        let writer = std::sync::Arc::new(Batcher::start(&path, true).expect("writer"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let insert = |c: &rusqlite::Connection, k: &str| {
            c.execute("INSERT INTO t (k) VALUES (?1)", [k]).map(|_| ()).map_err(super::conflict_or_internal)
        };
        let refused = || StoreError::Internal("refused".into());
        let batch = |jobs: Vec<(&'static str, bool)>| {
            let writer = writer.clone();
            rt.block_on(async move {
                let (release, hold) = std::sync::mpsc::channel::<()>();
                let first = tokio::spawn({
                    let w = writer.clone();
                    async move { w.submit(move |_| hold.recv().map_err(|_| refused())).await }
                });
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let mut queued = Vec::new();
                for (k, half_done) in jobs {
                    let w = writer.clone();
                    queued.push(tokio::spawn(async move {
                        w.submit(move |c| {
                            if k == "dup" {
                                return insert(c, "a");
                            }
                            insert(c, k)?;
                            if half_done { Err(refused()) } else { Ok(()) }
                        })
                        .await
                    }));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                release.send(()).expect("release");
                first.await.expect("join").expect("first write");
                let mut out = Vec::new();
                for q in queued {
                    out.push(q.await.expect("join").is_ok());
                }
                out
            })
        };
        let keys = || {
            let c = rusqlite::Connection::open(&path).expect("open");
            let mut st = c.prepare("SELECT k FROM t ORDER BY k").expect("prepare");
            st.query_map([], |r| r.get::<_, String>(0)).expect("query").collect::<Result<Vec<_>, _>>().expect("rows")
        };
        assert_eq!(batch(vec![("a", false), ("dup", false), ("b", false)]), [true, false, true], "a conflict fails alone");
        assert_eq!(keys(), ["a", "b"]);
        assert_eq!(
            batch(vec![("c", false), ("d", true), ("e", false)]),
            [false, false, false],
            "a half-done write undoes the batch"
        );
        assert_eq!(keys(), ["a", "b"], "nothing of that batch is kept");
        assert_eq!(batch(vec![("f", false)]), [true], "the writer goes on");
        assert_eq!(keys(), ["a", "b", "f"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// While a writer of the sqlx pool waits for the write lock, the group-commit writer starts no
    /// transaction, and it goes on when the pool writer has the lock or the turn's bound has passed.
    #[test]
    fn a_waiting_pool_writer_goes_first() {
        use super::{Batcher, PoolTurn};
        use std::time::Duration;
        let (dir, path) = keys_db("turn");
        // Spawned writes run on the runtime's worker while this thread looks on.
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let write = |writer: &std::sync::Arc<Batcher>, k: &'static str| {
            let w = writer.clone();
            rt.spawn(async move {
                w.submit(move |c| c.execute("INSERT INTO t (k) VALUES (?1)", [k]).map(|_| ()).map_err(super::rusqlite_err)).await
            })
        };
        let written = |k: &str| {
            let c = rusqlite::Connection::open(&path).expect("open");
            c.query_row("SELECT count(*) FROM t WHERE k = ?1", [k], |r| r.get::<_, i64>(0)).expect("count") == 1
        };

        let patient = std::sync::Arc::new(Batcher::start_with(&path, true, Duration::from_secs(600)).expect("writer"));
        let turn = PoolTurn::new(&patient.pool_waiting);
        let held = write(&patient, "a");
        std::thread::sleep(Duration::from_millis(300));
        assert!(!written("a") && !held.is_finished(), "no batch while a pool writer waits");
        drop(turn);
        rt.block_on(held).expect("join").expect("written once the pool writer has had its turn");
        assert!(written("a"));

        let bounded = std::sync::Arc::new(Batcher::start_with(&path, true, Duration::from_millis(20)).expect("writer"));
        let _stuck = PoolTurn::new(&bounded.pool_waiting);
        rt.block_on(write(&bounded, "b")).expect("join").expect("written after the bound, the turn still held");
        assert!(written("b"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Erasure finds the log events naming an identifier through `logs_user_name`, which is partial
    /// (events naming nobody are left out of it): the statement must say what the index's predicate says.
    /// An in-memory database with every migration applied.
    fn migrated() -> rusqlite::Connection {
        let c = rusqlite::Connection::open_in_memory().expect("open");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let mut files: Vec<_> = std::fs::read_dir(&dir).expect("migrations").map(|e| e.expect("entry").path()).collect();
        files.sort();
        for f in files {
            c.execute_batch(&std::fs::read_to_string(&f).expect("read")).expect("migrate");
        }
        c
    }

    /// The query plan of `sql` (with `$n` placeholders) bound to `params`, a line per step.
    fn plan(c: &rusqlite::Connection, sql: &str, params: &[&str]) -> Vec<String> {
        c.prepare(&format!("EXPLAIN QUERY PLAN {}", super::numbered(sql)))
            .expect("prepare")
            .query_map(rusqlite::params_from_iter(params), |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn erasure_by_name_uses_the_partial_index() {
        let plan = plan(&migrated(), super::ERASE_NAMED_LOGS, &["t", "a@example.com", "{}"]);
        assert!(plan.iter().any(|p| p.contains("USING INDEX logs_user_name")), "{plan:?}");
    }

    /// Without the inline index, a user's events are found through `log_users` and the rowids after
    /// the watermark: no statement that looks for them may scan the log table.
    #[test]
    fn a_users_log_events_are_found_without_a_scan() {
        let c = migrated();
        let read = super::user_logs_sql("log_id, description", 10);
        let mut statements = vec![(read.as_str(), 2)];
        statements.extend(super::PSEUDONYMIZE_LOGS.iter().map(|s| (*s, 4)));
        for (sql, n) in statements {
            let plan = plan(&c, sql, &["t", "auth0|u", "deleted|x", "{}"][..n]);
            assert!(plan.iter().all(|p| !p.starts_with("SCAN logs")), "{sql}: {plan:?}");
            assert!(plan.iter().any(|p| p.contains("log_users")), "{sql}: {plan:?}");
        }
    }

    /// The writer's batch adds exactly the rows after the watermark, then moves it.
    #[test]
    fn indexing_takes_the_rows_after_the_watermark() {
        let c = migrated();
        c.execute_batch(
            "INSERT INTO tenants (id, name, created_at) VALUES ('t', 'acme', 0);
             INSERT INTO logs (tenant_id, log_id, date, type, description, user_id, details)
                VALUES ('t', 'l1', 0, 's', '', 'auth0|a', '{}'), ('t', 'l2', 0, 's', '', NULL, '{}'),
                       ('t', 'l3', 0, 's', '', 'auth0|b', '{}');",
        )
        .expect("rows");
        let entries = |c: &rusqlite::Connection| -> Vec<String> {
            c.prepare("SELECT user_id || '/' || log_id FROM log_users ORDER BY 1")
                .expect("prepare")
                .query_map([], |r| r.get(0))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("rows")
        };
        let mark = |c: &rusqlite::Connection| -> i64 {
            c.query_row("SELECT watermark FROM log_users_mark", [], |r| r.get(0)).expect("mark")
        };
        assert_eq!((entries(&c), mark(&c)), (vec![], 0));
        super::index_logs(&c).expect("index");
        assert_eq!((entries(&c), mark(&c)), (vec!["auth0|a/l1".to_owned(), "auth0|b/l3".to_owned()], 3));
        c.execute_batch("INSERT INTO logs (tenant_id, log_id, date, type, description, user_id, details) VALUES ('t', 'l4', 0, 's', '', 'auth0|a', '{}')")
            .expect("row");
        super::index_logs(&c).expect("index");
        assert_eq!(entries(&c).len(), 3);
        assert_eq!(mark(&c), 4);
    }

    /// A migrated database with the writer's temporary table and a tenant `t`, for the indexing tests.
    fn indexing_db() -> rusqlite::Connection {
        let c = migrated();
        c.execute_batch(super::CREATE_PENDING).expect("temp table");
        c.execute_batch("INSERT INTO tenants (id, name, created_at) VALUES ('t', 'acme', 0)").expect("tenant");
        c
    }

    /// Log rows `from..from + n` of tenant `t`, for the users `auth0|u0` … `auth0|u6` in turn.
    fn add_logs(c: &rusqlite::Connection, from: i64, n: i64) {
        for i in from..from + n {
            c.execute(
                "INSERT INTO logs (tenant_id, log_id, date, type, description, user_id, details) \
                 VALUES ('t', printf('l%06d', ?1), 0, 's', '', printf('auth0|u%d', ?1 % 7), '{}')",
                [i],
            )
            .expect("row");
        }
    }

    /// Entries of `log_users` whose user is `user` (`None`: all).
    fn index_count(c: &rusqlite::Connection, user: Option<&str>) -> i64 {
        c.query_row("SELECT count(*) FROM log_users WHERE ?1 IS NULL OR user_id = ?1", [user], |r| r.get(0)).expect("n")
    }

    /// A batch is written a slice at a time, each in its own transaction; the watermark moves with the
    /// last slice only; a tenant deletion (its epoch) ends a batch half written, watermark unmoved.
    #[test]
    fn the_index_is_written_in_slices() {
        let c = indexing_db();
        let add = add_logs;
        let count = |c: &rusqlite::Connection| index_count(c, None);
        let mark = |c: &rusqlite::Connection| -> (i64, i64) {
            c.query_row("SELECT watermark, epoch FROM log_users_mark", [], |r| Ok((r.get(0)?, r.get(1)?))).expect("mark")
        };
        let n = 2 * super::LOG_INDEX_SLICE + 500;
        add(&c, 0, n);
        let mut b = super::start_index_batch(&c).expect("start").expect("rows to index");
        assert!(!super::index_slice(&c, &mut b).expect("slice"));
        assert_eq!((count(&c), mark(&c)), (super::LOG_INDEX_SLICE, (0, 0)), "one slice, watermark unmoved");
        assert!(!super::index_slice(&c, &mut b).expect("slice"));
        assert!(super::index_slice(&c, &mut b).expect("slice"), "the third slice ends the batch");
        assert_eq!((count(&c), mark(&c)), (n, (n, 0)));
        assert!(super::start_index_batch(&c).expect("start").is_none(), "nothing left");

        // A tenant deletion between two slices ends the batch; the watermark stays where it was.
        add(&c, n, n);
        let mut b = super::start_index_batch(&c).expect("start").expect("rows to index");
        assert!(!super::index_slice(&c, &mut b).expect("slice"));
        c.execute_batch(super::AFTER_TENANT_DELETE.expect("sqlite lowers the watermark")).expect("epoch");
        assert!(super::index_slice(&c, &mut b).expect("slice"), "ended");
        assert_eq!((count(&c), mark(&c)), (n + super::LOG_INDEX_SLICE, (n, 1)));
        let mut b = super::start_index_batch(&c).expect("start").expect("the rest, again");
        while !super::index_slice(&c, &mut b).expect("slice") {}
        assert_eq!((count(&c), mark(&c)), (2 * n, (2 * n, 1)));
    }

    #[test]
    fn placeholders_become_numbered() {
        assert_eq!(
            super::numbered("UPDATE t SET a = $3, b = '$x' WHERE id = $1 AND t = $12"),
            "UPDATE t SET a = ?3, b = '$x' WHERE id = ?1 AND t = ?12"
        );
    }

    /// A user deleted while a batch is half written had their events' `user_id` rewritten and their
    /// entries removed: the later slices must not add entries for the events copied before.
    #[test]
    fn a_slice_after_a_rewrite_adds_no_stale_entry() {
        let c = indexing_db();
        let n = 2 * super::LOG_INDEX_SLICE;
        add_logs(&c, 0, n);
        let mut b = super::start_index_batch(&c).expect("start").expect("rows to index");
        assert!(!super::index_slice(&c, &mut b).expect("slice"));
        let gone = "auth0|u3";
        assert!(index_count(&c, Some(gone)) > 0, "the first slice indexed some of the user's events");
        for sql in super::PSEUDONYMIZE_LOGS {
            c.execute(&super::numbered(sql), ["t", gone, "deleted|x", "{}"]).expect("pseudonym");
        }
        let forget = super::FORGET_LOG_USER.expect("sqlite forgets the user's entries");
        c.execute(&super::numbered(forget), ["t", gone]).expect("forget");
        while !super::index_slice(&c, &mut b).expect("slice") {}
        assert_eq!(index_count(&c, Some(gone)), 0, "no entry names the deleted user again");
        let kept: i64 = c.query_row("SELECT count(*) FROM logs WHERE user_id LIKE 'auth0|%'", [], |r| r.get(0)).expect("n");
        assert_eq!(index_count(&c, None), kept, "every other user's events are indexed");
    }

    /// The index waits for a moment when no write is queued, unless it is [`super::LOG_INDEX_LAG`] behind.
    #[test]
    fn the_index_waits_for_the_writes() {
        let c = indexing_db();
        add_logs(&c, 0, 10);
        let mut ix = super::LogIndexing::new();
        let t0 = ix.last_start;
        let at = |d: std::time::Duration| t0 + d;
        let every = super::LOG_INDEX_EVERY;
        ix.turn(&c, false, at(every));
        assert!(ix.batch.is_none(), "writes are waiting: no batch yet");
        ix.turn(&c, true, at(every));
        assert!(ix.batch.is_some(), "idle and due: the batch begins");
        ix.turn(&c, false, at(every + std::time::Duration::from_millis(1)));
        assert_eq!(index_count(&c, None), 0, "writes are waiting: no slice yet");
        ix.turn(&c, true, at(every + std::time::Duration::from_millis(2)));
        assert_eq!(index_count(&c, None), 10, "idle: the slice is written");
        assert!(ix.batch.is_none());

        add_logs(&c, 10, 10);
        let start = ix.last_start;
        ix.turn(&c, false, start + super::LOG_INDEX_LAG - std::time::Duration::from_millis(1));
        assert!(ix.batch.is_none(), "under the lag, writes go first");
        ix.turn(&c, false, start + super::LOG_INDEX_LAG);
        ix.turn(&c, false, start + 2 * super::LOG_INDEX_LAG);
        assert_eq!(index_count(&c, None), 20, "behind by the lag: written although writes wait");
    }
}
