//! Hosted pages for one-time links: `/t/{tenant}/u/reset-password` (ask for a reset mail; set a new
//! password with a ticket) and `/t/{tenant}/u/email-verification` (confirm an address with a ticket).
//!
//! Opening a link never changes anything: a GET only shows a form, and the ticket is redeemed by the
//! form's POST (CSRF-checked). So mail scanners that fetch links cannot use them up, and a link cannot
//! be used from another site. The page shows the connection's password rules and, after a refusal,
//! which rule failed. A used or expired link gets a page that says so, with a way to ask for a new
//! mail. Every response carries the hosted pages' headers (strict CSP, `Referrer-Policy: no-referrer`
//! so the ticket in the URL never leaks to another site, `Cache-Control: no-store`).

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use roster_domain::Timestamp;
use roster_domain::log::{LogEvent, LogType};
use roster_store::{Effects, Redeemed, Revocation, StoreError, Ticket, ticket_kind};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

use super::{csrf_ok, csrf_token, error_page, esc, notice, page, redirect, ticket_button, with_cookie};
use crate::authentication::change_password::{ResetRefusal, SENT, request_reset};
use crate::authentication::login::DEFAULT_DIRECTORY;
use crate::authentication::token::user_agent;
use crate::extract::{AuthTenant, ClientIp};
use crate::passwords;
use crate::state::AppState;
use crate::tenant::TenantCtx;
use crate::tickets;

/// Query of the pages: a ticket, or (for the request form) the login request it came from.
#[derive(Deserialize)]
pub struct LinkQuery {
    ticket: Option<String>,
    client_id: Option<String>,
    connection: Option<String>,
}

fn unavailable(t: &TenantCtx) -> Response {
    error_page(t, StatusCode::SERVICE_UNAVAILABLE, "Something went wrong on our side. Please try again in a moment.")
}

fn forbidden_form(t: &TenantCtx) -> Response {
    error_page(t, StatusCode::FORBIDDEN, "This form has expired or did not come from this site. Go back and try again.")
}

/// The page for a link that can no longer be used.
fn dead_link(t: &TenantCtx, reset: bool) -> Response {
    let body = if reset {
        format!(
            "<div class=\"error\" role=\"alert\">This link has expired or has already been used.</div>\
             <p>Links in password-reset emails work once and for a limited time.</p>\
             <nav><a href=\"{}u/reset-password\">Send me a new link</a></nav>",
            esc(&t.issuer)
        )
    } else {
        "<div class=\"error\" role=\"alert\">This link has expired or has already been used.</div>\
         <p>If your address is not verified yet, sign in to the application and ask it to send a new verification email.</p>"
            .to_owned()
    };
    page(StatusCode::GONE, if reset { "Reset your password" } else { "Verify your email" }, t, &body)
}

fn rules_list(items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let lis: String = items.iter().map(|r| format!("<li>{}</li>", esc(r))).collect();
    format!("<p>Your new password must have:</p><ul class=\"rules\">{lis}</ul>")
}

// ---- password reset ----

struct ResetForm<'a> {
    t: &'a TenantCtx,
    csrf: &'a str,
    ticket: &'a str,
    email: &'a str,
    rules: Vec<String>,
    error: Option<&'a str>,
}

fn reset_form(f: &ResetForm<'_>, status: StatusCode) -> Response {
    let body = format!(
        "{notice}<p>Choose a new password for <strong>{email}</strong>.</p>{rules}\
         <form method=\"post\" action=\"{issuer}u/reset-password\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
         <input type=\"text\" name=\"username\" value=\"{email}\" autocomplete=\"username\" hidden>\
         <label for=\"password\">New password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
         <label for=\"confirm\">Confirm the new password</label>\
         <input id=\"confirm\" name=\"confirm\" type=\"password\" autocomplete=\"new-password\" required>\
         <button type=\"submit\">Set my password</button></form>",
        notice = notice(f.error, None),
        email = esc(f.email),
        rules = rules_list(&f.rules),
        issuer = esc(&f.t.issuer),
        csrf = esc(f.csrf),
        ticket = esc(f.ticket),
    );
    page(status, "Reset your password", f.t, &body)
}

