//! Storage conformance: the same expectations, run against SQLite and PostgreSQL through the public
//! `Store` API (no HTTP). A behaviour that differs between backends fails here first.

use std::sync::Arc;

use roster_domain::log::{LogEvent, LogType};
use roster_domain::metadata::{MetadataKind, MetadataLimits, MetadataPatch};
use roster_domain::query::{Page, Sort, SortField, UserQuery};
use roster_domain::user::{Identity, NewUser, User, UserPatch};
use roster_domain::{ConnectionId, Email, Metadata, TenantName, Timestamp, UserId};
use roster_store::{ConflictKind, Store, StoreError, TenantStore};
use roster_testkit::{Backend, TestDb};
use serde_json::{Map, Value, json};

struct Fixture {
    store: Store,
    acme: TenantStore,
    acme_conn: ConnectionId,
    _db: TestDb,
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let store = db.store().await;
    roster::provision::create_tenant(&store, TenantName::parse("acme").expect("name"), "http://localhost").await.expect("tenant");
    let t = store.tenant_by_name(&TenantName::parse("acme").expect("name")).await.expect("read").expect("exists");
    let acme = store.tenant(t.id);
    let acme_conn = acme.connection_by_name("Username-Password-Authentication").await.expect("read").expect("exists").id;
    Some(Fixture { store, acme, acme_conn, _db: db })
}

fn new_user(conn: &ConnectionId, email: &str, created: i64) -> NewUser {
    let id = UserId::new_database();
    NewUser {
        user: User {
            identities: vec![Identity {
                connection: "Username-Password-Authentication".into(),
                provider: "auth0".into(),
                user_id: id.local().into(),
                is_social: false,
                profile_data: None,
            }],
            user_id: id,
            connection_id: conn.clone(),
            email: Some(Email::parse(email).expect("email")),
            email_verified: false,
            username: None,
            phone_number: None,
            phone_verified: false,
            name: Some(email.into()),
            given_name: None,
            family_name: None,
            nickname: None,
            picture: None,
            user_metadata: Metadata::empty(),
            app_metadata: Metadata::empty(),
            blocked: false,
            created_at: Timestamp::from_millis(created),
            updated_at: Timestamp::from_millis(created),
            last_login: None,
            last_ip: None,
            logins_count: 0,
            last_password_reset: None,
        },
        password_hash: Some("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
    }
}

fn ev() -> LogEvent {
    LogEvent::new(LogType::Sapi, "test")
}

fn patch(v: Value) -> UserPatch {
    let Value::Object(m) = v else { panic!("object") };
    UserPatch::parse(m, MetadataLimits::default()).expect("valid patch")
}

async fn apply(t: &TenantStore, id: &UserId, v: Value) -> Result<Option<User>, StoreError> {
    let p = patch(v);
    t.update_user(id, Box::new(move |u| u.apply(&p, MetadataLimits::default(), Timestamp::now())), None, &ev()).await
}

async fn tenants_and_isolation(f: Fixture) {
    let names: Vec<String> = f.store.list_tenants().await.expect("list").into_iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, vec!["acme"]);
    let dup = roster::provision::create_tenant(&f.store, TenantName::parse("acme").expect("n"), "http://x").await;
    assert!(matches!(dup, Err(roster::provision::ProvisionError::Exists(_))), "duplicate tenant refused");
    assert_eq!(f.store.list_tenants().await.expect("list").len(), 1, "nothing half-created");

    roster::provision::create_tenant(&f.store, TenantName::parse("other").expect("n"), "http://x").await.expect("tenant");
    let other_id = f.store.tenant_by_name(&TenantName::parse("other").expect("n")).await.expect("r").expect("e").id;
    let other = f.store.tenant(other_id);
    let other_conn = other.connection_by_name("Username-Password-Authentication").await.expect("r").expect("e").id;

    let u = new_user(&f.acme_conn, "jane@example.com", 1);
    f.acme.create_user(&u, &ev()).await.expect("create");
    // The same address in another tenant is a different person.
    other.create_user(&new_user(&other_conn, "jane@example.com", 1), &ev()).await.expect("same email, other tenant");

    let id = &u.user.user_id;
    assert!(other.user(id).await.expect("read").is_none(), "other tenant cannot read");
    assert!(apply(&other, id, json!({"name": "x"})).await.expect("update").is_none(), "other tenant cannot update");
    assert!(!other.delete_user(id, &ev()).await.expect("delete"), "other tenant cannot delete");
    assert!(other.password_hash(id).await.expect("read").is_none());
    let listed =
        other.list_users(&UserQuery::default(), Sort::default(), Page::new(None, None).expect("p"), true).await.expect("list");
    assert_eq!(listed.total, Some(1));
    assert!(listed.users.iter().all(|x| &x.user_id != id));
    assert_eq!(f.acme.user(id).await.expect("read").expect("still there").name.as_deref(), Some("jane@example.com"));

    assert!(f.store.delete_tenant(&TenantName::parse("acme").expect("n")).await.expect("delete"));
    assert!(f.acme.user(id).await.expect("read").is_none(), "tenant deletion removes its users");
    assert!(f.acme.logs(None, 10).await.expect("logs").is_empty(), "and its logs");
    assert_eq!(
        other.list_users(&UserQuery::default(), Sort::default(), Page::new(None, None).expect("p"), true).await.expect("l").total,
        Some(1)
    );
    assert!(!f.store.delete_tenant(&TenantName::parse("acme").expect("n")).await.expect("delete"), "already gone");
}

async fn uniqueness(f: Fixture) {
    let a = new_user(&f.acme_conn, "Jane@Example.com", 1);
    f.acme.create_user(&a, &ev()).await.expect("create");
    let b = new_user(&f.acme_conn, "JANE@example.COM", 2);
    assert!(matches!(f.acme.create_user(&b, &ev()).await, Err(StoreError::Conflict(ConflictKind::Email))));
    let mut c = new_user(&f.acme_conn, "other@example.com", 3);
    c.user.user_id = a.user.user_id.clone();
    assert!(matches!(f.acme.create_user(&c, &ev()).await, Err(StoreError::Conflict(ConflictKind::UserId))));
    let total = f
        .acme
        .list_users(&UserQuery::default(), Sort::default(), Page::new(None, None).expect("p"), true)
        .await
        .expect("l")
        .total;
    assert_eq!(total, Some(1), "failed inserts left nothing");
    // Changing an address to one in use is a conflict too, and changes nothing.
    let d = new_user(&f.acme_conn, "d@example.com", 4);
    f.acme.create_user(&d, &ev()).await.expect("create");
    assert!(matches!(
        apply(&f.acme, &d.user.user_id, json!({"email": "JANE@example.com"})).await,
        Err(StoreError::Conflict(ConflictKind::Email))
    ));
    assert_eq!(
        f.acme.user(&d.user.user_id).await.expect("r").expect("e").email.as_ref().map(|e| e.to_string()).as_deref(),
        Some("d@example.com")
    );
}

