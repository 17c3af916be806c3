//! Regression tests for the Rasa-fidelity defects of issue 16, each built from the input that
//! showed it, named after what broke.

use std::path::Path;

use anyhow::Result;
use duet_dialog::assistant::Assistant;
use duet_dialog::check;
use duet_dialog::project::Project;
use duet_dialog::tracker::Event;

const NLU: &str = "nlu:
- intent: greet
  examples: |
    - hi
    - hello
- intent: bye
  examples: |
    - bye
    - see you
- intent: help
  examples: |
    - help me
    - I need help
- intent: thank
  examples: |
    - thanks
    - thank you
- intent: chitchat
  examples: |
    - how is the weather
    - tell me a joke
- intent: request_restaurant
  examples: |
    - find me a restaurant
    - I want to eat out
- intent: inform
  examples: |
    - [italian](cuisine) food
    - [chinese](cuisine)
- intent: stop
  examples: |
    - stop
    - halt
- intent: affirm
  examples: |
    - yes
    - sure
- intent: deny
  examples: |
    - no
    - never
";

const INTENTS: &str = "intents:\n  - greet\n  - bye\n  - help\n  - thank\n  - chitchat\n  - request_restaurant\n  - inform\n  - stop\n  - affirm\n  - deny\nentities:\n  - cuisine\n";

/// Writes a project: the domain's other parts, rules, stories, test stories.
fn project(dir: &Path, domain: &str, rules: &str, stories: &str, tests: &str) -> Result<Project> {
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::create_dir_all(dir.join("tests"))?;
    std::fs::write(dir.join("domain.yml"), format!("{INTENTS}{domain}"))?;
    std::fs::write(dir.join("data/nlu.yml"), NLU)?;
    std::fs::write(dir.join("data/rules.yml"), format!("rules:\n{rules}"))?;
    std::fs::write(dir.join("data/stories.yml"), format!("stories:\n{stories}"))?;
    if !tests.is_empty() {
        std::fs::write(
            dir.join("tests/test_stories.yml"),
            format!("stories:\n{tests}"),
        )?;
    }
    std::fs::write(
        dir.join("config.yml"),
        "policies:\n  - name: MemoizationPolicy\n  - name: RulePolicy\n",
    )?;
    Ok(Project::load(dir)?)
}

const RESPONSES_XYZ: &str =
    "responses:\n  utter_x:\n    - text: x\n  utter_y:\n    - text: y\n  utter_z:\n    - text: z\n";

fn texts(m: Vec<duet_dialog::actions::BotMessage>) -> Vec<String> {
    m.into_iter().filter_map(|m| m.text).collect()
}

#[test]
fn a_rule_starting_with_an_action_is_not_read_as_predict_after_any_turn() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let p = project(
        tmp.path(),
        RESPONSES_XYZ,
        "- rule: leading action\n  steps:\n  - action: utter_x\n  - intent: thank\n  - action: utter_z\n",
        "- story: help\n  steps:\n  - intent: help\n  - action: utter_y\n",
        "",
    )?;
    let v = check::validate(&p);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    let (a, _) = check::train_checked(&p)?;
    let mut t = a.new_tracker("u");
    assert_eq!(texts(a.handle(&mut t, "/help", None)), ["y"]);
    Ok(())
}

#[test]
fn or_in_a_rule_matches_only_its_own_intents() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let p = project(
        tmp.path(),
        RESPONSES_XYZ,
        "- rule: greet or bye\n  steps:\n  - or:\n    - intent: greet\n    - intent: bye\n  - action: utter_x\n",
        "- story: help\n  steps:\n  - intent: help\n  - action: utter_y\n",
        "",
    )?;
    let v = check::validate(&p);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    let (a, _) = check::train_checked(&p)?;
    for (text, want) in [("/greet", "x"), ("/bye", "x"), ("/help", "y")] {
        let mut t = a.new_tracker(text);
        assert_eq!(texts(a.handle(&mut t, text, None)), [want], "{text}");
    }
    // "thanks": no rule and no story; the rule for greet/bye must not answer it.
    let mut t = a.new_tracker("thanks");
    a.receive(&mut t, a.nlu.parse("/thank"), None);
    let p = a.predict(&t);
    assert_ne!(p.action, "utter_x", "{p:?}");
    Ok(())
}

