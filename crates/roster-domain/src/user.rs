//! The normalized user profile, and the parsed forms of "create a user" and "update a user".
//!
//! `UserPatch::parse` holds Auth0's PATCH rules (which fields exist, which combinations are refused,
//! `null` unsets a root attribute); `User::apply` holds what a valid patch does to a profile.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::email::Email;
use crate::error::ValidationError;
use crate::ids::{ConnectionId, UserId};
use crate::metadata::{Metadata, MetadataKind, MetadataLimits, MetadataPatch, json_type};
use crate::time::Timestamp;

/// One identity of a user (a database user has exactly one, with provider `auth0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub connection: String,
    pub provider: String,
    pub user_id: String,
    #[serde(rename = "isSocial")]
    pub is_social: bool,
    #[serde(rename = "profileData", skip_serializing_if = "Option::is_none", default)]
    pub profile_data: Option<Value>,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub user_id: UserId,
    pub connection_id: ConnectionId,
    pub email: Option<Email>,
    pub email_verified: bool,
    pub username: Option<String>,
    pub phone_number: Option<String>,
    pub phone_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    pub user_metadata: Metadata,
    pub app_metadata: Metadata,
    pub blocked: bool,
    pub identities: Vec<Identity>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login: Option<Timestamp>,
    pub last_ip: Option<String>,
    pub logins_count: i64,
    pub last_password_reset: Option<Timestamp>,
}

/// What `POST /users` (and later signup and import) asks the store to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub user: User,
    /// PHC string of the password hash, when the user has a password.
    pub password_hash: Option<String>,
}

/// A string attribute that a patch sets (`Some`) or removes (`None`).
pub type Change<T> = Option<T>;

/// A validated `PATCH /users/{id}` body.
#[derive(Debug, Default)]
pub struct UserPatch {
    pub email: Option<Email>,
    pub email_verified: Option<bool>,
    pub username: Option<Change<String>>,
    pub phone_number: Option<Change<String>>,
    pub phone_verified: Option<bool>,
    pub name: Option<Change<String>>,
    pub given_name: Option<Change<String>>,
    pub family_name: Option<Change<String>>,
    pub nickname: Option<Change<String>>,
    pub picture: Option<Change<String>>,
    pub blocked: Option<bool>,
    pub user_metadata: Option<MetadataPatch>,
    pub app_metadata: Option<MetadataPatch>,
    /// The new password in clear; the HTTP layer hashes it before the store sees the patch.
    pub password: Option<String>,
    pub verify_email: Option<bool>,
    pub connection: Option<String>,
    pub client_id: Option<String>,
}

/// Names of the fields a patch touches, for scope checks ("You cannot update the following fields").
impl UserPatch {
    pub fn fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        macro_rules! push {
            ($($name:ident),*) => { $( if self.$name.is_some() { f.push(stringify!($name)); } )* };
        }
        push!(
            email,
            email_verified,
            username,
            phone_number,
            phone_verified,
            name,
            given_name,
            family_name,
            nickname,
            picture,
            blocked,
            user_metadata,
            app_metadata,
            password,
            verify_email,
            connection,
            client_id
        );
        f
    }

    /// Parse a PATCH body with Auth0's rules.
    pub fn parse(body: Map<String, Value>, limits: MetadataLimits) -> Result<Self, ValidationError> {
        let mut p = UserPatch::default();
        for (key, value) in body {
            match key.as_str() {
                "email" => p.email = Some(Email::parse(&req_string(&key, value)?)?),
                "email_verified" => p.email_verified = Some(req_bool(&key, value)?),
                "phone_verified" => p.phone_verified = Some(req_bool(&key, value)?),
                "blocked" => p.blocked = Some(req_bool(&key, value)?),
                "verify_email" => p.verify_email = Some(req_bool(&key, value)?),
                "verify_phone_number" => {
                    req_bool(&key, value)?;
                }
                "username" => p.username = Some(opt_string(&key, value)?.map(|u| parse_username(&u)).transpose()?),
                "phone_number" => p.phone_number = Some(opt_string(&key, value)?.map(|n| parse_phone(&n)).transpose()?),
                "name" | "nickname" => {
                    let v = opt_string(&key, value)?.map(|s| bounded(&key, s, 300)).transpose()?;
                    if key == "name" { p.name = Some(v) } else { p.nickname = Some(v) }
                }
                "given_name" | "family_name" => {
                    let v = opt_string(&key, value)?.map(|s| bounded(&key, s, 150)).transpose()?;
                    if key == "given_name" { p.given_name = Some(v) } else { p.family_name = Some(v) }
                }
                "picture" => p.picture = Some(opt_string(&key, value)?.map(|s| parse_picture(&s)).transpose()?),
                "user_metadata" => {
                    let v = if value.is_null() { Value::Object(Map::new()) } else { value };
                    p.user_metadata = Some(MetadataPatch::parse(MetadataKind::User, v, limits)?);
                }
                "app_metadata" => {
                    let v = if value.is_null() { Value::Object(Map::new()) } else { value };
                    p.app_metadata = Some(MetadataPatch::parse(MetadataKind::App, v, limits)?);
                }
                "password" => p.password = Some(req_string(&key, value)?),
                "connection" => p.connection = Some(req_string(&key, value)?),
                "client_id" => p.client_id = Some(req_string(&key, value)?),
                other => {
                    return Err(ValidationError::new(format!(
                        "Payload validation error: 'Additional properties not allowed: {other}'."
                    )));
                }
            }
        }
        let has = |b: bool| b;
        if p.password.is_some() && (has(p.email.is_some()) || p.email_verified.is_some() || p.username.is_some()) {
            return Err(ValidationError::new("Cannot update password and email, email_verified or username simultaneously"));
        }
        if p.username.is_some() && (p.email.is_some() || p.email_verified.is_some()) {
            return Err(ValidationError::new("Cannot update username and email or email_verified simultaneously"));
        }
        Ok(p)
    }
}

