//! Test harness: [`TestApp::spawn`] starts the real server (the same `roster::server::run` the binary
//! uses) on a random port with a fresh database — a temporary SQLite file, or a new PostgreSQL
//! database when `ROSTER_TEST_POSTGRES_URL` names a server — and removes it afterwards.
//!
//! PostgreSQL tests report themselves as skipped (a line on stderr) when that variable is unset,
//! except in CI (`CI` set), where a missing PostgreSQL is a failure.

use std::path::PathBuf;

use roster::config::Config;
use roster::provision::{self, TenantCredentials};
use roster_domain::TenantName;
use roster_store::{Store, StoreOptions};
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database, removed on drop.
pub struct TestDb {
    pub url: String,
    dir: Option<PathBuf>,
    pg: Option<(String, String)>,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), roster_domain::secret::random_alphanumeric(10).to_lowercase())
}

/// The PostgreSQL admin URL for tests, or `None` (skip) when not configured outside CI.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("ROSTER_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set ROSTER_TEST_POSTGRES_URL: PostgreSQL tests cannot be skipped in CI"
            );
            eprintln!("skipped: ROSTER_TEST_POSTGRES_URL is not set, PostgreSQL test not run");
            None
        }
    }
}

impl TestDb {
    /// `None` when the backend is PostgreSQL and no server is configured.
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(unique("roster_test"));
                std::fs::create_dir_all(&dir).expect("create temp dir");
                let url = format!("sqlite://{}", dir.join("roster.db").display());
                Some(Self { url, dir: Some(dir), pg: None })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let name = unique("roster_test");
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to ROSTER_TEST_POSTGRES_URL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                conn.close().await.ok();
                let mut url = url_with_database(&admin, &name);
                if url.is_empty() {
                    url = admin.clone();
                }
                // The server's data folder (master key, mail files) lives here too.
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("create temp dir");
                Some(Self { url, dir: Some(dir), pg: Some((admin, name)) })
            }
        }
    }

    /// A private folder for the server's local files, removed with the database.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    pub async fn store(&self) -> Store {
        let store = Store::connect(&StoreOptions::new(self.url.clone())).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }
}

