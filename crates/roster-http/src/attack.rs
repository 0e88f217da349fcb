//! Brute-force protection for password logins: settings (Auth0's `attack-protection/brute-force-protection`
//! shape) and the gate every password check passes.
//!
//! The count lives in the shared database and is charged *before* the password is hashed, by one
//! atomic upsert: of any burst of parallel attempts, on any number of nodes, at most `max_attempts` are
//! evaluated; the others are refused without computing a hash. A blocked pair (identifier + IP, by
//! default) is refused even with the right password; the same user from another IP is not affected,
//! so an attacker cannot lock the real user out. A success clears the count (failures must be
//! consecutive). Blocks end after 30 days, on a password change, through the API, or by clearing.

use std::net::IpAddr;
use std::time::Instant;

use roster_domain::{Timestamp, UserId};
use roster_store::{AttackCounter, Charge, StoreError};
use serde_json::{Value, json};

use crate::tenant::TenantCtx;

/// The settings' keys in the store.
pub const BRUTE_FORCE: &str = "brute-force-protection";
pub const SUSPICIOUS_IP: &str = "suspicious-ip-throttling";
/// Counters of failed logins per IP (any account) and of signups per IP.
pub const IP_LOGIN: &str = "ip_login";
pub const IP_SIGNUP: &str = "ip_signup";
/// How long an unblock link lives.
pub const UNBLOCK_LINK_TTL_SECS: i64 = 86_400;
/// At most one blocked-account mail per counter (identifier and IP) per hour.
pub const NOTIFY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);
/// Counters of login identifiers.
pub const LOGIN: &str = "login";
/// How long a block lasts (from the first failure of its window).
pub const BLOCK_WINDOW_MS: i64 = 30 * 86_400_000;

/// Auth0's defaults.
pub fn brute_force_defaults() -> Value {
    json!({
        "enabled": true,
        "shields": ["block", "user_notification"],
        "mode": "count_per_identifier_and_ip",
        "allowlist": [],
        "max_attempts": 10,
    })
}

/// Brute-force settings as the gate uses them.
#[derive(Debug, Clone)]
pub struct BruteForce {
    pub enabled: bool,
    pub block: bool,
    pub notify: bool,
    pub per_ip: bool,
    pub max_attempts: i64,
    pub allowlist: Vec<Cidr>,
}

impl BruteForce {
    /// From stored settings (already validated), with defaults for what is absent.
    pub fn from_settings(v: &Value) -> Self {
        let shields: Vec<&str> =
            v["shields"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        Self {
            enabled: v["enabled"].as_bool().unwrap_or(true),
            block: shields.contains(&"block"),
            notify: shields.contains(&"user_notification"),
            per_ip: v["mode"].as_str() != Some("count_per_identifier"),
            max_attempts: v["max_attempts"].as_i64().unwrap_or(10).clamp(1, 100),
            allowlist: v["allowlist"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().and_then(Cidr::parse)).collect())
                .unwrap_or_default(),
        }
    }

    /// Whether this attempt is counted at all.
    pub fn applies(&self, ip: Option<&str>) -> bool {
        self.enabled
            && self.block
            && !ip.and_then(|i| i.parse::<IpAddr>().ok()).is_some_and(|ip| self.allowlist.iter().any(|c| c.contains(ip)))
    }
}

/// The tenant's brute-force settings, stored merged over the defaults.
pub async fn brute_force_settings(t: &TenantCtx) -> Result<Value, StoreError> {
    cached(t, BRUTE_FORCE, || async {
        let mut merged = brute_force_defaults();
        if let Some(Value::Object(stored)) = t.store.attack_settings(BRUTE_FORCE).await? {
            for (k, v) in stored {
                merged[k] = v;
            }
        }
        Ok(merged)
    })
    .await
}

