//! The storage boundary: one backend-neutral API ([`Storage`]) that every handler and background
//! task uses, over two backends that only translate it — [`sqlite`] (an embedded file, the
//! default) and [`postgres`] (a PostgreSQL server, selected by a `postgres://` URL).
//!
//! Invariants, on both backends:
//! - Events are committed in groups (many requests' rows in one transaction) and a request is
//!   answered only after its group commits: an acknowledged event is durable.
//! - Events are unique by `event_uuid`; storing one again is a no-op counted as a duplicate.
//! - `event_id` becomes visible in increasing order (SQLite: one writer per file; PostgreSQL:
//!   commits that assign ids are serialised across servers), so it serves as the position of the
//!   cursors of paging, export and the live tail: a reader never sees an id before a smaller one.
//! - A session's summary (see `crate::domain::summary`) equals the fold of its stored events in `event_id`
//!   order once [`Storage::flush_summaries`] returns; retention and deletion keep it so.
//! - A full write queue refuses at once ([`StoreError::Overloaded`]) instead of queueing without
//!   bound; a database that cannot be reached is [`StoreError::Unavailable`] until it can, and
//!   nothing is acknowledged meanwhile.
//!
//! No `rusqlite` or `tokio_postgres` type appears outside its backend's folder.

use std::sync::Arc;

use tokio::sync::watch;

pub use crate::domain::clock::{iso_ago, now_iso};
pub use crate::domain::rows::{EventRow, SessionRow};

use crate::config::Config;
use crate::domain::alerts::{Alert, AlertChange, AlertStatus};
use crate::domain::cursor::{EventCursor, SessionCursor};
use crate::domain::event::ValidEvent;
use crate::metrics::Metrics;

pub mod alert_rows;
pub mod backend;
pub mod feed;
pub mod filter;
pub mod maintenance;
pub mod postgres;
pub mod sqlite;
pub mod summary_rows;
pub mod workshop_rows;

pub use workshop_rows::{DirectoryOp, DirectoryRows, NewHelperToken, NewRoom, NewWorkshop, WorkshopOp};

/// A storage failure, by what the caller can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The write queue is full: answer 503 with `Retry-After`, nothing was stored.
    #[error("the write queue is full")]
    Overloaded,
    /// The database cannot be reached or refused the transaction (it is down, restarting, out of
    /// disk): answer 503 with `Retry-After`; nothing of the request was stored.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The storage is shutting down (its writer has stopped): answer 503.
    #[error("the storage is shutting down")]
    Stopped,
    /// What was asked cannot be done as given (a database URL that does not parse, no database
    /// file where the command line expects one): fix the input.
    #[error("{0}")]
    Invalid(String),
    /// What was asked conflicts with what is stored (a workshop slug that is taken): answer 409.
    #[error("{0}")]
    Conflict(String),
    /// Anything else (a schema that cannot be migrated, corrupt data, a bug): answer 500.
    #[error("storage error: {0}")]
    Internal(String),
}

/// A stored row that does not parse as what it should hold (a bug or a hand edit): a 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored {what} is not valid: {reason}")]
pub struct CorruptRow {
    /// What the row should hold: `"alert"`, `"alert change"`, `"session summary"`.
    pub what: &'static str,
    /// serde_json's message.
    pub reason: String,
}

/// What one insert request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inserted {
    /// New rows.
    pub new: usize,
    /// Events already stored (same `event_uuid`), left as they were.
    pub duplicates: usize,
}

/// What a retention purge or a student deletion removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    /// Events deleted.
    pub events: u64,
    /// Session summaries deleted (their sessions have no event left).
    pub sessions: u64,
    /// Students deleted (no session they appear in is left).
    pub students: u64,
}

impl From<CorruptRow> for StoreError {
    fn from(error: CorruptRow) -> Self {
        StoreError::Internal(error.to_string())
    }
}

impl std::ops::AddAssign for Removed {
    fn add_assign(&mut self, other: Removed) {
        self.events += other.events;
        self.sessions += other.sessions;
        self.students += other.students;
    }
}

/// The order of an event query, by `event_id` (which is also the order of storage): `asc` or
/// `desc` on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (the reference's order, the default).
    #[default]
    Desc,
}

