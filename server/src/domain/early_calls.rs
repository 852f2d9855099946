//! The calls a page made before its WebAssembly module was ready, sent by the entry as one
//! beacon when the page was hidden or left first: `{"sessionToken": "ws_…", "calls": [[name,
//! args, at], …]}` (`at` in ms since the epoch; an `Error` argument arrives as its message). They
//! become the events the module would have made of them, in order, as a batch: the same
//! `eventType` and reference fields per function, the details' own fields under them, and
//! `currentStep` (moved by `setStep` and by a navigation's `to`), `stepName` and `timestamp` (the
//! call's time) as context; `configure({studentEmail, studentName, sessionToken, steps, writeKey,
//! room})` calls set what later events carry. Other calls (`optIn`, `flush`, …) make no event.
//! `success` and `timestamp` follow the module's rules (`api_call_succeeded`, `clock`). The page leaves
//! out calls that only its module may judge (a `beforeSend`, sampling or redaction option, an
//! `optOut`); the server redacts these events as any other.

use serde_json::{Map, Value};
use session_log_protocol::event_type;

/// The `writeKey` and `room` the calls' `configure` gave (the last of each), each `None` when
/// none did or the last set it to `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configured {
    /// `configure({writeKey})`.
    pub write_key: Option<String>,
    /// `configure({room})`.
    pub room: Option<String>,
}

/// The body's events as reference event objects (`{sessionToken, studentEmail?, studentName?,
/// eventType, eventData}`), in call order, and the credentials the last `configure` calls gave
/// (`writeKey`, `room`), each `None` when none did. `token` is the body's `sessionToken`
/// (a `configure({sessionToken})` among the calls replaces it for later calls). A call that is not
/// `[name, args, at]` (a string, an array, a number) makes no event; a value of the wrong type
/// goes through as it came, for validation to name.
pub fn events_of_calls(token: &Value, calls: &[Value]) -> (Vec<Value>, Configured) {
    let mut session = Session { token: token.clone(), ..Session::default() };
    let mut events = Vec::new();
    for call in calls {
        let Some([name, args, at]) = call.as_array().and_then(|c| <&[Value; 3]>::try_from(c.as_slice()).ok()) else {
            continue;
        };
        let (Some(name), Some(args)) = (name.as_str(), args.as_array()) else { continue };
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
        let (kind, details, fields): (Value, Option<Value>, Vec<(&str, Value)>) = match name {
            "configure" => {
                session.configure(args.first());
                continue;
            }
            "setStep" => {
                session.step_to(&arg(0));
                continue;
            }
            "logNavigation" => {
                session.step_to(&arg(1));
                let names = [("fromStepName", session.step_name(&arg(0))), ("toStepName", session.step_name(&arg(1)))];
                let mut fields = vec![("from", arg(0)), ("to", arg(1))];
                fields.extend(names);
                (event_type::NAVIGATION.into(), None, fields)
            }
            "logError" => {
                (event_type::ERROR.into(), Some(arg(2)), vec![("errorType", arg(0)), ("errorMessage", arg(1))])
            }
            "logAction" => (event_type::ACTION.into(), Some(arg(1)), vec![("actionName", arg(0))]),
            "logApiCall" => {
                let method = match arg(1) {
                    Value::String(m) => Value::String(m.to_ascii_uppercase()),
                    other => other,
                };
                let success = arg(2).as_f64().map(|s| Value::Bool(session_log_protocol::api_call_succeeded(s)));
                let mut fields = vec![("endpoint", arg(0)), ("method", method), ("status", arg(2))];
                fields.extend(success.map(|s| ("success", s)));
                (event_type::API_CALL.into(), Some(arg(3)), fields)
            }
            "logStateChange" => (
                event_type::STATE_CHANGE.into(),
                None,
                vec![("stateName", arg(0)), ("oldValue", arg(1)), ("newValue", arg(2))],
            ),
            "logSessionEvent" => (arg(0), Some(arg(1)), Vec::new()),
            _ => continue,
        };
        let mut data = match details {
            Some(Value::Object(own)) => own,
            Some(Value::Null) | None => Map::new(),
            Some(other) => Map::from_iter([("details".to_owned(), other)]),
        };
        for (field, value) in fields {
            data.insert(field.to_owned(), value);
        }
        data.insert("currentStep".into(), session.step.into());
        data.insert("stepName".into(), session.step_name(&session.step.into()));
        if let Some(time) = at.as_f64().and_then(super::clock::iso_of_ms) {
            data.insert("timestamp".into(), time.into());
        }
        let mut event = Map::new();
        event.insert("sessionToken".into(), session.token.clone());
        if let Some(email) = &session.student_email {
            event.insert("studentEmail".into(), email.clone());
        }
        if let Some(name) = &session.student_name {
            event.insert("studentName".into(), name.clone());
        }
        event.insert("eventType".into(), kind);
        event.insert("eventData".into(), Value::Object(data));
        events.push(Value::Object(event));
    }
    (events, session.credentials)
}

