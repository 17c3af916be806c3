//! A trained assistant: NLU, policies and the domain. The loop that answers a message is in
//! [`turn`] (parse, fill slots, then predict and run actions until `action_listen`, applying
//! each action's events); each kind of action runs in its own file: responses and Rasa's default
//! actions in [`run`], forms in [`form`], the action server and commands in [`custom`], the
//! two-stage fallback in [`fallback`]; slot filling from a message in [`slots`].

mod custom;
mod fallback;
mod form;
pub mod run;
mod slots;
mod turn;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::actions::{Action, DEFAULT_ACTIONS};
use crate::error::{Error, Result, io};
use crate::nlu::Nlu;
use crate::policy::training::{
    TrainingTracker, expand_alternatives, rule_events, starts_with_action, story_events,
};
use crate::policy::{Featurizer, Policies, PolicyChoice};
use crate::project::{Domain, Project, Step};
use crate::tracker::{ACTION_LISTEN, ACTION_SESSION_START, Event, Tracker, now};

pub use run::ActionRun;

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

/// The story step lists of a project with `or:` alternatives and checkpoints resolved; each
/// with the story it starts from.
pub fn expand_stories_from(p: &Project) -> Vec<(usize, Vec<Step>)> {
    // Alternatives: one story per choice.
    let mut flat: Vec<(usize, Vec<Step>)> = Vec::new();
    for (k, s) in p.stories.iter().enumerate() {
        flat.extend(
            expand_alternatives(&s.item.steps)
                .into_iter()
                .map(|v| (k, v)),
        );
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
    let mut queue: Vec<(usize, Vec<Step>, Option<String>, usize)> = flat
        .iter()
        .filter(|(_, s)| start_cp(s).is_none())
        .map(|(k, s)| (*k, strip(s), end_cp(s), 0))
        .collect();
    while let Some((k, steps, cp, depth)) = queue.pop() {
        match cp {
            Some(c) if depth < 8 => {
                let next: Vec<&Vec<Step>> = flat
                    .iter()
                    .filter(|(_, s)| start_cp(s).as_deref() == Some(&c))
                    .map(|(_, s)| s)
                    .collect();
                if next.is_empty() {
                    out.push((k, steps.clone()));
                }
                for n in next {
                    let mut joined = steps.clone();
                    joined.extend(strip(n));
                    queue.push((k, joined, end_cp(n), depth + 1));
                }
            }
            _ => out.push((k, steps)),
        }
        if out.len() > 10_000 {
            break;
        }
    }
    out
}

/// The story step lists of a project with `or:` alternatives and checkpoints resolved.
pub fn expand_stories(p: &Project) -> Vec<Vec<Step>> {
    expand_stories_from(p).into_iter().map(|(_, s)| s).collect()
}

/// The project's stories and rules as training trackers.
pub fn training_trackers(p: &Project) -> (Vec<TrainingTracker>, Vec<TrainingTracker>) {
    let stories = expand_stories_from(p)
        .into_iter()
        .map(|(k, steps)| {
            let s = &p.stories[k];
            TrainingTracker {
                name: s.item.story.value.clone(),
                at: format!("{}:{}", s.file.display(), s.item.story.referenced.line()),
                events: story_events(&p.domain, &steps),
                is_rule: false,
                first_action_unpredictable: starts_with_action(&steps),
            }
        })
        .collect();
    let rules = p
        .rules
        .iter()
        .flat_map(|r| {
            rule_events(&p.domain, &r.item)
                .into_iter()
                .map(|events| TrainingTracker {
                    name: r.item.rule.value.clone(),
                    at: format!("{}:{}", r.file.display(), r.item.rule.referenced.line()),
                    events,
                    is_rule: true,
                    first_action_unpredictable: false,
                })
        })
        .collect();
    (stories, rules)
}

/// Trains the policies of a project; Rasa's contradictions are errors naming both places.
pub fn train_policies(p: &Project) -> Result<Policies> {
    let (stories, rules) = training_trackers(p);
    Policies::train(
        Featurizer::new(&p.domain),
        PolicyChoice::of(&p.config),
        &stories,
        &rules,
    )
    .map_err(|c| Error::Invalid(c.iter().map(ToString::to_string).collect()))
}

/// Trains the policy network on stories and on rules written out as stories (`TEDPolicy`'s
/// settings `max_history` and `epochs` apply).
pub fn train_learned(
    p: &Project,
    policies: &Policies,
    stories: &[TrainingTracker],
    rules: &[TrainingTracker],
) -> Result<Option<crate::learned::LearnedPolicy>> {
    let mut pairs = Vec::new();
    for t in stories.iter().chain(rules) {
        let events: Vec<Event> = t
            .events
            .iter()
            .filter(|e| {
                !matches!(e, Event::Action { name, .. } if name == crate::policy::RULE_SNIPPET_ACTION)
            })
            .cloned()
            .collect();
        let (states, actions) = policies.featurizer.states_and_actions(&events, false, true);
        for (i, a) in actions.iter().enumerate() {
            if i == 0 && t.first_action_unpredictable {
                continue;
            }
            pairs.push((states[..=i].to_vec(), a.clone()));
        }
    }
    let setting = |k: &str| {
        p.config
            .setting("TEDPolicy", k)
            .or_else(|| p.config.setting("DuetPolicy", k))
            .and_then(Value::as_u64)
    };
    let history = setting("max_history")
        .map(|v| v as usize)
        .or(policies.choice.memo.map(|m| m.0))
        .unwrap_or(5);
    crate::learned::LearnedPolicy::train(
        &pairs,
        history,
        setting("epochs").map_or(100, |v| v as usize).min(300),
        policies.choice.fallback_threshold,
        42,
    )
}

/// A trained assistant.
pub struct Assistant {
    /// The domain.
    pub domain: Domain,
    /// The domain as JSON (for action servers).
    pub domain_json: Value,
    /// The action server.
    pub endpoints: crate::project::Endpoints,
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
    /// Every action name of the domain and the commands, resolved once.
    actions: std::collections::BTreeMap<String, Action>,
}

/// Where a project's trained assistant lives by default.
pub fn default_model_dir(project: &Path) -> PathBuf {
    project.join("models").join("duet")
}

/// Every action the domain, the commands and Rasa name, resolved.
fn resolve_actions(
    d: &Domain,
    c: &crate::commands::Commands,
) -> std::collections::BTreeMap<String, Action> {
    let names = DEFAULT_ACTIONS
        .iter()
        .map(|s| (*s).to_owned())
        .chain(
            d.responses
                .keys()
                .map(|k| k.split('/').next().unwrap_or(k).to_owned()),
        )
        .chain(d.forms.keys().cloned())
        .chain(d.actions.iter().map(crate::project::Decl::name))
        .chain(c.commands.keys().cloned());
    names
        .map(|n| {
            let a = Action::resolve(d, c, &n);
            (n, a)
        })
        .collect()
}

impl Assistant {
    fn assemble(
        p: &Project,
        nlu: Nlu,
        policies: Policies,
        learned: Option<crate::learned::LearnedPolicy>,
        knowledge: Option<crate::knowledge::Knowledge>,
    ) -> Self {
        Self {
            actions: resolve_actions(&p.domain, &p.commands),
            domain: p.domain.clone(),
            domain_json: p.domain_json.clone(),
            endpoints: p.endpoints.clone(),
            commands: p.commands.clone(),
            project_dir: p.dir.clone(),
            nlu,
            policies,
            learned,
            knowledge,
        }
    }

    /// The action `name` stands for.
    pub fn action(&self, name: &str) -> Action {
        self.actions
            .get(name)
            .cloned()
            .unwrap_or_else(|| Action::resolve(&self.domain, &self.commands, name))
    }

    /// Trains NLU and policies on a project.
    pub fn train(p: &Project) -> Result<Self> {
        let policies = train_policies(p)?;
        let nlu = Nlu::train(p)?;
        let (stories, rules) = training_trackers(p);
        let learned = if policies.choice.learned {
            train_learned(p, &policies, &stories, &rules)?
        } else {
            None
        };
        let knowledge = match crate::knowledge::KnowledgeChoice::of(p) {
            Some(c) => crate::knowledge::Knowledge::build(p, &c)?,
            None => None,
        };
        Ok(Self::assemble(p, nlu, policies, learned, knowledge))
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
    /// data (or by another version of duet) is an error that says to train again.
    pub fn load(p: &Project, dir: &Path) -> Result<Self> {
        let again = |why: &str| {
            Error::Model(format!(
                "{}: {why}; run `duet dialog train --project {}`",
                dir.display(),
                p.dir.display()
            ))
        };
        let mf = dir.join("manifest.json");
        let bytes = std::fs::read(&mf).map_err(|_| again("no trained assistant"))?;
        let m: Manifest = serde_json::from_slice(&bytes)?;
        if m.fingerprint != fingerprint(p)? {
            return Err(again("the project changed since it was trained"));
        }
        let pol = dir.join("policies.json");
        let policies: Policies = serde_json::from_slice(&std::fs::read(&pol).map_err(io(&pol))?)
            .map_err(|_| again("the policies were written by another version of duet"))?;
        Ok(Self::assemble(
            p,
            Nlu::load(&dir.join("nlu"))?,
            policies,
            crate::learned::LearnedPolicy::load(dir)?,
            crate::knowledge::Knowledge::load(dir)?,
        ))
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

    /// A new conversation (session started, waiting for the user). A project that overrides
    /// `action_session_start` has it run on its action server (its built-in events stand in
    /// when the server does not answer).
    pub fn new_tracker(&self, sender: &str) -> Tracker {
        let mut t = Tracker::new(sender, self.initial_slots());
        if let Action::Custom(name) = self.action(ACTION_SESSION_START) {
            let mut run = ActionRun::new(&t, None);
            match self.run_custom(&mut run, &name) {
                Ok(()) => {
                    t.apply(action_event(ACTION_SESSION_START, None, None));
                    for e in run.events {
                        t.apply(e);
                    }
                    // The action ends with `action_listen` as Rasa's own does; if it did not,
                    // the assistant still waits for the user.
                    if t.latest_action_name.as_deref() != Some(ACTION_LISTEN) {
                        t.apply(action_event(ACTION_LISTEN, None, None));
                    }
                    return t;
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
        for e in self.session_start(&t) {
            t.apply(e);
        }
        t
    }

    /// The events that start a session: `action_session_start`, the session, carried-over
    /// slots, `action_listen`.
    fn session_start(&self, t: &Tracker) -> Vec<Event> {
        let mut out = vec![action_event(ACTION_SESSION_START, None, None)];
        out.extend(crate::actions::session_start_events(&self.domain, t));
        out.push(action_event(ACTION_LISTEN, None, None));
        out
    }

    /// The next action: rules, memorised stories, the trained policy, then the fallback.
    pub fn predict(&self, t: &Tracker) -> crate::policy::Prediction {
        let mut p = self.policies.predict_with(t, self.learned.as_ref());
        if p.action == self.policies.choice.fallback_action && p.action == "action_default_fallback"
        {
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

    /// Intents the NLU knows.
    pub fn nlu_intents(&self) -> usize {
        self.nlu.intent_count()
    }
}

/// An action event.
pub fn action_event(name: &str, policy: Option<&str>, confidence: Option<f64>) -> Event {
    Event::Action {
        name: name.to_owned(),
        policy: policy.map(str::to_owned),
        confidence,
        hide_rule_turn: false,
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
        || name == "action_deactivate_form"
}