/// Filters of an event query; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this session.
    pub session_token: Option<String>,
    /// Only this student (case-insensitive).
    pub student_email: Option<String>,
    /// Only sessions of these rooms (row ids; empty: none), `room=`.
    pub rooms: Option<Vec<i64>>,
    /// Only sessions of this workshop (row id), `workshop=`.
    pub workshop: Option<i64>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only events stored at or after this time (ISO 8601 UTC with ms, as `created_at`).
    pub since: Option<String>,
    /// Only events stored before this time (same format).
    pub until: Option<String>,
    /// The order.
    pub order: Order,
    /// Continue after this position (in `order`): the cursor of the page before.
    pub after: Option<EventCursor>,
    /// At most this many events.
    pub limit: u32,
}

/// Filters of a session query; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionQuery {
    /// Only this student's sessions (case-insensitive).
    pub student_email: Option<String>,
    /// Only sessions of these rooms (row ids; empty: none), `room=`.
    pub rooms: Option<Vec<i64>>,
    /// Only sessions of this workshop (row id), `workshop=`.
    pub workshop: Option<i64>,
    /// Only sessions with an event at or after this time (`last_seen`, ISO text).
    pub since: Option<String>,
    /// Only the session with this token.
    pub session_token: Option<String>,
    /// Only sessions with an event before this time (`first_seen`, ISO text).
    pub until: Option<String>,
    /// The order.
    pub order: SessionOrder,
    /// Continue with the sessions after this one, in `order`: the cursor of the page before
    /// ([`SessionOrder::Token`] reads only its token).
    pub after: Option<SessionCursor>,
    /// At most this many sessions.
    pub limit: u32,
}

/// How many summaries a report reads at once (a summary is at most a few KB, so a page is at
/// most a few MB).
pub const REPORT_PAGE: u32 = 500;

/// The order of a session query's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionOrder {
    /// Most recently seen first (by `last_seen`, then token, both descending): the dashboard's.
    #[default]
    RecentFirst,
    /// By session token, ascending: a key no event moves, so paging through a window while
    /// events arrive reads each session once (the report's).
    Token,
}

/// Filters of an alert query, newest first (by `openedAt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only alerts with this status; `None` is all.
    pub status: Option<AlertStatus>,
    /// Only alerts opened at or after this time (ISO 8601 UTC with ms).
    pub since: Option<String>,
    /// At most this many.
    pub limit: u32,
    /// Only alerts of these rooms (join codes; `""` for the lobbies, whose alerts have none); `None` is every
    /// room and lobby.
    pub rooms: Option<Vec<String>>,
    /// Only alerts of the workshop with this slug.
    pub workshop: Option<String>,
    /// Only the alert with this id.
    pub id: Option<String>,
    /// Only the help requests of this session (the `session_token` column).
    pub session: Option<String>,
}

/// A notice to store (`POST /api/rooms/{code}/notices`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotice {
    /// The room's join code.
    pub room: String,
    /// What it says (checked by `domain::notice::NoticeRequest::check`).
    pub message: String,
    /// Who posted it.
    pub posted_by: String,
    /// When (ISO 8601 UTC with ms).
    pub posted_at: String,
    /// When it expires (same format).
    pub expires_at: String,
}

/// A stored alert change with its position in the change log (the alert stream's cursor).
pub type LoggedChange = (i64, AlertChange);

/// What an acknowledgement did: the alert as it is now, and the change it logged (none when the
/// alert was already acknowledged).
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledged {
    /// The alert after the acknowledgement.
    pub alert: Alert,
    /// The logged change, if the acknowledgement changed the alert.
    pub change: Option<LoggedChange>,
}

/// Which database a [`Storage`] opens, from `Config::database_url` (or `Config::db_path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (`sqlite://path`, or `--db`).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL server (`postgres://user@host:port/db` or `postgresql://…`, libpq's URL form).
    Postgres(String),
}