/// What the calls so far set: the token, the student, the step and the credentials.
#[derive(Default)]
struct Session {
    token: Value,
    student_email: Option<Value>,
    student_name: Option<Value>,
    step: u32,
    /// `configure({steps})`: the name of each step, by number.
    steps: Vec<Value>,
    credentials: Configured,
}

impl Session {
    /// A `configure(options)`: the options events carry (a `null` clears an optional one, as
    /// in the module).
    fn configure(&mut self, options: Option<&Value>) {
        let Some(Value::Object(options)) = options else { return };
        if let Some(token) = options.get("sessionToken").filter(|t| t.is_string()) {
            self.token = token.clone();
        }
        for (key, slot) in [("studentEmail", &mut self.student_email), ("studentName", &mut self.student_name)] {
            match options.get(key) {
                Some(Value::Null) => *slot = None,
                Some(value) => *slot = Some(value.clone()),
                None => {}
            }
        }
        match options.get("steps") {
            Some(Value::Array(names)) => self.steps.clone_from(names),
            Some(Value::Null) => self.steps.clear(),
            _ => {}
        }
        for (key, slot) in [("writeKey", &mut self.credentials.write_key), ("room", &mut self.credentials.room)] {
            match options.get(key) {
                Some(Value::String(value)) => *slot = Some(value.clone()),
                Some(Value::Null) => *slot = None,
                _ => {}
            }
        }
    }

    /// The name of step `step` (`configure({steps})[step]`), `null` when it has none.
    fn step_name(&self, step: &Value) -> Value {
        step.as_u64().and_then(|s| self.steps.get(usize::try_from(s).ok()?)).cloned().unwrap_or(Value::Null)
    }

    /// The step moves to `to` when it is a whole number from 0 to 2^32 - 1.
    fn step_to(&mut self, to: &Value) {
        if let Some(step) = to.as_f64().filter(|s| s.fract() == 0.0 && *s >= 0.0 && *s <= f64::from(u32::MAX)) {
            self.step = step as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Each log function's call becomes the event the module makes of it, step and student included.
    #[test]
    fn calls_become_the_modules_events() {
        let calls = json!([
            ["configure", [{"studentEmail": "ada@example.com", "writeKey": "wk_1", "room": "K7PQ2X", "endpoint": "/x",
                "steps": ["Intro", "Connect", "Deploy", "Test"]}], 1],
            ["setStep", [2], 1],
            ["logAction", ["clicked", {"button": "save", "actionName": "overridden"}], 1_765_152_000_000_u64],
            ["logNavigation", [2, 3], 1_765_152_000_001_u64],
            ["logError", ["TypeError", "x is undefined", "at line 3"], 1_765_152_000_002_u64],
            ["logApiCall", ["/v1/chat", "post", 503, null], 1_765_152_000_003_u64],
            ["logStateChange", ["voice", "off", {"on": true}], 1_765_152_000_004_u64],
            ["logSessionEvent", ["help_request", {"message": "stuck"}], 1_765_152_000_005_u64],
            ["optIn", [], 1],
            "not a call",
            ["logAction"]
        ]);
        let (events, credentials) = events_of_calls(&json!("ws_a"), calls.as_array().unwrap());
        assert_eq!(credentials, Configured { write_key: Some("wk_1".into()), room: Some("K7PQ2X".into()) });
        let types: Vec<&str> = events.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
        assert_eq!(types, ["action", "navigation", "error", "api_call", "state_change", "help_request"]);
        assert_eq!(
            events[0],
            json!({"sessionToken": "ws_a", "studentEmail": "ada@example.com", "eventType": "action",
                "eventData": {"button": "save", "actionName": "clicked", "currentStep": 2, "stepName": "Deploy",
                    "timestamp": "2025-12-08T00:00:00.000Z"}})
        );
        assert_eq!(events[1]["eventData"]["currentStep"], 3, "a navigation moves the step");
        assert_eq!(events[1]["eventData"]["fromStepName"], "Deploy");
        assert_eq!(events[1]["eventData"]["toStepName"], "Test");
        assert_eq!(events[2]["eventData"]["details"], "at line 3");
        assert_eq!(events[3]["eventData"]["method"], "POST");
        assert_eq!(events[3]["eventData"]["success"], false);
        assert_eq!(events[4]["eventData"]["newValue"], json!({"on": true}));
        assert_eq!(events[5]["eventData"]["message"], "stuck");
    }

    // A configure({sessionToken}) or a null student changes what later calls carry, not earlier ones.
    #[test]
    fn configure_applies_from_where_it_was_called() {
        let calls = json!([
            ["logAction", ["a"], 0],
            ["configure", [{"sessionToken": "ws_b", "studentName": "Ada"}], 0],
            ["logAction", ["b"], 0],
            ["configure", [{"studentName": null}], 0],
            ["logAction", ["c"], 0]
        ]);
        let (events, credentials) = events_of_calls(&json!("ws_a"), calls.as_array().unwrap());
        assert_eq!(credentials, Configured::default());
        assert_eq!(events[0]["sessionToken"], "ws_a");
        assert_eq!(events[1]["sessionToken"], "ws_b");
        assert_eq!(events[1]["studentName"], "Ada");
        assert!(events[2].get("studentName").is_none());
    }
}
