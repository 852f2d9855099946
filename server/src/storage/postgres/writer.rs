//! The writer task: group commits pipelined over several connections, the draw of ids and
//! tickets, the durability barrier, and the statements of one group.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use session_log_protocol::Uuid;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;

use super::maintenance::{delete_student, purge};
use super::pool::{db_error, lost_a_race, unavailable, Closing};
use super::sql::{session_locks, DURABILITY_BARRIER};
use super::summaries::{parse_summary, summary_arrays};
use super::{cluster, lock, sql};
use crate::domain::event::{CommittedEvent, ValidEvent};
use crate::domain::summary::{FoldEvent, SessionSummary};
use crate::metrics::Metrics;
use crate::storage::feed::CommitFeed;
use crate::storage::maintenance::Maintenance;
use crate::storage::{Inserted, Removed, StoreError};

/// Longest a group commit may take before its jobs are answered 503 (the events may still have
/// been stored: a retry is deduplicated by `eventId`).
pub(super) const COMMIT_TIMEOUT: Duration = Duration::from_secs(15);

/// The session-level advisory lock key a group holds while it draws its ticket and its
/// `event_id`s (one statement, then it lets go): one transaction at a time draws, across
/// servers, so each transaction's ids and ticket are above every one drawn before.
pub(super) const ID_ORDER_LOCK: i64 = 0x5e55_1010_0005;

/// The class (first key of PostgreSQL's two-key advisory locks, a space apart from the one-key
/// locks) of draw tickets: a group holds the transaction-level lock of its ticket (drawn from
/// `events_draw_tickets` with its ids) until it ends, and takes the previous ticket's lock just
/// before its commit, so it commits after the transaction that drew before it has ended: commits
/// become visible in id order and `event_id` stays a cursor that never skips an event, while the
/// inserts of several groups run side by side.
pub(super) const TICKET_CLASS: i32 = 0x5e55_1011;

/// Where the writer answers an insert request.
pub(super) type InsertAck = oneshot::Sender<Result<Inserted, StoreError>>;

/// Group commits in flight at once, each on a connection of its own (see `Writer::run`): enough
/// that a group is always filling while others wait for their commit; the measured choice among
/// 3 to 6 is in `docs/benchmarks.md` ("Figures behind constants").
pub(super) const PIPELINE: usize = 4;

pub(super) enum Job {
    Insert { events: Vec<ValidEvent>, ack: InsertAck },
    Maintain { task: Maintenance, ack: oneshot::Sender<Result<Removed, StoreError>> },
}

/// The writer task's state.
pub(super) struct Writer {
    pub(super) pool: Pool,
    pub(super) max_rows: usize,
    pub(super) metrics: Arc<Metrics>,
    pub(super) completion_types: Arc<Vec<String>>,
    pub(super) committed: Arc<watch::Sender<i64>>,
    /// See [`PostgresStore::durable`](super::PostgresStore::durable).
    pub(super) durable: Arc<AtomicI64>,
    /// Where committed events go for the alert rules (when they listen).
    pub(super) feed: Arc<CommitFeed>,
    /// When a failed commit was last logged (failures during an outage are logged every 10 s).
    pub(super) last_failure_logged: Mutex<Option<Instant>>,
}

