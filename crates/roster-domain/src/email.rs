//! Email addresses: parsed once, lowercased for database connections (as Auth0 does).
//!
//! The rule is deliberately structural (one `@`, sizes from RFC 5321, no whitespace or control
//! characters, a domain with a dot or `localhost`); deliverability is proven by the verification mail.

use std::fmt;

use serde::Serialize;

use crate::error::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parse and normalize (lowercase) an address for a database connection.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim();
        let err = || ValidationError::new("Object didn't pass validation for format email");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(err)?;
        if local.is_empty() || local.len() > 64 || local.contains('@') || domain.is_empty() || domain.len() > 253 {
            return Err(err());
        }
        let domain_ok = domain
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63 && !label.starts_with('-') && !label.ends_with('-'))
            && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.' || c == '[' || c == ']' || c == ':');
        if !domain_ok {
            return Err(err());
        }
        Ok(Self(s.to_lowercase()))
    }

    pub fn from_trusted(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lowercases() {
        assert_eq!(Email::parse("Jane.Doe@Example.COM").map(|e| e.0), Ok("jane.doe@example.com".to_owned()));
        assert_eq!(Email::parse("a@localhost").map(|e| e.local_part().to_owned()), Ok("a".to_owned()));
    }

    #[test]
    fn rejects_bad_shapes() {
        let long_local = format!("{}@x.com", "a".repeat(65));
        for bad in ["", "a", "@x.com", "a@", "a b@x.com", "a@x..com", "a@-x.com", "a@x.com\r\nBcc: y@z.com", long_local.as_str()]
        {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
