//! A tenant's email provider (Auth0 `emails/provider`, `name: "smtp"`): validating what an admin
//! sends, sealing the credentials with the master key before they are stored, and turning the stored
//! form back into SMTP settings for the relay.
//!
//! The password never leaves this module in clear except into the SMTP transport; what the API shows
//! is [`public_credentials`], which drops it.

use roster_auth::MasterKey;
use roster_domain::TenantId;
use roster_store::EmailProvider;
use serde_json::{Map, Value};

use crate::transport::{ConfigError, SmtpSettings, TlsMode};

/// Provider names Auth0 knows; Roster delivers through `smtp` (the others are refused with a clear
/// message rather than stored and silently ignored).
pub const KNOWN: &[&str] =
    &["mailgun", "mandrill", "sendgrid", "resend", "ses", "sparkpost", "smtp", "azure_cs", "ms365", "custom"];

fn context(tenant: &TenantId) -> String {
    format!("email-provider:{}", tenant.as_str())
}

/// Check `name`, `credentials` and `settings` as an admin sent them (after merging, for PATCH).
pub fn validate(name: &str, credentials: &Map<String, Value>, settings: &Map<String, Value>) -> Result<(), String> {
    if name != "smtp" {
        return Err(if KNOWN.contains(&name) {
            format!("the '{name}' provider is not supported by this server; use 'smtp'")
        } else {
            format!("unknown provider '{name}'")
        });
    }
    for key in credentials.keys() {
        if !matches!(key.as_str(), "smtp_host" | "smtp_port" | "smtp_user" | "smtp_pass") {
            return Err(format!("credentials.{key} is not an SMTP credential"));
        }
    }
    let host = credentials.get("smtp_host").and_then(Value::as_str).unwrap_or_default();
    if host.is_empty() || host.len() > 253 || host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@') {
        return Err("credentials.smtp_host must be a host name".into());
    }
    match credentials.get("smtp_port") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|p| (1..=65535).contains(&p)) => {}
        _ => return Err("credentials.smtp_port must be a port number".into()),
    }
    for key in ["smtp_user", "smtp_pass"] {
        match credentials.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.len() <= 1024 && !s.chars().any(char::is_control) => {}
            _ => return Err(format!("credentials.{key} must be a string")),
        }
    }
    for (key, value) in settings {
        match (key.as_str(), value) {
            ("tls", Value::String(s)) if TlsMode::parse(s).is_some() => {}
            ("tls", _) => return Err("settings.tls must be one of none, opportunistic, starttls, implicit".into()),
            _ => return Err(format!("settings.{key} is not a known setting")),
        }
    }
    Ok(())
}

/// Seal credentials for storage.
pub fn seal_credentials(key: &MasterKey, tenant: &TenantId, credentials: &Map<String, Value>) -> String {
    key.seal(&context(tenant), Value::Object(credentials.clone()).to_string().as_bytes())
}

/// The stored credentials, opened.
pub fn open_credentials(key: &MasterKey, tenant: &TenantId, sealed: &str) -> Result<Map<String, Value>, ConfigError> {
    let text = key
        .open_str(&context(tenant), sealed)
        .map_err(|e| ConfigError(format!("the stored SMTP credentials cannot be opened: {e}")))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ConfigError("the stored SMTP credentials are damaged".into())),
    }
}