/// Settings of `kind`, read from the store at most once per `SETTINGS_TTL` per node: every login
/// needs them, and they change rarely.
async fn cached<F, Fut>(t: &TenantCtx, kind: &'static str, load: F) -> Result<Value, StoreError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Value, StoreError>>,
{
    let hit = t
        .attack_settings
        .lock()
        .ok()
        .and_then(|m| m.get(kind).filter(|(at, _)| at.elapsed() < crate::tenant::SETTINGS_TTL).map(|(_, v)| v.clone()));
    if let Some(v) = hit {
        return Ok(v);
    }
    let v = load().await?;
    if let Ok(mut m) = t.attack_settings.lock() {
        m.insert(kind, (std::time::Instant::now(), v.clone()));
    }
    Ok(v)
}

/// Forget the cached settings of `kind` (after this node changed them).
pub fn forget_settings(t: &TenantCtx, kind: &'static str) {
    if let Ok(mut m) = t.attack_settings.lock() {
        m.remove(kind);
    }
}

/// Check a PATCH body against Auth0's schema and merge it over `current`.
pub fn patch_brute_force(current: &Value, patch: Value) -> Result<Value, String> {
    let Value::Object(patch) = patch else { return Err("the body must be an object".into()) };
    let mut out = current.clone();
    for (k, v) in patch {
        match (k.as_str(), &v) {
            ("enabled", Value::Bool(_)) => {}
            ("max_attempts", Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=100).contains(&n)) => {}
            ("max_attempts", _) => return Err("max_attempts must be an integer between 1 and 100".into()),
            ("mode", Value::String(m)) if m == "count_per_identifier_and_ip" || m == "count_per_identifier" => {}
            ("mode", _) => return Err("mode must be count_per_identifier_and_ip or count_per_identifier".into()),
            ("shields", Value::Array(a)) if a.iter().all(|s| matches!(s.as_str(), Some("block" | "user_notification"))) => {}
            ("shields", _) => return Err("shields may contain block and user_notification".into()),
            ("allowlist", Value::Array(a)) if a.len() <= 100 && a.iter().all(|s| s.as_str().and_then(Cidr::parse).is_some()) => {}
            ("allowlist", _) => return Err("allowlist must be a list of IP addresses or CIDR ranges".into()),
            (other, _) => return Err(format!("unknown or invalid property {other}")),
        }
        out[k] = v;
    }
    Ok(out)
}

/// Auth0's defaults for suspicious-IP throttling. `rate` is the milliseconds after which one attempt is
/// given back; Roster counts in fixed windows of `max_attempts × rate` (100 failed logins a day; 50
/// signups per 20 minutes).
pub fn throttling_defaults() -> Value {
    json!({
        "enabled": true,
        "shields": ["block"],
        "allowlist": [],
        "stage": {
            "pre-login": {"max_attempts": 100, "rate": 864_000},
            "pre-user-registration": {"max_attempts": 50, "rate": 24_000},
        },
    })
}

/// The tenant's suspicious-IP throttling settings, merged over the defaults (stages merge too).
pub async fn throttling_settings(t: &TenantCtx) -> Result<Value, StoreError> {
    cached(t, SUSPICIOUS_IP, || async {
        let mut merged = throttling_defaults();
        if let Some(stored) = t.store.attack_settings(SUSPICIOUS_IP).await? {
            merge_throttling(&mut merged, &stored);
        }
        Ok(merged)
    })
    .await
}

fn merge_throttling(into: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        for (k, v) in p {
            if k == "stage"
                && let Value::Object(stages) = v
            {
                for (stage, settings) in stages {
                    if let Value::Object(fields) = settings {
                        for (f, x) in fields {
                            into["stage"][stage][f] = x.clone();
                        }
                    }
                }
            } else {
                into[k] = v.clone();
            }
        }
    }
}

/// Check a PATCH body of suspicious-IP throttling and merge it over `current`.
pub fn patch_throttling(current: &Value, patch: Value) -> Result<Value, String> {
    let Value::Object(p) = &patch else { return Err("the body must be an object".into()) };
    for (k, v) in p {
        match (k.as_str(), v) {
            ("enabled", Value::Bool(_)) => {}
            ("shields", Value::Array(a)) if a.iter().all(|s| matches!(s.as_str(), Some("block" | "admin_notification"))) => {}
            ("shields", _) => return Err("shields may contain block and admin_notification".into()),
            ("allowlist", Value::Array(a)) if a.len() <= 100 && a.iter().all(|s| s.as_str().and_then(Cidr::parse).is_some()) => {}
            ("allowlist", _) => return Err("allowlist must be a list of IP addresses or CIDR ranges".into()),
            ("stage", Value::Object(stages)) => {
                for (stage, settings) in stages {
                    if !matches!(stage.as_str(), "pre-login" | "pre-user-registration") {
                        return Err(format!("unknown stage {stage}"));
                    }
                    let Value::Object(fields) = settings else { return Err(format!("stage.{stage} must be an object")) };
                    for (f, x) in fields {
                        let ok = match f.as_str() {
                            "max_attempts" => x.as_u64().is_some_and(|n| (1..=100_000).contains(&n)),
                            "rate" => x.as_u64().is_some_and(|n| (1..=86_400_000).contains(&n)),
                            _ => false,
                        };
                        if !ok {
                            return Err(format!("stage.{stage}.{f} is not a valid setting"));
                        }
                    }
                }
            }
            (other, _) => return Err(format!("unknown or invalid property {other}")),
        }
    }
    let mut out = current.clone();
    merge_throttling(&mut out, &patch);
    Ok(out)
}

