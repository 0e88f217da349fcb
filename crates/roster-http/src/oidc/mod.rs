//! OpenID Connect discovery and the tenant's JWKS.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::extract::AuthTenant;

/// `/.well-known/openid-configuration`: only what this server serves today is announced.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "Discovery",
    responses((status = 200, description = "OpenID Provider metadata")))]
pub async fn discovery(AuthTenant(t): AuthTenant) -> Response {
    let issuer = &t.issuer;
    let body = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}oauth/token"),
        "jwks_uri": format!("{issuer}.well-known/jwks.json"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "email", "email_verified", "name", "nickname", "picture"],
    });
    cached(Json(body).into_response())
}

/// `/.well-known/jwks.json`: the tenant's public signing keys.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "Discovery", responses((status = 200, description = "JWK set")))]
pub async fn jwks(AuthTenant(t): AuthTenant) -> Response {
    cached(Json(t.keys.jwks().clone()).into_response())
}

fn cached(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    r
}
