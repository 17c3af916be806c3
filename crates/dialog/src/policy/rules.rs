//! The rule policy, as Rasa 3.6's `RulePolicy` builds and applies it:
//! 1. every rule becomes a tracker (conditions, the snippet action `...`, its steps); each of
//!    its actions is keyed by the states since the last `...` (so an action right after `...`,
//!    the rule's leading action, gets no key);
//! 2. keys that two rules give different actions are dropped;
//! 3. from rules and stories alike, the states inside an active loop give the unhappy-path
//!    conditions: the loop was interrupted (come back without validating), or another action
//!    runs instead of the loop;
//! 4. prediction: Rasa's default intents, then the active loop's happy path, then the longest
//!    applicable rule; an `action_listen` a general rule predicts inside a loop becomes the loop.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::{Featurizer, RULE_SNIPPET_ACTION, SHOULD_NOT_BE_SET, State, rasa_key};
use super::training::TrainingTracker;
use crate::tracker::{ACTION_LISTEN, Event, Tracker};

/// What the unhappy-path states of a loop say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoopCondition {
    /// The loop runs again after an unhappy path: it must not validate the latest message.
    WasInterrupted,
    /// Another action runs here instead of the loop.
    DoNotPredictLoop,
}

/// A learned rule: the states it requires and the action that follows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleKey {
    /// The key as Rasa writes it (its length breaks ties between applicable rules).
    pub key: String,
    /// The states, oldest first.
    pub states: Vec<State>,
    /// The action.
    pub action: String,
}

/// Where a prediction came from, as Rasa names its sources.
pub const DEFAULT_RULES: &str = "predicting default action with intent ";
/// Source prefix of the loop happy path.
pub const LOOP_RULES: &str = "handling active loops and forms - ";

/// Rasa's default intents and the actions they always trigger.
pub const DEFAULT_ACTION_MAPPINGS: &[(&str, &str)] = &[
    ("restart", "action_restart"),
    ("back", "action_back"),
    ("session_start", "action_session_start"),
];

/// The rule policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RulePolicy {
    /// The rules.
    pub rules: Vec<RuleKey>,
    /// Unhappy-path conditions of loops.
    pub unhappy: Vec<(Vec<State>, LoopCondition)>,
    /// Sources of rules that no story continues: their turns are hidden from the
    /// memoisation and trained policies (Rasa's `rules_not_in_stories`).
    #[serde(default)]
    pub not_in_stories: std::collections::BTreeSet<String>,
}

/// What the rule policy predicts.
#[derive(Debug, Clone, PartialEq)]
pub struct RulePrediction {
    /// The action (`None`: no rule applies).
    pub action: Option<String>,
    /// Where it came from (a rule key, a default or loop source, or the states' key).
    pub source: String,
    /// The loop comes back after an unhappy path (Rasa's `LoopInterrupted` event).
    pub loop_interrupted: bool,
    /// The loop's happy path: no user input was looked at.
    pub no_user: bool,
    /// The rule is one no story continues: its turn is hidden from the other policies.
    pub hide: bool,
}

/// Rasa's `_create_feature_key` for rules: the states after the last snippet state.
pub fn snippet_tail(states: &[State]) -> &[State] {
    let start = states
        .iter()
        .rposition(|s| s.prev_action.as_deref() == Some(RULE_SNIPPET_ACTION))
        .map_or(0, |i| i + 1);
    &states[start..]
}

/// Rasa's `_does_rule_match_state`: everything the rule state says holds in the conversation.
fn state_matches(rule: &State, conv: &State) -> bool {
    let eq = |r: &Option<String>, c: &Option<String>| match r.as_deref() {
        None => true,
        Some(SHOULD_NOT_BE_SET) => c.as_deref().is_none_or(|c| c == SHOULD_NOT_BE_SET),
        Some(v) => c.as_deref() == Some(v),
    };
    eq(&rule.prev_action, &conv.prev_action)
        && eq(&rule.intent, &conv.intent)
        && eq(&rule.text, &conv.text)
        && eq(&rule.active_loop, &conv.active_loop)
        && (rule.entities.is_empty() || rule.entities == conv.entities)
        && rule.slots.iter().all(|(k, v)| {
            let c = conv.slots.iter().find(|(ck, _)| ck == k).map(|(_, cv)| cv);
            if v == SHOULD_NOT_BE_SET {
                c.is_none_or(|c| c == SHOULD_NOT_BE_SET)
            } else {
                c == Some(v)
            }
        })
}

