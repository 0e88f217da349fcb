//! One-time links: password-reset and email-verification tickets, the mails that carry them, and
//! where a redeemed ticket may send the browser.
//!
//! A ticket's token is 43 random alphanumeric characters (≈ 256 bits), shown only in the link; the
//! store keeps its SHA-256. Links are built from the configured public URL, never from request headers,
//! so a forged `Host` cannot point a reset mail elsewhere. A link put in a queued mail is sealed with
//! the master key (see `roster_mail::attach_link`). Never log a ticket URL or token.

use roster_domain::user::User;
use roster_domain::{Timestamp, UserId};
use roster_store::{OutboxMessage, StoreError, Ticket, ticket_kind};
use serde_json::{Value, json};

use crate::state::AppState;
use crate::tenant::TenantCtx;

/// Auth0's default ticket lifetime (5 days) for tickets the Management API creates.
pub const DEFAULT_TICKET_TTL_SECS: i64 = 432_000;
/// Longest ticket lifetime accepted (30 days).
pub const MAX_TICKET_TTL_SECS: i64 = 30 * 86_400;

/// What a new ticket is for and how it behaves.
pub struct TicketSpec {
    pub kind: &'static str,
    pub ttl_secs: i64,
    pub result_url: Option<String>,
    pub client_id: Option<String>,
    pub mark_email_verified: bool,
    pub include_email_in_redirect: bool,
}

/// A new ticket and its link.
pub struct Issued {
    pub ticket: Ticket,
    pub url: String,
}

/// The SHA-256 under which a token is stored.
pub fn hash_token(token: &str) -> String {
    roster_auth::secret::hash_secret(token)
}

/// Mint a ticket for `user` (not stored: it rides in the Effects of the change that issues it).
pub fn issue(t: &TenantCtx, user: &User, spec: TicketSpec) -> Issued {
    let token = roster_domain::secret::random_alphanumeric(43);
    let path = match spec.kind {
        ticket_kind::PASSWORD_RESET => "u/reset-password",
        ticket_kind::UNBLOCK => "u/unblock",
        ticket_kind::EMAIL_CHANGE => "u/email-change",
        ticket_kind::EMAIL_CHANGE_CANCEL => "u/email-change/cancel",
        _ => "u/email-verification",
    };
    let url = format!("{}{path}?ticket={token}", t.issuer);
    let now = Timestamp::now();
    let ticket = Ticket {
        id_hash: hash_token(&token),
        kind: spec.kind.to_owned(),
        user_id: user.user_id.clone(),
        email: user.email.as_ref().map(|e| e.as_str().to_owned()),
        client_id: spec.client_id,
        result_url: spec.result_url,
        mark_email_verified: spec.mark_email_verified,
        include_email_in_redirect: spec.include_email_in_redirect,
        created_at: now,
        expires_at: Timestamp::from_millis(now.millis() + spec.ttl_secs.clamp(1, MAX_TICKET_TTL_SECS) * 1000),
        used_at: None,
    };
    Issued { ticket, url }
}

/// A queued mail to `recipient`, carrying `url` sealed when given.
pub fn mail(
    state: &AppState,
    t: &TenantCtx,
    template: &str,
    recipient: &str,
    user: Option<&UserId>,
    payload: Value,
    url: Option<&str>,
) -> OutboxMessage {
    let mut m = OutboxMessage::new(template, recipient, user.cloned(), payload);
    if let Some(url) = url {
        roster_mail::attach_link(&state.mail.key, &t.id, &mut m, url);
    }
    m
}

/// A tenant's settings for a template that carries a link: its lifetime (`urlLifetimeInSeconds`, else
/// `default_ttl`), its `resultUrl`, whether to add the email to the redirect, and whether it is enabled.
pub struct LinkSettings {
    pub ttl_secs: i64,
    pub result_url: Option<String>,
    pub include_email_in_redirect: bool,
    pub enabled: bool,
}

