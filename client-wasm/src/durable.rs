//! The durable queue: the in-memory [`Queue`] mirrored into a key-value store (`localStorage` in
//! the browser), so events not yet acknowledged survive a reload, a crash or a closed tab.
//!
//! Why `localStorage` and not IndexedDB: its writes are synchronous, so a page-exit handler can
//! still save what is pending before the page is torn down; IndexedDB's asynchronous transactions
//! can be lost with the page.
//!
//! Write-behind in chunks: a `localStorage.setItem` costs 20–90 µs in Chromium (measured here,
//! slower as keys accumulate), several times the rest of a logging call. So `push` only queues in
//! memory; [`DurableQueue::persist`] writes every pending event as *one* key (a chunk) and runs in
//! the next task, on page exit (`pagehide`, `visibilitychange`) and before each send. A chunk's
//! key is removed once all its events are acknowledged. The window in which a logged event exists
//! only in memory is the rest of the current task.
//!
//! Layout (all keys start with `session-log:`):
//! - `q:<tab>:<n>`: a chunk, the JSON of its events joined by `\n` (`JSON.stringify` never writes
//!   a raw newline, so the split is exact); `<n>` (16 hex digits) is the queue slot of its first
//!   event, so key order is queue order;
//! - `dropped:<tab>`: events this tab dropped that no acknowledged batch has reported yet.
//!
//! Each tab has its own queue (`<tab>` lives in `sessionStorage`, so a reload keeps it), so two
//! tabs never send the same stored events. A queue whose tab is gone is *adopted* by a later page
//! (see `adopt`). A chunk of which only some events were acknowledged is sent whole again after a
//! reload: the server's dedup on `eventId` makes that safe.

use crate::pipeline::{cat, decimal, hex16, join, Queue};

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

/// A stored chunk: its key's slot and the slot after its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunk {
    first: u64,
    end: u64,
}

/// The queue of one tab, in memory and in the store.
pub struct DurableQueue<S: Store> {
    store: S,
    tab: String,
    queue: Queue,
    next_slot: u64,
    limits: Limits,
    /// Slots at and after this one are not in the store yet.
    persisted_up_to: u64,
    /// The stored chunks, oldest first.
    chunks: Vec<Chunk>,
    dropped_unreported: u64,
    /// `dropped_unreported` as it was when the batch in flight was built.
    reporting: u64,
}

fn queue_prefix(tab: &str) -> String {
    cat(&[KEY_PREFIX, "q:", tab, ":"])
}

fn chunk_key(tab: &str, first: u64) -> String {
    cat(&[KEY_PREFIX, "q:", tab, ":", &hex16(first)])
}

