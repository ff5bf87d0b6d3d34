//! The bench's publisher: one thread of this process publishes the prepared FLV file to N
//! publish URLs in real time, like N `ffmpeg -re -stream_loop -1 -c copy` processes but at a
//! small fraction of their CPU, which is not counted for either side. The file is read once;
//! each stream loops it with continuous timestamps (each loop offset by the file's length),
//! and every [`TICK`] every stream is sent what fell due since.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use roomrec_rtmp::{blocking, flv, Session, Status, Target};
use tokio::sync::oneshot;
use url::Url;

/// How often the publisher wakes to send what fell due.
const TICK: Duration = Duration::from_millis(20);
/// How long one stream may take to be publishing (handshake, connect, the media server's hook).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The streams' starts are spread over this much (a GOP of the input), so that their
/// keyframes do not all fall in the same tick, as with independent publishers.
const STAGGER: Duration = Duration::from_secs(2);
/// Bytes one stream may have waiting for its socket before it counts as stuck.
const MAX_PENDING_BYTES: usize = 8 << 20;
/// Room for what a server sends a publisher (acknowledgements, pings, status).
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// RTMP message types of FLV tags.
const AUDIO: u8 = 8;
const VIDEO: u8 = 9;
const DATA: u8 = 18;
/// What a publisher puts before a file's script data so the media server keeps it as the
/// stream's metadata (AMF0 string "@setDataFrame"), as libavformat's rtmp client does.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// The media of the file, each tag to send in every loop or only in the first.
struct Media<'a> {
    tags: Vec<flv::Tag<'a>>,
    /// Sent in the first loop only: the script data and the codecs' sequence headers (a
    /// publisher that loops a file does not resend them).
    first_loop_only: Vec<bool>,
    /// Milliseconds added to the timestamps in each further loop.
    loop_ms: u64,
}

impl<'a> Media<'a> {
    fn new(file: &'a [u8]) -> Result<Self> {
        let tags: Vec<flv::Tag<'a>> = flv::tags(file).filter(|t| matches!(t.kind, AUDIO | VIDEO | DATA)).collect();
        ensure!(!tags.is_empty(), "the input file holds no FLV tags");
        let first_loop_only = tags.iter().map(is_header).collect();
        // As long as the longest track, its last frame included (as `ffmpeg -stream_loop`
        // loops), so each loop's first frames follow the last ones on time.
        let loop_ms = [AUDIO, VIDEO].into_iter().map(|kind| track_ms(&tags, kind)).max().unwrap_or(1).max(1);
        Ok(Self { tags, first_loop_only, loop_ms })
    }
}

