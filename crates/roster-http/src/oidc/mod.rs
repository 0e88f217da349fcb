//! OpenID Connect discovery and the tenant's JWKS.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roster_auth::AccessClaims;
use roster_domain::UserId;
use roster_domain::scope::Scopes;
use serde_json::{Value, json};

use crate::authentication::issue::profile_claims;
use crate::extract::AuthTenant;

/// `/.well-known/openid-configuration`: only what this server serves today is announced.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "Discovery",
    responses((status = 200, description = "OpenID Provider metadata")))]
pub async fn discovery(AuthTenant(t): AuthTenant) -> Response {
    let issuer = &t.issuer;
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}authorize"),
        "token_endpoint": format!("{issuer}oauth/token"),
        "end_session_endpoint": format!("{issuer}v2/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "userinfo_endpoint": format!("{issuer}userinfo"),
        "jwks_uri": format!("{issuer}.well-known/jwks.json"),
        "grant_types_supported": ["authorization_code", "client_credentials", "password", "refresh_token", "http://auth0.com/oauth/grant-type/password-realm"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified", "name", "given_name", "family_name", "nickname", "picture", "updated_at"],
        "prompt_values_supported": ["none", "login"],
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

/// An RFC 6750 error on `/userinfo`: status, `WWW-Authenticate` and a JSON body.
fn userinfo_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (status, Json(json!({"error": error, "error_description": description}))).into_response();
    let challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// `GET /userinfo`: the user's claims for the scopes of the access token, which must include `openid`.
#[utoipa::path(get, path = "/userinfo", tag = "Discovery", responses((status = 200, description = "OIDC claims"), (status = 401)))]
pub async fn userinfo(AuthTenant(t): AuthTenant, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, tok)| scheme.eq_ignore_ascii_case("bearer") && !tok.trim().is_empty())
        .map(|(_, tok)| tok.trim().to_owned());
    let Some(token) = token else {
        return userinfo_error(StatusCode::UNAUTHORIZED, "invalid_request", "Missing or malformed bearer token");
    };
    let audience = format!("{}userinfo", t.issuer);
    let claims: AccessClaims = match t.keys.verify(&token, &t.issuer, &audience) {
        Ok(c) => c,
        Err(_) => return userinfo_error(StatusCode::UNAUTHORIZED, "invalid_token", "The access token is invalid"),
    };
    let scope = Scopes::parse(&claims.scope);
    if !scope.contains("openid") {
        return userinfo_error(StatusCode::UNAUTHORIZED, "insufficient_scope", "The access token lacks the openid scope");
    }
    let Ok(id) = UserId::parse(&claims.sub) else {
        return userinfo_error(StatusCode::UNAUTHORIZED, "invalid_token", "The access token is invalid");
    };
    match t.store.user(&id).await {
        Ok(Some(u)) if !u.blocked => {
            let mut r = Json(Value::Object(profile_claims(&u, &scope))).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Ok(_) => userinfo_error(StatusCode::UNAUTHORIZED, "invalid_token", "The access token is invalid"),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}
