//! The store on DynamoDB. Each entity is one item: its key attributes, the attributes that
//! conditions and filters need (`version`, `state`, `room_id`, `job_type`, `join_seq`), and
//! the entity itself as JSON in `doc`. The README's "Table design" section lists the keys.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Select};
use aws_sdk_dynamodb::Client;
use roomrec_domain::app::App;
use roomrec_domain::callback::RecordCallback;
use roomrec_domain::ids::{AccountId, AppId, JobId, KeyId, RoomId, UserId};
use roomrec_domain::job::{Job, JobKind, JobState, RecordFile};
use roomrec_domain::ports::{
    AppStore, CallbackStore, Credential, CredentialStore, JobCursor, JobFilter, JobPage, JobStore, PageRequest,
    QuotaStore, RoomJobs, RoomStore, StoreError, MAX_JOB_FILES,
};
use roomrec_domain::publish::PublishSecret;
use roomrec_domain::quota::QuotaSettings;
use roomrec_domain::record::{JobRecord, Lease};
use roomrec_domain::room::{MediaSession, Room, RoomStream, VideoType};
use roomrec_domain::time::Timestamp;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::Tables;

mod rules;
mod usage;

pub(crate) type Item = HashMap<String, AttributeValue>;

const DOC: &str = "doc";
/// What [`DynamoStore::job_from`] reads of a job's item, so reads of many jobs at once (a
/// worker's every second) leave out the index keys and the copies of the document's fields.
const JOB_ATTRIBUTES: [&str; 8] =
    [DOC, "version", "lease_owner", "lease_expires_ms", "lease_epoch", "open_uploads", "spent", JOB_ACCOUNT];
/// Most keys one BatchGetItem may ask for.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html>
const BATCH_GET_MAX_KEYS: usize = 100;
/// The apps table's index by owning account (template.yaml).
const APPS_BY_ACCOUNT: &str = "by_account";
/// The jobs table's sparse index of the jobs that have not ended (template.yaml): only their
/// items carry [`ACTIVE_SHARD`], spread over [`ACTIVE_SHARDS`] partitions.
const ACTIVE_JOBS_INDEX: &str = "active_jobs";
/// The attribute the active-jobs index is keyed by: the first hex digit of the job id.
const ACTIVE_SHARD: &str = "active_shard";
/// Every value of [`ACTIVE_SHARD`].
const ACTIVE_SHARDS: &str = "0123456789abcdef";
/// The jobs table's sparse index of each account's jobs that have not ended (template.yaml):
/// only their items carry [`ACTIVE_ACCOUNT`], so a quota check counts them with one query.
const ACCOUNT_JOBS_INDEX: &str = "active_by_account";
/// The attribute that index is keyed by: the owning account, while the job is active.
const ACTIVE_ACCOUNT: &str = "active_account";
/// The owning account of a job, kept on its item for good.
const JOB_ACCOUNT: &str = "account_id";
/// The rooms table's index of each app's rooms and streams (template.yaml), for deleting an app.
const ROOMS_BY_APP: &str = "by_app";

/// The accounts table's key of an account's own item (quotas) beside its credentials: no key
/// id contains '#'.
fn account_key(account: &AccountId) -> String {
    format!("account#{account}")
}

/// The jobs table's index of each room's jobs in each state (template.yaml): partition
/// [`ROOM_STATE`], sort [`CREATED`]; keys only, the items are then read from the table.
const JOBS_BY_ROOM: &str = "jobs_by_room";
/// The jobs table's index of each app's jobs in each state (template.yaml): partition
/// [`APP_STATE`], sort [`CREATED`]; keys only.
const JOBS_BY_APP: &str = "jobs_by_app";
/// `{app_id}#{job_type}#{room_id}#{state}`: a room's jobs of one kind in one state.
const ROOM_STATE: &str = "room_state";
/// `{app_id}#{job_type}#{state}`: an app's jobs of one kind in one state.
const APP_STATE: &str = "app_state";
/// `{create_time}#{job_id}`: creation order (the time is RFC 3339 to the second, which sorts
/// as it reads).
const CREATED: &str = "created";
/// Every job state; the indexes hold each in a partition of its own.
const STATES: [JobState; 5] =
    [JobState::Init, JobState::Running, JobState::Stopping, JobState::Stopped, JobState::Failed];
/// The states of jobs that have not ended.
const ACTIVE_STATES: [JobState; 3] = [JobState::Init, JobState::Running, JobState::Stopping];

/// The jobs-index sort key of the job created at `cursor`'s time with its id.
fn created(cursor: &JobCursor) -> String {
    format!("{}#{}", cursor.create_time, cursor.job_id)
}

/// A room's partition of the jobs-by-room index.
fn room_state(app_id: &AppId, kind: JobKind, room: &RoomId, state: JobState) -> String {
    format!("{app_id}#{}#{room}#{}", kind.as_str(), state.as_str())
}

/// An app's partition of the jobs-by-app index.
fn app_state(app_id: &AppId, kind: JobKind, state: JobState) -> String {
    format!("{app_id}#{}#{}", kind.as_str(), state.as_str())
}

/// A job's file items are a partition of their own, `app_id` = `{app_id}#{job_id}` (no app
/// id contains '#'), sorted `file#{start_time}#{hash}`: reading them costs what they do, not
/// what the app's other jobs do.
fn files_partition(app_id: &AppId, job_id: &JobId) -> String {
    format!("{app_id}#{job_id}")
}

