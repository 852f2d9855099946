//! Vacuum and analyze when the PostgreSQL server's autovacuum is off.
//!
//! Every commit rewrites its sessions' summaries (`sessions` rows), so that table gathers dead
//! rows as fast as events arrive. With autovacuum off (a setting some operators and CI images
//! use), nothing reclaims them: measured on such a server, 20,000 sessions took 12-13 GB after
//! 10,000,000 events, `/api/report` read all of it on every call, and no table had planner
//! statistics. So the leader (one server per database) checks every [`CHECK_EVERY`] whether
//! autovacuum is on and, while it is off, does its work for session-log's own tables with its
//! rules: `VACUUM` after `threshold + scale × live rows` dead rows or inserts since the last
//! vacuum, `ANALYZE` after `50 + 10 %` rows changed since the last analyze; and, as autovacuum
//! does, with its cost-based delay (`THROTTLE`), so a vacuum of `events` yields to ingest.
//! `sessions` uses the fixed threshold of migration V4 (2,000 dead rows). With autovacuum on it
//! does nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// How often the leader looks at the tables' counters.
const CHECK_EVERY: Duration = Duration::from_secs(10);

/// When a table is vacuumed: after `threshold + scale × live` dead rows (autovacuum's
/// `autovacuum_vacuum_threshold`/`_scale_factor`), or after `insert_threshold + scale × live`
/// inserted rows (`autovacuum_vacuum_insert_threshold`, PostgreSQL 13 and later: it keeps the
/// visibility map current on insert-only tables such as `events`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Dead rows that trigger a vacuum regardless of the table's size.
    pub threshold: i64,
    /// Inserted rows that trigger a vacuum regardless of the table's size.
    pub insert_threshold: i64,
    /// Fraction of the live rows added to both thresholds.
    pub scale: f64,
    /// Whether the vacuum sleeps as autovacuum's does (its cost-based delay, see [`THROTTLE`]);
    /// `sessions` is not throttled, as migration V4 sets for autovacuum.
    pub throttled: bool,
}

/// PostgreSQL's defaults (50 dead rows + 20 %, 1,000 inserted rows + 20 %).
const DEFAULT_RULE: Rule = Rule { threshold: 50, insert_threshold: 1000, scale: 0.2, throttled: true };

/// Returns autovacuum's cost-based delay (`autovacuum_vacuum_cost_delay`, 2 ms by default; `-1`
/// means the plain `vacuum_cost_delay`), which a [`Rule::throttled`] vacuum sleeps by, and sets
/// this connection's cost limit to autovacuum's (`autovacuum_vacuum_cost_limit`, 200 by default
/// through `vacuum_cost_limit`): a manual `VACUUM` does not sleep at all, and an unthrottled
/// vacuum of `events` under load took 3.5% of the benchmark machine's CPU in bursts, beside
/// ingest (`perf`, 16 clients).
const THROTTLE: &str = "SELECT CASE WHEN current_setting('autovacuum_vacuum_cost_delay') IN ('-1', '-1ms')
              THEN current_setting('vacuum_cost_delay')
              ELSE current_setting('autovacuum_vacuum_cost_delay') END,
     set_config('vacuum_cost_limit',
         CASE WHEN current_setting('autovacuum_vacuum_cost_limit') = '-1'
              THEN current_setting('vacuum_cost_limit')
              ELSE current_setting('autovacuum_vacuum_cost_limit') END, false)";

/// session-log's tables and their rules: `sessions` as in migration V4.
const TABLES: [(&str, Rule); 6] = [
    ("sessions", Rule { threshold: 2000, insert_threshold: 2000, scale: 0.0, throttled: false }),
    ("students", DEFAULT_RULE),
    ("session_students", DEFAULT_RULE),
    ("events", DEFAULT_RULE),
    ("alerts", DEFAULT_RULE),
    ("alert_changes", DEFAULT_RULE),
];

/// A table's counters from `pg_stat_user_tables`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    /// `n_live_tup`.
    pub live: i64,
    /// `n_dead_tup`.
    pub dead: i64,
    /// `n_ins_since_vacuum`.
    pub inserted_since_vacuum: i64,
    /// `n_mod_since_analyze`.
    pub modified_since_analyze: i64,
}

/// What a table needs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Nothing.
    None,
    /// `ANALYZE`.
    Analyze,
    /// `VACUUM`, with `ANALYZE` when `analyze` is true.
    Vacuum { analyze: bool },
}

/// What `counters` call for under `rule` (autovacuum's decision, `autovacuum.c`
/// `relation_needs_vacanalyze`).
pub fn needed(rule: Rule, counters: Counters) -> Work {
    let live = counters.live.max(0) as f64;
    let vacuum = counters.dead as f64 > rule.threshold as f64 + rule.scale * live
        || counters.inserted_since_vacuum as f64 > rule.insert_threshold as f64 + rule.scale * live;
    let analyze = counters.modified_since_analyze as f64 > 50.0 + 0.1 * live;
    match (vacuum, analyze) {
        (true, analyze) => Work::Vacuum { analyze },
        (false, true) => Work::Analyze,
        (false, false) => Work::None,
    }
}

