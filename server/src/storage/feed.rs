//! The commit feed: the events this server's writer has just committed, handed to one subscriber
//! (the alert rules of the leader) straight from the writer, so the leader does not read its own
//! events back and parse their data a second time.
//!
//! Bounded: the writer never waits for the subscriber. When the subscriber's queue is full the
//! writer drops the commit and marks the feed *lagged*; the subscriber then reads back from
//! storage what it missed. With no subscriber (a server that does not lead) the writers build
//! nothing. Only events the writer stored appear here: another server's, on a shared PostgreSQL
//! database, are found by the subscriber's count check (`Storage::count_events`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::domain::event::CommittedEvent;

/// Commits a subscriber's queue holds before the feed lags (the alert rules drain it every 100 ms;
/// SQLite commits up to about 1,500 groups a second under single-event load).
pub const FEED_COMMITS: usize = 2048;

/// The writers' side of the feed; shared by the storage handle and its backend's writer.
#[derive(Debug, Default)]
pub struct CommitFeed {
    sender: Mutex<Option<mpsc::Sender<Vec<CommittedEvent>>>>,
    active: AtomicBool,
    lagged: Arc<AtomicBool>,
}

impl CommitFeed {
    /// Whether a subscriber listens: writers build [`CommittedEvent`]s only then.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Hands one commit's new events (in `event_id` order) to the subscriber, at once; marks the
    /// feed lagged when its queue is full. Called by a writer after the commit and before it
    /// raises the committed-id watch, so a subscriber that has seen an id in the watch finds every
    /// event of this server up to it in the feed.
    pub fn publish(&self, events: Vec<CommittedEvent>) {
        if events.is_empty() {
            return;
        }
        let mut sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let Some(to) = sender.as_ref() else { return };
        match to.try_send(events) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.lagged.store(true, Ordering::Release),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                *sender = None;
                self.active.store(false, Ordering::Release);
            }
        }
    }

    /// Makes a new subscriber (replacing any other, whose receiver then ends): it sees every
    /// commit published from now on.
    pub fn subscribe(&self) -> CommitReceiver {
        let (to, receiver) = mpsc::channel(FEED_COMMITS);
        let mut sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        *sender = Some(to);
        self.lagged.store(false, Ordering::Release);
        self.active.store(true, Ordering::Release);
        CommitReceiver { receiver, lagged: self.lagged.clone() }
    }
}

/// The subscriber's side of the feed; dropping it stops the writers building events.
#[derive(Debug)]
pub struct CommitReceiver {
    receiver: mpsc::Receiver<Vec<CommittedEvent>>,
    lagged: Arc<AtomicBool>,
}

impl CommitReceiver {
    /// Everything published since the last call, in commit order, and whether some commit was
    /// dropped meanwhile (the queue was full): then what is missing must be read back.
    pub fn drain(&mut self) -> (Vec<CommittedEvent>, bool) {
        let mut events = Vec::new();
        while let Ok(mut commit) = self.receiver.try_recv() {
            events.append(&mut commit);
        }
        (events, self.lagged.swap(false, Ordering::AcqRel))
    }
}
