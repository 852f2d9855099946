//! The pipeline's unit tests (native: `cargo test -p session-log-client`).

use super::Value as V;
use super::*;
use serde_json::{json, Value};
use session_log_protocol::Uuid;
use std::time::{Duration, UNIX_EPOCH};

fn session(steps: &[&str]) -> Session {
    let config = Config { steps: steps.iter().map(|s| s.to_string()).collect(), ..Config::default() };
    Session::new(config, "ws_test".into(), 0, "Mozilla/5.0 test".into())
}

const STEPS: &[&str] = &["Connect Accounts", "Choose Use Case", "Provision Services"];

/// The event a plan describes, as JSON, with the page's arguments `args` as JSON (a stand-in
/// for what `web` does with JavaScript values: details merged first, then the fields in order).
fn build(plan: &EventPlan, args: &[Value]) -> Value {
    let mut data = serde_json::Map::new();
    if let Some(Value::Object(details)) = plan.details.and_then(|i| args.get(i)) {
        data.extend(details.clone());
    }
    for (key, value) in &plan.fields {
        let value = match value {
            V::Text(s) => json!(s),
            V::Number(n) => json!(n),
            V::Bool(b) => json!(b),
            V::Null => Value::Null,
            V::Time(ms) => json!(httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(*ms as u64))),
            V::Arg(i) => args.get(*i).cloned().unwrap_or(Value::Null),
        };
        data.insert((*key).to_owned(), value);
    }
    json!({"sessionToken": plan.session_token, "eventType": plan.event_type, "eventData": data,
           "eventId": plan.event_id, "seq": plan.seq})
}

fn plan(s: &mut Session, kind: EventKind) -> EventPlan {
    s.plan(kind, 1_761_579_045_123.0, [7; 10]).unwrap()
}

// A generated token is `ws_` plus 128 bits as 32 hex digits, different for different bytes.
#[test]
fn session_token_carries_128_bits() {
    let a = session_token([0xab; 16]);
    assert_eq!(a, format!("ws_{}", "ab".repeat(16)));
    assert_ne!(a, session_token([0xac; 16]));
    assert!(session_log_protocol::check_session_token(&a).is_ok());
}

// Event ids are UUIDv7 and sort by the time they were logged.
#[test]
fn event_ids_are_time_ordered_uuid_v7() {
    let early = event_id(1_000.0, [0xff; 10]);
    let late = event_id(1_001.0, [0x00; 10]);
    assert_eq!(early.get_version_num(), 7);
    assert!(early < late);
    let mut s = session(STEPS);
    let planned = plan(&mut s, EventKind::Action { action_name: "x".into() });
    assert_eq!(Uuid::parse_str(&planned.event_id).unwrap().get_version_num(), 7);
    assert_eq!(planned.event_id, planned.event_id.to_lowercase());
}

// The client's number and hex writers agree with Rust's formatting.
#[test]
fn decimal_and_hex_digits() {
    for n in [0, 7, 10, 99, 1_000_000, u64::MAX] {
        assert_eq!(decimal(n), n.to_string());
        assert_eq!(hex16(n), format!("{n:016x}"));
    }
}

// Every event gets the reference's context fields, with the current step's name.
#[test]
fn context_fields_name_the_current_step() {
    let mut s = session(STEPS);
    s.current_step = 2;
    let event = build(&plan(&mut s, EventKind::Custom { event_type: "custom_event".into() }), &[]);
    assert_eq!(
        event["eventData"],
        json!({"currentStep": 2.0, "stepName": "Provision Services", "demoMode": false,
               "userAgent": "Mozilla/5.0 test", "timestamp": "Mon, 27 Oct 2025 15:30:45 GMT"})
    );
    assert_eq!(event["eventType"], "custom_event");
}

// Navigation names both steps and moves the current step.
#[test]
fn navigation_names_steps_and_moves_current_step() {
    let mut s = session(STEPS);
    let event = build(&plan(&mut s, EventKind::Navigation { from: 1.0, to: 2.0 }), &[]);
    let data = &event["eventData"];
    assert_eq!((data["from"].clone(), data["to"].clone()), (json!(1.0), json!(2.0)));
    assert_eq!(data["fromStepName"], "Choose Use Case");
    assert_eq!(data["toStepName"], "Provision Services");
    assert_eq!(data["currentStep"], 2.0, "the event is logged at the step it enters");
    assert_eq!(s.current_step, 2);
}

