//! Recording jobs through the API: create (and queue), read, list, stop, and change a mix's
//! layout while it records. Both kinds share every use case but creation.

use std::sync::Arc;

use crate::change::{change_job, ChangeError};
use crate::clock::{Clock, Random};
use crate::error::{StoreError, UseCaseError};
use crate::ids::{AccountId, AppId, JobId};
use crate::job::{IndividualJobRequest, Job, JobKind, MixJobRequest, MixUpdateRequest, StopOutcome, UpdateError};
use crate::ports::{
    AppStore, JobFilter, JobMessage, JobPage, JobQueue, JobStore, PageRequest, QuotaStore, RoomJobs, RoomStore,
    RuleStore,
};
use crate::quota::{waits_for_source, Quota, Quotas};
use crate::record::JobRecord;
use crate::room::RoomStream;

use super::access::OwnedApp;
use super::rules::existing_rule;

/// How many times a job write is retried after losing a race with a worker.
const JOB_WRITE_ATTEMPTS: usize = 5;

/// The jobs use cases over the job and rule stores and the jobs queue.
#[derive(Clone)]
pub struct Jobs {
    jobs: Arc<dyn JobStore>,
    rules: Arc<dyn RuleStore>,
    queue: Arc<dyn JobQueue>,
    quotas: QuotaPorts,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
}

/// What the quota check of a new job reads: who owns the app, the account's quotas, and
/// the rosters that say whether a job waits for its source.
#[derive(Clone)]
pub struct QuotaPorts {
    pub apps: Arc<dyn AppStore>,
    pub quotas: Arc<dyn QuotaStore>,
    pub rooms: Arc<dyn RoomStore>,
}

impl Jobs {
    /// The jobs use cases.
    pub fn new(
        jobs: Arc<dyn JobStore>,
        rules: Arc<dyn RuleStore>,
        queue: Arc<dyn JobQueue>,
        quotas: QuotaPorts,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
    ) -> Self {
        Self { jobs, rules, queue, quotas, clock, random }
    }

    /// Creates an individual-stream job in INIT and queues it.
    pub async fn create_individual(&self, app: &OwnedApp, request: IndividualJobRequest) -> Result<Job, UseCaseError> {
        let job = Job::individual(app.id().clone(), request, self.random.as_ref(), self.clock.timestamp())?;
        self.start_for(app.account(), job).await
    }

    /// Creates a mix-stream job in INIT and queues it.
    pub async fn create_mix(&self, app: &OwnedApp, request: MixJobRequest) -> Result<Job, UseCaseError> {
        let job = Job::mix(app.id().clone(), request, self.random.as_ref(), self.clock.timestamp())?;
        self.start_for(app.account(), job).await
    }

    /// [`Jobs::start_for`] the account that owns the job's app (found by id: joins and
    /// Jocloud starts name no account).
    pub(crate) async fn start(&self, job: Job) -> Result<Job, UseCaseError> {
        let account = self.owner(&job.app_id).await?;
        self.start_for(&account, job).await
    }

    /// The account that owns the app.
    async fn owner(&self, app_id: &AppId) -> Result<AccountId, UseCaseError> {
        let owner = self.quotas.apps.app_owner(app_id).await?;
        owner.ok_or_else(|| UseCaseError::not_found("app_id", "app"))
    }

    async fn limits(&self, account: &AccountId) -> Result<Quotas, StoreError> {
        Ok(self.quotas.quotas.get_quotas(account).await?.limits())
    }

