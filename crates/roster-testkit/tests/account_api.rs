//! The self-service account as a JSON API (`/t/{tenant}/me…`) through the real server, on SQLite and
//! PostgreSQL: reading and changing one's own profile under the tenant's rules (root fields, profile
//! schema, mass assignment refused as a whole), the tenant settings and branding that set those rules,
//! password and email changes with re-authentication, sessions, terms, the data export, the erasure of
//! an account (read back from every table of the database), and that a user's token reaches no other
//! account.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use roster_domain::{TenantName, UserId};
use roster_store::{LogRecord, TenantStore};
use roster_testkit::{Backend, TestApp, enc, hidden, no_redirects, on_both_backends, unqp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both_backends! {
    read => get_me_returns_the_callers_account_and_nobody_elses;
    profile => patch_me_changes_editable_fields_and_refuses_mass_assignment_whole;
    settings => tenant_settings_and_branding_drive_the_rules;
    password => password_change_reauthenticates_and_ends_other_grants;
    email => email_change_waits_for_the_new_address_and_does_not_enumerate;
    sessions => sessions_are_listed_and_ended_per_user;
    terms => terms_are_accepted_by_version;
    export => export_is_an_attachment_with_everything_about_the_user;
    delete => deletion_reauthenticates_and_erases_every_trace;
    idor => a_token_only_ever_reaches_its_own_account;
    delete_pending_address => deletion_erases_the_address_a_pending_change_named;
    delete_through_management => deletion_needs_the_password_whatever_the_route;
}

const DB: &str = "Username-Password-Authentication";
const GOOD: &str = "correct horse battery";
const NEW: &str = "fresh horse staple";
const CALLBACK: &str = "https://app.example/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ0MF3ASa0SLVuTahdTKlMeXrZPxo8-and-some-more-entropy";

// ---- helpers ----

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<IpAddr>().expect("ip")).build().expect("client")
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A Management API call on `acme`.
async fn mgmt(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.http.request(method, app.api(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    send(req).await
}

/// A `/t/acme/me{path}` call.
async fn me(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(&format!("/t/acme/me{path}"))).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    send(req).await
}

/// The user as the Management API shows it to the tenant's admin.
async fn admin_user(app: &TestApp, admin: &str, id: &str) -> Value {
    let (s, u) = mgmt(app, Method::GET, &format!("/users/{}", enc(id)), admin, None).await;
    assert_eq!(s, 200, "{u}");
    u
}

/// A database user of `acme` created by the admin (no verification mail unless asked); its id.
async fn new_user(app: &TestApp, admin: &str, email: &str, extra: Value) -> String {
    let mut body = json!({"connection": DB, "email": email, "password": GOOD, "verify_email": false});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    let (s, u) = mgmt(app, Method::POST, "/users", admin, Some(body)).await;
    assert_eq!(s, 201, "create {email}: {u}");
    u["user_id"].as_str().expect("user_id").to_owned()
}

/// A password-realm login at `tenant` with the default app (`extra` adds form fields).
async fn login_at(
    app: &TestApp,
    creds: &roster::provision::TenantCredentials,
    email: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let c = &creds.default_app;
    let mut form = vec![
        ("grant_type", "http://auth0.com/oauth/grant-type/password-realm"),
        ("realm", DB),
        ("username", email),
        ("password", password),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
    ];
    form.extend_from_slice(extra);
    send(app.http.post(app.url(&format!("/t/{}/oauth/token", creds.tenant))).form(&form)).await
}

async fn login(app: &TestApp, email: &str, password: &str) -> u16 {
    login_at(app, &app.creds, email, password, &[]).await.0
}

/// The user's own Management API token (audience = the tenant's Management API), with `scope` if given.
async fn user_token(app: &TestApp, email: &str, scope: Option<&str>) -> String {
    let aud = app.creds.management_audience.clone();
    let mut extra = vec![("audience", aud.as_str())];
    if let Some(s) = scope {
        extra.push(("scope", s));
    }
    let (s, b) = login_at(app, &app.creds, email, GOOD, &extra).await;
    assert_eq!(s, 200, "login {email}: {b}");
    b["access_token"].as_str().expect("access_token").to_owned()
}

fn claims(jwt: &str) -> Value {
    let p: Vec<&str> = jwt.split('.').collect();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p[1]).expect("b64")).expect("json")
}

async fn acme(app: &TestApp) -> TenantStore {
    let t = app.store.tenant_by_name(&TenantName::parse("acme").expect("name")).await.expect("read").expect("acme");
    app.store.tenant(t.id)
}

async fn user_logs(app: &TestApp, id: &str) -> Vec<LogRecord> {
    acme(app).await.logs(Some(&UserId::from_trusted(id.to_owned())), 1000).await.expect("logs")
}

async fn outbox(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let (s, b) = mgmt(app, Method::GET, &format!("/emails/outbox{query}"), admin, None).await;
    assert_eq!(s, 200, "{b}");
    b.as_array().cloned().unwrap_or_default()
}

async fn user_outbox(app: &TestApp, admin: &str, id: &str) -> Vec<Value> {
    outbox(app, admin, &format!("?user_id={}&per_page=100", enc(id))).await
}

