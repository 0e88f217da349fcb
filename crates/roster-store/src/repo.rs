//! The capability traits each backend implements. Private to the crate: outside code reaches them
//! only through `Store` (operator-level) and `TenantStore` (one tenant).

use std::sync::Arc;

use async_trait::async_trait;
use roster_domain::ValidationError;
use roster_domain::log::LogEvent;
use roster_domain::query::{Page, Sort, UserQuery};
use roster_domain::user::{NewUser, User};
use roster_domain::{ClientId, ConnectionId, TenantId, TenantName, UserId};

use crate::Result;
use crate::model::{
    AttackCounter, AuthCode, Charge, ClaimedMail, Client, ClientGrant, Connection, CounterScope, Delivery, Effects,
    EmailProvider, EmailTemplate, Job, LogRecord, NewTenant, OutboxFilter, OutboxRecord, Redeemed, RefreshToken, Rotation,
    Session, SigningKey, Tenant, Ticket, UserList,
};
use roster_domain::Timestamp;
use serde_json::Value;

/// Edits a user in place inside the store's transaction; an `Err` aborts the transaction.
pub type UserMutation = Box<dyn FnOnce(&mut User) -> std::result::Result<(), ValidationError> + Send>;

#[async_trait]
pub(crate) trait Lifecycle: Send + Sync {
    async fn migrate(&self) -> Result<()>;
    async fn ping(&self) -> Result<()>;
    async fn close(&self);
}

#[async_trait]
pub(crate) trait TenantRepo: Send + Sync {
    async fn create_tenant(&self, t: &NewTenant) -> Result<()>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    async fn tenant_by_name(&self, name: &TenantName) -> Result<Option<Tenant>>;
    async fn delete_tenant(&self, name: &TenantName) -> Result<bool>;
    async fn signing_keys(&self, t: &TenantId) -> Result<Vec<SigningKey>>;
}

#[async_trait]
pub(crate) trait ClientRepo: Send + Sync {
    async fn client(&self, t: &TenantId, id: &ClientId) -> Result<Option<Client>>;
    async fn client_grant(&self, t: &TenantId, client: &ClientId, audience: &str) -> Result<Option<ClientGrant>>;
    async fn connection_by_name(&self, t: &TenantId, name: &str) -> Result<Option<Connection>>;
    async fn connection(&self, t: &TenantId, id: &ConnectionId) -> Result<Option<Connection>>;
    async fn list_clients(&self, t: &TenantId) -> Result<Vec<Client>>;
    async fn create_client(&self, t: &TenantId, c: &Client, effects: &Effects) -> Result<()>;
    /// Replace a client's settings (the id and the secret hash stay unless `c` changes the hash).
    async fn update_client(&self, t: &TenantId, c: &Client, effects: &Effects) -> Result<bool>;
    async fn delete_client(&self, t: &TenantId, id: &ClientId, effects: &Effects) -> Result<bool>;
    async fn list_connections(&self, t: &TenantId) -> Result<Vec<Connection>>;
    async fn create_connection(&self, t: &TenantId, c: &Connection, effects: &Effects) -> Result<()>;
    async fn update_connection(&self, t: &TenantId, c: &Connection, effects: &Effects) -> Result<bool>;
    async fn delete_connection(&self, t: &TenantId, id: &ConnectionId, effects: &Effects) -> Result<bool>;
}

#[async_trait]
pub(crate) trait UserRepo: Send + Sync {
    async fn create_user(&self, t: &TenantId, new: &NewUser, effects: &Effects) -> Result<()>;
    async fn user(&self, t: &TenantId, id: &UserId) -> Result<Option<Arc<User>>>;
    async fn update_user(
        &self,
        t: &TenantId,
        id: &UserId,
        mutate: UserMutation,
        new_password_hash: Option<String>,
        effects: &Effects,
    ) -> Result<Option<User>>;
    async fn delete_user(&self, t: &TenantId, id: &UserId, effects: &Effects) -> Result<bool>;
    /// The user of a connection whose email (lowercased) or username matches, and its password hash.
    async fn user_by_login(
        &self,
        t: &TenantId,
        connection: &ConnectionId,
        identifier: &str,
    ) -> Result<Option<(User, Option<String>)>>;
    async fn list_users(&self, t: &TenantId, q: &UserQuery, sort: Sort, page: Page, with_total: bool) -> Result<UserList>;
    async fn users_by_email(&self, t: &TenantId, email: &str) -> Result<Vec<User>>;
    async fn password_hash(&self, t: &TenantId, id: &UserId) -> Result<Option<String>>;
}

