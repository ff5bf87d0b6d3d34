//! `bench-mix`: the mixer benchmark `make bench-mix` runs inside the local stack
//! (infra/local/bench-mix.sh). For each N (`BENCH_MIX_NS`, default "9 25") it publishes N
//! participants (640×360 30 fps H.264 + AAC tones, encoded once and cached under
//! `target/bench-mix/`) to nginx-rtmp, mixes them into 1920×1080 30 fps at 4620 kbit/s with
//! roomrec-media's `Mixer` in this process, then with the `ffmpeg` program running the
//! equivalent graph, and measures each side's CPU time over a window of `BENCH_MIX_SECS`
//! (default 60) seconds, one side after the other; then the SSIM of both recordings against
//! the uncompressed composite of the same inputs. Prints a Markdown report on stdout;
//! progress goes to stderr. Recordings are deleted afterwards unless `BENCH_MIX_KEEP=1`.

mod grid;
mod inputs;
mod ours;
mod quality;
mod reference;
mod report;
mod stack;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use inputs::{Inputs, MAX_PARTICIPANTS};
use quality::Composite;
use report::{Quality, Row, Side};
use roomrec_testkit::markdown::{bullets, section};
use roomrec_testkit::{env, procs};
use stack::Stack;

/// Where the cached inputs and the recordings go.
const OUT_ROOT: &str = "target/bench-mix";
/// How long N publishers may take to appear in the room roster.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Publishing a little while before the first side connects, so the streams are steady.
const SETTLE: Duration = Duration::from_secs(2);
/// The shortest window a side is measured over.
const MIN_WINDOW_SECS: u64 = 10;

/// What every N shares.
#[derive(Debug)]
pub struct Bench {
    /// Length of each side's measurement window.
    pub window: Duration,
    /// Clock ticks per second of the `/proc` counters.
    pub ticks: f64,
}

/// Kills the publisher however one N ends.
struct Publisher(Child);

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BENCH_MIX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::io::stderr).init();
    let ns = parse_ns(&std::env::var("BENCH_MIX_NS").unwrap_or_else(|_| "9 25".into()))?;
    let window = env::seconds_var("BENCH_MIX_SECS", 60, MIN_WINDOW_SECS)?;
    let bench = Bench { window, ticks: procs::clock_ticks_per_second()? };
    let keep = std::env::var("BENCH_MIX_KEEP").is_ok_and(|v| v == "1");
    let root = PathBuf::from(OUT_ROOT);
    let inputs = Inputs::prepare(&root, ns.iter().copied().max().unwrap_or(0))?;
    let stack = Stack::from_env()?;
    let app = stack.create_app("bench-mix")?;
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    for n in ns {
        let dir = root.join(format!("n{n}"));
        rows.push(one_n(&bench, &stack, &app, &inputs, n, &dir, &mut notes));
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    println!("{}", report_text(&bench, &rows, &notes));
    Ok(())
}

/// The Ns to run, from a list like "9 25" (spaces or commas).
fn parse_ns(text: &str) -> Result<Vec<usize>, env::KnobError> {
    env::parse_counts("BENCH_MIX_NS", text, 2..=MAX_PARTICIPANTS)
}

/// Both sides at one N, on the same N live streams, then their quality; failures become the
/// row's content.
fn one_n(
    bench: &Bench,
    stack: &Stack,
    app: &str,
    inputs: &Inputs,
    n: usize,
    dir: &Path,
    notes: &mut Vec<String>,
) -> Row {
    let failed = |why: String| Row {
        n,
        ours: Err(why.clone()),
        reference: Err(why.clone()),
        ours_quality: Err(why.clone()),
        reference_quality: Err(why),
    };
    let urls: Vec<String> = (0..n).map(|i| format!("{}/{app}.mix{n}.u{i}", stack.rtmp_url)).collect();
    eprintln!("bench-mix: N = {n}: publishing");
    let publisher = match publish(stack, app, inputs, n, dir) {
        Ok(publisher) => publisher,
        Err(err) => return failed(format!("setting up the publishers failed: {err:#}")),
    };
    eprintln!("bench-mix: N = {n}: ours (the Mixer in process)");
    let ours = ours::run(bench, &urls, &dir.join("ours")).map_err(|e| format!("{e:#}"));
    eprintln!("bench-mix: N = {n}: the reference ffmpeg");
    let reference = reference::run(bench, &urls, dir).map_err(|e| format!("{e:#}"));
    drop(publisher);
    eprintln!("bench-mix: N = {n}: SSIM against the uncompressed composite");
    let (ours_quality, reference_quality) = match Composite::shrunk(inputs, n) {
        Ok(composite) => (judge(inputs, &composite, &ours), judge(inputs, &composite, &reference)),
        Err(err) => (Err(format!("{err:#}")), Err(format!("{err:#}"))),
    };
    let row = Row { n, ours, reference, ours_quality, reference_quality };
    notes.extend(row_notes(&row).into_iter().map(|note| format!("N = {n}, {note}")));
    row
}

