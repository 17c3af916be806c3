//! Forms, as Rasa 3.6's `FormAction` runs them:
//! 1. activation: the `active_loop` event, then the required slots already filled are validated
//!    by `validate_<form>` when the domain lists it;
//! 2. validation: after the user spoke (and unless the loop comes back from an unhappy path), the
//!    required slots filled since the latest user message go to `validate_<form>`, which sees
//!    the conversation followed by `requested_slot`, the form's own `action` and the candidate
//!    slots (what rasa-sdk's `slots_to_validate()` reads); nothing filled while a slot was
//!    requested rejects the form, and the policies choose again;
//! 3. the next empty required slot is requested and asked for with the first of
//!    `action_ask_<form>_<slot>`, `utter_ask_<form>_<slot>`, `action_ask_<slot>`,
//!    `utter_ask_<slot>` the domain has;
//! 4. with every slot filled, `requested_slot` is reset and the form deactivates.
//!
//! A form without `validate_<form>` gets duet's own check of categorical, float and bool values
//! (a rejected value is cleared and `utter_invalid_<slot>` said), which Rasa leaves to the
//! action server.

use serde_json::Value;

use super::{ActionRun, Assistant, action_event};
use crate::tracker::{ACTION_LISTEN, Event, Tracker, now};

const REQUESTED_SLOT: &str = "requested_slot";

fn slot(name: &str, value: Value) -> Event {
    Event::Slot {
        name: name.to_owned(),
        value,
        timestamp: now(),
    }
}

/// The slot events since the latest user message (or restart).
fn slots_since_user(t: &Tracker) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = t
        .events
        .iter()
        .rev()
        .take_while(|e| !matches!(e, Event::User { .. } | Event::Restart { .. }))
        .filter_map(|e| match e {
            Event::Slot { name, value, .. } => Some((name.clone(), value.clone())),
            _ => None,
        })
        .collect();
    out.reverse();
    out
}

/// Rasa's `FormAction.is_done` on the events so far.
fn is_done(events: &[Event]) -> bool {
    if events.iter().any(|e| matches!(e, Event::Rejected { .. })) {
        return false;
    }
    let last_requested = events.iter().rev().find_map(|e| match e {
        Event::Slot { name, value, .. } if name == REQUESTED_SLOT => Some(value.is_null()),
        _ => None,
    });
    let last_loop = events.iter().rev().find_map(|e| match e {
        Event::ActiveLoop { name, .. } => Some(name.is_none()),
        _ => None,
    });
    last_requested == Some(true) || last_loop == Some(true)
}

