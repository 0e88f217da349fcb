//! The HTTP surface of Roster (axum).
//!
//! Layout: `management/` (`/t/{tenant}/api/v2`), `authentication/` (`/t/{tenant}/oauth/token`),
//! `oidc/` (discovery, JWKS). Each surface has its own error type (`error.rs`) and every input is
//! parsed by an extractor (`extract.rs`). Handlers never build SQL; they call a tenant-scoped store.
//!
//! This crate must never put internal error text in a response body, nor a token, secret or password
//! in a log line.

pub mod account;
pub mod attack;
pub mod authentication;
pub mod error;
pub mod extract;
pub mod logsink;
pub mod management;
pub mod me;
pub mod oidc;
pub mod openapi;
pub mod pages;
pub mod passwords;
pub mod ratelimit;
pub mod state;
pub mod tenant;
pub mod tickets;

use std::any::Any;

use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::management::users;
pub use crate::ratelimit::RateLimitConfig;
pub use crate::state::{AppState, HttpConfig, MailState};
pub use crate::tenant::issuer_for;

/// The whole application.
pub fn router(state: AppState) -> Router {
    let management = Router::new()
        .route("/t/{tenant}/api/v2/users", get(users::list_users).post(users::create_user))
        .route("/t/{tenant}/api/v2/users/{id}", get(users::get_user).patch(users::update_user).delete(users::delete_user))
        .route("/t/{tenant}/api/v2/users-by-email", get(users::users_by_email))
        .route("/t/{tenant}/api/v2/clients", get(management::clients::list_clients).post(management::clients::create_client))
        .route(
            "/t/{tenant}/api/v2/clients/{id}",
            get(management::clients::get_client)
                .patch(management::clients::update_client)
                .delete(management::clients::delete_client),
        )
        .route("/t/{tenant}/api/v2/clients/{id}/rotate-secret", post(management::clients::rotate_secret))
        .route(
            "/t/{tenant}/api/v2/connections",
            get(management::connections::list_connections).post(management::connections::create_connection),
        )
        .route(
            "/t/{tenant}/api/v2/connections/{id}",
            get(management::connections::get_connection)
                .patch(management::connections::update_connection)
                .delete(management::connections::delete_connection),
        )
        .route(
            "/t/{tenant}/api/v2/emails/provider",
            get(management::emails::get_provider)
                .post(management::emails::create_provider)
                .patch(management::emails::update_provider)
                .delete(management::emails::delete_provider),
        )
        .route("/t/{tenant}/api/v2/email-templates", post(management::emails::create_template))
        .route(
            "/t/{tenant}/api/v2/email-templates/{templateName}",
            get(management::emails::get_template).put(management::emails::put_template).patch(management::emails::patch_template),
        )
        .route("/t/{tenant}/api/v2/emails/outbox", get(management::emails::list_outbox))
        .route("/t/{tenant}/api/v2/emails/outbox/{id}/retry", post(management::emails::retry_outbox))
        .route("/t/{tenant}/api/v2/tickets/password-change", post(management::tickets::password_change))
        .route("/t/{tenant}/api/v2/tickets/email-verification", post(management::tickets::email_verification))
        .route("/t/{tenant}/api/v2/jobs/verification-email", post(management::tickets::verification_email_job))
        .route("/t/{tenant}/api/v2/jobs/{id}", get(management::tickets::get_job))
        .route(
            "/t/{tenant}/api/v2/attack-protection/brute-force-protection",
            get(management::attack::get_brute_force).patch(management::attack::patch_brute_force_settings),
        )
        .route(
            "/t/{tenant}/api/v2/attack-protection/suspicious-ip-throttling",
            get(management::attack::get_throttling).patch(management::attack::patch_throttling_settings),
        )
        .route(
            "/t/{tenant}/api/v2/anomaly/blocks/ips/{id}",
            get(management::attack::get_ip_block).delete(management::attack::delete_ip_block),
        )
        .route(
            "/t/{tenant}/api/v2/user-blocks",
            get(management::attack::list_by_identifier).delete(management::attack::delete_by_identifier),
        )
        .route(
            "/t/{tenant}/api/v2/user-blocks/{id}",
            get(management::attack::list_by_user).delete(management::attack::delete_by_user),
        )
        .route(
            "/t/{tenant}/api/v2/tenants/settings",
            get(management::settings::get_settings).patch(management::settings::patch_settings),
        )
        .route("/t/{tenant}/api/v2/branding", get(management::settings::get_branding).patch(management::settings::patch_branding))
        .route("/t/{tenant}/api/v2/openapi.json", get(openapi::serve))
        .route("/t/{tenant}/me", get(me::get_me).patch(me::patch_me).delete(me::delete_me))
        .route("/t/{tenant}/me/password", post(me::change_password))
        .route("/t/{tenant}/me/email", post(me::change_email))
        .route("/t/{tenant}/me/sessions", get(me::list_sessions).delete(me::delete_sessions))
        .route("/t/{tenant}/me/sessions/{id}", axum::routing::delete(me::delete_session))
        .route("/t/{tenant}/me/terms", post(me::accept_terms))
        .route("/t/{tenant}/me/export", get(me::export))
        .layer(from_fn_with_state(state.clone(), ratelimit::management_rate_limit));
    let authentication = Router::new()
        .route("/t/{tenant}/oauth/token", post(authentication::token::token))
        .route("/t/{tenant}/dbconnections/signup", post(authentication::signup::signup))
        .route("/t/{tenant}/dbconnections/change_password", post(authentication::change_password::change_password))
        .route("/t/{tenant}/.well-known/openid-configuration", get(oidc::discovery))
        .route("/t/{tenant}/.well-known/jwks.json", get(oidc::jwks))
        .route("/t/{tenant}/userinfo", get(oidc::userinfo))
        .route("/t/{tenant}/authorize", get(pages::login::authorize))
        .route("/t/{tenant}/u/login", get(pages::login::login_page).post(pages::login::login_submit))
        .route("/t/{tenant}/u/signup", get(pages::login::signup_page).post(pages::login::signup_submit))
        .route("/t/{tenant}/u/reset-password", get(pages::reset::reset_page).post(pages::reset::reset_submit))
        .route("/t/{tenant}/u/email-verification", get(pages::reset::verify_page).post(pages::reset::verify_submit))
        .route("/t/{tenant}/u/unblock", get(pages::reset::unblock_page).post(pages::reset::unblock_submit))
        .route("/t/{tenant}/u/terms", post(pages::login::terms_submit))
        .route("/t/{tenant}/u/email-change", get(pages::account::email_change_page).post(pages::account::email_change_submit))
        .route(
            "/t/{tenant}/u/email-change/cancel",
            get(pages::account::email_cancel_page).post(pages::account::email_cancel_submit),
        )
        .route("/t/{tenant}/account", get(pages::account::portal))
        .route("/t/{tenant}/account/callback", get(pages::account::callback))
        .route("/t/{tenant}/account/profile", post(pages::account::save_profile))
        .route("/t/{tenant}/account/preferences", post(pages::account::save_preferences))
        .route("/t/{tenant}/account/password", post(pages::account::change_password))
        .route("/t/{tenant}/account/email", post(pages::account::change_email))
        .route("/t/{tenant}/account/sessions/revoke", post(pages::account::revoke_session))
        .route("/t/{tenant}/account/sessions/revoke-others", post(pages::account::revoke_other_sessions))
        .route("/t/{tenant}/account/terms", post(pages::account::accept_terms))
        .route("/t/{tenant}/account/export", post(pages::account::export))
        .route("/t/{tenant}/account/delete", post(pages::account::delete))
        .route("/t/{tenant}/v2/logout", get(pages::login::logout));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(management)
        .merge(authentication)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(close_after_unread_body))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // Only the route template: paths and queries may carry personal data or one-time secrets.
            // Borrowed, and evaluated only when the span is enabled (no allocation per request).
            tracing::info_span!(
                "request",
                method = %req.method(),
                route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or_default()
            )
        }))
        .with_state(state)
}

/// An error answered before the request body was read (401 before a JSON body, 413, 415...) leaves
/// unread bytes on a keep-alive connection, and hyper then drops the connection without notice. Say
/// so in the response instead (`Connection: close`), so clients do not reuse a dead connection. An
/// error answered after the body was read to its end (a refused login, a 400 on a parsed body) keeps
/// the connection: closing it would make every refused attempt cost the client a new connection.
async fn close_after_unread_body(req: Request, next: axum::middleware::Next) -> Response {
    let has_body = req.headers().contains_key(axum::http::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    if !has_body {
        return next.run(req).await;
    }
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = finished.clone();
    let req = req.map(|b| axum::body::Body::new(ReadToEnd { inner: b, finished: seen }));
    let mut resp = next.run(req).await;
    let unread = !finished.load(std::sync::atomic::Ordering::Acquire);
    if unread && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut().insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A request body that records whether it was read to its end.
struct ReadToEnd {
    inner: axum::body::Body,
    finished: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl http_body::Body for ReadToEnd {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished.store(true, std::sync::atomic::Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = ?e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not Found", None)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", None)
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"statusCode": 500, "error": "Internal Server Error", "message": "Internal error"})),
    )
        .into_response()
}
