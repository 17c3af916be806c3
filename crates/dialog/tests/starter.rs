//! Rasa's own starter project (`rasa init`, from the rasa 3.6.21 wheel on PyPI) trained and
//! tested by duet unchanged, and projects with mistakes reported by file and line.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use duet_dialog::assistant::Assistant;
use duet_dialog::check;
use duet_dialog::project::Project;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A copy of the starter project (fetched from PyPI on first use).
fn starter(into: &Path) -> Result<PathBuf> {
    let src = root().join("data/external/rasa-starter");
    if !src.join(".complete").is_file() {
        let ok = Command::new(root().join("scripts/fetch-data.sh"))
            .arg("rasa-starter")
            .status()?
            .success();
        anyhow::ensure!(ok, "scripts/fetch-data.sh rasa-starter failed");
    }
    let dst = into.join("starter");
    for sub in ["", "data", "tests"] {
        std::fs::create_dir_all(dst.join(sub))?;
        for e in std::fs::read_dir(src.join(sub))? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "yml") {
                std::fs::copy(&p, dst.join(sub).join(p.file_name().unwrap_or_default()))?;
            }
        }
    }
    Ok(dst)
}

#[test]
fn the_rasa_starter_project_trains_and_passes_its_test_stories() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = starter(tmp.path())?;
    let p = Project::load(&dir)?;
    let v = check::validate(&p);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    let (a, _) = check::train_checked(&p)?;
    let model = dir.join("models/duet");
    a.save(&p, &model)?;
    let a = Assistant::load(&p, &model)?;
    let results = check::run_tests(&a, &p);
    assert_eq!(results.len(), 7);
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");

    // A conversation: greeting, sad path with an image, goodbye by rule.
    let mut t = a.new_tracker("u1");
    let say = |t: &mut _, text: &str| -> Vec<String> {
        a.handle(t, text, None)
            .into_iter()
            .filter_map(|m| m.text)
            .collect()
    };
    assert_eq!(say(&mut t, "hello"), ["Hey! How are you?"]);
    let sad = a.handle(&mut t, "I am sad", None);
    assert_eq!(sad.len(), 2, "{sad:?}");
    assert_eq!(
        sad[0].image.as_deref(),
        Some("https://i.imgur.com/nGF1K8f.jpg")
    );
    assert_eq!(say(&mut t, "/deny"), ["Bye"]);
    assert_eq!(
        say(&mut t, "are you a bot?"),
        ["I am a bot, powered by Rasa."]
    );
    let json = serde_json::to_value(&t.events)?;
    assert!(
        json.as_array()
            .is_some_and(|e| e.iter().any(|e| e["event"] == "bot"))
    );

    // Changed data: the trained assistant is stale and says so.
    std::fs::write(
        dir.join("data/rules.yml"),
        std::fs::read_to_string(dir.join("data/rules.yml"))? + "\n",
    )?;
    let p2 = Project::load(&dir)?;
    let err = Assistant::load(&p2, &model)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("changed since it was trained"), "{err}");
    Ok(())
}

#[test]
fn mistakes_are_reported_with_file_and_line() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = starter(tmp.path())?;
    std::fs::write(
        dir.join("data/stories.yml"),
        "version: \"3.1\"\nstories:\n- story: broken\n  steps:\n  - intent: greet\n  - action: utter_greet\n  - intent: order_pizza\n  - action: utter_pizza\n- story: against the rule\n  steps:\n  - intent: goodbye\n  - action: utter_happy\n",
    )?;
    let p = Project::load(&dir)?;
    let v = check::validate(&p);
    let all = v.errors.join("\n");
    assert!(
        all.contains("stories.yml:7") && all.contains("order_pizza"),
        "{all}"
    );
    assert!(
        all.contains("stories.yml:8") && all.contains("utter_pizza"),
        "{all}"
    );
    assert!(
        all.contains("stories.yml:9") && all.contains("Say goodbye"),
        "{all}"
    );
    assert!(check::train_checked(&p).is_err());

    std::fs::write(
        dir.join("domain.yml"),
        "intents:\n  - greet\n responses: [\n",
    )?;
    let err = Project::load(&dir)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("domain.yml") && err.contains("line"), "{err}");
    Ok(())
}

