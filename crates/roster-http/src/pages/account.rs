//! The self-service account portal (`/t/{tenant}/account`) and the pages of its email links
//! (`/u/email-change`, `/u/email-change/cancel`).
//!
//! Server-rendered, no JavaScript. The portal is a first-party client of its own tenant: a browser
//! without a session is sent through `/authorize` and the hosted login (so brute-force protection,
//! blocks and the terms gate apply), and comes back with the SSO session cookie. Every form is a POST
//! with the CSRF token, answered with a redirect back to the portal (post/redirect/get) or, on a
//! refused value, the portal again with the message next to the field. Email changes and deletion need
//! a login within the tenant's re-authentication window, or the password typed again in the form.
//! Every value shown is escaped; colours are validated hex; images only from `https:`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use roster_domain::Timestamp;
use roster_domain::account::{Kind, Property};
use roster_domain::user::User;
use roster_store::{Session, ticket_kind};
use serde::Deserialize;
use serde_json::Value;

use super::login::{portal_login_url, session_cookie_name, session_user};
use super::{CookieSpec, csrf_ok, csrf_token, error_page, esc, page, redirect, secure_headers, ticket_button, with_cookie};
use crate::account::{self, AccountError, Actor, Confirmed, FormSection, Settings};
use crate::authentication::token::user_agent;
use crate::extract::{AuthTenant, ClientIp};
use crate::state::AppState;
use crate::tenant::TenantCtx;
use crate::tickets;

/// The portal's CSP: no scripts at all; images may come from `https:` (the user's picture, the logo).
const PORTAL_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; \
                          form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What a portal request knows once the browser's session is checked.
pub struct Ctx {
    state: AppState,
    t: Arc<TenantCtx>,
    settings: Settings,
    session: Session,
    user: User,
    csrf: String,
    set_csrf: Option<HeaderValue>,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl Ctx {
    fn actor(&self) -> Actor<'_> {
        Actor {
            state: &self.state,
            t: &self.t,
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            session: Some(self.session.id_hash.clone()),
        }
    }

    fn recently_authenticated(&self) -> bool {
        let window = self.settings.account.reauthentication_window * 1000;
        Timestamp::now().millis() - self.session.authenticated_at.millis() <= window
    }
}

/// The session's user and the tenant's settings, or the response to send instead (login, disabled).
async fn enter(state: &AppState, t: Arc<TenantCtx>, headers: &HeaderMap, ip: &ClientIp) -> Result<Ctx, Response> {
    let Ok(settings) = account::settings(&t).await else { return Err(unavailable(&t)) };
    if !settings.account.enabled {
        return Err(error_page(&t, StatusCode::NOT_FOUND, "There is no account portal here."));
    }
    let Some((session, user)) = session_user(state, &t, headers).await else {
        return Err(redirect(&portal_login_url(&t)));
    };
    let (csrf, set_csrf) = csrf_token(state, headers);
    Ok(Ctx {
        state: state.clone(),
        t,
        settings,
        session,
        user,
        csrf,
        set_csrf,
        ip: ip.to_string_opt(),
        user_agent: user_agent(headers),
    })
}

fn unavailable(t: &TenantCtx) -> Response {
    error_page(t, StatusCode::SERVICE_UNAVAILABLE, "The service is temporarily unavailable, try again.")
}

fn forbidden_form(t: &TenantCtx) -> Response {
    error_page(t, StatusCode::FORBIDDEN, "This form has expired or did not come from this site. Go back and try again.")
}

/// A message box, if any, keyed by the section it belongs to.
#[derive(Default)]
struct Notes {
    /// Section → (is error, message)
    by_section: HashMap<&'static str, (bool, String)>,
    /// Field → message
    fields: HashMap<String, String>,
}

impl Notes {
    fn info(section: &'static str, msg: &str) -> Self {
        let mut n = Self::default();
        n.by_section.insert(section, (false, msg.to_owned()));
        n
    }
    fn error(section: &'static str, e: &AccountError) -> Self {
        let mut n = Self::default();
        match e {
            AccountError::Invalid(list) => {
                for (f, m) in list {
                    n.fields.insert(f.clone(), m.clone());
                }
                n.by_section.insert(section, (true, "Some values need your attention.".into()));
            }
            other => {
                n.by_section.insert(section, (true, other.message()));
            }
        }
        n
    }
    fn section(&self, s: &str) -> String {
        match self.by_section.get(s) {
            Some((true, m)) => format!("<div class=\"error\" role=\"alert\">{}</div>", esc(m)),
            Some((false, m)) => format!("<div class=\"info\" role=\"status\">{}</div>", esc(m)),
            None => String::new(),
        }
    }
    fn field(&self, f: &str) -> String {
        self.fields.get(f).map(|m| format!("<p class=\"field-error\" id=\"err-{0}\">{1}</p>", esc(f), esc(m))).unwrap_or_default()
    }
}

