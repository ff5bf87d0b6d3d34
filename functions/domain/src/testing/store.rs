//! [`MemStore`]: every entity store in memory, with DynamoStore's conditions.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::app::App;
use crate::callback::RecordCallback;
use crate::error::StoreError;
use crate::ids::{AccountId, AppId, JobId, KeyId, RecordId, ResId, RoomId, RuleId, UserId};
use crate::job::Job;
use crate::jocloud::{Recording, Reservation};
use crate::ports::{
    AppStore, CallbackStore, Credential, CredentialStore, JobFilter, JobStore, RecordingStore, RoomStore, RuleStore,
};
use crate::record::JobRecord;
use crate::room::{MediaSession, Room, RoomStream};
use crate::rule::RecordRule;
use crate::time::Timestamp;

type Race = Box<dyn FnOnce(&mut JobRecord) + Send>;

#[derive(Default)]
struct Tables {
    credentials: HashMap<KeyId, Credential>,
    /// Apps in creation order, with their owners.
    apps: Vec<(AccountId, App)>,
    rules: Vec<RecordRule>,
    callbacks: HashMap<AppId, RecordCallback>,
    streams: HashMap<(AppId, RoomId), Vec<RoomStream>>,
    rooms: HashMap<(AppId, RoomId), Room>,
    jobs: BTreeMap<(AppId, JobId), JobRecord>,
    reservations: HashMap<(AppId, ResId), Reservation>,
    recordings: HashMap<(AppId, RecordId), Recording>,
}

/// Every entity store in memory. Job creates and stream creates are conditional, job saves
/// are versioned, reservations are consumed once and only before they expire.
#[derive(Default)]
pub struct MemStore {
    tables: Mutex<Tables>,
    /// Changes another writer makes to a job just before the next save, so that save loses.
    races: Mutex<Vec<Race>>,
    down: AtomicBool,
}

impl MemStore {
    /// Before the next `save_job`, another writer changes the stored job with `change` (and
    /// bumps its version): that save finds the job changed and fails with `Conflict`.
    pub fn race_next_save(&self, change: impl FnOnce(&mut JobRecord) + Send + 'static) {
        self.races.lock().unwrap().push(Box::new(change));
    }

    /// While `down`, every call fails as a backend outage would.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The stored record of a job, as a worker would read it.
    pub fn job(&self, app_id: &AppId, job_id: &JobId) -> Option<JobRecord> {
        self.tables.lock().unwrap().jobs.get(&(app_id.clone(), job_id.clone())).cloned()
    }

    /// How many jobs are stored.
    pub fn job_count(&self) -> usize {
        self.tables.lock().unwrap().jobs.len()
    }

    /// Puts a record as it is (a worker's write, say), bumping nothing.
    pub fn put_job_record(&self, record: JobRecord) {
        let key = (record.job.app_id.clone(), record.job.job_id.clone());
        self.tables.lock().unwrap().jobs.insert(key, record);
    }

