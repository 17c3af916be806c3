//! Actions: responses from the domain (variations, conditions, slot templates, buttons, images)
//! and Rasa's default actions.

use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::project::{Button, Domain, ResponseVariant};
use crate::tracker::{Event, Tracker, now};

/// A message for the user, as Rasa's REST channel sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotMessage {
    /// The conversation.
    pub recipient_id: String,
    /// The text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
    /// A custom payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    /// An attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Value>,
}

/// Rasa's default actions that duet runs.
pub const DEFAULT_ACTIONS: &[&str] = &[
    "action_listen",
    "action_restart",
    "action_session_start",
    "action_default_fallback",
    "action_deactivate_loop",
    "action_back",
    "action_llm_fallback",
    "action_knowledge",
    "action_extract_slots",
    "action_unlikely_intent",
    TWO_STAGE_FALLBACK,
];

/// An action, resolved from its name once against the domain and `commands.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `action_listen`: wait for the user.
    Listen,
    /// `action_restart`: start over.
    Restart,
    /// `action_session_start`: a new session, slots carried over as the domain says.
    SessionStart,
    /// `action_default_fallback`: say `utter_default` and undo the user's message.
    DefaultFallback,
    /// `action_deactivate_loop`: end the active loop.
    DeactivateLoop,
    /// `action_back`: undo the latest user message and the turn before it.
    Back,
    /// `action_extract_slots` and `action_unlikely_intent`: nothing to do at this point.
    Noop,
    /// duet's fallback to the language model.
    LlmFallback,
    /// duet's answer from the knowledge base.
    Knowledge,
    /// Rasa's two-stage fallback loop.
    TwoStageFallback,
    /// A form of the domain.
    Form(String),
    /// A response of the domain (`utter_*`).
    Response(String),
    /// A retrieval action (`utter_faq` for the responses `utter_faq/*`).
    Retrieval(String),
    /// A command of `commands.yml`.
    Command(String),
    /// A custom action on the action server.
    Custom(String),
}

impl Action {
    /// What `name` is in this domain.
    pub fn resolve(domain: &Domain, commands: &crate::commands::Commands, name: &str) -> Self {
        // A default action the domain lists under `actions:` is the project's own, run on the
        // action server (as Rasa overrides it); `action_listen` cannot be overridden.
        if name != crate::tracker::ACTION_LISTEN
            && DEFAULT_ACTIONS.contains(&name)
            && domain.actions.iter().any(|a| a.name() == name)
        {
            return Self::Custom(name.to_owned());
        }
        match name {
            crate::tracker::ACTION_LISTEN => Self::Listen,
            "action_restart" => Self::Restart,
            crate::tracker::ACTION_SESSION_START => Self::SessionStart,
            "action_default_fallback" => Self::DefaultFallback,
            "action_deactivate_loop" | "action_deactivate_form" => Self::DeactivateLoop,
            "action_back" => Self::Back,
            "action_extract_slots" | "action_unlikely_intent" => Self::Noop,
            "action_llm_fallback" => Self::LlmFallback,
            "action_knowledge" => Self::Knowledge,
            TWO_STAGE_FALLBACK => Self::TwoStageFallback,
            n if domain.forms.contains_key(n) => Self::Form(n.to_owned()),
            n if domain.responses.contains_key(n) => Self::Response(n.to_owned()),
            n if n.starts_with("utter_") && {
                let prefix = format!("{n}/");
                domain.responses.keys().any(|k| k.starts_with(&prefix))
            } =>
            {
                Self::Retrieval(n.to_owned())
            }
            n if commands.commands.contains_key(n) => Self::Command(n.to_owned()),
            n if n.starts_with("utter_") && !domain.actions.iter().any(|a| a.name() == n) => {
                Self::Response(n.to_owned())
            }
            n => Self::Custom(n.to_owned()),
        }
    }
}

/// The loop that asks the user to confirm a guessed intent, then to rephrase.
pub const TWO_STAGE_FALLBACK: &str = "action_two_stage_fallback";

