//! The alert rules, run by the leader (`Storage::is_leader`: one server per database): every
//! `alert_tick` (1 s) it reads the events stored since its cursor, feeds them to
//! [`AlertEngine`], ticks it, keeps each alert's last change of the turn, stores the changes and
//! publishes them (alert streams, webhooks). Ingest never waits for it, and it writes at most one
//! change per alert per tick however fast events arrive. When it takes the lead it restores the
//! open alerts from storage, so an episode spans restarts and leader changes.

use std::time::Duration;

use actix_web::web;

use crate::domain::alerts::{AlertChange, AlertEngine, AlertStatus, Observed};
use crate::domain::cursor::EventCursor;
use crate::domain::summary::EventFacts;
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

async fn lead(state: &web::Data<AppState>, resume: Option<EventCursor>) -> Result<(), StoreError> {
    let open_query = AlertQuery { status: Some(AlertStatus::Open), since: None, limit: 10_000 };
    let open = state.storage.alerts(open_query).await?;
    let mut rules = state.config.alert_rules.clone();
    rules.active_window = state.config.active_window;
    let mut engine = AlertEngine::new(rules, open);
    let mut committed = state.storage.committed();
    let newest = EventCursor::at(*committed.borrow_and_update());
    let mut cursor = resume.unwrap_or(newest);
    let mut pending: Vec<AlertChange> = Vec::new();
    let mut ticks = actix_web::rt::time::interval(state.config.alert_tick);
    let mut first_turn = true;
    let stopping = state.stopping.clone();
    while state.storage.is_leader() && !*stopping.borrow() {
        // Once per tick, not per commit: under load a commit lands every millisecond or so, and
        // evaluating per tick bounds the alert writes (and webhooks) to one change per alert
        // per tick however fast events arrive, so the rules never compete with ingest.
        ticks.tick().await;
        // Read when something was committed since the last read (and at the first turn: events
        // stored between `resume` and taking the lead).
        let stored_since = first_turn || committed.has_changed().unwrap_or(true);
        first_turn = false;
        committed.borrow_and_update();
        if stored_since {
            loop {
                let query = EventQuery { order: Order::Asc, after: Some(cursor), limit: PAGE, ..EventQuery::default() };
                let page = state.storage.events(query).await?;
                for event in &page {
                    cursor = EventCursor::at(event.event_id);
                    let data = event.event_data.get();
                    let facts = EventFacts::read(&event.event_type, data);
                    // Only a help request's message is read (parsing every event's data would cost
                    // as much as the rules themselves).
                    let message = (event.event_type == crate::domain::alerts::HELP_REQUEST)
                        .then(|| serde_json::from_str::<serde_json::Value>(data).ok())
                        .flatten()
                        .and_then(|v| v.get("message").and_then(|m| m.as_str().map(str::to_owned)));
                    let observed = Observed {
                        session_token: &event.session_token,
                        student_email: event.student_email.as_deref(),
                        event_type: &event.event_type,
                        facts: &facts,
                        message: message.as_deref(),
                        at_ms: crate::domain::summary::iso_ms(&event.created_at),
                        completes: state.config.completion_event_types.contains(&event.event_type),
                    };
                    pending.extend(engine.observe(&observed));
                }
                if (page.len() as u32) < PAGE {
                    break;
                }
            }
        }
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
