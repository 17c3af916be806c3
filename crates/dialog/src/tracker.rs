//! The conversation as an event log (Rasa's event types and JSON tags), and the state derived
//! from it: slots, the latest message, the active form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An entity found in a message (Rasa's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// The entity type.
    pub entity: String,
    /// The value (after synonyms).
    pub value: Value,
    /// First character in the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<usize>,
    /// One past the last character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<usize>,
    /// Which extractor found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extractor: Option<String>,
    /// The entity's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// What the extractor knows beyond the value (Duckling's whole answer: unit, grain, type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_info: Option<Value>,
}

/// An intent and its confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// The intent.
    pub name: String,
    /// Its probability.
    pub confidence: f64,
}

/// What NLU made of a message (the body of Rasa's `/model/parse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParseData {
    /// The text.
    pub text: String,
    /// The best intent.
    pub intent: Intent,
    /// The entities.
    #[serde(default)]
    pub entities: Vec<Entity>,
    /// Every intent, best first.
    #[serde(default)]
    pub intent_ranking: Vec<Intent>,
    /// For a retrieval intent (`faq/ask_delivery`): the full name and the response to send,
    /// as Rasa's ResponseSelector reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_selector: Option<serde_json::Value>,
}

impl ParseData {
    /// The full retrieval intent (`faq/ask_delivery`) when the intent is a retrieval intent.
    pub fn retrieval_intent(&self) -> Option<&str> {
        self.response_selector
            .as_ref()?
            .get(&self.intent.name)?
            .pointer("/response/intent_response_key")?
            .as_str()
    }
}

/// One event of a conversation, tagged as Rasa tags them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The user said something.
    User {
        /// The text.
        text: String,
        /// What NLU made of it.
        parse_data: ParseData,
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
        /// The channel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_channel: Option<String>,
    },
    /// The bot said something.
    Bot {
        /// The text.
        #[serde(default)]
        text: Option<String>,
        /// Buttons, image, custom payload.
        #[serde(default)]
        data: Value,
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
    },
    /// An action ran.
    Action {
        /// Its name.
        name: String,
        /// The policy that chose it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
        /// The policy's confidence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confidence: Option<f64>,
        /// A turn only rules know: the memoisation and trained policies do not see it (Rasa's
        /// `hide_rule_turn`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        hide_rule_turn: bool,
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
    },
    /// A slot was set.
    Slot {
        /// The slot.
        name: String,
        /// Its value.
        value: Value,
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
    },
    /// A form became active (a name) or inactive (`null`).
    ActiveLoop {
        /// The form.
        name: Option<String>,
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
    },
    /// The conversation starts over.
    Restart {
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
    },
    /// A new session began.
    SessionStarted {
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
    },
    /// Every slot back to its initial value.
    ResetSlots {
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
    },
    /// The next action is forced.
    Followup {
        /// The action.
        name: String,
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
    },
    /// The latest user message and what followed it are undone (`action_back`, fallbacks).
    Rewind {
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
    },
    /// A loop (form) refused to run: nothing it could use was in the latest message (Rasa's
    /// `ActionExecutionRejected`); the policies choose again.
    #[serde(rename = "action_execution_rejected")]
    Rejected {
        /// The action that refused.
        name: String,
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
    },
    /// The active loop is coming back after an unhappy path and must not validate the latest
    /// message (Rasa's `LoopInterrupted`).
    LoopInterrupted {
        /// Whether the loop was interrupted.
        is_interrupted: bool,
        /// Seconds since the epoch.
        #[serde(default, deserialize_with = "timestamp")]
        timestamp: f64,
    },
}

/// A timestamp that may be `null` (the SDK sends `null` for events it makes).
fn timestamp<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or_else(now))
}

/// The name of the action that waits for the user.
pub const ACTION_LISTEN: &str = "action_listen";
/// The name of the action that starts a session.
pub const ACTION_SESSION_START: &str = "action_session_start";

/// A conversation: its events and the state they add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    /// Who the conversation is with.
    pub sender_id: String,
    /// Every event, oldest first.
    pub events: Vec<Event>,
    /// Current slot values.
    pub slots: BTreeMap<String, Value>,
    /// The latest user message.
    pub latest_message: Option<ParseData>,
    /// The active form.
    pub active_loop: Option<String>,
    /// The latest action run.
    pub latest_action_name: Option<String>,
    /// An action forced to run next.
    pub followup_action: Option<String>,
    /// The active loop refused to run since the latest time it ran.
    #[serde(default)]
    pub loop_rejected: bool,
    /// The active loop comes back after an unhappy path.
    #[serde(default)]
    pub loop_interrupted: bool,
    /// Initial slot values (for resets).
    #[serde(skip)]
    initial: BTreeMap<String, Value>,
}

impl Tracker {
    /// An empty conversation with slots at their initial values.
    pub fn new(sender_id: &str, initial: BTreeMap<String, Value>) -> Self {
        Self {
            sender_id: sender_id.to_owned(),
            events: Vec::new(),
            slots: initial.clone(),
            latest_message: None,
            active_loop: None,
            latest_action_name: None,
            followup_action: None,
            loop_rejected: false,
            loop_interrupted: false,
            initial,
        }
    }

