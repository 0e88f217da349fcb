//! Server-level behaviour: health and readiness, the Management rate limit, graceful shutdown.

use roster_testkit::{Backend, TestApp};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let r = app.http.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!((r.status().as_u16(), r.text().await.expect("body")), (200, "ok".to_owned()));
    let r = app.http.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 200);
    // With the database gone, the process is alive but not ready, and API calls fail cleanly.
    let tok = app.token().await;
    app.store.close().await;
    let r = app.http.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 503);
    assert_eq!(app.http.get(app.url("/healthz")).send().await.expect("healthz").status(), 200);
    let r = app.http.get(app.api("/users")).bearer_auth(&tok).send().await.expect("users");
    assert!(r.status().is_server_error(), "{}", r.status());
    let body = r.text().await.expect("body");
    assert!(!body.to_lowercase().contains("pool") && !body.contains("sqlx"), "no internal text: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_rate_limit() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Box::new(|c| {
            c.management_rate_limit = 0.2;
            c.management_rate_burst = 3;
        }),
    )
    .await
    .expect("app");
    let tok = app.token().await;
    let mut last = None;
    for i in 0..3 {
        let r = app.http.get(app.api("/users")).bearer_auth(&tok).send().await.expect("get");
        assert_eq!(r.status(), 200, "request {i} within the burst");
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
        last = Some(r.headers()["x-ratelimit-remaining"].to_str().expect("ascii").to_owned());
    }
    assert_eq!(last.as_deref(), Some("0"));
    let r = app.http.get(app.api("/users")).bearer_auth(&tok).send().await.expect("get");
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!(retry >= 1);
    let reset: u64 = r.headers()["x-ratelimit-reset"].to_str().expect("ascii").parse().expect("epoch");
    assert!(reset > 1_700_000_000);
    let b: Value = r.json().await.expect("json");
    assert_eq!(b["errorCode"], "too_many_requests");
    // Another tenant has its own bucket; the token endpoint is not counted.
    let other = app.create_tenant("other").await;
    let otok = app.token_for(&other, None).await;
    let r = app.http.get(app.url("/t/other/api/v2/users")).bearer_auth(&otok).send().await.expect("get");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_finishes_in_flight_requests() {
    let app = TestApp::spawn().await;
    let tok = app.token().await;
    let u = app.create_user(&tok, "g@example.com").await;
    let url = app.api(&format!("/users/{}", roster_testkit::enc(u["user_id"].as_str().expect("id"))));
    // Start requests, then stop while they are in flight: each one either completed with 200 or never
    // reached the server (connection refused) — none is cut off half-way with a 5xx.
    // A few writes acknowledged before anything else happens.
    for i in 100..105 {
        let r = app
            .http
            .patch(&url)
            .bearer_auth(&tok)
            .json(&serde_json::json!({"user_metadata": {format!("k{i}"): i}}))
            .send()
            .await
            .expect("patch");
        assert_eq!(r.status(), 200);
    }
    let mut tasks = Vec::new();
    for i in 0..50 {
        let req = app.http.patch(&url).bearer_auth(&tok).json(&serde_json::json!({"user_metadata": {format!("k{i}"): i}}));
        tasks.push(tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) }));
    }
    let db = app.stop().await;
    let mut ok = 5;
    for t in tasks {
        match t.await.expect("join") {
            Ok(200) => ok += 1,
            Ok(s) => panic!("a request ended with {s}"),
            Err(e) => assert!(e.is_connect() || e.is_request(), "{e}"),
        }
    }
    // Every acknowledged write is in the database (read back through a new connection).
    let store = db.store().await;
    let t = store.tenant_by_name(&roster_domain::TenantName::parse("acme").expect("n")).await.expect("read").expect("tenant");
    let id = roster_domain::UserId::parse(u["user_id"].as_str().expect("id")).expect("id");
    let user = store.tenant(t.id).user(&id).await.expect("read").expect("exists");
    assert!(user.user_metadata.as_map().len() >= ok, "{} keys for {ok} acknowledged writes", user.user_metadata.as_map().len());
    for i in 100..105 {
        assert!(user.user_metadata.as_map().contains_key(&format!("k{i}")), "write k{i} acknowledged before the stop is durable");
    }
}
