//! The in-memory [`BlobsProvider`]: one [`MemBlobs`] behind every access, and roles that are
//! assumed only when a test said they trust the deployment with that ExternalId.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::{Blobs, BlobsProvider};
use crate::storage::{Access, AccessError, RoleArn};

use super::MemBlobs;

/// The role could not be assumed (the twin of STS's AccessDenied).
#[derive(Debug, thiserror::Error)]
#[error("not authorized to perform sts:AssumeRole")]
struct NotTrusted;

/// Object storage by access, in memory.
#[derive(Default)]
pub struct MemBlobsProvider {
    pub blobs: Arc<MemBlobs>,
    /// Roles and the ExternalId their trust policies require.
    trusted: Mutex<Vec<(RoleArn, String)>>,
    /// Every access asked for, in order.
    asked: Mutex<Vec<Access>>,
}

impl MemBlobsProvider {
    /// Lets `role` be assumed with `external_id`.
    pub fn trust(&self, role: RoleArn, external_id: &str) {
        self.trusted.lock().unwrap().push((role, external_id.to_owned()));
    }

    /// Every access asked for so far.
    pub fn asked(&self) -> Vec<Access> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl BlobsProvider for MemBlobsProvider {
    async fn blobs(&self, access: &Access) -> Result<Arc<dyn Blobs>, AccessError> {
        self.asked.lock().unwrap().push(access.clone());
        if let Access::Role { role_arn, external_id, .. } = access {
            let trusted = self.trusted.lock().unwrap().iter().any(|(r, id)| r == role_arn && id == external_id);
            if !trusted {
                return Err(AccessError::Denied(Box::new(NotTrusted)));
            }
        }
        Ok(self.blobs.clone())
    }
}

/// Presigning in memory: `mem://{bucket}/{key}?expires={seconds}&signer={worker|role ARN}`,
/// refusing roles the [`MemBlobsProvider`] does not trust.
pub struct MemPresigner {
    pub provider: Arc<MemBlobsProvider>,
}

#[async_trait]
impl crate::ports::Presigner for MemPresigner {
    async fn presign_get(
        &self,
        access: &Access,
        bucket: &str,
        key: &str,
        lifetime: std::time::Duration,
    ) -> Result<String, AccessError> {
        self.provider.blobs(access).await?;
        let signer = match access {
            Access::Worker => "worker".to_owned(),
            Access::Role { role_arn, .. } => role_arn.as_str().to_owned(),
        };
        Ok(format!("mem://{bucket}/{key}?expires={}&signer={signer}", lifetime.as_secs()))
    }
}
