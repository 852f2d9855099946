//! The alert rules, fed events and the clock by hand (the help rule's in `help`).

use std::time::Duration;

use super::*;
use crate::domain::event::HELP_REQUEST;
use crate::domain::facts::EventFacts;

mod help;

const T0: i64 = 1_800_000_000_000;
const SEC: i64 = 1000;

struct Feed {
    engine: AlertEngine,
}

impl Feed {
    fn new() -> Feed {
        Feed {
            engine: AlertEngine::new(
                AlertRules { count_update_every: Duration::ZERO, ..AlertRules::default() },
                Vec::new(),
            ),
        }
    }

    fn event(&mut self, at: i64, token: &str, event_type: &str, facts: EventFacts) -> Vec<AlertChange> {
        let observed = Observed {
            session_token: token,
            student_email: Some("ada@example.com"),
            event_type,
            facts: &facts,
            message: Some("I am lost on step 3"),
            address: Some("203.0.113.7"),
            at_ms: at,
            completes: event_type == "workshop_completed",
        };
        self.engine.observe(&observed)
    }

    fn error(&mut self, at: i64, token: &str, error_type: &str) -> Vec<AlertChange> {
        let facts = EventFacts { error_type: Some(error_type.into()), ..EventFacts::default() };
        self.event(at, token, "error", facts)
    }

    /// An action of `token` on `step` (a navigation when it changes the step).
    fn on_step(&mut self, at: i64, token: &str, step: i64) -> Vec<AlertChange> {
        let facts = EventFacts { step: Some(step), step_name: Some(format!("Step {step}")), ..EventFacts::default() };
        self.event(at, token, "action", facts)
    }

    fn call(&mut self, at: i64, failed: bool) -> Vec<AlertChange> {
        let facts = EventFacts { endpoint: Some("/api/deploy".into()), api_failed: failed, ..EventFacts::default() };
        self.event(at, "ws_calls", "api_call", facts)
    }
}

fn kinds(changes: &[AlertChange], rule: Rule) -> Vec<ChangeKind> {
    changes.iter().filter(|c| c.alert.rule == rule).map(|c| c.kind).collect()
}

// error_burst opens at the third error within 2 minutes, updates on the fourth, and
// resolves once they age out of the window; a later burst is a new episode.
#[test]
fn error_burst_is_one_episode() {
    let mut feed = Feed::new();
    assert!(feed.error(T0, "ws_a", "x").is_empty());
    assert!(feed.error(T0 + 10 * SEC, "ws_a", "x").is_empty());
    let opened = feed.error(T0 + 20 * SEC, "ws_a", "y");
    assert_eq!(kinds(&opened, Rule::ErrorBurst), [ChangeKind::Opened]);
    let alert = &opened[0].alert;
    assert_eq!((alert.count, alert.sessions), (3, 1), "opens counting the errors that opened it");
    assert_eq!(
        (alert.session_tokens.clone(), alert.student_emails.clone()),
        (vec!["ws_a".to_owned()], vec!["ada@example.com".to_owned()])
    );
    assert_eq!(alert.severity, Severity::Warning);
    assert!(kinds(&feed.error(T0 + 30 * SEC, "ws_a", "y"), Rule::ErrorBurst).is_empty(), "updates wait for the tick");
    feed.error(T0 + 31 * SEC, "ws_a", "y");
    let updated = feed.engine.tick(T0 + 32 * SEC);
    assert_eq!(kinds(&updated, Rule::ErrorBurst), [ChangeKind::Updated], "one update for two errors");
    assert_eq!(updated[0].alert.id, alert.id, "the same episode");
    assert_eq!(updated[0].alert.count, 5, "every error of the episode");
    assert_eq!(updated[0].alert.message, "5 errors within 2m in session ws_a");
    assert!(feed.engine.tick(T0 + 120 * SEC).is_empty(), "still three within 2 minutes");
    let resolved = feed.engine.tick(T0 + 141 * SEC);
    assert_eq!(kinds(&resolved, Rule::ErrorBurst), [ChangeKind::Resolved]);
    assert_eq!(resolved[0].alert.status, AlertStatus::Resolved);
    let again: Vec<AlertChange> = (0..3).flat_map(|i| feed.error(T0 + 600 * SEC + i * SEC, "ws_a", "z")).collect();
    let reopened: Vec<&AlertChange> = again.iter().filter(|c| c.alert.rule == Rule::ErrorBurst).collect();
    assert_eq!(reopened[0].kind, ChangeKind::Opened);
    assert_ne!(reopened[0].alert.id, alert.id, "a new episode");
}

