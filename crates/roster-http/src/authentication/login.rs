//! The `password` and `password-realm` grants.
//!
//! Unknown user and wrong password take the same path — a hash verification (against a dummy hash for
//! unknown users) — and return the same bytes. The blocked state is revealed only to someone who knows
//! the password. A successful login refreshes the profile (`last_login`, `last_ip`, `logins_count`,
//! `updated_at`) and upgrades an outdated hash, in one transaction with the `s` event.

use axum::http::StatusCode;
use axum::response::Response;
use roster_domain::log::{LogEvent, LogType};
use roster_domain::user::User;
use roster_domain::{Password, Timestamp};
use roster_store::Effects;

use super::issue::{Issue, decide, new_refresh_token, wants_refresh};
use super::token::{GrantCtx, PASSWORD_REALM, TokenRequest};
use crate::error::OAuthError;

/// Name of the connection the plain `password` grant uses (Auth0's default directory).
pub const DEFAULT_DIRECTORY: &str = "Username-Password-Authentication";

pub fn wrong_credentials() -> OAuthError {
    OAuthError::new(StatusCode::FORBIDDEN, "invalid_grant", "Wrong email or password.")
}

pub fn blocked() -> OAuthError {
    OAuthError::new(StatusCode::UNAUTHORIZED, "unauthorized", "user is blocked")
}

pub fn suspicious_ip() -> OAuthError {
    OAuthError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        "We have detected suspicious login behavior and further attempts will be blocked. Please contact the administrator.",
    )
}

pub fn too_many_attempts() -> OAuthError {
    OAuthError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        "Your account has been blocked after multiple consecutive login attempts. We've sent you an email with instructions on how to unblock it.",
    )
}

/// Outcome of checking a username and password against a connection.
pub enum Verdict {
    Ok {
        user: Box<User>,
        hash: String,
        /// What the success commits with the login (the end of the failure count of this
        /// identifier), so a login costs one write rather than two.
        success: Effects,
    },
    UnknownUser,
    WrongPassword(Box<User>),
    Blocked(Box<User>),
    /// Brute-force protection: too many consecutive failures for this identifier (and IP); no hash
    /// was computed.
    TooManyAttempts(Option<Box<User>>),
    /// Suspicious-IP throttling: too many failures from this address across accounts; no hash.
    SuspiciousIp,
}

/// Look the user up and verify the password, always computing exactly one hash.
pub async fn check_credentials(
    ctx: &GrantCtx<'_>,
    connection_name: &str,
    identifier: &str,
    password: &str,
) -> Result<Verdict, OAuthError> {
    let state = ctx.state;
    let ip = ctx.ip.as_deref();
    // The refusals come first and cost no hash and no lookup: a blocked identifier (+ IP) — from
    // memory when this node saw it blocked a moment ago — then a throttled IP.
    let bf = crate::attack::BruteForce::from_settings(&crate::attack::brute_force_settings(ctx.tenant).await?);
    if crate::attack::is_blocked(ctx.tenant, &bf, identifier, ip).await? {
        return Ok(Verdict::TooManyAttempts(None));
    }
    let throttle = crate::attack::Throttle::from_settings(&crate::attack::throttling_settings(ctx.tenant).await?, "pre-login");
    if throttle.exceeded(ctx.tenant, crate::attack::IP_LOGIN, ip).await? {
        return Ok(Verdict::SuspiciousIp);
    }
    let connection = ctx.tenant.store.connection_by_name(connection_name).await?;
    let found = match &connection {
        Some(c) if c.strategy == "auth0" => ctx.tenant.store.user_by_login(&c.id, identifier).await?,
        _ => None,
    };
    let gate =
        crate::attack::gate(ctx.tenant, &bf, identifier, ip, connection_name, found.as_ref().map(|(u, _)| &u.user_id)).await?;
    if matches!(gate, crate::attack::Gate::Blocked) {
        return Ok(Verdict::TooManyAttempts(found.map(|(u, _)| Box::new(u))));
    }
    let (user, hash) = match found {
        Some((u, Some(h))) => (Some(u), h),
        _ => (None, state.dummy_hash().await?),
    };
    // A password over the size limit cannot match anything; hash the dummy anyway for equal timing.
    let ok = match Password::for_verification(password.to_owned()) {
        Ok(pw) => state.hasher.verify(pw, hash.clone()).await.or_else(|e| match e {
            roster_auth::HashError::BadStoredHash => Ok(false),
            other => Err(other),
        })?,
        Err(_) => {
            let pw = Password::for_verification("x".repeat(16)).map_err(|_| OAuthError::server_error())?;
            let _ = state.hasher.verify(pw, state.dummy_hash().await?).await;
            false
        }
    };
    // Failures must be consecutive: a success starts the count again (committed with the login, or
    // at once when the login goes no further).
    let mut success = Effects::default();
    if ok && let crate::attack::Gate::Counted { key, .. } = &gate {
        success =
            success.with_revocation(roster_store::Revocation::Counter { kind: crate::attack::LOGIN.into(), key: key.clone() });
        if user.as_ref().is_some_and(|u| u.blocked) {
            ctx.tenant.store.append_effects(std::mem::take(&mut success)).await?;
        }
    }
    if !ok && connection.is_some() {
        if throttle.charge(ctx.tenant, crate::attack::IP_LOGIN, ip).await? == throttle.max_attempts {
            // The failure that reaches the limit throttles the address: logged once, not per refusal.
            let mut ev = LogEvent::new(LogType::LimitMu, "Too many failed logins from this IP address: throttled");
            ev.connection = Some(connection_name.to_owned());
            ctx.record(ev).await;
        }
        // The failure that reaches the limit blocks the pair: logged once, and the owner is told
        // (once an hour at most).
        if let crate::attack::Gate::Counted { key, counter } = &gate
            && counter.count == bf.max_attempts
        {
            let mut ev = LogEvent::new(LogType::LimitWc, "Too many failed login attempts: blocked");
            ev.connection = Some(connection_name.to_owned());
            ev.user_name = Some(identifier.chars().take(256).collect());
            ev.user_id = user.as_ref().map(|u| u.user_id.clone());
            ctx.record(ev).await;
            if let (true, Some(u)) = (bf.notify, &user) {
                notify_blocked(ctx, key, u, connection_name).await?;
            }
        }
    }
    Ok(match (user, ok) {
        (None, _) => Verdict::UnknownUser,
        (Some(u), false) => Verdict::WrongPassword(Box::new(u)),
        (Some(u), true) if u.blocked => Verdict::Blocked(Box::new(u)),
        (Some(u), true) => Verdict::Ok { user: Box::new(u), hash, success },
    })
}