/// Rasa's `_is_rule_applicable` over all turns: the rule's states, aligned at the end, match
/// the conversation's (a state without a previous action only matches another).
pub fn applicable(rule: &[State], conv: &[State]) -> bool {
    conv.iter().rev().enumerate().all(|(i, c)| {
        if i >= rule.len() {
            return true;
        }
        let r = &rule[rule.len() - 1 - i];
        match (&r.prev_action, &c.prev_action) {
            (None, None) => true,
            (None, _) | (_, None) => false,
            _ => state_matches(r, c),
        }
    })
}

/// Rasa's `_states_for_unhappy_loop_predictions`: the last state and the action before it.
fn unhappy_states(states: &[State]) -> Vec<State> {
    let n = states.len();
    match states
        .get(n.wrapping_sub(2))
        .and_then(|s| s.prev_action.clone())
    {
        Some(prev) if n >= 2 => vec![
            State {
                prev_action: Some(prev),
                ..State::default()
            },
            states[n - 1].clone(),
        ],
        _ => states[n.saturating_sub(1)..].to_vec(),
    }
}

impl RulePolicy {
    /// Learns the rules, and the loops' unhappy paths from rules and stories.
    pub fn train(f: &Featurizer, rules: &[TrainingTracker], stories: &[TrainingTracker]) -> Self {
        let mut lookup: Vec<RuleKey> = Vec::new();
        let mut ambiguous: Vec<String> = Vec::new();
        let mut examples: Vec<(Vec<State>, String)> = Vec::new();
        for t in rules {
            let (states, actions) = f.states_and_actions(&t.events, true, false);
            for (j, a) in actions.iter().enumerate() {
                let key_states = snippet_tail(&states[..=j]);
                examples.push((states[..=j].to_vec(), a.clone()));
                if key_states.is_empty() || (j == 0 && a == RULE_SNIPPET_ACTION) {
                    continue;
                }
                let key = rasa_key(key_states);
                if ambiguous.contains(&key) {
                    continue;
                }
                match lookup.iter().position(|r| r.key == key) {
                    Some(i) if lookup[i].action != *a => {
                        lookup.remove(i);
                        ambiguous.push(key);
                    }
                    Some(_) => {}
                    None => lookup.push(RuleKey {
                        key,
                        states: key_states.to_vec(),
                        action: a.clone(),
                    }),
                }
            }
        }
        lookup.retain(|r| r.action != RULE_SNIPPET_ACTION);
        for t in stories {
            let (states, actions) = f.states_and_actions(&t.events, false, false);
            for (j, a) in actions.iter().enumerate() {
                if j == 0 && t.first_action_unpredictable {
                    continue;
                }
                examples.push((states[..=j].to_vec(), a.clone()));
            }
        }
        let mut unhappy: Vec<(Vec<State>, LoopCondition)> = Vec::new();
        for (states, a) in &examples {
            let Some(active) = states.last().and_then(State::loop_name) else {
                continue;
            };
            let key_states = unhappy_states(states);
            let key_states = snippet_tail(&key_states).to_vec();
            if key_states.is_empty() {
                continue;
            }
            let after_listen = key_states.last().is_some_and(State::after_listen);
            let cond = if after_listen && a == active {
                LoopCondition::WasInterrupted
            } else if !after_listen && a != active {
                LoopCondition::DoNotPredictLoop
            } else {
                continue;
            };
            match unhappy.iter_mut().find(|(s, _)| *s == key_states) {
                Some(e) => e.1 = cond,
                None => unhappy.push((key_states, cond)),
            }
        }
        Self {
            rules: lookup,
            unhappy,
            not_in_stories: Default::default(),
        }
    }