// error_pattern needs one errorType in three sessions within 10 minutes, lists them, and
// resolves when they age out.
#[test]
fn error_pattern_spans_sessions() {
    let mut feed = Feed::new();
    feed.error(T0, "ws_a", "twilio_timeout");
    feed.error(T0 + SEC, "ws_a", "twilio_timeout");
    feed.error(T0 + 2 * SEC, "ws_b", "other");
    assert!(kinds(&feed.error(T0 + 3 * SEC, "ws_b", "twilio_timeout"), Rule::ErrorPattern).is_empty());
    let opened = feed.error(T0 + 4 * SEC, "ws_c", "twilio_timeout");
    let pattern: Vec<&AlertChange> = opened.iter().filter(|c| c.alert.rule == Rule::ErrorPattern).collect();
    assert_eq!(pattern.len(), 1);
    assert_eq!(pattern[0].kind, ChangeKind::Opened);
    assert_eq!(pattern[0].alert.session_tokens, ["ws_a", "ws_b", "ws_c"]);
    assert_eq!(pattern[0].alert.error_type.as_deref(), Some("twilio_timeout"));
    assert_eq!(pattern[0].alert.severity, Severity::Critical);
    assert!(kinds(&feed.error(T0 + 5 * SEC, "ws_d", "twilio_timeout"), Rule::ErrorPattern).is_empty());
    let updated = feed.engine.tick(T0 + 6 * SEC);
    assert_eq!(kinds(&updated, Rule::ErrorPattern), [ChangeKind::Updated], "published by the tick");
    assert_eq!(kinds(&feed.engine.tick(T0 + 602 * SEC), Rule::ErrorPattern), [], "b, c, d are still within");
    assert_eq!(kinds(&feed.engine.tick(T0 + 604 * SEC), Rule::ErrorPattern), [ChangeKind::Resolved]);
}

// stuck opens on the timer for an active session on one step for 10 minutes, and resolves
// when it moves to another step.
#[test]
fn stuck_opens_on_the_timer_and_resolves_on_a_step_change() {
    let mut feed = Feed::new();
    let at_step = |step| EventFacts { step: Some(step), ..EventFacts::default() };
    feed.event(T0, "ws_s", "navigation", at_step(2));
    feed.event(T0 + 240 * SEC, "ws_s", "action", at_step(2));
    feed.event(T0 + 480 * SEC, "ws_s", "action", at_step(2));
    assert!(feed.engine.tick(T0 + 599 * SEC).is_empty());
    let opened = feed.engine.tick(T0 + 600 * SEC);
    assert_eq!(kinds(&opened, Rule::Stuck), [ChangeKind::Opened]);
    assert!(opened[0].alert.message.contains("step 2"), "{}", opened[0].alert.message);
    assert!(feed.engine.tick(T0 + 610 * SEC).is_empty(), "opens once");
    let moved = feed.event(T0 + 620 * SEC, "ws_s", "navigation", at_step(3));
    assert_eq!(kinds(&moved, Rule::Stuck), [ChangeKind::Resolved]);
    // An idle session is not stuck: nobody is there.
    feed.event(T0 + 700 * SEC, "ws_idle", "navigation", at_step(1));
    assert!(kinds(&feed.engine.tick(T0 + 1400 * SEC), Rule::Stuck).is_empty());
}

