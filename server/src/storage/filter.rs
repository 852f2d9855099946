//! The filter chains of event and session queries, written once: each backend gives its
//! [`Dialect`] and its `SELECT … WHERE true` head, gets back a [`Statement`] (SQL text and
//! parameters in placeholder order) and only runs it with its driver.

use super::{EventQuery, Order, SessionOrder, SessionQuery};
use crate::domain::workshop::LOBBY_ROOM_ID;

/// What differs between the backends' SQL in these queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?1` placeholders; times are ISO 8601 text, compared as text; emails are stored
    /// `COLLATE NOCASE`.
    Sqlite,
    /// `$1` placeholders; times are `timestamptz` (the ISO text cast); emails compared through
    /// `lower()`.
    Postgres,
}

/// A parameter of a [`Statement`]: what both drivers bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param<'q> {
    /// A text value.
    Text(&'q str),
    /// A 64-bit integer.
    Int(i64),
}

/// SQL text with its parameters, `params[n - 1]` for placeholder `n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'q> {
    /// The SQL.
    pub sql: String,
    /// The parameters, in placeholder order.
    pub params: Vec<Param<'q>>,
    dialect: Dialect,
}

impl<'q> Statement<'q> {
    fn new(dialect: Dialect, head: &str) -> Statement<'q> {
        Statement { sql: head.to_owned(), params: Vec::new(), dialect }
    }

    /// Binds `param` and returns its placeholder.
    fn bind(&mut self, param: Param<'q>) -> String {
        self.params.push(param);
        let n = self.params.len();
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// Binds an ISO 8601 time compared with a time column.
    fn bind_time(&mut self, iso: &'q str) -> String {
        let placeholder = self.bind(Param::Text(iso));
        match self.dialect {
            Dialect::Sqlite => placeholder,
            Dialect::Postgres => format!("{placeholder}::text::timestamptz"),
        }
    }

    /// `students.email` equal to `email`, case-insensitive.
    fn email_equals(&mut self, email: &'q str) -> String {
        let placeholder = self.bind(Param::Text(email));
        match self.dialect {
            Dialect::Sqlite => format!("email = {placeholder}"),
            Dialect::Postgres => format!("lower(email) = lower({placeholder})"),
        }
    }

    fn and(&mut self, condition: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
    }

    /// `session_rooms.room_id` one of `rooms` (non-empty; [`LOBBY_ROOM_ID`] for NULL, the lobby).
    fn rooms_condition(&mut self, rooms: &[i64]) -> String {
        let named: Vec<String> =
            rooms.iter().filter(|r| **r != LOBBY_ROOM_ID).map(|r| self.bind(Param::Int(*r))).collect();
        let mut either = Vec::new();
        if !named.is_empty() {
            either.push(format!("room_id IN ({})", named.join(", ")));
        }
        if rooms.contains(&LOBBY_ROOM_ID) {
            either.push("room_id IS NULL".to_owned());
        }
        format!("({})", either.join(" OR "))
    }

    /// The `session_rooms` conditions of a place: `room_id` one of `rooms` and `workshop_id`
    /// `workshop`; `None` when neither is given, `false` for no rooms at all. One placeholder
    /// per room: a query names the rooms of one token, not a list a client chose.
    fn place_conditions(&mut self, rooms: Option<&[i64]>, workshop: Option<i64>) -> Option<String> {
        let mut conditions = Vec::new();
        if let Some(rooms) = rooms {
            if rooms.is_empty() {
                return Some("false".to_owned());
            }
            conditions.push(self.rooms_condition(rooms));
        }
        if let Some(workshop) = workshop {
            let p = self.bind(Param::Int(workshop));
            conditions.push(format!("workshop_id = {p}"));
        }
        (!conditions.is_empty()).then(|| conditions.join(" AND "))
    }

    /// `column` (a session token) of a session placed in one of `rooms` and in `workshop`
    /// (`session_rooms`, see [`Statement::place_conditions`]); nothing when neither is given.
    fn placed_in(&mut self, column: &str, rooms: Option<&[i64]>, workshop: Option<i64>) {
        match self.place_conditions(rooms, workshop) {
            Some(condition) if condition == "false" => self.and("false"),
            Some(condition) => {
                self.and(&format!("{column} IN (SELECT session_token FROM session_rooms WHERE {condition})"))
            }
            None => {}
        }
    }
}

