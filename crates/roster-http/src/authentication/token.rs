//! `POST /t/{tenant}/oauth/token`.
//!
//! Bodies may be form-encoded (the standard) or JSON (what the Auth0 SDKs send, with explicit `null`s
//! for unset optionals). Client authentication: `client_secret_post` or `client_secret_basic`. Secrets
//! are checked against their SHA-256 in constant time; an unknown client and a wrong secret get the same
//! answer. Grants: `client_credentials` (here), `password` and `password-realm` (`login.rs`),
//! `refresh_token` (`refresh.rs`).

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use roster_auth::AccessClaims;
use roster_auth::jwt::Audience;
use roster_domain::log::{LogEvent, LogType};
use roster_domain::scope::Scopes;
use roster_domain::{ClientId, Timestamp};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use roster_store::Client;

use crate::error::OAuthError;
use crate::extract::{AuthTenant, ClientIp};
use crate::state::AppState;
use crate::tenant::TenantCtx;

/// Largest token request body (form or JSON).
const MAX_TOKEN_BODY: usize = 64 * 1024;

/// A token request. Every field is optional at parse time so that a missing one gets a precise error.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    #[schema(format = Password)]
    pub client_secret: Option<String>,
    pub audience: Option<String>,
    pub scope: Option<String>,
    pub username: Option<String>,
    #[schema(format = Password)]
    pub password: Option<String>,
    /// Connection name for the password-realm grant.
    pub realm: Option<String>,
    pub refresh_token: Option<String>,
    pub code: Option<String>,
    pub code_verifier: Option<String>,
    pub redirect_uri: Option<String>,
}

/// `TokenRequest` from a form or JSON body, with client credentials from Basic auth when present.
pub struct TokenForm(pub TokenRequest);

impl<S: Send + Sync> FromRequest<S> for TokenForm {
    type Rejection = OAuthError;
    async fn from_request(req: Request<Body>, _: &S) -> Result<Self, OAuthError> {
        let basic = basic_credentials(req.headers());
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(req.into_body(), MAX_TOKEN_BODY)
            .await
            .map_err(|_| OAuthError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "Request body is too large"))?;
        let mut tr: TokenRequest = match ct.as_str() {
            "application/json" => serde_json::from_slice(&bytes).map_err(|_| {
                OAuthError::invalid_request("The request body is not valid JSON or has a field of the wrong type")
            })?,
            "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(&bytes)
                .map_err(|_| OAuthError::invalid_request("The request body is not a valid form"))?,
            _ => {
                return Err(OAuthError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "invalid_request",
                    "Content-Type must be application/x-www-form-urlencoded or application/json",
                ));
            }
        };
        if let Some((id, secret)) = basic {
            if tr.client_id.as_deref().is_some_and(|c| c != id) {
                return Err(OAuthError::invalid_request("client_id in the body and in the Authorization header differ"));
            }
            tr.client_id = Some(id);
            tr.client_secret = Some(secret);
        }
        Ok(Self(tr))
    }
}

fn basic_credentials(h: &HeaderMap) -> Option<(String, String)> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let s = String::from_utf8(decoded).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

#[derive(serde::Serialize, ToSchema)]
pub struct TokenResponse {
    access_token: String,
    scope: String,
    expires_in: i64,
    token_type: &'static str,
}

/// Exchange credentials for tokens.
#[utoipa::path(post, path = "/oauth/token", tag = "Authentication", request_body(content = TokenRequest,
        content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = 400, description = "invalid_request"),
              (status = 401, description = "access_denied"), (status = 403, description = "access_denied / unauthorized_client")))]
pub async fn token(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    TokenForm(req): TokenForm,
) -> Result<Response, OAuthError> {
    let grant = req
        .grant_type
        .clone()
        .filter(|g| !g.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("Missing required parameter: grant_type"))?;
    let forwarded_for = headers.get("auth0-forwarded-for").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let ctx =
        GrantCtx { state: &state, tenant: &tenant, ip: ip.to_string_opt(), user_agent: user_agent(&headers), forwarded_for };
    match grant.as_str() {
        "client_credentials" => client_credentials(&state, &tenant, &headers, req).await,
        "password" => super::login::password_grant(&ctx, req, false).await,
        PASSWORD_REALM => super::login::password_grant(&ctx, req, true).await,
        "refresh_token" => super::refresh::refresh_grant(&ctx, req).await,
        "authorization_code" => super::code::code_grant(&ctx, req).await,
        _ => Err(OAuthError::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", format!("Unsupported grant type: {grant}"))),
    }
}

/// The password-realm grant type (Auth0's extension grant).
pub const PASSWORD_REALM: &str = "http://auth0.com/oauth/grant-type/password-realm";

/// What every user grant needs about the request.
pub struct GrantCtx<'a> {
    pub state: &'a AppState,
    pub tenant: &'a TenantCtx,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// `auth0-forwarded-for`, believed only for clients allowed to send it (see `login.rs`).
    pub forwarded_for: Option<String>,
}