impl Database {
    /// The database `config` names: `database_url` when set, else the SQLite file at `db_path`.
    ///
    /// Errors: [`StoreError::Invalid`] for a URL of another scheme.
    pub fn of(config: &Config) -> Result<Database, StoreError> {
        match config.database_url.as_deref() {
            None => Ok(Database::Sqlite(config.db_path.clone())),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres(url.to_owned()))
            }
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => Ok(Database::Sqlite(path.into())),
                _ => Err(StoreError::Invalid(format!(
                    "database URL {url:?}: expected postgres://user@host:port/db or sqlite://path"
                ))),
            },
        }
    }

    /// The database for messages: the SQLite path, or the PostgreSQL URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => postgres::redact_url(url),
        }
    }
}

/// The database behind the server: one handle whatever the backend (see the module docs).
pub struct Storage {
    backend: Box<dyn backend::Backend>,
    feed: Arc<feed::CommitFeed>,
    /// See [`Storage::write_refused`].
    write_refused: std::sync::Mutex<Option<String>>,
}

impl Storage {
    /// Opens the database `config` names ([`Database::of`]), creating or migrating its schema,
    /// and starts its writer. Must be called outside an async context or from a blocking-tolerant
    /// one (it blocks until the database answers).
    ///
    /// Errors: [`StoreError::Invalid`] for a bad URL; [`StoreError::Unavailable`] when a
    /// PostgreSQL server does not answer; [`StoreError::Internal`] when the schema cannot be
    /// created or migrated, or the SQLite file or its folder cannot be created.
    pub fn open(config: &Config, metrics: Arc<Metrics>) -> Result<Storage, StoreError> {
        let feed = Arc::new(feed::CommitFeed::default());
        let backend: Box<dyn backend::Backend> = match Database::of(config)? {
            Database::Sqlite(path) => {
                // One server per SQLite file: it always runs the background work.
                metrics.background_leader.set(1);
                Box::new(sqlite::SqliteStore::open(&path, config, metrics, feed.clone())?)
            }
            Database::Postgres(url) => Box::new(postgres::PostgresStore::open(&url, config, metrics, feed.clone())?),
        };
        Ok(Storage { backend, feed, write_refused: std::sync::Mutex::new(None) })
    }

    /// Subscribes to the commit feed (see [`feed`]): the events this server's writer commits from
    /// now on, handed over at once. One subscriber at a time (the alert rules); a new one replaces
    /// the old.
    pub fn subscribe_commits(&self) -> feed::CommitReceiver {
        self.feed.subscribe()
    }

