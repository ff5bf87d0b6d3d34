//! One job from claim to end: claim the lease, find the participant's stream, run the
//! recorder on its own thread, stream its files to S3, and end the job with the right reason.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomrec_domain::callback::EventType;
use roomrec_domain::error::error_chain;
use roomrec_domain::failure::{Failure, FailureCode};
use roomrec_domain::ids::{AccountId, AppId, JobId, UserId};
use roomrec_domain::job::{Job, JobSpec, JobState, StopReason};
use roomrec_domain::metric::Metric;
use roomrec_domain::mix::MixParam;
use roomrec_domain::ports::{JobMessage, StoreError};
use roomrec_domain::record::{ClaimRefused, JobRecord, Lease, OpenUpload, Progress};
use roomrec_domain::retry::{retry, Backoff};
use roomrec_domain::room::VideoType;
use roomrec_domain::rule::RecordRule;
use roomrec_domain::storage::Forbidden;
use roomrec_domain::usage::Spent;
use roomrec_media::{Command, MediaError, MixCommand, Mixer, Output, Recorder, Report};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::board::{Seen, Watch};
use crate::capacity::{self, Slot};
use crate::context::{lost_job, Ctx, JobWriteError};
use crate::files::OpenFiles;
use crate::mix::MixFeed;
use crate::pause::PauseState;
use crate::recovery;
use crate::spec::{mix_spec, record_spec};
use crate::spool::{Backlog, Writes};
use crate::storage::{self, JobStorage};

/// What to do with the job's SQS message when the task ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageFate {
    /// The job has ended: delete the message.
    Delete,
    /// Send this message after this long, then delete the received one: a hand-off (now), or
    /// a claim refused by a live lease (when it expires). A fresh message starts its receive
    /// count anew, so no number of hand-offs or refusals dead-letters a job.
    Requeue(JobMessage, Duration),
    /// Let the message reappear after its visibility timeout: a claim or write that failed
    /// (tried again then), or a lease lost to another worker.
    Leave,
}

/// How long a job this worker has no room for waits before any worker receives it again: a
/// fresh message, so no number of declines dead-letters it.
const DECLINE_DELAY: Duration = Duration::from_secs(2);

/// The least [`keep_lease`] waits between renewals (or attempts), in milliseconds.
const KEEP_LEASE_STEP_MS: i64 = 1_000;

/// How long after a held lease expires a refused claim tries again.
const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// What becomes of `message` when its claim found `holder`'s live lease. Its holder may be
/// dead (this is its own message, back before the lease ran out), so the message comes back
/// once the lease has expired, naming it. Meeting the same holder with a renewed lease then
/// shows it alive and the message a duplicate (the sweeper's, say): dropped, or it would
/// come back for as long as the job runs.
fn after_refusal(message: JobMessage, holder: Lease, now_ms: i64) -> MessageFate {
    let renewed = message
        .refused_by
        .as_ref()
        .is_some_and(|before| before.owner == holder.owner && holder.expires_at_ms > before.expires_at_ms);
    if renewed {
        return MessageFate::Delete;
    }
    let left = Duration::from_millis(u64::try_from(holder.expires_at_ms - now_ms).unwrap_or(0));
    MessageFate::Requeue(JobMessage { refused_by: Some(holder), ..message }, left + LEASE_MARGIN)
}

/// How an upload's error `err` is shown to the tenant: storage that refused for good (no
/// such bucket, access denied) or failed past its retries, or our own failure.
fn upload_failure(err: &anyhow::Error) -> Failure {
    let cause = format!("{err:#}");
    let forbidden = err.chain().any(|e| e.is::<Forbidden>());
    let code = match err.chain().find_map(|e| e.downcast_ref::<StoreError>()) {
        Some(StoreError::Rejected(_)) if forbidden => FailureCode::StorageAccessDenied,
        Some(StoreError::Rejected(_)) => FailureCode::StorageRejected,
        Some(StoreError::Backend(_)) => FailureCode::StorageUnavailable,
        Some(StoreError::Conflict) | None if disk_full(&cause) => FailureCode::SpoolFull,
        Some(StoreError::Conflict) | None => FailureCode::InternalError,
    };
    Failure::new(code, cause)
}

/// Whether a failure's `cause` is a full disk: ENOSPC, as both `std::io::Error` and FFmpeg's
/// `av_strerror` word it.
fn disk_full(cause: &str) -> bool {
    cause.contains("No space left on device")
}

/// Runs the job named by `message` until it ends, is handed back (shutdown) or is lost; its
/// cost is counted in `slot` from its claim, and a job that does not fit is not claimed.
pub async fn run(ctx: Arc<Ctx>, message: JobMessage, slot: &mut Slot, shutdown: watch::Receiver<bool>) -> MessageFate {
    let worker = ctx.config.worker_id.clone();
    let lease = ctx.config.lease;
    let (mut refused, mut takeover, mut started, mut no_room) = (None, false, false, None);
    let clock = ctx.clock.clone();
    let claimed = ctx
        .claim(&message.app_id, &message.job_id, |job| {
            let new = job.job.state == JobState::Init;
            (takeover, started) = (
                job.claim(&worker, clock.now(), lease).map_err(|e| {
                    refused = Some(e.clone());
                    e.to_string()
                })?,
                new,
            );
            slot.claim(capacity::cost(&job.job)).map_err(|e| {
                no_room = Some(e);
                e.to_string()
            })
        })
        .await;
    let job = match (claimed, refused) {
        (Ok(job), _) => job,
        (Err(_), Some(ClaimRefused::Ended)) | (Err(JobWriteError::Gone), _) => return MessageFate::Delete,
        (Err(_), Some(ClaimRefused::Held(holder))) => return after_refusal(message, holder, ctx.clock.millis()),
        (Err(err), None) => match no_room {
            Some(no_room) => {
                tracing::info!(job_id = %message.job_id, %no_room, "declining the job: another worker takes it");
                return MessageFate::Requeue(message, DECLINE_DELAY);
            }
            None => {
                tracing::warn!(job_id = %message.job_id, error = %err, "could not claim the job; it will be retried");
                return MessageFate::Leave;
            }
        },
    };
    let Some(held) = job.lease.clone() else { return MessageFate::Leave };
    let (app_id, job_id) = (job.job.app_id.clone(), job.job.job_id.clone());
    let span = tracing::info_span!("job", app_id = %app_id, job_id = %job_id, epoch = held.epoch);
    let units = capacity::cost(&job.job);
    let in_use = slot.capacity().in_use();
    tracing::info!(parent: &span, state = job.job.state.as_str(), takeover, units, in_use, "job claimed");
    if takeover {
        ctx.metrics.record(Metric::Takeover { app_id, job_id });
    } else if started {
        ctx.metrics.record(Metric::JobStarted { app_id, job_id });
    }
    let watch = ctx.board.watch(&job.job.app_id, &job.job.job_id);
    let pause = PauseState::new(&job.job, takeover);
    let task = JobTask {
        ctx,
        record: job,
        held,
        watch,
        shutdown,
        last_media: Arc::new(LastMedia::new()),
        phase: if takeover { Phase::TakingOver } else { Phase::Starting },
        handover: None,
        storage: None,
        pause,
        progress: Vec::new(),
    };
    task.run().instrument(span).await
}