fn portal_style(s: &Settings) -> String {
    // Colours were validated as #rgb/#rrggbb when stored; they are the only settings put into CSS.
    let (primary, background) = (&s.branding.primary, &s.branding.page_background);
    format!(
        "body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:{background};margin:0;color:#1f2328}}\
         header{{background:#fff;border-bottom:1px solid #d0d7de;padding:.75rem 1rem;display:flex;flex-wrap:wrap;gap:.75rem;align-items:center;justify-content:space-between}}\
         header .brand{{display:flex;align-items:center;gap:.5rem;font-weight:700}}header img{{max-height:2rem;max-width:8rem}}\
         header nav{{display:flex;flex-wrap:wrap;gap:.75rem;font-size:.95rem}}\
         main{{max-width:44rem;margin:1.5rem auto;padding:0 1rem}}\
         section{{background:#fff;padding:1.25rem 1.5rem;border-radius:.75rem;box-shadow:0 1px 3px rgba(0,0,0,.12);margin-bottom:1.25rem}}\
         h1{{font-size:1.5rem;margin:.5rem 0 1rem}}h2{{font-size:1.15rem;margin:0 0 .75rem}}\
         label{{display:block;margin:.75rem 0 .25rem;font-weight:600}}.help{{color:#57606a;font-size:.9rem;margin:.2rem 0}}\
         input[type=email],input[type=password],input[type=text],input[type=url],input[type=number],select{{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #8c959f;border-radius:.4rem;font-size:1rem}}\
         input[readonly]{{background:#f6f8fa}}\
         .check label{{display:inline;font-weight:600;margin-left:.4rem}}\
         button{{margin-top:1rem;padding:.6rem 1.1rem;border:0;border-radius:.4rem;background:{primary};color:#fff;font-size:1rem;cursor:pointer}}\
         button.secondary{{background:#fff;color:{primary};border:1px solid {primary}}}button.danger{{background:#b42318}}\
         .error{{background:#ffebe9;border:1px solid #ff8182;padding:.6rem;border-radius:.4rem;margin-bottom:1rem}}\
         .info{{background:#ddf4ff;border:1px solid #54aeff;padding:.6rem;border-radius:.4rem;margin-bottom:1rem}}\
         .field-error{{color:#b42318;margin:.25rem 0 0;font-size:.9rem}}\
         .note{{color:#57606a;font-size:.9rem}}.badge{{display:inline-block;font-size:.8rem;padding:.1rem .45rem;border-radius:1rem;background:#dafbe1;color:#1a7f37}}\
         .badge.warn{{background:#fff8c5;color:#7d4e00}}\
         dl{{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:0}}dt{{font-weight:600}}dd{{margin:0;overflow-wrap:anywhere}}\
         table{{width:100%;border-collapse:collapse;font-size:.92rem}}td,th{{text-align:left;padding:.45rem .3rem;border-bottom:1px solid #eaeef2;vertical-align:top;overflow-wrap:anywhere}}\
         td form button{{margin:0;padding:.3rem .7rem;font-size:.9rem}}\
         a{{color:{primary}}}@media (max-width:30rem){{section{{padding:1rem}}}}"
    )
}

/// The portal page around `body` (already-escaped HTML).
fn portal_page(c: &Ctx, status: StatusCode, title: &str, body: &str) -> Response {
    let s = &c.settings;
    let logo = s.branding.logo_url.as_deref().map(|u| format!("<img src=\"{}\" alt=\"\">", esc(u))).unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · {name}</title><style>{style}</style></head><body>\
         <header><div class=\"brand\">{logo}<span>{name}</span></div>\
         <nav aria-label=\"Account sections\"><a href=\"#profile\">Profile</a><a href=\"#email\">Email</a><a href=\"#password\">Password</a>\
         <a href=\"#sessions\">Sessions</a><a href=\"#data\">Your data</a><a href=\"{issuer}v2/logout\">Log out</a></nav></header>\
         <main><h1>{title}</h1>{body}</main></body></html>",
        title = esc(title),
        name = esc(&s.friendly_name),
        style = portal_style(s),
        issuer = esc(&c.t.issuer),
    );
    let mut r = (status, Html(html)).into_response();
    secure_headers(r.headers_mut());
    r.headers_mut().insert("content-security-policy", HeaderValue::from_static(PORTAL_CSP));
    with_cookie(r, c.set_csrf.clone())
}

fn hidden_csrf(c: &Ctx) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(&c.csrf))
}

fn text_input(name: &str, label: &str, value: Option<&str>, kind: &str, readonly: bool, notes: &Notes) -> String {
    let described = if notes.fields.contains_key(name) {
        format!(" aria-invalid=\"true\" aria-describedby=\"err-{}\"", esc(name))
    } else {
        String::new()
    };
    format!(
        "<label for=\"f-{n}\">{l}</label><input id=\"f-{n}\" name=\"{n}\" type=\"{kind}\" value=\"{v}\"{ro}{described}>{err}",
        n = esc(name),
        l = esc(label),
        v = esc(value.unwrap_or("")),
        ro = if readonly { " readonly" } else { "" },
        err = notes.field(name),
    )
}

fn root_label(field: &str) -> &'static str {
    match field {
        "name" => "Full name",
        "given_name" => "Given name",
        "family_name" => "Family name",
        "nickname" => "Nickname",
        "picture" => "Picture (URL)",
        _ => "Field",
    }
}

fn root_value<'u>(u: &'u User, field: &str) -> Option<&'u str> {
    match field {
        "name" => u.name.as_deref(),
        "given_name" => u.given_name.as_deref(),
        "family_name" => u.family_name.as_deref(),
        "nickname" => u.nickname.as_deref(),
        "picture" => u.picture.as_deref(),
        _ => None,
    }
}

