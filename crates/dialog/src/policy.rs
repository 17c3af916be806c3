//! Dialogue policies: what the assistant does next, from the conversation so far.
//!
//! A conversation is read as a list of [`State`]s, one before each action: the previous action,
//! the latest intent and entities, the slots that influence the conversation, and the active
//! form. Stories and rules become (states, next action) pairs. The rule policy applies a rule
//! when the latest states match the rule's (a rule states only what it cares about); the
//! memoisation policy looks up the latest `max_history` states among the stories' and backs off
//! to shorter histories (Rasa's augmented memoisation). Rules win over stories.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::project::{Domain, Rule, Step};
use crate::tracker::{ACTION_LISTEN, Event, Intent, ParseData, Tracker};

/// What the dialogue looks like before an action is chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct State {
    /// The action before (`None` at the start).
    pub prev_action: Option<String>,
    /// The latest intent.
    pub intent: Option<String>,
    /// Entity types in the latest message, sorted.
    pub entities: Vec<String>,
    /// Featurised slots (`name`, value class), sorted; unset slots are absent.
    pub slots: Vec<(String, String)>,
    /// The active form.
    pub active_loop: Option<String>,
}

/// How slot values enter the state: only slots that influence the conversation, and only as
/// much of the value as their type says (`text`: set or not; `bool`, `categorical`: the value).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Featurizer {
    /// Slot name to type, for the slots that influence the conversation.
    pub slots: BTreeMap<String, String>,
}

impl Featurizer {
    /// From the domain.
    pub fn new(domain: &Domain) -> Self {
        let slots = domain
            .slots
            .iter()
            .filter(|(_, s)| s.influence_conversation.unwrap_or(s.kind != "any"))
            .map(|(n, s)| (n.clone(), s.kind.clone()))
            .collect();
        Self { slots }
    }

    /// The class of a slot's value, or `None` when it is unset or does not count.
    pub fn slot(&self, name: &str, v: &Value) -> Option<String> {
        let kind = self.slots.get(name)?;
        match (kind.as_str(), v) {
            (_, Value::Null) => None,
            ("bool", Value::Bool(b)) => Some(b.to_string()),
            ("bool", v) => Some(matches!(v.as_str(), Some("true" | "True" | "yes")).to_string()),
            ("categorical", Value::String(s)) => Some(s.to_lowercase()),
            ("categorical", v) => Some(v.to_string()),
            ("list", Value::Array(a)) if a.is_empty() => None,
            _ => Some("set".into()),
        }
    }

    /// The states of an event list and the action that followed each.
    pub fn states(&self, events: &[Event]) -> Vec<(State, String)> {
        let mut cur = State::default();
        let mut slots: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::new();
        for e in events {
            match e {
                Event::User { parse_data, .. } => {
                    cur.intent = Some(parse_data.intent.name.clone());
                    let mut es: Vec<String> = parse_data
                        .entities
                        .iter()
                        .map(|e| e.entity.clone())
                        .collect();
                    es.sort();
                    es.dedup();
                    cur.entities = es;
                }
                Event::Action { name, .. } => {
                    cur.slots = slots.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    out.push((cur.clone(), name.clone()));
                    cur.prev_action = Some(name.clone());
                }
                Event::Slot { name, value, .. } => match self.slot(name, value) {
                    Some(v) => {
                        slots.insert(name.clone(), v);
                    }
                    None => {
                        slots.remove(name);
                    }
                },
                Event::ActiveLoop { name, .. } => cur.active_loop = name.clone(),
                Event::Restart { .. } | Event::SessionStarted { .. } => {
                    cur = State::default();
                    slots.clear();
                    out.clear();
                }
                _ => {}
            }
        }
        out
    }

    /// The state the next action will be chosen in.
    pub fn current(&self, tracker: &Tracker) -> Vec<State> {
        let mut events = tracker.session_events().to_vec();
        events.push(Event::Action {
            name: "__next__".into(),
            policy: None,
            confidence: None,
            timestamp: 0.0,
        });
        // Slots set before the session (carried over) count too.
        let mut lead: Vec<Event> = tracker
            .slots
            .iter()
            .map(|(k, v)| Event::Slot {
                name: k.clone(),
                value: v.clone(),
                timestamp: 0.0,
            })
            .collect();
        lead.append(&mut events);
        self.states(&lead).into_iter().map(|(s, _)| s).collect()
    }
}

/// A user turn of a story or rule as an event.
pub fn user_event(intent: &str, entities: &[Value]) -> Event {
    let entities = entities
        .iter()
        .filter_map(|e| match e {
            Value::String(name) => Some((name.clone(), Value::Null)),
            Value::Object(m) => m.iter().next().map(|(k, v)| (k.clone(), v.clone())),
            _ => None,
        })
        .map(|(entity, value)| crate::tracker::Entity {
            entity,
            value,
            start: None,
            end: None,
            extractor: None,
            role: None,
        })
        .collect();
    Event::User {
        text: format!("/{intent}"),
        parse_data: ParseData {
            text: format!("/{intent}"),
            intent: Intent {
                name: intent.to_owned(),
                confidence: 1.0,
            },
            entities,
            intent_ranking: vec![],
            response_selector: None,
        },
        timestamp: 0.0,
        input_channel: None,
    }
}