/// How an event query finds a student's events (both backends look the student up first: an
/// id and a session the planner can estimate, where a subquery by email left PostgreSQL
/// guessing one row per session and sorting the whole session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudentScope<'q> {
    /// A student already looked up: their id and, when they appear in exactly one session,
    /// that session (an equality that reads the session index in `event_id` order and stops at
    /// the limit).
    Resolved {
        /// `students.student_id`.
        student_id: i64,
        /// Their only session, if they have one only.
        only_session: Option<&'q str>,
    },
}

/// The event query `query` after `head` (the backend's `SELECT … FROM events e LEFT JOIN
/// students s … WHERE true`): its filters, the cursor, `ORDER BY e.event_id` in its order and
/// its limit. A student's events are found through their sessions (`session_students`, then the
/// session index: events have no index on `student_id`), never a placeholder per session.
pub fn events<'q>(
    dialect: Dialect,
    head: &str,
    query: &'q EventQuery,
    student: Option<StudentScope<'q>>,
) -> Statement<'q> {
    let mut statement = Statement::new(dialect, head);
    if let Some(token) = &query.session_token {
        let p = statement.bind(Param::Text(token));
        statement.and(&format!("e.session_token = {p}"));
    }
    match student {
        None => {}
        Some(StudentScope::Resolved { student_id, only_session }) => {
            match only_session {
                Some(token) => {
                    let p = statement.bind(Param::Text(token));
                    statement.and(&format!("e.session_token = {p}"));
                }
                None => {
                    let p = statement.bind(Param::Int(student_id));
                    statement.and(&format!(
                        "e.session_token IN (SELECT session_token FROM session_students WHERE student_id = {p})"
                    ));
                }
            }
            let p = statement.bind(Param::Int(student_id));
            statement.and(&format!("e.student_id = {p}"));
        }
    }
    statement.placed_in("e.session_token", query.rooms.as_deref(), query.workshop);
    event_conditions(&mut statement, query);
    let p = statement.bind(Param::Int(i64::from(query.limit)));
    statement.sql.push_str(&format!(" ORDER BY e.event_id {} LIMIT {p}", order_word(query.order)));
    statement
}

/// `ASC` or `DESC`.
fn order_word(order: Order) -> &'static str {
    match order {
        Order::Asc => "ASC",
        Order::Desc => "DESC",
    }
}

/// How an event query reads the events table, decided from the query alone (both backends
/// follow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventPlan<'q> {
    /// Rooms alone ([`events_of_rooms`]): through the events' room index.
    Rooms(&'q [i64]),
    /// A workshop, rooms with a workshop, or a lobby (its events carry no room): the sessions first ([`room_sessions`]), then
    /// [`events_of_sessions`] when there are at most [`MAX_SESSIONS_READ_APART`], else [`events`].
    Sessions,
    /// Everything else: [`events`].
    Direct,
}

/// The plan of `query`; `by_student` when it is limited to a student (their sessions lead).
pub fn event_plan(query: &EventQuery, by_student: bool) -> EventPlan<'_> {
    if by_student || query.session_token.is_some() {
        return EventPlan::Direct;
    }
    match (&query.rooms, query.workshop) {
        (Some(rooms), None)
            if !rooms.is_empty() && rooms.len() <= MAX_ROOMS_READ_APART && !rooms.contains(&LOBBY_ROOM_ID) =>
        {
            EventPlan::Rooms(rooms)
        }
        (None, None) => EventPlan::Direct,
        (Some(rooms), _) if rooms.is_empty() => EventPlan::Direct,
        _ => EventPlan::Sessions,
    }
}

/// Most sessions a room-limited event query reads one by one ([`events_of_sessions`]); past it
/// the query keeps the rooms' condition ([`events`]).
pub const MAX_SESSIONS_READ_APART: usize = 1000;

/// The sessions of `query`'s rooms and workshop (`session_rooms`), at most
/// [`MAX_SESSIONS_READ_APART`] + 1 of them (one more tells there are too many): what a
/// room-limited event query reads apart. One column, the token.
pub fn room_sessions(dialect: Dialect, query: &EventQuery) -> Statement<'_> {
    let mut statement = Statement::new(dialect, "SELECT session_token FROM session_rooms WHERE true");
    if let Some(condition) = statement.place_conditions(query.rooms.as_deref(), query.workshop) {
        statement.and(&condition);
    }
    statement.sql.push_str(&format!(" LIMIT {}", MAX_SESSIONS_READ_APART + 1));
    statement
}

