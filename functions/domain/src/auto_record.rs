//! Automatic single-stream recording (seed 000): a rule marked `auto_record` records every
//! stream that joins a room of its app, in rooms created after it was turned on.

use crate::clock::Random;
use crate::ids::{AppId, JobId};
use crate::job::{IndividualParams, Job, JobSpec, RecordParam};
use crate::mix::MAX_IDLE_SECS;
use crate::room::{Room, RoomStream, VideoType};
use crate::rule::RecordRule;
use crate::time::Timestamp;

/// The rule that records streams joining `room` automatically, if any: one with
/// `auto_record` on since before the room was created. At most one rule of an app has it on;
/// should two (a race between two updates), the one on longest wins.
pub fn rule_for<'r>(rules: &'r [RecordRule], room: &Room) -> Option<&'r RecordRule> {
    rules
        .iter()
        .filter(|r| r.auto_record)
        .filter_map(|r| r.auto_record_since.map(|since| (since, r)))
        .filter(|(since, _)| *since <= room.create_time)
        .min_by_key(|(since, r)| (*since, r.rule_id.clone()))
        .map(|(_, r)| r)
}

/// The automatic job for `stream`, which joined the room with `stream.join_seq`, under
/// `rule`; `None` when one of `room_jobs` (the room's individual jobs) may still record that
/// stream. A camera and a screen share are two streams, each recorded by a job of its own
/// (the seeds record every stream that joins). Its id is derived from the join, so two
/// callers racing over the same join create one job. It ends like any job: once the stream has been away for the rule's merge
/// window (at least 5 s), with EXCEED_MAX_IDLE_TIME.
pub fn job_for(
    app_id: &AppId,
    rule: &RecordRule,
    stream: &RoomStream,
    room_jobs: &[Job],
    random: &dyn Random,
    now: Timestamp,
) -> Option<Job> {
    let same_stream = |j: &Job| j.records_stream() == Some((&stream.user_id, stream.video_type));
    let busy = room_jobs.iter().any(|j| j.is_active() && same_stream(j));
    if busy {
        return None;
    }
    let max_idle_time = rule.merge_window_secs().clamp(*MAX_IDLE_SECS.start(), *MAX_IDLE_SECS.end());
    let params = IndividualParams {
        user_id: stream.user_id.clone(),
        is_record_audio: true,
        video_type: stream.video_type,
        resolution: None,
        resolution_policy: None,
        max_idle_time,
        is_record_video: true,
    };
    // A camera's id is derived as before screen shares had their own; a screen share's names its type.
    let joined = match stream.video_type {
        VideoType::Camerastream => format!("{}|{}|{}", stream.room_id, stream.user_id, stream.join_seq),
        VideoType::Substream => format!("{}|{}.SUBSTREAM|{}", stream.room_id, stream.user_id, stream.join_seq),
    };
    let id = JobId::derived(&format!("auto|{app_id}|{joined}"));
    let record_param = RecordParam { record_rule_id: rule.rule_id.to_string() };
    let spec = JobSpec::Individual(params);
    Some(Job::from_parts(id, app_id.clone(), stream.room_id.clone(), spec, record_param, random, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RoomId, UserId};
    use crate::job::JobState;
    use crate::testing::random;
    use crate::url::StreamUrl;

    fn at(secs: i64) -> Timestamp {
        Timestamp::at(chrono::DateTime::from_timestamp(secs, 0).unwrap())
    }

    fn rule(app: &AppId, auto_since: Option<i64>, merge: u32) -> RecordRule {
        let body = format!(
            r#"{{"obs_addr":{{"bucket":"b12","location":"eu-west-1"}},"record_formats":["HLS"],"hls_config":{{"record_max_duration_to_merge_file":{merge}}}}}"#
        );
        let mut rule = RecordRule::create(app.clone(), serde_json::from_str(&body).unwrap(), random(), at(0)).unwrap();
        if let Some(since) = auto_since {
            rule.update(serde_json::from_str(r#"{"auto_record":true}"#).unwrap(), at(since)).unwrap();
        }
        rule
    }

    fn room(created: i64) -> Room {
        Room { room_id: RoomId::try_from("r1").unwrap(), create_time: at(created), last_join_seq: 0 }
    }

    fn stream(user: &str, join_seq: i64) -> RoomStream {
        typed(user, VideoType::Substream, join_seq)
    }

    fn typed(user: &str, video_type: VideoType, join_seq: i64) -> RoomStream {
        RoomStream {
            room_id: RoomId::try_from("r1").unwrap(),
            user_id: UserId::try_from(user).unwrap(),
            url: StreamUrl::parse("rtmp://media.example.com/live/x", "url").unwrap(),
            video_type,
            has_audio: true,
            has_video: true,
            join_time: at(0),
            join_seq,
            update_time: at(0),
            media_session: None,
            media_seen: None,
        }
    }

    #[test]
    fn a_room_created_after_auto_record_was_turned_on_is_recorded_and_an_older_one_is_not() {
        let app = AppId::generate(random());
        let rules = [rule(&app, None, 0), rule(&app, Some(100), 0)];
        assert_eq!(rule_for(&rules, &room(100)).map(|r| &r.rule_id), Some(&rules[1].rule_id));
        assert_eq!(rule_for(&rules, &room(99)), None, "the room existed before auto-record");
        assert_eq!(rule_for(&rules[..1], &room(200)), None, "no rule records automatically");
    }

    #[test]
    fn of_two_auto_rules_the_one_on_longest_wins() {
        let app = AppId::generate(random());
        let rules = [rule(&app, Some(50), 0), rule(&app, Some(10), 0)];
        assert_eq!(rule_for(&rules, &room(100)).map(|r| &r.rule_id), Some(&rules[1].rule_id));
    }

    #[test]
    fn the_auto_job_records_the_stream_and_idles_out_after_the_merge_window() {
        let app = AppId::generate(random());
        let job = job_for(&app, &rule(&app, Some(1), 120), &stream("alice", 7), &[], random(), at(5)).unwrap();
        let JobSpec::Individual(params) = &job.spec else { panic!("an individual job") };
        assert_eq!((params.user_id.as_str(), params.video_type), ("alice", VideoType::Substream));
        assert!(params.is_record_audio && params.is_record_video);
        assert_eq!(params.max_idle_time, 120);
        assert_eq!(job.state, JobState::Init);
        let short = job_for(&app, &rule(&app, Some(1), 0), &stream("alice", 7), &[], random(), at(5)).unwrap();
        let JobSpec::Individual(params) = &short.spec else { panic!("an individual job") };
        assert_eq!(params.max_idle_time, 5, "clamped to the shortest idle time");
    }

    #[test]
    fn one_join_gives_one_job_id_and_an_active_job_of_the_user_prevents_another() {
        let app = AppId::generate(random());
        let rule = rule(&app, Some(1), 30);
        let first = job_for(&app, &rule, &stream("alice", 7), &[], random(), at(5)).unwrap();
        let again = job_for(&app, &rule, &stream("alice", 7), &[], random(), at(6)).unwrap();
        assert_eq!(first.job_id, again.job_id, "a race over one join creates one job");
        let rejoin = job_for(&app, &rule, &stream("alice", 8), &[], random(), at(6)).unwrap();
        assert_ne!(rejoin.job_id, first.job_id);

        assert!(job_for(&app, &rule, &stream("alice", 8), std::slice::from_ref(&first), random(), at(6)).is_none());
        assert!(job_for(&app, &rule, &stream("bob", 8), std::slice::from_ref(&first), random(), at(6)).is_some());
        let mut ended = first.clone();
        ended.state = JobState::Stopped;
        assert!(job_for(&app, &rule, &stream("alice", 8), &[ended], random(), at(6)).is_some());
    }

    #[test]
    fn a_users_camera_and_screen_share_are_recorded_by_a_job_each() {
        let app = AppId::generate(random());
        let rule = rule(&app, Some(1), 30);
        let camera = job_for(&app, &rule, &typed("alice", VideoType::Camerastream, 7), &[], random(), at(5)).unwrap();
        let screen = typed("alice", VideoType::Substream, 7);
        let shared = job_for(&app, &rule, &screen, std::slice::from_ref(&camera), random(), at(6)).unwrap();
        assert_ne!(shared.job_id, camera.job_id, "even a join in the same microsecond");
        assert_eq!(shared.records_stream(), Some((&screen.user_id, VideoType::Substream)));
        assert!(job_for(&app, &rule, &screen, std::slice::from_ref(&shared), random(), at(6)).is_none());
    }
}