/// Keeps the lease `held` of the job, which expires at `expires_at_ms`, for as long as it is
/// polled: renewed when a third of it is left (the job's own checks renew it sooner, once a
/// third has passed, but they wait for the output being handled). It runs beside an
/// output's uploads, which retries through an outage of object storage alone can hold for
/// minutes, so the job is not taken over meanwhile by another worker while this one still
/// records it. Never returns; once the lease is lost it only waits, and the job's next check
/// finds it lost. The job is read before the first renewal (the task's copy is borrowed by
/// the upload) and `kept` holds it as last written, for the task to take up.
async fn keep_lease(
    ctx: &Ctx,
    (app_id, job_id): (&AppId, &JobId),
    held: &Lease,
    mut expires_at_ms: i64,
    kept: &mut Option<JobRecord>,
) -> Infallible {
    let lease = ctx.config.lease;
    let third_ms = i64::try_from((lease / 3).as_millis()).unwrap_or(i64::MAX);
    loop {
        let wait_ms = (expires_at_ms - third_ms - ctx.clock.millis()).max(KEEP_LEASE_STEP_MS);
        tokio::time::sleep(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))).await;
        let record = match kept.take() {
            Some(record) => Ok(record),
            None => match ctx.store.get_job(app_id, job_id).await {
                Ok(Some(record)) => Ok(record),
                Ok(None) => Err(JobWriteError::Gone),
                Err(err) => Err(JobWriteError::Store(err)),
            },
        };
        let renew = |j: &mut JobRecord| j.renew(held, ctx.clock.now(), lease).map_err(|e| e.to_string());
        let renewed = match record {
            Ok(record) => ctx.update(&record, held, renew).await.map_err(|err| (err, Some(record))),
            Err(err) => Err((err, None)),
        };
        match renewed {
            Ok(record) => {
                expires_at_ms = record.lease.as_ref().map_or(expires_at_ms, |l| l.expires_at_ms);
                *kept = Some(record);
                tracing::info!("lease renewed beside a slow upload");
            }
            Err((JobWriteError::Refused(_) | JobWriteError::Gone, _)) => return std::future::pending().await,
            Err((err, record)) => {
                *kept = record;
                tracing::warn!(error = %err, "renewing the lease beside a slow upload failed; will retry");
            }
        }
    }
}

/// When the media thread last reported media (`Output::Alive`), or else when the job task
/// started; set on the media thread by its [`Forward`].
#[derive(Debug)]
struct LastMedia {
    start: Instant,
    /// Milliseconds after `start`.
    at_ms: AtomicU64,
}

impl LastMedia {
    fn new() -> Self {
        Self { start: Instant::now(), at_ms: AtomicU64::new(0) }
    }

    /// Media came now.
    fn now(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.at_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long ago media last came.
    fn elapsed(&self) -> Duration {
        self.start.elapsed().saturating_sub(Duration::from_millis(self.at_ms.load(Ordering::Relaxed)))
    }
}

/// Where a job stands in this worker. [`JobTask::enter`] is the one place it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Claimed; reading what the recording needs.
    Starting,
    /// Claimed from a worker that died or froze: finishing the files it left open.
    TakingOver,
    /// Waiting for the participant's stream to appear (individual recordings).
    WaitingForSource,
    /// The media thread records.
    Recording,
    /// A stop was decided (the tenant's, or idleness): the media thread finishes its files.
    Stopping(StopReason),
    /// The worker shuts down: the job is handed over, recording goes on until the next
    /// worker records (or [`HANDOVER_WAIT`]), then the files are finished.
    HandingBack,
    /// Another worker holds the job now: this one writes nothing more.
    Lost,
    /// Writing the job's end and its last event.
    Finishing,
}

impl Phase {
    /// Whether the job may move from `self` to `next`: a lost job stays lost, a hand-back
    /// only ends, and a stop only gives way to a tenant stop, a hand-back or a loss.
    fn allows(self, next: Phase) -> bool {
        match (self, next) {
            (Phase::Lost, _) => false,
            (Phase::HandingBack, next) => matches!(next, Phase::Lost | Phase::Finishing),
            (Phase::Stopping(_), Phase::Stopping(reason)) => reason == StopReason::TenantStop,
            (Phase::Stopping(_), next) => matches!(next, Phase::HandingBack | Phase::Lost | Phase::Finishing),
            _ => true,
        }
    }

    /// Whether the recording must end now (stop, hand-back or loss).
    fn ending(self) -> bool {
        matches!(self, Phase::Stopping(_) | Phase::HandingBack | Phase::Lost)
    }
}

/// The media work of a job, before it starts.
enum Media {
    Recorder(Recorder),
    Mixer(Box<Mixer>, Box<MixFeed>),
}

/// The channel to a running media thread.
enum Control {
    Recorder(std::sync::mpsc::Sender<Command>),
    Mixer(std::sync::mpsc::Sender<MixCommand>, Box<MixFeed>),
}

type MediaThread = std::thread::JoinHandle<Result<(), MediaError>>;

impl Media {
    /// Starts the media thread, reporting to what `report` makes of the thread's stop command.
    fn start(self, report: impl FnOnce(Stopper) -> Forward) -> (Control, MediaThread) {
        match self {
            Self::Recorder(recorder) => {
                let (commands, command_rx) = std::sync::mpsc::channel();
                let control = Control::Recorder(commands);
                let out = report(control.stopper());
                (control, std::thread::spawn(move || recorder.run(command_rx, out)))
            }
            Self::Mixer(mixer, feed) => {
                let (commands, command_rx) = std::sync::mpsc::channel();
                let control = Control::Mixer(commands, feed);
                let out = report(control.stopper());
                (control, std::thread::spawn(move || mixer.run(command_rx, out)))
            }
        }
    }
}

/// The media thread's outputs, taken on that thread: media's heartbeat is stored for the
/// idleness check, what it writes is counted against the spool budget (over it, the thread
/// is stopped), and the rest goes on to the job task. Unbounded: while uploads wait out an
/// outage, the media thread goes on writing the spool and reporting, never blocked by that
/// task, up to the spool budget.
struct Forward {
    to_task: mpsc::UnboundedSender<Output>,
    last_media: Arc<LastMedia>,
    writes: Writes,
    backlog: Arc<Backlog>,
    stopper: Stopper,
}

