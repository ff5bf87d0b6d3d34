//! Metering: the usage of an account's apps over a range of days, from the per-app, per-day
//! counters the workers add each ended job to.

use std::sync::Arc;

use crate::error::UseCaseError;
use crate::ids::AccountId;
use crate::ports::UsageStore;
use crate::usage::{UsageRange, UsageSummary};

/// Reads an account's usage.
#[derive(Clone)]
pub struct Metering {
    usage: Arc<dyn UsageStore>,
}

impl Metering {
    /// Metering over the usage counters.
    pub fn new(usage: Arc<dyn UsageStore>) -> Self {
        Self { usage }
    }

    /// Each of `account`'s apps' usage over `range` (jobs that ended in it), and the total.
    pub async fn summary(&self, account: &AccountId, range: UsageRange) -> Result<UsageSummary, UseCaseError> {
        let days = self.usage.daily_usage(account, range.from, range.to).await?;
        Ok(UsageSummary::of(range, &days))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AppId, JobId};
    use crate::testing::{random, MemStore};
    use crate::usage::Usage;

    #[tokio::test]
    async fn an_account_sees_its_own_apps_usage_once_per_job_and_no_one_elses() {
        let store = Arc::new(MemStore::default());
        let (alice, bob) = (AccountId::try_from("alice").unwrap(), AccountId::try_from("bob").unwrap());
        let (app, job) = (AppId::generate(random()), JobId::generate(random()));
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let used = Usage { bytes_stored: 1000, cpu_seconds: 2.5, ..Usage::default() };
        store.add_usage(&alice, &app, day, &job, &used).await.unwrap();
        store.add_usage(&alice, &app, day, &job, &used).await.unwrap();
        let metering = Metering::new(store);
        let range = UsageRange::parse(Some("2026-11-29"), None).unwrap();

        let mine = metering.summary(&alice, range).await.unwrap();
        assert_eq!(mine.apps.len(), 1);
        assert_eq!((mine.total.bytes_stored, mine.total.cpu_seconds), (1000, 2.5), "a job is counted once");
        let theirs = metering.summary(&bob, range).await.unwrap();
        assert!(theirs.apps.is_empty() && theirs.total == Usage::default());
    }
}