// api_failures needs at least 5 calls within 5 minutes of which half failed, and resolves
// when the rate drops.
#[test]
fn api_failures_follow_the_failure_rate() {
    let mut feed = Feed::new();
    for i in 0..4 {
        assert!(feed.call(T0 + i * SEC, true).is_empty(), "fewer than 5 calls");
    }
    let opened = feed.call(T0 + 4 * SEC, true);
    assert_eq!(kinds(&opened, Rule::ApiFailures), [ChangeKind::Opened]);
    assert_eq!(opened[0].alert.endpoint.as_deref(), Some("/api/deploy"));
    for i in 5..8 {
        feed.call(T0 + i * SEC, false);
    }
    let still = feed.engine.tick(T0 + 8 * SEC);
    assert!(kinds(&still, Rule::ApiFailures).is_empty(), "5 of 8 failed");
    let mut resolved = Vec::new();
    for i in 8..11 {
        resolved.extend(feed.call(T0 + i * SEC, false));
    }
    assert_eq!(kinds(&resolved, Rule::ApiFailures), [ChangeKind::Resolved], "5 of 11 failed");
}

/// An event of `token` with `facts` at `at`, no student, message or address.
fn feed_one(engine: &mut AlertEngine, token: &str, event_type: &str, facts: &EventFacts, at: i64) -> Vec<AlertChange> {
    engine.observe(&Observed {
        session_token: token,
        student_email: None,
        event_type,
        facts,
        message: None,
        address: None,
        at_ms: at,
        completes: false,
    })
}

// An error type across 500 sessions and an endpoint failing for all of them list at most
// MAX_LISTED sessions each, and count them all.
#[test]
fn wide_alerts_list_a_bounded_number_of_sessions() {
    let mut engine = AlertEngine::new(AlertRules::default(), Vec::new());
    let mut changes = Vec::new();
    for i in 0..500 {
        let facts = EventFacts {
            error_type: Some("twilio_down".into()),
            endpoint: Some("/v1/calls".into()),
            api_failed: true,
            ..EventFacts::default()
        };
        for event_type in ["error", "api_call"] {
            changes.extend(feed_one(&mut engine, &format!("ws_{i:03}"), event_type, &facts, T0 + i));
        }
    }
    changes.extend(engine.tick(T0 + 11 * SEC));
    for rule in [Rule::ErrorPattern, Rule::ApiFailures] {
        let last = &of(&changes, rule).last().unwrap().alert;
        assert_eq!((last.session_tokens.len(), last.sessions), (MAX_LISTED, 500), "{rule:?}");
        assert_eq!(last.session_tokens[0], "ws_000");
    }
}

// An error burst that keeps growing is published when it opens, then at most once per
// count_update_every however many errors come; its resolution at once.
#[test]
fn growing_alerts_are_published_at_most_every_ten_seconds() {
    let mut engine = AlertEngine::new(AlertRules::default(), Vec::new());
    let facts = EventFacts { error_type: Some("boom".into()), ..EventFacts::default() };
    let mut published = Vec::new();
    for s in 0..60 {
        published.extend(feed_one(&mut engine, "ws_noisy", "error", &facts, T0 + s * SEC));
        published.extend(engine.tick(T0 + s * SEC + 500));
    }
    let burst = kinds(&published, Rule::ErrorBurst);
    assert_eq!(burst[0], ChangeKind::Opened);
    let updates = burst.iter().filter(|k| **k == ChangeKind::Updated).count();
    assert!((5..=6).contains(&updates), "{updates} updates in 58 s");
    let resolved = engine.tick(T0 + 300 * SEC);
    assert_eq!(kinds(&resolved, Rule::ErrorBurst), [ChangeKind::Resolved]);
}