impl User {
    /// Apply a validated patch (everything but the password, which lives in credentials).
    pub fn apply(&mut self, patch: &UserPatch, limits: MetadataLimits, now: Timestamp) -> Result<(), ValidationError> {
        if let Some(email) = &patch.email {
            let changed = self.email.as_ref() != Some(email);
            self.email = Some(email.clone());
            // A new address is unverified unless the caller says otherwise (Auth0 behaviour).
            if changed && patch.email_verified.is_none() {
                self.email_verified = false;
            }
        }
        if let Some(v) = patch.email_verified {
            self.email_verified = v;
        }
        if let Some(v) = &patch.username {
            self.username = v.clone();
        }
        if let Some(v) = &patch.phone_number {
            self.phone_number = v.clone();
        }
        if let Some(v) = patch.phone_verified {
            self.phone_verified = v;
        }
        if let Some(v) = &patch.name {
            self.name = v.clone();
        }
        if let Some(v) = &patch.given_name {
            self.given_name = v.clone();
        }
        if let Some(v) = &patch.family_name {
            self.family_name = v.clone();
        }
        if let Some(v) = &patch.nickname {
            self.nickname = v.clone();
        }
        if let Some(v) = &patch.picture {
            self.picture = v.clone();
        }
        if let Some(v) = patch.blocked {
            self.blocked = v;
        }
        if let Some(p) = &patch.user_metadata {
            self.user_metadata.merge(p, MetadataKind::User, limits)?;
        }
        if let Some(p) = &patch.app_metadata {
            self.app_metadata.merge(p, MetadataKind::App, limits)?;
        }
        if patch.password.is_some() {
            self.last_password_reset = Some(now);
        }
        self.updated_at = now.max(Timestamp::from_millis(self.updated_at.millis() + 1));
        Ok(())
    }
}

pub fn req_string(field: &str, v: Value) -> Result<String, ValidationError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(type_error(field, "string", &other)),
    }
}

pub fn opt_string(field: &str, v: Value) -> Result<Option<String>, ValidationError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(type_error(field, "string", &other)),
    }
}

pub fn req_bool(field: &str, v: Value) -> Result<bool, ValidationError> {
    match v {
        Value::Bool(b) => Ok(b),
        other => Err(type_error(field, "boolean", &other)),
    }
}

fn type_error(field: &str, expected: &str, v: &Value) -> ValidationError {
    ValidationError::new(format!(
        "Payload validation error: 'Expected type {expected} but found type {}' on property {field}.",
        json_type(v)
    ))
}

pub fn bounded(field: &str, s: String, max: usize) -> Result<String, ValidationError> {
    let n = s.chars().count();
    if n == 0 || n > max || s.chars().any(|c| c.is_control()) {
        return Err(ValidationError::new(format!(
            "Payload validation error: '{field}' must be 1 to {max} characters without control characters."
        )));
    }
    Ok(s)
}

/// Usernames: 1–128 characters, no whitespace or control characters, stored lowercased.
pub fn parse_username(s: &str) -> Result<String, ValidationError> {
    let n = s.chars().count();
    if n == 0 || n > 128 || s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@') {
        return Err(ValidationError::new(
            "Payload validation error: 'username' must be 1 to 128 characters without spaces or '@'.",
        ));
    }
    Ok(s.to_lowercase())
}

