//! A job's storage, reached once per job: the deployment's recordings bucket under the app's
//! prefix, or the tenant's bucket as the tenant's role; and what a tenant is told when it
//! cannot be used (a stable code, the cause only in the log).

use std::sync::Arc;

use roomrec_domain::job::Job;
use roomrec_domain::ports::{Blobs, StoreError};
use roomrec_domain::retry::{retry, Backoff};
use roomrec_domain::rule::RecordRule;
use roomrec_domain::storage::{self, AccessError, Forbidden, Storage};

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
/// tenant's role is assumed here). The error is the job's failure detail.
pub async fn open(ctx: &Ctx, cached: Option<&JobStorage>, rule: &RecordRule, job: &Job) -> Result<JobStorage, String> {
    if let Some(cached) = cached.filter(|c| c.serves(rule)) {
        return Ok(cached.clone());
    }
    let owner =
        retry(&Backoff::AWS, ctx.random.as_ref(), "reading the app's owner", || ctx.store.app_owner(&job.app_id)).await;
    let owner = match owner {
        Ok(Some(owner)) => owner,
        Ok(None) => return Err("the job's app no longer exists".into()),
        Err(err) => {
            tracing::error!(error = %chain(&err), "reading the app's owner failed");
            return Err(format!("{}: the recording's storage could not be reached", storage::UNAVAILABLE));
        }
    };
    let wanted = storage::storage(rule, &ctx.config.recordings_bucket, &owner, &job.job_id).map_err(|refused| {
        tracing::warn!(bucket = rule.obs_addr.bucket, "the rule names a bucket of its own without a role");
        refused.to_string()
    })?;
    let blobs =
        retry(&Backoff::AWS, ctx.random.as_ref(), "assuming the tenant's role", || ctx.storage.blobs(&wanted.access))
            .await;
    match blobs {
        Ok(blobs) => Ok(JobStorage { storage: wanted, blobs }),
        Err(err @ AccessError::Denied(_)) => {
            tracing::warn!(error = %chain(&err), "the tenant's role was refused");
            Err(format!(
                "{}: the role in obs_addr.role_arn could not be assumed; its trust policy must allow this \
                 deployment's worker role with sts:ExternalId equal to your account id",
                storage::ACCESS_DENIED
            ))
        }
        Err(err) => {
            tracing::error!(error = %chain(&err), "the tenant's role could not be assumed");
            Err(format!("{}: the role in obs_addr.role_arn could not be assumed for now", storage::UNAVAILABLE))
        }
    }
}

/// What a tenant is told of `err`, a failure to write the recording, when storage caused it:
/// a stable code and a short reason (the cause goes to the log); `None` for other failures.
pub fn failure_detail(err: &anyhow::Error) -> Option<String> {
    let detail = if err.chain().any(|cause| cause.is::<Forbidden>()) {
        format!("{}: the bucket refused the recording's writes", storage::ACCESS_DENIED)
    } else {
        match err.chain().find_map(|cause| cause.downcast_ref::<StoreError>())? {
            StoreError::Rejected(_) => {
                format!(
                    "{}: the bucket refused the recording's writes (does it exist, in obs_addr.location?)",
                    storage::REJECTED
                )
            }
            StoreError::Backend(_) => format!("{}: the bucket stayed unreachable", storage::UNAVAILABLE),
            StoreError::Conflict => return None,
        }
    };
    tracing::warn!(error = %format!("{err:#}"), detail, "storage failed the recording");
    Some(detail)
}

/// `err` and its causes, "a: b: c", for the log.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        text.push_str(&format!(": {next}"));
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_write_is_told_by_its_code_without_the_backends_text() {
        let denied = StoreError::Rejected(Box::new(Forbidden("AccessDenied: User arn:aws:sts::1:x".into())));
        let err = anyhow::Error::new(denied).context("uploading segment 3");
        let detail = failure_detail(&err).unwrap();
        assert!(detail.starts_with("STORAGE_ACCESS_DENIED: ") && !detail.contains("arn:"), "{detail}");

        let gone = anyhow::Error::new(StoreError::Rejected("NoSuchBucket".into()));
        assert!(failure_detail(&gone).unwrap().starts_with("STORAGE_REJECTED: "));
        assert_eq!(failure_detail(&anyhow::anyhow!("media: no space left")), None);
    }
}
