//! The storage contract, checked by comparison: one scenario (inserts with a duplicate, event
//! and session queries with every filter and a cursor, alerts, a purge in small batches, a
//! student deletion) runs on a real SQLite file and a real PostgreSQL database, and what each
//! operation answered is the same on both, purge order included.

mod common;

use common::{temp_storage, valid_events, Backend};
use serde_json::json;
use session_log_server::domain::alerts::{
    Alert, AlertAction, AlertChange, AlertStatus, ChangeKind, HelpChange, Rule, Severity,
};
use session_log_server::storage::{AlertQuery, EventQuery, NewNotice, Order, SessionQuery};

/// Everything the scenario's operations answered, one line each, without what differs by
/// nature (ids, times).
fn transcript(backend: Backend) -> Vec<String> {
    let (_db, _config, storage, runtime) = temp_storage(backend);
    let mut lines = Vec::new();
    let typed = |i: u64| {
        let event_type = if i % 3 == 0 { "error" } else { "navigation" };
        (event_type, json!({"to": i, "errorType": format!("e{}", i % 2), "currentStep": i}))
    };
    runtime.block_on(async {
        for (token, seqs, email) in [
            ("ws_a", 0..6, Some("ada@example.com")),
            ("ws_b", 0..4, None),
            ("ws_a", 6..9, Some("ada@example.com")),
            ("ws_c", 0..5, Some("Grace@example.com")),
            ("ws_b", 0..4, None),
            ("ws_d", 0..3, Some("ada@example.com")),
        ] {
            let inserted = storage.insert(valid_events(token, seqs.clone(), email, typed)).await.unwrap();
            lines.push(format!("insert {token} {seqs:?}: {inserted:?}"));
        }
        let event_line = |e: &session_log_server::storage::EventRow| {
            format!("{} {} {:?} {:?}", e.session_token, e.event_type, e.seq, e.student_email)
        };
        let queries = [
            ("all asc", EventQuery { order: Order::Asc, limit: 100, ..EventQuery::default() }),
            ("newest 4", EventQuery { limit: 4, ..EventQuery::default() }),
            ("errors", EventQuery { event_type: Some("error".into()), limit: 100, ..EventQuery::default() }),
            ("ada", EventQuery { student_email: Some("ADA@example.com".into()), limit: 100, ..EventQuery::default() }),
            (
                "grace",
                EventQuery { student_email: Some("grace@example.com".into()), limit: 100, ..EventQuery::default() },
            ),
            (
                "ws_b",
                EventQuery { session_token: Some("ws_b".into()), order: Order::Asc, limit: 2, ..EventQuery::default() },
            ),
            (
                "nobody",
                EventQuery { student_email: Some("nobody@example.com".into()), limit: 100, ..EventQuery::default() },
            ),
            (
                "future",
                EventQuery { since: Some("9999-01-01T00:00:00.000Z".into()), limit: 100, ..EventQuery::default() },
            ),
        ];
        for (name, query) in queries {
            let rows = storage.events(query).await.unwrap();
            lines.push(format!("events {name}: {:?}", rows.iter().map(event_line).collect::<Vec<_>>()));
        }
        // Paging through every event, three at a time, newest first.
        let mut query = EventQuery { limit: 3, ..EventQuery::default() };
        loop {
            let page = storage.events(query.clone()).await.unwrap();
            lines.push(format!("page: {:?}", page.iter().map(event_line).collect::<Vec<_>>()));
            let Some(last) = page.last() else { break };
            query.after = Some(session_log_server::domain::cursor::EventCursor::at(last.event_id));
        }
        let (_, losses) = storage
            .events_and_losses(EventQuery { session_token: Some("ws_a".into()), limit: 1, ..EventQuery::default() })
            .await
            .unwrap();
        lines.push(format!("losses ws_a: {losses:?}"));
        for (name, query) in [
            ("all", SessionQuery { limit: 100, ..SessionQuery::default() }),
            (
                "ada",
                SessionQuery { student_email: Some("Ada@Example.com".into()), limit: 100, ..SessionQuery::default() },
            ),
            ("two", SessionQuery { limit: 2, ..SessionQuery::default() }),
        ] {
            let mut rows = storage.sessions(query).await.unwrap();
            // Sessions seen in the same millisecond tie on `last_seen`; compare them as a set.
            rows.sort_by(|a, b| a.session_token.cmp(&b.session_token));
            let rows: Vec<String> = rows
                .iter()
                .map(|r| {
                    let s = &r.summary;
                    format!(
                        "{} {:?} events={} errors={:?} step={:?} seq={}/{:?}",
                        r.session_token,
                        r.student_email,
                        s.events,
                        s.errors_by_type,
                        s.current_step,
                        s.seq_count,
                        s.max_seq
                    )
                })
                .collect();
            lines.push(format!(
                "sessions {name}: {}",
                if name == "two" { rows.len().to_string() } else { format!("{rows:?}") }
            ));
        }

        let alert = |id: &str, opened: &str| Alert {
            id: id.into(),
            rule: Rule::ErrorBurst,
            severity: Severity::Warning,
            status: AlertStatus::Open,
            session_tokens: vec!["ws_a".into()],
            student_emails: vec![],
            error_type: None,
            endpoint: None,
            step: None,
            step_name: None,
            typical_ms: None,
            typical_from_earlier_runs: false,
            message: "5 errors within 2m".into(),
            count: 5,
            sessions: 1,
            opened_at: opened.into(),
            last_seen_at: opened.into(),
            resolved_at: None,
            acknowledged_at: None,
            address: None,
            muted_at: None,
            workshop: None,
            room: None,
            help: None,
            evidence: None,
        };
        let in_room = Alert {
            workshop: Some("voice".into()),
            room: Some("K7PQ2X".into()),
            ..alert("a2", "2026-12-07T10:01:00.000Z")
        };
        let changes = vec![
            AlertChange { kind: ChangeKind::Opened, alert: alert("a1", "2026-12-07T10:00:00.000Z") },
            AlertChange { kind: ChangeKind::Opened, alert: in_room },
        ];
        let logged = storage.record_alert_changes(changes).await.unwrap();
        lines.push(format!("alerts logged: {}", logged.len()));
        let acked = storage.acknowledge_alert("a1".into(), AlertAction::Acknowledge, "2026-12-07T10:02:00.000Z".into());
        let acked = acked.await.unwrap().unwrap();
        lines.push(format!("acknowledged: {:?} logged={}", acked.alert.acknowledged_at, acked.change.is_some()));
        let again = storage.acknowledge_alert("a1".into(), AlertAction::Acknowledge, "2026-12-07T10:03:00.000Z".into());
        lines.push(format!("acknowledged again: logged={}", again.await.unwrap().unwrap().change.is_some()));
        let missing =
            storage.acknowledge_alert("nope".into(), AlertAction::Acknowledge, "2026-12-07T10:03:00.000Z".into());
        lines.push(format!("no such alert: {:?}", missing.await.unwrap().is_none()));
        let reopened = vec![AlertChange { kind: ChangeKind::Updated, alert: alert("a1", "2026-12-07T10:00:00.000Z") }];
        let reopened = storage.record_alert_changes(reopened).await.unwrap();
        lines.push(format!("update keeps the acknowledgement: {:?}", reopened[0].1.alert.acknowledged_at));
        let listed = storage.alerts(AlertQuery { limit: 10, ..AlertQuery::default() }).await.unwrap();
        lines.push(format!("alerts: {:?}", listed.iter().map(|a| (&a.id, a.status)).collect::<Vec<_>>()));
        let since = AlertQuery { since: Some("2026-12-07T10:00:30.000Z".into()), limit: 10, ..AlertQuery::default() };
        lines.push(format!(
            "alerts since: {:?}",
            storage.alerts(since).await.unwrap().iter().map(|a| &a.id).collect::<Vec<_>>()
        ));
        let ids = |alerts: Vec<Alert>| alerts.into_iter().map(|a| a.id).collect::<Vec<_>>();
        let by_room = AlertQuery { rooms: Some(vec!["K7PQ2X".into()]), limit: 10, ..AlertQuery::default() };
        let no_rooms = AlertQuery { rooms: Some(vec![]), limit: 10, ..AlertQuery::default() };
        let by_workshop = AlertQuery { workshop: Some("default".into()), limit: 10, ..AlertQuery::default() };
        let by_id = AlertQuery { id: Some("a2".into()), limit: 10, ..AlertQuery::default() };
        let placed = [
            ("alerts of room K7PQ2X", ids(storage.alerts(by_room).await.unwrap()), vec!["a2"]),
            ("alerts of no room", ids(storage.alerts(no_rooms).await.unwrap()), vec![]),
            ("alerts of default", ids(storage.alerts(by_workshop).await.unwrap()), vec!["a1"]),
            ("alert a2", ids(storage.alerts(by_id).await.unwrap()), vec!["a2"]),
        ];
        for (what, found, expected) in placed {
            assert_eq!(found, expected, "{what} on {backend:?}");
            lines.push(format!("{what}: {found:?}"));
        }
        // A help request: found by its session, claimed, and read back with its lifecycle.
        let help = Alert {
            rule: Rule::HelpRequest,
            session_tokens: vec!["ws_h".into()],
            workshop: Some("voice".into()),
            room: Some("K7PQ2X".into()),
            ..alert("h1", "2026-12-07T10:05:00.000Z")
        };
        storage.record_alert_changes(vec![AlertChange { kind: ChangeKind::Opened, alert: help }]).await.unwrap();
        let claim = AlertAction::Help(HelpChange::Claim { by: "Alex".into(), note: Some("on my way".into()) });
        let claimed = storage.acknowledge_alert("h1".into(), claim, "2026-12-07T10:06:00.000Z".into());
        let claimed = claimed.await.unwrap().unwrap();
        lines.push(format!("claimed: logged={} help={:?}", claimed.change.is_some(), claimed.alert.help));
        let of_session = AlertQuery { session: Some("ws_h".into()), limit: 10, ..AlertQuery::default() };
        let found = storage.alerts(of_session).await.unwrap();
        assert_eq!(ids(found.clone()), vec!["h1"], "the help request of ws_h on {backend:?}");
        lines.push(format!("help of ws_h: {:?}", found[0].help));
        let of_other = AlertQuery { session: Some("ws_a".into()), limit: 10, ..AlertQuery::default() };
        assert_eq!(ids(storage.alerts(of_other).await.unwrap()), Vec::<String>::new(), "{backend:?}");
        // Notices: read by room while they have not expired, newest first.
        for (message, expires) in [
            ("old", "2026-12-07T09:00:00.000Z"),
            ("first", "2026-12-07T11:00:00.000Z"),
            ("second", "2026-12-07T11:00:00.000Z"),
        ] {
            let notice = NewNotice {
                room: "K7PQ2X".into(),
                message: message.into(),
                posted_by: "instructor".into(),
                posted_at: "2026-12-07T08:00:00.000Z".into(),
                expires_at: expires.into(),
            };
            storage.post_notice(notice).await.unwrap();
        }
        let current = storage.notices("K7PQ2X".into(), "2026-12-07T10:00:00.000Z".into(), 20).await.unwrap();
        let messages: Vec<&str> = current.iter().map(|n| n.message.as_str()).collect();
        assert_eq!(messages, vec!["second", "first"], "{backend:?}");
        assert!(storage.notices("OTHER1".into(), "2026-12-07T10:00:00.000Z".into(), 20).await.unwrap().is_empty());
        lines.push(format!("notices: {messages:?}"));
        let changes = storage.alert_changes(0, 100).await.unwrap();
        lines.push(format!("changes: {:?}", changes.iter().map(|(_, c)| (c.kind, &c.alert.id)).collect::<Vec<_>>()));
        let newest = storage.newest_alert_change().await.unwrap();
        lines.push(format!("newest change is the last: {}", newest == changes.last().unwrap().0));

        // Purge everything in batches of 4: oldest first by event_id.
        let cutoff = "9999-01-01T00:00:00.000Z".to_owned();
        for _ in 0..2 {
            let removed = storage.purge(cutoff.clone(), 4).await.unwrap();
            let left =
                storage.events(EventQuery { order: Order::Asc, limit: 100, ..EventQuery::default() }).await.unwrap();
            lines.push(format!(
                "purge 4: {removed:?}, first left: {}",
                left.first().map(event_line).unwrap_or_default()
            ));
        }
        lines.push(format!("delete Grace: {:?}", storage.delete_student("GRACE@example.com".into()).await.unwrap()));
        lines.push(format!("delete nobody: {:?}", storage.delete_student("nobody@example.com".into()).await.unwrap()));
        lines.push(format!("drift: {:?}", storage.summary_drift().await.unwrap()));
    });
    storage.close();
    lines
}

// Both backends answer the same scenario exactly alike.
#[test]
fn both_backends_answer_alike() {
    let sqlite = transcript(Backend::Sqlite);
    let postgres = transcript(Backend::Postgres);
    for (s, p) in sqlite.iter().zip(&postgres) {
        assert_eq!(s, p, "SQLite (left) and PostgreSQL (right) differ");
    }
    assert_eq!(sqlite.len(), postgres.len());
    // The purge went oldest first: ws_a's first four events, then ws_a 4, 5 and ws_b 0, 1.
    let purges: Vec<&String> = sqlite.iter().filter(|l| l.starts_with("purge")).collect();
    assert!(purges[0].ends_with("first left: ws_a navigation Some(4) Some(\"ada@example.com\")"), "{}", purges[0]);
    assert!(purges[1].ends_with("first left: ws_b navigation Some(2) None"), "{}", purges[1]);
}
