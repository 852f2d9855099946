//! The durable queue: the in-memory [`Queue`] mirrored into a key-value store (`localStorage` in
//! the browser), so events not yet acknowledged survive a reload, a crash or a closed tab.
//!
//! Why `localStorage` and not IndexedDB: its writes are synchronous, so an event is stored before
//! the logging call returns, even if the page dies a moment later; IndexedDB's asynchronous
//! transactions can be lost with the page. Each event is one key, so an enqueue is one small
//! write and an acknowledgement removes keys: nothing is rewritten as the queue grows.
//!
//! Layout (all keys start with `session-log:`):
//! - `q:<tab>:<n>`: one queued event's JSON; `<n>` is 16 hex digits, increasing per tab, so key
//!   order is queue order;
//! - `dropped:<tab>`: events this tab's queue dropped that no acknowledged batch has reported yet.
//!
//! Each tab has its own queue (`<tab>` lives in `sessionStorage`, so a reload keeps it), so two
//! tabs never send the same stored events. A queue whose tab is gone is *adopted* by a later page
//! (see `adopt`); the server's dedup on `eventId` is the safety net, not the plan.

use crate::core::Queue;

/// Prefix of every key the client writes.
pub const KEY_PREFIX: &str = "session-log:";

/// A key-value store with string keys and values (`localStorage`).
pub trait Store {
    /// The value of `key`, if any.
    fn get(&self, key: &str) -> Option<String>;
    /// Stores `value` under `key`. Errors: the store is full (`QuotaExceededError`) or unusable.
    fn set(&mut self, key: &str, value: &str) -> Result<(), StoreFull>;
    /// Removes `key` (absent keys are fine).
    fn remove(&mut self, key: &str);
    /// Every key in the store.
    fn keys(&self) -> Vec<String>;
}

/// The store refused a write (quota exceeded, or storage disabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFull;

/// Bounds of the queue (defaults 1,000 events and 1 MiB of JSON, from the issue; configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most events kept (events).
    pub max_events: usize,
    /// Most JSON kept (bytes).
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_events: 1000, max_bytes: 1024 * 1024 }
    }
}

/// What one `push` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pushed {
    /// Older events dropped to make room (bounds or a full store).
    pub dropped: usize,
    /// Whether the event is in the store (false: kept in memory only, the store refused it).
    pub persisted: bool,
}

/// The queue of one tab, in memory and in the store.
pub struct DurableQueue<S: Store> {
    store: S,
    tab: String,
    queue: Queue,
    next_slot: u64,
    limits: Limits,
    dropped_unreported: u64,
    /// `dropped_unreported` as it was when the batch in flight was built.
    reporting: u64,
}

fn queue_prefix(tab: &str) -> String {
    format!("{KEY_PREFIX}q:{tab}:")
}

fn dropped_key(tab: &str) -> String {
    format!("{KEY_PREFIX}dropped:{tab}")
}

impl<S: Store> DurableQueue<S> {
    /// Opens tab `tab`'s queue, loading what the store holds for it, oldest first.
    pub fn open(store: S, tab: &str, limits: Limits) -> Self {
        let mut this = DurableQueue {
            store,
            tab: tab.to_owned(),
            queue: Queue::default(),
            next_slot: 0,
            limits,
            dropped_unreported: 0,
            reporting: 0,
        };
        this.dropped_unreported = this.load_dropped(tab);
        for (slot, json) in this.stored(tab) {
            this.next_slot = slot + 1;
            this.queue.push(slot, json);
        }
        this
    }

    /// The tabs that have queued events or unreported drops in the store, other than this one.
    pub fn other_tabs(&self) -> Vec<String> {
        let mut tabs: Vec<String> = self
            .store
            .keys()
            .iter()
            .filter_map(|k| {
                let rest = k.strip_prefix(KEY_PREFIX)?;
                let tab = match rest.strip_prefix("q:") {
                    Some(rest) => rest.rsplit_once(':')?.0,
                    None => rest.strip_prefix("dropped:")?,
                };
                Some(tab.to_owned())
            })
            .filter(|t| *t != self.tab)
            .collect();
        tabs.sort();
        tabs.dedup();
        tabs
    }

    /// Moves tab `other`'s stored events (and its unreported drops) to the end of this queue.
    /// Call it only for a tab that is gone. Returns the number of events adopted.
    pub fn adopt(&mut self, other: &str) -> usize {
        let events = self.stored(other);
        let prefix = queue_prefix(other);
        let count = events.len();
        for (slot, json) in events {
            self.store.remove(&format!("{prefix}{slot:016x}"));
            self.push(json);
        }
        let dropped = self.load_dropped(other);
        self.store.remove(&dropped_key(other));
        if dropped > 0 {
            self.add_dropped(dropped);
        }
        count
    }