const FORM_DOMAIN: &str = "slots:
  cuisine:
    type: text
    influence_conversation: false
    mappings:
    - type: from_entity
      entity: cuisine
forms:
  restaurant_form:
    required_slots:
    - cuisine
responses:
  utter_ask_cuisine:
    - text: What cuisine?
  utter_chitchat:
    - text: chitchat
  utter_submit:
    - text: All done!
  utter_ask_continue:
    - text: Do you want to continue?
";

const FORM_RULES: &str = "- rule: chitchat
  steps:
  - intent: chitchat
  - action: utter_chitchat
- rule: activate restaurant form
  steps:
  - intent: request_restaurant
  - action: restaurant_form
  - active_loop: restaurant_form
- rule: submit form
  condition:
  - active_loop: restaurant_form
  steps:
  - action: restaurant_form
  - active_loop: null
  - action: utter_submit
";

const FORM_STORIES: &str = "- story: stop form + continue
  steps:
  - intent: request_restaurant
  - action: restaurant_form
  - active_loop: restaurant_form
  - intent: stop
  - action: utter_ask_continue
  - intent: affirm
  - action: restaurant_form
  - active_loop: null
  - action: utter_submit
- story: stop form + stop
  steps:
  - intent: request_restaurant
  - action: restaurant_form
  - active_loop: restaurant_form
  - intent: stop
  - action: utter_ask_continue
  - intent: deny
  - action: action_deactivate_loop
  - active_loop: null
";

#[test]
fn unhappy_paths_inside_an_active_form_are_not_contradictions() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let p = project(tmp.path(), FORM_DOMAIN, FORM_RULES, FORM_STORIES, "")?;
    let v = check::validate(&p);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    check::train_checked(&p)?;
    Ok(())
}

#[test]
fn a_contradiction_names_both_places_and_the_state() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let p = project(
        tmp.path(),
        RESPONSES_XYZ,
        "- rule: greet\n  steps:\n  - intent: greet\n  - action: utter_x\n",
        "- story: greet differently\n  steps:\n  - intent: greet\n  - action: utter_y\n",
        "",
    )?;
    let v = check::validate(&p);
    assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
    let e = &v.errors[0];
    assert!(
        e.contains("stories.yml:2") && e.contains("rules.yml:2"),
        "{e}"
    );
    assert!(
        e.contains("utter_y") && e.contains("utter_x") && e.contains("greet"),
        "{e}"
    );
    Ok(())
}

#[test]
fn the_form_resumes_after_a_general_rule_answers_inside_it() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let p = project(tmp.path(), FORM_DOMAIN, FORM_RULES, FORM_STORIES, "")?;
    let (a, _) = check::train_checked(&p)?;
    let mut t = a.new_tracker("u");
    assert_eq!(
        texts(a.handle(&mut t, "/request_restaurant", None)),
        ["What cuisine?"]
    );
    assert_eq!(
        texts(a.handle(&mut t, "/chitchat", None)),
        ["chitchat", "What cuisine?"]
    );
    assert_eq!(t.active_loop.as_deref(), Some("restaurant_form"));
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, Event::Rejected { name, .. } if name == "restaurant_form")),
        "the form should have rejected the chitchat"
    );
    assert_eq!(
        texts(a.handle(&mut t, "/inform{\"cuisine\": \"italian\"}", None)),
        ["All done!"]
    );
    assert_eq!(t.active_loop, None);
    Ok(())
}

