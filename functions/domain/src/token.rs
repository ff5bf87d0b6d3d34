//! API tokens, SparkRTC's `X-Auth-Token`: issued by `POST /v3/auth/tokens` for a key id and
//! secret sent in IAM's password-method body, valid 24 hours, accepted wherever HTTP Basic is.
//!
//! A token names its key id and lifetime and carries HMAC-SHA256 of them keyed by the
//! deployment's [`TokenKey`], bound to the credential's stored secret hash. So nobody without
//! the deployment's key can forge one, and it stops working when its credential is removed
//! or re-registered with another secret: each use looks the credential up again.
//! IAM's API: <https://support.huaweicloud.com/intl/en-us/api-iam/iam_30_0001.html>.

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::Invalid;
use crate::ids::KeyId;

/// How long a token is valid, as IAM's are.
pub const TOKEN_LIFETIME_SECONDS: i64 = 24 * 3600;
/// Shortest deployment key accepted, in characters.
pub const MIN_TOKEN_KEY_CHARS: usize = 32;
/// First field of every token: its format version.
const TOKEN_PREFIX: &str = "rrt1";
/// Domain separation: a MAC over anything else never verifies as a token.
const SIGNATURE_CONTEXT: &str = "roomrec-token-v1";

/// The deployment's key for token signatures (template parameter `TokenKey`). Never printed.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// The key from its configured text; `None` when shorter than [`MIN_TOKEN_KEY_CHARS`].
    pub fn parse(text: &str) -> Option<Self> {
        (text.chars().count() >= MIN_TOKEN_KEY_CHARS).then(|| Self(text.as_bytes().to_vec()))
    }
}

/// What a token grants: the credential it was issued for, from when to when (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub key_id: KeyId,
    pub issued_at: i64,
    pub expires_at: i64,
}

impl TokenClaims {
    /// The claims of a token issued for `key_id` at `now`, valid [`TOKEN_LIFETIME_SECONDS`].
    pub fn issue(key_id: KeyId, now: DateTime<Utc>) -> Self {
        let issued_at = now.timestamp();
        Self { key_id, issued_at, expires_at: issued_at + TOKEN_LIFETIME_SECONDS }
    }

    /// `issued_at` as a time.
    pub fn issued(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.issued_at, 0).single().unwrap_or_default()
    }

    /// `expires_at` as a time.
    pub fn expires(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.expires_at, 0).single().unwrap_or_default()
    }

    /// The signature of these claims for a credential whose secret hashes to `secret_sha256`.
    fn signature(&self, key: &TokenKey, secret_sha256: &str) -> String {
        // HMAC takes keys of any length; new_from_slice cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&key.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        let message = format!(
            "{SIGNATURE_CONTEXT}\n{}\n{}\n{}\n{secret_sha256}",
            self.key_id.as_str(),
            self.issued_at,
            self.expires_at
        );
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The token text: `rrt1.<key_id>.<issued_at>.<expires_at>.<signature>`.
    pub fn sign(&self, key: &TokenKey, secret_sha256: &str) -> String {
        let signature = self.signature(key, secret_sha256);
        format!("{TOKEN_PREFIX}.{}.{}.{}.{signature}", self.key_id.as_str(), self.issued_at, self.expires_at)
    }
}

/// A token as presented, read but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedToken {
    pub claims: TokenClaims,
    signature: String,
}

impl PresentedToken {
    /// Reads a token's fields; `None` when it is not one of ours.
    pub fn parse(text: &str) -> Option<Self> {
        let mut fields = text.trim().split('.');
        if fields.next()? != TOKEN_PREFIX {
            return None;
        }
        let key_id = KeyId::parse(fields.next()?)?;
        let issued_at = fields.next()?.parse().ok()?;
        let expires_at = fields.next()?.parse().ok()?;
        let signature = fields.next()?.to_owned();
        if fields.next().is_some() {
            return None;
        }
        Some(Self { claims: TokenClaims { key_id, issued_at, expires_at }, signature })
    }

    /// Whether the token is unexpired at `now` and signed with `key` for a credential whose
    /// secret hashes to `secret_sha256`; compared in constant time.
    pub fn is_valid(&self, key: &TokenKey, secret_sha256: &str, now: DateTime<Utc>) -> bool {
        let expected = self.claims.signature(key, secret_sha256);
        let signed: bool = expected.as_bytes().ct_eq(self.signature.as_bytes()).into();
        signed && now.timestamp() < self.claims.expires_at
    }
}

