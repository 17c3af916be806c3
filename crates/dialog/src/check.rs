//! `duet dialog validate` and `duet dialog test`: the project checked for consistency, and its
//! test stories run against the trained assistant.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};

use crate::assistant::{Assistant, action_event, expand_stories, known_action};
use crate::policy::training::{base_intent, entity_items, slot_items, slots_for_entities};
use crate::project::{Project, Step, list_items};
use crate::tracker::{ACTION_LISTEN, Entity, Event, Intent, ParseData, Tracker};

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
            .filter(|s| s.intent.is_some() || s.user.is_some() || s.alternatives.is_some())
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

/// The outcome of one test story.
#[derive(Debug, Clone, Serialize)]
pub struct StoryResult {
    /// The story's name.
    pub story: String,
    /// Where it is written.
    pub at: String,
    /// Whether every prediction matched.
    pub passed: bool,
    /// The first divergence (file and line).
    pub failure: Option<String>,
    /// Actions predicted and compared.
    pub actions: usize,
    /// Of those, predicted right.
    pub actions_right: usize,
}

/// How `duet dialog test` evaluates, as `rasa test` does.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestOptions {
    /// `--e2e`: a `user:` text is parsed by NLU and its intent and entities checked.
    pub e2e: bool,
    /// `--fail-on-prediction-errors`: stop at the first wrong prediction.
    pub fail_on_prediction_errors: bool,
}

/// One event of a test story with the line it comes from.
struct TestEvent {
    event: Event,
    line: usize,
    /// The user's text, annotated entities included, for `--e2e`.
    text: Option<String>,
}

/// A test story as the events Rasa's test tracker holds: the story's own user turns (with
/// their labelled intents), actions, slots and loops, and `action_listen` before each user turn
/// and at the end.
fn test_events(p: &Project, steps: &[Step]) -> Result<Vec<TestEvent>, String> {
    let d = &p.domain;
    let mut out: Vec<TestEvent> = Vec::new();
    let mut line = 0;
    let listen = |out: &mut Vec<TestEvent>, line: usize| {
        if !matches!(out.last().map(|e| &e.event), Some(Event::Action { name, .. }) if name == ACTION_LISTEN)
        {
            out.push(TestEvent {
                event: crate::policy::training::action(ACTION_LISTEN),
                line,
                text: None,
            });
        }
    };
    for s in steps {
        if let Some(i) = &s.intent {
            line = i.referenced.line() as usize;
        }
        if let Some(a) = &s.action {
            line = a.referenced.line() as usize;
        }
        if s.intent.is_some() || s.user.is_some() {
            listen(&mut out, line);
            let (plain, annotated) = match s.user.as_deref().map(str::trim) {
                Some(u) => {
                    let (plain, ms) = duet_train::tokens::data::parse_inline(u)
                        .map_err(|why| format!("line {line}: user {u:?}: {why}"))?;
                    let es: Vec<Value> = ms
                        .iter()
                        .map(|m| json!({ m.kind.clone(): plain[m.start..m.end].to_owned() }))
                        .collect();
                    (Some(plain), es)
                }
                None => (None, Vec::new()),
            };
            let mut entities = entity_items(&s.entities);
            entities.extend(entity_items(&annotated));
            let intent = s
                .intent
                .as_ref()
                .map(|i| i.value.clone())
                .unwrap_or_default();
            let text = plain.clone().unwrap_or_else(|| format!("/{intent}"));
            let slots = slots_for_entities(d, &entities);
            out.push(TestEvent {
                event: Event::User {
                    text: text.clone(),
                    parse_data: ParseData {
                        text,
                        intent: Intent {
                            name: intent,
                            confidence: 1.0,
                        },
                        entities,
                        intent_ranking: vec![],
                        response_selector: None,
                    },
                    timestamp: 0.0,
                    input_channel: None,
                },
                line,
                text: plain,
            });
            out.extend(slots.into_iter().map(|event| TestEvent {
                event,
                line,
                text: None,
            }));
        }
        if let Some(a) = &s.action {
            out.push(TestEvent {
                event: crate::policy::training::action(&a.value),
                line,
                text: None,
            });
        }
        for (name, value) in slot_items(d, &s.slot_was_set) {
            out.push(TestEvent {
                event: Event::Slot {
                    name,
                    value,
                    timestamp: 0.0,
                },
                line,
                text: None,
            });
        }
        if let Some(l) = &s.active_loop {
            out.push(TestEvent {
                event: Event::ActiveLoop {
                    name: l.as_str().map(str::to_owned),
                    timestamp: 0.0,
                },
                line,
                text: None,
            });
        }
    }
    listen(&mut out, line);
    Ok(out)
}

