//! The room at a glance (`GET /api/report`, and the periodic report CSV): aggregates of the
//! session summaries of the sessions seen in a window. Never reads the events table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::domain::rows::SessionRow;
use crate::domain::summary::{quantile, Status};

/// How many error types `topErrors` lists.
pub const TOP_ERRORS: usize = 10;

/// `GET /api/report`'s answer. Counts are whole sessions' (every event of each session seen in
/// the window), so a session that straddles the window's edge counts all its events.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Always `true`.
    pub success: bool,
    /// When the report was made (ISO 8601 UTC with ms).
    pub generated_at: String,
    /// The window's start (sessions with an event at or after it), if given.
    pub since: Option<String>,
    /// The window's end (sessions with an event before it), if given.
    pub until: Option<String>,
    /// Sessions seen in the window (started).
    pub sessions: u64,
    /// Of those, sessions with an event within the active window (default the last 5 minutes).
    pub active_sessions: u64,
    /// Of those, sessions that completed.
    pub completed_sessions: u64,
    /// `completedSessions / sessions` (0 when there are none).
    pub completion_rate: f64,
    /// Events of those sessions.
    pub events: u64,
    /// Events by `eventType`.
    pub events_by_type: BTreeMap<String, u64>,
    /// The most frequent `errorType`s (at most [`TOP_ERRORS`]), with how many sessions each hit.
    pub top_errors: Vec<ErrorPattern>,
    /// Per step: sessions that reached it, and the median time spent on it.
    pub funnel: Vec<FunnelStep>,
    /// Per API endpoint: calls, failures and durations.
    pub api_calls: Vec<EndpointReport>,
}

/// One error type across the room.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorPattern {
    /// `errorType`.
    pub error_type: String,
    /// `error` events of that type.
    pub count: u64,
    /// Sessions with at least one.
    pub sessions: u64,
}

/// One step of the funnel.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunnelStep {
    /// The step number.
    pub step: i64,
    /// Its name, as a session that reached it named it (the last one read names it).
    pub step_name: Option<String>,
    /// Sessions that reached it.
    pub sessions: u64,
    /// Median over sessions of the time spent on it (ms), counting sessions that left it.
    pub median_time_ms: Option<i64>,
    /// The same median over the same workshop's earlier rooms (the last 10, within 90 days),
    /// when the report is of one room (`room=`) and they have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earlier_median_time_ms: Option<i64>,
}

/// One API endpoint across the room.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointReport {
    /// `endpoint`.
    pub endpoint: String,
    /// Calls.
    pub calls: u64,
    /// Failed calls.
    pub failed: u64,
    /// `failed / calls`.
    pub failure_rate: f64,
    /// Median duration (ms) of the calls that reported one (`duration`, `deploymentTime`, …).
    pub p50_ms: Option<f64>,
    /// 95th percentile duration (ms).
    pub p95_ms: Option<f64>,
}

/// The report folded one session at a time, so a caller can read the summaries page by page
/// and hold one page at once: memory grows with the distinct error types, steps and endpoints
/// (each bounded per summary), plus one number per session per step and per duration, never
/// with whole summaries.
#[derive(Debug, Clone)]
pub struct ReportFold {
    active_since: String,
    final_step: Option<i64>,
    sessions: u64,
    active_sessions: u64,
    completed_sessions: u64,
    events: u64,
    events_by_type: BTreeMap<String, u64>,
    /// Per error type: (events, sessions).
    errors: BTreeMap<String, (u64, u64)>,
    /// Per step: (latest name, sessions, time spent by each session that left it, ms).
    steps: BTreeMap<i64, (Option<String>, u64, Vec<i64>)>,
    /// Per endpoint: (calls, failed, durations in ms).
    endpoints: BTreeMap<String, (u64, u64, Vec<f64>)>,
}

impl ReportFold {
    /// An empty report: a session is active when its last event is at or after `active_since`
    /// (ISO 8601 UTC with ms); `final_step` completes sessions that reach it.
    pub fn new(active_since: String, final_step: Option<i64>) -> ReportFold {
        ReportFold {
            active_since,
            final_step,
            sessions: 0,
            active_sessions: 0,
            completed_sessions: 0,
            events: 0,
            events_by_type: BTreeMap::new(),
            errors: BTreeMap::new(),
            steps: BTreeMap::new(),
            endpoints: BTreeMap::new(),
        }
    }

