//! Preflights on DynamoDB: items `preflight#<preflight_id>` of the table keyed by `app_id` and
//! `item_key` that holds Jocloud's reservations, expiring a day after they are made by the
//! table's TTL attribute `expires_at`.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use roomrec_domain::ids::AppId;
use roomrec_domain::ports::{PreflightStore, StoreError};
use roomrec_domain::preflight::{PreflightId, PreflightRecord};

use crate::dynamo::{backend, doc, item, key, made, n, s, write_error, Item};

/// [`PreflightStore`] over the template's Jocloud table.
#[derive(Debug, Clone)]
pub struct DynamoPreflightStore {
    client: Client,
    table: String,
}

fn preflight_key(id: &str) -> String {
    format!("preflight#{id}")
}

fn preflight_item(record: &PreflightRecord) -> Result<Item, StoreError> {
    let keys = [
        ("app_id", s(record.view.app_id.as_str())),
        ("item_key", s(preflight_key(&record.view.preflight_id))),
        ("expires_at", n(record.expires_at)),
    ];
    item(record, &keys)
}

impl DynamoPreflightStore {
    /// A store over `table`.
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

#[async_trait]
impl PreflightStore for DynamoPreflightStore {
    async fn put_preflight(&self, record: &PreflightRecord) -> Result<(), StoreError> {
        let item = preflight_item(record)?;
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(backend)?;
        Ok(())
    }

    async fn get_preflight(&self, app_id: &AppId, id: &PreflightId) -> Result<Option<PreflightRecord>, StoreError> {
        let key = key(&[("app_id", app_id.as_str()), ("item_key", &preflight_key(id.as_str()))]);
        let out = self.client.get_item().table_name(&self.table).set_key(Some(key)).consistent_read(true).send().await;
        out.map_err(backend)?.item.map(|found| doc(&found)).transpose()
    }

    async fn update_preflight(&self, record: &PreflightRecord) -> Result<bool, StoreError> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(preflight_item(record)?))
            .condition_expression("attribute_exists(item_key)")
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()));
        made(written)
    }
}
