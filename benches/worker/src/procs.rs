//! What a group of processes costs over a measurement window: CPU time (utime + stime from
//! `/proc/<pid>/stat`, every thread, alive or exited) and resident memory (`VmRSS`, and its
//! private part `RssAnon`, from `/proc/<pid>/status`, summed over the group, sampled once a
//! second, peak kept).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;
/// How often resident memory is sampled during a window.
const RSS_SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What a group of processes used during one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// CPU seconds (user + system) the group used during the window.
    pub cpu_seconds: f64,
    /// Largest sum of the group's resident memory (`VmRSS`) over the samples, in bytes.
    pub peak_rss_bytes: u64,
    /// Largest sum of the group's private resident memory (`RssAnon`: heap, stacks; no
    /// shared library pages) over the samples, in bytes.
    pub peak_anon_bytes: u64,
    /// Wall-clock length of the window.
    pub wall: Duration,
}

/// utime + stime, in clock ticks, from the text of `/proc/<pid>/stat`.
pub fn parse_cpu_ticks(stat: &str) -> Result<u64> {
    // The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    let (_, rest) = stat.rsplit_once(')').context("no ')' after the command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let field = |n: usize| -> Result<u64> {
        let text = fields.get(n - 3).with_context(|| format!("no field {n}"))?;
        text.parse().with_context(|| format!("field {n} is not a number: {text}"))
    };
    Ok(field(14)? + field(15)?)
}

/// The `name:` line (`VmRSS`, `RssAnon`, …) in bytes from the text of `/proc/<pid>/status`.
pub fn parse_status_bytes(status: &str, name: &str) -> Result<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .with_context(|| format!("no {name} line"))?;
    let kib = line.trim().strip_suffix("kB").with_context(|| format!("{name} is not in kB"))?.trim();
    Ok(kib.parse::<u64>().with_context(|| format!("{name} is not a number: {kib}"))? * 1024)
}

/// Reads `/proc/<pid>/<file>`; a vanished process is an error naming it.
fn read_proc(pid: u32, file: &str) -> Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .with_context(|| format!("process {pid} is gone (reading /proc/{pid}/{file})"))
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ), from `getconf CLK_TCK`.
pub fn clock_ticks_per_second() -> Result<f64> {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output().context("running getconf CLK_TCK")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ticks: f64 = text.trim().parse().with_context(|| format!("getconf CLK_TCK printed {text:?}"))?;
    if !(out.status.success() && ticks > 0.0) {
        bail!("getconf CLK_TCK failed: {text:?}");
    }
    Ok(ticks)
}

/// The group's CPU time so far, in clock ticks.
fn cpu_ticks(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&pid| parse_cpu_ticks(&read_proc(pid, "stat")?)).sum()
}

/// The group's resident and private resident memory now, in bytes.
fn rss_bytes(pids: &[u32]) -> Result<(u64, u64)> {
    let (mut rss, mut anon) = (0, 0);
    for &pid in pids {
        let status = read_proc(pid, "status")?;
        rss += parse_status_bytes(&status, "VmRSS")?;
        anon += parse_status_bytes(&status, "RssAnon")?;
    }
    Ok((rss, anon))
}

/// Measures `pids` over `window`: CPU time at its start and end, memory every second.
/// Fails if a process exits during the window.
pub async fn measure(pids: &[u32], window: Duration, ticks_per_second: f64) -> Result<Usage> {
    let start = Instant::now();
    let first = cpu_ticks(pids)?;
    let mut peak = rss_bytes(pids)?;
    let mut sample = || -> Result<()> {
        let (rss, anon) = rss_bytes(pids)?;
        peak = (peak.0.max(rss), peak.1.max(anon));
        Ok(())
    };
    let mut tick = tokio::time::interval(RSS_SAMPLE_EVERY);
    tick.tick().await;
    while start.elapsed() + RSS_SAMPLE_EVERY <= window {
        tick.tick().await;
        sample()?;
    }
    tokio::time::sleep(window.saturating_sub(start.elapsed())).await;
    let last = cpu_ticks(pids)?;
    let wall = start.elapsed();
    sample()?;
    let cpu_seconds = last.saturating_sub(first) as f64 / ticks_per_second;
    Ok(Usage { cpu_seconds, peak_rss_bytes: peak.0, peak_anon_bytes: peak.1, wall })
}

