//! Helpers for the end-to-end tests: the stack's addresses (from the environment `make test`
//! exports), AWS SDK clients pointed at the same moto server the functions use, and ffmpeg
//! publishers. The HTTP client signed in as a fresh account per test is roomrec-testkit's
//! [`Api`], shared with the benches.

use std::process::Stdio;

use roomrec_adapters::Deps;
pub use roomrec_testkit::api::{seed_rule, unique, Api, Reply};
use roomrec_testkit::env;

/// A variable the stack exports; the tests make no sense without it.
pub fn stack_env(name: &str) -> String {
    env::stack_var(name).unwrap_or_else(|err| panic!("{err}"))
}

/// The AWS credentials of `user`'s role in the stack's roles file (`ROOMREC_ROLES_FILE`):
/// `user` is a function's binary name or `worker`. A process a test starts with them has the
/// permissions it has on AWS, which moto enforces.
pub fn role_env(user: &str) -> Vec<(String, String)> {
    let path = stack_env("ROOMREC_ROLES_FILE");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {path}: {err}"));
    let roles: serde_json::Value = serde_json::from_str(&text).expect("the stack writes the roles file as JSON");
    let role = roles[user].as_object().unwrap_or_else(|| panic!("{path} has no role for {user}"));
    role.iter().map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned())).collect()
}

/// The lines of the stack's log `name` (`$ROOMREC_STATE_DIR/<name>.log`) that contain every one
/// of `needles`, each parsed as JSON (a line that is not fails the test), that `keep` accepts;
/// waits up to `wait` for at least one, since the log is another process's file.
pub fn json_log_lines(
    name: &str,
    needles: &[&str],
    keep: impl Fn(&serde_json::Value) -> bool,
    wait: std::time::Duration,
) -> Vec<serde_json::Value> {
    let path = format!("{}/{name}.log", stack_env("ROOMREC_STATE_DIR"));
    let deadline = std::time::Instant::now() + wait;
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("a {name} log line is not JSON ({e}): {line}"))
            })
            .filter(|line| keep(line))
            .collect();
        if !lines.is_empty() || std::time::Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The functions' dependencies, wired to the stack's moto tables and queues.
pub async fn deps() -> Deps {
    Deps::from_env().await.expect("the stack environment configures every table and queue")
}

/// The stack's DynamoDB tables as the worker sees them, for tests that write a job directly.
pub async fn store() -> roomrec_adapters::DynamoStore {
    let config = roomrec_adapters::Config::from_env().expect("the stack environment configures every table");
    let aws = aws_config::load_from_env().await;
    roomrec_adapters::DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), config.tables)
}

/// AWS SDK config pointed at the stack's moto server.
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

/// The nginx-rtmp URL of stream `key` with no signature: the media server refuses a publish
/// to it (a publisher needs a minted URL, [`Api::publish_url`]).
pub fn unsigned_publish_url(key: &str) -> String {
    format!("{}/{key}", stack_env(env::RTMP_URL))
}

/// Publishes a 640x360 25 fps test picture with a 440 Hz tone to nginx-rtmp at `url` (a
/// minted publish URL).
pub fn publish(url: &str, seconds: u32) -> tokio::process::Child {
    publish_with(url, seconds, "640x360", &[])
}

/// Publishes a 320x180 15 fps picture of one colour (`0xRRGGBB`) with a `hz` tone to `url`.
pub fn publish_colour(url: &str, seconds: u32, colour: &str, hz: u32) -> tokio::process::Child {
    let (video, audio) =
        (format!("color=c={colour}:size=320x180:rate=15"), format!("sine=frequency={hz}:sample_rate=48000"));
    publisher(url, seconds, &video, &audio, &["-tune", "zerolatency", "-g", "15"])
}

/// Publishes a test picture of `size` to `url` with extra x264 arguments (e.g. a high bitrate).
pub fn publish_with(url: &str, seconds: u32, size: &str, x264: &[&str]) -> tokio::process::Child {
    let video = format!("testsrc2=size={size}:rate=25");
    publisher(url, seconds, &video, "sine=frequency=440:sample_rate=48000", &[&["-g", "25"], x264].concat())
}

/// An ffmpeg process publishing the lavfi sources `video` and `audio` for `seconds` to
/// nginx-rtmp at `url`, H.264 (ultrafast, then the `x264` arguments) and AAC; killed when dropped.
fn publisher(url: &str, seconds: u32, video: &str, audio: &str, x264: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio])
        .args(["-t", &seconds.to_string(), "-c:v", "libx264", "-preset", "ultrafast"])
        .args(x264)
        .args(["-c:a", "aac", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is installed by make test")
}