async fn update_merge_password_and_logs(f: Fixture) {
    let u = new_user(&f.acme_conn, "m@example.com", 1);
    let id = u.user.user_id.clone();
    f.acme.create_user(&u, &ev()).await.expect("create");
    apply(&f.acme, &id, json!({"user_metadata": {"a": 1, "b": {"y": 2}, "c": 3}})).await.expect("u").expect("e");
    let got = apply(&f.acme, &id, json!({"user_metadata": {"a": null, "b": {"x": 1}}})).await.expect("u").expect("e");
    assert_eq!(got.user_metadata.into_value(), json!({"b": {"x": 1}, "c": 3}));
    let got = apply(&f.acme, &id, json!({"user_metadata": {}, "app_metadata": {"plan": "pro"}})).await.expect("u").expect("e");
    assert_eq!(got.user_metadata.into_value(), json!({}));
    let read = f.acme.user(&id).await.expect("r").expect("e");
    assert_eq!(read.app_metadata.clone().into_value(), json!({"plan": "pro"}), "the write is visible to a fresh read");
    assert!(read.updated_at > u.user.updated_at);

    // A refused mutation rolls back and changes nothing.
    let limits = MetadataLimits { max_bytes: 300, max_depth: 10 };
    let big = MetadataPatch::parse(MetadataKind::User, json!({"big": "x".repeat(400)}), limits).expect("valid");
    let r = f
        .acme
        .update_user(
            &id,
            Box::new(move |u| {
                u.user_metadata = u.user_metadata.merged(&big, MetadataKind::User, limits)?;
                Ok(())
            }),
            Some("$argon2id$new".into()),
            &ev(),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Rejected(_))));
    assert_eq!(f.acme.password_hash(&id).await.expect("r").as_deref(), Some("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA"));

    f.acme.update_user(&id, Box::new(|_| Ok(())), Some("$argon2id$new".into()), &ev()).await.expect("u").expect("e");
    assert_eq!(f.acme.password_hash(&id).await.expect("r").as_deref(), Some("$argon2id$new"));

    let mut before = LogEvent::new(LogType::S, "a login before the deletion");
    before.user_id = Some(id.clone());
    before.user_name = Some("ann@example.com".into());
    before.ip = Some("192.0.2.7".into());
    f.acme.append_effects(before).await.expect("event");
    let mut del = LogEvent::new(LogType::Sdu, "Deleted User");
    del.user_id = Some(id.clone());
    assert!(f.acme.delete_user(&id, &del).await.expect("delete"));
    assert!(f.acme.user(&id).await.expect("r").is_none());
    assert!(f.acme.password_hash(&id).await.expect("r").is_none(), "credentials go with the user");
    // Erasure: no event names the user any more; theirs (the deletion's included) carry one pseudonym
    // and no name or address.
    assert!(f.acme.logs(Some(&id), 10).await.expect("logs").is_empty());
    let all = f.acme.logs(None, 100).await.expect("logs");
    let sdu = all.iter().find(|l| l.kind == "sdu").expect("sdu logged");
    let pseudonym = sdu.user_id.clone().expect("pseudonym");
    assert!(pseudonym.as_str().starts_with("deleted|"), "{pseudonym:?}");
    let login = all.iter().find(|l| l.kind == "s").expect("login event kept");
    assert_eq!(login.user_id.as_ref(), Some(&pseudonym));
    assert_eq!((login.user_name.as_deref(), login.ip.as_deref()), (None, None));
    // Standalone events are appended in batches.
    f.store
        .append_logs(&[
            (f.acme.tenant_id().clone(), LogEvent::new(LogType::Seccft, "a")),
            (f.acme.tenant_id().clone(), LogEvent::new(LogType::Seccft, "b")),
        ])
        .await
        .expect("append");
    let all = f.acme.logs(None, 100).await.expect("logs");
    assert_eq!(all.iter().filter(|l| l.kind == "seccft").count(), 2);
    assert!(all.iter().filter(|l| l.kind == "sapi").count() >= 4, "each successful update logged in its transaction");
}