/// Runs the test stories as `rasa test` does: the story's own events are replayed onto the
/// conversation, and at every action the policies' prediction is compared with the story's
/// (the story's action is kept either way); no action runs, so no action server is called.
/// With `--e2e` the NLU's reading of each `user:` text is checked against its labels too.
pub fn run_tests(a: &Assistant, p: &Project) -> Vec<StoryResult> {
    run_tests_with(a, p, TestOptions::default())
}

/// [`run_tests`] with options.
pub fn run_tests_with(a: &Assistant, p: &Project, o: TestOptions) -> Vec<StoryResult> {
    let mut out = Vec::new();
    for s in &p.tests {
        let at = format!("{}:{}", s.file.display(), s.item.story.referenced.line());
        let file = s.file.display().to_string();
        let mut r = StoryResult {
            story: s.item.story.value.clone(),
            at: at.clone(),
            passed: true,
            failure: None,
            actions: 0,
            actions_right: 0,
        };
        let events = match test_events(p, &s.item.steps) {
            Ok(e) => e,
            Err(why) => {
                r.passed = false;
                r.failure = Some(format!("{file}:{why}"));
                out.push(r);
                continue;
            }
        };
        let mut t = Tracker::new(&format!("test-{}", out.len()), a.initial_slots());
        let fail = |r: &mut StoryResult, why: String| {
            r.passed = false;
            if r.failure.is_none() {
                r.failure = Some(why);
            }
        };
        for (k, te) in events.into_iter().enumerate() {
            match &te.event {
                Event::Action { name: gold, .. } if k > 0 => {
                    let mut p = a.predict(&t);
                    if p.action != *gold
                        && t.active_loop_name() == Some(p.action.as_str())
                        && a.domain.forms.contains_key(&p.action)
                    {
                        // The form might have rejected the message: as Rasa, try again with
                        // the rejection in the conversation.
                        let l = p.action.clone();
                        t.apply(Event::Rejected {
                            name: l,
                            timestamp: 0.0,
                        });
                        p = a.predict(&t);
                    }
                    r.actions += 1;
                    if p.action == *gold {
                        r.actions_right += 1;
                    } else {
                        fail(
                            &mut r,
                            format!(
                                "{file}:{}: expected action {gold}, predicted {} ({})",
                                te.line, p.action, p.policy
                            ),
                        );
                        if o.fail_on_prediction_errors {
                            break;
                        }
                    }
                    t.apply(action_event(gold, Some(p.policy), Some(p.confidence)));
                }
                Event::User { parse_data, .. } if o.e2e && te.text.is_some() => {
                    let text = te.text.clone().unwrap_or_default();
                    let got = a.nlu.parse(&text);
                    let want = &parse_data.intent.name;
                    let intent_ok = got.intent.name == *want
                        || got.retrieval_intent() == Some(want.as_str())
                        || want.is_empty();
                    let entities_ok = parse_data.entities.iter().all(|w| {
                        got.entities.iter().any(|e| {
                            e.entity == w.entity && entity_value_matches(&got, e, &w.value)
                        })
                    });
                    if !intent_ok || !entities_ok {
                        fail(
                            &mut r,
                            format!(
                                "{file}:{}: user {text:?}: labelled {want} {:?}, NLU found {} {:?}",
                                te.line,
                                parse_data
                                    .entities
                                    .iter()
                                    .map(|e| (&e.entity, &e.value))
                                    .collect::<Vec<_>>(),
                                got.intent.name,
                                got.entities
                                    .iter()
                                    .map(|e| (&e.entity, &e.value))
                                    .collect::<Vec<_>>()
                            ),
                        );
                        if o.fail_on_prediction_errors {
                            break;
                        }
                    }
                    let mut e = te.event.clone();
                    if let Event::User { parse_data, .. } = &mut e {
                        parse_data.intent.name = base_intent(&parse_data.intent.name);
                        parse_data.response_selector = got.response_selector.clone();
                    }
                    t.apply(e);
                }
                _ => {
                    let mut e = te.event;
                    if let Event::User { parse_data, .. } = &mut e {
                        // A labelled retrieval intent (`faq/ask_x`): the base intent, and the
                        // full one for the response selector.
                        let full = parse_data.intent.name.clone();
                        parse_data.intent.name = base_intent(&full);
                        if full.contains('/') {
                            parse_data.response_selector = Some(
                                json!({ parse_data.intent.name.clone(): {"response": {"intent_response_key": full}}}),
                            );
                        }
                    }
                    t.apply(e);
                }
            }
        }
        out.push(r);
    }
    out
}

