//! The queue of events waiting to be sent, and how it cuts them into batches within the
//! server's limits ([`Queue`], [`OutgoingBatch`]).

use super::{cat, decimal};

/// A batch taken from the queue for sending: its JSON body and how many events it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingBatch {
    /// `{"events":[…]}`, ready to POST.
    pub body: String,
    /// Number of events in it (the first `count` of the queue).
    pub count: usize,
}

/// The events waiting to be delivered, each already serialised to JSON, oldest first.
///
/// Invariant: at most one batch is in flight, and it is always the first `in_flight` events; they
/// stay in the queue until the server acknowledges them, so a failed send loses nothing.
#[derive(Debug, Default, Clone)]
pub struct Queue {
    events: Vec<(u64, String)>,
    bytes: usize,
    in_flight: usize,
    in_flight_bytes: usize,
    /// Fields written after `events` in every body ([`Queue::set_envelope`]).
    envelope: String,
}

/// Wire overhead of a batch around its events: `{"events":[` and `]}`.
const BATCH_ENVELOPE_BYTES: usize = r#"{"events":[]}"#.len();

impl Queue {
    /// Sets the batch fields every body carries after `events` (`,"writeKey":"…","room":"…"`,
    /// see [`super::Config::envelope`]), for the batches and beacons built from now on.
    pub fn set_envelope(&mut self, fields: String) {
        self.envelope = fields;
    }

    /// Appends one event's JSON under `id` (the caller's key for it, e.g. its storage slot).
    pub fn push(&mut self, id: u64, event_json: String) {
        self.bytes += event_json.len();
        self.events.push((id, event_json));
    }

    /// The id of the oldest event not in flight.
    pub fn oldest_waiting(&self) -> Option<u64> {
        self.events.get(self.in_flight).map(|(id, _)| *id)
    }

    /// The queued events' ids and JSON, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (u64, &str)> {
        self.events.iter().map(|(id, json)| (*id, json.as_str()))
    }

    /// Removes the oldest event that is not in flight; returns its id and size (bytes).
    pub fn drop_oldest(&mut self) -> Option<(u64, usize)> {
        if self.in_flight >= self.events.len() {
            return None;
        }
        let (id, json) = self.events.remove(self.in_flight);
        self.bytes -= json.len();
        Some((id, json.len()))
    }

    /// Events queued, including the batch in flight.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Bytes of JSON queued, including the batch in flight.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether a batch is being sent.
    pub fn in_flight(&self) -> bool {
        self.in_flight > 0
    }

    /// Whether enough is waiting (not in flight) to send a batch now rather than at the timer:
    /// `max_events` events or `max_bytes` bytes of JSON.
    pub fn is_due(&self, max_events: usize, max_bytes: usize) -> bool {
        let waiting = self.events.len() - self.in_flight;
        let waiting_bytes = self.bytes - self.in_flight_bytes;
        waiting >= max_events || waiting_bytes >= max_bytes
    }

    /// Takes the next batch to send: the oldest events, at most `max_events` of them and, past the
    /// first, at most `max_bytes` of body. `None` when the queue is empty or a batch is in flight.
    pub fn start_batch(&mut self, max_events: usize, max_bytes: usize) -> Option<OutgoingBatch> {
        self.start_batch_reporting(max_events, max_bytes, 0)
    }

    /// As [`Queue::start_batch`], with the batch's `dropped` field (events the client dropped
    /// since the last acknowledged report; omitted when 0).
    pub fn start_batch_reporting(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        dropped: u64,
    ) -> Option<OutgoingBatch> {
        if self.in_flight > 0 || self.events.is_empty() {
            return None;
        }
        let mut body = String::with_capacity(self.bytes.min(max_bytes) + BATCH_ENVELOPE_BYTES + 64);
        body.push_str(r#"{"events":["#);
        let mut count = 0;
        let mut event_bytes = 0;
        for (_, event) in &self.events {
            let separator = usize::from(count > 0);
            if count == max_events.max(1) || (count > 0 && body.len() + separator + event.len() + 2 > max_bytes) {
                break;
            }
            if count > 0 {
                body.push(',');
            }
            body.push_str(event);
            event_bytes += event.len();
            count += 1;
        }
        body.push(']');
        if dropped > 0 {
            body.push_str(r#","dropped":"#);
            body.push_str(&decimal(dropped));
        }
        body.push_str(&self.envelope);
        body.push('}');
        self.in_flight = count;
        self.in_flight_bytes = event_bytes;
        Some(OutgoingBatch { body, count })
    }

    /// Every queued event's JSON, oldest first, in bodies of at most `max_bytes` (one event may
    /// exceed it alone) each holding at most `max_events`, with the envelope's fields: what a
    /// page sends with beacons as it closes. Nothing is removed or marked in flight.
    pub fn chunks(&self, max_events: usize, max_bytes: usize) -> Vec<String> {
        // Bodies are built without their end, then closed together: `]` and the envelope's fields.
        let mut bodies: Vec<String> = Vec::new();
        let mut count = 0;
        let room = max_bytes.saturating_sub(self.envelope.len() + 3);
        for (_, event) in &self.events {
            match bodies.last_mut() {
                Some(body) if count < max_events && body.len() + event.len() <= room => {
                    body.push(',');
                    body.push_str(event);
                    count += 1;
                }
                _ => {
                    bodies.push(cat(&[r#"{"events":["#, event]));
                    count = 1;
                }
            }
        }
        for body in &mut bodies {
            body.push(']');
            body.push_str(&self.envelope);
            body.push('}');
        }
        bodies
    }

    /// The batch in flight was delivered (or refused for good): removes its events and returns
    /// their ids.
    pub fn finish_batch(&mut self) -> Vec<u64> {
        let ids = self.events.drain(..self.in_flight).map(|(id, _)| id).collect();
        self.bytes -= self.in_flight_bytes;
        self.in_flight = 0;
        self.in_flight_bytes = 0;
        ids
    }

    /// Removes every event, the batch in flight too.
    pub fn clear(&mut self) {
        *self = Queue { envelope: std::mem::take(&mut self.envelope), ..Queue::default() };
    }

    /// The batch in flight failed: its events stay first in the queue, to be sent again.
    pub fn release_batch(&mut self) {
        self.in_flight = 0;
        self.in_flight_bytes = 0;
    }
}