fn profile_section(c: &Ctx, notes: &Notes, form: Option<&HashMap<String, String>>) -> String {
    let u = &c.user;
    let synced = account::profile_synced(u);
    let mut fields = String::new();
    let shown: Vec<&str> = if synced {
        roster_domain::account::EDITABLE_ROOT_FIELDS.to_vec()
    } else {
        c.settings.account.editable_fields.iter().map(String::as_str).collect()
    };
    for f in &shown {
        let value = form.and_then(|m| m.get(*f).map(String::as_str)).or_else(|| root_value(u, f));
        let kind = if *f == "picture" { "url" } else { "text" };
        fields.push_str(&text_input(f, root_label(f), value, kind, synced, notes));
    }
    let picture = u
        .picture
        .as_deref()
        .filter(|p| p.starts_with("https://"))
        .map(|p| format!("<p><img src=\"{}\" alt=\"Your picture\" width=\"64\" height=\"64\"></p>", esc(p)))
        .unwrap_or_default();
    let form_html = if synced {
        format!(
            "{fields}<p class=\"note\">These fields come from your {} account and are updated each time you log in with it, \
             so they cannot be changed here.</p>",
            esc(u.identities.first().map(|i| i.provider.as_str()).unwrap_or("identity provider"))
        )
    } else if shown.is_empty() {
        "<p class=\"note\">There is nothing to edit here.</p>".to_owned()
    } else {
        format!(
            "<form method=\"post\" action=\"{issuer}account/profile\">{csrf}{fields}<button type=\"submit\">Save profile</button></form>",
            issuer = esc(&c.t.issuer),
            csrf = hidden_csrf(c),
        )
    };
    format!(
        "<section id=\"profile\" aria-labelledby=\"h-profile\"><h2 id=\"h-profile\">Profile</h2>{}{picture}{form_html}</section>",
        notes.section("profile")
    )
}

fn property_input(p: &Property, current: Option<&Value>, submitted: Option<&str>, notes: &Notes) -> String {
    let name = format!("m.{}", p.key);
    let id = format!("f-m-{}", p.key);
    let help = p
        .description
        .as_deref()
        .map(|d| format!("<p class=\"help\" id=\"help-{}\">{}</p>", esc(&p.key), esc(d)))
        .unwrap_or_default();
    let err = notes.field(&p.key);
    let ro = if p.read_only { " disabled" } else { "" };
    let req = if p.required { " required" } else { "" };
    let as_text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    match p.kind {
        Kind::Boolean => {
            let checked = match submitted {
                Some(_) => true,
                None => current.and_then(Value::as_bool).unwrap_or(false),
            };
            format!(
                "<div class=\"check\"><input id=\"{id}\" name=\"{n}\" type=\"checkbox\"{c}{ro}><label for=\"{id}\">{l}</label></div>{help}{err}",
                id = esc(&id),
                n = esc(&name),
                c = if checked { " checked" } else { "" },
                l = esc(&p.title),
            )
        }
        _ if !p.choices.is_empty() => {
            let selected = submitted.map(str::to_owned).unwrap_or_else(|| as_text(current));
            let mut opts = if p.required { String::new() } else { "<option value=\"\">—</option>".to_owned() };
            for choice in &p.choices {
                let v = as_text(Some(choice));
                opts.push_str(&format!(
                    "<option value=\"{v}\"{sel}>{v}</option>",
                    v = esc(&v),
                    sel = if v == selected { " selected" } else { "" }
                ));
            }
            format!(
                "<label for=\"{id}\">{l}</label><select id=\"{id}\" name=\"{n}\"{req}{ro}>{opts}</select>{help}{err}",
                id = esc(&id),
                n = esc(&name),
                l = esc(&p.title),
            )
        }
        kind => {
            let value = submitted.map(str::to_owned).unwrap_or_else(|| as_text(current));
            let (input_type, extra) = match kind {
                Kind::Integer => ("number", " step=\"1\"".to_owned()),
                Kind::Number => ("number", " step=\"any\"".to_owned()),
                _ => ("text", format!(" maxlength=\"{}\"", p.max_length)),
            };
            format!(
                "<label for=\"{id}\">{l}</label><input id=\"{id}\" name=\"{n}\" type=\"{input_type}\" value=\"{v}\"{extra}{req}{ro}>{help}{err}",
                id = esc(&id),
                n = esc(&name),
                l = esc(&p.title),
                v = esc(&value),
            )
        }
    }
}

