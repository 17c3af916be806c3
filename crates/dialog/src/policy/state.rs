//! The dialogue state as Rasa 3.6 featurises it (`Domain.get_active_state`,
//! `DialogueStateTracker.applied_events`, `past_states`): before every action, the previous
//! action, the latest user intent and entities, the slots that influence the conversation (as
//! their feature vectors), and the active loop. Both the rule and the memoisation policy, the
//! trained policy and the contradiction check read conversations through this one module.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::project::{Decl, Domain};
use crate::tracker::{ACTION_LISTEN, Event};

/// The value a rule gives a slot or the active loop it requires to be unset (`null` in a rule).
pub const SHOULD_NOT_BE_SET: &str = "should_not_be_set";
/// The action that marks where a rule snippet starts or ends (`...`).
pub const RULE_SNIPPET_ACTION: &str = "...";

/// What the dialogue looks like before an action is chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct State {
    /// The action before (`None` at the start of a conversation).
    pub prev_action: Option<String>,
    /// The latest user intent.
    pub intent: Option<String>,
    /// The latest user text, only where a story gives text without an intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Featurised entity labels of the latest user message (`entity`, `entity#role`), sorted.
    pub entities: Vec<String>,
    /// Slot features (`name`, feature vector as Rasa writes it, or `should_not_be_set`),
    /// sorted by name; slots whose features are all zero are absent.
    pub slots: Vec<(String, String)>,
    /// The active loop (`should_not_be_set` in rules that require none).
    pub active_loop: Option<String>,
}

impl State {
    /// Whether the previous action was `action_listen` (a real user turn).
    pub fn after_listen(&self) -> bool {
        self.prev_action.as_deref() == Some(ACTION_LISTEN)
    }

    /// The active loop, with "should not be set" read as none.
    pub fn loop_name(&self) -> Option<&str> {
        self.active_loop
            .as_deref()
            .filter(|l| *l != SHOULD_NOT_BE_SET)
    }