/// IAM's `POST /v3/auth/tokens` body, password method. `scope`, the user's `domain` and
/// anything else IAM defines are accepted and ignored: roomrec has no domains or projects.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenRequest {
    pub auth: TokenAuth,
}

/// `auth` of a [`TokenRequest`].
#[derive(Debug, Clone, Deserialize)]
pub struct TokenAuth {
    pub identity: TokenIdentity,
}

/// `auth.identity`: the methods and the password credential.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenIdentity {
    pub methods: Vec<String>,
    pub password: PasswordIdentity,
}

/// `auth.identity.password`.
#[derive(Debug, Clone, Deserialize)]
pub struct PasswordIdentity {
    pub user: PasswordUser,
}

/// `auth.identity.password.user`: the key id as `name`, the secret as `password`.
#[derive(Debug, Clone, Deserialize)]
pub struct PasswordUser {
    pub name: String,
    pub password: String,
}

/// The credential a token request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordLogin {
    pub key_id: String,
    pub secret: String,
}

impl TryFrom<TokenRequest> for PasswordLogin {
    type Error = Invalid;

    fn try_from(request: TokenRequest) -> Result<Self, Invalid> {
        let identity = request.auth.identity;
        if !identity.methods.iter().any(|m| m == "password") {
            return Err(Invalid::new("auth.identity.methods", "must contain \"password\" (the only method supported)"));
        }
        let user = identity.password.user;
        Ok(Self { key_id: user.name, secret: user.password })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{epoch as now, SeqRandom};

    fn key() -> TokenKey {
        TokenKey::parse("0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn a_token_verifies_until_it_expires_a_day_later() {
        let claims = TokenClaims::issue(KeyId::generate(&SeqRandom::new(1)), now());
        let token = PresentedToken::parse(&claims.sign(&key(), "hash")).unwrap();
        assert_eq!(token.claims, claims);
        assert_eq!((claims.expires() - claims.issued()).num_hours(), 24);
        assert!(token.is_valid(&key(), "hash", now()));
        assert!(token.is_valid(&key(), "hash", claims.expires() - chrono::Duration::seconds(1)));
        assert!(!token.is_valid(&key(), "hash", claims.expires()));
    }

    #[test]
    fn a_token_for_another_secret_or_key_or_altered_never_verifies() {
        let claims = TokenClaims::issue(KeyId::generate(&SeqRandom::new(1)), now());
        let text = claims.sign(&key(), "hash");
        let token = PresentedToken::parse(&text).unwrap();
        assert!(!token.is_valid(&key(), "another hash", now()), "re-registered with another secret");
        assert!(!token.is_valid(&TokenKey::parse(&"x".repeat(32)).unwrap(), "hash", now()));
        let longer = text.replace(&format!(".{}.", claims.expires_at), &format!(".{}.", claims.expires_at + 86400));
        assert!(!PresentedToken::parse(&longer).unwrap().is_valid(&key(), "hash", now()), "lifetime extended");
        for bad in ["", "rrt1", "Basic abc", &format!("{text}.x"), &text.replacen("rrt1", "rrt2", 1)] {
            assert_eq!(PresentedToken::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn deployment_keys_shorter_than_32_characters_are_refused_and_never_printed() {
        assert!(TokenKey::parse(&"k".repeat(31)).is_none());
        assert_eq!(format!("{:?}", key()), "TokenKey(..)");
    }

    #[test]
    fn iams_password_body_gives_the_key_id_and_secret_and_its_domain_and_scope_are_ignored() {
        let body = r#"{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"k1","password":"s1",
            "domain":{"name":"acme"}}}},"scope":{"domain":{"name":"acme"}}}}"#;
        let request: TokenRequest = serde_json::from_str(body).unwrap();
        assert_eq!(
            PasswordLogin::try_from(request).unwrap(),
            PasswordLogin { key_id: "k1".into(), secret: "s1".into() }
        );
        let token_method = body.replace(r#"["password"]"#, r#"["token"]"#);
        let err = PasswordLogin::try_from(serde_json::from_str::<TokenRequest>(&token_method).unwrap()).unwrap_err();
        assert_eq!(err.field, "auth.identity.methods");
    }
}
