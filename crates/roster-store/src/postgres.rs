//! PostgreSQL backend: one pool; row locks (`SELECT … FOR UPDATE`) serialize read-modify-write
//! transactions on the same row, so concurrent metadata merges never lose a key.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::{Result, StoreError, StoreOptions};

type Db = sqlx::Postgres;
type DbRow = sqlx::postgres::PgRow;
const BEGIN_WRITE: &str = "BEGIN";
const FOR_UPDATE: &str = " FOR UPDATE";
/// How a relay passes over rows another relay is claiming.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
/// Byte-wise text order, so listings sort the same as on SQLite whatever the server locale.
const TEXT_ORDER: &str = " COLLATE \"C\"";

fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/postgres")
}

// --- A user's log events: PostgreSQL keeps the inline index `logs_user` (it logs a B-tree insert as a
// record, not a page, so the batching SQLite needs buys nothing here).

/// A user's events, newest first (`$1` tenant, `$2` user).
fn user_logs_sql(cols: &str, limit: u32) -> String {
    format!("SELECT {cols} FROM logs WHERE tenant_id = $1 AND user_id = $2 ORDER BY log_id DESC LIMIT {limit}")
}

/// The statement that gives a deleted user's events a pseudonym (`$1` tenant, `$2` user,
/// `$3` pseudonym, `$4` details).
const PSEUDONYMIZE_LOGS: &[&str] =
    &["UPDATE logs SET user_id = $3, user_name = NULL, ip = NULL, user_agent = NULL, details = $4 \
     WHERE tenant_id = $1 AND user_id = $2"];

const FORGET_LOG_USER: Option<&str> = None;

const AFTER_TENANT_DELETE: Option<&str> = None;

include!("sql_common.rs");
include!("sql_mail.rs");
include!("sql_tickets.rs");
include!("sql_attack.rs");
include!("sql_account.rs");

/// A pooled connection idle at least this long is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

pub(crate) async fn connect(opts: &StoreOptions) -> Result<SqlBackend> {
    let conn = PgConnectOptions::from_str(&opts.url).map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
    let pool = PgPoolOptions::new()
        .max_connections(opts.max_connections.max(2))
        .acquire_timeout(opts.acquire_timeout)
        // sqlx pings a connection before every checkout by default: a round trip as long as the
        // query it precedes (and another ping follows every release). A connection in steady use is
        // known to be alive; test only one that sat idle, as pgx does. A connection that died while
        // busy (a server restart) fails its next query with a 503 and is closed on release.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(SqlBackend { read: pool.clone(), write: pool, fast: None })
}

/// Nothing to tell after a commit: every PostgreSQL read is its own transaction on the server.
fn written() {}
fn written_outbox() {}

/// PostgreSQL's driver is async end to end and the server batches concurrent commits itself (its WAL
/// writer flushes many at once): no separate fast path (this type has no values).
pub(crate) enum Fast {}

impl Fast {
    pub(crate) fn close(&self) {
        match *self {}
    }
    pub(crate) fn pool_turn(&self) {
        match *self {}
    }
    pub(crate) fn user(&self, _: &TenantId, _: &UserId) -> Result<Option<Arc<User>>> {
        match *self {}
    }
    pub(crate) fn client(&self, _: &TenantId, _: &ClientId) -> Result<Option<Client>> {
        match *self {}
    }
    pub(crate) fn client_grant(&self, _: &TenantId, _: &ClientId, _: &str) -> Result<Option<ClientGrant>> {
        match *self {}
    }
    pub(crate) fn user_by_login(&self, _: &TenantId, _: &ConnectionId, _: &str) -> Result<Option<(User, Option<String>)>> {
        match *self {}
    }
    pub(crate) async fn update_user(
        &self,
        _: TenantId,
        _: UserId,
        _: UserMutation,
        _: Option<String>,
        _: Effects,
    ) -> Result<Option<User>> {
        match *self {}
    }
    pub(crate) async fn create_user(&self, _: TenantId, _: NewUser, _: Effects) -> Result<()> {
        match *self {}
    }
    pub(crate) async fn charge(&self, _: TenantId, _: crate::model::Charge) -> Result<crate::model::AttackCounter> {
        match *self {}
    }
    pub(crate) async fn append_logs(&self, _: Vec<(TenantId, LogEvent)>) -> Result<()> {
        match *self {}
    }
    pub(crate) async fn index_logs_now(&self) -> Result<()> {
        match *self {}
    }
    pub(crate) async fn append_effects(&self, _: TenantId, _: Effects) -> Result<()> {
        match *self {}
    }
}
