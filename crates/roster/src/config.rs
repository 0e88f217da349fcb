//! Layered configuration: embedded defaults → TOML file (`--config`) → `ROSTER_*` environment →
//! command-line flags. `ROSTER_<KEY>_FILE` reads a value from a file (for secrets such as a database
//! URL with a password). Unknown keys are warned about; the result is validated before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value as FigValue};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Every setting, with its default. Field names are the TOML keys and, upper-cased with a `ROSTER_`
/// prefix, the environment variables.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub data_dir: PathBuf,
    /// Defaults to `sqlite://{data_dir}/roster.db`.
    pub database_url: Option<String>,
    pub database_max_connections: u32,
    /// `full` (every commit reaches the disk; the default) or `normal`.
    pub sqlite_synchronous: String,
    /// Users kept in memory after a read by id (SQLite only; 0 = none).
    pub user_cache_size: usize,
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `roster_http=debug,info`. `RUST_LOG` wins when set.
    pub log_level: String,
    pub metadata_max_bytes: usize,
    pub metadata_max_depth: usize,
    /// Management API requests per second per tenant (per node), and the burst size.
    pub management_rate_limit: f64,
    pub management_rate_burst: u32,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Hashing threads; 0 = one per core.
    pub hash_threads: usize,
    pub hash_queue: usize,
    pub access_token_lifetime_secs: i64,
    /// Longest wait for in-flight requests at shutdown.
    pub shutdown_timeout_secs: u64,
    /// Create the `default` tenant on an empty database at first start.
    pub bootstrap_default_tenant: bool,
    /// The server master key (32 bytes, base64) sealing secrets at rest (tenant SMTP passwords, links
    /// in queued mail). Default: `{data_dir}/master.key`, created on first start. Every node sharing a
    /// database must use the same key.
    pub master_key: Option<String>,
    /// Where mail goes when a tenant has no provider: `smtp://[user:pass@]host[:port][?tls=…]` or
    /// `smtps://…`. Unset: `.eml` files in `{data_dir}/mail/`.
    pub smtp_url: Option<String>,
    /// The default sender, e.g. `Acme <no-reply@acme.example>`. Unset: `no-reply@{public host}`.
    pub mail_from: Option<String>,
    /// Run the outbox relay in this node.
    pub mail_relay: bool,
    pub mail_max_attempts: u32,
    /// First retry delay; doubles per attempt (with jitter) up to `mail_retry_max_secs`.
    pub mail_retry_base_ms: u64,
    pub mail_retry_max_secs: u64,
    pub mail_poll_interval_ms: u64,
    pub mail_lease_secs: u64,
    pub mail_send_timeout_secs: u64,
    pub mail_concurrency: usize,
    /// Lifetime of the link in a password-reset mail a user asked for (templates may override).
    pub reset_link_lifetime_secs: i64,
    /// Lifetime of the link in a verification mail (templates may override).
    pub verification_link_lifetime_secs: i64,
    /// Password-reset requests accepted per IP and email address per hour, per node.
    pub reset_requests_per_hour: u32,
    /// Reverse proxies (IP addresses or CIDR ranges) whose `X-Forwarded-For`/`Forwarded` headers name
    /// the client; from anyone else those headers are ignored. In the environment: comma-separated.
    pub trusted_proxies: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 8,
            sqlite_synchronous: "full".into(),
            user_cache_size: 10_000,
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            metadata_max_bytes: 16 * 1024,
            metadata_max_depth: 10,
            management_rate_limit: 1000.0,
            management_rate_burst: 2000,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_threads: 0,
            hash_queue: 256,
            access_token_lifetime_secs: 86_400,
            shutdown_timeout_secs: 30,
            bootstrap_default_tenant: true,
            master_key: None,
            smtp_url: None,
            mail_from: None,
            mail_relay: true,
            mail_max_attempts: 10,
            mail_retry_base_ms: 30_000,
            mail_retry_max_secs: 3600,
            mail_poll_interval_ms: 1000,
            mail_lease_secs: 120,
            mail_send_timeout_secs: 30,
            mail_concurrency: 4,
            reset_link_lifetime_secs: 3600,
            verification_link_lifetime_secs: 432_000,
            reset_requests_per_hour: 5,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Values given as command-line flags (highest precedence). `None` = not given.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_from: Option<String>,
}

