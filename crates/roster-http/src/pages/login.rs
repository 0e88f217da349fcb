//! `/authorize`, the hosted login and signup pages, the SSO session cookie, and `/v2/logout`.
//!
//! Redirects go only to a client's registered callback (exact string match) or allowed logout URL; an
//! unknown client or redirect URI gets an error page, never a redirect. The authorization request
//! travels through the login form as one hidden field and is validated again on every step. Forms are
//! CSRF-protected (double-submit cookie + Origin check). The session cookie holds a 256-bit random
//! value; the store keeps its SHA-256.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use roster_domain::Timestamp;
use roster_domain::log::{LogEvent, LogType};
use roster_domain::user::User;
use roster_store::{AuthCode, Client, Session};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::{CookieSpec, cookie, csrf_ok, csrf_token, error_page, esc, notice, page, redirect, with_cookie};
use crate::authentication::issue::{Grant, decide};
use crate::authentication::login::{DEFAULT_DIRECTORY, Verdict, check_credentials, record_login, refuse};
use crate::authentication::signup::{SignupBody, register};
use crate::authentication::token::{GrantCtx, user_agent};
use crate::extract::{AuthTenant, ClientIp};
use crate::state::AppState;
use crate::tenant::TenantCtx;

/// Lifetime of an authorization code (OAuth 2.1: at most 10 minutes).
const CODE_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// Lifetime of the SSO session.
const SESSION_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;

/// The parameters of an authorization request (all optional at parse time).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AuthorizeRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}

/// A request that passed every check.
struct Valid {
    client: Client,
    redirect_uri: String,
    grant: Grant,
    req: AuthorizeRequest,
}

/// Why a request cannot go on: an error page (client or redirect URI unknown) or an error redirect.
enum Refusal {
    Page(Response),
    Redirect(Response),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Page(r) | Self::Redirect(r) => r,
        }
    }
}

/// `redirect_uri?{params}` (or `&` when it already has a query).
fn back_to(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let q = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    redirect(&format!("{redirect_uri}{sep}{q}"))
}

fn error_redirect(v_uri: &str, state: Option<&str>, error: &str, description: &str) -> Refusal {
    let mut p = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        p.push(("state", s));
    }
    Refusal::Redirect(back_to(v_uri, &p))
}

/// The account portal's client: built in, first party, its only callback the portal's own.
pub const PORTAL_CLIENT_ID: &str = "roster-account";

fn portal_client(t: &TenantCtx) -> Client {
    Client {
        client_id: roster_domain::ClientId::from_trusted(PORTAL_CLIENT_ID.to_owned()),
        name: "Account".into(),
        secret_hash: String::new(),
        app_type: "regular_web".into(),
        is_management: false,
        grant_types: vec!["authorization_code".into()],
        callbacks: vec![format!("{}account/callback", t.issuer)],
        allowed_logout_urls: vec![format!("{}account", t.issuer)],
        token_endpoint_auth_method: "client_secret_post".into(),
        is_first_party: true,
        description: "The self-service account portal".into(),
        created_at: roster_domain::Timestamp::from_millis(0),
        token_endpoint_ip_header_trusted: false,
    }
}

/// The `/authorize` request the portal sends a browser without a session to.
pub fn portal_login_url(t: &TenantCtx) -> String {
    let req = AuthorizeRequest {
        response_type: Some("code".into()),
        client_id: Some(PORTAL_CLIENT_ID.into()),
        redirect_uri: Some(format!("{}account/callback", t.issuer)),
        scope: Some("openid".into()),
        ..AuthorizeRequest::default()
    };
    format!("{}authorize?{}", t.issuer, serde_urlencoded::to_string(&req).unwrap_or_default())
}

