//! The memoisation policies, as Rasa 3.6's `MemoizationPolicy` and
//! `AugmentedMemoizationPolicy`: every story action is remembered under the latest
//! `max_history` states before it (a history that two stories follow with different actions is
//! forgotten); the augmented policy, when the whole history is unknown, forgets the oldest turns
//! one action at a time (and the slots they set) until a remembered history matches.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::{Featurizer, State, applied_events, rasa_key};
use super::training::TrainingTracker;
use crate::tracker::{ACTION_LISTEN, Event};

/// A memoisation policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memo {
    /// Longest history looked at.
    pub max_history: usize,
    /// Back off to shorter histories (`AugmentedMemoizationPolicy`).
    pub augmented: bool,
    /// History key to the action that follows it.
    pub lookup: BTreeMap<String, String>,
}

impl Memo {
    /// Remembers the stories.
    pub fn train(
        f: &Featurizer,
        stories: &[TrainingTracker],
        max_history: usize,
        augmented: bool,
    ) -> Self {
        let max_history = max_history.max(1);
        let mut lookup: BTreeMap<String, String> = BTreeMap::new();
        let mut ambiguous: Vec<String> = Vec::new();
        for t in stories {
            let (states, actions) = f.states_and_actions(&t.events, false, true);
            for (j, a) in actions.iter().enumerate() {
                if j == 0 && t.first_action_unpredictable {
                    continue;
                }
                let key = rasa_key(&states[(j + 1).saturating_sub(max_history)..=j]);
                if ambiguous.contains(&key) {
                    continue;
                }
                match lookup.get(&key) {
                    Some(b) if b != a => {
                        lookup.remove(&key);
                        ambiguous.push(key);
                    }
                    Some(_) => {}
                    None => {
                        lookup.insert(key, a.clone());
                    }
                }
            }
        }
        Self {
            max_history,
            augmented,
            lookup,
        }
    }

    fn recall(&self, states: &[State]) -> Option<&String> {
        let tail = &states[states.len().saturating_sub(self.max_history)..];
        self.lookup.get(&rasa_key(tail))
    }

    /// The remembered action after the conversation `events`.
    pub fn predict(&self, f: &Featurizer, events: &[Event]) -> Option<String> {
        let states = f.states(events, false, true);
        if let Some(a) = self.recall(&states) {
            return Some(a.clone());
        }
        if !self.augmented {
            return None;
        }
        // 1) keep the turns of the latest `max_history` actions (from an `action_listen`);
        // 2) drop the leading events up to the first action, then up to each next action, and
        //    recall with what remains (slots set in what was dropped are forgotten).
        let applied = applied_events(events);
        let mut window: &[Event] = &applied;
        let mut actions = 0;
        for (k, e) in applied.iter().enumerate().rev() {
            if let Event::Action { name, .. } = e {
                actions += 1;
                if actions > self.max_history && name == ACTION_LISTEN {
                    window = &applied[k..];
                    break;
                }
            }
        }
        let action_at = |w: &[Event], nth: usize| {
            w.iter()
                .enumerate()
                .filter(|(_, e)| matches!(e, Event::Action { .. }))
                .nth(nth)
                .map(|(i, _)| i)
        };
        let mut truncated: Option<&[Event]> = action_at(window, 0).map(|i| &window[i..]);
        let mut old = states;
        while let Some(w) = truncated {
            let states = f.states(w, false, true);
            if states != old {
                if let Some(a) = self.recall(&states) {
                    return Some(a.clone());
                }
                old = states;
            }
            truncated = action_at(w, 1).map(|i| &w[i..]);
        }
        None
    }
}