fn preferences_section(c: &Ctx, notes: &Notes, form: Option<&HashMap<String, String>>) -> String {
    let schema = &c.settings.account.profile_schema;
    let mut html = format!(
        "<section id=\"preferences\" aria-labelledby=\"h-preferences\"><h2 id=\"h-preferences\">Preferences</h2>{}",
        notes.section("preferences")
    );
    if schema.properties.is_empty() {
        html.push_str("<p class=\"note\">There are no preferences to set.</p>");
    } else {
        let meta = c.user.user_metadata.as_map();
        let mut fields = String::new();
        for p in &schema.properties {
            let submitted = form.map(|m| m.get(&format!("m.{}", p.key)).map(String::as_str)).and_then(|s| match p.kind {
                // An unchecked box is absent from a submitted form: show it unchecked.
                Kind::Boolean => s.or(Some("")).filter(|v| !v.is_empty()),
                _ => s,
            });
            let current = if form.is_some() && p.kind == Kind::Boolean && submitted.is_none() {
                Some(&Value::Bool(false))
            } else {
                meta.get(&p.key)
            };
            fields.push_str(&property_input(p, current, submitted, notes));
        }
        html.push_str(&format!(
            "<form method=\"post\" action=\"{issuer}account/preferences\">{csrf}{fields}<button type=\"submit\">Save preferences</button></form>",
            issuer = esc(&c.t.issuer),
            csrf = hidden_csrf(c),
        ));
    }
    let visible = &c.settings.account.visible_app_metadata;
    let app = c.user.app_metadata.as_map();
    let rows: String = visible
        .iter()
        .filter_map(|(k, label)| app.get(k).map(|v| (label, v)))
        .map(|(label, v)| {
            let shown = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("<dt>{}</dt><dd>{}</dd>", esc(label), esc(&shown))
        })
        .collect();
    if !rows.is_empty() {
        html.push_str(&format!("<h2>Your plan and settings</h2><dl>{rows}</dl><p class=\"note\">These are managed by us.</p>"));
    }
    html.push_str("</section>");
    html
}

fn email_section(c: &Ctx, notes: &Notes, pending: Option<&str>) -> String {
    let u = &c.user;
    let current = u.email.as_ref().map(|e| e.as_str()).unwrap_or("(none)");
    let badge =
        if u.email_verified { "<span class=\"badge\">verified</span>" } else { "<span class=\"badge warn\">not verified</span>" };
    let pending_html = pending
        .map(|p| {
            format!(
                "<div class=\"info\" role=\"status\">A change to <strong>{}</strong> is waiting: open the link we sent to that address to confirm it.</div>",
                esc(p)
            )
        })
        .unwrap_or_default();
    let password = if c.recently_authenticated() {
        String::new()
    } else {
        format!(
            "<label for=\"f-email-password\">Your password</label><input id=\"f-email-password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>{}",
            notes.field("password")
        )
    };
    format!(
        "<section id=\"email\" aria-labelledby=\"h-email\"><h2 id=\"h-email\">Email address</h2>{note}<p><strong>{current}</strong> {badge}</p>{pending_html}\
         <form method=\"post\" action=\"{issuer}account/email\">{csrf}\
         <label for=\"f-email\">New email address</label><input id=\"f-email\" name=\"email\" type=\"email\" autocomplete=\"email\" required>{err}\
         {password}<p class=\"help\">We will send a link to the new address; your address changes only when you open it. \
         We will also tell your current address.</p><button type=\"submit\">Change email</button></form></section>",
        note = notes.section("email"),
        current = esc(current),
        issuer = esc(&c.t.issuer),
        csrf = hidden_csrf(c),
        err = notes.field("email"),
    )
}

fn password_section(c: &Ctx, notes: &Notes, rules: &[String]) -> String {
    let rules_html = if rules.is_empty() {
        String::new()
    } else {
        let lis: String = rules.iter().map(|r| format!("<li>{}</li>", esc(r))).collect();
        format!("<p>Your new password must have:</p><ul class=\"rules\">{lis}</ul>")
    };
    format!(
        "<section id=\"password\" aria-labelledby=\"h-password\"><h2 id=\"h-password\">Password</h2>{note}{rules_html}\
         <form method=\"post\" action=\"{issuer}account/password\">{csrf}\
         <input type=\"text\" name=\"username\" value=\"{email}\" autocomplete=\"username\" hidden>\
         <label for=\"f-current\">Current password</label><input id=\"f-current\" name=\"current_password\" type=\"password\" autocomplete=\"current-password\" required>{err_current}\
         <label for=\"f-new\">New password</label><input id=\"f-new\" name=\"new_password\" type=\"password\" autocomplete=\"new-password\" required>{err_new}\
         <label for=\"f-confirm\">Confirm the new password</label><input id=\"f-confirm\" name=\"confirm\" type=\"password\" autocomplete=\"new-password\" required>{err_confirm}\
         <p class=\"help\">You will stay logged in here; every other device will be logged out.</p>\
         <button type=\"submit\">Change password</button></form></section>",
        note = notes.section("password"),
        issuer = esc(&c.t.issuer),
        csrf = hidden_csrf(c),
        email = esc(c.user.email.as_ref().map(|e| e.as_str()).unwrap_or("")),
        err_current = notes.field("current_password"),
        err_new = notes.field("new_password"),
        err_confirm = notes.field("confirm"),
    )
}

fn describe_agent(ua: Option<&str>) -> String {
    let Some(ua) = ua else { return "Unknown device".into() };
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/"]
        .iter()
        .find(|b| ua.contains(*b))
        .map(|b| match *b {
            "Edg/" => "Edge",
            "Firefox/" => "Firefox",
            "Chrome/" => "Chrome",
            _ => "Safari",
        })
        .unwrap_or("Browser");
    let os = [("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS"), ("Mac OS X", "macOS"), ("Linux", "Linux")]
        .iter()
        .find(|(k, _)| ua.contains(k))
        .map(|(_, v)| *v)
        .unwrap_or("unknown system");
    format!("{browser} on {os}")
}

