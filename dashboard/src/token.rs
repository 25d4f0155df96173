//! Client tokens: `tf1.<client>.<expires unix s>.<signature>`, the signature an HMAC-SHA256 of
//! the parts before it under the operator's secret (base64url, no padding). A token entitles its
//! bearer to one client id until it expires.
//!
//! **Rotation.** The secret may be a list, `kid:secret` entries separated by commas or lines: the
//! first signs — `tf2.<kid>.<client>.<expires>.<signature>` — and every entry verifies (a plain
//! secret without a key id signs and verifies `tf1` tokens). To rotate: put the new entry first and
//! keep the old one until its tokens have expired; no session is cut.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tradeflow_core::ClientId;

const VERSION: &str = "tf1";
const VERSION_WITH_KID: &str = "tf2";
/// Shortest secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// Secrets that appeared in examples (this project's earlier compose file among them): anyone could
/// forge tokens with them, so they are refused like a short one.
pub const EXAMPLE_SECRETS: [&str; 4] =
    ["local-only-secret-change-me", "change-me-change-me", "0123456789abcdef", "secretsecretsecret"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token (expected tf1.<client>.<expiry>.<signature> or tf2.<kid>.<client>.<expiry>.<signature>)")]
    Malformed,
    #[error("bad token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("the auth secret must be at least {MIN_SECRET_LEN} bytes")]
    WeakSecret,
    #[error(
        "the auth secret is a published example: anyone could forge tokens with it; generate one (e.g. openssl rand -hex 32)"
    )]
    ExampleSecret,
    #[error("no auth secret in the list")]
    NoSecret,
}

/// Signs and checks tokens: one secret, or a key ring whose first entry signs.
#[derive(Clone)]
pub struct TokenKey {
    keys: Vec<(Option<String>, Vec<u8>)>,
}

/// A key id: 1–16 ASCII letters, digits, `-` or `_`.
fn is_kid(s: &str) -> bool {
    (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_secret(secret: &str) -> Result<(), TokenError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(TokenError::WeakSecret);
    }
    if EXAMPLE_SECRETS.iter().any(|e| e.eq_ignore_ascii_case(secret.trim())) {
        return Err(TokenError::ExampleSecret);
    }
    Ok(())
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// One secret, or a key ring: `kid:secret` entries separated by commas or lines, the first signing.
    pub fn new(spec: &str) -> Result<Self, TokenError> {
        let mut keys = Vec::new();
        for entry in spec.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty()) {
            let (kid, secret) = match entry.split_once(':') {
                Some((kid, secret)) if is_kid(kid) => (Some(kid.to_owned()), secret.trim()),
                _ => (None, entry),
            };
            check_secret(secret)?;
            keys.push((kid, secret.as_bytes().to_vec()));
        }
        if keys.is_empty() {
            return Err(if spec.trim().is_empty() { TokenError::WeakSecret } else { TokenError::NoSecret });
        }
        Ok(Self { keys })
    }

    fn mac(secret: &[u8], payload: &str) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        mac.update(payload.as_bytes());
        mac
    }

    /// A token for `client` valid until `expires` (unix seconds), signed by the first key.
    pub fn sign(&self, client: &ClientId, expires: i64) -> String {
        let (kid, secret) = &self.keys[0];
        let payload = match kid {
            Some(kid) => format!("{VERSION_WITH_KID}.{kid}.{client}.{expires}"),
            None => format!("{VERSION}.{client}.{expires}"),
        };
        let sig = URL_SAFE_NO_PAD.encode(Self::mac(secret, &payload).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// The client a token entitles to, checked against `now` (unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<ClientId, TokenError> {
        let (payload, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let parts: Vec<&str> = payload.split('.').collect();
        let (kid, client, expires) = match parts.as_slice() {
            [VERSION, client, expires] => (None, *client, *expires),
            [VERSION_WITH_KID, kid, client, expires] if is_kid(kid) => (Some(*kid), *client, *expires),
            _ => return Err(TokenError::Malformed),
        };
        let client = ClientId::parse(client).map_err(|_| TokenError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Malformed)?;
        // Every key with this id (or without one, for tf1) may have signed it; compared in constant time.
        let signed = self
            .keys
            .iter()
            .filter(|(k, _)| k.as_deref() == kid)
            .any(|(_, secret)| Self::mac(secret, payload).verify_slice(&sig).is_ok());
        if !signed {
            return Err(TokenError::Signature);
        }
        if expires <= now {
            return Err(TokenError::Expired);
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new("0123456789abcdef-test").unwrap()
    }

    #[test]
    fn round_trip_binds_the_client() {
        let c = ClientId::parse("7").unwrap();
        let t = key().sign(&c, 2_000);
        assert_eq!(key().verify(&t, 1_000), Ok(c));
    }

    #[test]
    fn tampering_expiry_and_other_keys_are_refused() {
        let t = key().sign(&ClientId::parse("7").unwrap(), 2_000);
        assert_eq!(key().verify(&t, 2_000), Err(TokenError::Expired));
        let forged = t.replacen("tf1.7.", "tf1.8.", 1);
        assert_eq!(key().verify(&forged, 1_000), Err(TokenError::Signature));
        let other = TokenKey::new("another-secret-of-16").unwrap();
        assert_eq!(other.verify(&t, 1_000), Err(TokenError::Signature));
        assert_eq!(key().verify("tf1.7.2000", 1_000), Err(TokenError::Malformed));
        assert_eq!(key().verify("garbage", 1_000), Err(TokenError::Malformed));
        assert_eq!(TokenKey::new("short").err(), Some(TokenError::WeakSecret));
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_the_old_key_is_dropped() {
        let c = ClientId::parse("7").unwrap();
        let old = TokenKey::new("k1:old-secret-of-enough-bytes").unwrap();
        let before = old.sign(&c, 2_000);
        assert!(before.starts_with("tf2.k1.7.2000."), "{before}");
        // Rotated: the new key signs, the old one still verifies.
        let both = TokenKey::new("k2:new-secret-of-enough-bytes,\nk1:old-secret-of-enough-bytes").unwrap();
        assert_eq!(both.verify(&before, 1_000), Ok(c.clone()));
        let after = both.sign(&c, 2_000);
        assert!(after.starts_with("tf2.k2."), "{after}");
        // The old key gone: its tokens are refused, the new ones pass.
        let new = TokenKey::new("k2:new-secret-of-enough-bytes").unwrap();
        assert_eq!(new.verify(&before, 1_000), Err(TokenError::Signature));
        assert_eq!(new.verify(&after, 1_000), Ok(c.clone()));
        // A key id cannot be borrowed: k2's id with k1's signature fails.
        let swapped = before.replacen("tf2.k1.", "tf2.k2.", 1);
        assert_eq!(both.verify(&swapped, 1_000), Err(TokenError::Signature));
        // A plain secret beside a key ring still verifies tf1 tokens; every entry is checked.
        let legacy = key().sign(&c, 2_000);
        let mixed = TokenKey::new("k2:new-secret-of-enough-bytes,0123456789abcdef-test").unwrap();
        assert_eq!(mixed.verify(&legacy, 1_000), Ok(c));
        assert_eq!(TokenKey::new("k3:short").err(), Some(TokenError::WeakSecret));
    }
}
