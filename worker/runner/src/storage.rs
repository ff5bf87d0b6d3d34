//! A job's storage, reached once per job: the deployment's recordings bucket under the app's
//! prefix, or the tenant's bucket as the tenant's role; and what a tenant is told when it
//! cannot be used (a stable code, the cause only in the log).

use std::sync::Arc;

use roomrec_domain::error::error_chain;
use roomrec_domain::failure::{Failure, FailureCode};
use roomrec_domain::job::Job;
use roomrec_domain::ports::Blobs;
use roomrec_domain::retry::{retry, Backoff};
use roomrec_domain::rule::RecordRule;
use roomrec_domain::storage::{self, AccessError, Storage};

use crate::context::Ctx;

/// Where a job's objects go, and the object storage that reaches them.
#[derive(Clone)]
pub struct JobStorage {
    pub storage: Storage,
    pub blobs: Arc<dyn Blobs>,
}

impl JobStorage {
    /// Whether this storage is the one `rule` names (a rule changed since names another).
    fn serves(&self, rule: &RecordRule) -> bool {
        let role = match &self.storage.access {
            storage::Access::Worker => None,
            storage::Access::Role { role_arn, .. } => Some(role_arn),
        };
        self.storage.bucket == rule.obs_addr.bucket && role == rule.obs_addr.role_arn.as_ref()
    }
}

/// `cached` if it still serves `rule`, else the storage of `rule` for `job`, reached now (a
/// tenant's role is assumed here). The error is the job's failure.
pub async fn open(ctx: &Ctx, cached: Option<&JobStorage>, rule: &RecordRule, job: &Job) -> Result<JobStorage, Failure> {
    if let Some(cached) = cached.filter(|c| c.serves(rule)) {
        return Ok(cached.clone());
    }
    let owner =
        retry(&Backoff::AWS, ctx.random.as_ref(), "reading the app's owner", || ctx.store.app_owner(&job.app_id)).await;
    let owner = match owner {
        Ok(Some(owner)) => owner,
        Ok(None) => return Err(Failure::told(FailureCode::InternalError, "the job's app was deleted", "no app owner")),
        Err(err) => {
            return Err(Failure::new(
                FailureCode::StorageUnavailable,
                format!("reading the app's owner: {}", error_chain(&err)),
            ))
        }
    };
    let wanted = storage::storage(rule, &ctx.config.recordings_bucket, &owner, &job.job_id)
        .map_err(|refused| Failure::new(FailureCode::StorageRoleRequired, refused.to_string()))?;
    let blobs =
        retry(&Backoff::AWS, ctx.random.as_ref(), "assuming the tenant's role", || ctx.storage.blobs(&wanted.access))
            .await;
    match blobs {
        Ok(blobs) => Ok(JobStorage { storage: wanted, blobs }),
        Err(err @ AccessError::Denied(_)) => Err(Failure::told(
            FailureCode::StorageAccessDenied,
            "the role in obs_addr.role_arn could not be assumed; its trust policy must allow this deployment's \
             worker role with sts:ExternalId equal to your account id",
            error_chain(&err),
        )),
        Err(err) => Err(Failure::told(
            FailureCode::StorageUnavailable,
            "the role in obs_addr.role_arn could not be assumed for now",
            error_chain(&err),
        )),
    }
}