/// Replace the database name in a postgres URL.
fn url_with_database(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs inside the test's runtime; use a thread with its own runtime.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                            .execute(&mut c)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running server with one tenant, `acme`.
pub struct TestApp {
    pub base: String,
    pub creds: TenantCredentials,
    pub http: reqwest::Client,
    pub store: Store,
    pub backend: Backend,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _db: TestDb,
}

/// Knobs a test may turn before the server starts.
pub type Tweak = Box<dyn FnOnce(&mut Config) + Send>;

impl TestApp {
    /// SQLite.
    pub async fn spawn() -> Self {
        Self::spawn_on(Backend::Sqlite).await.expect("sqlite is always available")
    }

    pub async fn spawn_on(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, Box::new(|_| {})).await
    }

    pub async fn spawn_with(backend: Backend, tweak: Tweak) -> Option<Self> {
        let db = TestDb::create(backend).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let mut cfg = Config {
            public_url: base.clone(),
            data_dir: db.data_dir(),
            database_url: Some(db.url.clone()),
            bootstrap_default_tenant: false,
            // Cheap hashing keeps tests fast; the parameters themselves are tested in roster-auth.
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            log_level: "warn".into(),
            shutdown_timeout_secs: 5,
            // Mail: found at once, retried quickly.
            mail_poll_interval_ms: 50,
            mail_retry_base_ms: 100,
            mail_retry_max_secs: 1,
            ..Config::default()
        };
        tweak(&mut cfg);
        let store = roster::server::open_store(&cfg).await.expect("open store");
        let creds = provision::create_tenant(&store, TenantName::parse("acme").expect("name"), &base).await.expect("tenant");
        let (tx, rx) = oneshot::channel::<()>();
        let run_store = store.clone();
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(e) = roster::server::run(&cfg, run_store, listener, shutdown).await {
                eprintln!("test server failed: {e:#}");
            }
        });
        let http = reqwest::Client::builder().build().expect("client");
        Some(Self { base, creds, http, store, backend, shutdown: Some(tx), server: Some(server), _db: db })
    }

    /// Another tenant on the same server and database.
    pub async fn create_tenant(&self, name: &str) -> TenantCredentials {
        provision::create_tenant(&self.store, TenantName::parse(name).expect("name"), &self.base).await.expect("tenant")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's data folder (`mail/` holds delivered `.eml` files when no SMTP is configured).
    pub fn data_dir(&self) -> PathBuf {
        self._db.data_dir()
    }

    /// `.eml` files delivered so far, oldest first: (file name, content).
    pub fn mail_files(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(self.data_dir().join("mail"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                    .filter_map(|e| Some((e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Wait (up to 10 s) until at least `n` mail files exist; returns them.
    pub async fn wait_for_mail(&self, n: usize) -> Vec<(String, String)> {
        for _ in 0..200 {
            let files = self.mail_files();
            if files.len() >= n {
                return files;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let files = self.mail_files();
        assert!(files.len() >= n, "expected {n} mail files, found {}", files.len());
        files
    }

    /// `/t/acme/api/v2{path}`
    pub fn api(&self, path: &str) -> String {
        format!("{}/t/{}/api/v2{path}", self.base, self.creds.tenant)
    }

    /// A Management token for `creds` (optionally with fewer scopes).
    pub async fn token_for(&self, creds: &TenantCredentials, scope: Option<&str>) -> String {
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", creds.management_client.client_id.clone()),
            ("client_secret", creds.management_client.client_secret.clone()),
            ("audience", creds.management_audience.clone()),
        ];
        if let Some(s) = scope {
            form.push(("scope", s.to_owned()));
        }
        let resp = self
            .http
            .post(self.url(&format!("/t/{}/oauth/token", creds.tenant)))
            .form(&form)
            .send()
            .await
            .expect("token request");
        assert_eq!(resp.status(), 200, "token endpoint");
        let body: Value = resp.json().await.expect("json");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    /// A Management token of `acme` with every scope.
    pub async fn token(&self) -> String {
        self.token_for(&self.creds, None).await
    }

    /// Create a user through the API; returns its JSON.
    pub async fn create_user(&self, token: &str, email: &str) -> Value {
        let resp = self
            .http
            .post(self.api("/users"))
            .bearer_auth(token)
            .json(&serde_json::json!({
                "connection": "Username-Password-Authentication",
                "email": email,
                "password": "correct horse battery",
            }))
            .send()
            .await
            .expect("create user");
        assert_eq!(resp.status(), 201, "create user {email}");
        resp.json().await.expect("json")
    }

    /// Stop the server and wait for it to drain. The database stays until the returned handle drops.
    pub async fn stop(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
        let placeholder = TestDb { url: String::new(), dir: None, pg: None };
        std::mem::replace(&mut self._db, placeholder)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}

/// Percent-encode a user id for a path segment (`auth0|x` → `auth0%7Cx`).
pub fn enc(id: &str) -> String {
    id.replace('%', "%25").replace('|', "%7C").replace('/', "%2F").replace(' ', "%20")
}

/// An HTTP client that does not follow redirects (to look at a 302's `Location` itself).
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// The value of the hidden form field `name` in a hosted page, unescaped.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).map(|i| i + marker.len()).expect("hidden field");
    let end = html[start..].find('"').expect("end") + start;
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// Decode quoted-printable soft breaks and `=XX` escapes (enough to read links out of a mail).
pub fn unqp(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Run one async test body on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident => $body:ident;)+) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = $crate::TestApp::spawn_on($crate::Backend::Sqlite).await {
                    super::$body(app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::TestApp::spawn_on($crate::Backend::Postgres).await {
                    super::$body(app).await;
                }
            }
        }
    )+};
}

/// Run one async store test on SQLite and on PostgreSQL, with the calling file's `fixture(backend)`.
#[macro_export]
macro_rules! on_store_backends {
    ($($name:ident => $body:ident;)+) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(f) = super::fixture($crate::Backend::Sqlite).await {
                    super::$body(f).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(f) = super::fixture($crate::Backend::Postgres).await {
                    super::$body(f).await;
                }
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn database_in_url() {
        assert_eq!(url_with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"), "postgres://postgres@127.0.0.1:5432/x");
        assert_eq!(url_with_database("postgres://u@h/db?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
        assert_eq!(url_with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
