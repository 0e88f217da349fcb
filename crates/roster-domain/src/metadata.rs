//! `user_metadata` and `app_metadata`: validation and Auth0's first-level merge.
//!
//! Auth0 semantics (reference §2.3, §2.5): a PATCH merges one level deep (nested objects are replaced),
//! `null` deletes a key, `{}` wipes the object. Keys must not contain `.` or `$`, some `app_metadata`
//! keys are reserved, and each object has a size and a nesting-depth limit so profiles stay small.

use serde_json::{Map, Value};

use crate::error::ValidationError;

/// Which of the two metadata objects a value belongs to (the rules differ slightly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    User,
    App,
}

impl MetadataKind {
    pub fn field(self) -> &'static str {
        match self {
            Self::User => "user_metadata",
            Self::App => "app_metadata",
        }
    }
}

/// Limits applied to each metadata object after a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLimits {
    /// Serialized size of one object, in bytes.
    pub max_bytes: usize,
    /// Maximum nesting depth of values inside the object (the object itself is depth 1).
    pub max_depth: usize,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        Self { max_bytes: 16 * 1024, max_depth: 10 }
    }
}

/// `app_metadata` keys Auth0 reserves for itself.
pub const RESERVED_APP_METADATA_KEYS: &[&str] = &[
    "__tenant",
    "_id",
    "blocked",
    "clientID",
    "created_at",
    "email_verified",
    "email",
    "globalClientID",
    "global_client_id",
    "identities",
    "lastIP",
    "lastLogin",
    "loginsCount",
    "metadata",
    "multifactor_last_modified",
    "multifactor",
    "updated_at",
    "user_id",
];

/// A validated metadata object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata(Map<String, Value>);

/// A validated metadata patch: `{}` (wipe) or keys to set (`Some`) or delete (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataPatch(Map<String, Value>);

impl Metadata {
    pub fn empty() -> Self {
        Self(Map::new())
    }

    /// Validate a whole object (creation, import): the same key rules as a patch, `null` values kept out.
    pub fn parse(kind: MetadataKind, value: Value, limits: MetadataLimits) -> Result<Self, ValidationError> {
        let Value::Object(map) = value else {
            return Err(ValidationError::new(format!("{} must be an object", kind.field())));
        };
        check_keys(kind, &map, limits)?;
        let map: Map<String, Value> = map.into_iter().filter(|(_, v)| !v.is_null()).collect();
        let md = Self(map);
        md.check_size(kind, limits)?;
        Ok(md)
    }

    /// Rebuild from storage.
    pub fn from_trusted(map: Map<String, Value>) -> Self {
        Self(map)
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// Apply a patch with Auth0's rules and check the size of the result.
    pub fn merged(&self, patch: &MetadataPatch, kind: MetadataKind, limits: MetadataLimits) -> Result<Self, ValidationError> {
        let mut md = if patch.0.is_empty() { Self::empty() } else { self.clone() };
        md.merge(patch, kind, limits)?;
        Ok(md)
    }

    /// [`Metadata::merged`] in place (no copy of the current object). On an error the object may be
    /// half-patched: callers discard it (a store mutation that fails changes nothing).
    pub fn merge(&mut self, patch: &MetadataPatch, kind: MetadataKind, limits: MetadataLimits) -> Result<(), ValidationError> {
        if patch.0.is_empty() {
            self.0.clear();
        }
        for (k, v) in &patch.0 {
            if v.is_null() {
                self.0.remove(k);
            } else {
                self.0.insert(k.clone(), v.clone());
            }
        }
        self.check_size(kind, limits)
    }

    fn check_size(&self, kind: MetadataKind, limits: MetadataLimits) -> Result<(), ValidationError> {
        // Counted as it would be written, without building the text.
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0 += b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut n = Count(0);
        let size = serde_json::to_writer(&mut n, &self.0).map(|()| n.0).unwrap_or(usize::MAX);
        if size > limits.max_bytes {
            return Err(ValidationError::new(format!(
                "Payload validation error: '{}' is too large ({size} bytes; the limit is {} bytes)",
                kind.field(),
                limits.max_bytes
            )));
        }
        Ok(())
    }
}

impl MetadataPatch {
    pub fn parse(kind: MetadataKind, value: Value, limits: MetadataLimits) -> Result<Self, ValidationError> {
        let Value::Object(map) = value else {
            return Err(ValidationError::new(format!(
                "Payload validation error: 'Expected type object but found type {}' on property {}.",
                json_type(&value),
                kind.field()
            )));
        };
        check_keys(kind, &map, limits)?;
        Ok(Self(map))
    }