/// Suspicious-IP throttling for one stage, as the checks use it.
#[derive(Debug, Clone)]
pub struct Throttle {
    pub active: bool,
    pub max_attempts: i64,
    pub window_ms: i64,
    pub allowlist: Vec<Cidr>,
}

impl Throttle {
    pub fn from_settings(v: &Value, stage: &str) -> Self {
        let blocks = v["shields"].as_array().is_some_and(|a| a.iter().any(|s| s == "block"));
        let max = v["stage"][stage]["max_attempts"].as_i64().unwrap_or(100).max(1);
        let rate = v["stage"][stage]["rate"].as_i64().unwrap_or(864_000).max(1);
        Self {
            active: v["enabled"].as_bool().unwrap_or(true) && blocks,
            max_attempts: max,
            window_ms: max.saturating_mul(rate),
            allowlist: v["allowlist"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().and_then(Cidr::parse)).collect())
                .unwrap_or_default(),
        }
    }

    fn applies(&self, ip: Option<&str>) -> Option<String> {
        let ip = ip?;
        let addr = ip.parse::<IpAddr>().ok()?;
        (self.active && !self.allowlist.iter().any(|c| c.contains(addr))).then(|| ip.to_owned())
    }

    /// Whether this address is over its limit now (a read; nothing is counted).
    pub async fn exceeded(&self, t: &TenantCtx, kind: &str, ip: Option<&str>) -> Result<bool, StoreError> {
        let Some(ip) = self.applies(ip) else { return Ok(false) };
        let now = Timestamp::now().millis();
        Ok(t.store
            .counter(kind, &ip)
            .await?
            .is_some_and(|c| c.window_start.millis() > now - self.window_ms && c.count >= self.max_attempts))
    }

    /// Count one event for this address; the count it got (0 when not counted).
    pub async fn charge(&self, t: &TenantCtx, kind: &str, ip: Option<&str>) -> Result<i64, StoreError> {
        let Some(ip) = self.applies(ip) else { return Ok(0) };
        let c = t
            .store
            .charge(&Charge {
                kind: kind.into(),
                key: ip.clone(),
                identifier: None,
                ip: Some(ip),
                connection: None,
                user_id: None,
                now: Timestamp::now(),
                window_ms: self.window_ms,
                limit: self.max_attempts,
            })
            .await?;
        Ok(c.count)
    }
}

/// The identifiers a user logs in with (lowercased email, username): their counters are the user's
/// even when they were counted before the account existed.
pub fn identifiers_of(user: &roster_domain::user::User) -> Vec<String> {
    user.email.iter().map(|e| e.as_str().to_lowercase()).chain(user.username.iter().map(|u| u.to_lowercase())).collect()
}

/// Counters of blocked-account notices: one per login counter key and hour, kept apart from the login
/// counters so that an unblock or a success does not allow another notice within the hour.
pub const LOGIN_NOTICE: &str = "login_notice";

/// The counter of an identifier (and IP, in the default mode).
pub fn counter_key(identifier: &str, ip: Option<&str>, per_ip: bool) -> String {
    let id = identifier.to_lowercase();
    if per_ip { format!("{id}|{}", ip.unwrap_or("-")) } else { id }
}

/// What the gate decided before any hash.
pub enum Gate {
    /// Not counted (protection off, or an allowlisted IP).
    Free,
    /// Counted: this attempt may be evaluated; `counter` is its charge.
    Counted { key: String, counter: Box<AttackCounter> },
    /// Blocked: refuse without computing a hash.
    Blocked,
}

/// Whether `identifier` from `ip` is blocked now: one read, no write, no hash (checked before the
/// user is even looked up, so a refused attempt costs as little as possible).
pub async fn is_blocked(t: &TenantCtx, bf: &BruteForce, identifier: &str, ip: Option<&str>) -> Result<bool, StoreError> {
    if !bf.applies(ip) {
        return Ok(false);
    }
    let key = counter_key(identifier, ip, bf.per_ip);
    // A pair this node saw blocked a moment ago is refused from memory: an attacker hammering a
    // blocked pair costs no database round trip.
    let remembered = t.blocked_pairs.lock().ok().and_then(|m| m.get(&key).copied()).is_some_and(|until| until > Instant::now());
    if remembered {
        return Ok(true);
    }
    let now = Timestamp::now().millis();
    let blocked = t
        .store
        .counter(LOGIN, &key)
        .await?
        .is_some_and(|c| c.window_start.millis() > now - BLOCK_WINDOW_MS && c.count >= bf.max_attempts);
    if blocked {
        remember_blocked(t, key);
    }
    Ok(blocked)
}

