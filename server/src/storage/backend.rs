//! The contract between [`crate::storage::Storage`] and a database backend ([`super::sqlite`],
//! [`super::postgres`]): what each operation does and guarantees, stated once. `Storage` holds
//! the backend chosen at start as a `Box<dyn Backend>`; it adds what does not depend on the
//! database (the flush before a read, the refused-write record, the report) around these calls.
//!
//! Dynamic dispatch costs one boxed future per call; every call waits for a database round trip
//! or the writer's commit, which is thousands of times longer (see `docs/benchmarks.md`).

use async_trait::async_trait;
use tokio::sync::watch;

use super::{Acknowledged, AlertQuery, EventQuery, Inserted, LoggedChange, Removed, SessionQuery, StoreError};
use crate::domain::alerts::{Alert, AlertAction, AlertChange};
use crate::domain::event::ValidEvent;
use crate::domain::rows::{EventRow, SessionRow};

/// A database backend. Every method may also fail with [`StoreError::Stopped`] once the backend
/// is closing; reads fail with [`StoreError::Unavailable`] when the database cannot be reached
/// and [`StoreError::Internal`] for a failed query.
#[async_trait]
pub trait Backend: Send + Sync {
    /// `"sqlite"` or `"postgres"`: metrics, logs and `/healthz`.
    fn name(&self) -> &'static str;

    /// Whether this server should run the background work now (retention, reports): always on a
    /// backend one server owns (SQLite); else while it holds the database's leader lock, which
    /// exactly one connected server holds at a time.
    fn is_leader(&self) -> bool;

    /// Stores `events` in order in a group commit and answers once they are committed; their
    /// sessions' summaries fold them (in the same transaction, or behind them within a second and
    /// before any summary read, see [`Backend::flush_summaries`]). Events already stored (same
    /// `eventId`) are counted as duplicates and left as they were. The new events go to the
    /// commit feed and raise [`Backend::committed`].
    ///
    /// Errors: [`StoreError::Overloaded`] when the write queue is full (nothing queued);
    /// [`StoreError::Unavailable`] when the commit failed (none of the events is stored).
    async fn insert(&self, events: Vec<ValidEvent>) -> Result<Inserted, StoreError>;

    /// Checks that the database takes writes. Errors: as for [`Backend::insert`].
    async fn ping(&self) -> Result<(), StoreError>;

    /// Makes the stored summaries reflect every event acknowledged before the call. A full write
    /// queue is not an error (the summaries then lag by at most a second). Errors: as for
    /// [`Backend::insert`].
    async fn flush_summaries(&self) -> Result<(), StoreError>;

    /// Deletes at most `limit` events stored before `before` (ISO 8601, compared with
    /// `created_at`), only those among `ids` when given, oldest first; recomputes the summaries
    /// of their sessions from the events left, deletes the summaries of sessions left empty and
    /// the students who appear in no remaining session. Errors: as for [`Backend::insert`].
    async fn purge(&self, before: String, limit: usize, ids: Option<Vec<i64>>) -> Result<Removed, StoreError>;

    /// Deletes the student with `email` (case-insensitive), every event of every session they
    /// appear in, and those sessions' summaries. Errors: as for [`Backend::insert`].
    async fn delete_student(&self, email: String) -> Result<Removed, StoreError>;

    /// The `event_id` of the newest committed event, raised after each commit (this server's,
    /// and on a shared database other servers' too).
    fn committed(&self) -> watch::Receiver<i64>;

    /// Sets the queue-depth gauge (write requests waiting for the writer) and returns it.
    fn observe_queue_depth(&self) -> usize;

    /// Upserts the alerts of `changes` (keeping instructors' acknowledgements and resolutions,
    /// `domain::alerts::merge_stored`) and appends the changes to the change log, in one
    /// transaction; positions grow in commit order across servers. Errors: as for
    /// [`Backend::insert`].
    async fn record_alert_changes(&self, changes: Vec<AlertChange>) -> Result<Vec<LoggedChange>, StoreError>;

    /// Does `action` to alert `id` at `at` (ISO 8601) and logs the change; `Ok(None)` when there
    /// is no such alert. Errors: as for [`Backend::insert`].
    async fn acknowledge_alert(
        &self,
        id: String,
        action: AlertAction,
        at: String,
    ) -> Result<Option<Acknowledged>, StoreError>;

