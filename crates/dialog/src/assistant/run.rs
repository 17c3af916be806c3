//! Running one action: an [`ActionRun`] sees the conversation as it was before the action and
//! collects what the action says and the events it returns; the turn loop alone applies them to
//! the conversation (Rasa's contract). Responses and Rasa's default actions run here.

use serde_json::Value;

use super::Assistant;
use crate::actions::{self, Action, BotMessage};
use crate::project::ResponseVariant;
use crate::tracker::{Event, Tracker, now};

/// One action's run: its view of the conversation, its messages and events.
pub struct ActionRun<'c> {
    /// The conversation as the action sees it (its own events applied).
    pub view: Tracker,
    /// The events the action returns, in order.
    pub events: Vec<Event>,
    /// What it says.
    pub messages: Vec<BotMessage>,
    /// A loop refused to run (Rasa's `ActionExecutionRejection`): the policies choose again.
    pub rejected: bool,
    /// The action failed: wait for the user.
    pub listen_next: bool,
    /// The channel.
    pub channel: Option<&'c str>,
}

impl<'c> ActionRun<'c> {
    /// A run over the conversation `t`.
    pub fn new(t: &Tracker, channel: Option<&'c str>) -> Self {
        Self {
            view: t.clone(),
            events: Vec::new(),
            messages: Vec::new(),
            rejected: false,
            listen_next: false,
            channel,
        }
    }

    /// Returns an event (and lets the rest of the action see it).
    pub fn emit(&mut self, e: Event) {
        self.view.apply(e.clone());
        self.events.push(e);
    }

    /// Says a response variation.
    pub fn say(&mut self, v: &ResponseVariant) {
        let (msg, ev) = actions::render(v, &self.view);
        self.messages.push(msg);
        self.emit(ev);
    }

    /// Says a response variation whose `{placeholders}` take `values` before the slots (what a
    /// custom action passes with `dispatcher.utter_message(response=..., **kwargs)`).
    pub fn say_with(&mut self, v: &ResponseVariant, values: &serde_json::Map<String, Value>) {
        let mut seen = self.view.clone();
        for (k, val) in values {
            seen.slots.insert(k.clone(), val.clone());
        }
        let (msg, ev) = actions::render(v, &seen);
        self.messages.push(msg);
        self.emit(ev);
    }

    /// Says plain text.
    pub fn say_text(&mut self, text: &str) {
        self.say(&ResponseVariant {
            text: Some(text.to_owned()),
            ..Default::default()
        });
    }
}

impl Assistant {
    /// Says response `name` if the domain has a variation for this conversation.
    pub(crate) fn utter(&self, run: &mut ActionRun<'_>, name: &str) -> bool {
        match actions::choose(&self.domain, name, &run.view, run.channel).cloned() {
            Some(v) => {
                run.say(&v);
                true
            }
            None => false,
        }
    }