    /// Adds one session seen in the window. The order of sessions does not matter, except that a
    /// step's name is the last one added.
    pub fn add(&mut self, row: &SessionRow) {
        let s = &row.summary;
        self.sessions += 1;
        match s.status(&self.active_since, self.final_step) {
            Status::Active => self.active_sessions += 1,
            Status::Completed => self.completed_sessions += 1,
            Status::Idle => {}
        }
        self.events += s.events;
        for (event_type, n) in &s.events_by_type {
            *entry(&mut self.events_by_type, event_type) += n;
        }
        for (error_type, n) in &s.errors_by_type {
            let entry = entry(&mut self.errors, error_type);
            entry.0 += n;
            entry.1 += 1;
        }
        for (step, stats) in &s.steps {
            let entry = self.steps.entry(*step).or_default();
            entry.1 += 1;
            if stats.left > 0 {
                entry.2.push(stats.spent_ms);
            }
            if let Some(name) = &stats.name {
                entry.0 = Some(name.clone());
            }
        }
        for (endpoint, stats) in &s.api_calls {
            let entry = entry(&mut self.endpoints, endpoint);
            entry.0 += stats.calls;
            entry.1 += stats.failed;
            entry.2.extend_from_slice(&stats.durations_ms);
        }
    }

    /// The report of the sessions added, made at `generated_at` for `window` (`since`, `until`).
    pub fn finish(self, generated_at: String, window: (Option<String>, Option<String>)) -> Report {
        let completion_rate =
            if self.sessions > 0 { self.completed_sessions as f64 / self.sessions as f64 } else { 0.0 };
        let mut top: Vec<ErrorPattern> = self
            .errors
            .into_iter()
            .map(|(error_type, (count, sessions))| ErrorPattern { error_type, count, sessions })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then(b.sessions.cmp(&a.sessions)));
        top.truncate(TOP_ERRORS);
        let funnel = self
            .steps
            .into_iter()
            .map(|(step, (step_name, sessions, mut spent))| {
                spent.sort_unstable();
                let median = (!spent.is_empty()).then(|| spent[(spent.len() - 1) / 2]);
                FunnelStep { step, step_name, sessions, median_time_ms: median, earlier_median_time_ms: None }
            })
            .collect();
        let api_calls = self
            .endpoints
            .into_iter()
            .map(|(endpoint, (calls, failed, mut durations))| {
                durations.sort_by(f64::total_cmp);
                EndpointReport {
                    endpoint,
                    calls,
                    failed,
                    failure_rate: if calls == 0 { 0.0 } else { failed as f64 / calls as f64 },
                    p50_ms: quantile(&durations, 0.5),
                    p95_ms: quantile(&durations, 0.95),
                }
            })
            .collect();
        Report {
            success: true,
            generated_at,
            since: window.0,
            until: window.1,
            sessions: self.sessions,
            active_sessions: self.active_sessions,
            completed_sessions: self.completed_sessions,
            completion_rate,
            events: self.events,
            events_by_type: self.events_by_type,
            top_errors: top,
            funnel,
            api_calls,
        }
    }
}

/// The entry of `key` in `map`, allocating the key only when it is new.
fn entry<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// The periodic report's file: `reports/report.csv` in the database's folder. One row per report;
/// the header is written when the file is created.
pub fn csv_path(db_path: &Path) -> PathBuf {
    db_path.parent().unwrap_or(Path::new(".")).join("reports").join("report.csv")
}

/// The periodic report file's columns.
pub const CSV_HEADER: [&str; 13] = [
    "generated_at",
    "since",
    "sessions",
    "active_sessions",
    "completed_sessions",
    "completion_rate",
    "events",
    "errors",
    "api_calls",
    "api_failure_rate",
    "top_error",
    "top_error_sessions",
    "events_by_type",
];

/// Appends `report` as one row to the CSV file at `path` (creating it and its folder, with the
/// header, when absent). Errors: the folder or file cannot be created or written.
pub fn append_csv(path: &Path, report: &Report) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let new = !path.exists();
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut writer = csv::Writer::from_writer(file);
    if new {
        writer.write_record(CSV_HEADER)?;
    }
    let api_calls: u64 = report.api_calls.iter().map(|e| e.calls).sum();
    let api_failed: u64 = report.api_calls.iter().map(|e| e.failed).sum();
    let top = report.top_errors.first();
    let row = [
        report.generated_at.clone(),
        report.since.clone().unwrap_or_default(),
        report.sessions.to_string(),
        report.active_sessions.to_string(),
        report.completed_sessions.to_string(),
        format!("{:.4}", report.completion_rate),
        report.events.to_string(),
        report.events_by_type.get("error").copied().unwrap_or(0).to_string(),
        api_calls.to_string(),
        format!("{:.4}", if api_calls == 0 { 0.0 } else { api_failed as f64 / api_calls as f64 }),
        top.map(|e| e.error_type.clone()).unwrap_or_default(),
        top.map(|e| e.sessions.to_string()).unwrap_or_default(),
        serde_json::to_string(&report.events_by_type).unwrap_or_default(),
    ];
    writer.write_record(row.iter().map(|cell| crate::domain::export::escape_formula(cell).into_owned()))?;
    writer.flush()?;
    Ok(())
}