async fn listing(f: Fixture) {
    for (i, e) in ["c@example.com", "a@example.com", "b@example.com", "d@example.com"].iter().enumerate() {
        let mut u = new_user(&f.acme_conn, e, 100 + i as i64);
        u.user.blocked = i % 2 == 1;
        u.user.name = Some(if i == 0 { "Zoë".into() } else { format!("name{i}") });
        f.acme.create_user(&u, &ev()).await.expect("create");
    }
    let page = Page::new(Some(0), Some(2)).expect("p");
    let l = f.acme.list_users(&UserQuery::default(), Sort::default(), page, true).await.expect("l");
    let emails: Vec<String> = l.users.iter().map(|u| u.email.as_ref().map(|e| e.to_string()).unwrap_or_default()).collect();
    assert_eq!(emails, vec!["c@example.com", "a@example.com"], "default order is creation");
    assert_eq!(l.total, Some(4));
    let by_email = Sort { field: SortField::Email, descending: true };
    let l = f.acme.list_users(&UserQuery::default(), by_email, Page::new(Some(1), Some(3)).expect("p"), false).await.expect("l");
    assert_eq!(l.users.len(), 1);
    assert_eq!(l.users[0].email.as_ref().map(|e| e.to_string()).as_deref(), Some("a@example.com"));
    assert_eq!(l.total, None);
    let q = UserQuery::parse(r#"email:"B@EXAMPLE.com""#).expect("q");
    let l = f.acme.list_users(&q, Sort::default(), Page::new(None, None).expect("p"), true).await.expect("l");
    assert_eq!((l.users.len(), l.total), (1, Some(1)));
    let q = UserQuery::parse("blocked:true AND email_verified:false").expect("q");
    let l = f.acme.list_users(&q, Sort::default(), Page::new(None, None).expect("p"), true).await.expect("l");
    assert_eq!(l.total, Some(2));
    let q = UserQuery::parse(r#"name:"ZOË" AND identities.connection:"Username-Password-Authentication""#).expect("q");
    let l = f.acme.list_users(&q, Sort::default(), Page::new(None, None).expect("p"), true).await.expect("l");
    assert_eq!(l.total, Some(1), "case-insensitive name match, also for non-ASCII");
    // NULLs sort last in both directions, the same on both engines.
    let by_login = Sort { field: SortField::LastLogin, descending: true };
    let l = f.acme.list_users(&UserQuery::default(), by_login, Page::new(None, None).expect("p"), false).await.expect("l");
    assert_eq!(l.users.len(), 4);
    let exact = f.acme.users_by_email("a@example.com").await.expect("by email");
    assert_eq!(exact.len(), 1);
    assert!(f.acme.users_by_email("A@example.com").await.expect("by email").is_empty(), "users-by-email is case-sensitive");
}

async fn concurrent_merges_lose_nothing(f: Fixture) {
    let u = new_user(&f.acme_conn, "race@example.com", 1);
    let id = u.user.user_id.clone();
    f.acme.create_user(&u, &ev()).await.expect("create");
    let acme = Arc::new(f.acme.clone());
    let mut tasks = Vec::new();
    for i in 0..100 {
        let acme = acme.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let mut m = Map::new();
            m.insert(format!("k{i}"), json!(i));
            apply(&acme, &id, json!({ "user_metadata": Value::Object(m) })).await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("update").expect("exists");
    }
    let got = f.acme.user(&id).await.expect("r").expect("e");
    assert_eq!(got.user_metadata.as_map().len(), 100, "every concurrent merge kept its key");
}

fn refresh(
    user: &UserId,
    client: &roster_domain::ClientId,
    family: &str,
    id: &str,
    session: Option<&str>,
) -> roster_store::RefreshToken {
    let now = Timestamp::now();
    roster_store::RefreshToken {
        id_hash: id.into(),
        family_id: family.into(),
        user_id: user.clone(),
        client_id: client.clone(),
        scope: "openid offline_access".into(),
        audience: None,
        session_id: session.map(str::to_owned),
        auth_time: now,
        created_at: now,
        expires_at: Timestamp::from_millis(now.millis() + 3_600_000),
        rotated: false,
        revoked: false,
    }
}

async fn sessions_codes_refresh_tokens(f: Fixture) {
    use roster_store::{AuthCode, Rotation, Session};
    let u = new_user(&f.acme_conn, "s@example.com", 1);
    let id = u.user.user_id.clone();
    f.acme.create_user(&u, &ev()).await.expect("create");
    let client = f.acme.list_clients().await.expect("clients")[0].client_id.clone();
    let now = Timestamp::now();
    let later = Timestamp::from_millis(now.millis() + 600_000);

    // Codes are single use, even under concurrent redemption.
    let code = AuthCode {
        id_hash: "code1".into(),
        client_id: client.clone(),
        user_id: id.clone(),
        redirect_uri: "https://app.example/cb".into(),
        scope: "openid".into(),
        audience: None,
        nonce: Some("n".into()),
        code_challenge: Some("c".into()),
        session_id: None,
        auth_time: now,
        expires_at: later,
    };
    f.acme.create_code(&code).await.expect("code");
    let (a, b) = tokio::join!(f.acme.consume_code("code1", now), f.acme.consume_code("code1", now));
    let wins = [a.expect("a"), b.expect("b")].into_iter().flatten().count();
    assert_eq!(wins, 1, "exactly one redemption wins");
    let expired = AuthCode { id_hash: "code2".into(), expires_at: Timestamp::from_millis(now.millis() - 1), ..code.clone() };
    f.acme.create_code(&expired).await.expect("code");
    assert!(f.acme.consume_code("code2", now).await.expect("consume").is_none(), "expired codes are refused");

    // Sessions.
    let s = Session {
        id_hash: "sess1".into(),
        user_id: id.clone(),
        created_at: now,
        authenticated_at: now,
        last_seen_at: now,
        expires_at: later,
        ip: Some("127.0.0.1".into()),
        user_agent: None,
    };
    f.acme.create_session(&s).await.expect("session");
    f.acme.create_session(&Session { id_hash: "sess2".into(), ..s.clone() }).await.expect("session");
    assert!(f.acme.session("sess1", now).await.expect("read").is_some());
    assert!(f.acme.session("sess1", later).await.expect("read").is_none(), "expired");

    // Refresh rotation and re-use detection.
    f.acme.create_refresh(&refresh(&id, &client, "fam", "rt1", Some("sess1"))).await.expect("rt");
    let r = f.acme.rotate_refresh("rt1", &refresh(&id, &client, "fam", "rt2", Some("sess1")), now).await.expect("rotate");
    assert!(matches!(r, Rotation::Rotated(ref old) if old.id_hash == "rt1"));
    let r = f.acme.rotate_refresh("rt1", &refresh(&id, &client, "fam", "rt3", Some("sess1")), now).await.expect("rotate");
    assert_eq!(r, Rotation::Reused, "presenting a rotated token");
    let r = f.acme.rotate_refresh("rt2", &refresh(&id, &client, "fam", "rt4", Some("sess1")), now).await.expect("rotate");
    assert_eq!(r, Rotation::Reused, "the whole family was revoked, including the newest token");
    assert!(f.acme.refresh_token("rt3").await.expect("read").is_none(), "nothing was issued on re-use");
    assert_eq!(f.acme.rotate_refresh("nope", &refresh(&id, &client, "x", "rt5", None), now).await.expect("r"), Rotation::Invalid);

    // Revoking a user's grants keeps only the named session.
    f.acme.create_refresh(&refresh(&id, &client, "fam2", "rt6", Some("sess2"))).await.expect("rt");
    f.acme.create_refresh(&refresh(&id, &client, "fam3", "rt7", Some("sess1"))).await.expect("rt");
    f.acme.revoke_user_grants(&id, Some("sess1"), now).await.expect("revoke");
    assert!(f.acme.session("sess1", now).await.expect("r").is_some());
    assert!(f.acme.session("sess2", now).await.expect("r").is_none());
    assert!(f.acme.refresh_token("rt6").await.expect("r").expect("exists").revoked);
    assert!(!f.acme.refresh_token("rt7").await.expect("r").expect("exists").revoked, "bound to the kept session");
    assert!(f.acme.revoke_session("sess1", &ev()).await.expect("revoke"));
    assert!(f.acme.refresh_token("rt7").await.expect("r").expect("exists").revoked, "ends with its session");

    // Login lookup by email (any case) with the hash; unsent mail and grants go with the user.
    let (found, hash) = f.acme.user_by_login(&f.acme_conn, "S@EXAMPLE.COM").await.expect("lookup").expect("found");
    assert_eq!((found.user_id.clone(), hash.is_some()), (id.clone(), true));
    let mail = roster_store::OutboxMessage::new("verify_email", "s@example.com", Some(id.clone()), json!({}));
    f.acme.update_user(&id, Box::new(|_| Ok(())), None, roster_store::Effects::log(ev()).with_mail(mail)).await.expect("u");
    assert_eq!(f.acme.outbox_for_user(&id).await.expect("outbox").len(), 1, "mail written with the change");
    assert!(f.acme.delete_user(&id, &ev()).await.expect("delete"));
    assert!(f.acme.outbox_for_user(&id).await.expect("outbox").is_empty());
    assert!(f.acme.refresh_token("rt6").await.expect("r").is_none());
}

/// Concurrent writes, some of which fail, are committed together (SQLite group commit): a failing one
/// rolls back alone and every acknowledged one is durable and visible.
async fn concurrent_mixed_outcomes(f: Fixture) {
    let acme = Arc::new(f.acme.clone());
    let mut tasks = Vec::new();
    for i in 0..60 {
        let acme = acme.clone();
        let conn = f.acme_conn.clone();
        // Every third user uses the same address: exactly one of those may win.
        let email = if i % 3 == 0 { "same@example.com".to_owned() } else { format!("u{i}@example.com") };
        tasks.push(tokio::spawn(async move {
            let u = new_user(&conn, &email, i);
            let r = acme.create_user(&u, &ev()).await;
            (u.user.user_id, r)
        }));
    }
    let mut ok = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.expect("join") {
            (id, Ok(())) => ok.push(id),
            (_, Err(StoreError::Conflict(ConflictKind::Email))) => conflicts += 1,
            (_, Err(e)) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!((ok.len(), conflicts), (41, 19), "40 distinct addresses plus one winner of the shared one");
    for id in &ok {
        assert!(f.acme.user(id).await.expect("read").is_some(), "acknowledged writes are visible");
    }
    let total = f
        .acme
        .list_users(&UserQuery::default(), Sort::default(), Page::new(None, None).expect("p"), true)
        .await
        .expect("l")
        .total;
    assert_eq!(total, Some(41));
    let logs = f.acme.logs(None, 1000).await.expect("logs");
    assert_eq!(logs.len(), 41, "a refused write leaves no log event behind");
}

roster_testkit::on_store_backends! {
    mixed => concurrent_mixed_outcomes;
    grants => sessions_codes_refresh_tokens;
    tenants => tenants_and_isolation;
    unique => uniqueness;
    update => update_merge_password_and_logs;
    list => listing;
    concurrency => concurrent_merges_lose_nothing;
    outbox => outbox_leases_outcomes_and_retries;
    outbox_race => concurrent_relays_never_share_a_row;
    mail_settings => email_templates_and_provider;
    tickets => tickets_are_single_use_and_expire;
    attack => attack_counters_are_atomic_windowed_and_scoped;
    account => account_settings_sessions_and_erasure;
    read_your_writes => reads_see_every_acknowledged_write;
    columns => each_changed_column_is_stored;
    abandoned_write => a_read_agrees_with_the_database_after_an_abandoned_write;
    other_process => a_write_of_another_process_is_seen;
    user_logs => user_logs_whether_indexed_or_not;
}

/// A user's log events, read before and after the by-user index caught up (SQLite writes it behind the
/// log table; `index_logs_now` runs what the writer does every second): always all of them, newest
/// first, and only theirs. A deleted user's events all lose the id, indexed or not. And when a deleted
/// tenant had the newest events, the events written after it are still found (SQLite reuses the rowids
/// of deleted rows, which the index's watermark must not skip).
async fn user_logs_whether_indexed_or_not(f: Fixture) {
    let named = |id: &UserId, what: &str| {
        let mut e = LogEvent::new(LogType::S, what);
        e.user_id = Some(id.clone());
        e
    };
    let descriptions = |logs: Vec<roster_store::LogRecord>| logs.into_iter().map(|l| l.description).collect::<Vec<_>>();
    let (ann, bob) = (new_user(&f.acme_conn, "ann@example.com", 1), new_user(&f.acme_conn, "bob@example.com", 2));
    let (a, b) = (ann.user.user_id.clone(), bob.user.user_id.clone());
    f.acme.create_user(&ann, &ev()).await.expect("create");
    f.acme.create_user(&bob, &ev()).await.expect("create");
    let t = f.acme.tenant_id().clone();
    for (i, id) in [&a, &b, &a].into_iter().enumerate() {
        f.store.append_logs(&[(t.clone(), named(id, &format!("old {i}")))]).await.expect("append");
    }
    assert_eq!(descriptions(f.acme.logs(Some(&a), 10).await.expect("logs")), ["old 2", "old 0"], "before indexing");
    f.store.index_logs_now().await.expect("index");
    assert_eq!(descriptions(f.acme.logs(Some(&a), 10).await.expect("logs")), ["old 2", "old 0"], "indexed");
    for (i, id) in [&a, &b].into_iter().enumerate() {
        f.store.append_logs(&[(t.clone(), named(id, &format!("new {i}")))]).await.expect("append");
    }
    assert_eq!(descriptions(f.acme.logs(Some(&a), 10).await.expect("logs")), ["new 0", "old 2", "old 0"], "both parts");
    assert_eq!(descriptions(f.acme.logs(Some(&a), 2).await.expect("logs")), ["new 0", "old 2"], "the limit over both");
    assert_eq!(descriptions(f.acme.logs(Some(&b), 10).await.expect("logs")), ["new 1", "old 1"]);

    // Deletion: the indexed events and the newer ones all lose the id, and stay in the tenant's log.
    assert!(f.acme.delete_user(&a, &ev()).await.expect("delete"));
    assert!(f.acme.logs(Some(&a), 10).await.expect("logs").is_empty());
    f.store.index_logs_now().await.expect("index");
    assert!(f.acme.logs(Some(&a), 10).await.expect("logs").is_empty(), "nor once indexed again");
    let all = f.acme.logs(None, 100).await.expect("logs");
    assert!(all.iter().all(|l| l.user_id.as_ref() != Some(&a)));
    assert_eq!(all.iter().filter(|l| l.user_id.as_ref().is_some_and(|u| u.as_str().starts_with("deleted|"))).count(), 3);

    // A tenant whose events are the newest is deleted; the next events reuse their place.
    roster::provision::create_tenant(&f.store, TenantName::parse("gone").expect("name"), "http://x").await.expect("tenant");
    let gone = f.store.tenant_by_name(&TenantName::parse("gone").expect("n")).await.expect("r").expect("e").id;
    for i in 0..5 {
        f.store.append_logs(&[(gone.clone(), named(&b, &format!("gone {i}")))]).await.expect("append");
    }
    f.store.index_logs_now().await.expect("index");
    assert!(f.store.delete_tenant(&TenantName::parse("gone").expect("n")).await.expect("delete"));
    for i in 0..3 {
        f.store.append_logs(&[(t.clone(), named(&b, &format!("after {i}")))]).await.expect("append");
    }
    let want = ["after 2", "after 1", "after 0", "new 1", "old 1"];
    assert_eq!(descriptions(f.acme.logs(Some(&b), 10).await.expect("logs")), want, "before indexing");
    f.store.index_logs_now().await.expect("index");
    assert_eq!(descriptions(f.acme.logs(Some(&b), 10).await.expect("logs")), want, "indexed");
}

/// A write made beside the node — by another process on the same database (a second node,
/// `roster tenant …`, a tool), here a connection of its own that no store counts — shows in the node's
/// reads within moments, whatever copy the node kept in memory. (The deadline is far below the user
/// cache's 30 s backstop, so a node that only waited for its copies to expire fails.)
async fn a_write_of_another_process_is_seen(f: Fixture) {
    let u = new_user(&f.acme_conn, "elsewhere@example.com", 1);
    let id = u.user.user_id.clone();
    f.acme.create_user(&u, &ev()).await.expect("create");
    for _ in 0..3 {
        assert_eq!(f.acme.user(&id).await.expect("read").expect("exists").name, u.user.name);
    }
    let sql = "UPDATE users SET name = $1 WHERE tenant_id = $2 AND user_id = $3";
    let (tenant, user) = (f.acme.tenant_id().as_str().to_owned(), id.as_str().to_owned());
    if f._db.url.starts_with("sqlite:") {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&f._db.url).await.expect("connect");
        sqlx::query(sql).bind("Changed Elsewhere").bind(&tenant).bind(&user).execute(&mut c).await.expect("update");
        c.close().await.expect("close");
    } else {
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(&f._db.url).await.expect("connect");
        sqlx::query(sql).bind("Changed Elsewhere").bind(&tenant).bind(&user).execute(&mut c).await.expect("update");
        c.close().await.expect("close");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let name = f.acme.user(&id).await.expect("read").expect("exists").name.clone();
        if name.as_deref() == Some("Changed Elsewhere") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the node still answers {name:?} 2 s after another process's write");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A node may answer reads of a user from memory (SQLite's user cache). A write whose caller stopped
/// waiting after it was queued (a client that hung up) is still committed or not as a whole, and a
/// read after it must agree with a fresh store's read of the database either way.
async fn a_read_agrees_with_the_database_after_an_abandoned_write(f: Fixture) {
    let (a, b) = (new_user(&f.acme_conn, "abandon-a@example.com", 1), new_user(&f.acme_conn, "abandon-b@example.com", 1));
    let (id_a, id_b) = (a.user.user_id.clone(), b.user.user_id.clone());
    f.acme.create_user(&a, &ev()).await.expect("create");
    f.acme.create_user(&b, &ev()).await.expect("create");
    for round in 0..20 {
        let before = f.acme.user(&id_a).await.expect("read").expect("exists");
        let name = format!("abandoned-{round}");
        // One poll queues the write; then its caller goes away.
        let abandoned = apply(&f.acme, &id_a, json!({ "name": name }));
        let _ = tokio::time::timeout(std::time::Duration::ZERO, abandoned).await;
        // A later write through the same writer: once it is acknowledged, the abandoned one is done.
        apply(&f.acme, &id_b, json!({ "user_metadata": { "round": round } })).await.expect("update").expect("exists");
        let cached = f.acme.user(&id_a).await.expect("read").expect("exists");
        let fresh = f._db.store().await.tenant(f.acme.tenant_id().clone()).user(&id_a).await.expect("read").expect("exists");
        assert_eq!(cached.name, fresh.name, "round {round}: the node's read and the database agree");
        if cached.name != before.name {
            assert_eq!(cached.name.as_deref(), Some(name.as_str()));
        }
    }
}

/// An update writes only the columns whose value changed: each field changed alone must be stored (and
/// read back whole), a change of nothing must succeed, and the unique email and username indexes must
/// still see the new values.
async fn each_changed_column_is_stored(f: Fixture) {
    let u = new_user(&f.acme_conn, "cols@example.com", 1);
    let id = u.user.user_id.clone();
    f.acme.create_user(&u, &ev()).await.expect("create");
    type Change = fn(&mut User);
    let changes: [(&str, Change); 20] = [
        ("email", |u| u.email = Some(Email::parse("Cols2@Example.com").expect("email"))),
        ("email_verified", |u| u.email_verified = true),
        ("username", |u| u.username = Some("cols_user".into())),
        ("phone_number", |u| u.phone_number = Some("+15550100".into())),
        ("phone_verified", |u| u.phone_verified = true),
        ("name", |u| u.name = None),
        ("given_name", |u| u.given_name = Some("Given".into())),
        ("family_name", |u| u.family_name = Some("Family".into())),
        ("nickname", |u| u.nickname = Some("nick".into())),
        ("picture", |u| u.picture = Some("https://example.com/p.png".into())),
        ("user_metadata", |u| u.user_metadata = Metadata::from_trusted(Map::from_iter([("lang".to_owned(), json!("fr"))]))),
        ("app_metadata", |u| u.app_metadata = Metadata::from_trusted(Map::from_iter([("plan".to_owned(), json!({"tier": 2}))]))),
        ("blocked", |u| u.blocked = true),
        ("identities", |u| u.identities[0].profile_data = Some(json!({"email": "cols@example.com"}))),
        ("updated_at", |u| u.updated_at = Timestamp::from_millis(7)),
        ("last_login", |u| u.last_login = Some(Timestamp::from_millis(8))),
        ("last_ip", |u| u.last_ip = Some("192.0.2.9".into())),
        ("logins_count", |u| u.logins_count = 3),
        ("last_password_reset", |u| u.last_password_reset = Some(Timestamp::from_millis(9))),
        ("nothing", |_| {}),
    ];
    let mut expected = u.user.clone();
    for (field, change) in changes {
        change(&mut expected);
        let got = f
            .acme
            .update_user(
                &id,
                Box::new(move |u| {
                    change(u);
                    Ok(())
                }),
                None,
                &ev(),
            )
            .await
            .expect("update")
            .expect("exists");
        assert_eq!(got, expected, "{field}: the answer");
        assert_eq!(*f.acme.user(&id).await.expect("read").expect("exists"), expected, "{field}: stored");
    }
    let other = new_user(&f.acme_conn, "cols2@example.com", 2);
    assert!(matches!(f.acme.create_user(&other, &ev()).await, Err(StoreError::Conflict(_))), "the new email is indexed");
    assert!(f.acme.users_by_email("cols@example.com").await.expect("read").is_empty(), "the old one is not");
    let email = expected.email.as_ref().expect("email").as_str();
    assert_eq!(f.acme.users_by_email(email).await.expect("read").len(), 1, "the new email is found");
}

/// SQLite's fast reads keep a read snapshot open between reads; whatever this process commits (the
/// group-commit writer, the admin write pool) must end it before the write is acknowledged, and a
/// write by another process must show within a bounded time. Alternates writes and reads of the
/// same row so that every read would see a stale value if a snapshot outlived a write.
async fn reads_see_every_acknowledged_write(f: Fixture) {
    let u = new_user(&f.acme_conn, "snap@example.com", 1);
    let id = u.user.user_id.clone();
    f.acme.create_user(&u, &ev()).await.expect("create");
    for i in 0..200 {
        // Group-commit writer.
        apply(&f.acme, &id, json!({ "user_metadata": { "n": i } })).await.expect("update").expect("exists");
        let read = f.acme.user(&id).await.expect("read").expect("exists");
        assert_eq!(read.user_metadata.as_map().get("n"), Some(&json!(i)), "read {i} sees write {i}");
        // Create goes through the group-commit writer, delete through the admin write pool.
        let other = new_user(&f.acme_conn, &format!("snap{i}@example.com"), 1);
        let other_id = other.user.user_id.clone();
        f.acme.create_user(&other, &ev()).await.expect("create");
        assert!(f.acme.user(&other_id).await.expect("read").is_some(), "read sees create {i}");
        assert!(f.acme.delete_user(&other_id, &ev()).await.expect("delete"));
        assert!(f.acme.user(&other_id).await.expect("read").is_none(), "read sees delete {i}");
    }
    // Another process (a connection with none of the store's hooks) writes: the store's reads show
    // it soon (SQLite: within the snapshot's age bound; PostgreSQL: at once).
    let sql = format!("UPDATE users SET name = 'from outside' WHERE user_id = '{}'", id.as_str());
    if f._db.url.starts_with("sqlite:") {
        let mut outside = <sqlx::SqliteConnection as sqlx::Connection>::connect(&f._db.url).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut outside).await.expect("write from outside");
    } else {
        let mut outside = <sqlx::PgConnection as sqlx::Connection>::connect(&f._db.url).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut outside).await.expect("write from outside");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let read = f.acme.user(&id).await.expect("read").expect("exists");
        if read.name.as_deref() == Some("from outside") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a write by another process never became visible");
        tokio::task::yield_now().await;
    }
}

fn queued(n: usize) -> roster_store::Effects {
    let mut e = roster_store::Effects::default();
    for i in 0..n {
        e.outbox.push(roster_store::OutboxMessage::new("verify_email", &format!("m{i}@example.com"), None, json!({"i": i})));
    }
    e
}

/// The relay's queue: claims lease and count an attempt, outcomes are recorded only by the lease
/// holder, released rows come back without the attempt, expired leases are taken over, dead rows are
/// retried on demand, and a delivered row keeps no variables.
async fn outbox_leases_outcomes_and_retries(f: Fixture) {
    use roster_store::{Delivery, OutboxFilter};
    use std::time::Duration;
    let t = f.acme.tenant_id().clone();
    f.acme.append_effects(queued(3)).await.expect("queue");
    let now = Timestamp::now();
    let lease = Duration::from_secs(60);
    let a = f.store.claim_outbox("relay_a", now, lease, 2).await.expect("claim");
    assert_eq!(a.len(), 2, "limit respected");
    assert!(a.iter().all(|m| m.attempts == 1 && m.tenant == t));
    let b = f.store.claim_outbox("relay_b", now, lease, 10).await.expect("claim");
    assert_eq!(b.len(), 1, "leased rows are not claimed twice");
    assert!(f.store.claim_outbox("relay_c", now, lease, 10).await.expect("claim").is_empty());

    // Only the lease holder records an outcome.
    let first = &a[0].message.id;
    assert!(!f.store.finish_outbox(&t, first, "relay_b", &Delivery::Delivered, now).await.expect("finish"));
    assert!(f.store.finish_outbox(&t, first, "relay_a", &Delivery::Delivered, now).await.expect("finish"));
    let row = f.acme.outbox_row(first).await.expect("read").expect("exists");
    assert_eq!((row.status.as_str(), row.attempts, row.message.payload.clone()), ("delivered", 1, json!({})));
    assert!(row.delivered_at.is_some());

    // A transient failure schedules the next attempt; a permanent one is dead.
    let second = &a[1].message.id;
    let later = Timestamp::from_millis(now.millis() + 10_000);
    let retry = Delivery::Retry { error: "451 try later".into(), at: later };
    assert!(f.store.finish_outbox(&t, second, "relay_a", &retry, now).await.expect("finish"));
    assert!(f.store.claim_outbox("relay_c", now, lease, 10).await.expect("claim").is_empty(), "not due yet");
    let again = f.store.claim_outbox("relay_c", later, lease, 10).await.expect("claim");
    assert_eq!(again.iter().map(|m| (m.message.id.as_str(), m.attempts)).collect::<Vec<_>>(), vec![(second.as_str(), 2)]);
    let dead = Delivery::Dead { error: "550 no such user".into() };
    assert!(f.store.finish_outbox(&t, second, "relay_c", &dead, later).await.expect("finish"));
    let listed = f.acme.list_outbox(&OutboxFilter { user: None, status: Some("dead".into()) }, 10).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].last_error.as_deref(), listed[0].attempts), (Some("550 no such user"), 2));
    assert_eq!(listed[0].message.payload, a[1].message.payload, "a dead row keeps what it needs to be retried");
    assert!(listed[0].message.payload["i"].is_number());

    // Retry on demand: back to pending with a fresh count; only dead or suppressed rows qualify.
    assert!(f.acme.retry_outbox(first, later, &ev()).await.expect("retry").is_none(), "a delivered row is not retried");
    let row = f.acme.retry_outbox(second, later, &ev()).await.expect("retry").expect("retried");
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 0));

    // Releasing gives the attempt back; an expired lease is taken over by another relay.
    let third = &b[0].message.id;
    assert_eq!(f.store.release_outbox("relay_b", &[(t.clone(), third.clone())]).await.expect("release"), 1);
    let c = f.store.claim_outbox("relay_c", later, Duration::from_millis(1), 10).await.expect("claim");
    let ids: Vec<(&str, i64)> = c.iter().map(|m| (m.message.id.as_str(), m.attempts)).collect();
    assert!(ids.contains(&(third.as_str(), 1)) && ids.contains(&(second.as_str(), 1)), "{ids:?}");
    let after_expiry = Timestamp::from_millis(later.millis() + 5);
    let d = f.store.claim_outbox("relay_d", after_expiry, lease, 10).await.expect("claim");
    assert_eq!(d.len(), 2, "expired leases are claimable");
    assert!(!f.store.finish_outbox(&t, third, "relay_c", &Delivery::Delivered, after_expiry).await.expect("f"), "lost lease");
    assert!(
        f.store
            .finish_outbox(&t, third, "relay_d", &Delivery::Suppressed { reason: "disabled".into() }, after_expiry)
            .await
            .expect("f")
    );
    assert_eq!(f.acme.outbox_row(third).await.expect("read").expect("exists").status, "suppressed");
}