/// Whether a found entity has the labelled value (or the labelled words, before synonyms).
fn entity_value_matches(p: &ParseData, e: &Entity, want: &Value) -> bool {
    let words: String = match (e.start, e.end) {
        (Some(a), Some(b)) => p.text.chars().skip(a).take(b.saturating_sub(a)).collect(),
        _ => String::new(),
    };
    want.as_str().is_some_and(str::is_empty)
        || e.value == *want
        || want
            .as_str()
            .is_some_and(|v| v.eq_ignore_ascii_case(&words))
}

/// Markdown report of test results, with the counts `rasa test` reports.
pub fn report(results: &[StoryResult]) -> String {
    let passed = results.iter().filter(|r| r.passed).count();
    let actions: usize = results.iter().map(|r| r.actions).sum();
    let right: usize = results.iter().map(|r| r.actions_right).sum();
    let mut s = format!(
        "# Test stories\n\n{passed} of {} passed (conversation accuracy {:.4}); {right} of {actions} actions predicted right (action accuracy {:.4}).\n\n| story | where | result |\n|---|---|---|\n",
        results.len(),
        passed as f64 / results.len().max(1) as f64,
        right as f64 / actions.max(1) as f64,
    );
    for r in results {
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            r.story,
            r.at,
            r.failure.as_deref().map_or_else(
                || "passed".to_owned(),
                |f| format!("FAILED: {}", f.replace('|', "\\|"))
            )
        ));
    }
    s
}

/// Held-out story prediction: the policies trained without some stories predict their actions.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOut {
    /// Folds over the stories (as many as stories: leave one out).
    pub folds: usize,
    /// Stories held out (before `or:` and checkpoint expansion).
    pub stories: usize,
    /// Actions predicted.
    pub actions: usize,
    /// Right with the whole ensemble (rules, memoisation, the trained policy, fallback).
    pub right_with_learned: usize,
    /// Right without the trained policy.
    pub right_without_learned: usize,
}

/// Trains the policies `k` times, each time without one fold of the stories (rules always
/// stay), and predicts every action of the held-out stories from their own events as `rasa test`
/// does, with and without the trained policy. Stories that checkpoints join are held out with
/// the story they start from.
pub fn policy_held_out(p: &Project, k: usize) -> crate::Result<HeldOut> {
    use crate::assistant::{expand_stories_from, train_learned, training_trackers};
    use crate::policy::{Featurizer, Policies, PolicyChoice};
    let (all, rules) = training_trackers(p);
    let origin: Vec<usize> = expand_stories_from(p).into_iter().map(|(i, _)| i).collect();
    let n = p.stories.len();
    let k = k.clamp(1, n.max(1));
    let mut out = HeldOut {
        folds: k,
        stories: n,
        actions: 0,
        right_with_learned: 0,
        right_without_learned: 0,
    };
    for fold in 0..k {
        let held = |i: usize| i % k == fold;
        let train: Vec<_> = all
            .iter()
            .zip(&origin)
            .filter(|(_, o)| !held(**o))
            .map(|(t, _)| t.clone())
            .collect();
        let test: Vec<_> = all
            .iter()
            .zip(&origin)
            .filter(|(_, o)| held(**o))
            .map(|(t, _)| t.clone())
            .collect();
        let choice = PolicyChoice::of(&p.config);
        let Ok(policies) = Policies::train(Featurizer::new(&p.domain), choice, &train, &rules)
        else {
            continue;
        };
        let learned = train_learned(p, &policies, &train, &rules)?;
        for t in &test {
            let mut tr = Tracker::new(&t.name, policies.featurizer.initial.clone());
            for (j, e) in t.events.iter().enumerate() {
                if let Event::Action { name: gold, .. } = e
                    && j > 0
                {
                    for (with, right) in [
                        (true, &mut out.right_with_learned),
                        (false, &mut out.right_without_learned),
                    ] {
                        let l = if with { learned.as_ref() } else { None };
                        let mut view = tr.clone();
                        let mut pred = policies.predict_with(&view, l);
                        if pred.action != *gold
                            && view.active_loop_name() == Some(pred.action.as_str())
                        {
                            view.apply(Event::Rejected {
                                name: pred.action.clone(),
                                timestamp: 0.0,
                            });
                            pred = policies.predict_with(&view, l);
                        }
                        if pred.action == *gold {
                            *right += 1;
                        }
                    }
                    out.actions += 1;
                }
                tr.apply(e.clone());
            }
        }
    }
    Ok(out)
}

/// Trains an assistant after validating; stops on validation errors.
pub fn train_checked(p: &Project) -> crate::Result<(Assistant, Validation)> {
    let v = validate(p);
    if !v.errors.is_empty() {
        return Err(crate::Error::Invalid(v.errors));
    }
    let _ = expand_stories(p);
    Ok((Assistant::train(p)?, v))
}

