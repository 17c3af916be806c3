//! Rasa's two-stage fallback: a message NLU is unsure of gets "Did you mean '<intent>'?" with
//! Yes (`/<intent>`) and No (`/out_of_scope`) buttons; yes carries on as if the user had said
//! that intent, no asks to rephrase; a rephrasing NLU understands carries on with it, and one it
//! does not ends in `action_default_fallback`.

use super::{ActionRun, Assistant};
use crate::actions::{self, TWO_STAGE_FALLBACK};
use crate::project::{Button, ResponseVariant};
use crate::tracker::{Event, now};

fn message(text: String, buttons: Vec<Button>) -> ResponseVariant {
    ResponseVariant {
        text: Some(text),
        buttons,
        ..Default::default()
    }
}

impl Assistant {
    /// Says the domain's response `name`, else `default`.
    fn say_or(&self, run: &mut ActionRun<'_>, name: &str, default: ResponseVariant) {
        let chosen = actions::choose(&self.domain, name, &run.view, run.channel)
            .cloned()
            .unwrap_or(default);
        run.say(&chosen);
    }

    /// Runs one step of the two-stage fallback loop into `run`.
    pub(crate) fn two_stage_fallback(&self, run: &mut ActionRun<'_>) {
        let name = TWO_STAGE_FALLBACK;
        let latest = run.view.latest_message.clone();
        let intent = latest
            .as_ref()
            .map(|m| m.intent.name.clone())
            .unwrap_or_default();
        if run.view.active_loop.as_deref() != Some(name) {
            run.emit(Event::ActiveLoop {
                name: Some(name.into()),
                timestamp: now(),
            });
            let guess = latest
                .as_ref()
                .and_then(|m| {
                    m.intent_ranking
                        .iter()
                        .find(|i| i.name != crate::nlu::NLU_FALLBACK)
                })
                .map(|i| i.name.clone())
                .unwrap_or_else(|| "out_of_scope".into());
            let buttons = vec![
                Button {
                    title: "Yes".into(),
                    payload: format!("/{guess}"),
                },
                Button {
                    title: "No".into(),
                    payload: "/out_of_scope".into(),
                },
            ];
            self.say_or(
                run,
                "utter_ask_affirmation",
                message(format!("Did you mean '{guess}'?"), buttons),
            );
            return;
        }
        // Where the loop is: bot turns since it started.
        let events = &run.view.events;
        let start = events
            .iter()
            .rposition(|e| matches!(e, Event::ActiveLoop { name: Some(n), .. } if n == name))
            .unwrap_or(0);
        let asked_rephrase = events[start..]
            .iter()
            .filter(|e| matches!(e, Event::Bot { .. }))
            .count()
            >= 2;
        let end = Event::ActiveLoop {
            name: None,
            timestamp: now(),
        };
        if intent == "out_of_scope" && !asked_rephrase {
            self.say_or(
                run,
                "utter_ask_rephrase",
                message(
                    "I'm sorry, I didn't quite understand that. Could you rephrase?".into(),
                    vec![],
                ),
            );
            return;
        }
        if intent == "out_of_scope" || intent == crate::nlu::NLU_FALLBACK {
            // Rasa's loop gives up with the default fallback, then deactivates.
            self.run_into(run, "action_default_fallback", None);
            run.emit(end);
            return;
        }
        // Understood (confirmed or rephrased): undo the fallback turns and carry on with it.
        let original = events[..start].iter().rev().find_map(|e| match e {
            Event::User { text, .. } => Some(text.clone()),
            _ => None,
        });
        let users_since = events[start..]
            .iter()
            .filter(|e| matches!(e, Event::User { .. }))
            .count();
        for _ in 0..=users_since {
            run.emit(Event::Rewind { timestamp: now() });
        }
        if run.view.active_loop.as_deref() == Some(name) {
            run.emit(end);
        }
        let mut parsed = latest.unwrap_or_else(|| self.nlu.parse(""));
        if let Some(text) = original.filter(|_| !asked_rephrase) {
            parsed.text = text;
        }
        // As Rasa's loop: the turns are reverted, then the assistant listened and the user said
        // what was meant.
        run.emit(super::action_event(
            crate::tracker::ACTION_LISTEN,
            None,
            None,
        ));
        let channel = run.channel;
        for e in self.receive_events(&run.view, parsed, channel) {
            run.emit(e);
        }
    }
}
