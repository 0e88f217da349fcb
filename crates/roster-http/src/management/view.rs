//! The wire form of a user (Auth0's normalized profile) and `fields`/`include_fields` projection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use roster_domain::user::User;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
#[cfg(test)]
use serde_json::{Map, json};

use crate::error::ApiError;

/// A user as the Management API returns it, serialized straight from the stored value (no
/// intermediate JSON tree: this is on the hottest read path). Absent optional attributes are omitted,
/// as Auth0 does; both metadata objects are always present. Keys are in the same (sorted) order as
/// [`user_json`].
pub struct UserView<'a>(pub &'a User);

impl Serialize for UserView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let u = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("app_metadata", u.app_metadata.as_map())?;
        m.serialize_entry("blocked", &u.blocked)?;
        m.serialize_entry("created_at", &u.created_at)?;
        if let Some(e) = &u.email {
            m.serialize_entry("email", e)?;
        }
        m.serialize_entry("email_verified", &u.email_verified)?;
        if let Some(v) = &u.family_name {
            m.serialize_entry("family_name", v)?;
        }
        if let Some(v) = &u.given_name {
            m.serialize_entry("given_name", v)?;
        }
        m.serialize_entry("identities", &u.identities)?;
        if let Some(v) = &u.last_ip {
            m.serialize_entry("last_ip", v)?;
        }
        if let Some(v) = &u.last_login {
            m.serialize_entry("last_login", v)?;
        }
        if let Some(v) = &u.last_password_reset {
            m.serialize_entry("last_password_reset", v)?;
        }
        m.serialize_entry("logins_count", &u.logins_count)?;
        if let Some(v) = &u.name {
            m.serialize_entry("name", v)?;
        }
        if let Some(v) = &u.nickname {
            m.serialize_entry("nickname", v)?;
        }
        if let Some(v) = &u.phone_number {
            m.serialize_entry("phone_number", v)?;
            m.serialize_entry("phone_verified", &u.phone_verified)?;
        }
        if let Some(v) = &u.picture {
            m.serialize_entry("picture", v)?;
        }
        m.serialize_entry("updated_at", &u.updated_at)?;
        m.serialize_entry("user_id", &u.user_id)?;
        m.serialize_entry("user_metadata", u.user_metadata.as_map())?;
        if let Some(v) = &u.username {
            m.serialize_entry("username", v)?;
        }
        m.end()
    }
}

/// The default picture of a new user: a Gravatar identicon keyed by the SHA-256 of the address (the
/// address itself never leaves in clear).
pub fn default_picture(email: &roster_domain::Email) -> String {
    format!("https://s.gravatar.com/avatar/{}?s=480&r=pg&d=identicon", roster_auth::secret::hash_secret(email.as_str()))
}

/// A user's body for a response, projected by `fields`/`include_fields` when asked; the whole user is
/// rendered once per stored copy (see [`RenderedUsers`]).
pub fn user_body(u: &Arc<User>, projection: &Projection, rendered: &RenderedUsers) -> Result<Response, ApiError> {
    if projection.is_identity() {
        let body = rendered.body(u).map_err(|e| {
            tracing::error!(error = %e, "a user could not be serialized");
            ApiError::internal()
        })?;
        Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
    } else {
        Ok(axum::Json(projection.apply(user_json(u))).into_response())
    }
}

const RENDERED_SHARDS: usize = 16;

/// Bodies by the address of the user they were rendered from, with that user (see [`RenderedUsers`]).
type RenderedShard = HashMap<usize, (Arc<User>, Bytes)>;

/// Bodies of `GET /users/{id}` already rendered, kept with the user they were rendered from.
///
/// Serializing a user was the largest part of a cached `GET /users/{id}`'s own work besides the HTTP
/// exchange (keeping the body: 62–75k → 77–82k GETs per second in alternating A/B rounds). The SQLite
/// store hands out the same `Arc<User>` for every read of a user it keeps and that did not change
/// (`roster-store/src/user_cache.rs`), and a `User` behind an `Arc` never changes, so neither does its
/// rendering. A body is reused only for the very `Arc` it
/// was rendered from: entries are keyed by its address and hold a clone of it, so while an entry
/// lives no other allocation can take that address. A user changed since comes back from the store
/// as a new `Arc` and is rendered anew; its old entry is dropped when its shard fills up.
/// With no store cache (PostgreSQL: every read is a new `Arc`) nothing is kept.
pub struct RenderedUsers {
    shards: Box<[Mutex<RenderedShard>]>,
    per_shard: usize,
}

