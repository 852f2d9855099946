//! What the HTTP handlers and the background tasks share: [`AppState`], and the publishing of
//! alert changes ([`Alerting`]).

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::domain::alerts::AlertChange;
use crate::domain::workshop::{Room, Workshop};
use crate::metrics::Metrics;
use crate::rate_limits::RateLimits;
use crate::storage::{LoggedChange, Storage};
use crate::webhooks::Webhooks;

/// What every handler and task shares.
pub struct AppState {
    /// The settings.
    pub config: Config,
    /// The database.
    pub storage: Storage,
    /// The server's metrics.
    pub metrics: Arc<Metrics>,
    /// The POST rate limits.
    pub limits: RateLimits,
    /// Becomes `true` when the server starts shutting down: live tails end.
    pub stopping: watch::Receiver<bool>,
    /// Where alert changes go once stored.
    pub alerting: Alerting,
    /// The workshops and rooms as last read: what write keys are checked against and sessions
    /// assigned to.
    pub workshops: Workshops,
}

/// The workshops, rooms and helper tokens as last read from the database, shared by every
/// worker: read at start, again every [`Workshops::REFRESH`] (so a key, room or token created or
/// revoked by another server or the command line counts within that), and at once after this
/// server changes one.
#[derive(Default)]
pub struct Workshops {
    current: std::sync::RwLock<Arc<Directory>>,
    /// When each helper token's use was last written (by token id: tokens are an admin's, so
    /// the map is bounded by them).
    uses_written: std::sync::Mutex<std::collections::HashMap<i64, std::time::Instant>>,
    /// When a request last made the directory be read out of turn ([`Workshops::reload_on_miss`]).
    missed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// One reading of the workshops, rooms and helper tokens.
#[derive(Debug, Default)]
pub struct Directory {
    /// Every workshop, by id (`default` first).
    pub workshops: Vec<Workshop>,
    /// Every room, by id.
    pub rooms: Vec<Room>,
    /// Every helper token (hashes), by id: what a request's token is checked against.
    pub helpers: Vec<crate::domain::helper::HelperToken>,
}

impl Directory {
    /// The room with join code `code` (as typed, see `domain::workshop::normalize_code`).
    pub fn room_by_code(&self, code: &str) -> Option<&Room> {
        let code = crate::domain::workshop::normalize_code(code)?;
        self.rooms.iter().find(|r| r.code == code)
    }

    /// The workshop with `slug`.
    pub fn workshop_by_slug(&self, slug: &str) -> Option<&Workshop> {
        self.workshops.iter().find(|w| w.slug == slug)
    }

    /// The place of a session stored in workshop `workshop` and room `room` (row ids), as alerts
    /// name it; `None` when either is not in this reading.
    pub fn label(&self, workshop: i64, room: Option<i64>) -> Option<crate::domain::alerts::Label> {
        let slug = self.workshop(workshop)?.slug.clone();
        let code = match room {
            Some(id) => Some(self.rooms.iter().find(|r| r.id == id)?.code.clone()),
            None => None,
        };
        Some(crate::domain::alerts::Label { workshop: slug, room: code })
    }

    /// The workshop with row id `id`.
    pub fn workshop(&self, id: i64) -> Option<&Workshop> {
        self.workshops.iter().find(|w| w.id == id)
    }
}

impl Workshops {
    /// How often the workshops are read again.
    pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

    /// How often a helper token's last use is written, at most.
    pub const USE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

    /// Whether helper token `id`'s use should be written now (not within [`Self::USE_EVERY`]);
    /// if so, counts it as written.
    pub fn use_due(&self, id: i64) -> bool {
        let mut written = self.uses_written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        match written.get(&id) {
            Some(at) if now.duration_since(*at) < Self::USE_EVERY => false,
            _ => {
                written.insert(id, now);
                true
            }
        }
    }

    /// The workshops and rooms as last read.
    pub fn snapshot(&self) -> Arc<Directory> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// How often, at most, a write key or join code this server does not know makes it read the
    /// directory out of turn (keys and codes are a client's to choose: a stream of made-up ones
    /// costs at most one read per this interval).
    pub const MISS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    /// Reads the directory again now, unless a miss did within [`Self::MISS_EVERY`]: for a key
    /// or room made on another server sharing the database, which this one would otherwise learn
    /// within [`Self::REFRESH`]. Answers whether it read. Errors: those of [`Self::reload`].
    pub async fn reload_on_miss(&self, storage: &Storage) -> Result<bool, crate::storage::StoreError> {
        {
            let mut missed = self.missed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if missed.is_some_and(|at| at.elapsed() < Self::MISS_EVERY) {
                return Ok(false);
            }
            *missed = Some(std::time::Instant::now());
        }
        self.reload(storage).await?;
        Ok(true)
    }

    /// The room with join code `code` (as typed), reading the directory again first when this
    /// server does not know it (a room made on another server within [`Self::REFRESH`]).
    /// Errors: those of [`Self::reload`].
    pub async fn room_by_code(
        &self,
        storage: &Storage,
        code: &str,
    ) -> Result<Option<crate::domain::workshop::Room>, crate::storage::StoreError> {
        if let Some(room) = self.snapshot().room_by_code(code) {
            return Ok(Some(room.clone()));
        }
        self.reload(storage).await?;
        Ok(self.snapshot().room_by_code(code).cloned())
    }

    /// Reads the workshops and rooms from `storage` and makes them the snapshot. Errors: those
    /// of `Storage::workshops` and `Storage::rooms`; the snapshot is then left as it was.
    pub async fn reload(&self, storage: &Storage) -> Result<(), crate::storage::StoreError> {
        let directory = Arc::new(Directory {
            workshops: storage.workshops().await?,
            rooms: storage.rooms().await?,
            helpers: storage.helper_tokens().await?,
        });
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = directory;
        Ok(())
    }
}

/// Publishes stored alert changes: the alert streams of this server wake up, the webhooks are
/// queued, the counters counted.
pub struct Alerting {
    /// The newest change position this server logged (alert streams wait on it; changes logged
    /// by another server are found by the streams' periodic read).
    pub logged: watch::Sender<i64>,
    /// The webhook deliveries.
    pub webhooks: Webhooks,
}

impl Alerting {
    /// Publishes `logged` (changes already stored).
    pub fn publish(&self, logged: &[LoggedChange], metrics: &Metrics) {
        let Some(newest) = logged.iter().map(|(position, _)| *position).max() else { return };
        self.logged.send_if_modified(|value| {
            let changed = newest > *value;
            *value = (*value).max(newest);
            changed
        });
        let changes: Vec<AlertChange> = logged.iter().map(|(_, change)| change.clone()).collect();
        for change in &changes {
            metrics.alert_changes.with_label_values(&[change.kind.name()]).inc();
        }
        self.webhooks.send(&changes);
    }
}
