//! Password reset and email verification through the real server, on SQLite and PostgreSQL: the
//! change_password endpoint, tickets and jobs, the hosted pages driven by HTTP form posts (links read
//! from the delivered `.eml` files), what a password change ends, and policies on every path.

use std::collections::HashMap;

use roster_testkit::{TestApp, enc, no_redirects, on_both_backends, unqp};
use serde_json::{Value, json};

on_both_backends! {
    request => change_password_answers_alike_and_mails_known_users;
    tickets => tickets_api_validates_and_issues_links;
    reset_flow => reset_page_sets_the_password_once_and_ends_everything_else;
    race => concurrent_redemptions_of_one_ticket_succeed_once;
    verify => verification_links_from_signup_post_users_patch_and_jobs;
    policy => policies_apply_to_signup_management_and_history;
}

const DB: &str = "Username-Password-Authentication";
const GOOD: &str = "correct horse battery";

async fn mgmt(app: &TestApp, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.http.request(method, app.api(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn change_password(app: &TestApp, email: &str, ip_header: Option<&str>) -> (u16, String) {
    let mut req = app.http.post(app.url("/t/acme/dbconnections/change_password")).json(&json!({
        "client_id": app.creds.default_app.client_id, "email": email, "connection": DB, "organization": null, "password": null,
    }));
    if let Some(h) = ip_header {
        req = req.header("host", h);
    }
    let resp = req.send().await.expect("change_password");
    (resp.status().as_u16(), resp.text().await.expect("text"))
}

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url("/t/acme/oauth/token"))
        .form(&[
            ("grant_type", "http://auth0.com/oauth/grant-type/password-realm"),
            ("realm", DB),
            ("username", email),
            ("password", password),
            ("client_id", &app.creds.default_app.client_id),
            ("client_secret", &app.creds.default_app.client_secret),
            ("scope", "openid offline_access"),
        ])
        .send()
        .await
        .expect("token");
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

/// The one-time links (`…/u/{page}?ticket=…`) in every mail file whose name ends with a row id of
/// `template`, newest last.
fn links(app: &TestApp, page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (_, eml) in app.mail_files() {
        let text = unqp(&eml);
        let needle = format!("/t/acme/u/{page}?ticket=");
        let mut rest = text.as_str();
        while let Some(i) = rest.find(&needle) {
            let start = rest[..i].rfind("http").unwrap_or(i);
            let token: String = rest[i + needle.len()..].chars().take_while(char::is_ascii_alphanumeric).collect();
            let link = format!("{}{needle}{token}", &rest[start..i]);
            if !out.contains(&link) {
                out.push(link);
            }
            rest = &rest[i + needle.len()..];
        }
    }
    out
}

/// A browser session: cookies kept between a page and its form post.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Self { http: no_redirects(), cookies: HashMap::new() }
    }
    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }
    fn keep(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            if let Some((kv, _)) = v.to_str().unwrap_or_default().split_once(';')
                && let Some((k, val)) = kv.split_once('=')
            {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
    }
    async fn get(&mut self, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self.http.get(url).header("cookie", self.cookie_header()).send().await.expect("get");
        self.keep(&resp);
        (resp.status().as_u16(), resp.headers().clone(), resp.text().await.expect("text"))
    }
    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self.http.post(url).header("cookie", self.cookie_header()).form(form).send().await.expect("post");
        self.keep(&resp);
        (resp.status().as_u16(), resp.headers().clone(), resp.text().await.expect("text"))
    }
}

/// Borrowed pairs of an owned form.
fn pairs<'a>(f: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    f.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The value of a hidden input in a page.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.split(&marker).nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_owned()
}