fn remember_blocked(t: &TenantCtx, key: String) {
    if let Ok(mut m) = t.blocked_pairs.lock() {
        if m.len() >= 100_000 {
            let now = Instant::now();
            m.retain(|_, until| *until > now);
        }
        m.insert(key, Instant::now() + crate::tenant::BLOCKED_TTL);
    }
}

/// Forget the blocked pairs this node remembers (after it lifted blocks).
pub fn forget_blocks(t: &TenantCtx) {
    if let Ok(mut m) = t.blocked_pairs.lock() {
        m.clear();
    }
}

/// Charge an attempt for `identifier` from `ip` before its password is checked (after
/// [`is_blocked`]): the count this attempt got decides whether it may be evaluated.
pub async fn gate(
    t: &TenantCtx,
    bf: &BruteForce,
    identifier: &str,
    ip: Option<&str>,
    connection: &str,
    user: Option<&UserId>,
) -> Result<Gate, StoreError> {
    if !bf.applies(ip) {
        return Ok(Gate::Free);
    }
    let key = counter_key(identifier, ip, bf.per_ip);
    let counter = t
        .store
        .charge(&Charge {
            kind: LOGIN.into(),
            key: key.clone(),
            identifier: Some(identifier.to_lowercase()),
            ip: ip.map(str::to_owned),
            connection: Some(connection.to_owned()),
            user_id: user.cloned(),
            now: Timestamp::now(),
            window_ms: BLOCK_WINDOW_MS,
            limit: bf.max_attempts,
        })
        .await?;
    if counter.count > bf.max_attempts {
        remember_blocked(t, key);
        return Ok(Gate::Blocked);
    }
    Ok(Gate::Counted { key, counter: Box::new(counter) })
}

/// An IPv4 or IPv6 address or CIDR range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Self { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let prefix = |a: u128, b: u128, len: u32, bits: u8| {
            if bits == 0 {
                return true;
            }
            let shift = len - u32::from(bits);
            (a >> shift) == (b >> shift)
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => prefix(u128::from(u32::from(n)), u128::from(u32::from(i)), 32, self.bits),
            (IpAddr::V6(n), IpAddr::V6(i)) => prefix(u128::from(n), u128::from(i), 128, self.bits),
            (IpAddr::V6(n), IpAddr::V4(i)) => n.to_ipv4_mapped().is_some_and(|n| n == i && self.bits >= 96),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.1.0.0/16").expect("cidr");
        assert!(c.contains("10.1.200.3".parse().expect("ip")));
        assert!(!c.contains("10.2.0.1".parse().expect("ip")));
        assert!(Cidr::parse("192.0.2.7").expect("ip").contains("192.0.2.7".parse().expect("ip")));
        assert!(Cidr::parse("2001:db8::/32").expect("v6").contains("2001:db8::1".parse().expect("ip")));
        assert!(Cidr::parse("0.0.0.0/0").expect("all").contains("8.8.8.8".parse().expect("ip")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.1/x", ""] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn patches_are_checked() {
        let d = brute_force_defaults();
        assert!(patch_brute_force(&d, json!({"max_attempts": 0})).is_err());
        assert!(patch_brute_force(&d, json!({"mode": "sometimes"})).is_err());
        assert!(patch_brute_force(&d, json!({"shields": ["block", "admin_notification"]})).is_err());
        assert!(patch_brute_force(&d, json!({"allowlist": ["10.0.0.0/8", "bogus"]})).is_err());
        assert!(patch_brute_force(&d, json!({"surprise": true})).is_err());
        let p = patch_brute_force(&d, json!({"max_attempts": 3, "allowlist": ["10.0.0.0/8"]})).expect("ok");
        assert_eq!((p["max_attempts"].as_i64(), p["enabled"].as_bool()), (Some(3), Some(true)));
        let bf = BruteForce::from_settings(&p);
        assert!(!bf.applies(Some("10.3.4.5")) && bf.applies(Some("192.0.2.1")) && bf.applies(None));
        assert_eq!(counter_key("Jane@Example.com", Some("192.0.2.1"), true), "jane@example.com|192.0.2.1");
        assert_eq!(counter_key("Jane@Example.com", Some("192.0.2.1"), false), "jane@example.com");
    }
}
