//! `/t/{tenant}/me/...`: the self-service account as a JSON API, for apps that render their own UI.
//!
//! Authorized by the user's own user-scoped Management API token (audience `{issuer}api/v2/`):
//! `read:current_user` to read, `update:current_user_metadata` to change the profile, preferences,
//! password, email, sessions and terms, `delete:current_user` (granted only when asked for) to delete
//! the account. The token names the user; no route takes a user id, so no request reaches another
//! account. Errors use the Management API's shape. Sensitive changes carry the current password in
//! the body (re-authentication at the request itself): password and email change, deletion.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roster_domain::UserId;
use roster_domain::user::User;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::account::{self, AccountError, Actor, Settings};
use crate::authentication::token::user_agent;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authorized, ClientIp, MeDelete, MeRead, MeUpdate, Requirement, Subject};
use crate::state::AppState;
use crate::tenant::TenantCtx;

/// The caller's account: a verified user token with the scope `R` needs, and the user it names
/// (present and not blocked).
pub struct Me<R> {
    pub auth: Authorized<R>,
    pub user: Arc<User>,
    /// The tenant's account settings (the portal is enabled: else the request was refused).
    pub settings: Settings,
}

impl<R: Requirement + Send + Sync> FromRequestParts<AppState> for Me<R> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = Authorized::<R>::from_request_parts(parts, state).await?;
        let Subject::User(id) = &auth.subject else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "This endpoint needs an end user's token",
                Some("insufficient_scope"),
            ));
        };
        let user = load(&auth.tenant, id).await?;
        let settings = enabled(&auth.tenant).await?;
        Ok(Self { auth, user, settings })
    }
}

async fn load(t: &TenantCtx, id: &UserId) -> Result<Arc<User>, ApiError> {
    match t.store.user(id).await? {
        // A deleted account's tokens stop working at once, as a blocked user's do.
        None => Err(ApiError::unauthorized("The user of this token no longer exists")),
        Some(u) if u.blocked => Err(ApiError::unauthorized("user is blocked")),
        Some(u) => Ok(u),
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(_) => ApiError::bad_request(e.message()),
            AccountError::WrongPassword => ApiError::new(StatusCode::FORBIDDEN, e.message(), Some("invalid_password")),
            AccountError::ReauthenticationRequired => {
                ApiError::new(StatusCode::FORBIDDEN, e.message(), Some("reauthentication_required"))
            }
            AccountError::TooManyAttempts => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.message(), Some("too_many_attempts")).with_retry_after(60)
            }
            AccountError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m, Some("operation_not_allowed")),
            AccountError::Gone => ApiError::unauthorized("The user of this token no longer exists"),
            AccountError::Throttled(retry) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.message(), Some("too_many_requests")).with_retry_after(retry)
            }
            AccountError::Unavailable => ApiError::unavailable(),
        }
    }
}

fn actor<'a>(state: &'a AppState, t: &'a TenantCtx, ip: &ClientIp, headers: &HeaderMap) -> Actor<'a> {
    Actor { state, t, ip: ip.to_string_opt(), user_agent: user_agent(headers), session: None }
}

async fn enabled(t: &TenantCtx) -> Result<Settings, ApiError> {
    let s = account::settings(t).await?;
    if !s.account.enabled {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "The account portal is disabled for this tenant",
            Some("operation_not_allowed"),
        ));
    }
    Ok(s)
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The account and how the tenant describes it (editable fields, profile schema, terms).
async fn account_body(t: &TenantCtx, s: &Settings, user: &User) -> Result<Value, ApiError> {
    let pending = account::pending_email(t, user).await?;
    let mut body = account::account_json(user, &s.account, pending.as_deref());
    body["profile_schema"] = s.profile_schema_json.clone();
    body["terms"] = match &s.account.terms {
        Some(terms) => json!({
            "version": terms.version,
            "url": terms.url,
            "accepted": account::terms_pending(&s.account, user).is_none(),
        }),
        None => Value::Null,
    };
    Ok(body)
}

/// `GET /me`
pub async fn get_me(me: Me<MeRead>) -> Result<Response, ApiError> {
    Ok(no_store(Json(account_body(&me.auth.tenant, &me.settings, &me.user).await?).into_response()))
}