async fn outbox(app: &TestApp, token: &str, user_id: &str) -> Vec<Value> {
    mgmt(app, reqwest::Method::GET, &format!("/emails/outbox?user_id={}", enc(user_id)), token, None)
        .await
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn change_password_answers_alike_and_mails_known_users(app: TestApp) {
    let token = app.token().await;
    let user = app.create_user(&token, "known@example.com").await;
    let id = user["user_id"].as_str().expect("id");
    let known = change_password(&app, "Known@Example.com", None).await;
    let unknown = change_password(&app, "nobody@example.com", None).await;
    assert_eq!(known, (200, "We've just sent you an email to reset your password.".to_owned()));
    assert_eq!(known, unknown, "identical answers for known and unknown addresses");
    let rows = outbox(&app, &token, id).await;
    assert!(rows.iter().any(|r| r["template"] == "reset_email"), "{rows:?}");
    // The mailed link uses the public URL whatever Host the request named (T14).
    let (s, _) = change_password(&app, "known@example.com", Some("evil.example")).await;
    assert_eq!(s, 200);
    app.wait_for_mail(3).await;
    let reset_links = links(&app, "reset-password");
    assert_eq!(reset_links.len(), 2);
    assert!(reset_links.iter().all(|l| l.starts_with(&app.base)), "{reset_links:?}");
    let logs = app.store.tenant(app.store.list_tenants().await.expect("t")[0].id.clone()).logs(None, 50).await.expect("logs");
    let kinds: Vec<&str> = logs.iter().map(|l| l.kind.as_str()).collect();
    assert!(kinds.contains(&"scpr") && kinds.contains(&"fcpr"), "{kinds:?}");

    // Per IP and address: the limit answers 429 for a known and an unknown address alike.
    for _ in 0..3 {
        assert_eq!(change_password(&app, "known@example.com", None).await.0, 200);
    }
    for _ in 0..4 {
        assert_eq!(change_password(&app, "nobody@example.com", None).await.0, 200);
    }
    let (k, kb) = change_password(&app, "known@example.com", None).await;
    let (u, ub) = change_password(&app, "nobody@example.com", None).await;
    assert_eq!((k, u), (429, 429));
    assert_eq!(kb, ub);
    // Bad requests say what is wrong with the request, never with the address.
    let bad = app
        .http
        .post(app.url("/t/acme/dbconnections/change_password"))
        .json(&json!({"email": "x@example.com", "connection": "Nope"}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.expect("json")["code"], "invalid_connection");
}

async fn tickets_api_validates_and_issues_links(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    let user = app.create_user(&token, "t@example.com").await;
    let id = user["user_id"].as_str().expect("id");
    let app_id = app.creds.default_app.client_id.clone();
    let (s, _) = mgmt(
        &app,
        Method::PATCH,
        &format!("/clients/{app_id}"),
        &token,
        Some(json!({"callbacks": ["https://app.example/callback"]})),
    )
    .await;
    assert_eq!(s, 200);

    let (s, b) = mgmt(
        &app,
        Method::POST,
        "/tickets/password-change",
        &token,
        Some(json!({"user_id": id, "result_url": "https://app.example/after"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let url = b["ticket"].as_str().expect("ticket");
    let token_part = url.split("ticket=").nth(1).expect("token");
    assert!(url.starts_with(&format!("{}/t/acme/u/reset-password?ticket=", app.base)));
    assert!(token_part.len() == 43 && token_part.chars().all(|c| c.is_ascii_alphanumeric()), "≥ 128 bits: {token_part}");

    let conn = mgmt(&app, Method::GET, "/connections", &token, None).await.1[0]["id"].as_str().expect("con").to_owned();
    let (s, b) = mgmt(
        &app,
        Method::POST,
        "/tickets/password-change",
        &token,
        Some(json!({"email": "T@example.com", "connection_id": conn, "ttl_sec": 0})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    for (bad, status) in [
        (json!({"user_id": id, "result_url": "https://evil.example/steal"}), 400),
        (json!({"user_id": id, "result_url": "javascript:alert(1)"}), 400),
        (json!({"user_id": id, "email": "t@example.com"}), 400),
        (json!({}), 400),
        (json!({"user_id": id, "ttl_sec": 99_999_999}), 400),
        (json!({"user_id": id, "client_id": "nope"}), 400),
        (json!({"user_id": "auth0|ffffffffffffffffffffffff"}), 404),
        (json!({"email": "ghost@example.com", "connection_id": conn}), 404),
    ] {
        let (s, b) = mgmt(&app, Method::POST, "/tickets/password-change", &token, Some(bad.clone())).await;
        assert_eq!(s, status, "{bad} → {b}");
    }
    let (s, b) = mgmt(
        &app,
        Method::POST,
        "/tickets/email-verification",
        &token,
        Some(json!({"user_id": id, "result_url": "https://app.example/verified"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert!(b["ticket"].as_str().expect("ticket").contains("/t/acme/u/email-verification?ticket="));
    let (s, _) = mgmt(
        &app,
        Method::POST,
        "/tickets/email-verification",
        &token,
        Some(json!({"user_id": id, "result_url": "https://evil.example"})),
    )
    .await;
    assert_eq!(s, 400);
    // Scope.
    let weak = app.token_for(&app.creds, Some("read:users")).await;
    let (s, _) = mgmt(&app, Method::POST, "/tickets/password-change", &weak, Some(json!({"user_id": id}))).await;
    assert_eq!(s, 403);
}

async fn reset_page_sets_the_password_once_and_ends_everything_else(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    let user = app.create_user(&token, "r@example.com").await;
    let id = user["user_id"].as_str().expect("id").to_owned();
    let app_id = app.creds.default_app.client_id.clone();
    mgmt(
        &app,
        Method::PATCH,
        &format!("/clients/{app_id}"),
        &token,
        Some(json!({"callbacks": ["https://app.example/callback"]})),
    )
    .await;
    let (s, before) = login(&app, "r@example.com", GOOD).await;
    assert_eq!(s, 200, "{before}");
    let refresh = before["refresh_token"].as_str().expect("refresh token").to_owned();

    // Two reset links; the first is used.
    change_password(&app, "r@example.com", None).await;
    let (_, b) = mgmt(
        &app,
        Method::POST,
        "/tickets/password-change",
        &token,
        Some(json!({"user_id": id, "result_url": "https://app.example/done", "mark_email_as_verified": true})),
    )
    .await;
    let ticket_url = b["ticket"].as_str().expect("ticket").to_owned();
    app.wait_for_mail(2).await; // the verification mail of POST /users, and the reset mail
    let mailed = links(&app, "reset-password");
    assert_eq!(mailed.len(), 1);

    let mut browser = Browser::new();
    let (s, headers, html) = browser.get(&ticket_url).await;
    assert_eq!(s, 200);
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(headers["content-security-policy"].to_str().expect("csp").contains("default-src 'none'"));
    assert!(html.contains("class=\"rules\"") && html.contains("At least 8 characters"), "rules shown");
    let csrf = field(&html, "csrf");
    let ticket = field(&html, "ticket");
    // Opening the page twice changes nothing.
    assert_eq!(browser.get(&ticket_url).await.0, 200);
    let submit = app.url("/t/acme/u/reset-password");
    let form = |pw: &str, confirm: &str| {
        vec![("csrf", csrf.clone()), ("ticket", ticket.clone()), ("password", pw.to_owned()), ("confirm", confirm.to_owned())]
    };
    // Refusals keep the ticket usable and say why.
    let f = form("another pass phrase", "different");
    let (s, _, html) = browser.post(&submit, &pairs(&f)).await;
    assert!(s == 400 && html.contains("not the same"), "{s}");
    let f = form("password1", "password1");
    let (s, _, html) = browser.post(&submit, &pairs(&f)).await;
    assert!(s == 400 && html.to_lowercase().contains("common"), "{s}: which rule failed is shown");
    let tenant = app.store.list_tenants().await.expect("tenants")[0].id.clone();
    let logs = app.store.tenant(tenant).logs(None, 50).await.expect("logs");
    assert!(logs.iter().any(|l| l.kind == "fcp"), "a refused password change is logged");
    // A post without the CSRF cookie is refused.
    let f = form("a new horse staple", "a new horse staple");
    let stranger = no_redirects().post(&submit).form(&pairs(&f)).send().await.expect("post");
    assert_eq!(stranger.status(), 403);
    // Success: redirect to result_url with Auth0's parameters.
    let (s, headers, _) = browser.post(&submit, &pairs(&f)).await;
    assert_eq!(s, 302);
    let location = headers["location"].to_str().expect("location");
    assert!(location.starts_with("https://app.example/done?success=true&code=success&message="), "{location}");
    assert!(location.contains("email=r%40example.com"));
    // Used: the same post, or the page, now says the link is dead.
    let (s, _, html) = browser.post(&submit, &pairs(&f)).await;
    assert!(s == 410 && html.contains("expired or has already been used"), "{s}");
    assert_eq!(browser.get(&ticket_url).await.0, 410);
    // The other reset link died with the change; the old password and the old refresh token too.
    assert_eq!(browser.get(&mailed[0]).await.0, 410, "every outstanding reset link is voided");
    assert_eq!(login(&app, "r@example.com", GOOD).await.0, 403);
    assert_eq!(login(&app, "r@example.com", "a new horse staple").await.0, 200);
    let rt = app
        .http
        .post(app.url("/t/acme/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", &app_id),
            ("client_secret", &app.creds.default_app.client_secret),
        ])
        .send()
        .await
        .expect("refresh");
    assert_eq!(rt.status(), 403, "refresh tokens issued before the reset are revoked");
    let (_, u) = mgmt(&app, Method::GET, &format!("/users/{}", enc(&id)), &token, None).await;
    assert_eq!(u["email_verified"], true, "mark_email_as_verified");
    assert!(u["last_password_reset"].is_string());
    let rows = outbox(&app, &token, &id).await;
    assert!(rows.iter().any(|r| r["template"] == "password_reset"), "the password-changed notice is queued");
    // Without a result_url the page says it worked.
    let (_, b) = mgmt(&app, Method::POST, "/tickets/password-change", &token, Some(json!({"user_id": id}))).await;
    let url = b["ticket"].as_str().expect("ticket").to_owned();
    let (_, _, html) = browser.get(&url).await;
    let f = [
        ("csrf", field(&html, "csrf")),
        ("ticket", field(&html, "ticket")),
        ("password", "yet another horse".into()),
        ("confirm", "yet another horse".into()),
    ];
    let (s, _, html) = browser.post(&submit, &pairs(&f)).await;
    assert!(s == 200 && html.contains("Your password has been changed"), "{s}");
}

async fn concurrent_redemptions_of_one_ticket_succeed_once(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    let user = app.create_user(&token, "race@example.com").await;
    let id = user["user_id"].as_str().expect("id");
    let (_, b) = mgmt(&app, Method::POST, "/tickets/password-change", &token, Some(json!({"user_id": id}))).await;
    let url = b["ticket"].as_str().expect("ticket").to_owned();
    let mut browser = Browser::new();
    let (_, _, html) = browser.get(&url).await;
    let (csrf, ticket) = (field(&html, "csrf"), field(&html, "ticket"));
    let cookie = browser.cookie_header();
    let submit = app.url("/t/acme/u/reset-password");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (http, cookie, submit, csrf, ticket) = (no_redirects(), cookie.clone(), submit.clone(), csrf.clone(), ticket.clone());
        tasks.push(tokio::spawn(async move {
            let pw = format!("racing horse number {i}");
            http.post(&submit)
                .header("cookie", cookie)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("ticket", ticket.as_str()),
                    ("password", pw.as_str()),
                    ("confirm", pw.as_str()),
                ])
                .send()
                .await
                .expect("post")
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("join"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "exactly one redemption: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 410), "{statuses:?}");
}

async fn verification_links_from_signup_post_users_patch_and_jobs(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    // Signup → verify_email with a link; the GET shows a button and changes nothing; the POST verifies.
    let r = app
        .http
        .post(app.url("/t/acme/dbconnections/signup"))
        .json(
            &json!({"client_id": app.creds.default_app.client_id, "email": "v@example.com", "password": GOOD, "connection": DB}),
        )
        .send()
        .await
        .expect("signup");
    assert_eq!(r.status(), 200);
    let id = format!("auth0|{}", r.json::<Value>().await.expect("json")["_id"].as_str().expect("_id"));
    app.wait_for_mail(1).await;
    let link = links(&app, "email-verification").pop().expect("a verification link");
    let mut browser = Browser::new();
    let (s, _, html) = browser.get(&link).await;
    assert!(s == 200 && html.contains("v@example.com"), "{s}");
    let path = format!("/users/{}", enc(&id));
    assert_eq!(mgmt(&app, Method::GET, &path, &token, None).await.1["email_verified"], false, "opening the link changes nothing");
    let f = [("csrf", field(&html, "csrf")), ("ticket", field(&html, "ticket"))];
    let submit = app.url("/t/acme/u/email-verification");
    let (s, _, html) = browser.post(&submit, &pairs(&f)).await;
    assert!(s == 200 && html.contains("verified"), "{s}");
    assert_eq!(mgmt(&app, Method::GET, &path, &token, None).await.1["email_verified"], true);
    assert_eq!(browser.post(&submit, &pairs(&f)).await.0, 410, "single use");

    // POST /users: a mail unless verified or told not to.
    let quiet = mgmt(
        &app,
        Method::POST,
        "/users",
        &token,
        Some(json!({"connection": DB, "email": "q@example.com", "password": GOOD, "verify_email": false})),
    )
    .await
    .1;
    let verified = mgmt(
        &app,
        Method::POST,
        "/users",
        &token,
        Some(json!({"connection": DB, "email": "w@example.com", "password": GOOD, "email_verified": true})),
    )
    .await
    .1;
    let mailed =
        mgmt(&app, Method::POST, "/users", &token, Some(json!({"connection": DB, "email": "m@example.com", "password": GOOD})))
            .await
            .1;
    for (u, n) in [(&quiet, 0), (&verified, 0), (&mailed, 1)] {
        let rows = outbox(&app, &token, u["user_id"].as_str().expect("id")).await;
        assert_eq!(rows.iter().filter(|r| r["template"] == "verify_email").count(), n, "{u}");
    }
    // PATCH {email, verify_email: true} mails the new address; the old address's link stops working.
    let mid = mailed["user_id"].as_str().expect("id").to_owned();
    let (s, b) = mgmt(
        &app,
        Method::PATCH,
        &format!("/users/{}", enc(&mid)),
        &token,
        Some(json!({"email": "m2@example.com", "verify_email": true})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let rows = outbox(&app, &token, &mid).await;
    assert!(rows.iter().any(|r| r["template"] == "verify_email" && r["recipient"] == "m2@example.com"), "{rows:?}");

    // The job: pending until its mail is delivered, then completed; the user must be unverified.
    let (s, job) = mgmt(&app, Method::POST, "/jobs/verification-email", &token, Some(json!({"user_id": mid}))).await;
    assert_eq!((s, job["type"].as_str(), job["status"].as_str()), (201, Some("verification_email"), Some("pending")), "{job}");
    let job_id = job["id"].as_str().expect("id");
    let mut status = String::new();
    for _ in 0..200 {
        status = mgmt(&app, Method::GET, &format!("/jobs/{job_id}"), &token, None).await.1["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if status == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "completed");
    let (s, _) =
        mgmt(&app, Method::POST, "/jobs/verification-email", &token, Some(json!({"user_id": verified["user_id"]}))).await;
    assert_eq!(s, 400, "already verified");
    let (s, _) = mgmt(&app, Method::GET, "/jobs/job_nope", &token, None).await;
    assert_eq!(s, 404);
}

async fn policies_apply_to_signup_management_and_history(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    let signup = |email: &'static str, pw: &'static str| {
        let app = &app;
        async move {
            let r = app
                .http
                .post(app.url("/t/acme/dbconnections/signup"))
                .json(&json!({"client_id": app.creds.default_app.client_id, "email": email, "password": pw, "connection": DB}))
                .send()
                .await
                .expect("signup");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // NIST by default: common, short, sequential and personal passwords are refused.
    for (pw, name) in
        [("password123", "PasswordDictionaryError"), ("short", "PasswordStrengthError"), ("12345678", "PasswordStrengthError")]
    {
        let (s, b) = signup("p@example.com", pw).await;
        assert_eq!((s, b["name"].as_str(), b["code"].as_str()), (400, Some(name), Some("invalid_password")), "{pw}: {b}");
    }
    let (s, b) = signup("zebulon@example.com", "zebulon-likes-tea").await;
    assert_eq!((s, b["name"].as_str()), (400, Some("PasswordNoUserInfoError")), "{b}");
    // Auth0's "good" level, with history.
    let conn = mgmt(&app, Method::GET, "/connections", &token, None).await.1[0]["id"].as_str().expect("con").to_owned();
    let options = json!({"passwordPolicy": "good", "password_history": {"enable": true, "size": 3}});
    let (s, _) = mgmt(&app, Method::PATCH, &format!("/connections/{conn}"), &token, Some(json!({"options": options}))).await;
    assert_eq!(s, 200);
    let (s, b) = signup("g@example.com", "alllowercase").await;
    assert_eq!((s, b["name"].as_str()), (400, Some("PasswordStrengthError")));
    let rules = b["description"]["rules"].as_array().expect("rules");
    assert!(rules.iter().any(|r| r["code"] == "containsAtLeast" && r["verified"] == false), "{b}");
    assert!(b["policy"].as_str().expect("policy").contains("At least 8 characters"));
    let (s, b) = signup("g@example.com", "Good-Pass-1").await;
    assert_eq!(s, 200, "{b}");
    let id = format!("auth0|{}", b["_id"].as_str().expect("_id"));
    let patch = |pw: &'static str| {
        let (app, token, id) = (&app, token.clone(), id.clone());
        async move { mgmt(app, Method::PATCH, &format!("/users/{}", enc(&id)), &token, Some(json!({"password": pw}))).await }
    };
    let (s, b) = patch("Good-Pass-1").await;
    assert_eq!((s, b["message"].as_str()), (400, Some("PasswordHistoryError: Password has previously been used")), "{b}");
    assert_eq!(patch("Other-Pass-2").await.0, 200);
    assert_eq!(patch("Third-Pass-3").await.0, 200);
    assert_eq!(patch("Good-Pass-1").await.0, 400, "still among the last 3");
    assert_eq!(patch("Fourth-Pass-4").await.0, 200);
    assert_eq!(patch("Good-Pass-1").await.0, 200, "older than the last 3 passwords");
    let (s, b) = patch("weak").await;
    assert_eq!((s, b["errorCode"].as_str()), (400, Some("invalid_password")), "{b}");
}