// Distinct error types, endpoints and sessions beyond the caps are forgotten oldest first
// and counted; long keys are cut. The engine's maps never exceed their caps.
#[test]
fn rule_windows_are_bounded_under_distinct_keys() {
    let mut engine = AlertEngine::new(AlertRules::default(), Vec::new());
    let long = "k".repeat(1_000);
    for i in 0..(MAX_SESSIONS as i64 + 5_000) {
        let facts = EventFacts {
            error_type: Some(format!("{i}{long}")),
            endpoint: Some(format!("/{i}/{long}")),
            ..EventFacts::default()
        };
        for event_type in ["error", "api_call"] {
            feed_one(&mut engine, &format!("ws_{i}"), event_type, &facts, T0 + i);
        }
        assert!(engine.error_pattern.patterns.len() <= MAX_KEYS && engine.api_failures.keys().count() <= MAX_KEYS);
        assert!(engine.sessions.len() <= MAX_SESSIONS, "{} sessions at {i}", engine.sessions.len());
        assert!(engine.error_burst.errors.len() <= MAX_SESSIONS, "{} bursts at {i}", engine.error_burst.errors.len());
    }
    assert!(engine.evicted() > 0);
    let key_bytes =
        engine.error_pattern.patterns.keys().chain(engine.api_failures.keys()).map(String::len).max().unwrap();
    assert!(key_bytes <= crate::domain::summary::MAX_KEY_BYTES, "{key_bytes}");
    // The newest keys are the ones kept.
    assert!(engine.sessions.contains_key(&format!("ws_{}", MAX_SESSIONS as i64 + 4_999)));
}

// Alerts open before a restart (or on another server) update instead of opening again.
#[test]
fn open_alerts_survive_a_restart() {
    let mut feed = Feed::new();
    let opened: Vec<AlertChange> = (0..3).flat_map(|i| feed.error(T0 + i * SEC, "ws_r", "x")).collect();
    let burst = opened.iter().find(|c| c.alert.rule == Rule::ErrorBurst).unwrap().alert.clone();
    let mut engine = AlertEngine::new(AlertRules::default(), vec![burst.clone()]);
    let facts = EventFacts { error_type: Some("x".into()), ..EventFacts::default() };
    let mut changes = Vec::new();
    for i in 3..6 {
        changes.extend(feed_one(&mut engine, "ws_r", "error", &facts, T0 + i * SEC));
    }
    changes.extend(engine.tick(T0 + 6 * SEC));
    let burst_changes: Vec<&AlertChange> = changes.iter().filter(|c| c.alert.rule == Rule::ErrorBurst).collect();
    assert_eq!(burst_changes.last().unwrap().kind, ChangeKind::Updated);
    assert!(burst_changes.iter().all(|c| c.alert.id == burst.id));
}

fn of(changes: &[AlertChange], rule: Rule) -> Vec<&AlertChange> {
    changes.iter().filter(|c| c.alert.rule == rule).collect()
}

/// Keeps `tokens` moving through steps 10, 11, … every 100 s from `from` to `to` (s after
/// T0), so the room has active sessions that are not stuck.
fn keep_moving(feed: &mut Feed, tokens: &[&str], from: i64, to: i64) -> Vec<AlertChange> {
    let mut changes = Vec::new();
    for (i, at) in (from..=to).step_by(100).enumerate() {
        for token in tokens {
            changes.extend(feed.on_step(T0 + at * SEC, token, 10 + i as i64));
        }
    }
    changes
}