    /// The state as Python's `json.dumps(state, sort_keys=True)` writes Rasa's dictionary;
    /// rule keys are compared by the length of this text, as Rasa compares them.
    pub fn rasa_json(&self) -> String {
        let mut parts = Vec::new();
        if let Some(l) = &self.active_loop {
            parts.push(format!("\"active_loop\": {{\"name\": {}}}", py_str(l)));
        }
        if let Some(a) = &self.prev_action {
            parts.push(format!(
                "\"prev_action\": {{\"action_name\": {}}}",
                py_str(a)
            ));
        }
        if !self.slots.is_empty() {
            let s: Vec<String> = self
                .slots
                .iter()
                .map(|(k, v)| {
                    let v = if v == SHOULD_NOT_BE_SET {
                        py_str(v)
                    } else {
                        v.clone()
                    };
                    format!("{}: {v}", py_str(k))
                })
                .collect();
            parts.push(format!("\"slots\": {{{}}}", s.join(", ")));
        }
        let mut user = Vec::new();
        if !self.entities.is_empty() {
            let e: Vec<String> = self.entities.iter().map(|e| py_str(e)).collect();
            user.push(format!("\"entities\": [{}]", e.join(", ")));
        }
        if let Some(i) = &self.intent {
            user.push(format!("\"intent\": {}", py_str(i)));
        }
        if let Some(t) = &self.text {
            user.push(format!("\"text\": {}", py_str(t)));
        }
        if !user.is_empty() {
            parts.push(format!("\"user\": {{{}}}", user.join(", ")));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

/// A string as a JSON literal.
fn py_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// A list of states as Rasa writes a rule or memoisation key.
pub fn rasa_key(states: &[State]) -> String {
    let s: Vec<String> = states.iter().map(State::rasa_json).collect();
    format!("[{}]", s.join(", "))
}

/// How a slot type turns a value into features (Rasa's `Slot._as_feature`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SlotKind {
    /// `text`: set or not.
    Text,
    /// `bool`: set, and the value.
    Bool,
    /// `categorical`: one-hot over the (lower-cased) values.
    Categorical(Vec<String>),
    /// `float`: set, and the value scaled into `[min, max]`.
    Float {
        /// Lowest value.
        min: f64,
        /// Highest value.
        max: f64,
    },
    /// `list`: non-empty or not.
    List,
}

impl SlotKind {
    /// The kind of a declared slot type, `None` for `any` and unknown types (no features).
    pub fn of(kind: &str, values: &[String], min: Option<f64>, max: Option<f64>) -> Option<Self> {
        let k = kind.rsplit('.').next().unwrap_or(kind).to_lowercase();
        match k.as_str() {
            "text" | "textslot" | "unfeaturized" => Some(Self::Text),
            "bool" | "booleanslot" => Some(Self::Bool),
            "categorical" | "categoricalslot" => Some(Self::Categorical(
                values.iter().map(|v| v.to_lowercase()).collect(),
            )),
            "float" | "floatslot" => Some(Self::Float {
                min: min.unwrap_or(0.0),
                max: max.unwrap_or(1.0),
            }),
            "list" | "listslot" => Some(Self::List),
            _ => None,
        }
    }

    /// The feature vector of `v` as Rasa writes it (`[1.0, 0.0]`), `None` when all zero.
    pub fn feature(&self, v: &Value) -> Option<String> {
        if v.as_str() == Some(SHOULD_NOT_BE_SET) {
            return Some(SHOULD_NOT_BE_SET.into());
        }
        let f: Vec<f64> = match (self, v) {
            (_, Value::Null) => return None,
            (Self::Text, _) => vec![1.0],
            (Self::Bool, v) => vec![1.0, if bool_from_any(v) { 1.0 } else { 0.0 }],
            (Self::Categorical(values), v) => {
                let s = match v {
                    Value::String(s) => s.to_lowercase(),
                    Value::Bool(b) => if *b { "True" } else { "False" }.to_lowercase(),
                    other => other.to_string().to_lowercase(),
                };
                let mut r = vec![0.0; values.len()];
                match values.iter().position(|x| *x == s) {
                    Some(i) => r[i] = 1.0,
                    None => {
                        if let Some(i) = values.iter().position(|x| x == "__other__") {
                            r[i] = 1.0;
                        }
                    }
                }
                r
            }
            (Self::Float { min, max }, v) => {
                let x = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
                match x {
                    Some(x) => {
                        let capped = x.min(*max).max(*min);
                        let range = if (max - min).abs() > 0.0 {
                            (max - min).abs()
                        } else {
                            1.0
                        };
                        vec![1.0, (capped - min) / range]
                    }
                    None => vec![0.0, 0.0],
                }
            }
            (Self::List, Value::Array(a)) if a.is_empty() => vec![0.0],
            (Self::List, _) => vec![1.0],
        };
        if f.iter().all(|x| *x == 0.0) {
            return None;
        }
        let parts: Vec<String> = f.iter().map(|x| format!("{x:?}")).collect();
        Some(format!("[{}]", parts.join(", ")))
    }
}

/// Rasa's `bool_from_any`.
fn bool_from_any(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() == Some(1.0),
        Value::String(s) => {
            let t = s.trim().to_lowercase();
            t.parse::<f64>().map_or(t == "true", |x| x == 1.0)
        }
        _ => false,
    }
}

/// Turns conversations into states: which slots count and how, which entities each intent
/// lets into the state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Featurizer {
    /// Slots that influence the conversation and how they are featurised.
    pub slots: BTreeMap<String, SlotKind>,
    /// Initial values of those slots (a conversation starts with them).
    pub initial: BTreeMap<String, Value>,
    /// Intents that let only some entities into the state (`use_entities`, `ignore_entities`).
    pub intent_entities: BTreeMap<String, BTreeSet<String>>,
    /// Entities of the domain (others do not enter the state).
    #[serde(default)]
    pub entities: BTreeSet<String>,
    /// The domain's forms.
    #[serde(default)]
    pub loops: BTreeSet<String>,
    /// Slots and loops only rules use: the memoisation and trained policies do not see them.
    pub rule_only_slots: BTreeSet<String>,
    /// Loops only rules use.
    pub rule_only_loops: BTreeSet<String>,
}