impl Config {
    /// Load with every layer. Returns the config and warnings to print once logging is set up.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<(Self, Vec<String>)> {
        Self::load_from(file, flags, std::env::vars())
    }

    pub fn load_from(
        file: Option<&Path>,
        flags: &FlagOverrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<String>)> {
        let known = known_keys();
        let mut warnings = Vec::new();
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                bail!("configuration file {} does not exist", path.display());
            }
            let toml = Toml::file(path);
            let data = figment::Provider::data(&toml).with_context(|| format!("cannot read {}", path.display()))?;
            for dict in data.values() {
                for key in dict.keys() {
                    if !known.contains(key) {
                        warnings.push(format!("unknown configuration key '{key}' in {} (ignored)", path.display()));
                    }
                }
            }
            fig = fig.merge(toml);
        }
        // Environment: ROSTER_KEY and ROSTER_KEY_FILE. ROSTER_TEST_* belongs to the test suites.
        let mut env_dict = Dict::new();
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("ROSTER_") else { continue };
            let key = rest.to_ascii_lowercase();
            if key.starts_with("test_") {
                continue;
            }
            let (key, value) = match key.strip_suffix("_file") {
                Some(base) if known.iter().any(|k| k == base) => {
                    let content = std::fs::read_to_string(&v).with_context(|| format!("cannot read {k}"))?;
                    (base.to_owned(), content.trim_end().to_owned())
                }
                _ => (key, v),
            };
            if !known.contains(&key) {
                warnings.push(format!("unknown environment variable {k} (ignored)"));
                continue;
            }
            // Typed like figment's own Env provider: "1024" is a number, "true" a boolean; a list is
            // comma-separated.
            let parsed = if key == "trusted_proxies" {
                FigValue::from(value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect::<Vec<_>>())
            } else {
                value.parse::<FigValue>().unwrap_or_else(|_| FigValue::from(value))
            };
            env_dict.insert(key, parsed);
        }
        fig = fig.merge(Serialized::defaults(env_dict)).merge(Serialized::defaults(flags));
        let cfg: Config = fig.extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        cfg.validate()?;
        Ok((cfg, warnings))
    }

    fn validate(&self) -> Result<()> {
        let url = url::Url::parse(&self.public_url).map_err(|_| anyhow::anyhow!("public_url is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            bail!("public_url must be an http(s) URL with a host");
        }
        if url.query().is_some() || url.fragment().is_some() {
            bail!("public_url must not have a query or fragment");
        }
        if !matches!(self.sqlite_synchronous.as_str(), "full" | "normal") {
            bail!("sqlite_synchronous must be 'full' or 'normal'");
        }
        if self.metadata_max_bytes < 256 || self.metadata_max_depth < 1 {
            bail!("metadata limits are too small");
        }
        if self.management_rate_limit <= 0.0 || self.management_rate_burst == 0 {
            bail!("management rate limit must be positive");
        }
        if self.access_token_lifetime_secs < 60 {
            bail!("access_token_lifetime_secs must be ≥ 60");
        }
        if let Some(url) = self.smtp_url.as_deref().filter(|u| !u.is_empty()) {
            roster_mail::SmtpSettings::from_url(url).map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?;
        }
        if let Some(from) = self.mail_from.as_deref().filter(|f| !f.is_empty())
            && !roster_mail::is_mailbox(from)
        {
            bail!("mail_from must be an email address, optionally with a name: Name <address>");
        }
        if let Some(key) = self.master_key.as_deref().filter(|k| !k.is_empty()) {
            roster_auth::MasterKey::from_base64(key).map_err(|e| anyhow::anyhow!("master_key: {e}"))?;
        }
        if self.mail_max_attempts < 1 || self.mail_concurrency < 1 || self.mail_poll_interval_ms < 10 {
            bail!("mail_max_attempts, mail_concurrency must be ≥ 1 and mail_poll_interval_ms ≥ 10");
        }
        if !(60..=30 * 86_400).contains(&self.reset_link_lifetime_secs)
            || !(60..=30 * 86_400).contains(&self.verification_link_lifetime_secs)
        {
            bail!("link lifetimes must be between 60 seconds and 30 days");
        }
        if let Some(bad) = self.trusted_proxies.iter().find(|p| roster_http::attack::Cidr::parse(p).is_none()) {
            bail!("trusted_proxies: '{bad}' is not an IP address or CIDR range");
        }
        if self.reset_requests_per_hour < 1 {
            bail!("reset_requests_per_hour must be ≥ 1");
        }
        if self.mail_lease_secs <= self.mail_send_timeout_secs {
            bail!("mail_lease_secs must be longer than mail_send_timeout_secs");
        }
        argon2::Params::new(self.argon2_memory_kib, self.argon2_iterations, self.argon2_parallelism, Some(32))
            .map_err(|_| anyhow::anyhow!("invalid argon2 parameters"))?;
        Ok(())
    }

    /// The database URL, defaulting to a SQLite file in the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) if !u.is_empty() => u.clone(),
            _ => format!("sqlite://{}", self.data_dir.join("roster.db").display()),
        }
    }

    /// `public_url` without a trailing slash.
    pub fn public_url(&self) -> String {
        self.public_url.trim_end_matches('/').to_owned()
    }
}