impl Writer {
    fn log_failure(&self, error: &StoreError, rows: usize) {
        let mut last = lock(&self.last_failure_logged);
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            tracing::error!(%error, rows, "commit failed (further failures in the next 10 s are not logged)");
            *last = Some(Instant::now());
        }
    }

    /// Commit what is waiting, answer, repeat; returns once every sender is gone and the queue
    /// is drained (the graceful shutdown). Inserts share one transaction (group commit), and up
    /// to [`PIPELINE`] groups are in flight on connections of their own, side by side: only the
    /// draw of ids is one at a time ([`ID_ORDER_LOCK`]), and the commits follow the draws' order
    /// ([`TICKET_CLASS`]).
    /// Groups publish and answer in the order they were formed. A maintenance job runs alone,
    /// once every group before it is done.
    pub(super) async fn run(self: Arc<Self>, mut receiver: mpsc::Receiver<Job>) {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(PIPELINE));
        let mut previous: Option<oneshot::Receiver<()>> = None;
        loop {
            // A request is taken from the queue only once a connection is free for its group, so
            // the queue's bound (`write_queue_requests`) holds: beyond the groups in flight, the
            // rest waits there, and a full queue is refused at once.
            let permit = in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
            let Some(first) = receiver.recv().await else { break };
            let mut jobs = Vec::new();
            let mut maintenance = None;
            let mut rows = 0;
            match first {
                Job::Maintain { task, ack } => maintenance = Some((task, ack)),
                Job::Insert { events, ack } => {
                    rows += events.len();
                    jobs.push((events, ack));
                }
            }
            while maintenance.is_none() && rows < self.max_rows {
                match receiver.try_recv() {
                    Ok(Job::Maintain { task, ack }) => maintenance = Some((task, ack)),
                    Ok(Job::Insert { events, ack }) => {
                        rows += events.len();
                        jobs.push((events, ack));
                    }
                    Err(_) => break,
                }
            }
            if jobs.is_empty() {
                drop(permit);
            } else {
                let (done, done_rx) = oneshot::channel();
                let before = previous.replace(done_rx);
                let writer = self.clone();
                tokio::spawn(async move {
                    writer.commit_group(jobs, rows, before).await;
                    let _ = done.send(());
                    drop(permit);
                });
            }
            if let Some((task, ack)) = maintenance {
                let all = in_flight.acquire_many(PIPELINE as u32).await.expect("the semaphore is never closed");
                let outcome = self.maintain(&task).await;
                drop(all);
                if let Err(error) = &outcome {
                    tracing::error!(%error, ?task, "maintenance failed");
                }
                let _ = ack.send(outcome);
            }
        }
        let _ = in_flight.acquire_many(PIPELINE as u32).await;
        tracing::debug!("PostgreSQL writer stopped: every accepted event is committed");
    }

    /// Commits the jobs' events in one transaction and answers each, after the group formed
    /// `before` it has answered; when that fails for a reason other than an unreachable
    /// database, commits each job alone so one refused job does not fail the others.
    async fn commit_group(
        &self,
        mut jobs: Vec<(Vec<ValidEvent>, InsertAck)>,
        rows: usize,
        before: Option<oneshot::Receiver<()>>,
    ) {
        let started = Instant::now();
        let batches: Vec<&[ValidEvent]> = jobs.iter().map(|(events, _)| events.as_slice()).collect();
        let outcome = self.commit(&batches).await;
        if let Some(before) = before {
            // Published and answered in order (the feed, the watch).
            let _ = before.await;
        }
        match outcome {
            Ok(Group { counts, newest, ids, created_at }) => {
                self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                if let Some(newest) = newest {
                    self.durable.fetch_max(newest, Ordering::AcqRel);
                }
                self.metrics.commit_rows.observe(rows as f64);
                if newest.is_some() && self.feed.is_active() {
                    let at_ms = crate::domain::clock::iso_ms(&created_at);
                    let mut fed = Vec::new();
                    let mut ids = ids.into_iter();
                    for (events, _) in &mut jobs {
                        for (event, id) in std::mem::take(events).into_iter().zip(ids.by_ref()) {
                            if let Some(id) = id {
                                fed.push(CommittedEvent::of(event, id, at_ms));
                            }
                        }
                    }
                    // In `event_id` order, fed before the watch is raised (see `CommitFeed::publish`).
                    fed.sort_by_key(|e| e.event_id);
                    self.feed.publish(fed);
                }
                if let Some(newest) = newest {
                    cluster::advance(&self.committed, newest);
                }
                for ((_, ack), count) in jobs.into_iter().zip(counts) {
                    let _ = ack.send(Ok(count));
                }
            }
            Err(error @ StoreError::Internal(_)) if jobs.len() > 1 => {
                tracing::warn!(%error, jobs = jobs.len(), "group commit failed: committing its requests one by one");
                for (events, ack) in jobs {
                    let rows = events.len();
                    let (single, answer) = oneshot::channel();
                    Box::pin(self.commit_group(vec![(events, single)], rows, None)).await;
                    let _ = ack.send(answer.await.unwrap_or(Err(StoreError::Stopped)));
                }
            }
            Err(error) => {
                self.log_failure(&error, rows);
                for (_, ack) in jobs {
                    let _ = ack.send(Err(error.clone()));
                }
            }
        }
    }

    /// One transaction storing `batches` (in order): returns each batch's counts and the newest
    /// new `event_id`.
    async fn commit(&self, batches: &[&[ValidEvent]]) -> Result<Group, StoreError> {
        let mut outcome = self.commit_once(batches).await;
        // A schema change made a cached statement stale (see `sql::connection`): once more, with
        // every statement prepared again.
        if outcome.is_err() && sql::stale_seen() {
            outcome = self.commit_once(batches).await;
        }
        // A lost race over an `eventId` (see `lost_a_race`): the next read of stored events sees
        // it once the other transaction has ended, and each try after a deadlock lets the other
        // commit, so three tries settle it.
        for _ in 0..2 {
            match &outcome {
                Err(error) if lost_a_race(error) => outcome = self.commit_once(batches).await,
                _ => break,
            }
        }
        outcome
    }

    async fn commit_once(&self, batches: &[&[ValidEvent]]) -> Result<Group, StoreError> {
        let work = async {
            let mut connection = Closing(Some(sql::connection(&self.pool).await?));
            let client: &deadpool_postgres::Object = connection.client();
            let outcome = insert_events(client, batches, &self.completion_types).await?;
            connection.release();
            Ok(outcome)
        };
        tokio::time::timeout(COMMIT_TIMEOUT, work).await.map_err(|_| unavailable("the commit timed out"))?
    }

    async fn maintain(&self, task: &Maintenance) -> Result<Removed, StoreError> {
        let work = async {
            let mut client = sql::connection(&self.pool).await?;
            let tx = client.transaction().await.map_err(db_error)?;
            let removed = match task {
                Maintenance::Purge { before, limit, ids } => {
                    purge(&tx, before, *limit, ids.as_deref(), &self.completion_types).await?
                }
                Maintenance::DeleteStudent { email } => delete_student(&tx, email).await?,
            };
            tx.commit().await.map_err(db_error)?;
            Ok(removed)
        };
        tokio::time::timeout(COMMIT_TIMEOUT, work).await.map_err(|_| unavailable("the transaction timed out"))?
    }
}

