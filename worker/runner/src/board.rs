//! The items of every job this worker runs, read for all of them at once each tick: one
//! BatchGetItem a second per worker instead of one GetItem a second per job. Each job task
//! watches its own entry and checks for stop requests and idleness when it changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use std::time::Duration;

use roomrec_domain::ids::{AppId, JobId};
use roomrec_domain::ports::JobStore;
use roomrec_domain::record::JobRecord;
use tokio::sync::watch;
use tokio::time::Interval;

/// How often the job items are read (stop requests) and idle time checked.
pub const TICK: Duration = Duration::from_secs(1);

/// What the latest read found for one job.
#[derive(Debug, Clone)]
pub enum Seen {
    /// Not read yet.
    Unread,
    Found(Box<JobRecord>),
    /// The read succeeded and the job was not there.
    Gone,
    /// The read failed; the text says why.
    Failed(String),
}

type Key = (AppId, JobId);

/// Every watched job's latest read.
pub struct Board {
    store: Arc<dyn JobStore>,
    watched: Mutex<HashMap<Key, watch::Sender<Seen>>>,
}

/// One job's entry on the board; removed when dropped.
pub struct Watch {
    board: Arc<Board>,
    key: Key,
    seen: watch::Receiver<Seen>,
    /// Ticks every two board ticks, so a board held up by a slow store does not hold up the
    /// watcher's own checks (idleness, shutdown).
    fallback: Interval,
}

impl Board {
    /// An empty board reading from `store`.
    pub fn new(store: Arc<dyn JobStore>) -> Arc<Self> {
        Arc::new(Self { store, watched: Mutex::new(HashMap::new()) })
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<Key, watch::Sender<Seen>>> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts reading the job with every tick, until the returned [`Watch`] is dropped.
    pub fn watch(self: &Arc<Self>, app_id: &AppId, job_id: &JobId) -> Watch {
        let key = (app_id.clone(), job_id.clone());
        let seen = self.watched().entry(key.clone()).or_insert_with(|| watch::channel(Seen::Unread).0).subscribe();
        Watch { board: self.clone(), key, seen, fallback: tokio::time::interval(TICK * 2) }
    }

    /// Reads every watched job once a [`TICK`], forever.
    pub async fn run(self: Arc<Self>) {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.read_all().await;
        }
    }

    /// One read of every watched job; each watcher is told, found or not.
    async fn read_all(&self) {
        let keys: Vec<Key> = self.watched().keys().cloned().collect();
        if keys.is_empty() {
            return;
        }
        let (mut found, failure) = match self.store.get_jobs(&keys).await {
            Ok(jobs) => (jobs.into_iter().map(|r| ((r.job.app_id.clone(), r.job.job_id.clone()), r)).collect(), None),
            Err(err) => (HashMap::new(), Some(err.to_string())),
        };
        let watched = self.watched();
        for key in &keys {
            let seen = match (&failure, found.remove(key)) {
                (Some(why), _) => Seen::Failed(why.clone()),
                (None, Some(job)) => Seen::Found(Box::new(job)),
                (None, None) => Seen::Gone,
            };
            // A job no longer watched is simply not told.
            if let Some(sender) = watched.get(key) {
                sender.send_replace(seen);
            }
        }
    }
}

impl Watch {
    /// The latest read of the job.
    pub fn latest(&mut self) -> Seen {
        self.seen.borrow_and_update().clone()
    }

    /// Waits for the board's next read or the fallback's next tick, whichever comes first;
    /// cancel safe, so it can be one branch of a `select!` in a loop.
    pub async fn next(&mut self) {
        tokio::select! {
            _ = self.seen.changed() => {}
            _ = self.fallback.tick() => {}
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watched = self.board.watched();
        // The last watcher of the job takes its entry away.
        if watched.get(&self.key).is_some_and(|sender| sender.receiver_count() <= 1) {
            watched.remove(&self.key);
        }
    }
}
