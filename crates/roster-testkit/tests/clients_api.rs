//! The Clients and Connections Management APIs over HTTP, on SQLite and PostgreSQL: CRUD, secrets shown
//! once (creation and rotation) and working at `/oauth/token`, validation, the protected Management API
//! client, connection options and cascade, scopes, user tokens and tenant isolation.

use roster_testkit::{TestApp, enc};
use serde_json::{Value, json};

const DB: &str = "Username-Password-Authentication";

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("request");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, tok: &str, path: &str) -> (u16, Value) {
    send(app.http.get(app.api(path)).bearer_auth(tok)).await
}

async fn post(app: &TestApp, tok: &str, path: &str, body: Value) -> (u16, Value) {
    send(app.http.post(app.api(path)).bearer_auth(tok).json(&body)).await
}

async fn patch(app: &TestApp, tok: &str, path: &str, body: Value) -> (u16, Value) {
    send(app.http.patch(app.api(path)).bearer_auth(tok).json(&body)).await
}

async fn delete(app: &TestApp, tok: &str, path: &str) -> u16 {
    app.http.delete(app.api(path)).bearer_auth(tok).send().await.expect("delete").status().as_u16()
}

/// `POST /oauth/token` with client credentials for the tenant's Management API audience.
async fn client_credentials(app: &TestApp, client_id: &str, secret: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("audience", app.creds.management_audience.as_str()),
    ];
    send(app.http.post(app.url("/t/acme/oauth/token")).form(&form)).await
}

async fn acme_logs(app: &TestApp) -> Vec<roster_store::LogRecord> {
    let name = roster_domain::TenantName::parse("acme").expect("name");
    let t = app.store.tenant_by_name(&name).await.expect("read").expect("exists");
    app.store.tenant(t.id).logs(None, 200).await.expect("logs")
}

fn without(mut v: Value, keys: &[&str]) -> Value {
    if let Some(m) = v.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    v
}

fn assert_error(status: u16, body: &Value, expect_status: u16, code: &str) {
    assert_eq!(status, expect_status, "{body}");
    assert_eq!(body["statusCode"], expect_status, "{body}");
    assert_eq!(body["errorCode"], code, "{body}");
}

