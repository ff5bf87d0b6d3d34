//! Record rules: where and how an app's recordings are stored.

use std::sync::Arc;

use crate::clock::{Clock, Random};
use crate::error::UseCaseError;
use crate::ids::{AppId, RuleId};
use crate::ports::RuleStore;
use crate::rule::{RecordRule, RuleRequest};

use super::access::OwnedApp;

/// How many times a create-or-update reads the app's rule again after losing a race.
const SAVE_ATTEMPTS: usize = 3;

/// What a create-or-update stored, and whether it made the app's rule (201) or replaced it (200).
#[derive(Debug)]
pub struct SavedRule {
    pub rule: RecordRule,
    pub created: bool,
}

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

    /// Seed 004's "create or update": creates the app's rule, or, when it has one, makes that
    /// rule say what the request says (same `rule_id`). An app with several rules from before
    /// one rule per app has its oldest one replaced. Two racing calls end with one rule.
    pub async fn create_or_update(&self, app: &OwnedApp, request: RuleRequest) -> Result<SavedRule, UseCaseError> {
        // A lost race (a create beaten by another, the rule deleted meanwhile) is read again.
        for _ in 0..SAVE_ATTEMPTS {
            let now = self.clock.timestamp();
            match self.rules.list_rules(app.id()).await?.into_iter().next() {
                Some(mut rule) => {
                    rule.replace(request.clone(), now)?;
                    self.check_single_auto_rule(&rule).await?;
                    if self.rules.update_rule(&rule).await? {
                        return Ok(SavedRule { rule, created: false });
                    }
                }
                None => {
                    let rule = RecordRule::create(app.id().clone(), request.clone(), self.random.as_ref(), now)?;
                    if self.rules.create_rule(&rule).await? {
                        return Ok(SavedRule { rule, created: true });
                    }
                }
            }
        }
        Err(UseCaseError::Conflict("record rule: the app's rule changed while it was saved; try again".into()))
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
