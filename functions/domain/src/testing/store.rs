//! [`MemStore`]: every entity store in memory, with DynamoStore's conditions.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::app::App;
use crate::callback::RecordCallback;
use crate::error::StoreError;
use crate::ids::{AccountId, AppId, JobId, KeyId, RecordId, ResId, RoomId, RuleId, UserId};
use crate::job::{Job, JobKind, JobState, RecordFile};
use crate::jocloud::{Recording, Reservation};
use crate::ports::{
    AppStore, CallbackStore, Credential, CredentialStore, JobCursor, JobFilter, JobPage, JobStore, PageRequest,
    QuotaStore, RecordingStore, RoomJobs, RoomStore, RuleStore, UsageStore, MAX_JOB_FILES,
};
use crate::publish::PublishSecret;
use crate::quota::QuotaSettings;
use crate::record::JobRecord;
use crate::room::{MediaSession, Room, RoomStream, VideoType};
use crate::rule::RecordRule;
use crate::time::Timestamp;
use crate::usage::{DailyUsage, Usage};

type Race = Box<dyn FnOnce(&mut JobRecord) + Send>;
type WriteRace = Box<dyn FnOnce(&MemStore) + Send>;

#[derive(Default)]
struct Tables {
    credentials: HashMap<KeyId, Credential>,
    /// Apps in creation order, with their owners.
    apps: Vec<(AccountId, App)>,
    rules: Vec<RecordRule>,
    /// The app whose one rule each rule is (`create_rule`'s); rules `put_rule` stored, as
    /// before one rule per app, are not in it.
    app_rules: HashMap<AppId, RuleId>,
    callbacks: HashMap<AppId, RecordCallback>,
    streams: HashMap<(AppId, RoomId), Vec<RoomStream>>,
    rooms: HashMap<(AppId, RoomId), Room>,
    /// Job items: never with their files, which are [`files`](Self::files).
    jobs: BTreeMap<(AppId, JobId), JobRecord>,
    /// Each job's file items, in the order they were stored.
    files: HashMap<(AppId, JobId), Vec<RecordFile>>,
    reservations: HashMap<(AppId, ResId), Reservation>,
    recordings: HashMap<(AppId, RecordId), Recording>,
    quotas: HashMap<AccountId, QuotaSettings>,
    /// Usage counters by account, app and day, with the jobs counted in each.
    usage: BTreeMap<(AccountId, AppId, chrono::NaiveDate), (Usage, Vec<JobId>)>,
}

/// Every entity store in memory. Job creates and stream creates are conditional, job saves
/// are versioned, updates of apps, rules, callbacks and streams write only over an item that
/// is still there, reservations are consumed once and only before they expire.
#[derive(Default)]
pub struct MemStore {
    tables: Mutex<Tables>,
    /// Changes another writer makes to a job just before the next save, so that save loses.
    races: Mutex<Vec<Race>>,
    /// What another writer does just before the next conditional update of an app, rule,
    /// callback or stream.
    write_races: Mutex<Vec<WriteRace>>,
    down: AtomicBool,
    /// Job items and index entries read by listings and room reads, as DynamoDB would read them.
    job_items_read: AtomicUsize,
}

/// Every job state, in the order the jobs index sorts them (by name).
const STATES: [JobState; 5] =
    [JobState::Failed, JobState::Init, JobState::Running, JobState::Stopped, JobState::Stopping];
/// The states of jobs that have not ended.
const ACTIVE: [JobState; 3] = [JobState::Init, JobState::Running, JobState::Stopping];

/// What the jobs indexes order a job by within one state: newest first, then job id, highest first.
fn index_order(job: &Job) -> std::cmp::Reverse<JobCursor> {
    std::cmp::Reverse(JobCursor::after(job))
}

impl MemStore {
    /// Before the next `save_job`, another writer changes the stored job with `change` (and
    /// bumps its version): that save finds the job changed and fails with `Conflict`.
    pub fn race_next_save(&self, change: impl FnOnce(&mut JobRecord) + Send + 'static) {
        self.races.lock().unwrap().push(Box::new(change));
    }

    /// Before the next conditional update of an app, rule, callback or stream, or the next
    /// create of a rule (after the caller read it), another writer runs `change` on the store
    /// — a concurrent delete or create, say.
    pub fn race_next_update(&self, change: impl FnOnce(&MemStore) + Send + 'static) {
        self.write_races.lock().unwrap().push(Box::new(change));
    }

