//! The turn loop: a user message is parsed and applied with the slots it fills, then actions
//! are predicted and run until the assistant listens. Only this loop applies events to the
//! conversation: the prediction's own events, `action` for the action that ran, then the events
//! the action returned. A loop that refuses to run leaves `action_execution_rejected` instead
//! and the policies choose again.

use super::{ActionRun, Assistant, MAX_ACTIONS_PER_TURN, action_event};
use crate::actions::{Action, BotMessage};
use crate::tracker::{ACTION_LISTEN, Event, ParseData, Tracker, now};

impl Assistant {
    /// The events a user message (already parsed) adds: a new session if the last one expired,
    /// the user event, and the slots it fills.
    pub fn receive_events(&self, t: &Tracker, msg: ParseData, channel: Option<&str>) -> Vec<Event> {
        let mut out = Vec::new();
        let expiry = self.domain.session_config.session_expiration_time;
        let mut view = t.clone();
        if expiry > 0.0 && t.last_timestamp() > 0.0 && now() - t.last_timestamp() > expiry * 60.0 {
            for e in self.session_start(t) {
                view.apply(e.clone());
                out.push(e);
            }
        }
        let user = Event::User {
            text: msg.text.clone(),
            parse_data: msg.clone(),
            timestamp: now(),
            input_channel: channel.map(str::to_owned),
        };
        view.apply(user.clone());
        out.push(user);
        out.extend(self.extract_slots(&view, &msg));
        out
    }

    /// Applies a user message (already parsed) to the tracker.
    pub fn receive(&self, t: &mut Tracker, msg: ParseData, channel: Option<&str>) {
        for e in self.receive_events(t, msg, channel) {
            t.apply(e);
        }
    }

    /// Answers a user message: the bot's messages, the tracker updated.
    pub fn handle(&self, t: &mut Tracker, text: &str, channel: Option<&str>) -> Vec<BotMessage> {
        let msg = self.nlu.parse(text);
        self.receive(t, msg, channel);
        self.act(t, channel)
    }

    /// Answers a user message like [`Assistant::handle`], passing a language model's answer to
    /// `sink` as it streams in.
    pub fn handle_streaming(
        &self,
        t: &mut Tracker,
        text: &str,
        channel: Option<&str>,
        sink: &mut dyn FnMut(&str),
    ) -> Vec<BotMessage> {
        let msg = self.nlu.parse(text);
        self.receive(t, msg, channel);
        self.act_with(t, channel, Some(sink))
    }

    /// Predicts and runs actions until the assistant listens.
    pub fn act(&self, t: &mut Tracker, channel: Option<&str>) -> Vec<BotMessage> {
        self.act_with(t, channel, None)
    }

    /// [`Assistant::act`], streaming a language model's answer to `sink`.
    pub fn act_with(
        &self,
        t: &mut Tracker,
        channel: Option<&str>,
        mut sink: Option<&mut (dyn FnMut(&str) + '_)>,
    ) -> Vec<BotMessage> {
        let mut out = Vec::new();
        for _ in 0..MAX_ACTIONS_PER_TURN {
            let p = self.predict(t);
            if p.action == ACTION_LISTEN {
                for e in p.events.iter().cloned() {
                    t.apply(e);
                }
                t.apply(executed(&p));
                return out;
            }
            // The action sees the prediction's events; they are kept only if it runs (Rasa
            // discards them when a loop rejects).
            let mut view = t.clone();
            for e in p.events.iter().cloned() {
                view.apply(e);
            }
            let run: ActionRun<'_> =
                self.run_action_with(&view, &p.action, channel, sink.as_deref_mut());
            if run.rejected {
                t.apply(Event::Rejected {
                    name: p.action.clone(),
                    timestamp: now(),
                });
                continue;
            }
            for e in p.events.iter().cloned() {
                t.apply(e);
            }
            t.apply(executed(&p));
            // An action that undid the user's message (and gave no other in its place) leaves
            // the assistant waiting for a new one.
            let undone = run
                .events
                .iter()
                .rev()
                .find(|e| matches!(e, Event::Rewind { .. } | Event::User { .. }))
                .is_some_and(|e| matches!(e, Event::Rewind { .. }));
            for e in run.events {
                t.apply(e);
            }
            out.extend(run.messages);
            if run.listen_next || undone {
                break;
            }
            if matches!(
                self.action(&p.action),
                Action::DefaultFallback
                    | Action::LlmFallback
                    | Action::Knowledge
                    | Action::Restart
                    | Action::Back
            ) {
                break;
            }
        }
        t.apply(action_event(ACTION_LISTEN, Some("RulePolicy"), Some(1.0)));
        out
    }
}

/// The `action` event of a predicted action that ran, marked hidden when its rule is one no
/// story continues.
fn executed(p: &crate::policy::Prediction) -> Event {
    let mut e = action_event(&p.action, Some(p.policy), Some(p.confidence));
    if let Event::Action { hide_rule_turn, .. } = &mut e {
        *hide_rule_turn = p.hide_rule_turn;
    }
    e
}