impl Report for Forward {
    fn report(&mut self, output: Output) -> bool {
        if output == Output::Alive {
            self.last_media.now();
            return true;
        }
        if self.writes.count(&output, &self.backlog) {
            self.stopper.stop();
        }
        self.to_task.send(output).is_ok()
    }
}

impl Control {
    /// Asks the media thread to finish its files and end; false if it is gone already.
    fn stop(&self) -> bool {
        self.stopper().stop()
    }

    /// Asks the media thread to hold the recording (or resume it); false if it is gone.
    fn hold(&self, paused: bool) -> bool {
        match (self, paused) {
            (Self::Recorder(commands), true) => commands.send(Command::Pause).is_ok(),
            (Self::Recorder(commands), false) => commands.send(Command::Resume).is_ok(),
            (Self::Mixer(commands, _), true) => commands.send(MixCommand::Pause).is_ok(),
            (Self::Mixer(commands, _), false) => commands.send(MixCommand::Resume).is_ok(),
        }
    }

    /// What can stop the media thread from another thread.
    fn stopper(&self) -> Stopper {
        match self {
            Self::Recorder(commands) => Stopper::Recorder(commands.clone()),
            Self::Mixer(commands, _) => Stopper::Mixer(commands.clone()),
        }
    }
}

/// A media thread's stop command, for another thread.
enum Stopper {
    Recorder(std::sync::mpsc::Sender<Command>),
    Mixer(std::sync::mpsc::Sender<MixCommand>),
}

impl Stopper {
    /// Asks the media thread to finish its files and end; false if it is gone already.
    fn stop(&self) -> bool {
        match self {
            Self::Recorder(commands) => commands.send(Command::Stop).is_ok(),
            Self::Mixer(commands) => commands.send(MixCommand::Stop).is_ok(),
        }
    }
}

/// Why the recording loop ended.
enum Ending {
    /// Stopped for this reason (tenant, idle).
    Stopped(StopReason),
    /// Could not go on.
    Failed(Failure),
}

/// How long a worker shutting down records on, waiting for the next worker to record.
const HANDOVER_WAIT: Duration = Duration::from_secs(10);
/// How long after handing a job over its worker may still finish its files (recording on for
/// up to [`HANDOVER_WAIT`], then uploading); after that the job's holder finishes them.
const HANDOVER_GRACE: Duration = Duration::from_secs(60);

/// A hand-over under way (make before break): the lease is given up and the next worker woken,
/// and this one records until the next one does.
struct Handover {
    since: Instant,
    /// A fresh message woke the next worker; the received one is done with.
    woken: bool,
    /// The next worker's files have started (or the job ended).
    successor_recording: bool,
}

struct JobTask {
    ctx: Arc<Ctx>,
    /// The job as last read or written.
    record: JobRecord,
    /// This worker's claim: every job write is made under it.
    held: Lease,
    /// Its entry on the worker's board of job reads.
    watch: Watch,
    shutdown: watch::Receiver<bool>,
    last_media: Arc<LastMedia>,
    phase: Phase,
    handover: Option<Handover>,
    /// The job's storage, once reached.
    storage: Option<JobStorage>,
    /// The tenant's pause, as told to the media thread and announced.
    pause: PauseState,
    /// What the open files hold in storage, for the job with the next lease renewal.
    progress: Vec<Progress>,
}

impl JobTask {
    /// Moves the job to `next` if its phase allows it; logs the move.
    fn enter(&mut self, next: Phase) {
        if self.phase != next && self.phase.allows(next) {
            tracing::info!(from = ?self.phase, to = ?next, "job phase");
            self.phase = next;
        }
    }

    /// The reason of the stop under way, if one is.
    fn stop_reason(&self) -> Option<StopReason> {
        match self.phase {
            Phase::Stopping(reason) => Some(reason),
            _ => None,
        }
    }

    /// The job from claim to end: abandoned files finished, recorded, ended.
    async fn run(mut self) -> MessageFate {
        if self.phase == Phase::TakingOver {
            // A handed-over file is its worker's to finish for a while yet.
            let now_ms = self.ctx.clock.millis();
            self.finish_abandoned(|u| !u.finishing_by_owner(now_ms), recovery::TAKEN_OVER).await;
        }
        let ending = self.run_recording().await;
        self.end(ending).await
    }

    /// Finishes the open uploads `which` picks from what is in storage, reporting them with
    /// `detail`; a failure is logged (what is stored stays).
    async fn finish_abandoned(&mut self, which: impl Fn(&OpenUpload) -> bool, detail: &str) {
        if !self.record.open_uploads.iter().any(&which) {
            return;
        }
        let storage = match self.rule().await {
            Ok(rule) => self.storage(&rule).await.map(|storage| (rule.obs_addr.location, storage)),
            Err(reason) => Err(reason),
        };
        let (region, storage) = match storage {
            Ok(found) => found,
            Err(failure) => {
                tracing::warn!(
                    code = failure.code.as_str(),
                    cause = failure.cause,
                    detail,
                    "abandoned files cannot be finished: their storage is not reachable"
                );
                return;
            }
        };
        let blobs = storage.blobs.as_ref();
        let finished =
            recovery::finish_abandoned(&self.ctx, blobs, &mut self.record, &self.held, which, (&region, detail)).await;
        if let Err(err) = finished {
            tracing::warn!(error = %format!("{err:#}"), detail, "finishing abandoned files failed");
        }
    }

    fn max_idle(&self) -> Duration {
        Duration::from_secs(u64::from(self.record.job.max_idle_time()))
    }

    async fn run_recording(&mut self) -> Ending {
        if self.record.job.state == JobState::Stopping {
            return Ending::Stopped(StopReason::TenantStop);
        }
        // Reached before waiting for anyone, so a rule whose storage cannot be used fails the
        // job at its start, and nothing is written anywhere.
        let reached = match self.rule().await {
            Ok(rule) => self.storage(&rule).await.map(drop),
            Err(reason) => Err(reason),
        };
        if let Err(detail) = reached {
            return Ending::Failed(detail);
        }
        match self.record.job.spec.clone() {
            JobSpec::Individual(params) => self.record_individual(&params.user_id, params.video_type).await,
            JobSpec::Mix { mix_param } => self.record_mix(&mix_param).await,
        }
    }

    async fn record_individual(&mut self, user: &UserId, video_type: VideoType) -> Ending {
        self.enter(Phase::WaitingForSource);
        let Some(url) = self.wait_for_stream(user, video_type).await else {
            return Ending::Stopped(self.stop_reason().unwrap_or(StopReason::ExceedMaxIdleTime));
        };
        // Read when recording starts, so a rule changed while the job waited applies.
        let rule = match self.rule().await {
            Ok(rule) => rule,
            Err(reason) => return Ending::Failed(reason),
        };
        let storage = match self.storage(&rule).await {
            Ok(storage) => storage,
            Err(detail) => return Ending::Failed(detail),
        };
        let spec = record_spec(&self.record.job, &rule, &self.ctx.config.spool_dir);
        let spool = spec.spool_dir.clone();
        let recorder = Recorder::new(self.ctx.stream_input(url.clone()), spec);
        let files = OpenFiles::new(rule, storage, url, self.ctx.config.spool_budget);
        self.run_in_spool(spool, Media::Recorder(recorder), files).await
    }