    fn run_write_race(&self) {
        let race = self.write_races.lock().unwrap().pop();
        if let Some(race) = race {
            race(self);
        }
    }

    /// While `down`, every call fails as a backend outage would.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The stored record of a job with its files, as a worker would read it.
    pub fn job(&self, app_id: &AppId, job_id: &JobId) -> Option<JobRecord> {
        self.tables.lock().unwrap().with_files(app_id, job_id)
    }

    /// How many job items (and index entries) listings and room reads have read so far: what
    /// their cost grows with.
    pub fn job_items_read(&self) -> usize {
        self.job_items_read.load(Ordering::SeqCst)
    }

    fn read(&self, items: usize) {
        self.job_items_read.fetch_add(items, Ordering::SeqCst);
    }

    /// How many jobs are stored.
    pub fn job_count(&self) -> usize {
        self.tables.lock().unwrap().jobs.len()
    }

    /// Puts a record as it is (a worker's write, say), bumping nothing; its files become
    /// items of their own.
    pub fn put_job_record(&self, record: JobRecord) {
        let mut tables = self.tables.lock().unwrap();
        let key = (record.job.app_id.clone(), record.job.job_id.clone());
        tables.add_files(&key, record.job.record_files.clone().unwrap_or_default());
        tables.put_job(record);
    }

    fn open(&self) -> Result<std::sync::MutexGuard<'_, Tables>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("the in-memory store is down".into()));
        }
        Ok(self.tables.lock().unwrap())
    }
}

impl Tables {
    /// A job item with its file items, as `get_job` reads them.
    fn with_files(&self, app_id: &AppId, job_id: &JobId) -> Option<JobRecord> {
        let key = (app_id.clone(), job_id.clone());
        let mut record = self.jobs.get(&key)?.clone();
        let files = self.files.get(&key).map(|f| f[..f.len().min(MAX_JOB_FILES)].to_vec()).unwrap_or_default();
        record.job.record_files = (!files.is_empty()).then_some(files);
        Some(record)
    }

    /// Adds file items to a job's, once each.
    fn add_files(&mut self, key: &(AppId, JobId), files: impl IntoIterator<Item = RecordFile>) {
        let stored = self.files.entry(key.clone()).or_default();
        for file in files {
            if !stored.iter().any(|known| known.obs_object == file.obs_object) {
                stored.push(file);
            }
        }
    }

    /// Stores a record as `save_job` does: its new files as items of their own, the job item
    /// without any.
    fn put_job(&mut self, mut record: JobRecord) {
        let key = (record.job.app_id.clone(), record.job.job_id.clone());
        self.add_files(&key, std::mem::take(&mut record.new_files));
        record.job.record_files = None;
        self.jobs.insert(key, record);
    }

    /// The index entries of `app_id`'s jobs of `kind` (in `room`, if given) in `state` that
    /// come after `after`, in index order, as the jobs indexes hold them.
    fn index(&self, app_id: &AppId, kind: JobKind, room: Option<&RoomId>, state: JobState) -> Vec<&Job> {
        let mut entries: Vec<&Job> = self
            .jobs
            .values()
            .map(|record| &record.job)
            .filter(|job| job.app_id == *app_id && job.kind() == kind && job.state == state)
            .filter(|job| room.is_none_or(|room| job.room_id == *room))
            .collect();
        entries.sort_by_key(|job| index_order(job));
        entries
    }
}

#[async_trait]
impl CredentialStore for MemStore {
    async fn get_credential(&self, key_id: &KeyId) -> Result<Option<Credential>, StoreError> {
        Ok(self.open()?.credentials.get(key_id).cloned())
    }
    async fn create_credential(&self, credential: &Credential) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        if tables.credentials.contains_key(&credential.key_id) {
            return Err(StoreError::Conflict);
        }
        tables.credentials.insert(credential.key_id.clone(), credential.clone());
        Ok(())
    }
    async fn delete_credential(&self, key_id: &KeyId) -> Result<(), StoreError> {
        self.open()?.credentials.remove(key_id);
        Ok(())
    }
}