async fn validate(t: &TenantCtx, req: AuthorizeRequest) -> Result<Valid, Refusal> {
    let client = match req.client_id.as_deref() {
        Some(PORTAL_CLIENT_ID) => Some(portal_client(t)),
        Some(c) => match roster_domain::ClientId::parse(c) {
            Ok(id) => t.client(&id).await.ok().flatten(),
            Err(_) => None,
        },
        None => None,
    };
    let Some(client) = client else {
        return Err(Refusal::Page(error_page(t, StatusCode::BAD_REQUEST, "Unknown client.")));
    };
    let Some(redirect_uri) = req.redirect_uri.clone().filter(|u| client.callbacks.iter().any(|c| c == u)) else {
        return Err(Refusal::Page(error_page(
            t,
            StatusCode::BAD_REQUEST,
            "The redirect URI is not in the list of allowed callback URLs of this application.",
        )));
    };
    let state = req.state.as_deref();
    if req.response_type.as_deref() != Some("code") {
        return Err(error_redirect(&redirect_uri, state, "unsupported_response_type", "Only response_type=code is supported"));
    }
    if !client.grant_types.iter().any(|g| g == "authorization_code") {
        return Err(error_redirect(
            &redirect_uri,
            state,
            "unauthorized_client",
            "The client may not use the authorization code grant",
        ));
    }
    match (req.code_challenge.as_deref(), req.code_challenge_method.as_deref()) {
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => {}
        (Some(_), _) => {
            return Err(error_redirect(&redirect_uri, state, "invalid_request", "code_challenge_method must be S256"));
        }
        (None, _) if client.token_endpoint_auth_method == "none" => {
            return Err(error_redirect(
                &redirect_uri,
                state,
                "invalid_request",
                "PKCE (code_challenge) is required for public clients",
            ));
        }
        (None, _) => {}
    }
    let grant = match decide(t, req.scope.as_deref(), req.audience.as_deref()) {
        Ok(g) => g,
        Err(e) => return Err(error_redirect(&redirect_uri, state, e.error, &e.description)),
    };
    Ok(Valid { client, redirect_uri, grant, req })
}

pub(crate) fn session_cookie_name(state: &AppState, t: &TenantCtx) -> String {
    CookieSpec::new(&state.cfg.public_url).name(&format!("rs_{}", t.name))
}

/// The live session of this browser and its user (not blocked), if any.
pub(crate) async fn session_user(state: &AppState, t: &TenantCtx, headers: &HeaderMap) -> Option<(Session, User)> {
    let value = cookie(headers, &session_cookie_name(state, t))?;
    let s = t.store.session(&roster_auth::secret::hash_secret(&value), Timestamp::now()).await.ok()??;
    let user = t.store.user(&s.user_id).await.ok()??;
    (!user.blocked).then(|| (s, Arc::unwrap_or_clone(user)))
}

/// The terms page a login stops at when the tenant published terms the user has not accepted yet;
/// `None` when there is nothing to accept.
async fn terms_gate(state: &AppState, t: &TenantCtx, headers: &HeaderMap, req_q: &str, user: &User) -> Option<Response> {
    let settings = crate::account::settings(t).await.ok()?;
    let terms = crate::account::terms_pending(&settings.account, user)?;
    let (csrf, set) = csrf_token(state, headers);
    let body = format!(
        "<p>Our terms have changed. Please read the <a href=\"{url}\" rel=\"noopener noreferrer\" target=\"_blank\">terms \
         (version {version})</a> and accept them to continue.</p>\
         <form method=\"post\" action=\"{issuer}u/terms\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"req\" value=\"{req}\">\
         <input type=\"hidden\" name=\"version\" value=\"{version}\">\
         <button type=\"submit\">I accept the terms</button></form>\
         <nav><a href=\"{issuer}v2/logout\">Decline and log out</a></nav>",
        url = esc(&terms.url),
        version = esc(&terms.version),
        issuer = esc(&t.issuer),
        csrf = esc(&csrf),
        req = esc(req_q),
    );
    Some(with_cookie(page(StatusCode::OK, "Accept the terms", t, &body), set))
}

#[derive(Deserialize)]
pub struct TermsForm {
    csrf: Option<String>,
    req: Option<String>,
    version: Option<String>,
}

/// `POST /t/{tenant}/u/terms`: the user of this browser's session accepts the terms, and the login
/// goes on to the application.
pub async fn terms_submit(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<TermsForm>,
) -> Response {
    let (_, req_q, v) = match accept_form(&state, &t, &headers, form.csrf, form.req).await {
        Ok(accepted) => accepted,
        Err(r) => return r,
    };
    let Some((session, user)) = session_user(&state, &t, &headers).await else {
        return redirect(&format!("{}u/login?{req_q}", t.issuer));
    };
    let Ok(settings) = crate::account::settings(&t).await else {
        return error_page(&t, StatusCode::SERVICE_UNAVAILABLE, "The service is temporarily unavailable, try again.");
    };
    let actor = crate::account::Actor {
        state: &state,
        t: &t,
        ip: ip.to_string_opt(),
        user_agent: user_agent(&headers),
        session: Some(session.id_hash.clone()),
    };
    let version = form.version.unwrap_or_default();
    if crate::account::terms_pending(&settings.account, &user).is_some() {
        match crate::account::accept_terms(&actor, &user, &settings.account, &version).await {
            Ok(_) => {}
            Err(crate::account::AccountError::Invalid(_)) => {
                // The terms changed while the page was open: show the current ones.
                if let Some(r) = terms_gate(&state, &t, &headers, &req_q, &user).await {
                    return r;
                }
            }
            Err(e) => return error_page(&t, StatusCode::SERVICE_UNAVAILABLE, &e.message()),
        }
    }
    issue_code(&t, &v, &user.user_id, Some(&session.id_hash), session.authenticated_at).await
}