/// The `blocked_account` mail with a single-use unblock link, unless one went to this pair within the hour.
async fn notify_blocked(ctx: &GrantCtx<'_>, key: &str, user: &User, connection: &str) -> Result<(), OAuthError> {
    let t = ctx.tenant;
    let Some(email) = user.email.as_ref() else { return Ok(()) };
    let notice = t
        .store
        .charge(&roster_store::Charge {
            kind: crate::attack::LOGIN_NOTICE.into(),
            key: key.to_owned(),
            identifier: None,
            ip: ctx.ip.clone(),
            connection: None,
            user_id: None,
            now: Timestamp::now(),
            window_ms: crate::attack::NOTIFY_INTERVAL.as_millis() as i64,
            limit: 1,
        })
        .await?;
    if notice.count > 1 {
        return Ok(());
    }
    let issued = crate::tickets::issue(
        t,
        user,
        crate::tickets::TicketSpec {
            kind: roster_store::ticket_kind::UNBLOCK,
            ttl_secs: crate::attack::UNBLOCK_LINK_TTL_SECS,
            result_url: None,
            client_id: None,
            mark_email_verified: false,
            include_email_in_redirect: false,
        },
    );
    let payload = serde_json::json!({ "connection": connection, "source_ip": ctx.ip });
    let mail =
        crate::tickets::mail(ctx.state, t, "blocked_account", email.as_str(), Some(&user.user_id), payload, Some(&issued.url));
    t.store.append_effects(Effects::default().with_ticket(issued.ticket).with_mail(mail)).await?;
    Ok(())
}

/// Log a refused login and build its answer.
pub async fn refuse(
    ctx: &GrantCtx<'_>,
    verdict: &Verdict,
    connection: &str,
    identifier: &str,
    client: Option<&roster_store::Client>,
) -> OAuthError {
    let (kind, description, user, answer) = match verdict {
        Verdict::UnknownUser => (LogType::Fu, "Wrong email or password.", None, wrong_credentials()),
        Verdict::WrongPassword(u) => (LogType::Fp, "Wrong email or password.", Some(u), wrong_credentials()),
        Verdict::Blocked(u) => (LogType::F, "user is blocked", Some(u), blocked()),
        Verdict::SuspiciousIp => (LogType::LimitMu, "Too many failed attempts from this IP address", None, suspicious_ip()),
        Verdict::TooManyAttempts(u) => {
            (LogType::LimitWc, "Too many failed login attempts: blocked", u.as_ref(), too_many_attempts())
        }
        Verdict::Ok { .. } => return OAuthError::server_error(),
    };
    if matches!(verdict, Verdict::TooManyAttempts(_) | Verdict::SuspiciousIp) {
        // Refusals of a blocked pair or a throttled address are not logged one by one (an attacker
        // would fill the log and pay nothing): the block itself was logged when it started.
        return answer;
    }
    let mut ev = LogEvent::new(kind, description);
    ev.connection = Some(connection.to_owned());
    ev.user_name = Some(identifier.chars().take(256).collect());
    ev.user_id = user.map(|u| u.user_id.clone());
    ev.client_id = client.map(|c| c.client_id.clone());
    ev.client_name = client.map(|c| c.name.clone());
    ctx.record(ev).await;
    answer
}

