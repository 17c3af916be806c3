//! A trained assistant: NLU, policies and the domain, and the loop that answers a message —
//! parse, fill slots from the message, then run predicted actions until the next
//! `action_listen`.

use std::path::{Path, PathBuf};

use std::ops::Not;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::actions::{self, BotMessage, DEFAULT_ACTIONS};
use crate::error::{Error, Result, io};
use crate::nlu::Nlu;
use crate::policy::{Featurizer, Policies, RuleSeq, story_events};
use crate::project::{Domain, Project, Step};
use crate::tracker::{ACTION_LISTEN, ACTION_SESSION_START, Event, ParseData, Tracker, now};

/// Most actions run for one message (a loop in the rules or stories stops here).
pub const MAX_ACTIONS_PER_TURN: usize = 10;

/// What `duet dialog train` records about the data it trained on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// SHA-256 over the project files training read.
    pub fingerprint: String,
    /// Training stories after expansion.
    pub stories: usize,
    /// Rules.
    pub rules: usize,
    /// NLU examples.
    pub examples: usize,
    /// The duet version.
    pub duet: String,
}

/// SHA-256 over the project files training depends on.
pub fn fingerprint(p: &Project) -> Result<String> {
    let mut h = Sha256::new();
    for f in &p.files {
        let rel = f.strip_prefix(&p.dir).unwrap_or(f);
        h.update(rel.to_string_lossy().as_bytes());
        h.update(std::fs::read(f).map_err(io(f))?);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The story step lists of a project with `or:` alternatives and checkpoints resolved.
pub fn expand_stories(p: &Project) -> Vec<Vec<Step>> {
    // Alternatives: one story per choice.
    let mut flat: Vec<Vec<Step>> = Vec::new();
    for s in &p.stories {
        let mut variants: Vec<Vec<Step>> = vec![Vec::new()];
        for step in &s.item.steps {
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
        flat.extend(variants);
    }
    // Checkpoints: a story ending in one continues with every story starting at it.
    let start_cp = |s: &[Step]| {
        s.first()
            .and_then(|x| x.checkpoint.as_ref())
            .map(|c| c.value.clone())
    };
    let end_cp = |s: &[Step]| {
        s.last()
            .and_then(|x| x.checkpoint.as_ref())
            .map(|c| c.value.clone())
    };
    let strip = |s: &[Step]| -> Vec<Step> {
        s.iter()
            .filter(|x| x.checkpoint.is_none())
            .cloned()
            .collect()
    };
    let mut out = Vec::new();
    let mut queue: Vec<(Vec<Step>, Option<String>, usize)> = flat
        .iter()
        .filter(|s| start_cp(s).is_none())
        .map(|s| (strip(s), end_cp(s), 0))
        .collect();
    while let Some((steps, cp, depth)) = queue.pop() {
        match cp {
            Some(c) if depth < 8 => {
                let next: Vec<&Vec<Step>> = flat
                    .iter()
                    .filter(|s| start_cp(s).as_deref() == Some(&c))
                    .collect();
                if next.is_empty() {
                    out.push(steps.clone());
                }
                for n in next {
                    let mut joined = steps.clone();
                    joined.extend(strip(n));
                    queue.push((joined, end_cp(n), depth + 1));
                }
            }
            _ => out.push(steps),
        }
        if out.len() > 10_000 {
            break;
        }
    }
    out
}

/// A trained assistant.
pub struct Assistant {
    /// The domain.
    pub domain: Domain,
    /// The domain as JSON (for action servers).
    pub domain_json: Value,
    /// The action server.
    pub endpoints: crate::remote::Endpoints,
    /// Programs and HTTP calls the assistant may run.
    pub commands: crate::commands::Commands,
    /// The project folder (commands run in it).
    pub project_dir: PathBuf,
    /// NLU.
    pub nlu: Nlu,
    /// Policies.
    pub policies: Policies,
    /// The trained policy network.
    pub learned: Option<crate::learned::LearnedPolicy>,
    /// Passages of `knowledge/` to answer from.
    pub knowledge: Option<crate::knowledge::Knowledge>,
}

/// Where a project's trained assistant lives by default.
pub fn default_model_dir(project: &Path) -> PathBuf {
    project.join("models").join("duet")
}

impl Assistant {
    /// Trains NLU and policies on a project.
    pub fn train(p: &Project) -> Result<Self> {
        let nlu = Nlu::train(p)?;
        let featurizer = Featurizer::new(&p.domain);
        let stories: Vec<Vec<Event>> = expand_stories(p).iter().map(|s| story_events(s)).collect();
        let rules: Vec<RuleSeq> = p
            .rules
            .iter()
            .map(|r| {
                RuleSeq::new(
                    &r.item,
                    format!("{}:{}", r.file.display(), r.item.rule.referenced.line()),
                    &featurizer,
                )
            })
            .collect();
        let max_history = p
            .config
            .setting("MemoizationPolicy", "max_history")
            .or_else(|| {
                p.config
                    .setting("AugmentedMemoizationPolicy", "max_history")
            })
            .and_then(Value::as_u64)
            .map_or(5, |v| v as usize)
            .max(1);
        let policies = Policies::train(featurizer, &stories, rules, max_history);
        // The network learns from stories and from rules written out as stories.
        let mut pairs = Vec::new();
        let rule_events = p.rules.iter().map(|r| {
            let mut steps = r.item.condition.clone();
            steps.extend(r.item.steps.iter().cloned());
            story_events(&steps)
        });
        for events in stories.iter().cloned().chain(rule_events) {
            let states = policies.featurizer.states(&events);
            for i in 0..states.len() {
                let hist: Vec<_> = states[..=i].iter().map(|(s, _)| s.clone()).collect();
                pairs.push((hist, states[i].1.clone()));
            }
        }
        let setting = |k: &str| {
            p.config
                .setting("TEDPolicy", k)
                .or_else(|| p.config.setting("DuetPolicy", k))
                .and_then(Value::as_u64)
        };
        let threshold = p
            .config
            .setting("RulePolicy", "core_fallback_threshold")
            .and_then(Value::as_f64)
            .unwrap_or(0.3);
        let wants_learned = p.config.policies.is_empty()
            || p.config.policies.iter().any(|c| {
                matches!(
                    c.get("name").and_then(Value::as_str),
                    Some("TEDPolicy" | "DuetPolicy")
                )
            });
        let learned = if !wants_learned {
            None
        } else {
            crate::learned::LearnedPolicy::train(
                &pairs,
                setting("max_history").map_or(max_history, |v| v as usize),
                setting("epochs").map_or(100, |v| v as usize),
                threshold,
                42,
            )?
        };
        Ok(Self {
            domain: p.domain.clone(),
            domain_json: p.domain_json.clone(),
            endpoints: p.endpoints.clone(),
            commands: p.commands.clone(),
            project_dir: p.dir.clone(),
            nlu,
            policies,
            learned,
            knowledge: match crate::knowledge::KnowledgeChoice::of(p) {
                Some(c) => crate::knowledge::Knowledge::build(p, &c)?,
                None => None,
            },
        })
    }

    /// Writes the trained parts into `dir` with a manifest of what they were trained on.
    pub fn save(&self, p: &Project, dir: &Path) -> Result<()> {
        let tmp = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        self.nlu.save(&tmp.join("nlu"))?;
        let pol = tmp.join("policies.json");
        std::fs::write(&pol, serde_json::to_vec(&self.policies)?).map_err(io(&pol))?;
        let m = Manifest {
            fingerprint: fingerprint(p)?,
            stories: expand_stories(p).len(),
            rules: p.rules.len(),
            examples: p.intent_examples().len(),
            duet: env!("CARGO_PKG_VERSION").into(),
        };
        if let Some(l) = &self.learned {
            l.save(&tmp)?;
        }
        if let Some(k) = &self.knowledge {
            k.save(&tmp)?;
        }
        let mf = tmp.join("manifest.json");
        std::fs::write(&mf, serde_json::to_vec_pretty(&m)?).map_err(io(&mf))?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(&tmp, dir).map_err(io(dir))
    }

    /// Loads the assistant trained for project `p` from `dir`; an assistant trained on other
    /// data is an error that says to train again.
    pub fn load(p: &Project, dir: &Path) -> Result<Self> {
        let mf = dir.join("manifest.json");
        let bytes = std::fs::read(&mf).map_err(|_| {
            Error::Model(format!(
                "{}: no trained assistant; run `duet dialog train --project {}`",
                dir.display(),
                p.dir.display()
            ))
        })?;
        let m: Manifest = serde_json::from_slice(&bytes)?;
        if m.fingerprint != fingerprint(p)? {
            return Err(Error::Model(format!(
                "{}: the project changed since it was trained; run `duet dialog train --project {}`",
                dir.display(),
                p.dir.display()
            )));
        }
        let pol = dir.join("policies.json");
        let policies: Policies = serde_json::from_slice(&std::fs::read(&pol).map_err(io(&pol))?)?;
        Ok(Self {
            domain: p.domain.clone(),
            domain_json: p.domain_json.clone(),
            endpoints: p.endpoints.clone(),
            commands: p.commands.clone(),
            project_dir: p.dir.clone(),
            nlu: Nlu::load(&dir.join("nlu"))?,
            policies,
            learned: crate::learned::LearnedPolicy::load(dir)?,
            knowledge: crate::knowledge::Knowledge::load(dir)?,
        })
    }

    /// Slot values at the start of a conversation.
    pub fn initial_slots(&self) -> std::collections::BTreeMap<String, Value> {
        let mut m: std::collections::BTreeMap<String, Value> = self
            .domain
            .slots
            .iter()
            .map(|(k, s)| (k.clone(), s.initial_value.clone().unwrap_or(Value::Null)))
            .collect();
        if !self.domain.forms.is_empty() {
            m.entry("requested_slot".into()).or_insert(Value::Null);
        }
        m
    }

    /// A new conversation (session started, waiting for the user).
    pub fn new_tracker(&self, sender: &str) -> Tracker {
        let mut t = Tracker::new(sender, self.initial_slots());
        self.start_session(&mut t);
        t
    }

    fn start_session(&self, t: &mut Tracker) {
        t.apply(action_event(ACTION_SESSION_START, None, None));
        for e in actions::session_start_events(&self.domain, t) {
            t.apply(e);
        }
        t.apply(action_event(ACTION_LISTEN, None, None));
    }

    /// Slot events a user message fills through the domain's slot mappings.
    pub fn extract_slots(&self, t: &Tracker, msg: &ParseData) -> Vec<Event> {
        let mut out = Vec::new();
        let requested = t.slots.get("requested_slot").and_then(Value::as_str);
        for (name, slot) in &self.domain.slots {
            for m in &slot.mappings {
                let intent_ok = (m.intent.is_empty() || m.intent.contains(&msg.intent.name))
                    && !m.not_intent.contains(&msg.intent.name);
                let cond_ok = m.conditions.is_empty()
                    || m.conditions.iter().any(|c| {
                        c.active_loop.as_deref() == t.active_loop.as_deref()
                            && c.requested_slot
                                .as_deref()
                                .is_none_or(|r| Some(r) == requested)
                    });
                if !intent_ok || !cond_ok {
                    continue;
                }
                let value = match m.kind.as_str() {
                    "from_entity" => msg
                        .entities
                        .iter()
                        .find(|e| {
                            Some(&e.entity) == m.entity.as_ref()
                                && (m.role.is_none() || e.role == m.role)
                        })
                        .map(|e| e.value.clone()),
                    "from_intent" if !m.intent.is_empty() => m.value.clone(),
                    "from_text" if !m.conditions.is_empty() || requested == Some(name) => {
                        Some(Value::String(msg.text.clone()))
                    }
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

    /// Applies a user message (already parsed) to the tracker: a new session if the last one
    /// expired, the user event, and slots from its entities.
    pub fn receive(&self, t: &mut Tracker, msg: ParseData, channel: Option<&str>) {
        let expiry = self.domain.session_config.session_expiration_time;
        if expiry > 0.0 && t.last_timestamp() > 0.0 && now() - t.last_timestamp() > expiry * 60.0 {
            self.start_session(t);
        }
        let slots = self.extract_slots(t, &msg);
        t.apply(Event::User {
            text: msg.text.clone(),
            parse_data: msg,
            timestamp: now(),
            input_channel: channel.map(str::to_owned),
        });
        for e in slots {
            t.apply(e);
        }
    }

    /// Runs one action; returns its messages.
    pub fn run_action(
        &self,
        t: &mut Tracker,
        name: &str,
        channel: Option<&str>,
    ) -> Vec<BotMessage> {
        self.run_action_with(t, name, channel, None)
    }

    /// Runs one action; a language model's answer is also passed to `sink` piece by piece as it
    /// is generated.
    pub fn run_action_with<'s>(
        &self,
        t: &mut Tracker,
        name: &str,
        channel: Option<&str>,
        mut sink: Option<&mut (dyn FnMut(&str) + 's)>,
    ) -> Vec<BotMessage> {
        let mut out = Vec::new();
        let utter = |t: &mut Tracker, response: &str, out: &mut Vec<BotMessage>| {
            if let Some(v) = actions::choose(&self.domain, response, t, channel) {
                let (msg, ev) = actions::render(v, t);
                out.push(msg);
                t.apply(ev);
                true
            } else {
                false
            }
        };
        match name {
            ACTION_LISTEN => {}
            "action_restart" => {
                utter(t, "utter_restart", &mut out);
                t.apply(Event::Restart { timestamp: now() });
                self.start_session(t);
            }
            ACTION_SESSION_START => self.start_session(t),
            "action_default_fallback" => {
                if !utter(t, "utter_default", &mut out) {
                    let (msg, ev) = actions::render(
                        &crate::project::ResponseVariant {
                            text: Some("Sorry, I didn't get that. Can you rephrase?".into()),
                            ..Default::default()
                        },
                        t,
                    );
                    out.push(msg);
                    t.apply(ev);
                }
                t.apply(Event::Rewind { timestamp: now() });
            }
            "action_knowledge" => {
                let query = t
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
                        out.push(BotMessage {
                            recipient_id: t.sender_id.clone(),
                            text: Some(p.text.clone()),
                            image: None,
                            buttons: vec![],
                            custom: None,
                            attachment: None,
                        });
                        t.apply(Event::Bot {
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
                            out.extend(self.run_action_with(
                                t,
                                "action_llm_fallback",
                                channel,
                                sink.as_deref_mut(),
                            ));
                        } else if !utter(t, "utter_default", &mut out) {
                            let (msg, ev) = actions::render(
                                &crate::project::ResponseVariant {
                                    text: Some("Sorry, I don't know the answer to that.".into()),
                                    ..Default::default()
                                },
                                t,
                            );
                            out.push(msg);
                            t.apply(ev);
                        }
                    }
                }
            }
            "action_llm_fallback" => {
                let query = t
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
                        crate::llm::answer(ep, t, &context, sink).map(|a| (a, ep.model.clone()))
                    }
                    None => Err(Error::Model(
                        "action_llm_fallback: endpoints.yml names no llm".into(),
                    )),
                };
                match answer {
                    Ok((text, model)) => {
                        out.push(BotMessage {
                            recipient_id: t.sender_id.clone(),
                            text: Some(text.clone()),
                            image: None,
                            buttons: vec![],
                            custom: None,
                            attachment: None,
                        });
                        let sources: Vec<_> = context
                            .iter()
                            .map(|p| serde_json::json!({"source": p.source, "heading": p.heading}))
                            .collect();
                        t.apply(Event::Bot {
                            text: Some(text),
                            data: serde_json::json!({"source": "llm", "model": model, "passages": sources}),
                            timestamp: now(),
                        });
                    }
                    Err(e) => {
                        tracing::error!("{e}");
                        if !utter(t, "utter_default", &mut out) {
                            let (msg, ev) = actions::render(
                                &crate::project::ResponseVariant {
                                    text: Some("Sorry, I can't answer that right now.".into()),
                                    ..Default::default()
                                },
                                t,
                            );
                            out.push(msg);
                            t.apply(ev);
                        }
                    }
                }
            }
            actions::TWO_STAGE_FALLBACK => self.two_stage_fallback(t, channel, &mut out),
            "action_deactivate_loop" => t.apply(Event::ActiveLoop {
                name: None,
                timestamp: now(),
            }),
            "action_back" => {
                utter(t, "utter_back", &mut out);
                t.apply(Event::Rewind { timestamp: now() });
                t.apply(Event::Rewind { timestamp: now() });
            }
            n if self.domain.forms.contains_key(n) => self.run_form(t, n, channel, &mut out),
            n if n.starts_with("utter_") && !self.domain.responses.contains_key(n) && {
                let prefix = format!("{n}/");
                self.domain.responses.keys().any(|k| k.starts_with(&prefix))
            } =>
            {
                // A retrieval action: the response of the full retrieval intent NLU found.
                let full = t
                    .latest_message
                    .as_ref()
                    .and_then(|m| m.retrieval_intent().map(str::to_owned));
                match full {
                    Some(f) if utter(t, &format!("utter_{f}"), &mut out) => {}
                    other => tracing::warn!("{n}: no response for retrieval intent {other:?}"),
                }
            }
            n if n.starts_with("utter_") => {
                if !utter(t, n, &mut out) {
                    tracing::warn!("response {n} has no variation for this conversation");
                }
            }
            n if self.commands.commands.contains_key(n) => {
                if let Err(e) = self.run_command(t, n, channel, &mut out) {
                    tracing::error!("{e}");
                    if !utter(t, "utter_default", &mut out) {
                        tracing::warn!("no utter_default to say that {n} failed");
                    }
                }
            }
            n => {
                if let Err(e) = self.run_custom(t, n, channel, &mut out) {
                    tracing::error!("{e}");
                    t.followup_action = Some(ACTION_LISTEN.into());
                }
            }
        }
        out
    }

    /// Runs a command of `commands.yml`: slots from its JSON output, then its response with
    /// `{output}`.
    pub fn run_command(
        &self,
        t: &mut Tracker,
        name: &str,
        channel: Option<&str>,
        out: &mut Vec<BotMessage>,
    ) -> Result<()> {
        let decl = self
            .commands
            .commands
            .get(name)
            .ok_or_else(|| Error::Model(format!("no command {name}")))?;
        let o = crate::commands::run(decl, name, &self.project_dir, &t.slots)?;
        for (k, v) in o.json.iter().flatten() {
            if self.domain.slots.contains_key(k) {
                t.apply(Event::Slot {
                    name: k.clone(),
                    value: v.clone(),
                    timestamp: now(),
                });
            }
        }
        if let Some(r) = &decl.response
            && let Some(v) = actions::choose(&self.domain, r, t, channel)
        {
            let mut v = v.clone();
            v.text = v.text.map(|x| x.replace("{output}", &o.text));
            let (msg, ev) = actions::render(&v, t);
            out.push(msg);
            t.apply(ev);
        }
        Ok(())
    }

    /// Runs a custom action on the action server: its events are applied, its responses sent.
    pub fn run_custom(
        &self,
        t: &mut Tracker,
        name: &str,
        channel: Option<&str>,
        out: &mut Vec<BotMessage>,
    ) -> Result<()> {
        let ep = self.endpoints.action_endpoint.as_ref().ok_or_else(|| {
            Error::Model(format!(
                "custom action {name}: endpoints.yml names no action_endpoint"
            ))
        })?;
        let r = crate::remote::call(ep, name, t, &self.domain_json)?;
        for e in r.events {
            t.apply(e);
        }
        for resp in r.responses {
            let named = resp
                .get("response")
                .or_else(|| resp.get("template"))
                .and_then(Value::as_str);
            if let Some(response) = named {
                if let Some(v) = actions::choose(&self.domain, response, t, channel) {
                    let (msg, ev) = actions::render(v, t);
                    out.push(msg);
                    t.apply(ev);
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
            let (msg, ev) = actions::render(&v, t);
            out.push(msg);
            t.apply(ev);
        }
        Ok(())
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
    pub fn act_with<'s>(
        &self,
        t: &mut Tracker,
        channel: Option<&str>,
        mut sink: Option<&mut (dyn FnMut(&str) + 's)>,
    ) -> Vec<BotMessage> {
        let mut out = Vec::new();
        for _ in 0..MAX_ACTIONS_PER_TURN {
            let p = self.predict(t);
            let name = p.action.clone();
            t.apply(action_event(&name, Some(p.policy), Some(p.confidence)));
            if name == ACTION_LISTEN {
                return out;
            }
            out.extend(self.run_action_with(t, &name, channel, sink.as_deref_mut()));
            if t.followup_action.as_deref() == Some(ACTION_LISTEN) {
                t.followup_action = None;
                break;
            }
            if matches!(
                name.as_str(),
                "action_default_fallback"
                    | "action_llm_fallback"
                    | "action_knowledge"
                    | "action_restart"
                    | "action_back"
            ) {
                break;
            }
        }
        t.apply(action_event(ACTION_LISTEN, Some("RulePolicy"), Some(1.0)));
        out
    }
}

impl Assistant {
    /// Runs form `name`: activates it, validates the slots the latest message filled (a
    /// categorical slot's value must be one of its values, a float within its range), then asks
    /// for the next empty required slot with `utter_ask_<form>_<slot>` or `utter_ask_<slot>`, or
    /// deactivates the form when every required slot is filled.
    fn run_form(
        &self,
        t: &mut Tracker,
        name: &str,
        channel: Option<&str>,
        out: &mut Vec<BotMessage>,
    ) {
        let Some(form) = self.domain.forms.get(name) else {
            return;
        };
        if t.active_loop.as_deref() != Some(name) {
            t.apply(Event::ActiveLoop {
                name: Some(name.to_owned()),
                timestamp: now(),
            });
        }
        let validator = format!("validate_{name}");
        if self.domain.actions.iter().any(|a| a.name() == validator)
            && let Err(e) = self.run_custom(t, &validator, channel, out)
        {
            tracing::error!("{e}");
        }
        let this_turn: Vec<(String, Value)> = t
            .events
            .iter()
            .rev()
            .take_while(|e| !matches!(e, Event::User { .. }))
            .filter_map(|e| match e {
                Event::Slot { name, value, .. } => Some((name.clone(), value.clone())),
                _ => None,
            })
            .collect();
        for (slot, value) in this_turn {
            if !form.required_slots.contains(&slot) || value.is_null() {
                continue;
            }
            if let Some(fixed) = self.validate_slot(&slot, &value) {
                if fixed != value {
                    t.apply(Event::Slot {
                        name: slot.clone(),
                        value: fixed.clone(),
                        timestamp: now(),
                    });
                }
                if fixed.is_null() {
                    let invalid = format!("utter_invalid_{slot}");
                    if let Some(v) = actions::choose(&self.domain, &invalid, t, channel) {
                        let (msg, ev) = actions::render(v, t);
                        out.push(msg);
                        t.apply(ev);
                    }
                }
            }
        }
        let next = form
            .required_slots
            .iter()
            .find(|s| t.slots.get(*s).is_none_or(Value::is_null));
        match next {
            Some(slot) => {
                t.apply(Event::Slot {
                    name: "requested_slot".into(),
                    value: Value::String(slot.clone()),
                    timestamp: now(),
                });
                let ask = [
                    format!("utter_ask_{name}_{slot}"),
                    format!("utter_ask_{slot}"),
                ];
                if let Some(v) = ask
                    .iter()
                    .find_map(|r| actions::choose(&self.domain, r, t, channel))
                {
                    let (msg, ev) = actions::render(v, t);
                    out.push(msg);
                    t.apply(ev);
                }
            }
            None => {
                t.apply(Event::Slot {
                    name: "requested_slot".into(),
                    value: Value::Null,
                    timestamp: now(),
                });
                t.apply(Event::ActiveLoop {
                    name: None,
                    timestamp: now(),
                });
            }
        }
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

impl Assistant {
    /// The next action: rules, memorised stories, the trained policy, then the fallback.
    pub fn predict(&self, t: &Tracker) -> crate::policy::Prediction {
        let mut p = self.policies.predict_with(t, self.learned.as_ref());
        if p.action == "action_default_fallback" {
            // What nobody knows goes to the language model (with passages of the knowledge
            // base), or to the knowledge base alone.
            if self.endpoints.llm.is_some() {
                p.action = "action_llm_fallback".into();
            } else if self.knowledge.is_some() {
                p.action = "action_knowledge".into();
            }
        }
        p
    }
}

impl Assistant {
    /// Rasa's two-stage fallback: a message NLU is unsure of gets "Did you mean '<intent>'?"
    /// with Yes (`/<intent>`) and No (`/out_of_scope`) buttons; yes carries on as if the user had
    /// said that intent, no asks to rephrase; a rephrasing NLU understands carries on with it,
    /// and one it does not ends in `action_default_fallback`.
    fn two_stage_fallback(
        &self,
        t: &mut Tracker,
        channel: Option<&str>,
        out: &mut Vec<BotMessage>,
    ) {
        let name = actions::TWO_STAGE_FALLBACK;
        let msg =
            |text: String, buttons: Vec<crate::project::Button>| crate::project::ResponseVariant {
                text: Some(text),
                buttons,
                ..Default::default()
            };
        let say = |t: &mut Tracker,
                   out: &mut Vec<BotMessage>,
                   response: &str,
                   v: crate::project::ResponseVariant| {
            let chosen = actions::choose(&self.domain, response, t, channel)
                .cloned()
                .unwrap_or(v);
            let (m, ev) = actions::render(&chosen, t);
            out.push(m);
            t.apply(ev);
        };
        let latest = t.latest_message.clone();
        let intent = latest
            .as_ref()
            .map(|m| m.intent.name.clone())
            .unwrap_or_default();
        let ask_affirmation = |t: &mut Tracker, out: &mut Vec<BotMessage>| {
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
                crate::project::Button {
                    title: "Yes".into(),
                    payload: format!("/{guess}"),
                },
                crate::project::Button {
                    title: "No".into(),
                    payload: "/out_of_scope".into(),
                },
            ];
            say(
                t,
                out,
                "utter_ask_affirmation",
                msg(format!("Did you mean '{guess}'?"), buttons),
            );
        };
        if t.active_loop.as_deref() != Some(name) {
            t.apply(Event::ActiveLoop {
                name: Some(name.into()),
                timestamp: now(),
            });
            ask_affirmation(t, out);
            return;
        }
        // Where the loop is: bot turns since it started.
        let start = t
            .events
            .iter()
            .rposition(|e| matches!(e, Event::ActiveLoop { name: Some(n), .. } if n == name))
            .unwrap_or(0);
        let asked_rephrase = t.events[start..]
            .iter()
            .filter(|e| matches!(e, Event::Bot { .. }))
            .count()
            >= 2;
        let end = |t: &mut Tracker| {
            t.apply(Event::ActiveLoop {
                name: None,
                timestamp: now(),
            })
        };
        if intent == "out_of_scope" && !asked_rephrase {
            say(
                t,
                out,
                "utter_ask_rephrase",
                msg(
                    "I'm sorry, I didn't quite understand that. Could you rephrase?".into(),
                    vec![],
                ),
            );
            return;
        }
        if intent == "out_of_scope" || intent == crate::nlu::NLU_FALLBACK {
            end(t);
            out.extend(self.run_action(t, "action_default_fallback", channel));
            return;
        }
        // Understood (confirmed or rephrased): undo the fallback turns and carry on with it.
        let original = t.events[..start].iter().rev().find_map(|e| match e {
            Event::User { text, .. } => Some(text.clone()),
            _ => None,
        });
        let users_since = t.events[start..]
            .iter()
            .filter(|e| matches!(e, Event::User { .. }))
            .count();
        for _ in 0..=users_since {
            t.apply(Event::Rewind { timestamp: now() });
        }
        if t.active_loop.as_deref() == Some(name) {
            end(t);
        }
        let mut parsed = latest.unwrap_or_else(|| self.nlu.parse(""));
        if let Some(text) = original.filter(|_| asked_rephrase.not()) {
            parsed.text = text;
        }
        self.receive(t, parsed, channel);
    }
}

/// An action event.
pub fn action_event(name: &str, policy: Option<&str>, confidence: Option<f64>) -> Event {
    Event::Action {
        name: name.to_owned(),
        policy: policy.map(str::to_owned),
        confidence,
        timestamp: now(),
    }
}

/// Whether `name` is an action the domain, the commands or Rasa defines.
pub fn known_action(d: &Domain, c: &crate::commands::Commands, name: &str) -> bool {
    if c.commands.contains_key(name) {
        return true;
    }
    let prefix = format!("{name}/");
    DEFAULT_ACTIONS.contains(&name)
        || d.responses.contains_key(name)
        || d.responses.keys().any(|k| k.starts_with(&prefix))
        || d.forms.contains_key(name)
        || d.actions.iter().any(|a| a.name() == name)
        || name.starts_with("validate_")
}

impl Assistant {
    /// Intents the NLU knows.
    pub fn nlu_intents(&self) -> usize {
        self.nlu.intent_count()
    }
}