/// The delivered `.eml` of outbox row `id` (waits up to 10 s for the relay), quoted-printable decoded.
async fn delivered(app: &TestApp, id: &str) -> String {
    // The file transport names a file `{created_at}-{row id}.eml`.
    let name = format!("-{id}.eml");
    for _ in 0..200 {
        if let Some((_, eml)) = app.mail_files().into_iter().find(|(n, _)| n.ends_with(&name)) {
            return unqp(&eml);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("mail {name} was never delivered");
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

// ---- browser sessions through /authorize and the hosted login page ----

async fn allow_callback(app: &TestApp, admin: &str) {
    let (s, b) = mgmt(
        app,
        Method::PATCH,
        &format!("/clients/{}", app.creds.default_app.client_id),
        admin,
        Some(json!({"callbacks": [CALLBACK]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

fn authorize_url(app: &TestApp) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    format!(
        "{}/t/acme/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=st&code_challenge={challenge}&code_challenge_method=S256",
        app.base,
        app.creds.default_app.client_id,
        url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    )
}

fn cookie_pair(r: &reqwest::Response, prefix: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(prefix))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// Log in through the hosted login page; the SSO session cookie (`rs_acme=…`).
async fn browser_login(app: &TestApp, email: &str) -> String {
    let http = no_redirects();
    let r = http.get(authorize_url(app)).send().await.expect("authorize");
    assert_eq!(r.status(), 302);
    let login_url = r.headers()["location"].to_str().expect("location").to_owned();
    let r = http.get(&login_url).send().await.expect("login page");
    assert_eq!(r.status(), 200);
    let csrf_pair = cookie_pair(&r, "rs_csrf=").expect("csrf cookie");
    let html = r.text().await.expect("html");
    let (csrf, req) = (hidden(&html, "csrf"), hidden(&html, "req"));
    let r = http
        .post(format!("{}u/login", app.creds.issuer))
        .header("cookie", csrf_pair)
        .form(&[("csrf", csrf.as_str()), ("req", req.as_str()), ("username", email), ("password", GOOD)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"].to_str().expect("location").starts_with(CALLBACK));
    cookie_pair(&r, "rs_acme=").expect("session cookie")
}

/// Whether the session cookie still signs the browser in (SSO straight back to the app).
async fn sso(app: &TestApp, cookie: &str) -> bool {
    let r = no_redirects().get(authorize_url(app)).header("cookie", cookie).send().await.expect("authorize");
    assert_eq!(r.status(), 302);
    r.headers()["location"].to_str().expect("location").starts_with(CALLBACK)
}

// ---- direct database access ----

enum RawDb {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

/// A second, independent connection to the test server's database.
async fn raw_db(app: &TestApp) -> RawDb {
    match app.backend {
        Backend::Sqlite => {
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(app.data_dir().join("roster.db")).read_only(true);
            RawDb::Sqlite(sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("sqlite"))
        }
        Backend::Postgres => {
            // The harness names the server's data folder after its database.
            let admin = std::env::var("ROSTER_TEST_POSTGRES_URL").expect("postgres url");
            let db = app.data_dir().file_name().expect("name").to_string_lossy().into_owned();
            let (base, query) = admin.split_once('?').map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
            let scheme_end = base.find("://").map_or(0, |i| i + 3);
            let path_start = base[scheme_end..].find('/').map_or(base.len(), |i| i + scheme_end);
            let mut url = format!("{}/{db}", &base[..path_start]);
            if let Some(q) = query {
                url = format!("{url}?{q}");
            }
            RawDb::Pg(sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&url).await.expect("postgres"))
        }
    }
}

/// Every `table.column` of the database holding `needle` (case-insensitive, anywhere in the value),
/// with the number of rows; the outbox row `skip_outbox` is left out.
async fn mentions(db: &RawDb, needle: &str, skip_outbox: Option<&str>) -> Vec<(String, i64)> {
    let needle = needle.to_lowercase();
    let mut out = Vec::new();
    match db {
        RawDb::Sqlite(pool) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .expect("tables");
            assert!(tables.len() >= 15, "{tables:?}");
            for t in tables {
                let cols: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info(?1)").bind(&t).fetch_all(pool).await.expect("columns");
                for c in cols {
                    let skip = skip_outbox.filter(|_| t == "outbox");
                    let sql = format!(
                        "SELECT COUNT(*) FROM \"{t}\" WHERE instr(lower(CAST(\"{c}\" AS TEXT)), ?1) > 0{}",
                        if skip.is_some() { " AND id <> ?2" } else { "" }
                    );
                    let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(&needle);
                    if let Some(s) = skip {
                        q = q.bind(s);
                    }
                    let n = q.fetch_one(pool).await.expect("count");
                    if n > 0 {
                        out.push((format!("{t}.{c}"), n));
                    }
                }
            }
        }
        RawDb::Pg(pool) => {
            let cols: Vec<(String, String)> = sqlx::query_as(
                "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c \
                 JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                 WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' ORDER BY 1, 2",
            )
            .fetch_all(pool)
            .await
            .expect("columns");
            assert!(cols.iter().map(|(t, _)| t).collect::<std::collections::BTreeSet<_>>().len() >= 15, "{cols:?}");
            for (t, c) in cols {
                let skip = skip_outbox.filter(|_| t == "outbox");
                let sql = format!(
                    "SELECT COUNT(*) FROM \"{t}\" WHERE position($1 in lower(CAST(\"{c}\" AS TEXT))) > 0{}",
                    if skip.is_some() { " AND id <> $2" } else { "" }
                );
                let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(&needle);
                if let Some(s) = skip {
                    q = q.bind(s);
                }
                let n = q.fetch_one(pool).await.expect("count");
                if n > 0 {
                    out.push((format!("{t}.{c}"), n));
                }
            }
        }
    }
    out
}

fn default_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "language": {"type": "string", "title": "Language", "description": "The language we write to you in.", "enum": ["en", "fr"]},
            "reduced_motion": {"type": "boolean", "title": "Reduce motion", "description": "Avoid animations in our apps."}
        },
        "required": []
    })
}

const ALL_FIELDS: [&str; 5] = ["name", "given_name", "family_name", "nickname", "picture"];

// ---- 1. GET /me ----

async fn get_me_returns_the_callers_account_and_nobody_elses(app: TestApp) {
    let admin = app.token().await;
    let id = new_user(&app, &admin, "Ann@Example.com", json!({"user_metadata": {"language": "fr"}, "name": "Ann"})).await;
    new_user(&app, &admin, "bob@example.com", json!({"user_metadata": {"language": "en"}})).await;
    let (s, _) =
        mgmt(&app, Method::PATCH, &format!("/users/{}", enc(&id)), &admin, Some(json!({"app_metadata": {"plan": "pro"}}))).await;
    assert_eq!(s, 200);
    let tok = user_token(&app, "ann@example.com", None).await;
    let scope = claims(&tok)["scope"].as_str().expect("scope").to_owned();
    let granted: Vec<&str> = scope.split(' ').collect();
    assert!(granted.contains(&"read:current_user") && !granted.contains(&"delete:current_user"), "{scope}");

    let r = app.http.get(app.url("/t/acme/me")).bearer_auth(&tok).send().await.expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["user_id"], id.as_str());
    assert_eq!(body["email"], "ann@example.com");
    assert_eq!(body["email_verified"], false);
    assert_eq!(body["pending_email"], Value::Null);
    assert_eq!(body["name"], "Ann");
    assert_eq!(body["user_metadata"], json!({"language": "fr"}));
    assert_eq!(body["profile_schema"], default_schema());
    assert_eq!(body["editable_fields"], json!(ALL_FIELDS));
    assert_eq!(body["profile_synced"], false);
    assert_eq!(body["terms"], Value::Null);
    assert_eq!(body["app_metadata"], json!({}), "app_metadata is shown only where the tenant says so");
    assert!(!body.to_string().contains("bob@example.com") && !body.to_string().contains("plan"));
    assert!(!body.to_string().contains("argon2"));

    // A machine token has no "me"; no token or a bad token is 401.
    let (s, b) = me(&app, Method::GET, "", &admin, None).await;
    assert_eq!((s, b["errorCode"].as_str()), (403, Some("insufficient_scope")), "{b}");
    let (s, _) = send(app.http.get(app.url("/t/acme/me"))).await;
    assert_eq!(s, 401);
    let (s, _) = me(&app, Method::GET, "", "not.a.jwt", None).await;
    assert_eq!(s, 401);
    let forged = format!("{}.{}", &tok[..tok.rfind('.').expect("dot")], "AAAA");
    assert_eq!(me(&app, Method::GET, "", &forged, None).await.0, 401, "a bad signature");

    // Another tenant's user token: valid there, 401 here.
    let beta = app.create_tenant("beta").await;
    let beta_admin = app.token_for(&beta, None).await;
    let (s, b) = send(
        app.http
            .post(app.url("/t/beta/api/v2/users"))
            .bearer_auth(&beta_admin)
            .json(&json!({"connection": DB, "email": "ann@example.com", "password": GOOD, "verify_email": false})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = login_at(&app, &beta, "ann@example.com", GOOD, &[("audience", beta.management_audience.as_str())]).await;
    assert_eq!(s, 200, "{b}");
    let beta_tok = b["access_token"].as_str().expect("at").to_owned();
    let (s, b) = send(app.http.get(app.url("/t/beta/me")).bearer_auth(&beta_tok)).await;
    assert_eq!((s, b["user_id"].as_str().map(|u| u != id)), (200, Some(true)), "{b}");
    assert_eq!(me(&app, Method::GET, "", &beta_tok, None).await.0, 401);
    let (s, _) = me(&app, Method::PATCH, "", &beta_tok, Some(json!({"name": "Intruder"}))).await;
    assert_eq!(s, 401);
    assert_eq!(admin_user(&app, &admin, &id).await["name"], "Ann");

    // A read-only token may read but not write.
    let ro = user_token(&app, "ann@example.com", Some("read:current_user")).await;
    assert_eq!(me(&app, Method::GET, "", &ro, None).await.0, 200);
    let (s, b) = me(&app, Method::PATCH, "", &ro, Some(json!({"name": "Nope"}))).await;
    assert_eq!((s, b["errorCode"].as_str()), (403, Some("insufficient_scope")), "{b}");
    assert_eq!(admin_user(&app, &admin, &id).await["name"], "Ann");

    // A blocked user's token stops working at once.
    let (s, _) = mgmt(&app, Method::PATCH, &format!("/users/{}", enc(&id)), &admin, Some(json!({"blocked": true}))).await;
    assert_eq!(s, 200);
    assert_eq!(me(&app, Method::GET, "", &tok, None).await.0, 401);
    let (s, _) = mgmt(&app, Method::PATCH, &format!("/users/{}", enc(&id)), &admin, Some(json!({"blocked": false}))).await;
    assert_eq!(s, 200);
    assert_eq!(me(&app, Method::GET, "", &tok, None).await.0, 200);
}

// ---- 2. PATCH /me ----

async fn patch_me_changes_editable_fields_and_refuses_mass_assignment_whole(app: TestApp) {
    let admin = app.token().await;
    let id = new_user(&app, &admin, "pat@example.com", json!({"user_metadata": {"language": "en"}})).await;
    let other = new_user(&app, &admin, "other@example.com", json!({})).await;
    let other_before = admin_user(&app, &admin, &other).await;
    let tok = user_token(&app, "pat@example.com", None).await;
    let before = admin_user(&app, &admin, &id).await;

    let (s, b) = me(
        &app,
        Method::PATCH,
        "",
        &tok,
        Some(json!({
            "name": "Pat Doe", "given_name": "Pat", "family_name": "Doe", "nickname": "patty",
            "picture": "https://img.example/p.png",
            "user_metadata": {"language": "fr", "reduced_motion": true}
        })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["name"].as_str(), b["given_name"].as_str(), b["family_name"].as_str(), b["nickname"].as_str(), b["picture"].as_str()),
        (Some("Pat Doe"), Some("Pat"), Some("Doe"), Some("patty"), Some("https://img.example/p.png"))
    );
    assert_eq!(b["user_metadata"], json!({"language": "fr", "reduced_motion": true}));
    let stored = admin_user(&app, &admin, &id).await;
    assert_eq!(
        (stored["name"].as_str(), stored["given_name"].as_str(), stored["family_name"].as_str(), stored["nickname"].as_str()),
        (Some("Pat Doe"), Some("Pat"), Some("Doe"), Some("patty"))
    );
    assert_eq!(stored["picture"], "https://img.example/p.png");
    assert_eq!(stored["user_metadata"], json!({"language": "fr", "reduced_motion": true}));
    assert!(stored["updated_at"].as_str() > before["updated_at"].as_str(), "updated_at moves");
    assert_eq!((stored["email"].clone(), stored["email_verified"].clone()), (before["email"].clone(), json!(false)));
    let logs = user_logs(&app, &id).await;
    assert!(logs.iter().any(|l| l.kind == "sapi" && l.description.contains("(account)")), "the change is logged");

    // null clears a root field and removes a metadata key; an http picture is accepted.
    let (s, b) = me(
        &app,
        Method::PATCH,
        "",
        &tok,
        Some(json!({"nickname": null, "picture": "http://img.example/q.png", "user_metadata": {"reduced_motion": null}})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let stored = admin_user(&app, &admin, &id).await;
    assert!(stored.get("nickname").is_none_or(Value::is_null), "{stored}");
    assert_eq!(stored["picture"], "http://img.example/q.png");
    assert_eq!(stored["user_metadata"], json!({"language": "fr"}));

    // Refused, as a whole: nothing at all changes (not even the valid part of the body, nor updated_at).
    let snapshot = admin_user(&app, &admin, &id).await;
    let refused = [
        json!({"email": "evil@example.com"}),
        json!({"email_verified": true}),
        json!({"blocked": true}),
        json!({"app_metadata": {"role": "admin"}}),
        json!({"user_id": other}),
        json!({"identities": []}),
        json!({"username": "pat"}),
        json!({"password": "another horse battery"}),
        json!({"connection": "Other"}),
        json!({"user_metadata": {"role": "admin"}}),
        json!({"user_metadata": {"language": "de"}}),
        json!({"user_metadata": {"language": 1}}),
        json!({"user_metadata": {"reduced_motion": "yes"}}),
        json!({"user_metadata": "fr"}),
        json!({"reduced_motion": true}),
        json!({"name": 5}),
        json!({"name": "x".repeat(151)}),
        json!({"name": "bell\u{7}"}),
        json!({"picture": "javascript:alert(1)"}),
        json!({"picture": "ftp://img.example/p.png"}),
        json!({"picture": "/relative.png"}),
        json!({"name": "Changed", "email_verified": true}),
        json!({"nickname": "changed", "app_metadata": {"role": "admin"}}),
        json!({"name": "Changed", "user_metadata": {"language": "en", "is_admin": true}}),
        json!({"user_metadata": {"language": "en"}, "blocked": false}),
    ];
    for body in refused {
        let (s, b) = me(&app, Method::PATCH, "", &tok, Some(body.clone())).await;
        assert_eq!((s, b["errorCode"].as_str()), (400, Some("invalid_body")), "{body} → {b}");
        assert_eq!(admin_user(&app, &admin, &id).await, snapshot, "{body} changed something");
    }
    // The refusal names the field.
    let (_, b) = me(&app, Method::PATCH, "", &tok, Some(json!({"user_metadata": {"is_admin": true}}))).await;
    assert!(b["message"].as_str().expect("message").contains("user_metadata.is_admin"), "{b}");
    let (_, b) = me(&app, Method::PATCH, "", &tok, Some(json!({"email_verified": true}))).await;
    assert!(b["message"].as_str().expect("message").contains("email_verified"), "{b}");
    // Not JSON, or not an object.
    let (s, _) =
        send(app.http.patch(app.url("/t/acme/me")).bearer_auth(&tok).header("content-type", "application/json").body("[1]"))
            .await;
    assert_eq!(s, 400);
    let (s, _) =
        send(app.http.patch(app.url("/t/acme/me")).bearer_auth(&tok).header("content-type", "application/json").body("{")).await;
    assert_eq!(s, 400);
    // A machine token cannot use /me to write either.
    assert_eq!(me(&app, Method::PATCH, "", &admin, Some(json!({"name": "Machine"}))).await.0, 403);
    assert_eq!(admin_user(&app, &admin, &id).await, snapshot);
    assert_eq!(admin_user(&app, &admin, &other).await, other_before, "the other user was never touched");
}

// ---- 3. tenant settings and branding ----

async fn tenant_settings_and_branding_drive_the_rules(app: TestApp) {
    let admin = app.token().await;
    let (s, initial) = mgmt(&app, Method::GET, "/tenants/settings", &admin, None).await;
    assert_eq!(s, 200, "{initial}");
    assert_eq!(initial["account_portal"]["editable_fields"], json!(ALL_FIELDS));
    assert_eq!(initial["account_portal"]["profile_schema"], default_schema());
    assert_eq!(initial["account_portal"]["terms"], Value::Null);
    assert_eq!(initial["account_portal"]["enabled"], true);

    let schema = json!({
        "type": "object",
        "properties": {
            "language": {"type": "string", "title": "Language", "enum": ["en", "fr"]},
            "age": {"type": "integer", "title": "Age", "minimum": 13, "maximum": 130},
            "member_no": {"type": "string", "title": "Member number", "readOnly": true}
        },
        "required": ["age"]
    });
    let (s, updated) = mgmt(
        &app,
        Method::PATCH,
        "/tenants/settings",
        &admin,
        Some(json!({"friendly_name": "Acme Corp", "account_portal": {"editable_fields": ["name"], "profile_schema": schema}})),
    )
    .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["friendly_name"], "Acme Corp");
    assert_eq!(updated["account_portal"]["editable_fields"], json!(["name"]));
    assert_eq!(updated["account_portal"]["profile_schema"], schema);
    let (s, got) = mgmt(&app, Method::GET, "/tenants/settings", &admin, None).await;
    assert_eq!((s, &got), (200, &updated));

    let id = new_user(&app, &admin, "set@example.com", json!({"user_metadata": {"member_no": "M-1", "age": 30}})).await;
    let tok = user_token(&app, "set@example.com", None).await;
    let (s, b) = me(&app, Method::GET, "", &tok, None).await;
    assert_eq!(s, 200);
    assert_eq!(b["editable_fields"], json!(["name"]));
    assert_eq!(b["profile_schema"], schema);
    assert_eq!(b["user_metadata"], json!({"member_no": "M-1", "age": 30}));

    let (s, b) =
        me(&app, Method::PATCH, "", &tok, Some(json!({"name": "Set Name", "user_metadata": {"age": 42, "language": "fr"}})))
            .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["user_metadata"], json!({"member_no": "M-1", "age": 42, "language": "fr"}));
    let snapshot = admin_user(&app, &admin, &id).await;
    assert_eq!(snapshot["name"], "Set Name");
    for body in [
        json!({"nickname": "nope"}),
        json!({"given_name": "nope"}),
        json!({"picture": "https://img.example/p.png"}),
        json!({"user_metadata": {"member_no": "M-2"}}),
        json!({"user_metadata": {"age": 12}}),
        json!({"user_metadata": {"age": 131}}),
        json!({"user_metadata": {"age": 42.5}}),
        json!({"user_metadata": {"age": "42"}}),
        json!({"user_metadata": {"age": null}}),
        json!({"user_metadata": {"reduced_motion": true}}),
        json!({"name": "Other", "user_metadata": {"age": 200}}),
    ] {
        let (s, b) = me(&app, Method::PATCH, "", &tok, Some(body.clone())).await;
        assert_eq!(s, 400, "{body} → {b}");
        assert_eq!(admin_user(&app, &admin, &id).await, snapshot, "{body} changed something");
    }
    // The bounds themselves are accepted.
    for age in [13, 130] {
        let (s, b) = me(&app, Method::PATCH, "", &tok, Some(json!({"user_metadata": {"age": age}}))).await;
        assert_eq!((s, b["user_metadata"]["age"].as_i64()), (200, Some(age)), "{b}");
    }
    assert_eq!(admin_user(&app, &admin, &id).await["user_metadata"]["member_no"], "M-1", "readOnly kept its value");
    // The Auth0-compatible path honours readOnly too: the user's own token cannot write it through
    // PATCH /users/{id}; undeclared keys stay writable there (as in Auth0), the admin writes anything.
    let path = format!("/users/{}", enc(&id));
    let (s, b) = mgmt(&app, Method::PATCH, &path, &tok, Some(json!({"user_metadata": {"member_no": "M-9"}}))).await;
    assert_eq!((s, b["errorCode"].as_str()), (403, Some("insufficient_scope")), "{b}");
    assert_eq!(admin_user(&app, &admin, &id).await["user_metadata"]["member_no"], "M-1");
    let (s, b) = mgmt(&app, Method::PATCH, &path, &tok, Some(json!({"user_metadata": {"app_pref": "x"}}))).await;
    assert_eq!((s, &b["user_metadata"]["app_pref"]), (200, &json!("x")), "{b}");
    let (s, b) =
        mgmt(&app, Method::PATCH, &path, &admin, Some(json!({"user_metadata": {"member_no": "M-2", "app_pref": null}}))).await;
    assert_eq!((s, &b["user_metadata"]["member_no"]), (200, &json!("M-2")), "{b}");

    // Invalid settings are refused as a whole; GET shows the previous ones.
    let (_, before) = mgmt(&app, Method::GET, "/tenants/settings", &admin, None).await;
    for bad in [
        json!({"account_portal": {"profile_schema": {"properties": {"x": {"type": "object"}}}}}),
        json!({"account_portal": {"profile_schema": {"properties": {"x": {"type": "integer", "minimum": "low"}}}}}),
        json!({"account_portal": {"profile_schema": {"properties": {"x": {"type": "string"}}, "required": ["y"]}}}),
        json!({"account_portal": {"profile_schema": {"properties": {"a.b": {"type": "string"}}}}}),
        json!({"account_portal": {"editable_fields": ["email"]}}),
        json!({"account_portal": {"editable_fields": ["name", "app_metadata"]}}),
        json!({"account_portal": {"terms": {"version": "1", "url": "javascript:alert(1)"}}}),
        json!({"account_portal": {"terms": {"version": "", "url": "https://example.com/terms"}}}),
        json!({"account_portal": {"reauthentication_window": 1}}),
        json!({"account_portal": {"surprise": 1}}),
        json!({"account_portal": "on"}),
        json!({"friendly_name": "Renamed", "account_portal": {"editable_fields": ["email"]}}),
        json!({"support_email": "not an address"}),
        json!({"support_url": "javascript:alert(1)"}),
        json!({"surprise": 1}),
    ] {
        let (s, b) = mgmt(&app, Method::PATCH, "/tenants/settings", &admin, Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad} → {b}");
        let (_, now) = mgmt(&app, Method::GET, "/tenants/settings", &admin, None).await;
        assert_eq!(now, before, "{bad} changed the settings");
    }
    // A disabled portal closes /me; app_metadata keys the tenant lists are shown read-only.
    let (s, b) = mgmt(
        &app,
        Method::PATCH,
        &format!("/users/{}", enc(&id)),
        &admin,
        Some(json!({"app_metadata": {"plan": "pro", "secret": "x"}})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) =
        mgmt(&app, Method::PATCH, "/tenants/settings", &admin, Some(json!({"account_portal": {"enabled": false}}))).await;
    assert_eq!(s, 200);
    for (method, path, body) in [
        (Method::GET, "", None),
        (Method::PATCH, "", Some(json!({"name": "Closed"}))),
        (Method::GET, "/export", None),
        (Method::GET, "/sessions", None),
        (Method::POST, "/password", Some(json!({"current_password": GOOD, "new_password": NEW}))),
    ] {
        let (s, b) = me(&app, method.clone(), path, &tok, body).await;
        assert_eq!((s, b["errorCode"].as_str()), (403, Some("operation_not_allowed")), "{method} /me{path}: {b}");
    }
    assert_eq!(login(&app, "set@example.com", GOOD).await, 200, "the password did not change");
    let (s, _) = mgmt(
        &app,
        Method::PATCH,
        "/tenants/settings",
        &admin,
        Some(json!({"account_portal": {"enabled": true, "visible_app_metadata": {"plan": "Your plan"}}})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, b) = me(&app, Method::GET, "", &tok, None).await;
    assert_eq!((s, b["app_metadata"].clone()), (200, json!({"plan": "pro"})), "only the listed key");
    assert_eq!(me(&app, Method::PATCH, "", &tok, Some(json!({"app_metadata": {"plan": "free"}}))).await.0, 400);
    assert_eq!(admin_user(&app, &admin, &id).await["app_metadata"]["plan"], "pro");
    let (_, before) = mgmt(&app, Method::GET, "/tenants/settings", &admin, None).await;

    // And /me still follows the stored rules.
    assert_eq!(me(&app, Method::PATCH, "", &tok, Some(json!({"nickname": "nope"}))).await.0, 400);
    assert_eq!(me(&app, Method::GET, "", &tok, None).await.1["editable_fields"], json!(["name"]));

    // A user token cannot read or change the tenant's settings or branding.
    for (method, path, body) in [
        (Method::GET, "/tenants/settings", None),
        (Method::PATCH, "/tenants/settings", Some(json!({"account_portal": {"editable_fields": ALL_FIELDS}}))),
        (Method::GET, "/branding", None),
        (Method::PATCH, "/branding", Some(json!({"colors": {"primary": "#000000"}}))),
    ] {
        let (s, b) = mgmt(&app, method.clone(), path, &tok, body).await;
        assert_eq!(s, 403, "{method} {path}: {b}");
    }
    let (_, now) = mgmt(&app, Method::GET, "/tenants/settings", &admin, None).await;
    assert_eq!(now, before);
    let weak = app.token_for(&app.creds, Some("read:users")).await;
    assert_eq!(mgmt(&app, Method::GET, "/tenants/settings", &weak, None).await.0, 403, "needs read:tenant_settings");

    // null restores a default.
    let (s, b) = mgmt(
        &app,
        Method::PATCH,
        "/tenants/settings",
        &admin,
        Some(json!({"account_portal": {"editable_fields": null, "profile_schema": null}})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["account_portal"]["editable_fields"], json!(ALL_FIELDS));
    let (_, b) = me(&app, Method::GET, "", &tok, None).await;
    assert_eq!((b["editable_fields"].clone(), b["profile_schema"].clone()), (json!(ALL_FIELDS), default_schema()));
    assert_eq!(me(&app, Method::PATCH, "", &tok, Some(json!({"nickname": "now allowed"}))).await.0, 200);

    // Branding: #rgb and #rrggbb colours only, https logos.
    let (s, b) = mgmt(&app, Method::GET, "/branding", &admin, None).await;
    assert_eq!((s, b["colors"]["primary"].as_str()), (200, Some("#0b5cad")), "{b}");
    let (s, b) = mgmt(&app, Method::PATCH, "/branding", &admin, Some(json!({"colors": {"primary": "#abc"}}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!((b["colors"]["primary"].as_str(), b["colors"]["page_background"].as_str()), (Some("#abc"), Some("#f4f5f7")));
    for bad in [
        json!({"colors": {"primary": "red"}}),
        json!({"colors": {"primary": "#12345"}}),
        json!({"colors": {"page_background": "#0b5cad;}body{"}}),
        json!({"colors": "red"}),
        json!({"logo_url": "http://img.example/l.png"}),
        json!({"logo_url": "javascript:alert(1)"}),
        json!({"surprise": 1}),
    ] {
        let (s, b) = mgmt(&app, Method::PATCH, "/branding", &admin, Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad} → {b}");
    }
    let (s, b) = mgmt(&app, Method::GET, "/branding", &admin, None).await;
    assert_eq!((s, b["colors"]["primary"].as_str(), b["logo_url"].clone()), (200, Some("#abc"), Value::Null), "{b}");
    let (s, b) = mgmt(&app, Method::PATCH, "/branding", &admin, Some(json!({"logo_url": "https://img.example/l.png"}))).await;
    assert_eq!(
        (s, b["logo_url"].as_str(), b["colors"]["primary"].as_str()),
        (200, Some("https://img.example/l.png"), Some("#abc"))
    );
}

// ---- 4. POST /me/password ----

async fn password_change_reauthenticates_and_ends_other_grants(app: TestApp) {
    let admin = app.token().await;
    let id = new_user(&app, &admin, "pw@example.com", json!({})).await;
    let (s, t) = login_at(&app, &app.creds, "pw@example.com", GOOD, &[("scope", "openid offline_access")]).await;
    assert_eq!(s, 200, "{t}");
    let refresh = t["refresh_token"].as_str().expect("the default app may refresh").to_owned();
    allow_callback(&app, &admin).await;
    let browser = browser_login(&app, "pw@example.com").await;
    let tok = user_token(&app, "pw@example.com", None).await;
    let change = |current: &'static str, new: &'static str| {
        let (app, tok) = (&app, tok.clone());
        async move { me(app, Method::POST, "/password", &tok, Some(json!({"current_password": current, "new_password": new}))).await }
    };

    let (s, b) = change("wrong horse battery", NEW).await;
    assert_eq!((s, b["errorCode"].as_str()), (403, Some("invalid_password")), "{b}");
    let (s, b) = me(&app, Method::POST, "/password", &tok, Some(json!({"new_password": NEW}))).await;
    assert_eq!((s, b["errorCode"].as_str()), (403, Some("invalid_password")), "no current password: {b}");
    for weak in ["password1", "short", "12345678", "pw@example.com"] {
        let (s, b) =
            me(&app, Method::POST, "/password", &tok, Some(json!({"current_password": GOOD, "new_password": weak}))).await;
        assert_eq!(s, 400, "{weak}: {b}");
    }
    let (s, _) = me(&app, Method::POST, "/password", &tok, Some(json!({"current_password": GOOD}))).await;
    assert_eq!(s, 400, "new_password is required");
    let (s, _) =
        me(&app, Method::POST, "/password", &tok, Some(json!({"current_password": GOOD, "new_password": NEW, "user_id": "x"})))
            .await;
    assert_eq!(s, 400, "unknown properties are refused");
    assert_eq!(
        me(&app, Method::POST, "/password", &admin, Some(json!({"current_password": GOOD, "new_password": NEW}))).await.0,
        403
    );
    // Nothing changed so far.
    assert_eq!(login(&app, "pw@example.com", GOOD).await, 200);
    assert!(user_outbox(&app, &admin, &id).await.iter().all(|r| r["template"] != "password_reset"));
    assert!(admin_user(&app, &admin, &id).await.get("last_password_reset").is_none_or(Value::is_null));
    let logs = user_logs(&app, &id).await;
    assert!(logs.iter().any(|l| l.kind == "fp"), "a wrong current password is logged as a failed login");
    assert!(logs.iter().any(|l| l.kind == "fcp"), "a refused new password is logged");

    let (s, b) = change(GOOD, NEW).await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(login(&app, "pw@example.com", GOOD).await, 403, "the old password no longer works");
    assert_eq!(login(&app, "pw@example.com", NEW).await, 200);
    let (s, b) = send(app.http.post(app.url("/t/acme/oauth/token")).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", app.creds.default_app.client_id.as_str()),
        ("client_secret", app.creds.default_app.client_secret.as_str()),
    ]))
    .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("invalid_grant")), "refresh tokens issued before are revoked: {b}");
    assert!(admin_user(&app, &admin, &id).await["last_password_reset"].is_string());
    assert!(user_logs(&app, &id).await.iter().any(|l| l.kind == "scp"));
    let rows = user_outbox(&app, &admin, &id).await;
    let notice: Vec<&Value> = rows.iter().filter(|r| r["template"] == "password_reset").collect();
    assert_eq!(notice.len(), 1, "{rows:?}");
    assert_eq!(notice[0]["recipient"], "pw@example.com");
    let eml = delivered(&app, notice[0]["id"].as_str().expect("id")).await;
    assert!(eml.contains("pw@example.com"));
    // The old password is now the wrong current password.
    assert_eq!(change(GOOD, "yet another horse").await.0, 403);
    assert!(!sso(&app, &browser).await, "the browser session ended too");
    assert!(
        acme(&app)
            .await
            .user_sessions(&UserId::from_trusted(id.clone()), roster_domain::Timestamp::now())
            .await
            .expect("s")
            .is_empty()
    );

    // The current password is checked exactly as a login is: brute-force protection counts failures
    // and then refuses even the right password, without changing anything.
    let (s, _) =
        mgmt(&app, Method::PATCH, "/attack-protection/brute-force-protection", &admin, Some(json!({"max_attempts": 3}))).await;
    assert_eq!(s, 200);
    new_user(&app, &admin, "bf@example.com", json!({})).await;
    let bf = user_token(&app, "bf@example.com", None).await;
    let attempt = |current: &'static str| {
        let (app, bf) = (&app, bf.clone());
        async move {
            let r = app
                .http
                .post(app.url("/t/acme/me/password"))
                .bearer_auth(&bf)
                .json(&json!({"current_password": current, "new_password": NEW}))
                .send()
                .await
                .expect("post");
            let retry = r.headers().get("retry-after").is_some();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null), retry)
        }
    };
    for _ in 0..3 {
        assert_eq!(attempt("wrong horse battery").await.0, 403);
    }
    let (s, b, retry) = attempt("wrong horse battery").await;
    assert_eq!((s, b["errorCode"].as_str(), retry), (429, Some("too_many_attempts"), true), "{b}");
    let (s, b, _) = attempt(GOOD).await;
    assert_eq!(s, 429, "even the right password while blocked: {b}");
    let (s, _) = login_at(&app, &app.creds, "bf@example.com", GOOD, &[]).await;
    assert_eq!(s, 429, "the same pair is blocked for logins too");
    let elsewhere = client_from("127.0.0.2");
    let c = &app.creds.default_app;
    let (s, b) = send(elsewhere.post(app.url("/t/acme/oauth/token")).form(&[
        ("grant_type", "http://auth0.com/oauth/grant-type/password-realm"),
        ("realm", DB),
        ("username", "bf@example.com"),
        ("password", GOOD),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
    ]))
    .await;
    assert_eq!(s, 200, "the password did not change: {b}");
}

// ---- 5. POST /me/email ----

async fn email_change_waits_for_the_new_address_and_does_not_enumerate(app: TestApp) {
    let admin = app.token().await;
    let id = new_user(&app, &admin, "old@example.com", json!({})).await;
    let taken = new_user(&app, &admin, "taken@example.com", json!({})).await;
    let taken_before = admin_user(&app, &admin, &taken).await;
    let tok = user_token(&app, "old@example.com", None).await;
    let before = admin_user(&app, &admin, &id).await;
    let pending = |tok: String| {
        let app = &app;
        async move { me(app, Method::GET, "", &tok, None).await.1["pending_email"].clone() }
    };

    let (s, b) =
        me(&app, Method::POST, "/email", &tok, Some(json!({"email": "new@example.com", "password": "wrong horse battery"})))
            .await;
    assert_eq!((s, b["errorCode"].as_str()), (403, Some("invalid_password")), "{b}");
    let (s, _) = me(&app, Method::POST, "/email", &tok, Some(json!({"email": "new@example.com"}))).await;
    assert_eq!(s, 403, "the password is required");
    for bad in [
        json!({"email": "not an address", "password": GOOD}),
        json!({"email": "OLD@example.com", "password": GOOD}),
        json!({"email": "", "password": GOOD}),
        json!({"password": GOOD}),
        json!({"email": "new@example.com", "password": GOOD, "email_verified": true}),
    ] {
        let (s, b) = me(&app, Method::POST, "/email", &tok, Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad} → {b}");
    }
    assert_eq!(pending(tok.clone()).await, Value::Null);
    assert!(
        user_outbox(&app, &admin, &id).await.iter().all(|r| !r["template"].as_str().unwrap_or("").starts_with("change_email"))
    );
    assert_eq!(admin_user(&app, &admin, &id).await, before);

    let r = app
        .http
        .post(app.url("/t/acme/me/email"))
        .bearer_auth(&tok)
        .json(&json!({"email": "New@Example.com", "password": GOOD}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let free: Value = r.json().await.expect("json");
    assert_eq!(free, json!({"pending_email": "new@example.com"}));
    let (s, b) = me(&app, Method::GET, "", &tok, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        (b["pending_email"].as_str(), b["email"].as_str(), b["email_verified"].as_bool()),
        (Some("new@example.com"), Some("old@example.com"), Some(false))
    );
    let stored = admin_user(&app, &admin, &id).await;
    assert_eq!((stored["email"].as_str(), stored["email_verified"].as_bool()), (Some("old@example.com"), Some(false)));
    assert_eq!(stored["updated_at"], before["updated_at"], "nothing about the login changes yet");
    assert_eq!(login(&app, "new@example.com", GOOD).await, 403, "the new address does not log in yet");
    assert_eq!(login(&app, "old@example.com", GOOD).await, 200);
    assert!(user_logs(&app, &id).await.iter().any(|l| l.kind == "email_change_requested"));

    // Two mails: a confirmation link to the new address, a "this wasn't me" link to the old one.
    let rows = user_outbox(&app, &admin, &id).await;
    let verify: Vec<&Value> = rows.iter().filter(|r| r["template"] == "change_email_verify").collect();
    let notice: Vec<&Value> = rows.iter().filter(|r| r["template"] == "change_email_notice").collect();
    assert_eq!((verify.len(), notice.len()), (1, 1), "{rows:?}");
    assert_eq!(
        (verify[0]["recipient"].as_str(), notice[0]["recipient"].as_str()),
        (Some("new@example.com"), Some("old@example.com"))
    );
    let verify_eml = delivered(&app, verify[0]["id"].as_str().expect("id")).await;
    let notice_eml = delivered(&app, notice[0]["id"].as_str().expect("id")).await;
    let confirm_link = format!("{}/t/acme/u/email-change?ticket=", app.base);
    let cancel_link = format!("{}/t/acme/u/email-change/cancel?ticket=", app.base);
    assert!(verify_eml.contains("new@example.com") && verify_eml.contains(&confirm_link), "{verify_eml}");
    assert!(!verify_eml.contains(&cancel_link));
    assert!(notice_eml.contains("old@example.com") && notice_eml.contains(&cancel_link), "{notice_eml}");
    assert!(!notice_eml.contains(&confirm_link), "the old address never gets the confirmation link");

    // An address another user has: the same answer (no enumeration); it replaces the pending one.
    let (s, b) = me(&app, Method::POST, "/email", &tok, Some(json!({"email": "taken@example.com", "password": GOOD}))).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(keys(&b), keys(&free));
    assert_eq!(b, json!({"pending_email": "taken@example.com"}));
    assert_eq!(pending(tok.clone()).await, "taken@example.com");
    let (s, b) = me(&app, Method::POST, "/email", &tok, Some(json!({"email": "newer@example.com", "password": GOOD}))).await;
    assert_eq!((s, keys(&b)), (202, keys(&free)), "{b}");
    assert_eq!(pending(tok.clone()).await, "newer@example.com");
    assert_eq!(admin_user(&app, &admin, &taken).await, taken_before, "the other account is untouched");
    assert_eq!(admin_user(&app, &admin, &id).await["email"], "old@example.com");

    // A password change cancels the pending change.
    let (s, b) = me(&app, Method::POST, "/password", &tok, Some(json!({"current_password": GOOD, "new_password": NEW}))).await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(pending(tok.clone()).await, Value::Null);
    let acme = acme(&app).await;
    let uid = UserId::from_trusted(id.clone());
    let now = roster_domain::Timestamp::now();
    assert!(acme.live_ticket(&uid, roster_store::ticket_kind::EMAIL_CHANGE, now).await.expect("ticket").is_none());
    assert!(acme.live_ticket(&uid, roster_store::ticket_kind::EMAIL_CHANGE_CANCEL, now).await.expect("ticket").is_none());
    assert_eq!(admin_user(&app, &admin, &id).await["email"], "old@example.com");
}

// ---- 6. sessions ----

async fn sessions_are_listed_and_ended_per_user(app: TestApp) {
    let admin = app.token().await;
    allow_callback(&app, &admin).await;
    new_user(&app, &admin, "s1@example.com", json!({})).await;
    new_user(&app, &admin, "s2@example.com", json!({})).await;
    let t1 = user_token(&app, "s1@example.com", None).await;
    let t2 = user_token(&app, "s2@example.com", None).await;
    let r = app.http.get(app.url("/t/acme/me/sessions")).bearer_auth(&t1).send().await.expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.json::<Value>().await.expect("json"), json!({"sessions": []}), "token logins create no session");

    let (c1a, c1b, c2) = (
        browser_login(&app, "s1@example.com").await,
        browser_login(&app, "s1@example.com").await,
        browser_login(&app, "s2@example.com").await,
    );
    assert!(sso(&app, &c1a).await && sso(&app, &c1b).await && sso(&app, &c2).await);
    let list = |tok: String| {
        let app = &app;
        async move {
            let (s, b) = me(app, Method::GET, "/sessions", &tok, None).await;
            assert_eq!(s, 200, "{b}");
            b["sessions"].as_array().cloned().expect("sessions")
        }
    };
    let mine = list(t1.clone()).await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    for s in &mine {
        assert_eq!(
            keys(s),
            ["authenticated_at", "created_at", "current", "expires_at", "id", "ip", "last_seen_at", "user_agent"]
                .map(String::from)
                .to_vec()
        );
        assert_eq!((s["current"].as_bool(), s["ip"].as_str()), (Some(false), Some("127.0.0.1")));
        assert!(s["id"].as_str().is_some_and(|i| i.len() >= 20));
    }
    let theirs = list(t2.clone()).await;
    assert_eq!(theirs.len(), 1);
    let their_id = theirs[0]["id"].as_str().expect("id").to_owned();
    assert!(mine.iter().all(|s| s["id"] != their_id.as_str()));

    // Another user's session id, or a made-up one, is not found and nothing ends.
    let (s, b) = me(&app, Method::DELETE, &format!("/sessions/{their_id}"), &t1, None).await;
    assert_eq!((s, b["errorCode"].as_str()), (404, Some("inexistent_session")), "{b}");
    let (s, _) =
        me(&app, Method::DELETE, &format!("/sessions/{}", roster_domain::secret::random_alphanumeric(43)), &t1, None).await;
    assert_eq!(s, 404);
    assert_eq!(list(t2.clone()).await.len(), 1);
    assert!(sso(&app, &c2).await);
    // A read-only token cannot end sessions.
    let ro = user_token(&app, "s1@example.com", Some("read:current_user")).await;
    assert_eq!(me(&app, Method::DELETE, &format!("/sessions/{}", mine[0]["id"].as_str().expect("id")), &ro, None).await.0, 403);
    assert_eq!(me(&app, Method::DELETE, "/sessions", &ro, None).await.0, 403);
    assert_eq!(list(t1.clone()).await.len(), 2);

    // One of mine: exactly one browser is signed out.
    let (s, _) = me(&app, Method::DELETE, &format!("/sessions/{}", mine[0]["id"].as_str().expect("id")), &t1, None).await;
    assert_eq!(s, 204);
    let left = list(t1.clone()).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], mine[1]["id"]);
    assert_eq!([sso(&app, &c1a).await, sso(&app, &c1b).await].iter().filter(|b| **b).count(), 1);
    assert_eq!(
        me(&app, Method::DELETE, &format!("/sessions/{}", mine[0]["id"].as_str().expect("id")), &t1, None).await.0,
        404,
        "already ended"
    );
    // All of mine; the other user's session lives on.
    assert_eq!(me(&app, Method::DELETE, "/sessions", &t1, None).await.0, 204);
    assert!(list(t1.clone()).await.is_empty());
    assert!(!sso(&app, &c1a).await && !sso(&app, &c1b).await);
    assert_eq!(list(t2.clone()).await.len(), 1);
    assert!(sso(&app, &c2).await);
    assert_eq!(me(&app, Method::GET, "/sessions", &admin, None).await.0, 403, "a machine token has no sessions");
}

// ---- 7. terms ----

async fn terms_are_accepted_by_version(app: TestApp) {
    let admin = app.token().await;
    let id = new_user(&app, &admin, "terms@example.com", json!({"app_metadata": {"plan": "pro"}})).await;
    let tok = user_token(&app, "terms@example.com", None).await;
    let (s, b) = me(&app, Method::POST, "/terms", &tok, Some(json!({"version": "2026-11"}))).await;
    assert_eq!(s, 400, "no terms published: {b}");
    assert_eq!(me(&app, Method::GET, "", &tok, None).await.1["terms"], Value::Null);

    let (s, b) = mgmt(
        &app,
        Method::PATCH,
        "/tenants/settings",
        &admin,
        Some(json!({"account_portal": {"terms": {"version": "2026-11", "url": "https://example.com/terms"}}})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (_, b) = me(&app, Method::GET, "", &tok, None).await;
    assert_eq!(b["terms"], json!({"version": "2026-11", "url": "https://example.com/terms", "accepted": false}));
    assert_eq!(b["terms_accepted"], Value::Null);

    for wrong in [
        json!({"version": "2026-10"}),
        json!({"version": ""}),
        json!({}),
        json!({"version": "2026-11", "accepted_at": "2000-01-01"}),
    ] {
        let (s, b) = me(&app, Method::POST, "/terms", &tok, Some(wrong.clone())).await;
        assert_eq!(s, 400, "{wrong} → {b}");
    }
    assert!(admin_user(&app, &admin, &id).await["app_metadata"].get("terms_accepted").is_none());
    assert_eq!(me(&app, Method::POST, "/terms", &admin, Some(json!({"version": "2026-11"}))).await.0, 403);

    let (s, b) = me(&app, Method::POST, "/terms", &tok, Some(json!({"version": "2026-11"}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["terms"]["accepted"], true);
    assert_eq!(b["terms_accepted"]["version"], "2026-11");
    let stored = admin_user(&app, &admin, &id).await;
    assert_eq!(stored["app_metadata"]["terms_accepted"]["version"], "2026-11");
    assert!(stored["app_metadata"]["terms_accepted"]["accepted_at"].is_string());
    assert_eq!(stored["app_metadata"]["plan"], "pro", "the rest of app_metadata is kept");
    let ev: Vec<LogRecord> = user_logs(&app, &id).await.into_iter().filter(|l| l.kind == "terms_accepted").collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].details["version"], "2026-11");
    assert_eq!(ev[0].details["url"], "https://example.com/terms");

    // A new version must be accepted again; the old record stays until then.
    let (s, _) = mgmt(
        &app,
        Method::PATCH,
        "/tenants/settings",
        &admin,
        Some(json!({"account_portal": {"terms": {"version": "2027-01", "url": "https://example.com/terms2"}}})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, b) = me(&app, Method::GET, "", &tok, None).await;
    assert_eq!((b["terms"]["accepted"].as_bool(), b["terms_accepted"]["version"].as_str()), (Some(false), Some("2026-11")));
    assert_eq!(me(&app, Method::POST, "/terms", &tok, Some(json!({"version": "2026-11"}))).await.0, 400, "no longer current");
    assert_eq!(me(&app, Method::POST, "/terms", &tok, Some(json!({"version": "2027-01"}))).await.0, 200);
    assert_eq!(admin_user(&app, &admin, &id).await["app_metadata"]["terms_accepted"]["version"], "2027-01");
}

// ---- 8. GET /me/export ----

async fn export_is_an_attachment_with_everything_about_the_user(app: TestApp) {
    let admin = app.token().await;
    allow_callback(&app, &admin).await;
    let id =
        new_user(&app, &admin, "exp@example.com", json!({"user_metadata": {"language": "fr"}, "app_metadata": {"plan": "pro"}}))
            .await;
    let other = new_user(&app, &admin, "noise@example.com", json!({})).await;
    assert_eq!(login(&app, "noise@example.com", GOOD).await, 200);
    let tok = user_token(&app, "exp@example.com", None).await;
    assert_eq!(me(&app, Method::PATCH, "", &tok, Some(json!({"name": "Ex Port"}))).await.0, 200);
    browser_login(&app, "exp@example.com").await;

    let r = app.http.get(app.url("/t/acme/me/export")).bearer_auth(&tok).send().await.expect("export");
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h["content-disposition"].to_str().expect("cd").starts_with("attachment"), "{h:?}");
    assert!(h["content-type"].to_str().expect("ct").starts_with("application/json"));
    assert_eq!(h["cache-control"], "no-store");
    let data: Value = r.json().await.expect("json");
    assert_eq!(
        keys(&data),
        ["app_metadata", "exported_at", "identities", "logs", "profile", "sessions", "tenant", "user_metadata"]
            .map(String::from)
            .to_vec()
    );
    assert_eq!(data["tenant"], "acme");
    assert_eq!(
        (data["profile"]["user_id"].as_str(), data["profile"]["email"].as_str()),
        (Some(id.as_str()), Some("exp@example.com"))
    );
    assert_eq!(data["profile"]["name"], "Ex Port");
    assert_eq!(data["user_metadata"], json!({"language": "fr"}));
    assert_eq!(data["app_metadata"], json!({"plan": "pro"}), "everything stored, not only what the portal shows");
    assert_eq!(data["identities"][0]["provider"], "auth0");
    assert_eq!(data["identities"][0]["connection"], DB);
    assert_eq!(data["sessions"].as_array().map(Vec::len), Some(1), "{}", data["sessions"]);
    let logs = data["logs"].as_array().expect("logs");
    assert!(!logs.is_empty());
    assert!(logs.iter().all(|l| l["user_id"] == id.as_str()), "only the user's own events");
    let kinds: Vec<&str> = logs.iter().filter_map(|l| l["type"].as_str()).collect();
    assert!(kinds.contains(&"s") && kinds.contains(&"sapi"), "{kinds:?}");
    let text = data.to_string();
    assert!(!text.contains(&other) && !text.contains("noise@example.com"));
    assert!(!text.contains("argon2") && !text.contains("$2b$"), "no password material");
    assert!(user_logs(&app, &id).await.iter().any(|l| l.kind == "data_export"), "the export is logged");
    assert_eq!(me(&app, Method::GET, "/export", &admin, None).await.0, 403);
    assert_eq!(send(app.http.get(app.url("/t/acme/me/export"))).await.0, 401);
}

// ---- 9. DELETE /me ----

async fn deletion_reauthenticates_and_erases_every_trace(app: TestApp) {
    let admin = app.token().await;
    allow_callback(&app, &admin).await;
    let email = "gone@example.com";
    // A failed login with the address, typed in another case, before the account existed.
    let (s, _) = {
        let c = &app.creds.default_app;
        send(client_from("127.0.0.3").post(app.url("/t/acme/oauth/token")).form(&[
            ("grant_type", "http://auth0.com/oauth/grant-type/password-realm"),
            ("realm", DB),
            ("username", "Gone@Example.COM"),
            ("password", "wrong horse battery"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
        ]))
        .await
    };
    assert_eq!(s, 403);
    let id = new_user(&app, &admin, email, json!({"user_metadata": {"language": "fr"}})).await;
    let hex = id.strip_prefix("auth0|").expect("auth0 id").to_owned();
    let keep = new_user(&app, &admin, "stays@example.com", json!({})).await;

    // Leave traces everywhere: a password change (history and a mail), logins, a refresh token, a
    // session, a pending email change (tickets and mails), a verification job, a failed login counted
    // from another address.
    let tok = user_token(&app, email, None).await;
    assert_eq!(
        me(&app, Method::POST, "/password", &tok, Some(json!({"current_password": GOOD, "new_password": NEW}))).await.0,
        204
    );
    let (s, _) = mgmt(&app, Method::PATCH, &format!("/users/{}", enc(&id)), &admin, Some(json!({"password": GOOD}))).await;
    assert_eq!(s, 200);
    let (s, t) = login_at(&app, &app.creds, email, GOOD, &[("scope", "openid offline_access")]).await;
    assert_eq!(s, 200, "{t}");
    assert!(t["refresh_token"].is_string());
    browser_login(&app, email).await;
    assert_eq!(me(&app, Method::POST, "/email", &tok, Some(json!({"email": "next@example.com", "password": GOOD}))).await.0, 202);
    let (s, b) = mgmt(&app, Method::POST, "/jobs/verification-email", &admin, Some(json!({"user_id": id}))).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(login_at(&app, &app.creds, "stays@example.com", GOOD, &[]).await.0, 200);
    let keep_before = admin_user(&app, &admin, &keep).await;
    let (s, _) = {
        let http = client_from("127.0.0.2");
        let c = &app.creds.default_app;
        send(http.post(app.url("/t/acme/oauth/token")).form(&[
            ("grant_type", "http://auth0.com/oauth/grant-type/password-realm"),
            ("realm", DB),
            ("username", email),
            ("password", "wrong horse battery"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
        ]))
        .await
    };
    assert_eq!(s, 403);
    let del_tok = user_token(&app, email, Some("read:current_user delete:current_user")).await;
    let del_scope = claims(&del_tok)["scope"].as_str().expect("scope").to_owned();
    assert!(del_scope.contains("delete:current_user") && del_scope.contains("read:current_user"), "{del_scope}");

    // The scan sees the user everywhere before the deletion (so its silence afterwards means something).
    let db = raw_db(&app).await;
    let seen: Vec<String> = mentions(&db, &hex, None).await.into_iter().map(|(c, _)| c).collect();
    for c in [
        "users.user_id",
        "credentials.user_id",
        "sessions.user_id",
        "refresh_tokens.user_id",
        "tickets.user_id",
        "outbox.user_id",
        "jobs.user_id",
        "password_history.user_id",
        "logs.user_id",
        "attack_counters.user_id",
    ] {
        assert!(seen.iter().any(|s| s == c), "{c} not seen before the deletion: {seen:?}");
    }
    let seen: Vec<String> = mentions(&db, email, None).await.into_iter().map(|(c, _)| c).collect();
    for c in ["users.email", "outbox.recipient", "logs.user_name", "attack_counters.identifier"] {
        assert!(seen.iter().any(|s| s == c), "{c} not seen before the deletion: {seen:?}");
    }
    let logged_before: Vec<String> = user_logs(&app, &id).await.into_iter().map(|l| l.log_id).collect();
    assert!(logged_before.len() >= 5, "{logged_before:?}");

    // Refusals: the default token lacks the scope; confirm is required; the password is checked.
    let (s, b) = me(&app, Method::DELETE, "", &tok, Some(json!({"password": GOOD, "confirm": true}))).await;
    assert_eq!((s, b["errorCode"].as_str()), (403, Some("insufficient_scope")), "{b}");
    for body in
        [json!({"password": GOOD}), json!({"password": GOOD, "confirm": false}), json!({"password": GOOD, "confirm": "yes"})]
    {
        let (s, b) = me(&app, Method::DELETE, "", &del_tok, Some(body.clone())).await;
        assert_eq!(s, 400, "{body} → {b}");
    }
    let (s, b) = me(&app, Method::DELETE, "", &del_tok, Some(json!({"password": "wrong horse battery", "confirm": true}))).await;
    assert_eq!((s, b["errorCode"].as_str()), (403, Some("invalid_password")), "{b}");
    let (s, _) = me(&app, Method::DELETE, "", &del_tok, Some(json!({"confirm": true}))).await;
    assert_eq!(s, 403);
    assert_eq!(me(&app, Method::DELETE, "", &admin, Some(json!({"password": GOOD, "confirm": true}))).await.0, 403);
    assert_eq!(admin_user(&app, &admin, &id).await["email"], email, "still there");
    assert_eq!(me(&app, Method::GET, "", &del_tok, None).await.0, 200);

    let (s, b) = me(&app, Method::DELETE, "", &del_tok, Some(json!({"password": GOOD, "confirm": true}))).await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = mgmt(&app, Method::GET, &format!("/users/{}", enc(&id)), &admin, None).await;
    assert_eq!((s, b["errorCode"].as_str()), (404, Some("inexistent_user")), "{b}");
    assert_eq!(me(&app, Method::GET, "", &del_tok, None).await.0, 401);
    assert_eq!(me(&app, Method::GET, "", &tok, None).await.0, 401);
    assert_eq!(me(&app, Method::DELETE, "", &del_tok, Some(json!({"password": GOOD, "confirm": true}))).await.0, 401);
    assert_eq!(admin_user(&app, &admin, &keep).await, keep_before, "the other user is untouched");

    // The confirmation goes to the address the account had, and is the only row that names it.
    let rows = outbox(&app, &admin, "?per_page=100").await;
    let confirm: Vec<&Value> = rows.iter().filter(|r| r["template"] == "account_deleted").collect();
    assert_eq!(confirm.len(), 1, "{rows:?}");
    assert_eq!((confirm[0]["recipient"].as_str(), confirm[0]["user_id"].as_str()), (Some(email), None));
    let confirm_id = confirm[0]["id"].as_str().expect("id").to_owned();
    assert!(delivered(&app, &confirm_id).await.contains(email));
    assert!(
        rows.iter().all(|r| r["id"] == confirm_id.as_str() || (r["recipient"] != email && r["user_id"] != id.as_str())),
        "{rows:?}"
    );
    let leftovers = mentions(&db, &hex, None).await;
    assert!(leftovers.is_empty(), "the user id is still stored in {leftovers:?}");
    let leftovers = mentions(&db, email, Some(&confirm_id)).await;
    assert!(leftovers.is_empty(), "the address is still stored in {leftovers:?}");
    assert!(
        mentions(&db, email, None).await.iter().all(|(c, n)| c.starts_with("outbox.") && *n == 1),
        "only the confirmation row"
    );
    // A login attempt after the erasure is a new event about an unknown address.
    assert_eq!(login(&app, email, GOOD).await, 403);

    // The log keeps what happened under one pseudonym, without name, address or user agent.
    let all = acme(&app).await.logs(None, 1000).await.expect("logs");
    let mine: Vec<&LogRecord> = all.iter().filter(|l| logged_before.contains(&l.log_id)).collect();
    assert_eq!(mine.len(), logged_before.len(), "events are pseudonymized, not deleted");
    let pseudonym = mine[0].user_id.as_ref().map(|u| u.as_str().to_owned()).expect("a pseudonym");
    assert!(pseudonym.starts_with("deleted|") && pseudonym.len() > "deleted|".len() + 10, "{pseudonym}");
    for l in &mine {
        assert_eq!(l.user_id.as_ref().map(UserId::as_str), Some(pseudonym.as_str()), "{l:?}");
        assert_eq!((l.user_name.as_deref(), l.ip.as_deref(), l.user_agent.as_deref()), (None, None, None), "{l:?}");
    }
    let sdu: Vec<&LogRecord> = all.iter().filter(|l| l.kind == "sdu").collect();
    assert_eq!(sdu.len(), 1);
    assert_eq!(sdu[0].user_id.as_ref().map(UserId::as_str), Some(pseudonym.as_str()));
    assert!(user_logs(&app, &id).await.is_empty());
    assert!(
        all.iter().any(|l| l.user_id.as_ref().map(UserId::as_str) == Some(keep.as_str())),
        "other users' events keep their ids"
    );
}

/// Erasure also covers the address the user asked to move to (personal data of the same person): the
/// `email_change_requested` event must not keep it in `details.new_email` after the deletion.
async fn deletion_erases_the_address_a_pending_change_named(app: TestApp) {
    let admin = app.token().await;
    let id = new_user(&app, &admin, "mover@example.com", json!({})).await;
    let tok = user_token(&app, "mover@example.com", None).await;
    let (s, _) = me(&app, Method::POST, "/email", &tok, Some(json!({"email": "moving-to@example.com", "password": GOOD}))).await;
    assert_eq!(s, 202);
    let db = raw_db(&app).await;
    assert!(!mentions(&db, "moving-to@example.com", None).await.is_empty(), "stored before the deletion");
    let del = user_token(&app, "mover@example.com", Some("delete:current_user")).await;
    let (s, b) = me(&app, Method::DELETE, "", &del, Some(json!({"password": GOOD, "confirm": true}))).await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(mgmt(&app, Method::GET, &format!("/users/{}", enc(&id)), &admin, None).await.0, 404);
    let leftovers = mentions(&db, "moving-to@example.com", None).await;
    assert!(leftovers.is_empty(), "the requested address is still stored in {leftovers:?}");
}

/// The only way a user deletes their account is `DELETE /me` with their password: a token holding
/// `delete:current_user` (which a refresh token renews without any password) must not delete through
/// the Management API's `DELETE /users/{id}`.
async fn deletion_needs_the_password_whatever_the_route(app: TestApp) {
    let admin = app.token().await;
    let id = new_user(&app, &admin, "keepme@example.com", json!({})).await;
    let aud = app.creds.management_audience.clone();
    let (s, t) = login_at(
        &app,
        &app.creds,
        "keepme@example.com",
        GOOD,
        &[("audience", aud.as_str()), ("scope", "openid offline_access read:current_user delete:current_user")],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    // A refreshed token: no password was entered for it.
    let (s, r) = send(app.http.post(app.url("/t/acme/oauth/token")).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", t["refresh_token"].as_str().expect("refresh token")),
        ("client_id", app.creds.default_app.client_id.as_str()),
        ("client_secret", app.creds.default_app.client_secret.as_str()),
    ]))
    .await;
    assert_eq!(s, 200, "{r}");
    let tok = r["access_token"].as_str().expect("access token").to_owned();
    assert!(claims(&tok)["scope"].as_str().expect("scope").split(' ').any(|s| s == "delete:current_user"));
    let (s, b) = mgmt(&app, Method::DELETE, &format!("/users/{}", enc(&id)), &tok, None).await;
    assert_eq!(s, 403, "DELETE /api/v2/users/{{own id}} without the password: {b}");
    assert_eq!(admin_user(&app, &admin, &id).await["email"], "keepme@example.com");
    assert_eq!(me(&app, Method::GET, "", &tok, None).await.0, 200);
}

// ---- 10. IDOR ----

/// A small deterministic generator (xorshift64*), seeded per run and printed for reproduction.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

async fn a_token_only_ever_reaches_its_own_account(app: TestApp) {
    const N: usize = 100;
    let admin = app.token().await;
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        ids.push(new_user(&app, &admin, &format!("idor{i}@example.com"), json!({"user_metadata": {"language": "en"}})).await);
    }
    let mut tokens = Vec::with_capacity(N);
    for chunk in (0..N).collect::<Vec<_>>().chunks(10) {
        let batch = futures::future::join_all(chunk.iter().map(|i| {
            let email = format!("idor{i}@example.com");
            let app = &app;
            async move { user_token(app, &email, None).await }
        }))
        .await;
        tokens.extend(batch);
    }
    let mut before = Vec::with_capacity(N);
    for id in &ids {
        before.push(admin_user(&app, &admin, id).await);
    }
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_nanos() as u64 | 1;
    eprintln!("idor seed: {seed}");
    let mut rng = Rng(seed);
    let mut patched = [false; N];
    for round in 0..100 {
        let a = rng.below(N);
        let mut b = rng.below(N);
        if b == a {
            b = (a + 1) % N;
        }
        let (tok, target) = (&tokens[a], enc(&ids[b]));
        let ctx = format!("round {round}: user {a} → user {b} (seed {seed})");
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"user_metadata": {"language": "fr"}}))),
            (Method::PATCH, Some(json!({"email": "stolen@example.com"}))),
            (Method::DELETE, None),
        ] {
            let (s, r) = mgmt(&app, method.clone(), &format!("/users/{target}"), tok, body).await;
            assert!(s == 403 || s == 404, "{ctx}: {method} /users/{{b}} → {s} {r}");
        }
        for path in [
            format!("/users-by-email?email=idor{b}%40example.com"),
            format!("/user-blocks/{target}"),
            format!("/emails/outbox?user_id={target}"),
            format!("/users?q=user_id:%22{target}%22"),
        ] {
            let (s, r) = mgmt(&app, Method::GET, &path, tok, None).await;
            assert!(s == 403 || s == 404, "{ctx}: GET {path} → {s} {r}");
        }
        // /me names the token's user, whoever else is asked about.
        let (s, mine) = me(&app, Method::GET, "", tok, None).await;
        assert_eq!((s, mine["user_id"].as_str()), (200, Some(ids[a].as_str())), "{ctx}");
        let (s, mine) = me(&app, Method::PATCH, "", tok, Some(json!({"nickname": format!("nick-{a}")}))).await;
        assert_eq!((s, mine["user_id"].as_str()), (200, Some(ids[a].as_str())), "{ctx}");
        patched[a] = true;
        let (s, _) = me(&app, Method::PATCH, "", tok, Some(json!({"user_id": ids[b]}))).await;
        assert_eq!(s, 400, "{ctx}");
    }
    // Every account is exactly as before, except its own nickname where its own token set it.
    for (i, id) in ids.iter().enumerate() {
        let now = admin_user(&app, &admin, id).await;
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("nickname");
                o.remove("updated_at");
            }
            v
        };
        assert_eq!(strip(&now), strip(&before[i]), "user {i}");
        if patched[i] {
            assert_eq!(now["nickname"], format!("nick-{i}"), "user {i}");
        } else {
            assert_eq!(
                (now["nickname"].clone(), now["updated_at"].clone()),
                (before[i]["nickname"].clone(), before[i]["updated_at"].clone()),
                "user {i}"
            );
        }
    }
    let (s, _) = mgmt(&app, Method::GET, "/users?per_page=5", &tokens[0], None).await;
    assert_eq!(s, 403, "a user token cannot list users");
}
