//! Deleting work, the same on both backends: what a writer is asked to delete
//! ([`Maintenance`]) and the bookkeeping of a purge ([`Deleted`]); each backend runs the
//! statements in its writer's transaction.
//!
//! A purge deletes oldest first by `event_id` (ids grow in commit order on both backends), then
//! recomputes the summaries of the sessions it touched from the events left, deletes the
//! summaries of the sessions left empty, and the students who appear in no remaining session.

use super::Removed;

/// Work that deletes, run by the writer in a transaction of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintenance {
    /// Delete at most `limit` events stored before `before` (ISO 8601, compared with
    /// `created_at`), oldest first by `event_id`; with `ids`, only those of them (what an
    /// archive has written).
    Purge {
        /// The cutoff.
        before: String,
        /// At most this many events.
        limit: usize,
        /// Only these events.
        ids: Option<Vec<i64>>,
    },
    /// Delete a student, every event of their sessions and those sessions' summaries.
    DeleteStudent {
        /// The student's email, case-insensitive.
        email: String,
    },
}

/// What a purge's `DELETE … RETURNING session_token, student_id` removed, sorted and without
/// repeats: the sessions whose summaries to recompute, the students who may be left in none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Events deleted.
    pub events: u64,
    /// Their sessions, sorted (the order in which summaries are locked and rewritten).
    pub sessions: Vec<String>,
    /// Their students, sorted.
    pub students: Vec<i64>,
}

impl Deleted {
    /// From the deleted rows' `(session_token, student_id)`.
    pub fn from_rows(rows: impl IntoIterator<Item = (String, Option<i64>)>) -> Deleted {
        let mut deleted = Deleted::default();
        for (token, student) in rows {
            deleted.events += 1;
            deleted.sessions.push(token);
            deleted.students.extend(student);
        }
        deleted.sessions.sort_unstable();
        deleted.sessions.dedup();
        deleted.students.sort_unstable();
        deleted.students.dedup();
        deleted
    }

    /// What the purge removed once `emptied` of its sessions were left without events and
    /// `students` students in no session.
    pub fn removed(&self, emptied: u64, students: u64) -> Removed {
        Removed { events: self.events, sessions: emptied, students }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Deleted rows give each session and student once, sorted, and count every event.
    #[test]
    fn deleted_rows_are_counted_and_deduplicated() {
        let rows = [("ws_b".to_owned(), Some(2)), ("ws_a".to_owned(), None), ("ws_b".to_owned(), Some(2))];
        let deleted = Deleted::from_rows(rows);
        assert_eq!(deleted.events, 3);
        assert_eq!(deleted.sessions, ["ws_a", "ws_b"]);
        assert_eq!(deleted.students, [2]);
    }
}
