//! Issuing tokens to a user: access token (for `/userinfo`, or a user-scoped Management API token),
//! ID token (when `openid` was asked for) and refresh token (with `offline_access`, if the client may
//! use the refresh grant). Shared by the password, refresh and authorization-code grants.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use roster_auth::AccessClaims;
use roster_auth::jwt::Audience;
use roster_domain::scope::{CURRENT_USER_OPT_IN, CURRENT_USER_SCOPES, Scopes};
use roster_domain::user::User;
use roster_domain::{ClientId, Timestamp, UserId};
use roster_store::{Client, RefreshToken};
use serde_json::{Map, Value, json};

use crate::error::OAuthError;
use crate::state::AppState;
use crate::tenant::TenantCtx;

/// OIDC scopes Roster understands.
pub const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];
/// Scope used when a request names none.
pub const DEFAULT_SCOPE: &str = "openid profile email";

/// The scopes and audience a user token will carry, decided from the request.
pub struct Grant {
    pub scope: Scopes,
    /// `Some(management audience)` for a user-scoped Management API token.
    pub audience: Option<String>,
}

/// Decide scopes and audience: OIDC scopes as asked; with the Management API audience, the
/// current-user scopes asked for (or all of them when none is named). Any other audience is refused.
pub fn decide(tenant: &TenantCtx, requested_scope: Option<&str>, audience: Option<&str>) -> Result<Grant, OAuthError> {
    let requested = Scopes::parse(requested_scope.filter(|s| !s.trim().is_empty()).unwrap_or(DEFAULT_SCOPE));
    let mut granted: Vec<&str> = OIDC_SCOPES.iter().copied().filter(|s| requested.contains(s)).collect();
    let audience = match audience.filter(|a| !a.is_empty()) {
        None => None,
        Some(a) if a == tenant.management_audience => {
            let asked: Vec<&str> =
                CURRENT_USER_SCOPES.iter().chain(CURRENT_USER_OPT_IN).copied().filter(|s| requested.contains(s)).collect();
            granted.extend(if asked.is_empty() { CURRENT_USER_SCOPES.to_vec() } else { asked });
            Some(a.to_owned())
        }
        Some(a) => {
            return Err(OAuthError::new(
                StatusCode::FORBIDDEN,
                "access_denied",
                format!("Service not enabled within domain: {a}"),
            ));
        }
    };
    Ok(Grant { scope: Scopes::from_list(granted), audience })
}

/// A new refresh token: the value for the client and the record (its SHA-256) for the store.
pub fn new_refresh_token(
    state: &AppState,
    user: &UserId,
    client: &ClientId,
    grant: &Grant,
    family: Option<&str>,
    session_id: Option<&str>,
    auth_time: Timestamp,
) -> (String, RefreshToken) {
    let value = URL_SAFE_NO_PAD.encode(roster_domain::secret::random_bytes(32));
    let now = Timestamp::now();
    let record = RefreshToken {
        id_hash: roster_auth::secret::hash_secret(&value),
        family_id: family.map(str::to_owned).unwrap_or_else(|| format!("rtf_{}", roster_domain::secret::random_alphanumeric(20))),
        user_id: user.clone(),
        client_id: client.clone(),
        scope: grant.scope.to_space_separated(),
        audience: grant.audience.clone(),
        session_id: session_id.map(str::to_owned),
        auth_time,
        created_at: now,
        expires_at: Timestamp::from_millis(now.millis() + state.cfg.refresh_token_lifetime * 1000),
        rotated: false,
        revoked: false,
    };
    (value, record)
}

/// Whether this grant should come with a refresh token.
pub fn wants_refresh(client: &Client, grant: &Grant) -> bool {
    grant.scope.contains("offline_access") && client.grant_types.iter().any(|g| g == "refresh_token")
}

/// Sign the access and ID tokens and build the token response.
pub struct Issue<'a> {
    pub tenant: &'a TenantCtx,
    pub client: &'a Client,
    pub user: &'a User,
    pub grant: &'a Grant,
    pub nonce: Option<&'a str>,
    pub auth_time: Timestamp,
    /// `password` for the password grants; none for code and refresh.
    pub gty: Option<&'static str>,
    pub refresh_token: Option<String>,
}

impl Issue<'_> {
    pub fn respond(self, state: &AppState) -> Result<Response, OAuthError> {
        let now = Timestamp::now().seconds();
        let t = self.tenant;
        let userinfo = format!("{}userinfo", t.issuer);
        let aud = match &self.grant.audience {
            Some(a) => Audience::Many(vec![a.clone(), userinfo]),
            None => Audience::One(userinfo),
        };
        let scope = self.grant.scope.to_space_separated();
        let access = AccessClaims {
            iss: t.issuer.clone(),
            sub: self.user.user_id.to_string(),
            aud,
            iat: now,
            exp: now + state.cfg.access_token_lifetime,
            scope: scope.clone(),
            gty: self.gty.map(str::to_owned),
            azp: Some(self.client.client_id.to_string()),
        };
        let sign_err = |_| OAuthError::server_error();
        let mut body = json!({
            "access_token": t.keys.sign(&access).map_err(sign_err)?,
            "scope": scope,
            "expires_in": state.cfg.access_token_lifetime,
            "token_type": "Bearer",
        });
        if self.grant.scope.contains("openid") {
            let id = id_token_claims(
                t,
                self.client,
                self.user,
                &self.grant.scope,
                self.nonce,
                self.auth_time,
                now,
                state.cfg.id_token_lifetime,
            );
            body["id_token"] = json!(t.keys.sign(&id).map_err(sign_err)?);
        }
        if let Some(rt) = self.refresh_token {
            body["refresh_token"] = json!(rt);
        }
        let mut resp = Json(body).into_response();
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        Ok(resp)
    }
}

/// The profile claims a scope set releases (OIDC Core §5.4), as shared by the ID token and `/userinfo`.
pub fn profile_claims(user: &User, scope: &Scopes) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("sub".into(), json!(user.user_id));
    if scope.contains("profile") {
        for (k, v) in [
            ("name", &user.name),
            ("nickname", &user.nickname),
            ("given_name", &user.given_name),
            ("family_name", &user.family_name),
            ("picture", &user.picture),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        m.insert("updated_at".into(), json!(user.updated_at));
    }
    if scope.contains("email") {
        if let Some(e) = &user.email {
            m.insert("email".into(), json!(e));
        }
        m.insert("email_verified".into(), json!(user.email_verified));
    }
    m
}

#[allow(clippy::too_many_arguments)]
fn id_token_claims(
    t: &TenantCtx,
    client: &Client,
    user: &User,
    scope: &Scopes,
    nonce: Option<&str>,
    auth_time: Timestamp,
    now: i64,
    lifetime: i64,
) -> Value {
    let mut m = profile_claims(user, scope);
    m.insert("iss".into(), json!(t.issuer));
    m.insert("aud".into(), json!(client.client_id));
    m.insert("iat".into(), json!(now));
    m.insert("exp".into(), json!(now + lifetime));
    m.insert("auth_time".into(), json!(auth_time.seconds()));
    if let Some(n) = nonce {
        m.insert("nonce".into(), json!(n));
    }
    Value::Object(m)
}