/// The SSIM of a side's recording, if it was measured.
fn judge(inputs: &Inputs, composite: &Composite, side: &Result<Side, String>) -> Result<Quality, String> {
    let side = side.as_ref().map_err(|_| "no recording".to_owned())?;
    quality::measure(inputs, composite, side).map_err(|e| format!("{e:#}"))
}

/// N participants publishing, all listed in the room roster.
fn publish(stack: &Stack, app: &str, inputs: &Inputs, n: usize, dir: &Path) -> Result<Publisher> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = std::fs::File::create(dir.join("publisher.log")).context("creating the publisher log")?;
    let minted =
        (0..n).map(|i| stack.publish_url(app, &format!("mix{n}"), &format!("u{i}"))).collect::<Result<Vec<_>>>()?;
    let mut publisher = Publisher(inputs::publisher(inputs, &minted, log)?);
    let start = Instant::now();
    loop {
        if let Some(status) = publisher.0.try_wait().context("checking the publisher")? {
            anyhow::bail!("the publisher exited ({status}); see {}", dir.join("publisher.log").display());
        }
        let listed = stack.roster_len(app, &format!("mix{n}"))?;
        if listed == n {
            std::thread::sleep(SETTLE);
            return Ok(publisher);
        }
        ensure!(start.elapsed() < PUBLISH_TIMEOUT, "only {listed}/{n} streams in the roster after {PUBLISH_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What the table does not show: loads, alignment, where our CPU went.
fn row_notes(row: &Row) -> Vec<String> {
    let mut notes = Vec::new();
    for (name, side, quality) in
        [("ours", &row.ours, &row.ours_quality), ("ffmpeg", &row.reference, &row.reference_quality)]
    {
        match side {
            Ok(s) => notes.push(format!(
                "{name}: load average before {}; the rest of the machine kept {:.2} cores busy during the window \
                 (publisher, nginx-rtmp, stack, other work); {:.1} CPU-s over {:.1} s",
                s.load_before,
                s.usage.other_cores,
                s.usage.cpu_seconds,
                s.usage.wall.as_secs_f64()
            )),
            Err(e) => notes.push(format!("{name}: {e}")),
        }
        if let Some(remark) = side.as_ref().ok().and_then(|s| s.remark.as_ref()) {
            notes.push(format!("{name}: {remark}"));
        }
        match (quality, side) {
            (Ok(q), Ok(s)) => notes.push(format!(
                "{name}: window = frames {}..{} of the recording, aligned with composite frame {} (probe PSNR {:.1} dB \
                 there, {:.1} dB at the best other offset); SSIM Y {:.4}",
                s.first_frame,
                s.first_frame + s.expected,
                q.offset,
                q.probe_psnr,
                q.runner_up_psnr,
                q.ssim_y
            )),
            (Ok(_), Err(_)) => {}
            (Err(e), _) => notes.push(format!("{name} SSIM: {e}")),
        }
    }
    if let Ok(ours) = &row.ours {
        let output = ours.output_seconds().max(1e-9);
        let split: Vec<String> = ours
            .threads
            .iter()
            .map(|(group, threads, seconds)| format!("{group} ×{threads}: {:.3}", seconds / output))
            .collect();
        notes.push(format!("ours, CPU-s per output s by thread: {}", split.join("; ")));
    }
    notes
}

/// The first line a command prints, if it runs.
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program).args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim().to_owned())
}

