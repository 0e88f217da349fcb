//! Per-tenant token bucket for the Management API, with Auth0's `x-ratelimit-*` headers.
//!
//! The bucket lives in each node's memory: checking a shared counter on every read would cost a
//! database write per request, which the read path cannot afford. With N nodes a tenant may therefore
//! receive up to N × the configured rate; security counters (brute force, throttling) are different
//! and live in the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size (the largest burst).
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { per_second: 1000.0, burst: 2000 }
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

pub struct RateLimiter {
    cfg: RateLimitConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Outcome of one check, with what the headers must say.
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Epoch seconds when the bucket is full again (allowed) or holds one token (refused).
    pub reset: u64,
    pub retry_after: u64,
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self { cfg, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn check(&self, key: &str) -> Decision {
        let now = Instant::now();
        let burst = f64::from(self.cfg.burst.max(1));
        let rate = self.cfg.per_second.max(0.001);
        let (allowed, tokens) = match self.buckets.lock() {
            Ok(mut m) => {
                if !m.contains_key(key) {
                    m.insert(key.to_owned(), Bucket { tokens: burst, last: now });
                }
                let Some(b) = m.get_mut(key) else { return Decision { allowed: true, limit: self.cfg.burst, remaining: 0, reset: 0, retry_after: 1 } };
                b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(burst);
                b.last = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    (true, b.tokens)
                } else {
                    (false, b.tokens)
                }
            }
            Err(_) => (true, burst),
        };
        let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let wait = if allowed { (burst - tokens) / rate } else { (1.0 - tokens) / rate };
        let wait_secs = wait.ceil().max(if allowed { 0.0 } else { 1.0 }) as u64;
        Decision {
            allowed,
            limit: self.cfg.burst,
            remaining: tokens.floor().max(0.0) as u32,
            reset: epoch + wait_secs,
            retry_after: wait_secs.max(1),
        }
    }
}

fn set_headers(h: &mut HeaderMap, d: &Decision) {
    for (name, value) in [
        ("x-ratelimit-limit", d.limit.to_string()),
        ("x-ratelimit-remaining", d.remaining.to_string()),
        ("x-ratelimit-reset", d.reset.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

/// Middleware for `/t/{tenant}/api/v2/*`: one bucket per tenant name in the path.
pub async fn management_rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let key = req.uri().path().strip_prefix("/t/").and_then(|p| p.split('/').next()).unwrap_or("").to_owned();
    let d = state.rate.check(&key);
    if !d.allowed {
        let mut resp = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Global limit has been reached", Some("too_many_requests"))
            .with_retry_after(d.retry_after)
            .into_response();
        set_headers(resp.headers_mut(), &d);
        return resp;
    }
    let mut resp = next.run(req).await;
    set_headers(resp.headers_mut(), &d);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_past_burst() {
        let rl = RateLimiter::new(RateLimitConfig { per_second: 0.01, burst: 3 });
        assert!(rl.check("a").allowed);
        assert!(rl.check("a").allowed);
        let d = rl.check("a");
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let d = rl.check("a");
        assert!(!d.allowed);
        assert!(d.retry_after >= 1);
        assert!(rl.check("b").allowed, "buckets are per tenant");
    }
}
