//! The alert rules, run by the leader (`Storage::is_leader`: one server per database): every
//! 25 ms it takes the events committed since its cursor and feeds them to [`PlacedEngines`] (one rule engine per room); every
//! `alert_tick` (1 s) it ticks the engine, keeps each alert's last change of the turn, stores the
//! changes and publishes them (alert streams, webhooks). Its own writer's events come from the
//! commit feed (`storage::feed`), already parsed; it reads back from storage only what the feed
//! cannot vouch for: another server's commits (the count of stored events up to an earlier
//! turn's committed-id watch still differs from the feed's after [`FEED_GRACE_TURNS`]), a commit
//! the full feed dropped, the events stored before it took the lead. Ingest never waits for it,
//! and it writes at most one change per alert per tick however fast events arrive. When it takes
//! the lead it restores the open alerts from storage, so an episode spans restarts and leader
//! changes.

use std::time::Duration;

use actix_web::web;

use std::collections::HashMap;

use crate::domain::alerts::{AlertChange, AlertStatus, Label, Observed, PlacedEngines, DEFAULT_WORKSHOP, MAX_SESSIONS};
use crate::domain::cursor::EventCursor;
use crate::domain::event::CommittedEvent;
use crate::state::AppState;
use crate::storage::{AlertQuery, EventQuery, Order, StoreError};

/// Events read per page while catching up.
const PAGE: u32 = 1000;