// Stuck sessions are one alert per step: sessions join it when they become stuck there,
// leave it when they move on, and the alert resolves when the last one leaves.
#[test]
fn stuck_sessions_group_by_step() {
    let mut feed = Feed::new();
    let movers = ["ws_m1", "ws_m2", "ws_m3", "ws_m4", "ws_m5"];
    for token in ["ws_a", "ws_b"] {
        feed.on_step(T0, token, 2);
    }
    feed.on_step(T0, "ws_c", 3);
    feed.on_step(T0 + 60 * SEC, "ws_d", 2);
    keep_moving(&mut feed, &movers, 0, 600);
    for at in [200, 400] {
        for token in ["ws_a", "ws_b", "ws_c", "ws_d"] {
            let step = if token == "ws_c" { 3 } else { 2 };
            feed.on_step(T0 + at * SEC, token, step);
        }
    }
    let opened = feed.engine.tick(T0 + 600 * SEC);
    let stuck = of(&opened, Rule::Stuck);
    assert_eq!(stuck.len(), 2, "one alert per step: {opened:#?}");
    let step2 = stuck.iter().find(|c| c.alert.step == Some(2)).unwrap();
    assert_eq!(step2.kind, ChangeKind::Opened);
    assert_eq!(step2.alert.session_tokens, ["ws_a", "ws_b"]);
    assert_eq!((step2.alert.count, step2.alert.sessions), (2, 2));
    assert_eq!(step2.alert.step_name.as_deref(), Some("Step 2"));
    assert_eq!(step2.alert.message, "2 students stuck on step 2 · Step 2 for over 10m");
    let id = step2.alert.id.clone();

    // ws_d has been on step 2 for 10 minutes a minute later: it joins the same alert.
    keep_moving(&mut feed, &movers, 700, 700);
    let joined = feed.engine.tick(T0 + 660 * SEC);
    let update = of(&joined, Rule::Stuck);
    assert_eq!(update.len(), 1, "{joined:#?}");
    assert_eq!((update[0].kind, update[0].alert.id.clone()), (ChangeKind::Updated, id.clone()));
    assert_eq!(update[0].alert.session_tokens, ["ws_a", "ws_b", "ws_d"]);
    assert!(update[0].alert.message.starts_with("3 students stuck on step 2"), "{}", update[0].alert.message);

    // ws_a moves on: it leaves at once (published by the tick); the others follow and the
    // alert resolves.
    assert!(of(&feed.on_step(T0 + 670 * SEC, "ws_a", 3), Rule::Stuck).is_empty(), "an update waits for the tick");
    let left = feed.engine.tick(T0 + 671 * SEC);
    let update = of(&left, Rule::Stuck);
    assert_eq!(update.len(), 1, "{left:#?}");
    assert_eq!(update[0].alert.session_tokens, ["ws_b", "ws_d"]);
    feed.on_step(T0 + 680 * SEC, "ws_b", 3);
    let resolved = feed.on_step(T0 + 681 * SEC, "ws_d", 3);
    let resolved = of(&resolved, Rule::Stuck);
    assert_eq!(resolved.len(), 1);
    assert_eq!((resolved[0].kind, resolved[0].alert.id.clone()), (ChangeKind::Resolved, id));
}