/// Stores the students `$1` (emails) named `$2` (names): a row is written only when it is new or
/// its name changes (rewriting every student of every commit left 116 MB of dead rows for 20,000
/// students after 10,000,000 events).
pub(super) const UPSERT_STUDENTS: &str =
    "INSERT INTO students AS s (email, name) SELECT * FROM unnest($1::text[], $2::text[])
     ON CONFLICT (lower(email)) DO UPDATE SET name = excluded.name
     WHERE excluded.name IS NOT NULL AND excluded.name IS DISTINCT FROM s.name";

/// The students `events` name, by lowercased email (the first spelling seen, and the latest name
/// given, as on SQLite), sorted so that two servers upserting the same students lock their rows
/// in one order: their emails and names.
pub(super) fn students_of<'e>(events: &[&'e ValidEvent]) -> (Vec<&'e str>, Vec<Option<&'e str>>) {
    let mut by_key: HashMap<String, (&str, Option<&str>)> = HashMap::new();
    for event in events {
        let Some(email) = event.student_email.as_deref() else { continue };
        let entry = by_key.entry(email.to_lowercase()).or_insert((email, None));
        if event.student_name.is_some() {
            entry.1 = event.student_name.as_deref();
        }
    }
    let mut named: Vec<(String, &str, Option<&str>)> = by_key.into_iter().map(|(k, (e, n))| (k, e, n)).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.into_iter().map(|(_, email, name)| (email, name)).unzip()
}

