//! Record rules on DynamoDB. An app's rule is the item with sort key `#rule` (its id in
//! [`RULE_ID`]), created with `attribute_not_exists`, so of two creates racing on an app one
//! wins and the other writes nothing. Rules stored before one rule per app are items keyed by
//! their own `rule_id`; they are read, updated and deleted as before.

use async_trait::async_trait;
use roomrec_domain::ids::{AppId, RuleId};
use roomrec_domain::ports::{RuleStore, StoreError};
use roomrec_domain::rule::RecordRule;

use super::{doc, item, key, made, s, write_error, DynamoStore, Item};

/// The sort key of an app's rule (no rule id contains '#').
const APP_RULE: &str = "#rule";
/// The attribute of the `#rule` item naming the rule's id, for conditions.
const RULE_ID: &str = "app_rule_id";

fn rule_key(app_id: &AppId, sort_key: &str) -> Item {
    key(&[("app_id", app_id.as_str()), ("rule_id", sort_key)])
}

/// The app's `#rule` item holding `rule`.
fn app_rule_item(rule: &RecordRule) -> Result<Item, StoreError> {
    let mut item = item(rule, &[("app_id", s(rule.app_id.as_str())), ("rule_id", s(APP_RULE))])?;
    item.insert(RULE_ID.into(), s(rule.rule_id.as_str()));
    Ok(item)
}

/// A rule stored under its own id, as before one rule per app.
fn own_item(rule: &RecordRule) -> Result<Item, StoreError> {
    item(rule, &[("app_id", s(rule.app_id.as_str())), ("rule_id", s(rule.rule_id.as_str()))])
}

impl DynamoStore {
    /// Puts `item` if `condition` (over `:id`, the rule's id, when given) holds; `false` if it
    /// does not.
    async fn put_rule_if(&self, item: Item, condition: &str, rule_id: Option<&RuleId>) -> Result<bool, StoreError> {
        let put = self.client.put_item().table_name(&self.tables.rules).set_item(Some(item));
        let put = match rule_id {
            Some(id) => put.expression_attribute_values(":id", s(id.as_str())),
            None => put,
        };
        let written = put
            .condition_expression(condition)
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()));
        made(written)
    }
}

#[async_trait]
impl RuleStore for DynamoStore {
    async fn get_rule(&self, app_id: &AppId, rule_id: &RuleId) -> Result<Option<RecordRule>, StoreError> {
        // One read finds it whether it is the app's `#rule` or a rule from before.
        Ok(self.list_rules(app_id).await?.into_iter().find(|rule| rule.rule_id == *rule_id))
    }

    async fn list_rules(&self, app_id: &AppId) -> Result<Vec<RecordRule>, StoreError> {
        let items = self.query(&self.tables.rules, None, "app_id", app_id.as_str()).await?;
        let mut rules = items.iter().map(doc).collect::<Result<Vec<RecordRule>, _>>()?;
        rules.sort_by_key(|r| r.create_time);
        Ok(rules)
    }

    async fn put_rule(&self, rule: &RecordRule) -> Result<(), StoreError> {
        self.put(&self.tables.rules, own_item(rule)?).await
    }

    async fn create_rule(&self, rule: &RecordRule) -> Result<bool, StoreError> {
        self.put_rule_if(app_rule_item(rule)?, "attribute_not_exists(app_id)", None).await
    }

    async fn update_rule(&self, rule: &RecordRule) -> Result<bool, StoreError> {
        let app_rule = format!("{RULE_ID} = :id");
        if self.put_rule_if(app_rule_item(rule)?, &app_rule, Some(&rule.rule_id)).await? {
            return Ok(true);
        }
        self.put_rule_if(own_item(rule)?, "attribute_exists(rule_id)", None).await
    }

    async fn delete_rule(&self, app_id: &AppId, rule_id: &RuleId) -> Result<bool, StoreError> {
        let held = (":id", s(rule_id.as_str()));
        if self.delete_if(&self.tables.rules, rule_key(app_id, APP_RULE), &format!("{RULE_ID} = :id"), held).await? {
            return Ok(true);
        }
        self.delete(&self.tables.rules, rule_key(app_id, rule_id.as_str())).await
    }
}