    /// Runs one action on the conversation `t`; returns what it says and the events it
    /// returns, without applying them.
    pub fn run_action<'c>(
        &self,
        t: &Tracker,
        name: &str,
        channel: Option<&'c str>,
    ) -> ActionRun<'c> {
        self.run_action_with(t, name, channel, None)
    }

    /// [`Assistant::run_action`]; a language model's answer is also passed to `sink` piece by
    /// piece as it is generated.
    pub fn run_action_with<'c>(
        &self,
        t: &Tracker,
        name: &str,
        channel: Option<&'c str>,
        sink: Option<&mut (dyn FnMut(&str) + '_)>,
    ) -> ActionRun<'c> {
        let mut run = ActionRun::new(t, channel);
        self.run_into(&mut run, name, sink);
        run
    }

    /// Runs action `name` into `run`.
    pub(crate) fn run_into(
        &self,
        run: &mut ActionRun<'_>,
        name: &str,
        sink: Option<&mut (dyn FnMut(&str) + '_)>,
    ) {
        match self.action(name) {
            Action::Listen | Action::Noop => {}
            Action::Restart => {
                self.utter(run, "utter_restart");
                run.emit(Event::Restart { timestamp: now() });
                for e in self.session_start(&run.view) {
                    run.emit(e);
                }
            }
            Action::SessionStart => {
                for e in crate::actions::session_start_events(&self.domain, &run.view) {
                    run.emit(e);
                }
            }
            Action::DefaultFallback => {
                if !self.utter(run, "utter_default") {
                    run.say_text("Sorry, I didn't get that. Can you rephrase?");
                }
                run.emit(Event::Rewind { timestamp: now() });
            }
            Action::Knowledge => self.knowledge_answer(run, sink),
            Action::LlmFallback => self.llm_answer(run, sink),
            Action::TwoStageFallback => self.two_stage_fallback(run),
            Action::DeactivateLoop => {
                run.emit(Event::ActiveLoop {
                    name: None,
                    timestamp: now(),
                });
                run.emit(Event::Slot {
                    name: "requested_slot".into(),
                    value: Value::Null,
                    timestamp: now(),
                });
            }
            Action::Back => {
                self.utter(run, "utter_back");
                run.emit(Event::Rewind { timestamp: now() });
                run.emit(Event::Rewind { timestamp: now() });
            }
            Action::Form(n) => self.run_form(run, &n),
            Action::Retrieval(n) => {
                // The response of the full retrieval intent NLU found.
                let full = run
                    .view
                    .latest_message
                    .as_ref()
                    .and_then(|m| m.retrieval_intent().map(str::to_owned));
                match full {
                    Some(f) if self.utter(run, &format!("utter_{f}")) => {}
                    other => tracing::warn!("{n}: no response for retrieval intent {other:?}"),
                }
            }
            Action::Response(n) => {
                if !self.utter(run, &n) {
                    tracing::warn!("response {n} has no variation for this conversation");
                }
            }
            Action::Command(n) => {
                if let Err(e) = self.run_command(run, &n) {
                    tracing::error!("{e}");
                    if !self.utter(run, "utter_default") {
                        tracing::warn!("no utter_default to say that {n} failed");
                    }
                }
            }
            Action::Custom(n) => {
                if let Err(e) = self.run_custom(run, &n) {
                    tracing::error!("{e}");
                    run.listen_next = true;
                }
            }
        }
    }

    /// duet's answer from the knowledge base, else the language model, else `utter_default`.
    fn knowledge_answer(&self, run: &mut ActionRun<'_>, sink: Option<&mut (dyn FnMut(&str) + '_)>) {
        let query = run
            .view
            .latest_message
            .as_ref()
            .map(|m| m.text.clone())
            .unwrap_or_default();
        let best = self.knowledge.as_ref().map(|k| {
            k.search(&query, 1).map(|v| {
                v.into_iter()
                    .next()
                    .filter(|(_, s)| *s >= k.min_score)
                    .map(|(p, s)| (p.clone(), s))
            })
        });
        match best {
            Some(Ok(Some((p, score)))) => {
                run.messages.push(text_message(&run.view, &p.text));
                run.emit(Event::Bot {
                    text: Some(p.text.clone()),
                    data: serde_json::json!({"source": "knowledge", "passage": {"source": p.source, "heading": p.heading}, "score": score}),
                    timestamp: now(),
                });
            }
            other => {
                if let Some(Err(e)) = other {
                    tracing::error!("{e}");
                }
                if self.endpoints.llm.is_some() {
                    // No passage answers: the language model may.
                    self.llm_answer(run, sink);
                } else if !self.utter(run, "utter_default") {
                    run.say_text("Sorry, I don't know the answer to that.");
                }
            }
        }
    }

    /// duet's answer from the language model (with passages of the knowledge base).
    fn llm_answer(&self, run: &mut ActionRun<'_>, sink: Option<&mut (dyn FnMut(&str) + '_)>) {
        let query = run
            .view
            .latest_message
            .as_ref()
            .map(|m| m.text.clone())
            .unwrap_or_default();
        let context: Vec<crate::knowledge::Passage> = match &self.knowledge {
            Some(k) => k
                .search(&query, 3)
                .map(|v| {
                    v.into_iter()
                        .filter(|(_, s)| *s >= k.min_score)
                        .map(|(p, _)| p.clone())
                        .collect()
                })
                .unwrap_or_else(|e| {
                    tracing::error!("{e}");
                    Vec::new()
                }),
            None => Vec::new(),
        };
        let answer = match &self.endpoints.llm {
            Some(ep) => {
                crate::llm::answer(ep, &run.view, &context, sink).map(|a| (a, ep.model.clone()))
            }
            None => Err(crate::Error::Model(
                "action_llm_fallback: endpoints.yml names no llm".into(),
            )),
        };
        match answer {
            Ok((text, model)) => {
                run.messages.push(text_message(&run.view, &text));
                let sources: Vec<_> = context
                    .iter()
                    .map(|p| serde_json::json!({"source": p.source, "heading": p.heading}))
                    .collect();
                run.emit(Event::Bot {
                    text: Some(text),
                    data: serde_json::json!({"source": "llm", "model": model, "passages": sources}),
                    timestamp: now(),
                });
            }
            Err(e) => {
                tracing::error!("{e}");
                if !self.utter(run, "utter_default") {
                    run.say_text("Sorry, I can't answer that right now.");
                }
            }
        }
    }
}

/// A plain text message for the user.
fn text_message(t: &Tracker, text: &str) -> BotMessage {
    BotMessage {
        recipient_id: t.sender_id.clone(),
        text: Some(text.to_owned()),
        image: None,
        buttons: vec![],
        custom: None,
        attachment: None,
    }
}
