//! Who is calling: credentials (issued, registered, checked) and the one ownership check
//! every app-scoped use case relies on — an [`OwnedApp`] can only be made here.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::clock::{Clock, Random};
use crate::error::{Invalid, StoreError, UseCaseError};
use crate::ids::{AccountId, AppId, KeyId};
use crate::ports::{AppStore, Credential, CredentialStore};
use crate::token::{PasswordLogin, PresentedToken, TokenClaims, TokenKey};

/// Bytes of randomness in an API secret.
const SECRET_BYTES: usize = 32;
/// Shortest secret accepted when registering a known one.
const MIN_SECRET_CHARS: usize = 32;

/// An app and the account it belongs to, proven by [`Access::app`]: the only way to make one.
#[derive(Debug, Clone)]
pub struct OwnedApp {
    account: AccountId,
    app: App,
}

impl OwnedApp {
    /// The account that owns the app.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The app as stored.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The app's id.
    pub fn id(&self) -> &AppId {
        &self.app.app_id
    }
}

/// A newly issued credential; the secret is shown once and stored only as a hash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedCredential {
    pub key_id: KeyId,
    pub secret: String,
}

/// A token issued for a credential (`POST /v3/auth/tokens`).
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The `X-Subject-Token` value.
    pub token: String,
    pub claims: TokenClaims,
    pub account_id: AccountId,
}

/// Why no token was issued.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The deployment has no token key (template parameter `TokenKey`).
    #[error("tokens are not enabled in this deployment")]
    Disabled,
    /// The key id and secret do not match a credential.
    #[error("wrong key id or secret")]
    WrongCredentials,
    /// The credential could not be read.
    #[error("reading the credential")]
    Store(#[source] StoreError),
}

