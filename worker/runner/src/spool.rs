//! What a recording holds on the worker's disk that is not in S3 yet, against its budget: while
//! uploads wait out an outage the media thread keeps writing, and past the budget the
//! recording stops (the job fails with the reason; what was spooled is still uploaded).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use roomrec_media::Output;

/// Bytes written to the spool and bytes uploaded from it, for one recording.
#[derive(Debug)]
pub struct Backlog {
    written: AtomicU64,
    uploaded: AtomicU64,
    budget: u64,
    over: AtomicBool,
}

impl Backlog {
    /// An empty backlog that may reach `budget` bytes.
    pub fn new(budget: u64) -> Self {
        Self { written: AtomicU64::new(0), uploaded: AtomicU64::new(0), budget, over: AtomicBool::new(false) }
    }

    /// `bytes` more were uploaded.
    pub fn uploaded(&self, bytes: u64) {
        self.uploaded.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes on the spool not uploaded yet.
    pub fn waiting(&self) -> u64 {
        self.written.load(Ordering::Relaxed).saturating_sub(self.uploaded.load(Ordering::Relaxed))
    }

    /// Whether the backlog has passed its budget (it stays so).
    pub fn over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// The budget, in MiB, for messages.
    pub fn budget_mib(&self) -> u64 {
        self.budget / (1024 * 1024)
    }

    /// `bytes` more were written; `true` the first time the backlog passes its budget.
    fn written(&self, bytes: u64) -> bool {
        self.written.fetch_add(bytes, Ordering::Relaxed);
        self.waiting() > self.budget && !self.over.swap(true, Ordering::Relaxed)
    }
}

/// Counts what the media thread reports writing: segment files, and MP4 files' growth.
#[derive(Debug, Default)]
pub struct Writes {
    /// Each MP4 file's reported length so far, by index.
    mp4: HashMap<u32, u64>,
}

impl Writes {
    /// Adds what `output` says was written to `backlog`; `true` when that passed its budget.
    pub fn count(&mut self, output: &Output, backlog: &Backlog) -> bool {
        let bytes = match output {
            Output::Segment { path, .. } => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            Output::Mp4Progress { file, bytes, .. } => {
                let before = self.mp4.insert(*file, *bytes).unwrap_or(0);
                bytes.saturating_sub(before)
            }
            _ => return false,
        };
        backlog.written(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_what_was_written_and_not_uploaded_and_passes_its_budget_once() {
        let backlog = Backlog::new(1_000);
        let mut writes = Writes::default();
        let progress = |bytes| Output::Mp4Progress { file: 0, path: "x.mp4".into(), bytes };
        assert!(!writes.count(&progress(600), &backlog));
        backlog.uploaded(600);
        assert!(!writes.count(&progress(1_500), &backlog), "900 waiting");
        assert_eq!(backlog.waiting(), 900);
        assert!(writes.count(&progress(1_700), &backlog), "1100 waiting: over");
        assert!(!writes.count(&progress(1_900), &backlog), "reported once");
        assert!(backlog.over());
    }
}
