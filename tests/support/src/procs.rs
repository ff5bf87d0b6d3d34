//! What processes cost, from `/proc`: CPU time (utime + stime of every thread, alive or exited,
//! from `/proc/<pid>/stat`), per thread by name (`/proc/<pid>/task/*/stat`), resident memory
//! (`VmRSS` and its private part `RssAnon` from `/proc/<pid>/status`), and the whole machine's
//! busy time (`/proc/stat`), so a window can say how busy the other processes kept the cores.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;
/// How often [`measure`] samples resident memory.
const MEMORY_SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Reading or understanding `/proc` failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// A file of a process could not be read: the process has exited.
    #[error("process {pid} is gone (reading {path})")]
    Gone { pid: u32, path: String, source: std::io::Error },
    /// Any other file could not be read.
    #[error("reading {path}")]
    Read { path: String, source: std::io::Error },
    /// The text is not what the kernel writes there.
    #[error("unexpected /proc text: {0}")]
    Malformed(String),
    /// `getconf CLK_TCK` did not say how long a clock tick is.
    #[error("getconf CLK_TCK: {0}")]
    ClockTicks(String),
}

fn malformed(what: impl Into<String>) -> ProcError {
    ProcError::Malformed(what.into())
}

/// utime + stime, in clock ticks, from the text of a `stat` file.
pub fn parse_cpu_ticks(stat: &str) -> Result<u64, ProcError> {
    // The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    let (_, rest) = stat.rsplit_once(')').ok_or_else(|| malformed("no ')' after the command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let field = |n: usize| -> Result<u64, ProcError> {
        let text = fields.get(n - 3).ok_or_else(|| malformed(format!("no field {n}")))?;
        text.parse().map_err(|_| malformed(format!("field {n} is not a number: {text}")))
    };
    Ok(field(14)? + field(15)?)
}

/// The command name (field 2, without its parentheses) from the text of a `stat` file.
fn parse_name(stat: &str) -> Result<&str, ProcError> {
    let (_, after_open) = stat.split_once('(').ok_or_else(|| malformed("no '(' before the command name"))?;
    let (name, _) = after_open.rsplit_once(')').ok_or_else(|| malformed("no ')' after the command name"))?;
    Ok(name)
}

/// The `name:` line (`VmRSS`, `RssAnon`, …) in bytes from the text of `/proc/<pid>/status`.
pub fn parse_status_bytes(status: &str, name: &str) -> Result<u64, ProcError> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .ok_or_else(|| malformed(format!("no {name} line")))?;
    let kib = line.trim().strip_suffix("kB").ok_or_else(|| malformed(format!("{name} is not in kB")))?.trim();
    Ok(kib.parse::<u64>().map_err(|_| malformed(format!("{name} is not a number: {kib}")))? * 1024)
}

