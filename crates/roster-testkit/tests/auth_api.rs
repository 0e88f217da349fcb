//! Tokens and authorization, on SQLite and PostgreSQL: the client-credentials grant and its errors,
//! discovery/JWKS, the JWT negative matrix (security.md T20), cross-tenant probes, and scope checks
//! for every route.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use roster_testkit::{TestApp, enc};
use serde_json::{Value, json};

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

fn parts(token: &str) -> (Value, Value, String) {
    let p: Vec<&str> = token.split('.').collect();
    let dec = |s: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(s).expect("b64")).expect("json");
    (dec(p[0]), dec(p[1]), p[2].to_owned())
}

async fn token_request(app: &TestApp, req: reqwest::RequestBuilder) -> (u16, Value) {
    let _ = app;
    let r = req.send().await.expect("token request");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn client_credentials(app: TestApp) {
    let c = &app.creds;
    let url = app.url("/t/acme/oauth/token");
    // Form body.
    let (s, b) = token_request(
        &app,
        app.http.post(&url).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &c.management_client.client_id),
            ("client_secret", &c.management_client.client_secret),
            ("audience", &c.management_audience),
        ]),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!((b["expires_in"].clone(), b["token_type"].clone()), (json!(86400), json!("Bearer")));
    let (header, claims, _) = parts(b["access_token"].as_str().expect("token"));
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], c.issuer);
    assert_eq!(claims["sub"], format!("{}@clients", c.management_client.client_id));
    assert_eq!(claims["aud"], c.management_audience);
    assert_eq!(claims["gty"], "client-credentials");
    assert_eq!(claims["azp"], c.management_client.client_id);
    assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 86400);
    assert!(claims["scope"].as_str().expect("scope").split(' ').any(|s| s == "read:users"));
    // Discovery and JWKS agree with the token (checklist 37).
    let disco: Value =
        app.http.get(app.url("/t/acme/.well-known/openid-configuration")).send().await.expect("d").json().await.expect("j");
    assert_eq!(disco["issuer"], claims["iss"]);
    assert!(disco["issuer"].as_str().expect("issuer").ends_with('/'));
    let jwks: Value =
        app.http.get(disco["jwks_uri"].as_str().expect("jwks_uri")).send().await.expect("j").json().await.expect("j");
    assert!(
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["kid"] == header["kid"] && k["kty"] == "RSA" && k.get("d").is_none())
    );

    // JSON body with explicit nulls (what the SDKs send) and a narrowed scope.
    let (s, b) = token_request(
        &app,
        app.http.post(&url).json(&json!({
            "grant_type": "client_credentials", "client_id": c.management_client.client_id,
            "client_secret": c.management_client.client_secret, "audience": c.management_audience,
            "organization": null, "realm": null, "scope": "read:users nonexistent:scope"
        })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["scope"], "read:users");
    // Basic authentication.
    let (s, _) = token_request(
        &app,
        app.http
            .post(&url)
            .basic_auth(&c.management_client.client_id, Some(&c.management_client.client_secret))
            .form(&[("grant_type", "client_credentials"), ("audience", &c.management_audience)]),
    )
    .await;
    assert_eq!(s, 200);

    // Errors (reference §4).
    let denied = json!({"error": "access_denied", "error_description": "Unauthorized"});
    for (id, secret) in
        [(c.management_client.client_id.as_str(), "wrong"), ("unknownclient", "x"), (c.default_app.client_id.as_str(), "x")]
    {
        let (s, b) = token_request(
            &app,
            app.http.post(&url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("audience", &c.management_audience),
            ]),
        )
        .await;
        assert_eq!((s, b), (401, denied.clone()), "unknown client and wrong secret answer alike");
    }
    let (s, b) = token_request(
        &app,
        app.http.post(&url).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &c.management_client.client_id),
            ("client_secret", &c.management_client.client_secret),
            ("audience", "https://elsewhere.example/api/"),
        ]),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("access_denied")));
    let (s, b) = token_request(
        &app,
        app.http.post(&url).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &c.default_app.client_id),
            ("client_secret", &c.default_app.client_secret),
            ("audience", &c.management_audience),
        ]),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (403, Some("unauthorized_client")), "the default app has no client_credentials grant");
    let (s, b) = token_request(&app, app.http.post(&url).form(&[("client_id", "x")])).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    let (s, b) = token_request(&app, app.http.post(&url).form(&[("grant_type", "urn:bogus")])).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("unsupported_grant_type")));
    let (s, _) =
        token_request(&app, app.http.post(&url).header("content-type", "text/plain").body("grant_type=client_credentials")).await;
    assert_eq!(s, 415);
    let (s, _) =
        token_request(&app, app.http.post(app.url("/t/nosuchtenant/oauth/token")).form(&[("grant_type", "client_credentials")]))
            .await;
    assert_eq!(s, 404);
}

