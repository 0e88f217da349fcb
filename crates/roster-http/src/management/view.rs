//! The wire form of a user (Auth0's normalized profile) and `fields`/`include_fields` projection.

use roster_domain::user::User;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
#[cfg(test)]
use serde_json::{Map, json};

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

/// A user's body for a response, projected by `fields`/`include_fields` when asked.
pub fn user_body(u: &User, projection: &Projection) -> axum::response::Response {
    use axum::response::IntoResponse;
    if projection.is_identity() {
        axum::Json(UserView(u)).into_response()
    } else {
        axum::Json(projection.apply(user_json(u))).into_response()
    }
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

    #[test]
    fn projection() {
        let v = json!({"a": 1, "b": 2, "c": 3});
        assert_eq!(Projection::new(Some("a,c"), true).apply(v.clone()), json!({"a": 1, "c": 3}));
        assert_eq!(Projection::new(Some("a"), false).apply(v.clone()), json!({"b": 2, "c": 3}));
        assert_eq!(Projection::new(None, true).apply(v.clone()), v);
    }
}
