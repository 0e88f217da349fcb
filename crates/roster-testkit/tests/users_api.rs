//! The Users Management API over HTTP, on SQLite and PostgreSQL: Auth0 semantics and error bodies
//! (reference/auth0-api.md checklist), metadata rules, paging, search, and lost-update freedom.

use futures::future::join_all;
use roster_testkit::{TestApp, enc};
use serde_json::{Value, json};

async fn patch(app: &TestApp, tok: &str, id: &str, body: Value) -> (u16, Value) {
    let r = app.http.patch(app.api(&format!("/users/{}", enc(id)))).bearer_auth(tok).json(&body).send().await.expect("patch");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, tok: &str, path: &str) -> (u16, Value) {
    let r = app.http.get(app.api(path)).bearer_auth(tok).send().await.expect("get");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn create_get_delete(app: TestApp) {
    let tok = app.token().await;
    let u = app.create_user(&tok, "Jane.Doe@Example.com").await;
    let id = u["user_id"].as_str().expect("user_id");
    assert!(id.starts_with("auth0|") && id.len() == 30, "{id}");
    assert_eq!(u["email"], "jane.doe@example.com");
    assert_eq!(u["email_verified"], false);
    assert_eq!(u["nickname"], "jane.doe");
    assert_eq!(
        u["identities"],
        json!([{"connection": "Username-Password-Authentication", "provider": "auth0", "user_id": &id[6..], "isSocial": false}])
    );
    assert!(u.get("password").is_none() && !u.to_string().contains("argon2"), "no password material in responses");
    let (s, got) = get(&app, &tok, &format!("/users/{}", enc(id))).await;
    assert_eq!((s, &got), (200, &u));
    let (s, got) = get(&app, &tok, &format!("/users/{}?fields=email,user_id&include_fields=true", enc(id))).await;
    assert_eq!((s, got), (200, json!({"email": "jane.doe@example.com", "user_id": id})));
    let (_, got) = get(&app, &tok, &format!("/users/{}?fields=identities,app_metadata&include_fields=false", enc(id))).await;
    assert!(got.get("identities").is_none() && got.get("email").is_some());

    // Duplicate in another case → 409, Auth0 body.
    let r = app
        .http
        .post(app.api("/users"))
        .bearer_auth(&tok)
        .json(&json!({"connection": "Username-Password-Authentication", "email": "JANE.DOE@example.COM", "password": "another password"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"statusCode": 409, "error": "Conflict", "message": "The user already exists.", "errorCode": "auth0_idp_error"})
    );

    let r = app.http.delete(app.api(&format!("/users/{}", enc(id)))).bearer_auth(&tok).send().await.expect("delete");
    assert_eq!(r.status(), 204);
    let (s, body) = get(&app, &tok, &format!("/users/{}", enc(id))).await;
    assert_eq!(s, 404);
    assert_eq!(
        body,
        json!({"statusCode": 404, "error": "Not Found", "message": "The user does not exist.", "errorCode": "inexistent_user"})
    );
    let logs = app
        .store
        .tenant(app.store.tenant_by_name(&"acme".parse_tenant()).await.expect("r").expect("e").id)
        .logs(None, 50)
        .await
        .expect("logs");
    let kinds: Vec<&str> = logs.iter().map(|l| l.kind.as_str()).collect();
    assert!(
        kinds.contains(&"sdu") && kinds.contains(&"sapi") && kinds.contains(&"fapi") && kinds.contains(&"seccft"),
        "{kinds:?}"
    );
}

trait ParseTenant {
    fn parse_tenant(&self) -> roster_domain::TenantName;
}
impl ParseTenant for str {
    fn parse_tenant(&self) -> roster_domain::TenantName {
        roster_domain::TenantName::parse(self).expect("tenant name")
    }
}

async fn create_validation(app: TestApp) {
    let tok = app.token().await;
    let post = |body: Value| {
        let req = app.http.post(app.api("/users")).bearer_auth(&tok).json(&body);
        async move {
            let r = req.send().await.expect("post");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, b) = post(json!({"email": "a@example.com", "password": "long enough"})).await;
    assert_eq!((s, b["errorCode"].as_str()), (400, Some("invalid_body")), "connection is required: {b}");
    let (s, b) = post(json!({"connection": "nope", "email": "a@example.com", "password": "long enough"})).await;
    assert_eq!((s, b["errorCode"].as_str()), (400, Some("inexistent_connection")));
    let (s, b) =
        post(json!({"connection": "Username-Password-Authentication", "email": "a@example.com", "password": "short"})).await;
    assert_eq!(s, 400);
    assert_eq!(b["message"], "PasswordStrengthError: Password is too weak");
    let (s, _) =
        post(json!({"connection": "Username-Password-Authentication", "email": "not-an-email", "password": "long enough"})).await;
    assert_eq!(s, 400);
    let (s, b) = post(json!({"connection": "Username-Password-Authentication", "email": "a@example.com", "password": "long enough", "admin": true})).await;
    assert_eq!(s, 400, "unknown properties refused: {b}");
    let (s, _) = post(json!({"connection": "Username-Password-Authentication", "email": "a@example.com", "password": "long enough", "app_metadata": {"user_id": 1}})).await;
    assert_eq!(s, 400, "reserved app_metadata key");
    let (s, u) =
        post(json!({"connection": "Username-Password-Authentication", "email": "b@example.com", "password": "long enough",
        "user_id": "custom-1", "email_verified": true, "user_metadata": {"lang": "fr"}, "app_metadata": {"plan": "pro"},
        "given_name": "Bea", "username": "Bea_1"}))
        .await;
    assert_eq!(s, 201, "{u}");
    assert_eq!(u["user_id"], "auth0|custom-1");
    assert_eq!(u["username"], "bea_1");
    assert_eq!((u["user_metadata"].clone(), u["app_metadata"].clone()), (json!({"lang": "fr"}), json!({"plan": "pro"})));
    let (_, list) = get(&app, &tok, "/users?include_totals=true").await;
    assert_eq!(list["total"], 1, "no refused request created anything");
}

async fn metadata_semantics(app: TestApp) {
    let tok = app.token().await;
    let u = app.create_user(&tok, "m@example.com").await;
    let id = u["user_id"].as_str().expect("id");
    let (s, _) = patch(
        &app,
        &tok,
        id,
        json!({"user_metadata": {"a": 1, "b": {"y": 2}, "c": 3}, "app_metadata": {"plan": "free", "x": 1}}),
    )
    .await;
    assert_eq!(s, 200);
    // Checklist 1 and 2: null deletes one key; nested objects are replaced, other keys kept.
    let (s, got) = patch(&app, &tok, id, json!({"user_metadata": {"a": null, "b": {"x": 1}}})).await;
    assert_eq!(s, 200);
    assert_eq!(got["user_metadata"], json!({"b": {"x": 1}, "c": 3}));
    assert_eq!(got["app_metadata"], json!({"plan": "free", "x": 1}), "the other object is untouched");
    // Checklist 3: {} empties.
    let (_, got) = patch(&app, &tok, id, json!({"app_metadata": {}})).await;
    assert_eq!(got["app_metadata"], json!({}));
    // Checklist 4 and 5 and the limits: 400 invalid_body, nothing changed.
    let before = get(&app, &tok, &format!("/users/{}", enc(id))).await.1;
    let deep = (0..20).fold(json!(1), |v, _| json!({ "k": v }));
    for bad in [
        json!({"user_metadata": {"a.b": 1}}),
        json!({"user_metadata": {"$where": 1}}),
        json!({"app_metadata": {"user_id": "x"}}),
        json!({"app_metadata": {"blocked": true}}),
        json!({"user_metadata": {"big": "x".repeat(17 * 1024)}}),
        json!({"user_metadata": deep}),
        json!({"user_metadata": "not an object"}),
        json!({"password": "new password 1", "email": "n@example.com"}),
        json!({"password": "new password 1", "username": "bob"}),
        json!({"password": "short"}),
        json!({"name": 42}),
        json!({"picture": "javascript:alert(1)"}),
        json!({"unknown_field": 1}),
    ] {
        let (s, b) = patch(&app, &tok, id, bad.clone()).await;
        assert_eq!(s, 400, "{bad} → {b}");
        assert!(b["errorCode"].is_string() && b["statusCode"] == 400, "{b}");
    }
    assert_eq!(get(&app, &tok, &format!("/users/{}", enc(id))).await.1, before, "refused PATCHes changed nothing");

    // Root attributes replace; null unsets; a new email is unverified unless said otherwise (checklist 7).
    let (s, got) = patch(&app, &tok, id, json!({"given_name": "Mia", "email_verified": true})).await;
    assert_eq!((s, got["given_name"].as_str(), got["email_verified"].as_bool()), (200, Some("Mia"), Some(true)));
    // The GETs above left this user in the node's cache with its rendered body: a read now sees the write.
    assert_eq!(get(&app, &tok, &format!("/users/{}", enc(id))).await.1, got, "a read after the write sees it");
    let (_, got) = patch(&app, &tok, id, json!({"given_name": null, "email": "New@Example.com"})).await;
    assert!(got.get("given_name").is_none());
    assert_eq!((got["email"].as_str(), got["email_verified"].as_bool()), (Some("new@example.com"), Some(false)));
    assert!(got["updated_at"].as_str() > before["updated_at"].as_str(), "updated_at moves");
    // Password change alone works and is never echoed.
    let (s, got) = patch(&app, &tok, id, json!({"password": "a brand new passphrase"})).await;
    assert_eq!(s, 200);
    assert!(got.get("last_password_reset").is_some() && !got.to_string().contains("passphrase"));
    // Email already used by another user → 400 auth0_idp_error, unchanged.
    app.create_user(&tok, "taken@example.com").await;
    let (s, b) = patch(&app, &tok, id, json!({"email": "TAKEN@example.com"})).await;
    assert_eq!((s, b["errorCode"].as_str()), (400, Some("auth0_idp_error")));
    let (s, _) = patch(&app, &tok, "auth0|doesnotexist", json!({"name": "x"})).await;
    assert_eq!(s, 404);
}

async fn listing_paging_search(app: TestApp) {
    let tok = app.token().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(app.create_user(&tok, &format!("user{i:02}@example.com")).await["user_id"].as_str().expect("id").to_owned());
    }
    patch(&app, &tok, &ids[3], json!({"blocked": true})).await;
    let (s, arr) = get(&app, &tok, "/users?per_page=5").await;
    assert_eq!(s, 200);
    assert_eq!(arr.as_array().map(Vec::len), Some(5), "bare array without totals");
    let (_, page) = get(&app, &tok, "/users?per_page=5&page=2&include_totals=true").await;
    assert_eq!(
        (page["start"].clone(), page["limit"].clone(), page["length"].clone(), page["total"].clone()),
        (json!(10), json!(5), json!(2), json!(12))
    );
    let (_, sorted) = get(&app, &tok, "/users?sort=email:-1&per_page=1&fields=email").await;
    assert_eq!(sorted, json!([{"email": "user11@example.com"}]));
    let (_, found) = get(&app, &tok, "/users?q=email:%22USER05@EXAMPLE.COM%22&include_totals=true").await;
    assert_eq!(found["total"], 1, "email search is case-insensitive (checklist 20)");
    let (_, blocked) = get(&app, &tok, "/users?q=blocked:true&include_totals=true").await;
    assert_eq!((blocked["total"].clone(), blocked["users"][0]["user_id"].clone()), (json!(1), json!(ids[3])));
    let (_, both) =
        get(&app, &tok, &format!("/users?q=user_id:%22{}%22%20AND%20blocked:false&include_totals=true", enc(&ids[4]))).await;
    assert_eq!(both["total"], 1);
    // Paging limits (checklist 18, 19).
    let (s, b) = get(&app, &tok, "/users?per_page=101").await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = get(&app, &tok, "/users?page=10&per_page=100").await;
    assert_eq!((s, b["errorCode"].as_str()), (400, Some("invalid_paging")));
    assert!(b["message"].as_str().unwrap_or("").starts_with("You can only page through the first 1000 records"));
    for bad in
        ["/users?page=-1", "/users?q=foo:bar", "/users?q=a:b%20OR%20c:d", "/users?sort=password:1", "/users?include_totals=maybe"]
    {
        let (s, b) = get(&app, &tok, bad).await;
        assert_eq!((s, b["errorCode"].as_str()), (400, Some("invalid_query_string")), "{bad}: {b}");
    }
    // users-by-email: exact and case-sensitive (checklist 23).
    let (s, b) = get(&app, &tok, "/users-by-email?email=user01@example.com").await;
    assert_eq!((s, b.as_array().map(Vec::len)), (200, Some(1)));
    let (_, b) = get(&app, &tok, "/users-by-email?email=USER01@example.com").await;
    assert_eq!(b, json!([]));
    let (s, _) = get(&app, &tok, "/users-by-email").await;
    assert_eq!(s, 400);
}

async fn headers_and_malformed_input(app: TestApp) {
    let tok = app.token().await;
    let u = app.create_user(&tok, "h@example.com").await;
    let id = u["user_id"].as_str().expect("id");
    let r = app.http.get(app.api("/users")).bearer_auth(&tok).send().await.expect("get");
    for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        assert!(r.headers().get(h).is_some(), "{h} present (checklist 24)");
    }
    let r = app.http.get(app.api("/users")).send().await.expect("get");
    assert!(r.headers().get("x-ratelimit-limit").is_some(), "also on errors");
    let url = app.api(&format!("/users/{}", enc(id)));
    let r = app.http.patch(&url).bearer_auth(&tok).header("content-type", "text/plain").body("{}").send().await.expect("patch");
    assert_eq!(r.status(), 415);
    let r = app
        .http
        .patch(&url)
        .bearer_auth(&tok)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 400);
    let huge = format!("{{\"user_metadata\":{{\"a\":\"{}\"}}}}", "x".repeat(1_100_000));
    let r =
        app.http.patch(&url).bearer_auth(&tok).header("content-type", "application/json").body(huge).send().await.expect("patch");
    assert_eq!(r.status(), 413);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let r =
        app.http.patch(&url).bearer_auth(&tok).header("content-type", "application/json").body(deep).send().await.expect("patch");
    assert_eq!(r.status(), 400, "deep JSON refused by the parser's depth limit");
    let body = r.text().await.expect("body");
    assert!(!body.contains("serde") && !body.contains(".rs"), "no internal text: {body}");
    let r = app.http.get(app.url("/t/acme/api/v2/nope")).bearer_auth(&tok).send().await.expect("get");
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.expect("json")["statusCode"], 404);
    let r = app.http.put(app.api("/users")).bearer_auth(&tok).send().await.expect("put");
    assert_eq!(r.status(), 405);
}

async fn concurrent_patches_keep_every_key(app: TestApp) {
    let tok = app.token().await;
    let u = app.create_user(&tok, "race@example.com").await;
    let id = u["user_id"].as_str().expect("id").to_owned();
    let url = app.api(&format!("/users/{}", enc(&id)));
    let reqs = (0..200).map(|i| {
        let r = app.http.patch(&url).bearer_auth(&tok).json(&json!({"user_metadata": {format!("k{i}"): i}}));
        async move { r.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    });
    let statuses = join_all(reqs).await;
    assert!(statuses.iter().all(|s| *s == 200), "all 200: {:?}", statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>());
    let (_, got) = get(&app, &tok, &format!("/users/{}", enc(&id))).await;
    assert_eq!(got["user_metadata"].as_object().map(|m| m.len()), Some(200), "T39: no lost update");
}

roster_testkit::on_both_backends! {
    crud => create_get_delete;
    create_rules => create_validation;
    metadata => metadata_semantics;
    list => listing_paging_search;
    http_edges => headers_and_malformed_input;
    lost_updates => concurrent_patches_keep_every_key;
}
