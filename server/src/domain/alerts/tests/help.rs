//! The help rule fed by hand: one open request per session, floods, mutes, and asking again
//! right after a close.

use super::super::help::FLOOD_TOKENS_LISTED;
use super::*;

/// A help request of `token` from `address` at `at`.
fn help(engine: &mut AlertEngine, at: i64, token: &str, address: &str, message: &str) -> Vec<AlertChange> {
    let facts = EventFacts::default();
    engine.observe(&Observed {
        session_token: token,
        student_email: None,
        event_type: HELP_REQUEST,
        facts: &facts,
        message: Some(message),
        address: Some(address),
        at_ms: at,
        completes: false,
    })
}

// A session has at most one open help request: asking again updates it (its message, its
// count); once acknowledged, the next request opens a new one.
#[test]
fn one_open_help_request_per_session() {
    let mut feed = Feed::new();
    let first = feed.event(T0, "ws_h", HELP_REQUEST, EventFacts::default());
    assert_eq!(kinds(&first, Rule::HelpRequest), [ChangeKind::Opened]);
    assert_eq!(first[0].alert.message, "I am lost on step 3");
    assert_eq!(first[0].alert.address.as_deref(), Some("203.0.113.7"));
    let again = help(&mut feed.engine, T0 + SEC, "ws_h", "203.0.113.7", "still stuck");
    assert!(again.is_empty(), "no second alert: {again:?}");
    let updated = feed.engine.tick(T0 + 2 * SEC);
    let help_changes = of(&updated, Rule::HelpRequest);
    assert_eq!(help_changes.len(), 1);
    assert_eq!(help_changes[0].kind, ChangeKind::Updated);
    assert_eq!(
        (&*help_changes[0].alert.id, &*help_changes[0].alert.message, help_changes[0].alert.count),
        (&*first[0].alert.id, "still stuck", 2)
    );
    assert!(
        feed.engine.tick(T0 + 86_400 * SEC).iter().all(|c| c.alert.rule != Rule::HelpRequest),
        "only an ack resolves it"
    );
    // An instructor acknowledges it (on any server); the engine settles the stored change.
    let mut acked = help_changes[0].alert.clone();
    assert_eq!(acknowledge(&mut acked, &iso(T0 + 86_400 * SEC)), Some(ChangeKind::Resolved));
    feed.engine.settle(&acked, T0 + 86_401 * SEC);
    let next = help(&mut feed.engine, T0 + 86_402 * SEC, "ws_h", "203.0.113.7", "new problem");
    assert_eq!(kinds(&next, Rule::HelpRequest), [ChangeKind::Opened]);
    assert_ne!(next[0].alert.id, first[0].alert.id);
}

// 300 help requests from one address within seconds, each under a made-up session, pin at
// most HELP_FLOOD_COUNT requests, and only until the flood is seen: then they fold into one
// flagged help_flood alert (a warning) that counts them all. Another address is untouched.
#[test]
fn a_help_request_flood_is_one_flagged_alert() {
    let mut engine = AlertEngine::new(AlertRules::default(), Vec::new());
    let mut changes = Vec::new();
    for i in 0..300 {
        changes.extend(help(&mut engine, T0 + i * 10, &format!("ws_fake{i}"), "198.51.100.9", "token expired"));
    }
    changes.extend(help(&mut engine, T0 + 3_000, "ws_real", "203.0.113.7", "my purchase fails"));
    changes.extend(engine.tick(T0 + 4_000));
    assert!(kinds(&changes, Rule::HelpFlood) == [ChangeKind::Opened], "updates wait for count_update_every");
    changes.extend(engine.tick(T0 + 11 * SEC));
    let opened_help: Vec<&AlertChange> =
        of(&changes, Rule::HelpRequest).into_iter().filter(|c| c.kind == ChangeKind::Opened).collect();
    assert_eq!(opened_help.len(), HELP_FLOOD_COUNT + 1, "the first 10 and the real student");
    let open: Vec<&Alert> = engine.episodes.open.values().filter(|a| a.rule == Rule::HelpRequest).collect();
    assert_eq!(open.len(), 1, "only the real student's request stays pinned");
    assert_eq!(open[0].session_tokens, ["ws_real"]);
    let folded: Vec<&AlertChange> =
        of(&changes, Rule::HelpRequest).into_iter().filter(|c| c.kind == ChangeKind::Resolved).collect();
    assert_eq!(folded.len(), HELP_FLOOD_COUNT);
    assert!(folded.iter().all(|c| c.alert.message == "folded into the help flood from 198.51.100.9"));
    let flood = of(&changes, Rule::HelpFlood);
    assert_eq!(flood[0].kind, ChangeKind::Opened);
    let last = &flood.last().unwrap().alert;
    assert_eq!((last.count, last.sessions, last.severity), (300, 300, Severity::Warning));
    assert!(last.session_tokens.len() <= FLOOD_TOKENS_LISTED);
    assert_eq!(last.address.as_deref(), Some("198.51.100.9"));
    assert!(last.message.starts_with("300 help requests from one address (198.51.100.9)"), "{}", last.message);
    // Quiet for the active window: it resolves.
    let later = engine.tick(T0 + 4_000 + 301 * SEC);
    assert_eq!(kinds(&later, Rule::HelpFlood), [ChangeKind::Resolved]);
}

