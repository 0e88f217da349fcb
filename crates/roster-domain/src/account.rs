//! The self-service account's rules: what a tenant lets its users edit (root profile fields and a
//! profile schema over `user_metadata`), its terms, its re-authentication window and its branding.
//!
//! Settings are stored as JSON in the tenant row and reach the code only through [`AccountSettings`]
//! and [`Branding`], parsed and validated here: a Management API PATCH that would store something the
//! portal could not render is refused. The profile schema is a small, closed subset of JSON Schema
//! (`string`, `boolean`, `number`, `integer`; `enum`, `title`, `description`, `readOnly`, lengths and
//! bounds; `required`), so a value a user submits is checked exactly as the portal describes it.

use serde_json::{Map, Value, json};

use crate::error::ValidationError;

/// Root profile fields a tenant may let its users edit.
pub const EDITABLE_ROOT_FIELDS: &[&str] = &["name", "given_name", "family_name", "nickname", "picture"];

/// The default re-authentication window for sensitive changes (email change, deletion).
pub const DEFAULT_REAUTH_SECS: i64 = 300;

/// Longest string value a schema property accepts unless it says otherwise.
pub const DEFAULT_MAX_LENGTH: u64 = 256;

/// The account portal's settings of one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSettings {
    pub enabled: bool,
    /// Root fields users may edit themselves (a subset of [`EDITABLE_ROOT_FIELDS`]).
    pub editable_fields: Vec<String>,
    /// How recent a login must be for an email change or a deletion, in seconds.
    pub reauthentication_window: i64,
    /// The terms users must accept, when the tenant publishes some.
    pub terms: Option<Terms>,
    pub profile_schema: ProfileSchema,
    /// `app_metadata` keys shown (read-only) to the user, with their labels.
    pub visible_app_metadata: Vec<(String, String)>,
}

/// A published version of the terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    pub version: String,
    pub url: String,
}

/// The `user_metadata` fields the portal and the `/me` API show and accept.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSchema {
    pub properties: Vec<Property>,
}

/// One described `user_metadata` key.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub key: String,
    pub kind: Kind,
    pub title: String,
    pub description: Option<String>,
    pub required: bool,
    /// Shown but not editable by the user.
    pub read_only: bool,
    /// Allowed values (strings or numbers), in order.
    pub choices: Vec<Value>,
    pub min_length: Option<u64>,
    pub max_length: u64,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Number,
    Integer,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "boolean" => Self::Boolean,
            "number" => Self::Number,
            "integer" => Self::Integer,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Number => "number",
            Self::Integer => "integer",
        }
    }
}

/// A tenant's look: name shown, logo, colours (Auth0's `/branding` shape).
#[derive(Debug, Clone, PartialEq)]
pub struct Branding {
    pub friendly_name: Option<String>,
    pub logo_url: Option<String>,
    pub primary: String,
    pub page_background: String,
}

/// The schema a tenant starts with: a language and an accessibility preference.
pub fn default_profile_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "language": {
                "type": "string",
                "title": "Language",
                "description": "The language we write to you in.",
                "enum": ["en", "fr"]
            },
            "reduced_motion": {
                "type": "boolean",
                "title": "Reduce motion",
                "description": "Avoid animations in our apps."
            }
        },
        "required": []
    })
}

/// The `account_portal` object with every default filled in (what `GET /tenants/settings` shows).
pub fn default_account_settings() -> Value {
    json!({
        "enabled": true,
        "editable_fields": EDITABLE_ROOT_FIELDS,
        "reauthentication_window": DEFAULT_REAUTH_SECS,
        "terms": null,
        "profile_schema": default_profile_schema(),
        "visible_app_metadata": {},
    })
}

/// Auth0's `/branding` defaults.
pub fn default_branding() -> Value {
    json!({ "colors": { "primary": "#0b5cad", "page_background": "#f4f5f7" }, "logo_url": null })
}

fn err(msg: impl Into<String>) -> ValidationError {
    ValidationError::new(msg.into())
}