impl Featurizer {
    /// From the domain.
    pub fn new(domain: &Domain) -> Self {
        let mut slots = BTreeMap::new();
        let mut initial = BTreeMap::new();
        for (name, s) in &domain.slots {
            let influences = s
                .influence_conversation
                .unwrap_or(s.kind != "any" && name != "requested_slot");
            if !influences {
                continue;
            }
            if let Some(k) = SlotKind::of(&s.kind, &s.values, s.min_value, s.max_value) {
                slots.insert(name.clone(), k);
                if let Some(v) = s.initial_value.clone().filter(|v| !v.is_null()) {
                    initial.insert(name.clone(), v);
                }
            }
        }
        let all: BTreeSet<String> = domain.entity_names().into_iter().collect();
        let mut intent_entities = BTreeMap::new();
        for d in &domain.intents {
            if let Decl::WithProps(m) = d {
                for (intent, props) in m {
                    let list = |k: &str| -> Option<BTreeSet<String>> {
                        match props.get(k)? {
                            Value::Array(a) => Some(
                                a.iter()
                                    .filter_map(|v| v.as_str().map(str::to_owned))
                                    .collect(),
                            ),
                            Value::Bool(true) => Some(all.clone()),
                            Value::Bool(false) => Some(BTreeSet::new()),
                            _ => None,
                        }
                    };
                    let used = match (list("use_entities"), list("ignore_entities")) {
                        (Some(u), _) => Some(u),
                        (None, Some(i)) => Some(all.difference(&i).cloned().collect()),
                        (None, None) => None,
                    };
                    if let Some(u) = used {
                        intent_entities.insert(intent.clone(), u);
                    }
                }
            }
        }
        Self {
            slots,
            initial,
            entities: all,
            loops: domain.forms.keys().cloned().collect(),
            intent_entities,
            rule_only_slots: BTreeSet::new(),
            rule_only_loops: BTreeSet::new(),
        }
    }

    /// The feature of a slot's value, `None` when it is unset or does not count.
    pub fn slot(&self, name: &str, v: &Value) -> Option<String> {
        self.slots.get(name)?.feature(v)
    }

    /// The entity labels of a user message that enter the state.
    fn entity_labels(
        &self,
        intent: Option<&str>,
        entities: &[crate::tracker::Entity],
    ) -> Vec<String> {
        let allowed = intent.and_then(|i| self.intent_entities.get(i));
        let mut out: BTreeSet<String> = BTreeSet::new();
        for e in entities {
            if !self.entities.contains(&e.entity) || allowed.is_some_and(|a| !a.contains(&e.entity))
            {
                continue;
            }
            out.insert(e.entity.clone());
            if let Some(r) = &e.role {
                out.insert(format!("{}#{r}", e.entity));
            }
        }
        out.into_iter().collect()
    }

    /// The state before each action of `events` (and one after the last), as Rasa's
    /// `past_states` gives them: only the applied events count; `omit_unset_slots` leaves out
    /// slots at their initial value (rules); `ml` leaves out what only rules use.
    pub fn states(&self, events: &[Event], omit_unset_slots: bool, ml: bool) -> Vec<State> {
        self.states_and_actions(events, omit_unset_slots, ml).0
    }

    /// The states (one more than the actions) and the actions of `events`.
    pub fn states_and_actions(
        &self,
        events: &[Event],
        omit_unset_slots: bool,
        ml: bool,
    ) -> (Vec<State>, Vec<String>) {
        let applied = applied_events(events);
        let mut slots: BTreeMap<String, Value> = if omit_unset_slots {
            BTreeMap::new()
        } else {
            self.initial.clone()
        };
        let mut cur = State::default();
        let mut states = Vec::new();
        let mut actions = Vec::new();
        let mut hidden = Vec::new();
        let snapshot = |cur: &State, slots: &BTreeMap<String, Value>| {
            let mut s = cur.clone();
            s.slots = slots
                .iter()
                .filter(|(k, _)| !(ml && self.rule_only_slots.contains(*k)))
                .filter_map(|(k, v)| self.slot(k, v).map(|f| (k.clone(), f)))
                .collect();
            if ml
                && s.loop_name()
                    .is_some_and(|l| self.rule_only_loops.contains(l))
            {
                s.active_loop = None;
            }
            if s.active_loop.as_deref() == Some("") {
                s.active_loop = None;
            }
            s
        };
        for e in &applied {
            match e {
                Event::User {
                    parse_data, text, ..
                } => {
                    let intent = Some(parse_data.intent.name.clone()).filter(|i| !i.is_empty());
                    cur.text = if intent.is_none() && !text.is_empty() {
                        Some(text.clone())
                    } else {
                        None
                    };
                    cur.entities = self.entity_labels(intent.as_deref(), &parse_data.entities);
                    cur.intent = intent;
                }
                Event::Action {
                    name,
                    hide_rule_turn,
                    ..
                } => {
                    states.push(snapshot(&cur, &slots));
                    actions.push(name.clone());
                    hidden.push(*hide_rule_turn);
                    cur.prev_action = Some(name.clone());
                }
                Event::Slot { name, value, .. } if self.slots.contains_key(name) => {
                    slots.insert(name.clone(), value.clone());
                }
                Event::ActiveLoop { name, .. } => cur.active_loop = name.clone(),
                Event::ResetSlots { .. } => {
                    slots = if omit_unset_slots {
                        BTreeMap::new()
                    } else {
                        self.initial.clone()
                    };
                }
                _ => {}
            }
        }
        states.push(snapshot(&cur, &slots));
        if ml && hidden.iter().any(|h| *h) {
            return hide_rule_turns(states, actions, &hidden);
        }
        (states, actions)
    }
}

