//! Mail through the real server: the email provider and template endpoints, the outbox listing and
//! retry, and complete delivered messages (file transport), on SQLite and PostgreSQL. The SMTP path
//! against a real SMTP server is covered by `tests/sdk/test_mail.py` (aiosmtpd).

use roster_testkit::{Backend, TestApp, enc, on_both_backends};
use serde_json::{Value, json};

on_both_backends! {
    provider => provider_lifecycle;
    templates => template_lifecycle;
    delivery => signup_mail_is_rendered_and_delivered;
    dead => undeliverable_mail_dies_and_is_retried_on_demand;
    scopes => mail_routes_need_their_scopes;
}

async fn call(app: &TestApp, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.http.request(method, app.api(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn signup(app: &TestApp, email: &str, extra: Value) -> Value {
    let mut body = json!({
        "client_id": app.creds.default_app.client_id,
        "email": email,
        "password": "correct horse battery",
        "connection": "Username-Password-Authentication",
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let resp = app.http.post(app.url("/t/acme/dbconnections/signup")).json(&body).send().await.expect("signup");
    assert_eq!(resp.status(), 200, "signup {email}");
    resp.json().await.expect("json")
}

/// Poll the outbox until `pred` holds for the rows of `query` (20 s at most).
async fn wait_outbox(app: &TestApp, token: &str, query: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut rows = Vec::new();
    for _ in 0..400 {
        let (status, body) = call(app, reqwest::Method::GET, &format!("/emails/outbox{query}"), token, None).await;
        assert_eq!(status, 200, "{body}");
        rows = body.as_array().cloned().unwrap_or_default();
        if pred(&rows) {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("outbox never reached the expected state: {rows:?}");
}

async fn provider_lifecycle(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    let (s, b) = call(&app, Method::GET, "/emails/provider", &token, None).await;
    assert_eq!((s, b["errorCode"].as_str()), (404, Some("inexistent_email_provider")));

    // Refused: another provider, missing or malformed credentials, unknown settings.
    let good = json!({"smtp_host": "mail.example.com", "smtp_port": 587, "smtp_user": "mailer", "smtp_pass": "s3cret-pass"});
    for bad in [
        json!({"name": "sendgrid", "credentials": {"api_key": "x"}}),
        json!({"name": "smtp", "credentials": {"smtp_port": 25}}),
        json!({"name": "smtp", "credentials": {"smtp_host": "h", "smtp_port": "25"}}),
        json!({"name": "smtp", "credentials": good, "settings": {"tls": "sometimes"}}),
        json!({"name": "smtp", "credentials": good, "default_from_address": "not an address"}),
        json!({"name": "smtp", "credentials": good, "surprise": 1}),
    ] {
        let (s, b) = call(&app, Method::POST, "/emails/provider", &token, Some(bad.clone())).await;
        assert_eq!((s, b["statusCode"].as_u64()), (400, Some(400)), "{bad} → {b}");
    }

    let create = json!({"name": "smtp", "credentials": good, "default_from_address": "Acme <no-reply@acme.example>"});
    let (s, created) = call(&app, Method::POST, "/emails/provider", &token, Some(create.clone())).await;
    assert_eq!(s, 201, "{created}");
    let expected = json!({
        "name": "smtp", "enabled": true, "default_from_address": "Acme <no-reply@acme.example>",
        "credentials": {"smtp_host": "mail.example.com", "smtp_port": 587, "smtp_user": "mailer"}, "settings": {},
    });
    assert_eq!(created, expected, "the password is never returned");
    let (s, _) = call(&app, Method::POST, "/emails/provider", &token, Some(create)).await;
    assert_eq!(s, 409);
    let (s, got) = call(&app, Method::GET, "/emails/provider", &token, None).await;
    assert_eq!((s, &got), (200, &expected));

    // At rest: sealed, neither the password nor the host readable; opened with the node's master key.
    let tenant = app.store.tenant_by_name(&roster_domain::TenantName::parse("acme").expect("n")).await.expect("r").expect("e");
    let stored = app.store.tenant(tenant.id.clone()).email_provider().await.expect("read").expect("exists");
    assert!(!stored.credentials.contains("s3cret-pass") && !stored.credentials.contains("mail.example.com"));
    let key = roster_auth::MasterKey::load_or_create(&app.data_dir().join("master.key")).expect("key");
    let open = |sealed: &str| roster_mail::provider::open_credentials(&key, &tenant.id, sealed).expect("opens");
    assert_eq!(open(&stored.credentials)["smtp_pass"], "s3cret-pass");

    // PATCH merges credentials: the password stays unless sent; null removes a key.
    let (s, patched) = call(
        &app,
        Method::PATCH,
        "/emails/provider",
        &token,
        Some(json!({"credentials": {"smtp_port": 2525, "smtp_user": null}, "enabled": false, "settings": {"tls": "implicit"}})),
    )
    .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["credentials"], json!({"smtp_host": "mail.example.com", "smtp_port": 2525}));
    assert_eq!((patched["enabled"].as_bool(), patched["settings"]["tls"].as_str()), (Some(false), Some("implicit")));
    let stored = app.store.tenant(tenant.id.clone()).email_provider().await.expect("read").expect("exists");
    assert_eq!(open(&stored.credentials)["smtp_pass"], "s3cret-pass", "kept");
    let (s, _) = call(&app, Method::PATCH, "/emails/provider", &token, Some(json!({"name": "ses"}))).await;
    assert_eq!(s, 400);

    let (s, _) = call(&app, Method::DELETE, "/emails/provider", &token, None).await;
    assert_eq!(s, 204);
    let (s, _) = call(&app, Method::DELETE, "/emails/provider", &token, None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&app, Method::PATCH, "/emails/provider", &token, Some(json!({"enabled": true}))).await;
    assert_eq!(s, 404);
}

async fn template_lifecycle(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    let (s, b) = call(&app, Method::GET, "/email-templates/verify_email", &token, None).await;
    assert_eq!((s, b["errorCode"].as_str()), (404, Some("inexistent_email_template")), "default until customized");

    let tpl = json!({
        "template": "verify_email", "syntax": "liquid", "enabled": true,
        "from": "{{ friendly_name }} <support@acme.example>",
        "subject": "{% if user.user_metadata.lang == 'fr' %}Bienvenue{% else %}Welcome{% endif %}",
        "body": "<p>Hello {{ user.name }}</p>",
        "resultUrl": "https://app.example/verified", "urlLifetimeInSeconds": 3600,
    });
    // Every required property; a known name; Liquid that parses (the error names the line).
    for missing in ["template", "body", "from", "subject", "syntax", "enabled"] {
        let mut t = tpl.clone();
        t.as_object_mut().expect("object").remove(missing);
        let (s, b) = call(&app, Method::POST, "/email-templates", &token, Some(t)).await;
        assert_eq!(s, 400, "{missing}: {b}");
        assert!(b["message"].as_str().unwrap_or_default().contains(missing), "{b}");
    }
    let mut broken = tpl.clone();
    broken["body"] = json!("<p>one</p>\n<p>two</p>\n{% if user.name %}\n<p>never closed</p>");
    let (s, b) = call(&app, Method::POST, "/email-templates", &token, Some(broken)).await;
    assert_eq!(s, 400);
    assert!(b["message"].as_str().unwrap_or_default().contains("line 3"), "the line is named: {b}");
    for (field, value) in [
        ("template", json!("nope_email")),
        ("syntax", json!("handlebars")),
        ("from", json!("{{ friendly_name }}")),
        ("resultUrl", json!("javascript:alert(1)")),
        ("body", json!("{{ user.name | no_such_filter }}")),
    ] {
        let mut t = tpl.clone();
        t[field] = value;
        let (s, b) = call(&app, Method::POST, "/email-templates", &token, Some(t)).await;
        assert_eq!(s, 400, "{field}: {b}");
    }

    let (s, created) = call(&app, Method::POST, "/email-templates", &token, Some(tpl.clone())).await;
    assert_eq!(s, 201, "{created}");
    let mut expected = tpl.clone();
    expected["includeEmailInRedirect"] = json!(true);
    assert_eq!(created, expected);
    let (s, _) = call(&app, Method::POST, "/email-templates", &token, Some(tpl.clone())).await;
    assert_eq!(s, 409);
    let (s, got) = call(&app, Method::GET, "/email-templates/verify_email", &token, None).await;
    assert_eq!((s, &got), (200, &expected));

    let (s, b) = call(
        &app,
        Method::PATCH,
        "/email-templates/verify_email",
        &token,
        Some(json!({"subject": "Hi {{ user.name }}", "resultUrl": null})),
    )
    .await;
    assert_eq!(
        (s, b["subject"].as_str(), &b["resultUrl"], b["body"].as_str()),
        (200, Some("Hi {{ user.name }}"), &Value::Null, Some("<p>Hello {{ user.name }}</p>"))
    );
    let (s, _) = call(&app, Method::PATCH, "/email-templates/reset_email", &token, Some(json!({"subject": "x"}))).await;
    assert_eq!(s, 404, "PATCH needs an existing template");

    // PUT sets wholesale (and creates); the name in the body must match the path.
    let mut put = tpl.clone();
    put["template"] = json!("reset_email");
    put["enabled"] = json!(false);
    let (s, b) = call(&app, Method::PUT, "/email-templates/reset_email", &token, Some(put.clone())).await;
    assert_eq!((s, b["enabled"].as_bool(), &b["resultUrl"]), (200, Some(false), &tpl["resultUrl"]));
    let (s, _) = call(&app, Method::PUT, "/email-templates/welcome_email", &token, Some(put)).await;
    assert_eq!(s, 400);
}

/// A signup's verification mail, rendered in the user's language from a customized template, with
/// user input kept as text, delivered as an `.eml` file; the outbox records it.
async fn signup_mail_is_rendered_and_delivered(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    let tpl = json!({
        "template": "verify_email", "syntax": "liquid", "enabled": true,
        "from": "{{ friendly_name }} Support <support@acme.example>",
        "subject": "{% if user.user_metadata.lang == 'fr' %}Bonjour{% else %}Hello{% endif %} {{ user.name }}",
        "body": "<p>{% if user.user_metadata.lang == 'fr' %}Bonjour{% else %}Hello{% endif %} {{ user.name }}</p><p>{{ application.name }}</p>",
    });
    let (s, b) = call(&app, Method::POST, "/email-templates", &token, Some(tpl)).await;
    assert_eq!(s, 201, "{b}");
    let hostile = "{{ 7*7 }} {% include 'x' %} <script>alert(1)</script>";
    let user = signup(&app, "marie@example.com", json!({"name": hostile, "user_metadata": {"lang": "fr"}})).await;
    let files = app.wait_for_mail(1).await;
    assert_eq!(files.len(), 1);
    let (name, eml) = &files[0];
    let user_id = format!("auth0|{}", user["_id"].as_str().expect("_id"));
    let rows = wait_outbox(&app, &token, &format!("?user_id={}", enc(&user_id)), |r| {
        r.first().is_some_and(|m| m["status"] == "delivered")
    })
    .await;
    let id = rows[0]["id"].as_str().expect("id");
    assert!(name.ends_with(&format!("{id}.eml")), "the file is named after the row: {name}");
    assert_eq!((rows[0]["template"].as_str(), rows[0]["attempts"].as_i64()), (Some("verify_email"), Some(1)));
    assert_eq!(rows[0]["recipient"], "marie@example.com");

    let host = app.base.trim_start_matches("http://").split(':').next().unwrap_or_default().to_owned();
    assert!(eml.contains(&format!("Message-ID: <{id}@{host}>")), "stable Message-ID from the row");
    assert!(eml.contains("To: marie@example.com"));
    let html = eml.split("Content-Type: text/html").nth(1).expect("an HTML part");
    assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"), "HTML in a value is escaped in the HTML part");
    let text = eml.split("Content-Type: text/plain").nth(1).and_then(|t| t.split("Content-Type: text/html").next());
    assert!(text.expect("a text part").contains("<script>alert(1)</script>"), "and kept as typed in the text part");
    // Snapshot of the whole message, with what changes per run redacted.
    let boundary = eml.split("boundary=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("none").to_owned();
    let redacted = eml
        .replace(id, "[MSG_ID]")
        .replace(&host, "[HOST]")
        .replace(&boundary, "[BOUNDARY]")
        .lines()
        .map(|l| if l.starts_with("Date: ") { "Date: [DATE]" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    // On the redacted text: a random Message-ID, boundary or Date may well contain "49".
    assert!(redacted.contains("Bonjour {{ 7*7 }}") && !redacted.contains("49"), "template syntax in a value is not evaluated");
    if app.backend == Backend::Sqlite {
        insta::assert_snapshot!("verify_email_custom_fr", redacted);
    }
}

/// A mail the server cannot deliver is retried, then dead, listed with its error, and sent once an
/// admin retries it after fixing the cause.
async fn undeliverable_mail_dies_and_is_retried_on_demand(app: TestApp) {
    use reqwest::Method;
    let token = app.token().await;
    // A port nothing listens on: every attempt fails (transiently), so the row dies after max attempts.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let (s, b) = call(
        &app,
        Method::POST,
        "/emails/provider",
        &token,
        Some(json!({"name": "smtp", "credentials": {"smtp_host": "127.0.0.1", "smtp_port": closed, "smtp_user": "u", "smtp_pass": "pw-never-shown"}})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    signup(&app, "bounce@example.com", json!({})).await;
    let rows = wait_outbox(&app, &token, "?status=dead", |r| !r.is_empty()).await;
    let row = &rows[0];
    assert_eq!(row["attempts"].as_i64(), Some(10), "default max attempts");
    let error = row["last_error"].as_str().expect("last_error");
    assert!(!error.is_empty() && !error.contains("pw-never-shown"), "{error}");
    assert!(app.mail_files().is_empty());
    let id = row["id"].as_str().expect("id").to_owned();

    // Not dead → 409; unknown → 404.
    let (s, _) = call(&app, Method::POST, "/emails/outbox/msg_nope/retry", &token, None).await;
    assert_eq!(s, 404);
    // Fix the cause (back to the server's transport: files), then retry: delivered exactly once.
    let (s, _) = call(&app, Method::DELETE, "/emails/provider", &token, None).await;
    assert_eq!(s, 204);
    let (s, b) = call(&app, Method::POST, &format!("/emails/outbox/{id}/retry"), &token, None).await;
    assert_eq!((s, b["status"].as_str(), b["attempts"].as_i64()), (200, Some("pending"), Some(0)), "{b}");
    let (s, _) = call(&app, Method::POST, &format!("/emails/outbox/{id}/retry"), &token, None).await;
    assert_eq!(s, 409, "a pending or delivered row is not retried again");
    let files = app.wait_for_mail(1).await;
    assert_eq!(files.len(), 1);
    wait_outbox(&app, &token, "?status=delivered", |r| r.iter().any(|m| m["id"] == id.as_str())).await;
    let (s, b) = call(&app, Method::POST, &format!("/emails/outbox/{id}/retry"), &token, None).await;
    assert_eq!((s, b["errorCode"].as_str()), (409, Some("invalid_message_state")));
    let (s, b) = call(&app, Method::GET, "/emails/outbox?status=bogus", &token, None).await;
    assert_eq!((s, b["errorCode"].as_str()), (400, Some("invalid_query_string")));
}

async fn mail_routes_need_their_scopes(app: TestApp) {
    use reqwest::Method;
    let token = app.token_for(&app.creds, Some("read:users")).await;
    for (method, path) in [
        (Method::GET, "/emails/provider"),
        (Method::POST, "/emails/provider"),
        (Method::PATCH, "/emails/provider"),
        (Method::DELETE, "/emails/provider"),
        (Method::POST, "/email-templates"),
        (Method::GET, "/email-templates/verify_email"),
        (Method::PUT, "/email-templates/verify_email"),
        (Method::PATCH, "/email-templates/verify_email"),
        (Method::POST, "/emails/outbox/msg_x/retry"),
    ] {
        let (s, b) = call(&app, method.clone(), path, &token, Some(json!({}))).await;
        assert_eq!((s, b["errorCode"].as_str()), (403, Some("insufficient_scope")), "{method} {path}");
    }
    let (s, _) = call(&app, Method::GET, "/emails/outbox", &token, None).await;
    assert_eq!(s, 200, "support staff with read:users may list mail");
    // Another tenant's token is refused outright.
    let other = app.create_tenant("globex").await;
    let foreign = app.token_for(&other, None).await;
    let (s, _) = call(&app, Method::GET, "/emails/outbox", &foreign, None).await;
    assert_eq!(s, 401);
}