/// Two relays claiming at once, over and over, never hold the same row and together take them all.
async fn concurrent_relays_never_share_a_row(f: Fixture) {
    use std::collections::HashSet;
    use std::time::Duration;
    f.acme.append_effects(queued(60)).await.expect("queue");
    let now = Timestamp::now();
    let claim = |owner: &'static str| {
        let store = f.store.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store.claim_outbox(owner, now, Duration::from_secs(60), 4).await.expect("claim");
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|m| m.message.id));
            }
        })
    };
    let (a, b) = (claim("relay_a"), claim("relay_b"));
    let (a, b) = (a.await.expect("join"), b.await.expect("join"));
    let all: HashSet<&String> = a.iter().chain(b.iter()).collect();
    assert_eq!(a.len() + b.len(), 60, "every row claimed once");
    assert_eq!(all.len(), 60, "no row claimed by both relays");
}

/// Email templates (insert vs replace) and the provider (one per tenant), confined to their tenant.
async fn email_templates_and_provider(f: Fixture) {
    use roster_store::{EmailProvider, EmailTemplate};
    let tpl = EmailTemplate {
        name: "verify_email".into(),
        body: "<p>{{ user.email }}</p>".into(),
        from: "a@example.com".into(),
        subject: "Hi".into(),
        syntax: "liquid".into(),
        result_url: Some("https://app.example/done".into()),
        url_lifetime_secs: Some(3600),
        include_email_in_redirect: false,
        enabled: true,
        updated_at: Timestamp::from_millis(1000),
    };
    assert_eq!(f.acme.email_template("verify_email").await.expect("read"), None);
    f.acme.put_email_template(&tpl, true, &ev()).await.expect("insert");
    assert!(matches!(f.acme.put_email_template(&tpl, true, &ev()).await, Err(StoreError::Conflict(_))));
    let changed = EmailTemplate { subject: "Hello".into(), enabled: false, ..tpl.clone() };
    f.acme.put_email_template(&changed, false, &ev()).await.expect("replace");
    assert_eq!(f.acme.email_template("verify_email").await.expect("read"), Some(changed));

    let p = EmailProvider {
        name: "smtp".into(),
        enabled: true,
        default_from_address: Some("a@example.com".into()),
        credentials: "v1.sealed".into(),
        settings: json!({"tls": "starttls"}),
        updated_at: Timestamp::from_millis(1000),
    };
    f.acme.put_email_provider(&p, true, &ev()).await.expect("insert");
    assert!(matches!(f.acme.put_email_provider(&p, true, &ev()).await, Err(StoreError::Conflict(_))));
    let p2 = EmailProvider { enabled: false, updated_at: Timestamp::from_millis(2000), ..p.clone() };
    f.acme.put_email_provider(&p2, false, &ev()).await.expect("replace");
    assert_eq!(f.acme.email_provider().await.expect("read"), Some(p2));

    // Another tenant sees none of it.
    let other = roster::provision::create_tenant(&f.store, TenantName::parse("globex").expect("name"), "http://localhost")
        .await
        .expect("tenant");
    let gid = f.store.tenant_by_name(&TenantName::parse(&other.tenant).expect("n")).await.expect("r").expect("e").id;
    let globex = f.store.tenant(gid);
    assert_eq!(globex.email_template("verify_email").await.expect("read"), None);
    assert_eq!(globex.email_provider().await.expect("read"), None);
    assert!(!globex.delete_email_provider(&ev()).await.expect("delete"));
    assert!(f.acme.delete_email_provider(&ev()).await.expect("delete"));
    assert_eq!(f.acme.email_provider().await.expect("read"), None);
}