/// A metadata key a schema may describe (the same rule as `user_metadata` keys).
fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 64 && !k.contains('.') && !k.contains('$')
}

fn http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
}

/// `#rgb` or `#rrggbb`: the only colours put into a page's CSS.
pub fn valid_color(s: &str) -> bool {
    let hex = s.strip_prefix('#').unwrap_or("");
    (hex.len() == 3 || hex.len() == 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

impl AccountSettings {
    /// Parse the stored (or proposed) `account_portal` object over the defaults; anything the portal
    /// could not honour is an error naming the field.
    pub fn parse(v: &Value) -> Result<Self, ValidationError> {
        let empty = Map::new();
        let o = match v {
            Value::Object(o) => o,
            Value::Null => &empty,
            _ => return Err(err("account_portal must be an object")),
        };
        for k in o.keys() {
            if !["enabled", "editable_fields", "reauthentication_window", "terms", "profile_schema", "visible_app_metadata"]
                .contains(&k.as_str())
            {
                return Err(err(format!("account_portal: unknown property {k}")));
            }
        }
        let enabled = match o.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            _ => return Err(err("account_portal.enabled must be a boolean")),
        };
        let editable_fields = match o.get("editable_fields") {
            None | Some(Value::Null) => EDITABLE_ROOT_FIELDS.iter().map(|s| (*s).to_owned()).collect(),
            Some(Value::Array(a)) => {
                let mut out = Vec::new();
                for f in a {
                    match f.as_str() {
                        Some(f) if EDITABLE_ROOT_FIELDS.contains(&f) => {
                            if !out.iter().any(|o: &String| o == f) {
                                out.push(f.to_owned());
                            }
                        }
                        _ => {
                            return Err(err(format!(
                                "account_portal.editable_fields may only name {}",
                                EDITABLE_ROOT_FIELDS.join(", ")
                            )));
                        }
                    }
                }
                out
            }
            _ => return Err(err("account_portal.editable_fields must be an array of field names")),
        };
        let reauthentication_window = match o.get("reauthentication_window") {
            None | Some(Value::Null) => DEFAULT_REAUTH_SECS,
            Some(v) => match v.as_i64() {
                Some(s) if (30..=86_400).contains(&s) => s,
                _ => return Err(err("account_portal.reauthentication_window must be a number of seconds from 30 to 86400")),
            },
        };
        let terms = match o.get("terms") {
            None | Some(Value::Null) => None,
            Some(Value::Object(t)) => {
                let version = t.get("version").and_then(Value::as_str).map(str::trim).unwrap_or("");
                let url = t.get("url").and_then(Value::as_str).unwrap_or("");
                if version.is_empty() || version.len() > 64 {
                    return Err(err("account_portal.terms.version must be a non-empty string of at most 64 characters"));
                }
                if !http_url(url) {
                    return Err(err("account_portal.terms.url must be an http(s) URL"));
                }
                Some(Terms { version: version.to_owned(), url: url.to_owned() })
            }
            _ => return Err(err("account_portal.terms must be an object with version and url, or null")),
        };
        let profile_schema = match o.get("profile_schema") {
            None | Some(Value::Null) => ProfileSchema::parse(&default_profile_schema())?,
            Some(s) => ProfileSchema::parse(s)?,
        };
        let visible_app_metadata = match o.get("visible_app_metadata") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(m)) => {
                let mut out = Vec::new();
                for (k, v) in m {
                    if !valid_key(k) {
                        return Err(err(format!("account_portal.visible_app_metadata: invalid key {k:?}")));
                    }
                    let label = match v {
                        Value::String(s) if !s.trim().is_empty() && s.len() <= 128 => s.clone(),
                        Value::Object(o) => match o.get("title").and_then(Value::as_str) {
                            Some(s) if !s.trim().is_empty() && s.len() <= 128 => s.to_owned(),
                            _ => k.clone(),
                        },
                        _ => k.clone(),
                    };
                    out.push((k.clone(), label));
                }
                out
            }
            _ => return Err(err("account_portal.visible_app_metadata must be an object of key → label")),
        };
        Ok(Self { enabled, editable_fields, reauthentication_window, terms, profile_schema, visible_app_metadata })
    }

    pub fn may_edit(&self, field: &str) -> bool {
        self.editable_fields.iter().any(|f| f == field)
    }
}