/// Phone numbers in E.164: `+` and 1–15 digits.
pub fn parse_phone(s: &str) -> Result<String, ValidationError> {
    let digits = s.strip_prefix('+').unwrap_or("");
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValidationError::new(
            "Payload validation error: 'phone_number' must be in E.164 format (+ and up to 15 digits).",
        ));
    }
    Ok(s.to_owned())
}

/// Pictures are http(s) URLs (no `javascript:` or `data:` URLs reach a profile page).
pub fn parse_picture(s: &str) -> Result<String, ValidationError> {
    let lower = s.to_ascii_lowercase();
    let ok = (lower.starts_with("https://") || lower.starts_with("http://"))
        && s.len() <= 2048
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(ValidationError::new(
            "Payload validation error: 'picture' must be an http(s) URL of at most 2048 characters.",
        ));
    }
    Ok(s.to_owned())
}

impl User {
    /// A new database-connection user with Auth0's defaults: one `auth0` identity whose id is the part
    /// after `auth0|`, `name` = the address, `nickname` = its local part, unverified, not blocked, never
    /// logged in. The caller sets what its request says on top, and gives the default `picture` (it
    /// hashes the address, which this crate does not).
    pub fn new_database(
        user_id: UserId,
        connection_id: ConnectionId,
        connection_name: &str,
        email: Email,
        picture: String,
        now: Timestamp,
    ) -> Self {
        Self {
            identities: vec![Identity {
                connection: connection_name.to_owned(),
                provider: "auth0".into(),
                user_id: user_id.local().to_owned(),
                is_social: false,
                profile_data: None,
            }],
            user_id,
            connection_id,
            email_verified: false,
            username: None,
            phone_number: None,
            phone_verified: false,
            name: Some(email.to_string()),
            given_name: None,
            family_name: None,
            nickname: Some(email.local_part().to_owned()),
            picture: Some(picture),
            email: Some(email),
            user_metadata: Metadata::empty(),
            app_metadata: Metadata::empty(),
            blocked: false,
            created_at: now,
            updated_at: now,
            last_login: None,
            last_ip: None,
            logins_count: 0,
            last_password_reset: None,
        }
    }
}

/// The nickname Auth0 derives from an email (its local part).
pub fn default_nickname(email: Option<&Email>) -> Option<String> {
    email.map(|e| e.local_part().to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<UserPatch, ValidationError> {
        let Value::Object(m) = v else { panic!("object") };
        UserPatch::parse(m, MetadataLimits::default())
    }

    fn user() -> User {
        User {
            user_id: UserId::new_database(),
            connection_id: ConnectionId::new_random(),
            email: Some(Email::parse("a@example.com").expect("valid")),
            email_verified: true,
            username: None,
            phone_number: None,
            phone_verified: false,
            name: Some("A".into()),
            given_name: None,
            family_name: None,
            nickname: None,
            picture: None,
            user_metadata: Metadata::empty(),
            app_metadata: Metadata::empty(),
            blocked: false,
            identities: vec![],
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(1),
            last_login: None,
            last_ip: None,
            logins_count: 0,
            last_password_reset: None,
        }
    }

    #[test]
    fn forbidden_combinations() {
        assert!(parse(json!({"password": "x", "email": "b@example.com"})).is_err());
        assert!(parse(json!({"password": "x", "email_verified": true})).is_err());
        assert!(parse(json!({"password": "x", "username": "bob"})).is_err());
        assert!(parse(json!({"username": "bob", "email": "b@example.com"})).is_err());
        assert!(parse(json!({"unknown": 1})).is_err());
        assert!(parse(json!({"name": 5})).is_err());
    }

    #[test]
    fn new_email_is_unverified_unless_said_otherwise() {
        let mut u = user();
        let p = parse(json!({"email": "new@example.com"})).expect("valid");
        u.apply(&p, MetadataLimits::default(), Timestamp::from_millis(5)).expect("applies");
        assert!(!u.email_verified);
        let mut u = user();
        let p = parse(json!({"email": "new@example.com", "email_verified": true})).expect("valid");
        u.apply(&p, MetadataLimits::default(), Timestamp::from_millis(5)).expect("applies");
        assert!(u.email_verified);
    }

    #[test]
    fn null_unsets_root_attributes_and_updated_at_moves() {
        let mut u = user();
        let p = parse(json!({"name": null})).expect("valid");
        u.apply(&p, MetadataLimits::default(), Timestamp::from_millis(1)).expect("applies");
        assert_eq!(u.name, None);
        assert!(u.updated_at > Timestamp::from_millis(1), "updated_at moves even within the same millisecond");
    }

    #[test]
    fn field_names_for_scope_checks() {
        let p = parse(json!({"app_metadata": {"a": 1}, "name": "x"})).expect("valid");
        let mut f = p.fields();
        f.sort();
        assert_eq!(f, vec!["app_metadata", "name"]);
    }
}