impl GrantCtx<'_> {
    /// Record a standalone event (failed attempts), durably.
    pub async fn record(&self, mut ev: LogEvent) {
        ev.ip = ev.ip.or_else(|| self.ip.clone());
        ev.user_agent = ev.user_agent.or_else(|| self.user_agent.clone());
        if let Err(e) = self.state.logs.record(self.tenant.id.clone(), ev).await {
            tracing::warn!(error = ?e, "could not record a log event");
        }
    }

    /// Authenticate the client of a user grant and check it may use `grant`.
    pub async fn client(&self, req: &TokenRequest, grant: &str) -> Result<Client, OAuthError> {
        let Some(raw_id) = req.client_id.as_deref().filter(|c| !c.is_empty()) else {
            return Err(OAuthError::invalid_request("Missing required parameter: client_id"));
        };
        let client = match ClientId::parse(raw_id) {
            Ok(id) => self.tenant.client(&id).await?,
            Err(_) => None,
        };
        let Some(client) = client else {
            return Err(OAuthError::access_denied_unauthorized());
        };
        if client.token_endpoint_auth_method != "none" {
            let ok = req.client_secret.as_deref().is_some_and(|s| roster_auth::secret::verify_secret(s, &client.secret_hash));
            if !ok {
                return Err(OAuthError::access_denied_unauthorized());
            }
        }
        if !client.grant_types.iter().any(|g| g == grant) {
            return Err(OAuthError::new(
                StatusCode::FORBIDDEN,
                "unauthorized_client",
                format!("Grant type '{grant}' not allowed for the client."),
            ));
        }
        Ok(client)
    }
}

pub(crate) fn user_agent(h: &HeaderMap) -> Option<String> {
    h.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect())
}

async fn client_credentials(
    state: &AppState,
    tenant: &TenantCtx,
    headers: &HeaderMap,
    req: TokenRequest,
) -> Result<Response, OAuthError> {
    let fail = |client: Option<&ClientId>, description: &str| {
        let mut ev = LogEvent::new(LogType::Feccft, description);
        ev.client_id = client.cloned();
        ev.user_agent = user_agent(headers);
        ev.audience = req.audience.clone();
        ev
    };
    let (Some(raw_id), Some(secret)) = (req.client_id.as_deref(), req.client_secret.as_deref()) else {
        return Err(OAuthError::access_denied_unauthorized());
    };
    let client = match ClientId::parse(raw_id) {
        Ok(id) => tenant.client(&id).await?,
        Err(_) => None,
    };
    // The same answer for an unknown client and a wrong secret.
    let Some(client) = client.filter(|c| roster_auth::secret::verify_secret(secret, &c.secret_hash)) else {
        let ev = fail(ClientId::parse(raw_id).ok().as_ref(), "Unauthorized");
        let _ = state.logs.record(tenant.id.clone(), ev).await;
        return Err(OAuthError::access_denied_unauthorized());
    };
    if !client.grant_types.iter().any(|g| g == "client_credentials") {
        let _ = state.logs.record(tenant.id.clone(), fail(Some(&client.client_id), "Grant type not allowed")).await;
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            "Grant type 'client_credentials' not allowed for the client.",
        ));
    }
    let Some(audience) = req.audience.as_deref().filter(|a| !a.is_empty()) else {
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "No audience parameter was provided, and no default audience has been configured",
        ));
    };
    if audience != tenant.management_audience {
        let _ = state.logs.record(tenant.id.clone(), fail(Some(&client.client_id), "Service not enabled")).await;
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            format!("Service not enabled within domain: {audience}"),
        ));
    }
    let Some(grant) = tenant.client_grant(&client.client_id, audience).await? else {
        let _ = state.logs.record(tenant.id.clone(), fail(Some(&client.client_id), "No client grant")).await;
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            format!(
                "Client has not been granted scopes for API {audience}. You need to create a \"client-grant\" associated to this API."
            ),
        ));
    };
    let granted = Scopes::from_list(grant.scope.iter().map(String::as_str));
    let scopes = match req.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(requested) => granted.intersect(&Scopes::parse(requested)),
        None => granted,
    };
    let now = Timestamp::now().seconds();
    let claims = AccessClaims {
        iss: tenant.issuer.clone(),
        sub: format!("{}@clients", client.client_id),
        aud: Audience::One(tenant.management_audience.clone()),
        iat: now,
        exp: now + state.cfg.access_token_lifetime,
        scope: scopes.to_space_separated(),
        gty: Some("client-credentials".into()),
        azp: Some(client.client_id.to_string()),
    };
    let token = tenant.keys.sign(&claims).map_err(|_| OAuthError::server_error())?;
    let mut ev = LogEvent::new(LogType::Seccft, "Client Credentials for Access Token");
    ev.client_id = Some(client.client_id.clone());
    ev.client_name = Some(client.name.clone());
    ev.audience = Some(audience.to_owned());
    ev.scope = Some(claims.scope.clone());
    ev.user_agent = user_agent(headers);
    state.logs.record(tenant.id.clone(), ev).await?;
    let mut resp = Json(json!({
        "access_token": token,
        "scope": claims.scope,
        "expires_in": state.cfg.access_token_lifetime,
        "token_type": "Bearer",
    }))
    .into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}