impl ProfileSchema {
    pub fn parse(v: &Value) -> Result<Self, ValidationError> {
        let Value::Object(o) = v else { return Err(err("profile_schema must be an object")) };
        if o.get("type").is_some_and(|t| t != "object") {
            return Err(err("profile_schema.type must be \"object\""));
        }
        let required: Vec<&str> = match o.get("required") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().ok_or_else(|| err("profile_schema.required must list key names")))
                .collect::<Result<_, _>>()?,
            _ => return Err(err("profile_schema.required must be an array")),
        };
        let props = match o.get("properties") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            _ => return Err(err("profile_schema.properties must be an object")),
        };
        if props.len() > 50 {
            return Err(err("profile_schema may describe at most 50 properties"));
        }
        let mut properties = Vec::new();
        for (key, p) in &props {
            if !valid_key(key) {
                return Err(err(format!("profile_schema: invalid property name {key:?}")));
            }
            properties.push(Property::parse(key, p, required.contains(&key.as_str()))?);
        }
        for r in &required {
            if !props.contains_key(*r) {
                return Err(err(format!("profile_schema.required names {r}, which is not a property")));
            }
        }
        Ok(Self { properties })
    }

    pub fn property(&self, key: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.key == key)
    }
}

impl Property {
    fn parse(key: &str, v: &Value, required: bool) -> Result<Self, ValidationError> {
        let Value::Object(o) = v else { return Err(err(format!("profile_schema.properties.{key} must be an object"))) };
        let at = |what: &str| format!("profile_schema.properties.{key}.{what}");
        for k in o.keys() {
            if !["type", "title", "description", "enum", "readOnly", "minLength", "maxLength", "minimum", "maximum", "default"]
                .contains(&k.as_str())
            {
                return Err(err(format!("{} is not supported", at(k))));
            }
        }
        let kind = o
            .get("type")
            .and_then(Value::as_str)
            .and_then(Kind::parse)
            .ok_or_else(|| err(format!("{} must be string, boolean, number or integer", at("type"))))?;
        let text = |name: &str, max: usize| -> Result<Option<String>, ValidationError> {
            match o.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
                _ => Err(err(format!("{} must be a string of at most {max} characters", at(name)))),
            }
        };
        let title = text("title", 128)?.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| key.to_owned());
        let description = text("description", 512)?;
        let read_only = match o.get("readOnly") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            _ => return Err(err(format!("{} must be a boolean", at("readOnly")))),
        };
        let uint = |name: &str| -> Result<Option<u64>, ValidationError> {
            match o.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => {
                    v.as_u64().filter(|n| *n <= 4096).map(Some).ok_or_else(|| err(format!("{} must be 0 to 4096", at(name))))
                }
            }
        };
        let num = |name: &str| -> Result<Option<f64>, ValidationError> {
            match o.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_f64().map(Some).ok_or_else(|| err(format!("{} must be a number", at(name)))),
            }
        };
        let choices = match o.get("enum") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if !a.is_empty() && a.len() <= 100 => {
                for c in a {
                    let ok = match kind {
                        Kind::String => c.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 256),
                        Kind::Number => c.is_number(),
                        Kind::Integer => c.is_i64() || c.is_u64(),
                        Kind::Boolean => false,
                    };
                    if !ok {
                        return Err(err(format!("{} must list values of type {}", at("enum"), kind.as_str())));
                    }
                }
                a.clone()
            }
            _ => return Err(err(format!("{} must be a non-empty array of at most 100 values", at("enum")))),
        };
        let min_length = uint("minLength")?;
        let max_length = uint("maxLength")?.unwrap_or(DEFAULT_MAX_LENGTH);
        Ok(Self {
            key: key.to_owned(),
            kind,
            title,
            description,
            required,
            read_only,
            choices,
            min_length,
            max_length,
            minimum: num("minimum")?,
            maximum: num("maximum")?,
        })
    }

    /// Check a JSON value a user submits for this property; the value to store.
    pub fn check(&self, v: &Value) -> Result<Value, String> {
        let v = match (self.kind, v) {
            (Kind::String, Value::String(s)) => {
                let s = s.trim();
                let n = s.chars().count() as u64;
                if n > self.max_length {
                    return Err(format!("Use at most {} characters.", self.max_length));
                }
                if let Some(min) = self.min_length
                    && n < min
                {
                    return Err(format!("Use at least {min} characters."));
                }
                if s.chars().any(char::is_control) {
                    return Err("Remove the control characters.".into());
                }
                Value::String(s.to_owned())
            }
            (Kind::Boolean, Value::Bool(b)) => Value::Bool(*b),
            (Kind::Number, Value::Number(n)) => Value::Number(n.clone()),
            (Kind::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n.clone()),
            (Kind::Integer, Value::Number(_)) => return Err("Enter a whole number.".into()),
            _ => return Err(format!("Expected a {}.", self.kind.as_str())),
        };
        if let Some(x) = v.as_f64()
            && (self.minimum.is_some_and(|m| x < m) || self.maximum.is_some_and(|m| x > m))
        {
            return Err(match (self.minimum, self.maximum) {
                (Some(a), Some(b)) => format!("Enter a number from {a} to {b}."),
                (Some(a), None) => format!("Enter a number of at least {a}."),
                (None, Some(b)) => format!("Enter a number of at most {b}."),
                (None, None) => "Enter a number.".to_owned(),
            });
        }
        if !self.choices.is_empty() && !self.choices.contains(&v) {
            return Err("Choose one of the listed values.".into());
        }
        Ok(v)
    }

    /// Check what an HTML form sent for this property (`None`: the field was absent, as an unchecked
    /// checkbox is). `Ok(None)` removes the key.
    pub fn check_form(&self, raw: Option<&str>) -> Result<Option<Value>, String> {
        let raw = raw.map(str::trim).unwrap_or("");
        let value = match self.kind {
            Kind::Boolean => return Ok(Some(Value::Bool(matches!(raw, "on" | "true" | "1")))),
            _ if raw.is_empty() => None,
            Kind::String => Some(Value::String(raw.to_owned())),
            Kind::Integer => Some(Value::from(raw.parse::<i64>().map_err(|_| "Enter a whole number.".to_owned())?)),
            Kind::Number => {
                let x = raw.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| "Enter a number.".to_owned())?;
                Some(serde_json::Number::from_f64(x).map(Value::Number).ok_or_else(|| "Enter a number.".to_owned())?)
            }
        };
        match value {
            None if self.required => Err("This field is required.".into()),
            None => Ok(None),
            Some(v) => self.check(&v).map(Some),
        }
    }
}

