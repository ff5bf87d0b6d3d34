//! The one read-change-conditional-write loop over a job record, for the API (a stop, a
//! layout update) and the worker (claims, lease renewals, files, the end) alike.

use crate::error::StoreError;
use crate::ids::{AppId, JobId};
use crate::ports::JobStore;
use crate::record::JobRecord;
use crate::retry::Transient;

/// Why a job change was not written.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError<E> {
    /// The job does not exist (any more).
    #[error("the job no longer exists")]
    Gone,
    /// Every attempt lost a race with another writer.
    #[error("the job kept changing under us")]
    Contended,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The change itself refused (a lease held by someone else, a state that forbids it).
    #[error("the change was refused: {0}")]
    Refused(E),
}

impl<E> Transient for ChangeError<E> {
    /// Only a store failure may pass.
    fn is_transient(&self) -> bool {
        matches!(self, ChangeError::Store(err) if err.is_transient())
    }
}

/// Applies `change` to the job and writes it back if nobody wrote in between, re-reading
/// and trying again (up to `attempts` times) when someone did. `change` says whether it
/// changed anything: when it did not, nothing is written. Starts from `known` (the record as
/// last read or written) when given, saving a read. Returns the record as stored now.
pub async fn change_job<E, F>(
    store: &dyn JobStore,
    (app_id, job_id): (&AppId, &JobId),
    known: Option<&JobRecord>,
    attempts: usize,
    mut change: F,
) -> Result<JobRecord, ChangeError<E>>
where
    F: FnMut(&mut JobRecord) -> Result<bool, E> + Send,
    E: Send,
{
    let mut next = known.cloned();
    for _ in 0..attempts {
        let mut record = match next.take() {
            Some(record) => record,
            None => store.get_job(app_id, job_id).await?.ok_or(ChangeError::Gone)?,
        };
        if !change(&mut record).map_err(ChangeError::Refused)? {
            return Ok(record);
        }
        match store.save_job(&record).await {
            Ok(()) => {
                record.version += 1;
                record.new_files.clear();
                return Ok(record);
            }
            Err(StoreError::Conflict) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ChangeError::Contended)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::job::{Job, JobState};
    use crate::ports::JobStore;
    use crate::testing::{now, random, MemStore};

    async fn stored_job(store: &MemStore) -> JobRecord {
        let body =
            r#"{"room_id":"r","user_id":"u","record_param":{"record_rule_id":"5d0ec2c53a2c15625017adb8bbbcd9ab"}}"#;
        let app = AppId::generate(random());
        let job = Job::individual(app, serde_json::from_str(body).unwrap(), random(), now()).unwrap();
        store.create_job(&crate::ids::AccountId::try_from("acme").unwrap(), &job).await.unwrap();
        store.job(&job.app_id, &job.job_id).unwrap()
    }

    fn stop(record: &mut JobRecord) -> Result<bool, Infallible> {
        Ok(record.job.request_stop(now()) != crate::job::StopOutcome::Unchanged)
    }

    #[tokio::test]
    async fn a_write_that_loses_a_race_is_retried_on_what_the_winner_wrote() {
        let store = MemStore::default();
        let record = stored_job(&store).await;
        // A worker claims the job between our read and our write.
        store.race_next_save(|other| other.job.state = JobState::Running);
        let key = (&record.job.app_id, &record.job.job_id);
        let written = change_job(&store, key, Some(&record), 5, stop).await.unwrap();
        assert_eq!(written.job.state, JobState::Stopping, "the stop applied to the claimed job");
        assert_eq!(written.version, 3);
        assert_eq!(store.job(key.0, key.1).unwrap(), written);
    }

    #[tokio::test]
    async fn a_change_that_changes_nothing_writes_nothing_and_a_missing_job_is_gone() {
        let store = MemStore::default();
        let record = stored_job(&store).await;
        let key = (&record.job.app_id, &record.job.job_id);
        let unchanged = change_job(&store, key, None, 5, |_| Ok::<_, Infallible>(false)).await.unwrap();
        assert_eq!(unchanged.version, 1);
        let missing = JobId::generate(random());
        let gone = change_job(&store, (key.0, &missing), None, 5, stop).await;
        assert!(matches!(gone, Err(ChangeError::Gone)), "{gone:?}");
    }

    #[tokio::test]
    async fn a_job_that_keeps_changing_is_given_up_after_the_attempts() {
        let store = MemStore::default();
        let record = stored_job(&store).await;
        for _ in 0..3 {
            store.race_next_save(|_| {});
        }
        let key = (&record.job.app_id, &record.job.job_id);
        let result = change_job(&store, key, None, 3, stop).await;
        assert!(matches!(result, Err(ChangeError::Contended)), "{result:?}");
    }
}
