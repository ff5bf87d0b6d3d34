//! `make chaos`: one recording per real fault on the local stack, and a table of what each
//! cost. Two workers of our own record (their AWS endpoint is a fault proxy in front of moto),
//! the stack's deliverer sends the callbacks to a receiver of ours, and a publisher streams
//! throughout. Faults: kill -9 and SIGSTOP/SIGCONT of the worker holding the job, ten SIGTERM
//! hand-offs, 60 s of refused, reset or stalled connections to S3, DynamoDB and SQS, a deleted
//! job message, a receiver that is down for a minute, and a spool disk that fills up. Each row: the media the files should
//! hold (first file start to last file end), what S3 holds per format, the loss, the job's end,
//! and whether every callback came once and in order. Not part of `make test`: it takes about
//! a quarter of an hour; the takeover tests are its short versions.
#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

#[path = "../worker/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "../takeover/faults.rs"]
#[allow(dead_code)]
mod faults;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use faults::{
    coverage, delete_message, lease_owner, moto, shut_down, signal, start_sweeper, start_worker_on_small_spool,
    start_worker_with, wait_for_owner, Coverage,
};
use roomrec_domain::callback::EventType;
use roomrec_faultproxy::{FaultProxy, Mode};
use roomrec_testkit::markdown;
use roomrec_testkit::receiver::Receiver;
use roomrec_tests::publish_with;
use serde_json::json;
use support::{final_events, wait_for_events, Setup};
use tokio::process::Child;

/// The auth_key the chaos apps sign callbacks with.
const AUTH_KEY: &str = "8923ab8c2dcef4538923ab8c2dcef453";
/// How long a network fault or a receiver outage lasts.
const OUTAGE: Duration = Duration::from_secs(60);
/// Recording before the fault, and after it before the stop.
const BEFORE: Duration = Duration::from_secs(10);
const AFTER: Duration = Duration::from_secs(15);

/// The goals: most media lost to a crash or freeze (per format), to one hand-off, and
/// to a network fault or a receiver outage (0 s, within what the measure can tell: the file
/// times are wall-clock times of the first and last packet written).
const CRASH_LOSS: f64 = 15.0;
const HANDOFF_LOSS: f64 = 2.0;
const NO_LOSS: f64 = 1.0;

#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill,
    Freeze,
    HandOffs,
    Network(Mode),
    DeletedMessage,
    ReceiverDown,
    FullSpool,
}

/// The spool of the workers of the full-disk case, in MiB: full after about half a minute.
const SMALL_SPOOL_MIB: u32 = 6;

impl Fault {
    fn describe(self) -> String {
        match self {
            Fault::Kill => "kill -9 of the worker holding the job".into(),
            Fault::Freeze => "SIGSTOP of the worker holding the job for 20 s, then SIGCONT".into(),
            Fault::HandOffs => "ten SIGTERM hand-offs (rolling deploy)".into(),
            Fault::Network(mode) => format!("AWS connections {mode:?} for {} s", OUTAGE.as_secs()).to_lowercase(),
            Fault::DeletedMessage => "the job's queue message deleted".into(),
            Fault::ReceiverDown => format!("callback receiver down for {} s", OUTAGE.as_secs()),
            Fault::FullSpool => format!("spool disk full ({SMALL_SPOOL_MIB} MiB tmpfs)"),
        }
    }

    /// Most media the fault may cost per format.
    fn allowed_loss(self) -> f64 {
        match self {
            Fault::Kill | Fault::Freeze => CRASH_LOSS,
            Fault::HandOffs => 10.0 * HANDOFF_LOSS,
            Fault::Network(_) | Fault::DeletedMessage | Fault::ReceiverDown => NO_LOSS,
            // The job fails; what was recorded until then must stay.
            Fault::FullSpool => f64::INFINITY,
        }
    }

    /// How the job must end.
    fn expected_end(self) -> &'static str {
        match self {
            Fault::FullSpool => "FAILED INTERNAL_ERROR",
            _ => "STOPPED TENANT_STOP",
        }
    }
}

/// What one fault cost.
struct Row {
    fault: Fault,
    hls: Coverage,
    mp4: Coverage,
    end: String,
    events: usize,
    delivered: usize,
    in_order: bool,
    duplicates: usize,
}

