//! JWTs: RS256 signing with aws-lc (the key is parsed once, not per token), verification with
//! `jsonwebtoken` pinned to RS256 and to the tenant's own keys.
//!
//! Verification rejects: any algorithm but RS256 (so `none` and HMAC-with-the-public-key fail), a
//! missing or unknown `kid`, header-supplied keys (`jwk`, `jku`, `x5u`, `x5c`), a wrong `iss` or
//! `aud`, and an expired token (30 s leeway). Error values never contain the token.

use std::collections::HashMap;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Leeway for `exp`/`nbf`/`iat` checks, in seconds (clock skew between nodes and clients).
pub const LEEWAY_SECS: u64 = 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported algorithm")]
    Algorithm,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("invalid signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("key error")]
    Key,
}

/// `aud` may be one string or an array (Auth0 issues both forms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
}

/// A freshly generated key, ready to store.
pub struct NewKey {
    pub kid: String,
    pub pkcs8: Vec<u8>,
    pub jwk: Value,
}

impl NewKey {
    /// A new RSA-2048 key for RS256.
    pub fn generate_rs256() -> Result<Self, TokenError> {
        let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| TokenError::Key)?;
        let pkcs8 = kp.as_der().map_err(|_| TokenError::Key)?.as_ref().to_vec();
        let kid = URL_SAFE_NO_PAD.encode(roster_domain::secret::random_bytes(16));
        let jwk = public_jwk(&kp, &kid);
        Ok(Self { kid, pkcs8, jwk })
    }
}

fn public_jwk(kp: &RsaKeyPair, kid: &str) -> Value {
    let public = kp.public_key();
    json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    })
}

struct Signer {
    kid: String,
    key: RsaKeyPair,
    /// `base64url({"alg":"RS256","typ":"JWT","kid":…})`, computed once.
    header_b64: String,
}

/// A tenant's keys: one that signs, all that verify, and the JWKS document to publish.
pub struct KeySet {
    signer: Signer,
    verifiers: HashMap<String, DecodingKey>,
    jwks: Value,
    rng: SystemRandom,
}

/// A stored key as the key set needs it.
pub struct StoredKey<'a> {
    pub kid: &'a str,
    pub alg: &'a str,
    pub pkcs8: &'a [u8],
    /// Only the current key signs; the others are published and verify.
    pub current: bool,
}

