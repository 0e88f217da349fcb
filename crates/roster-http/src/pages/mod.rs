//! Hosted pages (`/t/{tenant}/u/...`): server-rendered HTML that works without JavaScript.
//!
//! Every page is sent with a strict CSP (no scripts at all, `frame-ancestors 'none'`),
//! `Referrer-Policy: no-referrer`, `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`.
//! Every form carries a CSRF token checked against a cookie (double submit) and, when the browser sends
//! one, the `Origin` header is checked against the public URL. Every value shown is HTML-escaped here;
//! nothing user-supplied is ever interpreted as markup.

pub mod account;
pub mod login;
pub mod reset;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::state::AppState;
use crate::tenant::TenantCtx;

/// Escape text for HTML element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// The hosted pages' style; `{primary}` and `{background}` are the tenant's colours (validated
/// `#rgb`/`#rrggbb`, the only settings put into CSS).
fn style(primary: &str, background: &str) -> String {
    format!(
        "body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:{background};margin:0;color:#1f2328}}\
main{{max-width:24rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:.75rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}}\
h1{{font-size:1.4rem;margin:0 0 .25rem}}p.tenant{{color:#57606a;margin:0 0 1.5rem}}img.logo{{max-height:2.5rem;max-width:10rem;display:block;margin:0 0 1rem}}\
label{{display:block;margin:.75rem 0 .25rem;font-weight:600}}\
input[type=email],input[type=password],input[type=text]{{width:100%;box-sizing:border-box;padding:.6rem;border:1px solid #8c959f;border-radius:.4rem;font-size:1rem}}\
button{{margin-top:1.25rem;width:100%;padding:.7rem;border:0;border-radius:.4rem;background:{primary};color:#fff;font-size:1rem;cursor:pointer}}\
.error{{background:#ffebe9;border:1px solid #ff8182;padding:.6rem;border-radius:.4rem;margin-bottom:1rem}}\
.info{{background:#ddf4ff;border:1px solid #54aeff;padding:.6rem;border-radius:.4rem;margin-bottom:1rem}}\
nav{{margin-top:1.25rem;display:flex;justify-content:space-between;font-size:.95rem}}a{{color:{primary}}}"
    )
}

/// A complete page in the tenant's look (name, logo, colours): `body` is already-escaped HTML.
pub fn page(status: StatusCode, title: &str, t: &TenantCtx, body: &str) -> Response {
    let look = t.look();
    let logo = look.logo.as_deref().map(|u| format!("<img class=\"logo\" src=\"{}\" alt=\"\">", esc(u))).unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · {name}</title><style>{style}</style></head><body><main>{logo}<h1>{title}</h1><p class=\"tenant\">{name}</p>{body}</main></body></html>",
        title = esc(title),
        name = esc(&look.name),
        style = style(&look.primary, &look.background),
    );
    let mut r = (status, Html(html)).into_response();
    secure_headers(r.headers_mut());
    if look.logo.is_some() {
        // The logo lives on the tenant's own (https) site.
        r.headers_mut().insert("content-security-policy", HeaderValue::from_static(LOGO_CSP));
    }
    r
}

/// The hosted pages' CSP when the tenant shows a logo: images may come from https origins.
const LOGO_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; frame-ancestors 'none'; base-uri 'none'";

/// Headers every hosted page and redirect carries.
pub fn secure_headers(h: &mut HeaderMap) {
    for (k, v) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
}

/// The value of one cookie from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Cookie attributes: `__Host-`-prefixed and `Secure` when the public URL is https.
pub struct CookieSpec {
    pub secure: bool,
}

impl CookieSpec {
    pub fn new(public_url: &str) -> Self {
        Self { secure: public_url.starts_with("https://") }
    }
    /// `__Host-{base}` (https) or `{base}` (http, where browsers refuse `__Host-` cookies).
    pub fn name(&self, base: &str) -> String {
        if self.secure { format!("__Host-{base}") } else { base.to_owned() }
    }
    pub fn set(&self, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }
    pub fn clear(&self, name: &str) -> HeaderValue {
        self.set(name, "", Some(0))
    }
}

