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

/// Credentials and app ownership.
#[derive(Clone)]
pub struct Access {
    credentials: Arc<dyn CredentialStore>,
    apps: Arc<dyn AppStore>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
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
        Self { credentials, apps, clock, random }
    }

    /// The account a key id and secret belong to, or `None` when they do not match.
    pub async fn authenticate(&self, key_id: &str, secret: &str) -> Result<Option<AccountId>, StoreError> {
        let Some(key_id) = KeyId::parse(key_id) else { return Ok(None) };
        let Some(credential) = self.credentials.get_credential(&key_id).await? else { return Ok(None) };
        // The secret is 256 random bits, so one SHA-256 suffices (no password stretching needed);
        // the comparison is constant-time so timing reveals nothing about the stored hash.
        let matches: bool = sha256_hex(secret).as_bytes().ct_eq(credential.secret_sha256.as_bytes()).into();
        Ok(matches.then_some(credential.account_id))
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