// Muting a help request silences its session; muting a flood silences its address.
#[test]
fn muted_sessions_and_addresses_raise_nothing() {
    let mut engine = AlertEngine::new(AlertRules::default(), Vec::new());
    let mut request = help(&mut engine, T0, "ws_troll", "203.0.113.7", "hi")[0].alert.clone();
    assert_eq!(act(&mut request, AlertAction::Mute, "2027-01-15T08:00:00.000Z"), Some(ChangeKind::Resolved));
    engine.settle(&request, T0 + SEC);
    assert!(help(&mut engine, T0 + 2 * SEC, "ws_troll", "203.0.113.7", "hi again").is_empty());
    let facts = EventFacts { error_type: Some("x".into()), ..EventFacts::default() };
    for i in 0..5 {
        let raised = feed_one(&mut engine, "ws_troll", "error", &facts, T0 + (3 + i) * SEC);
        assert!(raised.is_empty(), "a muted session raises nothing");
    }
    let mut flood = AlertChange { kind: ChangeKind::Opened, alert: Alert::opening(Rule::HelpFlood, T0) }.alert;
    flood.address = Some("198.51.100.9".into());
    act(&mut flood, AlertAction::Mute, "2027-01-15T08:00:00.000Z");
    engine.settle(&flood, T0 + 10 * SEC);
    for i in 0..20 {
        assert!(help(&mut engine, T0 + 11 * SEC + i, &format!("ws_b{i}"), "198.51.100.9", "x").is_empty());
    }
    assert_eq!(
        kinds(&help(&mut engine, T0 + 12 * SEC, "ws_ok", "203.0.113.8", "x"), Rule::HelpRequest),
        [ChangeKind::Opened]
    );
}

// A student who asks again in the second between a helper's resolve and the rules settling it
// gets a new waiting request (opened when the rules settle the resolve, its id derived from the
// closed one's), which the rules then hold: the next ask updates it. Whether the rules published
// the ask before the settle or not. A muted request is never asked again.
#[test]
fn asking_again_right_after_a_resolve_opens_a_new_request() {
    for published_first in [false, true] {
        let mut feed = Feed::new();
        let first = feed.event(T0, "ws_h", HELP_REQUEST, EventFacts::default());
        let mut stored = first[0].alert.clone();
        let resolve = HelpChange::Resolve { by: Some("Alex".into()), note: Some("fixed".into()) };
        assert_eq!(apply_help(&mut stored, resolve, &iso(T0 + SEC)), (true, true));
        // The rules have not seen the resolve: they fold the new ask into the request they hold.
        assert!(help(&mut feed.engine, T0 + 2 * SEC, "ws_h", "203.0.113.7", "again").is_empty());
        if published_first {
            let ticked = feed.engine.tick(T0 + 3 * SEC);
            assert_eq!(of(&ticked, Rule::HelpRequest)[0].alert.id, stored.id);
        }
        let reopened = feed.engine.settle(&stored, T0 + 4 * SEC).expect("a new request");
        assert_eq!(reopened.kind, ChangeKind::Opened);
        let fresh = reopened.alert;
        assert_ne!(fresh.id, stored.id);
        assert_eq!((fresh.status, fresh.count, &*fresh.message), (AlertStatus::Open, 1, "again"));
        let state = fresh.help.clone().unwrap();
        assert_eq!((state.status, state.claimed_by, state.note), (HelpStatus::Waiting, None, None));
        // The next ask updates the new request.
        assert!(help(&mut feed.engine, T0 + 5 * SEC, "ws_h", "203.0.113.7", "third").is_empty());
        let ticked = feed.engine.tick(T0 + 6 * SEC);
        assert_eq!(of(&ticked, Rule::HelpRequest)[0].alert.id, fresh.id);
        assert_eq!(of(&ticked, Rule::HelpRequest)[0].alert.message, "third");
    }
    // Asked before the close, or muted: nothing new.
    let mut feed = Feed::new();
    let first = feed.event(T0, "ws_h", HELP_REQUEST, EventFacts::default());
    let mut stored = first[0].alert.clone();
    assert_eq!(acknowledge(&mut stored, &iso(T0 + SEC)), Some(ChangeKind::Resolved));
    assert!(feed.engine.settle(&stored, T0 + 2 * SEC).is_none());
    let held = first[0].alert.clone();
    let mut later = held.clone();
    later.last_seen_at = iso(T0 + 3 * SEC);
    let mut muted = stored.clone();
    muted.muted_at = Some(iso(T0 + SEC));
    assert!(asked_again(&later, &muted).is_none());
    assert_eq!(asked_again(&later, &stored).unwrap().id, asked_again(&later, &stored).unwrap().id, "a derived id");
}
