//! Rooms, against a real server on each backend: an admin creates rooms of two workshops; a
//! session joins the room whose code it sent, else its workshop's one open room, else the
//! lobby, and keeps its first room; `room=` and `workshop=` limit the instructors' reads to it.

#[macro_use]
mod common;

use common::{admin, event, TestServer, ADMIN, TOKEN};
use serde_json::{json, Value};

/// Creates workshop `slug` and returns its write key.
fn workshop(server: &TestServer, slug: &str) -> String {
    let (status, created) = admin(server, "POST", "/api/workshops", &json!({"slug": slug, "name": slug}));
    assert_eq!(status, 201, "{created}");
    created["writeKey"].as_str().unwrap().to_owned()
}

/// Creates a room of workshop `slug` from `body` and returns it.
fn room(server: &TestServer, slug: &str, body: Value) -> Value {
    let (status, created) = admin(server, "POST", &format!("/api/workshops/{slug}/rooms"), &body);
    assert_eq!(status, 201, "{created}");
    created
}

/// Posts one action of session `token` with `key` and `room` at the top of the batch.
fn post(server: &TestServer, token: &str, key: Option<&str>, room: Option<&str>) {
    let mut body = json!({"events": [event(token, "action", json!({"actionName": "a"}))]});
    if let Some(key) = key {
        body["writeKey"] = json!(key);
    }
    if let Some(room) = room {
        body["room"] = json!(room);
    }
    let (status, answer) = server.post(&body);
    assert_eq!(status, 200, "{answer}");
}

/// The session tokens `GET /api/sessions?{filter}` answers, sorted.
fn sessions(server: &TestServer, filter: &str) -> Vec<String> {
    let answer = server.read(&format!("/api/sessions?{filter}"));
    let mut tokens: Vec<String> =
        answer["sessions"].as_array().unwrap().iter().map(|s| s["sessionToken"].as_str().unwrap().to_owned()).collect();
    tokens.sort();
    tokens
}

/// Posts, in `room`, three sessions that each spent `spent_ms` on step 1 (by their own
/// timestamps) before moving to step 2.
fn earlier_run(server: &TestServer, key: &str, room: &str, prefix: &str, spent_ms: i64) {
    let at = |ms: i64| {
        let t = 1_796_000_000_000 + ms;
        format!("2026-12-01T09:{:02}:{:02}.{:03}Z", (t / 60_000) % 60, (t / 1000) % 60, t % 1000)
    };
    let mut events = Vec::new();
    for n in 0..3 {
        let token = format!("{prefix}_{n}");
        events.push(event(
            &token,
            "navigation",
            json!({"to": 1, "currentStep": 1, "stepName": "Provision", "timestamp": at(0)}),
        ));
        events.push(event(&token, "navigation", json!({"to": 2, "currentStep": 2, "timestamp": at(spent_ms)})));
    }
    let (status, answer) = server.post(&json!({"writeKey": key, "room": room, "events": events}));
    assert_eq!(status, 200, "{answer}");
}

