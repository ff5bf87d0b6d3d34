//! The two RTMP readers record the same thing: the worker's own (one thread, large reads)
//! and libavformat's client, side by side on one live stream, give files with the same
//! streams, the same packets (by content hash) at the same relative times, and the same
//! keyframes; and the worker's holds the very packets that were published. On nginx-rtmp and
//! on Node-Media-Server, which differ in what a player sees at its start and end.

use std::path::Path;
use std::time::Duration;

use roomrec_media::{InputSpec, Output, RtmpReader};

use crate::support::{self, is_waiting, make_input, probe, record, RtmpServer, TempDir};

/// One packet as `ffprobe` sees it: presentation time (in the stream's time base), whether it
/// is a keyframe, and an MD5 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Packet {
    pts: i64,
    key: bool,
    md5: String,
}

fn packets(path: &Path, stream: &str) -> Vec<Packet> {
    let args = ["-select_streams", stream, "-show_data_hash", "md5", "-show_entries", "packet=pts,flags,data_hash"];
    support::ffprobe(path, &[&args[..], &["-of", "csv=p=0"]].concat())
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            let pts = fields.next()?.parse().ok()?;
            let key = fields.next()?.starts_with('K');
            let md5 = fields.next()?.to_owned();
            Some(Packet { pts, key, md5 })
        })
        .collect()
}

/// The packets both recordings hold, each side's times made relative to the first of them:
/// the part of `a` from where `b` starts (or the reverse), which must then match packet for
/// packet.
fn overlap(a: &[Packet], b: &[Packet]) -> (Vec<Packet>, Vec<Packet>) {
    let (early, late, swapped) = match a.iter().position(|p| p.md5 == b[0].md5) {
        Some(_) => (a, b, false),
        None => (b, a, true),
    };
    let start = early.iter().position(|p| p.md5 == late[0].md5).expect("the recordings share packets");
    let len = (early.len() - start).min(late.len());
    let relative = |packets: &[Packet]| {
        let first = packets[0].pts;
        packets.iter().map(|p| Packet { pts: p.pts - first, ..p.clone() }).collect::<Vec<_>>()
    };
    let (e, l) = (relative(&early[start..start + len]), relative(&late[..len]));
    if swapped {
        (l, e)
    } else {
        (e, l)
    }
}

#[test]
fn the_buffered_reader_records_the_same_packets_and_keyframes_as_libavs_client() {
    both_readers_record_the_published_packets(RtmpServer::start());
}

/// Node-Media-Server tells a player nothing when the publisher leaves: each recording ends
/// when its reader finds the stream silent for its I/O timeout.
#[test]
fn both_readers_record_the_published_packets_from_node_media_server() {
    both_readers_record_the_published_packets(RtmpServer::node_media_server());
}