    /// How many events are stored with `after < event_id <= upto`: the alert rules compare it
    /// with what the commit feed gave them, to find events another server stored (or a commit
    /// the feed dropped) and read those back.
    ///
    /// Errors: [`StoreError::Unavailable`] when the database cannot be reached.
    pub async fn count_events(&self, after: i64, upto: i64) -> Result<u64, StoreError> {
        self.backend.count_events(after, upto).await
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Stores `events` (in order), folds them into their sessions' summaries, and answers once
    /// the events are committed.
    ///
    /// Errors: [`StoreError::Overloaded`] when the write queue is full, [`StoreError::Stopped`]
    /// during shutdown, [`StoreError::Unavailable`] when the commit failed (then none of the
    /// events is stored).
    pub async fn insert(&self, events: Vec<ValidEvent>) -> Result<Inserted, StoreError> {
        let result = self.backend.insert(events).await;
        match &result {
            Ok(_) => self.set_write_refused(None),
            Err(StoreError::Unavailable(reason)) => self.set_write_refused(Some(reason.clone())),
            Err(_) => {}
        }
        result
    }

    /// Why the last write was refused, while no write has succeeded since (a full disk, a
    /// database that went away): `/healthz` reports it. `None` when writes go through.
    pub fn write_refused(&self) -> Option<String> {
        self.write_refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_write_refused(&self, reason: Option<String>) {
        let mut refused = self.write_refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *refused != reason {
            *refused = reason;
        }
    }

    /// Flushes the summaries before a read; when the database refuses the write (a full disk),
    /// the read goes on with the summaries as stored (at most the unflushed events behind), so
    /// instructors keep their view exactly when writes fail.
    async fn flush_before_read(&self) -> Result<(), StoreError> {
        match self.flush_summaries().await {
            Err(StoreError::Unavailable(reason)) => {
                tracing::warn!(%reason, "summaries not flushed before a read: reading them as stored");
                Ok(())
            }
            other => other,
        }
    }

    /// Checks that the database takes writes (`/healthz`). Errors as for [`Storage::insert`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    /// Makes the stored session summaries reflect every event acknowledged before the call
    /// (read-your-writes for `/api/sessions` and the report). Errors as for [`Storage::insert`],
    /// but a full queue is not an error (the summaries then lag by at most a second).
    pub async fn flush_summaries(&self) -> Result<(), StoreError> {
        self.backend.flush_summaries().await
    }

    /// Deletes at most `limit` events stored before `before` (ISO 8601 text, compared with
    /// `created_at`), oldest first, recomputes the summaries of their sessions from the events
    /// that remain, and deletes the summaries of sessions left without events and the students
    /// who appear in no remaining session. Errors as for [`Storage::insert`].
    pub async fn purge(&self, before: String, limit: usize) -> Result<Removed, StoreError> {
        self.backend.purge(before, limit, None).await
    }

    /// As [`Storage::purge`], deleting only the events among `ids` (those stored before
    /// `before`): what retention has archived. Errors as for [`Storage::insert`].
    pub async fn purge_ids(&self, before: String, ids: Vec<i64>) -> Result<Removed, StoreError> {
        let limit = ids.len();
        self.backend.purge(before, limit, Some(ids)).await
    }

    /// Deletes the student with `email` (case-insensitive), every event of every session in
    /// which they appear (anonymous events of those sessions too), and those sessions'
    /// summaries. A student who is not stored removes nothing. Errors as for [`Storage::insert`].
    pub async fn delete_student(&self, email: String) -> Result<Removed, StoreError> {
        self.backend.delete_student(email).await
    }

    /// The `event_id` of the newest committed event, updated after each commit: live tails wait
    /// on it (`changed()`) instead of polling.
    pub fn committed(&self) -> watch::Receiver<i64> {
        self.backend.committed()
    }

    /// Whether this server should run the background work (retention, periodic reports) now:
    /// always on SQLite (one server per file); on PostgreSQL, while it holds the database's
    /// leader lock, which exactly one connected server holds at a time and which passes to
    /// another within about a second of its holder's death (see `postgres::cluster`).
    pub fn is_leader(&self) -> bool {
        self.backend.is_leader()
    }

    /// Stores alert changes (each alert upserted, keeping instructors' acknowledgements and
    /// resolutions: `domain::alerts::merge_stored`) and appends them to the change log, in one
    /// transaction; returns them as logged, with their positions, which grow in commit order.
    /// Errors as for [`Storage::insert`].
    pub async fn record_alert_changes(&self, changes: Vec<AlertChange>) -> Result<Vec<LoggedChange>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        self.backend.record_alert_changes(changes).await
    }

    /// Does `action` to alert `id` at `at` (ISO 8601; see `domain::alerts::act`: acknowledge or
    /// mute) and logs the change. `Ok(None)` when there is no such alert. Errors as for
    /// [`Storage::insert`].
    pub async fn acknowledge_alert(
        &self,
        id: String,
        action: crate::domain::alerts::AlertAction,
        at: String,
    ) -> Result<Option<Acknowledged>, StoreError> {
        self.backend.acknowledge_alert(id, action, at).await
    }

    /// The alerts `query` selects, newest first. Errors as for [`Storage::events`].
    pub async fn alerts(&self, query: AlertQuery) -> Result<Vec<Alert>, StoreError> {
        self.backend.alerts(query).await
    }

    /// At most `limit` logged alert changes after position `after`, oldest first (the alert
    /// stream). Errors as for [`Storage::events`].
    pub async fn alert_changes(&self, after: i64, limit: u32) -> Result<Vec<LoggedChange>, StoreError> {
        self.backend.alert_changes(after, limit).await
    }

    /// The position of the newest logged alert change (0 when none is logged): where a new alert
    /// stream starts. Errors as for [`Storage::events`].
    pub async fn newest_alert_change(&self) -> Result<i64, StoreError> {
        self.backend.newest_alert_change().await
    }

    /// Updates the queue-depth gauge (write requests waiting for the writer) and returns it.
    pub fn observe_queue_depth(&self) -> usize {
        self.backend.observe_queue_depth()
    }

    /// The events `query` selects (see [`EventQuery`]), in its order.
    ///
    /// Errors: [`StoreError::Unavailable`] when the database cannot be reached,
    /// [`StoreError::Stopped`] during shutdown, [`StoreError::Internal`] for a failed query.
    pub async fn events(&self, query: EventQuery) -> Result<Vec<EventRow>, StoreError> {
        self.backend.events(query).await
    }

    /// The events `query` selects and, when it names a session, what that session lost
    /// (`(missing, dropped)`, from its summary, made current first): `missing` counts the
    /// numbers absent from its `seq` 0…max, `dropped` sums the drops its client reported.
    /// Errors: as for [`Storage::events`] and [`Storage::flush_summaries`].
    pub async fn events_and_losses(
        &self,
        query: EventQuery,
    ) -> Result<(Vec<EventRow>, Option<(u64, u64)>), StoreError> {
        if query.session_token.is_some() {
            self.flush_before_read().await?;
        }
        self.backend.events_and_losses(query).await
    }

    /// The session summaries `query` selects, most recently seen first, reflecting every
    /// acknowledged event. Errors: as for [`Storage::events`] and [`Storage::flush_summaries`].
    pub async fn sessions(&self, query: SessionQuery) -> Result<Vec<SessionRow>, StoreError> {
        self.flush_before_read().await?;
        self.backend.sessions(query).await
    }

    /// The median time (ms) the sessions of `rooms` (row ids) active since `since` spent on each
    /// step, counting sessions that left it: the funnel's medians of those rooms. Empty when
    /// `rooms` is. Errors: as for [`Storage::events`].
    pub async fn step_medians(
        &self,
        rooms: Vec<i64>,
        since: String,
    ) -> Result<std::collections::HashMap<i64, i64>, StoreError> {
        if rooms.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let place = SessionQuery { rooms: Some(rooms), since: Some(since), ..SessionQuery::default() };
        let report = self.report(place, std::time::Duration::ZERO, None).await?;
        Ok(report.funnel.into_iter().filter_map(|s| Some((s.step, s.median_time_ms?))).collect())
    }

    /// The report (`domain::report::ReportFold`) of the sessions `place` selects (its `since`,
    /// `until`, `rooms`, `workshop` and `student_email`; its order, cursor and limit are the
    /// report's own), read from their summaries; a session is active with an event within
    /// `active_window`, and `final_step` completes sessions that reach it. Reads the summaries
    /// [`REPORT_PAGE`] at a time in token order, so a report holds one page of summaries at once
    /// however many sessions the window has. Errors: as for [`Storage::sessions`].
    pub async fn report(
        &self,
        place: SessionQuery,
        active_window: std::time::Duration,
        final_step: Option<i64>,
    ) -> Result<crate::domain::report::Report, StoreError> {
        self.flush_before_read().await?;
        let mut fold = crate::domain::report::ReportFold::new(iso_ago(active_window), final_step);
        let (since, until) = (place.since.clone(), place.until.clone());
        let mut query = SessionQuery { order: SessionOrder::Token, limit: REPORT_PAGE, after: None, ..place };
        loop {
            let rows = self.backend.sessions(query.clone()).await?;
            rows.iter().for_each(|row| fold.add(row));
            match rows.last() {
                Some(last) if rows.len() == REPORT_PAGE as usize => {
                    query.after = Some(SessionCursor {
                        last_seen: last.summary.last_seen.clone(),
                        session_token: last.session_token.clone(),
                    })
                }
                _ => break,
            }
        }
        Ok(fold.finish(now_iso(), (since, until)))
    }

    /// The sessions whose stored summary differs from the fold of their stored events (tokens,
    /// sorted), after a flush; empty when the invariant holds. Reads every event: a consistency
    /// check for tests and operators, not for a request path. Errors: as for [`Storage::events`].
    pub async fn summary_drift(&self) -> Result<Vec<String>, StoreError> {
        self.flush_summaries().await?;
        self.backend.summary_drift().await
    }

    /// Every workshop, by id (`default` first): what the ingest path checks write keys against.
    /// Errors: as for [`Storage::events`].
    pub async fn workshops(&self) -> Result<Vec<crate::domain::workshop::Workshop>, StoreError> {
        self.backend.workshops().await
    }

    /// Creates the workshop `new` and returns it as stored. Errors: [`StoreError::Conflict`] when
    /// its slug is taken; otherwise as for [`Storage::events`].
    pub async fn create_workshop(&self, new: NewWorkshop) -> Result<crate::domain::workshop::Workshop, StoreError> {
        self.backend.create_workshop(new).await
    }

    /// Revokes the write key of workshop `slug` at once (for every server on the database within
    /// their next refresh); returns the workshop, `None` when none has that slug. Revoking again
    /// keeps the first time. Errors: as for [`Storage::events`].
    pub async fn revoke_write_key(
        &self,
        slug: String,
    ) -> Result<Option<crate::domain::workshop::Workshop>, StoreError> {
        self.backend.revoke_write_key(slug).await
    }

    /// Where each of `tokens` was placed, as `(session token, workshop id, room id)`; a session
    /// not listed has no `session_rooms` row (stored before rooms, or not stored: `default`'s
    /// lobby). What the alert rules judge a session's events in. Errors: as for [`Storage::events`].
    pub async fn session_places(&self, tokens: Vec<String>) -> Result<Vec<(String, i64, Option<i64>)>, StoreError> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        self.backend.session_places(tokens).await
    }