/// What machine and code the figures come from.
fn provenance() -> String {
    let cores = std::thread::available_parallelism().map_or_else(|_| "?".into(), |c| c.to_string());
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| {
        info.lines().find_map(|l| Some(l.strip_prefix("model name")?.split_once(':')?.1.trim().to_owned()))
    });
    let commit = first_line("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = first_line("git", &["status", "--porcelain", "worker/media"]).is_some_and(|s| !s.is_empty());
    format!(
        "Machine: {cores} cores ({}). Code: commit {commit}{}. {}.",
        cpu.unwrap_or_else(|| "unknown CPU".into()),
        if dirty { " with uncommitted changes to worker/media" } else { "" },
        first_line("ffmpeg", &["-version"]).unwrap_or_default()
    )
}

/// The printed Markdown: title, table, goals, method and notes.
fn report_text(bench: &Bench, rows: &[Row], notes: &[String]) -> String {
    let window = bench.window.as_secs();
    let mut text = vec![
        format!(
            "## Mixer against ffmpeg (N live 640x360 30 fps H.264 participants into 1920x1080 30 fps at 4620 kbit/s, \
             grid layout, MP4; {window} s window per side)\n"
        ),
        report::table(rows),
        String::new(),
    ];
    text.extend(bullets(&report::goals(rows)));
    text.push(String::new());
    text.push("Method:".into());
    text.extend(bullets(&report_method(window)));
    text.push(format!("- {}", provenance()));
    text.extend(section("Notes:", notes));
    text.join("\n")
}

fn report_method(window: u64) -> Vec<String> {
    vec![
        "Inputs: N different 20 s loops of 640x360 30 fps H.264 (800 kbit/s, no B-frames, keyframe every 2 s), a detailed \
         still slowly zoomed and panned (0.1–0.2 px per frame), each participant in its own hue and phase, plus an AAC tone \
         of its own pitch; published to the stack's nginx-rtmp by one `ffmpeg -re -stream_loop -1 … -c copy` process (all \
         loops in step), which both sides then read live, one side after the other."
            .into(),
        "Ours: roomrec-media's `Mixer` in the bench process, as the worker runs it on its media thread (Canvas 1920x1080 \
         30 fps 4620 kbit/s, LayoutKind::Grid, MP4 only). Not included: the worker's S3 uploads, DynamoDB and SQS."
            .into(),
        "ffmpeg: one `ffmpeg -copyts -i rtmp://…` ×N with scale (bilinear, cover) + xstack + fps=30, aresample=48000 + amix \
         (normalize=0) + alimiter (the mixer's limiter), libx264 preset veryfast, -b:v/-maxrate 4620k, -bufsize 9240k, -g 60, \
         -bf 0 (the mixer's x264 settings), AAC 128 kbit/s, fragmented MP4."
            .into(),
        format!(
            "CPU: utime+stime of the side's whole process (all threads) from /proc/<pid>/stat over a {window} s window that \
             opens 6 s into the side's output (after connecting and the first keyframes); divided by the output seconds made \
             in the window (frames / 30). Ours is read from /proc/self/stat, and the harness only sleeps meanwhile."
        ),
        "Realtime factor: 2 cores / (CPU-s per output s): above 1, two cores' worth of CPU time makes output faster than \
         real time. \"frames in window\" counts the frames each side actually made against 30 per second of the window \
         (ours skips frames when it falls behind the clock; ffmpeg falls behind its live inputs): that is whether it kept up \
         on this machine as loaded."
            .into(),
        "SSIM: each recording's window against the uncompressed composite of the same input files (decoded, scaled with \
         lanczos into the same panes, stacked; built inside the comparing ffmpeg process, never encoded or stored), aligned \
         first: the window's first 3 s shrunk to 320x180 grey against every frame of the 20 s composite loop, the offset \
         with the least squared error wins; then ffmpeg's ssim filter over every frame of the window on the 30 fps grid. \
         SSIM is ffmpeg's \"All\" (Y, U, V weighted by their sizes)."
            .into(),
        "Sides run one after the other, never at once; the loads before each and the CPU the rest of the machine used \
         during each window are in the notes."
            .into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_are_listed_with_spaces_or_commas_and_bounded_by_the_grid() {
        assert_eq!(parse_ns("9 25").expect("valid"), vec![9, 25]);
        assert_eq!(parse_ns(" 4,9 ").expect("valid"), vec![4, 9]);
        assert!(parse_ns("").is_err());
        assert!(parse_ns("1").is_err());
        assert!(parse_ns("26").is_err());
        assert!(parse_ns("nine").is_err());
    }
}