impl Branding {
    /// Parse the stored (or proposed) branding over the defaults, with the tenant's friendly name.
    pub fn parse(v: &Value, friendly_name: Option<&str>) -> Result<Self, ValidationError> {
        let empty = Map::new();
        let o = match v {
            Value::Object(o) => o,
            Value::Null => &empty,
            _ => return Err(err("branding must be an object")),
        };
        for k in o.keys() {
            if !["colors", "logo_url", "favicon_url", "font"].contains(&k.as_str()) {
                return Err(err(format!("branding: unknown property {k}")));
            }
        }
        let colors = match o.get("colors") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(c)) => c.clone(),
            _ => return Err(err("branding.colors must be an object")),
        };
        let color = |name: &str, default: &str| -> Result<String, ValidationError> {
            match colors.get(name) {
                None | Some(Value::Null) => Ok(default.to_owned()),
                Some(Value::String(s)) if valid_color(s) => Ok(s.clone()),
                _ => Err(err(format!("branding.colors.{name} must be a colour like #0b5cad"))),
            }
        };
        let logo_url = match o.get("logo_url") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.starts_with("https://") && http_url(s) && s.len() <= 2048 => Some(s.clone()),
            _ => return Err(err("branding.logo_url must be an https URL")),
        };
        Ok(Self {
            friendly_name: friendly_name.map(str::to_owned),
            logo_url,
            primary: color("primary", "#0b5cad")?,
            page_background: color("page_background", "#f4f5f7")?,
        })
    }
}