// With enough of the room through a step, a session is stuck only past both the floor and
// twice the room's median there, and the alert names the median it was compared with.
#[test]
fn stuck_is_judged_against_the_room() {
    let rules = AlertRules { stuck_after: Duration::from_secs(30), ..AlertRules::default() };
    let mut feed = Feed { engine: AlertEngine::new(rules, Vec::new()) };
    // Three students spend 40, 60 and 80 s on step 1 (then finish): the median is 60 s.
    for (token, spent) in [("ws_r1", 40), ("ws_r2", 60), ("ws_r3", 80)] {
        feed.on_step(T0, token, 1);
        feed.on_step(T0 + spent * SEC, token, 2);
        feed.event(T0 + spent * SEC, token, "workshop_completed", EventFacts::default());
    }
    feed.on_step(T0 + 100 * SEC, "ws_slow", 1);
    let movers = ["ws_m1", "ws_m2", "ws_m3"];
    keep_moving(&mut feed, &movers, 100, 300);
    assert!(of(&feed.engine.tick(T0 + 219 * SEC), Rule::Stuck).is_empty(), "119 s < 2 × 60 s");
    let opened = feed.engine.tick(T0 + 221 * SEC);
    let stuck = of(&opened, Rule::Stuck);
    assert_eq!(stuck.len(), 1, "{opened:#?}");
    assert_eq!(stuck[0].alert.session_tokens, ["ws_slow"]);
    assert_eq!(stuck[0].alert.typical_ms, Some(60_000));
    assert_eq!(stuck[0].alert.message, "1 student stuck on step 1 · Step 1 (the room takes 1m there)");

    // Where only two of the room went through, the floor alone decides.
    let rules = AlertRules { stuck_after: Duration::from_secs(30), ..AlertRules::default() };
    let mut feed = Feed { engine: AlertEngine::new(rules, Vec::new()) };
    for (token, spent) in [("ws_r1", 200), ("ws_r2", 200)] {
        feed.on_step(T0, token, 1);
        feed.on_step(T0 + spent * SEC, token, 2);
        feed.event(T0 + spent * SEC, token, "workshop_completed", EventFacts::default());
    }
    feed.on_step(T0 + 200 * SEC, "ws_slow", 1);
    keep_moving(&mut feed, &movers, 200, 300);
    let opened = feed.engine.tick(T0 + 231 * SEC);
    let stuck = of(&opened, Rule::Stuck);
    assert_eq!(stuck.len(), 1, "{opened:#?}");
    assert_eq!(stuck[0].alert.typical_ms, None);
}

// When half the active room would be stuck at once (the instructor is talking), no stuck
// alert opens; one room_paused notice does, and resolves when the room moves again.
#[test]
fn a_room_wide_pause_does_not_page() {
    let mut feed = Feed::new();
    let sitting = ["ws_s1", "ws_s2", "ws_s3", "ws_s4"];
    for (i, token) in sitting.iter().enumerate() {
        for at in [0, 200, 400] {
            feed.on_step(T0 + at * SEC, token, 1 + (i as i64 % 2));
        }
    }
    keep_moving(&mut feed, &["ws_m1", "ws_m2", "ws_m3"], 0, 600);
    let paused = feed.engine.tick(T0 + 600 * SEC);
    assert!(of(&paused, Rule::Stuck).is_empty(), "no stuck alert during a pause: {paused:#?}");
    let notice = of(&paused, Rule::RoomPaused);
    assert_eq!(notice.len(), 1);
    assert_eq!(notice[0].kind, ChangeKind::Opened);
    assert_eq!(notice[0].alert.severity, Severity::Info);
    assert_eq!((notice[0].alert.count, notice[0].alert.sessions), (4, 7), "4 of 7 active sessions");
    assert!(feed.engine.tick(T0 + 601 * SEC).is_empty(), "quiet while it lasts");
    // The talk ends: three of them move on; the pause resolves.
    for token in &sitting[..3] {
        feed.on_step(T0 + 610 * SEC, token, 3);
    }
    let after = feed.engine.tick(T0 + 611 * SEC);
    assert_eq!(kinds(&after, Rule::RoomPaused), [ChangeKind::Resolved], "{after:#?}");
}

// An error_pattern counts every error of its type across its sessions, and says so.
#[test]
fn pattern_counts_errors_and_sessions() {
    let mut feed = Feed::new();
    for (i, token) in ["ws_a", "ws_a", "ws_b", "ws_c"].iter().enumerate() {
        feed.error(T0 + i as i64 * SEC, token, "deploy_failed");
    }
    feed.error(T0 + 5 * SEC, "ws_b", "deploy_failed");
    let updated = feed.engine.tick(T0 + 6 * SEC);
    let pattern = of(&updated, Rule::ErrorPattern);
    assert_eq!(pattern.len(), 1, "{updated:#?}");
    assert_eq!((pattern[0].alert.count, pattern[0].alert.sessions), (5, 3));
    assert_eq!(pattern[0].alert.message, "deploy_failed: 5 errors in 3 sessions within 10m");
}