fn sessions_section(c: &Ctx, notes: &Notes, sessions: &[Session]) -> String {
    let mut rows = String::new();
    for s in sessions {
        let current = s.id_hash == c.session.id_hash;
        let action = if current {
            "<strong>This device</strong>".to_owned()
        } else {
            format!(
                "<form method=\"post\" action=\"{issuer}account/sessions/revoke\">{csrf}<input type=\"hidden\" name=\"id\" value=\"{id}\">\
                 <button type=\"submit\" class=\"secondary\" aria-label=\"Log out this session\">Log out</button></form>",
                issuer = esc(&c.t.issuer),
                csrf = hidden_csrf(c),
                id = esc(&s.id_hash),
            )
        };
        rows.push_str(&format!(
            "<tr><td title=\"{ua}\">{device}</td><td>{ip}</td><td><time datetime=\"{seen}\">{seen_text}</time></td><td>{action}</td></tr>",
            ua = esc(s.user_agent.as_deref().unwrap_or("")),
            device = esc(&describe_agent(s.user_agent.as_deref())),
            ip = esc(s.ip.as_deref().unwrap_or("—")),
            seen = esc(&s.last_seen_at.to_iso()),
            seen_text = esc(&s.last_seen_at.to_iso().replace('T', " ")[..16.min(s.last_seen_at.to_iso().len())]),
        ));
    }
    let others = if sessions.len() > 1 {
        format!(
            "<form method=\"post\" action=\"{issuer}account/sessions/revoke-others\">{csrf}\
             <button type=\"submit\" class=\"secondary\">Log out all other sessions</button></form>",
            issuer = esc(&c.t.issuer),
            csrf = hidden_csrf(c),
        )
    } else {
        String::new()
    };
    format!(
        "<section id=\"sessions\" aria-labelledby=\"h-sessions\"><h2 id=\"h-sessions\">Sessions</h2>{note}\
         <table><thead><tr><th scope=\"col\">Device</th><th scope=\"col\">IP address</th><th scope=\"col\">Last seen (UTC)</th><th scope=\"col\"></th></tr></thead>\
         <tbody>{rows}</tbody></table>{others}</section>",
        note = notes.section("sessions"),
    )
}

fn data_section(c: &Ctx, notes: &Notes) -> String {
    let password = if c.recently_authenticated() {
        String::new()
    } else {
        format!(
            "<label for=\"f-delete-password\">Your password</label><input id=\"f-delete-password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>{}",
            notes.field("delete_password")
        )
    };
    format!(
        "<section id=\"data\" aria-labelledby=\"h-data\"><h2 id=\"h-data\">Your data</h2>{note_data}\
         <p>Download everything we store about you (profile, preferences, sign-in history) as one JSON file.</p>\
         <form method=\"post\" action=\"{issuer}account/export\">{csrf}<button type=\"submit\" class=\"secondary\">Download my data</button></form></section>\
         <section id=\"delete\" aria-labelledby=\"h-delete\"><h2 id=\"h-delete\">Delete my account</h2>{note_delete}\
         <p>This deletes your account and your data for good. It cannot be undone.</p>\
         <form method=\"post\" action=\"{issuer}account/delete\">{csrf}{password}\
         <div class=\"check\"><input id=\"f-confirm-delete\" name=\"confirm\" type=\"checkbox\" value=\"yes\" required>\
         <label for=\"f-confirm-delete\">I understand that my account and data will be deleted</label></div>{err_confirm}\
         <button type=\"submit\" class=\"danger\">Delete my account</button></form></section>",
        note_data = notes.section("data"),
        note_delete = notes.section("delete"),
        issuer = esc(&c.t.issuer),
        csrf = hidden_csrf(c),
        err_confirm = notes.field("confirm_delete"),
    )
}

/// The whole portal page, with `notes` in their sections and, after a refused form, what was typed.
async fn render(c: &Ctx, status: StatusCode, notes: &Notes, form: Option<(FormSection, &HashMap<String, String>)>) -> Response {
    if let Some(terms) = account::terms_pending(&c.settings.account, &c.user) {
        let body = format!(
            "{note}<section><p>Our terms have changed. Please read the <a href=\"{url}\" rel=\"noopener noreferrer\" target=\"_blank\">terms \
             (version {version})</a> and accept them to continue.</p>\
             <form method=\"post\" action=\"{issuer}account/terms\">{csrf}<input type=\"hidden\" name=\"version\" value=\"{version}\">\
             <button type=\"submit\">I accept the terms</button></form></section>",
            note = notes.section("terms"),
            url = esc(&terms.url),
            version = esc(&terms.version),
            issuer = esc(&c.t.issuer),
            csrf = hidden_csrf(c),
        );
        return portal_page(c, status, "Accept the terms", &body);
    }
    let (Ok(pending), Ok(sessions), Ok(connection)) = (
        account::pending_email(&c.t, &c.user).await,
        c.t.store.user_sessions(&c.user.user_id, Timestamp::now()).await,
        account::connection_of(&c.t, &c.user).await,
    ) else {
        return unavailable(&c.t);
    };
    let rules = crate::passwords::rules_text(&connection);
    let profile_form = form.filter(|(s, _)| *s == FormSection::Profile).map(|(_, m)| m);
    let prefs_form = form.filter(|(s, _)| *s == FormSection::Preferences).map(|(_, m)| m);
    let body = format!(
        "{top}{profile}{prefs}{email}{password}{sessions}{data}",
        top = notes.section("top"),
        profile = profile_section(c, notes, profile_form),
        prefs = preferences_section(c, notes, prefs_form),
        email = email_section(c, notes, pending.as_deref()),
        password = password_section(c, notes, &rules),
        sessions = sessions_section(c, notes, &sessions),
        data = data_section(c, notes),
    );
    portal_page(c, status, "Your account", &body)
}

