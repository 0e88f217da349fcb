//! Brute-force protection through the real server, on SQLite and PostgreSQL: the threshold (T16), a
//! synchronised burst (T17), no lockout of the real user from another address (T19, clients bound to
//! other loopback addresses), the user-blocks API, the allowlist, and blocks cleared by a password
//! change.

use std::net::IpAddr;

use roster_testkit::{TestApp, enc, on_both_backends};
use serde_json::{Value, json};

on_both_backends! {
    threshold => threshold_blocks_the_pair_not_the_user;
    burst => a_parallel_burst_evaluates_at_most_max_attempts;
    settings => settings_are_validated_and_allowlist_is_honoured;
    unblock => the_owner_gets_one_unblock_link_that_works_once;
    throttling => suspicious_ips_are_throttled_across_accounts;
}

const DB: &str = "Username-Password-Authentication";
const GOOD: &str = "correct horse battery";

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<IpAddr>().expect("ip")).build().expect("client")
}

async fn login_from(app: &TestApp, http: &reqwest::Client, email: &str, password: &str) -> (u16, Value) {
    let resp = http
        .post(app.url("/t/acme/oauth/token"))
        .form(&[
            ("grant_type", "http://auth0.com/oauth/grant-type/password-realm"),
            ("realm", DB),
            ("username", email),
            ("password", password),
            ("client_id", &app.creds.default_app.client_id),
            ("client_secret", &app.creds.default_app.client_secret),
        ])
        .send()
        .await
        .expect("token");
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

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

async fn threshold_blocks_the_pair_not_the_user(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    let user = app.create_user(&token, "victim@example.com").await;
    let id = user["user_id"].as_str().expect("id").to_owned();
    let (s, _) =
        mgmt(&app, Method::PATCH, "/attack-protection/brute-force-protection", &token, Some(json!({"max_attempts": 3}))).await;
    assert_eq!(s, 200);
    let attacker = client_from("127.0.0.1");
    let victim = client_from("127.0.0.2");
    for _ in 0..3 {
        assert_eq!(login_from(&app, &attacker, "victim@example.com", "wrong guess").await.0, 403);
    }
    let (s, b) = login_from(&app, &attacker, "Victim@Example.com", "wrong guess").await;
    assert_eq!((s, b["error"].as_str()), (429, Some("too_many_attempts")), "attempt 4 is refused");
    let (s, _) = login_from(&app, &attacker, "victim@example.com", GOOD).await;
    assert_eq!(s, 429, "even the right password, while blocked");
    // T19: the real user, from elsewhere, is not locked out.
    for _ in 0..5 {
        assert_eq!(login_from(&app, &victim, "victim@example.com", GOOD).await.0, 200);
    }
    // The block, as the API shows it.
    let (s, blocks) = mgmt(&app, Method::GET, "/user-blocks?identifier=VICTIM@example.com", &token, None).await;
    assert_eq!(s, 200);
    assert_eq!(blocks, json!({"blocked_for": [{"identifier": "victim@example.com", "ip": "127.0.0.1", "connection": DB}]}));
    let (s, by_user) = mgmt(&app, Method::GET, &format!("/user-blocks/{}", enc(&id)), &token, None).await;
    assert_eq!((s, &by_user), (200, &blocks));
    // Lifting by user id; the admin flag is another matter and stays as it is.
    let (s, _) = mgmt(&app, Method::PATCH, &format!("/users/{}", enc(&id)), &token, Some(json!({"blocked": true}))).await;
    assert_eq!(s, 200);
    let (s, _) = mgmt(&app, Method::DELETE, &format!("/user-blocks/{}", enc(&id)), &token, None).await;
    assert_eq!(s, 204);
    let (_, u) = mgmt(&app, Method::GET, &format!("/users/{}", enc(&id)), &token, None).await;
    assert_eq!(u["blocked"], true, "user-blocks never touch the admin flag");
    assert_eq!(login_from(&app, &attacker, "victim@example.com", GOOD).await.1["error"], "unauthorized");
    mgmt(&app, Method::PATCH, &format!("/users/{}", enc(&id)), &token, Some(json!({"blocked": false}))).await;
    assert_eq!(login_from(&app, &attacker, "victim@example.com", GOOD).await.0, 200);
    // Block again, then lift by identifier.
    for _ in 0..4 {
        login_from(&app, &attacker, "victim@example.com", "wrong guess").await;
    }
    assert_eq!(login_from(&app, &attacker, "victim@example.com", GOOD).await.0, 429);
    let (s, _) = mgmt(&app, Method::DELETE, "/user-blocks?identifier=victim@example.com", &token, None).await;
    assert_eq!(s, 204);
    assert_eq!(login_from(&app, &attacker, "victim@example.com", GOOD).await.0, 200);
    // A success resets the count: failures must be consecutive.
    for _ in 0..2 {
        login_from(&app, &attacker, "victim@example.com", "wrong guess").await;
    }
    assert_eq!(login_from(&app, &attacker, "victim@example.com", GOOD).await.0, 200);
    for _ in 0..2 {
        assert_eq!(login_from(&app, &attacker, "victim@example.com", "wrong guess").await.0, 403);
    }
    // A password change lifts every block of the user.
    login_from(&app, &attacker, "victim@example.com", "wrong guess").await;
    assert_eq!(login_from(&app, &attacker, "victim@example.com", "wrong guess").await.0, 429);
    let (s, _) =
        mgmt(&app, Method::PATCH, &format!("/users/{}", enc(&id)), &token, Some(json!({"password": "fresh horse battery"})))
            .await;
    assert_eq!(s, 200);
    assert_eq!(login_from(&app, &attacker, "victim@example.com", "fresh horse battery").await.0, 200);
    // Unknown identifiers are counted the same way (nothing tells them apart) and blocks are logged.
    for _ in 0..4 {
        login_from(&app, &attacker, "ghost@example.com", "wrong guess").await;
    }
    assert_eq!(login_from(&app, &attacker, "ghost@example.com", "wrong guess").await.0, 429);
    let (s, _) = mgmt(&app, Method::GET, "/user-blocks", &token, None).await;
    assert_eq!(s, 400, "identifier is required");
    let (s, _) = mgmt(&app, Method::GET, "/user-blocks/auth0%7Cffffffffffffffffffffffff", &token, None).await;
    assert_eq!(s, 404);
}

async fn a_parallel_burst_evaluates_at_most_max_attempts(app: TestApp) {
    let token = app.token().await;
    app.create_user(&token, "burst@example.com").await;
    let attacker = client_from("127.0.0.1");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (http, url, cid, secret) = (
            attacker.clone(),
            app.url("/t/acme/oauth/token"),
            app.creds.default_app.client_id.clone(),
            app.creds.default_app.client_secret.clone(),
        );
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .form(&[
                    ("grant_type", "http://auth0.com/oauth/grant-type/password-realm"),
                    ("realm", DB),
                    ("username", "burst@example.com"),
                    ("password", "wrong guess"),
                    ("client_id", cid.as_str()),
                    ("client_secret", secret.as_str()),
                ])
                .send()
                .await
                .expect("token")
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("join"));
    }
    let evaluated = statuses.iter().filter(|s| **s == 403).count();
    assert!(evaluated <= 10, "at most max_attempts (10) evaluated: {evaluated}");
    assert!(statuses.iter().all(|s| *s == 403 || *s == 429), "{statuses:?}");
    assert_eq!(login_from(&app, &attacker, "burst@example.com", GOOD).await.0, 429, "the right password right after is refused");
}

