//! Shared state of the HTTP layer and its configuration.

use std::sync::Arc;

use roster_auth::{MasterKey, PasswordHasher};
use roster_domain::MetadataLimits;
use roster_store::Store;

use crate::logsink::LogSink;
use crate::management::view::RenderedUsers;
use crate::ratelimit::{RateLimitConfig, RateLimiter};
use crate::tenant::TenantCache;

/// What the HTTP layer needs from the operator's configuration.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Base of every URL Roster shows (issuers, links), without a trailing slash. Never taken from
    /// request headers.
    pub public_url: String,
    pub metadata_limits: MetadataLimits,
    pub management_rate_limit: RateLimitConfig,
    /// Lifetime of client-credentials access tokens, in seconds.
    pub access_token_lifetime: i64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Lifetime of ID tokens, in seconds (Auth0's default: 10 hours).
    pub id_token_lifetime: i64,
    /// Lifetime of refresh tokens, in seconds (absolute, per rotation family member).
    pub refresh_token_lifetime: i64,
    /// Lifetime of the link in a reset mail a user asked for (`/dbconnections/change_password`, hosted
    /// page), unless the tenant's `reset_email` template sets `urlLifetimeInSeconds`.
    pub reset_ticket_lifetime: i64,
    /// Lifetime of the link in a verification mail, unless `verify_email` sets one.
    pub verification_ticket_lifetime: i64,
    /// Reset requests accepted per IP and email address per hour (per node).
    pub reset_requests_per_hour: u32,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers are believed (see `extract::ClientIp`).
    pub trusted_proxies: Vec<crate::attack::Cidr>,
}

impl HttpConfig {
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            metadata_limits: MetadataLimits::default(),
            management_rate_limit: RateLimitConfig::default(),
            access_token_lifetime: 86_400,
            max_body_bytes: 1024 * 1024,
            id_token_lifetime: 36_000,
            refresh_token_lifetime: 30 * 86_400,
            reset_ticket_lifetime: 3600,
            verification_ticket_lifetime: 432_000,
            reset_requests_per_hour: 5,
            trusted_proxies: Vec::new(),
        }
    }
}

/// What the HTTP layer needs for mail: the template renderer (to check templates when they are saved)
/// and the master key (to seal provider credentials and one-time links).
#[derive(Clone)]
pub struct MailState {
    pub renderer: Arc<roster_mail::Renderer>,
    pub key: MasterKey,
}

/// Shared state: one `Arc`, so the per-request clones axum makes cost one reference count.
#[derive(Clone)]
pub struct AppState(Arc<State>);

impl std::ops::Deref for AppState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

pub struct State {
    pub store: Store,
    pub cfg: Arc<HttpConfig>,
    pub tenants: Arc<TenantCache>,
    pub hasher: PasswordHasher,
    pub rate: Arc<RateLimiter>,
    /// Password-reset requests per tenant, IP and address.
    pub reset_limiter: Arc<RateLimiter>,
    pub logs: LogSink,
    pub mail: MailState,
    /// A hash of a random password with the configured parameters: verified against when the user does
    /// not exist, so unknown users and wrong passwords take the same time.
    pub dummy_hash: Arc<tokio::sync::OnceCell<String>>,
    /// Bodies of `GET /users/{id}`, kept with the stored copy they were rendered from.
    pub rendered_users: RenderedUsers,
}

impl AppState {
    pub fn new(store: Store, cfg: HttpConfig, hasher: PasswordHasher, mail: MailState) -> Self {
        let tenants = Arc::new(TenantCache::new(store.clone(), cfg.public_url.clone()));
        let rate = Arc::new(RateLimiter::new(cfg.management_rate_limit));
        let per_hour = cfg.reset_requests_per_hour.max(1);
        let reset_limiter =
            Arc::new(RateLimiter::new(RateLimitConfig { per_second: f64::from(per_hour) / 3600.0, burst: per_hour }));
        let logs = LogSink::start(store.clone());
        let rendered_users = RenderedUsers::new(store.user_cache_capacity());
        Self(Arc::new(State {
            store,
            cfg: Arc::new(cfg),
            tenants,
            hasher,
            rate,
            reset_limiter,
            logs,
            mail,
            dummy_hash: Arc::new(tokio::sync::OnceCell::new()),
            rendered_users,
        }))
    }

    /// The dummy hash, computed once.
    pub async fn dummy_hash(&self) -> Result<String, roster_auth::HashError> {
        self.dummy_hash
            .get_or_try_init(|| async {
                let pw = roster_domain::Password::for_verification(roster_domain::secret::random_alphanumeric(24))
                    .map_err(|_| roster_auth::HashError::Failed)?;
                self.hasher.hash(pw).await
            })
            .await
            .cloned()
    }
}