// A step outside `steps`, or not a whole number, has a null name and does not move the step.
#[test]
fn unknown_steps_have_null_names() {
    let mut s = session(STEPS);
    let event = build(&plan(&mut s, EventKind::Navigation { from: 2.0, to: 9.0 }), &[]);
    assert_eq!(event["eventData"]["toStepName"], Value::Null);
    assert_eq!(s.current_step, 9);
    let event = build(&plan(&mut s, EventKind::Navigation { from: 9.0, to: 1.5 }), &[]);
    assert_eq!(event["eventData"]["toStepName"], Value::Null);
    assert_eq!(s.current_step, 9);
}

// An API call succeeds with 2xx/3xx only, and its method is upper-cased.
#[test]
fn api_call_success_follows_status() {
    let mut s = session(STEPS);
    let kind = EventKind::ApiCall { endpoint: "/v1/models".into(), method: "get".into(), status: 200.0 };
    let data = build(&plan(&mut s, kind), &[])["eventData"].clone();
    assert_eq!(
        (&data["endpoint"], &data["method"], &data["status"], &data["success"]),
        (&json!("/v1/models"), &json!("GET"), &json!(200.0), &json!(true))
    );
    assert!(api_call_succeeded(304.0));
    assert!(!api_call_succeeded(401.0));
    assert!(!api_call_succeeded(0.0));
}

// Details are merged first: the function's own fields and then the context win over them.
#[test]
fn details_lose_to_arguments_and_context() {
    let mut s = session(STEPS);
    let kind = EventKind::Error { error_type: "deploy_failed".into(), error_message: "timeout".into(), stack: None };
    let details = json!({"errorType": "from details", "currentStep": 99, "functionName": "voice-handler"});
    let event = build(&plan(&mut s, kind), &[Value::Null, Value::Null, details]);
    let data = &event["eventData"];
    assert_eq!(data["errorType"], "deploy_failed");
    assert_eq!(data["errorMessage"], "timeout");
    assert_eq!(data["currentStep"], 0.0);
    assert_eq!(data["functionName"], "voice-handler");
    let state = plan(&mut s, EventKind::StateChange { state_name: "servicesReady".into() });
    let event = build(&state, &[Value::Null, json!(false), json!({"deep": [1]})]);
    assert_eq!(event["eventData"]["oldValue"], false);
    assert_eq!(event["eventData"]["newValue"], json!({"deep": [1]}));
    assert_eq!(state.details, None);
}

// A custom event type must pass the server's rule; a refused one takes no seq.
#[test]
fn custom_event_types_are_checked() {
    let mut s = session(STEPS);
    assert!(s.plan(EventKind::Custom { event_type: "drop table".into() }, 0.0, [0; 10]).is_err());
    assert!(s.plan(EventKind::Custom { event_type: String::new() }, 0.0, [0; 10]).is_err());
    assert_eq!(s.next_seq, 0);
    assert_eq!(plan(&mut s, EventKind::Custom { event_type: "custom.event-1".into() }).seq, 0);
}

// Sequence numbers increase by one per event from where the session left off.
#[test]
fn sequence_numbers_continue() {
    let mut s = Session::new(Config::default(), "ws_x".into(), 41, String::new());
    let a = plan(&mut s, EventKind::Action { action_name: "a".into() }).seq;
    let b = plan(&mut s, EventKind::Action { action_name: "b".into() }).seq;
    assert_eq!((a, b), (41, 42));
}

