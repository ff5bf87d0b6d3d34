//! Commands and their replies, in libav's order and shape (rtmpproto.c: `gen_connect`,
//! `handle_invoke_result`, `handle_invoke_error`, `handle_invoke_status`).

use super::{
    Core, Role, COMMAND_AMF0, PUBLISH_CHUNK_SIZE, SET_BUFFER_LENGTH, SET_CHUNK_SIZE, SOURCE_CHANNEL, SYSTEM_CHANNEL,
    USER_CONTROL, WINDOW_ACK_SIZE,
};
use crate::amf::{self, Value};
use crate::chunk::Header;
use crate::Status;

/// Window Acknowledgement Size a player announces when the server named none (libav's default
/// `server_bw`).
const DEFAULT_WINDOW_BYTES: u32 = 2_500_000;
/// The play buffer announced with SetBufferLength (libav's `rtmp_buffer` default).
const BUFFER_LENGTH_MS: u32 = 3000;
/// libav's play start for live streams: `rtmp_live=live` (-1) times 1000.
const PLAY_START_LIVE: f64 = -1000.0;
/// What libav announces as flashVer when playing (`RTMP_CLIENT_PLATFORM` and version).
const PLAYER_FLASH_VERSION: &str = "LNX 9,0,124,2";
const PUBLISHER_FLASH_VERSION: &str = "FMLE/3.0 (compatible; roomrec-rtmp)";
/// Calls awaiting a reply that are remembered (we make at most five).
const MAX_CALLS: usize = 16;

/// A call whose _result or _error we wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    Connect,
    ReleaseStream,
    FcPublish,
    CreateStream,
    FcSubscribe,
    Play,
    Publish,
    CheckBandwidth,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Connect => "connect",
            Call::ReleaseStream => "releaseStream",
            Call::FcPublish => "FCPublish",
            Call::CreateStream => "createStream",
            Call::FcSubscribe => "FCSubscribe",
            Call::Play => "play",
            Call::Publish => "publish",
            Call::CheckBandwidth => "_checkbw",
        }
    }

    /// Errors libav ignores: Adobe-specific calls many servers do not know
    /// (`handle_invoke_error`).
    fn optional(self) -> bool {
        matches!(self, Call::ReleaseStream | Call::FcPublish | Call::FcSubscribe | Call::CheckBandwidth)
    }
}

impl Core {
    /// After the handshake: the publisher's chunk size, then connect.
    pub(super) fn connect(&mut self) {
        if self.role == Role::Publisher {
            self.control(SET_CHUNK_SIZE, &PUBLISH_CHUNK_SIZE.to_be_bytes());
            self.writer.chunk_size = PUBLISH_CHUNK_SIZE as usize;
        }
        let mut body = self.start_call("connect", Call::Connect);
        amf::write_object_start(&mut body);
        amf::write_key(&mut body, "app");
        amf::write_string(&mut body, &self.target.app);
        if self.role == Role::Publisher {
            amf::write_key(&mut body, "type");
            amf::write_string(&mut body, "nonprivate");
        }
        amf::write_key(&mut body, "flashVer");
        let version = if self.role == Role::Player { PLAYER_FLASH_VERSION } else { PUBLISHER_FLASH_VERSION };
        amf::write_string(&mut body, version);
        amf::write_key(&mut body, "tcUrl");
        amf::write_string(&mut body, &self.target.tc_url);
        if self.role == Role::Player {
            amf::write_key(&mut body, "fpad");
            amf::write_bool(&mut body, false);
            let numbers =
                [("capabilities", 15.0), ("audioCodecs", 4071.0), ("videoCodecs", 252.0), ("videoFunction", 1.0)];
            for (key, value) in numbers {
                amf::write_key(&mut body, key);
                amf::write_number(&mut body, value);
            }
        }
        amf::write_object_end(&mut body);
        self.finish_call(SYSTEM_CHANNEL, 0, body);
    }

    /// Starts a command body: name, a new transaction id (remembered with `call`).
    fn start_call(&mut self, name: &str, call: Call) -> Vec<u8> {
        self.transactions += 1;
        if self.calls.len() == MAX_CALLS {
            self.calls.remove(0);
        }
        self.calls.push((self.transactions, call));
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        amf::write_string(&mut body, name);
        amf::write_number(&mut body, f64::from(self.transactions));
        body
    }

    fn finish_call(&mut self, chunk_stream: u32, stream_id: u32, body: Vec<u8>) {
        let header = Header { chunk_stream, kind: COMMAND_AMF0, timestamp: 0, stream_id };
        self.writer.write(&mut self.out, header, &[&body]);
        self.body = body;
    }

    /// A call whose arguments are null and one string (releaseStream, FCPublish, FCSubscribe).
    fn call_with_name(&mut self, name: &str, call: Call) {
        let mut body = self.start_call(name, call);
        amf::write_null(&mut body);
        amf::write_string(&mut body, &self.target.stream);
        self.finish_call(SYSTEM_CHANNEL, 0, body);
    }