/// The sort key of a file item: ordered by the file's start, unique by its object key
/// (hashed, as an object key may be as long as a sort key may be).
fn file_sort_key(file: &RecordFile) -> String {
    use sha2::Digest;
    let hash = hex::encode(&sha2::Sha256::digest(file.obs_object.as_bytes())[..8]);
    format!("file#{}#{hash}", file.start_time)
}

/// The active-jobs partition of `job_id`.
fn active_shard(job_id: &JobId) -> String {
    job_id.as_str().chars().next().unwrap_or('0').to_string()
}

/// Every entity store over the tables the template declares.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

pub(crate) fn backend<E: std::error::Error + Send + Sync + 'static>(err: E) -> StoreError {
    StoreError::Backend(Box::new(err))
}

/// Maps a failed conditional write to `Conflict`, anything else to `Backend`.
/// Whether a conditional write was made: `false` where its condition did not hold.
pub(crate) fn made<T>(written: Result<T, StoreError>) -> Result<bool, StoreError> {
    match written {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(err) => Err(err),
    }
}

pub(crate) fn write_error<E, R>(err: SdkError<E, R>, is_condition: impl Fn(&E) -> bool) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.as_service_error() {
        Some(e) if is_condition(e) => StoreError::Conflict,
        _ => backend(err),
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn item<T: Serialize>(value: &T, keys: &[(&str, AttributeValue)]) -> Result<Item, StoreError> {
    let mut item: Item = keys.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    item.insert(DOC.to_owned(), s(serde_json::to_string(value).map_err(backend)?));
    Ok(item)
}

pub(crate) fn doc<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let text = item.get(DOC).and_then(|v| v.as_s().ok()).ok_or_else(|| backend(MissingDoc))?;
    serde_json::from_str(text).map_err(backend)
}

fn number(item: &Item, name: &str) -> Result<u64, StoreError> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).ok_or_else(|| backend(MissingDoc))
}

