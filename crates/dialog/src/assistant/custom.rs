//! Actions that run outside duet: custom actions on the action server (Rasa's webhook) and the
//! programs and HTTP calls of `commands.yml`.

use serde_json::Value;

use super::{ActionRun, Assistant};
use crate::actions;
use crate::error::{Error, Result};
use crate::tracker::{Event, Tracker, now};

impl Assistant {
    /// Runs a command of `commands.yml`: slots from its JSON output, then its response with
    /// `{output}`.
    pub(crate) fn run_command(&self, run: &mut ActionRun<'_>, name: &str) -> Result<()> {
        let decl = self
            .commands
            .commands
            .get(name)
            .ok_or_else(|| Error::Model(format!("no command {name}")))?;
        let o = crate::commands::run(decl, name, &self.project_dir, &run.view.slots)?;
        for (k, v) in o.json.iter().flatten() {
            if self.domain.slots.contains_key(k) {
                run.emit(Event::Slot {
                    name: k.clone(),
                    value: v.clone(),
                    timestamp: now(),
                });
            }
        }
        if let Some(r) = &decl.response
            && let Some(v) = actions::choose(&self.domain, r, &run.view, run.channel)
        {
            let mut v = v.clone();
            v.text = v.text.map(|x| x.replace("{output}", &o.text));
            run.say(&v);
        }
        Ok(())
    }

    /// Runs a custom action on the action server: its events are returned, its responses said.
    pub(crate) fn run_custom(&self, run: &mut ActionRun<'_>, name: &str) -> Result<()> {
        let view = run.view.clone();
        self.run_custom_on(run, name, &view)
    }

    /// Runs a custom action with the action server seeing the conversation `seen` (forms show
    /// their validation action a conversation of their own).
    pub(crate) fn run_custom_on(
        &self,
        run: &mut ActionRun<'_>,
        name: &str,
        seen: &Tracker,
    ) -> Result<()> {
        let ep = self.endpoints.action_endpoint.as_ref().ok_or_else(|| {
            Error::Model(format!(
                "custom action {name}: endpoints.yml names no action_endpoint"
            ))
        })?;
        let r = crate::remote::call(ep, name, seen, &self.domain_json)?;
        // As Rasa's `RemoteAction`: the messages are rendered with the conversation as it was
        // before the action's events, and come first.
        for resp in r.responses {
            let named = resp
                .get("response")
                .or_else(|| resp.get("template"))
                .and_then(Value::as_str);
            if let Some(response) = named {
                // Extra keys of the message fill the response's placeholders, as Rasa's NLG
                // does with the kwargs of `utter_message`.
                const MESSAGE_KEYS: &[&str] = &[
                    "response",
                    "template",
                    "text",
                    "buttons",
                    "image",
                    "elements",
                    "attachment",
                    "custom",
                    "json_message",
                    "quick_replies",
                    "channel",
                ];
                let values: serde_json::Map<String, Value> = resp
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, v)| !MESSAGE_KEYS.contains(&k.as_str()) && !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                match actions::choose(&self.domain, response, &run.view, run.channel).cloned() {
                    Some(v) => run.say_with(&v, &values),
                    None => tracing::warn!("{name}: no response {response} for this conversation"),
                }
                continue;
            }
            let v = crate::project::ResponseVariant {
                text: resp.get("text").and_then(Value::as_str).map(str::to_owned),
                image: resp.get("image").and_then(Value::as_str).map(str::to_owned),
                buttons: resp
                    .get("buttons")
                    .and_then(|b| serde_json::from_value(b.clone()).ok())
                    .unwrap_or_default(),
                custom: resp
                    .get("custom")
                    .filter(|c| !c.is_null() && c.as_object().is_none_or(|o| !o.is_empty()))
                    .cloned(),
                attachment: resp.get("attachment").filter(|c| !c.is_null()).cloned(),
                ..Default::default()
            };
            run.say(&v);
        }
        for e in r.events {
            run.emit(e);
        }
        Ok(())
    }
}
