//! A job as stored: the API's [`Job`] with what only the store and the workers see — its
//! version for conditional writes, the lease of the worker holding it (claimed with a
//! conditional write, renewed while it records, taken over once it expires) and the files that
//! worker is uploading. Nothing here reaches an API response.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::AccountId;
use crate::job::{Job, JobState, RecordFile, StopReason};
use crate::rule::RecordFormat;
use crate::time::Timestamp;
use crate::usage::{Spent, Usage};

/// A job with its storage and worker state.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub job: Job,
    /// Optimistic-lock version: a write succeeds only over the version it read.
    pub version: u64,
    /// The worker holding the job.
    pub lease: Option<Lease>,
    /// Files being uploaded by the worker that holds the job.
    pub open_uploads: Vec<OpenUpload>,
    /// The account whose quotas the job counts against; `None` for jobs stored before
    /// quotas existed, which count against none.
    pub account: Option<AccountId>,
    /// Files completed by changes not saved yet: the store writes each as an item of its own
    /// with the next save (never into the job's item, which must not grow with them), and
    /// `job.record_files` lists them meanwhile.
    pub new_files: Vec<RecordFile>,
    /// What each claim's media threads spent (metering), by lease epoch: written again by a
    /// retried write, never counted twice.
    pub spent: std::collections::BTreeMap<u64, Spent>,
}

/// Who holds a job and until when (milliseconds since the epoch), and which claim of the job
/// this is: every claim takes the next `epoch`, so a write made under an older claim (a worker
/// frozen past its lease that wakes up) is told apart from the holder's, even by the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub expires_at_ms: i64,
    #[serde(default)]
    pub epoch: u64,
}

/// A file a worker is uploading, recorded so that a worker taking the job over (after a
/// crash) can finish it: what is in storage stays a playable file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenUpload {
    pub record_format: RecordFormat,
    pub bucket: String,
    /// The MP4 object or the HLS playlist.
    pub key: String,
    pub start_time: Timestamp,
    pub width: u32,
    pub height: u32,
    /// MP4 only: the multipart upload and the ETags of its parts so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<Multipart>,
    /// Bytes in storage so far: MP4 parts, or HLS segments as of the holder's last lease
    /// renewal.
    pub bytes: u64,
    /// Seconds of media in storage so far (HLS: as of the last renewal).
    pub duration: f64,
    /// The claim (lease epoch) that opened it.
    #[serde(default)]
    pub epoch: u64,
    /// Set when that claim handed the job over (worker shutdown) while the file was still
    /// recording: until then (ms since the epoch) its worker may still finish it; after, the
    /// job's holder finishes it from what is in storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_over_until_ms: Option<i64>,
}

impl OpenUpload {
    /// Whether the worker that opened it may still finish it itself (handed over, in time).
    pub fn finishing_by_owner(&self, now_ms: i64) -> bool {
        self.handed_over_until_ms.is_some_and(|until| until > now_ms)
    }
}

/// How much of an open upload is in storage: its bytes and seconds of media.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub key: String,
    pub bytes: u64,
    pub duration: f64,
}

/// An S3 multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Multipart {
    pub upload_id: String,
    pub etags: Vec<String>,
}

/// Why a worker may not take a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimRefused {
    /// The job has ended; its message can be dropped.
    #[error("the job has ended")]
    Ended,
    /// Another worker holds a live lease.
    #[error("{} holds the job until {} ms", .0.owner, .0.expires_at_ms)]
    Held(Lease),
}