#[async_trait]
impl AppStore for MemStore {
    async fn get_app(&self, account: &AccountId, app_id: &AppId) -> Result<Option<App>, StoreError> {
        let tables = self.open()?;
        Ok(tables.apps.iter().find(|(owner, app)| owner == account && app.app_id == *app_id).map(|(_, a)| a.clone()))
    }
    async fn find_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError> {
        Ok(self.open()?.apps.iter().find(|(_, app)| app.app_id == *app_id).map(|(_, a)| a.clone()))
    }
    async fn app_owner(&self, app_id: &AppId) -> Result<Option<AccountId>, StoreError> {
        Ok(self.open()?.apps.iter().find(|(_, app)| app.app_id == *app_id).map(|(owner, _)| owner.clone()))
    }
    async fn list_apps(&self, account: &AccountId) -> Result<Vec<App>, StoreError> {
        Ok(self.open()?.apps.iter().filter(|(owner, _)| owner == account).map(|(_, a)| a.clone()).collect())
    }
    async fn update_app(&self, account: &AccountId, app: &App) -> Result<bool, StoreError> {
        self.run_write_race();
        let mut tables = self.open()?;
        let Some(slot) = tables.apps.iter_mut().find(|(owner, a)| owner == account && a.app_id == app.app_id) else {
            return Ok(false);
        };
        slot.1 = App { publish_secret: slot.1.publish_secret.clone(), ..app.clone() };
        Ok(true)
    }
    async fn set_publish_secret(
        &self,
        account: &AccountId,
        app_id: &AppId,
        secret: &PublishSecret,
        only_if_none: bool,
    ) -> Result<bool, StoreError> {
        let mut tables = self.open()?;
        let Some(slot) = tables.apps.iter_mut().find(|(owner, a)| owner == account && a.app_id == *app_id) else {
            return Ok(false);
        };
        if only_if_none && slot.1.publish_secret.is_some() {
            return Ok(false);
        }
        slot.1.publish_secret = Some(secret.clone());
        Ok(true)
    }
    async fn put_app(&self, account: &AccountId, app: &App) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        match tables.apps.iter_mut().find(|(_, a)| a.app_id == app.app_id) {
            Some(slot) => *slot = (account.clone(), app.clone()),
            None => tables.apps.push((account.clone(), app.clone())),
        }
        Ok(())
    }
    async fn delete_app(&self, account: &AccountId, app_id: &AppId) -> Result<bool, StoreError> {
        let mut tables = self.open()?;
        let before = tables.apps.len();
        tables.apps.retain(|(owner, app)| !(owner == account && app.app_id == *app_id));
        Ok(tables.apps.len() < before)
    }
}

#[async_trait]
impl RuleStore for MemStore {
    async fn get_rule(&self, app_id: &AppId, rule_id: &RuleId) -> Result<Option<RecordRule>, StoreError> {
        Ok(self.open()?.rules.iter().find(|r| r.app_id == *app_id && r.rule_id == *rule_id).cloned())
    }
    async fn list_rules(&self, app_id: &AppId) -> Result<Vec<RecordRule>, StoreError> {
        Ok(self.open()?.rules.iter().filter(|r| r.app_id == *app_id).cloned().collect())
    }
    async fn put_rule(&self, rule: &RecordRule) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        match tables.rules.iter_mut().find(|r| r.app_id == rule.app_id && r.rule_id == rule.rule_id) {
            Some(slot) => *slot = rule.clone(),
            None => tables.rules.push(rule.clone()),
        }
        Ok(())
    }
    async fn create_rule(&self, rule: &RecordRule) -> Result<bool, StoreError> {
        self.run_write_race();
        let mut tables = self.open()?;
        if tables.app_rules.contains_key(&rule.app_id) {
            return Ok(false);
        }
        tables.app_rules.insert(rule.app_id.clone(), rule.rule_id.clone());
        tables.rules.push(rule.clone());
        Ok(true)
    }
    async fn update_rule(&self, rule: &RecordRule) -> Result<bool, StoreError> {
        self.run_write_race();
        let mut tables = self.open()?;
        let Some(slot) = tables.rules.iter_mut().find(|r| r.app_id == rule.app_id && r.rule_id == rule.rule_id) else {
            return Ok(false);
        };
        *slot = rule.clone();
        Ok(true)
    }
    async fn delete_rule(&self, app_id: &AppId, rule_id: &RuleId) -> Result<bool, StoreError> {
        let mut tables = self.open()?;
        let before = tables.rules.len();
        tables.rules.retain(|r| !(r.app_id == *app_id && r.rule_id == *rule_id));
        if tables.app_rules.get(app_id) == Some(rule_id) {
            tables.app_rules.remove(app_id);
        }
        Ok(tables.rules.len() < before)
    }
}