impl KeySet {
    pub fn from_stored<'a>(keys: impl IntoIterator<Item = StoredKey<'a>>) -> Result<Self, TokenError> {
        let mut signer = None;
        let mut verifiers = HashMap::new();
        let mut jwks = Vec::new();
        for k in keys {
            if k.alg != "RS256" {
                continue;
            }
            let kp = RsaKeyPair::from_pkcs8(k.pkcs8).map_err(|_| TokenError::Key)?;
            let public = kp.public_key();
            let n = public.modulus().big_endian_without_leading_zero().to_vec();
            let e = public.exponent().big_endian_without_leading_zero().to_vec();
            verifiers.insert(k.kid.to_owned(), DecodingKey::from_rsa_raw_components(&n, &e));
            jwks.push(public_jwk(&kp, k.kid));
            if k.current && signer.is_none() {
                let header = json!({"alg": "RS256", "typ": "JWT", "kid": k.kid});
                let header_b64 = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(|_| TokenError::Key)?);
                signer = Some(Signer { kid: k.kid.to_owned(), key: kp, header_b64 });
            }
        }
        let signer = signer.ok_or(TokenError::Key)?;
        Ok(Self { signer, verifiers, jwks: json!({ "keys": jwks }), rng: SystemRandom::new() })
    }

    /// The JWKS document (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    pub fn signing_kid(&self) -> &str {
        &self.signer.kid
    }

    /// Sign any claims object as a compact JWS (RS256).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        let payload = serde_json::to_vec(claims).map_err(|_| TokenError::Key)?;
        let mut out = String::with_capacity(self.signer.header_b64.len() + payload.len() * 4 / 3 + 350);
        out.push_str(&self.signer.header_b64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let mut sig = vec![0u8; self.signer.key.public_modulus_len()];
        self.signer.key.sign(&RSA_PKCS1_SHA256, &self.rng, out.as_bytes(), &mut sig).map_err(|_| TokenError::Key)?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
        Ok(out)
    }

    /// Verify a token issued by this key set for `issuer` and `audience`.
    pub fn verify<T: serde::de::DeserializeOwned>(&self, token: &str, issuer: &str, audience: &str) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Algorithm);
        }
        if header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some() {
            return Err(TokenError::UnknownKey);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.verifiers.get(&kid).ok_or(TokenError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::RS256);
        v.leeway = LEEWAY_SECS;
        v.set_issuer(&[issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<T>(token, key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidIssuer => TokenError::Issuer,
                K::InvalidAudience => TokenError::Audience,
                K::InvalidSignature => TokenError::Signature,
                K::InvalidAlgorithm | K::InvalidAlgorithmName => TokenError::Algorithm,
                _ => TokenError::Malformed,
            }
        })?;
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyset() -> (KeySet, NewKey) {
        let k = NewKey::generate_rs256().expect("key");
        let ks = KeySet::from_stored([StoredKey { kid: &k.kid, alg: "RS256", pkcs8: &k.pkcs8, current: true }]).expect("keyset");
        (ks, k)
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
    }

    fn claims(exp_in: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://x/t/a/".into(),
            sub: "c@clients".into(),
            aud: Audience::One("http://x/t/a/api/v2/".into()),
            iat: now(),
            exp: now() + exp_in,
            scope: "read:users".into(),
            gty: Some("client-credentials".into()),
            azp: Some("c".into()),
        }
    }

    #[test]
    fn sign_and_verify() {
        let (ks, k) = keyset();
        let t = ks.sign(&claims(60)).expect("sign");
        let c: AccessClaims = ks.verify(&t, "http://x/t/a/", "http://x/t/a/api/v2/").expect("valid");
        assert_eq!(c.scope, "read:users");
        assert_eq!(ks.jwks()["keys"][0]["kid"], Value::String(k.kid.clone()));
        assert_eq!(ks.verify::<AccessClaims>(&t, "http://x/t/b/", "http://x/t/a/api/v2/"), Err(TokenError::Issuer));
        assert_eq!(ks.verify::<AccessClaims>(&t, "http://x/t/a/", "http://x/t/b/api/v2/"), Err(TokenError::Audience));
    }

    #[test]
    fn rejects_expired_and_foreign_keys() {
        let (ks, _) = keyset();
        let t = ks.sign(&claims(-120)).expect("sign");
        assert_eq!(ks.verify::<AccessClaims>(&t, "http://x/t/a/", "http://x/t/a/api/v2/"), Err(TokenError::Expired));
        let (other, _) = keyset();
        let t = other.sign(&claims(60)).expect("sign");
        assert_eq!(ks.verify::<AccessClaims>(&t, "http://x/t/a/", "http://x/t/a/api/v2/"), Err(TokenError::UnknownKey));
    }

    #[test]
    fn rejects_alg_none_and_tampering() {
        let (ks, _) = keyset();
        let t = ks.sign(&claims(60)).expect("sign");
        let parts: Vec<&str> = t.split('.').collect();
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"x"}"#);
        let forged = format!("{none}.{}.", parts[1]);
        assert!(ks.verify::<AccessClaims>(&forged, "http://x/t/a/", "http://x/t/a/api/v2/").is_err());
        let mut c = claims(60);
        c.scope = "read:users delete:users".into();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("json"));
        let tampered = format!("{}.{body}.{}", parts[0], parts[2]);
        assert_eq!(ks.verify::<AccessClaims>(&tampered, "http://x/t/a/", "http://x/t/a/api/v2/"), Err(TokenError::Signature));
    }
}