/// Replaces `{slot}` with the slot's value; unknown names stay as written.
pub fn fill_template(text: &str, slots: &BTreeMap<String, Value>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j)
                if after[..j]
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                    && j > 0 =>
            {
                let name = &after[..j];
                match slots.get(name) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) => out.push_str("None"),
                    Some(v) => out.push_str(&v.to_string()),
                    None => out.push_str(&rest[i..i + j + 2]),
                }
                rest = &after[j + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn condition_holds(v: &ResponseVariant, slots: &BTreeMap<String, Value>) -> bool {
    v.condition
        .iter()
        .all(|c| c.kind == "slot" && slots.get(&c.name).unwrap_or(&Value::Null) == &c.value)
}

/// The variation of response `name` to send: among those whose conditions hold (conditional
/// ones first, as Rasa prefers them), for this channel, one at random (seeded by the
/// conversation so that a replay says the same).
pub fn choose<'a>(
    domain: &'a Domain,
    name: &str,
    tracker: &Tracker,
    channel: Option<&str>,
) -> Option<&'a ResponseVariant> {
    let variants = domain.responses.get(name)?;
    let for_channel = |v: &&ResponseVariant| v.channel.is_none() || v.channel.as_deref() == channel;
    let conditional: Vec<&ResponseVariant> = variants
        .iter()
        .filter(for_channel)
        .filter(|v| !v.condition.is_empty() && condition_holds(v, &tracker.slots))
        .collect();
    let pool: Vec<&ResponseVariant> = if conditional.is_empty() {
        variants
            .iter()
            .filter(for_channel)
            .filter(|v| v.condition.is_empty())
            .collect()
    } else {
        conditional
    };
    if pool.is_empty() {
        return None;
    }
    let seed = tracker
        .sender_id
        .bytes()
        .fold(tracker.events.len() as u64, |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(b))
        });
    let mut rng = Pcg32::seed_from_u64(seed);
    Some(pool[rng.random_range(0..pool.len())])
}

/// The message and bot event of a response variation.
pub fn render(v: &ResponseVariant, tracker: &Tracker) -> (BotMessage, Event) {
    let text = v.text.as_ref().map(|t| fill_template(t, &tracker.slots));
    let buttons: Vec<Button> = v
        .buttons
        .iter()
        .map(|b| Button {
            title: fill_template(&b.title, &tracker.slots),
            payload: fill_template(&b.payload, &tracker.slots),
        })
        .collect();
    let msg = BotMessage {
        recipient_id: tracker.sender_id.clone(),
        text: text.clone(),
        image: v.image.clone(),
        buttons: buttons.clone(),
        custom: v.custom.clone(),
        attachment: v.attachment.clone(),
    };
    let mut data = serde_json::Map::new();
    if !buttons.is_empty() {
        data.insert(
            "buttons".into(),
            serde_json::to_value(&buttons).unwrap_or_default(),
        );
    }
    if let Some(i) = &v.image {
        data.insert("image".into(), Value::String(i.clone()));
    }
    if let Some(c) = &v.custom {
        data.insert("custom".into(), c.clone());
    }
    let event = Event::Bot {
        text,
        data: Value::Object(data),
        timestamp: now(),
    };
    (msg, event)
}

/// Slot events for a new session: carried-over slots stay when the domain says so.
pub fn session_start_events(domain: &Domain, tracker: &Tracker) -> Vec<Event> {
    let mut out = vec![Event::SessionStarted { timestamp: now() }];
    if domain.session_config.carry_over_slots_to_new_session {
        for (name, value) in &tracker.slots {
            if !value.is_null() {
                out.push(Event::Slot {
                    name: name.clone(),
                    value: value.clone(),
                    timestamp: now(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_known_slots_only() {
        let mut s = BTreeMap::new();
        s.insert("name".to_owned(), Value::String("Ada".into()));
        s.insert("n".to_owned(), Value::from(3));
        assert_eq!(
            fill_template("Hi {name}, {n} items, {unknown} {", &s),
            "Hi Ada, 3 items, {unknown} {"
        );
    }
}