    /// Rasa's `_find_action_from_rules` on the states of a conversation.
    fn apply_rules(&self, states: &[State], active_loop: Option<&str>) -> RulePrediction {
        let mut best: Option<&RuleKey> = None;
        for r in self.rules.iter().filter(|r| applicable(&r.states, states)) {
            if best.is_none_or(|b| r.key.len() > b.key.len()) {
                best = Some(r);
            }
        }
        let mut action = best.map(|b| b.action.clone());
        let mut interrupted = false;
        if active_loop.is_some() {
            let conditions: Vec<LoopCondition> = self
                .unhappy
                .iter()
                .filter(|(s, _)| applicable(s, states))
                .map(|(_, c)| *c)
                .collect();
            let listen_from_general_rule = action.as_deref() == Some(ACTION_LISTEN)
                && best
                    .and_then(|b| b.states.last())
                    .is_some_and(|s| s.loop_name().is_none());
            if listen_from_general_rule {
                if !conditions.contains(&LoopCondition::DoNotPredictLoop) {
                    return RulePrediction {
                        action: active_loop.map(str::to_owned),
                        source: best.map(|b| b.key.clone()).unwrap_or_default(),
                        loop_interrupted: false,
                        no_user: false,
                        hide: false,
                    };
                }
                action = None;
            }
            interrupted = conditions.contains(&LoopCondition::WasInterrupted);
        }
        RulePrediction {
            action,
            source: best.map_or_else(|| rasa_key(snippet_tail(states)), |b| b.key.clone()),
            loop_interrupted: interrupted,
            no_user: false,
            hide: false,
        }
    }

    /// Rasa's `RulePolicy._predict`: default intents, the loop's happy path, then rules.
    pub fn predict(&self, t: &Tracker, states: &[State]) -> RulePrediction {
        if t.latest_action_name.as_deref() == Some(ACTION_LISTEN)
            && let Some(intent) = t.latest_message.as_ref().map(|m| m.intent.name.as_str())
            && let Some((_, a)) = DEFAULT_ACTION_MAPPINGS.iter().find(|(i, _)| *i == intent)
        {
            return RulePrediction {
                action: Some((*a).to_owned()),
                source: format!("{DEFAULT_RULES}{intent}"),
                loop_interrupted: false,
                no_user: false,
                hide: false,
            };
        }
        let active = t.active_loop_name();
        if let Some(l) = active
            && !t.loop_rejected
        {
            let latest = t.latest_action_name.as_deref();
            if latest != Some(l) {
                return RulePrediction {
                    action: Some(l.to_owned()),
                    source: format!("{LOOP_RULES}{l}"),
                    loop_interrupted: false,
                    no_user: true,
                    hide: false,
                };
            }
            return RulePrediction {
                action: Some(ACTION_LISTEN.to_owned()),
                source: format!("{LOOP_RULES}{l} - {ACTION_LISTEN}"),
                loop_interrupted: false,
                no_user: true,
                hide: false,
            };
        }
        let mut p = self.apply_rules(states, active);
        p.hide = self.not_in_stories.contains(&p.source);
        p
    }
}

/// A story or rule whose next action differs from what the rules say at the same point.
#[derive(Debug, Clone, PartialEq)]
pub struct Contradiction {
    /// Where the story or rule is written (`file:line`) and its name.
    pub at: String,
    /// `story` or `rule`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// The action it runs.
    pub gold: String,
    /// The rules that run another action there (`name (file:line)`).
    pub rules: Vec<String>,
    /// What they run.
    pub predicted: String,
    /// The conversation state where they differ.
    pub state: String,
}

impl std::fmt::Display for Contradiction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} {:?} runs {} where {} run(s) {}, in the state {}",
            self.at,
            self.kind,
            self.name,
            self.gold,
            self.rules.join(", "),
            self.predicted,
            self.state
        )
    }
}

impl RulePolicy {
    /// What the rules predict for a training tracker at one point, trying again with the loop
    /// rejected when they predict the loop and the tracker runs something else (Rasa's
    /// `_predicted_action_name`). `None` where nothing matches in a story.
    fn check_predict(
        &self,
        f: &Featurizer,
        t: &mut Tracker,
        gold: &str,
        is_rule: bool,
        fallback: &str,
    ) -> (Option<String>, String) {
        let once = |t: &Tracker| {
            let states = f.states(&t.events, false, false);
            let p = self.predict(t, &states);
            let name = match p.action {
                Some(a) => Some(a),
                None if is_rule => Some(fallback.to_owned()),
                None => None,
            };
            (name, p.source)
        };
        let (mut name, mut source) = once(t);
        if let Some(l) = t.active_loop_name().map(str::to_owned)
            && name.as_deref() != Some(gold)
            && name.as_deref() == Some(l.as_str())
        {
            t.apply(Event::Rejected {
                name: l,
                timestamp: 0.0,
            });
            (name, source) = once(t);
        }
        (name, source)
    }