#[async_trait]
impl CallbackStore for MemStore {
    async fn get_callback(&self, app_id: &AppId) -> Result<Option<RecordCallback>, StoreError> {
        Ok(self.open()?.callbacks.get(app_id).cloned())
    }
    async fn put_callback(&self, app_id: &AppId, callback: &RecordCallback) -> Result<(), StoreError> {
        self.open()?.callbacks.insert(app_id.clone(), callback.clone());
        Ok(())
    }
    async fn update_callback(&self, app_id: &AppId, callback: &RecordCallback) -> Result<bool, StoreError> {
        self.run_write_race();
        let mut tables = self.open()?;
        let Some(slot) = tables.callbacks.get_mut(app_id) else { return Ok(false) };
        *slot = callback.clone();
        Ok(true)
    }
    async fn delete_callback(&self, app_id: &AppId) -> Result<bool, StoreError> {
        Ok(self.open()?.callbacks.remove(app_id).is_some())
    }
}

#[async_trait]
impl RoomStore for MemStore {
    async fn get_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        video_type: VideoType,
    ) -> Result<Option<RoomStream>, StoreError> {
        let tables = self.open()?;
        let roster = tables.streams.get(&(app_id.clone(), room.clone()));
        Ok(roster.and_then(|r| r.iter().find(|s| s.is(user, video_type))).cloned())
    }
    async fn list_streams(&self, app_id: &AppId, room: &RoomId) -> Result<Vec<RoomStream>, StoreError> {
        let tables = self.open()?;
        let mut streams = tables.streams.get(&(app_id.clone(), room.clone())).cloned().unwrap_or_default();
        streams.sort_by(|a, b| a.roster_order().cmp(&b.roster_order()));
        Ok(streams)
    }
    async fn create_stream(&self, app_id: &AppId, stream: &RoomStream) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        let roster = tables.streams.entry((app_id.clone(), stream.room_id.clone())).or_default();
        if roster.iter().any(|s| s.is(&stream.user_id, stream.video_type)) {
            return Err(StoreError::Conflict);
        }
        roster.push(stream.clone());
        Ok(())
    }
    async fn update_stream(&self, app_id: &AppId, stream: &RoomStream) -> Result<bool, StoreError> {
        self.run_write_race();
        let mut tables = self.open()?;
        let roster = tables.streams.get_mut(&(app_id.clone(), stream.room_id.clone()));
        let Some(slot) = roster.and_then(|r| r.iter_mut().find(|s| s.is(&stream.user_id, stream.video_type))) else {
            return Ok(false);
        };
        *slot = stream.clone();
        Ok(true)
    }
    async fn delete_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        video_type: VideoType,
    ) -> Result<bool, StoreError> {
        let mut tables = self.open()?;
        let Some(roster) = tables.streams.get_mut(&(app_id.clone(), room.clone())) else { return Ok(false) };
        let before = roster.len();
        roster.retain(|s| !s.is(user, video_type));
        Ok(roster.len() < before)
    }
    async fn touch_session_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        video_type: VideoType,
        session: &MediaSession,
        seen: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tables = self.open()?;
        let Some(roster) = tables.streams.get_mut(&(app_id.clone(), room.clone())) else { return Ok(false) };
        let own = roster.iter_mut().find(|s| s.is(user, video_type) && s.media_session.as_ref() == Some(session));
        Ok(own.map(|stream| stream.media_seen = Some(seen)).is_some())
    }
    async fn delete_session_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        video_type: VideoType,
        session: &MediaSession,
    ) -> Result<bool, StoreError> {
        let mut tables = self.open()?;
        let Some(roster) = tables.streams.get_mut(&(app_id.clone(), room.clone())) else { return Ok(false) };
        let before = roster.len();
        roster.retain(|s| !(s.is(user, video_type) && s.media_session.as_ref() == Some(session)));
        Ok(roster.len() < before)
    }
    async fn open_room(
        &self,
        app_id: &AppId,
        room: &RoomId,
        join_seq: i64,
        now: Timestamp,
    ) -> Result<Room, StoreError> {
        let mut tables = self.open()?;
        let entry = tables.rooms.entry((app_id.clone(), room.clone())).or_insert_with(|| Room {
            room_id: room.clone(),
            create_time: now,
            last_join_seq: join_seq,
        });
        entry.last_join_seq = join_seq;
        Ok(entry.clone())
    }
    async fn get_room(&self, app_id: &AppId, room: &RoomId) -> Result<Option<Room>, StoreError> {
        Ok(self.open()?.rooms.get(&(app_id.clone(), room.clone())).cloned())
    }
    async fn close_room(&self, app_id: &AppId, room: &Room) -> Result<bool, StoreError> {
        let mut tables = self.open()?;
        let key = (app_id.clone(), room.room_id.clone());
        if tables.rooms.get(&key).is_some_and(|r| r.last_join_seq == room.last_join_seq) {
            tables.rooms.remove(&key);
            return Ok(true);
        }
        Ok(false)
    }
    async fn delete_app_rooms(&self, app_id: &AppId) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        tables.streams.retain(|(app, _), _| app != app_id);
        tables.rooms.retain(|(app, _), _| app != app_id);
        Ok(())
    }
}