async fn clients_crud(app: TestApp) {
    let tok = app.token().await;
    let (s, list) = get(&app, &tok, "/clients").await;
    assert_eq!(s, 200);
    let mut ids: Vec<&str> = list.as_array().expect("array").iter().map(|c| c["client_id"].as_str().expect("id")).collect();
    ids.sort_unstable();
    let mut expected = [app.creds.management_client.client_id.as_str(), app.creds.default_app.client_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "the tenant's two clients");

    let (s, created) = post(&app, &tok, "/clients", json!({"name": "Web App"})).await;
    assert_eq!(s, 201, "{created}");
    let id = created["client_id"].as_str().expect("client_id").to_owned();
    let secret = created["client_secret"].as_str().expect("secret shown at creation").to_owned();
    assert_eq!((id.len(), secret.len()), (32, 43));
    assert_eq!(
        without(created.clone(), &["client_id", "client_secret"]),
        json!({
            "name": "Web App", "description": "", "app_type": "regular_web", "callbacks": [], "allowed_logout_urls": [],
            "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "client_secret_post",
            "is_first_party": true, "token_endpoint_ip_header_trusted": false,
        }),
        "Auth0 defaults for a regular web application"
    );
    let (s, got) = get(&app, &tok, &format!("/clients/{id}")).await;
    assert_eq!((s, got), (200, without(created.clone(), &["client_secret"])), "the secret is never shown again");
    let (_, got) = get(&app, &tok, &format!("/clients/{id}?fields=name,app_type&include_fields=true")).await;
    assert_eq!(got, json!({"name": "Web App", "app_type": "regular_web"}));

    // Per-type defaults.
    let (s, spa) =
        post(&app, &tok, "/clients", json!({"name": "SPA", "app_type": "spa", "callbacks": ["http://localhost:3000/cb"]})).await;
    assert_eq!(s, 201);
    assert_eq!(
        (spa["grant_types"].clone(), spa["token_endpoint_auth_method"].clone(), spa["callbacks"].clone()),
        (json!(["authorization_code", "refresh_token"]), json!("none"), json!(["http://localhost:3000/cb"]))
    );
    let (_, native) =
        post(&app, &tok, "/clients", json!({"name": "Mobile", "app_type": "native", "is_first_party": false})).await;
    assert_eq!((native["token_endpoint_auth_method"].as_str(), native["is_first_party"].as_bool()), (Some("none"), Some(false)));

    // Listing: secrets never listed; paging, totals and filters like Auth0.
    let (_, list) = get(&app, &tok, "/clients").await;
    assert_eq!(list.as_array().map(Vec::len), Some(5));
    let text = list.to_string();
    assert!(!text.contains("\"client_secret\":") && !text.contains(&secret) && !text.contains("secret_hash"), "{text}");
    let (_, page) = get(&app, &tok, "/clients?per_page=2&page=2&include_totals=true").await;
    assert_eq!(without(page.clone(), &["clients"]), json!({"start": 4, "limit": 2, "length": 1, "total": 5}), "{page}");
    let mut paged = Vec::new();
    for p in 0..3 {
        let (_, page) = get(&app, &tok, &format!("/clients?per_page=2&page={p}")).await;
        paged.extend(page.as_array().expect("array").iter().cloned());
    }
    assert_eq!(Value::Array(paged), list, "pages cover the listing in order, each client once");
    let (_, m2m) = get(&app, &tok, "/clients?app_type=non_interactive").await;
    assert_eq!(m2m.as_array().map(Vec::len), Some(1));
    let (_, third) = get(&app, &tok, "/clients?is_first_party=false&fields=name").await;
    assert_eq!(third, json!([{"name": "Mobile"}]));
    for bad in ["/clients?per_page=101", "/clients?page=-1", "/clients?include_totals=maybe", "/clients?app_type=desktop"] {
        let (s, b) = get(&app, &tok, bad).await;
        assert_error(s, &b, 400, "invalid_query_string");
    }

    // PATCH: given properties replace; the rest stays; null clears the description and URL lists.
    let (s, updated) = patch(
        &app,
        &tok,
        &format!("/clients/{id}"),
        json!({"name": "Web App 2", "description": "Our site", "callbacks": ["https://app.example.com/callback"],
               "allowed_logout_urls": ["https://app.example.com/"], "grant_types": ["authorization_code"],
               "token_endpoint_auth_method": "client_secret_basic", "is_first_party": false}),
    )
    .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(
        updated,
        json!({
            "client_id": id, "name": "Web App 2", "description": "Our site", "app_type": "regular_web",
            "callbacks": ["https://app.example.com/callback"], "allowed_logout_urls": ["https://app.example.com/"],
            "grant_types": ["authorization_code"], "token_endpoint_auth_method": "client_secret_basic", "is_first_party": false,
            "token_endpoint_ip_header_trusted": false,
        })
    );
    let (s, updated) = patch(&app, &tok, &format!("/clients/{id}"), json!({"description": null, "callbacks": null})).await;
    assert_eq!((s, updated["description"].clone(), updated["callbacks"].clone()), (200, json!(""), json!([])));
    assert_eq!(updated["allowed_logout_urls"], json!(["https://app.example.com/"]), "untouched");
    assert_eq!(get(&app, &tok, &format!("/clients/{id}")).await.1, updated, "the change is stored");
    // The secret survives a PATCH (client_secret_basic works too).
    let r = app
        .http
        .post(app.url("/t/acme/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("audience", app.creds.management_audience.as_str())])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 403, "authenticated, but this client has no client_credentials grant");
    assert_eq!(r.json::<Value>().await.expect("json")["error"], "unauthorized_client");

    assert_eq!(delete(&app, &tok, &format!("/clients/{id}")).await, 204);
    let (s, b) = get(&app, &tok, &format!("/clients/{id}")).await;
    assert_eq!(
        (s, b),
        (
            404,
            json!({"statusCode": 404, "error": "Not Found", "message": "The client does not exist.", "errorCode": "inexistent_client"})
        )
    );
    assert_eq!(delete(&app, &tok, &format!("/clients/{id}")).await, 204, "deleting again is not an error (Auth0)");
    let (s, b) = patch(&app, &tok, &format!("/clients/{id}"), json!({"name": "ghost"})).await;
    assert_error(s, &b, 404, "inexistent_client");
    let (s, b) = post(&app, &tok, &format!("/clients/{id}/rotate-secret"), json!({})).await;
    assert_error(s, &b, 404, "inexistent_client");
    for bad in ["/clients/nope", "/clients/not%20an%20id", &format!("/clients/{}", "x".repeat(65))] {
        let (s, b) = get(&app, &tok, bad).await;
        assert_error(s, &b, 404, "inexistent_client");
    }
    let (s, _) = client_credentials(&app, &id, &secret).await;
    assert_eq!(s, 401, "a deleted client cannot authenticate");

    let logs = acme_logs(&app).await;
    let sapi: Vec<&str> = logs.iter().filter(|l| l.kind == "sapi").map(|l| l.description.as_str()).collect();
    for what in ["Create a Client", "Update a Client", "Delete a Client"] {
        assert!(sapi.contains(&what), "{what}: {sapi:?}");
    }
    assert!(logs.iter().all(|l| !l.details.to_string().contains(&secret)), "no secret in the logs");
}

async fn secret_once_and_rotation(app: TestApp) {
    let tok = app.token().await;
    let (s, worker) = post(&app, &tok, "/clients", json!({"name": "Worker", "app_type": "non_interactive"})).await;
    assert_eq!(s, 201);
    assert_eq!(
        (worker["grant_types"].clone(), worker["token_endpoint_auth_method"].clone()),
        (json!(["client_credentials"]), json!("client_secret_post"))
    );
    let id = worker["client_id"].as_str().expect("id").to_owned();
    let secret = worker["client_secret"].as_str().expect("secret").to_owned();

    // The secret authenticates: the request gets past client authentication to the grant check. The
    // new client has no client grant for the Management API, so that is a 403 access_denied.
    let (s, b) = client_credentials(&app, &id, &secret).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("access_denied")), "{b}");
    assert!(b["error_description"].as_str().unwrap_or("").contains("client-grant"), "{b}");
    let (s, b) = client_credentials(&app, &id, "not-the-secret").await;
    assert_eq!((s, b), (401, json!({"error": "access_denied", "error_description": "Unauthorized"})));

    // Stored as SHA-256 only; never readable again through the API.
    let name = roster_domain::TenantName::parse("acme").expect("name");
    let tenant = app.store.tenant_by_name(&name).await.expect("read").expect("exists");
    let client_id = roster_domain::ClientId::parse(&id).expect("client id");
    let stored = app.store.tenant(tenant.id.clone()).client(&client_id).await.expect("read").expect("exists");
    assert_eq!(stored.secret_hash, roster_auth::secret::hash_secret(&secret));
    assert_ne!(stored.secret_hash, secret);
    for path in [format!("/clients/{id}"), "/clients".to_owned(), "/clients?include_totals=true".to_owned()] {
        let (_, b) = get(&app, &tok, &path).await;
        let text = b.to_string();
        assert!(!text.contains("\"client_secret\":") && !text.contains(&secret), "{path}: {text}");
    }
    let (_, b) = patch(&app, &tok, &format!("/clients/{id}"), json!({"name": "Worker 2"})).await;
    assert!(b.get("client_secret").is_none(), "PATCH does not show the secret");

    // Rotation: the new secret is shown once and works at once; the old one stops working.
    let (s, rotated) = post(&app, &tok, &format!("/clients/{id}/rotate-secret"), json!({})).await;
    assert_eq!(s, 200, "{rotated}");
    let new_secret = rotated["client_secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!((rotated["client_id"].as_str(), rotated["name"].as_str()), (Some(id.as_str()), Some("Worker 2")));
    assert_eq!(client_credentials(&app, &id, &secret).await.0, 401, "the old secret is refused");
    assert_eq!(client_credentials(&app, &id, &new_secret).await.0, 403, "the new secret authenticates");
    let (_, b) = get(&app, &tok, &format!("/clients/{id}")).await;
    assert!(b.get("client_secret").is_none() && !b.to_string().contains(&new_secret));
    // Rotation works without a body, too (Auth0's SDKs send none).
    let r = app.http.post(app.api(&format!("/clients/{id}/rotate-secret"))).bearer_auth(&tok).send().await.expect("rotate");
    assert_eq!(r.status(), 200);
    let logs = acme_logs(&app).await;
    assert!(logs.iter().any(|l| l.kind == "sapi" && l.description == "Rotate a Client Secret"));
    assert!(logs.iter().all(|l| !l.details.to_string().contains(&new_secret)));
}

async fn client_validation(app: TestApp) {
    let tok = app.token().await;
    let long = "x".repeat(256);
    let bad_bodies = [
        json!({}),
        json!({"name": null}),
        json!({"name": ""}),
        json!({"name": long}),
        json!({"name": 5}),
        json!({"name": "<b>x</b>"}),
        json!({"name": "a", "description": "d".repeat(141)}),
        json!({"name": "a", "app_type": "desktop"}),
        json!({"name": "a", "grant_types": ["implicit"]}),
        json!({"name": "a", "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"]}),
        json!({"name": "a", "grant_types": "authorization_code"}),
        json!({"name": "a", "callbacks": ["javascript:alert(1)"]}),
        json!({"name": "a", "callbacks": ["data:text/html,<script>alert(1)</script>"]}),
        json!({"name": "a", "callbacks": ["/relative/path"]}),
        json!({"name": "a", "callbacks": ["https://app.example.com/cb#fragment"]}),
        json!({"name": "a", "callbacks": ["https://user:pw@app.example.com/cb"]}),
        json!({"name": "a", "callbacks": [" https://app.example.com/cb"]}),
        json!({"name": "a", "callbacks": ["ftp://example.com/"]}),
        json!({"name": "a", "allowed_logout_urls": ["javascript:alert(1)"]}),
        json!({"name": "a", "token_endpoint_auth_method": "private_key_jwt"}),
        json!({"name": "a", "app_type": "spa", "grant_types": ["client_credentials"]}),
        json!({"name": "a", "app_type": "non_interactive", "token_endpoint_auth_method": "none"}),
        json!({"name": "a", "client_secret": "chosen-by-caller"}),
        json!({"name": "a", "is_global": true}),
        json!({"name": "a", "client_id": "mine"}),
    ];
    for body in &bad_bodies {
        let (s, b) = post(&app, &tok, "/clients", body.clone()).await;
        assert_error(s, &b, 400, "invalid_body");
        assert!(b["message"].as_str().unwrap_or("").starts_with("Payload validation error"), "{body} → {b}");
    }
    let (_, list) = get(&app, &tok, "/clients?include_totals=true").await;
    assert_eq!(list["total"], 2, "no refused request created anything");
    let r = app.http.post(app.api("/clients")).bearer_auth(&tok).header("content-type", "text/plain").body("{}").send().await;
    assert_eq!(r.expect("post").status(), 415);

    // The same rules on PATCH, plus null where a value is required; a refused PATCH changes nothing.
    let (_, c) = post(&app, &tok, "/clients", json!({"name": "Target", "callbacks": ["https://ok.example.com/cb"]})).await;
    let path = format!("/clients/{}", c["client_id"].as_str().expect("id"));
    let before = get(&app, &tok, &path).await.1;
    for body in [
        json!({"name": ""}),
        json!({"name": null}),
        json!({"app_type": null}),
        json!({"grant_types": null}),
        json!({"is_first_party": null}),
        json!({"app_type": "desktop"}),
        json!({"grant_types": ["implicit"]}),
        json!({"callbacks": ["javascript:alert(1)"]}),
        json!({"allowed_logout_urls": ["https://x.example.com/#/logout"]}),
        json!({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}),
        json!({"client_secret": "x"}),
        json!({"unknown": 1}),
    ] {
        let (s, b) = patch(&app, &tok, &path, body.clone()).await;
        assert_error(s, &b, 400, "invalid_body");
    }
    assert_eq!(get(&app, &tok, &path).await.1, before, "refused PATCHes changed nothing");
    // Changing app_type keeps grants and method (Auth0); the combination is still checked.
    let (s, b) = patch(&app, &tok, &path, json!({"app_type": "non_interactive", "grant_types": ["client_credentials"]})).await;
    assert_eq!((s, b["token_endpoint_auth_method"].as_str()), (200, Some("client_secret_post")), "{b}");
    let (s, b) = patch(&app, &tok, &path, json!({"token_endpoint_auth_method": "none"})).await;
    assert_error(s, &b, 400, "invalid_body");
}

