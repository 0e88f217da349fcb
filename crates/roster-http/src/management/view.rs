//! The wire form of a user (Auth0's normalized profile) and `fields`/`include_fields` projection.

use roster_domain::user::User;
use serde_json::{Map, Value, json};

/// A user as the Management API returns it. Absent optional attributes are omitted, as Auth0 does;
/// both metadata objects are always present.
pub fn user_json(u: &User) -> Value {
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
    fn projection() {
        let v = json!({"a": 1, "b": 2, "c": 3});
        assert_eq!(Projection::new(Some("a,c"), true).apply(v.clone()), json!({"a": 1, "c": 3}));
        assert_eq!(Projection::new(Some("a"), false).apply(v.clone()), json!({"b": 2, "c": 3}));
        assert_eq!(Projection::new(None, true).apply(v.clone()), v);
    }
}