    /// A mix records from the start, whoever is in the room: the picture shows the
    /// background until someone joins, and the job ends if nobody sends for `max_idle_time`.
    async fn record_mix(&mut self, param: &MixParam) -> Ending {
        let rule = match self.rule().await {
            Ok(rule) => rule,
            Err(reason) => return Ending::Failed(reason),
        };
        let storage = match self.storage(&rule).await {
            Ok(storage) => storage,
            Err(detail) => return Ending::Failed(detail),
        };
        let mut feed =
            MixFeed::new(self.ctx.stream_input(String::new()), storage.clone(), self.record.job.app_id.clone());
        let layout = feed.first_layout(param).await;
        let spec = mix_spec(&self.record.job, &rule, param, layout, &self.ctx.config.spool_dir);
        let spool = spec.spool_dir.clone();
        // A mix has no single stream: `{publish_domain}` and `{app}` take their defaults.
        self.run_in_spool(
            spool,
            Media::Mixer(Box::new(Mixer::new(spec)), Box::new(feed)),
            OpenFiles::new(rule, storage, String::new(), self.ctx.config.spool_budget),
        )
        .await
    }

    /// Runs `media` with its files spooled in `spool`, removed afterwards.
    async fn run_in_spool(&mut self, spool: PathBuf, media: Media, files: OpenFiles) -> Ending {
        if let Err(err) = tokio::fs::create_dir_all(&spool).await {
            return Ending::Failed(Failure::new(FailureCode::InternalError, format!("spool directory: {err}")));
        }
        let ending = self.run_media(media, files).await;
        let _ = tokio::fs::remove_dir_all(spool).await;
        ending
    }

    /// The storage `rule` names, reached once per job (again only if the rule changed to
    /// other storage); the error is the job's failure.
    async fn storage(&mut self, rule: &RecordRule) -> Result<JobStorage, Failure> {
        let reached = storage::open(&self.ctx, self.storage.as_ref(), rule, &self.record.job).await?;
        self.storage = Some(reached.clone());
        Ok(reached)
    }

    async fn rule(&self) -> Result<RecordRule, Failure> {
        let missing = || Failure::new(FailureCode::RuleNotFound, "the job's record rule no longer exists");
        let job = &self.record.job;
        let rule_id = job.rule_id().ok_or_else(missing)?;
        let read = self.ctx.store.get_rule(&job.app_id, &rule_id).await;
        let rule = read
            .map_err(|e| Failure::new(FailureCode::InternalError, format!("reading the rule: {}", error_chain(&e))))?;
        rule.ok_or_else(missing)
    }

    /// The URL of the participant's stream of `video_type`, polled from the roster (or, for a
    /// camera, the app's template) until it appears, the job is stopped, or it has been idle
    /// too long.
    async fn wait_for_stream(&mut self, user: &UserId, video_type: VideoType) -> Option<String> {
        loop {
            let job = &self.record.job;
            let roster = self.ctx.store.get_stream(&job.app_id, &job.room_id, user, video_type).await;
            if let Ok(Some(stream)) = roster {
                return Some(stream.url.as_str().to_owned());
            }
            // The template names one URL per user: their camera's.
            let app = match video_type {
                VideoType::Camerastream => self.ctx.store.find_app(&job.app_id).await.ok().flatten(),
                VideoType::Substream => None,
            };
            if let Some(url) = app.and_then(|app| app.stream_url_template?.expand(&job.room_id, user).ok()) {
                return Some(url.as_str().to_owned());
            }
            self.watch.next().await;
            if self.check().await {
                return None;
            }
        }
    }

    /// Reads the job, renews the lease and judges idleness; `true` when the recording must end.
    async fn check(&mut self) -> bool {
        // A job already stopping is ended here rather than handed over.
        if *self.shutdown.borrow() && self.handover.is_none() && self.stop_reason().is_none() {
            self.hand_over().await;
        }
        self.refresh().await;
        if let Some(handover) = &self.handover {
            let recording = self.record.open_uploads.iter().any(|u| u.epoch == self.held.epoch);
            // A held recording writes nothing a successor would need to overlap.
            let done = handover.successor_recording || handover.since.elapsed() > HANDOVER_WAIT;
            return done || !recording || self.pause.held();
        }
        // Files a worker handed over and did not finish in time are this one's to finish.
        let (now_ms, epoch) = (self.ctx.clock.millis(), self.held.epoch);
        let expired = |u: &OpenUpload| u.epoch != epoch && !u.finishing_by_owner(now_ms);
        self.finish_abandoned(expired, recovery::TAKEN_OVER).await;
        if self.record.job.state == JobState::Stopping {
            self.enter(Phase::Stopping(StopReason::TenantStop));
        } else if self.last_media.elapsed() > self.max_idle() {
            self.enter(Phase::Stopping(StopReason::ExceedMaxIdleTime));
        }
        self.phase.ending()
    }

    /// Gives the job up while its files still record: the lease expires now and a fresh
    /// message wakes the next worker, which claims at once; this worker's open files stay its
    /// own to finish (see [`JobRecord::hand_over`]).
    async fn hand_over(&mut self) {
        self.enter(Phase::HandingBack);
        let (held, now) = (self.held.clone(), self.ctx.clock.now());
        let handed = self.ctx.update(&self.record, &held, |j| {
            j.hand_over(&held, now, HANDOVER_GRACE);
            Ok(())
        });
        let woken = match handed.await {
            Ok(record) => {
                self.record = record;
                let wake = JobMessage::wake(self.record.job.app_id.clone(), self.record.job.job_id.clone());
                let sent = self.ctx.queue.enqueue(&wake).await;
                if let Err(err) = &sent {
                    tracing::warn!(error = %err, "could not wake the next worker; the job is given back at the end");
                }
                sent.is_ok()
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not hand the job over; it is given back at the end");
                false
            }
        };
        self.handover = Some(Handover { since: Instant::now(), woken, successor_recording: false });
    }

