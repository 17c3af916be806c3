//! Stories and rules as the event lists Rasa trains on (`StoryStep.explicit_events`,
//! `RuleParser`): an `action_listen` before each user turn, slots that entities fill through
//! unconditioned `from_entity` mappings, a final `action_listen`; rules start with the snippet
//! action `...` (unless they apply at the conversation start), end with it when they do not wait
//! for the user, and read `null` in slots and loops as "must not be set".

use serde_json::Value;

use super::state::{RULE_SNIPPET_ACTION, SHOULD_NOT_BE_SET};
use crate::project::{Domain, Rule, Step};
use crate::tracker::{ACTION_LISTEN, Entity, Event, Intent, ParseData};

/// A story or rule as events, with where it was written.
#[derive(Debug, Clone)]
pub struct TrainingTracker {
    /// The story's or rule's name.
    pub name: String,
    /// Where it is written (`file:line`).
    pub at: String,
    /// Its events.
    pub events: Vec<Event>,
    /// Whether it comes from a rule.
    pub is_rule: bool,
    /// Whether its first action cannot be predicted (a story that starts with an action).
    pub first_action_unpredictable: bool,
}

/// An action event without policy or time.
pub fn action(name: &str) -> Event {
    Event::Action {
        name: name.to_owned(),
        policy: None,
        confidence: None,
        hide_rule_turn: false,
        timestamp: 0.0,
    }
}