/// The items of `table` at `keys` that exist (strongly consistent), in no particular order,
/// with only the `attributes` named (all when empty): one BatchGetItem per hundred keys, asked
/// again (after a growing pause, as AWS advises) for any part DynamoDB leaves unprocessed. A key
/// named twice is asked for once: DynamoDB refuses a request with duplicate keys (a listing
/// racing a job's state change names it twice).
pub(crate) async fn batch_get(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    attributes: &[&str],
) -> Result<Vec<Item>, StoreError> {
    let mut unique: Vec<Item> = Vec::with_capacity(keys.len());
    for key in keys {
        if !unique.contains(&key) {
            unique.push(key);
        }
    }
    let keys = unique;
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(BATCH_GET_MAX_KEYS) {
        let mut request = KeysAndAttributes::builder().set_keys(Some(chunk.to_vec())).consistent_read(true);
        if !attributes.is_empty() {
            // Through names, so no attribute can clash with one of DynamoDB's reserved words.
            let names: Vec<String> = (0..attributes.len()).map(|i| format!("#a{i}")).collect();
            request = request.projection_expression(names.join(", "));
            for (name, attribute) in names.into_iter().zip(attributes) {
                request = request.expression_attribute_names(name, *attribute);
            }
        }
        let request = request.build();
        let mut pending = Some(request.map_err(backend)?);
        let mut pause = Duration::from_millis(50);
        while let Some(request) = pending.take() {
            let out = client.batch_get_item().request_items(table, request).send().await.map_err(backend)?;
            found.extend(out.responses.unwrap_or_default().remove(table).unwrap_or_default());
            pending = out.unprocessed_keys.unwrap_or_default().remove(table).filter(|k| !k.keys.is_empty());
            if pending.is_some() {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
    Ok(found)
}

/// An item lacked an attribute every item of its table has.
#[derive(Debug, thiserror::Error)]
#[error("item lacks a required attribute")]
pub(crate) struct MissingDoc;

pub(crate) fn key(parts: &[(&str, &str)]) -> Item {
    parts.iter().map(|(k, v)| ((*k).to_owned(), s(*v))).collect()
}

fn rooms_key(app_id: &AppId, room: &RoomId) -> String {
    format!("{app_id}#{room}")
}

/// The sort key of a room's own item beside its streams (no user id contains '#').
const ROOM_ITEM: &str = "#room";

/// What follows the user id in a screen share's sort key (no user id contains '#').
const SUBSTREAM_SUFFIX: &str = "#SUBSTREAM";

/// The sort key of `user`'s stream of `video_type`: the user id for a camera (as every stream
/// was keyed before a participant could have two, so those items read as cameras), the user
/// id and `#SUBSTREAM` for a screen share.
fn stream_sort_key(user: &UserId, video_type: VideoType) -> String {
    match video_type {
        VideoType::Camerastream => user.as_str().to_owned(),
        VideoType::Substream => format!("{user}{SUBSTREAM_SUFFIX}"),
    }
}

/// The attribute beside `doc` that holds a hook-registered stream's media session (the
/// condition of a `publish_done`'s delete), never part of the stream's JSON.
const MEDIA_SESSION: &str = "media_session";
/// Beside it, when the media server last reported that session (RFC 3339).
const MEDIA_SEEN: &str = "media_seen";
/// The attribute beside `doc` that holds an app's publish secret, never part of its JSON.
const PUBLISH_SECRET: &str = "publish_secret";

fn stream_item(app_id: &AppId, stream: &RoomStream) -> Result<Item, StoreError> {
    let mut item = item(
        stream,
        &[
            ("room_key", s(rooms_key(app_id, &stream.room_id))),
            ("app_id", s(app_id.as_str())),
            ("user_id", s(stream_sort_key(&stream.user_id, stream.video_type))),
            ("join_seq", n(stream.join_seq)),
        ],
    )?;
    if let Some(session) = &stream.media_session {
        item.insert(MEDIA_SESSION.to_owned(), s(session.as_str()));
    }
    if let Some(seen) = &stream.media_seen {
        item.insert(MEDIA_SEEN.to_owned(), s(seen.to_string()));
    }
    Ok(item)
}

fn stream_from(item: &Item) -> Result<RoomStream, StoreError> {
    let mut stream: RoomStream = doc(item)?;
    // The key decides: an item keyed by the user alone is their camera, whatever an older
    // document said.
    let sort_key = item.get("user_id").and_then(|v| v.as_s().ok());
    stream.video_type = match sort_key.is_some_and(|k| k.ends_with(SUBSTREAM_SUFFIX)) {
        true => VideoType::Substream,
        false => VideoType::Camerastream,
    };
    let session = item.get(MEDIA_SESSION).and_then(|v| v.as_s().ok());
    stream.media_session = session.map(|text| MediaSession::parse(text).map_err(backend)).transpose()?;
    let seen = item.get(MEDIA_SEEN).and_then(|v| v.as_s().ok());
    stream.media_seen = seen.map(|text| Timestamp::parse(text).ok_or_else(|| backend(MissingDoc))).transpose()?;
    Ok(stream)
}

/// The item `app` of `account` is stored as; its publish secret outside `doc`, which
/// responses are made from.
fn app_item(account: &AccountId, app: &App) -> Result<Item, StoreError> {
    let mut item = item(app, &[("account_id", s(account.as_str())), ("app_id", s(app.app_id.as_str()))])?;
    if let Some(secret) = &app.publish_secret {
        item.insert(PUBLISH_SECRET.to_owned(), s(secret.stored()));
    }
    Ok(item)
}

fn app_from(item: &Item) -> Result<App, StoreError> {
    let mut app: App = doc(item)?;
    let secret = item.get(PUBLISH_SECRET).and_then(|v| v.as_s().ok());
    app.publish_secret =
        secret.map(|text| PublishSecret::from_stored(text).ok_or_else(|| backend(MissingDoc))).transpose()?;
    Ok(app)
}

fn room_from(room: &RoomId, item: &Item) -> Result<Room, StoreError> {
    let created = item.get("create_time").and_then(|v| v.as_s().ok()).ok_or_else(|| backend(MissingDoc))?;
    let create_time = serde_json::from_value(serde_json::Value::String(created.clone())).map_err(backend)?;
    let last_join_seq = item
        .get("last_join_seq")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| backend(MissingDoc))?;
    Ok(Room { room_id: room.clone(), create_time, last_join_seq })
}

impl DynamoStore {
    /// A store over `tables`.
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    async fn get(&self, table: &str, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self.client.get_item().table_name(table).set_key(Some(key)).consistent_read(true).send().await;
        Ok(out.map_err(backend)?.item)
    }

    async fn put(&self, table: &str, item: Item) -> Result<(), StoreError> {
        self.client.put_item().table_name(table).set_item(Some(item)).send().await.map_err(backend)?;
        Ok(())
    }

    /// Deletes an item; `true` if it existed.
    async fn delete(&self, table: &str, key: Item) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(table)
            .set_key(Some(key))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Sets one attribute of an app of `account` that still exists and meets `also` (a
    /// condition over `#attr`, or empty); `false` if it does not.
    async fn update_app_attribute(
        &self,
        account: &AccountId,
        app_id: &AppId,
        attribute: &str,
        value: AttributeValue,
        also: &str,
    ) -> Result<bool, StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.tables.apps)
            .set_key(Some(key(&[("app_id", app_id.as_str())])))
            .update_expression("SET #attr = :value")
            .condition_expression(format!("attribute_exists(app_id) AND account_id = :account{also}"))
            .expression_attribute_names("#attr", attribute)
            .expression_attribute_values(":value", value)
            .expression_attribute_values(":account", s(account.as_str()))
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()));
        made(written)
    }

    /// Deletes an item if `condition` (over one value, `name`) holds; `false` if it did not.
    async fn delete_if(
        &self,
        table: &str,
        key: Item,
        condition: &str,
        (name, value): (&str, AttributeValue),
    ) -> Result<bool, StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(table)
            .set_key(Some(key))
            .condition_expression(condition)
            .expression_attribute_values(name, value)
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()));
        made(deleted)
    }

    /// Replaces an item only if one with the key attribute `key_attr` is there; `false` if not.
    async fn put_if_exists(&self, table: &str, item: Item, key_attr: &str) -> Result<bool, StoreError> {
        let written = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(#key)")
            .expression_attribute_names("#key", key_attr)
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()));
        made(written)
    }

    /// Every item (of the table or `index`) whose partition key `pk_name` is `pk`, following
    /// pagination.
    async fn query(&self, table: &str, index: Option<&str>, pk_name: &str, pk: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take())
                // Global secondary indexes cannot be read consistently.
                .consistent_read(index.is_none())
                .send()
                .await
                .map_err(backend)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// The item a job is stored as: never with its files, which are items of their own.
    /// Public for tools that seed the table in bulk (the growth benchmark).
    pub fn job_item(record: &JobRecord, version: u64) -> Result<Item, StoreError> {
        let job = &Job { record_files: None, recording_files: None, ..record.job.clone() };
        let mut item = item(
            job,
            &[
                (ROOM_STATE, s(room_state(&job.app_id, job.kind(), &job.room_id, job.state))),
                (APP_STATE, s(app_state(&job.app_id, job.kind(), job.state))),
                (CREATED, s(created(&JobCursor::after(job)))),
                ("app_id", s(job.app_id.as_str())),
                ("job_id", s(job.job_id.as_str())),
                ("version", n(version)),
                ("state", s(job.state.as_str())),
                ("room_id", s(job.room_id.as_str())),
                ("job_type", s(job.kind().as_str())),
                ("create_time", s(job.create_time.to_string())),
            ],
        )?;
        if job.is_active() {
            item.insert(ACTIVE_SHARD.into(), s(active_shard(&job.job_id)));
        }
        if let Some(account) = &record.account {
            item.insert(JOB_ACCOUNT.into(), s(account.as_str()));
            if job.is_active() {
                item.insert(ACTIVE_ACCOUNT.into(), s(account.as_str()));
            }
        }
        if let Some(lease) = &record.lease {
            item.insert("lease_owner".into(), s(lease.owner.as_str()));
            item.insert("lease_expires_ms".into(), n(lease.expires_at_ms));
            item.insert("lease_epoch".into(), n(lease.epoch));
        }
        if !record.open_uploads.is_empty() {
            item.insert("open_uploads".into(), s(serde_json::to_string(&record.open_uploads).map_err(backend)?));
        }
        if !record.spent.is_empty() {
            item.insert("spent".into(), s(serde_json::to_string(&record.spent).map_err(backend)?));
        }
        Ok(item)
    }

    fn job_from(item: &Item) -> Result<JobRecord, StoreError> {
        let mut record = JobRecord::new(doc(item)?);
        record.version = number(item, "version")?;
        let owner = item.get("lease_owner").and_then(|v| v.as_s().ok());
        let expires = item.get("lease_expires_ms").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
        let epoch = item.get("lease_epoch").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        record.lease =
            owner.zip(expires).map(|(owner, expires_at_ms)| Lease { owner: owner.clone(), expires_at_ms, epoch });
        if let Some(uploads) = item.get("open_uploads").and_then(|v| v.as_s().ok()) {
            record.open_uploads = serde_json::from_str(uploads).map_err(backend)?;
        }
        if let Some(spent) = item.get("spent").and_then(|v| v.as_s().ok()) {
            record.spent = serde_json::from_str(spent).map_err(backend)?;
        }
        let account = item.get(JOB_ACCOUNT).and_then(|v| v.as_s().ok());
        record.account = account.map(|a| AccountId::try_from(a.as_str())).transpose().map_err(backend)?;
        Ok(record)
    }
}