async fn jwt_negative_matrix(app: TestApp) {
    let tok = app.token().await;
    let u = app.create_user(&tok, "t20@example.com").await;
    let url = app.api(&format!("/users/{}", enc(u["user_id"].as_str().expect("id"))));
    let (header, claims, sig) = parts(&tok);
    let now = claims["iat"].as_i64().expect("iat");
    let with = |h: &Value, c: &Value, s: &str| format!("{}.{}.{s}", b64(h), b64(c));
    let mut cases: Vec<(&str, String)> = Vec::new();
    cases.push(("alg none", with(&json!({"alg": "none", "typ": "JWT", "kid": header["kid"]}), &claims, "")));
    cases.push(("HS256", with(&json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]}), &claims, &sig)));
    cases.push(("unknown kid", with(&json!({"alg": "RS256", "typ": "JWT", "kid": "nope"}), &claims, &sig)));
    cases.push(("no kid", with(&json!({"alg": "RS256", "typ": "JWT"}), &claims, &sig)));
    cases.push((
        "embedded jwk",
        with(
            &json!({"alg": "RS256", "typ": "JWT", "kid": header["kid"], "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}),
            &claims,
            &sig,
        ),
    ));
    let mut c = claims.clone();
    c["scope"] = json!("read:users delete:users");
    cases.push(("tampered payload", with(&header, &c, &sig)));
    let mut c = claims.clone();
    c["exp"] = json!(now - 3600);
    cases.push(("expired (re-signed claims are unsigned here)", with(&header, &c, &sig)));
    cases.push(("truncated", tok[..tok.len() - 10].to_owned()));
    cases.push(("garbage", "not.a.jwt".to_owned()));
    for (name, t) in &cases {
        let r = app.http.get(&url).bearer_auth(t).send().await.expect("get");
        assert_eq!(r.status(), 401, "{name}");
        let b: Value = r.json().await.expect("json");
        assert_eq!(b["statusCode"], 401, "{name}");
        assert!(!b.to_string().contains(t.as_str()), "no token echoed");
    }
    // Properly signed by the tenant's own key, but wrong in one claim.
    let tenant = app.store.tenant_by_name(&roster_domain::TenantName::parse("acme").expect("n")).await.expect("r").expect("e");
    let keys = app.store.tenant(tenant.id).signing_keys().await.expect("keys");
    let ks = roster_auth::KeySet::from_stored(keys.iter().map(|k| roster_auth::jwt::StoredKey {
        kid: &k.kid,
        alg: &k.alg,
        pkcs8: &k.private_key,
        current: true,
    }))
    .expect("keyset");
    let mut signed_cases = Vec::new();
    let mut c = claims.clone();
    c["exp"] = json!(now - 120);
    c["iat"] = json!(now - 3600);
    signed_cases.push(("expired", c, "Expired token received for JSON Web Token validation"));
    let mut c = claims.clone();
    c["aud"] = json!("http://127.0.0.1/t/other/api/v2/");
    signed_cases.push(("wrong audience", c, "Bad audience"));
    let mut c = claims.clone();
    c["iss"] = json!("http://evil.example/t/acme/");
    signed_cases.push(("wrong issuer", c, "Invalid token"));
    let mut c = claims.clone();
    c.as_object_mut().expect("obj").remove("exp");
    signed_cases.push(("no exp", c, "Invalid token"));
    for (name, c, message) in signed_cases {
        let t = ks.sign(&c).expect("sign");
        let r = app.http.get(&url).bearer_auth(&t).send().await.expect("get");
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(r.json::<Value>().await.expect("json")["message"], message, "{name}");
    }
    let r = app.http.get(&url).bearer_auth(ks.sign(&claims).expect("sign")).send().await.expect("get");
    assert_eq!(r.status(), 200, "the control case passes");
    for (hdr, expect) in [("Basic abc", 400), ("Bearer", 400), ("Bearer ", 400), ("tokenwithoutscheme", 400)] {
        let r = app.http.get(&url).header("authorization", hdr).send().await.expect("get");
        assert_eq!(r.status(), expect, "{hdr}");
        assert_eq!(r.json::<Value>().await.expect("json")["message"], "Bad HTTP authentication header format");
    }
    let r = app.http.get(&url).send().await.expect("get");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"statusCode": 401, "error": "Unauthorized", "message": "Missing authentication"})
    );
}