/// `PATCH /me`: editable root fields and `user_metadata` keys of the profile schema.
pub async fn patch_me(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    me: Me<MeUpdate>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let t = &me.auth.tenant;
    let s = &me.settings;
    let change = account::profile_from_json(&body, &s.account, &me.user)?;
    let user = account::update_profile(&actor(&state, t, &ip, &headers), &me.user, change).await?;
    Ok(no_store(Json(account_body(t, s, &user).await?).into_response()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current_password: Option<String>,
    new_password: Option<String>,
}

/// `POST /me/password`: `{current_password, new_password}`; every session and refresh token ends.
pub async fn change_password(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    me: Me<MeUpdate>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Response, ApiError> {
    let t = &me.auth.tenant;
    let new = body.new_password.filter(|p| !p.is_empty()).ok_or_else(|| ApiError::bad_request("new_password is required"))?;
    account::change_password(&actor(&state, t, &ip, &headers), &me.user, body.current_password.as_deref().unwrap_or(""), new)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    email: Option<String>,
    password: Option<String>,
}

/// `POST /me/email`: `{email, password}` → 202; the change waits for the new address's confirmation.
pub async fn change_email(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    me: Me<MeUpdate>,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<Response, ApiError> {
    let t = &me.auth.tenant;
    let a = actor(&state, t, &ip, &headers);
    let email = body.email.unwrap_or_default();
    if email.trim().is_empty() {
        return Err(ApiError::bad_request("email is required"));
    }
    account::verify_password(&a, &me.user, body.password.as_deref().unwrap_or("")).await?;
    let pending = account::request_email_change(&a, &me.user, &email).await?;
    Ok(no_store((StatusCode::ACCEPTED, Json(json!({ "pending_email": pending }))).into_response()))
}

/// `GET /me/sessions`
pub async fn list_sessions(me: Me<MeRead>) -> Result<Response, ApiError> {
    let t = &me.auth.tenant;
    let sessions = t.store.user_sessions(&me.user.user_id, roster_domain::Timestamp::now()).await?;
    let list: Vec<Value> = sessions.iter().map(|s| account::session_json(s, None)).collect();
    Ok(no_store(Json(json!({ "sessions": list })).into_response()))
}

/// `DELETE /me/sessions/{id}`: 204, or 404 when the user has no such live session.
pub async fn delete_session(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
    me: Me<MeUpdate>,
) -> Result<Response, ApiError> {
    let t = &me.auth.tenant;
    if account::revoke_session(&actor(&state, t, &ip, &headers), &me.user, &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "The session does not exist.", Some("inexistent_session")))
    }
}

/// `DELETE /me/sessions`: every session and refresh token of the user ends.
pub async fn delete_sessions(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    me: Me<MeUpdate>,
) -> Result<Response, ApiError> {
    let t = &me.auth.tenant;
    account::revoke_other_sessions(&actor(&state, t, &ip, &headers), &me.user).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermsBody {
    version: Option<String>,
}

/// `POST /me/terms`: `{version}` (the current one) → the account.
pub async fn accept_terms(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    me: Me<MeUpdate>,
    ApiJson(body): ApiJson<TermsBody>,
) -> Result<Response, ApiError> {
    let t = &me.auth.tenant;
    let s = &me.settings;
    let version = body.version.unwrap_or_default();
    let user = account::accept_terms(&actor(&state, t, &ip, &headers), &me.user, &s.account, &version).await?;
    Ok(no_store(Json(account_body(t, s, &user).await?).into_response()))
}

/// `GET /me/export`: everything stored about the user, as a JSON file.
pub async fn export(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    me: Me<MeRead>,
) -> Result<Response, ApiError> {
    let t = &me.auth.tenant;
    let data = account::export(&actor(&state, t, &ip, &headers), &me.user).await?;
    Ok(attachment(&data))
}

/// A JSON download.
pub fn attachment(data: &Value) -> Response {
    let body = serde_json::to_vec_pretty(data).unwrap_or_default();
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"my-data.json\""));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    password: Option<String>,
    /// Must be `true`: the caller confirms the deletion explicitly.
    confirm: Option<bool>,
}

/// `DELETE /me`: `{password, confirm: true}` → 204; the account and its data are gone.
pub async fn delete_me(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    me: Me<MeDelete>,
    ApiJson(body): ApiJson<DeleteBody>,
) -> Result<Response, ApiError> {
    let t = &me.auth.tenant;
    if body.confirm != Some(true) {
        return Err(ApiError::bad_request("confirm must be true to delete the account"));
    }
    let a = actor(&state, t, &ip, &headers);
    account::verify_password(&a, &me.user, body.password.as_deref().unwrap_or("")).await?;
    account::delete_account(&a, &me.user).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
