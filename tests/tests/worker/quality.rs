//! The quality report: a publish recorded to MP4 and HLS, and every `RECORD_FILE_COMPLETE`
//! (and the job's file list) carries a report that fits what was published.

use std::time::Duration;

use roomrec_domain::callback::EventType;
use roomrec_tests::publish;
use serde_json::{json, Value};

use crate::support::{final_events, Setup};

#[tokio::test]
async fn every_completed_file_carries_a_quality_report_that_fits_the_publish() {
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish(&setup.publish_url("room1", "carol").await, 40);
    let job = setup.start_job("room1", "carol", 30).await;
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    // Long enough for the input's rates to be measured (over 5 s windows).
    tokio::time::sleep(Duration::from_secs(12)).await;
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    publisher.kill().await.ok();

    let events = final_events(&job).await;
    let completed: Vec<_> = events.iter().filter(|e| e.event_type == EventType::RecordFileComplete).collect();
    assert_eq!(completed.len(), 2, "{events:?}");
    for event in completed {
        let body = event.callback_body();
        let quality = &body["quality"];
        // 640x360 at 25 fps with a tone, published without a break and remuxed.
        let offset = quality["av_offset_ms"].as_f64().unwrap_or_else(|| panic!("no A/V offset: {body}"));
        assert!(offset.abs() <= 40.0, "{body}");
        assert_eq!(quality["gaps"], json!({"count": 0, "seconds": 0.0}), "{body}");
        assert_eq!(quality["duplicated_frames"], 0, "{body}");
        assert_eq!(quality["late_frames_skipped"], 0, "{body}");
        assert!(quality["dropped_frames"].as_u64().is_some_and(|n| n <= 25), "{body}");
        let opened = &quality["input_changes"][0];
        assert_eq!((&opened["at_ms"], &opened["width"], &opened["height"]), (&json!(0), &json!(640), &json!(360)));
        let fps = opened["fps"].as_f64().unwrap_or_else(|| panic!("no frame rate measured: {body}"));
        assert!((fps - 25.0).abs() <= 2.0, "{body}");
        assert!(opened["bitrate_kbps"].as_u64().is_some_and(|kbps| kbps > 50), "{body}");
        // The job lists the same report for the file.
        let listed = setup.job(&job).await["record_files"].as_array().cloned().unwrap_or_default();
        let file: Vec<&Value> = listed.iter().filter(|f| f["obs_object"] == body["obs_object"]).collect();
        assert_eq!(file.len(), 1, "{listed:?}");
        assert_eq!(file[0]["quality"], *quality, "{listed:?}");
    }
}