#[test]
fn validate_form_sees_the_candidate_slots_right_after_the_forms_action() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let domain = FORM_DOMAIN.replace("forms:", "actions:\n  - validate_restaurant_form\nforms:");
    let p = project(tmp.path(), &domain, FORM_RULES, FORM_STORIES, "")?;
    let (a, _) = check::train_checked(&p)?;
    let mut t = a.new_tracker("u");
    t.apply(Event::ActiveLoop {
        name: Some("restaurant_form".into()),
        timestamp: 0.0,
    });
    t.apply(Event::Slot {
        name: "requested_slot".into(),
        value: "cuisine".into(),
        timestamp: 0.0,
    });
    a.receive(
        &mut t,
        a.nlu.parse("/inform{\"cuisine\": \"italian\"}"),
        None,
    );
    let seen = a.validation_tracker(
        &t,
        "restaurant_form",
        &[("cuisine".to_owned(), "italian".into())],
    );
    // rasa-sdk's `Tracker.slots_to_validate()`: the slot events after the last non-slot event.
    let mut trailing = Vec::new();
    for e in seen.events.iter().rev() {
        match e {
            Event::Slot { name, value, .. } => trailing.push((name.clone(), value.clone())),
            other => {
                assert!(
                    matches!(other, Event::Action { name, .. } if name == "restaurant_form"),
                    "{other:?}"
                );
                break;
            }
        }
    }
    assert_eq!(
        trailing,
        [("cuisine".to_owned(), serde_json::json!("italian"))]
    );
    let n = seen.events.len();
    assert!(
        matches!(&seen.events[n - 3], Event::Slot { name, value, .. } if name == "requested_slot" && value == "cuisine"),
        "{:?}",
        &seen.events[n - 3]
    );
    Ok(())
}

#[test]
fn forms_ask_with_action_ask_form_slot_before_the_responses() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    // Only `action_ask_<form>_<slot>`: valid (Rasa recognises it), no "cannot ask" error.
    let only_action = FORM_DOMAIN
        .replace(
            "forms:",
            "actions:\n  - action_ask_restaurant_form_cuisine\nforms:",
        )
        .replace("  utter_ask_cuisine:\n    - text: What cuisine?\n", "");
    let p = project(tmp.path(), &only_action, FORM_RULES, FORM_STORIES, "")?;
    let v = check::validate(&p);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    // `utter_ask_<form>_<slot>` comes before `utter_ask_<slot>`.
    let tmp2 = tempfile::tempdir()?;
    let both = FORM_DOMAIN.replace(
        "  utter_chitchat:",
        "  utter_ask_restaurant_form_cuisine:\n    - text: Which cuisine for the restaurant?\n  utter_chitchat:",
    );
    let p = project(tmp2.path(), &both, FORM_RULES, FORM_STORIES, "")?;
    let (a, _) = check::train_checked(&p)?;
    let mut t = a.new_tracker("u");
    assert_eq!(
        texts(a.handle(&mut t, "/request_restaurant", None)),
        ["Which cuisine for the restaurant?"]
    );
    // `action_ask_<slot>` comes before `utter_ask_<slot>`: the response is not used.
    let tmp3 = tempfile::tempdir()?;
    let custom = FORM_DOMAIN.replace("forms:", "actions:\n  - action_ask_cuisine\nforms:");
    let p = project(tmp3.path(), &custom, FORM_RULES, FORM_STORIES, "")?;
    let (a, _) = check::train_checked(&p)?;
    let mut t = a.new_tracker("u");
    let said = texts(a.handle(&mut t, "/request_restaurant", None));
    assert!(!said.contains(&"What cuisine?".to_owned()), "{said:?}");
    Ok(())
}

#[test]
fn dialog_test_replays_the_storys_events_and_calls_no_action_server() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let domain = FORM_DOMAIN.replace("forms:", "actions:\n  - validate_restaurant_form\nforms:");
    let tests = "- story: Happy path
  steps:
  - user: |
      find me a restaurant
    intent: request_restaurant
  - action: restaurant_form
  - active_loop: restaurant_form
  - active_loop: null
  - action: utter_submit
- story: with a value
  steps:
  - user: |
      find me a restaurant
    intent: request_restaurant
  - action: restaurant_form
  - active_loop: restaurant_form
  - user: |
      [italian](cuisine) food
    intent: inform
  - action: restaurant_form
  - active_loop: null
  - action: utter_submit
- story: unhappy path
  steps:
  - user: |
      find me a restaurant
    intent: request_restaurant
  - action: restaurant_form
  - active_loop: restaurant_form
  - user: |
      tell me a joke
    intent: chitchat
  - action: utter_chitchat
  - action: restaurant_form
  - active_loop: null
  - action: utter_submit
