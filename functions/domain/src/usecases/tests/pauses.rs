//! Pausing and resuming through the jobs use cases.

use super::*;
use crate::ports::QuotaStore;
use crate::quota::QuotaSettings;

#[tokio::test]
async fn a_running_job_pauses_and_resumes_and_asking_twice_answers_the_job_unchanged() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    w.claim(&job);
    let id = job.job_id.as_str();
    let paused = w.jobs.pause(&app, JobKind::Individual, id).await.unwrap();
    assert!(paused.paused);
    assert_eq!(paused.state, JobState::Running);
    assert!(w.store.job(&job.app_id, &job.job_id).unwrap().job.paused, "stored for the worker to see");
    assert_eq!(w.jobs.pause(&app, JobKind::Individual, id).await.unwrap(), paused);

    let resumed = w.jobs.resume(&app, JobKind::Individual, id).await.unwrap();
    assert!(!resumed.paused && resumed.paused_at.is_none());
    assert_eq!(w.jobs.resume(&app, JobKind::Individual, id).await.unwrap(), resumed);
    let stored = w.store.job(&job.app_id, &job.job_id).unwrap();
    assert_eq!(stored.lease.map(|l| l.owner), Some("w1".to_owned()), "the worker keeps its lease");
}

#[tokio::test]
async fn a_stopping_or_stopped_job_refuses_a_pause_naming_its_state() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let running = w.individual(&app, &rule).await;
    w.claim(&running);
    w.jobs.stop(&app, JobKind::Individual, running.job_id.as_str()).await.unwrap();
    let refused = w.jobs.pause(&app, JobKind::Individual, running.job_id.as_str()).await;
    assert!(matches!(&refused, Err(UseCaseError::Conflict(m)) if m.contains("STOPPING")), "{refused:?}");

    let unclaimed = w.individual(&app, &rule).await;
    w.jobs.stop(&app, JobKind::Individual, unclaimed.job_id.as_str()).await.unwrap();
    let refused = w.jobs.resume(&app, JobKind::Individual, unclaimed.job_id.as_str()).await;
    assert!(matches!(&refused, Err(UseCaseError::Conflict(m)) if m.contains("STOPPED")), "{refused:?}");
}

#[tokio::test]
async fn a_mix_pauses_under_its_own_kind_only() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let mix = w.jobs.create_mix(&app, body(&mix_body(&rule))).await.unwrap();
    let wrong = w.jobs.pause(&app, JobKind::Individual, mix.job_id.as_str()).await;
    assert!(matches!(wrong, Err(UseCaseError::NotFound { .. })), "{wrong:?}");
    assert!(w.jobs.pause(&app, JobKind::Mix, mix.job_id.as_str()).await.unwrap().paused);
}

#[tokio::test]
async fn a_paused_job_still_counts_as_active_against_the_quota() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.store
        .put_quotas(&account("alice"), &QuotaSettings { active_jobs: Some(1), ..QuotaSettings::default() })
        .await
        .unwrap();
    let job = w.individual(&app, &rule).await;
    w.jobs.pause(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    let refused = w.jobs.create_individual(&app, body(&individual_body(&rule))).await;
    assert!(matches!(refused, Err(UseCaseError::QuotaExceeded(_))), "{refused:?}");
}
