//! Records the store reads and writes besides users (which live in `roster_domain::user`).

use roster_domain::log::LogEvent;
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
    /// `client_secret_post`, `client_secret_basic` or `none` (public clients: SPA, native).
    pub token_endpoint_auth_method: String,
    pub is_first_party: bool,
    pub description: String,
    pub created_at: Timestamp,
    /// Auth0's "Trust Token Endpoint IP Header": this (confidential) client may send the end user's
    /// address in `auth0-forwarded-for`.
    pub token_endpoint_ip_header_trusted: bool,
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
    pub user_name: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub connection: Option<String>,
    pub details: Value,
}

/// A mail to send, written in the same transaction as the change that causes it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: String,
    pub user_id: Option<UserId>,
    /// Template name (`verify_email`, `duplicate_signup`, ...).
    pub template: String,
    pub recipient: String,
    /// Template variables (never a password; one-time links are added by the relay from tickets).
    pub payload: Value,
    pub created_at: Timestamp,
}

impl OutboxMessage {
    pub fn new(template: &str, recipient: &str, user_id: Option<UserId>, payload: Value) -> Self {
        Self {
            id: format!("msg_{}", roster_domain::secret::random_alphanumeric(20)),
            user_id,
            template: template.to_owned(),
            recipient: recipient.to_owned(),
            payload,
            created_at: Timestamp::now(),
        }
    }
}

/// An outbox row as stored, with its delivery state.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    pub message: OutboxMessage,
    /// `pending`, `delivered`, `dead` (gave up; retried only on demand) or `suppressed` (its template
    /// is disabled).
    pub status: String,
    pub attempts: i64,
    /// Why the last attempt failed, as the relay wrote it (never a credential).
    pub last_error: Option<String>,
    pub next_attempt_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// Which outbox rows an administrator lists.
#[derive(Debug, Clone, Default)]
pub struct OutboxFilter {
    pub user: Option<UserId>,
    pub status: Option<String>,
}

/// An outbox row a relay has leased: it alone may now deliver it until the lease ends.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedMail {
    pub tenant: TenantId,
    pub message: OutboxMessage,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Delivered,
    /// Try again at this time.
    Retry {
        error: String,
        at: Timestamp,
    },
    /// Give up: the row becomes `dead`.
    Dead {
        error: String,
    },
    /// Not sent on purpose (the tenant disabled the template).
    Suppressed {
        reason: String,
    },
}

/// A tenant's customized email template (Auth0 `email-templates`).
#[derive(Debug, Clone, PartialEq)]
pub struct EmailTemplate {
    pub name: String,
    pub body: String,
    pub from: String,
    pub subject: String,
    pub syntax: String,
    pub result_url: Option<String>,
    pub url_lifetime_secs: Option<i64>,
    pub include_email_in_redirect: bool,
    pub enabled: bool,
    pub updated_at: Timestamp,
}

/// A tenant's email provider (Auth0 `emails/provider`). `credentials` is sealed by the caller with
/// the server master key; the store never sees it in clear.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailProvider {
    pub name: String,
    pub enabled: bool,
    pub default_from_address: Option<String>,
    pub credentials: String,
    pub settings: Value,
    pub updated_at: Timestamp,
}

/// What a state change writes besides itself, in the same transaction.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    pub logs: Vec<LogEvent>,
    pub outbox: Vec<OutboxMessage>,
    /// One-time tickets issued with the change (e.g. the verification link of a signup mail).
    pub tickets: Vec<Ticket>,
    /// Grants and tickets the change ends (e.g. every other session after a password change).
    pub revocations: Vec<Revocation>,
    /// Password hashes a user just set, remembered (newest 24) for password-history rules.
    pub password_history: Vec<(UserId, String, Timestamp)>,
}

impl Effects {
    pub fn log(ev: LogEvent) -> Self {
        Self { logs: vec![ev], ..Self::default() }
    }
    pub fn with_mail(mut self, m: OutboxMessage) -> Self {
        self.outbox.push(m);
        self
    }
    pub fn with_ticket(mut self, t: Ticket) -> Self {
        self.tickets.push(t);
        self
    }
    pub fn with_revocation(mut self, r: Revocation) -> Self {
        self.revocations.push(r);
        self
    }
    pub fn remember_password(mut self, user: UserId, hash: String) -> Self {
        self.password_history.push((user, hash, Timestamp::now()));
        self
    }
}

/// What a one-time ticket lets its holder do.
pub mod ticket_kind {
    pub const PASSWORD_RESET: &str = "password_reset";
    pub const EMAIL_VERIFICATION: &str = "email_verification";
    /// Lifts the brute-force blocks of the user (the link in a `blocked_account` mail).
    pub const UNBLOCK: &str = "unblock";
    /// Confirms a pending email change: the ticket's `email` is the new address (sent to it).
    pub const EMAIL_CHANGE: &str = "email_change";
    /// "This wasn't me": cancels a pending email change (sent to the old address).
    pub const EMAIL_CHANGE_CANCEL: &str = "email_change_cancel";
}