";
    let p = project(tmp.path(), &domain, FORM_RULES, FORM_STORIES, tests)?;
    // An action server that is not there: calling it would fail the form.
    std::fs::write(
        tmp.path().join("endpoints.yml"),
        "action_endpoint:\n  url: http://127.0.0.1:9/webhook\n",
    )?;
    let p = Project::load(&p.dir)?;
    let (a, _) = check::train_checked(&p)?;
    let results = check::run_tests(&a, &p);
    assert_eq!(results.len(), 3);
    for r in &results {
        assert!(r.passed, "{r:?}");
        assert!(r.actions > 0 && r.actions == r.actions_right, "{r:?}");
    }
    // A wrong story fails at its line.
    let bad = tests.replace("  - action: utter_chitchat\n", "  - action: utter_submit\n");
    std::fs::write(
        tmp.path().join("tests/test_stories.yml"),
        format!("stories:\n{bad}"),
    )?;
    let p = Project::load(&p.dir)?;
    let a = Assistant::train(&p)?;
    let results = check::run_tests(&a, &p);
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    let why = failed[0].failure.as_deref().unwrap_or_default();
    assert!(
        why.contains("test_stories.yml:34") && why.contains("utter_chitchat"),
        "{why}"
    );
    Ok(())
}

#[test]
fn utter_names_under_actions_are_not_reported_as_custom_actions() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let domain = format!("{RESPONSES_XYZ}actions:\n  - utter_x\n");
    let p = project(
        tmp.path(),
        &domain,
        "- rule: greet\n  steps:\n  - intent: greet\n  - action: utter_x\n",
        "",
        "",
    )?;
    let v = check::validate(&p);
    assert!(
        !v.warnings.iter().any(|w| w.contains("action server")),
        "{:?}",
        v.warnings
    );
    let (a, _) = check::train_checked(&p)?;
    let mut t = a.new_tracker("u");
    assert_eq!(texts(a.handle(&mut t, "/greet", None)), ["x"]);
    Ok(())
}

#[test]
fn regex_entities_follow_the_regex_entity_extractors_options() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let p = project(tmp.path(), RESPONSES_XYZ, "", "", "")?;
    std::fs::write(
        tmp.path().join("data/regex.yml"),
        "nlu:\n- regex: cuisine\n  examples: |\n    - THAI\n",
    )?;
    let found = |config: &str| -> Result<Vec<String>> {
        std::fs::write(tmp.path().join("config.yml"), config)?;
        let p = Project::load(&p.dir)?;
        let a = Assistant::train(&p)?;
        Ok(a.nlu
            .parse("some thai please")
            .entities
            .into_iter()
            .filter(|e| e.extractor.as_deref() == Some("RegexEntityExtractor"))
            .map(|e| e.value.as_str().unwrap_or_default().to_owned())
            .collect())
    };
    // Rasa's default: case-insensitive.
    assert_eq!(
        found("pipeline:\n  - name: RegexEntityExtractor\n")?,
        ["thai"]
    );
    assert!(
        found("pipeline:\n  - name: RegexEntityExtractor\n    case_sensitive: true\n")?.is_empty()
    );
    assert!(
        found("pipeline:\n  - name: RegexEntityExtractor\n    use_regexes: false\n")?.is_empty()
    );
    Ok(())
}

#[test]
fn a_rule_turn_no_story_continues_is_hidden_from_memoisation() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let p = project(
        tmp.path(),
        RESPONSES_XYZ,
        "- rule: greet\n  steps:\n  - intent: greet\n  - action: utter_x\n",
        "- story: help\n  steps:\n  - intent: help\n  - action: utter_y\n",
        "",
    )?;
    let (a, _) = check::train_checked(&p)?;
    let mut t = a.new_tracker("u");
    assert_eq!(texts(a.handle(&mut t, "/greet", None)), ["x"]);
    assert!(
        t.events.iter().any(
            |e| matches!(e, Event::Action { name, hide_rule_turn: true, .. } if name == "utter_x")
        ),
        "the greeting rule is in no story: its turn is hidden"
    );
    // Plain memoisation (no back-off) knows "help" only from a conversation's start: it sees
    // it here because the rule's turn is hidden, as in Rasa.
    assert_eq!(texts(a.handle(&mut t, "/help", None)), ["y"]);
    Ok(())
}
