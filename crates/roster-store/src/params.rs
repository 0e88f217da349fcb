//! The SQL text and bound values of the hot writes, shared by every driver: sqlx (both backends) and
//! the rusqlite group-commit writer of SQLite. Values are computed once, here, as [`Param`]s, so the
//! drivers cannot disagree about what a column receives.

use std::fmt::Write as _;

use roster_domain::log::LogEvent;
use roster_domain::user::User;
use roster_domain::{ClientId, ConnectionId, TenantId, Timestamp, UserId};

use crate::model::{OutboxMessage, Revocation, Ticket};

/// One bound value.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    /// JSON, serialized once: TEXT on SQLite, JSONB on PostgreSQL.
    Json(Box<serde_json::value::RawValue>),
}

impl Param {
    /// The same value. JSON is compared as text: equal text is an equal value, and the rare equal value
    /// written differently (keys in another order) only costs a needless write.
    pub(crate) fn same(&self, other: &Param) -> bool {
        match (self, other) {
            (Param::Text(a), Param::Text(b)) => a == b,
            (Param::Int(a), Param::Int(b)) => a == b,
            (Param::Bool(a), Param::Bool(b)) => a == b,
            (Param::Json(a), Param::Json(b)) => a.get() == b.get(),
            _ => false,
        }
    }
}

fn text(s: &str) -> Param {
    Param::Text(Some(s.to_owned()))
}

fn opt(s: Option<&str>) -> Param {
    Param::Text(s.map(str::to_owned))
}

fn json<T: serde::Serialize>(v: &T) -> Param {
    match serde_json::value::to_raw_value(v) {
        Ok(raw) => Param::Json(raw),
        Err(_) => Param::Text(None),
    }
}

/// A new log id: a ULID, strictly increasing within this process. `GET /logs` and a user's logs are
/// ordered by `log_id`, so two events of one millisecond keep the order in which they were made (with
/// a random ULID per event they came out in any order).
pub(crate) fn next_log_id() -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let id = generator.generate().unwrap_or_else(|overflow| overflow.commit_overflow_increment());
    id.to_string()
}

pub(crate) const INSERT_LOG: &str = "INSERT INTO logs (tenant_id, log_id, date, type, description, ip, user_agent, client_id, \
     client_name, user_id, user_name, connection, connection_id, audience, scope, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

pub(crate) fn log(t: &TenantId, ev: &LogEvent) -> Vec<Param> {
    vec![
        text(t.as_str()),
        Param::Text(Some(next_log_id())),
        Param::Int(Some(ev.date.millis())),
        text(ev.kind.code()),
        text(&ev.description),
        opt(ev.ip.as_deref()),
        opt(ev.user_agent.as_deref()),
        opt(ev.client_id.as_ref().map(ClientId::as_str)),
        opt(ev.client_name.as_deref()),
        opt(ev.user_id.as_ref().map(UserId::as_str)),
        opt(ev.user_name.as_deref()),
        opt(ev.connection.as_deref()),
        opt(ev.connection_id.as_ref().map(ConnectionId::as_str)),
        opt(ev.audience.as_deref()),
        opt(ev.scope.as_deref()),
        json(&ev.details),
    ]
}

pub(crate) const INSERT_OUTBOX: &str = "INSERT INTO outbox (tenant_id, id, user_id, template, recipient, payload, status, \
     attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)";

pub(crate) fn outbox(t: &TenantId, m: &OutboxMessage) -> Vec<Param> {
    vec![
        text(t.as_str()),
        text(&m.id),
        opt(m.user_id.as_ref().map(UserId::as_str)),
        text(&m.template),
        text(&m.recipient),
        json(&m.payload),
        Param::Int(Some(m.created_at.millis())),
    ]
}

pub(crate) const TICKET_COLS: &str = "id_hash, kind, user_id, email, client_id, result_url, mark_email_verified, \
     include_email_in_redirect, created_at, expires_at, used_at";

pub(crate) const INSERT_TICKET: &str = "INSERT INTO tickets (tenant_id, id_hash, kind, user_id, email, client_id, result_url, \
     mark_email_verified, include_email_in_redirect, created_at, expires_at, used_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)";