async fn settings_are_validated_and_allowlist_is_honoured(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    let (s, d) = mgmt(&app, Method::GET, "/attack-protection/brute-force-protection", &token, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        d,
        json!({"enabled": true, "shields": ["block", "user_notification"], "mode": "count_per_identifier_and_ip", "allowlist": [], "max_attempts": 10})
    );
    for bad in [
        json!({"max_attempts": 0}),
        json!({"max_attempts": 101}),
        json!({"mode": "x"}),
        json!({"allowlist": ["nope"]}),
        json!({"x": 1}),
        json!([]),
    ] {
        let (s, b) = mgmt(&app, Method::PATCH, "/attack-protection/brute-force-protection", &token, Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad} → {b}");
    }
    let (s, b) = mgmt(
        &app,
        Method::PATCH,
        "/attack-protection/brute-force-protection",
        &token,
        Some(json!({"max_attempts": 2, "allowlist": ["127.0.0.3/32"]})),
    )
    .await;
    assert_eq!((s, b["max_attempts"].as_i64(), b["mode"].as_str()), (200, Some(2), Some("count_per_identifier_and_ip")));
    app.create_user(&token, "allow@example.com").await;
    let trusted = client_from("127.0.0.3");
    for _ in 0..5 {
        assert_eq!(login_from(&app, &trusted, "allow@example.com", "wrong guess").await.0, 403);
    }
    assert_eq!(login_from(&app, &trusted, "allow@example.com", GOOD).await.0, 200, "allowlisted addresses are never blocked");
    // Disabled: nothing is counted.
    mgmt(&app, Method::PATCH, "/attack-protection/brute-force-protection", &token, Some(json!({"enabled": false}))).await;
    let other = client_from("127.0.0.4");
    for _ in 0..4 {
        assert_eq!(login_from(&app, &other, "allow@example.com", "wrong guess").await.0, 403);
    }
    assert_eq!(login_from(&app, &other, "allow@example.com", GOOD).await.0, 200);
    let weak = app.token_for(&app.creds, Some("read:users")).await;
    let (s, _) = mgmt(&app, Method::GET, "/attack-protection/brute-force-protection", &weak, None).await;
    assert_eq!(s, 403);
}