/// `slot_was_set` items as `(name, value)`; a bare name means "some value".
pub fn slot_items(items: &[Value]) -> Vec<(String, Value)> {
    items
        .iter()
        .filter_map(|s| match s {
            Value::String(name) => Some((name.clone(), Value::Bool(true))),
            Value::Object(m) => m.iter().next().map(|(k, v)| (k.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

fn action(name: &str) -> Event {
    Event::Action {
        name: name.to_owned(),
        policy: None,
        confidence: None,
        timestamp: 0.0,
    }
}

/// The events a list of story steps stands for (an `action_listen` before each user turn that
/// follows a bot action, and one at the end).
pub fn story_events(steps: &[Step]) -> Vec<Event> {
    let mut out = vec![action(ACTION_LISTEN)];
    for s in steps {
        if let Some(i) = &s.intent {
            if !matches!(out.last(), Some(Event::Action { name, .. }) if name == ACTION_LISTEN) {
                out.push(action(ACTION_LISTEN));
            }
            out.push(user_event(&i.value, &s.entities));
        }
        if let Some(a) = &s.action {
            out.push(action(&a.value));
        }
        for (name, value) in slot_items(&s.slot_was_set) {
            out.push(Event::Slot {
                name,
                value,
                timestamp: 0.0,
            });
        }
        if let Some(l) = &s.active_loop {
            out.push(Event::ActiveLoop {
                name: l.as_str().map(str::to_owned),
                timestamp: 0.0,
            });
        }
    }
    if !matches!(out.last(), Some(Event::Action { name, .. }) if name == ACTION_LISTEN) {
        out.push(action(ACTION_LISTEN));
    }
    out
}

/// Part of a state a rule requires (`None`: anything).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    /// The previous action.
    pub prev_action: Option<String>,
    /// The latest intent.
    pub intent: Option<String>,
    /// Slot classes that must hold.
    pub slots: Vec<(String, String)>,
    /// The active form (`Some(None)`: no form).
    pub active_loop: Option<Option<String>>,
}

impl Pattern {
    /// Whether `s` has everything the pattern asks for.
    pub fn matches(&self, s: &State) -> bool {
        self.prev_action
            .as_ref()
            .is_none_or(|a| s.prev_action.as_ref() == Some(a))
            && self
                .intent
                .as_ref()
                .is_none_or(|i| s.intent.as_ref() == Some(i))
            && self.slots.iter().all(|kv| s.slots.contains(kv))
            && self
                .active_loop
                .as_ref()
                .is_none_or(|l| &s.active_loop == l)
    }

    fn weight(&self) -> usize {
        usize::from(self.prev_action.is_some())
            + usize::from(self.intent.is_some())
            + self.slots.len()
            + usize::from(self.active_loop.is_some())
    }
}

/// A rule as patterns and the action each is followed by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSeq {
    /// The rule's name.
    pub name: String,
    /// Where it was written (`file:line`).
    pub at: String,
    /// Pattern before each action.
    pub patterns: Vec<Pattern>,
    /// The actions.
    pub actions: Vec<String>,
    /// Applies only from the start of a conversation.
    pub conversation_start: bool,
}

impl RuleSeq {
    /// Compiles a rule.
    pub fn new(rule: &Rule, at: String, f: &Featurizer) -> Self {
        let mut patterns = Vec::new();
        let mut actions = Vec::new();
        let mut cur = Pattern::default();
        let mut pending_user = false;
        let add_conditions = |p: &mut Pattern, steps: &[Step]| {
            for s in steps {
                for (n, v) in slot_items(&s.slot_was_set) {
                    if let Some(c) = f.slot(&n, &v) {
                        p.slots.push((n, c));
                    }
                }
                if let Some(l) = &s.active_loop {
                    p.active_loop = Some(l.as_str().map(str::to_owned));
                }
            }
        };
        add_conditions(&mut cur, &rule.condition);
        for s in &rule.steps {
            if let Some(i) = &s.intent {
                if !actions.is_empty() && !pending_user {
                    // The bot waited for this user turn.
                    patterns.push(cur.clone());
                    actions.push(ACTION_LISTEN.to_owned());
                    cur = Pattern {
                        prev_action: Some(ACTION_LISTEN.to_owned()),
                        ..Pattern::default()
                    };
                }
                if actions.is_empty() {
                    cur.prev_action = Some(ACTION_LISTEN.to_owned());
                }
                cur.intent = Some(i.value.clone());
                pending_user = true;
            }
            if let Some(a) = &s.action {
                patterns.push(cur.clone());
                actions.push(a.value.clone());
                cur = Pattern {
                    prev_action: Some(a.value.clone()),
                    ..Pattern::default()
                };
                pending_user = false;
            }
            add_conditions(&mut cur, std::slice::from_ref(s));
        }
        if rule.wait_for_user_input && !actions.is_empty() {
            patterns.push(cur);
            actions.push(ACTION_LISTEN.to_owned());
        }
        Self {
            name: rule.rule.value.clone(),
            at,
            patterns,
            actions,
            conversation_start: rule.conversation_start,
        }
    }

    /// The action this rule predicts after `states`, with how specific the match is.
    pub fn predict(&self, states: &[State]) -> Option<(String, (usize, usize))> {
        let mut best: Option<(String, (usize, usize))> = None;
        for j in 0..self.patterns.len() {
            let n = j + 1;
            if states.len() < n || (self.conversation_start && states.len() != n) {
                continue;
            }
            let tail = &states[states.len() - n..];
            if self.patterns[..n]
                .iter()
                .zip(tail)
                .all(|(p, s)| p.matches(s))
            {
                let w: usize = self.patterns[..n].iter().map(Pattern::weight).sum();
                best = Some((self.actions[j].clone(), (n, w)));
            }
        }
        best
    }
}

/// The trained policies of an assistant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Policies {
    /// States to features.
    pub featurizer: Featurizer,
    /// Longest history the memoisation looks at.
    pub max_history: usize,
    /// Serialised state histories (1 to `max_history` long) to the next action; `None` where
    /// stories disagree.
    pub memo: BTreeMap<String, Option<String>>,
    /// The rules.
    pub rules: Vec<RuleSeq>,
}

/// A predicted action and who predicted it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The action.
    pub action: String,
    /// `RulePolicy`, `MemoizationPolicy` or `FallbackPolicy`.
    pub policy: &'static str,
    /// Confidence.
    pub confidence: f64,
}

/// Whether the latest user message set any slot.
fn filled_this_turn(t: &Tracker) -> bool {
    t.events
        .iter()
        .rev()
        .take_while(|e| !matches!(e, Event::User { .. }))
        .any(|e| matches!(e, Event::Slot { .. }))
}

fn key(states: &[State]) -> String {
    serde_json::to_string(states).unwrap_or_default()
}

impl Policies {
    /// Learns from stories (as event lists) and rules.
    pub fn train(
        featurizer: Featurizer,
        stories: &[Vec<Event>],
        rules: Vec<RuleSeq>,
        max_history: usize,
    ) -> Self {
        let mut memo: BTreeMap<String, Option<String>> = BTreeMap::new();
        for events in stories {
            let pairs = featurizer.states(events);
            let states: Vec<State> = pairs.iter().map(|(s, _)| s.clone()).collect();
            for (i, (_, a)) in pairs.iter().enumerate() {
                for k in 1..=max_history.min(i + 1) {
                    let e = memo
                        .entry(key(&states[i + 1 - k..=i]))
                        .or_insert_with(|| Some(a.clone()));
                    if e.as_deref() != Some(a.as_str()) {
                        *e = None;
                    }
                }
            }
        }
        Self {
            featurizer,
            max_history,
            memo,
            rules,
        }
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
            return Prediction {
                action: a.clone(),
                policy: "RulePolicy",
                confidence: 1.0,
            };
        }
        let states = self.featurizer.current(tracker);
        if let Some(form) = &tracker.active_loop {
            let prev = tracker.latest_action_name.as_deref();
            if prev == Some(form.as_str()) {
                // The form asked for a slot: wait for the answer.
                return Prediction {
                    action: ACTION_LISTEN.into(),
                    policy: "RulePolicy",
                    confidence: 1.0,
                };
            }
            let two_stage = form == crate::actions::TWO_STAGE_FALLBACK;
            if prev == Some(ACTION_LISTEN) && (two_stage || filled_this_turn(tracker)) {
                return Prediction {
                    action: form.clone(),
                    policy: "RulePolicy",
                    confidence: 1.0,
                };
            }
            // Not an answer (an unhappy path): rules and stories decide, else back to the form.
            return self.predict_states(&states).unwrap_or(Prediction {
                action: form.clone(),
                policy: "RulePolicy",
                confidence: 1.0,
            });
        }
        if let Some(p) = self.predict_states(&states) {
            return p;
        }
        if let Some(Ok(ranked)) = learned.map(|l| l.rank(&states))
            && let Some((action, p)) = ranked.into_iter().next()
            && learned.is_some_and(|l| p >= l.meta.threshold)
        {
            return Prediction {
                action,
                policy: "LearnedPolicy",
                confidence: p,
            };
        }
        Prediction {
            action: "action_default_fallback".into(),
            policy: "FallbackPolicy",
            confidence: 1.0,
        }
    }

    /// Rules, then memoised stories; `None` when neither knows.
    pub fn predict_states(&self, states: &[State]) -> Option<Prediction> {
        let rule = self
            .rules
            .iter()
            .filter_map(|r| r.predict(states))
            .max_by_key(|(_, w)| *w);
        if let Some((action, _)) = rule {
            return Some(Prediction {
                action,
                policy: "RulePolicy",
                confidence: 1.0,
            });
        }
        for k in (1..=self.max_history.min(states.len())).rev() {
            if let Some(Some(a)) = self.memo.get(&key(&states[states.len() - k..])) {
                return Some(Prediction {
                    action: a.clone(),
                    policy: "MemoizationPolicy",
                    confidence: 1.0,
                });
            }
        }
        None
    }
}