fn ticket(user: &UserId, kind: &str, token: &str, expires: i64) -> roster_store::Ticket {
    roster_store::Ticket {
        id_hash: format!("hash-{token}"),
        kind: kind.into(),
        user_id: user.clone(),
        email: Some("t@example.com".into()),
        client_id: None,
        result_url: Some("https://app.example/done".into()),
        mark_email_verified: false,
        include_email_in_redirect: true,
        created_at: Timestamp::now(),
        expires_at: Timestamp::from_millis(expires),
        used_at: None,
    }
}

/// Tickets ride along a change (Effects), are redeemed once with the change they authorize — also
/// under 20 concurrent redemptions — never after expiry, and are voided by a revocation; grants
/// revocations keep the named session.
async fn tickets_are_single_use_and_expire(f: Fixture) {
    use roster_store::{Effects, Redeemed, Revocation, ticket_kind};
    let new = new_user(&f.acme_conn, "t@example.com", 1000);
    let id = new.user.user_id.clone();
    let far = Timestamp::now().millis() + 3_600_000;
    let effects = Effects::log(ev())
        .with_ticket(ticket(&id, ticket_kind::PASSWORD_RESET, "a", far))
        .with_ticket(ticket(&id, ticket_kind::PASSWORD_RESET, "b", far))
        .with_ticket(ticket(&id, ticket_kind::EMAIL_VERIFICATION, "v", far))
        .with_ticket(ticket(&id, ticket_kind::EMAIL_VERIFICATION, "old", Timestamp::now().millis() - 1));
    f.acme.create_user(&new, effects).await.expect("create");
    // Read once first: the winner's change below must replace what a node may keep of this read.
    assert_eq!(f.acme.user(&id).await.expect("read").expect("exists").name.as_deref(), Some("t@example.com"));
    let now = Timestamp::now();
    let got = f.acme.ticket("hash-a").await.expect("read").expect("exists");
    assert_eq!(
        (got.kind.as_str(), got.used_at, got.result_url.as_deref()),
        ("password_reset", None, Some("https://app.example/done"))
    );

    // 20 concurrent redemptions of one ticket: exactly one applies its change.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let acme = f.acme.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("winner-{i}");
            acme.redeem_ticket(
                "hash-a",
                ticket_kind::PASSWORD_RESET,
                now,
                Box::new(move |u| {
                    u.name = Some(name);
                    Ok(())
                }),
                Some(format!("hash-{i}")),
                Effects::log(ev()),
            )
            .await
            .expect("redeem")
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Redeemed::Done { user, .. } = t.await.expect("join") {
            winners.push(user.name.expect("name"));
        }
    }
    assert_eq!(winners.len(), 1, "exactly one redemption succeeds");
    let stored = f.acme.user(&id).await.expect("read").expect("exists");
    assert_eq!(stored.name.as_deref(), Some(winners[0].as_str()), "the winner's change is the one stored");
    assert!(f.acme.ticket("hash-a").await.expect("read").expect("exists").used_at.is_some());

    // Wrong kind, expired, unknown: nothing happens.
    let noop = || -> roster_store::UserMutation {
        Box::new(|u| {
            u.name = Some("never".into());
            Ok(())
        })
    };
    assert_eq!(
        f.acme.redeem_ticket("hash-v", ticket_kind::PASSWORD_RESET, now, noop(), None, Effects::default()).await.expect("r"),
        Redeemed::Invalid
    );
    assert_eq!(
        f.acme
            .redeem_ticket("hash-old", ticket_kind::EMAIL_VERIFICATION, now, noop(), None, Effects::default())
            .await
            .expect("r"),
        Redeemed::Invalid
    );
    assert_eq!(
        f.acme.redeem_ticket("hash-nope", ticket_kind::PASSWORD_RESET, now, noop(), None, Effects::default()).await.expect("r"),
        Redeemed::Invalid
    );
    // A mutation that refuses rolls the redemption back: the ticket stays usable.
    let refuse: roster_store::UserMutation = Box::new(|_| Err(roster_domain::ValidationError::new("no")));
    assert!(
        f.acme.redeem_ticket("hash-v", ticket_kind::EMAIL_VERIFICATION, now, refuse, None, Effects::default()).await.is_err()
    );
    assert_eq!(f.acme.ticket("hash-v").await.expect("read").expect("exists").used_at, None);

    // A revocation in a change voids the user's other reset tickets and ends its grants but one session.
    let session = |id: &str| roster_store::Session {
        id_hash: id.into(),
        user_id: new.user.user_id.clone(),
        created_at: now,
        authenticated_at: now,
        last_seen_at: now,
        expires_at: Timestamp::from_millis(far),
        ip: None,
        user_agent: None,
    };
    f.acme.create_session(&session("keep")).await.expect("session");
    f.acme.create_session(&session("drop")).await.expect("session");
    let effects = Effects::log(ev())
        .with_revocation(Revocation::Tickets { user: id.clone(), kind: ticket_kind::PASSWORD_RESET.into(), at: now })
        .with_revocation(Revocation::Grants { user: id.clone(), keep_session: Some("keep".into()), at: now });
    f.acme.update_user(&id, Box::new(|_| Ok(())), Some("newhash".into()), effects).await.expect("update");
    assert!(f.acme.ticket("hash-b").await.expect("read").expect("exists").used_at.is_some(), "voided");
    assert_eq!(f.acme.ticket("hash-v").await.expect("read").expect("exists").used_at, None, "other kinds untouched");
    assert!(f.acme.session("keep", now).await.expect("read").is_some());
    assert!(f.acme.session("drop", now).await.expect("read").is_none());

    // Password history: newest first, 24 kept.
    for i in 0..30 {
        let effects = Effects::default().remember_password(id.clone(), format!("h{i}"));
        f.acme.append_effects(effects).await.expect("remember");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let history = f.acme.password_history(&id, 100).await.expect("history");
    assert_eq!(history.len(), 24, "trimmed to the newest 24");
    assert_eq!((history[0].as_str(), history[23].as_str()), ("h29", "h6"));
    assert_eq!(f.acme.password_history(&id, 3).await.expect("history"), vec!["h29", "h28", "h27"]);

    // A user's tickets and history go with the user.
    assert!(f.acme.delete_user(&id, &ev()).await.expect("delete"));
    assert!(f.acme.password_history(&id, 100).await.expect("history").is_empty());
    assert!(f.acme.ticket("hash-v").await.expect("read").is_none());
}