/// Rasa's `states_for_tracker_history` with `ignore_rule_only_turns`: the turns of rules that
/// no story continues are left out of what the memoisation and trained policies see; a state
/// after them takes the previous action and the user input of the last turn they saw.
fn hide_rule_turns(
    states: Vec<State>,
    actions: Vec<String>,
    hidden: &[bool],
) -> (Vec<State>, Vec<String>) {
    let mut out_states: Vec<State> = Vec::new();
    let mut out_actions = Vec::new();
    let mut last_ml_prev: Option<Option<String>> = None;
    let mut turn_was_hidden = false;
    for (k, st) in states.into_iter().enumerate() {
        let hide = hidden.get(k).copied().unwrap_or(false);
        if !turn_was_hidden {
            last_ml_prev = Some(st.prev_action.clone());
        }
        // A loop's happy path does not change whether the turn is hidden.
        let loop_happy = st.prev_action.is_some() && st.prev_action.as_deref() == st.loop_name();
        if !loop_happy {
            turn_was_hidden = hide;
        }
        if turn_was_hidden {
            continue;
        }
        let mut s = st;
        if !s.after_listen()
            && let Some(last) = out_states.last()
        {
            if last.intent.is_none() && last.text.is_none() {
                s.intent = None;
                s.text = None;
                s.entities.clear();
            } else {
                s.intent = last.intent.clone();
                s.text = last.text.clone();
                s.entities = last.entities.clone();
            }
        }
        if let Some(p) = &last_ml_prev {
            s.prev_action = p.clone();
        }
        out_states.push(s);
        if let Some(a) = actions.get(k) {
            out_actions.push(a.clone());
        }
    }
    (out_states, out_actions)
}

/// The events that shape the state, as Rasa's `applied_events`: everything after the latest
/// restart or session start, without undone turns, and with the turns inside a loop's happy
/// path folded into the loop's first run.
pub fn applied_events(events: &[Event]) -> Vec<Event> {
    let loop_names: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::ActiveLoop { name: Some(n), .. } => Some(n.as_str()),
            _ => None,
        })
        .collect();
    let mut out: Vec<Event> = Vec::new();
    for e in events {
        match e {
            Event::Restart { .. } | Event::SessionStarted { .. } => out.clear(),
            Event::Rewind { .. } => {
                undo_till(&mut out, |e| matches!(e, Event::User { .. }));
                undo_till(&mut out, |e| matches!(e, Event::Action { .. }));
            }
            Event::Action { name, .. }
                if loop_names.contains(name.as_str())
                    && !first_loop_run_or_unhappy_path(name, &out) =>
            {
                undo_till_previous_loop_run(name, &mut out);
            }
            _ => out.push(e.clone()),
        }
    }
    out
}

/// Removes events from the end up to and including the latest that `is` holds for.
fn undo_till(events: &mut Vec<Event>, is: impl Fn(&Event) -> bool) {
    while let Some(e) = events.pop() {
        if is(&e) {
            break;
        }
    }
}

/// Rasa's `_first_loop_execution_or_unhappy_path`.
fn first_loop_run_or_unhappy_path(loop_name: &str, applied: &[Event]) -> bool {
    let mut next_action: Option<&str> = None;
    for e in applied.iter().rev() {
        match e {
            Event::ActiveLoop { name: None, .. } => return true,
            Event::Rejected { name, .. } if name == loop_name => return true,
            Event::User { .. } if next_action.is_some_and(|a| a != loop_name) => return true,
            Event::Action { name, .. } => {
                if name == loop_name {
                    return false;
                }
                next_action = Some(name);
            }
            _ => {}
        }
    }
    true
}

/// Rasa's `_undo_till_previous_loop_execution`: drops the actions and user messages since the
/// loop last ran, keeps the other events (slots).
fn undo_till_previous_loop_run(loop_name: &str, events: &mut Vec<Event>) {
    let mut offset = 0;
    while offset < events.len() {
        let i = events.len() - 1 - offset;
        match &events[i] {
            Event::Action { name, .. } if name == loop_name => break,
            Event::Action { .. } | Event::User { .. } => {
                events.remove(i);
            }
            _ => offset += 1,
        }
    }
}
