//! Random secrets and identifiers from the OS CSPRNG.
//!
//! Client secrets and ticket tokens are 256-bit random values; because they are not human-chosen, a
//! fast hash (SHA-256, computed by the auth crate) is the right way to store them.

use rand::Rng;
use rand::distr::Alphanumeric;

/// `n` random alphanumeric characters (62 symbols, ~5.95 bits each).
pub fn random_alphanumeric(n: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(n).map(char::from).collect()
}

/// `n` random bytes, hex-encoded (2n characters).
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill(&mut buf[..]);
    hex::encode(buf)
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rng().fill(&mut buf[..]);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_uniqueness() {
        let a = random_alphanumeric(32);
        let b = random_alphanumeric(32);
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(random_hex(12).len(), 24);
        assert!(random_alphanumeric(64).chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
