//! How much of a worker a job takes, in recording units, and the worker's budget of them: an
//! individual recording is one unit; a mix costs its encode and one decode per participant,
//! so a worker never takes on more media work than it is sized for.
//!
//! The weights come from the benchmarks in the README, on one machine: an individual
//! recording (remux, `make bench-worker` at N = 50) took 0.0075 CPU-s per second; a mix's
//! participant thread (demux, decode, scale into its pane, resample; `make bench-mix`)
//! 0.022–0.024 for a 640x360 30 fps stream, about three recordings; and its libx264 encode
//! at 1920x1080 30 fps (62 million pixels a second) 0.45–0.47, about sixty.

use std::sync::Arc;

use roomrec_domain::job::{Job, JobSpec};
use tokio::sync::watch;

/// A share of a worker's capacity: one individual recording is one unit.
pub type Units = u32;

/// What an individual recording costs.
pub const INDIVIDUAL_UNITS: Units = 1;
/// What a mix costs per participant whose video it decodes (bench-mix: about 3 recordings).
const VIDEO_DECODE_UNITS: Units = 3;
/// What an audio-only mix costs per participant (sound only: about a recording's demux).
const AUDIO_DECODE_UNITS: Units = 1;
/// Pixels a second of mix output that cost one unit to encode (bench-mix: 1080p30 ≈ 60 units).
const ENCODE_PIXELS_PER_UNIT: u64 = 1_000_000;
/// What an audio-only mix's encode costs (one AAC stream).
const AUDIO_ENCODE_UNITS: Units = 1;

/// What `job` costs while it records. A mix is counted at its layout's most panes, since
/// anyone may join while it records; its encode by the pixels a second it makes.
pub fn cost(job: &Job) -> Units {
    let JobSpec::Mix { mix_param } = &job.spec else { return INDIVIDUAL_UNITS };
    let panes = mix_param.layout_template.max_panes();
    match mix_param.encode_template.video() {
        None => AUDIO_ENCODE_UNITS + panes * AUDIO_DECODE_UNITS,
        Some(video) => {
            let pixels = u64::from(video.width) * u64::from(video.height) * u64::from(video.fps);
            let encode = Units::try_from(pixels.div_ceil(ENCODE_PIXELS_PER_UNIT)).unwrap_or(Units::MAX);
            encode.saturating_add(panes * VIDEO_DECODE_UNITS)
        }
    }
}

/// What a worker holds at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Messages received (or being received) whose job is not claimed yet.
    pub looking: u32,
    /// Jobs claimed and not yet ended.
    pub jobs: u32,
    /// Units of the claimed jobs: the capacity in use.
    pub in_use: Units,
}

/// A worker's budget of units and what it holds of it.
pub struct Capacity {
    budget: Units,
    load: watch::Sender<Load>,
}

impl Capacity {
    /// A worker that may hold `budget` units (at least one).
    pub fn new(budget: Units) -> Arc<Self> {
        Arc::new(Self { budget: budget.max(1), load: watch::Sender::new(Load::default()) })
    }

    /// The units this worker may hold.
    pub fn budget(&self) -> Units {
        self.budget
    }

    /// The units of the jobs running now ("worker slots in use").
    pub fn in_use(&self) -> Units {
        self.load.borrow().in_use
    }

    /// What is held now, and every change after: the jobs running, for scale-in protection.
    pub fn watch(&self) -> watch::Receiver<Load> {
        self.load.subscribe()
    }

    /// Waits until the running jobs and the messages already being looked at leave a unit
    /// free, then counts one more message being looked at: a full worker does not receive,
    /// and [`Slot::claim`] says whether the job it receives fits.
    pub async fn reserve(self: &Arc<Self>) -> Slot {
        let budget = self.budget;
        let mut load = self.load.subscribe();
        loop {
            let room = |load: &mut Load| {
                let fits = load.in_use.saturating_add(load.looking) < budget;
                load.looking += u32::from(fits);
                fits
            };
            if self.load.send_if_modified(room) {
                return Slot { capacity: self.clone(), claimed: None };
            }
            // The sender lives in `self`, so the channel cannot close while we wait.
            let _ = load.changed().await;
        }
    }
}

/// A message being looked at, then its job's units once claimed; given back when dropped.
pub struct Slot {
    capacity: Arc<Capacity>,
    /// The units of its claimed job.
    claimed: Option<Units>,
}

/// A job's cost did not fit in what the worker has free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the job needs {needs} units and this worker has {free} of {budget} free")]
pub struct NoRoom {
    pub needs: Units,
    pub free: Units,
    pub budget: Units,
}