/// A 303 redirect (after a form post) or 302, with the page headers.
pub fn redirect(to: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure_headers(r.headers_mut());
    r
}

/// The name of the CSRF cookie (shared by every hosted form of every tenant).
pub(crate) fn csrf_cookie_name(state: &AppState) -> String {
    CookieSpec::new(&state.cfg.public_url).name("rs_csrf")
}

/// The CSRF token of this browser (from its cookie, or a new one to set).
pub(crate) fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let name = csrf_cookie_name(state);
    match cookie(headers, &name).filter(|v| v.len() >= 32) {
        Some(v) => (v, None),
        None => {
            let v = URL_SAFE_NO_PAD.encode(roster_domain::secret::random_bytes(32));
            let set = CookieSpec::new(&state.cfg.public_url).set(&name, &v, None);
            (v, Some(set))
        }
    }
}

/// A form post is accepted only with the browser's CSRF token (double submit: cookie = field), and
/// nothing in the request may say it came from elsewhere: an `Origin` other than the public URL's, or a
/// `Sec-Fetch-Site` other than same-origin. `Origin: null` is what browsers send for a same-origin post
/// from a page served with `Referrer-Policy: no-referrer`; the token alone decides then.
pub(crate) fn csrf_ok(state: &AppState, headers: &HeaderMap, presented: &str) -> bool {
    let origin_ok = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None | Some("null") => true,
        Some(o) => {
            let public = url::Url::parse(&state.cfg.public_url).ok().map(|u| u.origin().ascii_serialization());
            public.as_deref() == Some(o)
        }
    };
    let fetch_ok = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_none_or(|s| s == "same-origin" || s == "none");
    let cookie_ok = cookie(headers, &csrf_cookie_name(state)).is_some_and(|c| roster_auth::secret::same(&c, presented));
    origin_ok && fetch_ok && cookie_ok
}

/// The form of a one-time link's page: one button that POSTs the ticket back to `{issuer}{path}`
/// with the CSRF token (opening a link changes nothing; the button does).
pub(crate) fn ticket_button(t: &TenantCtx, path: &str, csrf: &str, token: &str, button: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{issuer}{path}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
         <button type=\"submit\">{button}</button></form>",
        issuer = esc(&t.issuer),
        path = esc(path),
        csrf = esc(csrf),
        ticket = esc(token),
        button = esc(button),
    )
}

/// An error and/or an information box, escaped.
pub(crate) fn notice(error: Option<&str>, info: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(e) = error {
        out.push_str(&format!("<div class=\"error\" role=\"alert\">{}</div>", esc(e)));
    }
    if let Some(i) = info {
        out.push_str(&format!("<div class=\"info\" role=\"status\">{}</div>", esc(i)));
    }
    out
}

/// `r` with a cookie set, when there is one to set.
pub(crate) fn with_cookie(mut r: Response, set: Option<HeaderValue>) -> Response {
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// A page that says what went wrong (no form).
pub(crate) fn error_page(t: &TenantCtx, status: StatusCode, message: &str) -> Response {
    page(status, "Something went wrong", t, &format!("<div class=\"error\" role=\"alert\">{}</div>", esc(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn host_prefix_and_secure_only_over_https() {
        let https = CookieSpec::new("https://id.example.com");
        assert_eq!(https.name("rs_acme"), "__Host-rs_acme");
        let set = https.set("__Host-rs_acme", "v", Some(60));
        let set = set.to_str().expect("ascii");
        for part in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure", "Max-Age=60"] {
            assert!(set.contains(part), "{set} lacks {part}");
        }
        assert!(!set.contains("Domain="), "__Host- cookies carry no Domain");
        let http = CookieSpec::new("http://127.0.0.1:8080");
        assert_eq!(http.name("rs_acme"), "rs_acme");
        assert!(!http.set("rs_acme", "v", None).to_str().expect("ascii").contains("Secure"));
    }

    #[test]
    fn reads_cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; roster_session_acme=xyz; b=2"));
        assert_eq!(cookie(&h, "roster_session_acme").as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