// Open alerts read help requests first, then critical, then warnings, then notices, each
// newest first; resolved ones after them.
#[test]
fn alerts_are_ranked_for_the_instructor() {
    let alert = |rule: Rule, seen: i64, status: AlertStatus| {
        let mut a = Alert::opening(rule, T0 + seen * SEC);
        a.status = status;
        a.message = format!("{rule:?} {seen}");
        a
    };
    let mut alerts = vec![
        alert(Rule::Stuck, 50, AlertStatus::Open),
        alert(Rule::ErrorPattern, 10, AlertStatus::Open),
        alert(Rule::HelpRequest, 5, AlertStatus::Resolved),
        alert(Rule::RoomPaused, 60, AlertStatus::Open),
        alert(Rule::ErrorBurst, 40, AlertStatus::Open),
        alert(Rule::HelpRequest, 1, AlertStatus::Open),
        alert(Rule::ApiFailures, 20, AlertStatus::Open),
        alert(Rule::Stuck, 30, AlertStatus::Resolved),
    ];
    rank(&mut alerts);
    let order: Vec<&str> = alerts.iter().map(|a| a.message.as_str()).collect();
    assert_eq!(
        order,
        [
            "HelpRequest 1",
            "ApiFailures 20",
            "ErrorPattern 10",
            "Stuck 50",
            "ErrorBurst 40",
            "RoomPaused 60",
            "Stuck 30",
            "HelpRequest 5"
        ]
    );
}

// An older server's per-session stuck alert, restored open, is resolved at the first tick
// instead of staying open forever.
#[test]
fn per_session_stuck_alerts_from_before_resolve() {
    let mut old = Alert::opening(Rule::Stuck, T0);
    old.session_tokens = vec!["ws_old".into()];
    let mut engine = AlertEngine::new(AlertRules::default(), vec![old.clone()]);
    let changes = engine.tick(T0 + SEC);
    assert_eq!(changes.len(), 1);
    assert_eq!((changes[0].kind, changes[0].alert.id.clone()), (ChangeKind::Resolved, old.id));
}

// Two rooms on one server: one cohort's break is that room's pause only, and a stuck student
// in the other room is flagged against their own room, the alerts naming their room.
#[test]
fn rooms_are_judged_apart() {
    let mut rooms = PlacedEngines::new(AlertRules::default(), Vec::new());
    let a = Label { workshop: "voice-ai".into(), room: Some("AAAAAA".into()) };
    let b = Label { workshop: "pipelines".into(), room: Some("BBBBBB".into()) };
    let mut on_step = |label: &Label, at: i64, token: &str, step: i64| {
        let facts = EventFacts { step: Some(step), ..EventFacts::default() };
        let observed = Observed {
            session_token: token,
            student_email: None,
            event_type: "action",
            facts: &facts,
            message: None,
            address: None,
            at_ms: T0 + at * SEC,
            completes: false,
        };
        rooms.observe(label, &observed)
    };
    // Room A: five students sit on step 1 (their coffee break), still sending events.
    // Room B: five keep moving, one has sat on step 2 for 10 minutes.
    for at in (0..=600).step_by(100) {
        for n in 0..5 {
            on_step(&a, at, &format!("ws_a{n}"), 1);
            on_step(&b, at, &format!("ws_b{n}"), 10 + at / 100);
        }
        on_step(&b, at, "ws_stuck", 2);
    }
    let changes = rooms.tick(T0 + 601 * SEC);
    let opened: Vec<(Rule, Option<&str>, Option<&str>)> =
        changes.iter().map(|c| (c.alert.rule, c.alert.workshop.as_deref(), c.alert.room.as_deref())).collect();
    assert!(opened.contains(&(Rule::RoomPaused, Some("voice-ai"), Some("AAAAAA"))), "{opened:?}");
    assert!(opened.contains(&(Rule::Stuck, Some("pipelines"), Some("BBBBBB"))), "{opened:?}");
    assert_eq!(opened.len(), 2, "no pause in B, nothing stuck in A: {opened:?}");
    let stuck = changes.iter().find(|c| c.alert.rule == Rule::Stuck).unwrap();
    assert_eq!(stuck.alert.session_tokens, ["ws_stuck"]);
    assert_eq!(rooms.places(), 2);

    // Restored after a restart, each open alert returns to its own room, and resolves there
    // once its window has passed without its condition.
    let open: Vec<Alert> = changes.into_iter().map(|c| c.alert).collect();
    let mut restarted = PlacedEngines::new(AlertRules::default(), open);
    assert_eq!(restarted.places(), 2);
    assert!(restarted.tick(T0 + 700 * SEC).is_empty(), "restored alerts wait for their window");
    let resolved = restarted.tick(T0 + 1100 * SEC);
    let mut rooms_resolved: Vec<(Rule, ChangeKind, Option<&str>)> =
        resolved.iter().map(|c| (c.alert.rule, c.kind, c.alert.room.as_deref())).collect();
    rooms_resolved.sort_by_key(|r| r.2);
    assert_eq!(
        rooms_resolved,
        [(Rule::RoomPaused, ChangeKind::Resolved, Some("AAAAAA")), (Rule::Stuck, ChangeKind::Resolved, Some("BBBBBB"))]
    );
    // An alert stored before rooms belongs to the default workshop's lobby.
    let old = Alert::opening(Rule::HelpRequest, T0);
    assert_eq!(Label::of(&old), Label { workshop: DEFAULT_WORKSHOP.into(), room: None });
}