#[async_trait]
pub(crate) trait LogRepo: Send + Sync {
    async fn append_logs(&self, events: &[(TenantId, LogEvent)]) -> Result<()>;
    /// Write effects that accompany no row change (e.g. the mail and log of a refused duplicate signup).
    async fn append_effects(&self, t: &TenantId, effects: &Effects) -> Result<()>;
    /// Newest first; only this user's events when `user` is given.
    async fn logs(&self, t: &TenantId, user: Option<&UserId>, limit: u32) -> Result<Vec<LogRecord>>;
    /// Bring a by-user log index that is written behind (SQLite) up to date now.
    async fn index_logs_now(&self) -> Result<()>;
}

#[async_trait]
pub(crate) trait SessionRepo: Send + Sync {
    async fn create_session(&self, t: &TenantId, s: &Session) -> Result<()>;
    /// A live session (not revoked, not expired at `now`), its last-seen time bumped.
    async fn session(&self, t: &TenantId, id_hash: &str, now: Timestamp) -> Result<Option<Session>>;
    async fn revoke_session(&self, t: &TenantId, id_hash: &str, effects: &Effects) -> Result<bool>;
    async fn create_code(&self, t: &TenantId, c: &AuthCode) -> Result<()>;
    /// Single use: marks the code used in one conditional UPDATE; `None` if unknown, used or expired.
    async fn consume_code(&self, t: &TenantId, id_hash: &str, now: Timestamp) -> Result<Option<AuthCode>>;
    async fn create_refresh(&self, t: &TenantId, r: &RefreshToken) -> Result<()>;
    async fn refresh_token(&self, t: &TenantId, id_hash: &str) -> Result<Option<RefreshToken>>;
    /// Rotate `old_hash` into `new` atomically (see [`Rotation`]).
    async fn rotate_refresh(&self, t: &TenantId, old_hash: &str, new: &RefreshToken, now: Timestamp) -> Result<Rotation>;
    /// Revoke every session and refresh token of a user (except the session `keep`, if given).
    async fn revoke_user_grants(&self, t: &TenantId, id: &UserId, keep: Option<&str>, now: Timestamp) -> Result<()>;
}

/// The mail relay's queue (across tenants) and each tenant's templates and provider.
#[async_trait]
pub(crate) trait MailRepo: Send + Sync {
    /// Lease up to `limit` due rows to `owner` until `now + lease_ms`, counting an attempt on each. Rows
    /// leased to another relay whose lease has not ended are skipped, so two relays never hold one row.
    async fn claim_outbox(&self, owner: &str, now: Timestamp, lease_ms: i64, limit: u32) -> Result<Vec<ClaimedMail>>;
    /// Record how an attempt ended; a no-op (false) when `owner` no longer holds the lease.
    async fn finish_outbox(&self, t: &TenantId, id: &str, owner: &str, outcome: &Delivery, now: Timestamp) -> Result<bool>;
    /// Give back every lease `owner` holds on rows it did not attempt (at shutdown).
    async fn release_outbox(&self, owner: &str, ids: &[(TenantId, String)]) -> Result<u64>;
    async fn list_outbox(&self, t: &TenantId, filter: &OutboxFilter, limit: u32) -> Result<Vec<OutboxRecord>>;
    async fn outbox_row(&self, t: &TenantId, id: &str) -> Result<Option<OutboxRecord>>;
    /// Put a dead or suppressed row back in the queue with a fresh attempt count; the row as it now is.
    async fn retry_outbox(&self, t: &TenantId, id: &str, now: Timestamp, effects: &Effects) -> Result<Option<OutboxRecord>>;
    async fn email_template(&self, t: &TenantId, name: &str) -> Result<Option<EmailTemplate>>;
    /// Insert (`create`: a duplicate is a conflict) or replace a template.
    async fn put_email_template(&self, t: &TenantId, tpl: &EmailTemplate, create: bool, effects: &Effects) -> Result<()>;
    async fn email_provider(&self, t: &TenantId) -> Result<Option<EmailProvider>>;
    /// Insert (`create`: an existing provider is a conflict) or replace the provider.
    async fn put_email_provider(&self, t: &TenantId, p: &EmailProvider, create: bool, effects: &Effects) -> Result<()>;
    async fn delete_email_provider(&self, t: &TenantId, effects: &Effects) -> Result<bool>;
}