#[async_trait]
impl CredentialStore for DynamoStore {
    async fn get_credential(&self, key_id: &KeyId) -> Result<Option<Credential>, StoreError> {
        let found = self.get(&self.tables.accounts, key(&[("key_id", key_id.as_str())])).await?;
        found.map(|i| doc(&i)).transpose()
    }

    async fn create_credential(&self, credential: &Credential) -> Result<(), StoreError> {
        let item = item(credential, &[("key_id", s(credential.key_id.as_str()))])?;
        self.client
            .put_item()
            .table_name(&self.tables.accounts)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(key_id)")
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()))?;
        Ok(())
    }

    async fn delete_credential(&self, key_id: &KeyId) -> Result<(), StoreError> {
        self.delete(&self.tables.accounts, key(&[("key_id", key_id.as_str())])).await?;
        Ok(())
    }
}

#[async_trait]
impl AppStore for DynamoStore {
    async fn get_app(&self, account: &AccountId, app_id: &AppId) -> Result<Option<App>, StoreError> {
        let found = self.get(&self.tables.apps, key(&[("app_id", app_id.as_str())])).await?;
        let owned = found.filter(|i| i.get("account_id").and_then(|v| v.as_s().ok()) == Some(&account.to_string()));
        owned.map(|i| app_from(&i)).transpose()
    }

    async fn find_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError> {
        let found = self.get(&self.tables.apps, key(&[("app_id", app_id.as_str())])).await?;
        found.map(|i| app_from(&i)).transpose()
    }

    async fn app_owner(&self, app_id: &AppId) -> Result<Option<AccountId>, StoreError> {
        let found = self.get(&self.tables.apps, key(&[("app_id", app_id.as_str())])).await?;
        let owner = found.as_ref().and_then(|i| i.get("account_id")).and_then(|v| v.as_s().ok());
        owner.map(|id| AccountId::try_from(id.as_str()).map_err(|e| StoreError::Backend(Box::new(e)))).transpose()
    }

