//! Error types of the HTTP surfaces, one per surface, each producing the Auth0 body of its surface.
//!
//! - [`ApiError`]: Management API (`/api/v2`): `{"statusCode","error","message","errorCode"}`.
//! - [`OAuthError`]: Authentication API (`/oauth/token`): `{"error","error_description"}`.
//!
//! Unexpected failures (storage, hashing) become a 500/503 whose body says nothing about the cause;
//! the cause goes to the log, tagged with the request's span.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roster_auth::HashError;
use roster_domain::ValidationError;
use roster_store::StoreError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub error_code: Option<&'static str>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>, error_code: Option<&'static str>) -> Self {
        Self { status, message: message.into(), error_code, retry_after: None }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message, Some("invalid_body"))
    }
    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message, Some("invalid_query_string"))
    }
    pub fn not_found_user() -> Self {
        Self::new(StatusCode::NOT_FOUND, "The user does not exist.", Some("inexistent_user"))
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message, None)
    }
    pub fn insufficient_scope(any_of: &[&str]) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            format!("Insufficient scope, expected any of: {}", any_of.join(",")),
            Some("insufficient_scope"),
        )
    }
    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "The service is temporarily unavailable, try again later.", None)
            .with_retry_after(1)
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", None)
    }
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "statusCode": self.status.as_u16(),
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
        });
        if let Some(code) = self.error_code {
            body["errorCode"] = json!(code);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::bad_request(e.message())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(v) => Self::bad_request(v.message()),
            StoreError::Unavailable(cause) => {
                tracing::error!(error = %cause, "database unavailable");
                Self::unavailable()
            }
            other => {
                tracing::error!(error = ?other, "storage error");
                Self::internal()
            }
        }
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many password operations in progress, try again later.",
                Some("too_many_requests"),
            )
            .with_retry_after(1),
            other => {
                tracing::error!(error = %other, "password hashing error");
                Self::internal()
            }
        }
    }
}

/// An Authentication API error (`/oauth/token`, later `/dbconnections/*`).
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into() }
    }
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }
    pub fn access_denied_unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized")
    }
    pub fn server_error() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "Internal error")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(json!({"error": self.error, "error_description": self.description}))).into_response();
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

impl From<HashError> for OAuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded => Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                error: "too_many_requests",
                description: "Too many login attempts are being processed, try again shortly.".into(),
            },
            other => {
                tracing::error!(error = %other, "password hashing error");
                Self::server_error()
            }
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::error!(error = %cause, "database unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "The service is temporarily unavailable.")
            }
            other => {
                tracing::error!(error = ?other, "storage error");
                Self::server_error()
            }
        }
    }
}