    pub(super) fn on_command(&mut self, payload: &[u8]) {
        let mut reader = amf::Reader::new(payload);
        let Ok(Value::String(name)) = reader.value() else { return };
        let transaction = reader.value().ok().and_then(|v| v.as_number()).unwrap_or(0.0);
        // Lenient like libav: the values up to the first one we cannot read.
        let mut args = Vec::new();
        while let Ok(value) = reader.value() {
            args.push(value);
        }
        match name {
            b"_result" => self.on_result(transaction, &args),
            b"_error" => {
                let call = self.take_call(transaction);
                if !call.is_some_and(Call::optional) {
                    let what = call.map_or("a call", Call::name);
                    let (code, description) = status_fields(&args);
                    self.end(&format!("{what} failed: {code}: {description}"));
                }
            }
            b"onStatus" => self.on_status(&args),
            b"onBWDone" => {
                let mut body = self.start_call("_checkbw", Call::CheckBandwidth);
                amf::write_null(&mut body);
                self.finish_call(SYSTEM_CHANNEL, 0, body);
            }
            _ => {}
        }
    }

    fn take_call(&mut self, transaction: f64) -> Option<Call> {
        let index = self.calls.iter().position(|(id, _)| f64::from(*id) == transaction)?;
        Some(self.calls.remove(index).1)
    }

    fn on_result(&mut self, transaction: f64, args: &[Value<'_>]) {
        match (self.take_call(transaction), self.role) {
            (Some(Call::Connect), Role::Player) => {
                let window = self.window.unwrap_or(DEFAULT_WINDOW_BYTES);
                self.control(WINDOW_ACK_SIZE, &window.to_be_bytes());
                self.create_stream();
                self.call_with_name("FCSubscribe", Call::FcSubscribe);
            }
            (Some(Call::Connect), Role::Publisher) => {
                self.call_with_name("releaseStream", Call::ReleaseStream);
                self.call_with_name("FCPublish", Call::FcPublish);
                self.create_stream();
            }
            (Some(Call::CreateStream), role) => {
                // The stream id is the reply's first number (after the null command object).
                if let Some(id) = args.iter().find_map(Value::as_number) {
                    self.stream_id = id as u32;
                }
                match role {
                    Role::Player => self.play(),
                    Role::Publisher => {
                        let mut body = self.start_call("publish", Call::Publish);
                        amf::write_null(&mut body);
                        amf::write_string(&mut body, &self.target.stream);
                        amf::write_string(&mut body, "live");
                        self.finish_call(SOURCE_CHANNEL, self.stream_id, body);
                    }
                }
            }
            _ => {}
        }
    }

    fn create_stream(&mut self) {
        let mut body = self.start_call("createStream", Call::CreateStream);
        amf::write_null(&mut body);
        self.finish_call(SYSTEM_CHANNEL, 0, body);
    }

    fn play(&mut self) {
        let mut body = self.start_call("play", Call::Play);
        amf::write_null(&mut body);
        amf::write_string(&mut body, &self.target.stream);
        amf::write_number(&mut body, PLAY_START_LIVE);
        self.finish_call(SOURCE_CHANNEL, self.stream_id, body);
        let mut buffer = [0; 10];
        buffer[..2].copy_from_slice(&SET_BUFFER_LENGTH.to_be_bytes());
        buffer[2..6].copy_from_slice(&self.stream_id.to_be_bytes());
        buffer[6..].copy_from_slice(&BUFFER_LENGTH_MS.to_be_bytes());
        self.control(USER_CONTROL, &buffer);
    }

    fn on_status(&mut self, args: &[Value<'_>]) {
        let Some(info) = args.iter().find(|v| matches!(v, Value::Object(_) | Value::EcmaArray(_))) else { return };
        let text = |key| info.get(key).and_then(Value::as_str).unwrap_or_default();
        let code = text("code");
        if text("level") == b"error".as_slice() {
            let (code, description) = status_fields(args);
            self.end(&format!("{code}: {description}"));
            return;
        }
        match (code, self.role) {
            (b"NetStream.Play.Start", Role::Player) | (b"NetStream.Publish.Start", Role::Publisher)
                if self.status == Status::Starting =>
            {
                self.status = Status::Started;
            }
            (b"NetStream.Play.Stop" | b"NetStream.Play.UnpublishNotify", _) => {
                let (code, description) = status_fields(args);
                self.end(&format!("{code}: {description}"));
            }
            _ => {}
        }
    }
}

/// The code and description of a status or error reply's info object.
fn status_fields(args: &[Value<'_>]) -> (String, String) {
    let info = args.iter().find(|v| matches!(v, Value::Object(_) | Value::EcmaArray(_)));
    let text = |key| {
        let value = info.and_then(|i| i.get(key)).and_then(Value::as_str).unwrap_or_default();
        String::from_utf8_lossy(value).into_owned()
    };
    (text("code"), text("description"))
}