    /// Moves the sessions among `tokens` that belong to workshop `workshop_id` (from its lobby or
    /// another of its rooms) into its room `room_id`: a session that joined without a code, or
    /// the wrong one, is put where it sits. Returns the tokens moved; a token of another
    /// workshop, or of no stored session, is left as it is. Their events count in the new room's
    /// reads at once, and in its alert rules within a minute. Errors: as for [`Storage::events`].
    pub async fn move_sessions(
        &self,
        tokens: Vec<String>,
        workshop_id: i64,
        room_id: i64,
    ) -> Result<Vec<String>, StoreError> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        self.backend.move_sessions(tokens, workshop_id, room_id).await
    }

    /// Every room, by id: what the ingest path assigns sessions to and `room=` names. Errors: as
    /// for [`Storage::events`].
    pub async fn rooms(&self) -> Result<Vec<crate::domain::workshop::Room>, StoreError> {
        self.backend.rooms().await
    }

    /// Creates `new` (its `code` ignored) with a new join code, drawing another when one is
    /// taken, up to [`workshop_rows::CODE_DRAWS`] codes, and returns it as stored. Errors:
    /// [`StoreError::Conflict`] when every code drawn was taken; [`StoreError::Internal`]
    /// without randomness; otherwise as for [`Storage::events`].
    pub async fn create_room(&self, mut new: NewRoom) -> Result<crate::domain::workshop::Room, StoreError> {
        for _ in 1..workshop_rows::CODE_DRAWS {
            new.code = workshop_rows::draw_join_code()?;
            match self.backend.create_room(new.clone()).await {
                Err(StoreError::Conflict(_)) => {}
                other => return other,
            }
        }
        new.code = workshop_rows::draw_join_code()?;
        self.backend.create_room(new).await
    }

    /// Stores a notice to a room (see [`backend::Backend::post_notice`]).
    pub async fn post_notice(&self, new: NewNotice) -> Result<crate::domain::notice::Notice, StoreError> {
        self.backend.post_notice(new).await
    }

    /// The notices of room `room` (join code) that have not expired at `now`, newest first, at
    /// most `limit` (see [`backend::Backend::notices`]).
    pub async fn notices(
        &self,
        room: String,
        now: String,
        limit: u32,
    ) -> Result<Vec<crate::domain::notice::Notice>, StoreError> {
        self.backend.notices(room, now, limit).await
    }

    /// Records that helper token `id` was used now (`lastUsedAt`). Errors: as for
    /// [`Storage::events`].
    pub async fn record_token_use(&self, id: i64) -> Result<(), StoreError> {
        self.backend.record_token_use(id).await
    }

    /// Every helper token (hashes only), by id. Errors: as for [`Storage::events`].
    pub async fn helper_tokens(&self) -> Result<Vec<crate::domain::helper::HelperToken>, StoreError> {
        self.backend.helper_tokens().await
    }

    /// Stores the helper token `new` (its hash) and returns it as stored. Errors: as for
    /// [`Storage::events`].
    pub async fn create_helper_token(
        &self,
        new: NewHelperToken,
    ) -> Result<crate::domain::helper::HelperToken, StoreError> {
        self.backend.create_helper_token(new).await
    }

    /// Revokes helper token `id` (a second revocation keeps the first's time); `None` when
    /// there is no such token. Errors: as for [`Storage::events`].
    pub async fn revoke_helper_token(&self, id: i64) -> Result<Option<crate::domain::helper::HelperToken>, StoreError> {
        self.backend.revoke_helper_token(id).await
    }

    /// Stops taking writes, lets the writer commit everything already handed to it, and waits
    /// for it (blocking, at most about 10 s on PostgreSQL).
    pub fn close(&self) {
        self.backend.close()
    }
}