pub(crate) fn ticket(t: &TenantId, k: &Ticket) -> Vec<Param> {
    vec![
        text(t.as_str()),
        text(&k.id_hash),
        text(&k.kind),
        text(k.user_id.as_str()),
        opt(k.email.as_deref()),
        opt(k.client_id.as_deref()),
        opt(k.result_url.as_deref()),
        Param::Bool(k.mark_email_verified),
        Param::Bool(k.include_email_in_redirect),
        Param::Int(Some(k.created_at.millis())),
        Param::Int(Some(k.expires_at.millis())),
    ]
}

/// The statements that carry out a revocation.
pub(crate) fn revocation(t: &TenantId, r: &Revocation) -> Vec<(&'static str, Vec<Param>)> {
    match r {
        Revocation::Grants { user, keep_session, at } => {
            let p = vec![
                text(t.as_str()),
                text(user.as_str()),
                Param::Int(Some(at.millis())),
                text(keep_session.as_deref().unwrap_or("")),
            ];
            vec![
                (
                    "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL AND id <> $4",
                    p.clone(),
                ),
                (
                    "UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL \
                     AND (session_id IS NULL OR session_id <> $4)",
                    p,
                ),
            ]
        }
        Revocation::LoginBlocks { user, identifiers } => {
            let mut out = vec![(
                "DELETE FROM attack_counters WHERE tenant_id = $1 AND kind = 'login' AND user_id = $2",
                vec![text(t.as_str()), text(user.as_str())],
            )];
            for i in identifiers {
                out.push((
                    "DELETE FROM attack_counters WHERE tenant_id = $1 AND kind = 'login' AND identifier = $2",
                    vec![text(t.as_str()), text(&i.to_lowercase())],
                ));
            }
            out
        }
        Revocation::Session { user, id_hash, at } => {
            let p = vec![text(t.as_str()), text(user.as_str()), Param::Int(Some(at.millis())), text(id_hash)];
            vec![
                (
                    "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND id = $4 AND revoked_at IS NULL",
                    p.clone(),
                ),
                (
                    "UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND session_id = $4 \
                     AND revoked_at IS NULL",
                    p,
                ),
            ]
        }
        Revocation::Password { user } => {
            vec![("DELETE FROM credentials WHERE tenant_id = $1 AND user_id = $2", vec![text(t.as_str()), text(user.as_str())])]
        }
        Revocation::Counter { kind, key } => vec![(
            "DELETE FROM attack_counters WHERE tenant_id = $1 AND kind = $2 AND key = $3",
            vec![text(t.as_str()), text(kind), text(key)],
        )],
        Revocation::Tickets { user, kind, at } => vec![(
            "UPDATE tickets SET used_at = $4 WHERE tenant_id = $1 AND user_id = $2 AND kind = $3 AND used_at IS NULL",
            vec![text(t.as_str()), text(user.as_str()), text(kind), Param::Int(Some(at.millis()))],
        )],
    }
}

/// Remember a password hash and keep only the newest 24 of the user's.
pub(crate) fn remember_password(t: &TenantId, user: &UserId, hash: &str, at: Timestamp) -> Vec<(&'static str, Vec<Param>)> {
    vec![
        (
            "INSERT INTO password_history (tenant_id, user_id, hash, created_at) VALUES ($1, $2, $3, $4)",
            vec![text(t.as_str()), text(user.as_str()), text(hash), Param::Int(Some(at.millis()))],
        ),
        (
            "DELETE FROM password_history WHERE tenant_id = $1 AND user_id = $2 AND created_at < (SELECT created_at \
             FROM password_history WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at DESC LIMIT 1 OFFSET 23)",
            vec![text(t.as_str()), text(user.as_str())],
        ),
    ]
}

/// The columns [`user_fields`] fills, in its order (after `tenant_id` and `user_id`).
const USER_FIELD_COLUMNS: [&str; 20] = [
    "email",
    "email_lower",
    "email_verified",
    "username",
    "phone_number",
    "phone_verified",
    "name",
    "given_name",
    "family_name",
    "nickname",
    "picture",
    "user_metadata",
    "app_metadata",
    "blocked",
    "identities",
    "updated_at",
    "last_login",
    "last_ip",
    "logins_count",
    "last_password_reset",
];

