//! The proxy between a client and an echo upstream, both on loopback: each mode as the client
//! sees it, on new and on live connections, and the control API over real HTTP.
#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use roomrec_faultproxy::{serve_control, FaultProxy, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Long enough for loopback to answer; a read that waits this long is stalled.
const PATIENCE: Duration = Duration::from_millis(300);
/// Upper bound for anything that should happen, so a broken proxy fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(5);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// An upstream that sends back every byte it gets.
async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn proxy_to_echo() -> FaultProxy {
    FaultProxy::start(loopback(), echo_upstream().await).await.unwrap()
}

/// Sends `message` and reads as many bytes back, failing after [`PATIENCE`].
async fn echo(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(message).await?;
    let mut back = vec![0; message.len()];
    match timeout(PATIENCE, stream.read_exact(&mut back)).await {
        Ok(read) => read.map(|_| back),
        Err(_) => Err(ErrorKind::TimedOut.into()),
    }
}

/// Reads once; a live connection the proxy ended answers EOF or an error, never bytes.
async fn read_after_end(stream: &mut TcpStream) -> std::io::Result<usize> {
    let mut buf = [0; 16];
    timeout(DEADLINE, stream.read(&mut buf)).await.expect("the proxy left the connection open")
}

#[tokio::test]
async fn pass_forwards_bytes_both_ways_on_one_connection() {
    let proxy = proxy_to_echo().await;
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    assert_eq!(echo(&mut client, b"first").await.unwrap(), b"first");
    assert_eq!(echo(&mut client, b"second").await.unwrap(), b"second");
    assert_eq!(proxy.stats().accepted.pass, 1);
}