async fn cross_tenant(app: TestApp) {
    let other = app.create_tenant("other").await;
    let acme_tok = app.token().await;
    let other_tok = app.token_for(&other, None).await;
    let a = app.create_user(&acme_tok, "alice@example.com").await;
    let a_id = enc(a["user_id"].as_str().expect("id"));
    let acme = |p: &str| app.url(&format!("/t/acme/api/v2{p}"));
    let probes = [
        app.http.get(acme("/users")),
        app.http.get(acme(&format!("/users/{a_id}"))),
        app.http.get(acme("/users-by-email?email=alice@example.com")),
        app.http.patch(acme(&format!("/users/{a_id}"))).json(&json!({"app_metadata": {"owned": true}})),
        app.http.delete(acme(&format!("/users/{a_id}"))),
        app.http.post(acme("/users")).json(
            &json!({"connection": "Username-Password-Authentication", "email": "x@example.com", "password": "long enough"}),
        ),
    ];
    for p in probes {
        let r = p.bearer_auth(&other_tok).send().await.expect("probe");
        assert_eq!(r.status(), 401, "another tenant's token is rejected whatever its scopes");
        assert!(!r.text().await.expect("body").contains("alice"), "never the other tenant's data");
    }
    // The user is intact, and the other tenant sees none of acme's users through its own API.
    let r = app.http.get(acme(&format!("/users/{a_id}"))).bearer_auth(&acme_tok).send().await.expect("get");
    assert_eq!(r.json::<Value>().await.expect("json")["app_metadata"], json!({}));
    let r = app.http.get(app.url(&format!("/t/other/api/v2/users/{a_id}"))).bearer_auth(&other_tok).send().await.expect("get");
    assert_eq!(r.status(), 404);
    let r = app.http.get(app.url("/t/other/api/v2/users?include_totals=true")).bearer_auth(&other_tok).send().await.expect("get");
    assert_eq!(r.json::<Value>().await.expect("json")["total"], 0);
    // An unknown tenant is a 404 before any token check.
    let r = app.http.get(app.url("/t/nosuch/api/v2/users")).bearer_auth(&acme_tok).send().await.expect("get");
    assert_eq!(r.status(), 404);
}

async fn scopes_per_route(app: TestApp) {
    let full = app.token().await;
    let u = app.create_user(&full, "s@example.com").await;
    let id = enc(u["user_id"].as_str().expect("id"));
    let empty = app.token_for(&app.creds, Some("read:logs")).await;
    let routes: Vec<(&str, reqwest::RequestBuilder, &str)> = vec![
        ("GET /users", app.http.get(app.api("/users")), "read:users"),
        ("GET /users/{id}", app.http.get(app.api(&format!("/users/{id}"))), "read:users"),
        ("GET /users-by-email", app.http.get(app.api("/users-by-email?email=s@example.com")), "read:users"),
        (
            "POST /users",
            app.http.post(app.api("/users")).json(
                &json!({"connection": "Username-Password-Authentication", "email": "n@example.com", "password": "long enough"}),
            ),
            "create:users",
        ),
        ("PATCH /users/{id}", app.http.patch(app.api(&format!("/users/{id}"))).json(&json!({"name": "x"})), "update:users"),
        ("DELETE /users/{id}", app.http.delete(app.api(&format!("/users/{id}"))), "delete:users"),
    ];
    for (name, req, scope) in routes {
        let r = req.bearer_auth(&empty).send().await.expect("req");
        assert_eq!(r.status(), 403, "{name}");
        let b: Value = r.json().await.expect("json");
        assert_eq!(b["errorCode"], "insufficient_scope", "{name}");
        assert!(b["message"].as_str().expect("msg").starts_with("Insufficient scope, expected any of: "), "{name}");
        assert!(b["message"].as_str().expect("msg").contains(scope), "{name}: {b}");
    }
    // Checklist 10: an update:users_app_metadata-only token updates metadata, not root fields.
    let md = app.token_for(&app.creds, Some("update:users_app_metadata")).await;
    let url = app.api(&format!("/users/{id}"));
    let r = app.http.patch(&url).bearer_auth(&md).json(&json!({"app_metadata": {"plan": "pro"}})).send().await.expect("patch");
    assert_eq!(r.status(), 200);
    let r = app.http.patch(&url).bearer_auth(&md).json(&json!({"name": "Mallory"})).send().await.expect("patch");
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.expect("json")["errorCode"], "insufficient_scope");
    let r = app.http.get(&url).bearer_auth(&full).send().await.expect("get");
    let b: Value = r.json().await.expect("json");
    assert_eq!((b["name"].as_str(), b["app_metadata"].clone()), (Some("s@example.com"), json!({"plan": "pro"})));
}

async fn tenant_created_while_running_is_served(app: TestApp) {
    let r = app.http.get(app.url("/t/latecomer/.well-known/jwks.json")).send().await.expect("get");
    assert_eq!(r.status(), 404);
    let late = app.create_tenant("latecomer").await;
    // No restart: the next request sees it (unknown names are never cached).
    let tok = app.token_for(&late, None).await;
    let r = app.http.get(app.url("/t/latecomer/api/v2/users")).bearer_auth(&tok).send().await.expect("get");
    assert_eq!(r.status(), 200);
}

roster_testkit::on_both_backends! {
    tokens => client_credentials;
    jwt_matrix => jwt_negative_matrix;
    isolation => cross_tenant;
    scopes => scopes_per_route;
    hot_tenant => tenant_created_while_running_is_served;
}
