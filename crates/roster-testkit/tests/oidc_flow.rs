//! The authorization-code flow through the hosted pages with plain HTTP form posts (no JavaScript):
//! `/authorize` → login page → code → token exchange with PKCE → SSO → logout; CSRF, redirect
//! allow-list and code single-use probes. On SQLite and PostgreSQL.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use roster_testkit::{TestApp, hidden, no_redirects};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CALLBACK: &str = "https://app.example/callback";
const BYE: &str = "https://app.example/bye";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ0MF3ASa0SLVuTahdTKlMeXrZPxo8-and-some-more-entropy";

fn set_cookie(r: &reqwest::Response, prefix: &str) -> Option<String> {
    r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find(|v| v.starts_with(prefix)).map(str::to_owned)
}

fn query_of(location: &str) -> Vec<(String, String)> {
    url::Url::parse(location).expect("url").query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn param(q: &[(String, String)], k: &str) -> Option<String> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

async fn configure_app(app: &TestApp) {
    let tok = app.token().await;
    let r = app
        .http
        .patch(app.api(&format!("/clients/{}", app.creds.default_app.client_id)))
        .bearer_auth(&tok)
        .json(&json!({"callbacks": [CALLBACK], "allowed_logout_urls": [BYE]}))
        .send()
        .await
        .expect("patch client");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let r = app
        .http
        .post(app.url("/t/acme/dbconnections/signup"))
        .json(&json!({"client_id": app.creds.default_app.client_id, "connection": "Username-Password-Authentication",
                      "email": "flow@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(r.status(), 200);
}

fn authorize_url(app: &TestApp, extra: &str) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    format!(
        "{}/t/acme/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile%20email%20offline_access&state=st-1&nonce=n-1&code_challenge={challenge}&code_challenge_method=S256{extra}",
        app.base,
        app.creds.default_app.client_id,
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    )
}

async fn code_flow(app: TestApp) {
    configure_app(&app).await;
    let http = no_redirects();
    // 1. /authorize without a session → the hosted login page.
    let r = http.get(authorize_url(&app, "")).send().await.expect("authorize");
    assert_eq!(r.status(), 302);
    let login_url = r.headers()["location"].to_str().expect("loc").to_owned();
    assert!(login_url.starts_with(&format!("{}u/login?", app.creds.issuer)), "{login_url}");
    let r = http.get(&login_url).send().await.expect("login page");
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let csrf_cookie = set_cookie(&r, "rs_csrf=").expect("csrf cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"));
    let csrf_pair = csrf_cookie.split(';').next().expect("pair").to_owned();
    let html = r.text().await.expect("html");
    assert!(html.contains("<label for=\"username\">") && html.contains("acme") && html.contains("Forgot your password?"));
    let (csrf, req) = (hidden(&html, "csrf"), hidden(&html, "req"));
    let post = |form: Vec<(&'static str, String)>, cookie: Option<String>| {
        let mut rq = http.post(format!("{}u/login", app.creds.issuer)).form(&form);
        if let Some(c) = cookie {
            rq = rq.header("cookie", c);
        }
        rq.send()
    };
    // 2. CSRF: no token, wrong token, foreign Origin → 403, nothing happens.
    let r = post(
        vec![("req", req.clone()), ("username", "flow@example.com".into()), ("password", "correct horse battery".into())],
        Some(csrf_pair.clone()),
    )
    .await
    .expect("post");
    assert_eq!(r.status(), 403);
    let r = post(
        vec![
            ("csrf", "x".repeat(43)),
            ("req", req.clone()),
            ("username", "flow@example.com".into()),
            ("password", "correct horse battery".into()),
        ],
        Some(csrf_pair.clone()),
    )
    .await
    .expect("post");
    assert_eq!(r.status(), 403);
    let r = http
        .post(format!("{}u/login", app.creds.issuer))
        .header("cookie", &csrf_pair)
        .header("origin", "https://evil.example")
        .form(&[
            ("csrf", csrf.as_str()),
            ("req", req.as_str()),
            ("username", "flow@example.com"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = http
        .post(format!("{}u/login", app.creds.issuer))
        .header("cookie", &csrf_pair)
        .header("origin", "null")
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("csrf", csrf.as_str()),
            ("req", req.as_str()),
            ("username", "flow@example.com"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403, "Origin: null from another site");
    // 3. Wrong password: the page says so, no redirect.
    let r = post(
        vec![
            ("csrf", csrf.clone()),
            ("req", req.clone()),
            ("username", "flow@example.com".into()),
            ("password", "nope nope nope".into()),
        ],
        Some(csrf_pair.clone()),
    )
    .await
    .expect("post");
    assert_eq!(r.status(), 403);
    assert!(r.text().await.expect("html").contains("Wrong email or password."));
    // 4. Right password → back to the app with a code and the state; an SSO session cookie.
    let r = post(
        vec![
            ("csrf", csrf.clone()),
            ("req", req.clone()),
            ("username", "flow@example.com".into()),
            ("password", "correct horse battery".into()),
        ],
        Some(csrf_pair.clone()),
    )
    .await
    .expect("post");
    assert_eq!(r.status(), 302);
    let session = set_cookie(&r, "rs_acme=").expect("session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && session.contains("Path=/"));
    let session_pair = session.split(';').next().expect("pair").to_owned();
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert!(loc.starts_with(CALLBACK), "{loc}");
    let q = query_of(&loc);
    assert_eq!(param(&q, "state").as_deref(), Some("st-1"));
    let code = param(&q, "code").expect("code");
    // 5. The code, redeemed with the verifier.
    let c = &app.creds.default_app;
    let exchange = |code: String, verifier: &'static str| {
        app.http
            .post(app.url("/t/acme/oauth/token"))
            .form(&[
                ("grant_type", "authorization_code".to_owned()),
                ("client_id", c.client_id.clone()),
                ("client_secret", c.client_secret.clone()),
                ("code", code),
                ("code_verifier", verifier.to_owned()),
                ("redirect_uri", CALLBACK.to_owned()),
            ])
            .send()
    };
    let r = exchange(code.clone(), "wrong-verifier-wrong-verifier-wrong-verifier-x").await.expect("token");
    assert_eq!(r.status(), 403, "a wrong verifier fails (and burns the code)");
    let r = exchange(code, VERIFIER).await.expect("token");
    assert_eq!(r.status(), 403, "codes are single use");
    // A fresh code through SSO: the session cookie skips the login page.
    let r = http.get(authorize_url(&app, "")).header("cookie", &session_pair).send().await.expect("authorize");
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().expect("loc").to_owned();
    assert!(loc.starts_with(CALLBACK), "SSO: {loc}");
    let code = param(&query_of(&loc), "code").expect("code");
    let r = exchange(code.clone(), VERIFIER).await.expect("token");
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.expect("json");
    let idt: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(t["id_token"].as_str().expect("id").split('.').nth(1).expect("p")).expect("b64"),
    )
    .expect("json");
    assert_eq!((idt["nonce"].as_str(), idt["email"].as_str()), (Some("n-1"), Some("flow@example.com")));
    assert!(t["refresh_token"].is_string());
    let info: Value = app
        .http
        .get(app.url("/t/acme/userinfo"))
        .bearer_auth(t["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("ui")
        .json()
        .await
        .expect("j");
    assert_eq!(info["email"], "flow@example.com");
    assert_eq!(exchange(code, VERIFIER).await.expect("token").status(), 403, "single use");
    // prompt=login shows the page despite the session; prompt=none answers from the session.
    let r = http.get(authorize_url(&app, "&prompt=login")).header("cookie", &session_pair).send().await.expect("authorize");
    assert!(r.headers()["location"].to_str().expect("loc").contains("/u/login?"));
    let r = http.get(authorize_url(&app, "&prompt=none")).header("cookie", &session_pair).send().await.expect("authorize");
    assert!(r.headers()["location"].to_str().expect("loc").starts_with(CALLBACK));
    // 6. Logout: returnTo must be allowed; the session ends.
    let r = http
        .get(format!("{}v2/logout?client_id={}&returnTo=https://evil.example/", app.creds.issuer, c.client_id))
        .header("cookie", &session_pair)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 400, "returnTo outside the allow-list");
    let r = http
        .get(format!("{}v2/logout?client_id={}&returnTo={BYE}", app.creds.issuer, c.client_id))
        .header("cookie", &session_pair)
        .send()
        .await
        .expect("logout");
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().expect("loc")), (302, BYE));
    let r = http.get(authorize_url(&app, "&prompt=none")).header("cookie", &session_pair).send().await.expect("authorize");
    let q = query_of(r.headers()["location"].to_str().expect("loc"));
    assert_eq!((param(&q, "error").as_deref(), param(&q, "state").as_deref()), (Some("login_required"), Some("st-1")));
    let tok = app.token().await;
    let store_logs = app
        .store
        .tenant(app.store.tenant_by_name(&roster_domain::TenantName::parse("acme").expect("n")).await.expect("r").expect("e").id)
        .logs(None, 100)
        .await
        .expect("logs");
    let kinds: Vec<&str> = store_logs.iter().map(|l| l.kind.as_str()).collect();
    for k in ["s", "fp", "seacft", "feacft", "slo"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    drop(tok);
}

async fn redirect_allow_list(app: TestApp) {
    configure_app(&app).await;
    let http = no_redirects();
    let cid = &app.creds.default_app.client_id;
    // Never a redirect to an unregistered URI, whatever its shape (T15).
    for uri in [
        "https://app.example/callback/../evil",
        "https://app.example/callbackx",
        "https://app.example@evil.example/callback",
        "https://evil.example/callback",
        "javascript:alert(1)",
        "https://APP.example/callback",
        "",
    ] {
        let enc: String = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect();
        let r = http
            .get(format!("{}/t/acme/authorize?response_type=code&client_id={cid}&redirect_uri={enc}&state=s", app.base))
            .send()
            .await
            .expect("authorize");
        assert_eq!(r.status(), 400, "{uri}");
        assert!(r.headers().get("location").is_none(), "{uri}");
    }
    let r = http
        .get(format!("{}/t/acme/authorize?response_type=code&client_id=unknown&redirect_uri={CALLBACK}", app.base))
        .send()
        .await
        .expect("a");
    assert_eq!(r.status(), 400);
    // A valid redirect URI with a bad request: the error goes back to the app.
    let enc: String = url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect();
    let r = http
        .get(format!("{}/t/acme/authorize?response_type=token&client_id={cid}&redirect_uri={enc}&state=s", app.base))
        .send()
        .await
        .expect("a");
    let q = query_of(r.headers()["location"].to_str().expect("loc"));
    assert_eq!(param(&q, "error").as_deref(), Some("unsupported_response_type"));
    let r = http.get(format!("{}/t/acme/authorize?response_type=code&client_id={cid}&redirect_uri={enc}&code_challenge=abc&code_challenge_method=plain", app.base)).send().await.expect("a");
    let q = query_of(r.headers()["location"].to_str().expect("loc"));
    assert_eq!(param(&q, "error").as_deref(), Some("invalid_request"));
    // Markup in a parameter is escaped on the page.
    let hostile = authorize_url(&app, "").replace("state=st-1", "state=%22%3E%3Cscript%3Ealert(1)%3C/script%3E");
    let r = http.get(hostile).send().await.expect("a");
    let login = r.headers()["location"].to_str().expect("loc").to_owned();
    let html = http.get(&login).send().await.expect("page").text().await.expect("html");
    assert!(!html.contains("<script>"), "no unescaped markup");
}

roster_testkit::on_both_backends! {
    flow => code_flow;
    redirects => redirect_allow_list;
}