#[tokio::test]
async fn refuse_makes_a_new_connect_fail_with_connection_refused() {
    let proxy = proxy_to_echo().await;
    proxy.set_mode(Mode::Refuse, None).await.unwrap();
    let err = TcpStream::connect(proxy.listen_addr()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn refuse_closes_a_live_connection_and_pass_listens_again_on_the_same_address() {
    let proxy = proxy_to_echo().await;
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    echo(&mut client, b"alive").await.unwrap();
    proxy.set_mode(Mode::Refuse, None).await.unwrap();
    assert!(matches!(read_after_end(&mut client).await, Ok(0) | Err(_)));

    proxy.set_mode(Mode::Pass, None).await.unwrap();
    let mut again = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    assert_eq!(echo(&mut again, b"back").await.unwrap(), b"back");
    assert_eq!(proxy.stats().closed_by_refuse, 1);
}

#[tokio::test]
async fn reset_resets_a_live_connection() {
    let proxy = proxy_to_echo().await;
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    echo(&mut client, b"alive").await.unwrap();
    proxy.set_mode(Mode::Reset, None).await.unwrap();
    assert_eq!(read_after_end(&mut client).await.unwrap_err().kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn reset_resets_a_new_connection_right_after_its_accept() {
    let proxy = proxy_to_echo().await;
    proxy.set_mode(Mode::Reset, None).await.unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    assert_eq!(read_after_end(&mut client).await.unwrap_err().kind(), ErrorKind::ConnectionReset);
    let stats = proxy.stats();
    assert_eq!((stats.accepted.reset, stats.reset), (1, 1));
}

#[tokio::test]
async fn stall_holds_a_live_connections_bytes_and_pass_delivers_them() {
    let proxy = proxy_to_echo().await;
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    echo(&mut client, b"alive").await.unwrap();
    proxy.set_mode(Mode::Stall, None).await.unwrap();
    assert_eq!(echo(&mut client, b"held").await.unwrap_err().kind(), ErrorKind::TimedOut);

    proxy.set_mode(Mode::Pass, None).await.unwrap();
    let mut back = [0; 4];
    timeout(DEADLINE, client.read_exact(&mut back)).await.unwrap().unwrap();
    assert_eq!(&back, b"held");
}

#[tokio::test]
async fn stall_accepts_a_new_connection_but_forwards_nothing_until_reset_resets_it() {
    let proxy = proxy_to_echo().await;
    proxy.set_mode(Mode::Stall, None).await.unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    assert_eq!(echo(&mut client, b"held").await.unwrap_err().kind(), ErrorKind::TimedOut);
    assert_eq!(proxy.stats().accepted.stall, 1);

    proxy.set_mode(Mode::Reset, None).await.unwrap();
    assert_eq!(read_after_end(&mut client).await.unwrap_err().kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn a_mode_set_for_a_while_goes_back_to_pass() {
    let proxy = proxy_to_echo().await;
    proxy.set_mode(Mode::Refuse, Some(Duration::from_millis(500))).await.unwrap();
    assert!(TcpStream::connect(proxy.listen_addr()).await.is_err());

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(proxy.mode(), Mode::Pass);
    let mut client = timeout(DEADLINE, connect_when_listening(proxy.listen_addr())).await.unwrap();
    assert_eq!(echo(&mut client, b"back").await.unwrap(), b"back");
}

#[tokio::test]
async fn a_switch_superseded_before_the_listener_follows_still_returns_at_once() {
    let proxy = proxy_to_echo().await;
    timeout(PATIENCE, proxy.set_mode(Mode::Refuse, Some(Duration::ZERO))).await.unwrap().unwrap();
    let mut client = timeout(DEADLINE, connect_when_listening(proxy.listen_addr())).await.unwrap();
    assert_eq!(echo(&mut client, b"back").await.unwrap(), b"back");
}

/// Connects once the listener is back; reopening follows the mode within moments.
async fn connect_when_listening(addr: SocketAddr) -> TcpStream {
    loop {
        if let Ok(stream) = TcpStream::connect(addr).await {
            return stream;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_later_mode_change_cancels_the_pending_return_to_pass() {
    let proxy = proxy_to_echo().await;
    proxy.set_mode(Mode::Stall, Some(Duration::from_millis(100))).await.unwrap();
    proxy.set_mode(Mode::Reset, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(proxy.mode(), Mode::Reset);
}

#[tokio::test]
async fn a_client_is_reset_when_the_upstream_refuses() {
    // Bound but not listening: the port is refused, and stays ours while the test runs.
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind(loopback()).unwrap();
    let proxy = FaultProxy::start(loopback(), refusing.local_addr().unwrap()).await.unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    assert_eq!(read_after_end(&mut client).await.unwrap_err().kind(), ErrorKind::ConnectionReset);
}

/// Sends one HTTP/1.1 request to `addr` and returns the status code and the body.
async fn http(addr: SocketAddr, method: &str, target: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {target} HTTP/1.1\r\nHost: control\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout(DEADLINE, stream.read_to_string(&mut response)).await.unwrap().unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap())
}

#[tokio::test]
async fn the_control_api_switches_modes_and_counts_connections_per_mode() {
    let proxy = proxy_to_echo().await;
    let control = TcpListener::bind(loopback()).await.unwrap();
    let control_addr = control.local_addr().unwrap();
    tokio::spawn(serve_control(control, proxy.clone()));
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    echo(&mut client, b"alive").await.unwrap();

    let (status, body) = http(control_addr, "POST", "/mode/reset?for=60").await;
    assert_eq!((status, &body), (200, &serde_json::json!({ "mode": "reset", "revert_after_secs": 60.0 })));
    assert_eq!(read_after_end(&mut client).await.unwrap_err().kind(), ErrorKind::ConnectionReset);
    assert_eq!(http(control_addr, "POST", "/mode/stall").await.0, 200);
    let mut stalled = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    assert_eq!(echo(&mut stalled, b"held").await.unwrap_err().kind(), ErrorKind::TimedOut);

    let (status, stats) = http(control_addr, "GET", "/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["mode"], "stall");
    assert_eq!(stats["accepted"], serde_json::json!({ "pass": 1, "stall": 1, "reset": 0 }));
    assert_eq!(stats["reset"], 1);
}

#[tokio::test]
async fn the_control_api_answers_400_for_an_unknown_mode_or_a_bad_for_and_404_elsewhere() {
    let proxy = proxy_to_echo().await;
    let control = TcpListener::bind(loopback()).await.unwrap();
    let control_addr = control.local_addr().unwrap();
    tokio::spawn(serve_control(control, proxy.clone()));

    let (status, body) = http(control_addr, "POST", "/mode/drop").await;
    assert_eq!((status, body["error_code"].as_str()), (400, Some("unknown_mode")));
    let (status, body) = http(control_addr, "POST", "/mode/stall?for=soon").await;
    assert_eq!((status, body["error_code"].as_str()), (400, Some("invalid_for")));
    assert_eq!(http(control_addr, "GET", "/mode/stall").await.0, 404);
    assert_eq!(proxy.mode(), Mode::Pass);
}
