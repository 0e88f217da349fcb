//! The `authorization_code` grant (with PKCE): a code from `/authorize` is redeemed once, by the client
//! it was issued to, with the exact redirect URI of the request and, when a challenge was sent, the
//! matching `code_verifier` (S256 only).

use axum::http::StatusCode;
use axum::response::Response;
use roster_domain::Timestamp;
use roster_domain::log::{LogEvent, LogType};
use roster_domain::scope::Scopes;

use super::issue::{Grant, Issue, new_refresh_token, wants_refresh};
use super::token::{GrantCtx, TokenRequest};
use crate::error::OAuthError;

fn invalid(description: &str) -> OAuthError {
    OAuthError::new(StatusCode::FORBIDDEN, "invalid_grant", description)
}

pub async fn code_grant(ctx: &GrantCtx<'_>, req: TokenRequest) -> Result<Response, OAuthError> {
    let client = ctx.client(&req, "authorization_code").await?;
    let code = req
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("Missing required parameter: code"))?;
    let redirect_uri = req.redirect_uri.as_deref().unwrap_or("");
    let fail = |why: &str| {
        let mut ev = LogEvent::new(LogType::Feacft, why);
        ev.client_id = Some(client.client_id.clone());
        ev
    };
    let store = &ctx.tenant.store;
    let Some(rec) = store.consume_code(&roster_auth::secret::hash_secret(code), Timestamp::now()).await? else {
        ctx.record(fail("Invalid authorization code")).await;
        return Err(invalid("Invalid authorization code"));
    };
    if rec.client_id != client.client_id || rec.redirect_uri != redirect_uri {
        ctx.record(fail("Authorization code issued to another client or redirect URI")).await;
        return Err(invalid("Invalid authorization code"));
    }
    match (&rec.code_challenge, req.code_verifier.as_deref()) {
        (Some(challenge), Some(verifier)) if roster_auth::secret::same(&roster_auth::secret::pkce_s256(verifier), challenge) => {}
        (None, _) if client.token_endpoint_auth_method != "none" => {}
        _ => {
            ctx.record(fail("Failed to verify code verifier")).await;
            return Err(invalid("Failed to verify code verifier"));
        }
    }
    let Some(user) = store.user(&rec.user_id).await?.filter(|u| !u.blocked) else {
        ctx.record(fail("User is blocked or deleted")).await;
        return Err(invalid("Invalid authorization code"));
    };
    let grant = Grant { scope: Scopes::parse(&rec.scope), audience: rec.audience.clone() };
    let refresh_token = if wants_refresh(&client, &grant) {
        let (value, record) = new_refresh_token(
            ctx.state,
            &user.user_id,
            &client.client_id,
            &grant,
            None,
            rec.session_id.as_deref(),
            rec.auth_time,
        );
        store.create_refresh(&record).await?;
        Some(value)
    } else {
        None
    };
    let mut ev = LogEvent::new(LogType::Seacft, "Authorization Code for Access Token");
    ev.user_id = Some(user.user_id.clone());
    ev.client_id = Some(client.client_id.clone());
    ev.client_name = Some(client.name.clone());
    ctx.record(ev).await;
    Issue {
        tenant: ctx.tenant,
        client: &client,
        user: &user,
        grant: &grant,
        nonce: rec.nonce.as_deref(),
        auth_time: rec.auth_time,
        gty: None,
        refresh_token,
    }
    .respond(ctx.state)
}
