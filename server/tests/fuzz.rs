//! Property tests of the request parser and validator: thousands of arbitrary, mutated and
//! structurally random bodies; none may panic, and every answer must be a 2xx or a 4xx.

#[macro_use]
mod common;

use actix_web::ResponseError;
use proptest::prelude::*;
use serde_json::{json, Value};
use session_log_server::config::Config;
use session_log_server::domain::validate::parse_body;

/// A valid batch, the seed that mutations start from.
fn valid_batch() -> String {
    json!({"events": [
        {"sessionToken": "ws_1", "studentEmail": "a@example.com", "eventType": "navigation",
         "eventData": {"from": 1, "to": 2, "nested": {"list": [1, "two", null, true]}},
         "eventId": "01890a5d-ac96-774b-bcce-b302099a8057", "seq": 3},
        {"sessionToken": "ws_1", "eventType": "error", "eventData": {"errorMessage": "é ünïcödé ✓"}}
    ]})
    .to_string()
}

/// The outcome of one body: Ok, or the error's status, which must be 4xx.
fn check(body: &[u8]) -> Result<(), TestCaseError> {
    match parse_body(body, &Config::default().ingest_limits()) {
        Ok(_) => Ok(()),
        Err(error) => {
            let status = session_log_server::http::error::ApiError::from(error).status_code().as_u16();
            prop_assert!((400..500).contains(&status), "status {status} for {:?}", String::from_utf8_lossy(body));
            Ok(())
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z_ .@-]{0,60}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("sessionToken".to_owned()),
                    Just("eventType".to_owned()),
                    Just("eventData".to_owned()),
                    Just("events".to_owned()),
                    Just("eventId".to_owned()),
                    Just("seq".to_owned()),
                    Just("studentEmail".to_owned()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    // Arbitrary bytes are refused with a 4xx (or, by chance, accepted) and never panic.
    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..600)) {
        check(&body)?;
    }

    // A valid batch with bytes replaced, inserted, removed or cut off never panics the parser.
    #[test]
    fn mutated_valid_bodies(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8)) {
        let mut body = valid_batch().into_bytes();
        for (at, byte, kind) in edits {
            if body.is_empty() { break; }
            let i = at.index(body.len());
            match kind {
                0 => body[i] = byte,
                1 => body.insert(i, byte),
                2 => { body.remove(i); }
                _ => body.truncate(i),
            }
        }
        check(&body)?;
    }

    // Random JSON documents, with the protocol's field names mixed in, never panic the validator.
    #[test]
    fn structurally_random_json(value in json_value()) {
        check(value.to_string().as_bytes())?;
        check(json!({"events": [value.clone(), {"sessionToken": "ws_1", "eventType": "a", "eventData": value}]}).to_string().as_bytes())?;
    }
}

on_both_backends! {
    // The same kinds of bodies through the real HTTP server: every answer is 2xx or 4xx and it stays up.
    fn http_server_answers_mutated_bodies_with_2xx_or_4xx(backend) {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let server = common::TestServer::on_with(backend, |c| c.rate_limit_ip_per_sec = 0);
        let mut runner = TestRunner::deterministic();
        let strategy = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6);
        for _ in 0..300 {
            let edits = strategy.new_tree(&mut runner).unwrap().current();
            let mut body = valid_batch().into_bytes();
            for (at, byte) in edits {
                let i = at.index(body.len());
                body[i] = byte;
            }
            let answer = server.request("POST", "/api/session-log", &[("Content-Type", "application/json")], &body);
            assert!(
                (200..500).contains(&answer.status) && answer.status != 404,
                "{} for {:?}",
                answer.status,
                String::from_utf8_lossy(&body)
            );
            assert!(answer.json()["success"].is_boolean());
        }
        assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
    }
}
