//! RTMPS through the buffered reader: TLS with the certificate checked against the roots the
//! system trusts (here a test CA named by `SSL_CERT_FILE`) and the URL's host name, in front
//! of nginx-rtmp (a small TLS terminator, as a CDN's RTMPS edge would be).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use roomrec_media::{Format, Output, RtmpReader};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::{self, is_waiting, make_input, probe, record, RtmpServer, TempDir};

/// A test CA and a certificate it signed for `localhost`, made once per test process; the
/// CA is what the reader trusts (`SSL_CERT_FILE`, read once by the reader's TLS roots).
fn certificates() -> &'static (PathBuf, PathBuf) {
    static MADE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    MADE.get_or_init(|| {
        let dir: &'static TempDir = Box::leak(Box::new(TempDir::new("rtmps-pki")));
        let (ca, cert, key) = make_certificates(dir.path());
        std::env::set_var("SSL_CERT_FILE", ca);
        (cert, key)
    })
}

fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=roomrec test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").expect("write san.ext");
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "leaf.key", "-out", "leaf.csr"]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "leaf.pem",
    ]);
    (dir.join("ca.pem"), dir.join("leaf.pem"), dir.join("leaf.key"))
}

/// Terminates TLS on a free port and relays each connection to `backend`; its port.
fn tls_terminator(cert: &Path, key: &Path, backend: u16) -> u16 {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert).expect("read leaf.pem").collect::<Result<_, _>>().expect("parse leaf.pem");
    let key = PrivateKeyDer::from_pem_file(key).expect("read leaf.key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .expect("a TLS server configuration");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            std::thread::spawn(move || relay(client, config, backend));
        }
    });
    port
}

fn relay(client: TcpStream, config: Arc<rustls::ServerConfig>, backend: u16) {
    let Ok(connection) = rustls::ServerConnection::new(config) else { return };
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", backend)) else { return };
    let _ = client.set_read_timeout(Some(Duration::from_millis(5)));
    let _ = server.set_nonblocking(true);
    let mut tls = rustls::StreamOwned::new(connection, client);
    let mut buf = vec![0; 64 << 10];
    loop {
        let mut moved = false;
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) if server.write_all(&buf[..n]).is_ok() => moved = true,
            Ok(_) => return,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        match server.read(&mut buf) {
            Ok(0) => return,
            Ok(n) if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_ok() => moved = true,
            Ok(_) => return,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
        if !moved {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn an_rtmps_stream_is_recorded_over_tls_checked_against_the_trusted_roots() {
    if support::rtmp_reader() != RtmpReader::Buffered {
        // libavformat's client checks certificates against GnuTLS's system store, which a
        // test cannot extend; RTMPS on that reader is only what it was before.
        eprintln!("skipped: RTMPS is tested on the buffered reader");
        return;
    }
    let dir = TempDir::new("rtmps");
    let (cert, key) = certificates();
    make_input(&dir.join("in.flv"), 6, "640x360", "aac");
    let server = RtmpServer::start();
    let port = tls_terminator(cert, key, server.port());
    let input = support::input(&format!("rtmps://localhost:{port}/live/secure"), Duration::from_millis(200));
    let ended = |seen: &[Output]| {
        let first = seen.iter().position(|o| matches!(o, Output::FileOpened { .. }));
        first.is_some_and(|first| seen[first..].iter().any(is_waiting))
    };
    let recording = std::thread::scope(|scope| {
        let recording = scope.spawn(|| record(input, support::spec(dir.path(), Duration::from_secs(2)), 10_000, ended));
        std::thread::sleep(Duration::from_secs(1));
        server.publish(&dir.join("in.flv"), "secure");
        recording.join().expect("the recorder")
    });
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    assert_eq!(recording.opened(Format::Mp4).len(), 1, "{:?}", recording.outputs);
    let probed = probe(&recording.mp4(0).0);
    assert_eq!(probed.codecs(), ["h264", "aac"]);
    assert!(probed.duration >= 4.5, "most of the 6 s publish: {probed:?}");
}

#[test]
fn an_rtmps_server_whose_certificate_names_another_host_is_not_recorded() {
    if support::rtmp_reader() != RtmpReader::Buffered {
        eprintln!("skipped: RTMPS is tested on the buffered reader");
        return;
    }
    let dir = TempDir::new("rtmps-name");
    let (cert, key) = certificates();
    let server = RtmpServer::start();
    let port = tls_terminator(cert, key, server.port());
    // The certificate is for localhost, the URL names 127.0.0.1.
    let input = support::input(&format!("rtmps://127.0.0.1:{port}/live/x"), Duration::from_millis(200));
    let recording =
        record(input, support::spec(dir.path(), Duration::from_secs(2)), 100, |seen| seen.iter().any(is_waiting));
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    assert_eq!(recording.count(|o| matches!(o, Output::FileOpened { .. })), 0, "{:?}", recording.outputs);
    let reasons = recording.waiting_reasons();
    assert!(reasons.iter().any(|r| r.contains("certificate not valid for name")), "{reasons:?}");
}
