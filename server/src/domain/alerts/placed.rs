//! [`PlacedEngines`]: the rules run per room. Each place (a workshop's room, or its lobby) has
//! its own [`AlertEngine`]: its own medians for `stuck`, its own pause, error patterns, failing
//! endpoints and help requests, so one cohort's coffee break or one workshop's step 2 says
//! nothing about another's. Every change leaves stamped with its place's workshop slug and room
//! code ([`Alert::workshop`], [`Alert::room`]).
//!
//! Places are named by their workshop slug and room join code ([`Label`]), which never change
//! and are what alerts carry. They exist only as an admin creates workshops and rooms (a
//! session's place is what the server stored, never a name a client sent), so the engines are
//! bounded by the directory, and each bounds its own sessions and keys.

use std::collections::BTreeMap;

use super::engine::AlertEngine;
use super::model::{Alert, AlertChange, AlertRules, Observed};

/// The workshop every alert stored before rooms belongs to.
pub const DEFAULT_WORKSHOP: &str = "default";

/// A place as alerts name it: the workshop's slug and the room's join code (`None`: the lobby).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// The workshop's slug.
    pub workshop: String,
    /// The room's join code; `None` for the workshop's lobby.
    pub room: Option<String>,
}

impl Label {
    /// The place `alert` was raised in; an alert stored before rooms is `default`'s lobby.
    pub fn of(alert: &Alert) -> Label {
        Label {
            workshop: alert.workshop.clone().unwrap_or_else(|| DEFAULT_WORKSHOP.to_owned()),
            room: alert.room.clone(),
        }
    }

    fn stamp(&self, changes: &mut [AlertChange]) {
        for change in changes {
            change.alert.workshop = Some(self.workshop.clone());
            change.alert.room.clone_from(&self.room);
        }
    }
}

/// One [`AlertEngine`] per place, made when the place's first event (or restored alert, or
/// instructor's mute) arrives. An engine stays while its leader leads: a room quiet over lunch
/// keeps its medians (the `stuck` rule's history spans `room_window`, 2 hours by default).
#[derive(Debug)]
pub struct PlacedEngines {
    rules: AlertRules,
    engines: BTreeMap<Label, AlertEngine>,
}

impl PlacedEngines {
    /// Engines for the places of `open` (alerts still open from before, see
    /// [`AlertEngine::new`]), each restoring its own.
    pub fn new(rules: AlertRules, open: Vec<Alert>) -> PlacedEngines {
        let mut by_place: BTreeMap<Label, Vec<Alert>> = BTreeMap::new();
        for alert in open {
            by_place.entry(Label::of(&alert)).or_default().push(alert);
        }
        let engines =
            by_place.into_iter().map(|(label, open)| (label, AlertEngine::new(rules.clone(), open))).collect();
        PlacedEngines { rules, engines }
    }

    fn engine(&mut self, label: &Label) -> &mut AlertEngine {
        if !self.engines.contains_key(label) {
            self.engines.insert(label.clone(), AlertEngine::new(self.rules.clone(), Vec::new()));
        }
        self.engines.get_mut(label).expect("inserted above")
    }

    /// Feeds one stored event of a session placed at `label` to that place's rules (see
    /// [`AlertEngine::observe`]); the changes carry the place.
    pub fn observe(&mut self, label: &Label, event: &Observed<'_>) -> Vec<AlertChange> {
        let mut changes = self.engine(label).observe(event);
        label.stamp(&mut changes);
        changes
    }

    /// Takes in a stored change of `alert` (see [`AlertEngine::settle`]), in its own place;
    /// returns the new request of a session that asked again after a close, stamped with the place.
    pub fn settle(&mut self, alert: &Alert, now: i64) -> Option<AlertChange> {
        let label = Label::of(alert);
        let mut reopened = self.engine(&label).settle(alert, now);
        label.stamp(reopened.as_mut_slice());
        reopened
    }

    /// Advances every place to `now` (see [`AlertEngine::tick`]).
    pub fn tick(&mut self, now: i64) -> Vec<AlertChange> {
        let mut all = Vec::new();
        for (label, engine) in &mut self.engines {
            let mut changes = engine.tick(now);
            label.stamp(&mut changes);
            all.extend(changes);
        }
        all
    }

    /// Sets the earlier rooms' step medians of the room `label` (see
    /// [`AlertEngine::set_earlier_medians`]).
    pub fn set_earlier_medians(&mut self, label: &Label, medians: std::collections::HashMap<i64, i64>) {
        self.engine(label).set_earlier_medians(medians);
    }

    /// The rooms (not lobbies) with an engine now.
    pub fn rooms(&self) -> Vec<Label> {
        self.engines.keys().filter(|l| l.room.is_some()).cloned().collect()
    }

    /// Keys forgotten so far to keep memory bounded, over every place.
    pub fn evicted(&self) -> u64 {
        self.engines.values().map(AlertEngine::evicted).sum()
    }

    /// Places with an engine now.
    pub fn places(&self) -> usize {
        self.engines.len()
    }
}