/// A user turn of a story or rule: its intent (or text) and entities.
pub fn user_event(intent: Option<&str>, text: Option<&str>, entities: &[Value]) -> Event {
    let entities = entity_items(entities);
    let intent = intent.unwrap_or_default();
    let text = text.map_or_else(|| format!("/{intent}"), str::to_owned);
    Event::User {
        text: text.clone(),
        parse_data: ParseData {
            text,
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

/// `entities:` items of a story step (`- city: Berlin`, `- city`, `- city: Berlin` with
/// `role:`/`group:` keys) as entities.
pub fn entity_items(items: &[Value]) -> Vec<Entity> {
    items
        .iter()
        .filter_map(|e| match e {
            Value::String(name) => Some(Entity {
                entity: name.clone(),
                value: Value::String(String::new()),
                start: None,
                end: None,
                extractor: None,
                role: None,
                additional_info: None,
            }),
            Value::Object(m) => {
                let mut ent = Entity {
                    entity: String::new(),
                    value: Value::Null,
                    start: None,
                    end: None,
                    extractor: None,
                    role: None,
                    additional_info: None,
                };
                for (k, v) in m {
                    match k.as_str() {
                        "role" => ent.role = v.as_str().map(str::to_owned),
                        "group" => {}
                        _ => {
                            ent.entity = k.clone();
                            ent.value = v.clone();
                        }
                    }
                }
                Some(ent).filter(|e| !e.entity.is_empty())
            }
            _ => None,
        })
        .collect()
}

/// `slot_was_set` items as `(name, value)`; a bare name gets Rasa's default value for its type
/// (`filled` for text slots, `["filled"]` for lists, else none).
pub fn slot_items(domain: &Domain, items: &[Value]) -> Vec<(String, Value)> {
    items
        .iter()
        .filter_map(|s| match s {
            Value::String(name) => {
                let kind = domain.slots.get(name).map_or("text", |d| d.kind.as_str());
                let v = match kind {
                    "text" => Value::String("filled".into()),
                    "list" => Value::Array(vec![Value::String("filled".into())]),
                    _ => Value::Null,
                };
                Some((name.clone(), v))
            }
            Value::Object(m) => m.iter().next().map(|(k, v)| (k.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

/// Slots the entities of a user turn fill through `from_entity` mappings that have no loop
/// condition (Rasa's `Domain.slots_for_entities`).
pub fn slots_for_entities(domain: &Domain, entities: &[Entity]) -> Vec<Event> {
    let mut out = Vec::new();
    for (name, slot) in &domain.slots {
        let mut values = Vec::new();
        for m in &slot.mappings {
            let conditioned = m
                .conditions
                .first()
                .is_some_and(|c| c.active_loop.is_some());
            if m.kind != "from_entity" || conditioned {
                continue;
            }
            for e in entities {
                if Some(&e.entity) == m.entity.as_ref() && e.role == m.role {
                    values.push(e.value.clone());
                }
            }
        }
        if let Some(last) = values.last() {
            let value = if slot.kind == "list" {
                Value::Array(values.clone())
            } else {
                last.clone()
            };
            out.push(Event::Slot {
                name: name.clone(),
                value,
                timestamp: 0.0,
            });
        }
    }
    out
}

fn is_listen(e: Option<&Event>) -> bool {
    matches!(e, Some(Event::Action { name, .. }) if name == ACTION_LISTEN)
}

/// Adds the events of one step; `rule`: `null` values mean "must not be set".
fn push_step(domain: &Domain, out: &mut Vec<Event>, s: &Step, rule: bool) {
    if s.intent.is_some() || s.user.is_some() {
        if !is_listen(out.last()) {
            out.push(action(ACTION_LISTEN));
        }
        let intent = s.intent.as_ref().map(|i| base_intent(&i.value));
        let text = s.user.as_deref().map(str::trim);
        let text = if intent.is_some() {
            None
        } else {
            text.map(|t| {
                duet_train::tokens::data::parse_inline(t).map_or_else(|_| t.to_owned(), |p| p.0)
            })
        };
        let e = user_event(intent.as_deref(), text.as_deref(), &s.entities);
        let slots = match &e {
            Event::User { parse_data, .. } => slots_for_entities(domain, &parse_data.entities),
            _ => Vec::new(),
        };
        out.push(e);
        out.extend(slots);
    }
    if let Some(a) = &s.action {
        out.push(action(&a.value));
    }
    for (name, value) in slot_items(domain, &s.slot_was_set) {
        let value = if rule && value.is_null() {
            Value::String(SHOULD_NOT_BE_SET.into())
        } else {
            value
        };
        out.push(Event::Slot {
            name,
            value,
            timestamp: 0.0,
        });
    }
    if let Some(l) = &s.active_loop {
        let name = match l.as_str() {
            Some(n) => Some(n.to_owned()),
            None if rule => Some(SHOULD_NOT_BE_SET.to_owned()),
            None => None,
        };
        out.push(Event::ActiveLoop {
            name,
            timestamp: 0.0,
        });
    }
}

/// The base of a retrieval intent (`faq/ask_x` is `faq`).
pub fn base_intent(intent: &str) -> String {
    intent.split('/').next().unwrap_or_default().to_owned()
}

/// The events a story's steps (alternatives and checkpoints already resolved) stand for.
pub fn story_events(domain: &Domain, steps: &[Step]) -> Vec<Event> {
    let mut out = Vec::new();
    for s in steps {
        push_step(domain, &mut out, s, false);
    }
    if !is_listen(out.last()) {
        out.push(action(ACTION_LISTEN));
    }
    out
}

/// Whether a story's first action comes before any user turn (Rasa cannot predict it).
pub fn starts_with_action(steps: &[Step]) -> bool {
    steps
        .iter()
        .find(|s| s.intent.is_some() || s.user.is_some() || s.action.is_some())
        .is_some_and(|s| s.action.is_some() && s.intent.is_none() && s.user.is_none())
}

/// Every combination of a step list's `or:` alternatives.
pub fn expand_alternatives(steps: &[Step]) -> Vec<Vec<Step>> {
    let mut variants: Vec<Vec<Step>> = vec![Vec::new()];
    for step in steps {
        match &step.alternatives {
            Some(alts) if !alts.is_empty() => {
                variants = variants
                    .into_iter()
                    .flat_map(|v| {
                        alts.iter().map(move |a| {
                            let mut v = v.clone();
                            v.push(a.clone());
                            v
                        })
                    })
                    .take(256)
                    .collect();
            }
            _ => variants.iter_mut().for_each(|v| v.push(step.clone())),
        }
    }
    variants
}

/// The event lists of a rule (one per combination of its `or:` alternatives).
pub fn rule_events(domain: &Domain, rule: &Rule) -> Vec<Vec<Event>> {
    expand_alternatives(&rule.steps)
        .into_iter()
        .map(|steps| {
            let mut out = Vec::new();
            for c in &rule.condition {
                push_step(domain, &mut out, c, true);
            }
            if !rule.conversation_start {
                out.push(action(RULE_SNIPPET_ACTION));
            }
            for s in &steps {
                push_step(domain, &mut out, s, true);
            }
            if !rule.wait_for_user_input {
                out.push(action(RULE_SNIPPET_ACTION));
            }
            if !is_listen(out.last()) {
                out.push(action(ACTION_LISTEN));
            }
            out
        })
        .collect()
}