/// Credentials and app ownership.
#[derive(Clone)]
pub struct Access {
    credentials: Arc<dyn CredentialStore>,
    apps: Arc<dyn AppStore>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    token_key: Option<TokenKey>,
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Access {
    /// Access over the credential and app stores.
    pub fn new(
        credentials: Arc<dyn CredentialStore>,
        apps: Arc<dyn AppStore>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
    ) -> Self {
        Self { credentials, apps, clock, random, token_key: None }
    }

    /// The same access issuing and accepting tokens signed with `key`; without one, no token
    /// is issued or accepted.
    pub fn with_token_key(mut self, key: Option<TokenKey>) -> Self {
        self.token_key = key;
        self
    }

    /// The credential a key id and secret name, when they match.
    async fn matching_credential(&self, key_id: &str, secret: &str) -> Result<Option<Credential>, StoreError> {
        let Some(key_id) = KeyId::parse(key_id) else { return Ok(None) };
        let Some(credential) = self.credentials.get_credential(&key_id).await? else { return Ok(None) };
        // The secret is 256 random bits, so one SHA-256 suffices (no password stretching needed);
        // the comparison is constant-time so timing reveals nothing about the stored hash.
        let matches: bool = sha256_hex(secret).as_bytes().ct_eq(credential.secret_sha256.as_bytes()).into();
        Ok(matches.then_some(credential))
    }

    /// The account a key id and secret belong to, or `None` when they do not match.
    pub async fn authenticate(&self, key_id: &str, secret: &str) -> Result<Option<AccountId>, StoreError> {
        Ok(self.matching_credential(key_id, secret).await?.map(|c| c.account_id))
    }

    /// A token for the credential `login` presents, valid from now for a day.
    pub async fn issue_token(&self, login: &PasswordLogin) -> Result<IssuedToken, TokenError> {
        let key = self.token_key.as_ref().ok_or(TokenError::Disabled)?;
        let credential = self
            .matching_credential(&login.key_id, &login.secret)
            .await
            .map_err(TokenError::Store)?
            .ok_or(TokenError::WrongCredentials)?;
        let claims = TokenClaims::issue(credential.key_id, self.clock.now());
        let token = claims.sign(key, &credential.secret_sha256);
        Ok(IssuedToken { token, claims, account_id: credential.account_id })
    }

    /// The account an `X-Auth-Token` belongs to, or `None` when it is not a valid token: not
    /// ours, altered, expired, or its credential removed or given another secret since.
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<AccountId>, StoreError> {
        let Some(key) = &self.token_key else { return Ok(None) };
        let Some(token) = PresentedToken::parse(token) else { return Ok(None) };
        let Some(credential) = self.credentials.get_credential(&token.claims.key_id).await? else { return Ok(None) };
        let valid = token.is_valid(key, &credential.secret_sha256, self.clock.now());
        Ok(valid.then_some(credential.account_id))
    }

    /// The app `app_id` of `account`; foreign and malformed ids are simply not found.
    pub async fn app(&self, account: &AccountId, app_id: &str) -> Result<OwnedApp, UseCaseError> {
        let not_found = || UseCaseError::not_found("app_id", "app");
        let app_id = AppId::parse(app_id).ok_or_else(not_found)?;
        let app = self.apps.get_app(account, &app_id).await?.ok_or_else(not_found)?;
        Ok(OwnedApp { account: account.clone(), app })
    }

    /// The same proof for an app just created or changed by its owner.
    pub(crate) fn owned(account: AccountId, app: App) -> OwnedApp {
        OwnedApp { account, app }
    }

    /// Issues a new credential for `account`.
    pub async fn issue_credential(&self, account: AccountId) -> Result<IssuedCredential, UseCaseError> {
        let secret = self.random.hex(SECRET_BYTES);
        self.register_credential(account, KeyId::generate(self.random.as_ref()), &secret).await
    }

    /// Registers a known key id and secret for `account` (re-creating a saved credential);
    /// an existing key id is replaced only if it belongs to the same account.
    pub async fn register_credential(
        &self,
        account: AccountId,
        key_id: KeyId,
        secret: &str,
    ) -> Result<IssuedCredential, UseCaseError> {
        if secret.len() < MIN_SECRET_CHARS {
            return Err(Invalid::new("secret", format!("must be at least {MIN_SECRET_CHARS} characters")).into());
        }
        if let Some(existing) = self.credentials.get_credential(&key_id).await? {
            if existing.account_id != account {
                return Err(UseCaseError::Conflict("key_id: belongs to another account".into()));
            }
            self.credentials.delete_credential(&key_id).await?;
        }
        let credential = Credential {
            key_id: key_id.clone(),
            account_id: account,
            secret_sha256: sha256_hex(secret),
            create_time: self.clock.timestamp(),
        };
        self.credentials.create_credential(&credential).await?;
        Ok(IssuedCredential { key_id, secret: secret.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;
    use crate::testing::{ManualClock, MemStore, SeqRandom};
    use crate::token::TOKEN_LIFETIME_SECONDS;

    struct World {
        access: Access,
        store: Arc<MemStore>,
        clock: Arc<ManualClock>,
        issued: IssuedCredential,
    }

    async fn world() -> World {
        let store = Arc::new(MemStore::default());
        let clock = Arc::new(ManualClock::default());
        let key = TokenKey::parse("a deployment key of 32 characters").unwrap();
        let access = Access::new(store.clone(), store.clone(), clock.clone(), Arc::new(SeqRandom::new(7)))
            .with_token_key(Some(key));
        let issued = access.issue_credential(AccountId::try_from("acme").unwrap()).await.unwrap();
        World { access, store, clock, issued }
    }

    fn login(issued: &IssuedCredential) -> PasswordLogin {
        PasswordLogin { key_id: issued.key_id.as_str().to_owned(), secret: issued.secret.clone() }
    }

    #[tokio::test]
    async fn a_token_issued_for_a_credential_authenticates_its_account_for_a_day() {
        let w = world().await;
        let token = w.access.issue_token(&login(&w.issued)).await.unwrap();
        assert_eq!(token.account_id.as_str(), "acme");
        assert_eq!(token.claims.expires_at - token.claims.issued_at, TOKEN_LIFETIME_SECONDS);
        assert_eq!(w.access.authenticate_token(&token.token).await.unwrap().unwrap().as_str(), "acme");
        w.clock.advance(Duration::from_secs(24 * 3600 - 1));
        assert!(w.access.authenticate_token(&token.token).await.unwrap().is_some(), "valid to the last second");
        w.clock.advance(Duration::from_secs(1));
        assert_eq!(w.access.authenticate_token(&token.token).await.unwrap(), None, "expired after 24 h");
    }

    #[tokio::test]
    async fn a_wrong_secret_or_unknown_key_id_gets_no_token() {
        let w = world().await;
        let wrong = PasswordLogin { secret: "0".repeat(64), ..login(&w.issued) };
        assert!(matches!(w.access.issue_token(&wrong).await, Err(TokenError::WrongCredentials)));
        let unknown = PasswordLogin { key_id: "0".repeat(20), ..login(&w.issued) };
        assert!(matches!(w.access.issue_token(&unknown).await, Err(TokenError::WrongCredentials)));
    }

    #[tokio::test]
    async fn a_token_stops_working_once_its_credential_is_removed_or_given_another_secret() {
        let w = world().await;
        let token = w.access.issue_token(&login(&w.issued)).await.unwrap().token;
        let account = AccountId::try_from("acme").unwrap();
        w.access.register_credential(account.clone(), w.issued.key_id.clone(), &"f".repeat(64)).await.unwrap();
        assert_eq!(w.access.authenticate_token(&token).await.unwrap(), None, "re-registered with another secret");

        let token = w.access.issue_token(&PasswordLogin { secret: "f".repeat(64), ..login(&w.issued) }).await;
        let token = token.unwrap().token;
        assert!(w.access.authenticate_token(&token).await.unwrap().is_some());
        w.store.delete_credential(&w.issued.key_id).await.unwrap();
        assert_eq!(w.access.authenticate_token(&token).await.unwrap(), None, "credential removed");
    }

    #[tokio::test]
    async fn without_a_deployment_key_no_token_is_issued_or_accepted() {
        let w = world().await;
        let token = w.access.issue_token(&login(&w.issued)).await.unwrap().token;
        let keyless = w.access.clone().with_token_key(None);
        assert!(matches!(keyless.issue_token(&login(&w.issued)).await, Err(TokenError::Disabled)));
        assert_eq!(keyless.authenticate_token(&token).await.unwrap(), None);
    }
}
