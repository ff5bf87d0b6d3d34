//! The store on DynamoDB. Each entity is one item: its key attributes, the attributes that
//! conditions and filters need (`version`, `state`, `room_id`, `job_type`, `join_seq`), and
//! the entity itself as JSON in `doc`. The README's "Table design" section lists the keys.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use roomrec_domain::app::App;
use roomrec_domain::callback::RecordCallback;
use roomrec_domain::ids::{AccountId, AppId, JobId, KeyId, RoomId, RuleId, UserId};
use roomrec_domain::job::Job;
use roomrec_domain::ports::{
    AppStore, CallbackStore, Credential, CredentialStore, JobFilter, JobStore, RoomStore, RuleStore, StoreError,
};
use roomrec_domain::publish::PublishSecret;
use roomrec_domain::record::{JobRecord, Lease};
use roomrec_domain::room::{MediaSession, Room, RoomStream};
use roomrec_domain::rule::RecordRule;
use roomrec_domain::time::Timestamp;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::Tables;

pub(crate) type Item = HashMap<String, AttributeValue>;

const DOC: &str = "doc";
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

/// The items of `table` at `keys` that exist (strongly consistent), in no particular order:
/// one BatchGetItem per hundred keys, asked again (after a growing pause, as AWS advises) for
/// any part DynamoDB leaves unprocessed.
pub(crate) async fn batch_get(client: &Client, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(BATCH_GET_MAX_KEYS) {
        let request = KeysAndAttributes::builder().set_keys(Some(chunk.to_vec())).consistent_read(true).build();
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

/// The attribute beside `doc` that holds a hook-registered stream's media session (the
/// condition of a `publish_done`'s delete), never part of the stream's JSON.
const MEDIA_SESSION: &str = "media_session";
/// The attribute beside `doc` that holds an app's publish secret, never part of its JSON.
const PUBLISH_SECRET: &str = "publish_secret";

fn stream_item(app_id: &AppId, stream: &RoomStream) -> Result<Item, StoreError> {
    let mut item = item(
        stream,
        &[
            ("room_key", s(rooms_key(app_id, &stream.room_id))),
            ("user_id", s(stream.user_id.as_str())),
            ("join_seq", n(stream.join_seq)),
        ],
    )?;
    if let Some(session) = &stream.media_session {
        item.insert(MEDIA_SESSION.to_owned(), s(session.as_str()));
    }
    Ok(item)
}

fn stream_from(item: &Item) -> Result<RoomStream, StoreError> {
    let mut stream: RoomStream = doc(item)?;
    let session = item.get(MEDIA_SESSION).and_then(|v| v.as_s().ok());
    stream.media_session = session.map(|text| MediaSession::parse(text).map_err(backend)).transpose()?;
    Ok(stream)
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
        match deleted {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(err) => Err(err),
        }
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

    fn job_item(record: &JobRecord, version: u64) -> Result<Item, StoreError> {
        let job = &record.job;
        let mut item = item(
            job,
            &[
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
        if let Some(lease) = &record.lease {
            item.insert("lease_owner".into(), s(lease.owner.as_str()));
            item.insert("lease_expires_ms".into(), n(lease.expires_at_ms));
            item.insert("lease_epoch".into(), n(lease.epoch));
        }
        if !record.open_uploads.is_empty() {
            item.insert("open_uploads".into(), s(serde_json::to_string(&record.open_uploads).map_err(backend)?));
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

    async fn list_apps(&self, account: &AccountId) -> Result<Vec<App>, StoreError> {
        let items = self.query(&self.tables.apps, Some(APPS_BY_ACCOUNT), "account_id", account.as_str()).await?;
        let mut apps = items.iter().map(app_from).collect::<Result<Vec<App>, _>>()?;
        apps.sort_by_key(|a| a.create_time);
        Ok(apps)
    }

    async fn put_app(&self, account: &AccountId, app: &App) -> Result<(), StoreError> {
        let mut item = item(app, &[("account_id", s(account.as_str())), ("app_id", s(app.app_id.as_str()))])?;
        if let Some(secret) = &app.publish_secret {
            item.insert(PUBLISH_SECRET.to_owned(), s(secret.stored()));
        }
        self.put(&self.tables.apps, item).await
    }

    async fn delete_app(&self, account: &AccountId, app_id: &AppId) -> Result<bool, StoreError> {
        let key = key(&[("app_id", app_id.as_str())]);
        self.delete_if(&self.tables.apps, key, "account_id = :account", (":account", s(account.as_str()))).await
    }
}

#[async_trait]
impl RuleStore for DynamoStore {
    async fn get_rule(&self, app_id: &AppId, rule_id: &RuleId) -> Result<Option<RecordRule>, StoreError> {
        let found =
            self.get(&self.tables.rules, key(&[("app_id", app_id.as_str()), ("rule_id", rule_id.as_str())])).await?;
        found.map(|i| doc(&i)).transpose()
    }

    async fn list_rules(&self, app_id: &AppId) -> Result<Vec<RecordRule>, StoreError> {
        let items = self.query(&self.tables.rules, None, "app_id", app_id.as_str()).await?;
        let mut rules = items.iter().map(doc).collect::<Result<Vec<RecordRule>, _>>()?;
        rules.sort_by_key(|r| r.create_time);
        Ok(rules)
    }

    async fn put_rule(&self, rule: &RecordRule) -> Result<(), StoreError> {
        let item = item(rule, &[("app_id", s(rule.app_id.as_str())), ("rule_id", s(rule.rule_id.as_str()))])?;
        self.put(&self.tables.rules, item).await
    }

    async fn delete_rule(&self, app_id: &AppId, rule_id: &RuleId) -> Result<bool, StoreError> {
        self.delete(&self.tables.rules, key(&[("app_id", app_id.as_str()), ("rule_id", rule_id.as_str())])).await
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

    async fn delete_callback(&self, app_id: &AppId) -> Result<bool, StoreError> {
        self.delete(&self.tables.callbacks, key(&[("app_id", app_id.as_str())])).await
    }
}

#[async_trait]
impl RoomStore for DynamoStore {
    async fn get_stream(&self, app_id: &AppId, room: &RoomId, user: &UserId) -> Result<Option<RoomStream>, StoreError> {
        let room_key = rooms_key(app_id, room);
        let found = self.get(&self.tables.rooms, key(&[("room_key", &room_key), ("user_id", user.as_str())])).await?;
        found.map(|i| stream_from(&i)).transpose()
    }

    async fn list_streams(&self, app_id: &AppId, room: &RoomId) -> Result<Vec<RoomStream>, StoreError> {
        let items = self.query(&self.tables.rooms, None, "room_key", &rooms_key(app_id, room)).await?;
        let is_stream = |i: &&Item| i.get("user_id").and_then(|v| v.as_s().ok()).is_some_and(|u| u != ROOM_ITEM);
        let mut streams = items.iter().filter(is_stream).map(stream_from).collect::<Result<Vec<RoomStream>, _>>()?;
        streams.sort_by(|a, b| (a.join_seq, &a.user_id).cmp(&(b.join_seq, &b.user_id)));
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

    async fn put_stream(&self, app_id: &AppId, stream: &RoomStream) -> Result<(), StoreError> {
        self.put(&self.tables.rooms, stream_item(app_id, stream)?).await
    }

    async fn delete_stream(&self, app_id: &AppId, room: &RoomId, user: &UserId) -> Result<bool, StoreError> {
        let room_key = rooms_key(app_id, room);
        self.delete(&self.tables.rooms, key(&[("room_key", &room_key), ("user_id", user.as_str())])).await
    }

    async fn delete_session_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        session: &MediaSession,
    ) -> Result<bool, StoreError> {
        let key = key(&[("room_key", &rooms_key(app_id, room)), ("user_id", user.as_str())]);
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
            .update_expression("SET create_time = if_not_exists(create_time, :now), last_join_seq = :seq")
            .expression_attribute_values(":now", s(now.to_string()))
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
}

#[async_trait]
impl JobStore for DynamoStore {
    async fn get_job(&self, app_id: &AppId, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let found =
            self.get(&self.tables.jobs, key(&[("app_id", app_id.as_str()), ("job_id", job_id.as_str())])).await?;
        found.map(|i| Self::job_from(&i)).transpose()
    }

    async fn get_jobs(&self, jobs: &[(AppId, JobId)]) -> Result<Vec<JobRecord>, StoreError> {
        let keys = jobs.iter().map(|(app, job)| key(&[("app_id", app.as_str()), ("job_id", job.as_str())])).collect();
        batch_get(&self.client, &self.tables.jobs, keys).await?.iter().map(Self::job_from).collect()
    }

    async fn list_jobs(&self, app_id: &AppId, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let items = self.query(&self.tables.jobs, None, "app_id", app_id.as_str()).await?;
        let wanted_type = filter.kind.as_str();
        let attr = |i: &Item, name: &str| i.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let mut jobs = items
            .iter()
            .filter(|i| attr(i, "job_type") == wanted_type)
            .filter(|i| filter.room_id.as_ref().is_none_or(|r| attr(i, "room_id") == r.as_str()))
            .filter(|i| filter.state.is_none_or(|st| attr(i, "state") == st.as_str()))
            .map(|item| Self::job_from(item).map(|record| record.job))
            .collect::<Result<Vec<Job>, _>>()?;
        jobs.sort_by(|a, b| b.create_time.cmp(&a.create_time).then_with(|| a.job_id.cmp(&b.job_id)));
        Ok(jobs)
    }

    async fn create_job(&self, job: &Job) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.jobs)
            .set_item(Some(Self::job_item(&JobRecord::new(job.clone()), 1)?))
            .condition_expression("attribute_not_exists(job_id)")
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()))?;
        Ok(())
    }

    async fn save_job(&self, record: &JobRecord) -> Result<(), StoreError> {
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
}