/// Copies the SQLite database `config` names to `dest`, for the command line (`backup DEST`):
/// consistent while a server writes to it, written atomically (see `sqlite::backup`).
///
/// Errors: those of `sqlite::backup::backup_file`; [`StoreError::Invalid`] when the database
/// is PostgreSQL, saying to use `pg_dump` (PostgreSQL's own consistent, online dump).
pub fn backup_offline(config: &Config, dest: &std::path::Path) -> Result<sqlite::backup::BackupReport, StoreError> {
    match Database::of(config)? {
        Database::Sqlite(path) => sqlite::backup::backup_file(&path, dest),
        Database::Postgres(url) => Err(StoreError::Invalid(format!(
            "{} is PostgreSQL: back it up with PostgreSQL's own tools, for example \
             `pg_dump --format=custom --file=session-log.dump '<the database URL>'` (consistent while servers write), \
             and restore with `pg_restore --dbname=<an empty database> session-log.dump`",
            postgres::redact_url(&url)
        ))),
    }
}

/// Does `op` to the workshops of the database `config` names, for the command line (works beside
/// running servers). Returns the workshop created or revoked (none when no workshop has the
/// slug), or all of them. Errors: as for [`Storage::open`] and [`Storage::create_workshop`];
/// [`StoreError::Invalid`] when the SQLite file does not exist (the command creates none).
pub fn workshops_offline(
    config: &Config,
    op: WorkshopOp,
) -> Result<Vec<crate::domain::workshop::Workshop>, StoreError> {
    match Database::of(config)? {
        Database::Sqlite(path) => sqlite::workshops_in_file(&path, op),
        Database::Postgres(url) => postgres::workshops_at(&url, op),
    }
}