    /// Queues one event's JSON, storing it. When the queue is over its bounds, or the store is
    /// full, the oldest events (not in flight) are dropped and counted until it fits. An event the
    /// store still refuses stays in memory (`persisted: false`).
    pub fn push(&mut self, json: String) -> Pushed {
        let mut pushed = Pushed::default();
        while !self.queue.is_empty()
            && (self.queue.len() + 1 > self.limits.max_events || self.queue.bytes() + json.len() > self.limits.max_bytes)
        {
            if !self.drop_oldest() {
                break;
            }
            pushed.dropped += 1;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        let key = format!("{}{slot:016x}", queue_prefix(&self.tab));
        loop {
            if self.store.set(&key, &json).is_ok() {
                pushed.persisted = true;
                break;
            }
            // QuotaExceededError: make room by dropping the oldest, as for the bounds.
            if !self.drop_oldest() {
                break;
            }
            pushed.dropped += 1;
        }
        self.queue.push(slot, json);
        if pushed.dropped > 0 {
            self.add_dropped(pushed.dropped as u64);
        }
        pushed
    }

    fn drop_oldest(&mut self) -> bool {
        match self.queue.drop_oldest() {
            Some((slot, _)) => {
                self.store.remove(&format!("{}{slot:016x}", queue_prefix(&self.tab)));
                true
            }
            None => false,
        }
    }

    fn add_dropped(&mut self, n: u64) {
        self.dropped_unreported += n;
        let _ = self.store.set(&dropped_key(&self.tab), &self.dropped_unreported.to_string());
    }

    fn load_dropped(&self, tab: &str) -> u64 {
        self.store.get(&dropped_key(tab)).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The stored events of `tab`, oldest first.
    fn stored(&self, tab: &str) -> Vec<(u64, String)> {
        let prefix = queue_prefix(tab);
        let mut events: Vec<(u64, String)> = self
            .store
            .keys()
            .iter()
            .filter_map(|k| {
                let slot = u64::from_str_radix(k.strip_prefix(&prefix)?, 16).ok()?;
                Some((slot, self.store.get(k)?))
            })
            .collect();
        events.sort_by_key(|(slot, _)| *slot);
        events
    }

    /// The in-memory queue (for sizes and `is_due`).
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Events dropped and not yet reported in an acknowledged batch.
    pub fn dropped_unreported(&self) -> u64 {
        self.dropped_unreported
    }

    /// Takes the next batch (see [`Queue::start_batch`]), reporting the unreported drops in it.
    pub fn start_batch(&mut self, max_events: usize, max_bytes: usize) -> Option<crate::core::OutgoingBatch> {
        let batch = self.queue.start_batch_reporting(max_events, max_bytes, self.dropped_unreported)?;
        self.reporting = self.dropped_unreported;
        Some(batch)
    }

    /// The batch in flight is acknowledged (or refused for good): removes its events from memory
    /// and the store, and counts its drop report as delivered. Returns how many events it held.
    pub fn finish_batch(&mut self) -> usize {
        let prefix = queue_prefix(&self.tab);
        let slots = self.queue.finish_batch();
        for slot in &slots {
            self.store.remove(&format!("{prefix}{slot:016x}"));
        }
        if self.reporting > 0 {
            self.dropped_unreported -= self.reporting.min(self.dropped_unreported);
            self.reporting = 0;
            if self.dropped_unreported == 0 {
                self.store.remove(&dropped_key(&self.tab));
            } else {
                let _ = self.store.set(&dropped_key(&self.tab), &self.dropped_unreported.to_string());
            }
        }
        slots.len()
    }

    /// The batch in flight failed: it stays first in the queue.
    pub fn release_batch(&mut self) {
        self.queue.release_batch();
        self.reporting = 0;
    }

    /// Bodies for page-exit beacons (see [`Queue::chunks`]).
    pub fn chunks(&self, max_events: usize, max_bytes: usize) -> Vec<String> {
        self.queue.chunks(max_events, max_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An in-memory store with a byte quota, as `localStorage` has.
    #[derive(Default, Clone)]
    struct MemoryStore {
        map: BTreeMap<String, String>,
        quota: Option<usize>,
    }

    impl MemoryStore {
        fn used(&self) -> usize {
            self.map.iter().map(|(k, v)| k.len() + v.len()).sum()
        }
    }

    impl Store for &mut MemoryStore {
        fn get(&self, key: &str) -> Option<String> {
            self.map.get(key).cloned()
        }
        fn set(&mut self, key: &str, value: &str) -> Result<(), StoreFull> {
            let old = self.map.get(key).map_or(0, |v| key.len() + v.len());
            if let Some(quota) = self.quota {
                if self.used() - old + key.len() + value.len() > quota {
                    return Err(StoreFull);
                }
            }
            self.map.insert(key.to_owned(), value.to_owned());
            Ok(())
        }
        fn remove(&mut self, key: &str) {
            self.map.remove(key);
        }
        fn keys(&self) -> Vec<String> {
            self.map.keys().cloned().collect()
        }
    }

    fn event(n: usize) -> String {
        format!(r#"{{"n":{n}}}"#)
    }

    fn ns(body: &str) -> Vec<u64> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["events"].as_array().unwrap().iter().map(|e| e["n"].as_u64().unwrap()).collect()
    }

    // Events not yet acknowledged are still there, in order, when the tab's queue is reopened.
    #[test]
    fn queue_survives_reopening() {
        let mut store = MemoryStore::default();
        {
            let mut q = DurableQueue::open(&mut store, "tab1", Limits::default());
            for n in 0..5 {
                assert!(q.push(event(n)).persisted);
            }
            q.start_batch(2, 1 << 20).unwrap();
            assert_eq!(q.finish_batch(), 2);
            q.start_batch(2, 1 << 20).unwrap(); // in flight when the page dies
        }
        let mut q = DurableQueue::open(&mut store, "tab1", Limits::default());
        assert_eq!(ns(&q.start_batch(50, 1 << 20).unwrap().body), vec![2, 3, 4]);
        q.finish_batch();
        assert!(q.queue().is_empty());
        drop(q);
        assert!(store.map.is_empty(), "acknowledged events leave the store: {:?}", store.map);
    }

    // Over the count bound, the oldest events are dropped, counted and reported with the next batch.
    #[test]
    fn bounds_drop_oldest_and_report_it() {
        let mut store = MemoryStore::default();
        let mut q = DurableQueue::open(&mut store, "t", Limits { max_events: 3, max_bytes: 1 << 20 });
        for n in 0..5 {
            q.push(event(n));
        }
        assert_eq!(q.dropped_unreported(), 2);
        let batch = q.start_batch(50, 1 << 20).unwrap();
        assert_eq!(ns(&batch.body), vec![2, 3, 4]);
        assert!(batch.body.ends_with(r#""dropped":2}"#), "{}", batch.body);
        q.release_batch();
        assert_eq!(q.dropped_unreported(), 2, "a failed batch does not count as reported");
        q.start_batch(50, 1 << 20).unwrap();
        q.finish_batch();
        assert_eq!(q.dropped_unreported(), 0);
        drop(q);
        assert!(store.map.is_empty());
    }

    // The byte bound works the same way.
    #[test]
    fn byte_bound_drops_oldest() {
        let mut store = MemoryStore::default();
        let mut q = DurableQueue::open(&mut store, "t", Limits { max_events: 100, max_bytes: 20 });
        for n in 0..4 {
            q.push(event(n)); // 7 bytes each
        }
        assert_eq!(q.queue().len(), 2);
        assert_eq!(q.dropped_unreported(), 2);
    }

    // A full store (QuotaExceededError) makes room by dropping the oldest; nothing panics or throws.
    #[test]
    fn full_store_drops_oldest() {
        let mut store = MemoryStore { quota: Some(150), ..MemoryStore::default() };
        let mut q = DurableQueue::open(&mut store, "t", Limits::default());
        let mut dropped = 0;
        for n in 0..10 {
            let pushed = q.push(event(n));
            assert!(pushed.persisted, "event {n}");
            dropped += pushed.dropped;
        }
        assert!(dropped > 0);
        assert_eq!(q.dropped_unreported(), dropped as u64);
        let batch = q.start_batch(50, 1 << 20).unwrap();
        assert_eq!(*ns(&batch.body).last().unwrap(), 9, "the newest events are kept");
    }

    // A store that refuses everything still queues in memory.
    #[test]
    fn refusing_store_keeps_events_in_memory() {
        let mut store = MemoryStore { quota: Some(0), ..MemoryStore::default() };
        let mut q = DurableQueue::open(&mut store, "t", Limits::default());
        let pushed = q.push(event(1));
        assert!(!pushed.persisted);
        assert_eq!(q.queue().len(), 1);
    }

    // Another tab's leftover queue is adopted after this tab's own events, and leaves the store.
    #[test]
    fn orphaned_queue_is_adopted() {
        let mut store = MemoryStore::default();
        {
            let mut gone = DurableQueue::open(&mut store, "gone", Limits { max_events: 2, max_bytes: 1 << 20 });
            for n in 10..13 {
                gone.push(event(n));
            }
        }
        let mut q = DurableQueue::open(&mut store, "mine", Limits::default());
        q.push(event(1));
        assert_eq!(q.other_tabs(), vec!["gone".to_owned()]);
        assert_eq!(q.adopt("gone"), 2);
        assert_eq!(q.dropped_unreported(), 1, "the orphan's drops are reported too");
        let batch = q.start_batch(50, 1 << 20).unwrap();
        assert_eq!(ns(&batch.body), vec![1, 11, 12]);
        q.finish_batch();
        assert!(q.other_tabs().is_empty());
        drop(q);
        assert!(store.map.is_empty(), "{:?}", store.map);
    }
}