fn request_form(
    t: &TenantCtx,
    csrf: &str,
    q: &LinkQuery,
    info: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let hidden = |name: &str, v: &Option<String>| {
        v.as_deref().map(|v| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", esc(v))).unwrap_or_default()
    };
    let body = format!(
        "{notice}<p>Enter your email address and we will send you a link to reset your password.</p>\
         <form method=\"post\" action=\"{issuer}u/reset-password\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{client}{connection}\
         <label for=\"email\">Email address</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required>\
         <button type=\"submit\">Send me a link</button></form>",
        notice = notice(error, info),
        issuer = esc(&t.issuer),
        csrf = esc(csrf),
        client = hidden("client_id", &q.client_id),
        connection = hidden("connection", &q.connection),
    );
    page(status, "Reset your password", t, &body)
}

/// A live reset ticket, its user and the user's connection — or the page to answer instead.
async fn reset_target(
    t: &TenantCtx,
    token: &str,
) -> Result<(Ticket, roster_domain::user::User, roster_store::Connection), Response> {
    let ticket = match tickets::live(t, token, ticket_kind::PASSWORD_RESET).await {
        Ok(Some(k)) => k,
        Ok(None) => return Err(dead_link(t, true)),
        Err(_) => return Err(unavailable(t)),
    };
    let Ok(Some(user)) = t.store.user(&ticket.user_id).await else { return Err(dead_link(t, true)) };
    let Ok(Some(connection)) = t.store.connection(&user.connection_id).await else { return Err(dead_link(t, true)) };
    Ok((ticket, Arc::unwrap_or_clone(user), connection))
}

/// `GET /t/{tenant}/u/reset-password[?ticket=…]`
pub async fn reset_page(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let (csrf, set) = csrf_token(&state, &headers);
    let Some(token) = q.ticket.as_deref() else {
        return with_cookie(request_form(&t, &csrf, &q, None, None, StatusCode::OK), set);
    };
    let (_, user, connection) = match reset_target(&t, token).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let email = user.email.as_ref().map(|e| e.as_str().to_owned()).unwrap_or_default();
    let f =
        ResetForm { t: &t, csrf: &csrf, ticket: token, email: &email, rules: passwords::rules_text(&connection), error: None };
    with_cookie(reset_form(&f, StatusCode::OK), set)
}

#[derive(Deserialize)]
pub struct ResetSubmit {
    csrf: Option<String>,
    ticket: Option<String>,
    password: Option<String>,
    confirm: Option<String>,
    /// The request form.
    email: Option<String>,
    client_id: Option<String>,
    connection: Option<String>,
}

/// `POST /t/{tenant}/u/reset-password`: with a ticket, set the password; without, ask for a link.
pub async fn reset_submit(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<ResetSubmit>,
) -> Response {
    let csrf = form.csrf.clone().unwrap_or_default();
    if !csrf_ok(&state, &headers, &csrf) {
        return forbidden_form(&t);
    }
    let Some(token) = form.ticket.clone() else {
        return request_submit(&state, &t, &csrf, form, ip, &headers).await;
    };
    let (ticket, user, connection) = match reset_target(&t, &token).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let email = user.email.as_ref().map(|e| e.as_str().to_owned()).unwrap_or_default();
    let rules = passwords::rules_text(&connection);
    let again = |error: &str, status| {
        let f = ResetForm { t: &t, csrf: &csrf, ticket: &token, email: &email, rules: rules.clone(), error: Some(error) };
        reset_form(&f, status)
    };
    let password = form.password.unwrap_or_default();
    if password.is_empty() {
        return again("Enter a new password.", StatusCode::BAD_REQUEST);
    }
    if form.confirm.as_deref() != Some(password.as_str()) {
        return again("The two passwords are not the same.", StatusCode::BAD_REQUEST);
    }
    let password = match passwords::check_new(&state, &t, &connection, &user, password, true).await {
        Ok(p) => p,
        Err(passwords::Refusal::Unavailable(_) | passwords::Refusal::Store(_)) => return unavailable(&t),
        Err(r) => {
            let mut fcp = LogEvent::new(LogType::Fcp, format!("Password change refused: {}", r.summary()));
            fcp.user_id = Some(user.user_id.clone());
            fcp.user_name = Some(email.clone());
            fcp.connection = Some(connection.name.clone());
            fcp.ip = ip.to_string_opt();
            if let Err(e) = state.logs.record(t.id.clone(), fcp).await {
                tracing::warn!(error = ?e, "could not record a refused password change");
            }
            return again(&r.summary(), StatusCode::BAD_REQUEST);
        }
    };
    let Ok(hash) = state.hasher.hash(password).await else { return unavailable(&t) };
    let now = Timestamp::now();
    let mark_verified = ticket.mark_email_verified;
    let mutate = Box::new(move |u: &mut roster_domain::user::User| {
        u.last_password_reset = Some(now);
        u.updated_at = now;
        if mark_verified {
            u.email_verified = true;
        }
        Ok(())
    });
    let mut ev = LogEvent::new(LogType::Scp, "Password changed with a reset link");
    ev.user_id = Some(user.user_id.clone());
    ev.user_name = Some(email.clone());
    ev.connection = Some(connection.name.clone());
    ev.connection_id = Some(connection.id.clone());
    ev.ip = ip.to_string_opt();
    ev.user_agent = user_agent(&headers);
    let effects = after_password_change(&state, &t, &user, &connection.name, hash.clone(), None, ev);
    match t.store.redeem_ticket(&ticket.id_hash, ticket_kind::PASSWORD_RESET, now, mutate, Some(hash), effects).await {
        Ok(Redeemed::Done { ticket, user }) => {
            crate::attack::forget_blocks(&t);
            let email = user.email.as_ref().map(|e| e.as_str().to_owned());
            match ticket.result_url {
                Some(url) => redirect(&tickets::result_redirect(
                    &url,
                    "Your password has been changed successfully.",
                    email.as_deref().filter(|_| ticket.include_email_in_redirect),
                )),
                None => page(
                    StatusCode::OK,
                    "Password changed",
                    &t,
                    "<div class=\"info\" role=\"status\">Your password has been changed. You can now log in with it.</div>\
                     <p>For your security, you were signed out of every other device.</p>",
                ),
            }
        }
        Ok(Redeemed::Invalid) => dead_link(&t, true),
        Err(_) => unavailable(&t),
    }
}

/// What every password change commits with it: the log event, the end of every session and refresh
/// token but `keep_session`, the end of every outstanding reset link, pending email change and
/// brute-force block, the new hash remembered for
/// history rules, and the "your password was changed" notice (sent unless the tenant disabled it).
pub fn after_password_change(
    state: &AppState,
    t: &TenantCtx,
    user: &roster_domain::user::User,
    connection: &str,
    new_hash: String,
    keep_session: Option<String>,
    event: LogEvent,
) -> Effects {
    let now = Timestamp::now();
    let mut effects = Effects::log(event)
        .with_revocation(Revocation::Grants { user: user.user_id.clone(), keep_session, at: now })
        .with_revocation(Revocation::Tickets { user: user.user_id.clone(), kind: ticket_kind::PASSWORD_RESET.into(), at: now })
        // A password change cancels a pending email change (and its "this wasn't me" link).
        .with_revocation(Revocation::Tickets { user: user.user_id.clone(), kind: ticket_kind::EMAIL_CHANGE.into(), at: now })
        .with_revocation(Revocation::Tickets {
            user: user.user_id.clone(),
            kind: ticket_kind::EMAIL_CHANGE_CANCEL.into(),
            at: now,
        })
        .with_revocation(Revocation::LoginBlocks { user: user.user_id.clone(), identifiers: crate::attack::identifiers_of(user) })
        .remember_password(user.user_id.clone(), new_hash);
    if let Some(email) = user.email.as_ref() {
        let payload = json!({ "connection": connection });
        effects =
            effects.with_mail(tickets::mail(state, t, "password_reset", email.as_str(), Some(&user.user_id), payload, None));
    }
    effects
}

async fn request_submit(
    state: &AppState,
    t: &TenantCtx,
    csrf: &str,
    form: ResetSubmit,
    ip: ClientIp,
    headers: &HeaderMap,
) -> Response {
    let q = LinkQuery { ticket: None, client_id: form.client_id.clone(), connection: form.connection.clone() };
    let email = form.email.unwrap_or_default();
    if email.trim().is_empty() {
        return request_form(t, csrf, &q, None, Some("Enter your email address."), StatusCode::BAD_REQUEST);
    }
    let connection = form.connection.as_deref().filter(|c| !c.is_empty()).unwrap_or(DEFAULT_DIRECTORY);
    let client = form.client_id.as_deref().filter(|c| !c.is_empty());
    match request_reset(state, t, client, connection, email.trim(), ip.to_string_opt(), user_agent(headers)).await {
        Ok(()) => request_form(
            t,
            csrf,
            &q,
            Some(&format!("{SENT} If an account uses that address, the link arrives in a few minutes.")),
            None,
            StatusCode::OK,
        ),
        Err(ResetRefusal::TooMany(_)) => request_form(
            t,
            csrf,
            &q,
            None,
            Some("Too many requests for this address. Wait a while before asking again."),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(ResetRefusal::Invalid(e)) => request_form(t, csrf, &q, None, Some(&e.explain()), StatusCode::BAD_REQUEST),
    }
}

// ---- email verification ----

/// `GET /t/{tenant}/u/email-verification?ticket=…`: a button that confirms (nothing changes on GET).
pub async fn verify_page(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let token = q.ticket.unwrap_or_default();
    let ticket = match tickets::live(&t, &token, ticket_kind::EMAIL_VERIFICATION).await {
        Ok(Some(k)) => k,
        Ok(None) => return dead_link(&t, false),
        Err(_) => return unavailable(&t),
    };
    let (csrf, set) = csrf_token(&state, &headers);
    let body = format!(
        "<p>Confirm that <strong>{}</strong> is your email address.</p>{}",
        esc(ticket.email.as_deref().unwrap_or_default()),
        ticket_button(&t, "u/email-verification", &csrf, &token, "Confirm my email address"),
    );
    with_cookie(page(StatusCode::OK, "Verify your email", &t, &body), set)
}

#[derive(Deserialize)]
pub struct VerifySubmit {
    csrf: Option<String>,
    ticket: Option<String>,
}

/// What a one-button ticket form post (verification, unblock) starts with: the CSRF check, then a live
/// ticket of `kind` — or the page to answer instead.
async fn accept_ticket_form(
    state: &AppState,
    t: &TenantCtx,
    headers: &HeaderMap,
    form: VerifySubmit,
    kind: &str,
) -> Result<Ticket, Response> {
    if !csrf_ok(state, headers, form.csrf.as_deref().unwrap_or_default()) {
        return Err(forbidden_form(t));
    }
    let dead = |t: &TenantCtx| if kind == ticket_kind::UNBLOCK { unblock_dead(t) } else { dead_link(t, false) };
    match tickets::live(t, form.ticket.as_deref().unwrap_or_default(), kind).await {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(dead(t)),
        Err(_) => Err(unavailable(t)),
    }
}

/// `POST /t/{tenant}/u/email-verification`: redeem the ticket; the address becomes verified.
pub async fn verify_submit(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<VerifySubmit>,
) -> Response {
    let ticket = match accept_ticket_form(&state, &t, &headers, form, ticket_kind::EMAIL_VERIFICATION).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Ok(Some(user)) = t.store.user(&ticket.user_id).await else { return dead_link(&t, false) };
    let for_email = ticket.email.clone();
    let now = Timestamp::now();
    // The ticket verifies the address it was sent to, not one the user changed to since.
    let mutate = Box::new(move |u: &mut roster_domain::user::User| {
        let current = u.email.as_ref().map(|e| e.as_str().to_owned());
        if current.is_none() || current != for_email {
            return Err(roster_domain::ValidationError::new("the address changed since the link was sent"));
        }
        u.email_verified = true;
        u.updated_at = now;
        Ok(())
    });
    let mut ev = LogEvent::new(LogType::Sv, "Email verified");
    ev.user_id = Some(user.user_id.clone());
    ev.user_name = user.email.as_ref().map(|e| e.as_str().to_owned());
    ev.ip = ip.to_string_opt();
    ev.user_agent = user_agent(&headers);
    let mut effects = Effects::log(ev);
    // The welcome mail is opt-in, as in Auth0: only when the tenant enabled its welcome_email template.
    let welcome = matches!(t.store.email_template("welcome_email").await, Ok(Some(w)) if w.enabled);
    if let (true, Some(email)) = (welcome && !user.email_verified, user.email.as_ref()) {
        let payload = json!({ "client_id": ticket.client_id });
        effects =
            effects.with_mail(tickets::mail(&state, &t, "welcome_email", email.as_str(), Some(&user.user_id), payload, None));
    }
    match t.store.redeem_ticket(&ticket.id_hash, ticket_kind::EMAIL_VERIFICATION, now, mutate, None, effects).await {
        Ok(Redeemed::Done { ticket, user }) => match ticket.result_url {
            Some(url) => redirect(&tickets::result_redirect(
                &url,
                "Your email was verified. You can continue using the application.",
                user.email.as_ref().map(|e| e.as_str()).filter(|_| ticket.include_email_in_redirect),
            )),
            None => page(
                StatusCode::OK,
                "Email verified",
                &t,
                "<div class=\"info\" role=\"status\">Your email address is verified. You can close this page.</div>",
            ),
        },
        Ok(Redeemed::Invalid) => dead_link(&t, false),
        Err(StoreError::Rejected(_)) => {
            let mut fv = LogEvent::new(LogType::Fv, "The address changed since the verification link was sent");
            fv.user_id = Some(user.user_id.clone());
            let _ = t.store.append_effects(fv).await;
            dead_link(&t, false)
        }
        Err(_) => unavailable(&t),
    }
}

// ---- unblock (the link in a blocked_account mail) ----

/// `GET /t/{tenant}/u/unblock?ticket=…`: a button that lifts the blocks (nothing changes on GET).
pub async fn unblock_page(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let token = q.ticket.unwrap_or_default();
    match tickets::live(&t, &token, ticket_kind::UNBLOCK).await {
        Ok(Some(_)) => {}
        Ok(None) => return unblock_dead(&t),
        Err(_) => return unavailable(&t),
    }
    let (csrf, set) = csrf_token(&state, &headers);
    let body = format!(
        "<p>Logins to your account were blocked after too many failed attempts. If those attempts were yours, \
         unblock your account; if not, consider changing your password.</p>{}",
        ticket_button(&t, "u/unblock", &csrf, &token, "Unblock my account"),
    );
    with_cookie(page(StatusCode::OK, "Unblock your account", &t, &body), set)
}

fn unblock_dead(t: &TenantCtx) -> Response {
    let body = format!(
        "<div class=\"error\" role=\"alert\">This link has expired or has already been used.</div>\
         <p>You can still reset your password, which also unblocks your account.</p>\
         <nav><a href=\"{}u/reset-password\">Reset my password</a></nav>",
        esc(&t.issuer)
    );
    page(StatusCode::GONE, "Unblock your account", t, &body)
}

/// `POST /t/{tenant}/u/unblock`: redeem the ticket; every brute-force block of the user is lifted.
pub async fn unblock_submit(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<VerifySubmit>,
) -> Response {
    let ticket = match accept_ticket_form(&state, &t, &headers, form, ticket_kind::UNBLOCK).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut ev = LogEvent::new(LogType::Ublkdu, "Brute-force blocks lifted with the emailed link");
    ev.user_id = Some(ticket.user_id.clone());
    ev.ip = ip.to_string_opt();
    ev.user_agent = user_agent(&headers);
    let identifiers = match t.store.user(&ticket.user_id).await {
        Ok(Some(u)) => crate::attack::identifiers_of(&u),
        _ => Vec::new(),
    };
    let effects = Effects::log(ev).with_revocation(Revocation::LoginBlocks { user: ticket.user_id.clone(), identifiers });
    let noop = Box::new(|_: &mut roster_domain::user::User| Ok(()));
    match t.store.redeem_ticket(&ticket.id_hash, ticket_kind::UNBLOCK, Timestamp::now(), noop, None, effects).await {
        Ok(Redeemed::Done { .. }) => {
            crate::attack::forget_blocks(&t);
            page(
                StatusCode::OK,
                "Account unblocked",
                &t,
                "<div class=\"info\" role=\"status\">Your account is unblocked. You can log in again.</div>",
            )
        }
        Ok(Redeemed::Invalid) => unblock_dead(&t),
        Err(_) => unavailable(&t),
    }
}
