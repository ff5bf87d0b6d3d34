//! Nothing grows without bound: listings page through an index, joins read the room's active
//! jobs only, and a job's files are items of their own. The in-memory store counts the job
//! items and index entries each read takes, as DynamoDB would read them.

use super::*;
use crate::change::change_job;
use crate::job::RecordFile;
use crate::ports::{JobCursor, JobStore};
use crate::rule::RecordFormat;
use crate::time::Timestamp;

/// `n` ended individual jobs in `room_id`, one a second.
async fn finished_jobs(w: &World, app: &OwnedApp, rule: &str, room_id: &str, n: usize) {
    for i in 0..n {
        w.clock.advance(Duration::from_secs(1));
        let request =
            format!(r#"{{"room_id":"{room_id}","user_id":"old{i}","record_param":{{"record_rule_id":"{rule}"}}}}"#);
        let job = w.jobs.create_individual(app, body(&request)).await.unwrap();
        let mut record = w.store.job(&job.app_id, &job.job_id).unwrap();
        record.finish(StopReason::ExceedMaxIdleTime, w.clock.timestamp());
        w.store.put_job_record(record);
    }
}

/// An app with an auto-record rule and `finished` ended jobs: half in the room the test joins,
/// half in other rooms.
async fn auto_recording_app(finished: usize) -> (World, OwnedApp) {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    finished_jobs(&w, &app, &rule, "room001", finished / 2).await;
    finished_jobs(&w, &app, &rule, "other", finished - finished / 2).await;
    w.rules.update(&app, &rule, body(r#"{"auto_record":true}"#)).await.unwrap();
    w.clock.advance(Duration::from_secs(1));
    (w, app)
}

/// The job items and index entries `w`'s store reads while `action` runs.
async fn reads<T>(w: &World, action: impl std::future::Future<Output = T>) -> (T, usize) {
    let before = w.store.job_items_read();
    let out = action.await;
    (out, w.store.job_items_read() - before)
}

async fn list(w: &World, app: &OwnedApp, filter: JobFilter, page: PageRequest) -> crate::ports::JobPage {
    w.jobs.list(app, &filter, &page).await.unwrap()
}

fn individuals(room_id: Option<&str>, state: Option<JobState>) -> JobFilter {
    JobFilter { kind: JobKind::Individual, room_id: room_id.map(|r| RoomId::try_from(r).unwrap()), state }
}

#[tokio::test]
async fn a_listing_pages_newest_first_through_next_token_and_offset() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let mut created = Vec::new();
    for _ in 0..7 {
        w.clock.advance(Duration::from_secs(1));
        created.push(w.individual(&app, &rule).await);
    }
    for job in created.iter().step_by(2) {
        w.jobs.stop(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    }
    let newest_first: Vec<JobId> = created.iter().rev().map(|j| j.job_id.clone()).collect();
    let ids = |page: &crate::ports::JobPage| page.jobs.iter().map(|j| j.job_id.clone()).collect::<Vec<_>>();

    let mut seen = Vec::new();
    let mut page = PageRequest { after: None, offset: 0, limit: 3 };
    loop {
        let listed = w.jobs.list(&app, &individuals(None, None), &page).await.unwrap();
        assert!(listed.jobs.len() <= 3);
        seen.extend(ids(&listed));
        match listed.next {
            Some(next) => page.after = Some(JobCursor::parse(&next.token()).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, newest_first, "every job once, newest first, across three pages");

    let skipped = list(&w, &app, individuals(None, None), PageRequest { after: None, offset: 2, limit: 2 }).await;
    assert_eq!(ids(&skipped), newest_first[2..4]);

    let stopped = list(&w, &app, individuals(Some("room001"), Some(JobState::Stopped)), first_page(20)).await;
    let was_stopped = |id: &&JobId| created.iter().step_by(2).any(|j| j.job_id == **id);
    let expected: Vec<JobId> = newest_first.iter().filter(was_stopped).cloned().collect();
    assert_eq!((ids(&stopped), stopped.next), (expected, None));
    let elsewhere = w.jobs.list(&app, &individuals(Some("other"), None), &first_page(20)).await.unwrap();
    assert!(elsewhere.jobs.is_empty(), "another room has none");
}

#[tokio::test]
async fn a_next_token_is_refused_unless_a_listing_made_it() {
    assert_eq!(
        JobCursor::parse("1618993773-0123456789abcdef0123456789abcdef").map(|c| c.create_time.to_string()),
        Some("2021-04-21T08:29:33Z".to_owned())
    );
    for bad in ["", "-", "12", "x-0123456789abcdef0123456789abcdef", "-5-0123456789abcdef0123456789abcdef", "5-nope"] {
        assert_eq!(JobCursor::parse(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn a_listing_page_reads_as_much_in_an_app_with_1000_finished_jobs_as_in_one_with_10() {
    let mut cost = Vec::new();
    for finished in [10, 1000] {
        let (w, app) = auto_recording_app(finished).await;
        let (page, read) = reads(&w, w.jobs.list(&app, &individuals(None, None), &first_page(20))).await;
        assert_eq!(page.unwrap().jobs.len(), 20.min(finished));
        let (page, read_room) =
            reads(&w, w.jobs.list(&app, &individuals(Some("room001"), Some(JobState::Stopped)), &first_page(20))).await;
        assert_eq!(page.unwrap().jobs.len(), 20.min(finished / 2));
        cost.push((read, read_room));
    }
    // A page of 20 reads at most 21 index entries of each state and the 20 items shown.
    assert!(cost.iter().all(|&(all, room)| all <= 5 * 21 + 20 && room <= 21 + 20), "{cost:?}");
}

#[tokio::test]
async fn an_auto_record_join_reads_the_rooms_active_jobs_not_the_apps_finished_ones() {
    let mut cost = Vec::new();
    for finished in [10, 1000] {
        let (w, app) = auto_recording_app(finished).await;
        w.join(&app, "u0").await;
        let (joined, read) = reads(&w, w.join(&app, "u1")).await;
        assert!(joined);
        let active = list(&w, &app, individuals(Some("room001"), Some(JobState::Init)), first_page(20)).await;
        assert_eq!(active.jobs.len(), 2, "both joins started a job");
        cost.push(read);
    }
    // u0's job: one index entry and one item.
    assert_eq!(cost, [2, 2], "the join read only the room's active job");
}

#[tokio::test]
async fn a_jocloud_join_reads_the_recordings_jobs_not_the_rooms_older_ones() {
    let mut cost = Vec::new();
    for finished in [10, 1000] {
        let (w, app) = auto_recording_app(finished).await;
        let rule = w.rules.list(&app).await.unwrap()[0].rule_id.to_string();
        w.rules.update(&app, &rule, body(r#"{"auto_record":false}"#)).await.unwrap();
        let view = start(&w, &app, &rule, r#","streamtype":2"#).await;
        let (_, read) = reads(&w, w.join(&app, "u1")).await;
        let recordid = view.recordid.to_string();
        let query = w.jocloud.query_record(&app, body(&format!(r#"{{"recordid":"{recordid}"}}"#))).await.unwrap();
        assert_eq!(query.jobs.len(), 1, "u1 joined the recording");
        cost.push(read);
    }
    assert!(cost[0] == cost[1] && cost[0] <= 2, "as few reads beside 10 or 1000 older jobs: {cost:?}");
}

fn file(key: &str) -> RecordFile {
    RecordFile {
        record_format: RecordFormat::Hls,
        obs_bucket: "b12".into(),
        obs_object: key.into(),
        timeline_object: None,
        timeline_url: None,
        file_size: 10,
        record_duration: 1.0,
        start_time: Timestamp::zero(),
        end_time: Timestamp::zero(),
        download_url: None,
    }
}

#[tokio::test]
async fn a_jobs_files_are_items_of_their_own_that_its_body_still_lists() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    let key = (&job.app_id, &job.job_id);
    for name in ["a.m3u8", "b.m3u8"] {
        let close = |r: &mut JobRecord| -> Result<bool, ()> {
            r.close_upload(name, Some(&file(name)));
            Ok(true)
        };
        let saved = change_job(w.store.as_ref(), key, None, 3, close).await.unwrap();
        assert!(saved.new_files.is_empty(), "stored with the save");
    }
    // Another writer wins the next save: the file is still stored once.
    w.store.race_next_save(|r| r.job.update_time = Timestamp::zero());
    let close = |r: &mut JobRecord| -> Result<bool, ()> {
        r.close_upload("c.m3u8", Some(&file("c.m3u8")));
        Ok(true)
    };
    change_job(w.store.as_ref(), key, None, 3, close).await.unwrap();

    let item = w.store.get_jobs(&[(job.app_id.clone(), job.job_id.clone())]).await.unwrap();
    assert_eq!(item[0].job.record_files, None, "the job's item holds none of its files");
    let shown = w.jobs.get(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    let names: Vec<String> = shown.record_files.unwrap().into_iter().map(|f| f.obs_object).collect();
    assert_eq!(names, ["a.m3u8", "b.m3u8", "c.m3u8"]);
    let listed = w.jobs.list(&app, &individuals(None, None), &first_page(20)).await.unwrap();
    assert_eq!(listed.jobs[0].record_files, None, "a listing shows jobs without their files");
}