/// Both readers record one publish of an 8 s file through `server`.
fn both_readers_record_the_published_packets(server: RtmpServer) {
    let dir = TempDir::new("readers");
    make_input(&dir.join("in.flv"), 8, "640x360", "aac");
    let url = server.url("same");
    let spec = |name: &str| support::spec(&dir.join(name), Duration::from_secs(2));
    // Both wait for the publisher, then record until it is gone. Each one's first wait outlasts
    // the pause before the publish: with the usual 2 s I/O timeout, libav's client gave up its
    // first attempt just as the publish began and, under load, joined a keyframe late.
    let reader = |rtmp_reader| InputSpec {
        rtmp_reader,
        io_timeout: Duration::from_secs(5),
        ..support::input(&url, Duration::from_millis(200))
    };
    let ended = |seen: &[Output]| {
        let first = seen.iter().position(|o| matches!(o, Output::FileOpened { .. }));
        first.is_some_and(|first| seen[first..].iter().any(is_waiting))
    };
    for name in ["buffered", "libav"] {
        std::fs::create_dir_all(dir.join(name)).expect("mkdir");
    }
    let recordings = std::thread::scope(|scope| {
        let buffered = scope.spawn(|| record(reader(RtmpReader::Buffered), spec("buffered"), 10_000, ended));
        let libav = scope.spawn(|| record(reader(RtmpReader::Libav), spec("libav"), 10_000, ended));
        std::thread::sleep(Duration::from_secs(2));
        server.publish(&dir.join("in.flv"), "same");
        [buffered.join().expect("buffered"), libav.join().expect("libav")]
    });
    let mp4s = recordings.map(|recording| {
        assert!(recording.result.is_ok(), "{:?}", recording.result);
        recording.mp4(0).0
    });
    let (ours, theirs) = (probe(&mp4s[0]), probe(&mp4s[1]));
    assert_eq!(ours.streams, theirs.streams, "the same streams");
    assert_eq!(ours.codecs(), ["h264", "aac"]);
    assert!((ours.duration - theirs.duration).abs() <= 0.1, "durations {ours:?} vs {theirs:?}");
    assert!(ours.duration >= 7.0, "most of the 8 s publish: {ours:?}");
    for stream in ["v:0", "a:0"] {
        let (a, b) = (packets(&mp4s[0], stream), packets(&mp4s[1], stream));
        let (a_shared, b_shared) = overlap(&a, &b);
        assert_eq!(a_shared, b_shared, "{stream}: the same packets at the same relative times");
        assert!(
            a_shared.len() + 2 >= a.len().max(b.len()),
            "{stream}: {} of {} / {} packets shared",
            a_shared.len(),
            a.len(),
            b.len()
        );
    }
    let keys = |packets: &[Packet]| packets.iter().filter(|p| p.key).count();
    assert!(keys(&packets(&mp4s[0], "v:0")) >= 7, "a keyframe a second");
    assert_published_run(&dir.join("in.flv"), &mp4s[0]);
}

/// Node-Media-Server sends a player that joins mid-stream the packets since the last keyframe
/// at once, ahead of the live ones: the worker's reader records from that keyframe on.
#[test]
fn a_reader_joining_node_media_server_mid_stream_records_from_its_cached_keyframe() {
    let server = RtmpServer::node_media_server();
    let dir = TempDir::new("readers-join");
    let input = dir.join("in.flv");
    make_input(&input, 8, "640x360", "aac");
    let url = server.url("join");
    let input_spec =
        InputSpec { io_timeout: Duration::from_secs(5), ..support::input(&url, Duration::from_millis(200)) };
    let recording = std::thread::scope(|scope| {
        scope.spawn(|| server.publish(&input, "join"));
        std::thread::sleep(Duration::from_millis(3500));
        let started = |seen: &[Output]| seen.iter().any(|o| matches!(o, Output::FileOpened { .. }));
        record(input_spec, support::spec(dir.path(), Duration::from_secs(2)), 10_000, |seen| {
            started(seen) && seen.last().is_some_and(is_waiting)
        })
    });
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    let mp4 = recording.mp4(0).0;
    let video = packets(&mp4, "v:0");
    assert!(video.first().is_some_and(|p| p.key), "the recording starts at a keyframe");
    let recorded = probe(&mp4);
    // Joined 3.5 s after the publisher started, with a keyframe a second: from the next
    // keyframe on it would be at most 4 s (unless the publish began 0.5 s late). Here it gave
    // 5 s, from the keyframe at 3 s.
    assert!(recorded.duration >= 4.5, "from the cached keyframe to the end of the 8 s publish: {recorded:?}");
    assert_published_run(&input, &mp4);
}

/// Asserts that each stream of the `recorded` file holds a run of the packets of `published`,
/// byte for byte.
fn assert_published_run(published: &Path, recorded: &Path) {
    let hashes = |path: &Path, stream| packets(path, stream).into_iter().map(|p| p.md5).collect::<Vec<_>>();
    for stream in ["v:0", "a:0"] {
        let (published, recorded) = (hashes(published, stream), hashes(recorded, stream));
        assert!(
            !recorded.is_empty() && published.windows(recorded.len()).any(|run| run == recorded.as_slice()),
            "{stream}: the recording's {} packets are not a run of the {} published",
            recorded.len(),
            published.len()
        );
    }
}
