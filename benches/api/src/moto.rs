//! "Moto only": the DynamoDB and SQS calls each route's handler makes (see the service in
//! functions/domain/src/service.rs and DynamoStore in functions/adapters/src/dynamo.rs), made
//! directly with the AWS SDK. Writes copy items the gateway stored for the fixture, so they
//! carry the same attributes and sizes as the handlers' own.

use std::collections::HashMap;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use roomrec_adapters::{Config, OsRandom, Tables};
use roomrec_domain::ids::{AppId, JobId};
use roomrec_domain::ports::JobMessage;

use crate::routes::{Fixture, Route, ROOM, USER};

type Item = HashMap<String, AttributeValue>;

/// Items of the fixture, as the handlers stored them.
#[derive(Debug, Default)]
struct Items {
    app: Item,
    rule: Item,
    callback: Item,
    stream: Item,
    job: Item,
}

/// Direct SDK clients on the stack's moto server, and the fixture's keys.
#[derive(Debug)]
pub struct Moto {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    tables: Tables,
    queue_url: String,
    fixture: Fixture,
    items: Items,
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// `item` with the attribute `name` set to `value`.
fn with(item: &Item, name: &str, value: &str) -> Item {
    let mut item = item.clone();
    item.insert(name.to_owned(), s(value));
    item
}

impl Moto {
    /// Clients configured as the functions' are (`AWS_ENDPOINT_URL` points at moto), and the
    /// fixture's stored items.
    pub async fn new(config: &Config, fixture: &Fixture) -> Result<Self> {
        let aws = aws_config::load_from_env().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let tables = config.tables.clone();
        let queue_url = config.jobs_queue_url.clone();
        let mut moto = Self { dynamo, sqs, tables, queue_url, fixture: fixture.clone(), items: Items::default() };
        let t = &moto.tables;
        moto.items = Items {
            app: moto.get(&t.apps, moto.app_key()).await?,
            rule: moto.get(&t.rules, moto.rule_key()).await?,
            callback: moto.get(&t.callbacks, moto.app_key()).await?,
            stream: moto.get(&t.rooms, moto.stream_key()).await?,
            job: moto.get(&t.jobs, moto.job_key()).await?,
        };
        Ok(moto)
    }

    fn account_key(&self) -> Item {
        Item::from([("key_id".to_owned(), s(&self.fixture.key_id))])
    }

    fn app_key(&self) -> Item {
        Item::from([("app_id".to_owned(), s(&self.fixture.app_id))])
    }

    /// The app's one rule item (`#rule`, see the rules store).
    fn rule_key(&self) -> Item {
        with(&self.app_key(), "rule_id", "#rule")
    }

    fn stream_key(&self) -> Item {
        let room_key = format!("{}#{ROOM}", self.fixture.app_id);
        Item::from([("room_key".to_owned(), s(&room_key)), ("user_id".to_owned(), s(USER))])
    }

    fn job_key(&self) -> Item {
        with(&self.app_key(), "job_id", &self.fixture.job_id)
    }

    /// A consistent GetItem, as the store reads; the item must exist.
    async fn get(&self, table: &str, key: Item) -> Result<Item> {
        let out =
            self.dynamo.get_item().table_name(table).set_key(Some(key.clone())).consistent_read(true).send().await;
        let out = out.with_context(|| format!("GetItem on {table}"))?;
        out.item.with_context(|| format!("GetItem on {table}: no item {key:?}"))
    }

    /// The app's rules, as a rule read queries them.
    async fn query_rules(&self) -> Result<()> {
        let query = self
            .dynamo
            .query()
            .table_name(&self.tables.rules)
            .key_condition_expression("app_id = :app")
            .expression_attribute_values(":app", s(&self.fixture.app_id))
            .consistent_read(true);
        query.send().await.context("Query on the rules table")?;
        Ok(())
    }

    /// A PutItem, optionally conditional.
    async fn put(&self, table: &str, item: Item, condition: Option<&str>) -> Result<()> {
        let put = self
            .dynamo
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned));
        put.send().await.with_context(|| format!("PutItem on {table}"))?;
        Ok(())
    }

    /// The calls one request to `route` makes, in the handler's order.
    pub async fn once(&self, route: Route) -> Result<()> {
        let t = &self.tables;
        self.get(&t.accounts, self.account_key()).await?; // `serve` authenticates
        if route == Route::CreateApp {
            return self.put(&t.apps, with(&self.items.app, "app_id", AppId::generate(&OsRandom).as_str()), None).await;
        }
        self.get(&t.apps, self.app_key()).await?; // `Service::app` checks ownership
        match route {
            Route::CreateApp | Route::GetApp => Ok(()),
            // The app has its rule: a POST reads it and updates it in place.
            Route::CreateRule => {
                self.query_rules().await?;
                self.put(&t.rules, self.items.rule.clone(), Some("attribute_exists(app_rule_id)")).await
            }
            Route::GetRule => self.query_rules().await,
            Route::PutCallback => self.put(&t.callbacks, self.items.callback.clone(), None).await,
            Route::PutStream => {
                self.get(&t.rooms, self.stream_key()).await?;
                self.put(&t.rooms, self.items.stream.clone(), None).await
            }
            Route::CreateJob => self.create_job().await,
            Route::GetJob => self.get(&t.jobs, self.job_key()).await.map(drop),
        }
    }

    /// The rule check, the conditional job write and the queue message of a new job.
    async fn create_job(&self) -> Result<()> {
        self.query_rules().await?;
        let job_id = JobId::generate(&OsRandom);
        let item = with(&self.items.job, "job_id", job_id.as_str());
        self.put(&self.tables.jobs, item, Some("attribute_not_exists(job_id)")).await?;
        let app_id = AppId::parse(&self.fixture.app_id).context("the fixture's app id")?;
        let body = serde_json::to_string(&JobMessage::wake(app_id, job_id))?;
        let send = self.sqs.send_message().queue_url(&self.queue_url).message_body(body).send().await;
        send.context("SendMessage on the jobs queue")?;
        Ok(())
    }
}