pub async fn link_settings(t: &TenantCtx, template: &str, default_ttl: i64) -> Result<LinkSettings, StoreError> {
    let custom = t.store.email_template(template).await?;
    Ok(LinkSettings {
        ttl_secs: custom.as_ref().and_then(|c| c.url_lifetime_secs).filter(|s| *s > 0).unwrap_or(default_ttl),
        result_url: custom.as_ref().and_then(|c| c.result_url.clone()),
        include_email_in_redirect: custom.as_ref().is_none_or(|c| c.include_email_in_redirect),
        enabled: custom.as_ref().is_none_or(|c| c.enabled),
    })
}

/// A verification ticket and its `verify_email` mail for `user` (whose current address it verifies).
pub async fn verification(
    state: &AppState,
    t: &TenantCtx,
    user: &User,
    client_id: Option<&str>,
    connection: &str,
) -> Result<Option<(Ticket, OutboxMessage)>, StoreError> {
    let Some(email) = user.email.as_ref() else { return Ok(None) };
    let settings = link_settings(t, "verify_email", state.cfg.verification_ticket_lifetime).await?;
    let issued = issue(
        t,
        user,
        TicketSpec {
            kind: ticket_kind::EMAIL_VERIFICATION,
            ttl_secs: settings.ttl_secs,
            result_url: settings.result_url,
            client_id: client_id.map(str::to_owned),
            mark_email_verified: true,
            include_email_in_redirect: settings.include_email_in_redirect,
        },
    );
    let payload = json!({ "client_id": client_id, "connection": connection });
    let m = mail(state, t, "verify_email", email.as_str(), Some(&user.user_id), payload, Some(&issued.url));
    Ok(Some((issued.ticket, m)))
}

/// Whether `url` may receive the browser after a ticket is redeemed: an absolute http(s) URL without
/// credentials whose origin is that of a callback or allowed logout URL of `client` (when given) or of
/// any of the tenant's applications.
pub async fn result_url_allowed(t: &TenantCtx, url: &str, client: Option<&str>) -> Result<bool, StoreError> {
    let Ok(parsed) = url::Url::parse(url) else { return Ok(false) };
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Ok(false);
    }
    let origin = parsed.origin().ascii_serialization();
    let clients = t.store.list_clients().await?;
    Ok(clients
        .iter()
        .filter(|c| client.is_none_or(|id| c.client_id.as_str() == id))
        .flat_map(|c| c.callbacks.iter().chain(c.allowed_logout_urls.iter()))
        .filter_map(|u| url::Url::parse(u).ok())
        .any(|u| u.origin().ascii_serialization() == origin))
}

/// `result_url` with Auth0's outcome parameters added.
pub fn result_redirect(result_url: &str, message: &str, email: Option<&str>) -> String {
    let mut params = vec![("success", "true"), ("code", "success"), ("message", message)];
    if let Some(e) = email {
        params.push(("email", e));
    }
    let q = serde_urlencoded::to_string(&params).unwrap_or_default();
    let (base, fragment) = match result_url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (result_url, None),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    match fragment {
        Some(f) => format!("{base}{sep}{q}#{f}"),
        None => format!("{base}{sep}{q}"),
    }
}

/// The ticket of a link, if it can still be used (unused, unexpired, of `kind`); `None` for anything
/// else, including tokens of an impossible length.
pub async fn live(t: &TenantCtx, token: &str, kind: &str) -> Result<Option<Ticket>, StoreError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let now = Timestamp::now();
    Ok(t.store.ticket(&hash_token(token)).await?.filter(|k| k.kind == kind && k.used_at.is_none() && k.expires_at > now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_the_query_and_fragment() {
        assert_eq!(
            result_redirect("https://app.example/done", "ok", None),
            "https://app.example/done?success=true&code=success&message=ok"
        );
        assert_eq!(
            result_redirect("https://app.example/done?a=1#top", "ok then", Some("a+b@example.com")),
            "https://app.example/done?a=1&success=true&code=success&message=ok+then&email=a%2Bb%40example.com#top"
        );
    }

    #[test]
    fn tokens_hash_to_hex() {
        assert_eq!(hash_token("x").len(), 64);
        assert_ne!(hash_token("x"), hash_token("y"));
    }
}
