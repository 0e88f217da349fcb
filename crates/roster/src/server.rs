//! Start-up and shutdown of `roster serve`: open and migrate the database, optionally create the
//! `default` tenant, serve HTTP until a shutdown signal, then drain in-flight requests (bounded by
//! `shutdown_timeout_secs`) and close the database.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use roster_auth::{HasherConfig, MasterKey, PasswordHasher};
use roster_domain::{MetadataLimits, TenantName};
use roster_http::{AppState, HttpConfig, MailState, RateLimitConfig};
use roster_mail::{Relay, RelayConfig, Renderer, SmtpSettings, Transport};
use roster_store::{Store, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Config;
use crate::provision::{self, TenantCredentials};

pub fn store_options(cfg: &Config) -> StoreOptions {
    let mut o = StoreOptions::new(cfg.database_url());
    o.sqlite_synchronous_full = cfg.sqlite_synchronous != "normal";
    o.max_connections = cfg.database_max_connections;
    o.user_cache_capacity = cfg.user_cache_size;
    o
}

/// Connect and migrate.
pub async fn open_store(cfg: &Config) -> Result<Store> {
    let store = Store::connect(&store_options(cfg)).await.context("cannot open the database")?;
    store.migrate().await.context("cannot migrate the database")?;
    Ok(store)
}

pub fn http_config(cfg: &Config) -> HttpConfig {
    let mut h = HttpConfig::new(cfg.public_url());
    h.metadata_limits = MetadataLimits { max_bytes: cfg.metadata_max_bytes, max_depth: cfg.metadata_max_depth };
    h.management_rate_limit = RateLimitConfig { per_second: cfg.management_rate_limit, burst: cfg.management_rate_burst };
    h.access_token_lifetime = cfg.access_token_lifetime_secs;
    h.reset_ticket_lifetime = cfg.reset_link_lifetime_secs;
    h.verification_ticket_lifetime = cfg.verification_link_lifetime_secs;
    h.reset_requests_per_hour = cfg.reset_requests_per_hour;
    h.trusted_proxies = cfg.trusted_proxies.iter().filter_map(|p| roster_http::attack::Cidr::parse(p)).collect();
    h
}

pub fn hasher(cfg: &Config) -> Result<PasswordHasher> {
    PasswordHasher::new(HasherConfig {
        memory_kib: cfg.argon2_memory_kib,
        iterations: cfg.argon2_iterations,
        parallelism: cfg.argon2_parallelism,
        threads: cfg.hash_threads,
        queue: cfg.hash_queue,
    })
    .map_err(|e| anyhow::anyhow!("cannot start the password hasher: {e}"))
}

/// On an empty database, create the `default` tenant and return its credentials (shown once).
/// Several nodes starting together on one PostgreSQL: one creates it, the others see it exists.
pub async fn bootstrap(store: &Store, cfg: &Config) -> Result<Option<TenantCredentials>> {
    if !cfg.bootstrap_default_tenant || !store.list_tenants().await?.is_empty() {
        return Ok(None);
    }
    let name = TenantName::parse("default").map_err(|e| anyhow::anyhow!("{e}"))?;
    match provision::create_tenant(store, name, &cfg.public_url()).await {
        Ok(creds) => Ok(Some(creds)),
        Err(provision::ProvisionError::Exists(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The master key: from configuration, else `{data_dir}/master.key` (created on first start).
pub fn master_key(cfg: &Config) -> Result<MasterKey> {
    match cfg.master_key.as_deref().filter(|k| !k.is_empty()) {
        Some(k) => MasterKey::from_base64(k).map_err(|e| anyhow::anyhow!("master_key: {e}")),
        None => {
            let path = cfg.data_dir.join("master.key");
            MasterKey::load_or_create(&path).with_context(|| format!("cannot read or create the master key {}", path.display()))
        }
    }
}

fn public_host(cfg: &Config) -> String {
    url::Url::parse(&cfg.public_url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
        .unwrap_or_else(|| "localhost".into())
}

/// The server's transport and the relay's pacing, from configuration.
pub fn relay_parts(cfg: &Config) -> Result<(Transport, RelayConfig)> {
    let send_timeout = Duration::from_secs(cfg.mail_send_timeout_secs);
    let transport = match cfg.smtp_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => {
            let settings = SmtpSettings::from_url(url).map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?;
            Transport::smtp(&settings, send_timeout).map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?
        }
        None => Transport::files(cfg.data_dir.join("mail")),
    };
    let host = public_host(cfg);
    let default_from = match cfg.mail_from.as_deref().filter(|f| !f.is_empty()) {
        Some(f) => f.to_owned(),
        None if roster_mail::is_mailbox(&format!("no-reply@{host}")) => format!("no-reply@{host}"),
        None => "no-reply@localhost".to_owned(),
    };
    let relay = RelayConfig {
        poll_interval: Duration::from_millis(cfg.mail_poll_interval_ms),
        lease: Duration::from_secs(cfg.mail_lease_secs),
        send_timeout,
        max_attempts: cfg.mail_max_attempts,
        retry_base: Duration::from_millis(cfg.mail_retry_base_ms),
        retry_max: Duration::from_secs(cfg.mail_retry_max_secs),
        batch: 32,
        concurrency: cfg.mail_concurrency,
        message_id_domain: host,
        default_from,
    };
    Ok((transport, relay))
}

/// Serve until `shutdown` resolves, then drain.
pub async fn run(
    cfg: &Config,
    store: Store,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let key = master_key(cfg)?;
    let renderer = Arc::new(Renderer::new());
    let (transport, relay_cfg) = relay_parts(cfg)?;
    let mail = MailState { renderer: renderer.clone(), key: key.clone() };
    let state = AppState::new(store.clone(), http_config(cfg), hasher(cfg)?, mail);
    let app = roster_http::router(state);
    let (stop_relay, relay_stopped) = tokio::sync::watch::channel(false);
    let relay =
        cfg.mail_relay.then(|| tokio::spawn(Relay::new(store.clone(), renderer, key, transport, relay_cfg).run(relay_stopped)));
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = store.kind(), "roster is listening");
    let draining = Arc::new(Notify::new());
    let notify = draining.clone();
    let server =
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            notify.notify_one();
        });
    let timeout = Duration::from_secs(cfg.shutdown_timeout_secs);
    let served = tokio::select! {
        r = server => r.context("server error"),
        () = async { draining.notified().await; tokio::time::sleep(timeout).await } => {
            tracing::warn!(seconds = cfg.shutdown_timeout_secs, "in-flight requests did not finish in time");
            Ok(())
        }
    };
    // The relay finishes the mail it is sending and hands back the rest before the database closes.
    let _ = stop_relay.send(true);
    if let Some(relay) = relay
        && tokio::time::timeout(timeout, relay).await.is_err()
    {
        tracing::warn!("the mail relay did not stop in time; its leases expire on their own");
    }
    served?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