/// Attack counters: 100 concurrent charges see 100 distinct counts (so at most `limit` see one within
/// the limit), the block is stamped when the limit is reached, windows restart,
/// and blocks are listed and cleared by identifier, user and key.
async fn attack_counters_are_atomic_windowed_and_scoped(f: Fixture) {
    use roster_store::{Charge, CounterScope};
    let now = Timestamp::now();
    let user = UserId::new_database();
    let charge = move |key: &str, ip: &str, at: Timestamp| Charge {
        kind: "login".into(),
        key: key.into(),
        identifier: Some("victim@example.com".into()),
        ip: Some(ip.into()),
        connection: Some("Username-Password-Authentication".into()),
        user_id: Some(user.clone()),
        now: at,
        window_ms: 30 * 86_400_000,
        limit: 10,
    };
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (acme, c) = (f.acme.clone(), charge("victim@example.com|10.0.0.1", "10.0.0.1", now));
        tasks.push(tokio::spawn(async move { acme.charge(&c).await.expect("charge").count }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.expect("join"));
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=100).collect::<Vec<_>>(), "every attempt sees its own count");
    let c = f.acme.counter("login", "victim@example.com|10.0.0.1").await.expect("read").expect("exists");
    assert!(c.blocked_at.is_some() && c.count == 100);
    // Another IP is another counter (no lockout of the real user from elsewhere).
    let other = f.acme.charge(&charge("victim@example.com|10.0.0.2", "10.0.0.2", now)).await.expect("charge");
    assert_eq!((other.count, other.blocked_at), (1, None));
    // A window that is over starts again.
    let later = Timestamp::from_millis(now.millis() + 30 * 86_400_000 + 1);
    let fresh = f.acme.charge(&charge("victim@example.com|10.0.0.1", "10.0.0.1", later)).await.expect("charge");
    assert_eq!((fresh.count, fresh.blocked_at), (1, None));
    for _ in 0..9 {
        f.acme.charge(&charge("victim@example.com|10.0.0.1", "10.0.0.1", later)).await.expect("charge");
    }
    // Listing and clearing.
    let since = Timestamp::from_millis(later.millis() - 30 * 86_400_000);
    let by_id = f.acme.blocked_counters(&CounterScope::Identifier("Victim@Example.com".into()), since).await.expect("list");
    assert_eq!(by_id.iter().map(|c| c.ip.as_deref()).collect::<Vec<_>>(), vec![Some("10.0.0.1")]);
    let by_user = f.acme.blocked_counters(&CounterScope::User(c.user_id.clone().expect("user")), since).await.expect("list");
    assert_eq!(by_user.len(), 1);
    assert_eq!(f.acme.clear_counters(&CounterScope::Identifier("victim@example.com".into()), &ev()).await.expect("clear"), 2);
    assert!(f.acme.counter("login", "victim@example.com|10.0.0.2").await.expect("read").is_none());
    let ip = Charge { kind: "ip_login".into(), key: "10.9.9.9".into(), identifier: None, ..charge("x", "10.9.9.9", now) };
    f.acme.charge(&ip).await.expect("charge");
    f.acme.charge(&charge("other@example.com|10.9.9.9", "10.9.9.9", now)).await.expect("charge");
    assert_eq!(f.acme.clear_counters(&CounterScope::Ip("10.9.9.9".into()), &ev()).await.expect("clear"), 1);
    assert!(
        f.acme.counter("login", "other@example.com|10.9.9.9").await.expect("read").is_some(),
        "lifting an IP's throttling leaves the brute-force counters of its logins"
    );
    assert_eq!(
        f.acme.clear_counters(&CounterScope::Key { kind: "login".into(), key: "none".into() }, &ev()).await.expect("c"),
        0
    );
    // Settings.
    assert_eq!(f.acme.attack_settings("brute-force-protection").await.expect("read"), None);
    f.acme.put_attack_settings("brute-force-protection", &json!({"max_attempts": 3}), &ev()).await.expect("put");
    f.acme.put_attack_settings("brute-force-protection", &json!({"max_attempts": 5}), &ev()).await.expect("put");
    assert_eq!(f.acme.attack_settings("brute-force-protection").await.expect("read"), Some(json!({"max_attempts": 5})));
}