/// The one-time links in the delivered mails for `page`.
fn links(app: &TestApp, page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (_, eml) in app.mail_files() {
        let text = eml.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
        let needle = format!("/t/acme/u/{page}?ticket=");
        for (i, _) in text.match_indices(&needle) {
            let token: String = text[i + needle.len()..].chars().take_while(char::is_ascii_alphanumeric).collect();
            let link = format!("{}{needle}{token}", app.base);
            if !out.contains(&link) {
                out.push(link);
            }
        }
    }
    out
}

async fn the_owner_gets_one_unblock_link_that_works_once(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    let user = app.create_user(&token, "owner@example.com").await;
    let id = user["user_id"].as_str().expect("id").to_owned();
    mgmt(&app, Method::PATCH, "/attack-protection/brute-force-protection", &token, Some(json!({"max_attempts": 3}))).await;
    let attacker = client_from("127.0.0.1");
    for _ in 0..8 {
        login_from(&app, &attacker, "owner@example.com", "wrong guess").await;
    }
    assert_eq!(login_from(&app, &attacker, "owner@example.com", GOOD).await.0, 429);
    // One blocked_account mail, however many refused attempts followed.
    let rows = mgmt(&app, Method::GET, &format!("/emails/outbox?user_id={}", enc(&id)), &token, None).await.1;
    let blocked: Vec<&Value> = rows.as_array().expect("rows").iter().filter(|r| r["template"] == "blocked_account").collect();
    assert_eq!(blocked.len(), 1, "{rows}");
    app.wait_for_mail(2).await; // verification of POST /users, and the blocked-account mail
    let link = links(&app, "unblock").pop().expect("an unblock link");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let page = http.get(&link).send().await.expect("get");
    assert_eq!(page.status(), 200);
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("csrf cookie")
        .to_owned();
    let html = page.text().await.expect("html");
    let field = |name: &str| {
        html.split(&format!("name=\"{name}\" value=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_owned()
    };
    let form = [("csrf", field("csrf")), ("ticket", field("ticket"))];
    assert_eq!(login_from(&app, &attacker, "owner@example.com", GOOD).await.0, 429, "opening the link changes nothing");
    let post =
        |http: &reqwest::Client| http.post(app.url("/t/acme/u/unblock")).header("cookie", cookie.clone()).form(&form).send();
    assert_eq!(post(&http).await.expect("post").status(), 200);
    assert_eq!(login_from(&app, &attacker, "owner@example.com", GOOD).await.0, 200, "unblocked");
    assert_eq!(post(&http).await.expect("post").status(), 410, "the link works once");
}

async fn suspicious_ips_are_throttled_across_accounts(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    let (s, d) = mgmt(&app, Method::GET, "/attack-protection/suspicious-ip-throttling", &token, None).await;
    assert_eq!(
        (s, d["stage"]["pre-login"]["max_attempts"].as_i64(), d["stage"]["pre-user-registration"]["max_attempts"].as_i64()),
        (200, Some(100), Some(50))
    );
    for bad in [
        json!({"stage": {"pre-login": {"max_attempts": 0}}}),
        json!({"stage": {"later": {}}}),
        json!({"shields": ["nope"]}),
        json!({"allowlist": [1]}),
    ] {
        assert_eq!(mgmt(&app, Method::PATCH, "/attack-protection/suspicious-ip-throttling", &token, Some(bad)).await.0, 400);
    }
    let patch = json!({"stage": {"pre-login": {"max_attempts": 5}, "pre-user-registration": {"max_attempts": 3}}, "allowlist": ["127.0.0.9"]});
    let (s, d) = mgmt(&app, Method::PATCH, "/attack-protection/suspicious-ip-throttling", &token, Some(patch)).await;
    assert_eq!((s, d["stage"]["pre-login"]["rate"].as_i64()), (200, Some(864_000)), "stages merge");
    app.create_user(&token, "real@example.com").await;
    // Failed logins over many accounts from one address: the 6th is refused, whatever the account.
    let spray = client_from("127.0.0.5");
    for i in 0..5 {
        assert_eq!(login_from(&app, &spray, &format!("user{i}@example.com"), "Spring2026!").await.0, 403);
    }
    let (s, b) = login_from(&app, &spray, "real@example.com", GOOD).await;
    assert_eq!((s, b["error"].as_str()), (429, Some("too_many_attempts")));
    assert!(b["error_description"].as_str().unwrap_or_default().contains("suspicious"), "{b}");
    // Other addresses are not affected; the IP shows as blocked until an admin lifts it.
    assert_eq!(login_from(&app, &client_from("127.0.0.6"), "real@example.com", GOOD).await.0, 200);
    assert_eq!(mgmt(&app, Method::GET, "/anomaly/blocks/ips/127.0.0.5", &token, None).await.0, 200);
    assert_eq!(mgmt(&app, Method::GET, "/anomaly/blocks/ips/127.0.0.6", &token, None).await.0, 404);
    assert_eq!(mgmt(&app, Method::GET, "/anomaly/blocks/ips/not-an-ip", &token, None).await.0, 400);
    assert_eq!(mgmt(&app, Method::DELETE, "/anomaly/blocks/ips/127.0.0.5", &token, None).await.0, 204);
    assert_eq!(login_from(&app, &spray, "real@example.com", GOOD).await.0, 200);
    // Signups per address.
    let signup = |http: reqwest::Client, email: String| {
        let (url, cid) = (app.url("/t/acme/dbconnections/signup"), app.creds.default_app.client_id.clone());
        async move {
            http.post(url)
                .json(&json!({"client_id": cid, "email": email, "password": GOOD, "connection": DB}))
                .send()
                .await
                .expect("signup")
                .status()
                .as_u16()
        }
    };
    let farm = client_from("127.0.0.7");
    for i in 0..3 {
        assert_eq!(signup(farm.clone(), format!("s{i}@example.com")).await, 200);
    }
    assert_eq!(signup(farm.clone(), "s9@example.com".into()).await, 429);
    assert_eq!(signup(client_from("127.0.0.8"), "t1@example.com".into()).await, 200, "another address signs up");
    // The allowlist is never throttled.
    let trusted = client_from("127.0.0.9");
    for i in 0..8 {
        assert_eq!(login_from(&app, &trusted, &format!("nobody{i}@example.com"), "Spring2026!").await.0, 403);
    }
    let tenant = app.store.list_tenants().await.expect("tenants")[0].id.clone();
    let kinds: Vec<String> = app.store.tenant(tenant).logs(None, 200).await.expect("logs").into_iter().map(|l| l.kind).collect();
    assert!(kinds.iter().any(|k| k == "limit_mu"), "throttling is logged");
}

/// Behind a trusted proxy the forwarded address is the one counted; the same header from a client
/// that is not a trusted proxy is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_count_only_behind_trusted_proxies() {
    use reqwest::Method;
    let tweak: roster_testkit::Tweak = Box::new(|c| c.trusted_proxies = vec!["127.0.0.1".into()]);
    let app = TestApp::spawn_with(roster_testkit::Backend::Sqlite, tweak).await.expect("sqlite");
    let token = app.token().await;
    app.create_user(&token, "fwd@example.com").await;
    mgmt(&app, Method::PATCH, "/attack-protection/brute-force-protection", &token, Some(json!({"max_attempts": 1}))).await;
    let guess = |http: reqwest::Client, forwarded: &'static str| {
        let app = &app;
        async move {
            http.post(app.url("/t/acme/oauth/token"))
                .header("x-forwarded-for", forwarded)
                .form(&[
                    ("grant_type", "http://auth0.com/oauth/grant-type/password-realm"),
                    ("realm", DB),
                    ("username", "fwd@example.com"),
                    ("password", "wrong guess"),
                    ("client_id", app.creds.default_app.client_id.as_str()),
                    ("client_secret", app.creds.default_app.client_secret.as_str()),
                ])
                .send()
                .await
                .expect("token")
                .status()
                .as_u16()
        }
    };
    assert_eq!(guess(client_from("127.0.0.1"), "203.0.113.5").await, 403);
    assert_eq!(guess(client_from("127.0.0.2"), "203.0.113.5").await, 403, "an untrusted peer's header is ignored");
    let (_, blocks) = mgmt(&app, Method::GET, "/user-blocks?identifier=fwd@example.com", &token, None).await;
    let ips: Vec<&str> = blocks["blocked_for"].as_array().expect("list").iter().filter_map(|b| b["ip"].as_str()).collect();
    assert_eq!(ips, vec!["203.0.113.5", "127.0.0.2"]);
}