/// A one-time ticket. The token is only in the link; the store keeps its SHA-256 (`id_hash`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id_hash: String,
    /// One of [`ticket_kind`].
    pub kind: String,
    pub user_id: UserId,
    /// The address the ticket was issued for (a verification must not confirm a later address).
    pub email: Option<String>,
    pub client_id: Option<String>,
    pub result_url: Option<String>,
    pub mark_email_verified: bool,
    pub include_email_in_redirect: bool,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// Something a change ends, in its transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Revocation {
    /// Every session and refresh token of the user, except the session `keep` (by id hash) and its
    /// refresh tokens.
    Grants { user: UserId, keep_session: Option<String>, at: Timestamp },
    /// Every unused ticket of this kind of the user.
    Tickets { user: UserId, kind: String, at: Timestamp },
    /// Every brute-force counter (and so every block) of the user's logins: those that know the user,
    /// and those of its identifiers (email, username) counted before the account existed.
    LoginBlocks { user: UserId, identifiers: Vec<String> },
    /// One session of the user (by id hash) and the refresh tokens bound to it; a session of another
    /// user is left alone.
    Session { user: UserId, id_hash: String, at: Timestamp },
    /// The user's password: login with it stops working until a reset sets a new one.
    Password { user: UserId },
    /// One attack-protection counter (a successful login ends its failure count).
    Counter { kind: String, key: String },
}

/// The outcome of redeeming a ticket.
#[derive(Debug, Clone, PartialEq)]
pub enum Redeemed {
    /// The ticket was valid; it is now used and the user change committed with it.
    Done { ticket: Ticket, user: Box<User> },
    /// Unknown, already used, expired, of another kind, or its user is gone: nothing changed.
    Invalid,
}

/// An asynchronous job requested through the Management API.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    /// `verification_email`, …
    pub kind: String,
    pub status: String,
    pub user_id: Option<UserId>,
    /// The mail the job queued, whose delivery is the job's progress.
    pub outbox_id: Option<String>,
    pub details: Value,
    pub created_at: Timestamp,
}

impl From<LogEvent> for Effects {
    fn from(ev: LogEvent) -> Self {
        Self::log(ev)
    }
}

impl From<&LogEvent> for Effects {
    fn from(ev: &LogEvent) -> Self {
        Self::log(ev.clone())
    }
}

/// A server-side SSO session (the cookie holds a random value; the store keeps its SHA-256).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id_hash: String,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub authenticated_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An authorization code (single use, short-lived; stored as SHA-256).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthCode {
    pub id_hash: String,
    pub client_id: ClientId,
    pub user_id: UserId,
    pub redirect_uri: String,
    pub scope: String,
    pub audience: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub session_id: Option<String>,
    pub auth_time: Timestamp,
    pub expires_at: Timestamp,
}

/// A refresh token. Each use rotates it within its family; re-use of a rotated one revokes the family.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub id_hash: String,
    pub family_id: String,
    pub user_id: UserId,
    pub client_id: ClientId,
    pub scope: String,
    pub audience: Option<String>,
    pub session_id: Option<String>,
    pub auth_time: Timestamp,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub rotated: bool,
    pub revoked: bool,
}

/// Result of presenting a refresh token for rotation.
#[derive(Debug, Clone, PartialEq)]
pub enum Rotation {
    /// The token was live; it is now rotated and the new one stored.
    Rotated(RefreshToken),
    /// The token had already been rotated (or revoked): the whole family is now revoked.
    Reused,
    /// Unknown or expired.
    Invalid,
}

/// A shared attack-protection counter (a login identifier, possibly with an IP, or an IP alone).
#[derive(Debug, Clone, PartialEq)]
pub struct AttackCounter {
    /// `login`, `ip_login` or `ip_signup`.
    pub kind: String,
    pub key: String,
    pub identifier: Option<String>,
    pub ip: Option<String>,
    pub connection: Option<String>,
    pub user_id: Option<UserId>,
    pub count: i64,
    pub window_start: Timestamp,
    pub last_at: Timestamp,
    /// When the count reached the limit.
    pub blocked_at: Option<Timestamp>,
    pub notified_at: Option<Timestamp>,
}

/// One event counted against a counter.
#[derive(Debug, Clone)]
pub struct Charge {
    pub kind: String,
    pub key: String,
    pub identifier: Option<String>,
    pub ip: Option<String>,
    pub connection: Option<String>,
    pub user_id: Option<UserId>,
    pub now: Timestamp,
    /// A counter whose window started this long ago starts again from 1.
    pub window_ms: i64,
    /// The count at which the counter is blocked.
    pub limit: i64,
}

/// Which counters to clear.
#[derive(Debug, Clone, PartialEq)]
pub enum CounterScope {
    /// One counter.
    Key { kind: String, key: String },
    /// Every login counter of this (lowercased) identifier.
    Identifier(String),
    /// Every login counter of this user.
    User(UserId),
    /// The suspicious-IP throttling counters of this IP (not the brute-force counters of its logins).
    Ip(String),
}