impl Slot {
    /// The worker's capacity this slot is part of.
    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    /// Counts the job as running at `cost` if that fits beside the jobs running already (not
    /// the messages being looked at: whoever claims first has the room). A job costing more
    /// than the whole budget takes all of it, so it runs once the worker is idle. Called
    /// again (a claim retried), it re-counts the cost.
    pub fn claim(&mut self, cost: Units) -> Result<(), NoRoom> {
        let budget = self.capacity.budget;
        let cost = cost.min(budget);
        let before = self.claimed;
        let mut free = 0;
        let taken = self.capacity.load.send_if_modified(|load| {
            let others = load.in_use - before.unwrap_or(0);
            free = budget - others;
            if others + cost > budget {
                return false;
            }
            if before.is_none() {
                load.looking -= 1;
                load.jobs += 1;
            }
            load.in_use = others + cost;
            true
        });
        if !taken {
            return Err(NoRoom { needs: cost, free, budget });
        }
        self.claimed = Some(cost);
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let claimed = self.claimed;
        self.capacity.load.send_modify(|load| match claimed {
            None => load.looking -= 1,
            Some(units) => {
                load.jobs -= 1;
                load.in_use -= units;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomrec_domain::ids::AppId;
    use roomrec_domain::testing::{now, random};

    fn mix(encode_template: &str, layout: &str) -> Job {
        let body = serde_json::json!({
            "mix_param": { "room_id": "r1", "encode_template": encode_template, "layout_template": layout },
            "record_param": { "record_rule_id": "0123456789abcdef0123456789abcdef" },
        });
        Job::mix(AppId::generate(random()), serde_json::from_value(body).unwrap(), random(), now()).unwrap()
    }

    fn individual() -> Job {
        let body =
            r#"{"room_id":"r1","user_id":"u1","record_param":{"record_rule_id":"0123456789abcdef0123456789abcdef"}}"#;
        Job::individual(AppId::generate(random()), serde_json::from_str(body).unwrap(), random(), now()).unwrap()
    }

    #[test]
    fn a_mix_costs_its_encode_by_pixel_rate_and_three_units_per_pane_it_may_decode() {
        assert_eq!(cost(&individual()), 1);
        // 1920·1080·30 = 62.2 Mpx/s → 63 units, and 25 grid panes decoded at 3 units each.
        assert_eq!(cost(&mix("1920x1080_30_4620", "nine_grids_view")), 63 + 75);
        // A screen-share layout holds 17 panes.
        assert_eq!(cost(&mix("1280x720_30_2000", "screen_share_left")), 28 + 51);
        // Sound only: one AAC encode, every participant's sound decoded.
        assert_eq!(cost(&mix("audio_only", "nine_grids_view")), 1 + 25);
    }

    #[tokio::test]
    async fn a_job_is_taken_only_while_its_cost_fits_in_what_is_free() {
        let capacity = Capacity::new(100);
        let mut first = capacity.reserve().await;
        first.claim(79).unwrap();
        assert_eq!((capacity.in_use(), capacity.watch().borrow().jobs), (79, 1));

        let (mut second, next) = (capacity.reserve().await, capacity.reserve().await);
        assert_eq!(second.claim(26), Err(NoRoom { needs: 26, free: 21, budget: 100 }));
        second.claim(21).unwrap();
        assert_eq!(capacity.in_use(), 100);
        drop(second);
        assert_eq!(*capacity.watch().borrow(), Load { looking: 1, jobs: 1, in_use: 79 });
        drop(next);

        drop(first);
        assert_eq!(*capacity.watch().borrow(), Load::default(), "every unit comes back");
    }

    #[tokio::test]
    async fn a_job_bigger_than_the_whole_worker_runs_alone() {
        let capacity = Capacity::new(20);
        let mut small = capacity.reserve().await;
        small.claim(1).unwrap();
        let mut big = capacity.reserve().await;
        assert!(big.claim(138).is_err(), "not beside another job");
        drop(small);
        // The queue loop is already waiting for the next message meanwhile.
        let _next = capacity.reserve().await;
        big.claim(138).unwrap();
        assert_eq!(capacity.in_use(), 20, "it takes the whole budget, no more");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_worker_receives_no_message_until_a_job_ends() {
        let capacity = Capacity::new(2);
        let mut jobs = Vec::new();
        for _ in 0..2 {
            let mut slot = capacity.reserve().await;
            slot.claim(1).unwrap();
            jobs.push(slot);
        }
        let waiting = tokio::time::timeout(std::time::Duration::from_secs(60), capacity.reserve()).await;
        assert!(waiting.is_err(), "no unit is free for a message");
        drop(jobs.pop());
        let looking = capacity.reserve().await;
        assert_eq!(*capacity.watch().borrow(), Load { looking: 1, jobs: 1, in_use: 1 });
        let waiting = tokio::time::timeout(std::time::Duration::from_secs(60), capacity.reserve()).await;
        assert!(waiting.is_err(), "one message at a time for the one free unit");
        drop(looking);
    }

    #[tokio::test]
    async fn a_retried_claim_counts_the_job_once() {
        let capacity = Capacity::new(10);
        let mut slot = capacity.reserve().await;
        slot.claim(4).unwrap();
        slot.claim(6).unwrap();
        assert_eq!(*capacity.watch().borrow(), Load { looking: 0, jobs: 1, in_use: 6 });
    }
}