    async fn list_apps(&self, account: &AccountId) -> Result<Vec<App>, StoreError> {
        let items = self.query(&self.tables.apps, Some(APPS_BY_ACCOUNT), "account_id", account.as_str()).await?;
        let mut apps = items.iter().map(app_from).collect::<Result<Vec<App>, _>>()?;
        apps.sort_by_key(|a| a.create_time);
        Ok(apps)
    }

    async fn put_app(&self, account: &AccountId, app: &App) -> Result<(), StoreError> {
        self.put(&self.tables.apps, app_item(account, app)?).await
    }

    async fn update_app(&self, account: &AccountId, app: &App) -> Result<bool, StoreError> {
        let doc = s(serde_json::to_string(app).map_err(backend)?);
        self.update_app_attribute(account, &app.app_id, DOC, doc, "").await
    }

    async fn set_publish_secret(
        &self,
        account: &AccountId,
        app_id: &AppId,
        secret: &PublishSecret,
        only_if_none: bool,
    ) -> Result<bool, StoreError> {
        let condition = if only_if_none { " AND attribute_not_exists(#attr)" } else { "" };
        self.update_app_attribute(account, app_id, PUBLISH_SECRET, s(secret.stored()), condition).await
    }

    async fn delete_app(&self, account: &AccountId, app_id: &AppId) -> Result<bool, StoreError> {
        let key = key(&[("app_id", app_id.as_str())]);
        self.delete_if(&self.tables.apps, key, "account_id = :account", (":account", s(account.as_str()))).await
    }
}

#[async_trait]
impl CallbackStore for DynamoStore {
    async fn get_callback(&self, app_id: &AppId) -> Result<Option<RecordCallback>, StoreError> {
        let found = self.get(&self.tables.callbacks, key(&[("app_id", app_id.as_str())])).await?;
        found.map(|i| doc(&i)).transpose()
    }

    async fn put_callback(&self, app_id: &AppId, callback: &RecordCallback) -> Result<(), StoreError> {
        self.put(&self.tables.callbacks, item(callback, &[("app_id", s(app_id.as_str()))])?).await
    }

    async fn update_callback(&self, app_id: &AppId, callback: &RecordCallback) -> Result<bool, StoreError> {
        let item = item(callback, &[("app_id", s(app_id.as_str()))])?;
        self.put_if_exists(&self.tables.callbacks, item, "app_id").await
    }

    async fn delete_callback(&self, app_id: &AppId) -> Result<bool, StoreError> {
        self.delete(&self.tables.callbacks, key(&[("app_id", app_id.as_str())])).await
    }
}

#[async_trait]
impl RoomStore for DynamoStore {
    async fn get_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        video_type: VideoType,
    ) -> Result<Option<RoomStream>, StoreError> {
        let (room_key, sort_key) = (rooms_key(app_id, room), stream_sort_key(user, video_type));
        let found = self.get(&self.tables.rooms, key(&[("room_key", &room_key), ("user_id", &sort_key)])).await?;
        found.map(|i| stream_from(&i)).transpose()
    }

    async fn list_streams(&self, app_id: &AppId, room: &RoomId) -> Result<Vec<RoomStream>, StoreError> {
        let items = self.query(&self.tables.rooms, None, "room_key", &rooms_key(app_id, room)).await?;
        let is_stream = |i: &&Item| i.get("user_id").and_then(|v| v.as_s().ok()).is_some_and(|u| u != ROOM_ITEM);
        let mut streams = items.iter().filter(is_stream).map(stream_from).collect::<Result<Vec<RoomStream>, _>>()?;
        streams.sort_by(|a, b| a.roster_order().cmp(&b.roster_order()));
        Ok(streams)
    }

    async fn create_stream(&self, app_id: &AppId, stream: &RoomStream) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.rooms)
            .set_item(Some(stream_item(app_id, stream)?))
            .condition_expression("attribute_not_exists(user_id)")
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()))?;
        Ok(())
    }

    async fn update_stream(&self, app_id: &AppId, stream: &RoomStream) -> Result<bool, StoreError> {
        self.put_if_exists(&self.tables.rooms, stream_item(app_id, stream)?, "user_id").await
    }

    async fn delete_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        video_type: VideoType,
    ) -> Result<bool, StoreError> {
        let (room_key, sort_key) = (rooms_key(app_id, room), stream_sort_key(user, video_type));
        self.delete(&self.tables.rooms, key(&[("room_key", &room_key), ("user_id", &sort_key)])).await
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
        let sort_key = stream_sort_key(user, video_type);
        let touched = self
            .client
            .update_item()
            .table_name(&self.tables.rooms)
            .set_key(Some(key(&[("room_key", &rooms_key(app_id, room)), ("user_id", &sort_key)])))
            .update_expression("SET #seen = :seen")
            .condition_expression("#session = :session")
            .expression_attribute_names("#seen", MEDIA_SEEN)
            .expression_attribute_names("#session", MEDIA_SESSION)
            .expression_attribute_values(":seen", s(seen.to_string()))
            .expression_attribute_values(":session", s(session.as_str()))
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()));
        made(touched)
    }

    async fn delete_session_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        video_type: VideoType,
        session: &MediaSession,
    ) -> Result<bool, StoreError> {
        let sort_key = stream_sort_key(user, video_type);
        let key = key(&[("room_key", &rooms_key(app_id, room)), ("user_id", &sort_key)]);
        self.delete_if(&self.tables.rooms, key, "media_session = :session", (":session", s(session.as_str()))).await
    }

    async fn open_room(
        &self,
        app_id: &AppId,
        room: &RoomId,
        join_seq: i64,
        now: Timestamp,
    ) -> Result<Room, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.rooms)
            .set_key(Some(key(&[("room_key", &rooms_key(app_id, room)), ("user_id", ROOM_ITEM)])))
            .update_expression(
                "SET create_time = if_not_exists(create_time, :now), last_join_seq = :seq, app_id = :app",
            )
            .expression_attribute_values(":now", s(now.to_string()))
            .expression_attribute_values(":app", s(app_id.as_str()))
            .expression_attribute_values(":seq", n(join_seq))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(backend)?;
        room_from(room, &out.attributes.unwrap_or_default())
    }

    async fn get_room(&self, app_id: &AppId, room: &RoomId) -> Result<Option<Room>, StoreError> {
        let found = self
            .get(&self.tables.rooms, key(&[("room_key", &rooms_key(app_id, room)), ("user_id", ROOM_ITEM)]))
            .await?;
        found.map(|i| room_from(room, &i)).transpose()
    }

    async fn close_room(&self, app_id: &AppId, room: &Room) -> Result<bool, StoreError> {
        let key = key(&[("room_key", &rooms_key(app_id, &room.room_id)), ("user_id", ROOM_ITEM)]);
        self.delete_if(&self.tables.rooms, key, "last_join_seq = :seq", (":seq", n(room.last_join_seq))).await
    }

    async fn delete_app_rooms(&self, app_id: &AppId) -> Result<(), StoreError> {
        // The index holds the keys only; it may lag a join by a moment (the app is already
        // gone by then, so nothing joins it any more).
        for item in self.query(&self.tables.rooms, Some(ROOMS_BY_APP), "app_id", app_id.as_str()).await? {
            let attr =
                |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().ok_or_else(|| backend(MissingDoc));
            let (room_key, user_id) = (attr("room_key")?, attr("user_id")?);
            self.delete(&self.tables.rooms, key(&[("room_key", &room_key), ("user_id", &user_id)])).await?;
        }
        Ok(())
    }
}