/// NLU cross-validation: intents and entities of held-out examples.
#[derive(Debug, Clone, Serialize)]
pub struct NluCrossValidation {
    /// Folds.
    pub folds: usize,
    /// Intent metrics pooled over the folds (below the threshold: `nlu_fallback`).
    pub intents: duet_eval::classification::Metrics,
    /// Share of held-out examples whose best-ranked intent is right (no fallback threshold).
    pub top1_accuracy: f64,
    /// Entity-level precision, recall and F1 pooled over the folds.
    pub entities: duet_eval::entities::EntityMetrics,
}

/// Trains NLU `k` times, each time without one stratified fold of the examples, and scores the
/// held-out examples: intent accuracy, precision, recall, F1 and confusion; entity-level
/// precision, recall and F1 (type and both boundaries right).
pub fn nlu_cross_validation(p: &Project, k: usize, seed: u64) -> crate::Result<NluCrossValidation> {
    use duet_train::tokens::data::{Mention, from_mentions, parse_inline};
    let examples = p.intent_examples();
    let mut labels: Vec<String> = examples.iter().map(|(i, _)| i.clone()).collect();
    labels.sort();
    labels.dedup();
    let y: Vec<usize> = examples
        .iter()
        .map(|(i, _)| labels.binary_search(i).unwrap_or(0))
        .collect();
    let fold = duet_eval::folds::stratified_folds(&y, k, seed)
        .map_err(|e| crate::Error::Model(format!("cross-validation: {e}")))?;
    let mut pred = vec![0usize; examples.len()];
    let mut top1_right = 0usize;
    let mut truth_tags = vec![Vec::new(); examples.len()];
    let mut pred_tags = vec![Vec::new(); examples.len()];
    for f in 0..k {
        let train: Vec<(String, String)> = examples
            .iter()
            .zip(&fold)
            .filter(|(_, g)| **g != f)
            .map(|(e, _)| e.clone())
            .collect();
        let nlu = crate::nlu::Nlu::train_on(p, &train)?;
        for (i, (_, ex)) in examples.iter().enumerate().filter(|(i, _)| fold[*i] == f) {
            let (plain, mentions) = parse_inline(ex).map_err(crate::Error::Model)?;
            let parsed = nlu.parse(&plain);
            let name = parsed
                .retrieval_intent()
                .map_or_else(|| parsed.intent.name.clone(), str::to_owned);
            pred[i] = labels.binary_search(&name).unwrap_or(labels.len());
            let base = labels[y[i]].split('/').next().unwrap_or_default();
            if parsed.intent_ranking.first().map(|r| r.name.as_str()) == Some(base) {
                top1_right += 1;
            }
            let byte = |c: usize| plain.char_indices().nth(c).map_or(plain.len(), |(b, _)| b);
            let found: Vec<Mention> = parsed
                .entities
                .iter()
                .filter_map(|e| {
                    Some(Mention {
                        start: byte(e.start?),
                        end: byte(e.end?),
                        kind: e.entity.clone(),
                    })
                })
                .collect();
            truth_tags[i] = from_mentions(String::new(), plain.clone(), &mentions).tags;
            pred_tags[i] = from_mentions(String::new(), plain, &found).tags;
        }
    }
    let mut names = labels.clone();
    names.push(crate::nlu::NLU_FALLBACK.into());
    Ok(NluCrossValidation {
        folds: k,
        intents: duet_eval::classification::Metrics::compute(&y, &pred, None, &names),
        top1_accuracy: top1_right as f64 / examples.len().max(1) as f64,
        entities: duet_eval::entities::score(&truth_tags, &pred_tags),
    })
}

/// Markdown report of NLU cross-validation.
pub fn nlu_report(cv: &NluCrossValidation) -> String {
    let mut s = duet_eval::report::markdown(
        &format!("NLU {}-fold cross-validation: intents", cv.folds),
        &cv.intents,
        "",
    );
    s.push_str(
        "\n## Entities\n\n| entity | precision | recall | F1 | support |\n|---|---|---|---|---|\n",
    );
    for (k, m) in &cv.entities.per_type {
        s.push_str(&format!(
            "| {k} | {:.4} | {:.4} | {:.4} | {} |\n",
            m.precision, m.recall, m.f1, m.support
        ));
    }
    let m = &cv.entities.micro;
    s.push_str(&format!(
        "| **micro** | {:.4} | {:.4} | {:.4} | {} |\n",
        m.precision, m.recall, m.f1, m.support
    ));
    s
}