/// The statement of event query `query` under `plan` ([`event_plan`]), for `student` when it
/// is limited to one; `sessions` are the sessions [`room_sessions`] found for an
/// [`EventPlan::Sessions`] plan (read apart when at most [`MAX_SESSIONS_READ_APART`], else
/// the rooms' condition), ignored for the others.
pub fn event_statement<'q>(
    dialect: Dialect,
    head: &str,
    query: &'q EventQuery,
    plan: EventPlan<'q>,
    student: Option<StudentScope<'q>>,
    sessions: &'q [String],
) -> Statement<'q> {
    match plan {
        EventPlan::Rooms(rooms) => events_of_rooms(dialect, head, query, rooms),
        EventPlan::Sessions if sessions.len() <= MAX_SESSIONS_READ_APART => {
            events_of_sessions(dialect, head, query, sessions)
        }
        _ => events(dialect, head, query, student),
    }
}

impl<'q> StudentScope<'q> {
    /// The scope of a student from [`resolved_student`].
    pub fn of((student_id, only_session): &'q (i64, Option<String>)) -> StudentScope<'q> {
        StudentScope::Resolved { student_id: *student_id, only_session: only_session.as_deref() }
    }
}

/// A student looked up by email as the event query takes them: their id and, when `sessions`
/// (up to two of theirs) holds exactly one, that session; `None` without a session.
pub fn resolved_student(student_id: i64, sessions: Vec<String>) -> Option<(i64, Option<String>)> {
    match sessions.len() {
        0 => None,
        1 => Some((student_id, sessions.into_iter().next())),
        _ => Some((student_id, None)),
    }
}

/// The event query `query` (limited to rooms or a workshop, without a session or student filter)
/// over `tokens`, the sessions of its rooms (from [`room_sessions`], at most
/// [`MAX_SESSIONS_READ_APART`]): the ids of each session's first `limit` events in order
/// through the session index (index entries alone when the query has no other condition),
/// the first `limit` ids of them all, then those rows. A page of a room then reads at most
/// sessions × limit index entries and `limit` rows however many events other rooms hold; the
/// rooms' condition instead walks every event in `event_id` order and keeps the room's (about
/// 1 in 200 with 200 rooms). Used for a workshop's events (events carry their room, not their
/// workshop); a query of rooms alone takes [`events_of_rooms`].
pub fn events_of_sessions<'q>(
    dialect: Dialect,
    head: &str,
    query: &'q EventQuery,
    tokens: &'q [String],
) -> Statement<'q> {
    events_by_parts(dialect, head, query, "e.session_token", tokens.iter().map(|t| Param::Text(t)))
}

/// Most rooms an event query reads one by one ([`events_of_rooms`]): a query names the rooms of
/// one token, and a token covering more keeps the rooms' condition ([`events`]).
pub const MAX_ROOMS_READ_APART: usize = 64;

/// The event query `query` limited to `rooms` alone (no workshop, session or student filter,
/// at most [`MAX_ROOMS_READ_APART`] rooms): the ids of each room's first `limit` events through
/// the events' room index (`idx_events_room`, `(room_id, event_id)`: each event carries its
/// session's room, rewritten when the session moves), the first `limit` of them, then those
/// rows. A page of a room reads rooms × limit index entries and `limit` rows, whatever the size
/// of the room or of the others.
pub fn events_of_rooms<'q>(dialect: Dialect, head: &str, query: &'q EventQuery, rooms: &'q [i64]) -> Statement<'q> {
    events_by_parts(dialect, head, query, "e.room_id", rooms.iter().map(|r| Param::Int(*r)))
}