#[async_trait]
impl JobStore for MemStore {
    async fn get_job(&self, app_id: &AppId, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.open()?.with_files(app_id, job_id))
    }
    async fn get_jobs(&self, jobs: &[(AppId, JobId)]) -> Result<Vec<JobRecord>, StoreError> {
        let tables = self.open()?;
        Ok(jobs.iter().filter_map(|key| tables.jobs.get(key)).cloned().collect())
    }
    async fn list_jobs(&self, app_id: &AppId, filter: &JobFilter, page: &PageRequest) -> Result<JobPage, StoreError> {
        let tables = self.open()?;
        let states = filter.state.map_or(STATES.to_vec(), |state| vec![state]);
        // As DynamoStore: up to offset + limit + 1 entries of each state's range, merged.
        let wanted = page.offset + page.limit + 1;
        let mut entries = Vec::new();
        for state in states {
            let after = |job: &&Job| page.after.as_ref().is_none_or(|after| JobCursor::after(job) < *after);
            let range = tables.index(app_id, filter.kind, filter.room_id.as_ref(), state);
            entries.extend(range.into_iter().filter(after).take(wanted));
        }
        self.read(entries.len());
        entries.sort_by_key(|job| index_order(job));
        let more = entries.len() > page.offset + page.limit;
        let jobs: Vec<Job> = entries.into_iter().skip(page.offset).take(page.limit).cloned().collect();
        self.read(jobs.len());
        let next = if more { jobs.last().map(JobCursor::after) } else { None };
        Ok(JobPage { jobs, next })
    }
    async fn room_jobs(
        &self,
        app_id: &AppId,
        kind: JobKind,
        room: &RoomId,
        which: RoomJobs,
    ) -> Result<Vec<Job>, StoreError> {
        let tables = self.open()?;
        let (states, since) = match which {
            RoomJobs::Active => (&ACTIVE[..], None),
            RoomJobs::Since(time) => (&STATES[..], Some(time)),
        };
        let mut jobs = Vec::new();
        for &state in states {
            let range = tables.index(app_id, kind, Some(room), state);
            jobs.extend(range.into_iter().filter(|job| since.is_none_or(|since| job.create_time >= since)).cloned());
        }
        // The index entries, then the items they name.
        self.read(jobs.len() * 2);
        Ok(jobs)
    }
    async fn create_job(&self, account: &AccountId, job: &Job) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        let key = (job.app_id.clone(), job.job_id.clone());
        if tables.jobs.contains_key(&key) {
            return Err(StoreError::Conflict);
        }
        tables.put_job(JobRecord { version: 1, account: Some(account.clone()), ..JobRecord::new(job.clone()) });
        Ok(())
    }
    async fn save_job(&self, record: &JobRecord) -> Result<(), StoreError> {
        let race = self.races.lock().unwrap().pop();
        let mut tables = self.open()?;
        let key = (record.job.app_id.clone(), record.job.job_id.clone());
        if !tables.jobs.contains_key(&key) {
            return Err(StoreError::Conflict);
        }
        // The files first, as DynamoStore writes them: they stay even if the job write loses.
        tables.add_files(&key, record.new_files.iter().cloned());
        let stored = tables.jobs.get_mut(&key).ok_or(StoreError::Conflict)?;
        if let Some(race) = race {
            race(stored);
            stored.version += 1;
        }
        if stored.version != record.version {
            return Err(StoreError::Conflict);
        }
        tables.put_job(JobRecord { version: record.version + 1, ..record.clone() });
        Ok(())
    }
    async fn delete_job(&self, app_id: &AppId, job_id: &JobId) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        tables.jobs.remove(&(app_id.clone(), job_id.clone()));
        tables.files.remove(&(app_id.clone(), job_id.clone()));
        Ok(())
    }
    async fn active_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.open()?.jobs.values().filter(|record| record.job.is_active()).cloned().collect())
    }
    async fn count_account_jobs(&self, account: &AccountId) -> Result<u64, StoreError> {
        Ok(self.account_jobs(account).await?.len() as u64)
    }
    async fn account_jobs(&self, account: &AccountId) -> Result<Vec<Job>, StoreError> {
        let tables = self.open()?;
        let of_account = tables.jobs.values().filter(|r| r.account.as_ref() == Some(account) && r.job.is_active());
        Ok(of_account.map(|r| r.job.clone()).collect())
    }
}

