//! A publisher against the fake server: libav's command sequence, then media chunked at 64 KiB.

use super::play::{run, target};
use super::server::{self, calls, handshake, obj, s, sent_messages, Amf, Script};
use crate::{Session, Status};

fn publishing(script: &mut Script) {
    script.control(5, &5_000_000u32.to_be_bytes());
    script.set_chunk_size(4096);
    let info = obj(&[("level", s("status")), ("code", s("NetConnection.Connect.Success"))]);
    script.command(0, &[s("_result"), Amf::Num(1.0), Amf::Null, info]);
    script.command(0, &[s("onFCPublish"), Amf::Num(0.0), Amf::Null]);
    script.command(0, &[s("_result"), Amf::Num(4.0), Amf::Null, Amf::Num(1.0)]);
    script.status("status", "NetStream.Publish.Start", "Start publishing");
}

#[test]
fn the_publisher_sends_libavs_commands_then_the_media_as_sent() {
    let mut script = Script::new();
    publishing(&mut script);
    let mut server = handshake();
    server.extend_from_slice(&script.out);
    let mut session = Session::publish(target());
    session.send(9, 0, b"before the start: ignored");
    let start = run(&mut session, &server, 5);
    assert_eq!(start.status, Status::Started);

    let metadata = server::encode(&[s("onMetaData"), obj(&[("duration", Amf::Num(4.0))])]);
    let keyframe: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let media: [(u8, u32, &[u8]); 4] =
        [(18, 0, &metadata), (9, 0, &keyframe), (8, 23, b"audio"), (9, 0x0100_0000, b"late frame")];
    for (kind, timestamp, payload) in media {
        session.send(kind, timestamp, payload);
    }
    let mut client = start.client;
    client.extend_from_slice(session.pending());

    // Set Chunk Size 65536 comes first, right after C2.
    let after_handshake = &client[1 + 2 * crate::handshake::PACKET_BYTES..];
    assert_eq!(after_handshake[..16], [2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 1, 0, 0]);

    let sent = sent_messages(&client);
    let names = calls(&sent);
    let expected =
        [("connect", 1.0), ("releaseStream", 2.0), ("FCPublish", 3.0), ("createStream", 4.0), ("publish", 5.0)];
    assert_eq!(names, expected.map(|(n, id)| (n.to_owned(), id)));
    let connect = obj(&[
        ("app", s("live")),
        ("type", s("nonprivate")),
        ("flashVer", s("FMLE/3.0 (compatible; roomrec-rtmp)")),
        ("tcUrl", s("rtmp://127.0.0.1:1935/live")),
    ]);
    assert_eq!(sent[0].command(), [s("connect"), Amf::Num(1.0), connect]);
    let publish = sent.iter().find(|m| m.kind == 20 && m.command()[0] == s("publish")).unwrap();
    assert_eq!(publish.command(), [s("publish"), Amf::Num(5.0), Amf::Null, s("cam1?token=x"), s("live")]);
    assert_eq!(publish.stream_id, 1);

    let got: Vec<(u8, u32, u32, Vec<u8>)> = sent
        .iter()
        .filter(|m| matches!(m.kind, 8 | 9 | 18))
        .map(|m| (m.kind, m.timestamp, m.stream_id, m.payload.clone()))
        .collect();
    let mut set_data_frame = server::encode(&[s("@setDataFrame")]);
    set_data_frame.extend_from_slice(&metadata);
    let want: Vec<(u8, u32, u32, Vec<u8>)> = media
        .iter()
        .map(|&(kind, timestamp, payload)| {
            let payload = if kind == 18 { set_data_frame.clone() } else { payload.to_vec() };
            (kind, timestamp, 1, payload)
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_refused_publish_ends_the_session() {
    let mut script = Script::new();
    script.command(0, &[s("_result"), Amf::Num(1.0), Amf::Null, Amf::Null]);
    script.command(0, &[s("_result"), Amf::Num(4.0), Amf::Null, Amf::Num(1.0)]);
    script.status("error", "NetStream.Publish.BadName", "Already publishing");
    let mut server = handshake();
    server.extend_from_slice(&script.out);
    let run = run(&mut Session::publish(target()), &server, 64);
    assert_eq!(run.status, Status::Ended("NetStream.Publish.BadName: Already publishing".into()));
}