/// `event_data` as JSONB takes it: a `\u0000` escape (which JSONB refuses) becomes U+FFFD.
pub(super) fn jsonb_text(data: &str) -> std::borrow::Cow<'_, str> {
    if !data.contains("\\u0000") {
        return std::borrow::Cow::Borrowed(data);
    }
    fn clean(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = s.replace('\0', "\u{FFFD}"),
            serde_json::Value::Array(items) => items.iter_mut().for_each(clean),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    clean(&mut item);
                    map.insert(key.replace('\0', "\u{FFFD}"), item);
                }
            }
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(data) {
        Ok(mut value) => {
            clean(&mut value);
            std::borrow::Cow::Owned(value.to_string())
        }
        Err(_) => std::borrow::Cow::Borrowed(data),
    }
}

/// What one group's transaction stored: each batch's counts, the newest new `event_id`, the
/// `event_id` of each event in the batches' order (`None` for a duplicate), and `created_at`.
pub(super) struct Group {
    counts: Vec<Inserted>,
    newest: Option<i64>,
    ids: Vec<Option<i64>>,
    created_at: String,
}

/// Inserts `batches` in one transaction on `client` (BEGIN and COMMIT travel in its two
/// pipelines) and folds the new events into their sessions' summaries there; returns after the
/// group's [`DURABILITY_BARRIER`].
///
/// The group reads and folds side by side with other groups (the writer runs [`PIPELINE`] groups
/// at once), then draws its ticket and its ids (one at a time across transactions, under
/// [`ID_ORDER_LOCK`], for one statement), inserts, and waits for the end of the transaction with
/// the previous ticket just before its commit. Which events are new is known before the
/// insert: the session locks are held, so no other transaction stores an event of these
/// sessions meanwhile, and the events already stored are read by `event_uuid`; only the new ones
/// are inserted. The one case this can miss (another transaction storing the same `eventId`
/// under another session at that moment) fails the insert on the unique index (`23505`), or in
/// a deadlock with that transaction's wait for this one (`40P01`), and the writer tries the group
/// once more (see `Writer::commit`), when the read sees it.
///
/// Errors: those of PostgreSQL. The transaction may then still hold the session-level
/// [`ID_ORDER_LOCK`]: the caller closes its connection instead of returning it to the pool.
pub(super) async fn insert_events(
    client: &deadpool_postgres::Object,
    batches: &[&[ValidEvent]],
    completion_types: &[String],
) -> Result<Group, StoreError> {
    let events: Vec<&ValidEvent> = batches.iter().flat_map(|b| b.iter()).collect();
    let created_at = crate::storage::now_iso();
    if events.is_empty() {
        let counts = vec![Inserted::default(); batches.len()];
        return Ok(Group { counts, newest: None, ids: Vec::new(), created_at });
    }
    let mut tokens: Vec<&str> = events.iter().map(|e| e.session_token.as_str()).collect();
    tokens.sort_unstable();
    tokens.dedup();
    let (emails, names) = students_of(&events);
    let uuids: Vec<Uuid> = events.iter().map(|e| e.uuid).collect();
    // One round trip of four statements: BEGIN; the commit made asynchronous and the sessions'
    // locks (PostgreSQL runs the statements in the order sent); the students; the students' ids,
    // the events already stored and the summaries.
    let looked_up = sql::pipeline(
        client,
        &[
            ("BEGIN", &[]),
            (OPEN_GROUP, &[&tokens]),
            (UPSERT_STUDENTS, &[&emails, &names]),
            (LOOK_UP, &[&emails, &uuids, &tokens]),
        ],
    )
    .await?
    .pop()
    .unwrap_or_default();
    let mut students: HashMap<String, i64> = HashMap::new();
    let mut known: Vec<Uuid> = Vec::new();
    let mut summaries: HashMap<String, SessionSummary> = HashMap::new();
    let mut rooms: HashMap<String, Option<i64>> = HashMap::new();
    for row in &looked_up {
        match row.get::<_, i16>(0) {
            LOOKED_UP_STUDENT => {
                students.insert(row.get(1), row.get(2));
            }
            LOOKED_UP_EVENT => known.push(row.get(3)),
            LOOKED_UP_SUMMARY => {
                summaries.insert(row.get(1), parse_summary(row.get(4))?);
            }
            LOOKED_UP_ROOM => {
                rooms.insert(row.get(1), row.get(2));
            }
            kind => return Err(StoreError::Internal(format!("a look-up row of unknown kind {kind}"))),
        }
    }
    // The new events, predicted: not stored yet, and the first of their `eventId` in the group,
    // each with its student. Only they are folded and inserted (so the insert needs no
    // `ON CONFLICT`: PostgreSQL's speculative insertion cost about 30% of it), in batch order,
    // taking the ids drawn for them in increasing order.
    let mut seen: std::collections::HashSet<Uuid> = known.into_iter().collect();
    let predicted: Vec<bool> = uuids.iter().map(|u| seen.insert(*u)).collect();
    let new_events: Vec<(&ValidEvent, Option<i64>)> = events
        .iter()
        .zip(&predicted)
        .filter(|(_, new)| **new)
        .map(|(event, _)| {
            let student_id = event.student_email.as_deref().and_then(|m| students.get(&m.to_lowercase()).copied());
            (*event, student_id)
        })
        .collect();
    let mut pairs: Vec<(&str, i64)> = Vec::new();
    let mut changed: Vec<&str> = Vec::new();
    // Sessions without a stored summary are new here (summaries are written in the events'
    // transaction, under the sessions' locks): they get their room, the first event's.
    let mut placed: Vec<(&str, i64, Option<i64>)> = Vec::new();
    for (event, _) in &new_events {
        if !summaries.contains_key(&event.session_token) {
            placed.push((&event.session_token, event.placement.workshop_id, event.placement.room_id));
        }
    }
    // A stable sort keeps each session's first event first: its placement is the one kept.
    placed.sort_by_key(|p| p.0);
    placed.dedup_by_key(|p| p.0);
    // Each event carries its session's room: as stored, else the one this group places it in.
    for (token, _, room) in &placed {
        rooms.entry((*token).to_owned()).or_insert(*room);
    }
    for (event, student_id) in &new_events {
        let fold = FoldEvent {
            event_type: &event.event_type,
            seq: event.seq,
            student_id: *student_id,
            created_at: &created_at,
            facts: &event.facts,
        };
        summaries.entry(event.session_token.clone()).or_default().apply(&fold, completion_types);
        changed.push(&event.session_token);
        if let Some(student_id) = student_id {
            pairs.push((&event.session_token, *student_id));
        }
    }
    changed.sort_unstable();
    changed.dedup();
    pairs.sort_unstable();
    pairs.dedup();
    let (pair_tokens, pair_students): (Vec<&str>, Vec<i64>) = pairs.into_iter().unzip();
    let place_tokens: Vec<&str> = placed.iter().map(|p| p.0).collect();
    let place_workshops: Vec<i64> = placed.iter().map(|p| p.1).collect();
    let place_rooms: Vec<Option<i64>> = placed.iter().map(|p| p.2).collect();
    let rows = summary_arrays(changed.iter().map(|t| (*t, &summaries[*t])))?;

    let wanted = new_events.len() as i64;
    let new_uuids: Vec<Uuid> = new_events.iter().map(|(e, _)| e.uuid).collect();
    let seqs: Vec<Option<i64>> = new_events.iter().map(|(e, _)| e.seq.map(|s| s as i64)).collect();
    let student_ids: Vec<Option<i64>> = new_events.iter().map(|(_, student_id)| *student_id).collect();
    let session_tokens: Vec<&str> = new_events.iter().map(|(e, _)| e.session_token.as_str()).collect();
    let types: Vec<&str> = new_events.iter().map(|(e, _)| e.event_type.as_str()).collect();
    let data: Vec<&str> = new_events.iter().map(|(e, _)| e.event_data.as_str()).collect();
    let event_rooms: Vec<Option<i64>> =
        new_events.iter().map(|(e, _)| rooms.get(&e.session_token).copied().flatten()).collect();

    // One more round trip: when there are new events, the draw of a ticket and of an id for
    // each; the summaries, the (session, student) pairs and the events in one statement; the
    // wait for the end of the transaction with the previous ticket and the NOTIFY of the newest
    // id (delivered to every listening server at the commit, never before). Then COMMIT and the
    // durability barrier. Drawn this late, a ticket orders only the group's write and commit:
    // the previous ticket's transaction has already read and folded. A failed statement aborts
    // the transaction and the COMMIT then rolls it back; the first error is returned.
    let write_params: [&(dyn ToSql + Sync); 19] = [
        &rows.0,
        &rows.1,
        &rows.2,
        &rows.3,
        &rows.4,
        &pair_tokens,
        &pair_students,
        &wanted,
        &new_uuids,
        &seqs,
        &student_ids,
        &session_tokens,
        &types,
        &data,
        &created_at,
        &place_tokens,
        &place_workshops,
        &place_rooms,
        &event_rooms,
    ];
    let draw_params: [&(dyn ToSql + Sync); 3] = [&ID_ORDER_LOCK, &TICKET_CLASS, &wanted];
    let close_params: [&(dyn ToSql + Sync); 2] = [&TICKET_CLASS, &cluster::EVENTS_CHANNEL];
    let mut statements: Vec<(&str, &[&(dyn ToSql + Sync)])> = Vec::new();
    if wanted > 0 {
        statements.push((DRAW, &draw_params));
        statements.push((WRITE_GROUP, &write_params));
        statements.push((CLOSE_GROUP, &close_params));
    }
    statements.push(("COMMIT", &[]));
    statements.push((DURABILITY_BARRIER, &[]));
    let answers = sql::pipeline(client, &statements).await?;
    // The ids drawn: `last - wanted + 1 ..= last`.
    let newest: Option<i64> = match wanted {
        0 => None,
        _ => Some(
            answers
                .first()
                .and_then(|draw| draw.first())
                .map(|row| row.get(0))
                .ok_or_else(|| StoreError::Internal("no draw answer".into()))?,
        ),
    };
    // Each batch's counts, and each event's id.
    let mut ids_of_new = newest.map(|last| last - wanted + 1..=last).into_iter().flatten();
    let mut counts = Vec::with_capacity(batches.len());
    let mut ids = Vec::with_capacity(events.len());
    let mut predicted = predicted.into_iter();
    for batch in batches {
        let mut count = Inserted::default();
        for _ in batch.iter() {
            let event_id = if predicted.next().unwrap_or(false) { ids_of_new.next() } else { None };
            ids.push(event_id);
            match event_id {
                Some(_) => count.new += 1,
                None => count.duplicates += 1,
            }
        }
        counts.push(count);
    }
    Ok(Group { counts, newest, ids, created_at })
}