    /// Takes the board's latest read of the job (stop requests), and renews the lease once a
    /// third of it has passed: one write per `lease / 3`. While handing over, only watches for
    /// the next worker's first file.
    async fn refresh(&mut self) {
        let held = self.held.clone();
        if let Some(handover) = &mut self.handover {
            if let Seen::Found(job) = self.watch.latest() {
                let started = job.open_uploads.iter().any(|u| u.epoch > held.epoch);
                handover.successor_recording = started || job.job.state.is_final();
            }
            return;
        }
        let lease = self.ctx.config.lease;
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let now_ms = self.ctx.clock.millis();
        let renewal_due = self.record.lease.as_ref().is_none_or(|l| l.expires_at_ms - now_ms < lease_ms * 2 / 3);
        let result = if renewal_due {
            let (clock, progress) = (self.ctx.clock.clone(), &self.progress);
            let renew = |job: &mut JobRecord| {
                job.renew(&held, clock.now(), lease).map_err(|e| e.to_string())?;
                job.progress(progress);
                Ok(())
            };
            self.ctx.update(&self.record, &held, renew).await
        } else {
            match self.watch.latest() {
                // Read before our own last write, or our own last write: ours is as new.
                Seen::Found(job) if job.version <= self.record.version => return,
                // Someone else wrote (a stop, a layout, a handed-over file closed): the board
                // reads no files, so the job is read whole.
                Seen::Found(job) if job.holds(&held) => {
                    match self.ctx.store.get_job(&job.job.app_id, &job.job.job_id).await {
                        Ok(Some(record)) if record.holds(&held) => Ok(record),
                        Ok(_) => Err(JobWriteError::Gone),
                        Err(err) => Err(JobWriteError::Store(err)),
                    }
                }
                Seen::Found(_) | Seen::Gone => Err(JobWriteError::Gone),
                Seen::Failed(why) => {
                    tracing::warn!(job_id = %self.record.job.job_id, error = %why, "reading the job failed; will retry");
                    return;
                }
                Seen::Unread => return,
            }
        };
        match result {
            Ok(job) => self.record = job,
            Err(JobWriteError::Refused(_)) | Err(JobWriteError::Gone) => self.enter(Phase::Lost),
            Err(err) => {
                tracing::warn!(job_id = %self.record.job.job_id, error = %err, "reading or renewing the job failed; will retry")
            }
        }
    }

    async fn run_media(&mut self, media: Media, mut files: OpenFiles) -> Ending {
        self.enter(Phase::Recording);
        let (to_task, mut outputs) = mpsc::unbounded_channel();
        let (last_media, backlog) = (self.last_media.clone(), files.backlog.clone());
        let forward = |stopper| Forward { to_task, last_media, writes: Writes::default(), backlog, stopper };
        let (mut control, thread) = media.start(forward);
        // A job paused before its recording started (or taken over paused) starts held.
        self.sync_pause(&control);
        let mut failure = None;
        let mut stop_sent = false;
        let (app_id, job_id) = (self.record.job.app_id.clone(), self.record.job.job_id.clone());
        loop {
            // Unbiased: while uploads lag, outputs are always waiting, and checking the job
            // (its lease, a stop) must still take its turn. Media's heartbeat is not an output.
            tokio::select! {
                output = outputs.recv() => match output {
                    Some(Output::Finished) | None => break,
                    Some(output @ (Output::Paused { .. } | Output::Resumed { .. })) => self.announce_pause(&output).await,
                    Some(Output::Spent { cpu, pane_seconds }) => {
                        self.spend(Spent { cpu_seconds: cpu.as_secs_f64(), mixed_pane_seconds: pane_seconds }).await;
                    }
                    Some(output) => {
                        let (ctx, held, mut kept) = (&self.ctx, &self.held, None);
                        let expires_at_ms = self.record.lease.as_ref().map_or(0, |l| l.expires_at_ms);
                        let handled = tokio::select! {
                            biased;
                            handled = files.handle(ctx, &mut self.record, held, output) => handled,
                            never = keep_lease(ctx, (&app_id, &job_id), held, expires_at_ms, &mut kept) => match never {},
                        };
                        // The newer of the two writes holds the other's change too.
                        if let Some(kept) = kept.filter(|k| k.version > self.record.version) {
                            self.record = kept;
                        }
                        if let Err(err) = handled {
                            if lost_job(&err) {
                                self.enter(Phase::Lost);
                            } else {
                                failure.get_or_insert(upload_failure(&err));
                            }
                            stop_sent = stop_sent || control.stop();
                        }
                        self.progress = files.progress();
                    }
                },
                _ = self.watch.next() => {
                    if self.check().await {
                        stop_sent = stop_sent || control.stop();
                    } else if !stop_sent {
                        self.sync_pause(&control);
                        self.update_mix(&mut control).await;
                    }
                }
            }
        }
        let result = tokio::task::spawn_blocking(move || thread.join()).await;
        if files.backlog.over() {
            let budget = files.backlog.budget_mib();
            let cause = format!("uploads fell behind: the recording passed its {budget} MiB spool budget");
            failure.get_or_insert(Failure::new(FailureCode::UploadsBehind, cause));
        }
        match (failure, result) {
            (Some(reason), _) => Ending::Failed(reason),
            (None, Ok(Ok(Ok(())))) => Ending::Stopped(self.stop_reason().unwrap_or(StopReason::TenantStop)),
            (None, Ok(Ok(Err(err)))) => {
                let cause = format!("media: {}", error_chain(&err));
                let code = if disk_full(&cause) { FailureCode::SpoolFull } else { FailureCode::MediaFailed };
                Ending::Failed(Failure::new(code, cause))
            }
            (None, _) => Ending::Failed(Failure::new(FailureCode::InternalError, "the media thread panicked")),
        }
    }

    /// Tells the media thread to hold or resume the recording when the job's flag changed.
    fn sync_pause(&mut self, control: &Control) {
        if let Some(paused) = self.pause.command(&self.record.job) {
            tracing::info!(paused, "pause changed");
            control.hold(paused);
        }
    }

    /// Sends `RECORD_PAUSED` / `RECORD_RESUMED` for the media thread's report that it did.
    async fn announce_pause(&mut self, output: &Output) {
        let Some((event, detail)) = self.pause.event(output) else { return };
        if let Err(err) = self.ctx.emit(&self.record.job, event, None, None, detail.to_owned()).await {
            tracing::error!(error = %err, ?event, "could not record the pause event");
        }
    }

    /// Records what this claim's media threads spent (metering): under the lease, or, after a
    /// hand-over, as the worker still finishing its own file. Lost, it is not counted.
    async fn spend(&mut self, spent: Spent) {
        let held = self.held.clone();
        let own = self.record.open_uploads.iter().find(|u| u.epoch == held.epoch).map(|u| u.key.clone());
        let record = |j: &mut JobRecord| {
            j.spend(held.epoch, spent);
            Ok(())
        };
        let written = match own {
            Some(key) => self.ctx.update_upload(&self.record, &held, &key, record).await,
            None => self.ctx.update(&self.record, &held, record).await,
        };
        match written {
            Ok(written) => self.record = written,
            Err(err) => {
                tracing::warn!(error = %err, cpu_seconds = spent.cpu_seconds, "the job's spending was not recorded")
            }
        }
    }

