//! What runs beside the measured side and is not counted in it: moto (DynamoDB, SQS and,
//! with BENCH_S3=moto, S3), s3s-fs (S3 otherwise), nginx-rtmp, the gateway and the bench's
//! own publisher thread. Their CPU over the window says whether one of them held the measured
//! side back: moto is one Python process, so near one core it is the bottleneck, not the
//! worker.

use std::time::{Duration, Instant};

use roomrec_testkit::procs;

/// The stack's processes by role, found once per N.
pub struct Bystanders {
    groups: Vec<(&'static str, Vec<u32>)>,
    /// The publisher thread of this process.
    publisher_tid: u32,
}

/// Their CPU ticks at one instant, per group then the publisher's.
pub struct Ticks {
    at: Instant,
    groups: Vec<u64>,
    publisher: u64,
}

/// A process's id, parent's id and command line.
struct Process {
    pid: u32,
    ppid: u32,
    argv: Vec<String>,
}

/// Every process readable in /proc now (those that vanish while listing are left out).
fn processes() -> Vec<Process> {
    let Ok(listing) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for entry in listing.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let (Ok(stat), Ok(cmdline)) =
            (std::fs::read_to_string(entry.path().join("stat")), std::fs::read(entry.path().join("cmdline")))
        else {
            continue;
        };
        // The parent id is the second field after the parenthesised command name.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        let argv = cmdline.split(|&b| b == 0).filter(|a| !a.is_empty());
        let argv = argv.map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        found.push(Process { pid, ppid: ppid.unwrap_or(0), argv });
    }
    found
}

/// Whether `argv` holds `flag` followed by `value`.
fn has_option(argv: &[String], flag: &str, value: &str) -> bool {
    argv.windows(2).any(|pair| pair[0] == flag && pair[1] == value)
}

impl Bystanders {
    /// Finds the local stack's processes from what it exported: moto by its port, nginx-rtmp by
    /// its configuration file (with its worker processes), the gateway by its listen address,
    /// s3s-fs (when it serves S3) by its root directory.
    pub fn find(aws_port: &str, http_addr: &str, nginx_conf: &str, s3s_root: Option<&str>, publisher_tid: u32) -> Self {
        let all = processes();
        let pids = |matches: &dyn Fn(&Process) -> bool| all.iter().filter(|p| matches(p)).map(|p| p.pid).collect();
        let moto: Vec<u32> =
            pids(&|p| p.argv.iter().any(|a| a.ends_with("moto_iam.py")) && has_option(&p.argv, "-p", aws_port));
        // nginx rewrites its master's command line into one string ("nginx: master process
        // /usr/sbin/nginx -p … -c <conf>"), so the option is looked for in the joined line.
        let conf_option = format!("-c {nginx_conf}");
        let nginx_master: Vec<u32> = pids(&|p| p.argv.join(" ").contains(&conf_option));
        let nginx = pids(&|p| nginx_master.contains(&p.pid) || nginx_master.contains(&p.ppid));
        let gateway = pids(&|p| has_option(&p.argv, "--listen", http_addr));
        let mut groups = vec![("moto", moto), ("nginx-rtmp", nginx), ("gateway", gateway)];
        // The S3 server bench-worker.sh started beside moto (BENCH_S3=s3s), on its root under
        // the stack's state directory.
        if let Some(root) = s3s_root {
            groups.push((
                "s3s-fs",
                pids(&|p| {
                    p.argv.first().is_some_and(|a| a.ends_with("s3s-fs")) && p.argv.last().is_some_and(|a| a == root)
                }),
            ));
        }
        Self { groups, publisher_tid }
    }

    /// Their CPU ticks now; a process that is gone counts nothing.
    pub fn ticks(&self) -> Ticks {
        let ticks = |pid: &u32| procs::process_ticks(&[*pid]).unwrap_or(0);
        let groups = self.groups.iter().map(|(_, pids)| pids.iter().map(ticks).sum()).collect();
        let task = format!("/proc/self/task/{}/stat", self.publisher_tid);
        let publisher = std::fs::read_to_string(task).ok().and_then(|s| procs::parse_cpu_ticks(&s).ok());
        Ticks { at: Instant::now(), groups, publisher: publisher.unwrap_or(0) }
    }

    /// "moto 0.62 cores, nginx-rtmp 0.21 cores, …" between two readings.
    pub fn describe(&self, before: &Ticks, after: &Ticks, ticks_per_second: f64) -> String {
        let wall = after.at.saturating_duration_since(before.at).max(Duration::from_millis(1)).as_secs_f64();
        let cores = |b: u64, a: u64| a.saturating_sub(b) as f64 / ticks_per_second / wall;
        let mut parts: Vec<String> = self
            .groups
            .iter()
            .zip(before.groups.iter().zip(&after.groups))
            .map(|((name, pids), (b, a))| match pids.len() {
                0 => format!("{name} not found"),
                _ => format!("{name} {:.2}", cores(*b, *a)),
            })
            .collect();
        parts.push(format!("the bench's publisher thread {:.2}", cores(before.publisher, after.publisher)));
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_option_is_a_flag_followed_by_its_value() {
        let argv: Vec<String> = ["python", "moto_iam.py", "-H", "127.0.0.1", "-p", "5000"].map(String::from).into();
        assert!(has_option(&argv, "-p", "5000"));
        assert!(!has_option(&argv, "-p", "500"));
        assert!(!has_option(&argv, "-H", "5000"));
    }
}