    /// Saves `job` (its rule must exist, `account` must be within its quotas) and queues it;
    /// `Store(Conflict)` if its id exists. A job whose message cannot be queued is removed
    /// again, so none is left in INIT that no worker would ever see.
    async fn start_for(&self, account: &AccountId, job: Job) -> Result<Job, UseCaseError> {
        let field = "record_param.record_rule_id";
        // The reads are independent: made at once, a create waits for the slowest, not the sum.
        let (_, limits, active, roster) = futures::try_join!(
            existing_rule(self.rules.as_ref(), &job.app_id, &job.record_param.record_rule_id, field),
            async { Ok(self.limits(account).await?) },
            async { Ok(self.jobs.count_account_jobs(account).await?) },
            async { Ok(self.quotas.rooms.list_streams(&job.app_id, &job.room_id).await?) },
        )?;
        self.check_quotas(account, &job, &limits, active, &roster).await?;
        self.jobs.create_job(account, &job).await?;
        let message = JobMessage::wake(job.app_id.clone(), job.job_id.clone());
        if let Err(err) = self.queue.enqueue(&message).await {
            self.jobs.delete_job(&job.app_id, &job.job_id).await?;
            return Err(err.into());
        }
        Ok(job)
    }

    /// Refuses `job` if creating it takes `account` past a quota, given its limits, its
    /// `active` jobs and the roster of the job's room. Counting and creating are two steps, so
    /// concurrent creates at the limit may all pass (README, "Quotas").
    async fn check_quotas(
        &self,
        account: &AccountId,
        job: &Job,
        limits: &Quotas,
        active: u64,
        roster: &[RoomStream],
    ) -> Result<(), UseCaseError> {
        limits.check_mix(job)?;
        limits.check_count(Quota::ActiveJobs, active)?;
        // Only a job that would itself wait can take the account past `waiting_jobs`, so the
        // rosters of the account's other jobs are read only then.
        if waits_for_source(job, roster) {
            limits.check_count(Quota::WaitingJobs, self.waiting_jobs(account).await?)?;
        }
        Ok(())
    }

    /// How many active jobs of `account` wait for their source: one roster read per room.
    async fn waiting_jobs(&self, account: &AccountId) -> Result<u64, StoreError> {
        let mut jobs = self.jobs.account_jobs(account).await?;
        jobs.sort_by(|a, b| (&a.app_id, &a.room_id).cmp(&(&b.app_id, &b.room_id)));
        let mut waiting = 0;
        for room_jobs in jobs.chunk_by(|a, b| (&a.app_id, &a.room_id) == (&b.app_id, &b.room_id)) {
            let roster = self.quotas.rooms.list_streams(&room_jobs[0].app_id, &room_jobs[0].room_id).await?;
            waiting += room_jobs.iter().filter(|job| waits_for_source(job, &roster)).count() as u64;
        }
        Ok(waiting)
    }

    /// One job of `kind`; a job of the other kind is not found.
    pub async fn get(&self, app: &OwnedApp, kind: JobKind, job_id: &str) -> Result<Job, UseCaseError> {
        Ok(self.record(app.id(), kind, job_id).await?.job)
    }

    pub(crate) async fn record(&self, app_id: &AppId, kind: JobKind, job_id: &str) -> Result<JobRecord, UseCaseError> {
        let not_found = || UseCaseError::not_found("job_id", "job");
        let job_id = JobId::parse(job_id).ok_or_else(not_found)?;
        let record = self.jobs.get_job(app_id, &job_id).await?.ok_or_else(not_found)?;
        if record.job.kind() != kind {
            return Err(not_found());
        }
        Ok(record)
    }

    /// One page of the app's jobs matching `filter`, newest first, without their files.
    pub async fn list(&self, app: &OwnedApp, filter: &JobFilter, page: &PageRequest) -> Result<JobPage, UseCaseError> {
        Ok(self.jobs.list_jobs(app.id(), filter, page).await?)
    }

    /// Stops a job; idempotent. A job no worker claimed stops at once, a running one goes to
    /// STOPPING for its worker to finalise.
    pub async fn stop(&self, app: &OwnedApp, kind: JobKind, job_id: &str) -> Result<Job, UseCaseError> {
        self.stop_job(app.id(), kind, job_id).await
    }

    /// [`stop`](Self::stop) for a job the caller has already found (a Jocloud recording's).
    pub(crate) async fn stop_job(&self, app_id: &AppId, kind: JobKind, job_id: &str) -> Result<Job, UseCaseError> {
        let now = self.clock.timestamp();
        self.change(app_id, kind, job_id, |job| Ok(job.request_stop(now) != StopOutcome::Unchanged)).await
    }