fn dropped_key(tab: &str) -> String {
    cat(&[KEY_PREFIX, "dropped:", tab])
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
            persisted_up_to: 0,
            chunks: Vec::new(),
            dropped_unreported: 0,
            reporting: 0,
        };
        this.dropped_unreported = this.load_dropped(tab);
        for (first, events) in this.stored(tab) {
            this.next_slot = this.next_slot.max(first);
            let start = this.next_slot;
            for json in events {
                this.queue.push(this.next_slot, json);
                this.next_slot += 1;
            }
            this.chunks.push(Chunk { first: start, end: this.next_slot });
            if start != first {
                // Keep the invariant "a chunk's key is its first slot".
                let value = this.store.get(&chunk_key(tab, first)).unwrap_or_default();
                this.store.remove(&chunk_key(tab, first));
                let _ = this.store.set(&chunk_key(tab, start), &value);
            }
        }
        this.persisted_up_to = this.next_slot;
        this
    }

    /// The tabs that have stored chunks or unreported drops, other than this one.
    pub fn other_tabs(&self) -> Vec<String> {
        let mut tabs: Vec<String> = Vec::new();
        for key in self.store.keys() {
            let Some(rest) = key.strip_prefix(KEY_PREFIX) else { continue };
            let tab = match rest.strip_prefix("q:") {
                Some(rest) => rest.rsplit_once(':').map(|(tab, _)| tab),
                None => rest.strip_prefix("dropped:"),
            };
            if let Some(tab) = tab.filter(|t| *t != self.tab && !tabs.iter().any(|seen| seen == t)) {
                tabs.push(tab.to_owned());
            }
        }
        tabs
    }

    /// Moves tab `other`'s stored events (and its unreported drops) to the end of this queue,
    /// storing them under this tab before removing them from `other`. Call it only for a tab that
    /// is gone. Returns the number of events adopted.
    pub fn adopt(&mut self, other: &str) -> usize {
        let chunks = self.stored(other);
        let mut count = 0;
        for (_, events) in &chunks {
            for json in events {
                self.push(json.clone());
                count += 1;
            }
        }
        self.persist();
        for (first, _) in chunks {
            self.store.remove(&chunk_key(other, first));
        }
        let dropped = self.load_dropped(other);
        self.store.remove(&dropped_key(other));
        if dropped > 0 {
            self.add_dropped(dropped);
        }
        count
    }

    /// Queues one event's JSON in memory (call [`DurableQueue::persist`] soon after). Over the
    /// bounds, the oldest events (not in flight) are dropped first; returns how many.
    pub fn push(&mut self, json: String) -> usize {
        let mut dropped = 0;
        while !self.queue.is_empty()
            && (self.queue.len() + 1 > self.limits.max_events
                || self.queue.bytes() + json.len() > self.limits.max_bytes)
        {
            if !self.drop_oldest() {
                break;
            }
            dropped += 1;
        }
        self.queue.push(self.next_slot, json);
        self.next_slot += 1;
        if dropped > 0 {
            self.add_dropped(dropped as u64);
        }
        dropped
    }

    /// Changes the bounds (`configure`'s `maxQueueEvents` and `maxQueueBytes`). Events over the
    /// new bounds are dropped at once, oldest first (never the batch in flight), and reported
    /// like any drop; returns how many.
    pub fn set_limits(&mut self, limits: Limits) -> usize {
        self.limits = limits;
        let mut dropped = 0;
        while self.queue.len() > limits.max_events || self.queue.bytes() > limits.max_bytes {
            if !self.drop_oldest() {
                break;
            }
            dropped += 1;
        }
        if dropped > 0 {
            self.add_dropped(dropped as u64);
        }
        dropped
    }

    /// Forgets every event of this tab, in memory and in the store, with its unreported drops
    /// (opt-out). Returns how many events were queued.
    pub fn clear(&mut self) -> usize {
        let count = self.queue.len();
        for chunk in std::mem::take(&mut self.chunks) {
            self.store.remove(&chunk_key(&self.tab, chunk.first));
        }
        self.store.remove(&dropped_key(&self.tab));
        self.queue.clear();
        self.persisted_up_to = self.next_slot;
        self.dropped_unreported = 0;
        self.reporting = 0;
        count
    }

    /// The store, for the client's other keys (the session token, the next `seq`).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Whether some queued events are not in the store yet.
    pub fn has_pending(&self) -> bool {
        self.persisted_up_to < self.next_slot
    }

    /// Writes the pending events as one chunk. When the store is full (`QuotaExceededError`),
    /// the oldest stored events are dropped (and their chunks removed) until it fits; pending
    /// events are never dropped to make room for themselves: if the store still refuses them they
    /// stay in memory (and the next `persist` tries again). Returns how many events were dropped.
    pub fn persist(&mut self) -> usize {
        if !self.has_pending() {
            return 0;
        }
        let mut dropped = 0;
        loop {
            // Pending events may have been dropped meanwhile: start at the oldest still queued.
            // Slots increase along the queue: the pending events are its tail.
            let pending: Vec<(u64, &str)> =
                self.queue.entries().skip_while(|(slot, _)| *slot < self.persisted_up_to).collect();
            let Some(&(first, _)) = pending.first() else {
                self.persisted_up_to = self.next_slot;
                break;
            };
            let events: Vec<&str> = pending.iter().map(|(_, json)| *json).collect();
            let value = join(&events, "\n");
            if self.store.set(&chunk_key(&self.tab, first), &value).is_ok() {
                self.chunks.push(Chunk { first, end: self.next_slot });
                self.persisted_up_to = self.next_slot;
                break;
            }
            let oldest_is_stored = self.queue.oldest_waiting().is_some_and(|slot| slot < self.persisted_up_to);
            if !oldest_is_stored || !self.drop_oldest() {
                break; // nothing stored left to make room with: keep the events in memory only
            }
            dropped += 1;
        }
        if dropped > 0 {
            self.add_dropped(dropped as u64);
        }
        dropped
    }

    /// Drops the oldest event not in flight, removing chunks that no longer hold a queued event.
    fn drop_oldest(&mut self) -> bool {
        if self.queue.drop_oldest().is_none() {
            return false;
        }
        self.forget_settled_chunks();
        true
    }

    /// Removes stored chunks whose events have all left the queue. Events leave only from the
    /// front (acknowledged batches) and at the oldest waiting event (drops), so every event after
    /// the oldest waiting one is still queued: only chunks starting at or before it can be done,
    /// and those are near the front. Cost: a walk over the front of the queue, not all of it.
    fn forget_settled_chunks(&mut self) {
        let bound = self.queue.oldest_waiting().unwrap_or(u64::MAX);
        let mut index = 0;
        while let Some(&chunk) = self.chunks.get(index) {
            if chunk.first > bound {
                break;
            }
            let live =
                self.queue.entries().take_while(|(slot, _)| *slot < chunk.end).any(|(slot, _)| slot >= chunk.first);
            if live {
                index += 1;
            } else {
                self.store.remove(&chunk_key(&self.tab, chunk.first));
                self.chunks.remove(index);
            }
        }
    }

    fn add_dropped(&mut self, n: u64) {
        self.dropped_unreported += n;
        let _ = self.store.set(&dropped_key(&self.tab), &decimal(self.dropped_unreported));
    }

    fn load_dropped(&self, tab: &str) -> u64 {
        self.store.get(&dropped_key(tab)).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The stored chunks of `tab`, oldest first: `(first slot, events)`.
    fn stored(&self, tab: &str) -> Vec<(u64, Vec<String>)> {
        let prefix = queue_prefix(tab);
        let mut chunks: Vec<(u64, Vec<String>)> = self
            .store
            .keys()
            .iter()
            .filter_map(|k| {
                let first = u64::from_str_radix(k.strip_prefix(&prefix)?, 16).ok()?;
                let value = self.store.get(k)?;
                Some((first, value.split('\n').filter(|e| !e.is_empty()).map(str::to_owned).collect()))
            })
            .collect();
        // Keys come in no particular order; there are few chunks (insertion sort, no sort code linked).
        for i in 1..chunks.len() {
            let mut j = i;
            while j > 0 && chunks[j - 1].0 > chunks[j].0 {
                chunks.swap(j - 1, j);
                j -= 1;
            }
        }
        chunks
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
    pub fn start_batch(&mut self, max_events: usize, max_bytes: usize) -> Option<crate::pipeline::OutgoingBatch> {
        let batch = self.queue.start_batch_reporting(max_events, max_bytes, self.dropped_unreported)?;
        self.reporting = self.dropped_unreported;
        Some(batch)
    }

    /// The batch in flight is acknowledged (or refused for good): removes its events from memory,
    /// and from the store the chunks left with no queued event; counts its drop report as
    /// delivered. Returns how many events it held.
    pub fn finish_batch(&mut self) -> usize {
        let removed = self.queue.finish_batch().len();
        self.forget_settled_chunks();
        if self.reporting > 0 {
            self.dropped_unreported -= self.reporting.min(self.dropped_unreported);
            self.reporting = 0;
            if self.dropped_unreported == 0 {
                self.store.remove(&dropped_key(&self.tab));
            } else {
                let _ = self.store.set(&dropped_key(&self.tab), &decimal(self.dropped_unreported));
            }
        }
        removed
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

    /// The fields every body carries after `events` (see [`crate::pipeline::Queue::set_envelope`]).
    pub fn set_envelope(&mut self, fields: String) {
        self.queue.set_envelope(fields);
    }

    /// The highest `seq` among queued events of `session_token` (read from the end of each
    /// event's JSON, where the client writes `"seq":N}`), so numbering continues after a reload.
    pub fn max_seq(&self, session_token: &str) -> Option<u64> {
        let start = cat(&[r#"{"sessionToken":""#, session_token, "\""]);
        self.queue
            .entries()
            .filter(|(_, json)| json.starts_with(&start))
            .filter_map(|(_, json)| {
                let (before, seq) = json.strip_suffix('}')?.rsplit_once(':')?;
                before.ends_with("\"seq\"").then(|| seq.parse().ok())?
            })
            .max()
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
        format!(r#"{{"sessionToken":"ws_1","n":{n},"seq":{n}}}"#)
    }

    fn ns(body: &str) -> Vec<u64> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["events"].as_array().unwrap().iter().map(|e| e["n"].as_u64().unwrap()).collect()
    }

    // Persisted events not yet acknowledged are still there, in order, when the tab's queue is
    // reopened; acknowledged ones leave the store.
    #[test]
    fn queue_survives_reopening() {
        let mut store = MemoryStore::default();
        {
            let mut q = DurableQueue::open(&mut store, "tab1", Limits::default());
            for n in 0..3 {
                q.push(event(n));
            }
            q.persist();
            for n in 3..5 {
                q.push(event(n));
            }
            q.persist();
            q.start_batch(3, 1 << 20).unwrap();
            assert_eq!(q.finish_batch(), 3);
            q.start_batch(2, 1 << 20).unwrap(); // in flight when the page dies
        }
        assert_eq!(store.map.len(), 1, "the first chunk is acknowledged and gone: {:?}", store.map);
        let mut q = DurableQueue::open(&mut store, "tab1", Limits::default());
        assert_eq!(q.max_seq("ws_1"), Some(4), "numbering continues after the stored events");
        assert_eq!(ns(&q.start_batch(50, 1 << 20).unwrap().body), vec![3, 4]);
        q.finish_batch();
        assert!(q.queue().is_empty());
        drop(q);
        assert!(store.map.is_empty(), "{:?}", store.map);
    }

    // Many events pushed in one task are one store write.
    #[test]
    fn pending_events_are_written_as_one_chunk() {
        let mut store = MemoryStore::default();
        let mut q = DurableQueue::open(&mut store, "t", Limits::default());
        for n in 0..100 {
            q.push(event(n));
        }
        assert!(q.has_pending());
        q.persist();
        assert!(!q.has_pending());
        drop(q);
        assert_eq!(store.map.len(), 1);
        assert_eq!(store.map.values().next().unwrap().lines().count(), 100);
    }

    // Over the count bound, the oldest events are dropped, counted and reported with the next batch.
    #[test]
    fn bounds_drop_oldest_and_report_it() {
        let mut store = MemoryStore::default();
        let mut q = DurableQueue::open(&mut store, "t", Limits { max_events: 3, max_bytes: 1 << 20 });
        let dropped: usize = (0..5).map(|n| q.push(event(n))).sum();
        assert_eq!(dropped, 2);
        q.persist();
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
        assert!(store.map.is_empty(), "{:?}", store.map);
    }

    // The byte bound works the same way.
    #[test]
    fn byte_bound_drops_oldest() {
        let mut store = MemoryStore::default();
        let one = event(0).len();
        let mut q = DurableQueue::open(&mut store, "t", Limits { max_events: 100, max_bytes: 2 * one + 1 });
        for n in 0..4 {
            q.push(event(n));
        }
        assert_eq!(q.queue().len(), 2);
        assert_eq!(q.dropped_unreported(), 2);
    }

    // A full store (QuotaExceededError) makes room by dropping the oldest events and their chunks.
    #[test]
    fn full_store_drops_oldest() {
        let mut store = MemoryStore { quota: Some(400), ..MemoryStore::default() };
        let mut q = DurableQueue::open(&mut store, "t", Limits::default());
        let mut dropped = 0;
        for n in 0..20 {
            q.push(event(n));
            dropped += q.persist();
            assert!(!q.has_pending(), "event {n} is stored");
        }
        assert!(q.queue().len() < 20);
        assert!(dropped > 0);
        assert_eq!(q.dropped_unreported(), dropped as u64);
        let batch = q.start_batch(50, 1 << 20).unwrap();
        assert_eq!(*ns(&batch.body).last().unwrap(), 19, "the newest events are kept");
    }

    // A store that refuses everything still queues in memory.
    #[test]
    fn refusing_store_keeps_events_in_memory() {
        let mut store = MemoryStore { quota: Some(0), ..MemoryStore::default() };
        let mut q = DurableQueue::open(&mut store, "t", Limits::default());
        q.push(event(1));
        q.persist();
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
            gone.persist();
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