/// How long the track of `kind` lasts: its last timestamp plus the gap before it (its frame
/// length); 0 when it has no frames.
fn track_ms(tags: &[flv::Tag<'_>], kind: u8) -> u64 {
    let times = tags.iter().filter(|t| t.kind == kind && !is_header(t)).map(|t| u64::from(t.timestamp));
    let (before, last) = times.fold((None, None), |(_, last), ts| (last, Some(ts)));
    match (before, last) {
        (Some(before), Some(last)) => last + last.saturating_sub(before),
        (None, Some(last)) => last,
        _ => 0,
    }
}

/// Whether `tag` is script data or an AVC/AAC sequence header.
fn is_header(tag: &flv::Tag<'_>) -> bool {
    match (tag.kind, tag.data) {
        (DATA, _) => true,
        // VIDEO: codec AVC (7), AVCPacketType 0; AUDIO: format AAC (10), AACPacketType 0.
        (VIDEO, [flags, 0, ..]) => flags & 0x0f == 7,
        (AUDIO, [flags, 0, ..]) => flags >> 4 == 10,
        _ => false,
    }
}

/// One published stream.
struct Stream {
    url: String,
    socket: TcpStream,
    session: Session,
    /// When its media time 0 is.
    start: Instant,
    /// The next tag to send and how many loops of the file came before.
    cursor: usize,
    loops: u64,
    /// Why it stopped, once it has.
    ended: Option<String>,
}

/// Connects to `url` and publishes until the server says the publish started.
fn connect(url: &str) -> Result<(TcpStream, Session)> {
    let parsed = Url::parse(url).with_context(|| format!("parsing {url}"))?;
    let target = Target::from_url(&parsed).with_context(|| format!("{url} names no app and stream"))?;
    let host = parsed.host_str().context("the publish URL has no host")?;
    let mut socket =
        TcpStream::connect((host, parsed.port().unwrap_or(1935))).with_context(|| format!("connecting to {host}"))?;
    socket.set_nodelay(true).context("setting TCP_NODELAY")?;
    let mut session = Session::publish(target);
    blocking::start(&mut socket, &mut session, &mut Vec::new(), START_TIMEOUT)
        .with_context(|| format!("publishing to {}", redact(url)))?;
    if let Status::Ended(why) = session.status() {
        bail!("the media server refused the publish to {}: {why}", redact(url));
    }
    ensure!(*session.status() == Status::Started, "publishing to {} did not start", redact(url));
    socket.set_nonblocking(true).context("making the socket non-blocking")?;
    Ok((socket, session))
}

/// `url` without its query (the signature).
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

impl Stream {
    /// Sends every tag due by `now`, then as much of the session's output as the socket takes,
    /// then reads what the server sent.
    fn tick(&mut self, media: &Media<'_>, now: Instant, scratch: &mut [u8], data: &mut Vec<u8>) {
        if self.ended.is_some() {
            return;
        }
        if let Err(why) = self.send_due(media, now, data).and_then(|()| self.flush()).and_then(|()| self.read(scratch))
        {
            self.ended = Some(format!("{}: {why:#}", redact(&self.url)));
        }
    }

    fn send_due(&mut self, media: &Media<'_>, now: Instant, data: &mut Vec<u8>) -> Result<()> {
        let Some(elapsed) = now.checked_duration_since(self.start) else { return Ok(()) };
        let due_ms = elapsed.as_millis() as u64;
        loop {
            let tag = &media.tags[self.cursor];
            let timestamp = u64::from(tag.timestamp) + self.loops * media.loop_ms;
            if timestamp > due_ms {
                return Ok(());
            }
            if self.loops == 0 || !media.first_loop_only[self.cursor] {
                let payload = if tag.kind == DATA {
                    data.clear();
                    data.extend_from_slice(SET_DATA_FRAME);
                    data.extend_from_slice(tag.data);
                    data.as_slice()
                } else {
                    tag.data
                };
                // RTMP timestamps are 32-bit milliseconds: a run would wrap after 49 days.
                self.session.send(tag.kind, timestamp as u32, payload);
            }
            self.cursor += 1;
            if self.cursor == media.tags.len() {
                (self.cursor, self.loops) = (0, self.loops + 1);
            }
        }
    }

    fn flush(&mut self) -> Result<()> {
        while !self.session.pending().is_empty() {
            match self.socket.write(self.session.pending()) {
                Ok(0) => bail!("the media server closed the connection"),
                Ok(n) => self.session.sent(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("writing"),
            }
        }
        let waiting = self.session.pending().len();
        ensure!(waiting <= MAX_PENDING_BYTES, "{waiting} bytes wait for the media server to read them");
        Ok(())
    }

    fn read(&mut self, scratch: &mut [u8]) -> Result<()> {
        loop {
            match self.socket.read(scratch) {
                Ok(0) => bail!("the media server closed the connection"),
                Ok(n) => {
                    let status = self.session.receive(&scratch[..n], &mut Vec::new()).context("reading the server")?;
                    if let Status::Ended(why) = status {
                        bail!("the media server ended the stream: {why}");
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("reading"),
            }
        }
    }
}

/// What the publisher thread shares with the bench.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Streams that stopped, and why.
    ended: Mutex<Vec<String>>,
}

/// N streams being published by one thread; stopped (connections closed) when dropped.
pub struct Publisher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    tid: u32,
}

impl Publisher {
    /// Publishes `file` (an FLV file's bytes) to every URL of `urls`; returns once every
    /// stream is publishing, or fails if one could not start.
    pub async fn start(file: Arc<[u8]>, urls: Vec<String>) -> Result<Self> {
        let shared = Arc::new(Shared::default());
        let (started_tx, started_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("publisher".into())
            .spawn({
                let shared = shared.clone();
                move || run(&file, urls, &shared, started_tx)
            })
            .context("starting the publisher thread")?;
        let mut publisher = Self { shared, thread: Some(thread), tid: 0 };
        match started_rx.await {
            Ok(Ok(tid)) => publisher.tid = tid,
            Ok(Err(err)) => return Err(err),
            Err(_) => bail!("the publisher thread ended while starting"),
        }
        Ok(publisher)
    }

    /// The publisher thread's id (its CPU shows in `/proc/self/task/<tid>/stat`).
    pub fn tid(&self) -> u32 {
        self.tid
    }

    /// Fails if a stream has stopped (or the thread has), saying which and why.
    pub fn check_alive(&self) -> Result<()> {
        let ended = self.shared.ended.lock().map_err(|_| anyhow::anyhow!("the publisher thread panicked"))?;
        if let Some(first) = ended.first() {
            bail!("{} published streams stopped; the first: {first}", ended.len());
        }
        ensure!(self.thread.as_ref().is_some_and(|t| !t.is_finished()), "the publisher thread has ended");
        Ok(())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The publisher thread: starts every stream, says so on `started`, then publishes until told
/// to stop.
fn run(file: &[u8], urls: Vec<String>, shared: &Shared, started: oneshot::Sender<Result<u32>>) {
    let setup = || -> Result<(u32, Media<'_>, Vec<Stream>)> {
        let tid = roomrec_testkit::procs::current_tid()?;
        let media = Media::new(file)?;
        let mut streams = Vec::with_capacity(urls.len());
        for url in urls {
            if shared.stop.load(Ordering::Relaxed) {
                bail!("stopped while starting");
            }
            let (socket, session) = connect(&url)?;
            streams.push(Stream { url, socket, session, start: Instant::now(), cursor: 0, loops: 0, ended: None });
        }
        // Media time starts once all are connected, stream i's STAGGER·i/N later.
        let (base, count) = (Instant::now(), streams.len() as u32);
        for (i, stream) in streams.iter_mut().enumerate() {
            stream.start = base + STAGGER * i as u32 / count;
        }
        Ok((tid, media, streams))
    };
    let (media, mut streams) = match setup() {
        Ok((tid, media, streams)) => {
            let _ = started.send(Ok(tid));
            (media, streams)
        }
        Err(err) => {
            let _ = started.send(Err(err));
            return;
        }
    };
    let (mut scratch, mut data) = (vec![0; READ_BUFFER_BYTES], Vec::new());
    let mut next = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        for stream in &mut streams {
            let was_live = stream.ended.is_none();
            stream.tick(&media, now, &mut scratch, &mut data);
            if let (true, Some(why)) = (was_live, &stream.ended) {
                if let Ok(mut ended) = shared.ended.lock() {
                    ended.push(why.clone());
                }
            }
        }
        // What fell due during a slow tick is sent in the next: the media clock, not the
        // ticks, paces the streams.
        next = (next + TICK).max(Instant::now());
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An FLV file of `tags` (kind, timestamp ms, data).
    fn flv_file(tags: &[(u8, u32, &[u8])]) -> Vec<u8> {
        let mut file = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        for &(kind, timestamp, data) in tags {
            let size = data.len() as u32;
            file.push(kind);
            file.extend_from_slice(&size.to_be_bytes()[1..]);
            file.extend_from_slice(&timestamp.to_be_bytes()[1..]);
            file.push((timestamp >> 24) as u8);
            file.extend_from_slice(&[0, 0, 0]);
            file.extend_from_slice(data);
            file.extend_from_slice(&(size + 11).to_be_bytes());
        }
        file
    }

    #[test]
    fn a_loop_lasts_one_video_frame_past_the_last_tag_and_resends_no_headers() {
        let file = flv_file(&[
            (DATA, 0, b"\x02\x00\x0aonMetaData"),
            (VIDEO, 0, &[0x17, 0, 0, 0, 0]),
            (AUDIO, 0, &[0xaf, 0, 0x12, 0x10]),
            (VIDEO, 0, &[0x17, 1, 0, 0, 0, 0xaa]),
            (AUDIO, 10, &[0xaf, 1, 0xbb]),
            (VIDEO, 33, &[0x27, 1, 0, 0, 0, 0xcc]),
            (VIDEO, 66, &[0x27, 1, 0, 0, 0, 0xdd]),
        ]);
        let media = Media::new(&file).expect("tags");
        assert_eq!(media.tags.len(), 7);
        assert_eq!(media.loop_ms, 99, "the last video frame at 66 ms lasts 33 ms, past the audio's end at 20 ms");
        assert_eq!(media.first_loop_only, vec![true, true, true, false, false, false, false]);
    }

    #[test]
    fn a_loop_lasts_as_long_as_the_longer_track() {
        let file = flv_file(&[
            (VIDEO, 0, &[0x17, 1, 0, 0, 0, 0xaa]),
            (AUDIO, 0, &[0xaf, 1, 0xbb]),
            (VIDEO, 33, &[0x27, 1, 0, 0, 0, 0xcc]),
            (AUDIO, 23, &[0xaf, 1, 0xbb]),
            (AUDIO, 46, &[0xaf, 1, 0xbb]),
        ]);
        assert_eq!(Media::new(&file).expect("tags").loop_ms, 69, "audio ends at 46 + 23 ms, video at 66 ms");
    }

    #[test]
    fn a_file_without_tags_is_refused() {
        assert!(Media::new(&flv_file(&[])).is_err());
    }
}