/// Busy and total jiffies of all cores from the text of `/proc/stat` (idle and iowait are
/// the only idle columns).
pub fn parse_machine_ticks(stat: &str) -> Result<(u64, u64), ProcError> {
    let line = stat.lines().find(|l| l.starts_with("cpu ")).ok_or_else(|| malformed("no 'cpu ' line"))?;
    let columns = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse::<u64>().map_err(|_| malformed(format!("not a number in {line:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if columns.len() < 5 {
        return Err(malformed(format!("too few columns in {line:?}")));
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = columns.iter().take(8).sum();
    Ok((total - columns[3] - columns[4], total))
}

/// Clock ticks per second of the `stat` files (USER_HZ), from `getconf CLK_TCK`.
pub fn clock_ticks_per_second() -> Result<f64, ProcError> {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .map_err(|err| ProcError::ClockTicks(format!("could not run it: {err}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<f64>() {
        Ok(ticks) if out.status.success() && ticks > 0.0 => Ok(ticks),
        _ => Err(ProcError::ClockTicks(format!("printed {text:?}"))),
    }
}

fn read(path: &str) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Read { path: path.to_owned(), source })
}

/// Reads `/proc/<pid>/<file>`; a vanished process is an error naming it.
fn read_process(pid: u32, file: &str) -> Result<String, ProcError> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::read_to_string(&path).map_err(|source| ProcError::Gone { pid, path, source })
}

/// CPU ticks the processes `pids` used so far, summed.
pub fn process_ticks(pids: &[u32]) -> Result<u64, ProcError> {
    pids.iter().map(|&pid| parse_cpu_ticks(&read_process(pid, "stat")?)).sum()
}

/// Busy and total jiffies of the whole machine so far.
pub fn machine_ticks() -> Result<(u64, u64), ProcError> {
    parse_machine_ticks(&read("/proc/stat")?)
}

/// The calling thread's id (the first field of `/proc/thread-self/stat`).
pub fn current_tid() -> Result<u32, ProcError> {
    let stat = read("/proc/thread-self/stat")?;
    let tid = stat.split_whitespace().next().unwrap_or_default();
    tid.parse().map_err(|_| malformed(format!("/proc/thread-self/stat starts with {tid:?}")))
}

/// A snapshot of one process's threads: id → (name, CPU ticks).
pub type Threads = BTreeMap<u32, (String, u64)>;

/// Every thread of process `pid` now.
pub fn threads(pid: u32) -> Result<Threads, ProcError> {
    let dir = format!("/proc/{pid}/task");
    let listing = std::fs::read_dir(&dir).map_err(|source| ProcError::Gone { pid, path: dir.clone(), source })?;
    let mut threads = Threads::new();
    for entry in listing {
        let entry = entry.map_err(|source| ProcError::Gone { pid, path: dir.clone(), source })?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        // A thread that ended since the listing is simply left out.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        threads.insert(tid, (parse_name(&stat)?.to_owned(), parse_cpu_ticks(&stat)?));
    }
    Ok(threads)
}

/// CPU seconds used between two [`threads`] snapshots by the threads alive at both, summed by
/// `group(tid, name)`: (group, threads, seconds), most seconds first.
pub fn cpu_by_group<G: Ord>(
    before: &Threads,
    after: &Threads,
    ticks_per_second: f64,
    group: impl Fn(u32, &str) -> G,
) -> Vec<(G, usize, f64)> {
    let mut groups: BTreeMap<G, (usize, u64)> = BTreeMap::new();
    for (tid, (name, end)) in after {
        if let Some((_, start)) = before.get(tid) {
            let entry = groups.entry(group(*tid, name)).or_default();
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

/// CPU counters at one instant: of the measured processes and of the whole machine.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// When the counters were read.
    pub at: Instant,
    /// The measured processes' CPU ticks, summed.
    pub processes: u64,
    /// Busy and total jiffies of all cores.
    pub machine: (u64, u64),
}

impl Snapshot {
    /// Reads the counters of the processes `pids` now.
    pub fn take(pids: &[u32]) -> Result<Self, ProcError> {
        Ok(Self { at: Instant::now(), processes: process_ticks(pids)?, machine: machine_ticks()? })
    }
}

/// The CPU the measured processes used over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// CPU seconds (user + system, all threads) of the measured processes.
    pub cpu_seconds: f64,
    /// Wall-clock length of the window.
    pub wall: Duration,
    /// Cores the rest of the machine kept busy on average (every other process: publishers,
    /// nginx-rtmp, the stack, other people's work).
    pub other_cores: f64,
}

/// The usage between two snapshots of the same processes, `ticks_per_second` being USER_HZ.
pub fn usage(before: &Snapshot, after: &Snapshot, ticks_per_second: f64) -> Usage {
    let wall = after.at.saturating_duration_since(before.at);
    let cpu_seconds = after.processes.saturating_sub(before.processes) as f64 / ticks_per_second;
    let busy_seconds = after.machine.0.saturating_sub(before.machine.0) as f64 / ticks_per_second;
    let other_cores = ((busy_seconds - cpu_seconds) / wall.as_secs_f64().max(1e-9)).max(0.0);
    Usage { cpu_seconds, wall, other_cores }
}

/// The most memory a group of processes held at once over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// Largest sum of the group's resident memory (`VmRSS`) over the samples, in bytes.
    pub peak_rss_bytes: u64,
    /// Largest sum of the group's private resident memory (`RssAnon`: heap, stacks; no
    /// shared library pages) over the samples, in bytes.
    pub peak_anon_bytes: u64,
}

impl Memory {
    /// The group's resident and private resident memory now.
    pub fn now(pids: &[u32]) -> Result<Self, ProcError> {
        let mut memory = Self::default();
        for &pid in pids {
            let status = read_process(pid, "status")?;
            memory.peak_rss_bytes += parse_status_bytes(&status, "VmRSS")?;
            memory.peak_anon_bytes += parse_status_bytes(&status, "RssAnon")?;
        }
        Ok(memory)
    }

    /// The larger of each figure.
    fn max(self, other: Self) -> Self {
        Self {
            peak_rss_bytes: self.peak_rss_bytes.max(other.peak_rss_bytes),
            peak_anon_bytes: self.peak_anon_bytes.max(other.peak_anon_bytes),
        }
    }
}

/// Measures `pids` over `window`: CPU time at its start and end, memory every second.
/// Fails if a process exits during the window.
pub async fn measure(pids: &[u32], window: Duration, ticks_per_second: f64) -> Result<(Usage, Memory), ProcError> {
    let before = Snapshot::take(pids)?;
    let mut peak = Memory::now(pids)?;
    let mut tick = tokio::time::interval(MEMORY_SAMPLE_EVERY);
    tick.tick().await;
    while before.at.elapsed() + MEMORY_SAMPLE_EVERY <= window {
        tick.tick().await;
        peak = peak.max(Memory::now(pids)?);
    }
    tokio::time::sleep(window.saturating_sub(before.at.elapsed())).await;
    let after = Snapshot::take(pids)?;
    peak = peak.max(Memory::now(pids)?);
    Ok((usage(&before, &after, ticks_per_second), peak))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_odd_command_names() {
        let stat = "4242 (mix (input) 3) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat).expect("parses"), 1234 + 567);
        assert_eq!(parse_name(stat).expect("parses"), "mix (input) 3");
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
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(parse_machine_ticks(stat).expect("parses"), (160, 1180));
        assert!(parse_machine_ticks("intr 1 2 3\n").is_err());
    }

    #[test]
    fn thread_cpu_is_summed_by_group_over_threads_alive_at_both_snapshots() {
        let snapshot = |rows: &[(u32, &str, u64)]| -> Threads {
            rows.iter().map(|&(tid, name, ticks)| (tid, (name.to_owned(), ticks))).collect()
        };
        let before = snapshot(&[(1, "main", 10), (2, "mix-input-0", 100), (3, "mix-input-1", 100), (4, "gone", 5)]);
        let after = snapshot(&[(1, "main", 20), (2, "mix-input-0", 300), (3, "mix-input-1", 200), (5, "new", 9)]);
        let by_name = cpu_by_group(&before, &after, 100.0, |_, name| {
            if name.starts_with("mix-input") {
                "inputs".to_owned()
            } else {
                name.to_owned()
            }
        });
        assert_eq!(by_name, vec![("inputs".to_owned(), 2, 3.0), ("main".to_owned(), 1, 0.1)]);
        let by_id = cpu_by_group(&before, &after, 100.0, |tid, _| if tid == 1 { "startup" } else { "later" });
        assert_eq!(by_id, vec![("later", 2, 3.0), ("startup", 1, 0.1)]);
    }

    #[test]
    fn this_process_and_thread_can_be_read() {
        let tid = current_tid().expect("reads its own thread");
        let own = threads(std::process::id()).expect("lists its threads");
        assert!(own.contains_key(&tid) && own.contains_key(&std::process::id()), "{own:?}");
        process_ticks(&[std::process::id()]).expect("reads its own CPU time");
        let (busy, total) = machine_ticks().expect("reads /proc/stat");
        assert!(busy <= total && total > 0);
    }

    #[test]
    fn usage_is_the_process_cpu_and_what_the_rest_of_the_machine_did_meanwhile() {
        let start = Instant::now();
        let before = Snapshot { at: start, processes: 1_000, machine: (50_000, 90_000) };
        let after = Snapshot { at: start + Duration::from_secs(10), processes: 2_500, machine: (52_000, 92_000) };
        let used = usage(&before, &after, 100.0);
        assert_eq!(used.wall, Duration::from_secs(10));
        assert!((used.cpu_seconds - 15.0).abs() < 1e-9);
        assert!((used.other_cores - 0.5).abs() < 1e-9, "{used:?}");
    }

    #[tokio::test]
    async fn measuring_this_process_sees_its_memory_and_a_short_window() {
        let ticks = clock_ticks_per_second().expect("getconf");
        let (usage, memory) =
            measure(&[std::process::id()], Duration::from_millis(1500), ticks).await.expect("measures");
        assert!(memory.peak_rss_bytes > memory.peak_anon_bytes && memory.peak_anon_bytes > 0, "{memory:?}");
        assert!(usage.wall >= Duration::from_millis(1500) && usage.wall < Duration::from_secs(3), "{usage:?}");
    }
}