#[async_trait]
impl QuotaStore for MemStore {
    async fn get_quotas(&self, account: &AccountId) -> Result<QuotaSettings, StoreError> {
        Ok(self.open()?.quotas.get(account).copied().unwrap_or_default())
    }
    async fn put_quotas(&self, account: &AccountId, quotas: &QuotaSettings) -> Result<(), StoreError> {
        self.open()?.quotas.insert(account.clone(), *quotas);
        Ok(())
    }
}

#[async_trait]
impl UsageStore for MemStore {
    async fn add_usage(
        &self,
        account: &AccountId,
        app: &AppId,
        day: chrono::NaiveDate,
        job: &JobId,
        usage: &Usage,
    ) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        let (sum, jobs) = tables.usage.entry((account.clone(), app.clone(), day)).or_default();
        if !jobs.contains(job) {
            *sum = sum.plus(usage);
            jobs.push(job.clone());
        }
        Ok(())
    }
    async fn daily_usage(
        &self,
        account: &AccountId,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        let tables = self.open()?;
        let mine = tables.usage.iter().filter(|((a, _, day), _)| a == account && *day >= from && *day <= to);
        Ok(mine
            .map(|((_, app, day), (usage, _))| DailyUsage { app_id: app.clone(), day: *day, usage: *usage })
            .collect())
    }
}

#[async_trait]
impl RecordingStore for MemStore {
    async fn put_reservation(&self, reservation: &Reservation) -> Result<(), StoreError> {
        let key = (reservation.app_id.clone(), reservation.resid.clone());
        self.open()?.reservations.insert(key, reservation.clone());
        Ok(())
    }
    async fn get_reservation(&self, app_id: &AppId, resid: &ResId) -> Result<Option<Reservation>, StoreError> {
        Ok(self.open()?.reservations.get(&(app_id.clone(), resid.clone())).cloned())
    }
    async fn consume_reservation(
        &self,
        app_id: &AppId,
        resid: &ResId,
        record_id: &RecordId,
        now_secs: i64,
    ) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        let reservation = tables.reservations.get_mut(&(app_id.clone(), resid.clone())).ok_or(StoreError::Conflict)?;
        if reservation.used_by.is_some() || reservation.expires_at <= now_secs {
            return Err(StoreError::Conflict);
        }
        reservation.used_by = Some(record_id.clone());
        Ok(())
    }
    async fn put_recording(&self, recording: &Recording) -> Result<(), StoreError> {
        let key = (recording.app_id.clone(), recording.recordid.clone());
        self.open()?.recordings.insert(key, recording.clone());
        Ok(())
    }
    async fn get_recording(&self, app_id: &AppId, record_id: &RecordId) -> Result<Option<Recording>, StoreError> {
        Ok(self.open()?.recordings.get(&(app_id.clone(), record_id.clone())).cloned())
    }
    async fn open_recordings(&self, app_id: &AppId, room: &RoomId) -> Result<Vec<Recording>, StoreError> {
        let tables = self.open()?;
        let open = tables.recordings.values().filter(|r| r.app_id == *app_id && r.room_id == *room);
        Ok(open.filter(|r| r.is_open_source()).cloned().collect())
    }
}