// The event's JSON is valid, escapes what the page typed, and keeps the shape the queue reads
// (token first, seq last).
#[test]
fn event_json_wraps_the_data() {
    let mut s = session(STEPS);
    s.config.student_email = Some("ada@example.com".into());
    s.config.student_name = Some("Ada \"the\" \\ Lovelace\n\u{1}".into());
    let planned = plan(&mut s, EventKind::Custom { event_type: "custom_event".into() });
    let json = planned.to_json(r#"{"a":1}"#);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["studentName"], "Ada \"the\" \\ Lovelace\n\u{1}");
    assert_eq!(v["eventData"], json!({"a": 1}));
    assert_eq!(v["seq"], 0);
    assert_eq!(v["eventId"], planned.event_id);
    assert!(json.starts_with(r#"{"sessionToken":"ws_test","#) && json.ends_with(r#","seq":0}"#), "{json}");
    let anonymous = Session::new(Config::default(), "ws_x".into(), 7, String::new()).plan(
        EventKind::Action { action_name: "é✓".into() },
        0.0,
        [0; 10],
    );
    let v: Value = serde_json::from_str(&anonymous.unwrap().to_json("{}")).unwrap();
    assert!(v.get("studentEmail").is_none());
}

// Sampling keeps or drops whole sessions, the same way every time, in proportion to the rate.
#[test]
fn sampling_is_per_session_and_proportional() {
    let tokens: Vec<String> = (0..10_000u64)
        .map(|n| session_token([n as u8, (n >> 8) as u8, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]))
        .collect();
    let kept = tokens.iter().filter(|t| sampled(t, 0.25)).count();
    assert!((2200..2800).contains(&kept), "{kept} of 10,000 at 0.25");
    assert!(tokens.iter().all(|t| sampled(t, 0.25) == sampled(t, 0.25)));
    assert!(tokens.iter().filter(|t| sampled(t, 0.25)).all(|t| sampled(t, 0.5)), "raising the rate only adds");
    assert!(tokens.iter().all(|t| sampled(t, 1.0) && !sampled(t, 0.0)));
}

// The privacy options are read like the others and checked.
#[test]
fn privacy_options() {
    let (config, _) = Config::default()
        .merged(vec![
            ("redact".into(), OptionValue::Flag(false)),
            ("redactKeys".into(), OptionValue::List(vec!["phoneNumber".into()])),
            ("sampleRate".into(), OptionValue::Number(0.5)),
            ("beforeSend".into(), OptionValue::Function),
        ])
        .unwrap();
    assert!(!config.redact);
    assert_eq!(config.sample_rate, 0.5);
    assert!(config.rules().redacts_key("PhoneNumber") && !config.rules().redacts_key("password"));
    assert!(Config::default().merged(vec![("sampleRate".into(), OptionValue::Number(1.5))]).is_err());
    assert!(Config::default().merged(vec![("beforeSend".into(), OptionValue::Text("x".into()))]).is_err());
}

// URLs split into origin, host and a path without query or fragment.
#[test]
fn url_parts_drop_query_and_fragment() {
    assert_eq!(
        url_parts("https://api.openai.com:443/v1/models?key=sk-x#top"),
        Some(("https://api.openai.com:443", "api.openai.com:443", "/v1/models"))
    );
    assert_eq!(url_parts("http://127.0.0.1:8080"), Some(("http://127.0.0.1:8080", "127.0.0.1:8080", "/")));
    assert_eq!(url_parts("http://h/#/step/2"), Some(("http://h", "h", "/")));
    assert_eq!(url_parts("/relative"), None);
}

// capture takes an object of kinds, each a boolean; null turns them all off.
#[test]
fn capture_option() {
    let kinds =
        OptionValue::Map(vec![("errors".into(), OptionValue::Flag(true)), ("fetch".into(), OptionValue::Flag(true))]);
    let (config, _) = Config::default().merged(vec![("capture".into(), kinds)]).unwrap();
    assert!(config.capture_errors && config.capture_fetch && !config.capture_history);
    let off = config
        .merged(vec![("capture".into(), OptionValue::Map(vec![("fetch".into(), OptionValue::Flag(false))]))])
        .unwrap()
        .0;
    assert!(off.capture_errors && !off.capture_fetch, "each kind on and off on its own");
    assert!(!off.merged(vec![("capture".into(), OptionValue::Null)]).unwrap().0.capture_errors);
    let bad = Config::default()
        .merged(vec![("capture".into(), OptionValue::Map(vec![("clicks".into(), OptionValue::Flag(true))]))]);
    assert!(bad.unwrap_err().contains("capture.clicks is not a kind of capture"));
}

// A warning is shown once per distinct text, and at most 64 in all.
#[test]
fn warnings_are_deduplicated_and_capped() {
    let mut w = Warnings::default();
    assert!(w.first("a"));
    assert!(!w.first("a"));
    for n in 0..100 {
        w.first(&decimal(n));
    }
    assert!(!w.first("new after the cap"));
}

// configure merges into the options in force; null restores a default; undefined keeps it.
#[test]
fn configure_merges_into_current_options() {
    let first = Config::default()
        .merged(vec![("endpoint".into(), OptionValue::Text("https://logs.example/api".into()))])
        .unwrap()
        .0;
    let (second, unknown) = first
        .merged(vec![
            ("studentEmail".into(), OptionValue::Text("ada@example.com".into())),
            ("steps".into(), OptionValue::Absent),
            ("endpont".into(), OptionValue::Text("/typo".into())),
        ])
        .unwrap();
    assert_eq!(second.endpoint, "https://logs.example/api", "the first call's endpoint stays");
    assert_eq!(second.student_email.as_deref(), Some("ada@example.com"));
    assert_eq!(unknown, ["endpont"]);
    let third = second.merged(vec![("endpoint".into(), OptionValue::Null)]).unwrap().0;
    assert_eq!(third.endpoint, DEFAULT_ENDPOINT);
    assert_eq!(third.student_email.as_deref(), Some("ada@example.com"));
    let refused = third.merged(vec![("maxBatchEvents".into(), OptionValue::Number(0.0))]);
    assert!(refused.unwrap_err().contains("maxBatchEvents"));
}

// Bad options are refused with a message naming the option.
#[test]
fn config_validation_names_the_option() {
    let bad = Config { max_batch_events: 0, ..Config::default() };
    assert!(bad.validate().unwrap_err().contains("maxBatchEvents"));
    let bad = Config { session_token: Some(String::new()), ..Config::default() };
    assert!(bad.validate().unwrap_err().contains("sessionToken"));
    let bad = Config { student_email: Some("not an email".into()), ..Config::default() };
    assert!(bad.validate().unwrap_err().contains("studentEmail"));
    assert_eq!(Config::default().validate(), Ok(()));
}

// Options are read by their JavaScript names; absent ones keep their defaults.
#[test]
fn options_set_by_javascript_name() {
    let mut config = Config::default();
    config.set("endpoint", OptionValue::Text("https://x/api/session-log".into())).unwrap();
    config.set("maxBatchEvents", OptionValue::Number(10.0)).unwrap();
    config.set("demoMode", OptionValue::Flag(true)).unwrap();
    config.set("steps", OptionValue::List(vec!["A".into(), "B".into()])).unwrap();
    config.set("studentEmail", OptionValue::Text(String::new())).unwrap();
    config.set("sessionToken", OptionValue::Absent).unwrap();
    assert_eq!(config.endpoint, "https://x/api/session-log");
    assert_eq!(config.max_batch_events, 10);
    assert!(config.demo_mode);
    assert_eq!(config.steps, ["A", "B"]);
    assert_eq!(config.student_email, None, "an empty email is anonymous");
    assert_eq!(config.flush_interval_ms, 1000);
    assert!(CONFIG_KEYS.iter().all(|k| Config::default().set(k, OptionValue::Absent).is_ok()));
}

// Wrong types and unknown names are refused with the option's name.
#[test]
fn bad_options_name_themselves() {
    let mut config = Config::default();
    let cases = [
        ("endpont", OptionValue::Text("/x".into()), "unknown option endpont"),
        ("maxBatchEvents", OptionValue::Text("5".into()), "maxBatchEvents must be a number"),
        ("flushIntervalMs", OptionValue::Number(1.5), "flushIntervalMs must be a whole number ≥ 0"),
        ("steps", OptionValue::Other("an object"), "steps must be an array of strings"),
        ("demoMode", OptionValue::Number(1.0), "demoMode must be a boolean"),
        ("studentName", OptionValue::Flag(true), "studentName must be a string"),
    ];
    for (key, value, expected) in cases {
        assert_eq!(config.set(key, value), Err(expected.to_owned()));
    }
    assert_eq!(config, Config::default(), "a refused option changes nothing");
}

fn event(n: usize, size: usize) -> String {
    format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(size))
}

// A batch is valid JSON holding the oldest events in order, and stays queued until finished.
#[test]
fn batch_holds_oldest_events_until_acknowledged() {
    let mut q = Queue::default();
    for n in 0..5 {
        q.push(n as u64, event(n, 1));
    }
    let batch = q.start_batch(3, 1 << 20).unwrap();
    let body: Value = serde_json::from_str(&batch.body).unwrap();
    let ns: Vec<u64> = body["events"].as_array().unwrap().iter().map(|e| e["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, vec![0, 1, 2]);
    assert_eq!(q.len(), 5);
    assert!(q.start_batch(3, 1 << 20).is_none(), "one batch in flight at a time");
    assert_eq!(q.finish_batch(), vec![0, 1, 2]);
    assert_eq!(q.len(), 2);
    let next: Value = serde_json::from_str(&q.start_batch(3, 1 << 20).unwrap().body).unwrap();
    assert_eq!(next["events"][0]["n"], 3);
}

// A failed batch is sent again first, whole, with nothing lost.
#[test]
fn released_batch_is_resent_first() {
    let mut q = Queue::default();
    for n in 0..4 {
        q.push(n as u64, event(n, 1));
    }
    let first = q.start_batch(2, 1 << 20).unwrap();
    q.release_batch();
    let again = q.start_batch(2, 1 << 20).unwrap();
    assert_eq!(first, again);
    assert_eq!(q.len(), 4);
}

// Batches stay under the byte limit, but an event larger than it still goes out alone.
#[test]
fn batches_respect_byte_limit() {
    let mut q = Queue::default();
    q.push(0, event(0, 400));
    q.push(1, event(1, 400));
    q.push(2, event(2, 2000));
    let first = q.start_batch(50, 800).unwrap();
    assert_eq!(first.count, 1, "two ~415-byte events and the envelope exceed 800 bytes");
    assert!(first.body.len() <= 800);
    q.finish_batch();
    assert_eq!(q.start_batch(50, 800).unwrap().count, 1);
    q.finish_batch();
    let big = q.start_batch(50, 800).unwrap();
    assert_eq!(big.count, 1);
    assert!(big.body.len() > 800);
    q.finish_batch();
    assert!(q.is_empty());
    assert_eq!(q.bytes(), 0);
}

// A batch is due at the event count or the byte size, whichever comes first.
#[test]
fn batch_is_due_by_count_or_bytes() {
    let mut q = Queue::default();
    q.push(0, event(0, 10));
    assert!(!q.is_due(2, 1 << 20));
    q.push(1, event(1, 10));
    assert!(q.is_due(2, 1 << 20));
    let mut q = Queue::default();
    q.push(0, event(0, 5000));
    assert!(q.is_due(50, 4096));
}

// Page-exit bodies cover every queued event, in order, each body under the byte limit.
#[test]
fn chunks_cover_the_queue_under_the_limit() {
    let mut q = Queue::default();
    for n in 0..10 {
        q.push(n, event(n as usize, 100));
    }
    q.start_batch(3, 1 << 20);
    let bodies = q.chunks(50, 400);
    let ns: Vec<u64> = bodies
        .iter()
        .flat_map(|b| {
            assert!(b.len() <= 400, "{}", b.len());
            let v: Value = serde_json::from_str(b).unwrap();
            v["events"].as_array().unwrap().iter().map(|e| e["n"].as_u64().unwrap()).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ns, (0..10).collect::<Vec<_>>(), "in-flight events are included: the page may die first");
}

// The dropped count rides on the next batch, and dropping skips the batch in flight.
#[test]
fn dropped_count_and_drop_oldest() {
    let mut q = Queue::default();
    for n in 0..4 {
        q.push(n, event(n as usize, 1));
    }
    let batch = q.start_batch_reporting(2, 1 << 20, 7).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&batch.body).unwrap()["dropped"], 7);
    assert_eq!(q.drop_oldest().map(|(id, _)| id), Some(2), "the batch in flight stays");
    assert_eq!(q.finish_batch(), vec![0, 1]);
    assert_eq!(q.len(), 1);
    let plain = q.start_batch(2, 1 << 20).unwrap();
    assert!(!plain.body.contains("dropped"));
}

// Backoff doubles per failure up to the cap, scaled by the jitter, and resets on success.
#[test]
fn backoff_doubles_with_full_jitter_and_caps() {
    let mut b = Backoff::new(1000, 60_000);
    let delays: Vec<u32> = (0..9).map(|_| b.next_delay_ms(0.999_999)).collect();
    assert_eq!(delays[..7], [999, 1999, 3999, 7999, 15999, 31999, 59999]);
    assert_eq!(delays[8], 59999);
    assert_eq!(b.next_delay_ms(0.0), 0);
    assert_eq!(b.next_delay_ms(0.5), 30_000);
    b.reset();
    assert_eq!(b.next_delay_ms(0.5), 500);
}

// With the default options, however long the outage, the next try is at most 8 s away (a
// server that comes back gets the queue within 8 s), and Retry-After can ask for longer.
#[test]
fn default_backoff_retries_within_8_s() {
    let config = Config::default();
    let mut b = Backoff::new(config.retry_base_ms, config.retry_max_ms);
    let delays: Vec<u32> = (0..40).map(|_| b.next_delay_ms(0.999_999)).collect();
    assert_eq!(delays[..4], [999, 1999, 3999, 7999]);
    assert!(delays.iter().all(|d| *d < 8000), "{delays:?}");
}

// Retry-After is read as seconds or as an HTTP date; anything else is ignored.
#[test]
fn retry_after_seconds_or_http_date() {
    let parse = |s: &str| {
        let at = httpdate::parse_http_date(s).ok()?;
        Some(at.duration_since(UNIX_EPOCH).ok()?.as_millis() as f64)
    };
    assert_eq!(retry_after_ms("2", 0.0, parse), Some(2000));
    let now = 784_111_777_000.0; // Sun, 06 Nov 1994 08:49:37 GMT
    assert_eq!(retry_after_ms("Sun, 06 Nov 1994 08:49:40 GMT", now, parse), Some(3000));
    assert_eq!(retry_after_ms("Sun, 06 Nov 1994 08:49:30 GMT", now, parse), Some(0));
    assert_eq!(retry_after_ms("soon", now, parse), None);
}

// Network errors, 408, 429 and 5xx are retried; other 4xx refuse the batch; 2xx delivers it.
#[test]
fn outcome_by_status() {
    assert_eq!(outcome(200), Outcome::Delivered);
    for status in [0, 408, 429, 500, 503] {
        assert_eq!(outcome(status), Outcome::Retry, "{status}");
    }
    for status in [400, 401, 413, 415] {
        assert_eq!(outcome(status), Outcome::Refused, "{status}");
    }
}

// `null` puts every option back to its default, whatever it was set to.
#[test]
fn null_restores_every_default() {
    let mut config = Config::default();
    let changed = vec![
        ("endpoint", OptionValue::Text("https://x/api".into())),
        ("steps", OptionValue::List(vec!["A".into()])),
        ("studentEmail", OptionValue::Text("a@example.com".into())),
        ("studentName", OptionValue::Text("Ada".into())),
        ("sessionToken", OptionValue::Text("ws_1234567890abcdef".into())),
        ("demoMode", OptionValue::Flag(true)),
        ("maxBatchEvents", OptionValue::Number(10.0)),
        ("maxBatchBytes", OptionValue::Number(2048.0)),
        ("flushIntervalMs", OptionValue::Number(5.0)),
        ("flushTimeoutMs", OptionValue::Number(5.0)),
        ("retryBaseMs", OptionValue::Number(5.0)),
        ("retryMaxMs", OptionValue::Number(5.0)),
        ("maxQueueEvents", OptionValue::Number(20.0)),
        ("maxQueueBytes", OptionValue::Number(4096.0)),
        ("redact", OptionValue::Flag(false)),
        ("redactKeys", OptionValue::List(vec!["pin".into()])),
        ("sampleRate", OptionValue::Number(0.5)),
        ("capture", OptionValue::Map(vec![("errors".into(), OptionValue::Flag(true))])),
        ("writeKey", OptionValue::Text("wk_1".into())),
        ("room", OptionValue::Text("K7PQ2X".into())),
    ];
    for (key, value) in changed {
        config.set(key, value).unwrap();
    }
    assert_ne!(config, Config::default());
    for key in CONFIG_KEYS {
        config.set(key, OptionValue::Null).unwrap();
    }
    assert_eq!(config, Config::default());
}
