//! [`StsBlobsProvider`]: object storage as the worker itself, or as a session of a tenant's
//! role assumed with STS (ExternalId = the owning account), its credentials kept and renewed
//! before they expire, so a recording of hours never writes with stale ones.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use roomrec_domain::ports::{Blobs, BlobsProvider};
use roomrec_domain::storage::{Access, AccessError};
use tokio::sync::Mutex;

use crate::S3Blobs;

/// How long before its expiry a role session's credentials are renewed.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);
/// Requested session length: STS's default and every role's minimum maximum
/// (<https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>).
const SESSION_SECONDS: i32 = 3600;

/// Wraps the object storage of each access (retries, metrics).
pub type WrapBlobs = Arc<dyn Fn(Arc<dyn Blobs>) -> Arc<dyn Blobs> + Send + Sync>;

/// [`BlobsProvider`] on S3 and STS.
pub struct StsBlobsProvider {
    config: aws_config::SdkConfig,
    sts: aws_sdk_sts::Client,
    /// The worker's own object storage, wrapped.
    worker: Arc<dyn Blobs>,
    wrap: WrapBlobs,
}

impl StsBlobsProvider {
    /// Storage as the worker (`config`'s credentials) or as roles assumed with them, each
    /// wrapped by `wrap`.
    pub fn new(config: &aws_config::SdkConfig, wrap: WrapBlobs) -> Self {
        let worker = wrap(Arc::new(S3Blobs::new(config)));
        Self { config: config.clone(), sts: aws_sdk_sts::Client::new(config), worker, wrap }
    }
}

#[async_trait]
impl BlobsProvider for StsBlobsProvider {
    async fn blobs(&self, access: &Access) -> Result<Arc<dyn Blobs>, AccessError> {
        let Access::Role { role_arn, external_id, session_name, region } = access else {
            return Ok(self.worker.clone());
        };
        let session = RoleSession::new(self.sts.clone(), role_arn.as_str(), external_id, session_name);
        // Assumed now, so a refusal fails the job at its start, not at its first upload.
        session.current().await?;
        let builder = aws_sdk_s3::config::Builder::from(&self.config)
            .credentials_provider(SharedCredentialsProvider::new(session))
            .region(aws_sdk_s3::config::Region::new(region.clone()));
        Ok((self.wrap)(Arc::new(S3Blobs::from_builder(builder))))
    }
}

/// One session of a tenant's role: its credentials, renewed when they near their expiry.
#[derive(Clone)]
pub(crate) struct RoleSession(Arc<Session>);

struct Session {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: String,
    session_name: String,
    /// The credentials last granted.
    held: Mutex<Option<Credentials>>,
}

impl std::fmt::Debug for RoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleSession").field("role_arn", &self.0.role_arn).finish_non_exhaustive()
    }
}

impl RoleSession {
    /// A session of `role_arn` assumed with `sts` when first needed.
    pub(crate) fn new(sts: aws_sdk_sts::Client, role_arn: &str, external_id: &str, session_name: &str) -> Self {
        Self(Arc::new(Session {
            sts,
            role_arn: role_arn.to_owned(),
            external_id: external_id.to_owned(),
            session_name: session_name.to_owned(),
            held: Mutex::new(None),
        }))
    }

    /// The held credentials, or new ones when they expire within [`RENEW_BEFORE`].
    pub(crate) async fn current(&self) -> Result<Credentials, AccessError> {
        let mut held = self.0.held.lock().await;
        let fresh = |c: &Credentials| c.expiry().is_none_or(|at| at > SystemTime::now() + RENEW_BEFORE);
        if let Some(credentials) = held.as_ref().filter(|c| fresh(c)) {
            return Ok(credentials.clone());
        }
        let credentials = self.assume().await?;
        *held = Some(credentials.clone());
        Ok(credentials)
    }

    async fn assume(&self) -> Result<Credentials, AccessError> {
        let session = &self.0;
        let out = session
            .sts
            .assume_role()
            .role_arn(&session.role_arn)
            .external_id(&session.external_id)
            .role_session_name(&session.session_name)
            .duration_seconds(SESSION_SECONDS)
            .send()
            .await
            .map_err(refusal)?;
        let granted = out.credentials.ok_or_else(|| AccessError::Unavailable("STS granted no credentials".into()))?;
        let expiry = SystemTime::try_from(*granted.expiration()).ok();
        tracing::info!(role_arn = session.role_arn, session = session.session_name, "tenant role assumed");
        Ok(Credentials::new(
            granted.access_key_id(),
            granted.secret_access_key(),
            Some(granted.session_token().to_owned()),
            expiry,
            "roomrec-tenant-role",
        ))
    }
}

/// An STS failure as the core sees it: a refusal (the role does not exist or does not trust
/// this deployment with this ExternalId: any 4xx but throttling) is `Denied`, the rest passes.
fn refusal(err: SdkError<AssumeRoleError>) -> AccessError {
    let throttled = matches!(err.code(), Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded"));
    match err.raw_response().map(|r| r.status().as_u16()) {
        Some(408 | 429) => AccessError::Unavailable(Box::new(err)),
        Some(400..=499) if !throttled => AccessError::Denied(Box::new(err)),
        _ => AccessError::Unavailable(Box::new(err)),
    }
}

impl ProvideCredentials for RoleSession {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move { self.current().await.map_err(CredentialsError::provider_error) })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sts::config::http::HttpResponse;
    use aws_sdk_sts::error::ErrorMetadata;

    use super::*;

    fn failure(status: u16, code: &str) -> AccessError {
        let error = AssumeRoleError::generic(ErrorMetadata::builder().code(code).build());
        refusal(SdkError::service_error(error, HttpResponse::new(status.try_into().unwrap(), "".into())))
    }

    #[test]
    fn a_role_that_will_not_be_assumed_is_denied_and_passing_failures_are_not() {
        assert!(matches!(failure(403, "AccessDenied"), AccessError::Denied(_)));
        assert!(matches!(failure(400, "ValidationError"), AccessError::Denied(_)));
        assert!(matches!(failure(400, "Throttling"), AccessError::Unavailable(_)));
        assert!(matches!(failure(429, "TooManyRequests"), AccessError::Unavailable(_)));
        assert!(matches!(failure(503, "ServiceUnavailable"), AccessError::Unavailable(_)));
    }
}