/// Runs until the runtime stops: while `leader` is set and autovacuum is off, vacuums and
/// analyzes session-log's tables as [`needed`] says, every [`CHECK_EVERY`], on a connection of
/// its own (a vacuum of `events` can take a while, and must not hold one of the readers' pooled
/// connections). Failures (the database away) are logged at debug level and retried at the next
/// check, on a new connection.
pub(super) async fn maintain(pg: tokio_postgres::Config, leader: Arc<AtomicBool>) {
    let mut warned = false;
    let mut connection: Option<(Client, tokio::task::JoinHandle<()>)> = None;
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        if !leader.load(Ordering::SeqCst) {
            continue;
        }
        if connection.as_ref().is_none_or(|(client, _)| client.is_closed()) {
            connection = match pg.connect(NoTls).await {
                Ok((client, driver)) => Some((client, tokio::spawn(async move { drop(driver.await) }))),
                Err(error) => {
                    tracing::debug!(%error, "the vacuum check cannot connect; trying again later");
                    continue;
                }
            };
        }
        let Some((client, _)) = &connection else { continue };
        if let Err(error) = check(client, &mut warned).await {
            tracing::debug!(%error, "vacuum check failed; trying again later");
            if let Some((_, driver)) = connection.take() {
                driver.abort();
            }
        }
    }
}

async fn check(client: &Client, warned: &mut bool) -> Result<(), tokio_postgres::Error> {
    let on: bool = client.query_one("SELECT current_setting('autovacuum') = 'on'", &[]).await?.get(0);
    if on {
        return Ok(());
    }
    if !*warned {
        *warned = true;
        tracing::warn!(
            every_s = CHECK_EVERY.as_secs(),
            "autovacuum is off on this PostgreSQL server: session-log vacuums and analyzes its own tables"
        );
    }
    let throttle: String = client.query_one(THROTTLE, &[]).await?.get(0);
    for (table, rule) in TABLES {
        let row = client
            .query_opt(
                "SELECT n_live_tup, n_dead_tup, n_ins_since_vacuum, n_mod_since_analyze
                 FROM pg_stat_user_tables WHERE relid = to_regclass($1)",
                &[&table],
            )
            .await?;
        let Some(row) = row else { continue };
        let counters = Counters {
            live: row.get(0),
            dead: row.get(1),
            inserted_since_vacuum: row.get(2),
            modified_since_analyze: row.get(3),
        };
        // Table names are the constants above, never input.
        let statement = match needed(rule, counters) {
            Work::None => continue,
            Work::Analyze => format!("ANALYZE {table}"),
            Work::Vacuum { analyze: false } => format!("VACUUM {table}"),
            Work::Vacuum { analyze: true } => format!("VACUUM (ANALYZE) {table}"),
        };
        let delay = if rule.throttled { throttle.as_str() } else { "0" };
        client.query_one("SELECT set_config('vacuum_cost_delay', $1, false)", &[&delay]).await?;
        let started = std::time::Instant::now();
        client.batch_execute(&statement).await?;
        tracing::debug!(%statement, dead = counters.dead, ms = started.elapsed().as_millis() as u64, "vacuumed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The sessions rule vacuums after 2,000 dead rows whatever the table's size; the default
    // rule waits for 20 % of a large table.
    #[test]
    fn thresholds_follow_autovacuum() {
        let sessions = TABLES[0].1;
        let dead = |dead| Counters { live: 1_000_000, dead, ..Counters::default() };
        assert_eq!(needed(sessions, dead(2001)), Work::Vacuum { analyze: false });
        assert_eq!(needed(sessions, dead(2000)), Work::None);
        assert_eq!(needed(DEFAULT_RULE, dead(2001)), Work::None);
        assert_eq!(needed(DEFAULT_RULE, dead(200_051)), Work::Vacuum { analyze: false });
    }

    // Inserts alone call for a vacuum (the visibility map) and changed rows for an analyze.
    #[test]
    fn inserts_and_changes() {
        let counters = Counters { live: 10_000, inserted_since_vacuum: 3001, modified_since_analyze: 1051, dead: 0 };
        assert_eq!(needed(DEFAULT_RULE, counters), Work::Vacuum { analyze: true });
        let fresh = Counters { live: 0, modified_since_analyze: 51, ..Counters::default() };
        assert_eq!(needed(DEFAULT_RULE, fresh), Work::Analyze);
        assert_eq!(needed(DEFAULT_RULE, Counters { live: 10_000, ..Counters::default() }), Work::None);
    }
}