/// Takes [`ID_ORDER_LOCK`] (`$1`), draws a ticket (`events_draw_tickets`) and takes its
/// transaction-level lock in [`TICKET_CLASS`] (`$2`), held until the transaction ends, draws `$3`
/// event ids at once from `events_event_id_seq` (the sequence of V1's `event_id BIGSERIAL`),
/// keeps the ticket in the transaction's setting `session_log.ticket` (for [`CLOSE_GROUP`]) and
/// lets the id lock go: migration V9's `session_log_draw`. Returns one row: the last id drawn
/// (the ticket stays in PostgreSQL), so the ids are `last - $3 + 1 ..= last` (`currval('events_event_id_seq')` for
/// [`WRITE_GROUP`]). Every drawer holds the id lock, so no other `nextval` falls between the
/// ticket and the ids. The ticket lock's second key is the ticket modulo 2^31 - 1, as in
/// [`CLOSE_GROUP`]. One call draws every id of the group under the lock, which is held for
/// one statement only (see `docs/benchmarks.md` for what one `nextval` per row cost).
pub(super) const DRAW: &str = "SELECT last_id FROM session_log_draw($1::int8, $2::int4, $3::int8)";

/// Waits until the transaction holding the ticket before this transaction's ([`DRAW`]) in class
/// `$1` has ended (committed or rolled back; at once when no transaction holds it), then NOTIFYs
/// the group's newest id (the last drawn, as text) on channel `$2` ([`cluster::EVENTS_CHANNEL`]),
/// delivered at this transaction's commit. PostgreSQL evaluates a target list in order.
pub(super) const CLOSE_GROUP: &str = "SELECT pg_advisory_xact_lock_shared($1::int4,
         ((current_setting('session_log.ticket')::int8 - 1) % 2147483647)::int4),
     pg_notify($2, currval('events_event_id_seq')::text)";

