//! Shared state of the HTTP layer and its configuration.

use std::sync::Arc;

use roster_auth::PasswordHasher;
use roster_domain::MetadataLimits;
use roster_store::Store;

use crate::logsink::LogSink;
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
    /// Minimum password length until per-connection policies arrive.
    pub min_password_length: usize,
    /// Lifetime of client-credentials access tokens, in seconds.
    pub access_token_lifetime: i64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl HttpConfig {
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            metadata_limits: MetadataLimits::default(),
            management_rate_limit: RateLimitConfig::default(),
            min_password_length: 8,
            access_token_lifetime: 86_400,
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub cfg: Arc<HttpConfig>,
    pub tenants: Arc<TenantCache>,
    pub hasher: PasswordHasher,
    pub rate: Arc<RateLimiter>,
    pub logs: LogSink,
}

impl AppState {
    pub fn new(store: Store, cfg: HttpConfig, hasher: PasswordHasher) -> Self {
        let tenants = Arc::new(TenantCache::new(store.clone(), cfg.public_url.clone()));
        let rate = Arc::new(RateLimiter::new(cfg.management_rate_limit));
        let logs = LogSink::start(store.clone());
        Self { store, cfg: Arc::new(cfg), tenants, hasher, rate, logs }
    }
}
