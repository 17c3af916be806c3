//! Dialogue policies: what the assistant does next, from the conversation so far (Rasa 3.6's
//! policy ensemble). Every policy reads the conversation through [`state`]; the rule policy
//! ([`rules`]) wins with confidence 1 and the highest priority, then memorised stories
//! ([`memo`]), then the trained policy where its confidence beats the fallback threshold, then
//! the fallback action. Stories and rules become training trackers in [`training`].

pub mod memo;
pub mod rules;
pub mod state;
pub mod training;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use state::{Featurizer, RULE_SNIPPET_ACTION, SHOULD_NOT_BE_SET, State};

use crate::tracker::{ACTION_LISTEN, Event, Tracker};
use memo::Memo;
use rules::{Contradiction, RulePolicy};
use training::TrainingTracker;

/// The policies `config.yml` lists, with their settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyChoice {
    /// `RulePolicy` is listed.
    pub rules: bool,
    /// `MemoizationPolicy` or `AugmentedMemoizationPolicy` is listed: its `max_history` and
    /// whether it backs off.
    pub memo: Option<(usize, bool)>,
    /// `TEDPolicy` (or `DuetPolicy`) is listed.
    pub learned: bool,
    /// The action `RulePolicy` predicts when nothing applies.
    pub fallback_action: String,
    /// The confidence of that fallback (what the trained policy must beat).
    pub fallback_threshold: f64,
    /// Whether `RulePolicy` predicts the fallback at all.
    pub fallback_enabled: bool,
}

impl PolicyChoice {
    /// Reads `config.yml`'s policies (none listed: Rasa's defaults).
    pub fn of(config: &crate::project::Config) -> Self {
        let names: Vec<&str> = config
            .policies
            .iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .collect();
        let default = names.is_empty();
        let has = |n: &str| default || names.contains(&n);
        let memo = if names.contains(&"AugmentedMemoizationPolicy") {
            Some((
                config.setting("AugmentedMemoizationPolicy", "max_history"),
                true,
            ))
        } else if has("MemoizationPolicy") {
            Some((config.setting("MemoizationPolicy", "max_history"), false))
        } else {
            None
        }
        .map(|(h, aug)| (h.and_then(Value::as_u64).map_or(5, |v| v as usize), aug));
        let rule = |k: &str| config.setting("RulePolicy", k);
        Self {
            rules: has("RulePolicy"),
            memo,
            learned: has("TEDPolicy") || names.contains(&"DuetPolicy"),
            fallback_action: rule("core_fallback_action_name")
                .and_then(Value::as_str)
                .unwrap_or("action_default_fallback")
                .to_owned(),
            fallback_threshold: rule("core_fallback_threshold")
                .and_then(Value::as_f64)
                .unwrap_or(0.3),
            fallback_enabled: rule("enable_fallback_prediction")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        }
    }
}

/// The trained policies of an assistant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policies {
    /// States to features.
    pub featurizer: Featurizer,
    /// Which policies run.
    pub choice: PolicyChoice,
    /// The rule policy.
    pub rules: Option<RulePolicy>,
    /// The memoisation policy.
    pub memo: Option<Memo>,
}

/// A predicted action and who predicted it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The action.
    pub action: String,
    /// `RulePolicy`, `MemoizationPolicy`, `TEDPolicy` or the fallback's policy.
    pub policy: &'static str,
    /// Confidence.
    pub confidence: f64,
    /// Events the prediction adds before the action runs (`loop_interrupted`).
    pub events: Vec<Event>,
    /// A rule turn no story continues: hidden from the memoisation and trained policies.
    pub hide_rule_turn: bool,
}

impl Prediction {
    fn new(action: String, policy: &'static str, confidence: f64) -> Self {
        Self {
            action,
            policy,
            confidence,
            events: Vec::new(),
            hide_rule_turn: false,
        }
    }
}

impl Policies {
    /// Learns from stories and rules; the contradictions Rasa's rule policy reports stop it.
    pub fn train(
        mut featurizer: Featurizer,
        choice: PolicyChoice,
        stories: &[TrainingTracker],
        rules: &[TrainingTracker],
    ) -> Result<Self, Vec<Contradiction>> {
        // Slots and loops that only rules use do not reach the memoisation or trained policy.
        let (rule_slots, rule_loops) = used(&featurizer, rules, true);
        let (story_slots, story_loops) = used(&featurizer, stories, false);
        featurizer.rule_only_slots = rule_slots.difference(&story_slots).cloned().collect();
        featurizer.rule_only_loops = rule_loops.difference(&story_loops).cloned().collect();
        let rule_policy = if choice.rules {
            let mut r = RulePolicy::train(&featurizer, rules, stories);
            let found = r.contradictions(&featurizer, rules, stories, &choice.fallback_action);
            if !found.is_empty() {
                return Err(found);
            }
            Some(r)
        } else {
            None
        };
        let memo = choice
            .memo
            .map(|(h, aug)| Memo::train(&featurizer, stories, h, aug));
        Ok(Self {
            featurizer,
            choice,
            rules: rule_policy,
            memo,
        })
    }

    /// The next action for `tracker`.
    pub fn predict(&self, tracker: &Tracker) -> Prediction {
        self.predict_with(tracker, None)
    }

    /// The next action for `tracker`, asking the trained policy where rules and memorised
    /// stories do not know.
    pub fn predict_with(
        &self,
        tracker: &Tracker,
        learned: Option<&crate::learned::LearnedPolicy>,
    ) -> Prediction {
        if let Some(a) = &tracker.followup_action {
            return Prediction::new(a.clone(), "RulePolicy", 1.0);
        }
        let events = &tracker.events;
        if let Some(r) = &self.rules {
            let states = self.featurizer.states(events, false, false);
            let p = r.predict(tracker, &states);
            if let Some(action) = p.action {
                let mut out = Prediction::new(action, "RulePolicy", 1.0);
                out.hide_rule_turn = p.hide;
                if p.loop_interrupted {
                    out.events.push(Event::LoopInterrupted {
                        is_interrupted: true,
                        timestamp: crate::tracker::now(),
                    });
                }
                return out;
            }
        }
        if let Some(m) = &self.memo
            && let Some(a) = m.predict(&self.featurizer, events)
        {
            let name = if m.augmented {
                "AugmentedMemoizationPolicy"
            } else {
                "MemoizationPolicy"
            };
            return Prediction::new(a, name, 1.0);
        }
        let fallback = self.choice.rules && self.choice.fallback_enabled;
        if let Some(l) = learned {
            let states = self.featurizer.states(events, false, true);
            match l.rank(&states) {
                Ok(ranked) => {
                    if let Some((action, p)) = ranked.into_iter().next()
                        && (!fallback || p > self.choice.fallback_threshold)
                    {
                        return Prediction::new(action, "TEDPolicy", p);
                    }
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
        if fallback {
            return Prediction::new(
                self.choice.fallback_action.clone(),
                "RulePolicy",
                self.choice.fallback_threshold,
            );
        }
        Prediction::new(ACTION_LISTEN.into(), "none", 0.0)
    }
}

/// Slots and loops the states of some trackers mention.
fn used(
    f: &Featurizer,
    trackers: &[TrainingTracker],
    rules: bool,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    let mut slots = std::collections::BTreeSet::new();
    let mut loops = std::collections::BTreeSet::new();
    for t in trackers {
        for s in f.states(&t.events, rules, false) {
            slots.extend(s.slots.into_iter().map(|(k, _)| k));
            if let Some(l) = s.active_loop.filter(|l| l != SHOULD_NOT_BE_SET) {
                loops.insert(l);
            }
        }
    }
    (slots, loops)
}