async fn management_client_protected(app: TestApp) {
    let tok = app.token().await;
    let mgmt = app.creds.management_client.client_id.clone();
    let path = format!("/clients/{mgmt}");
    let (s, b) = get(&app, &tok, &path).await;
    assert_eq!(
        (s, b["grant_types"].clone(), b["app_type"].clone()),
        (200, json!(["client_credentials"]), json!("non_interactive"))
    );
    assert!(b.get("client_secret").is_none());

    assert_eq!(app.http.delete(app.api(&path)).bearer_auth(&tok).send().await.expect("delete").status(), 403);
    let r = app.http.delete(app.api(&path)).bearer_auth(&tok).send().await.expect("delete");
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["errorCode"], "operation_not_supported", "{b}");
    for grants in [json!(["client_credentials", "password"]), json!([]), json!(["authorization_code"])] {
        let (s, b) = patch(&app, &tok, &path, json!({"grant_types": grants})).await;
        assert_error(s, &b, 403, "operation_not_supported");
    }
    let (s, b) = patch(&app, &tok, &path, json!({"token_endpoint_auth_method": "none"})).await;
    assert_error(s, &b, 400, "invalid_body");
    // Other settings may change, and sending the same grant types is no change.
    let (s, b) = patch(&app, &tok, &path, json!({"name": "Ops automation", "grant_types": ["client_credentials"]})).await;
    assert_eq!((s, b["name"].as_str()), (200, Some("Ops automation")), "{b}");
    // Still there, still working.
    let (s, _) = get(&app, &tok, &path).await;
    assert_eq!(s, 200);
    let fresh = app.token().await;
    assert_eq!(get(&app, &fresh, "/clients").await.0, 200);
    let logs = acme_logs(&app).await;
    let fapi: Vec<&str> = logs.iter().filter(|l| l.kind == "fapi").map(|l| l.description.as_str()).collect();
    assert!(fapi.contains(&"Delete a Client") && fapi.contains(&"Update a Client"), "{fapi:?}");
}