    /// The keys and values the patch sets (`null`: remove).
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn is_wipe(&self) -> bool {
        self.0.is_empty()
    }
}

fn check_keys(kind: MetadataKind, map: &Map<String, Value>, limits: MetadataLimits) -> Result<(), ValidationError> {
    if kind == MetadataKind::App
        && let Some(k) = map.keys().find(|k| RESERVED_APP_METADATA_KEYS.contains(&k.as_str()))
    {
        return Err(ValidationError::new(format!(
            "Payload validation error: 'app_metadata' key '{k}' is reserved and cannot be set."
        )));
    }
    check_object(kind, map, 1, limits.max_depth)
}

fn check_object(kind: MetadataKind, map: &Map<String, Value>, depth: usize, max_depth: usize) -> Result<(), ValidationError> {
    if depth > max_depth {
        return Err(ValidationError::new(format!(
            "Payload validation error: '{}' is nested deeper than {max_depth} levels.",
            kind.field()
        )));
    }
    for (k, v) in map {
        if k.is_empty() || k.contains('.') || k.contains('$') {
            return Err(ValidationError::new(format!(
                "Payload validation error: '{}' keys must not be empty or contain '.' or '$' (found {k:?}).",
                kind.field()
            )));
        }
        check_value(kind, v, depth, max_depth)?;
    }
    Ok(())
}

fn check_value(kind: MetadataKind, v: &Value, depth: usize, max_depth: usize) -> Result<(), ValidationError> {
    match v {
        Value::Object(m) => check_object(kind, m, depth + 1, max_depth),
        Value::Array(items) => {
            if depth + 1 > max_depth {
                return Err(ValidationError::new(format!(
                    "Payload validation error: '{}' is nested deeper than {max_depth} levels.",
                    kind.field()
                )));
            }
            items.iter().try_for_each(|i| check_value(kind, i, depth + 1, max_depth))
        }
        _ => Ok(()),
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn md(v: Value) -> Metadata {
        Metadata::parse(MetadataKind::User, v, MetadataLimits::default()).expect("valid")
    }
    fn patch(kind: MetadataKind, v: Value) -> Result<MetadataPatch, ValidationError> {
        MetadataPatch::parse(kind, v, MetadataLimits::default())
    }
    fn apply(cur: Value, p: Value) -> Value {
        let p = patch(MetadataKind::User, p).expect("valid patch");
        md(cur).merged(&p, MetadataKind::User, MetadataLimits::default()).expect("fits").into_value()
    }

    #[test]
    fn null_deletes_one_key_and_keeps_others() {
        assert_eq!(apply(json!({"a": 1, "b": 2}), json!({"a": null})), json!({"b": 2}));
    }

    #[test]
    fn merge_is_one_level_deep() {
        assert_eq!(apply(json!({"b": {"y": 2}, "c": 3}), json!({"b": {"x": 1}})), json!({"b": {"x": 1}, "c": 3}));
    }

    #[test]
    fn empty_object_wipes() {
        assert_eq!(apply(json!({"a": 1, "b": 2}), json!({})), json!({}));
    }

    #[test]
    fn forbidden_keys() {
        assert!(patch(MetadataKind::User, json!({"a.b": 1})).is_err());
        assert!(patch(MetadataKind::User, json!({"$set": 1})).is_err());
        assert!(patch(MetadataKind::User, json!({"a": {"x.y": 1}})).is_err(), "nested keys are checked too");
        assert!(patch(MetadataKind::App, json!({"user_id": "x"})).is_err());
        assert!(patch(MetadataKind::User, json!({"user_id": "x"})).is_ok(), "reserved only in app_metadata");
        assert!(patch(MetadataKind::User, json!([1, 2])).is_err());
    }

    #[test]
    fn depth_limit() {
        let mut v = json!(1);
        for _ in 0..11 {
            v = json!({ "k": v });
        }
        assert!(patch(MetadataKind::User, v.clone()).is_err(), "11 levels");
        let ok = v["k"].clone();
        assert!(patch(MetadataKind::User, ok).is_ok(), "10 levels");
    }

    #[test]
    fn size_limit_applies_to_the_merged_result() {
        let limits = MetadataLimits { max_bytes: 64, max_depth: 10 };
        let cur = Metadata::parse(MetadataKind::User, json!({"a": "x".repeat(40)}), limits).expect("fits");
        let p = MetadataPatch::parse(MetadataKind::User, json!({"b": "y".repeat(40)}), limits).expect("valid");
        assert!(cur.merged(&p, MetadataKind::User, limits).is_err());
    }
}
