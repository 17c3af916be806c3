//! Filling slots from a user message through the domain's slot mappings (Rasa 3.6's
//! `action_extract_slots`), and duet's own value checks for forms without a validation action.

use serde_json::Value;

use super::Assistant;
use crate::tracker::{Event, ParseData, Tracker, now};

impl Assistant {
    /// Slot events a user message fills through the domain's slot mappings: for each slot the
    /// first mapping whose intent and conditions hold and that finds a value.
    pub fn extract_slots(&self, t: &Tracker, msg: &ParseData) -> Vec<Event> {
        let mut out = Vec::new();
        let requested = t.slots.get("requested_slot").and_then(Value::as_str);
        let active = t.active_loop_name();
        let ignored = active
            .and_then(|l| self.domain.forms.get(l))
            .is_some_and(|f| f.ignored_intents.contains(&msg.intent.name));
        for (name, slot) in &self.domain.slots {
            for m in &slot.mappings {
                let intent_ok = (m.intent.is_empty() || m.intent.contains(&msg.intent.name))
                    && !m.not_intent.contains(&msg.intent.name);
                let cond_ok = m.conditions.is_empty()
                    || m.conditions.iter().any(|c| {
                        c.active_loop.as_deref() == active
                            && c.requested_slot
                                .as_deref()
                                .is_none_or(|r| Some(r) == requested)
                    });
                let in_form = active
                    .and_then(|l| self.domain.forms.get(l))
                    .is_some_and(|f| f.required_slots.contains(name));
                if !intent_ok || !cond_ok || (ignored && in_form) {
                    continue;
                }
                let value = match m.kind.as_str() {
                    "from_entity" => {
                        let vals: Vec<Value> = msg
                            .entities
                            .iter()
                            .filter(|e| {
                                Some(&e.entity) == m.entity.as_ref()
                                    && (m.role.is_none() || e.role == m.role)
                            })
                            .map(|e| e.value.clone())
                            .collect();
                        match vals.len() {
                            0 => None,
                            1 if slot.kind != "list" => vals.into_iter().next(),
                            _ => Some(Value::Array(vals)),
                        }
                    }
                    "from_intent" => m.value.clone(),
                    "from_text" => Some(Value::String(msg.text.clone())),
                    _ => None,
                };
                if let Some(v) = value {
                    out.push(Event::Slot {
                        name: name.clone(),
                        value: v,
                        timestamp: now(),
                    });
                    break;
                }
            }
        }
        out
    }

    /// The value a slot keeps after the domain's checks (`Null`: rejected); `None` when the
    /// domain does not constrain the slot.
    pub fn validate_slot(&self, slot: &str, value: &Value) -> Option<Value> {
        let decl = self.domain.slots.get(slot)?;
        match decl.kind.as_str() {
            "categorical" if !decl.values.is_empty() => {
                let s = value
                    .as_str()
                    .map(str::to_lowercase)
                    .unwrap_or_else(|| value.to_string());
                Some(
                    decl.values
                        .iter()
                        .find(|v| v.to_lowercase() == s)
                        .map_or(Value::Null, |v| Value::String(v.clone())),
                )
            }
            "float" => {
                let x = value
                    .as_f64()
                    .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()));
                Some(match x {
                    Some(x)
                        if decl.min_value.is_none_or(|m| x >= m)
                            && decl.max_value.is_none_or(|m| x <= m) =>
                    {
                        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
                    }
                    _ => Value::Null,
                })
            }
            "bool" => Some(match value {
                Value::Bool(_) => value.clone(),
                Value::String(s) => match s.to_lowercase().as_str() {
                    "true" | "yes" | "y" => Value::Bool(true),
                    "false" | "no" | "n" => Value::Bool(false),
                    _ => Value::Null,
                },
                _ => Value::Null,
            }),
            _ => None,
        }
    }
}