    /// Pauses a job's recording (idempotent); its worker stops writing into the open files.
    /// A job that is ending or has ended is a conflict naming its state.
    pub async fn pause(&self, app: &OwnedApp, kind: JobKind, job_id: &str) -> Result<Job, UseCaseError> {
        let now = self.clock.timestamp();
        let pause = |job: &mut Job| job.request_pause(now).map_err(|e| UseCaseError::Conflict(e.to_string()));
        self.change(app.id(), kind, job_id, pause).await
    }

    /// Resumes a paused job's recording into the same files (idempotent).
    pub async fn resume(&self, app: &OwnedApp, kind: JobKind, job_id: &str) -> Result<Job, UseCaseError> {
        let now = self.clock.timestamp();
        let resume = |job: &mut Job| job.request_resume(now).map_err(|e| UseCaseError::Conflict(e.to_string()));
        self.change(app.id(), kind, job_id, resume).await
    }

    /// Applies a live layout update to a mix job.
    pub async fn update_mix(
        &self,
        app: &OwnedApp,
        job_id: &str,
        request: MixUpdateRequest,
    ) -> Result<Job, UseCaseError> {
        let refusal = |err: UpdateError| match err {
            UpdateError::Invalid(invalid) => invalid.into(),
            err => UseCaseError::Conflict(err.to_string()),
        };
        self.update_mix_job(app, job_id, request, refusal).await
    }

    /// [`update_mix`](Self::update_mix) saying a refusal with `refusal` (Jocloud names its
    /// fields its own way).
    pub(crate) async fn update_mix_job(
        &self,
        app: &OwnedApp,
        job_id: &str,
        request: MixUpdateRequest,
        refusal: impl Fn(UpdateError) -> UseCaseError + Send + Sync,
    ) -> Result<Job, UseCaseError> {
        let now = self.clock.timestamp();
        // A layout change may not take the mix past `mix_participants` either.
        let limits = self.limits(app.account()).await?;
        let update = |job: &mut Job| {
            job.update_mix(request.clone(), now).map_err(&refusal)?;
            limits.check_mix(job)?;
            Ok(true)
        };
        self.change(app.id(), JobKind::Mix, job_id, update).await
    }

    /// Applies `change` to the job (which says whether it changed anything) with the one
    /// read-change-conditional-write loop.
    async fn change<F>(&self, app_id: &AppId, kind: JobKind, job_id: &str, mut change: F) -> Result<Job, UseCaseError>
    where
        F: FnMut(&mut Job) -> Result<bool, UseCaseError> + Send,
    {
        let record = self.record(app_id, kind, job_id).await?;
        let key = (app_id, &record.job.job_id);
        match change_job(self.jobs.as_ref(), key, Some(&record), JOB_WRITE_ATTEMPTS, |r| change(&mut r.job)).await {
            Ok(record) => Ok(record.job),
            Err(ChangeError::Refused(err)) => Err(err),
            Err(ChangeError::Gone) => Err(UseCaseError::not_found("job_id", "job")),
            Err(ChangeError::Contended) => {
                Err(UseCaseError::Conflict("job_id: the job is changing too often; try again".into()))
            }
            Err(ChangeError::Store(err)) => Err(err.into()),
        }
    }

    /// The app's jobs of `kind` in a room that `which` picks, without their files, for what
    /// a join starts.
    pub(crate) async fn in_room(
        &self,
        app_id: &AppId,
        kind: JobKind,
        room_id: &crate::ids::RoomId,
        which: RoomJobs,
    ) -> Result<Vec<Job>, StoreError> {
        self.jobs.room_jobs(app_id, kind, room_id, which).await
    }

    /// A job by id, whatever its kind, as stored, with its files.
    pub(crate) async fn find(&self, app_id: &AppId, job_id: &JobId) -> Result<Option<Job>, StoreError> {
        Ok(self.jobs.get_job(app_id, job_id).await?.map(|record| record.job))
    }
}
