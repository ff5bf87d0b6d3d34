//! The worker judges a stream's address when it connects, not only when the URL was saved: a
//! host name that resolves to loopback passes the API (it cannot resolve names on save) but
//! the worker never connects to it, and the job ends as one whose source never came.

use std::net::{IpAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

use roomrec_tests::json_log_lines;
use serde_json::json;

use crate::support::{objects, Setup};

/// A host name (not `localhost`, which the API refuses) whose every address is loopback:
/// the machine's own name, which /etc/hosts maps to 127.0.1.1 on Debian, or another name
/// /etc/hosts gives a loopback address.
pub(crate) fn name_resolving_to_loopback() -> String {
    let loopback_only = |name: &str| {
        let addrs: Vec<IpAddr> = (name, 80).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default();
        !addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback)
    };
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default().trim().to_owned();
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let listed = hosts
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split_whitespace().skip(1).map(str::to_owned).collect::<Vec<_>>());
    std::iter::once(hostname)
        .chain(listed)
        .find(|name| !name.is_empty() && !name.contains("localhost") && loopback_only(name))
        .expect("this test needs a host name other than localhost that resolves to loopback only (/etc/hosts)")
}

/// A listener the worker must never connect to.
pub(crate) fn untouchable() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_saved_but_the_worker_never_connects_to_it() {
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let host = name_resolving_to_loopback();
    let (rtmp_listener, rtmp_port) = untouchable();
    let (http_listener, http_port) = untouchable();
    let streams = [
        ("rtmp-user", format!("rtmp://{host}:{rtmp_port}/live/x")),
        ("hls-user", format!("http://{host}:{http_port}/live/x.m3u8")),
    ];
    let mut jobs = Vec::new();
    for (user, url) in &streams {
        let path = format!("/v2/apps/{}/rooms/room1/streams/{user}", setup.app);
        let joined = setup.api.put(&path, &json!({ "url": url })).await;
        assert_eq!(joined.status, 201, "{url} is saved: {:?}", joined.body);
        jobs.push(setup.start_job("room1", user, 5).await);
    }
    for job in &jobs {
        let stopped = setup.wait_for_state(job, "STOPPED", Duration::from_secs(40)).await;
        assert_eq!(stopped["stop_reason"], "EXCEED_MAX_IDLE_TIME", "ends as an unreachable source does");
    }
    assert!(rtmp_listener.accept().is_err(), "the worker connected to the loopback RTMP listener");
    assert!(http_listener.accept().is_err(), "the worker connected to the loopback HTTP listener");
    assert!(objects(&setup.bucket, &setup.prefix).await.is_empty());
    for port in [rtmp_port, http_port] {
        let refused = json_log_lines(
            "worker",
            &["a stream pull was refused", &format!("\"port\":{port}")],
            |_| true,
            Duration::from_secs(5),
        );
        assert!(!refused.is_empty(), "the worker logs why it refused port {port}");
    }
}