/// Which sort keys of one state's range of a jobs index to read.
enum Range {
    /// All of the state's.
    All,
    /// Those before the cursor, newest first (the next page).
    Before(JobCursor),
    /// Those at or after a creation time.
    Since(roomrec_domain::time::Timestamp),
}

impl DynamoStore {
    /// Up to `max` entries (keys) of `index` in partition `pk` within `range`, newest first,
    /// following DynamoDB's pages.
    async fn index_range(
        &self,
        (index, pk_name, pk): (&str, &str, String),
        range: &Range,
        max: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let (condition, bound) = match range {
            Range::All => ("#pk = :pk", None),
            Range::Before(cursor) => ("#pk = :pk AND #sk < :bound", Some(created(cursor))),
            Range::Since(time) => ("#pk = :pk AND #sk >= :bound", Some(time.to_string())),
        };
        let mut entries = Vec::new();
        let mut start: Option<Item> = None;
        while entries.len() < max {
            let limit = i32::try_from(max - entries.len()).unwrap_or(i32::MAX);
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.jobs)
                .index_name(index)
                .key_condition_expression(condition)
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_values(":pk", s(pk.as_str()))
                .scan_index_forward(false)
                .limit(limit)
                .set_exclusive_start_key(start.take());
            if let Some(bound) = &bound {
                query =
                    query.expression_attribute_names("#sk", CREATED).expression_attribute_values(":bound", s(bound));
            }
            let out = query.send().await.map_err(backend)?;
            entries.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        entries.truncate(max);
        Ok(entries)
    }

    /// The jobs the index `entries` name, read whole from the table (strongly consistent) and
    /// kept in the entries' order; a job deleted since is left out.
    async fn jobs_of(&self, entries: &[Item]) -> Result<Vec<Job>, StoreError> {
        let key_of = |i: &Item| Some((i.get("app_id")?.as_s().ok()?.clone(), i.get("job_id")?.as_s().ok()?.clone()));
        let keys: Vec<(String, String)> = entries.iter().filter_map(key_of).collect();
        let requests = keys.iter().map(|(app, job)| key(&[("app_id", app), ("job_id", job)])).collect();
        let mut found: HashMap<String, Job> = HashMap::new();
        for item in batch_get(&self.client, &self.tables.jobs, requests, &JOB_ATTRIBUTES).await? {
            let job = Self::job_from(&item)?.job;
            found.insert(job.job_id.to_string(), job);
        }
        Ok(keys.iter().filter_map(|(_, job)| found.remove(job)).collect())
    }

