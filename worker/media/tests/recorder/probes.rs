//! The preflight's probe: a stream's codecs read as a recording would open it, within the
//! open's deadline, and the stable outcomes of streams that are not there or not allowed.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use roomrec_media::{probe, InputSpec, ProbeError};

use crate::support::{self, file_url, make_input, TempDir};

#[test]
fn a_stream_s_codecs_size_and_rate_are_read_and_recordable() {
    let dir = TempDir::new("probe-ok");
    let path = dir.join("in.flv");
    make_input(&path, 2, "320x240", "aac");
    let probed = probe(&support::input(&file_url(&path), Duration::from_secs(1))).unwrap();

    let video = probed.video.unwrap();
    assert_eq!((video.codec.as_str(), video.width, video.height), ("h264", 320, 240));
    assert!((video.fps - 25.0).abs() < 0.01, "fps {}", video.fps);
    assert!(video.recordable);
    let audio = probed.audio.unwrap();
    assert_eq!((audio.codec.as_str(), audio.sample_rate), ("aac", 48000));
    assert!(audio.recordable);
}

#[test]
fn a_port_that_accepts_and_never_speaks_is_unreachable_within_the_open_deadline() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rtmp://127.0.0.1:{}/live/nobody", silent.local_addr().unwrap().port());
    let started = Instant::now();
    let result = probe(&support::input(&url, Duration::from_secs(1)));
    assert!(matches!(result, Err(ProbeError::Unreachable(_))), "{result:?}");
    // io_timeout 2 s plus the open's probe budget of 3 s.
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

#[test]
fn a_closed_port_is_unreachable_and_a_file_url_from_a_user_is_not_allowed() {
    let closed = support::free_port();
    let result = probe(&support::input(&format!("rtmp://127.0.0.1:{closed}/live/k"), Duration::from_secs(1)));
    assert!(matches!(result, Err(ProbeError::Unreachable(_))), "{result:?}");

    let user = InputSpec { allow_file: false, ..support::input("file:/etc/hostname", Duration::from_secs(1)) };
    assert!(matches!(probe(&user), Err(ProbeError::SchemeNotAllowed)));
}