    /// Runs the rules over every rule and story as Rasa's `_analyze_rules` does; returns the
    /// contradictions (rules that a story merely continues are dropped, as Rasa drops them).
    pub fn contradictions(
        &mut self,
        f: &Featurizer,
        rules: &[TrainingTracker],
        stories: &[TrainingTracker],
        fallback: &str,
    ) -> Vec<Contradiction> {
        let mut sources: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for t in rules {
            for c in self.walk(f, t, fallback) {
                let (name, gold) =
                    if c.source.starts_with(DEFAULT_RULES) || c.source.starts_with(LOOP_RULES) {
                        (c.source.clone(), c.predicted.unwrap_or_default())
                    } else {
                        (format!("{} ({})", t.name, t.at), c.gold)
                    };
                sources.entry(c.source).or_default().push((name, gold));
            }
        }
        let mut out = Vec::new();
        let mut used: std::collections::BTreeSet<String> = Default::default();
        for t in rules.iter().chain(stories) {
            for c in self.walk(f, t, fallback) {
                if !t.is_rule && c.predicted.as_deref() == Some(c.gold.as_str()) {
                    used.insert(c.source.clone());
                }
                let CheckPoint {
                    predicted: pred,
                    gold,
                    source,
                    state,
                } = c;
                let Some(pred) = pred.filter(|p| *p != gold) else {
                    continue;
                };
                if self.should_delete(&source, t.is_rule, &pred) {
                    self.rules.retain(|r| r.key != source);
                    continue;
                }
                let against: Vec<String> = sources
                    .get(&source)
                    .into_iter()
                    .flatten()
                    .filter(|(_, a)| *a != gold)
                    .map(|(n, _)| n.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if against.is_empty() {
                    continue;
                }
                out.push(Contradiction {
                    at: t.at.clone(),
                    kind: if t.is_rule { "rule" } else { "story" },
                    name: t.name.clone(),
                    gold,
                    rules: against,
                    predicted: pred,
                    state,
                });
                break;
            }
        }
        // Every rule source (learned, default intents, loops) that no story used.
        let mut all: std::collections::BTreeSet<String> = sources.keys().cloned().collect();
        all.extend(
            DEFAULT_ACTION_MAPPINGS
                .iter()
                .map(|(i, _)| format!("{DEFAULT_RULES}{i}")),
        );
        for l in f.loops.iter() {
            all.insert(format!("{LOOP_RULES}{l}"));
            all.insert(format!("{LOOP_RULES}{l} - {ACTION_LISTEN}"));
        }
        self.not_in_stories = all.difference(&used).cloned().collect();
        out
    }

    /// Rasa's `_should_delete`: a rule's `action_listen` that a story continues with another
    /// action is not a contradiction; the rule goes.
    fn should_delete(&self, source: &str, is_rule: bool, pred: &str) -> bool {
        if is_rule || source.matches("prev_action").count() > 1 || pred != ACTION_LISTEN {
            return false;
        }
        let stem = source
            .get(..source.len().saturating_sub(2))
            .unwrap_or(source);
        self.rules
            .iter()
            .any(|r| r.key.starts_with(stem) && r.key != source)
    }

    /// Replays a training tracker and returns, at every predictable action, what the rules
    /// predict there.
    fn walk(&self, f: &Featurizer, t: &TrainingTracker, fallback: &str) -> Vec<CheckPoint> {
        let mut out = Vec::new();
        let mut running = Tracker::new(&t.name, f.initial.clone());
        let mut unpredictable = true;
        for e in super::state::applied_events(&t.events) {
            let Event::Action { name, .. } = &e else {
                running.apply(e);
                continue;
            };
            if name == RULE_SNIPPET_ACTION || unpredictable {
                unpredictable = name == RULE_SNIPPET_ACTION;
                running.apply(e);
                continue;
            }
            let gold = name.clone();
            let (predicted, source) =
                self.check_predict(f, &mut running, &gold, t.is_rule, fallback);
            let state = f
                .states(&running.events, false, false)
                .last()
                .map(State::rasa_json)
                .unwrap_or_default();
            out.push(CheckPoint {
                predicted,
                gold,
                source,
                state,
            });
            running.apply(e);
        }
        out
    }
}

/// What the rules predict at one action of a training tracker.
struct CheckPoint {
    /// The rules' action (`None`: no rule applies in a story).
    predicted: Option<String>,
    /// The tracker's action.
    gold: String,
    /// Where the prediction came from.
    source: String,
    /// The conversation state there, as Rasa writes it.
    state: String,
}