/// `auth0-forwarded-for` names the counted address only for a confidential client the tenant allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_forwarded_for_only_from_allowed_confidential_clients() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let token = app.token().await;
    app.create_user(&token, "fwd2@example.com").await;
    let app_id = app.creds.default_app.client_id.clone();
    let guess = || async {
        app.http
            .post(app.url("/t/acme/oauth/token"))
            .header("auth0-forwarded-for", "198.51.100.9")
            .form(&[
                ("grant_type", "http://auth0.com/oauth/grant-type/password-realm"),
                ("realm", DB),
                ("username", "fwd2@example.com"),
                ("password", "wrong guess"),
                ("client_id", app_id.as_str()),
                ("client_secret", app.creds.default_app.client_secret.as_str()),
            ])
            .send()
            .await
            .expect("token")
            .status()
            .as_u16()
    };
    mgmt(&app, Method::PATCH, "/attack-protection/brute-force-protection", &token, Some(json!({"max_attempts": 1}))).await;
    assert_eq!(guess().await, 403, "not allowed yet: counted under the socket address");
    let (s, c) =
        mgmt(&app, Method::PATCH, &format!("/clients/{app_id}"), &token, Some(json!({"token_endpoint_ip_header_trusted": true})))
            .await;
    assert_eq!((s, c["token_endpoint_ip_header_trusted"].as_bool()), (200, Some(true)));
    assert_eq!(guess().await, 403, "allowed: counted under the forwarded address");
    let (_, blocks) = mgmt(&app, Method::GET, "/user-blocks?identifier=fwd2@example.com", &token, None).await;
    let ips: Vec<&str> = blocks["blocked_for"].as_array().expect("list").iter().filter_map(|b| b["ip"].as_str()).collect();
    assert_eq!(ips, vec!["127.0.0.1", "198.51.100.9"]);
    // A public client cannot be allowed.
    let (s, spa) = mgmt(&app, Method::POST, "/clients", &token, Some(json!({"name": "spa", "app_type": "spa"}))).await;
    assert_eq!(s, 201);
    let spa_id = spa["client_id"].as_str().expect("id");
    let (s, _) =
        mgmt(&app, Method::PATCH, &format!("/clients/{spa_id}"), &token, Some(json!({"token_endpoint_ip_header_trusted": true})))
            .await;
    assert_eq!(s, 400);
}
