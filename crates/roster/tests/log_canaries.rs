//! No password, client secret or access token ever reaches the logs, even at `trace` level with JSON
//! output (security.md A5 16.2.5). Runs the real binary and greps everything it wrote to stderr.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

#[tokio::test]
async fn secrets_never_logged() {
    let dir = std::env::temp_dir().join(format!("roster-canary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // stderr goes to a file: an undrained pipe would fill up and stall the server.
    let log_path = dir.join("stderr.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--public-url", &base, "--log-format", "json"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "trace")
        .env("ROSTER_ARGON2_MEMORY_KIB", "1024")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("start roster");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stdout = String::new();
    // The credentials JSON is complete before the server listens.
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = [0u8; 4096];
    while serde_json::from_str::<Value>(&stdout).is_err() {
        let n = out.read(&mut buf).expect("read stdout");
        assert!(n > 0, "credentials printed");
        stdout.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let creds: Value = serde_json::from_str(&stdout).expect("credentials JSON");
    let secret = creds["management_client"]["client_secret"].as_str().expect("secret").to_owned();
    let tok: Value = http
        .post(format!("{base}/t/default/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", creds["management_client"]["client_id"].as_str().expect("id")),
            ("client_secret", &secret),
            ("audience", creds["management_audience"].as_str().expect("aud")),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = tok["access_token"].as_str().expect("token").to_owned();
    // A unique string to look for in the logs (not containing the email, which the policy refuses).
    let password = "Tulip-Passw0rd-4e1f";
    let r = http
        .post(format!("{base}/t/default/api/v2/users"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"connection": "Username-Password-Authentication", "email": "canary@example.com", "password": password}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.expect("json")["user_id"].as_str().expect("id").replace('|', "%7C");
    let r = http
        .patch(format!("{base}/t/default/api/v2/users/{id}"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"password": format!("{password}-2")}))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 200);
    // A failed attempt with a wrong secret is logged too, without the secret.
    let _ = http
        .post(format!("{base}/t/default/oauth/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", "x"), ("client_secret", "Wrong-Secret-Canary")])
        .send()
        .await;
    // SIGTERM, then read everything the process logged.
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "graceful exit 0 on SIGTERM: {status}");
    let logs = std::fs::read_to_string(&log_path).expect("read logs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(logs.lines().count() > 10, "trace logging produced output");
    assert!(logs.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "every log line is JSON");
    for (what, canary) in [
        ("password", password),
        ("client secret", secret.as_str()),
        ("wrong secret", "Wrong-Secret-Canary"),
        ("token", &token[token.len() - 40..]),
    ] {
        assert!(!logs.contains(canary), "the {what} appears in the logs");
    }
}