    /// The alerts `query` selects, newest first (by `openedAt`).
    async fn alerts(&self, query: AlertQuery) -> Result<Vec<Alert>, StoreError>;

    /// At most `limit` logged alert changes after position `after`, oldest first.
    async fn alert_changes(&self, after: i64, limit: u32) -> Result<Vec<LoggedChange>, StoreError>;

    /// The position of the newest logged alert change, 0 when none is.
    async fn newest_alert_change(&self) -> Result<i64, StoreError>;

    /// The events `query` selects, in its order; never an event before one with a smaller id
    /// that is not yet visible (ids become visible in increasing order).
    async fn events(&self, query: EventQuery) -> Result<Vec<EventRow>, StoreError>;

    /// How many events are stored with `after < event_id <= upto`.
    async fn count_events(&self, after: i64, upto: i64) -> Result<u64, StoreError>;

    /// As [`Backend::events`], and when `query` names a session its losses from its summary
    /// (`(missing, dropped)`); the caller has flushed the summaries.
    async fn events_and_losses(&self, query: EventQuery) -> Result<(Vec<EventRow>, Option<(u64, u64)>), StoreError>;

    /// The summaries `query` selects, most recently seen first; the caller has flushed them.
    async fn sessions(&self, query: SessionQuery) -> Result<Vec<SessionRow>, StoreError>;

    /// The tokens (sorted) of the sessions whose stored summary differs from the fold of their
    /// stored events; the caller has flushed the summaries. Reads every event.
    async fn summary_drift(&self) -> Result<Vec<String>, StoreError>;

    /// Every workshop, by id (`default` first).
    async fn workshops(&self) -> Result<Vec<crate::domain::workshop::Workshop>, StoreError>;

    /// Creates a workshop. Errors: [`StoreError::Conflict`] when its slug is taken.
    async fn create_workshop(
        &self,
        new: super::workshop_rows::NewWorkshop,
    ) -> Result<crate::domain::workshop::Workshop, StoreError>;

    /// Revokes the write key of workshop `slug` (once: a second revocation keeps the first's
    /// time); `None` when no workshop has that slug.
    async fn revoke_write_key(&self, slug: String) -> Result<Option<crate::domain::workshop::Workshop>, StoreError>;

    /// Where each of `tokens` was placed: `(session token, workshop id, room id)` of those with a
    /// `session_rooms` row (a session without one is `default`'s lobby).
    async fn session_places(&self, tokens: Vec<String>) -> Result<Vec<(String, i64, Option<i64>)>, StoreError>;

    /// Moves the sessions among `tokens` placed in workshop `workshop_id` into room `room_id`;
    /// returns those moved.
    async fn move_sessions(
        &self,
        tokens: Vec<String>,
        workshop_id: i64,
        room_id: i64,
    ) -> Result<Vec<String>, StoreError>;

    /// Every room, by id.
    async fn rooms(&self) -> Result<Vec<crate::domain::workshop::Room>, StoreError>;

    /// Creates a room. Errors: [`StoreError::Conflict`] when its join code is taken.
    async fn create_room(&self, new: super::NewRoom) -> Result<crate::domain::workshop::Room, StoreError>;

    /// Records that helper token `id` was used now.
    async fn record_token_use(&self, id: i64) -> Result<(), StoreError>;

    /// Every helper token, by id.
    async fn helper_tokens(&self) -> Result<Vec<crate::domain::helper::HelperToken>, StoreError>;

    /// Stores a helper token (its hash).
    async fn create_helper_token(
        &self,
        new: super::NewHelperToken,
    ) -> Result<crate::domain::helper::HelperToken, StoreError>;

    /// Revokes helper token `id` (once: a second revocation keeps the first's time); `None` when
    /// there is no such token.
    async fn revoke_helper_token(&self, id: i64) -> Result<Option<crate::domain::helper::HelperToken>, StoreError>;

    /// Stores a notice to a room; answers it with its id. Errors: as for [`Backend::insert`].
    async fn post_notice(&self, new: super::NewNotice) -> Result<crate::domain::notice::Notice, StoreError>;

    /// The notices of room `room` (join code) that expire after `now` (ISO 8601), newest
    /// first, at most `limit`.
    async fn notices(
        &self,
        room: String,
        now: String,
        limit: u32,
    ) -> Result<Vec<crate::domain::notice::Notice>, StoreError>;

    /// Stops taking writes, lets the writer commit what it was handed and waits for it
    /// (blocking; at most about 10 s).
    fn close(&self);
}