/// Messages after a successful form (post/redirect/get).
fn done_note(done: &str) -> Option<(&'static str, &'static str)> {
    Some(match done {
        "profile" => ("profile", "Your profile is saved."),
        "preferences" => ("preferences", "Your preferences are saved."),
        "password" => ("password", "Your password is changed. Every other device was logged out."),
        "email" => ("email", "Check the inbox of your new address: open the link we sent to confirm the change."),
        "session" => ("sessions", "The session is logged out."),
        "sessions" => ("sessions", "Every other session is logged out."),
        "terms" => ("top", "Thank you for accepting the terms."),
        _ => return None,
    })
}

#[derive(Deserialize)]
pub struct PortalQuery {
    done: Option<String>,
}

/// `GET /t/{tenant}/account`
pub async fn portal(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<PortalQuery>,
) -> Response {
    let c = match enter(&state, t, &headers, &ip).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let notes = q.done.as_deref().and_then(done_note).map(|(s, m)| Notes::info(s, m)).unwrap_or_default();
    render(&c, StatusCode::OK, &notes, None).await
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
}

/// `GET /t/{tenant}/account/callback`: the end of the portal's login. The session cookie was set by
/// the login; the code is used up so it cannot be replayed, and the browser goes to the portal.
pub async fn callback(AuthTenant(t): AuthTenant, Query(q): Query<CallbackQuery>) -> Response {
    if let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 128) {
        let _ = t.store.consume_code(&roster_auth::secret::hash_secret(&code), Timestamp::now()).await;
    }
    redirect(&format!("{}account", t.issuer))
}

/// A portal form post that passed the checks every one starts with: the CSRF token, then a live
/// session, and accepted terms (unless the form is the one that accepts them).
pub struct PortalPost {
    c: Ctx,
    form: HashMap<String, String>,
}

impl FromRequest<AppState> for PortalPost {
    type Rejection = Response;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let AuthTenant(t) = AuthTenant::from_request_parts(&mut parts, state).await.map_err(IntoResponse::into_response)?;
        let Ok(ip) = ClientIp::from_request_parts(&mut parts, state).await;
        let headers = parts.headers.clone();
        let Form(form) = Form::<HashMap<String, String>>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        if !csrf_ok(state, &headers, form.get("csrf").map(String::as_str).unwrap_or("")) {
            return Err(forbidden_form(&t));
        }
        let c = enter(state, t, &headers, &ip).await?;
        if account::terms_pending(&c.settings.account, &c.user).is_some() && !form.contains_key("version") {
            // Nothing else happens before the terms are accepted.
            return Err(redirect(&format!("{}account", c.t.issuer)));
        }
        Ok(Self { c, form })
    }
}

