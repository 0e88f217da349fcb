//! Records the store reads and writes besides users (which live in `roster_domain::user`).

use roster_domain::user::User;
use roster_domain::{ClientId, ConnectionId, TenantId, TenantName, Timestamp, UserId};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: TenantName,
    pub created_at: Timestamp,
}

/// A signing key. `private_key` is PKCS#8 DER; `public_jwk` the JWK published at `/.well-known/jwks.json`.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    pub private_key: Vec<u8>,
    pub public_jwk: Value,
    /// `current` signs; `next` and `previous` are published for verification only.
    pub status: String,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).field("status", &self.status).finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub client_id: ClientId,
    pub name: String,
    /// Hex SHA-256 of the client secret (a random 256-bit value, so a fast hash is right).
    pub secret_hash: String,
    /// `non_interactive` (M2M), `regular_web`, `spa`, `native`.
    pub app_type: String,
    pub is_management: bool,
    pub grant_types: Vec<String>,
    pub callbacks: Vec<String>,
    pub allowed_logout_urls: Vec<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientGrant {
    pub id: String,
    pub client_id: ClientId,
    pub audience: String,
    pub scope: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: ConnectionId,
    pub name: String,
    pub strategy: String,
    pub options: Value,
    pub created_at: Timestamp,
}

/// Everything a new tenant starts with, created in one transaction.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub tenant: Tenant,
    pub keys: Vec<SigningKey>,
    pub connections: Vec<Connection>,
    pub clients: Vec<Client>,
    pub grants: Vec<ClientGrant>,
}

/// One page of users, and the total number of matches when asked for.
#[derive(Debug, Clone)]
pub struct UserList {
    pub users: Vec<User>,
    pub total: Option<u64>,
}

/// A stored log event.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub log_id: String,
    pub date: Timestamp,
    /// Auth0 event code (`sapi`, `sdu`, `seccft` ...).
    pub kind: String,
    pub description: String,
    pub client_id: Option<String>,
    pub user_id: Option<UserId>,
    pub details: Value,
}
