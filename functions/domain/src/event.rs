//! Recording events: what the customer's callback receives (seed 001's fields), recorded in
//! an outbox with a per-job sequence before they are queued for delivery.

use serde::{Deserialize, Serialize};

use crate::callback::EventType;
use crate::ids::{AppId, JobId, RoomId};
use crate::rule::RecordFormat;
use crate::time::Timestamp;

/// One event of a job, as stored and as POSTed to the callback URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordEvent {
    /// Unique id (the `webhook-id` of the delivery).
    pub event_id: String,
    /// Position among the job's events, from 1.
    pub sequence: u64,
    pub event_type: EventType,
    pub app_id: AppId,
    pub job_id: JobId,
    pub room_id: RoomId,
    pub stream_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_format: Option<RecordFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileFacts>,
    pub detail_message: String,
    pub create_time: Timestamp,
}

/// The file fields of a file event (seed 001); `download_url` and sizes only on completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_duration: Option<u64>,
    pub start_time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    pub width: u32,
    pub height: u32,
    pub obs_location: String,
    pub obs_bucket: String,
    pub obs_object: String,
}

impl RecordEvent {
    /// The JSON body a callback receives: the event with the file fields at the top level.
    pub fn callback_body(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(self).unwrap_or_default();
        if let Some(file) = body.as_object_mut().and_then(|o| o.remove("file")) {
            if let (Some(obj), Some(file)) = (body.as_object_mut(), file.as_object()) {
                obj.extend(file.clone());
            }
        }
        body
    }
}