    /// The job's file items, oldest first, at most [`MAX_JOB_FILES`].
    async fn files(&self, app_id: &AppId, job_id: &JobId) -> Result<Vec<RecordFile>, StoreError> {
        let mut files = Vec::new();
        let mut start: Option<Item> = None;
        while files.len() < MAX_JOB_FILES {
            let out = self
                .client
                .query()
                .table_name(&self.tables.jobs)
                .key_condition_expression("app_id = :files")
                .expression_attribute_values(":files", s(files_partition(app_id, job_id)))
                .limit(i32::try_from(MAX_JOB_FILES - files.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .consistent_read(true)
                .send()
                .await
                .map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                files.push(doc(&item)?);
            }
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        Ok(files)
    }

    /// The index and partition a listing of `filter` reads for `state`.
    fn listing_partition(app_id: &AppId, filter: &JobFilter, state: JobState) -> (&'static str, &'static str, String) {
        match &filter.room_id {
            Some(room) => (JOBS_BY_ROOM, ROOM_STATE, room_state(app_id, filter.kind, room, state)),
            None => (JOBS_BY_APP, APP_STATE, app_state(app_id, filter.kind, state)),
        }
    }
}

/// An index entry's sort key, `{create_time}#{job_id}`: newest first sorts it descending.
fn entry_time(entry: &Item) -> &str {
    entry.get(CREATED).and_then(|v| v.as_s().ok()).map_or("", String::as_str)
}

#[async_trait]
impl JobStore for DynamoStore {
    async fn get_job(&self, app_id: &AppId, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let found =
            self.get(&self.tables.jobs, key(&[("app_id", app_id.as_str()), ("job_id", job_id.as_str())])).await?;
        let Some(mut record) = found.map(|i| Self::job_from(&i)).transpose()? else { return Ok(None) };
        let files = self.files(app_id, job_id).await?;
        record.job.record_files = (!files.is_empty()).then_some(files);
        Ok(Some(record))
    }

    async fn get_jobs(&self, jobs: &[(AppId, JobId)]) -> Result<Vec<JobRecord>, StoreError> {
        let keys = jobs.iter().map(|(app, job)| key(&[("app_id", app.as_str()), ("job_id", job.as_str())])).collect();
        batch_get(&self.client, &self.tables.jobs, keys, &JOB_ATTRIBUTES).await?.iter().map(Self::job_from).collect()
    }

    async fn list_jobs(&self, app_id: &AppId, filter: &JobFilter, page: &PageRequest) -> Result<JobPage, StoreError> {
        let range = page.after.clone().map_or(Range::All, Range::Before);
        // Each state's newest offset + limit + 1 entries hold the page and say if there is more.
        let wanted = page.offset + page.limit + 1;
        let mut entries = Vec::new();
        for state in filter.state.map_or(STATES.to_vec(), |state| vec![state]) {
            entries.extend(self.index_range(Self::listing_partition(app_id, filter, state), &range, wanted).await?);
        }
        entries.sort_by(|a, b| entry_time(b).cmp(entry_time(a)));
        let more = entries.len() > page.offset + page.limit;
        let shown: Vec<Item> = entries.into_iter().skip(page.offset).take(page.limit).collect();
        let next = more.then(|| shown.last().map(entry_time)).flatten().and_then(|last| {
            let (time, job_id) = last.split_once('#')?;
            let time = serde_json::from_value(serde_json::Value::String(time.to_owned())).ok()?;
            Some(JobCursor { create_time: time, job_id: JobId::parse(job_id)? })
        });
        // The index lags the table a moment; the items read now say the state.
        let mut jobs = self.jobs_of(&shown).await?;
        jobs.retain(|job| filter.state.is_none_or(|state| job.state == state));
        Ok(JobPage { jobs, next })
    }

    async fn room_jobs(
        &self,
        app_id: &AppId,
        kind: JobKind,
        room: &RoomId,
        which: RoomJobs,
    ) -> Result<Vec<Job>, StoreError> {
        let (states, range) = match which {
            RoomJobs::Active => (&ACTIVE_STATES[..], Range::All),
            RoomJobs::Since(time) => (&STATES[..], Range::Since(time)),
        };
        let mut entries = Vec::new();
        for &state in states {
            let partition = (JOBS_BY_ROOM, ROOM_STATE, room_state(app_id, kind, room, state));
            entries.extend(self.index_range(partition, &range, usize::MAX).await?);
        }
        let mut jobs = self.jobs_of(&entries).await?;
        jobs.retain(|job| match which {
            RoomJobs::Active => job.is_active(),
            RoomJobs::Since(time) => job.create_time >= time,
        });
        Ok(jobs)
    }

    async fn create_job(&self, account: &AccountId, job: &Job) -> Result<(), StoreError> {
        let record = JobRecord { account: Some(account.clone()), ..JobRecord::new(job.clone()) };
        self.client
            .put_item()
            .table_name(&self.tables.jobs)
            .set_item(Some(Self::job_item(&record, 1)?))
            .condition_expression("attribute_not_exists(job_id)")
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()))?;
        Ok(())
    }