/// `app_metadata` key where an acceptance of the terms is recorded.
pub const TERMS_ACCEPTED_KEY: &str = "terms_accepted";

/// The version of the terms a user accepted, read from `app_metadata`.
pub fn accepted_terms(app_metadata: &Map<String, Value>) -> Option<&str> {
    app_metadata.get(TERMS_ACCEPTED_KEY)?.get("version")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let s = AccountSettings::parse(&Value::Null).expect("defaults");
        assert_eq!(s.editable_fields.len(), 5);
        assert_eq!(s.reauthentication_window, 300);
        assert!(s.terms.is_none());
        assert_eq!(s.profile_schema.properties.len(), 2);
        let full = AccountSettings::parse(&default_account_settings()).expect("defaults object");
        assert_eq!(full, s);
    }

    #[test]
    fn refuses_what_the_portal_cannot_honour() {
        for bad in [
            json!({"editable_fields": ["email"]}),
            json!({"editable_fields": ["app_metadata"]}),
            json!({"reauthentication_window": 5}),
            json!({"terms": {"version": "", "url": "https://x.example"}}),
            json!({"terms": {"version": "1", "url": "javascript:alert(1)"}}),
            json!({"profile_schema": {"properties": {"a.b": {"type": "string"}}}}),
            json!({"profile_schema": {"properties": {"x": {"type": "object"}}}}),
            json!({"profile_schema": {"properties": {"x": {"type": "string", "pattern": ".*"}}}}),
            json!({"profile_schema": {"properties": {"x": {"type": "string"}}, "required": ["y"]}}),
            json!({"profile_schema": {"properties": {"x": {"type": "boolean", "enum": [true]}}}}),
            json!({"surprise": 1}),
        ] {
            assert!(AccountSettings::parse(&bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn checks_values_by_schema() {
        let s = ProfileSchema::parse(&json!({"properties": {
            "language": {"type": "string", "enum": ["en", "fr"]},
            "age": {"type": "integer", "minimum": 13, "maximum": 130},
            "nick": {"type": "string", "maxLength": 5, "minLength": 2},
            "news": {"type": "boolean"}
        }, "required": ["language"]}))
        .expect("schema");
        let p = |k| s.property(k).expect("property");
        assert_eq!(p("language").check(&json!("fr")), Ok(json!("fr")));
        assert!(p("language").check(&json!("de")).is_err());
        assert!(p("language").check(&json!(1)).is_err());
        assert!(p("language").check_form(Some("")).is_err(), "required");
        assert_eq!(p("age").check_form(Some("42")), Ok(Some(json!(42))));
        assert!(p("age").check_form(Some("4.5")).is_err());
        assert!(p("age").check_form(Some("7")).is_err());
        assert_eq!(p("age").check_form(Some("")), Ok(None));
        assert!(p("nick").check(&json!("abcdef")).is_err());
        assert!(p("nick").check(&json!("a")).is_err());
        assert!(p("nick").check(&json!("a\u{7}b")).is_err());
        assert_eq!(p("news").check_form(None), Ok(Some(json!(false))));
        assert_eq!(p("news").check_form(Some("on")), Ok(Some(json!(true))));
    }

    #[test]
    fn branding_colours_are_strict() {
        assert!(Branding::parse(&json!({"colors": {"primary": "#abc"}}), None).is_ok());
        for bad in ["red", "#12345", "#0b5cad;}body{", "url(x)"] {
            assert!(Branding::parse(&json!({"colors": {"primary": bad}}), None).is_err(), "{bad}");
        }
        assert!(Branding::parse(&json!({"logo_url": "http://x.example/l.png"}), None).is_err());
        assert!(Branding::parse(&json!({"logo_url": "https://x.example/l.png"}), None).is_ok());
    }
}
