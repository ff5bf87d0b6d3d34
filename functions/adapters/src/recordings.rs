//! Jocloud reservations and recordings on DynamoDB: one table keyed by `app_id` and
//! `item_key`, holding `resid#<resid>` (a reservation; `expires_at` is the table's TTL
//! attribute), `recordid#<recordid>` (a recording) and `open#<room_id>#<recordid>` (an
//! open source-stream recording of a room, for the join that adds a participant).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use roomrec_domain::ids::{AppId, RecordId, ResId, RoomId};
use roomrec_domain::jocloud::{Recording, Reservation};
use roomrec_domain::ports::{RecordingStore, StoreError};

use crate::dynamo::{backend, doc, item, key, n, s, write_error, Item, MissingDoc};

/// [`RecordingStore`] over the template's Jocloud table.
#[derive(Debug, Clone)]
pub struct DynamoRecordingStore {
    client: Client,
    table: String,
}

fn reservation_key(resid: &ResId) -> String {
    format!("resid#{resid}")
}

fn recording_key(recordid: &RecordId) -> String {
    format!("recordid#{recordid}")
}

fn open_prefix(room: &RoomId) -> String {
    // Room ids contain no '#', so one room's prefix is never another's.
    format!("open#{room}#")
}

impl DynamoRecordingStore {
    /// A store over `table`.
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    async fn get(&self, app_id: &AppId, item_key: &str) -> Result<Option<Item>, StoreError> {
        let key = key(&[("app_id", app_id.as_str()), ("item_key", item_key)]);
        let out = self.client.get_item().table_name(&self.table).set_key(Some(key)).consistent_read(true).send().await;
        Ok(out.map_err(backend)?.item)
    }
}

#[async_trait]
impl RecordingStore for DynamoRecordingStore {
    async fn put_reservation(&self, reservation: &Reservation) -> Result<(), StoreError> {
        let item = item(
            reservation,
            &[
                ("app_id", s(reservation.app_id.as_str())),
                ("item_key", s(reservation_key(&reservation.resid))),
                ("expires_at", n(reservation.expires_at)),
            ],
        )?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(item_key)")
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()))?;
        Ok(())
    }

    async fn get_reservation(&self, app_id: &AppId, resid: &ResId) -> Result<Option<Reservation>, StoreError> {
        let Some(found) = self.get(app_id, &reservation_key(resid)).await? else { return Ok(None) };
        let mut reservation: Reservation = doc(&found)?;
        // The attributes decide (the conditional write reads them, and TTL is one of them).
        reservation.expires_at = found
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| backend(MissingDoc))?;
        reservation.used_by = found.get("used_by").and_then(|v| v.as_s().ok()).and_then(|v| RecordId::parse(v));
        Ok(Some(reservation))
    }

    async fn consume_reservation(
        &self,
        app_id: &AppId,
        resid: &ResId,
        record_id: &RecordId,
        now_secs: i64,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&[("app_id", app_id.as_str()), ("item_key", &reservation_key(resid))])))
            .update_expression("SET used_by = :record, used_at = :now")
            .condition_expression("attribute_exists(item_key) AND attribute_not_exists(used_by) AND expires_at > :now")
            .expression_attribute_values(":record", s(record_id.as_str()))
            .expression_attribute_values(":now", n(now_secs))
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()))?;
        Ok(())
    }

    async fn put_recording(&self, recording: &Recording) -> Result<(), StoreError> {
        let keys = [
            ("app_id", s(recording.app_id.as_str())),
            ("item_key", s(recording_key(&recording.recordid))),
            ("room_id", s(recording.room_id.as_str())),
        ];
        let item = item(recording, &keys)?;
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(backend)?;
        let pointer_key = format!("{}{}", open_prefix(&recording.room_id), recording.recordid);
        let pointer = [
            ("app_id".to_owned(), s(recording.app_id.as_str())),
            ("item_key".to_owned(), s(pointer_key.as_str())),
            ("recordid".to_owned(), s(recording.recordid.as_str())),
        ];
        if recording.is_open_source() {
            let pointer: Item = pointer.into_iter().collect();
            self.client.put_item().table_name(&self.table).set_item(Some(pointer)).send().await.map_err(backend)?;
        } else {
            let key = key(&[("app_id", recording.app_id.as_str()), ("item_key", &pointer_key)]);
            self.client.delete_item().table_name(&self.table).set_key(Some(key)).send().await.map_err(backend)?;
        }
        Ok(())
    }

    async fn get_recording(&self, app_id: &AppId, record_id: &RecordId) -> Result<Option<Recording>, StoreError> {
        let found = self.get(app_id, &recording_key(record_id)).await?;
        found.map(|i| doc(&i)).transpose()
    }

    async fn open_recordings(&self, app_id: &AppId, room: &RoomId) -> Result<Vec<Recording>, StoreError> {
        let mut pointers = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("app_id = :app AND begins_with(item_key, :prefix)")
                .expression_attribute_values(":app", s(app_id.as_str()))
                .expression_attribute_values(":prefix", AttributeValue::S(open_prefix(room)))
                .set_exclusive_start_key(start.take())
                .consistent_read(true)
                .send()
                .await
                .map_err(backend)?;
            pointers.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        let mut open = Vec::new();
        for pointer in pointers {
            let Some(id) = pointer.get("recordid").and_then(|v| v.as_s().ok()).and_then(|v| RecordId::parse(v)) else {
                continue;
            };
            // A pointer outlives its recording's end only between two writes: check.
            if let Some(recording) = self.get_recording(app_id, &id).await?.filter(Recording::is_open_source) {
                open.push(recording);
            }
        }
        Ok(open)
    }
}
