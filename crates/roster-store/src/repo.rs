//! The capability traits each backend implements. Private to the crate: outside code reaches them
//! only through `Store` (operator-level) and `TenantStore` (one tenant).

use async_trait::async_trait;
use roster_domain::ValidationError;
use roster_domain::log::LogEvent;
use roster_domain::query::{Page, Sort, UserQuery};
use roster_domain::user::{NewUser, User};
use roster_domain::{ClientId, ConnectionId, TenantId, TenantName, UserId};

use crate::Result;
use crate::model::{Client, ClientGrant, Connection, LogRecord, NewTenant, SigningKey, Tenant, UserList};

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
}

#[async_trait]
pub(crate) trait UserRepo: Send + Sync {
    async fn create_user(&self, t: &TenantId, new: &NewUser, log: &LogEvent) -> Result<()>;
    async fn user(&self, t: &TenantId, id: &UserId) -> Result<Option<User>>;
    async fn update_user(
        &self,
        t: &TenantId,
        id: &UserId,
        mutate: UserMutation,
        new_password_hash: Option<String>,
        log: &LogEvent,
    ) -> Result<Option<User>>;
    async fn delete_user(&self, t: &TenantId, id: &UserId, log: &LogEvent) -> Result<bool>;
    async fn list_users(&self, t: &TenantId, q: &UserQuery, sort: Sort, page: Page, with_total: bool) -> Result<UserList>;
    async fn users_by_email(&self, t: &TenantId, email: &str) -> Result<Vec<User>>;
    async fn password_hash(&self, t: &TenantId, id: &UserId) -> Result<Option<String>>;
}

#[async_trait]
pub(crate) trait LogRepo: Send + Sync {
    async fn append_logs(&self, events: &[(TenantId, LogEvent)]) -> Result<()>;
    /// Newest first; only this user's events when `user` is given.
    async fn logs(&self, t: &TenantId, user: Option<&UserId>, limit: u32) -> Result<Vec<LogRecord>>;
}

pub(crate) trait Backend: Lifecycle + TenantRepo + ClientRepo + UserRepo + LogRepo {}
impl<T: Lifecycle + TenantRepo + ClientRepo + UserRepo + LogRepo> Backend for T {}
