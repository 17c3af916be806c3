//! The real Rasa 3.x projects of `testdata/rasa/` (laid there by
//! `scripts/fetch-rasa-projects.sh`; not committed): each validates without an error, trains,
//! and passes its test stories as `rasa test` evaluates them. Skipped, saying so, when the
//! copies are not there.

use std::path::PathBuf;

use anyhow::Result;
use duet_dialog::check;
use duet_dialog::project::Project;

/// Where the project copies are: `$DUET_RASA_PROJECTS`, `testdata/rasa/`, or
/// `../shared/rasa-projects/`.
fn projects_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::var_os("DUET_RASA_PROJECTS")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join("testdata/rasa"),
            root.join("../shared/rasa-projects"),
        ])
        .find(|d| d.join("formbot/domain.yml").is_file())
}

/// The projects: every Rasa example in 3.x format and financial-demo.
pub const PROJECTS: &[&str] = &[
    "formbot",
    "moodbot",
    "reminderbot",
    "rules",
    "knowledgebasebot",
    "concertbot",
    "e2ebot",
    "responseselectorbot",
    "financial-demo",
];

#[test]
fn every_real_rasa_project_validates_trains_and_passes_its_test_stories() -> Result<()> {
    let Some(dir) = projects_dir() else {
        eprintln!(
            "SKIPPED: no copies of the real Rasa projects (run scripts/fetch-rasa-projects.sh, \
             or set DUET_RASA_PROJECTS)"
        );
        return Ok(());
    };
    let mut problems = Vec::new();
    for name in PROJECTS {
        let tmp = tempfile::tempdir()?;
        let copy = tmp.path().join(name);
        copy_dir(&dir.join(name), &copy)?;
        let p = Project::load(&copy)?;
        let v = check::validate(&p);
        if !v.errors.is_empty() {
            problems.push(format!("{name}: validate: {:#?}", v.errors));
            continue;
        }
        let (a, _) = match check::train_checked(&p) {
            Ok(x) => x,
            Err(e) => {
                problems.push(format!("{name}: train: {e}"));
                continue;
            }
        };
        let results = check::run_tests(&a, &p);
        let passed = results.iter().filter(|r| r.passed).count();
        eprintln!("{name}: {passed}/{} test stories", results.len());
        for r in results.iter().filter(|r| !r.passed) {
            problems.push(format!(
                "{name}: {} ({}): {}",
                r.story,
                r.at,
                r.failure.as_deref().unwrap_or_default()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let p = e?.path();
        let dest = to.join(p.file_name().unwrap_or_default());
        if p.is_dir() {
            copy_dir(&p, &dest)?;
        } else {
            std::fs::copy(&p, &dest)?;
        }
    }
    Ok(())
}