impl Row {
    fn ok(&self) -> bool {
        let allowed = self.fault.allowed_loss();
        self.hls.lost() <= allowed
            && self.mp4.lost() <= allowed
            && self.end == self.fault.expected_end()
            && self.delivered == self.events
            && self.in_order
            && self.duplicates == 0
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.fault.describe(),
            format!("{:.1}", self.hls.span.max(self.mp4.span)),
            format!("{:.1}", self.hls.media),
            format!("{:.1}", self.mp4.media),
            match self.fault {
                Fault::FullSpool => {
                    format!("{:.1} / {:.1} (fails, keeps what was uploaded)", self.hls.lost(), self.mp4.lost())
                }
                fault => {
                    format!("{:.1} / {:.1} (goal ≤ {:.0})", self.hls.lost(), self.mp4.lost(), fault.allowed_loss())
                }
            },
            self.end.clone(),
            format!(
                "{}/{}{}",
                self.delivered,
                self.events,
                if self.in_order { ", in order" } else { ", OUT OF ORDER" }
            ),
            self.duplicates.to_string(),
            markdown::verdict(self.ok()).to_owned(),
        ]
    }
}

/// Two workers whose AWS endpoint is `proxy`, named after `tag`.
fn fleet(tag: &str, proxy: &FaultProxy) -> HashMap<String, Child> {
    let endpoint = format!("http://{}", proxy.listen_addr());
    ["a", "b"]
        .iter()
        .map(|n| {
            let name = format!("{tag}-{n}");
            let worker = start_worker_with(&name, &[("AWS_ENDPOINT_URL", endpoint.as_str())]);
            (name, worker)
        })
        .collect()
}