/// The values of [`USER_FIELD_COLUMNS`], in order; also the tail of an insert.
pub(crate) fn user_fields(u: &User) -> Vec<Param> {
    vec![
        opt(u.email.as_ref().map(|e| e.as_str())),
        Param::Text(u.email.as_ref().map(|e| e.as_str().to_lowercase())),
        Param::Bool(u.email_verified),
        opt(u.username.as_deref()),
        opt(u.phone_number.as_deref()),
        Param::Bool(u.phone_verified),
        opt(u.name.as_deref()),
        opt(u.given_name.as_deref()),
        opt(u.family_name.as_deref()),
        opt(u.nickname.as_deref()),
        opt(u.picture.as_deref()),
        json(u.user_metadata.as_map()),
        json(u.app_metadata.as_map()),
        Param::Bool(u.blocked),
        json(&u.identities),
        Param::Int(Some(u.updated_at.millis())),
        Param::Int(u.last_login.map(|t| t.millis())),
        opt(u.last_ip.as_deref()),
        Param::Int(Some(u.logins_count)),
        Param::Int(u.last_password_reset.map(|t| t.millis())),
    ]
}

/// The UPDATE that writes `after` over a row whose values were `before` ([`user_fields`] of the user as
/// read): it assigns only the columns whose value differs, `None` when none does. SQLite rewrites an
/// index's entry on UPDATE whenever the statement assigns one of the index's columns, whatever the value,
/// so assigning every column would rewrite all four email and username index entries — four random
/// pages written to the WAL and checkpointed back — on every metadata change.
pub(crate) fn update_user(t: &TenantId, before: &[Param], after: &User) -> Option<(String, Vec<Param>)> {
    let mut sql = String::from("UPDATE users SET ");
    let mut ps = vec![text(t.as_str()), text(after.user_id.as_str())];
    for ((col, new), old) in USER_FIELD_COLUMNS.iter().zip(user_fields(after)).zip(before) {
        if new.same(old) {
            continue;
        }
        if ps.len() > 2 {
            sql.push_str(", ");
        }
        ps.push(new);
        let _ = write!(sql, "{col} = ${}", ps.len());
    }
    sql.push_str(" WHERE tenant_id = $1 AND user_id = $2");
    (ps.len() > 2).then_some((sql, ps))
}

pub(crate) const INSERT_USER: &str = "INSERT INTO users (tenant_id, user_id, email, email_lower, email_verified, username, \
     phone_number, phone_verified, name, given_name, family_name, nickname, picture, user_metadata, app_metadata, blocked, \
     identities, updated_at, last_login, last_ip, logins_count, last_password_reset, connection_id, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)";

pub(crate) fn insert_user(t: &TenantId, u: &User) -> Vec<Param> {
    let mut p = vec![text(t.as_str()), text(u.user_id.as_str())];
    p.extend(user_fields(u));
    p.push(text(u.connection_id.as_str()));
    p.push(Param::Int(Some(u.created_at.millis())));
    p
}

pub(crate) const UPSERT_CREDENTIAL: &str = "INSERT INTO credentials (tenant_id, user_id, password_hash, updated_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, user_id) DO UPDATE SET password_hash = excluded.password_hash, \
     updated_at = excluded.updated_at";

pub(crate) fn credential(t: &TenantId, id: &UserId, hash: &str, at: i64) -> Vec<Param> {
    vec![text(t.as_str()), text(id.as_str()), text(hash), Param::Int(Some(at))]
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Text(v) => v.to_sql(),
            Param::Int(v) => v.to_sql(),
            Param::Bool(v) => v.to_sql(),
            Param::Json(v) => Ok(rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(v.get().as_bytes()))),
        }
    }
}

/// The columns of an attack counter, in order.
pub(crate) const COUNTER_COLS: &str =
    "kind, key, identifier, ip, connection, user_id, count, window_start, last_at, blocked_at, notified_at";
pub(crate) const COUNTER_COLUMNS: &[&str] = &[
    "kind",
    "key",
    "identifier",
    "ip",
    "connection",
    "user_id",
    "count",
    "window_start",
    "last_at",
    "blocked_at",
    "notified_at",
];