/// Record a successful login on the user (and upgrade its hash if needed); returns the updated user.
#[allow(clippy::too_many_arguments)]
pub async fn record_login(
    ctx: &GrantCtx<'_>,
    user: &User,
    hash: &str,
    password: &str,
    client: &roster_store::Client,
    connection: &str,
    description: &str,
    success: Effects,
) -> Result<User, OAuthError> {
    let state = ctx.state;
    let rehash = if state.hasher.needs_rehash(hash) {
        let pw = Password::for_verification(password.to_owned()).map_err(|_| OAuthError::server_error())?;
        Some(state.hasher.hash(pw).await?)
    } else {
        None
    };
    let now = Timestamp::now();
    let ip = ctx.ip.clone();
    let mut ev = LogEvent::new(LogType::S, description);
    ev.user_id = Some(user.user_id.clone());
    ev.user_name = user.email.as_ref().map(|e| e.to_string());
    ev.connection = Some(connection.to_owned());
    ev.client_id = Some(client.client_id.clone());
    ev.client_name = Some(client.name.clone());
    ev.ip = ctx.ip.clone();
    ev.user_agent = ctx.user_agent.clone();
    let updated = ctx
        .tenant
        .store
        .update_user(
            &user.user_id,
            Box::new(move |u| {
                u.last_login = Some(now);
                u.last_ip = ip;
                u.logins_count += 1;
                u.updated_at = now.max(Timestamp::from_millis(u.updated_at.millis() + 1));
                Ok(())
            }),
            rehash,
            Effects { revocations: success.revocations, ..Effects::log(ev) },
        )
        .await?;
    updated.ok_or_else(wrong_credentials)
}

pub async fn password_grant(ctx: &GrantCtx<'_>, req: TokenRequest, realm_grant: bool) -> Result<Response, OAuthError> {
    let grant_name = if realm_grant { PASSWORD_REALM } else { "password" };
    let client = ctx.client(&req, grant_name).await?;
    let username = req
        .username
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("Missing required parameter: username"))?;
    let password = req
        .password
        .as_deref()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("Missing required parameter: password"))?;
    let connection = match (realm_grant, req.realm.as_deref().filter(|r| !r.is_empty())) {
        (_, Some(r)) => r.to_owned(),
        (false, None) => DEFAULT_DIRECTORY.to_owned(),
        (true, None) => return Err(OAuthError::invalid_request("Missing required parameter: realm")),
    };
    let grant = decide(ctx.tenant, req.scope.as_deref(), req.audience.as_deref())?;
    // A back end logging a user in on their behalf names the user's address, if it is a confidential
    // client (it authenticated with its secret) that the tenant allowed to; anyone else's header is
    // ignored. Attack protection then counts the user's address, not the back end's.
    let forwarded = GrantCtx {
        state: ctx.state,
        tenant: ctx.tenant,
        ip: match ctx.forwarded_for.as_deref().map(str::trim).and_then(|v| v.parse::<std::net::IpAddr>().ok()) {
            Some(ip) if client.token_endpoint_ip_header_trusted && client.token_endpoint_auth_method != "none" => {
                Some(ip.to_string())
            }
            _ => ctx.ip.clone(),
        },
        user_agent: ctx.user_agent.clone(),
        forwarded_for: None,
    };
    let ctx = &forwarded;
    let verdict = check_credentials(ctx, &connection, username, password).await?;
    let Verdict::Ok { user, hash, success } = verdict else {
        return Err(refuse(ctx, &verdict, &connection, username, Some(&client)).await);
    };
    let user = record_login(ctx, &user, &hash, password, &client, &connection, "Successful login", success).await?;
    let auth_time = Timestamp::now();
    let refresh_token = if wants_refresh(&client, &grant) {
        let (value, record) = new_refresh_token(ctx.state, &user.user_id, &client.client_id, &grant, None, None, auth_time);
        ctx.tenant.store.create_refresh(&record).await?;
        Some(value)
    } else {
        None
    };
    Issue {
        tenant: ctx.tenant,
        client: &client,
        user: &user,
        grant: &grant,
        nonce: None,
        auth_time,
        gty: Some("password"),
        refresh_token,
    }
    .respond(ctx.state)
}