/// Opens a group's transaction: its commit does not wait for the WAL flush (the barrier after
/// the COMMIT does, see [`DURABILITY_BARRIER`]), and it takes the transaction-level advisory
/// locks of the sessions `$1` (text[]) in one order, as [`LOCK_SESSIONS`](super::sql::LOCK_SESSIONS).
pub(super) const OPEN_GROUP: &str = concat!("SELECT set_config('synchronous_commit', 'off', true), ", session_locks!());

/// What a group reads before it folds, in one statement: rows of `(kind, key, id,
/// event_uuid, summary)`, where kind is [`LOOKED_UP_STUDENT`] (the ids of the students `$1`
/// (emails), by lowercased email), [`LOOKED_UP_EVENT`] (the events of `$2` (uuid[]) already
/// stored), [`LOOKED_UP_SUMMARY`] (the summaries of the sessions `$3` (text[]), by token) or
/// [`LOOKED_UP_ROOM`] (the rooms of the sessions `$3` already placed, by token; the id NULL for
/// a lobby).
pub(super) const LOOK_UP: &str = "SELECT 0::int2, lower(email), student_id, NULL::uuid, NULL::text FROM students
         WHERE lower(email) = ANY(SELECT lower(e) FROM unnest($1::text[]) AS e)
     UNION ALL SELECT 1::int2, NULL, NULL, event_uuid, NULL FROM events WHERE event_uuid = ANY($2)
     UNION ALL SELECT 2::int2, session_token, NULL, NULL, summary::text FROM sessions WHERE session_token = ANY($3)
     UNION ALL SELECT 3::int2, session_token, room_id, NULL, NULL FROM session_rooms WHERE session_token = ANY($3)";

