//! `duet dialog validate` and `duet dialog test`: the project checked for consistency, and its
//! test stories run against the trained assistant.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};

use crate::assistant::{Assistant, action_event, expand_stories, known_action};
use crate::policy::{Featurizer, Policies, RuleSeq, slot_items, story_events};
use crate::project::{Project, Step, list_items};
use crate::tracker::{ACTION_LISTEN, Entity, Intent, ParseData};

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
            for (name, _) in slot_items(&s.slot_was_set) {
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
                v.errors.push(format!(
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
            let ask = format!("utter_ask_{slot}");
            let ask_form = format!("utter_ask_{form}_{slot}");
            if !d.responses.contains_key(&ask)
                && !d.responses.contains_key(&ask_form)
                && !d
                    .actions
                    .iter()
                    .any(|a| a.name() == format!("action_ask_{slot}"))
            {
                v.errors.push(format!("{}: form {form:?} cannot ask for {slot:?}: no response {ask} or action action_ask_{slot}", p.domain_file.display()));
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
    let custom: Vec<String> = d
        .actions
        .iter()
        .map(crate::project::Decl::name)
        .filter(|a| !crate::actions::DEFAULT_ACTIONS.contains(&a.as_str()))
        .filter(|a| !p.commands.commands.contains_key(a))
        .collect();
    if !custom.is_empty() && p.endpoints.action_endpoint.is_none() {
        v.warnings.push(format!(
            "{}: custom actions {custom:?} need an action server, and endpoints.yml names no action_endpoint",
            p.dir.display()
        ));
    }
    for c in p.config.pipeline.iter().chain(&p.config.policies) {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        if !crate::nlu::KNOWN_COMPONENTS.contains(&name) {
            v.warnings.push(format!(
                "{}: component {name:?} is not one duet runs; it is ignored (duet maps: {})",
                p.dir.join("config.yml").display(),
                crate::nlu::KNOWN_COMPONENTS.join(", ")
            ));
        }
    }
    v.errors.extend(contradictions(p));
    v
}

/// Stories whose next action differs from what a rule says at the same point.
fn contradictions(p: &Project) -> Vec<String> {
    let f = Featurizer::new(&p.domain);
    let rules: Vec<RuleSeq> = p
        .rules
        .iter()
        .map(|r| {
            RuleSeq::new(
                &r.item,
                format!("{}:{}", r.file.display(), r.item.rule.referenced.line()),
                &f,
            )
        })
        .collect();
    let only_rules = Policies {
        featurizer: f.clone(),
        max_history: 1,
        memo: Default::default(),
        rules: rules.clone(),
    };
    let mut out = Vec::new();
    for s in &p.stories {
        let pairs = f.states(&story_events(&s.item.steps));
        let states: Vec<_> = pairs.iter().map(|(s, _)| s.clone()).collect();
        for (i, (_, action)) in pairs.iter().enumerate() {
            if let Some(pred) = only_rules.predict_states(&states[..=i])
                && &pred.action != action
                && action != ACTION_LISTEN
            {
                let rule = rules
                    .iter()
                    .filter(|r| r.predict(&states[..=i]).is_some())
                    .map(|r| format!("rule {:?} ({})", r.name, r.at))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push(format!(
                    "{}:{}: story {:?} runs {action} where {rule} runs {}",
                    s.file.display(),
                    s.item.story.referenced.line(),
                    s.item.story.value,
                    pred.action
                ));
                break;
            }
        }
    }
    out
}

/// The outcome of one test story.
#[derive(Debug, Clone, Serialize)]
pub struct StoryResult {
    /// The story's name.
    pub story: String,
    /// Where it is written.
    pub at: String,
    /// Whether every step matched.
    pub passed: bool,
    /// The first divergence.
    pub failure: Option<String>,
}

/// Runs the test stories: each user turn's intent (and listed entities) must be what NLU
/// finds, and each action what the policies predict; a story stops at its first divergence.
pub fn run_tests(a: &Assistant, p: &Project) -> Vec<StoryResult> {
    p.tests
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let at = format!("{}:{}", s.file.display(), s.item.story.referenced.line());
            let failure = run_story(a, &s.item.steps, k, &at).err();
            StoryResult {
                story: s.item.story.value.clone(),
                at,
                passed: failure.is_none(),
                failure,
            }
        })
        .collect()
}

fn run_story(a: &Assistant, steps: &[Step], k: usize, at: &str) -> Result<(), String> {
    let mut t = a.new_tracker(&format!("test-{k}"));
    let expect_listen = |t: &crate::tracker::Tracker, before: &str| -> Result<(), String> {
        let p = a.predict(t);
        if p.action != ACTION_LISTEN {
            return Err(format!(
                "{before}: expected the assistant to wait for the user, predicted {} ({})",
                p.action, p.policy
            ));
        }
        Ok(())
    };
    let mut listening = true;
    for s in steps {
        if s.intent.is_some() || s.user.is_some() {
            let line = s.intent.as_ref().map_or(0, |i| i.referenced.line());
            if !listening {
                expect_listen(&t, &format!("{at}, line {line}"))?;
                t.apply(action_event(ACTION_LISTEN, Some("test"), Some(1.0)));
            }
            // Test stories annotate entities inline: `[Berlin](city)`.
            let (text, annotated) = match s.user.as_deref().map(str::trim) {
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
            let expected = s.intent.as_ref().map(|i| i.value.clone());
            let parsed = text.as_deref().map(|x| a.nlu.parse(x));
            if let (Some(p), Some(want)) = (&parsed, &expected)
                && &p.intent.name != want
                && p.retrieval_intent() != Some(want.as_str())
            {
                return Err(format!(
                    "line {line}: user {:?}: expected intent {want}, NLU predicted {} ({:.2})",
                    p.text, p.intent.name, p.intent.confidence
                ));
            }
            let mut want_entities: Vec<(String, Value)> = slot_items(&s.entities);
            want_entities.extend(slot_items(&annotated));
            if let Some(p) = &parsed {
                for (name, value) in &want_entities {
                    // Annotations name the words; NLU may map them to a synonym.
                    let found = p.entities.iter().any(|e| {
                        let words = match (e.start, e.end) {
                            (Some(a), Some(b)) => {
                                p.text.chars().skip(a).take(b.saturating_sub(a)).collect()
                            }
                            _ => String::new(),
                        };
                        &e.entity == name
                            && (value == &Value::Bool(true)
                                || &e.value == value
                                || value
                                    .as_str()
                                    .is_some_and(|v| v.eq_ignore_ascii_case(&words)))
                    });
                    if !found {
                        return Err(format!(
                            "line {line}: user {:?}: expected entity {name} = {value}, NLU found {:?}",
                            p.text, p.entities
                        ));
                    }
                }
            }
            let intent = expected
                .map(|e| e.split('/').next().unwrap_or_default().to_owned())
                .or_else(|| parsed.as_ref().map(|p| p.intent.name.clone()))
                .unwrap_or_default();
            let entities = match &parsed {
                // Every annotated entity was found above: NLU's (synonyms applied) stand.
                Some(p) => p.entities.clone(),
                _ => want_entities
                    .into_iter()
                    .map(|(entity, value)| Entity {
                        entity,
                        value,
                        start: None,
                        end: None,
                        extractor: None,
                        role: None,
                    })
                    .collect(),
            };
            let msg = ParseData {
                text: text.unwrap_or_else(|| format!("/{intent}")),
                intent: Intent {
                    name: intent,
                    confidence: 1.0,
                },
                entities,
                intent_ranking: vec![],
                response_selector: parsed.as_ref().and_then(|p| p.response_selector.clone()),
            };
            a.receive(&mut t, msg, Some("test"));
            listening = false;
        }
        if let Some(want) = &s.action {
            let p = a.predict(&t);
            if p.action != want.value {
                return Err(format!(
                    "line {}: expected action {}, predicted {} ({})",
                    want.referenced.line(),
                    want.value,
                    p.action,
                    p.policy
                ));
            }
            t.apply(action_event(&p.action, Some(p.policy), Some(p.confidence)));
            if p.action == ACTION_LISTEN {
                listening = true;
            } else {
                a.run_action(&mut t, &p.action, Some("test"));
            }
        }
        for (name, value) in slot_items(&s.slot_was_set) {
            let got = t.slots.get(&name).cloned().unwrap_or(Value::Null);
            let ok = if value == Value::Bool(true) {
                !got.is_null()
            } else {
                got == value
            };
            if !ok {
                return Err(format!("{at}: expected slot {name} = {value}, found {got}"));
            }
        }
        if let Some(l) = &s.active_loop
            && t.active_loop.as_deref() != l.as_str()
        {
            return Err(format!(
                "{at}: expected active loop {l}, found {:?}",
                t.active_loop
            ));
        }
    }
    if !listening {
        expect_listen(&t, &format!("{at}, end of story"))?;
    }
    Ok(())
}

/// Markdown report of test results.
pub fn report(results: &[StoryResult]) -> String {
    let passed = results.iter().filter(|r| r.passed).count();
    let mut s = format!(
        "# Test stories\n\n{passed} of {} passed.\n\n| story | where | result |\n|---|---|---|\n",
        results.len()
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