/// Count one event in one upsert that increments (or restarts, when its window is over) and returns
/// the counter: $8 now, $9 window, $10 limit; "over" = the window started at or before now - window.
pub(crate) const CHARGE: &str = "INSERT INTO attack_counters (tenant_id, kind, key, identifier, ip, connection, user_id, count, \
     window_start, last_at, blocked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8, CASE WHEN 1 >= $10 THEN $8 ELSE NULL END) \
     ON CONFLICT (tenant_id, kind, key) DO UPDATE SET \
     count = CASE WHEN attack_counters.window_start <= $8 - $9 THEN 1 ELSE attack_counters.count + 1 END, \
     blocked_at = CASE WHEN attack_counters.window_start <= $8 - $9 THEN (CASE WHEN 1 >= $10 THEN $8 ELSE NULL END) \
        WHEN attack_counters.blocked_at IS NOT NULL THEN attack_counters.blocked_at \
        WHEN attack_counters.count + 1 >= $10 THEN $8 ELSE NULL END, \
     notified_at = CASE WHEN attack_counters.window_start <= $8 - $9 THEN NULL ELSE attack_counters.notified_at END, \
     window_start = CASE WHEN attack_counters.window_start <= $8 - $9 THEN $8 ELSE attack_counters.window_start END, \
     user_id = COALESCE(excluded.user_id, attack_counters.user_id), \
     last_at = $8 \
     RETURNING kind, key, identifier, ip, connection, user_id, count, window_start, last_at, blocked_at, notified_at";

pub(crate) fn charge(t: &TenantId, c: &crate::model::Charge) -> Vec<Param> {
    vec![
        text(t.as_str()),
        text(&c.kind),
        text(&c.key),
        Param::Text(c.identifier.clone()),
        Param::Text(c.ip.clone()),
        Param::Text(c.connection.clone()),
        Param::Text(c.user_id.as_ref().map(|u| u.as_str().to_owned())),
        Param::Int(Some(c.now.millis())),
        Param::Int(Some(c.window_ms)),
        Param::Int(Some(c.limit)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The insert binds `user_fields` by position: its column list must be the same columns in the
    /// same order, between the key and the insert-only columns.
    #[test]
    fn insert_columns_follow_user_fields() {
        let list = INSERT_USER.split_once('(').and_then(|(_, rest)| rest.split_once(')')).map(|(cols, _)| cols).expect("columns");
        let cols: Vec<&str> = list.split(',').map(str::trim).collect();
        let mut expected = vec!["tenant_id", "user_id"];
        expected.extend(USER_FIELD_COLUMNS);
        expected.extend(["connection_id", "created_at"]);
        assert_eq!(cols, expected);
    }

    /// Thousands of ids fall within one millisecond; each must still sort after the one before it.
    #[test]
    fn log_ids_increase_strictly() {
        let ids: Vec<String> = (0..5000).map(|_| next_log_id()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        assert!(ids.iter().all(|id| id.len() == 26 && roster_domain::LogId::parse(id).is_ok()));
    }

    #[test]
    fn an_update_assigns_only_changed_columns() {
        let t = TenantId::from_trusted("ten_x");
        let mut u = User {
            user_id: UserId::new_database(),
            connection_id: ConnectionId::new_random(),
            email: Some(roster_domain::Email::parse("a@example.com").expect("email")),
            email_verified: false,
            username: None,
            phone_number: None,
            phone_verified: false,
            name: None,
            given_name: None,
            family_name: None,
            nickname: None,
            picture: None,
            user_metadata: roster_domain::Metadata::empty(),
            app_metadata: roster_domain::Metadata::empty(),
            blocked: false,
            identities: vec![],
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(1),
            last_login: None,
            last_ip: None,
            logins_count: 0,
            last_password_reset: None,
        };
        let before = user_fields(&u);
        assert!(update_user(&t, &before, &u).is_none(), "nothing changed, nothing written");
        u.user_metadata =
            roster_domain::Metadata::from_trusted(serde_json::Map::from_iter([("k".to_owned(), serde_json::json!(1))]));
        u.updated_at = Timestamp::from_millis(2);
        let (sql, ps) = update_user(&t, &before, &u).expect("changed");
        assert_eq!(sql, "UPDATE users SET user_metadata = $3, updated_at = $4 WHERE tenant_id = $1 AND user_id = $2");
        assert_eq!(ps.len(), 4);
        u.email = Some(roster_domain::Email::parse("b@example.com").expect("email"));
        let (sql, _) = update_user(&t, &before, &u).expect("changed");
        assert!(sql.starts_with("UPDATE users SET email = $3, email_lower = $4, user_metadata = $5"), "{sql}");
    }
}
