//! The commit feed: the events this server's writer has just committed, handed to one subscriber
//! (the alert rules of the leader) straight from the writer, so the leader does not read its own
//! events back and parse their data a second time.
//!
//! Bounded: the writer never waits for the subscriber. When the subscriber's queue is full the
//! writer drops the commit and marks the feed *lagged*; the subscriber then reads back from
//! storage what it missed. With no subscriber (a server that does not lead) the writers build
//! nothing. Only events the writer stored appear here: another server's, on a shared PostgreSQL
//! database, are found by the subscriber's count check (`Storage::count_events`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::domain::event::CommittedEvent;

/// Commits a subscriber's queue holds before the feed lags (the alert rules drain it every 25 ms;
/// SQLite commits up to about 2,500 groups a second under single-event load).
pub const FEED_COMMITS: usize = 4096;

/// Events a subscriber's queue holds before the feed lags: about 70 ms of SQLite's batched
/// ingest. A stall of the subscriber (its alert writes wait for the writer) then costs a
/// read-back, not memory.
pub const FEED_EVENTS: usize = 10_000;

/// The subscriber's queue and its count of events waiting.
type Subscription = (mpsc::Sender<Vec<CommittedEvent>>, Arc<AtomicUsize>);

/// The writers' side of the feed; shared by the storage handle and its backend's writer.
#[derive(Debug, Default)]
pub struct CommitFeed {
    /// The subscriber's queue, and how many events it holds (published, not drained yet).
    sender: Mutex<Option<Subscription>>,
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
        let Some((to, queued)) = sender.as_ref() else { return };
        let count = events.len();
        if queued.load(Ordering::Acquire) + count > FEED_EVENTS {
            self.lagged.store(true, Ordering::Release);
            return;
        }
        // Counted before it can be drained.
        queued.fetch_add(count, Ordering::AcqRel);
        match to.try_send(events) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                queued.fetch_sub(count, Ordering::AcqRel);
                self.lagged.store(true, Ordering::Release);
            }
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
        let queued = Arc::new(AtomicUsize::new(0));
        let mut sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        *sender = Some((to, queued.clone()));
        self.lagged.store(false, Ordering::Release);
        self.active.store(true, Ordering::Release);
        CommitReceiver { receiver, lagged: self.lagged.clone(), queued }
    }
}

/// The subscriber's side of the feed; dropping it stops the writers building events.
#[derive(Debug)]
pub struct CommitReceiver {
    receiver: mpsc::Receiver<Vec<CommittedEvent>>,
    lagged: Arc<AtomicBool>,
    queued: Arc<AtomicUsize>,
}

impl CommitReceiver {
    /// Everything published since the last call, in commit order, and whether some commit was
    /// dropped meanwhile (the queue was full): then what is missing must be read back.
    pub fn drain(&mut self) -> (Vec<CommittedEvent>, bool) {
        let mut events = Vec::new();
        while let Ok(mut commit) = self.receiver.try_recv() {
            self.queued.fetch_sub(commit.len(), Ordering::AcqRel);
            events.append(&mut commit);
        }
        (events, self.lagged.swap(false, Ordering::AcqRel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::facts::EventFacts;

    fn commit(first: i64, n: usize) -> Vec<CommittedEvent> {
        (0..n as i64)
            .map(|i| CommittedEvent {
                event_id: first + i,
                at_ms: 0,
                session_token: "ws_feed".into(),
                student_email: None,
                event_type: "action".into(),
                facts: EventFacts::default(),
                message: None,
                address: None,
            })
            .collect()
    }

    // Nothing is built or kept without a subscriber; a subscriber gets every commit in order.
    #[test]
    fn a_subscriber_gets_the_commits_published_after_it_subscribed() {
        let feed = CommitFeed::default();
        assert!(!feed.is_active());
        feed.publish(commit(1, 3));
        let mut receiver = feed.subscribe();
        assert!(feed.is_active());
        feed.publish(commit(4, 2));
        feed.publish(commit(6, 1));
        let (events, lagged) = receiver.drain();
        assert_eq!(events.iter().map(|e| e.event_id).collect::<Vec<_>>(), [4, 5, 6]);
        assert!(!lagged);
        drop(receiver);
        feed.publish(commit(7, 1));
        assert!(!feed.is_active(), "a dropped subscriber stops the writers building events");
    }

    // Past FEED_EVENTS waiting, a commit is dropped and the feed says it lagged (the subscriber
    // then reads back), so a stalled subscriber costs no memory; draining makes room again.
    #[test]
    fn a_full_feed_drops_commits_and_says_so() {
        let feed = CommitFeed::default();
        let mut receiver = feed.subscribe();
        feed.publish(commit(1, FEED_EVENTS));
        feed.publish(commit(FEED_EVENTS as i64 + 1, 1));
        let (events, lagged) = receiver.drain();
        assert_eq!(events.len(), FEED_EVENTS);
        assert!(lagged);
        feed.publish(commit(FEED_EVENTS as i64 + 2, 1));
        let (events, lagged) = receiver.drain();
        assert_eq!((events.len(), lagged), (1, false));
    }
}