/// Issue a code for `user` and send the browser back to the client.
async fn issue_code(
    t: &TenantCtx,
    v: &Valid,
    user: &roster_domain::UserId,
    session: Option<&str>,
    auth_time: Timestamp,
) -> Response {
    let code = URL_SAFE_NO_PAD.encode(roster_domain::secret::random_bytes(32));
    let now = Timestamp::now();
    let rec = AuthCode {
        id_hash: roster_auth::secret::hash_secret(&code),
        client_id: v.client.client_id.clone(),
        user_id: user.clone(),
        redirect_uri: v.redirect_uri.clone(),
        scope: v.grant.scope.to_space_separated(),
        audience: v.grant.audience.clone(),
        nonce: v.req.nonce.clone(),
        code_challenge: v.req.code_challenge.clone(),
        session_id: session.map(str::to_owned),
        auth_time,
        expires_at: Timestamp::from_millis(now.millis() + CODE_LIFETIME_MS),
    };
    if t.store.create_code(&rec).await.is_err() {
        return error_page(t, StatusCode::SERVICE_UNAVAILABLE, "The service is temporarily unavailable, try again.");
    }
    let mut p = vec![("code", code.as_str())];
    if let Some(s) = v.req.state.as_deref() {
        p.push(("state", s));
    }
    back_to(&v.redirect_uri, &p)
}

/// `GET /t/{tenant}/authorize`
pub async fn authorize(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    headers: HeaderMap,
    Query(req): Query<AuthorizeRequest>,
) -> Response {
    let v = match validate(&t, req).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let prompt = v.req.prompt.clone().unwrap_or_default();
    if prompt != "login"
        && let Some((s, user)) = session_user(&state, &t, &headers).await
    {
        let q = serde_urlencoded::to_string(&v.req).unwrap_or_default();
        if let Some(r) = terms_gate(&state, &t, &headers, &q, &user).await {
            if prompt == "none" {
                return error_redirect(
                    &v.redirect_uri,
                    v.req.state.as_deref(),
                    "interaction_required",
                    "The user must accept the terms",
                )
                .into_response();
            }
            return r;
        }
        return issue_code(&t, &v, &s.user_id, Some(&s.id_hash), s.authenticated_at).await;
    }
    if prompt == "none" {
        return error_redirect(&v.redirect_uri, v.req.state.as_deref(), "login_required", "The user is not logged in")
            .into_response();
    }
    let q = serde_urlencoded::to_string(&v.req).unwrap_or_default();
    redirect(&format!("{}u/login?{q}", t.issuer))
}

struct FormPage<'a> {
    t: &'a TenantCtx,
    csrf: &'a str,
    req: &'a str,
    error: Option<&'a str>,
    info: Option<&'a str>,
    email: &'a str,
}

fn login_form(f: &FormPage<'_>, status: StatusCode) -> Response {
    let body = format!(
        "{notice}<form method=\"post\" action=\"{issuer}u/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"req\" value=\"{req}\">\
         <label for=\"username\">Email address</label>\
         <input id=\"username\" name=\"username\" type=\"email\" autocomplete=\"username\" required value=\"{email}\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Log in</button></form>\
         <nav><a href=\"{issuer}u/signup?{req}\">Sign up</a><a href=\"{issuer}u/reset-password?{req}\">Forgot your password?</a></nav>",
        notice = notice(f.error, f.info),
        issuer = esc(&f.t.issuer),
        csrf = esc(f.csrf),
        req = esc(f.req),
        email = esc(f.email),
    );
    page(status, "Log in", f.t, &body)
}

fn signup_form(f: &FormPage<'_>, status: StatusCode) -> Response {
    let body = format!(
        "{notice}<form method=\"post\" action=\"{issuer}u/signup\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"req\" value=\"{req}\">\
         <label for=\"email\">Email address</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" required value=\"{email}\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"8\">\
         <button type=\"submit\">Sign up</button></form>\
         <nav><a href=\"{issuer}u/login?{req}\">Already have an account? Log in</a></nav>",
        notice = notice(f.error, f.info),
        issuer = esc(&f.t.issuer),
        csrf = esc(f.csrf),
        req = esc(f.req),
        email = esc(f.email),
    );
    page(status, "Sign up", f.t, &body)
}