async fn connections_crud(app: TestApp) {
    let tok = app.token().await;
    let (s, list) = get(&app, &tok, "/connections").await;
    assert_eq!(s, 200);
    let default = list[0].clone();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(
        without(default.clone(), &["id"]),
        json!({"name": DB, "strategy": "auth0", "options": {"requires_username": false, "disable_signup": false, "passwordPolicy": "nist"}, "enabled_clients": []})
    );
    assert!(default["id"].as_str().expect("id").starts_with("con_"));

    let options = json!({
        "requires_username": true, "disable_signup": false, "prevent_signup_enumeration": false,
        "passwordPolicy": "good", "password_complexity_options": {"min_length": 12},
        "password_history": {"enable": true, "size": 5}, "password_dictionary": {"enable": true, "dictionary": ["acme"]},
        "password_no_personal_info": {"enable": true}, "brute_force_protection": true,
        "import_mode": false, "customScripts": {"login": "function () {}"},
    });
    let (s, created) =
        post(&app, &tok, "/connections", json!({"name": "staff-db", "strategy": "auth0", "options": options})).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("con_") && id.len() == 20, "{id}");
    assert_eq!(
        created,
        json!({"id": id, "name": "staff-db", "strategy": "auth0", "options": options, "enabled_clients": []}),
        "unknown option keys are kept as given"
    );
    let (s, got) = get(&app, &tok, &format!("/connections/{id}")).await;
    assert_eq!((s, &got), (200, &created));
    let (s, b) = post(&app, &tok, "/connections", json!({"name": "staff-db", "strategy": "auth0"})).await;
    assert_error(s, &b, 409, "connection_conflict");
    let (s, bare) = post(&app, &tok, "/connections", json!({"name": "Bare", "strategy": "auth0"})).await;
    assert_eq!((s, bare["options"].clone()), (201, json!({})));

    // Listing with filters and totals.
    let (_, all) = get(&app, &tok, "/connections").await;
    let mut names: Vec<&str> = all.as_array().expect("array").iter().map(|c| c["name"].as_str().expect("name")).collect();
    names.sort_unstable();
    assert_eq!(names, ["Bare", DB, "staff-db"]);
    let (_, one) = get(&app, &tok, "/connections?name=staff-db").await;
    assert_eq!(one, json!([created]));
    let (_, none) = get(&app, &tok, "/connections?strategy=google-oauth2").await;
    assert_eq!(none, json!([]));
    let (_, page) = get(&app, &tok, "/connections?strategy=auth0&per_page=1&page=1&include_totals=true&fields=name").await;
    assert_eq!(page, json!({"start": 1, "limit": 1, "length": 1, "total": 3, "connections": [{"name": all[1]["name"]}]}));

    // PATCH replaces options wholesale; a rename is refused; a refused PATCH changes nothing.
    let path = format!("/connections/{id}");
    let (s, b) = patch(&app, &tok, &path, json!({"options": {"disable_signup": true}})).await;
    assert_eq!((s, b["options"].clone()), (200, json!({"disable_signup": true})), "{b}");
    let (s, b) = patch(&app, &tok, &path, json!({"options": {}, "name": "staff-db"})).await;
    assert_eq!((s, b["options"].clone()), (200, json!({})), "the same name is not a rename");
    let before = get(&app, &tok, &path).await.1;
    for body in [
        json!({"name": "renamed"}),
        json!({"options": null}),
        json!({"options": "x"}),
        json!({"options": {"disable_signup": "yes"}}),
        json!({"strategy": "auth0"}),
        json!({"enabled_clients": []}),
    ] {
        let (s, b) = patch(&app, &tok, &path, body.clone()).await;
        assert_error(s, &b, 400, "invalid_body");
    }
    assert_eq!(get(&app, &tok, &path).await.1, before);
    assert_eq!(get(&app, &tok, "/connections?name=renamed").await.1, json!([]));

    // Deleting a connection deletes its users, and only its users.
    let (s, staff) = post(
        &app,
        &tok,
        "/users",
        json!({"connection": "staff-db", "email": "staff@example.com", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(s, 201, "{staff}");
    let customer = app.create_user(&tok, "customer@example.com").await;
    let staff_path = format!("/users/{}", enc(staff["user_id"].as_str().expect("id")));
    let customer_path = format!("/users/{}", enc(customer["user_id"].as_str().expect("id")));
    assert_eq!(delete(&app, &tok, &path).await, 204);
    let (s, b) = get(&app, &tok, &path).await;
    assert_eq!(
        (s, b),
        (
            404,
            json!({"statusCode": 404, "error": "Not Found", "message": "The connection does not exist.", "errorCode": "inexistent_connection"})
        )
    );
    assert_eq!(get(&app, &tok, &staff_path).await.0, 404, "the connection's user is gone");
    assert_eq!(get(&app, &tok, &customer_path).await.0, 200, "other connections' users stay");
    let (_, users) = get(&app, &tok, "/users?include_totals=true").await;
    assert_eq!(users["total"], 1);
    assert_eq!(delete(&app, &tok, &path).await, 204, "deleting again is not an error (Auth0)");
    let (s, b) = post(
        &app,
        &tok,
        "/users",
        json!({"connection": "staff-db", "email": "late@example.com", "password": "correct horse battery"}),
    )
    .await;
    assert_error(s, &b, 400, "inexistent_connection");
    // The name is free again.
    let (s, _) = post(&app, &tok, "/connections", json!({"name": "staff-db", "strategy": "auth0"})).await;
    assert_eq!(s, 201);

    let logs = acme_logs(&app).await;
    let sapi: Vec<&str> = logs.iter().filter(|l| l.kind == "sapi").map(|l| l.description.as_str()).collect();
    for what in ["Create a Connection", "Update a Connection", "Delete a Connection"] {
        assert!(sapi.contains(&what), "{what}: {sapi:?}");
    }
    assert!(logs.iter().any(|l| l.kind == "fapi" && l.description == "Create a Connection"), "the conflict is logged");
}

async fn connection_validation(app: TestApp) {
    let tok = app.token().await;
    let bad_bodies = [
        json!({"strategy": "auth0"}),
        json!({"name": "", "strategy": "auth0"}),
        json!({"name": "-db", "strategy": "auth0"}),
        json!({"name": "db-", "strategy": "auth0"}),
        json!({"name": "my_db", "strategy": "auth0"}),
        json!({"name": "my db", "strategy": "auth0"}),
        json!({"name": "x".repeat(129), "strategy": "auth0"}),
        json!({"name": "db"}),
        json!({"name": "db", "strategy": "google-oauth2"}),
        json!({"name": "db", "strategy": "auth0", "enabled_clients": ["abc"]}),
        json!({"name": "db", "strategy": "auth0", "options": []}),
        json!({"name": "db", "strategy": "auth0", "options": {"requires_username": "true"}}),
        json!({"name": "db", "strategy": "auth0", "options": {"disable_signup": 1}}),
        json!({"name": "db", "strategy": "auth0", "options": {"prevent_signup_enumeration": null}}),
        json!({"name": "db", "strategy": "auth0", "options": {"brute_force_protection": "on"}}),
        json!({"name": "db", "strategy": "auth0", "options": {"passwordPolicy": "strongest"}}),
        json!({"name": "db", "strategy": "auth0", "options": {"password_complexity_options": {"min_length": 0}}}),
        json!({"name": "db", "strategy": "auth0", "options": {"password_complexity_options": {"min_length": 200}}}),
        json!({"name": "db", "strategy": "auth0", "options": {"password_complexity_options": {"min_length": "8"}}}),
        json!({"name": "db", "strategy": "auth0", "options": {"password_history": {"enable": true, "size": 25}}}),
        json!({"name": "db", "strategy": "auth0", "options": {"password_history": {"enable": "yes"}}}),
        json!({"name": "db", "strategy": "auth0", "options": {"password_dictionary": {"enable": true, "dictionary": "acme"}}}),
        json!({"name": "db", "strategy": "auth0", "options": {"password_no_personal_info": {"enabled": true}}}),
    ];
    for body in &bad_bodies {
        let (s, b) = post(&app, &tok, "/connections", body.clone()).await;
        assert_error(s, &b, 400, "invalid_body");
        assert!(b["message"].as_str().unwrap_or("").starts_with("Payload validation error"), "{body} → {b}");
    }
    let (_, list) = get(&app, &tok, "/connections?include_totals=true").await;
    assert_eq!(list["total"], 1, "no refused request created anything");
    let (s, _) =
        post(&app, &tok, "/connections", json!({"name": "A-1-b", "strategy": "auth0", "options": {"passwordPolicy": null}}))
            .await;
    assert_eq!(s, 201, "mixed case, digits and inner dashes; Auth0 accepts a null passwordPolicy");
    for path in ["/connections/con_doesnotexist00", "/connections/garbage", "/connections/con_%2F"] {
        let (s, b) = get(&app, &tok, path).await;
        assert_error(s, &b, 404, "inexistent_connection");
        let (s, b) = patch(&app, &tok, path, json!({"options": {}})).await;
        assert_error(s, &b, 404, "inexistent_connection");
    }
    assert_eq!(delete(&app, &tok, "/connections/garbage").await, 204);
}

/// A Management token whose subject is an end user, signed with the tenant's own key.
async fn user_token(app: &TestApp, scope: &str) -> String {
    let name = roster_domain::TenantName::parse("acme").expect("name");
    let tenant = app.store.tenant_by_name(&name).await.expect("read").expect("exists");
    let keys = app.store.tenant(tenant.id).signing_keys().await.expect("keys");
    let ks = roster_auth::KeySet::from_stored(keys.iter().map(|k| roster_auth::jwt::StoredKey {
        kid: &k.kid,
        alg: &k.alg,
        pkcs8: &k.private_key,
        current: true,
    }))
    .expect("keyset");
    let now = roster_domain::Timestamp::now().seconds();
    let claims = json!({
        "iss": app.creds.issuer, "sub": "auth0|0123456789abcdef01234567", "aud": app.creds.management_audience,
        "iat": now, "exp": now + 600, "scope": scope,
    });
    ks.sign(&claims).expect("sign")
}

async fn scopes_and_subjects(app: TestApp) {
    let full = app.token().await;
    let (_, c) = post(&app, &full, "/clients", json!({"name": "Scoped"})).await;
    let cid = c["client_id"].as_str().expect("id").to_owned();
    let con = get(&app, &full, "/connections").await.1[0]["id"].as_str().expect("id").to_owned();
    let routes = |app: &TestApp| -> Vec<(&'static str, reqwest::RequestBuilder, &'static str)> {
        let h = &app.http;
        vec![
            ("GET /clients", h.get(app.api("/clients")), "read:clients"),
            ("GET /clients/{id}", h.get(app.api(&format!("/clients/{cid}"))), "read:clients"),
            ("POST /clients", h.post(app.api("/clients")).json(&json!({"name": "x"})), "create:clients"),
            ("PATCH /clients/{id}", h.patch(app.api(&format!("/clients/{cid}"))).json(&json!({"name": "y"})), "update:clients"),
            ("DELETE /clients/{id}", h.delete(app.api(&format!("/clients/{cid}"))), "delete:clients"),
            ("POST /clients/{id}/rotate-secret", h.post(app.api(&format!("/clients/{cid}/rotate-secret"))), "update:clients"),
            ("GET /connections", h.get(app.api("/connections")), "read:connections"),
            ("GET /connections/{id}", h.get(app.api(&format!("/connections/{con}"))), "read:connections"),
            (
                "POST /connections",
                h.post(app.api("/connections")).json(&json!({"name": "x", "strategy": "auth0"})),
                "create:connections",
            ),
            (
                "PATCH /connections/{id}",
                h.patch(app.api(&format!("/connections/{con}"))).json(&json!({"options": {}})),
                "update:connections",
            ),
            ("DELETE /connections/{id}", h.delete(app.api(&format!("/connections/{con}"))), "delete:connections"),
        ]
    };
    // A machine token without the route's scope.
    let logs_only = app.token_for(&app.creds, Some("read:logs")).await;
    for (name, req, scope) in routes(&app) {
        let (s, b) = send(req.bearer_auth(&logs_only)).await;
        assert_error(s, &b, 403, "insufficient_scope");
        assert!(b["message"].as_str().expect("message").contains(scope), "{name}: {b}");
    }
    // A user token is refused even when it carries every scope.
    let every = "read:clients create:clients update:clients delete:clients update:client_keys \
                 read:connections create:connections update:connections delete:connections";
    let user = user_token(&app, every).await;
    for (name, req, _) in routes(&app) {
        let (s, b) = send(req.bearer_auth(&user)).await;
        assert_eq!((s, b["errorCode"].as_str()), (403, Some("insufficient_scope")), "{name}: {b}");
    }
    // No token at all.
    for (name, req, _) in routes(&app) {
        let (s, b) = send(req).await;
        assert_eq!((s, b["message"].as_str()), (401, Some("Missing authentication")), "{name}");
    }
    // Each scope opens its own routes only.
    let read = app.token_for(&app.creds, Some("read:clients read:connections")).await;
    assert_eq!(get(&app, &read, &format!("/clients/{cid}")).await.0, 200);
    assert_eq!(get(&app, &read, "/connections").await.0, 200);
    assert_eq!(post(&app, &read, "/clients", json!({"name": "x"})).await.0, 403);
    let update = app.token_for(&app.creds, Some("update:clients")).await;
    let (s, b) = post(&app, &update, &format!("/clients/{cid}/rotate-secret"), json!({})).await;
    assert!(s == 200 && b["client_secret"].is_string(), "update:clients may rotate: {b}");
    // Nothing was changed by the refused requests.
    assert_eq!(get(&app, &full, &format!("/clients/{cid}")).await.1["name"], "Scoped");
    assert_eq!(get(&app, &full, "/connections?include_totals=true").await.1["total"], 1);
    assert_eq!(get(&app, &full, "/clients?include_totals=true").await.1["total"], 3);
}

async fn cross_tenant(app: TestApp) {
    let other = app.create_tenant("other").await;
    let acme_tok = app.token().await;
    let other_tok = app.token_for(&other, None).await;
    let (_, c) = post(&app, &acme_tok, "/clients", json!({"name": "Acme secret app"})).await;
    let cid = c["client_id"].as_str().expect("id").to_owned();
    let con = get(&app, &acme_tok, "/connections").await.1[0]["id"].as_str().expect("id").to_owned();
    let acme = |p: &str| app.url(&format!("/t/acme/api/v2{p}"));
    let probes = [
        app.http.get(acme("/clients")),
        app.http.get(acme(&format!("/clients/{cid}"))),
        app.http.post(acme("/clients")).json(&json!({"name": "intruder"})),
        app.http.patch(acme(&format!("/clients/{cid}"))).json(&json!({"callbacks": ["https://evil.example/cb"]})),
        app.http.delete(acme(&format!("/clients/{cid}"))),
        app.http.post(acme(&format!("/clients/{cid}/rotate-secret"))),
        app.http.get(acme("/connections")),
        app.http.get(acme(&format!("/connections/{con}"))),
        app.http.post(acme("/connections")).json(&json!({"name": "intruder", "strategy": "auth0"})),
        app.http.patch(acme(&format!("/connections/{con}"))).json(&json!({"options": {"disable_signup": true}})),
        app.http.delete(acme(&format!("/connections/{con}"))),
    ];
    for p in probes {
        let r = p.bearer_auth(&other_tok).send().await.expect("probe");
        assert_eq!(r.status(), 401, "another tenant's token is rejected whatever its scopes");
        assert!(!r.text().await.expect("body").contains("Acme secret app"));
    }
    // Acme is intact, and the other tenant's own API does not reach acme's objects.
    let (_, got) = get(&app, &acme_tok, &format!("/clients/{cid}")).await;
    assert_eq!((got["name"].as_str(), got["callbacks"].clone()), (Some("Acme secret app"), json!([])));
    assert_eq!(get(&app, &acme_tok, &format!("/connections/{con}")).await.1["options"]["disable_signup"], false);
    let other_api = |p: &str| app.url(&format!("/t/other/api/v2{p}"));
    let r = app.http.get(other_api(&format!("/clients/{cid}"))).bearer_auth(&other_tok).send().await.expect("get");
    assert_eq!(r.status(), 404);
    let r = app.http.delete(other_api(&format!("/clients/{cid}"))).bearer_auth(&other_tok).send().await.expect("delete");
    assert_eq!(r.status(), 204, "nothing of that id in this tenant");
    let r = app.http.delete(other_api(&format!("/connections/{con}"))).bearer_auth(&other_tok).send().await.expect("delete");
    assert_eq!(r.status(), 204);
    let r = app.http.get(other_api("/clients")).bearer_auth(&other_tok).send().await.expect("list");
    let list: Value = r.json().await.expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(2), "only the other tenant's own two clients");
    assert!(!list.to_string().contains(&cid));
    assert_eq!(get(&app, &acme_tok, &format!("/clients/{cid}")).await.0, 200, "still there");
    assert_eq!(get(&app, &acme_tok, &format!("/connections/{con}")).await.0, 200, "still there");
}

roster_testkit::on_both_backends! {
    clients => clients_crud;
    secrets => secret_once_and_rotation;
    client_rules => client_validation;
    management_client => management_client_protected;
    connections => connections_crud;
    connection_rules => connection_validation;
    scopes => scopes_and_subjects;
    tenants => cross_tenant;
}