pub(super) const LOOKED_UP_STUDENT: i16 = 0;

pub(super) const LOOKED_UP_EVENT: i16 = 1;

pub(super) const LOOKED_UP_SUMMARY: i16 = 2;

pub(super) const LOOKED_UP_ROOM: i16 = 3;

/// A group's writes in one statement: the summaries (`$1`..`$5` as [`STORE_SUMMARIES`](super::summaries::STORE_SUMMARIES)), the
/// (session, student) pairs (`$6` text[], `$7` int8[]) and the `$8` new events (`$9`..`$14`:
/// uuids, seqs, students, tokens, types and data as text; `$15` `created_at` as text), which take
/// the ids just drawn ([`DRAW`]) in order, each with its session's room (`$19` int8[]); and the
/// rooms of the sessions new in the group (`$16` tokens, `$17` workshop ids, `$18` room ids, a
/// session placed already keeps its room). The four touch different tables, so the order
/// PostgreSQL runs them in does not matter.
pub(super) const WRITE_GROUP: &str = "WITH summaries AS (
         INSERT INTO sessions (session_token, student_id, first_seen, last_seen, summary)
         SELECT t, s, f::timestamptz, l::timestamptz, j::json
         FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[]) AS x(t, s, f, l, j)
         ON CONFLICT (session_token) DO UPDATE SET student_id = excluded.student_id,
             first_seen = excluded.first_seen, last_seen = excluded.last_seen, summary = excluded.summary),
     pairs AS (
         INSERT INTO session_students (session_token, student_id)
         SELECT * FROM unnest($6::text[], $7::int8[]) ON CONFLICT DO NOTHING),
     places AS (
         INSERT INTO session_rooms (session_token, workshop_id, room_id, joined_at)
         SELECT t, w, r, $15::text::timestamptz FROM unnest($16::text[], $17::int8[], $18::int8[]) AS p(t, w, r)
         ON CONFLICT DO NOTHING)
     INSERT INTO events (event_id, event_uuid, seq, student_id, session_token, event_type, event_data, created_at, room_id)
     SELECT b.last - $8::int8 + x.o, u, s, st, t, ty, d::json, $15::text::timestamptz, r
     FROM (SELECT currval('events_event_id_seq') AS last) AS b,
         unnest($9::uuid[], $10::int8[], $11::int8[], $12::text[], $13::text[], $14::text[], $19::int8[])
             WITH ORDINALITY AS x(u, s, st, t, ty, d, r, o)";
