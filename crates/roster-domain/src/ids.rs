//! Typed identifiers with fallible constructors.
//!
//! Each id type has a private field, so a value can only come from `parse` (untrusted input) or from a
//! generator (`new_random`). Handlers therefore never pass raw strings to the store.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::secret;

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
            /// Rebuild an id read back from storage, where it was validated when written.
            pub fn from_trusted(s: impl Into<String>) -> Self {
                Self(s.into())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message().to_owned()))
            }
        }
    };
}

string_id!(
    /// A tenant's URL name: `[a-z0-9-]{3,63}`, not starting or ending with `-`.
    TenantName
);
string_id!(
    /// A tenant's internal, immutable id (`ten_…`).
    TenantId
);
string_id!(
    /// A user id as Auth0 shapes it: `{provider}|{id}`, e.g. `auth0|65f0c0ffee...`.
    UserId
);
string_id!(
    /// An OAuth client id (32 alphanumeric characters when generated).
    ClientId
);
string_id!(
    /// A connection id (`con_` + 16 alphanumeric characters).
    ConnectionId
);
string_id!(
    /// A log event id: sortable by time.
    LogId
);

impl TenantName {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok_len = (3..=63).contains(&s.len());
        let ok_chars = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_ends = !s.starts_with('-') && !s.ends_with('-');
        if ok_len && ok_chars && ok_ends {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new(format!(
                "invalid tenant name {s:?}: use 3 to 63 characters from a-z, 0-9 and '-', not starting or ending with '-'"
            )))
        }
    }
}

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.starts_with("ten_") && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new("invalid tenant id"))
        }
    }
    pub fn new_random() -> Self {
        Self(format!("ten_{}", secret::random_alphanumeric(20)))
    }
}

impl UserId {
    /// Max length Auth0 accepts for a user id.
    pub const MAX_LEN: usize = 255;

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let Some((provider, id)) = s.split_once('|') else {
            return Err(ValidationError::new("user_id must have the form provider|id"));
        };
        if provider.is_empty()
            || id.is_empty()
            || s.len() > Self::MAX_LEN
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ValidationError::new("invalid user_id"));
        }
        Ok(Self(s.to_owned()))
    }

    /// A new database-connection user id: `auth0|` + 24 hex characters, the shape Auth0 uses.
    pub fn new_database() -> Self {
        Self(format!("auth0|{}", secret::random_hex(12)))
    }

    /// The id a caller supplied at creation (`POST /users {"user_id": "abc"}`) becomes `auth0|abc`.
    pub fn database_with(id: &str) -> Result<Self, ValidationError> {
        if id.is_empty() || id.len() > Self::MAX_LEN - 6 || id.chars().any(|c| c.is_whitespace() || c.is_control() || c == '|') {
            return Err(ValidationError::new("user_id must be 1 to 249 characters without spaces or '|'"));
        }
        Ok(Self(format!("auth0|{id}")))
    }

    pub fn provider(&self) -> &str {
        self.0.split_once('|').map(|(p, _)| p).unwrap_or("")
    }
    /// The part after the provider: the identity's `user_id`.
    pub fn local(&self) -> &str {
        self.0.split_once('|').map(|(_, id)| id).unwrap_or(&self.0)
    }
}

impl ClientId {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new("invalid client_id"))
        }
    }
    pub fn new_random() -> Self {
        Self(secret::random_alphanumeric(32))
    }
}

impl ConnectionId {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.starts_with("con_") && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new("invalid connection id"))
        }
    }
    pub fn new_random() -> Self {
        Self(format!("con_{}", secret::random_alphanumeric(16)))
    }
}

impl LogId {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValidationError::new("invalid log id"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        for ok in ["acme", "default", "a-b", "abc", "a1-2b"] {
            assert!(TenantName::parse(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in ["ab", "-abc", "abc-", "ABC", "a_b", "a b", "", long.as_str(), "ab/c", "ab.c"] {
            assert!(TenantName::parse(bad).is_err(), "{bad}");
        }
        assert!(TenantName::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn user_ids() {
        let id = UserId::new_database();
        assert!(id.as_str().starts_with("auth0|"));
        assert_eq!(id.local().len(), 24);
        assert_eq!(UserId::parse("google-oauth2|123").map(|u| u.provider().to_owned()), Ok("google-oauth2".to_owned()));
        assert!(UserId::parse("noprovider").is_err());
        assert!(UserId::parse("auth0|a b").is_err());
        assert!(UserId::parse(&format!("auth0|{}", "x".repeat(300))).is_err());
        assert_eq!(UserId::database_with("abc").map(|u| u.into_string()), Ok("auth0|abc".to_owned()));
        assert!(UserId::database_with("a|b").is_err());
    }
}
