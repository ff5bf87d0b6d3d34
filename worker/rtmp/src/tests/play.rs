//! A player against the fake server: commands out, FLV out, replies to the server's controls.

use super::server::{self, calls, handshake, head, obj, s, sent_messages, Amf, Script};
use crate::{flv, Session, Status, Target};

/// An FLV tag as the tests compare them: kind, timestamp, data.
pub type FlvTag = (u8, u32, Vec<u8>);

pub fn target() -> Target {
    let url = url::Url::parse("rtmp://127.0.0.1:1935/live/cam1?token=x").unwrap();
    Target::from_url(&url).unwrap()
}

/// What a player did with the server's bytes fed in pieces of `piece` bytes.
pub struct Run {
    pub flv: Vec<u8>,
    pub client: Vec<u8>,
    pub status: Status,
}

pub fn run(session: &mut Session, server: &[u8], piece: usize) -> Run {
    let mut client = session.pending().to_vec();
    session.sent(client.len());
    let mut flv = Vec::new();
    let mut status = Status::Starting;
    for bytes in server.chunks(piece) {
        status = session.receive(bytes, &mut flv).unwrap();
        client.extend_from_slice(session.pending());
        session.sent(session.pending().len());
    }
    Run { flv, client, status }
}

/// The server's side up to Play.Start: connect, createStream (stream 1), an FCSubscribe error
/// (ignored, as libav does), StreamBegin, Play.Reset and Play.Start.
pub fn started(window: u32) -> Script {
    let mut script = Script::new();
    script.control(5, &window.to_be_bytes());
    script.control(6, &[0, 0x4c, 0x4b, 0x40, 2]);
    let properties = obj(&[("fmsVer", s("FMS/3,0,1,123")), ("capabilities", Amf::Num(31.0))]);
    let info = obj(&[("level", s("status")), ("code", s("NetConnection.Connect.Success"))]);
    script.command(0, &[s("_result"), Amf::Num(1.0), properties, info]);
    script.command(0, &[s("_result"), Amf::Num(2.0), Amf::Null, Amf::Num(1.0)]);
    let failed = obj(&[("level", s("error")), ("code", s("NetConnection.Call.Failed"))]);
    script.command(0, &[s("_error"), Amf::Num(3.0), Amf::Null, failed]);
    script.control(4, &[0, 0, 0, 0, 0, 1]);
    script.status("status", "NetStream.Play.Reset", "Playing and resetting cam1.");
    script.status("status", "NetStream.Play.Start", "Started playing cam1.");
    script
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// The whole exchange: everything a live stream's server sends, in every header form, and
/// the FLV tags the player must write for it (kind, timestamp, data).
pub fn live_stream() -> (Vec<u8>, Vec<FlvTag>) {
    let mut script = started(4096);
    let mut expected = Vec::new();

    let access = server::encode(&[s("|RtmpSampleAccess"), Amf::Bool(true), Amf::Bool(true)]);
    script.message(head(0, 5, 0, 18), &access);
    expected.push((18, 0, access));
    let metadata = server::encode(&[s("onMetaData"), obj(&[("videocodecid", Amf::Num(7.0))])]);
    let mut set_data_frame = server::encode(&[s("@setDataFrame")]);
    set_data_frame.extend_from_slice(&metadata);
    script.message(head(0, 5, 0, 18), &set_data_frame);
    expected.push((18, 0, metadata));

    let (video_header, audio_header) = (bytes(40, 1), vec![0xaf, 0, 0x12, 0x10]);
    script.message(head(0, 6, 0, 9), &video_header);
    script.message(head(0, 4, 0, 8), &audio_header);
    expected.extend([(9, 0, video_header), (8, 0, audio_header)]);

    // A 300-byte keyframe in three chunks, two audio messages between them: a type-2 header
    // (delta 23) and a type-3 header starting a message (the same delta again).
    let keyframe = bytes(300, 2);
    let video = script.chunks(head(1, 6, 40, 9), None, &keyframe);
    let (audio1, audio2) = (bytes(4, 3), bytes(4, 4));
    let audio = [script.chunks(head(2, 4, 23, 8), None, &audio1), script.chunks(head(3, 4, 0, 8), None, &audio2)];
    for (i, chunk) in video.iter().enumerate() {
        script.out.extend_from_slice(chunk);
        if let Some(audio) = audio.get(i) {
            script.out.extend_from_slice(&audio[0]);
        }
    }
    expected.extend([(8, 23, audio1), (8, 46, audio2), (9, 40, keyframe)]);

    script.control(4, &[0, 6, 0, 0, 0x12, 0x34]);
    script.set_chunk_size(1000);
    let frame = bytes(2500, 5);
    script.message(head(1, 6, 40, 9), &frame);
    expected.push((9, 80, frame));

    // An extended timestamp, repeated on the continuation chunks as nginx-rtmp sends it, then
    // a type-3 header starting a message of the same length, which carries its extended delta
    // too (libav adds it to the last timestamp).
    let (late, later) = (bytes(2500, 6), bytes(2500, 7));
    for chunk in script.chunks(head(0, 6, 0, 9), Some(0x0100_0010), &late) {
        script.out.extend_from_slice(&chunk);
    }
    for chunk in script.chunks(head(3, 6, 0, 9), Some(40), &later) {
        script.out.extend_from_slice(&chunk);
    }
    expected.extend([(9, 0x0100_0010, late), (9, 0x0100_0038, later)]);

    script.message(head(0, 4, 100, 8), &[]); // empty: dropped, as libav does
    let mut aggregate = Vec::new();
    flv::write_tag(&mut aggregate, 8, 1000, b"a");
    flv::write_tag(&mut aggregate, 9, 1040, b"v");
    script.message(head(0, 70, 200_000, 22), &aggregate);
    expected.extend([(8, 200_000, b"a".to_vec()), (9, 200_040, b"v".to_vec())]);
    script.command(0, &[s("onBWDone"), Amf::Num(0.0), Amf::Null]);

    script.status("status", "NetStream.Play.UnpublishNotify", "Stop publishing");
    script.message(head(0, 6, 300, 9), b"after the end");

    let mut server = handshake();
    server.extend_from_slice(&script.out);
    (server, expected)
}

fn tags(flv: &[u8]) -> Vec<FlvTag> {
    flv::tags(flv).map(|t| (t.kind, t.timestamp, t.data.to_vec())).collect()
}

#[test]
fn a_live_stream_becomes_the_flv_libav_would_write_whatever_the_read_sizes() {
    let (server, expected) = live_stream();
    let whole = run(&mut Session::play(target()), &server, server.len());
    assert_eq!(whole.status, Status::Ended("NetStream.Play.UnpublishNotify: Stop publishing".into()));
    assert_eq!(&whole.flv[..13], b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
    assert_eq!(tags(&whole.flv), expected);
    // Every previous-tag size matches its tag.
    let mut at = 13;
    while at < whole.flv.len() {
        let size = u32::from_be_bytes([0, whole.flv[at + 1], whole.flv[at + 2], whole.flv[at + 3]]) as usize;
        at += 11 + size;
        assert_eq!(whole.flv[at..at + 4], ((11 + size) as u32).to_be_bytes());
        at += 4;
    }
    for piece in [1, 7, 1000] {
        let run = run(&mut Session::play(target()), &server, piece);
        assert_eq!((run.status, run.flv), (whole.status.clone(), whole.flv.clone()), "pieces of {piece}");
    }
}

#[test]
fn the_player_sends_libavs_commands_and_answers_pings_and_windows() {
    let (server, _) = live_stream();
    let one_by_one = run(&mut Session::play(target()), &server, 1);
    let sent = sent_messages(&one_by_one.client);
    let names: Vec<(String, f64)> = calls(&sent);
    let expected = [("connect", 1.0), ("createStream", 2.0), ("FCSubscribe", 3.0), ("play", 4.0), ("_checkbw", 5.0)];
    assert_eq!(names, expected.map(|(n, id)| (n.to_owned(), id)));

    let connect = obj(&[
        ("app", s("live")),
        ("flashVer", s("LNX 9,0,124,2")),
        ("tcUrl", s("rtmp://127.0.0.1:1935/live")),
        ("fpad", Amf::Bool(false)),
        ("capabilities", Amf::Num(15.0)),
        ("audioCodecs", Amf::Num(4071.0)),
        ("videoCodecs", Amf::Num(252.0)),
        ("videoFunction", Amf::Num(1.0)),
    ]);
    assert_eq!(sent[0].command(), [s("connect"), Amf::Num(1.0), connect]);
    let play = sent.iter().find(|m| m.kind == 20 && m.command()[0] == s("play")).unwrap();
    assert_eq!(play.command(), [s("play"), Amf::Num(4.0), Amf::Null, s("cam1?token=x"), Amf::Num(-1000.0)]);
    assert_eq!(play.stream_id, 1);

    let controls: Vec<(u8, Vec<u8>)> =
        sent.iter().filter(|m| m.kind != 20 && m.kind != 3).map(|m| (m.kind, m.payload.clone())).collect();
    assert_eq!(
        controls,
        [
            (5, 4096u32.to_be_bytes().to_vec()),           // our window, the server's
            (4, vec![0, 3, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8]), // SetBufferLength 3000 ms
            (4, vec![0, 7, 0, 0, 0x12, 0x34]),             // PingResponse
        ]
    );
    // Fed a byte at a time, the player acknowledges exactly at each 4096-byte window.
    let acks: Vec<u32> = sent
        .iter()
        .filter(|m| m.kind == 3)
        .map(|m| u32::from_be_bytes([m.payload[0], m.payload[1], m.payload[2], m.payload[3]]))
        .collect();
    let received = (server.len() - 1 - 2 * crate::handshake::PACKET_BYTES) as u32;
    assert_eq!(acks, (1..=received / 4096).map(|i| i * 4096).collect::<Vec<_>>());
}

/// An `onMetaData` ECMA array with a number for each of `keys`.
fn metadata(keys: &[&str]) -> Vec<u8> {
    let mut data = vec![2, 0, 10];
    data.extend_from_slice(b"onMetaData");
    data.push(8);
    data.extend_from_slice(&(keys.len() as u32).to_be_bytes());
    for key in keys {
        data.extend_from_slice(&(key.len() as u16).to_be_bytes());
        data.extend_from_slice(key.as_bytes());
        data.push(0);
        data.extend_from_slice(&7.0f64.to_be_bytes());
    }
    data.extend_from_slice(&[0, 0, 9]);
    data
}

#[test]
fn the_flv_header_names_the_streams_the_metadata_names_as_libav_does() {
    for (keys, flags) in
        [(&["audiocodecid", "width"][..], 4), (&["videocodecid"][..], 1), (&["audiocodecid", "videocodecid"][..], 5)]
    {
        let mut script = started(2_500_000);
        script.message(head(0, 4, 0, 18), &metadata(keys));
        script.message(head(0, 4, 5, 8), b"d");
        let mut server = handshake();
        server.extend_from_slice(&script.out);
        let run = run(&mut Session::play(target()), &server, server.len());
        assert_eq!(&run.flv[..5], &[b'F', b'L', b'V', 1, flags], "{keys:?}");
    }
}

#[test]
fn flv_output_is_byte_exact() {
    let mut script = started(2_500_000);
    script.message(head(0, 6, 0x0102_0304, 9), b"abc");
    script.message(head(0, 4, 5, 8), b"d");
    let mut server = handshake();
    server.extend_from_slice(&script.out);
    let run = run(&mut Session::play(target()), &server, server.len());
    assert_eq!(run.status, Status::Started);
    let expected: &[u8] = &[
        // File header (video first: only video is known, as libav flags it), previous size 0.
        b'F', b'L', b'V', 1, 1, 0, 0, 0, 9, 0, 0, 0, 0, 9, 0, 0, 3, 0x02, 0x03, 0x04, 0x01, 0, 0, 0, b'a', b'b', b'c',
        0, 0, 0, 14, // video
        8, 0, 0, 1, 0, 0, 5, 0, 0, 0, 0, b'd', 0, 0, 0, 12, // audio
    ];
    assert_eq!(run.flv, expected);
}

#[test]
fn media_before_play_start_is_not_written() {
    let mut script = Script::new();
    script.message(head(0, 6, 0, 9), b"too early");
    let mut server = handshake();
    server.extend_from_slice(&script.out);
    let run = run(&mut Session::play(target()), &server, server.len());
    assert_eq!((run.status, run.flv.len()), (Status::Starting, 0));
}

fn ended_with(script: Script) -> Status {
    let mut server = handshake();
    server.extend_from_slice(&script.out);
    run(&mut Session::play(target()), &server, 3).status
}

#[test]
fn a_missing_stream_ends_with_the_servers_code_and_description() {
    let mut script = started(4096);
    script.status("error", "NetStream.Play.StreamNotFound", "No such stream");
    assert_eq!(ended_with(script), Status::Ended("NetStream.Play.StreamNotFound: No such stream".into()));
}

#[test]
fn a_rejected_connect_ends_the_session() {
    let mut script = Script::new();
    let info = obj(&[("level", s("error")), ("code", s("NetConnection.Connect.Rejected")), ("description", s("no"))]);
    script.command(0, &[s("_error"), Amf::Num(1.0), Amf::Null, info]);
    assert_eq!(ended_with(script), Status::Ended("connect failed: NetConnection.Connect.Rejected: no".into()));
}

#[test]
fn stream_eof_ends_the_session() {
    let mut script = started(4096);
    script.control(4, &[0, 1, 0, 0, 0, 1]);
    assert_eq!(ended_with(script), Status::Ended("StreamEOF".into()));
}

#[test]
fn the_end_text_is_printable_and_at_most_200_chars() {
    let mut script = started(4096);
    let description = format!("bad\u{7}\n{}", "x".repeat(300));
    script.status("error", "NetStream.Failed", &description);
    let Status::Ended(text) = ended_with(script) else { panic!("not ended") };
    assert_eq!(text.chars().count(), 200);
    assert!(text.starts_with("NetStream.Failed: badxxx"), "{text}");
}