    /// Adds the ended `job`'s usage to its app's counters of the day it ended (UTC).
    async fn count_usage(&self, job: &Job, account: Option<&AccountId>) {
        let Some(usage) = job.usage else { return };
        let owner = match account {
            Some(account) => Some(account.clone()),
            None => self.ctx.store.app_owner(&job.app_id).await.ok().flatten(),
        };
        let Some(owner) = owner else {
            tracing::warn!("the job's usage is not counted: its app has no owner");
            return;
        };
        let day = job.stop_time.as_datetime().date_naive();
        let counted = retry(&Backoff::AWS, self.ctx.random.as_ref(), "counting the job's usage", || {
            self.ctx.store.add_usage(&owner, &job.app_id, day, &job.job_id, &usage)
        })
        .await;
        if let Err(err) = counted {
            tracing::error!(error = %error_chain(&err), "could not count the job's usage");
        }
    }

    /// Tells a running mixer who is in the room and how to lay them out, when that changed.
    async fn update_mix(&self, control: &mut Control) {
        let job = &self.record.job;
        let (Control::Mixer(commands, feed), JobSpec::Mix { mix_param }) = (control, &job.spec) else { return };
        for command in feed.changes(&self.ctx, job, mix_param).await {
            if commands.send(command).is_err() {
                return;
            }
        }
    }

    /// Writes the end of the job and its last event, unless it was lost or handed back. Files
    /// a failed recording left open are finished first, from what was uploaded.
    async fn end(mut self, ending: Ending) -> MessageFate {
        match self.phase {
            Phase::Lost => {
                tracing::warn!("lease lost; another worker continues the job");
                return MessageFate::Leave;
            }
            Phase::HandingBack => return self.hand_back().await,
            _ => self.enter(Phase::Finishing),
        }
        // A handed-over file of another worker that is still being finished stays its own.
        let now_ms = self.ctx.clock.millis();
        self.finish_abandoned(|u| !u.finishing_by_owner(now_ms), recovery::RECORDING_FAILED).await;
        let (reason, event, detail) = match ending {
            Ending::Stopped(reason) => (reason, EventType::CloudRecordOver, reason.as_str().to_owned()),
            Ending::Failed(failure) => {
                // The cause stays here, in the log under the job's id; the tenant gets the code.
                tracing::warn!(code = failure.code.as_str(), cause = %failure.cause, "recording failed");
                (StopReason::InternalError, EventType::CloudRecordFailed, failure.detail_message())
            }
        };
        let now = self.ctx.clock.timestamp();
        let finished = self
            .ctx
            .update(&self.record, &self.held, |j| {
                j.finish(reason, now);
                Ok(())
            })
            .await;
        let (job, account) = match finished {
            Ok(record) => (record.job, record.account),
            Err(JobWriteError::Refused(_)) => {
                tracing::warn!("lease lost before the end was written; the new holder ends the job");
                return MessageFate::Leave;
            }
            Err(err) => {
                tracing::error!(error = %err, "could not write the job's end; it will be retried");
                return MessageFate::Leave;
            }
        };
        tracing::info!(state = job.state.as_str(), detail, usage = ?job.usage, "job ended");
        self.count_usage(&job, account.as_ref()).await;
        self.ctx.metrics.record(Metric::JobEnded { app_id: job.app_id.clone(), job_id: job.job_id.clone(), reason });
        if let Err(err) = self.ctx.emit(&job, event, None, None, detail).await {
            tracing::error!(error = %err, "could not record the job's last event");
        }
        MessageFate::Delete
    }

