//! Validation: every name defined, forms able to ask, no false contradiction — the errors
//! Rasa raises, and warnings where Rasa warns.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::assistant::known_action;
use crate::policy::training::slot_items;
use crate::project::{Project, Step, list_items};

/// Problems found in a project: errors stop training, warnings do not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Validation {
    /// Inconsistencies (undefined names, contradictions), each with file and line.
    pub errors: Vec<String>,
    /// Unused items and ignored keys.
    pub warnings: Vec<String>,
}

/// Checks that every name a story, rule or example uses is defined, that forms can ask for
/// their slots, and that no story contradicts a rule; lists unused intents and responses.
pub fn validate(p: &Project) -> Validation {
    let mut v = Validation {
        warnings: p.warnings.clone(),
        ..Validation::default()
    };
    let d = &p.domain;
    let intents: BTreeSet<String> = d.intent_names().into_iter().collect();
    let entities: BTreeSet<String> = d.entity_names().into_iter().collect();
    let mut used_intents = BTreeSet::new();
    let mut used_actions = BTreeSet::new();
    let mut check_steps = |steps: &[Step], file: &str, what: &str, v: &mut Validation| {
        for s in steps
            .iter()
            .chain(steps.iter().flat_map(|s| s.alternatives.iter().flatten()))
        {
            if let Some(i) = &s.intent {
                used_intents.insert(i.value.clone());
                let base = i.value.split('/').next().unwrap_or_default();
                if !intents.contains(base) && i.value != crate::nlu::NLU_FALLBACK {
                    v.errors.push(format!(
                        "{file}:{}: {what} uses intent {:?}, which domain.yml does not declare",
                        i.referenced.line(),
                        i.value
                    ));
                }
            }
            if let Some(a) = &s.action {
                used_actions.insert(a.value.clone());
                if !known_action(d, &p.commands, &a.value) {
                    v.errors.push(format!(
                        "{file}:{}: {what} uses action {:?}, which is neither a response, a form, an action of domain.yml nor a default action",
                        a.referenced.line(),
                        a.value
                    ));
                }
            }
            for (name, _) in slot_items(d, &s.slot_was_set) {
                if !d.slots.contains_key(&name) && name != "requested_slot" {
                    v.errors.push(format!(
                        "{file}: {what} sets slot {name:?}, which domain.yml does not declare"
                    ));
                }
            }
            for e in &s.entities {
                let name = match e {
                    Value::String(n) => n.clone(),
                    Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
                    _ => continue,
                };
                if !entities.contains(&name) {
                    v.errors.push(format!(
                        "{file}: {what} uses entity {name:?}, which domain.yml does not declare"
                    ));
                }
            }
        }
    };
    for s in &p.stories {
        let what = format!("story {:?}", s.item.story.value);
        check_steps(&s.item.steps, &s.file.display().to_string(), &what, &mut v);
    }
    for r in &p.rules {
        let what = format!("rule {:?}", r.item.rule.value);
        let file = r.file.display().to_string();
        check_steps(&r.item.condition, &file, &what, &mut v);
        check_steps(&r.item.steps, &file, &what, &mut v);
    }
    for t in &p.tests {
        let what = format!("test story {:?}", t.item.story.value);
        check_steps(&t.item.steps, &t.file.display().to_string(), &what, &mut v);
    }
    let mut with_examples = BTreeSet::new();
    for n in &p.nlu {
        if let Some(i) = &n.item.intent {
            with_examples.insert(i.value.split('/').next().unwrap_or_default().to_owned());
            let base = i.value.split('/').next().unwrap_or_default();
            if !intents.contains(base) {
                // Rasa warns (`rasa data validate`) and trains on.
                v.warnings.push(format!(
                    "{}:{}: examples of intent {:?}, which domain.yml does not declare",
                    n.file.display(),
                    i.referenced.line(),
                    i.value
                ));
            }
            for ex in n
                .item
                .examples
                .as_deref()
                .map(list_items)
                .into_iter()
                .flatten()
            {
                if let Ok((_, ms)) = duet_train::tokens::data::parse_inline(&ex) {
                    for m in ms.iter().filter(|m| !entities.contains(&m.kind)) {
                        v.warnings.push(format!(
                            "{}: intent {:?}: example {ex:?} annotates entity {:?}, which domain.yml does not declare",
                            n.file.display(),
                            i.value,
                            m.kind
                        ));
                    }
                }
            }
        }
    }
    for i in &intents {
        if !with_examples.contains(i) {
            v.warnings.push(format!(
                "{}: intent {i:?} has no NLU examples",
                p.domain_file.display()
            ));
        }
        if !used_intents.contains(i) {
            v.warnings.push(format!(
                "{}: intent {i:?} is in no story or rule",
                p.domain_file.display()
            ));
        }
    }
    for (form, f) in &d.forms {
        for slot in &f.required_slots {
            if !d.slots.contains_key(slot) {
                v.errors.push(format!(
                    "{}: form {form:?} requires slot {slot:?}, which is not declared",
                    p.domain_file.display()
                ));
            }
            // Rasa asks with the first of these the domain has, and asks nothing (no error)
            // when it has none: a validation action may ask itself.
            let asks = [
                format!("action_ask_{form}_{slot}"),
                format!("utter_ask_{form}_{slot}"),
                format!("action_ask_{slot}"),
                format!("utter_ask_{slot}"),
            ];
            let can_ask = asks
                .iter()
                .any(|n| d.responses.contains_key(n) || d.actions.iter().any(|a| a.name() == *n));
            if !can_ask {
                v.warnings.push(format!(
                    "{}: form {form:?} has no way to ask for {slot:?} (none of {})",
                    p.domain_file.display(),
                    asks.join(", ")
                ));
            }
        }
    }
    for r in d.responses.keys() {
        let asked = r
            .strip_prefix("utter_invalid_")
            .is_some_and(|s| d.slots.contains_key(s))
            || r.strip_prefix("utter_ask_").is_some_and(|s| {
                d.slots.contains_key(s) || d.forms.keys().any(|f| s.starts_with(f.as_str()))
            });
        let retrieval = r
            .split_once('/')
            .is_some_and(|(action, _)| used_actions.contains(action));
        let by_command = p
            .commands
            .commands
            .values()
            .any(|c| c.response.as_deref() == Some(r.as_str()));
        if !used_actions.contains(r) && !asked && !retrieval && !by_command && r != "utter_default"
        {
            v.warnings.push(format!(
                "{}: response {r:?} is in no story or rule",
                p.domain_file.display()
            ));
        }
    }
    for (name, c) in &p.commands.commands {
        let file = p.dir.join("commands.yml");
        match (&c.program, &c.http) {
            (Some(prog), None) => {
                let path = std::path::Path::new(prog);
                let path = if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    p.dir.join(path)
                };
                if !path.is_file() {
                    v.errors.push(format!(
                        "{}: command {name}: program {} does not exist",
                        file.display(),
                        path.display()
                    ));
                }
            }
            (None, Some(_)) => {}
            _ => v.errors.push(format!(
                "{}: command {name}: give exactly one of `program` and `http`",
                file.display()
            )),
        }
        let templates = c.args.iter().chain(c.http.iter().map(|h| &h.url));
        for t in templates {
            for slot in t
                .split('{')
                .skip(1)
                .filter_map(|x| x.split_once('}').map(|(n, _)| n))
            {
                if !d.slots.contains_key(slot) {
                    v.errors.push(format!(
                        "{}: command {name}: {{{slot}}} is not a slot of the domain",
                        file.display()
                    ));
                }
            }
        }
        if let Some(r) = &c.response
            && !d.responses.contains_key(r)
        {
            v.errors.push(format!(
                "{}: command {name}: response {r} is not in the domain",
                file.display()
            ));
        }
    }
    // `utter_*` names under `actions:` are responses (Rasa runs them as such), not custom
    // actions.
    let custom: Vec<String> = d
        .actions
        .iter()
        .map(crate::project::Decl::name)
        .filter(|a| !crate::actions::DEFAULT_ACTIONS.contains(&a.as_str()))
        .filter(|a| !p.commands.commands.contains_key(a))
        .filter(|a| {
            !matches!(
                crate::actions::Action::resolve(d, &p.commands, a),
                crate::actions::Action::Response(_) | crate::actions::Action::Retrieval(_)
            )
        })
        .collect();
    if !custom.is_empty() && p.endpoints.action_endpoint.is_none() {
        v.warnings.push(format!(
            "{}: custom actions {custom:?} need an action server, and endpoints.yml names no action_endpoint",
            p.dir.display()
        ));
    }
    let not_run: Vec<&str> = p
        .config
        .pipeline
        .iter()
        .chain(&p.config.policies)
        .map(|c| c.get("name").and_then(Value::as_str).unwrap_or(""))
        .filter(|n| !crate::nlu::KNOWN_COMPONENTS.contains(n))
        .collect();
    if !not_run.is_empty() {
        v.warnings.push(format!(
            "{}: duet does not run {}; it uses instead TF-IDF + logistic regression for intents \
             (DuetEncoderClassifier: a fine-tuned encoder), the project's regexes, lookup tables \
             and annotated values for entities (DuetEntityTagger: a fine-tuned tagger), and its \
             own policy network for TEDPolicy",
            p.dir.join("config.yml").display(),
            not_run.join(", ")
        ));
    }
    if let Some(d) = crate::duckling::DucklingSettings::of(&p.config)
        && let Some(why) = d.check_server()
    {
        v.warnings
            .push(format!("{}: {why}", p.dir.join("config.yml").display()));
    }
    v.errors.extend(contradictions(p));
    v
}

/// Rasa's rule checks: rules with more than one user message, and stories or rules whose
/// next action contradicts a rule (both places and the state are named).
fn contradictions(p: &Project) -> Vec<String> {
    let mut out = Vec::new();
    for r in &p.rules {
        let users = r
            .item
            .steps
            .iter()
            .filter(|s| {
                let user = |s: &Step| s.intent.is_some() || s.user.is_some();
                user(s) || s.alternatives.iter().flatten().any(user)
            })
            .count();
        if users > 1 {
            out.push(format!(
                "{}:{}: rule {:?} has {users} user messages; Rasa allows one per rule (use a story)",
                r.file.display(),
                r.item.rule.referenced.line(),
                r.item.rule.value
            ));
        }
    }
    if !out.is_empty() {
        return out;
    }
    match crate::assistant::train_policies(p) {
        Err(crate::Error::Invalid(v)) => v,
        _ => Vec::new(),
    }
}
