//! Signup and the user grants (password, password-realm, refresh_token), user-scoped Management
//! tokens, on SQLite and PostgreSQL.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use roster_domain::{TenantName, UserId};
use roster_store::TenantStore;
use roster_testkit::{TestApp, enc};
use serde_json::{Value, json};

const REALM: &str = "http://auth0.com/oauth/grant-type/password-realm";

fn claims(jwt: &str) -> Value {
    let p: Vec<&str> = jwt.split('.').collect();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p[1]).expect("b64")).expect("json")
}

async fn acme(app: &TestApp) -> TenantStore {
    let t = app.store.tenant_by_name(&TenantName::parse("acme").expect("n")).await.expect("r").expect("e");
    app.store.tenant(t.id)
}

async fn signup(app: &TestApp, body: Value) -> (u16, Value) {
    let r = app.http.post(app.url("/t/acme/dbconnections/signup")).json(&body).send().await.expect("signup");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn login(app: &TestApp, user: &str, password: &str, extra: &[(&str, &str)]) -> (u16, Value, String) {
    let c = &app.creds.default_app;
    let mut form = vec![
        ("grant_type", REALM),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
        ("username", user),
        ("password", password),
        ("realm", "Username-Password-Authentication"),
    ];
    form.extend_from_slice(extra);
    let r = app.http.post(app.url("/t/acme/oauth/token")).form(&form).send().await.expect("login");
    let s = r.status().as_u16();
    let text = r.text().await.expect("body");
    (s, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

fn signup_body(app: &TestApp, email: &str) -> Value {
    json!({"client_id": app.creds.default_app.client_id, "connection": "Username-Password-Authentication",
           "email": email, "password": "correct horse battery", "given_name": "Ann", "user_metadata": {"lang": "fr"}})
}

async fn signup_rules(app: TestApp) {
    let (s, b) = signup(&app, signup_body(&app, "Ann@Example.com")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["email"], "ann@example.com");
    assert_eq!(b["email_verified"], false);
    assert_eq!(b["user_metadata"], json!({"lang": "fr"}));
    let id = UserId::parse(&format!("auth0|{}", b["_id"].as_str().expect("_id"))).expect("id");
    let store = acme(&app).await;
    let mail = store.outbox_for_user(&id).await.expect("outbox");
    assert_eq!(mail.iter().map(|m| m.message.template.as_str()).collect::<Vec<_>>(), vec!["verify_email"]);
    assert!(store.logs(Some(&id), 10).await.expect("logs").iter().any(|l| l.kind == "ss"));

    // The same address again (another case): the same answer, no new user, a warning mail to the owner.
    let (s2, b2) = signup(&app, signup_body(&app, "ANN@example.com")).await;
    assert_eq!(s2, 200);
    let keys = |v: &Value| v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(keys(&b2), keys(&b), "same shape");
    assert_ne!(b2["_id"], b["_id"], "a decoy id");
    let mail = store.outbox_for_user(&id).await.expect("outbox");
    assert_eq!(mail.iter().filter(|m| m.message.template == "duplicate_signup").count(), 1);
    assert!(store.logs(Some(&id), 10).await.expect("logs").iter().any(|l| l.kind == "fs"));
    let tok = app.token().await;
    let list: Value =
        app.http.get(app.api("/users?include_totals=true")).bearer_auth(&tok).send().await.expect("l").json().await.expect("j");
    assert_eq!(list["total"], 1);

    // Auth0 compatibility mode, per connection.
    let mut conn = store.connection_by_name("Username-Password-Authentication").await.expect("r").expect("e");
    conn.options["prevent_signup_enumeration"] = json!(false);
    store.update_connection(&conn, roster_store::Effects::default()).await.expect("update");
    let (s, b) = signup(&app, signup_body(&app, "ann@example.com")).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_signup")));

    // Password policy, input limits, disabled signup.
    let mut weak = signup_body(&app, "w@example.com");
    weak["password"] = json!("short");
    let (s, b) = signup(&app, weak).await;
    assert_eq!((s, b["name"].as_str(), b["code"].as_str()), (400, Some("PasswordStrengthError"), Some("invalid_password")));
    assert_eq!(b["description"]["rules"][0]["code"], "lengthAtLeast");
    let mut md = signup_body(&app, "m@example.com");
    md["user_metadata"] = json!({"n": 1});
    assert_eq!(signup(&app, md).await.0, 400, "signup metadata values are strings");
    let mut md = signup_body(&app, "m@example.com");
    md["user_metadata"] = Value::Object((0..11).map(|i| (format!("k{i}"), json!("v"))).collect());
    assert_eq!(signup(&app, md).await.0, 400, "at most 10 properties");
    let mut unknown = signup_body(&app, "u@example.com");
    unknown["client_id"] = json!("nope");
    assert_eq!(signup(&app, unknown).await.0, 400);
    conn.options["disable_signup"] = json!(true);
    store.update_connection(&conn, roster_store::Effects::default()).await.expect("update");
    assert_eq!(signup(&app, signup_body(&app, "late@example.com")).await.0, 403);
}

async fn password_logins(app: TestApp) {
    let (s, b) = signup(&app, signup_body(&app, "bob@example.com")).await;
    assert_eq!(s, 200);
    let id = format!("auth0|{}", b["_id"].as_str().expect("id"));
    let (s, t, _) =
        login(&app, "BOB@example.com", "correct horse battery", &[("scope", "openid profile email offline_access")]).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert!(t["refresh_token"].is_string());
    let idt = claims(t["id_token"].as_str().expect("id_token"));
    assert_eq!((idt["sub"].as_str(), idt["aud"].as_str()), (Some(id.as_str()), Some(app.creds.default_app.client_id.as_str())));
    assert_eq!((idt["email"].as_str(), idt["given_name"].as_str()), (Some("bob@example.com"), Some("Ann")));
    assert_eq!(idt["iss"], app.creds.issuer);
    let at = claims(t["access_token"].as_str().expect("at"));
    assert_eq!(at["sub"], id);
    assert_eq!(at["gty"], "password");
    // The login refreshed the profile, in the same transaction as its `s` event.
    let tok = app.token().await;
    let u: Value = app
        .http
        .get(app.api(&format!("/users/{}", enc(&id))))
        .bearer_auth(&tok)
        .send()
        .await
        .expect("g")
        .json()
        .await
        .expect("j");
    assert_eq!((u["logins_count"].as_i64(), u["last_ip"].as_str()), (Some(1), Some("127.0.0.1")));
    assert!(u["last_login"].is_string());
    let store = acme(&app).await;
    let uid = UserId::parse(&id).expect("id");
    assert!(store.logs(Some(&uid), 10).await.expect("logs").iter().any(|l| l.kind == "s"));

    // Unknown user and wrong password: identical status and bytes (T8).
    let (s1, _, body1) = login(&app, "nobody@example.com", "correct horse battery", &[]).await;
    let (s2, _, body2) = login(&app, "bob@example.com", "wrong password!", &[]).await;
    assert_eq!((s1, s2), (403, 403));
    assert_eq!(body1, body2);
    assert_eq!(
        serde_json::from_str::<Value>(&body1).expect("json"),
        json!({"error": "invalid_grant", "error_description": "Wrong email or password."})
    );
    let kinds: Vec<String> = store.logs(None, 50).await.expect("logs").into_iter().map(|l| l.kind).collect();
    assert!(kinds.contains(&"fu".to_owned()) && kinds.contains(&"fp".to_owned()), "{kinds:?}");

    // Password prefix / case variants fail (A5 6.2.8); a huge password is refused without a 5xx.
    assert_eq!(login(&app, "bob@example.com", "correct horse batter", &[]).await.0, 403);
    assert_eq!(login(&app, "bob@example.com", "Correct horse battery", &[]).await.0, 403);
    assert_eq!(login(&app, "bob@example.com", &"x".repeat(10_000), &[]).await.0, 403, "over the password size limit");
    assert_eq!(login(&app, "bob@example.com", &"x".repeat(100_000), &[]).await.0, 413, "over the body limit (T6)");

    // The plain password grant uses the default directory.
    let c = &app.creds.default_app;
    let r = app
        .http
        .post(app.url("/t/acme/oauth/token"))
        .json(&json!({"grant_type": "password", "client_id": c.client_id, "client_secret": c.client_secret,
                      "username": "bob@example.com", "password": "correct horse battery", "realm": null, "audience": null}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200);
    // Client authentication is required for a confidential client.
    let r = app
        .http
        .post(app.url("/t/acme/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", c.client_id.as_str()),
            ("username", "bob@example.com"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 401);

    // Blocked: revealed only with the right password.
    let r = app
        .http
        .patch(app.api(&format!("/users/{}", enc(&id))))
        .bearer_auth(&tok)
        .json(&json!({"blocked": true}))
        .send()
        .await
        .expect("p");
    assert_eq!(r.status(), 200);
    let (s, b, _) = login(&app, "bob@example.com", "correct horse battery", &[]).await;
    assert_eq!((s, b), (401, json!({"error": "unauthorized", "error_description": "user is blocked"})));
    assert_eq!(login(&app, "bob@example.com", "wrong password!", &[]).await.0, 403);
    // ... and its refresh tokens stop working.
    let r = app
        .http
        .post(app.url("/t/acme/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("refresh_token", t["refresh_token"].as_str().expect("rt")),
        ])
        .send()
        .await
        .expect("refresh");
    assert_eq!(r.status(), 403);
}

async fn refresh_rotation(app: TestApp) {
    signup(&app, signup_body(&app, "r@example.com")).await;
    let (_, t, _) = login(&app, "r@example.com", "correct horse battery", &[("scope", "openid offline_access")]).await;
    let rt1 = t["refresh_token"].as_str().expect("rt").to_owned();
    let c = &app.creds.default_app;
    let refresh = |rt: String| {
        let req = app.http.post(app.url("/t/acme/oauth/token")).form(&[
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", c.client_id.clone()),
            ("client_secret", c.client_secret.clone()),
            ("refresh_token", rt),
        ]);
        async move {
            let r = req.send().await.expect("refresh");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, t2) = refresh(rt1.clone()).await;
    assert_eq!(s, 200, "{t2}");
    let rt2 = t2["refresh_token"].as_str().expect("rotated").to_owned();
    assert_ne!(rt2, rt1);
    assert!(t2["id_token"].is_string() && t2["access_token"].is_string());
    // Re-use of the rotated token: refused, and the family (rt2 included) is revoked.
    let (s, b) = refresh(rt1).await;
    assert_eq!((s, b), (403, json!({"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."})));
    assert_eq!(refresh(rt2).await.0, 403, "family revoked");
    assert_eq!(refresh("made-up".into()).await.0, 403);
    // Without offline_access there is no refresh token.
    let (_, t, _) = login(&app, "r@example.com", "correct horse battery", &[("scope", "openid")]).await;
    assert!(t.get("refresh_token").is_none());
    let store = acme(&app).await;
    let kinds: Vec<String> = store.logs(None, 50).await.expect("logs").into_iter().map(|l| l.kind).collect();
    assert!(kinds.contains(&"sertft".to_owned()) && kinds.contains(&"fertft".to_owned()));
}

async fn user_scoped_management_token(app: TestApp) {
    let (_, me) = signup(&app, signup_body(&app, "me@example.com")).await;
    let (_, other) = signup(&app, signup_body(&app, "other@example.com")).await;
    let me = format!("auth0|{}", me["_id"].as_str().expect("id"));
    let other = format!("auth0|{}", other["_id"].as_str().expect("id"));
    let (s, t, _) = login(
        &app,
        "me@example.com",
        "correct horse battery",
        &[("audience", &app.creds.management_audience), ("scope", "openid")],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let tok = t["access_token"].as_str().expect("at").to_owned();
    let scope = claims(&tok)["scope"].as_str().expect("scope").to_owned();
    assert!(
        scope.contains("read:current_user") && scope.contains("update:current_user_metadata") && !scope.contains("read:users"),
        "{scope}"
    );
    let url = |id: &str| app.api(&format!("/users/{}", enc(id)));
    let r = app.http.get(url(&me)).bearer_auth(&tok).send().await.expect("get");
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .patch(url(&me))
        .bearer_auth(&tok)
        .json(&json!({"user_metadata": {"theme": "dark"}}))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("j")["user_metadata"], json!({"lang": "fr", "theme": "dark"}));
    for body in [
        json!({"app_metadata": {"plan": "pro"}}),
        json!({"email_verified": true}),
        json!({"blocked": false}),
        json!({"password": "another long one"}),
        json!({"user_metadata": {"a": 1}, "name": "x"}),
    ] {
        let r = app.http.patch(url(&me)).bearer_auth(&tok).json(&body).send().await.expect("patch");
        assert_eq!(r.status(), 403, "{body}");
        let b: Value = r.json().await.expect("j");
        assert!(b["message"].as_str().expect("m").starts_with("You cannot update the following fields: "), "{b}");
    }
    for req in [
        app.http.get(url(&other)),
        app.http.patch(url(&other)).json(&json!({"user_metadata": {"x": 1}})),
        app.http.delete(url(&other)),
        app.http.get(app.api("/users")),
        app.http.delete(url(&me)),
    ] {
        assert_eq!(req.bearer_auth(&tok).send().await.expect("req").status(), 403);
    }
    let admin = app.token().await;
    let u: Value = app.http.get(url(&me)).bearer_auth(&admin).send().await.expect("g").json().await.expect("j");
    assert_eq!((u["app_metadata"].clone(), u["email_verified"].clone()), (json!({}), json!(false)), "nothing changed");
    // Only the Management API audience is known.
    let (s, b, _) =
        login(&app, "me@example.com", "correct horse battery", &[("audience", "https://api.elsewhere.example/")]).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("access_denied")));
}

async fn outdated_hashes_are_upgraded(app: TestApp) {
    signup(&app, signup_body(&app, "old@example.com")).await;
    let store = acme(&app).await;
    let conn = store.connection_by_name("Username-Password-Authentication").await.expect("r").expect("e");
    let (user, _) = store.user_by_login(&conn.id, "old@example.com").await.expect("r").expect("e");
    let other = roster_auth::PasswordHasher::new(roster_auth::HasherConfig {
        memory_kib: 2048,
        iterations: 2,
        parallelism: 1,
        threads: 1,
        queue: 4,
    })
    .expect("pool");
    let old =
        other.hash(roster_domain::Password::for_verification("correct horse battery".into()).expect("pw")).await.expect("hash");
    store.update_user(&user.user_id, Box::new(|_| Ok(())), Some(old.clone()), roster_store::Effects::default()).await.expect("u");
    let (s, _, _) = login(&app, "old@example.com", "correct horse battery", &[]).await;
    assert_eq!(s, 200);
    let now = store.password_hash(&user.user_id).await.expect("r").expect("hash");
    assert_ne!(now, old);
    assert!(now.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "rehashed with the configured parameters: {now}");
    assert_eq!(login(&app, "old@example.com", "correct horse battery", &[]).await.0, 200, "and still works");
}

async fn userinfo(app: TestApp) {
    let (_, b) = signup(&app, signup_body(&app, "ui@example.com")).await;
    let id = format!("auth0|{}", b["_id"].as_str().expect("id"));
    let get = |tok: Option<String>| {
        let mut r = app.http.get(app.url("/t/acme/userinfo"));
        if let Some(t) = tok {
            r = r.bearer_auth(t);
        }
        async move {
            let r = r.send().await.expect("userinfo");
            let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap_or("").to_owned());
            (r.status().as_u16(), www, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (_, t, _) = login(&app, "ui@example.com", "correct horse battery", &[("scope", "openid profile email")]).await;
    let (s, _, claims) = get(t["access_token"].as_str().map(str::to_owned)).await;
    assert_eq!(s, 200, "{claims}");
    assert_eq!(
        (claims["sub"].as_str(), claims["email"].as_str(), claims["given_name"].as_str()),
        (Some(id.as_str()), Some("ui@example.com"), Some("Ann"))
    );
    // Only what the scopes release.
    let (_, t, _) = login(&app, "ui@example.com", "correct horse battery", &[("scope", "openid")]).await;
    let (s, _, claims) = get(t["access_token"].as_str().map(str::to_owned)).await;
    assert_eq!((s, claims), (200, json!({"sub": id})));
    // Without openid, without a token, with a machine token: 401 with a Bearer challenge (checklist 38).
    let (_, t, _) = login(&app, "ui@example.com", "correct horse battery", &[("scope", "profile")]).await;
    let (s, www, b) = get(t["access_token"].as_str().map(str::to_owned)).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("insufficient_scope")));
    assert!(www.unwrap_or_default().starts_with("Bearer"));
    assert_eq!(get(None).await.0, 401);
    assert_eq!(get(Some(app.token().await)).await.0, 401, "a Management API token is not for /userinfo");
    let disco: Value =
        app.http.get(app.url("/t/acme/.well-known/openid-configuration")).send().await.expect("d").json().await.expect("j");
    assert_eq!(disco["userinfo_endpoint"], format!("{}userinfo", app.creds.issuer));
}

roster_testkit::on_both_backends! {
    userinfo_endpoint => userinfo;
    signups => signup_rules;
    passwords => password_logins;
    refresh => refresh_rotation;
    user_tokens => user_scoped_management_token;
    rehash => outdated_hashes_are_upgraded;
}
