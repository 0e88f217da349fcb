//! A password as typed by its owner: a secret that never prints and never serializes.
//!
//! Length is counted in Unicode code points (NIST 800-63B); the upper bound protects the hasher
//! from oversized inputs (a 1 MiB "password" must be refused before any hashing).

use std::fmt;

use crate::error::ValidationError;

pub struct Password(String);

impl Password {
    /// Longest accepted password, in bytes (4 KiB is far above any passphrase and cheap to hash).
    pub const MAX_BYTES: usize = 4096;

    /// Accept a candidate password for *verification* (login): only the size is checked.
    pub fn for_verification(s: String) -> Result<Self, ValidationError> {
        if s.is_empty() || s.len() > Self::MAX_BYTES {
            return Err(ValidationError::new("Password is too long or empty"));
        }
        Ok(Self(s))
    }

    /// Accept a *new* password: at least `min_chars` code points, at most `MAX_BYTES` bytes.
    pub fn new_with_min(s: String, min_chars: usize) -> Result<Self, ValidationError> {
        if s.len() > Self::MAX_BYTES {
            return Err(ValidationError::new("PasswordStrengthError: Password is too long"));
        }
        if s.chars().count() < min_chars {
            return Err(ValidationError::new("PasswordStrengthError: Password is too weak"));
        }
        Ok(Self(s))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        // Best effort: overwrite the bytes before the allocation is released.
        let bytes = std::mem::take(&mut self.0).into_bytes();
        let mut bytes = bytes;
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules() {
        assert!(Password::new_with_min("1234567".into(), 8).is_err());
        assert!(Password::new_with_min("12345678".into(), 8).is_ok());
        assert!(Password::new_with_min("ééééééé😀".into(), 8).is_ok(), "counts code points, not bytes");
        assert!(Password::new_with_min("x".repeat(5000), 8).is_err());
        assert_eq!(format!("{:?}", Password::for_verification("hunter2".into()).ok()), "Some(Password(****))");
    }
}
