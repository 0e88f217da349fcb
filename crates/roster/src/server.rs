//! Start-up and shutdown of `roster serve`: open and migrate the database, optionally create the
//! `default` tenant, serve HTTP until a shutdown signal, then drain in-flight requests (bounded by
//! `shutdown_timeout_secs`) and close the database.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use roster_auth::{HasherConfig, PasswordHasher};
use roster_domain::{MetadataLimits, TenantName};
use roster_http::{AppState, HttpConfig, RateLimitConfig};
use roster_store::{Store, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Config;
use crate::provision::{self, TenantCredentials};

pub fn store_options(cfg: &Config) -> StoreOptions {
    let mut o = StoreOptions::new(cfg.database_url());
    o.sqlite_synchronous_full = cfg.sqlite_synchronous != "normal";
    o.max_connections = cfg.database_max_connections;
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
    h.min_password_length = cfg.min_password_length;
    h.access_token_lifetime = cfg.access_token_lifetime_secs;
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

/// Serve until `shutdown` resolves, then drain.
pub async fn run(
    cfg: &Config,
    store: Store,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let state = AppState::new(store.clone(), http_config(cfg), hasher(cfg)?);
    let app = roster_http::router(state);
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
    tokio::select! {
        r = server => r.context("server error")?,
        () = async { draining.notified().await; tokio::time::sleep(timeout).await } => {
            tracing::warn!(seconds = cfg.shutdown_timeout_secs, "in-flight requests did not finish in time");
        }
    }
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
