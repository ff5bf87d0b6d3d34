//! [`S3Presigner`]: presigned S3 GET URLs, signed with the process's own credentials for the
//! deployment's bucket, or with a session of the tenant's role (ExternalId = the owning
//! account) for a bucket of the tenant's: the deployment's credentials never sign those.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::Client;
use roomrec_domain::ports::Presigner;
use roomrec_domain::storage::{Access, AccessError};

use crate::sts::RoleSession;
use crate::S3Blobs;

/// Most role clients kept; past it they are dropped (each job in a tenant's bucket has a
/// session of its own, and a process may serve many).
const MAX_ROLE_CLIENTS: usize = 256;

/// [`Presigner`] on S3 and STS.
pub struct S3Presigner {
    config: aws_config::SdkConfig,
    own: Client,
    sts: aws_sdk_sts::Client,
    /// One client per tenant role, with the session whose credentials it signs with.
    roles: Mutex<HashMap<Access, (RoleSession, Client)>>,
}

impl S3Presigner {
    /// Presigns as `config`'s credentials, or as roles assumed with them.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            config: config.clone(),
            own: S3Blobs::new(config).client().clone(),
            sts: aws_sdk_sts::Client::new(config),
            roles: Mutex::new(HashMap::new()),
        }
    }

    /// The client that signs as `access`, its role session's credentials current.
    async fn client(&self, access: &Access) -> Result<Client, AccessError> {
        let Access::Role { role_arn, external_id, session_name, region } = access else {
            return Ok(self.own.clone());
        };
        let held = self.roles.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(access).cloned();
        let (session, client) = held.unwrap_or_else(|| {
            let session = RoleSession::new(self.sts.clone(), role_arn.as_str(), external_id, session_name);
            let builder = aws_sdk_s3::config::Builder::from(&self.config)
                .credentials_provider(SharedCredentialsProvider::new(session.clone()))
                .region(aws_sdk_s3::config::Region::new(region.clone()));
            (session, S3Blobs::from_builder(builder).client().clone())
        });
        // Assumed (or renewed) here, so a refusal is an AccessError, not a signing failure.
        session.current().await?;
        let mut roles = self.roles.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if roles.len() >= MAX_ROLE_CLIENTS && !roles.contains_key(access) {
            roles.clear();
        }
        roles.insert(access.clone(), (session, client.clone()));
        Ok(client)
    }
}

#[async_trait]
impl Presigner for S3Presigner {
    async fn presign_get(
        &self,
        access: &Access,
        bucket: &str,
        key: &str,
        lifetime: Duration,
    ) -> Result<String, AccessError> {
        let client = self.client(access).await?;
        let config = PresigningConfig::expires_in(lifetime).map_err(|e| AccessError::Unavailable(Box::new(e)))?;
        let request = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| AccessError::Unavailable(Box::new(e)))?;
        Ok(request.uri().to_owned())
    }
}