/// `head` limited to the events whose `column` is one of `parts`, read part by part: a
/// `UNION ALL` of each part's first `limit` event ids in the query's order, the first `limit`
/// of those, then their rows in order.
fn events_by_parts<'q>(
    dialect: Dialect,
    head: &str,
    query: &'q EventQuery,
    column: &str,
    parts: impl Iterator<Item = Param<'q>>,
) -> Statement<'q> {
    let order = order_word(query.order);
    let mut statement = Statement::new(dialect, head);
    statement.sql.push_str(" AND e.event_id IN (SELECT event_id FROM (");
    for (i, part) in parts.enumerate() {
        if i > 0 {
            statement.sql.push_str(" UNION ALL ");
        }
        statement.sql.push_str("SELECT * FROM (SELECT e.event_id FROM events e WHERE true");
        let p = statement.bind(part);
        statement.and(&format!("{column} = {p}"));
        event_conditions(&mut statement, query);
        let p = statement.bind(Param::Int(i64::from(query.limit)));
        statement.sql.push_str(&format!(" ORDER BY e.event_id {order} LIMIT {p}) AS u{i}"));
    }
    let p = statement.bind(Param::Int(i64::from(query.limit)));
    statement.sql.push_str(&format!(") AS t ORDER BY event_id {order} LIMIT {p})"));
    statement.sql.push_str(&format!(" ORDER BY e.event_id {order}"));
    statement
}

/// The conditions of an event query past its session, student and place: type, time window
/// and cursor.
fn event_conditions<'q>(statement: &mut Statement<'q>, query: &'q EventQuery) {
    if let Some(event_type) = &query.event_type {
        let p = statement.bind(Param::Text(event_type));
        statement.and(&format!("e.event_type = {p}"));
    }
    if let Some(since) = &query.since {
        let p = statement.bind_time(since);
        statement.and(&format!("e.created_at >= {p}"));
    }
    if let Some(until) = &query.until {
        let p = statement.bind_time(until);
        statement.and(&format!("e.created_at < {p}"));
    }
    let compare = match query.order {
        Order::Asc => ">",
        Order::Desc => "<",
    };
    if let Some(cursor) = query.after {
        let p = statement.bind(Param::Int(cursor.position()));
        statement.and(&format!("e.event_id {compare} {p}"));
    }
}

