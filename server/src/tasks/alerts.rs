//! The alert rules, run by the leader (`Storage::is_leader`: one server per database): every
//! 25 ms it takes the events committed since its cursor and feeds them to [`AlertEngine`]; every
//! `alert_tick` (1 s) it ticks the engine, keeps each alert's last change of the turn, stores the
//! changes and publishes them (alert streams, webhooks). Its own writer's events come from the
//! commit feed (`storage::feed`), already parsed; it reads back from storage only what the feed
//! cannot vouch for: another server's commits (the committed-id watch is ahead of the feed, or
//! the stored count in the fed range differs), a commit the full feed dropped, the events stored
//! before it took the lead. Ingest never waits for it, and it writes at most one
//! change per alert per tick however fast events arrive. When it takes the lead it restores the
//! open alerts from storage, so an episode spans restarts and leader changes.

use std::time::Duration;

use actix_web::web;

use crate::domain::alerts::{AlertChange, AlertEngine, AlertStatus, Observed};
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
/// wait in the commit feed: with 100 ms the server's peak memory under the benchmark's batched
/// load was 140–160 MB (the events' small allocations, freed on another thread than the one that
/// made them, outlived their turn), with 25 ms 104 MB, with the feed off 100 MB.
const TURN: Duration = Duration::from_millis(25);

async fn lead(state: &web::Data<AppState>, resume: Option<EventCursor>) -> Result<(), StoreError> {
    // Subscribed before the newest position is read: no commit falls between the two.
    let mut feed = state.storage.subscribe_commits();
    let open_query = AlertQuery { status: Some(AlertStatus::Open), since: None, limit: 10_000 };
    let open = state.storage.alerts(open_query).await?;
    let mut rules = state.config.alert_rules.clone();
    rules.active_window = state.config.active_window;
    let mut engine = AlertEngine::new(rules, open);
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
    let stopping = state.stopping.clone();
    while state.storage.is_leader() && !*stopping.borrow() {
        turns.tick().await;
        // The watch is read before the feed is drained: every event of this server up to
        // `newest` is then in `fed` (the writers publish before they raise the watch).
        let newest = *committed.borrow_and_update();
        let (drained, lagged) = feed.drain();
        fed.extend(drained);
        fed.retain(|e| e.event_id > cursor);
        // Writers committing one after another may publish a moment apart.
        fed.sort_unstable_by_key(|e| e.event_id);
        let last_fed = fed.last().map_or(cursor, |e| e.event_id);
        // Read back only what the feed cannot vouch for: a commit it dropped, a commit of another
        // server (the watch of the turn before is ahead of the feed: the watch of this turn may
        // already hold this server's commit whose feed is on its way; or the count of stored
        // events in the fed range is not what was fed: another server's ids fall between this
        // one's), a deletion.
        read_back |= lagged || watched > last_fed;
        watched = newest;
        if !read_back && !fed.is_empty() {
            read_back = state.storage.count_events(cursor, last_fed).await? != fed.len() as u64;
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
                    pending.extend(engine.observe(&observed(&event, completes(&event.event_type))));
                }
                if (page.len() as u32) < PAGE {
                    break;
                }
            }
            read_back = false;
            state.metrics.alert_events.with_label_values(&["read_back"]).inc_by(read);
            // Events committed after the last page stay for the next turn.
            fed.retain(|e| e.event_id > cursor);
        } else {
            for event in &fed {
                pending.extend(engine.observe(&observed(event, completes(&event.event_type))));
            }
            cursor = last_fed;
            state.metrics.alert_events.with_label_values(&["feed"]).inc_by(fed.len() as u64);
            fed.clear();
        }
        if last_tick.elapsed() < state.config.alert_tick {
            continue;
        }
        last_tick = std::time::Instant::now();
        pending.extend(engine.tick(now_ms()));
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

/// What the rules take of a committed event.
fn observed(event: &CommittedEvent, completes: bool) -> Observed<'_> {
    Observed {
        session_token: &event.session_token,
        student_email: event.student_email.as_deref(),
        event_type: &event.event_type,
        facts: &event.facts,
        message: event.message.as_deref(),
        at_ms: event.at_ms,
        completes,
    }
}