    fn open(&self) -> Result<std::sync::MutexGuard<'_, Tables>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("the in-memory store is down".into()));
        }
        Ok(self.tables.lock().unwrap())
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
    async fn list_apps(&self, account: &AccountId) -> Result<Vec<App>, StoreError> {
        Ok(self.open()?.apps.iter().filter(|(owner, _)| owner == account).map(|(_, a)| a.clone()).collect())
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
    async fn delete_rule(&self, app_id: &AppId, rule_id: &RuleId) -> Result<bool, StoreError> {
        let mut tables = self.open()?;
        let before = tables.rules.len();
        tables.rules.retain(|r| !(r.app_id == *app_id && r.rule_id == *rule_id));
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
    async fn delete_callback(&self, app_id: &AppId) -> Result<bool, StoreError> {
        Ok(self.open()?.callbacks.remove(app_id).is_some())
    }
}

#[async_trait]
impl RoomStore for MemStore {
    async fn get_stream(&self, app_id: &AppId, room: &RoomId, user: &UserId) -> Result<Option<RoomStream>, StoreError> {
        let tables = self.open()?;
        let roster = tables.streams.get(&(app_id.clone(), room.clone()));
        Ok(roster.and_then(|r| r.iter().find(|s| s.user_id == *user)).cloned())
    }
    async fn list_streams(&self, app_id: &AppId, room: &RoomId) -> Result<Vec<RoomStream>, StoreError> {
        let tables = self.open()?;
        let mut streams = tables.streams.get(&(app_id.clone(), room.clone())).cloned().unwrap_or_default();
        streams.sort_by(|a, b| (a.join_seq, &a.user_id).cmp(&(b.join_seq, &b.user_id)));
        Ok(streams)
    }
    async fn create_stream(&self, app_id: &AppId, stream: &RoomStream) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        let roster = tables.streams.entry((app_id.clone(), stream.room_id.clone())).or_default();
        if roster.iter().any(|s| s.user_id == stream.user_id) {
            return Err(StoreError::Conflict);
        }
        roster.push(stream.clone());
        Ok(())
    }
    async fn put_stream(&self, app_id: &AppId, stream: &RoomStream) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        let roster = tables.streams.entry((app_id.clone(), stream.room_id.clone())).or_default();
        roster.retain(|s| s.user_id != stream.user_id);
        roster.push(stream.clone());
        Ok(())
    }
    async fn delete_stream(&self, app_id: &AppId, room: &RoomId, user: &UserId) -> Result<bool, StoreError> {
        let mut tables = self.open()?;
        let Some(roster) = tables.streams.get_mut(&(app_id.clone(), room.clone())) else { return Ok(false) };
        let before = roster.len();
        roster.retain(|s| s.user_id != *user);
        Ok(roster.len() < before)
    }
    async fn delete_session_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        session: &MediaSession,
    ) -> Result<bool, StoreError> {
        let mut tables = self.open()?;
        let Some(roster) = tables.streams.get_mut(&(app_id.clone(), room.clone())) else { return Ok(false) };
        let before = roster.len();
        roster.retain(|s| !(s.user_id == *user && s.media_session.as_ref() == Some(session)));
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
}

#[async_trait]
impl JobStore for MemStore {
    async fn get_job(&self, app_id: &AppId, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.open()?.jobs.get(&(app_id.clone(), job_id.clone())).cloned())
    }
    async fn get_jobs(&self, jobs: &[(AppId, JobId)]) -> Result<Vec<JobRecord>, StoreError> {
        let tables = self.open()?;
        Ok(jobs.iter().filter_map(|key| tables.jobs.get(key)).cloned().collect())
    }
    async fn list_jobs(&self, app_id: &AppId, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let tables = self.open()?;
        let mut jobs: Vec<Job> = tables
            .jobs
            .values()
            .map(|record| &record.job)
            .filter(|job| job.app_id == *app_id && job.kind() == filter.kind)
            .filter(|job| filter.room_id.as_ref().is_none_or(|room| job.room_id == *room))
            .filter(|job| filter.state.is_none_or(|state| job.state == state))
            .cloned()
            .collect();
        jobs.sort_by(|a, b| b.create_time.cmp(&a.create_time).then_with(|| a.job_id.cmp(&b.job_id)));
        Ok(jobs)
    }
    async fn create_job(&self, job: &Job) -> Result<(), StoreError> {
        let mut tables = self.open()?;
        let key = (job.app_id.clone(), job.job_id.clone());
        if tables.jobs.contains_key(&key) {
            return Err(StoreError::Conflict);
        }
        tables.jobs.insert(key, JobRecord { version: 1, ..JobRecord::new(job.clone()) });
        Ok(())
    }
    async fn save_job(&self, record: &JobRecord) -> Result<(), StoreError> {
        let race = self.races.lock().unwrap().pop();
        let mut tables = self.open()?;
        let key = (record.job.app_id.clone(), record.job.job_id.clone());
        let stored = tables.jobs.get_mut(&key).ok_or(StoreError::Conflict)?;
        if let Some(race) = race {
            race(stored);
            stored.version += 1;
        }
        if stored.version != record.version {
            return Err(StoreError::Conflict);
        }
        *stored = JobRecord { version: record.version + 1, ..record.clone() };
        Ok(())
    }
    async fn delete_job(&self, app_id: &AppId, job_id: &JobId) -> Result<(), StoreError> {
        self.open()?.jobs.remove(&(app_id.clone(), job_id.clone()));
        Ok(())
    }
    async fn active_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.open()?.jobs.values().filter(|record| record.job.is_active()).cloned().collect())
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