    /// Ends a hand-over (the files are finished): done if the next worker was woken;
    /// otherwise the lease expires now and a fresh message wakes the next worker.
    async fn hand_back(self) -> MessageFate {
        if self.handover.as_ref().is_some_and(|h| h.woken) {
            tracing::info!("job handed over");
            return MessageFate::Delete;
        }
        let held = self.held.clone();
        let released = self.ctx.update(&self.record, &held, |j| {
            j.release(&held);
            Ok(())
        });
        if let Err(err) = released.await {
            tracing::warn!(error = %err, "could not release the lease; it will expire");
        }
        let job = self.record.job;
        MessageFate::Requeue(JobMessage::wake(job.app_id, job.job_id), Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Board;
    use crate::capacity::Capacity;
    use crate::config::WorkerConfig;
    use roomrec_adapters::{Config, Tables};
    use roomrec_domain::app::App;
    use roomrec_domain::clock::Clock;
    use roomrec_domain::event::RecordEvent;
    use roomrec_domain::ids::{AccountId, AppId, JobId};
    use roomrec_domain::job::Job;
    use roomrec_domain::ports::JobStore;
    use roomrec_domain::ports::{AppStore, Blobs, EventLog, RuleStore};
    use roomrec_domain::storage::{Access, RoleArn};
    use roomrec_domain::testing::{
        now, random, ManualClock, MemBlobsProvider, MemEventLog, MemJobQueue, MemMetrics, MemStore, SeqRandom,
    };
    use roomrec_domain::webhook::RetrySchedule;

    /// A worker's shared parts over in-memory ports.
    fn ctx(store: Arc<MemStore>) -> Arc<Ctx> {
        ctx_with(store, Arc::new(MemBlobsProvider::default()), Arc::new(MemEventLog::default()))
    }

    /// As [`ctx`], with these object storage and events.
    fn ctx_with(store: Arc<MemStore>, storage: Arc<MemBlobsProvider>, events: Arc<MemEventLog>) -> Arc<Ctx> {
        ctx_at(store, storage, events, Arc::default())
    }

    /// As [`ctx_with`], on `clock`.
    fn ctx_at(
        store: Arc<MemStore>,
        storage: Arc<MemBlobsProvider>,
        events: Arc<MemEventLog>,
        clock: Arc<ManualClock>,
    ) -> Arc<Ctx> {
        let name = String::from;
        let tables = Tables {
            accounts: name("accounts"),
            apps: name("apps"),
            rules: name("rules"),
            callbacks: name("callbacks"),
            rooms: name("rooms"),
            jobs: name("jobs"),
            events: name("events"),
            jocloud: None,
            usage: None,
        };
        let base = Config {
            tables,
            jobs_queue_url: name("jobs"),
            events_queue_url: name("events"),
            callback_dlq_url: None,
            allow_private_callbacks: false,
            stream_policy: roomrec_domain::reach::StreamPolicy::default(),
            hook_token: None,
            token_key: None,
            media_pull_base: None,
            media_publish_base: None,
            retry_schedule: RetrySchedule::STANDARD,
            sweep_init_grace: Duration::from_secs(60),
            download_lifetime: Default::default(),
            recordings_bucket: None,
        };
        let config = WorkerConfig {
            base,
            worker_id: name("w1"),
            spool_dir: std::env::temp_dir().join("roomrec-job-tests"),
            spool_budget: 1 << 20,
            max_jobs: 50,
            allow_file_inputs: false,
            lease: Duration::from_secs(8),
            visibility: Duration::from_secs(8),
            recordings_bucket: name("recordings"),
            s3_endpoint: None,
            ecs_agent_uri: None,
            rtmp_reader: Default::default(),
        };
        Arc::new(Ctx {
            board: Board::new(store.clone()),
            store,
            events,
            storage,
            queue: Arc::new(MemJobQueue::default()),
            preflights: Arc::new(roomrec_domain::testing::MemPreflights::default()),
            clock,
            random: Arc::new(SeqRandom::new(3)),
            metrics: Arc::new(MemMetrics::default()),
            config,
        })
    }

    #[tokio::test]
    async fn a_mix_the_worker_has_no_room_for_is_left_unclaimed_for_another_worker() {
        let store = Arc::new(MemStore::default());
        let body = serde_json::json!({
            "mix_param": { "room_id": "r1", "encode_template": "1920x1080_30_4620" },
            "record_param": { "record_rule_id": "0123456789abcdef0123456789abcdef" },
        });
        let job = Job::mix(AppId::generate(random()), serde_json::from_value(body).unwrap(), random(), now()).unwrap();
        store.create_job(&roomrec_domain::ids::AccountId::try_from("acme").unwrap(), &job).await.unwrap();
        let (ctx, capacity) = (ctx(store.clone()), Capacity::new(50));
        let (_stop, shutdown) = watch::channel(false);
        let message = JobMessage::wake(job.app_id.clone(), job.job_id.clone());

        // One individual recording runs: a 1080p grid mix (all 50 units) does not fit beside it.
        let mut recording = capacity.reserve().await;
        recording.claim(1).unwrap();
        let mut slot = capacity.reserve().await;
        let fate = run(ctx.clone(), message.clone(), &mut slot, shutdown.clone()).await;
        assert_eq!(fate, MessageFate::Requeue(message.clone(), DECLINE_DELAY), "its message goes back to the queue");
        let stored = store.job(&job.app_id, &job.job_id).unwrap();
        assert_eq!((stored.job.state, stored.lease), (JobState::Init, None), "not claimed");
        drop(slot);
        assert_eq!(capacity.in_use(), 1);

        // Once that recording has ended, this worker takes the mix, while its queue loop
        // already waits for the next message.
        drop(recording);
        let mut slot = capacity.reserve().await;
        let _next = capacity.reserve().await;
        run(ctx, message, &mut slot, shutdown).await;
        let stored = store.job(&job.app_id, &job.job_id).unwrap();
        assert_eq!(stored.job.state, JobState::Failed, "claimed, and failed here: its rule does not exist");
    }

    /// Runs an individual job of a new app of account `acme` whose rule has `obs_addr`, in a
    /// worker whose deployment bucket is `recordings`; returns the job as stored and its events.
    async fn run_job_with(
        obs_addr: serde_json::Value,
        storage: Arc<MemBlobsProvider>,
    ) -> (JobRecord, Vec<RecordEvent>) {
        let store = Arc::new(MemStore::default());
        let app = App::create(serde_json::from_value(serde_json::json!({"app_name": "a"})).unwrap(), random(), now());
        let app = app.unwrap();
        let account = AccountId::try_from("acme").unwrap();
        store.put_app(&account, &app).await.unwrap();
        let rule_body = serde_json::json!({ "obs_addr": obs_addr, "record_formats": ["HLS"] });
        let rule = RecordRule::create(app.app_id.clone(), serde_json::from_value(rule_body).unwrap(), random(), now());
        let rule = rule.unwrap();
        store.put_rule(&rule).await.unwrap();
        let body =
            serde_json::json!({ "room_id": "r1", "user_id": "u1", "record_param": { "record_rule_id": rule.rule_id } });
        let job = Job::individual(app.app_id.clone(), serde_json::from_value(body).unwrap(), random(), now()).unwrap();
        store.create_job(&account, &job).await.unwrap();
        let events = Arc::new(MemEventLog::default());
        let ctx = ctx_with(store.clone(), storage, events.clone());
        let (_stop, shutdown) = watch::channel(false);
        let capacity = Capacity::new(50);
        let mut slot = capacity.reserve().await;
        let fate = run(ctx, JobMessage::wake(job.app_id.clone(), job.job_id.clone()), &mut slot, shutdown).await;
        assert_eq!(fate, MessageFate::Delete);
        let listed = events.list(&job.job_id).await.unwrap();
        (store.job(&job.app_id, &job.job_id).unwrap(), listed)
    }

    #[tokio::test]
    async fn a_rule_naming_another_bucket_without_a_role_fails_its_job_at_start_and_writes_nothing() {
        let storage = Arc::new(MemBlobsProvider::default());
        let obs_addr = serde_json::json!({ "bucket": "someone-elses", "location": "us-east-1", "object": "x/" });
        let (job, events) = run_job_with(obs_addr, storage.clone()).await;
        assert_eq!(job.job.state, JobState::Failed);
        let last = events.last().unwrap();
        assert_eq!(last.event_type, EventType::CloudRecordFailed);
        assert!(last.detail_message.starts_with("STORAGE_ROLE_REQUIRED: "), "{}", last.detail_message);
        assert!(last.detail_message.contains("obs_addr.role_arn"), "{}", last.detail_message);
        assert_eq!(events.len(), 1, "no file was started");
        assert!(storage.asked().is_empty(), "no storage was even reached");
        assert!(storage.blobs.list("someone-elses", "").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_role_that_does_not_trust_the_deployment_with_the_accounts_id_fails_the_job_with_a_stable_detail() {
        let storage = Arc::new(MemBlobsProvider::default());
        let role = "arn:aws:iam::210987654321:role/roomrec";
        // Trusted, but with another ExternalId than the owning account's.
        storage.trust(RoleArn::try_from(role.to_owned()).unwrap(), "someone-else");
        let obs_addr = serde_json::json!({ "bucket": "tenant", "location": "us-east-1", "role_arn": role });
        let (job, events) = run_job_with(obs_addr, storage.clone()).await;
        assert_eq!(job.job.state, JobState::Failed);
        let last = events.last().unwrap();
        assert_eq!(last.event_type, EventType::CloudRecordFailed);
        assert!(last.detail_message.starts_with("STORAGE_ACCESS_DENIED: "), "{}", last.detail_message);
        assert!(!last.detail_message.contains("sts:AssumeRole on"), "no backend text: {}", last.detail_message);
        let Some(Access::Role { external_id, session_name, .. }) = storage.asked().first().cloned() else {
            panic!("the role was asked for")
        };
        assert_eq!(external_id, "acme", "the owning account is the ExternalId");
        assert_eq!(session_name, format!("roomrec-{}", job.job.job_id));
    }

    #[tokio::test(start_paused = true)]
    async fn the_lease_is_kept_through_an_upload_longer_than_it_and_never_taken_back() {
        let (store, clock) = (Arc::new(MemStore::default()), Arc::new(ManualClock::default()));
        let ctx = ctx_at(store.clone(), Arc::default(), Arc::default(), clock.clone());
        let body = serde_json::json!({ "room_id": "r1", "user_id": "u1", "record_param": { "record_rule_id": "0123456789abcdef0123456789abcdef" } });
        let job = Job::individual(AppId::generate(random()), serde_json::from_value(body).unwrap(), random(), now());
        let job = job.unwrap();
        store.create_job(&AccountId::try_from("acme").unwrap(), &job).await.unwrap();
        let (app_id, job_id, lease) = (&job.app_id, &job.job_id, ctx.config.lease);
        let claim = |worker: &'static str| {
            let now = clock.now();
            ctx.claim(app_id, job_id, move |j| j.claim(worker, now, lease).map(drop).map_err(|e| e.to_string()))
        };
        let held = claim("w1").await.unwrap().lease.unwrap();
        // An upload retried for `seconds`, the clock moving with it.
        let upload_for = |seconds: u32| {
            let clock = &clock;
            async move {
                for _ in 0..seconds {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    clock.advance(Duration::from_secs(1));
                }
            }
        };
        // A short upload leaves the lease to the job's own checks: nothing is written.
        let (version, mut kept) = (store.job(app_id, job_id).unwrap().version, None);
        tokio::select! {
            () = upload_for(3) => {}
            never = keep_lease(&ctx, (app_id, job_id), &held, held.expires_at_ms, &mut kept) => match never {},
        }
        assert_eq!((store.job(app_id, job_id).unwrap().version, kept), (version, None));
        let mut kept = None;
        tokio::select! {
            () = upload_for(60) => {}
            never = keep_lease(&ctx, (app_id, job_id), &held, held.expires_at_ms, &mut kept) => match never {},
        }
        let stored = store.job(app_id, job_id).unwrap();
        assert_eq!(kept.map(|k| k.version), Some(stored.version), "the job as last written, for the task");
        assert!(stored.holds(&held), "still this worker's");
        let left_ms = stored.lease.as_ref().unwrap().expires_at_ms - clock.millis();
        assert!(left_ms > 0, "a minute on, the lease has {left_ms} ms left");
        assert!(claim("w2").await.is_err(), "another worker cannot take it");

        // Once another worker holds it (this one was frozen past its lease), it stays theirs.
        clock.advance(lease * 2);
        let theirs = claim("w2").await.unwrap().lease.unwrap();
        let mut kept = None;
        tokio::select! {
            () = upload_for(20) => {}
            never = keep_lease(&ctx, (app_id, job_id), &held, held.expires_at_ms, &mut kept) => match never {},
        }
        assert!(store.job(app_id, job_id).unwrap().holds(&theirs));
    }

    fn lease(owner: &str, expires_at_ms: i64) -> Lease {
        Lease { owner: owner.into(), expires_at_ms, epoch: 1 }
    }

    #[test]
    fn media_reported_from_another_thread_restarts_the_idle_time() {
        let last = Arc::new(LastMedia::new());
        std::thread::sleep(Duration::from_millis(30));
        assert!(last.elapsed() >= Duration::from_millis(30), "idle since the task started");
        let reporter = Arc::clone(&last);
        std::thread::spawn(move || reporter.now()).join().unwrap();
        assert!(last.elapsed() < Duration::from_millis(30), "{:?}", last.elapsed());
    }

    #[test]
    fn a_lost_job_stays_lost_a_hand_back_only_ends_and_only_a_tenant_stop_overrides_a_stop() {
        let idle = Phase::Stopping(StopReason::ExceedMaxIdleTime);
        let tenant = Phase::Stopping(StopReason::TenantStop);
        assert!(Phase::Recording.allows(idle) && idle.allows(tenant) && !tenant.allows(idle));
        assert!(!idle.allows(Phase::Recording), "a decided stop is not undone");
        assert!(tenant.allows(Phase::HandingBack) && tenant.allows(Phase::Lost));
        assert!(!Phase::HandingBack.allows(tenant) && Phase::HandingBack.allows(Phase::Lost));
        for next in [Phase::Recording, tenant, Phase::HandingBack, Phase::Finishing] {
            assert!(!Phase::Lost.allows(next), "{next:?}");
        }
    }

    #[test]
    fn a_refused_message_comes_back_when_the_lease_expires_and_dies_when_the_holder_renewed() {
        let message = JobMessage::wake(AppId::generate(random()), JobId::generate(random()));
        let MessageFate::Requeue(again, delay) = after_refusal(message, lease("w1", 10_000), 4_000) else {
            panic!("the holder may be dead: the message must come back")
        };
        assert_eq!(delay, Duration::from_millis(6_000) + LEASE_MARGIN);
        assert_eq!(again.refused_by, Some(lease("w1", 10_000)));

        // At 11 s: the same worker renewed its lease, so it lives and this was a duplicate.
        assert_eq!(after_refusal(again.clone(), lease("w1", 20_000), 11_000), MessageFate::Delete);
        // Another worker took the job over meanwhile: that one may die too.
        let MessageFate::Requeue(third, _) = after_refusal(again, lease("w2", 25_000), 11_000) else {
            panic!("a new holder is judged afresh")
        };
        assert_eq!(third.refused_by, Some(lease("w2", 25_000)));
    }

    #[test]
    fn an_upload_failure_shows_the_tenant_a_code_by_what_storage_said_never_its_text() {
        use crate::upload::UploadError;
        let refused = StoreError::Rejected("service error: NoSuchBucket: arn:aws:s3:::b12".into());
        let err = anyhow::Error::from(UploadError::Store(refused)).context("uploading segment 3");
        let failure = upload_failure(&err);
        assert_eq!(failure.code, FailureCode::StorageRejected);
        assert!(failure.cause.contains("NoSuchBucket"), "the cause is kept for the log: {}", failure.cause);
        assert!(!failure.detail_message().contains("NoSuchBucket"), "{}", failure.detail_message());
        let denied = StoreError::Rejected(Box::new(Forbidden("AccessDenied: User arn:aws:sts::1:x".into())));
        let failure = upload_failure(&anyhow::Error::from(UploadError::Store(denied)));
        assert_eq!(failure.code, FailureCode::StorageAccessDenied);
        assert!(!failure.detail_message().contains("arn:"), "{}", failure.detail_message());
        let down = anyhow::Error::from(UploadError::Store(StoreError::Backend("dispatch failure".into())));
        assert_eq!(upload_failure(&down).code, FailureCode::StorageUnavailable);
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC
        assert_eq!(upload_failure(&anyhow::Error::from(UploadError::Spool(full))).code, FailureCode::SpoolFull);
        assert_eq!(upload_failure(&anyhow::anyhow!("segment of an unknown file")).code, FailureCode::InternalError);
    }
}