fn back(t: &TenantCtx, done: &str, anchor: &str) -> Response {
    let mut r = redirect(&format!("{}account?done={done}#{anchor}", t.issuer));
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

/// `POST /t/{tenant}/account/profile` and `/account/preferences`
async fn save(PortalPost { c, form }: PortalPost, section: FormSection) -> Response {
    let (name, anchor) = match section {
        FormSection::Profile => ("profile", "profile"),
        FormSection::Preferences => ("preferences", "preferences"),
    };
    let change = match account::profile_from_form(&form, section, &c.settings.account, &c.user) {
        Ok(ch) => ch,
        Err(e) => return render(&c, StatusCode::BAD_REQUEST, &Notes::error(name, &e), Some((section, &form))).await,
    };
    match account::update_profile(&c.actor(), &c.user, change).await {
        Ok(_) => back(&c.t, name, anchor),
        Err(e) => render(&c, status_of(&e), &Notes::error(name, &e), Some((section, &form))).await,
    }
}

fn status_of(e: &AccountError) -> StatusCode {
    match e {
        AccountError::Invalid(_) | AccountError::WrongPassword | AccountError::ReauthenticationRequired => {
            StatusCode::BAD_REQUEST
        }
        AccountError::TooManyAttempts | AccountError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        AccountError::Forbidden(_) => StatusCode::FORBIDDEN,
        AccountError::Gone => StatusCode::GONE,
        AccountError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

pub async fn save_profile(post: PortalPost) -> Response {
    save(post, FormSection::Profile).await
}

pub async fn save_preferences(post: PortalPost) -> Response {
    save(post, FormSection::Preferences).await
}

/// `POST /t/{tenant}/account/password`
pub async fn change_password(PortalPost { c, form }: PortalPost) -> Response {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (current, new, confirm) = (get("current_password"), get("new_password"), get("confirm"));
    let result = if new.is_empty() {
        Err(AccountError::invalid("new_password", "Enter a new password."))
    } else if new != confirm {
        Err(AccountError::invalid("confirm", "The two passwords are not the same."))
    } else {
        account::change_password(&c.actor(), &c.user, &current, new).await
    };
    match result {
        Ok(()) => back(&c.t, "password", "password"),
        Err(e) => {
            let e = match e {
                AccountError::WrongPassword => AccountError::invalid("current_password", "The current password is wrong."),
                other => other,
            };
            render(&c, status_of(&e), &Notes::error("password", &e), None).await
        }
    }
}

/// Re-authentication for a sensitive form: a recent enough login, or the password typed again (which
/// then counts as a fresh login for this session).
async fn reauthenticate(c: &Ctx, password: Option<&str>, field: &str) -> Result<(), AccountError> {
    if c.recently_authenticated() {
        return Ok(());
    }
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Err(AccountError::invalid(field, "Enter your password to confirm it's you."));
    };
    match account::verify_password(&c.actor(), &c.user, password).await {
        Ok(()) => {}
        Err(AccountError::WrongPassword) => return Err(AccountError::invalid(field, "The password is wrong.")),
        Err(e) => return Err(e),
    }
    c.t.store.reauthenticate_session(&c.session.id_hash, Timestamp::now(), roster_store::Effects::default()).await?;
    Ok(())
}

/// `POST /t/{tenant}/account/email`
pub async fn change_email(PortalPost { c, form }: PortalPost) -> Response {
    let result = async {
        reauthenticate(&c, form.get("password").map(String::as_str), "password").await?;
        account::request_email_change(&c.actor(), &c.user, form.get("email").map(String::as_str).unwrap_or("")).await
    }
    .await;
    match result {
        Ok(_) => back(&c.t, "email", "email"),
        Err(e) => render(&c, status_of(&e), &Notes::error("email", &e), None).await,
    }
}

/// `POST /t/{tenant}/account/sessions/revoke`
pub async fn revoke_session(PortalPost { c, form }: PortalPost) -> Response {
    let id = form.get("id").cloned().unwrap_or_default();
    if id == c.session.id_hash {
        return render(
            &c,
            StatusCode::BAD_REQUEST,
            &Notes::error("sessions", &AccountError::invalid("id", "Use “Log out” to end this session.")),
            None,
        )
        .await;
    }
    match account::revoke_session(&c.actor(), &c.user, &id).await {
        Ok(_) => back(&c.t, "session", "sessions"),
        Err(e) => render(&c, status_of(&e), &Notes::error("sessions", &e), None).await,
    }
}

/// `POST /t/{tenant}/account/sessions/revoke-others`
pub async fn revoke_other_sessions(PortalPost { c, .. }: PortalPost) -> Response {
    match account::revoke_other_sessions(&c.actor(), &c.user).await {
        Ok(()) => back(&c.t, "sessions", "sessions"),
        Err(e) => render(&c, status_of(&e), &Notes::error("sessions", &e), None).await,
    }
}

/// `POST /t/{tenant}/account/terms`
pub async fn accept_terms(PortalPost { c, form }: PortalPost) -> Response {
    let version = form.get("version").cloned().unwrap_or_default();
    match account::accept_terms(&c.actor(), &c.user, &c.settings.account, &version).await {
        Ok(_) => back(&c.t, "terms", "profile"),
        Err(AccountError::Invalid(_)) => redirect(&format!("{}account", c.t.issuer)),
        Err(e) => render(&c, status_of(&e), &Notes::error("terms", &e), None).await,
    }
}

/// `POST /t/{tenant}/account/export`: the user's data as a JSON download.
pub async fn export(PortalPost { c, .. }: PortalPost) -> Response {
    match account::export(&c.actor(), &c.user).await {
        Ok(data) => {
            let mut r = crate::me::attachment(&data);
            secure_headers(r.headers_mut());
            r
        }
        Err(e) => render(&c, status_of(&e), &Notes::error("data", &e), None).await,
    }
}

/// `POST /t/{tenant}/account/delete`
pub async fn delete(PortalPost { c, form }: PortalPost) -> Response {
    if form.get("confirm").map(String::as_str) != Some("yes") {
        let e = AccountError::invalid("confirm_delete", "Tick the box to confirm.");
        return render(&c, StatusCode::BAD_REQUEST, &Notes::error("delete", &e), None).await;
    }
    if let Err(e) = reauthenticate(&c, form.get("password").map(String::as_str), "delete_password").await {
        return render(&c, status_of(&e), &Notes::error("delete", &e), None).await;
    }
    match account::delete_account(&c.actor(), &c.user).await {
        Ok(()) => {
            let clear = CookieSpec::new(&c.state.cfg.public_url).clear(&session_cookie_name(&c.state, &c.t));
            let r = page(
                StatusCode::OK,
                "Account deleted",
                &c.t,
                "<div class=\"info\" role=\"status\">Your account and your data are deleted. We sent a confirmation to your address.</div>",
            );
            with_cookie(r, Some(clear))
        }
        Err(e) => render(&c, status_of(&e), &Notes::error("delete", &e), None).await,
    }
}

// ---- the links of the email-change mails ----

#[derive(Deserialize)]
pub struct TicketQuery {
    ticket: Option<String>,
}

#[derive(Deserialize)]
pub struct TicketForm {
    csrf: Option<String>,
    ticket: Option<String>,
}

/// A live ticket of `kind` from a link, and its user.
async fn link_target(t: &TenantCtx, token: &str, kind: &str) -> Result<Option<(roster_store::Ticket, User)>, ()> {
    let Some(ticket) = tickets::live(t, token, kind).await.map_err(|_| ())? else { return Ok(None) };
    let user = t.store.user(&ticket.user_id).await.map_err(|_| ())?;
    Ok(user.map(|u| (ticket, Arc::unwrap_or_clone(u))))
}

/// What a link's form post starts with: the CSRF token, then a live ticket of `kind` and its user —
/// or the page to answer instead.
async fn accept_link(
    state: &AppState,
    t: &TenantCtx,
    headers: &HeaderMap,
    form: &TicketForm,
    kind: &str,
) -> Result<(roster_store::Ticket, User), Response> {
    if !csrf_ok(state, headers, form.csrf.as_deref().unwrap_or_default()) {
        return Err(forbidden_form(t));
    }
    match link_target(t, form.ticket.as_deref().unwrap_or_default(), kind).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(dead_email_link(t)),
        Err(()) => Err(unavailable(t)),
    }
}

fn dead_email_link(t: &TenantCtx) -> Response {
    page(
        StatusCode::GONE,
        "Change your email",
        t,
        "<div class=\"error\" role=\"alert\">This link has expired, has already been used, or was replaced by a newer one.</div>\
         <p>You can ask for a new one from your account page.</p>",
    )
}

/// `GET /t/{tenant}/u/email-change?ticket=…`: a button that confirms the new address.
pub async fn email_change_page(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    headers: HeaderMap,
    Query(q): Query<TicketQuery>,
) -> Response {
    let token = q.ticket.unwrap_or_default();
    let ticket = match link_target(&t, &token, ticket_kind::EMAIL_CHANGE).await {
        Ok(Some((k, _))) => k,
        Ok(None) => return dead_email_link(&t),
        Err(()) => return unavailable(&t),
    };
    let (csrf, set) = csrf_token(&state, &headers);
    let body = format!(
        "<p>Confirm that <strong>{}</strong> becomes the email address of your account. You will use it to log in.</p>{}",
        esc(ticket.email.as_deref().unwrap_or_default()),
        ticket_button(&t, "u/email-change", &csrf, &token, "Confirm my new address"),
    );
    with_cookie(page(StatusCode::OK, "Change your email", &t, &body), set)
}

/// `POST /t/{tenant}/u/email-change`
pub async fn email_change_submit(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<TicketForm>,
) -> Response {
    let (ticket, user) = match accept_link(&state, &t, &headers, &form, ticket_kind::EMAIL_CHANGE).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    // The browser confirming keeps its session if it is the user's; every other session ends.
    let keep = session_user(&state, &t, &headers).await.filter(|(_, u)| u.user_id == user.user_id).map(|(s, _)| s.id_hash);
    let actor = Actor { state: &state, t: &t, ip: ip.to_string_opt(), user_agent: user_agent(&headers), session: keep };
    let new_email = ticket.email.clone().unwrap_or_default();
    match account::confirm_email_change(&actor, &ticket.id_hash, &user, &new_email).await {
        Ok(Confirmed::Done(_)) => page(
            StatusCode::OK,
            "Email changed",
            &t,
            &format!(
                "<div class=\"info\" role=\"status\">Your email address is now <strong>{}</strong>. Use it to log in.</div>\
                 <p>For your security, you were logged out of your other devices.</p><nav><a href=\"{}account\">Go to your account</a></nav>",
                esc(&new_email),
                esc(&t.issuer)
            ),
        ),
        Ok(Confirmed::DeadLink) => dead_email_link(&t),
        Ok(Confirmed::Taken) => page(
            StatusCode::CONFLICT,
            "Change your email",
            &t,
            "<div class=\"error\" role=\"alert\">This address cannot be used for your account. Your email address was not changed.</div>",
        ),
        Err(_) => unavailable(&t),
    }
}

/// `GET /t/{tenant}/u/email-change/cancel?ticket=…`: "this wasn't me".
pub async fn email_cancel_page(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    headers: HeaderMap,
    Query(q): Query<TicketQuery>,
) -> Response {
    let token = q.ticket.unwrap_or_default();
    match link_target(&t, &token, ticket_kind::EMAIL_CHANGE_CANCEL).await {
        Ok(Some(_)) => {}
        Ok(None) => return dead_email_link(&t),
        Err(()) => return unavailable(&t),
    }
    let (csrf, set) = csrf_token(&state, &headers);
    let body = format!(
        "<p>If you did not ask to change the email address of your account, someone else may know your password. \
         Stop the change: we will log every device out and you will choose a new password.</p>{}",
        ticket_button(&t, "u/email-change/cancel", &csrf, &token, "Stop the change and secure my account"),
    );
    with_cookie(page(StatusCode::OK, "This wasn't me", &t, &body), set)
}

/// `POST /t/{tenant}/u/email-change/cancel`: stop the change, end every session, void the password,
/// and go straight to choosing a new one.
pub async fn email_cancel_submit(
    State(state): State<AppState>,
    AuthTenant(t): AuthTenant,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<TicketForm>,
) -> Response {
    let (ticket, user) = match accept_link(&state, &t, &headers, &form, ticket_kind::EMAIL_CHANGE_CANCEL).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let actor = Actor { state: &state, t: &t, ip: ip.to_string_opt(), user_agent: user_agent(&headers), session: None };
    match account::cancel_email_change(&actor, &ticket.id_hash, &user).await {
        Ok(Some(reset_url)) => {
            let clear = CookieSpec::new(&state.cfg.public_url).clear(&session_cookie_name(&state, &t));
            let mut r = redirect(&reset_url);
            *r.status_mut() = StatusCode::SEE_OTHER;
            with_cookie(r, Some(clear))
        }
        Ok(None) => dead_email_link(&t),
        Err(_) => unavailable(&t),
    }
}