/// Keeps only the last change of each alert among consecutive updates (an error storm updates
/// one alert many times a second): opened and resolved changes are always kept.
fn coalesce(changes: Vec<AlertChange>) -> Vec<AlertChange> {
    let mut kept: Vec<AlertChange> = Vec::with_capacity(changes.len());
    for change in changes {
        if let Some(last) = kept.iter_mut().rev().find(|c| c.alert.id == change.alert.id) {
            if last.kind == crate::domain::alerts::ChangeKind::Updated {
                *last = change;
                continue;
            }
        }
        kept.push(change);
    }
    kept
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// How soon after start a server that takes the lead evaluates the events stored since it
/// started (it was the first, or the only, server); one that takes it later (a takeover)
/// evaluates from then on: events stored while no server led (about a second) are not
/// evaluated, which beats replaying hours of events into alerts that were long over.
const REPLAY_FROM_START_WITHIN: Duration = Duration::from_secs(30);

/// Runs until the server stops: waits to lead, then evaluates until it no longer leads.
/// `start` is the newest event position when the server started.
pub async fn evaluate(state: web::Data<AppState>, start: EventCursor) {
    let started = std::time::Instant::now();
    let mut from = Some(start);
    loop {
        while !state.storage.is_leader() {
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        let resume = from.take().filter(|_| started.elapsed() < REPLAY_FROM_START_WITHIN);
        if let Err(error) = lead(&state, resume).await {
            tracing::warn!(%error, "alert rules stopped; restarting in 1 s");
            actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// How often the rules take what was committed, at most `alert_tick`. Often, so that few events
/// wait in the commit feed: events allocated on the writer's thread and freed on the rules' are
/// held by the allocator until their turn (peak memory by turn: `docs/benchmarks.md`).
const TURN: Duration = Duration::from_millis(25);

/// Turns the feed may fail its check before the rules read back what is stored (see `lead`):
/// 200 ms, several times a group's usual time from its commit to its answer under load, so
/// that a feed a few ms behind its commit is not taken for a lost one (`docs/benchmarks.md`).
const FEED_GRACE_TURNS: u32 = 8;

async fn lead(state: &web::Data<AppState>, resume: Option<EventCursor>) -> Result<(), StoreError> {
    // Subscribed before the newest position is read: no commit falls between the two.
    let mut feed = state.storage.subscribe_commits();
    let open_query = AlertQuery { status: Some(AlertStatus::Open), limit: 10_000, ..AlertQuery::default() };
    let open = state.storage.alerts(open_query).await?;
    let mut rules = state.config.alert_rules.clone();
    rules.active_window = state.config.active_window;
    let mut engine = PlacedEngines::new(rules, open);
    let mut places = Places::default();
    let mut earlier_read: Option<std::time::Instant> = None;
    let mut earlier_known: std::collections::HashSet<Label> = std::collections::HashSet::new();
    // Mutes of the last day come back; changes from now on are settled as they are logged.
    let mut change_cursor = state.storage.newest_alert_change().await?;
    let day_ago = crate::domain::clock::iso_ago(Duration::from_secs(86_400));
    let recent = AlertQuery {
        status: Some(AlertStatus::Resolved),
        since: Some(day_ago),
        limit: 10_000,
        ..AlertQuery::default()
    };
    for alert in state.storage.alerts(recent).await?.iter().filter(|a| a.muted_at.is_some()) {
        // Muted: never asked again.
        let _ = engine.settle(alert, now_ms());
    }
    let mut evicted = 0;
    let mut committed = state.storage.committed();
    let newest = *committed.borrow_and_update();
    let mut cursor = resume.map_or(newest, |c| c.position());
    let mut pending: Vec<AlertChange> = Vec::new();
    let mut turns = actix_web::rt::time::interval(TURN.min(state.config.alert_tick));
    let mut last_tick = std::time::Instant::now();
    // Events stored between `resume` and taking the lead are read back.
    let mut read_back = cursor < newest;
    let mut watched = newest;
    // What the feed gave and the rules have not taken yet (past a read-back's end).
    let mut fed: Vec<CommittedEvent> = Vec::new();
    // The position up to which the feed is being checked, and the turns it has failed the check.
    let mut due_upto: Option<i64> = None;
    let mut misses = 0;
    let stopping = state.stopping.clone();
    while state.storage.is_leader() && !*stopping.borrow() {
        turns.tick().await;
        // The watch is read before the feed is drained: every event of this server up to
        // `newest` is then committed, and in the feed once its writer has answered.
        let newest = *committed.borrow_and_update();
        let (drained, lagged) = feed.drain();
        fed.extend(drained);
        fed.retain(|e| e.event_id > cursor);
        // Writers committing one after another may publish a moment apart.
        fed.sort_unstable_by_key(|e| e.event_id);
        read_back |= lagged;
        // The feed is checked up to the watch of an earlier turn (a group is in the watch from
        // its commit, in the feed once its durability barrier has answered, a few ms later): it
        // vouches for that range when it holds as many events as are stored there. Then the
        // rules take the range from it; otherwise the check waits a few turns for the groups
        // still on their way, and what is stored is read back when it still fails (a commit of
        // another server, a deletion).
        let upto = *due_upto.get_or_insert(watched);
        watched = newest;
        let mut vouched = None;
        if !read_back && upto > cursor {
            let due = fed.partition_point(|e| e.event_id <= upto);
            if state.storage.count_events(cursor, upto).await? == due as u64 {
                vouched = Some(due);
                due_upto = None;
                misses = 0;
            } else {
                misses += 1;
                read_back = misses > FEED_GRACE_TURNS;
            }
        } else {
            due_upto = None;
        }
        let completes = |event_type: &str| state.config.completion_event_types.iter().any(|t| t == event_type);
        if read_back {
            let mut read = 0;
            loop {
                let query = EventQuery {
                    order: Order::Asc,
                    after: Some(EventCursor::at(cursor)),
                    limit: PAGE,
                    ..EventQuery::default()
                };
                let page = state.storage.events(query).await?;
                places.learn(state, page.iter().map(|row| row.session_token.as_str())).await?;
                for row in &page {
                    cursor = row.event_id;
                    read += 1;
                    let event = CommittedEvent::read(
                        row.event_id,
                        &row.session_token,
                        row.student_email.as_deref(),
                        &row.event_type,
                        row.event_data.get(),
                        &row.created_at,
                    );
                    let place = places.of(&event.session_token);
                    pending.extend(engine.observe(place, &observed(&event, completes(&event.event_type))));
                }
                if (page.len() as u32) < PAGE {
                    break;
                }
            }
            read_back = false;
            due_upto = None;
            misses = 0;
            state.metrics.alert_events.with_label_values(&["read_back"]).inc_by(read);
            // Events committed after the last page stay for the next turn.
            fed.retain(|e| e.event_id > cursor);
        } else if let Some(due) = vouched {
            places.learn(state, fed[..due].iter().map(|e| e.session_token.as_str())).await?;
            for event in fed.drain(..due) {
                let place = places.of(&event.session_token);
                pending.extend(engine.observe(place, &observed(&event, completes(&event.event_type))));
            }
            cursor = upto;
            state.metrics.alert_events.with_label_values(&["feed"]).inc_by(due as u64);
        }
        if last_tick.elapsed() < state.config.alert_tick {
            continue;
        }
        last_tick = std::time::Instant::now();
        // Acknowledgements and mutes made on any server since the last tick.
        loop {
            let logged = state.storage.alert_changes(change_cursor, PAGE).await?;
            for (position, change) in &logged {
                change_cursor = *position;
                pending.extend(engine.settle(&change.alert, now_ms()));
            }
            if (logged.len() as u32) < PAGE {
                break;
            }
        }
        // A room's earlier runs are read when its engine appears, and again every minute.
        let refresh = earlier_read.is_none_or(|at| at.elapsed() >= EARLIER_REFRESH);
        if refresh {
            earlier_read = Some(std::time::Instant::now());
            earlier_known.clear();
            // Sessions an instructor moved into a room are judged there from now on.
            places.known.clear();
        }
        let new_rooms: Vec<Label> = engine.rooms().into_iter().filter(|l| !earlier_known.contains(l)).collect();
        read_earlier_runs(state, &mut engine, &new_rooms).await;
        earlier_known.extend(new_rooms);
        pending.extend(engine.tick(now_ms()));
        state.metrics.alert_keys_evicted.inc_by(engine.evicted() - evicted);
        evicted = engine.evicted();
        if pending.is_empty() {
            continue;
        }
        // Stored before published; kept for the next turn when the database refuses.
        let batch = coalesce(std::mem::take(&mut pending));
        match state.storage.record_alert_changes(batch.clone()).await {
            Ok(logged) => state.alerting.publish(&logged, &state.metrics),
            Err(error) => {
                tracing::warn!(%error, "alert changes not stored yet; retrying at the next turn");
                pending = batch;
            }
        }
    }
    Ok(())
}

/// How often each room's earlier runs are read again (a new room's engine waits at most this
/// long for them).
const EARLIER_REFRESH: Duration = Duration::from_secs(60);

/// Gives the engines of `rooms` the step medians of their workshop's earlier rooms
/// (`domain::workshop::earlier_rooms`, within `EARLIER_WITHIN`). A room whose read fails keeps
/// what it had, with a warning: the rules go on.
async fn read_earlier_runs(state: &AppState, engine: &mut PlacedEngines, rooms: &[Label]) {
    use crate::domain::workshop::{earlier_rooms, EARLIER_WITHIN};
    if rooms.is_empty() {
        return;
    }
    let directory = state.workshops.snapshot();
    let since = crate::domain::clock::iso_ago(EARLIER_WITHIN);
    for label in rooms {
        let Some(room) = label.room.as_deref().and_then(|code| directory.room_by_code(code)) else { continue };
        match state.storage.step_medians(earlier_rooms(&directory.rooms, room), since.clone()).await {
            Ok(medians) => engine.set_earlier_medians(label, medians),
            Err(error) => tracing::warn!(%error, room = %room.code, "earlier runs not read; trying again in a minute"),
        }
    }
}

/// Where the sessions the rules saw were placed (`session_rooms`, read once per session and
/// again every `EARLIER_REFRESH`, so a session moved into a room follows), as alerts name
/// places. At most `2 × MAX_SESSIONS` are kept; past it they are read again.
#[derive(Default)]
struct Places {
    known: HashMap<String, Label>,
}

impl Places {
    /// Reads the places of the sessions among `tokens` not known yet: one query for all.
    /// Errors: those of `Storage::session_places`.
    async fn learn<'t>(&mut self, state: &AppState, tokens: impl Iterator<Item = &'t str>) -> Result<(), StoreError> {
        let mut unknown: Vec<String> = tokens.filter(|t| !self.known.contains_key(*t)).map(str::to_owned).collect();
        unknown.sort_unstable();
        unknown.dedup();
        if unknown.is_empty() {
            return Ok(());
        }
        if self.known.len() + unknown.len() > 2 * MAX_SESSIONS {
            self.known.clear();
        }
        let found = state.storage.session_places(unknown.clone()).await?;
        let mut directory = state.workshops.snapshot();
        // A room made within the directory's refresh: read it now.
        if found.iter().any(|(_, w, r)| directory.label(*w, *r).is_none()) {
            state.workshops.reload(&state.storage).await?;
            directory = state.workshops.snapshot();
        }
        let lobby = Label { workshop: DEFAULT_WORKSHOP.to_owned(), room: None };
        for (token, workshop, room) in found {
            self.known.insert(token, directory.label(workshop, room).unwrap_or_else(|| lobby.clone()));
        }
        for token in unknown {
            self.known.entry(token).or_insert_with(|| lobby.clone());
        }
        Ok(())
    }

    /// The place of `token` (learnt before; else `default`'s lobby).
    fn of(&self, token: &str) -> &Label {
        static DEFAULT: std::sync::OnceLock<Label> = std::sync::OnceLock::new();
        self.known
            .get(token)
            .unwrap_or_else(|| DEFAULT.get_or_init(|| Label { workshop: DEFAULT_WORKSHOP.to_owned(), room: None }))
    }
}

/// What the rules take of a committed event.
fn observed(event: &CommittedEvent, completes: bool) -> Observed<'_> {
    Observed {
        session_token: &event.session_token,
        student_email: event.student_email.as_deref(),
        event_type: &event.event_type,
        facts: &event.facts,
        message: event.message.as_deref(),
        address: event.address.as_deref(),
        at_ms: event.at_ms,
        completes,
    }
}