/// What the API may show of the credentials: everything but the password.
pub fn public_credentials(credentials: &Map<String, Value>) -> Map<String, Value> {
    credentials.iter().filter(|(k, _)| k.as_str() != "smtp_pass").map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// SMTP settings from a stored provider. TLS: `settings.tls` when given; otherwise implicit TLS on
/// port 465, opportunistic STARTTLS towards a loopback host (a local relay), and required STARTTLS
/// everywhere else, so credentials never cross a network in clear by default.
pub fn smtp_settings(key: &MasterKey, tenant: &TenantId, p: &EmailProvider) -> Result<SmtpSettings, ConfigError> {
    let c = open_credentials(key, tenant, &p.credentials)?;
    let host = c.get("smtp_host").and_then(Value::as_str).unwrap_or_default().to_owned();
    let port = c.get("smtp_port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()).unwrap_or(587);
    let text = |k: &str| c.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let tls = match p.settings.get("tls").and_then(Value::as_str).and_then(TlsMode::parse) {
        Some(t) => t,
        None if port == 465 => TlsMode::Implicit,
        None if is_loopback(&host) => TlsMode::Opportunistic,
        None => TlsMode::StartTls,
    };
    Ok(SmtpSettings { host, port, user: text("smtp_user"), password: text("smtp_pass"), tls })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_domain::Timestamp;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn validation() {
        let good = obj(json!({"smtp_host": "mail.example.com", "smtp_port": 587, "smtp_user": "u", "smtp_pass": "p"}));
        assert_eq!(validate("smtp", &good, &Map::new()), Ok(()));
        assert!(validate("sendgrid", &good, &Map::new()).is_err_and(|e| e.contains("not supported")));
        assert!(validate("nope", &good, &Map::new()).is_err());
        assert!(validate("smtp", &obj(json!({"smtp_port": 25})), &Map::new()).is_err());
        assert!(validate("smtp", &obj(json!({"smtp_host": "h", "smtp_port": 70000})), &Map::new()).is_err());
        assert!(validate("smtp", &obj(json!({"smtp_host": "h\r\nx", "smtp_port": 25})), &Map::new()).is_err());
        assert!(validate("smtp", &obj(json!({"smtp_host": "h", "smtp_port": 25, "api_key": "k"})), &Map::new()).is_err());
        let tls = |t: &str| obj(json!({ "tls": t }));
        assert_eq!(validate("smtp", &good, &tls("implicit")), Ok(()));
        assert!(validate("smtp", &good, &tls("sometimes")).is_err());
    }

    #[test]
    fn sealed_and_opened_per_tenant() {
        let key = MasterKey::from_bytes(&[3u8; 32]).expect("key");
        let a = TenantId::from_trusted("ten_a");
        let creds = obj(json!({"smtp_host": "mail.example.com", "smtp_port": 587, "smtp_user": "u", "smtp_pass": "s3cret"}));
        let sealed = seal_credentials(&key, &a, &creds);
        assert!(!sealed.contains("s3cret") && !sealed.contains("mail.example.com"));
        let p = EmailProvider {
            name: "smtp".into(),
            enabled: true,
            default_from_address: None,
            credentials: sealed.clone(),
            settings: json!({}),
            updated_at: Timestamp::now(),
        };
        let s = smtp_settings(&key, &a, &p).expect("opens");
        assert_eq!((s.port, s.tls, s.password.as_deref()), (587, TlsMode::StartTls, Some("s3cret")));
        assert!(open_credentials(&key, &TenantId::from_trusted("ten_b"), &sealed).is_err(), "bound to the tenant");
        assert!(!Value::Object(public_credentials(&creds)).to_string().contains("s3cret"));
    }

    #[test]
    fn tls_defaults() {
        let key = MasterKey::from_bytes(&[3u8; 32]).expect("key");
        let t = TenantId::from_trusted("ten_a");
        let mode = |host: &str, port: u16, settings: Value| {
            let creds = obj(json!({"smtp_host": host, "smtp_port": port}));
            let p = EmailProvider {
                name: "smtp".into(),
                enabled: true,
                default_from_address: None,
                credentials: seal_credentials(&key, &t, &creds),
                settings,
                updated_at: Timestamp::now(),
            };
            smtp_settings(&key, &t, &p).expect("opens").tls
        };
        assert_eq!(mode("smtp.example.com", 465, json!({})), TlsMode::Implicit);
        assert_eq!(mode("smtp.example.com", 587, json!({})), TlsMode::StartTls);
        assert_eq!(mode("127.0.0.1", 2525, json!({})), TlsMode::Opportunistic);
        assert_eq!(mode("smtp.example.com", 25, json!({"tls": "none"})), TlsMode::None);
    }
}
