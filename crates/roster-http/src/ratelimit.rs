//! Per-tenant token bucket for the Management API, with Auth0's `x-ratelimit-*` headers.
//!
//! Only authenticated calls are charged: the `Authorized` extractor checks the bucket once the token
//! is verified and leaves its decision in the request's [`RateSlot`]; this middleware copies the
//! decision into the response headers (or, for a refused anonymous call, the bucket's state without
//! charging it). So a stranger cannot exhaust a tenant's budget.
//!
//! The bucket lives in each node's memory: checking a shared counter on every read would cost a
//! database write per request, which the read path cannot afford. With N nodes a tenant may therefore
//! receive up to N × the configured rate; security counters (brute force, throttling) are different
//! and live in the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

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

/// Where the `Authorized` extractor leaves its rate-limit decision for the middleware.
#[derive(Clone, Default)]
pub struct RateSlot(Arc<Mutex<Option<Decision>>>);

impl RateSlot {
    pub fn put(&self, d: Decision) {
        if let Ok(mut s) = self.0.lock() {
            *s = Some(d);
        }
    }
    fn take(&self) -> Option<Decision> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self { cfg, buckets: Mutex::new(HashMap::new()) }
    }

    /// The bucket's state without charging it (for headers on refused anonymous calls).
    pub fn peek(&self, key: &str) -> Decision {
        let burst = f64::from(self.cfg.burst.max(1));
        let rate = self.cfg.per_second.max(0.001);
        let tokens = self
            .buckets
            .lock()
            .ok()
            .and_then(|m| m.get(key).map(|b| (b.tokens + b.last.elapsed().as_secs_f64() * rate).min(burst)))
            .unwrap_or(burst);
        let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let wait = ((burst - tokens) / rate).ceil() as u64;
        Decision {
            allowed: true,
            limit: self.cfg.burst,
            remaining: tokens.floor().max(0.0) as u32,
            reset: epoch + wait,
            retry_after: wait.max(1),
        }
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
                let Some(b) = m.get_mut(key) else {
                    return Decision { allowed: true, limit: self.cfg.burst, remaining: 0, reset: 0, retry_after: 1 };
                };
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

/// Middleware for `/t/{tenant}/api/v2/*`: headers from the decision the extractor made.
pub async fn management_rate_limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    req.extensions_mut().insert(slot.clone());
    let key = req.uri().path().strip_prefix("/t/").and_then(|p| p.split('/').next()).unwrap_or("").to_owned();
    let mut resp = next.run(req).await;
    let d = slot.take().unwrap_or_else(|| state.rate.peek(&key));
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
