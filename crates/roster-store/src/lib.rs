//! Storage for Roster: capability traits, a tenant-scoped handle, and one implementation per backend.
//!
//! Isolation is a type: user, client and log operations are reachable only through a [`TenantStore`],
//! which carries the tenant id and passes it to every query, so no query can forget the tenant. The
//! backend traits are private to this crate. Nothing here returns an HTTP type; constraint violations
//! are mapped to [`StoreError`] variants in one place per backend (`sql_common.rs`).
//!
//! The SQL is written once (`sql_common.rs`, with `$n` placeholders both SQLite and PostgreSQL accept)
//! and compiled twice, against `sqlx::Sqlite` and `sqlx::Postgres`; each backend has its own migrations.

mod decode;
mod error;
mod model;
mod params;
mod postgres;
mod repo;
mod sqlite;
mod user_cache;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use roster_domain::log::LogEvent;
use roster_domain::query::{Page, Sort, UserQuery};
use roster_domain::user::{NewUser, User};
use roster_domain::{ClientId, ConnectionId, TenantId, TenantName, Timestamp, UserId};

pub use error::{ConflictKind, StoreError};
pub use model::{
    AttackCounter, AuthCode, Charge, ClaimedMail, Client, ClientGrant, Connection, CounterScope, Delivery, Effects,
    EmailProvider, EmailTemplate, Job, LogRecord, NewTenant, OutboxFilter, OutboxMessage, OutboxRecord, Redeemed, RefreshToken,
    Revocation, Rotation, Session, SigningKey, Tenant, Ticket, UserList, ticket_kind,
};
use repo::Backend;
pub use repo::UserMutation;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How to open the database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path/to/roster.db` or `postgres://...`.
    pub url: String,
    /// SQLite `synchronous=FULL` (every commit reaches the disk) unless explicitly relaxed to NORMAL.
    pub sqlite_synchronous_full: bool,
    /// Read connections (SQLite; writes use one connection) or total connections (PostgreSQL).
    pub max_connections: u32,
    /// How long to wait for a pooled connection before failing.
    pub acquire_timeout: Duration,
    /// Users a node keeps in memory after reading them by id (SQLite only; 0 = none). See
    /// `user_cache.rs` for why every copy served is current.
    pub user_cache_capacity: usize,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            sqlite_synchronous_full: true,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            user_cache_capacity: 10_000,
        }
    }
}

/// The whole database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    kind: &'static str,
    /// Users this node keeps in memory after reading them by id (0: none; see [`TenantStore::user`]).
    user_cache_capacity: usize,
    /// Woken after a commit that queued mail, so this node's relay picks it up at once instead of at
    /// its next poll (other nodes find it by polling).
    mail_queued: Arc<Notify>,
}