/// Copies a project's YAML files and services (not its trained models, results or knowledge
/// base) into `into`.
fn copy_project(src: &Path, into: &Path) -> Result<PathBuf> {
    for sub in ["", "data", "tests", "services"] {
        if !src.join(sub).is_dir() {
            continue;
        }
        std::fs::create_dir_all(into.join(sub))?;
        for e in std::fs::read_dir(src.join(sub))? {
            let p = e?.path();
            if p.is_file() && (sub == "services" || p.extension().is_some_and(|x| x == "yml")) {
                std::fs::copy(&p, into.join(sub).join(p.file_name().unwrap_or_default()))?;
            }
        }
    }
    Ok(into.to_path_buf())
}

#[test]
fn the_customer_service_example_passes_its_test_stories() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = copy_project(&root().join("examples/customer-service"), tmp.path())?;
    let p = Project::load(&dir)?;
    let (a, v) = check::train_checked(&p)?;
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    let results = check::run_tests(&a, &p);
    assert!(results.len() >= 15, "{} test stories", results.len());
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");

    // Conditional responses follow the slot; an invalid categorical value is re-asked.
    let mut t = a.new_tracker("gold");
    let text = |m: Vec<duet_dialog::actions::BotMessage>| -> String {
        m.into_iter()
            .filter_map(|m| m.text)
            .collect::<Vec<_>>()
            .join(" / ")
    };
    assert!(text(a.handle(&mut t, "what is your return policy", None)).contains("30 days"));
    a.handle(&mut t, "I have a gold account", None);
    assert_eq!(t.slots["customer_tier"], "gold");
    assert!(text(a.handle(&mut t, "what is your return policy", None)).contains("60 days"));
    let ask = a.handle(&mut t, "I want to return my phone from ORD-98765", None);
    assert_eq!(ask.last().map(|m| m.buttons.len()), Some(3), "{ask:?}");
    let again = text(a.handle(&mut t, "/inform{\"reason\": \"meh\"}", None));
    assert!(again.contains("Sorry, I can take returns"), "{again}");
    let done = text(a.handle(&mut t, "it was broken", None));
    assert!(
        done.contains("gold member") && done.contains("phone") && done.contains("damaged"),
        "{done}"
    );
    assert_eq!(t.active_loop, None);
    Ok(())
}

#[test]
fn two_stage_fallback_confirms_then_asks_to_rephrase() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = starter(tmp.path())?;
    std::fs::write(
        dir.join("config.yml"),
        // Augmented memoisation: the greeting after an earlier greeting is in no story, and
        // Rasa's plain memoisation would not answer it either.
        "pipeline:\n  - name: FallbackClassifier\n    threshold: 0.7\npolicies:\n  - name: AugmentedMemoizationPolicy\n  - name: RulePolicy\n",
    )?;
    std::fs::write(
        dir.join("data/fallback.yml"),
        "rules:\n- rule: two-stage fallback\n  steps:\n  - intent: nlu_fallback\n  - action: action_two_stage_fallback\n  - active_loop: action_two_stage_fallback\n",
    )?;
    let p = Project::load(&dir)?;
    let (a, _) = check::train_checked(&p)?;
    let mut t = a.new_tracker("u");
    let ask = a.handle(&mut t, "purple elephant xylophone", None);
    let q = &ask[0];
    assert!(
        q.text
            .as_deref()
            .is_some_and(|s| s.starts_with("Did you mean")),
        "{ask:?}"
    );
    assert_eq!(q.buttons.len(), 2);
    // Yes: carries on with the guessed intent.
    let guess = q.buttons[0].payload.clone();
    let on = a.handle(&mut t, &guess, None);
    assert!(!on.is_empty(), "{guess}: {on:?}");
    assert_eq!(t.active_loop, None);
    // No, then a rephrasing that is understood.
    a.handle(&mut t, "zebra quantum marmalade", None);
    let re = a.handle(&mut t, "/out_of_scope", None);
    assert!(
        re[0]
            .text
            .as_deref()
            .is_some_and(|s| s.contains("rephrase")),
        "{re:?}"
    );
    let greet = a.handle(&mut t, "/greet", None);
    assert_eq!(greet[0].text.as_deref(), Some("Hey! How are you?"));
    assert_eq!(t.active_loop, None);
    // No, then nonsense again: the default fallback.
    a.handle(&mut t, "zebra quantum marmalade", None);
    a.handle(&mut t, "/out_of_scope", None);
    let last = a.handle(&mut t, "quantum zebra", None);
    assert!(
        last[0].text.as_deref().is_some_and(|s| s.contains("Sorry")),
        "{last:?}"
    );
    assert_eq!(t.active_loop, None);
    Ok(())
}