on_both_backends! {
    // A room's events are read session by session: paged with cursors, in both orders and with
    // a type filter, they are exactly the room's events in order, none of another room's.
    fn a_rooms_events_page_through_in_order(backend) {
        let server = TestServer::on_with(backend, |c| {
            c.admin_tokens = vec![ADMIN.into()];
            c.rate_limit_session_per_sec = 0;
        });
        let voice = workshop(&server, "voice-ai");
        let code = |room: &Value| room["code"].as_str().unwrap().to_owned();
        let a = code(&room(&server, "voice-ai", json!({"name": "A"})));
        let b = code(&room(&server, "voice-ai", json!({"name": "B"})));
        // Interleaved batches: events of A's three sessions and B's one alternate in event_id.
        for round in 0..10 {
            for (token, room) in [("ws_a1", &a), ("ws_a2", &a), ("ws_b1", &b), ("ws_a3", &a)] {
                let kind = if round % 3 == 0 { "error" } else { "action" };
                let body = json!({"writeKey": voice, "room": room,
                    "events": [event(token, kind, json!({"n": round})), event(token, "action", json!({"m": round}))]});
                let (status, answer) = server.post(&body);
                assert_eq!(status, 200, "{answer}");
            }
        }
        let all = server.read("/api/session-log?limit=1000&order=asc")["events"].as_array().unwrap().clone();
        for (filter, order) in [("", "asc"), ("", "desc"), ("&eventType=error", "desc"), ("&eventType=error", "asc")] {
            let mut expected: Vec<i64> = all
                .iter()
                .filter(|e| e["session_token"].as_str().unwrap().starts_with("ws_a"))
                .filter(|e| filter.is_empty() || e["event_type"] == "error")
                .map(|e| e["event_id"].as_i64().unwrap())
                .collect();
            if order == "desc" {
                expected.reverse();
            }
            let mut got = Vec::new();
            let mut cursor = String::new();
            loop {
                let page = server.read(&format!("/api/session-log?room={a}&limit=7&order={order}{filter}{cursor}"));
                got.extend(page["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_i64().unwrap()));
                match page["nextCursor"].as_str() {
                    Some(next) => cursor = format!("&cursor={next}"),
                    None => break,
                }
                assert!(got.len() <= expected.len(), "more pages than events");
            }
            assert_eq!(got, expected, "room A, order {order}{filter}");
        }
        assert_eq!(server.read(&format!("/api/session-log?room={b}&limit=1000"))["count"], 20);
    }

    // An instructor moves lobby sessions into a room of their workshop; a session of another
    // workshop and an unknown token stay; reads by room follow at once, their events before and
    // after the move included; helper tokens may not.
    fn instructors_move_lobby_sessions_into_a_room(backend) {
        let server = TestServer::on_with(backend, |c| c.admin_tokens = vec![ADMIN.into()]);
        let voice = workshop(&server, "voice-ai");
        let pipes = workshop(&server, "pipelines");
        let code = |room: &Value| room["code"].as_str().unwrap().to_owned();
        let london = code(&room(&server, "voice-ai", json!({"name": "London", "opensAt": "2999-01-01T00:00:00Z"})));
        post(&server, "ws_lobby_1", Some(&voice), None);
        post(&server, "ws_lobby_2", Some(&voice), None);
        post(&server, "ws_pipes", Some(&pipes), None);
        assert!(sessions(&server, &format!("room={london}")).is_empty(), "no open room: the lobby");
        assert_eq!(sessions(&server, "room=lobby&workshop=voice-ai"), ["ws_lobby_1", "ws_lobby_2"]);
        let (status, answer) = admin(&server, "POST", &format!("/api/rooms/{}/sessions", london.to_lowercase()),
            &json!({"sessionTokens": ["ws_lobby_1", "ws_lobby_2", "ws_pipes", "ws_nobody"]}));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["moved"].as_array().unwrap().len(), 2, "{answer}");
        assert_eq!(answer["notMoved"], json!(["ws_pipes", "ws_nobody"]), "{answer}");
        assert_eq!(sessions(&server, &format!("room={london}")), ["ws_lobby_1", "ws_lobby_2"]);
        assert_eq!(sessions(&server, "workshop=pipelines"), ["ws_pipes"]);
        // Their events follow them, and a later event (sent without a code) lands in the room.
        post(&server, "ws_lobby_1", Some(&voice), None);
        let events = server.read(&format!("/api/session-log?room={london}&limit=100"));
        let mut tokens: Vec<&str> =
            events["events"].as_array().unwrap().iter().map(|e| e["session_token"].as_str().unwrap()).collect();
        tokens.sort();
        assert_eq!(tokens, ["ws_lobby_1", "ws_lobby_1", "ws_lobby_2"], "{events}");
        // The lobby is what is left: by workshop, or every workshop's.
        assert!(sessions(&server, "room=lobby&workshop=voice-ai").is_empty());
        assert_eq!(sessions(&server, "room=Lobby"), ["ws_pipes"]);
        let lobby = server.read("/api/session-log?room=lobby&limit=100");
        assert_eq!(lobby["count"], 1, "{lobby}");
        assert_eq!(lobby["events"][0]["session_token"], "ws_pipes", "{lobby}");
        assert_eq!(server.read("/api/alerts?room=lobby")["alerts"], json!([]));
        let (status, answer) = admin(&server, "POST", "/api/rooms/ZZZZZZ/sessions", &json!({"sessionTokens": ["ws_lobby_1"]}));
        assert_eq!(status, 404, "{answer}");
        let (status, answer) = admin(&server, "POST", &format!("/api/rooms/{london}/sessions"), &json!({"sessionTokens": []}));
        assert_eq!(status, 400, "{answer}");
        let (status, made) = admin(&server, "POST", "/api/tokens", &json!({"name": "Sam", "role": "instructor", "rooms": [london]}));
        assert_eq!(status, 201, "{made}");
        let answer = server.request("POST", &format!("/api/rooms/{london}/sessions"),
            &[("Authorization", &format!("Bearer {}", made["token"].as_str().unwrap())), ("Content-Type", "application/json")],
            json!({"sessionTokens": ["ws_lobby_1"]}).to_string().as_bytes());
        assert_eq!(answer.status, 403, "{}", answer.text);
        // A helper token never reads a lobby.
        let answer = server.request("GET", "/api/sessions?room=lobby",
            &[("Authorization", &format!("Bearer {}", made["token"].as_str().unwrap()))], b"");
        assert_eq!(answer.status, 403, "{}", answer.text);
    }

    // A new room is judged against its workshop's earlier rooms: its report shows their median
    // beside its own, and a student who sits on a step longer than twice that median is stuck
    // "usually … here in earlier runs"; another workshop's rooms do not count.
    fn a_new_room_is_paced_by_earlier_runs(backend) {
        let server = TestServer::on_with(backend, |c| {
            c.admin_tokens = vec![ADMIN.into()];
            c.alert_tick = std::time::Duration::from_millis(50);
            c.rate_limit_session_per_sec = 0;
            c.alert_rules.stuck_after = std::time::Duration::from_millis(100);
        });
        let voice = workshop(&server, "voice-ai");
        let pipes = workshop(&server, "pipelines");
        let code = |room: &Value| room["code"].as_str().unwrap().to_owned();
        let monday = code(&room(&server, "voice-ai", json!({"name": "Monday"})));
        let other = code(&room(&server, "pipelines", json!({"name": "Elsewhere"})));
        let tuesday = code(&room(&server, "voice-ai", json!({"name": "Tuesday"})));
        earlier_run(&server, &voice, &monday, "ws_mon", 400);
        earlier_run(&server, &pipes, &other, "ws_other", 90_000);
        let step = json!({"currentStep": 1, "stepName": "Provision"});
        let (status, answer) = server.post(&json!({"writeKey": voice, "room": tuesday,
            "events": [event("ws_tue", "navigation", step)]}));
        assert_eq!(status, 200, "{answer}");

        let report = server.read(&format!("/api/report?room={tuesday}"));
        let funnel = report["funnel"].as_array().unwrap();
        let first = funnel.iter().find(|s| s["step"] == 1).expect("step 1");
        assert_eq!(first["earlierMedianTimeMs"], 400, "Monday's median, not the other workshop's: {report}");
        assert!(first["medianTimeMs"].is_null(), "nobody in Tuesday left step 1 yet: {report}");
        assert!(server.read(&format!("/api/report?room={monday}"))["funnel"][0].get("earlierMedianTimeMs").is_none(),
            "the first run has no earlier one");

        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let stuck = loop {
            let alerts = server.read(&format!("/api/alerts?room={tuesday}"))["alerts"].as_array().unwrap().clone();
            if let Some(stuck) = alerts.iter().find(|a| a["rule"] == "stuck") {
                break stuck.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no stuck alert within 10 s: {alerts:#?}");
            // The student is still there (active), on the same step.
            server.post_all(vec![event("ws_tue", "action", json!({"actionName": "retry", "currentStep": 1}))]);
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert_eq!((stuck["typicalMs"].as_i64(), stuck["typicalFromEarlierRuns"].as_bool()), (Some(400), Some(true)), "{stuck}");
        let message = stuck["message"].as_str().unwrap();
        assert!(message.contains("here in earlier runs)"), "{message}");
        assert_eq!(stuck["room"], tuesday.as_str());
    }

    // Sessions land in the room of their code (typed any way), else in their workshop's one open
    // room, else in the lobby; a later code does not move them; reads by room and workshop see
    // only theirs, and an unknown room is a 404.
    fn sessions_join_rooms_and_reads_follow_them(backend) {
        let server = TestServer::on_with(backend, |c| c.admin_tokens = vec![ADMIN.into()]);
        let voice = workshop(&server, "voice-ai");
        let pipes = workshop(&server, "pipelines");
        let london = room(&server, "voice-ai", json!({"name": "London, 7 Dec"}));
        let tomorrow = room(&server, "voice-ai", json!({"name": "Paris, 8 Dec", "opensAt": "2999-01-01T09:00:00Z"}));
        let berlin = room(&server, "pipelines", json!({"name": "Berlin", "closesAt": "2999-01-01T00:00:00+01:00"}));
        let code = |room: &Value| room["code"].as_str().unwrap().to_owned();
        let (london, tomorrow, berlin) = (code(&london), code(&tomorrow), code(&berlin));
        assert!(london.len() == 6 && !london.contains(['0', 'O', '1', 'I', 'L']), "{london}");

        let typed = format!("{}-{}", tomorrow[..3].to_lowercase(), &tomorrow[3..]);
        post(&server, "ws_paris", Some(&voice), Some(&typed));
        post(&server, "ws_london", Some(&voice), None);
        post(&server, "ws_london", Some(&voice), Some(&tomorrow));
        post(&server, "ws_berlin", Some(&pipes), Some(&london));
        post(&server, "ws_keyless", None, Some(&london));

        assert_eq!(sessions(&server, &format!("room={london}")), ["ws_london"], "the one open room; the first room kept");
        assert_eq!(sessions(&server, &format!("room={}", tomorrow.to_lowercase())), ["ws_paris"], "the code sent");
        assert_eq!(sessions(&server, &format!("room={berlin}")), ["ws_berlin"], "another workshop's code is ignored");
        assert_eq!(sessions(&server, "workshop=voice-ai"), ["ws_london", "ws_paris"]);
        assert_eq!(sessions(&server, "workshop=default"), ["ws_keyless"], "keyless events stay in default");
        assert_eq!(sessions(&server, "").len(), 4);
        let listed = server.read(&format!("/api/sessions?room={london}"));
        assert_eq!((&listed["sessions"][0]["room"], &listed["sessions"][0]["workshop"]), (&json!(london), &json!("voice-ai")));
        let listed = server.read("/api/sessions?workshop=default");
        assert_eq!(listed["sessions"][0]["workshop"], "default");
        assert!(listed["sessions"][0].get("room").is_none(), "the lobby: {listed}");

        let events = server.read(&format!("/api/session-log?room={tomorrow}"));
        let tokens: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["session_token"].as_str().unwrap()).collect();
        assert_eq!(tokens, ["ws_paris"], "{events}");
        let events = server.read(&format!("/api/session-log?room={london}&workshop=voice-ai"));
        assert_eq!(events["count"], 2, "both of ws_london's events: {events}");
        let events = server.read(&format!("/api/session-log?room={london}&workshop=pipelines"));
        assert_eq!(events["count"], 0, "{events}");

        let unknown = server.request("GET", "/api/sessions?room=ZZZZZZ", &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
        assert_eq!(unknown.status, 404, "{}", unknown.text);
        assert!(unknown.text.contains("ZZZZZZ"), "{}", unknown.text);

        let rooms = server.read("/api/rooms");
        let listed: Vec<(&str, bool)> = rooms["rooms"].as_array().unwrap().iter()
            .map(|r| (r["name"].as_str().unwrap(), r["open"].as_bool().unwrap())).collect();
        assert_eq!(listed, [("Berlin", true), ("London, 7 Dec", true), ("Paris, 8 Dec", false)], "{rooms}");
        assert_eq!(rooms["rooms"][2]["opensAt"], "2999-01-01T09:00:00.000Z");
        assert_eq!(rooms["rooms"][0]["closesAt"], "2998-12-31T23:00:00.000Z");
        assert_eq!(rooms["rooms"][0]["workshop"], "pipelines");
    }

    // Creating a room names what is wrong: an empty name, a time that is not RFC 3339, an
    // unknown workshop, a token that is not an admin's.
    fn room_creation_refuses_bad_input(backend) {
        let server = TestServer::on_with(backend, |c| c.admin_tokens = vec![ADMIN.into()]);
        workshop(&server, "voice-ai");
        let (status, answer) = admin(&server, "POST", "/api/workshops/voice-ai/rooms", &json!({"name": "  "}));
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("name"), "{answer}");
        let (status, answer) =
            admin(&server, "POST", "/api/workshops/voice-ai/rooms", &json!({"name": "x", "opensAt": "tomorrow"}));
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("opensAt"), "{answer}");
        let (status, answer) = admin(&server, "POST", "/api/workshops/nope/rooms", &json!({"name": "x"}));
        assert_eq!(status, 404, "{answer}");
        let answer = server.request(
            "POST",
            "/api/workshops/voice-ai/rooms",
            &[("Authorization", &format!("Bearer {TOKEN}")), ("Content-Type", "application/json")],
            br#"{"name": "x"}"#,
        );
        assert_eq!(answer.status, 403, "{}", answer.text);
        assert_eq!(server.read("/api/rooms")["rooms"], json!([]));
    }
}