/// CPU ticks of every thread of `pid`, by thread id (`/proc/<pid>/task/*/stat`).
pub fn thread_ticks(pid: u32) -> Result<HashMap<u32, u64>> {
    let dir = format!("/proc/{pid}/task");
    let mut threads = HashMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let entry = entry.with_context(|| format!("listing {dir}"))?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        // A thread that ended since the listing is simply left out.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        threads.insert(tid, parse_cpu_ticks(&stat)?);
    }
    Ok(threads)
}

/// CPU seconds used between two [`thread_ticks`] snapshots by the threads alive at both,
/// summed by `group(tid)`: group → (threads, seconds), most seconds first.
pub fn cpu_by_group<'a>(
    before: &HashMap<u32, u64>,
    after: &HashMap<u32, u64>,
    ticks_per_second: f64,
    group: impl Fn(u32) -> &'a str,
) -> Vec<(&'a str, usize, f64)> {
    let mut groups: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for (tid, end) in after {
        if let Some(start) = before.get(tid) {
            let entry = groups.entry(group(*tid)).or_default();
            *entry = (entry.0 + 1, entry.1 + end.saturating_sub(*start));
        }
    }
    let mut split: Vec<_> =
        groups.into_iter().map(|(name, (threads, ticks))| (name, threads, ticks as f64 / ticks_per_second)).collect();
    split.sort_by(|a, b| b.2.total_cmp(&a.2));
    split
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` shows them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_odd_command_names() {
        let stat = "4242 (roomrec (worker) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat).expect("parses"), 1234 + 567);
        assert!(parse_cpu_ticks("4242 (short) S 1").is_err());
    }

    #[test]
    fn status_lines_are_read_in_bytes() {
        let status = "Name:\tffmpeg\nVmPeak:\t  200 kB\nVmRSS:\t   51200 kB\nRssAnon:\t    9000 kB\nThreads:\t9\n";
        assert_eq!(parse_status_bytes(status, "VmRSS").expect("parses"), 51200 * 1024);
        assert_eq!(parse_status_bytes(status, "RssAnon").expect("parses"), 9000 * 1024);
        assert!(parse_status_bytes("Name:\tkthreadd\n", "VmRSS").is_err());
    }

    #[test]
    fn thread_cpu_is_summed_by_group_over_threads_alive_throughout() {
        let before = HashMap::from([(1, 10), (2, 100), (3, 100), (4, 50)]);
        let after = HashMap::from([(1, 20), (2, 300), (3, 200), (5, 70)]);
        let split = cpu_by_group(&before, &after, 100.0, |tid| if tid == 1 { "startup" } else { "later" });
        assert_eq!(split, vec![("later", 2, 3.0), ("startup", 1, 0.1)]);
        let live = thread_ticks(std::process::id()).expect("reads its own threads");
        assert!(live.contains_key(&std::process::id()), "{live:?}");
    }

    #[tokio::test]
    async fn measuring_this_process_sees_its_memory_and_a_short_window() {
        let ticks = clock_ticks_per_second().expect("getconf");
        let usage = measure(&[std::process::id()], Duration::from_millis(1500), ticks).await.expect("measures");
        assert!(usage.peak_rss_bytes > usage.peak_anon_bytes && usage.peak_anon_bytes > 0, "{usage:?}");
        assert!(usage.wall >= Duration::from_millis(1500) && usage.wall < Duration::from_secs(3), "{usage:?}");
    }
}