/// One-time tickets and Management API jobs.
#[async_trait]
pub(crate) trait TicketRepo: Send + Sync {
    async fn ticket(&self, t: &TenantId, id_hash: &str) -> Result<Option<Ticket>>;
    /// Use the ticket (unused, unexpired, of `kind`) and apply the user change it authorizes, in one
    /// transaction.
    #[allow(clippy::too_many_arguments)]
    async fn redeem_ticket(
        &self,
        t: &TenantId,
        id_hash: &str,
        kind: &str,
        now: Timestamp,
        mutate: UserMutation,
        new_password_hash: Option<String>,
        effects: &Effects,
    ) -> Result<Redeemed>;
    async fn create_job(&self, t: &TenantId, job: &Job, effects: &Effects) -> Result<()>;
    async fn job(&self, t: &TenantId, id: &str) -> Result<Option<Job>>;
    /// The newest `limit` remembered password hashes of a user, newest first.
    async fn password_history(&self, t: &TenantId, user: &UserId, limit: u32) -> Result<Vec<String>>;
}

/// Attack-protection counters (shared by every node) and settings.
#[async_trait]
pub(crate) trait AttackRepo: Send + Sync {
    async fn counter(&self, t: &TenantId, kind: &str, key: &str) -> Result<Option<AttackCounter>>;
    /// Count one event atomically; the counter as it now is.
    async fn charge(&self, t: &TenantId, c: &Charge) -> Result<AttackCounter>;
    /// Blocked counters of a scope whose window started after `since`.
    async fn blocked_counters(&self, t: &TenantId, scope: &CounterScope, since: Timestamp) -> Result<Vec<AttackCounter>>;
    async fn clear_counters(&self, t: &TenantId, scope: &CounterScope, effects: &Effects) -> Result<u64>;
    async fn attack_settings(&self, t: &TenantId, kind: &str) -> Result<Option<Value>>;
    async fn put_attack_settings(&self, t: &TenantId, kind: &str, settings: &Value, effects: &Effects) -> Result<()>;
}

/// What the self-service account needs beyond the other capabilities.
#[async_trait]
pub(crate) trait AccountRepo: Send + Sync {
    /// The tenant's settings object (`{}` when none were ever written).
    async fn tenant_settings(&self, t: &TenantId) -> Result<Value>;
    async fn put_tenant_settings(&self, t: &TenantId, settings: &Value, effects: &Effects) -> Result<()>;
    /// The user's live sessions, most recently seen first.
    async fn user_sessions(&self, t: &TenantId, user: &UserId, now: Timestamp) -> Result<Vec<Session>>;
    /// Mark a live session as authenticated again at `now` (the user re-entered their password).
    async fn reauthenticate_session(&self, t: &TenantId, id_hash: &str, now: Timestamp, effects: &Effects) -> Result<bool>;
    /// The newest unused, unexpired ticket of `kind` of the user.
    async fn live_ticket(&self, t: &TenantId, user: &UserId, kind: &str, now: Timestamp) -> Result<Option<Ticket>>;
}

pub(crate) trait Backend:
    Lifecycle + TenantRepo + ClientRepo + UserRepo + LogRepo + SessionRepo + MailRepo + TicketRepo + AttackRepo + AccountRepo
{
}
impl<T> Backend for T where
    T: Lifecycle + TenantRepo + ClientRepo + UserRepo + LogRepo + SessionRepo + MailRepo + TicketRepo + AttackRepo + AccountRepo
{
}