impl Store {
    /// Connect (creating the SQLite file and its folder if needed). Does not run migrations.
    pub async fn connect(opts: &StoreOptions) -> Result<Self> {
        let url = opts.url.as_str();
        if url.starts_with("sqlite:") {
            let cached = opts.user_cache_capacity;
            Ok(Self::with(Arc::new(sqlite::connect(opts).await?), "sqlite", cached))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::with(Arc::new(postgres::connect(opts).await?), "postgres", 0))
        } else {
            Err(StoreError::Config("the database URL must start with sqlite:// or postgres://".into()))
        }
    }

    fn with(backend: Arc<dyn Backend>, kind: &'static str, user_cache_capacity: usize) -> Self {
        Self { backend, kind, user_cache_capacity, mail_queued: Arc::new(Notify::new()) }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// How many users this node keeps in memory after reading them by id: while a user is kept and
    /// unchanged, [`TenantStore::user`] hands out the same `Arc` (0 on PostgreSQL: every read is new).
    pub fn user_cache_capacity(&self) -> usize {
        self.user_cache_capacity
    }

    /// Apply pending migrations (idempotent; safe to run from several nodes at once).
    pub async fn migrate(&self) -> Result<()> {
        self.backend.migrate().await
    }

    /// A cheap round trip to the database (readiness).
    pub async fn ping(&self) -> Result<()> {
        self.backend.ping().await
    }

    /// Close every pooled connection (at shutdown).
    pub async fn close(&self) {
        self.backend.close().await;
    }

    // ---- tenants (operator level) ----

    /// Create a tenant and everything it starts with, in one transaction.
    pub async fn create_tenant(&self, t: &NewTenant) -> Result<()> {
        self.backend.create_tenant(t).await
    }
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.backend.list_tenants().await
    }
    pub async fn tenant_by_name(&self, name: &TenantName) -> Result<Option<Tenant>> {
        self.backend.tenant_by_name(name).await
    }
    /// Delete a tenant and all its data. Returns false when it did not exist.
    pub async fn delete_tenant(&self, name: &TenantName) -> Result<bool> {
        self.backend.delete_tenant(name).await
    }

    /// Bring the by-user log index up to date now. On SQLite it is written behind the log table, about
    /// once a second when the writer has a moment and at least every few seconds, and reads never
    /// depend on it being current; this is for tests and tools. A no-op on PostgreSQL.
    pub async fn index_logs_now(&self) -> Result<()> {
        self.backend.index_logs_now().await
    }

    /// Append events that describe no state change (token grants, failed attempts), possibly for
    /// several tenants at once, in one transaction. Callers batch them (group commit).
    pub async fn append_logs(&self, events: &[(TenantId, LogEvent)]) -> Result<()> {
        self.backend.append_logs(events).await
    }

    /// The handle through which one tenant's data is reached.
    pub fn tenant(&self, id: TenantId) -> TenantStore {
        TenantStore { backend: self.backend.clone(), tenant: id, mail_queued: self.mail_queued.clone() }
    }

    // ---- the mail relay's queue (all tenants) ----

    /// Notified after this node commits a change that queued mail.
    pub fn mail_queued(&self) -> Arc<Notify> {
        self.mail_queued.clone()
    }
    /// Lease up to `limit` due outbox rows to `owner` for `lease`, counting one attempt on each.
    pub async fn claim_outbox(&self, owner: &str, now: Timestamp, lease: Duration, limit: u32) -> Result<Vec<ClaimedMail>> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4);
        self.backend.claim_outbox(owner, now, lease_ms, limit).await
    }
    /// Record the outcome of an attempt; false when `owner` had lost the lease (nothing written).
    pub async fn finish_outbox(&self, t: &TenantId, id: &str, owner: &str, outcome: &Delivery, now: Timestamp) -> Result<bool> {
        self.backend.finish_outbox(t, id, owner, outcome, now).await
    }
    /// Give back leases on rows that were claimed but not attempted.
    pub async fn release_outbox(&self, owner: &str, ids: &[(TenantId, String)]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.backend.release_outbox(owner, ids).await
    }
}

/// One tenant's view of the database: every method is confined to that tenant.
#[derive(Clone)]
pub struct TenantStore {
    backend: Arc<dyn Backend>,
    tenant: TenantId,
    mail_queued: Arc<Notify>,
}