/// `GET /t/{tenant}/u/login`
pub async fn login_page(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    headers: HeaderMap,
    Query(req): Query<AuthorizeRequest>,
) -> Response {
    if let Err(r) = validate(&t, req.clone()).await {
        return r.into_response();
    }
    let (csrf, set) = csrf_token(&state, &headers);
    let q = serde_urlencoded::to_string(&req).unwrap_or_default();
    with_cookie(login_form(&FormPage { t: &t, csrf: &csrf, req: &q, error: None, info: None, email: "" }, StatusCode::OK), set)
}

/// `GET /t/{tenant}/u/signup`
pub async fn signup_page(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    headers: HeaderMap,
    Query(req): Query<AuthorizeRequest>,
) -> Response {
    if let Err(r) = validate(&t, req.clone()).await {
        return r.into_response();
    }
    let (csrf, set) = csrf_token(&state, &headers);
    let q = serde_urlencoded::to_string(&req).unwrap_or_default();
    with_cookie(signup_form(&FormPage { t: &t, csrf: &csrf, req: &q, error: None, info: None, email: "" }, StatusCode::OK), set)
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: Option<String>,
    req: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

fn forbidden_form(t: &TenantCtx) -> Response {
    error_page(t, StatusCode::FORBIDDEN, "This form has expired or did not come from this site. Go back and try again.")
}

/// The checks every hosted form post starts with: the CSRF token, then the authorization request it
/// carries, decoded and validated again. Returns the token, the request as sent, and the request.
async fn accept_form(
    state: &AppState,
    t: &TenantCtx,
    headers: &HeaderMap,
    csrf: Option<String>,
    req: Option<String>,
) -> Result<(String, String, Valid), Response> {
    let csrf = csrf.unwrap_or_default();
    if !csrf_ok(state, headers, &csrf) {
        return Err(forbidden_form(t));
    }
    let req_q = req.unwrap_or_default();
    let Ok(req) = serde_urlencoded::from_str::<AuthorizeRequest>(&req_q) else { return Err(forbidden_form(t)) };
    let v = validate(t, req).await.map_err(IntoResponse::into_response)?;
    Ok((csrf, req_q, v))
}

/// `POST /t/{tenant}/u/login`
pub async fn login_submit(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let (csrf, req_q, v) = match accept_form(&state, &t, &headers, form.csrf, form.req).await {
        Ok(accepted) => accepted,
        Err(r) => return r,
    };
    let username = form.username.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    fn form_page<'a>(t: &'a TenantCtx, csrf: &'a str, req: &'a str, email: &'a str, error: &'a str) -> FormPage<'a> {
        FormPage { t, csrf, req, error: Some(error), info: None, email }
    }
    if username.is_empty() || password.is_empty() {
        return login_form(
            &form_page(&t, &csrf, &req_q, &username, "Enter your email address and password."),
            StatusCode::BAD_REQUEST,
        );
    }
    let ctx =
        GrantCtx { state: &state, tenant: &t, ip: ip.to_string_opt(), user_agent: user_agent(&headers), forwarded_for: None };
    let connection = v.req.connection.clone().unwrap_or_else(|| DEFAULT_DIRECTORY.to_owned());
    let verdict = match check_credentials(&ctx, &connection, &username, &password).await {
        Ok(v) => v,
        Err(e) => return login_form(&form_page(&t, &csrf, &req_q, &username, &e.description), e.status),
    };
    let (user, hash, success) = match verdict {
        Verdict::Ok { user, hash, success } => (user, hash, success),
        other => {
            let e = refuse(&ctx, &other, &connection, &username, Some(&v.client)).await;
            let message = match other {
                Verdict::Blocked(_) => "Your account has been blocked. Contact the administrator of this application.",
                Verdict::SuspiciousIp => {
                    "Too many failed attempts from your network. Try again later or contact the administrator."
                }
                Verdict::TooManyAttempts(_) => {
                    "Too many failed attempts: logins to this account from your network are blocked for now. Reset your password or wait."
                }
                _ => "Wrong email or password.",
            };
            return login_form(&form_page(&t, &csrf, &req_q, &username, message), e.status);
        }
    };
    let user = match record_login(&ctx, &user, &hash, &password, &v.client, &connection, "Successful login", success).await {
        Ok(u) => u,
        Err(e) => return login_form(&form_page(&t, &csrf, &req_q, &username, &e.description), e.status),
    };
    // A new session at every login (no fixation): a fresh random value, only its hash stored.
    let value = URL_SAFE_NO_PAD.encode(roster_domain::secret::random_bytes(32));
    let now = Timestamp::now();
    let session = Session {
        id_hash: roster_auth::secret::hash_secret(&value),
        user_id: user.user_id.clone(),
        created_at: now,
        authenticated_at: now,
        last_seen_at: now,
        expires_at: Timestamp::from_millis(now.millis() + SESSION_LIFETIME_MS),
        ip: ctx.ip.clone(),
        user_agent: ctx.user_agent.clone(),
    };
    if t.store.create_session(&session).await.is_err() {
        return error_page(&t, StatusCode::SERVICE_UNAVAILABLE, "The service is temporarily unavailable, try again.");
    }
    let spec = CookieSpec::new(&state.cfg.public_url);
    let r = match terms_gate(&state, &t, &headers, &req_q, &user).await {
        Some(terms) => terms,
        None => issue_code(&t, &v, &user.user_id, Some(&session.id_hash), now).await,
    };
    with_cookie(r, Some(spec.set(&session_cookie_name(&state, &t), &value, Some(SESSION_LIFETIME_MS / 1000))))
}