impl RenderedUsers {
    /// Room for about `capacity` bodies (0: render every time).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..RENDERED_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(RENDERED_SHARDS),
        }
    }

    /// The JSON body of `u` (as [`UserView`] writes it).
    pub fn body(&self, u: &Arc<User>) -> serde_json::Result<Bytes> {
        if self.per_shard == 0 {
            return render(u);
        }
        let key = Arc::as_ptr(u) as usize;
        let shard = &self.shards[shard_of(key)];
        let hit = shard.lock().ok().and_then(|m| m.get(&key).filter(|(kept, _)| Arc::ptr_eq(kept, u)).map(|(_, b)| b.clone()));
        if let Some(body) = hit {
            return Ok(body);
        }
        let body = render(u)?;
        if let Ok(mut m) = shard.lock() {
            if m.len() >= self.per_shard {
                m.clear();
            }
            m.insert(key, (Arc::clone(u), body.clone()));
        }
        Ok(body)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|m| m.len()).unwrap_or(0)).sum()
    }
}

/// The shard of an address. Same-size allocations sit at a fixed stride (often a multiple of 128
/// bytes), so the address bits are mixed (Fibonacci hashing) before the top ones pick the shard.
fn shard_of(addr: usize) -> usize {
    ((addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % RENDERED_SHARDS
}

fn render(u: &User) -> serde_json::Result<Bytes> {
    let mut buf = Vec::with_capacity(1024);
    serde_json::to_writer(&mut buf, &UserView(u))?;
    Ok(Bytes::from(buf))
}

/// The same as [`UserView`], as a JSON tree (for projections).
pub fn user_json(u: &User) -> Value {
    serde_json::to_value(UserView(u)).unwrap_or(Value::Null)
}

/// The tree form built field by field; kept to check that [`UserView`] says the same.
#[cfg(test)]
fn user_json_reference(u: &User) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("user_id", json!(u.user_id));
    if let Some(e) = &u.email {
        put("email", json!(e));
    }
    put("email_verified", json!(u.email_verified));
    for (k, v) in [
        ("username", &u.username),
        ("phone_number", &u.phone_number),
        ("name", &u.name),
        ("given_name", &u.given_name),
        ("family_name", &u.family_name),
        ("nickname", &u.nickname),
        ("picture", &u.picture),
        ("last_ip", &u.last_ip),
    ] {
        if let Some(v) = v {
            put(k, json!(v));
        }
    }
    if u.phone_number.is_some() {
        put("phone_verified", json!(u.phone_verified));
    }
    put("identities", json!(u.identities));
    put("user_metadata", Value::Object(u.user_metadata.as_map().clone()));
    put("app_metadata", Value::Object(u.app_metadata.as_map().clone()));
    put("blocked", json!(u.blocked));
    put("created_at", json!(u.created_at));
    put("updated_at", json!(u.updated_at));
    if let Some(t) = u.last_login {
        put("last_login", json!(t));
    }
    if let Some(t) = u.last_password_reset {
        put("last_password_reset", json!(t));
    }
    put("logins_count", json!(u.logins_count));
    Value::Object(m)
}

/// `fields=a,b&include_fields=true|false`, parsed once per request.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    fields: Vec<String>,
    include: bool,
}