/// The session query `query` after `head` (the backend's `SELECT … FROM sessions x LEFT JOIN
/// students s … WHERE true`): its filters, the cursor, its order and its limit. Reads the summaries only, never the events.
pub fn sessions<'q>(dialect: Dialect, head: &str, query: &'q SessionQuery) -> Statement<'q> {
    let mut statement = Statement::new(dialect, head);
    if let Some(email) = &query.student_email {
        let email = statement.email_equals(email);
        statement.and(&format!("x.student_id = (SELECT student_id FROM students WHERE {email})"));
    }
    statement.placed_in("x.session_token", query.rooms.as_deref(), query.workshop);
    if let Some(token) = &query.session_token {
        let p = statement.bind(Param::Text(token));
        statement.and(&format!("x.session_token = {p}"));
    }
    if let Some(since) = &query.since {
        let p = statement.bind_time(since);
        statement.and(&format!("x.last_seen >= {p}"));
    }
    if let Some(until) = &query.until {
        let p = statement.bind_time(until);
        statement.and(&format!("x.first_seen < {p}"));
    }
    match (query.order, &query.after) {
        (SessionOrder::RecentFirst, Some(after)) => {
            let seen = statement.bind_time(&after.last_seen);
            let token = statement.bind(Param::Text(&after.session_token));
            statement.and(&format!("(x.last_seen, x.session_token) < ({seen}, {token})"));
        }
        (SessionOrder::Token, Some(after)) => {
            let token = statement.bind(Param::Text(&after.session_token));
            statement.and(&format!("x.session_token > {token}"));
        }
        (_, None) => {}
    }
    let order = match query.order {
        SessionOrder::RecentFirst => "x.last_seen DESC, x.session_token DESC",
        SessionOrder::Token => "x.session_token",
    };
    let p = statement.bind(Param::Int(i64::from(query.limit)));
    statement.sql.push_str(&format!(" ORDER BY {order} LIMIT {p}"));
    statement
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::cursor::SessionCursor;

    // One filter chain renders to each backend's placeholders and time casts, parameters in order.
    #[test]
    fn a_session_query_renders_to_both_dialects() {
        let query = SessionQuery {
            student_email: Some("Ada@example.com".into()),
            since: Some("2026-12-07T10:00:00.000Z".into()),
            after: Some(SessionCursor { last_seen: "2026-12-07T11:00:00.000Z".into(), session_token: "ws_b".into() }),
            limit: 50,
            ..SessionQuery::default()
        };
        let sqlite = sessions(Dialect::Sqlite, "SELECT 1 FROM sessions x WHERE true", &query);
        assert_eq!(
            sqlite.sql,
            "SELECT 1 FROM sessions x WHERE true AND x.student_id = (SELECT student_id FROM students WHERE email = ?1) \
             AND x.last_seen >= ?2 AND (x.last_seen, x.session_token) < (?3, ?4) \
             ORDER BY x.last_seen DESC, x.session_token DESC LIMIT ?5"
        );
        let postgres = sessions(Dialect::Postgres, "SELECT 1 FROM sessions x WHERE true", &query);
        assert!(postgres.sql.contains("lower(email) = lower($1)"), "{}", postgres.sql);
        assert!(postgres.sql.contains("x.last_seen >= $2::text::timestamptz"), "{}", postgres.sql);
        assert_eq!(sqlite.params, postgres.params);
        assert_eq!(sqlite.params[0], Param::Text("Ada@example.com"));
        assert_eq!(sqlite.params[4], Param::Int(50));
    }

    // Token order pages by the token alone, a key that arriving events do not move.
    #[test]
    fn token_order_pages_by_token() {
        let query = SessionQuery {
            since: Some("2026-12-07T10:00:00.000Z".into()),
            order: SessionOrder::Token,
            after: Some(SessionCursor { last_seen: "2026-12-07T11:00:00.000Z".into(), session_token: "ws_b".into() }),
            limit: 500,
            ..SessionQuery::default()
        };
        let sqlite = sessions(Dialect::Sqlite, "H", &query);
        assert_eq!(sqlite.sql, "H AND x.last_seen >= ?1 AND x.session_token > ?2 ORDER BY x.session_token LIMIT ?3");
        assert_eq!(sqlite.params[1], Param::Text("ws_b"));
    }

    // A student resolved to one session is an equality on it; on several, the stored relation.
    #[test]
    fn a_students_events_go_through_their_sessions() {
        let query = EventQuery { limit: 10, ..EventQuery::default() };
        let one = events(
            Dialect::Sqlite,
            "H",
            &query,
            Some(StudentScope::Resolved { student_id: 7, only_session: Some("ws_a") }),
        );
        assert_eq!(one.sql, "H AND e.session_token = ?1 AND e.student_id = ?2 ORDER BY e.event_id DESC LIMIT ?3");
        let many =
            events(Dialect::Sqlite, "H", &query, Some(StudentScope::Resolved { student_id: 7, only_session: None }));
        assert!(many.sql.contains("IN (SELECT session_token FROM session_students WHERE student_id = ?1)"));
        assert_eq!(many.params, [Param::Int(7), Param::Int(7), Param::Int(10)]);
    }

    // Rooms alone are read through the events' room index; a lobby, a workshop or a student
    // through their sessions; the lobby is the sessions with no room.
    #[test]
    fn event_plans_follow_the_query() {
        let rooms = EventQuery { rooms: Some(vec![3, 4]), ..EventQuery::default() };
        assert_eq!(event_plan(&rooms, false), EventPlan::Rooms(&[3, 4]));
        assert_eq!(event_plan(&rooms, true), EventPlan::Direct);
        let with_workshop = EventQuery { rooms: Some(vec![3]), workshop: Some(1), ..EventQuery::default() };
        assert_eq!(event_plan(&with_workshop, false), EventPlan::Sessions);
        let lobby = EventQuery { rooms: Some(vec![LOBBY_ROOM_ID, 3]), ..EventQuery::default() };
        assert_eq!(event_plan(&lobby, false), EventPlan::Sessions);
        let sessions = room_sessions(Dialect::Postgres, &lobby);
        assert_eq!(
            sessions.sql,
            "SELECT session_token FROM session_rooms WHERE true AND (room_id IN ($1) OR room_id IS NULL) LIMIT 1001"
        );
        assert_eq!(sessions.params, [Param::Int(3)]);
        let by_rooms = events_of_rooms(Dialect::Sqlite, "H", &rooms, &[3, 4]);
        assert_eq!(
            by_rooms.sql,
            "H AND e.event_id IN (SELECT event_id FROM (\
             SELECT * FROM (SELECT e.event_id FROM events e WHERE true AND e.room_id = ?1 ORDER BY e.event_id DESC LIMIT ?2) AS u0 \
             UNION ALL SELECT * FROM (SELECT e.event_id FROM events e WHERE true AND e.room_id = ?3 ORDER BY e.event_id DESC LIMIT ?4) AS u1\
             ) AS t ORDER BY event_id DESC LIMIT ?5) ORDER BY e.event_id DESC"
        );
    }
}
