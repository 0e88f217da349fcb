//! `POST /t/{tenant}/dbconnections/change_password`: ask for a password-reset mail.
//!
//! The answer never says whether the address is registered: known, unknown and blocked addresses all
//! get `200 We've just sent you an email to reset your password.`, and both paths write (a ticket,
//! a mail and an `scpr` event, or an `fcpr` event) so they take the same kind of time. Requests are
//! limited per IP and address (per node); the limit answers 429 whatever the address, so it reveals
//! nothing either. The hosted "forgot password" page calls [`request_reset`] too.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roster_domain::log::{LogEvent, LogType};
use roster_domain::{ClientId, Email};
use roster_store::{Effects, ticket_kind};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::signup::SignupError;
use super::token::user_agent;
use crate::extract::{AuthTenant, ClientIp};
use crate::state::AppState;
use crate::tenant::TenantCtx;
use crate::tickets::{self, TicketSpec};

/// Auth0's answer, whatever the address.
pub const SENT: &str = "We've just sent you an email to reset your password.";

/// Body of `POST /dbconnections/change_password` (JSON; `null` optionals are ignored).
#[derive(Default, Deserialize, ToSchema)]
pub struct ChangePasswordBody {
    pub client_id: Option<String>,
    pub email: Option<String>,
    pub connection: Option<String>,
    pub organization: Option<String>,
    /// Ignored (Auth0 ignores it too): a password is only ever set through the emailed link.
    #[schema(format = Password)]
    pub password: Option<String>,
}

/// Why a reset request was refused (the address itself is never a reason).
pub enum ResetRefusal {
    Invalid(SignupError),
    TooMany(u64),
}

impl From<roster_store::StoreError> for ResetRefusal {
    fn from(e: roster_store::StoreError) -> Self {
        Self::Invalid(e.into())
    }
}

/// Queue a reset mail for `email` if it belongs to a user of `connection`; otherwise record why not.
/// `client_id`, when given, names the application the user came from (for the mail and the log).
pub async fn request_reset(
    state: &AppState,
    t: &TenantCtx,
    client_id: Option<&str>,
    connection: &str,
    email: &str,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Result<(), ResetRefusal> {
    let client = match client_id {
        Some(c) => Some(
            match ClientId::parse(c) {
                Ok(id) => t.client(&id).await?,
                Err(_) => None,
            }
            .ok_or_else(|| ResetRefusal::Invalid(SignupError::bad("invalid_request", "Unknown client")))?,
        ),
        None => None,
    };
    let connection = t
        .store
        .connection_by_name(connection)
        .await?
        .filter(|c| c.strategy == "auth0")
        .ok_or_else(|| ResetRefusal::Invalid(SignupError::bad("invalid_connection", "The connection does not exist")))?;
    let email = Email::parse(email).map_err(|_| ResetRefusal::Invalid(SignupError::bad("invalid_body", "email is not valid")))?;
    let key = format!("{}|{}|{}", t.id.as_str(), ip.as_deref().unwrap_or("-"), email.as_str().to_lowercase());
    let decision = state.reset_limiter.check(&key);
    if !decision.allowed {
        return Err(ResetRefusal::TooMany(decision.retry_after));
    }
    let mut ev = LogEvent::new(LogType::Scpr, "Change password request");
    ev.ip = ip;
    ev.user_agent = user_agent;
    ev.connection = Some(connection.name.clone());
    ev.connection_id = Some(connection.id.clone());
    ev.client_id = client.as_ref().map(|c| c.client_id.clone());
    ev.client_name = client.as_ref().map(|c| c.name.clone());
    ev.user_name = Some(email.as_str().to_owned());
    // By address only: a username that happens to look like this address is not its owner.
    let user = t
        .store
        .user_by_login(&connection.id, email.as_str())
        .await?
        .map(|(u, _)| u)
        .filter(|u| u.email.as_ref().is_some_and(|e| e.as_str().eq_ignore_ascii_case(email.as_str())));
    let Some(user) = user else {
        ev.kind = LogType::Fcpr;
        ev.description = "User does not exist.".into();
        t.store.append_effects(ev).await?;
        return Ok(());
    };
    let settings = tickets::link_settings(t, "reset_email", state.cfg.reset_ticket_lifetime).await?;
    let issued = tickets::issue(
        t,
        &user,
        TicketSpec {
            kind: ticket_kind::PASSWORD_RESET,
            ttl_secs: settings.ttl_secs,
            result_url: settings.result_url,
            client_id: client.as_ref().map(|c| c.client_id.as_str().to_owned()),
            mark_email_verified: false,
            include_email_in_redirect: settings.include_email_in_redirect,
        },
    );
    ev.user_id = Some(user.user_id.clone());
    let payload = json!({ "client_id": client.as_ref().map(|c| c.client_id.as_str()), "connection": connection.name });
    let mail = tickets::mail(state, t, "reset_email", email.as_str(), Some(&user.user_id), payload, Some(&issued.url));
    t.store.append_effects(Effects::log(ev).with_ticket(issued.ticket).with_mail(mail)).await?;
    Ok(())
}

/// Ask for a password-reset mail.
#[utoipa::path(post, path = "/dbconnections/change_password", tag = "Authentication", request_body = ChangePasswordBody,
    responses((status = 200, description = "Always, for any address", body = String), (status = 400), (status = 429)))]
pub async fn change_password(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    body: Result<Json<ChangePasswordBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return SignupError::bad("invalid_body", "The body must be a JSON object").into_response();
    };
    let (Some(email), Some(connection)) = (body.email.as_deref(), body.connection.as_deref()) else {
        let missing = if body.email.is_none() { "email" } else { "connection" };
        return SignupError::bad("invalid_body", format!("Missing required property: {missing}")).into_response();
    };
    match request_reset(&state, &t, body.client_id.as_deref(), connection, email, ip.to_string_opt(), user_agent(&headers)).await
    {
        Ok(()) => {
            let mut r = (StatusCode::OK, SENT).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            r
        }
        Err(ResetRefusal::Invalid(e)) => e.into_response(),
        Err(ResetRefusal::TooMany(retry)) => {
            let mut r = SignupError::too_many_requests().into_response();
            if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}
