//! CPU time from `/proc`: of a process (utime + stime of every thread, alive or exited, from
//! `/proc/<pid>/stat`), of each of its threads by name, and of the whole machine
//! (`/proc/stat`), so a window can say how busy the other processes kept the cores.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// utime + stime, in clock ticks, from the text of a `stat` file.
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

/// The command name (field 2, without its parentheses) from the text of a `stat` file.
fn parse_name(stat: &str) -> Result<&str> {
    let (_, after_open) = stat.split_once('(').context("no '(' before the command name")?;
    let (name, _) = after_open.rsplit_once(')').context("no ')' after the command name")?;
    Ok(name)
}

/// Busy and total jiffies of all cores from the text of `/proc/stat` (idle and iowait are
/// the only idle columns).
pub fn parse_machine_ticks(stat: &str) -> Result<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu ")).context("no 'cpu ' line")?;
    let columns = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse::<u64>().with_context(|| format!("not a number in {line:?}")))
        .collect::<Result<Vec<_>>>()?;
    if columns.len() < 5 {
        bail!("too few columns in {line:?}");
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = columns.iter().take(8).sum();
    Ok((total - columns[3] - columns[4], total))
}

/// Clock ticks per second of the `stat` files (USER_HZ), from `getconf CLK_TCK`.
pub fn clock_ticks_per_second() -> Result<f64> {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output().context("running getconf CLK_TCK")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ticks: f64 = text.trim().parse().with_context(|| format!("getconf CLK_TCK printed {text:?}"))?;
    if !(out.status.success() && ticks > 0.0) {
        bail!("getconf CLK_TCK failed: {text:?}");
    }
    Ok(ticks)
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

/// CPU ticks of process `pid` so far (`self` for this one).
pub fn process_ticks(pid: &str) -> Result<u64> {
    parse_cpu_ticks(&read(&format!("/proc/{pid}/stat"))?)
}

/// The calling thread's id (the first field of `/proc/thread-self/stat`).
pub fn current_tid() -> Result<u32> {
    let stat = read("/proc/thread-self/stat")?;
    let tid = stat.split_whitespace().next().unwrap_or_default();
    tid.parse().with_context(|| format!("/proc/thread-self/stat starts with {tid:?}"))
}

/// A snapshot of one process's threads: id → (name, CPU ticks).
pub type Threads = BTreeMap<u32, (String, u64)>;

/// Every thread of this process now.
pub fn own_threads() -> Result<Threads> {
    let mut threads = Threads::new();
    for entry in std::fs::read_dir("/proc/self/task").context("listing /proc/self/task")? {
        let entry = entry.context("listing /proc/self/task")?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        // A thread that ended since the listing is simply left out.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        threads.insert(tid, (parse_name(&stat)?.to_owned(), parse_cpu_ticks(&stat)?));
    }
    Ok(threads)
}

/// CPU ticks used between two snapshots by the threads alive at both, summed by
/// `group(tid, name)`: group → (threads, ticks), most ticks first.
pub fn ticks_by_group(
    before: &Threads,
    after: &Threads,
    group: impl Fn(u32, &str) -> String,
) -> Vec<(String, usize, u64)> {
    let mut groups: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (tid, (name, end)) in after {
        if let Some((_, start)) = before.get(tid) {
            let entry = groups.entry(group(*tid, name)).or_default();
            *entry = (entry.0 + 1, entry.1 + end.saturating_sub(*start));
        }
    }
    let mut split: Vec<_> = groups.into_iter().map(|(name, (threads, ticks))| (name, threads, ticks)).collect();
    split.sort_by_key(|group| std::cmp::Reverse(group.2));
    split
}

/// Busy and total jiffies of the whole machine so far.
pub fn machine_ticks() -> Result<(u64, u64)> {
    parse_machine_ticks(&read("/proc/stat")?)
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` shows them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU counters at one instant: of the measured process and of the whole machine.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub at: Instant,
    /// The measured process's CPU ticks.
    pub process: u64,
    /// Busy and total jiffies of all cores.
    pub machine: (u64, u64),
}

impl Snapshot {
    /// Reads the counters of process `pid` (`self` for this one) now.
    pub fn take(pid: &str) -> Result<Self> {
        Ok(Self { at: Instant::now(), process: process_ticks(pid)?, machine: machine_ticks()? })
    }
}

/// What one side used over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// CPU seconds (user + system, all threads) of the measured process.
    pub cpu_seconds: f64,
    /// Wall-clock length of the window.
    pub wall: Duration,
    /// Cores the rest of the machine kept busy on average (every other process: publisher,
    /// nginx-rtmp, the stack, other people's work).
    pub other_cores: f64,
}

/// The usage between two snapshots of the same process, `ticks_per_second` being USER_HZ.
pub fn usage(before: &Snapshot, after: &Snapshot, ticks_per_second: f64) -> Usage {
    let wall = after.at.saturating_duration_since(before.at);
    let cpu_seconds = after.process.saturating_sub(before.process) as f64 / ticks_per_second;
    let busy_seconds = after.machine.0.saturating_sub(before.machine.0) as f64 / ticks_per_second;
    let other_cores = ((busy_seconds - cpu_seconds) / wall.as_secs_f64().max(1e-9)).max(0.0);
    Usage { cpu_seconds, wall, other_cores }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_odd_command_names() {
        let stat = "4242 (mix (input) 3) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat).expect("parses"), 1234 + 567);
        assert_eq!(parse_name(stat).expect("parses"), "mix (input) 3");
        assert!(parse_cpu_ticks("4242 (short) S 1").is_err());
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(parse_machine_ticks(stat).expect("parses"), (160, 1180));
        assert!(parse_machine_ticks("intr 1 2 3\n").is_err());
    }

    #[test]
    fn thread_ticks_are_summed_by_group_over_threads_alive_at_both_snapshots() {
        let snapshot = |rows: &[(u32, &str, u64)]| -> Threads {
            rows.iter().map(|&(tid, name, ticks)| (tid, (name.to_owned(), ticks))).collect()
        };
        let before = snapshot(&[(1, "main", 10), (2, "mix-input-0", 100), (3, "mix-input-1", 100), (4, "gone", 5)]);
        let after = snapshot(&[(1, "main", 20), (2, "mix-input-0", 300), (3, "mix-input-1", 200), (5, "new", 9)]);
        let split = ticks_by_group(&before, &after, |_, name| {
            if name.starts_with("mix-input") {
                "inputs".into()
            } else {
                name.to_owned()
            }
        });
        assert_eq!(split, vec![("inputs".to_owned(), 2, 300), ("main".to_owned(), 1, 10)]);
    }

    #[test]
    fn this_process_and_thread_can_be_read() {
        let tid = current_tid().expect("reads its own thread");
        assert!(own_threads().expect("lists its threads").contains_key(&tid));
        process_ticks("self").expect("reads its own CPU time");
        let (busy, total) = machine_ticks().expect("reads /proc/stat");
        assert!(busy <= total && total > 0);
    }

    #[test]
    fn usage_is_the_process_cpu_and_what_the_rest_of_the_machine_did_meanwhile() {
        let start = Instant::now();
        let before = Snapshot { at: start, process: 1_000, machine: (50_000, 90_000) };
        let after = Snapshot { at: start + Duration::from_secs(10), process: 2_500, machine: (52_000, 92_000) };
        let used = usage(&before, &after, 100.0);
        assert_eq!(used.wall, Duration::from_secs(10));
        assert!((used.cpu_seconds - 15.0).abs() < 1e-9);
        assert!((used.other_cores - 0.5).abs() < 1e-9, "{used:?}");
    }
}
