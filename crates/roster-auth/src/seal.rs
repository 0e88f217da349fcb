//! Secrets at rest: the server master key and authenticated encryption with it (AES-256-GCM).
//!
//! Tenant SMTP passwords and the one-time links inside queued mail are sealed with the master key
//! before they reach the database, so a copy of the database alone reveals neither. Every sealed value
//! is bound to a context string (e.g. `smtp:{tenant_id}`) as associated data: a value moved to another
//! tenant or another purpose does not open. A sealed value names the key it was sealed with (the first
//! 4 bytes of SHA-256 of the key), so a node started with a different master key reports exactly that
//! instead of a generic failure.
//!
//! Never log or return a key or an opened value; errors here carry no secret.

use std::io::Write;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

const PREFIX: &str = "v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the master key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("the value was sealed with a different master key")]
    OtherKey,
    #[error("the sealed value is damaged or belongs to another context")]
    Damaged,
}

/// The server master key. Cheap to clone; the key bytes are never exposed.
#[derive(Clone)]
pub struct MasterKey {
    key: std::sync::Arc<LessSafeKey>,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl MasterKey {
    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != 32 {
            return Err(SealError::BadKey);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::BadKey)?;
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        Ok(Self { key: std::sync::Arc::new(LessSafeKey::new(unbound)), id })
    }

    /// From the base64 form (standard or URL-safe alphabet, padding optional), as in configuration.
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let t = text.trim();
        let bytes =
            STANDARD.decode(t).or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('='))).map_err(|_| SealError::BadKey)?;
        Self::from_bytes(&bytes)
    }

    /// Read the key file, or create it (mode 0600, 32 random bytes in base64) when it does not exist.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let bytes = roster_domain::secret::random_bytes(32);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                match opts.open(path) {
                    Ok(mut f) => {
                        f.write_all(STANDARD.encode(&bytes).as_bytes())?;
                        f.write_all(b"\n")?;
                        f.sync_all()?;
                        Self::from_bytes(&bytes).map_err(|e| std::io::Error::other(e.to_string()))
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(path),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A short public identifier of the key (not secret: 4 bytes of its SHA-256).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypt `plain` for `context`: `v1.{key id}.{base64url(nonce ‖ ciphertext ‖ tag)}`.
    pub fn seal(&self, context: &str, plain: &[u8]) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = {
            let mut n = [0u8; NONCE_LEN];
            n.copy_from_slice(&roster_domain::secret::random_bytes(NONCE_LEN));
            n
        };
        let mut buf = plain.to_vec();
        // Sealing only fails for inputs larger than GCM allows (64 GiB), which never reach here.
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(context.as_bytes()), &mut buf)
            .expect("AES-GCM input within limits");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        format!("{PREFIX}.{}.{}", self.id, URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypt a value sealed for `context` with this key.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(PREFIX), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Damaged);
        };
        if id != self.id {
            return Err(SealError::OtherKey);
        }
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError::Damaged)?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Damaged);
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Damaged)?;
        let mut buf = rest.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf).map_err(|_| SealError::Damaged)?;
        Ok(plain.to_vec())
    }

    /// [`open`](Self::open) for UTF-8 text.
    pub fn open_str(&self, context: &str, sealed: &str) -> Result<String, SealError> {
        String::from_utf8(self.open(context, sealed)?).map_err(|_| SealError::Damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_bytes(&[7u8; 32]).expect("key")
    }

    #[test]
    fn round_trip_and_context_binding() {
        let k = key();
        let sealed = k.seal("smtp:ten_a", b"hunter2");
        assert!(sealed.starts_with(&format!("v1.{}.", k.id())));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(k.open("smtp:ten_a", &sealed).expect("opens"), b"hunter2");
        assert_eq!(k.open("smtp:ten_b", &sealed), Err(SealError::Damaged), "bound to its context");
        assert_ne!(k.seal("smtp:ten_a", b"hunter2"), sealed, "fresh nonce each time");
    }

    #[test]
    fn tampering_and_other_keys_are_detected() {
        let k = key();
        let sealed = k.seal("c", b"secret");
        let mut chars: Vec<char> = sealed.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert_eq!(k.open("c", &tampered), Err(SealError::Damaged));
        let other = MasterKey::from_bytes(&[8u8; 32]).expect("key");
        assert_eq!(other.open("c", &sealed), Err(SealError::OtherKey));
        assert_eq!(k.open("c", "garbage"), Err(SealError::Damaged));
        assert_eq!(k.open("c", &format!("v1.{}.AAAA", k.id())), Err(SealError::Damaged));
    }

    #[test]
    fn key_parsing() {
        assert_eq!(MasterKey::from_base64("dG9vIHNob3J0").map(|_| ()), Err(SealError::BadKey));
        let b64 = STANDARD.encode([1u8; 32]);
        assert!(MasterKey::from_base64(&format!(" {b64}\n")).is_ok());
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = std::env::temp_dir().join(format!("roster-seal-{}", roster_domain::secret::random_hex(6)));
        let path = dir.join("master.key");
        let a = MasterKey::load_or_create(&path).expect("create");
        let b = MasterKey::load_or_create(&path).expect("load");
        assert_eq!(a.id(), b.id(), "the same key is read back");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