    async fn save_job(&self, record: &JobRecord) -> Result<(), StoreError> {
        let (app_id, job_id) = (&record.job.app_id, &record.job.job_id);
        for file in &record.new_files {
            let keys = [("app_id", s(files_partition(app_id, job_id))), ("job_id", s(file_sort_key(file)))];
            self.put(&self.tables.jobs, item(file, &keys)?).await?;
        }
        self.client
            .put_item()
            .table_name(&self.tables.jobs)
            .set_item(Some(Self::job_item(record, record.version + 1)?))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", n(record.version))
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()))?;
        Ok(())
    }

    async fn delete_job(&self, app_id: &AppId, job_id: &JobId) -> Result<(), StoreError> {
        self.delete(&self.tables.jobs, key(&[("app_id", app_id.as_str()), ("job_id", job_id.as_str())])).await?;
        Ok(())
    }

    async fn active_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut jobs = Vec::new();
        for shard in ACTIVE_SHARDS.chars() {
            let items =
                self.query(&self.tables.jobs, Some(ACTIVE_JOBS_INDEX), ACTIVE_SHARD, &shard.to_string()).await?;
            for item in &items {
                jobs.push(Self::job_from(item)?);
            }
        }
        Ok(jobs)
    }

    async fn count_account_jobs(&self, account: &AccountId) -> Result<u64, StoreError> {
        let mut count = 0;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.jobs)
                .index_name(ACCOUNT_JOBS_INDEX)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", ACTIVE_ACCOUNT)
                .expression_attribute_values(":pk", s(account.as_str()))
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            count += u64::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(count),
            }
        }
    }

    async fn account_jobs(&self, account: &AccountId) -> Result<Vec<Job>, StoreError> {
        let items = self.query(&self.tables.jobs, Some(ACCOUNT_JOBS_INDEX), ACTIVE_ACCOUNT, account.as_str()).await?;
        items.iter().map(|item| Self::job_from(item).map(|record| record.job)).collect()
    }
}

#[async_trait]
impl QuotaStore for DynamoStore {
    async fn get_quotas(&self, account: &AccountId) -> Result<QuotaSettings, StoreError> {
        let found = self.get(&self.tables.accounts, key(&[("key_id", &account_key(account))])).await?;
        Ok(found.map(|i| doc(&i)).transpose()?.unwrap_or_default())
    }

    async fn put_quotas(&self, account: &AccountId, quotas: &QuotaSettings) -> Result<(), StoreError> {
        self.put(&self.tables.accounts, item(quotas, &[("key_id", s(account_key(account)))])?).await
    }
}

#[cfg(test)]
mod tests {
    use roomrec_domain::rule::RecordFormat;
    use roomrec_domain::testing::{now, open_upload, random};
    use roomrec_domain::url::StreamUrl;
    use roomrec_domain::usage::Spent;

    use super::*;

    fn stream(video_type: VideoType) -> RoomStream {
        RoomStream {
            room_id: RoomId::try_from("room001").unwrap(),
            user_id: UserId::try_from("u1").unwrap(),
            url: StreamUrl::parse("rtmp://media.example.com/live/u1", "url").unwrap(),
            video_type,
            has_audio: true,
            has_video: true,
            join_time: now(),
            join_seq: 1,
            update_time: now(),
            media_session: None,
            media_seen: None,
        }
    }

    #[test]
    fn a_camera_is_keyed_by_its_user_and_a_screen_share_beside_it() {
        let app = AppId::parse("5ff9701f2346968bb306cb43").unwrap();
        for (video_type, sort_key) in [(VideoType::Camerastream, "u1"), (VideoType::Substream, "u1#SUBSTREAM")] {
            let item = stream_item(&app, &stream(video_type)).unwrap();
            assert_eq!(item["user_id"].as_s().unwrap(), sort_key);
            assert_eq!(stream_from(&item).unwrap(), stream(video_type));
        }
    }

    #[test]
    fn a_job_read_with_only_its_projected_attributes_is_the_job_read_whole() {
        let body =
            r#"{"room_id":"r","user_id":"u","record_param":{"record_rule_id":"5d0ec2c53a2c15625017adb8bbbcd9ab"}}"#;
        let app = AppId::generate(random());
        let job = Job::individual(app, serde_json::from_str(body).unwrap(), random(), now()).unwrap();
        let mut record = JobRecord { account: Some(AccountId::try_from("acct").unwrap()), ..JobRecord::new(job) };
        record.claim("w1", chrono::Utc::now(), Duration::from_secs(30)).unwrap();
        record.open_uploads.push(open_upload(RecordFormat::Mp4, "k.mp4", 1));
        record.spend(1, Spent { cpu_seconds: 2.0, mixed_pane_seconds: 0.0 });
        let whole = DynamoStore::job_item(&record, 7).unwrap();
        let projected: Item = whole
            .iter()
            .filter(|(k, _)| JOB_ATTRIBUTES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(projected.len() < whole.len());
        let (whole, projected) = (DynamoStore::job_from(&whole).unwrap(), DynamoStore::job_from(&projected).unwrap());
        assert_eq!(serde_json::to_value(&projected.job).unwrap(), serde_json::to_value(&whole.job).unwrap());
        assert_eq!((projected.version, &projected.lease, &projected.account), (7, &whole.lease, &record.account));
        assert_eq!((&projected.open_uploads, &projected.spent), (&record.open_uploads, &record.spent));
    }

    #[test]
    fn an_item_stored_before_screen_shares_had_their_own_key_reads_as_the_users_camera() {
        // Then a stream was keyed by its user alone, whatever video_type its document said.
        let app = AppId::parse("5ff9701f2346968bb306cb43").unwrap();
        let mut legacy = stream_item(&app, &stream(VideoType::Substream)).unwrap();
        legacy.insert("user_id".to_owned(), s("u1"));
        assert_eq!(stream_from(&legacy).unwrap().video_type, VideoType::Camerastream);
    }
}