// A new room with too few visits of a step is judged against the workshop's earlier rooms, and
// the alert says so; once the room has its own median, that one wins.
#[test]
fn a_new_room_is_judged_against_earlier_runs() {
    let rules = AlertRules { stuck_after: Duration::from_secs(30), ..AlertRules::default() };
    let mut feed = Feed { engine: AlertEngine::new(rules, Vec::new()) };
    feed.engine.set_earlier_medians([(1, 60_000)].into_iter().collect());
    feed.on_step(T0, "ws_slow", 1);
    let movers = ["ws_m1", "ws_m2", "ws_m3"];
    keep_moving(&mut feed, &movers, 0, 300);
    assert!(of(&feed.engine.tick(T0 + 119 * SEC), Rule::Stuck).is_empty(), "119 s < 2 × 60 s of earlier runs");
    let opened = feed.engine.tick(T0 + 121 * SEC);
    let stuck = of(&opened, Rule::Stuck);
    assert_eq!(stuck.len(), 1, "{opened:#?}");
    assert_eq!((stuck[0].alert.typical_ms, stuck[0].alert.typical_from_earlier_runs), (Some(60_000), true));
    assert_eq!(stuck[0].alert.message, "1 student stuck on step 1 · Step 1 (usually 1m here in earlier runs)");
    let json = serde_json::to_value(&stuck[0].alert).unwrap();
    assert_eq!(json["typicalFromEarlierRuns"], true);

    // Without earlier runs the floor alone decides, and the flag is left out of the JSON.
    let rules = AlertRules { stuck_after: Duration::from_secs(30), ..AlertRules::default() };
    let mut feed = Feed { engine: AlertEngine::new(rules, Vec::new()) };
    feed.on_step(T0, "ws_slow", 1);
    keep_moving(&mut feed, &movers, 0, 300);
    let opened = feed.engine.tick(T0 + 31 * SEC);
    let stuck = of(&opened, Rule::Stuck);
    assert_eq!((stuck[0].alert.typical_ms, stuck[0].alert.typical_from_earlier_runs), (None, false));
    assert!(serde_json::to_value(&stuck[0].alert).unwrap().get("typicalFromEarlierRuns").is_none());
}
