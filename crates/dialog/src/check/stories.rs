//! Test stories, evaluated as Rasa 3.6's `rasa test` (`rasa/core/test.py`) evaluates them.

use serde::Serialize;
use serde_json::{Value, json};

use crate::assistant::{Assistant, action_event};
use crate::policy::training::{base_intent, entity_items, slot_items, slots_for_entities};
use crate::project::{Project, Step};
use crate::tracker::{ACTION_LISTEN, Entity, Event, Intent, ParseData, Tracker};

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