/// The self-service account: tenant settings round-trip and stay per tenant; a user's live sessions
/// are listed, re-authenticated and revoked one at a time (never another user's); the newest live
/// ticket of a kind is found; a revoked password stops existing; erasure leaves no row of the user.
async fn account_settings_sessions_and_erasure(f: Fixture) {
    use roster_store::{Effects, Revocation, Session, ticket_kind};
    assert_eq!(f.acme.tenant_settings().await.expect("read"), json!({}));
    let settings = json!({"friendly_name": "Acme", "account_portal": {"reauthentication_window": 600}});
    f.acme.put_tenant_settings(&settings, ev()).await.expect("write");
    assert_eq!(f.acme.tenant_settings().await.expect("read"), settings);
    roster::provision::create_tenant(&f.store, TenantName::parse("other").expect("name"), "http://localhost")
        .await
        .expect("tenant");
    let other = f.store.tenant(f.store.tenant_by_name(&TenantName::parse("other").expect("n")).await.expect("r").expect("t").id);
    assert_eq!(other.tenant_settings().await.expect("read"), json!({}), "settings are per tenant");

    let now = Timestamp::now();
    let far = Timestamp::from_millis(now.millis() + 3_600_000);
    let mk = |id: &str, user: &UserId, seen: i64| Session {
        id_hash: id.into(),
        user_id: user.clone(),
        created_at: now,
        authenticated_at: Timestamp::from_millis(0),
        last_seen_at: Timestamp::from_millis(now.millis() - seen),
        expires_at: far,
        ip: Some("192.0.2.1".into()),
        user_agent: Some("UA".into()),
    };
    let ann = new_user(&f.acme_conn, "ann@example.com", 1000);
    let bob = new_user(&f.acme_conn, "bob@example.com", 1001);
    let (a, b) = (ann.user.user_id.clone(), bob.user.user_id.clone());
    let effects = Effects::log(ev())
        .with_ticket(ticket(&a, ticket_kind::EMAIL_CHANGE, "change-old", far.millis()))
        .with_ticket(ticket(&a, ticket_kind::EMAIL_CHANGE, "change-expired", now.millis() - 1));
    f.acme.create_user(&ann, effects).await.expect("create");
    f.acme.create_user(&bob, &ev()).await.expect("create");
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let mut newer = ticket(&a, ticket_kind::EMAIL_CHANGE, "change-new", far.millis());
    newer.email = Some("new@example.com".into());
    f.acme.append_effects(Effects::default().with_ticket(newer)).await.expect("ticket");
    let live = f.acme.live_ticket(&a, ticket_kind::EMAIL_CHANGE, now).await.expect("read").expect("live");
    assert_eq!((live.id_hash.as_str(), live.email.as_deref()), ("hash-change-new", Some("new@example.com")));
    assert!(f.acme.live_ticket(&b, ticket_kind::EMAIL_CHANGE, now).await.expect("read").is_none());

    for (id, user, seen) in [("a1", &a, 50_000), ("a2", &a, 10_000), ("b1", &b, 0)] {
        f.acme.create_session(&mk(id, user, seen)).await.expect("session");
    }
    let ids = |v: Vec<Session>| v.into_iter().map(|s| s.id_hash).collect::<Vec<_>>();
    assert_eq!(ids(f.acme.user_sessions(&a, now).await.expect("list")), vec!["a2", "a1"], "most recently seen first");
    assert!(f.acme.reauthenticate_session("a1", now, Effects::default()).await.expect("reauth"));
    assert_eq!(f.acme.session("a1", now).await.expect("r").expect("live").authenticated_at, now);
    // Revoking "b1" in ann's name ends nothing; revoking a2 ends it alone.
    let revoke = |user: &UserId, id: &str| {
        Effects::default().with_revocation(Revocation::Session { user: user.clone(), id_hash: id.into(), at: now })
    };
    f.acme.append_effects(revoke(&a, "b1")).await.expect("revoke");
    assert!(f.acme.session("b1", now).await.expect("r").is_some(), "another user's session is untouched");
    f.acme.append_effects(revoke(&a, "a2")).await.expect("revoke");
    assert_eq!(ids(f.acme.user_sessions(&a, now).await.expect("list")), vec!["a1"]);
    assert!(
        !f.acme.reauthenticate_session("a2", now, Effects::default()).await.expect("reauth"),
        "a revoked session stays revoked"
    );

    // A revoked password is gone (a reset sets a new one).
    assert!(f.acme.password_hash(&a).await.expect("r").is_some());
    f.acme.append_effects(Effects::default().with_revocation(Revocation::Password { user: a.clone() })).await.expect("revoke");
    assert!(f.acme.password_hash(&a).await.expect("r").is_none());
    assert!(f.acme.password_hash(&b).await.expect("r").is_some());

    // Erasure: counters, jobs and mail of the user go too; bob keeps everything.
    for (user, who) in [(&a, "ann@example.com"), (&b, "bob@example.com")] {
        let charge = roster_store::Charge {
            kind: "login".into(),
            key: format!("{who}|192.0.2.1"),
            identifier: Some(who.into()),
            ip: Some("192.0.2.1".into()),
            connection: None,
            user_id: Some(user.clone()),
            now,
            window_ms: 60_000,
            limit: 10,
        };
        f.acme.charge(&charge).await.expect("charge");
        let mail = roster_store::OutboxMessage::new("verify_email", who, Some(user.clone()), json!({}));
        f.acme.append_effects(Effects::default().with_mail(mail)).await.expect("mail");
    }
    assert!(f.acme.delete_user(&a, &ev()).await.expect("delete"));
    assert!(f.acme.counter("login", "ann@example.com|192.0.2.1").await.expect("r").is_none());
    assert!(f.acme.counter("login", "bob@example.com|192.0.2.1").await.expect("r").is_some());
    let outbox = f.acme.list_outbox(&roster_store::OutboxFilter::default(), 100).await.expect("outbox");
    assert!(outbox.iter().all(|m| m.message.recipient != "ann@example.com"), "ann's mail is gone");
    assert!(outbox.iter().any(|m| m.message.recipient == "bob@example.com"));
    assert!(f.acme.user_sessions(&a, now).await.expect("list").is_empty());
    assert!(f.acme.live_ticket(&a, ticket_kind::EMAIL_CHANGE, now).await.expect("read").is_none());
}