    /// A conversation rebuilt from its events.
    pub fn from_events(
        sender_id: &str,
        initial: BTreeMap<String, Value>,
        events: Vec<Event>,
    ) -> Self {
        let mut t = Self::new(sender_id, initial);
        for e in events {
            t.apply(e);
        }
        t
    }

    /// Appends an event and updates the state.
    pub fn apply(&mut self, e: Event) {
        match &e {
            Event::User { parse_data, .. } => self.latest_message = Some(parse_data.clone()),
            Event::Action { name, .. } => {
                self.latest_action_name = Some(name.clone());
                if self.followup_action.as_deref() == Some(name) {
                    self.followup_action = None;
                }
                self.loop_interrupted = false;
                if self.active_loop.as_deref() == Some(name) {
                    self.loop_rejected = false;
                }
            }
            Event::Rejected { name, .. } => {
                if self.active_loop.as_deref() == Some(name) {
                    self.loop_rejected = true;
                }
            }
            Event::LoopInterrupted { is_interrupted, .. } => {
                if self.active_loop.is_some() {
                    self.loop_interrupted = *is_interrupted;
                }
            }
            Event::Slot { name, value, .. } => {
                self.slots.insert(name.clone(), value.clone());
            }
            Event::ActiveLoop { name, .. } => {
                self.active_loop = name.clone();
                self.loop_rejected = false;
                self.loop_interrupted = false;
            }
            Event::Restart { .. } => {
                self.slots = self.initial.clone();
                self.latest_message = None;
                self.active_loop = None;
                self.latest_action_name = None;
                self.followup_action = None;
                self.loop_rejected = false;
                self.loop_interrupted = false;
            }
            Event::ResetSlots { .. } => self.slots = self.initial.clone(),
            Event::Followup { name, .. } => self.followup_action = Some(name.clone()),
            Event::SessionStarted { .. } | Event::Bot { .. } | Event::Rewind { .. } => {}
        }
        let rewind = matches!(e, Event::Rewind { .. });
        self.events.push(e);
        if rewind {
            // Replays everything before the latest user message.
            let mut events = std::mem::take(&mut self.events);
            events.pop();
            if let Some(i) = events.iter().rposition(|e| matches!(e, Event::User { .. })) {
                events.truncate(i);
                // The `action_listen` that waited for the undone message goes too (Rasa's
                // `UserUtteranceReverted`).
                if matches!(events.last(), Some(Event::Action { name, .. }) if name == ACTION_LISTEN)
                {
                    events.pop();
                }
            }
            let rebuilt = Self::from_events(&self.sender_id, self.initial.clone(), events);
            *self = rebuilt;
        }
    }

    /// The active loop, if any (a rule's "no loop" marker counts as none, as in Rasa).
    pub fn active_loop_name(&self) -> Option<&str> {
        self.active_loop
            .as_deref()
            .filter(|n| *n != crate::policy::SHOULD_NOT_BE_SET)
    }

    /// The events since the latest restart or session start.
    pub fn session_events(&self) -> &[Event] {
        let start = self
            .events
            .iter()
            .rposition(|e| matches!(e, Event::Restart { .. } | Event::SessionStarted { .. }))
            .map_or(0, |i| i + 1);
        &self.events[start..]
    }

    /// The time of the latest event.
    pub fn last_timestamp(&self) -> f64 {
        self.events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::User { timestamp, .. }
                | Event::Bot { timestamp, .. }
                | Event::Action { timestamp, .. }
                | Event::Slot { timestamp, .. } => Some(*timestamp),
                _ => None,
            })
            .unwrap_or(0.0)
    }
}

/// Seconds since the epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(intent: &str) -> Event {
        Event::User {
            text: intent.into(),
            parse_data: ParseData {
                text: intent.into(),
                intent: Intent {
                    name: intent.into(),
                    confidence: 1.0,
                },
                entities: vec![],
                intent_ranking: vec![],
                response_selector: None,
            },
            timestamp: 0.0,
            input_channel: None,
        }
    }

    #[test]
    fn events_serialise_with_rasa_tags_and_rebuild_state() {
        let mut t = Tracker::new("u1", BTreeMap::new());
        t.apply(user("greet"));
        t.apply(Event::Slot {
            name: "city".into(),
            value: "Berlin".into(),
            timestamp: 1.0,
        });
        t.apply(Event::ActiveLoop {
            name: Some("booking_form".into()),
            timestamp: 2.0,
        });
        let json = serde_json::to_value(&t.events).unwrap();
        assert_eq!(json[1]["event"], "slot");
        assert_eq!(json[2]["event"], "active_loop");
        let back: Vec<Event> = serde_json::from_value(json).unwrap();
        let r = Tracker::from_events("u1", BTreeMap::new(), back);
        assert_eq!(r.slots["city"], "Berlin");
        assert_eq!(r.active_loop.as_deref(), Some("booking_form"));
    }

    #[test]
    fn rewind_undoes_the_latest_user_turn() {
        let mut t = Tracker::new("u", BTreeMap::new());
        t.apply(user("greet"));
        t.apply(user("mood_great"));
        t.apply(Event::Slot {
            name: "s".into(),
            value: 1.into(),
            timestamp: 0.0,
        });
        t.apply(Event::Rewind { timestamp: 0.0 });
        assert_eq!(t.events.len(), 1);
        assert_eq!(
            t.latest_message.map(|m| m.intent.name).as_deref(),
            Some("greet")
        );
        assert!(t.slots.is_empty());
    }
}