impl Projection {
    /// True when the projection keeps every field.
    pub fn is_identity(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn new(fields: Option<&str>, include_fields: bool) -> Self {
        let fields = fields
            .map(|f| f.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        Self { fields, include: include_fields }
    }

    pub fn apply(&self, v: Value) -> Value {
        if self.fields.is_empty() {
            return v;
        }
        match v {
            Value::Object(m) => {
                Value::Object(m.into_iter().filter(|(k, _)| self.fields.iter().any(|f| f == k) == self.include).collect())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_serialization_matches_the_tree() {
        use roster_domain::user::Identity;
        use roster_domain::{ConnectionId, Email, Metadata, Timestamp, UserId};
        let mut u = User {
            user_id: UserId::new_database(),
            connection_id: ConnectionId::new_random(),
            email: Some(Email::parse("a@example.com").expect("email")),
            email_verified: true,
            username: Some("ann".into()),
            phone_number: Some("+15551234".into()),
            phone_verified: true,
            name: Some("Ann".into()),
            given_name: Some("A".into()),
            family_name: None,
            nickname: Some("ann".into()),
            picture: None,
            user_metadata: Metadata::from_trusted(
                json!({"lang": "fr", "n": {"x": [1, 2]}}).as_object().cloned().unwrap_or_default(),
            ),
            app_metadata: Metadata::empty(),
            blocked: false,
            identities: vec![Identity {
                connection: "c".into(),
                provider: "auth0".into(),
                user_id: "x".into(),
                is_social: false,
                profile_data: None,
            }],
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(2),
            last_login: Some(Timestamp::from_millis(3)),
            last_ip: Some("127.0.0.1".into()),
            logins_count: 4,
            last_password_reset: None,
        };
        assert_eq!(user_json(&u), user_json_reference(&u));
        u.phone_number = None;
        u.email = None;
        assert_eq!(user_json(&u), user_json_reference(&u));
    }

    fn user(name: &str) -> Arc<User> {
        let mut u = User::new_database(
            roster_domain::UserId::from_trusted("auth0|0123456789abcdef01234567"),
            roster_domain::ConnectionId::from_trusted("con_x"),
            "Username-Password-Authentication",
            roster_domain::Email::parse("a@example.com").expect("email"),
            String::new(),
            roster_domain::Timestamp::from_millis(1),
        );
        u.name = Some(name.into());
        Arc::new(u)
    }

    fn name_in(body: &Bytes) -> Value {
        serde_json::from_slice::<Value>(body).expect("json")["name"].clone()
    }

    #[test]
    fn a_body_is_reused_only_for_the_copy_it_was_rendered_from() {
        let r = RenderedUsers::new(100);
        let ann = user("Ann");
        let first = r.body(&ann).expect("body");
        assert_eq!(&first[..], &serde_json::to_vec(&UserView(&ann)).expect("json")[..], "the same bytes as UserView");
        let again = r.body(&ann).expect("body");
        assert_eq!(first.as_ptr(), again.as_ptr(), "the kept body, not a new rendering");
        // The same user changed (same id), as the store hands it out after a write: a new Arc.
        let changed = user("Anna");
        assert_eq!(name_in(&r.body(&changed).expect("body")), json!("Anna"));
        // An equal copy in a different Arc is rendered on its own, never matched by content.
        let twin = user("Ann");
        assert_ne!(r.body(&twin).expect("body").as_ptr(), first.as_ptr());
        assert_eq!(name_in(&r.body(&ann).expect("body")), json!("Ann"));
    }

    #[test]
    fn users_spread_over_the_shards() {
        // Same-size allocations sit at a fixed stride; a shard picked from raw address bits put them
        // all in one or two shards, which dropped their bodies over and over (seen under the GET
        // benchmark with mimalloc).
        for stride in [16usize, 128, 640, 1024, 4096] {
            let mut per_shard = [0usize; RENDERED_SHARDS];
            for i in 0..3000 {
                per_shard[shard_of(0x7f00_0000_0000 + i * stride)] += 1;
            }
            let most = per_shard.iter().max().copied().unwrap_or(0);
            assert!(most <= 2 * 3000 / RENDERED_SHARDS, "stride {stride}: {per_shard:?}");
        }
        let r = RenderedUsers::new(10_000);
        let users: Vec<_> = (0..3000).map(|i| user(&format!("u{i}"))).collect();
        let first: Vec<_> = users.iter().map(|u| r.body(u).expect("body")).collect();
        assert_eq!(r.len(), 3000, "every body kept while under capacity");
        for (u, b) in users.iter().zip(&first) {
            assert_eq!(r.body(u).expect("body").as_ptr(), b.as_ptr());
        }
    }

    #[test]
    fn rendered_bodies_are_bounded_and_off_without_a_store_cache() {
        let r = RenderedUsers::new(32);
        let users: Vec<_> = (0..1000).map(|i| user(&format!("u{i}"))).collect();
        for (i, u) in users.iter().enumerate() {
            assert_eq!(name_in(&r.body(u).expect("body")), json!(format!("u{i}")));
        }
        assert!(r.len() <= 32, "{} bodies kept", r.len());
        assert!(r.len() > 0);
        let off = RenderedUsers::new(0);
        let ann = user("Ann");
        assert_eq!(name_in(&off.body(&ann).expect("body")), json!("Ann"));
        assert_eq!(off.len(), 0, "nothing kept");
    }

    #[test]
    fn projection() {
        let v = json!({"a": 1, "b": 2, "c": 3});
        assert_eq!(Projection::new(Some("a,c"), true).apply(v.clone()), json!({"a": 1, "c": 3}));
        assert_eq!(Projection::new(Some("a"), false).apply(v.clone()), json!({"b": 2, "c": 3}));
        assert_eq!(Projection::new(None, true).apply(v.clone()), v);
    }
}