fn known_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(m)) => {
            let mut keys: Vec<String> = m.keys().cloned().collect();
            keys.extend(["database_url", "master_key", "smtp_url", "mail_from"].map(String::from));
            keys
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults() {
        let (c, w) = Config::load_from(None, &FlagOverrides::default(), env(&[])).expect("loads");
        assert!(w.is_empty());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url(), "http://127.0.0.1:8080");
        assert_eq!(c.database_url(), "sqlite://./data/roster.db");
    }

    #[test]
    fn layers_in_order() {
        let dir = std::env::temp_dir().join(format!("roster-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("roster.toml");
        std::fs::write(
            &file,
            "public_url = \"https://from-file.example\"\nlisten = \"127.0.0.1:9000\"\nlog_level = \"debug\"\nbogus = 1\n",
        )
        .expect("write");
        let secret = dir.join("db-url");
        std::fs::write(&secret, "postgres://from-file-secret/db\n").expect("write");
        let flags = FlagOverrides { listen: Some("127.0.0.1:9999".parse().expect("addr")), ..Default::default() };
        let (c, w) = Config::load_from(
            Some(&file),
            &flags,
            env(&[
                ("ROSTER_PUBLIC_URL", "https://from-env.example"),
                ("ROSTER_DATABASE_URL_FILE", secret.to_str().expect("utf8")),
                ("ROSTER_TEST_POSTGRES_URL", "ignored"),
                ("ROSTER_NOPE", "x"),
                ("ROSTER_ARGON2_MEMORY_KIB", "1024"),
                ("ROSTER_BOOTSTRAP_DEFAULT_TENANT", "false"),
                ("ROSTER_MANAGEMENT_RATE_LIMIT", "0.5"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.public_url, "https://from-env.example", "env beats file");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9999", "flag beats file");
        assert_eq!(c.log_level, "debug", "file beats default");
        assert_eq!(
            (c.argon2_memory_kib, c.bootstrap_default_tenant, c.management_rate_limit),
            (1024, false, 0.5),
            "typed env values"
        );
        assert_eq!(c.database_url(), "postgres://from-file-secret/db", "*_FILE read");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|m| m.contains("bogus")) && w.iter().any(|m| m.contains("ROSTER_NOPE")));
    }

    #[test]
    fn invalid_values_are_refused() {
        let bad = FlagOverrides { public_url: Some("ftp://x".into()), ..Default::default() };
        assert!(Config::load_from(None, &bad, env(&[])).is_err());
        assert!(Config::load_from(None, &FlagOverrides::default(), env(&[("ROSTER_LISTEN", "nope")])).is_err());
    }
}