impl TenantStore {
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant
    }

    /// After a commit: wake this node's relay when the change queued mail.
    fn queued<T>(&self, r: Result<T>, effects: &Effects) -> Result<T> {
        if r.is_ok() && !effects.outbox.is_empty() {
            self.mail_queued.notify_one();
        }
        r
    }

    // ---- keys, clients, connections ----

    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        self.backend.signing_keys(&self.tenant).await
    }
    pub async fn client(&self, id: &ClientId) -> Result<Option<Client>> {
        self.backend.client(&self.tenant, id).await
    }
    pub async fn client_grant(&self, client: &ClientId, audience: &str) -> Result<Option<ClientGrant>> {
        self.backend.client_grant(&self.tenant, client, audience).await
    }
    pub async fn connection_by_name(&self, name: &str) -> Result<Option<Connection>> {
        self.backend.connection_by_name(&self.tenant, name).await
    }
    pub async fn connection(&self, id: &ConnectionId) -> Result<Option<Connection>> {
        self.backend.connection(&self.tenant, id).await
    }

    // ---- users ----

    /// Insert a user (and its password hash) with its log event. Duplicate email, username or id →
    /// `StoreError::Conflict`.
    pub async fn create_user(&self, new: &NewUser, effects: impl Into<Effects>) -> Result<()> {
        let effects = effects.into();
        self.queued(self.backend.create_user(&self.tenant, new, &effects).await, &effects)
    }
    /// A user by id. Shared: the SQLite backend may answer from its node cache of users.
    pub async fn user(&self, id: &UserId) -> Result<Option<Arc<User>>> {
        self.backend.user(&self.tenant, id).await
    }
    /// Read-modify-write of one user under a row lock: `mutate` sees the current row and edits it; the
    /// result, the optional new password hash and the log event commit together. Concurrent updates are
    /// serialized, so none loses another's metadata keys. `Ok(None)` when the user does not exist.
    pub async fn update_user(
        &self,
        id: &UserId,
        mutate: UserMutation,
        new_password_hash: Option<String>,
        effects: impl Into<Effects>,
    ) -> Result<Option<User>> {
        let effects = effects.into();
        self.queued(self.backend.update_user(&self.tenant, id, mutate, new_password_hash, &effects).await, &effects)
    }
    /// Delete a user and everything attached to it (credentials, sessions, refresh tokens, codes),
    /// with its log event. False when it did not exist.
    pub async fn delete_user(&self, id: &UserId, effects: impl Into<Effects>) -> Result<bool> {
        let effects = effects.into();
        self.queued(self.backend.delete_user(&self.tenant, id, &effects).await, &effects)
    }
    /// Find a user of a connection by email (case-insensitive) or username, with its password hash.
    pub async fn user_by_login(&self, connection: &ConnectionId, identifier: &str) -> Result<Option<(User, Option<String>)>> {
        self.backend.user_by_login(&self.tenant, connection, identifier).await
    }
    /// A user's mail, oldest first.
    pub async fn outbox_for_user(&self, id: &UserId) -> Result<Vec<OutboxRecord>> {
        let filter = OutboxFilter { user: Some(id.clone()), status: None };
        self.backend.list_outbox(&self.tenant, &filter, 1000).await
    }

    // ---- clients and connections (administration) ----

    pub async fn list_clients(&self) -> Result<Vec<Client>> {
        self.backend.list_clients(&self.tenant).await
    }
    pub async fn create_client(&self, c: &Client, effects: impl Into<Effects>) -> Result<()> {
        self.backend.create_client(&self.tenant, c, &effects.into()).await
    }
    pub async fn update_client(&self, c: &Client, effects: impl Into<Effects>) -> Result<bool> {
        self.backend.update_client(&self.tenant, c, &effects.into()).await
    }
    pub async fn delete_client(&self, id: &ClientId, effects: impl Into<Effects>) -> Result<bool> {
        self.backend.delete_client(&self.tenant, id, &effects.into()).await
    }
    pub async fn list_connections(&self) -> Result<Vec<Connection>> {
        self.backend.list_connections(&self.tenant).await
    }
    pub async fn create_connection(&self, c: &Connection, effects: impl Into<Effects>) -> Result<()> {
        self.backend.create_connection(&self.tenant, c, &effects.into()).await
    }
    pub async fn update_connection(&self, c: &Connection, effects: impl Into<Effects>) -> Result<bool> {
        self.backend.update_connection(&self.tenant, c, &effects.into()).await
    }
    pub async fn delete_connection(&self, id: &ConnectionId, effects: impl Into<Effects>) -> Result<bool> {
        self.backend.delete_connection(&self.tenant, id, &effects.into()).await
    }

    // ---- sessions, codes, refresh tokens ----

    pub async fn create_session(&self, s: &Session) -> Result<()> {
        self.backend.create_session(&self.tenant, s).await
    }
    pub async fn session(&self, id_hash: &str, now: Timestamp) -> Result<Option<Session>> {
        self.backend.session(&self.tenant, id_hash, now).await
    }
    pub async fn revoke_session(&self, id_hash: &str, effects: impl Into<Effects>) -> Result<bool> {
        self.backend.revoke_session(&self.tenant, id_hash, &effects.into()).await
    }
    pub async fn create_code(&self, c: &AuthCode) -> Result<()> {
        self.backend.create_code(&self.tenant, c).await
    }
    pub async fn consume_code(&self, id_hash: &str, now: Timestamp) -> Result<Option<AuthCode>> {
        self.backend.consume_code(&self.tenant, id_hash, now).await
    }
    pub async fn create_refresh(&self, r: &RefreshToken) -> Result<()> {
        self.backend.create_refresh(&self.tenant, r).await
    }
    pub async fn refresh_token(&self, id_hash: &str) -> Result<Option<RefreshToken>> {
        self.backend.refresh_token(&self.tenant, id_hash).await
    }
    pub async fn rotate_refresh(&self, old_hash: &str, new: &RefreshToken, now: Timestamp) -> Result<Rotation> {
        self.backend.rotate_refresh(&self.tenant, old_hash, new, now).await
    }
    pub async fn revoke_user_grants(&self, id: &UserId, keep_session: Option<&str>, now: Timestamp) -> Result<()> {
        self.backend.revoke_user_grants(&self.tenant, id, keep_session, now).await
    }
    pub async fn list_users(&self, q: &UserQuery, sort: Sort, page: Page, with_total: bool) -> Result<UserList> {
        self.backend.list_users(&self.tenant, q, sort, page, with_total).await
    }
    /// Exact, case-sensitive match on the stored address.
    pub async fn users_by_email(&self, email: &str) -> Result<Vec<User>> {
        self.backend.users_by_email(&self.tenant, email).await
    }
    pub async fn password_hash(&self, id: &UserId) -> Result<Option<String>> {
        self.backend.password_hash(&self.tenant, id).await
    }

    /// Log events, newest first (optionally one user's).
    pub async fn logs(&self, user: Option<&UserId>, limit: u32) -> Result<Vec<LogRecord>> {
        self.backend.logs(&self.tenant, user, limit).await
    }

    /// Write logs and outbox rows that accompany no other change, in one transaction.
    pub async fn append_effects(&self, effects: impl Into<Effects>) -> Result<()> {
        let effects = effects.into();
        self.queued(self.backend.append_effects(&self.tenant, &effects).await, &effects)
    }

    // ---- tickets and jobs ----

    /// A ticket by the SHA-256 of its token, whatever its state (to tell "used" from "unknown").
    pub async fn ticket(&self, id_hash: &str) -> Result<Option<Ticket>> {
        self.backend.ticket(&self.tenant, id_hash).await
    }
    /// Redeem a ticket and apply the user change it authorizes (`mutate`, an optional new password
    /// hash, `effects`) in one transaction; `Redeemed::Invalid` changes nothing.
    pub async fn redeem_ticket(
        &self,
        id_hash: &str,
        kind: &str,
        now: Timestamp,
        mutate: UserMutation,
        new_password_hash: Option<String>,
        effects: impl Into<Effects>,
    ) -> Result<Redeemed> {
        let effects = effects.into();
        let r = self.backend.redeem_ticket(&self.tenant, id_hash, kind, now, mutate, new_password_hash, &effects).await;
        if matches!(r, Ok(Redeemed::Done { .. })) && !effects.outbox.is_empty() {
            self.mail_queued.notify_one();
        }
        r
    }
    pub async fn create_job(&self, job: &Job, effects: impl Into<Effects>) -> Result<()> {
        let effects = effects.into();
        self.queued(self.backend.create_job(&self.tenant, job, &effects).await, &effects)
    }
    pub async fn job(&self, id: &str) -> Result<Option<Job>> {
        self.backend.job(&self.tenant, id).await
    }
    /// The newest `limit` password hashes the user set (see [`Effects::remember_password`]).
    pub async fn password_history(&self, user: &UserId, limit: u32) -> Result<Vec<String>> {
        self.backend.password_history(&self.tenant, user, limit).await
    }

    // ---- attack protection ----

    pub async fn counter(&self, kind: &str, key: &str) -> Result<Option<AttackCounter>> {
        self.backend.counter(&self.tenant, kind, key).await
    }
    /// Count one event atomically (every node shares the count); the counter as it now is.
    pub async fn charge(&self, c: &Charge) -> Result<AttackCounter> {
        self.backend.charge(&self.tenant, c).await
    }
    /// Blocked counters of `scope` whose window started after `since`.
    pub async fn blocked_counters(&self, scope: &CounterScope, since: Timestamp) -> Result<Vec<AttackCounter>> {
        self.backend.blocked_counters(&self.tenant, scope, since).await
    }
    /// Delete the counters of `scope` (lifting their blocks); how many there were.
    pub async fn clear_counters(&self, scope: &CounterScope, effects: impl Into<Effects>) -> Result<u64> {
        self.backend.clear_counters(&self.tenant, scope, &effects.into()).await
    }
    pub async fn attack_settings(&self, kind: &str) -> Result<Option<serde_json::Value>> {
        self.backend.attack_settings(&self.tenant, kind).await
    }
    pub async fn put_attack_settings(&self, kind: &str, settings: &serde_json::Value, effects: impl Into<Effects>) -> Result<()> {
        self.backend.put_attack_settings(&self.tenant, kind, settings, &effects.into()).await
    }

    // ---- the self-service account ----

    /// The tenant's settings object (`{}` when none were ever written).
    pub async fn tenant_settings(&self) -> Result<serde_json::Value> {
        self.backend.tenant_settings(&self.tenant).await
    }
    pub async fn put_tenant_settings(&self, settings: &serde_json::Value, effects: impl Into<Effects>) -> Result<()> {
        let effects = effects.into();
        self.queued(self.backend.put_tenant_settings(&self.tenant, settings, &effects).await, &effects)
    }
    /// The user's live sessions, most recently seen first.
    pub async fn user_sessions(&self, user: &UserId, now: Timestamp) -> Result<Vec<Session>> {
        self.backend.user_sessions(&self.tenant, user, now).await
    }
    /// The user proved again who they are in this (live) session; false when it is not live.
    pub async fn reauthenticate_session(&self, id_hash: &str, now: Timestamp, effects: impl Into<Effects>) -> Result<bool> {
        self.backend.reauthenticate_session(&self.tenant, id_hash, now, &effects.into()).await
    }
    /// The newest unused, unexpired ticket of `kind` of the user (e.g. a pending email change).
    pub async fn live_ticket(&self, user: &UserId, kind: &str, now: Timestamp) -> Result<Option<Ticket>> {
        self.backend.live_ticket(&self.tenant, user, kind, now).await
    }

    // ---- mail: outbox administration, templates, provider ----

    /// Outbox rows, oldest first, at most `limit`.
    pub async fn list_outbox(&self, filter: &OutboxFilter, limit: u32) -> Result<Vec<OutboxRecord>> {
        self.backend.list_outbox(&self.tenant, filter, limit).await
    }
    pub async fn outbox_row(&self, id: &str) -> Result<Option<OutboxRecord>> {
        self.backend.outbox_row(&self.tenant, id).await
    }
    /// Queue a dead or suppressed row again; the row as the retry left it, or `None` when there is no
    /// such row in that state.
    pub async fn retry_outbox(&self, id: &str, now: Timestamp, effects: impl Into<Effects>) -> Result<Option<OutboxRecord>> {
        let r = self.backend.retry_outbox(&self.tenant, id, now, &effects.into()).await;
        if matches!(r, Ok(Some(_))) {
            self.mail_queued.notify_one();
        }
        r
    }
    pub async fn email_template(&self, name: &str) -> Result<Option<EmailTemplate>> {
        self.backend.email_template(&self.tenant, name).await
    }
    /// `create`: insert, a duplicate name is `Conflict`; otherwise insert or replace.
    pub async fn put_email_template(&self, tpl: &EmailTemplate, create: bool, effects: impl Into<Effects>) -> Result<()> {
        self.backend.put_email_template(&self.tenant, tpl, create, &effects.into()).await
    }
    pub async fn email_provider(&self) -> Result<Option<EmailProvider>> {
        self.backend.email_provider(&self.tenant).await
    }
    /// `create`: insert, an existing provider is `Conflict`; otherwise insert or replace.
    pub async fn put_email_provider(&self, p: &EmailProvider, create: bool, effects: impl Into<Effects>) -> Result<()> {
        self.backend.put_email_provider(&self.tenant, p, create, &effects.into()).await
    }
    pub async fn delete_email_provider(&self, effects: impl Into<Effects>) -> Result<bool> {
        self.backend.delete_email_provider(&self.tenant, &effects.into()).await
    }

    /// Append one standalone event (see [`Store::append_logs`]).
    pub async fn append_log(&self, event: LogEvent) -> Result<()> {
        self.backend.append_logs(&[(self.tenant.clone(), event)]).await
    }
}
