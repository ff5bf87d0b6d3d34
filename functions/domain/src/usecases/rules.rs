//! Record rules: where and how an app's recordings are stored.

use std::sync::Arc;

use crate::clock::{Clock, Random};
use crate::error::UseCaseError;
use crate::ids::{AppId, RuleId};
use crate::ports::RuleStore;
use crate::rule::{RecordRule, RuleRequest};

use super::access::OwnedApp;

/// Creates, reads, changes and deletes an app's record rules.
#[derive(Clone)]
pub struct Rules {
    rules: Arc<dyn RuleStore>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
}

/// The rule `rule_id` of the app, named by the request field `field`; not found otherwise.
pub(crate) async fn existing_rule(
    rules: &dyn RuleStore,
    app_id: &AppId,
    rule_id: &str,
    field: &'static str,
) -> Result<RecordRule, UseCaseError> {
    let not_found = || UseCaseError::not_found(field, "record rule");
    let rule_id = RuleId::parse(rule_id).ok_or_else(not_found)?;
    rules.get_rule(app_id, &rule_id).await?.ok_or_else(not_found)
}

impl Rules {
    /// The rules use cases over the rule store.
    pub fn new(rules: Arc<dyn RuleStore>, clock: Arc<dyn Clock>, random: Arc<dyn Random>) -> Self {
        Self { rules, clock, random }
    }

    /// Refuses a second rule of the app with `auto_record` on: joins must know which rule applies.
    async fn check_single_auto_rule(&self, rule: &RecordRule) -> Result<(), UseCaseError> {
        if !rule.auto_record {
            return Ok(());
        }
        let rules = self.rules.list_rules(&rule.app_id).await?;
        match rules.iter().find(|other| other.auto_record && other.rule_id != rule.rule_id) {
            Some(other) => Err(UseCaseError::Conflict(format!(
                "auto_record: rule {} already records automatically; turn it off there first",
                other.rule_id
            ))),
            None => Ok(()),
        }
    }

    /// Creates a record rule.
    pub async fn create(&self, app: &OwnedApp, request: RuleRequest) -> Result<RecordRule, UseCaseError> {
        let rule = RecordRule::create(app.id().clone(), request, self.random.as_ref(), self.clock.timestamp())?;
        self.check_single_auto_rule(&rule).await?;
        self.rules.put_rule(&rule).await?;
        Ok(rule)
    }

    /// Lists an app's rules, oldest first.
    pub async fn list(&self, app: &OwnedApp) -> Result<Vec<RecordRule>, UseCaseError> {
        Ok(self.rules.list_rules(app.id()).await?)
    }

    /// One rule.
    pub async fn get(&self, app: &OwnedApp, rule_id: &str) -> Result<RecordRule, UseCaseError> {
        existing_rule(self.rules.as_ref(), app.id(), rule_id, "rule_id").await
    }

    /// Updates a rule; absent fields keep their values. A rule deleted since it was read
    /// stays deleted (not found).
    pub async fn update(
        &self,
        app: &OwnedApp,
        rule_id: &str,
        request: RuleRequest,
    ) -> Result<RecordRule, UseCaseError> {
        let mut rule = self.get(app, rule_id).await?;
        rule.update(request, self.clock.timestamp())?;
        self.check_single_auto_rule(&rule).await?;
        if !self.rules.update_rule(&rule).await? {
            return Err(UseCaseError::not_found("rule_id", "record rule"));
        }
        Ok(rule)
    }

    /// Deletes a rule.
    pub async fn delete(&self, app: &OwnedApp, rule_id: &str) -> Result<(), UseCaseError> {
        let rule = self.get(app, rule_id).await?;
        self.rules.delete_rule(app.id(), &rule.rule_id).await?;
        Ok(())
    }
}