/// Does `op` to the rooms or helper tokens of the database `config` names, for the command line
/// (works beside running servers, which see the change within 5 s), and reads them all. Errors:
/// as for [`Storage::open`]; those of [`Storage::create_room`] for a new room;
/// [`StoreError::Invalid`] when the SQLite file does not exist (the command creates none).
pub fn directory_offline(config: &Config, op: DirectoryOp) -> Result<DirectoryRows, StoreError> {
    let database = Database::of(config)?;
    let attempt = |op: DirectoryOp| match &database {
        Database::Sqlite(path) => sqlite::directory_in_file(path, op),
        Database::Postgres(url) => postgres::directory_at(url, op),
    };
    let DirectoryOp::CreateRoom(mut new) = op else { return attempt(op) };
    // As `Storage::create_room`: a taken code is drawn again.
    for _ in 1..workshop_rows::CODE_DRAWS {
        new.code = workshop_rows::draw_join_code()?;
        match attempt(DirectoryOp::CreateRoom(new.clone())) {
            Err(StoreError::Conflict(_)) => {}
            other => return other,
        }
    }
    new.code = workshop_rows::draw_join_code()?;
    attempt(DirectoryOp::CreateRoom(new))
}

/// Deletes the student with `email` from the database `config` names, for the command line: works
/// beside a running server. Errors: as for [`Storage::open`] and [`Storage::delete_student`];
/// [`StoreError::Invalid`] when the SQLite file does not exist (the command creates none).
pub fn delete_student_offline(config: &Config, email: &str) -> Result<Removed, StoreError> {
    match Database::of(config)? {
        Database::Sqlite(path) => sqlite::delete_student_in_file(&path, email),
        Database::Postgres(url) => postgres::delete_student_at(&url, email),
    }
}
