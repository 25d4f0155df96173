//! Client tokens: `tf1.<client>.<expires unix s>.<signature>`, the signature an HMAC-SHA256 of
//! the first three parts under the operator's secret (base64url, no padding). A token entitles its
//! bearer to one client id until it expires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tradeflow_core::ClientId;

const VERSION: &str = "tf1";
/// Shortest secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// Secrets that appeared in examples (this project's earlier compose file among them): anyone could
/// forge tokens with them, so they are refused like a short one.
pub const EXAMPLE_SECRETS: [&str; 4] =
    ["local-only-secret-change-me", "change-me-change-me", "0123456789abcdef", "secretsecretsecret"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token (expected tf1.<client>.<expiry>.<signature>)")]
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
}

/// Signs and checks tokens.
#[derive(Clone)]
pub struct TokenKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(secret: &str) -> Result<Self, TokenError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::WeakSecret);
        }
        if EXAMPLE_SECRETS.iter().any(|e| e.eq_ignore_ascii_case(secret.trim())) {
            return Err(TokenError::ExampleSecret);
        }
        Ok(Self { secret: secret.as_bytes().to_vec() })
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        mac.update(payload.as_bytes());
        mac
    }

    /// A token for `client` valid until `expires` (unix seconds).
    pub fn sign(&self, client: &ClientId, expires: i64) -> String {
        let payload = format!("{VERSION}.{client}.{expires}");
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// The client a token entitles to, checked against `now` (unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<ClientId, TokenError> {
        let (payload, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let mut parts = payload.split('.');
        let (Some(VERSION), Some(client), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let client = ClientId::parse(client).map_err(|_| TokenError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Malformed)?;
        self.mac(payload).verify_slice(&sig).map_err(|_| TokenError::Signature)?;
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
}
