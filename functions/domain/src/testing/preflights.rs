//! Preflights kept in memory, and the probe messages sent for them; a test may stand in for
//! the worker by probing every stream as soon as a message is sent.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{QueueError, StoreError};
use crate::ids::AppId;
use crate::ports::{PreflightStore, ProbeQueue};
use crate::preflight::{PreflightId, PreflightRecord, ProbeMessage, StreamFacts};

/// What a stand-in worker makes of each stream it probes.
type Probe = Box<dyn Fn(StreamFacts) -> StreamFacts + Send + Sync>;

/// [`PreflightStore`] and [`ProbeQueue`] in memory.
#[derive(Default)]
pub struct MemPreflights {
    records: Mutex<HashMap<(AppId, String), PreflightRecord>>,
    sent: Mutex<Vec<ProbeMessage>>,
    worker: Option<Probe>,
}

impl MemPreflights {
    /// Preflights whose probe messages are answered at once, each stream as `probe` says.
    pub fn probing(probe: impl Fn(StreamFacts) -> StreamFacts + Send + Sync + 'static) -> Self {
        Self { worker: Some(Box::new(probe)), ..Self::default() }
    }

    /// The probe messages sent so far.
    pub fn sent(&self) -> Vec<ProbeMessage> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl PreflightStore for MemPreflights {
    async fn put_preflight(&self, record: &PreflightRecord) -> Result<(), StoreError> {
        let key = (record.view.app_id.clone(), record.view.preflight_id.clone());
        self.records.lock().unwrap().insert(key, record.clone());
        Ok(())
    }

    async fn get_preflight(&self, app_id: &AppId, id: &PreflightId) -> Result<Option<PreflightRecord>, StoreError> {
        Ok(self.records.lock().unwrap().get(&(app_id.clone(), id.as_str().to_owned())).cloned())
    }

    async fn update_preflight(&self, record: &PreflightRecord) -> Result<bool, StoreError> {
        let key = (record.view.app_id.clone(), record.view.preflight_id.clone());
        let mut records = self.records.lock().unwrap();
        Ok(records.get_mut(&key).map(|kept| *kept = record.clone()).is_some())
    }
}

#[async_trait]
impl ProbeQueue for MemPreflights {
    async fn enqueue_probe(&self, message: &ProbeMessage) -> Result<(), QueueError> {
        self.sent.lock().unwrap().push(message.clone());
        if let Some(probe) = &self.worker {
            let mut records = self.records.lock().unwrap();
            let key = (message.app_id.clone(), message.preflight_id.as_str().to_owned());
            if let Some(record) = records.remove(&key) {
                let streams = record.streams().iter().cloned().map(probe).collect();
                records.insert(key, record.probed(streams));
            }
        }
        Ok(())
    }
}
