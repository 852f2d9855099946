//! The facts of one event: the few fields of its `eventData` that the summaries and the alert
//! rules read, taken once at ingest (the reference's event shapes define them).

use serde::Deserialize;
use serde_json::value::RawValue;

/// The fields of one event's `eventData` that summaries use, read leniently: a field of an
/// unexpected type counts as absent. Field names are the reference's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFacts {
    /// The step the student is on after this event: `to` of a navigation, else `currentStep`.
    pub step: Option<i64>,
    /// That step's name: `toStepName` of a navigation, else `stepName`.
    pub step_name: Option<String>,
    /// `errorType` of an `error` event (`"unknown"` when absent).
    pub error_type: Option<String>,
    /// `endpoint` of an `api_call` event (`"unknown"` when absent).
    pub endpoint: Option<String>,
    /// An `api_call` that failed: `success: false`, or a `status` outside 100–399.
    pub api_failed: bool,
    /// An `api_call`'s duration (ms): the first number among `duration`, `durationMs`,
    /// `deploymentTime`, `responseTime`, `latencyMs`.
    pub duration_ms: Option<f64>,
    /// The client's `timestamp` (ms since the Unix epoch), when it is a valid RFC 3339 time.
    pub client_time_ms: Option<i64>,
    /// `droppedCount` of an `events_dropped` event.
    pub dropped: u64,
}

impl EventFacts {
    /// Reads the facts of an event of `event_type` from its `eventData` JSON text. Never fails:
    /// text that is not a JSON object gives empty facts (plus the type's defaults).
    pub fn read(event_type: &str, event_data: &str) -> EventFacts {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Fields<'a> {
            #[serde(borrow)]
            current_step: Option<&'a RawValue>,
            #[serde(borrow)]
            step_name: Option<&'a RawValue>,
            #[serde(borrow)]
            to: Option<&'a RawValue>,
            #[serde(borrow)]
            to_step_name: Option<&'a RawValue>,
            #[serde(borrow)]
            error_type: Option<&'a RawValue>,
            #[serde(borrow)]
            endpoint: Option<&'a RawValue>,
            #[serde(borrow)]
            status: Option<&'a RawValue>,
            #[serde(borrow)]
            success: Option<&'a RawValue>,
            #[serde(borrow)]
            duration: Option<&'a RawValue>,
            #[serde(borrow)]
            duration_ms: Option<&'a RawValue>,
            #[serde(borrow)]
            deployment_time: Option<&'a RawValue>,
            #[serde(borrow)]
            response_time: Option<&'a RawValue>,
            #[serde(borrow)]
            latency_ms: Option<&'a RawValue>,
            #[serde(borrow)]
            timestamp: Option<&'a RawValue>,
            #[serde(borrow)]
            dropped_count: Option<&'a RawValue>,
        }
        let fields: Fields = serde_json::from_str(event_data).unwrap_or_default();
        let string = |raw: Option<&RawValue>| raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok());
        let number = |raw: Option<&RawValue>| {
            raw.and_then(|r| serde_json::from_str::<f64>(r.get()).ok()).filter(|n| n.is_finite())
        };
        let whole = |raw: Option<&RawValue>| number(raw).filter(|n| n.fract() == 0.0 && *n >= 0.0).map(|n| n as i64);
        let navigation = event_type == session_log_protocol::event_type::NAVIGATION;
        let mut facts = EventFacts {
            step: if navigation { whole(fields.to).or(whole(fields.current_step)) } else { whole(fields.current_step) },
            step_name: if navigation {
                string(fields.to_step_name).or(string(fields.step_name))
            } else {
                string(fields.step_name)
            },
            client_time_ms: string(fields.timestamp)
                .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64),
            ..EventFacts::default()
        };
        match event_type {
            session_log_protocol::event_type::ERROR => {
                facts.error_type = Some(string(fields.error_type).unwrap_or_else(|| "unknown".into()));
            }
            session_log_protocol::event_type::API_CALL => {
                facts.endpoint = Some(string(fields.endpoint).unwrap_or_else(|| "unknown".into()));
                let success = fields.success.and_then(|r| serde_json::from_str::<bool>(r.get()).ok());
                let status = number(fields.status);
                facts.api_failed = success == Some(false) || status.is_some_and(|s| !(100.0..400.0).contains(&s));
                facts.duration_ms = [
                    fields.duration,
                    fields.duration_ms,
                    fields.deployment_time,
                    fields.response_time,
                    fields.latency_ms,
                ]
                .into_iter()
                .find_map(number)
                .filter(|d| *d >= 0.0);
            }
            session_log_protocol::EVENTS_DROPPED => {
                facts.dropped = whole(fields.dropped_count).unwrap_or(0) as u64;
            }
            _ => {}
        }
        facts
    }
}