/// Records one job through `fault` and measures what it cost.
async fn record_through(fault: Fault, tag: String) -> Row {
    let tag = tag.as_str();
    let mut receiver = Receiver::start(Vec::new(), 200).await.unwrap();
    let receiver_addr: SocketAddr =
        receiver.url().trim_start_matches("http://").split('/').next().unwrap().parse().unwrap();
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    // Every event, the opt-in failure event too: a failed recording's callback must arrive.
    let events = ["RECORD_NEW_FILE_START", "RECORD_FILE_COMPLETE", "CLOUD_RECORD_OVER", "CLOUD_RECORD_FAILED"];
    let callback = json!({ "url": receiver.url(), "auth_key": AUTH_KEY, "notify_event_subscription": events });
    setup.api.set_callback(&setup.app, &callback).await.unwrap();
    let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), moto()).await.unwrap();
    let mut publisher = publish_with(&setup.publish_url("room", tag).await, 300, "640x360", &[]);
    let job = setup.start_job("room", tag, 30).await;

    let mut _sweeper = None;
    // What a receiver that was stopped got before.
    let mut before_outage = Vec::new();
    if let Fault::DeletedMessage = fault {
        delete_message(&job).await;
        _sweeper = Some(start_sweeper());
    }
    let endpoint = format!("http://{}", proxy.listen_addr());
    let through_proxy = [("AWS_ENDPOINT_URL", endpoint.as_str())];
    let mut workers = match fault {
        Fault::HandOffs => HashMap::new(),
        Fault::FullSpool => ["a", "b"]
            .iter()
            .map(|n| format!("{tag}-{n}"))
            .map(|name| (name.clone(), start_worker_on_small_spool(&name, &through_proxy, SMALL_SPOOL_MIB)))
            .collect(),
        _ => fleet(tag, &proxy),
    };
    if let Fault::HandOffs = fault {
        let first = format!("{tag}-0");
        workers.insert(first.clone(), start_worker_with(&first, &through_proxy));
    }
    wait_for_events(&job, EventType::RecordNewFileStart, 2, Duration::from_secs(40)).await;
    tokio::time::sleep(BEFORE).await;

    match fault {
        Fault::Kill => {
            let owner = lease_owner(&setup.app, &job).await.unwrap();
            workers.remove(&owner).unwrap().kill().await.unwrap();
        }
        Fault::Freeze => {
            let owner = lease_owner(&setup.app, &job).await.unwrap();
            signal(&workers[&owner], "-STOP");
            tokio::time::sleep(Duration::from_secs(20)).await;
            signal(&workers[&owner], "-CONT");
        }
        Fault::HandOffs => {
            for round in 1..=10 {
                let current = format!("{tag}-{}", round - 1);
                let next = format!("{tag}-{round}");
                workers.insert(next.clone(), start_worker_with(&next, &through_proxy));
                tokio::time::sleep(Duration::from_secs(3)).await;
                shut_down(workers.remove(&current).unwrap()).await;
                wait_for_owner(&setup, &job, &next, Duration::from_secs(30)).await;
                wait_for_events(&job, EventType::RecordNewFileStart, 2 * (round + 1), Duration::from_secs(30)).await;
            }
        }
        Fault::Network(mode) => {
            proxy.set_mode(mode, Some(OUTAGE)).await.unwrap();
            tokio::time::sleep(OUTAGE).await;
        }
        Fault::ReceiverDown => {
            before_outage = receiver.received();
            receiver.stop().await;
            tokio::time::sleep(OUTAGE).await;
            receiver = Receiver::start_on(receiver_addr, Vec::new(), 200).await.unwrap();
        }
        Fault::DeletedMessage | Fault::FullSpool => {}
    }
    let stopped = if let Fault::FullSpool = fault {
        setup.wait_for_state(&job, "FAILED", Duration::from_secs(180)).await
    } else {
        tokio::time::sleep(AFTER).await;
        setup.stop(&job).await;
        setup.wait_for_state(&job, "STOPPED", Duration::from_secs(120)).await
    };
    publisher.kill().await.ok();
    let end = format!("{} {}", stopped["state"].as_str().unwrap(), stopped["stop_reason"].as_str().unwrap_or("-"));

    let events = final_events(&job).await;
    let (hls, mp4) = (coverage(&setup, &events, "m3u8").await, coverage(&setup, &events, "mp4").await);

    // Every event should arrive, once, in order; give the retry schedule time to find the
    // receiver back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    let sequences = loop {
        let got: Vec<u64> = before_outage
            .iter()
            .chain(receiver.received().iter())
            .map(|r| r.json())
            .filter(|body| body["job_id"] == job.as_str())
            .map(|body| body["sequence"].as_u64().unwrap())
            .collect();
        let distinct: std::collections::BTreeSet<u64> = got.iter().copied().collect();
        if distinct.len() >= events.len() || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut first_seen = Vec::new();
    for sequence in &sequences {
        if !first_seen.contains(sequence) {
            first_seen.push(*sequence);
        }
    }
    let row = Row {
        fault,
        hls,
        mp4,
        end,
        events: events.len(),
        delivered: first_seen.len(),
        in_order: first_seen.windows(2).all(|w| w[0] < w[1]),
        duplicates: sequences.len() - first_seen.len(),
    };
    eprintln!("{}", markdown::row(&row.cells()));
    receiver.stop().await;
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_survive_real_faults() {
    let faults = [
        Fault::Kill,
        Fault::Freeze,
        Fault::HandOffs,
        Fault::Network(Mode::Refuse),
        Fault::Network(Mode::Reset),
        Fault::Network(Mode::Stall),
        Fault::DeletedMessage,
        Fault::ReceiverDown,
        Fault::FullSpool,
    ];
    // `CHAOS_CASES=reset,kill` runs only the cases whose description names one of the words.
    let only = std::env::var("CHAOS_CASES").unwrap_or_default();
    let wanted = |fault: &Fault| only.is_empty() || only.split(',').any(|word| fault.describe().contains(word.trim()));
    // Each case in a task of its own, so one that fails outright is a row too.
    let mut rows = Vec::new();
    for (n, fault) in faults.into_iter().enumerate().filter(|(_, fault)| wanted(fault)) {
        let outcome = tokio::spawn(record_through(fault, format!("chaos{n}"))).await;
        let cells = match &outcome {
            Ok(row) => row.cells(),
            Err(err) => vec![fault.describe(), format!("the case failed: {err}"), markdown::verdict(false).to_owned()],
        };
        rows.push((fault, outcome.map(|row| row.ok()).unwrap_or(false), cells));
    }
    let titles = [
        "fault",
        "media expected (s)",
        "HLS in S3 (s)",
        "MP4 in S3 (s)",
        "lost HLS / MP4 (s)",
        "job end",
        "callbacks",
        "duplicates",
        "goal met",
    ];
    println!("\n{}", markdown::header(&titles));
    for (_, _, cells) in &rows {
        println!("{}", markdown::row(cells));
    }
    let missed: Vec<String> = rows.iter().filter(|(_, ok, _)| !ok).map(|(fault, _, _)| fault.describe()).collect();
    assert!(missed.is_empty(), "goals missed: {missed:?}");
}