#[derive(Deserialize)]
pub struct SignupForm {
    csrf: Option<String>,
    req: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

/// `POST /t/{tenant}/u/signup`. A new address and a registered one end on the same page (no
/// enumeration); the new user verifies the address and logs in.
pub async fn signup_submit(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<SignupForm>,
) -> Response {
    let (csrf, req_q, v) = match accept_form(&state, &t, &headers, form.csrf, form.req).await {
        Ok(accepted) => accepted,
        Err(r) => return r,
    };
    let email = form.email.unwrap_or_default();
    let body = SignupBody {
        client_id: Some(v.client.client_id.to_string()),
        email: Some(email.clone()),
        password: form.password,
        connection: Some(v.req.connection.clone().unwrap_or_else(|| DEFAULT_DIRECTORY.to_owned())),
        ..SignupBody::default()
    };
    match register(&state, &t, ip.to_string_opt(), user_agent(&headers), body).await {
        Ok(_) => login_form(
            &FormPage {
                t: &t,
                csrf: &csrf,
                req: &req_q,
                error: None,
                info: Some("Thanks for signing up. Check your inbox to verify your address, then log in."),
                email: &email,
            },
            StatusCode::OK,
        ),
        Err(e) => signup_form(
            &FormPage { t: &t, csrf: &csrf, req: &req_q, error: Some(&e.explain()), info: None, email: &email },
            StatusCode::BAD_REQUEST,
        ),
    }
}

#[derive(Deserialize)]
pub struct LogoutQuery {
    client_id: Option<String>,
    #[serde(rename = "returnTo")]
    return_to: Option<String>,
}

/// `GET /t/{tenant}/v2/logout?client_id&returnTo`: ends the SSO session; `returnTo` must be one of the
/// client's allowed logout URLs.
pub async fn logout(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    headers: HeaderMap,
    Query(q): Query<LogoutQuery>,
) -> Response {
    let target = match q.return_to.as_deref() {
        None => None,
        Some(to) => {
            let client = match q.client_id.as_deref().map(roster_domain::ClientId::parse) {
                Some(Ok(id)) => t.store.client(&id).await.ok().flatten(),
                _ => None,
            };
            match client.filter(|c| c.allowed_logout_urls.iter().any(|u| u == to)) {
                Some(_) => Some(to.to_owned()),
                None => {
                    return error_page(
                        &t,
                        StatusCode::BAD_REQUEST,
                        "The returnTo URL is not in the list of allowed logout URLs of this application.",
                    );
                }
            }
        }
    };
    let name = session_cookie_name(&state, &t);
    if let Some(value) = cookie(&headers, &name) {
        let hash = roster_auth::secret::hash_secret(&value);
        if let Ok(Some(s)) = t.store.session(&hash, Timestamp::now()).await {
            let mut ev = LogEvent::new(LogType::Slo, "User successfully logged out");
            ev.user_id = Some(s.user_id.clone());
            ev.client_id = q.client_id.as_deref().and_then(|c| roster_domain::ClientId::parse(c).ok());
            let _ = t.store.revoke_session(&hash, ev).await;
        }
    }
    let clear = CookieSpec::new(&state.cfg.public_url).clear(&name);
    let r = match target {
        Some(to) => redirect(&to),
        None => page(StatusCode::OK, "Logged out", &t, "<div class=\"info\" role=\"status\">You are logged out.</div>"),
    };
    with_cookie(r, Some(clear))
}
