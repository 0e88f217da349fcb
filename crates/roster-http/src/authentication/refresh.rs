//! The `refresh_token` grant with rotation: each use returns a new refresh token and retires the old
//! one; presenting a retired token again revokes its whole family (someone else holds a copy).

use axum::http::StatusCode;
use axum::response::Response;
use roster_domain::Timestamp;
use roster_domain::log::{LogEvent, LogType};
use roster_domain::scope::Scopes;
use roster_store::Rotation;

use super::issue::{Grant, Issue, new_refresh_token};
use super::token::{GrantCtx, TokenRequest};
use crate::error::OAuthError;

fn invalid() -> OAuthError {
    OAuthError::new(StatusCode::FORBIDDEN, "invalid_grant", "Unknown or invalid refresh token.")
}

pub async fn refresh_grant(ctx: &GrantCtx<'_>, req: TokenRequest) -> Result<Response, OAuthError> {
    let client = ctx.client(&req, "refresh_token").await?;
    let presented = req
        .refresh_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("Missing required parameter: refresh_token"))?;
    let hash = roster_auth::secret::hash_secret(presented);
    let fail = |why: &str| {
        let mut ev = LogEvent::new(LogType::Fertft, why);
        ev.client_id = Some(client.client_id.clone());
        ev
    };
    let store = &ctx.tenant.store;
    let Some(old) = store.refresh_token(&hash).await?.filter(|t| t.client_id == client.client_id) else {
        ctx.record(fail("Unknown or invalid refresh token.")).await;
        return Err(invalid());
    };
    let user = store.user(&old.user_id).await?;
    let Some(user) = user.filter(|u| !u.blocked) else {
        ctx.record(fail("User is blocked or deleted")).await;
        return Err(invalid());
    };
    // A narrower scope may be asked for; never a wider one.
    let held = Scopes::parse(&old.scope);
    let scope = match req.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(s) => held.intersect(&Scopes::parse(s)),
        None => held,
    };
    let grant = Grant { scope, audience: old.audience.clone() };
    let (value, record) = new_refresh_token(
        ctx.state,
        &user.user_id,
        &client.client_id,
        &grant,
        Some(&old.family_id),
        old.session_id.as_deref(),
        old.auth_time,
    );
    match store.rotate_refresh(&hash, &record, Timestamp::now()).await? {
        Rotation::Rotated(_) => {}
        Rotation::Reused => {
            let mut ev = fail("Refresh token re-used: its family is revoked");
            ev.user_id = Some(user.user_id.clone());
            ctx.record(ev).await;
            return Err(invalid());
        }
        Rotation::Invalid => {
            ctx.record(fail("Unknown or invalid refresh token.")).await;
            return Err(invalid());
        }
    }
    let mut ev = LogEvent::new(LogType::Sertft, "Refresh token exchanged");
    ev.user_id = Some(user.user_id.clone());
    ev.client_id = Some(client.client_id.clone());
    ctx.record(ev).await;
    Issue {
        tenant: ctx.tenant,
        client: &client,
        user: &user,
        grant: &grant,
        nonce: None,
        auth_time: old.auth_time,
        gty: None,
        refresh_token: Some(value),
    }
    .respond(ctx.state)
}
