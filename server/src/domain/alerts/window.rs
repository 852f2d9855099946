//! The rules' bounded memory: sliding windows of times, and forgetting the least recently seen
//! keys of a map that clients fill.

use std::collections::{HashMap, VecDeque};

/// At most this many times are kept per window (a session's errors, one error type's errors in
/// one session, one step's ended visits): memory stays bounded whatever a page sends, and a count
/// past it reads as this many.
pub(super) const KEPT: usize = 1000;

/// Drops the times before `cutoff` from the front of `times` (oldest first).
pub(super) fn age_times(times: &mut VecDeque<i64>, cutoff: i64) {
    while times.front().is_some_and(|t| *t < cutoff) {
        times.pop_front();
    }
}

/// Appends `t`, keeping at most [`KEPT`] times.
pub(super) fn push_time(times: &mut VecDeque<i64>, t: i64) {
    times.push_back(t);
    if times.len() > KEPT {
        times.pop_front();
    }
}

/// Forgets the least recently seen tenth of `map` once it holds more than `cap` keys; `last`
/// gives a key's latest time, or `None` for a key that must stay. Returns how many went.
pub(super) fn evict_oldest<V>(map: &mut HashMap<String, V>, cap: usize, last: impl Fn(&str, &V) -> Option<i64>) -> u64 {
    if map.len() <= cap {
        return 0;
    }
    let mut ages: Vec<(i64, String)> = map.iter().filter_map(|(k, v)| Some((last(k, v)?, k.clone()))).collect();
    let excess = (map.len() - cap * 9 / 10).min(ages.len());
    if excess == 0 {
        return 0;
    }
    ages.select_nth_unstable(excess - 1);
    for (_, key) in ages.drain(..excess) {
        map.remove(&key);
    }
    excess as u64
}