impl Assistant {
    /// The conversation `validate_<form>` sees: what happened, `requested_slot`, the form's
    /// action, then the candidate slots (Rasa's `FormAction._temporary_tracker`).
    pub fn validation_tracker(
        &self,
        t: &Tracker,
        form: &str,
        candidates: &[(String, Value)],
    ) -> Tracker {
        let mut v = t.clone();
        let to_fill = if t.active_loop_name() == Some(form) {
            t.slots.get(REQUESTED_SLOT).cloned().unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        v.apply(slot(REQUESTED_SLOT, to_fill));
        v.apply(action_event(form, None, None));
        for (k, val) in candidates {
            v.apply(slot(k, val.clone()));
        }
        v
    }

    /// Sends candidate slots through `validate_<form>`; its events and messages go into `run`.
    /// Without a validation action: duet's own value checks.
    fn validate_slots(&self, run: &mut ActionRun<'_>, form: &str, candidates: &[(String, Value)]) {
        let validator = format!("validate_{form}");
        if self.domain.actions.iter().any(|a| a.name() == validator) {
            let seen = self.validation_tracker(&run.view, form, candidates);
            if let Err(e) = self.run_custom_on(run, &validator, &seen) {
                tracing::error!("{e}");
            }
            return;
        }
        for (name, value) in candidates {
            if value.is_null() {
                continue;
            }
            if let Some(fixed) = self.validate_slot(name, value) {
                if fixed != *value {
                    run.emit(slot(name, fixed.clone()));
                }
                if fixed.is_null() {
                    self.utter(run, &format!("utter_invalid_{name}"));
                }
            }
        }
    }

    /// Runs form `name` into `run` (see the module header).
    pub(crate) fn run_form(&self, run: &mut ActionRun<'_>, name: &str) {
        let Some(form) = self.domain.forms.get(name) else {
            return;
        };
        let required = &form.required_slots;
        let before = run.view.clone();
        let activating = before.active_loop_name() != Some(name);
        let mut prefilled_validated = false;
        if activating {
            // Rasa's `FormAction.activate`: the loop, the slots its mappings fill now that it
            // is active, then `validate_<form>` on the required slots already filled (called
            // even when none are).
            run.emit(Event::ActiveLoop {
                name: Some(name.to_owned()),
                timestamp: now(),
            });
            let first = run.events.len();
            if let Some(msg) = run.view.latest_message.clone() {
                for e in self.extract_slots(&run.view, &msg) {
                    if let Event::Slot { name, value, .. } = &e
                        && run.view.slots.get(name) != Some(value)
                    {
                        run.emit(e);
                    }
                }
            }
            let prefilled: Vec<(String, Value)> = required
                .iter()
                .filter_map(|s| {
                    let v = run.view.slots.get(s).filter(|v| !v.is_null())?;
                    Some((s.clone(), v.clone()))
                })
                .collect();
            let validator = format!("validate_{name}");
            if self.domain.actions.iter().any(|a| a.name() == validator) {
                self.validate_slots(run, name, &prefilled);
            }
            prefilled_validated = run.events.len() > first;
        }
        let start = run.events.len();
        if !prefilled_validated {
            let needs_validation = activating
                || (before.latest_action_name.as_deref() == Some(ACTION_LISTEN)
                    && !before.loop_interrupted);
            if needs_validation {
                let to_fill = if before.active_loop_name() == Some(name) {
                    before
                        .slots
                        .get(REQUESTED_SLOT)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                } else {
                    None
                };
                let extracted: Vec<(String, Value)> = slots_since_user(&before)
                    .into_iter()
                    .filter(|(k, _)| required.contains(k) || to_fill.as_deref() == Some(k))
                    .collect();
                self.validate_slots(run, name, &extracted);
                let validated = run.events[start..]
                    .iter()
                    .any(|e| matches!(e, Event::Slot { name, .. } if name != REQUESTED_SLOT));
                let rejected_manually = run.events[start..]
                    .iter()
                    .any(|e| matches!(e, Event::Rejected { .. }));
                if to_fill.is_some() && extracted.is_empty() && !validated && !rejected_manually {
                    run.rejected = true;
                    return;
                }
            } else {
                self.validate_slots(run, name, &[]);
            }
        }
        let rejected_manually = run.events[start..]
            .iter()
            .any(|e| matches!(e, Event::Rejected { .. }));
        if !rejected_manually {
            self.request_next_slot(run, name, required);
        }
        if is_done(&run.events) {
            run.emit(Event::ActiveLoop {
                name: None,
                timestamp: now(),
            });
        }
    }

    /// Rasa's `request_next_slot`: the slot a validation asked for, else the first empty
    /// required slot; asked for, or `requested_slot` reset when there is none.
    fn request_next_slot(&self, run: &mut ActionRun<'_>, form: &str, required: &[String]) {
        if is_done(&run.events) {
            run.emit(slot(REQUESTED_SLOT, Value::Null));
            return;
        }
        let asked = run.events.iter().find_map(|e| match e {
            Event::Slot { name, value, .. } if name == REQUESTED_SLOT => {
                value.as_str().map(str::to_owned)
            }
            _ => None,
        });
        let next = asked.or_else(|| {
            let s = required
                .iter()
                .find(|s| run.view.slots.get(*s).is_none_or(Value::is_null))
                .cloned();
            run.emit(slot(
                REQUESTED_SLOT,
                s.clone().map_or(Value::Null, Value::String),
            ));
            s
        });
        match next {
            Some(s) => self.ask_for_slot(run, form, &s),
            None => run.emit(slot(REQUESTED_SLOT, Value::Null)),
        }
    }

    /// Asks for `slot` with the first ask action or response the domain has.
    fn ask_for_slot(&self, run: &mut ActionRun<'_>, form: &str, slot: &str) {
        let order = [
            format!("action_ask_{form}_{slot}"),
            format!("utter_ask_{form}_{slot}"),
            format!("action_ask_{slot}"),
            format!("utter_ask_{slot}"),
        ];
        let found = order.iter().find(|n| {
            if n.starts_with("action_") {
                self.domain.actions.iter().any(|a| a.name() == **n)
            } else {
                self.domain.responses.contains_key(*n)
            }
        });
        match found {
            Some(n) if n.starts_with("action_") => {
                if let Err(e) = self.run_custom(run, n) {
                    tracing::error!("{e}");
                }
            }
            Some(n) => {
                self.utter(run, n);
            }
            None => tracing::debug!("form {form}: nothing asks for slot {slot}"),
        }
    }
}