/// The lease is no longer ours: another worker took the job over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the lease was lost to another worker")]
pub struct LeaseLost;

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl JobRecord {
    /// A job never stored, with no lease and nothing uploading.
    pub fn new(job: Job) -> Self {
        Self {
            job,
            version: 0,
            lease: None,
            open_uploads: Vec::new(),
            account: None,
            new_files: Vec::new(),
            spent: std::collections::BTreeMap::new(),
        }
    }

    /// Takes the job for `worker` until `now + lease`. INIT becomes RUNNING; a RUNNING or
    /// STOPPING job whose lease expired is taken over in its state; `true` means it was.
    pub fn claim(&mut self, worker: &str, now: DateTime<Utc>, lease: Duration) -> Result<bool, ClaimRefused> {
        let now_ms = now.timestamp_millis();
        let job = &mut self.job;
        if job.state.is_final() {
            return Err(ClaimRefused::Ended);
        }
        let takeover = match &self.lease {
            Some(held) if held.owner != worker && held.expires_at_ms > now_ms => {
                return Err(ClaimRefused::Held(held.clone()));
            }
            Some(held) => held.owner != worker,
            None => job.state != JobState::Init,
        };
        if job.state == JobState::Init {
            job.state = JobState::Running;
            job.start_time = Timestamp::at(now);
        }
        let epoch = self.lease.as_ref().map_or(0, |l| l.epoch) + 1;
        self.lease = Some(Lease { owner: worker.to_owned(), expires_at_ms: now_ms + millis(lease), epoch });
        job.update_time = Timestamp::at(now);
        Ok(takeover)
    }

    /// Notes a file the holder started uploading; once, however often it is applied.
    pub fn open_upload(&mut self, upload: &OpenUpload) {
        if !self.open_uploads.iter().any(|u| u.key == upload.key) {
            self.open_uploads.push(upload.clone());
        }
    }

    /// Sets the bytes and seconds of the open uploads `progress` names; the others stay.
    pub fn progress(&mut self, progress: &[Progress]) {
        for now in progress {
            for upload in self.open_uploads.iter_mut().filter(|u| u.key == now.key) {
                (upload.bytes, upload.duration) = (now.bytes, now.duration);
            }
        }
    }

    /// The upload of `key` has ended: it is no longer open, and `file` (if it became one) is
    /// among the job's files, once, however often this is applied; the next save stores it.
    pub fn close_upload(&mut self, key: &str, file: Option<&RecordFile>) {
        self.open_uploads.retain(|u| u.key != key);
        let files = self.job.record_files.get_or_insert_with(Vec::new);
        if let Some(file) = file.filter(|f| !files.iter().any(|known| known.obs_object == f.obs_object)) {
            files.push(file.clone());
            self.new_files.push(file.clone());
        }
    }

    /// Hands the job over from the claim `held` (worker shutdown) while its files still record:
    /// the lease expires now so the next worker may claim at once, and that claim's open
    /// files stay its own to finish for `grace` (see [`may_close_upload`](Self::may_close_upload)).
    pub fn hand_over(&mut self, held: &Lease, now: DateTime<Utc>, grace: Duration) {
        if !self.holds(held) {
            return;
        }
        let until = now.timestamp_millis() + millis(grace);
        for upload in self.open_uploads.iter_mut().filter(|u| u.epoch == held.epoch) {
            upload.handed_over_until_ms = Some(until);
        }
        self.release(held);
    }

    /// Whether the claim `held` may write the upload of `key`: it holds the job, or it opened
    /// that upload and handed the job over less than its grace ago.
    pub fn may_close_upload(&self, held: &Lease, key: &str, now: DateTime<Utc>) -> bool {
        let own = |u: &&OpenUpload| u.key == key && u.epoch == held.epoch;
        self.holds(held)
            || self.open_uploads.iter().find(own).is_some_and(|u| u.finishing_by_owner(now.timestamp_millis()))
    }

    /// Whether the job is still held under `lease` (same holder, same claim), expired or not.
    pub fn holds(&self, lease: &Lease) -> bool {
        self.lease.as_ref().is_some_and(|l| l.owner == lease.owner && l.epoch == lease.epoch)
    }

    /// Extends the claim `held`; fails if the job was claimed since.
    pub fn renew(&mut self, held: &Lease, now: DateTime<Utc>, lease: Duration) -> Result<(), LeaseLost> {
        if !self.holds(held) {
            return Err(LeaseLost);
        }
        self.lease = Some(Lease { expires_at_ms: now.timestamp_millis() + millis(lease), ..held.clone() });
        Ok(())
    }

    /// Gives the job back without ending it (worker shutdown): the claim `held` expires now,
    /// keeping its epoch for the next, and another worker continues the job.
    pub fn release(&mut self, held: &Lease) {
        if let Some(lease) = self.lease.as_mut().filter(|l| l.owner == held.owner && l.epoch == held.epoch) {
            lease.expires_at_ms = 0;
        }
    }

    /// Whether no worker will take the job unless one is woken for it: INIT for at least
    /// `init_grace` (its first message is late or lost), or RUNNING / STOPPING with no lease or
    /// an expired one (handed back, or its worker died, and the message that would wake the
    /// next one may be gone).
    pub fn needs_wake_up(&self, now: DateTime<Utc>, init_grace: Duration) -> bool {
        match self.job.state {
            JobState::Init => {
                now - self.job.create_time.as_datetime() >= chrono::Duration::from_std(init_grace).unwrap_or_default()
            }
            JobState::Running | JobState::Stopping => {
                self.lease.as_ref().is_none_or(|lease| lease.expires_at_ms <= now.timestamp_millis())
            }
            JobState::Stopped | JobState::Failed => false,
        }
    }

    /// Ends the job: STOPPED for a stop or idle, FAILED for an internal error.
    pub fn finish(&mut self, reason: StopReason, now: Timestamp) {
        let job = &mut self.job;
        job.state = if reason == StopReason::InternalError { JobState::Failed } else { JobState::Stopped };
        // A tenant stop that raced with idle keeps the tenant's reason.
        job.stop_reason = Some(job.stop_reason.unwrap_or(reason));
        job.stop_time = now;
        job.update_time = now;
        self.lease = None;
        self.meter();
    }

    /// Records what the media threads of the claim `epoch` spent, and the job's usage with it.
    pub fn spend(&mut self, epoch: u64, spent: Spent) {
        self.spent.insert(epoch, spent);
        self.meter();
    }

    /// Sets the job's usage: what every claim spent, and its files as they stand.
    fn meter(&mut self) {
        let spent = self.spent.values().fold(Usage::default(), |usage, spent| usage.with_spent(*spent));
        let files = self.job.record_files.iter().flatten();
        self.job.usage = Some(spent.with_files(files.map(|f| (f.record_format, f.record_duration, f.file_size))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AppId;
    use crate::testing::{now, open_upload, random};

    const LEASE: Duration = Duration::from_secs(30);

    fn job() -> JobRecord {
        let body =
            r#"{"room_id":"r","user_id":"u","record_param":{"record_rule_id":"5d0ec2c53a2c15625017adb8bbbcd9ab"}}"#;
        let app = AppId::generate(random());
        JobRecord::new(Job::individual(app, serde_json::from_str(body).unwrap(), random(), now()).unwrap())
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn a_claim_moves_init_to_running_under_a_lease() {
        let mut job = job();
        assert_eq!(job.claim("w1", at(1_000), LEASE), Ok(false));
        assert_eq!(job.job.state, JobState::Running);
        assert_eq!(job.lease, Some(Lease { owner: "w1".into(), expires_at_ms: 31_000, epoch: 1 }));
    }

    #[test]
    fn a_live_lease_refuses_others_and_an_expired_one_is_taken_over() {
        let mut job = job();
        job.claim("w1", at(1_000), LEASE).unwrap();
        let first = Lease { owner: "w1".into(), expires_at_ms: 31_000, epoch: 1 };
        assert_eq!(job.claim("w2", at(20_000), LEASE), Err(ClaimRefused::Held(first.clone())));
        assert_eq!(job.claim("w2", at(31_001), LEASE), Ok(true));
        let second = job.lease.clone().unwrap();
        assert_eq!(second.epoch, 2);
        assert_eq!(job.renew(&first, at(31_002), LEASE), Err(LeaseLost));
        assert_eq!(job.renew(&second, at(31_002), LEASE), Ok(()));
        assert!(job.holds(&second) && !job.holds(&first));
    }

    #[test]
    fn a_worker_claiming_again_under_its_old_name_is_a_new_claim() {
        let mut job = job();
        job.claim("w1", at(1_000), LEASE).unwrap();
        let frozen = job.lease.clone().unwrap();
        // Frozen past its lease, the same process name claims again (its own message came back).
        job.claim("w1", at(40_000), LEASE).unwrap();
        assert!(!job.holds(&frozen), "the frozen claim's writes must be refused");
        assert_eq!(job.renew(&frozen, at(40_001), LEASE), Err(LeaseLost));
    }

    #[test]
    fn a_released_running_job_is_a_takeover_for_the_next_worker() {
        let mut job = job();
        job.claim("w1", at(1_000), LEASE).unwrap();
        let held = job.lease.clone().unwrap();
        job.release(&held);
        assert_eq!(job.claim("w2", at(2_000), LEASE), Ok(true));
        assert_eq!(job.lease.as_ref().map(|l| l.epoch), Some(2));
    }

    #[test]
    fn a_job_needs_waking_when_unclaimed_past_the_grace_or_its_lease_is_gone_or_expired() {
        let grace = Duration::from_secs(60);
        let created = crate::testing::epoch();
        let mut job = job();
        assert!(!job.needs_wake_up(created + chrono::Duration::seconds(59), grace), "its message is on its way");
        assert!(job.needs_wake_up(created + chrono::Duration::seconds(60), grace), "INIT for a minute");
        let claimed_at = created + chrono::Duration::seconds(61);
        job.claim("w1", claimed_at, LEASE).unwrap();
        assert!(!job.needs_wake_up(claimed_at + chrono::Duration::seconds(29), grace), "a live lease");
        assert!(job.needs_wake_up(claimed_at + chrono::Duration::seconds(30), grace), "an expired lease");
        let held = job.lease.clone().unwrap();
        job.release(&held);
        assert!(job.needs_wake_up(claimed_at, grace), "handed back");
        job.finish(StopReason::TenantStop, now());
        assert!(!job.needs_wake_up(claimed_at + chrono::Duration::days(1), grace), "ended");
    }

    #[test]
    fn opening_and_closing_an_upload_twice_as_a_retried_write_does_changes_nothing_more() {
        let mut job = job();
        let upload = open_upload(RecordFormat::Mp4, "rec.mp4", 1);
        job.open_upload(&upload);
        job.open_upload(&upload);
        assert_eq!(job.open_uploads.len(), 1);
        let file = RecordFile {
            record_format: RecordFormat::Mp4,
            obs_bucket: "b12".into(),
            obs_object: "rec.mp4".into(),
            timeline_object: None,
            timeline_url: None,
            file_size: 10,
            record_duration: 1.0,
            start_time: now(),
            end_time: now(),
            download_url: None,
            quality: None,
        };
        job.close_upload("rec.mp4", Some(&file));
        job.close_upload("rec.mp4", Some(&file));
        assert!(job.open_uploads.is_empty());
        assert_eq!(job.job.record_files, Some(vec![file.clone()]));
        assert_eq!(job.new_files, vec![file], "stored once, with the next save");
    }

    #[test]
    fn a_handed_over_file_is_its_workers_to_finish_for_the_grace_and_then_the_holders() {
        let mut job = job();
        job.claim("w1", at(1_000), LEASE).unwrap();
        let first = job.lease.clone().unwrap();
        let upload = |key: &str, epoch| open_upload(RecordFormat::Hls, key, epoch);
        job.open_upload(&upload("a.m3u8", 1));
        job.hand_over(&first, at(5_000), Duration::from_secs(30));
        assert_eq!(job.claim("w2", at(5_500), LEASE), Ok(true), "the next worker claims at once");
        let second = job.lease.clone().unwrap();
        job.open_upload(&upload("b.m3u8", 2));
        assert!(job.may_close_upload(&first, "a.m3u8", at(6_000)), "w1 finishes its own file");
        assert!(!job.may_close_upload(&first, "b.m3u8", at(6_000)), "never the new holder's");
        assert!(!job.may_close_upload(&first, "a.m3u8", at(35_001)), "not after the grace");
        assert!(job.may_close_upload(&second, "a.m3u8", at(35_001)), "the holder finishes it then");
        assert!(!job.open_uploads[0].finishing_by_owner(35_001));
    }

    #[test]
    fn ended_jobs_cannot_be_claimed_and_keep_a_tenant_stop_reason() {
        let mut job = job();
        job.claim("w1", at(1_000), LEASE).unwrap();
        job.job.request_stop(now());
        job.finish(StopReason::ExceedMaxIdleTime, now());
        assert_eq!((job.job.state, job.job.stop_reason), (JobState::Stopped, Some(StopReason::TenantStop)));
        assert_eq!(job.claim("w2", at(2_000), LEASE), Err(ClaimRefused::Ended));
    }

    #[test]
    fn each_claims_spending_counts_once_and_the_end_adds_the_files() {
        let mut record = job();
        let spent = Spent { cpu_seconds: 2.0, mixed_pane_seconds: 0.0 };
        record.spend(1, spent);
        record.spend(1, spent);
        record.spend(2, Spent { cpu_seconds: 0.5, ..spent });
        assert_eq!(record.job.usage.unwrap().cpu_seconds, 2.5, "a retried write does not count twice");
        let file = RecordFile {
            record_format: RecordFormat::Mp4,
            obs_bucket: "b".into(),
            obs_object: "k.mp4".into(),
            file_size: 4096,
            record_duration: 12.5,
            start_time: now(),
            end_time: now(),
            download_url: None,
            timeline_object: None,
            timeline_url: None,
            quality: None,
        };
        record.job.record_files = Some(vec![file]);
        record.finish(StopReason::TenantStop, now());
        let usage = record.job.usage.unwrap();
        assert_eq!((usage.recorded_seconds.mp4, usage.bytes_stored, usage.cpu_seconds), (12.5, 4096, 2.5));
    }
}
