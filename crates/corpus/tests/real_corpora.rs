//! `duet corpus build` on the real corpora of shared/DATA.md: English and Chinese fortunes,
//! the Python documentation's HTML, and the GCIDE dictionary. Data is fetched from Debian's
//! archive on first use by scripts/fetch-data.sh.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use duet_corpus::config::Config;
use duet_corpus::{BuildOptions, Document, Report, Split, SplitReader, build};

fn opts(inputs: Vec<PathBuf>, out: &Path) -> BuildOptions {
    BuildOptions {
        inputs,
        out: out.to_path_buf(),
        force: true,
        strict: false,
        shard: None,
        dedup_against: vec![],
        decontaminate: vec![],
        progress: indicatif::ProgressBar::hidden(),
    }
}

fn all_docs(dir: &Path) -> Result<Vec<Document>> {
    let mut out = Vec::new();
    for s in Split::ALL {
        for d in SplitReader::open(dir, s)? {
            out.push(d?);
        }
    }
    Ok(out)
}

fn assert_balanced(r: &Report) {
    assert!(
        r.balanced(),
        "{} in != {} kept + {} dropped",
        r.docs_in,
        r.docs_out,
        r.total_dropped()
    );
    let on_disk: u64 = r.splits.values().sum();
    assert_eq!(on_disk, r.docs_out);
}

#[test]
fn fortunes_english_and_chinese_are_told_apart_and_ansi_is_gone() -> Result<()> {
    let (en, zh) = (common::data("fortunes"), common::data("fortunes-zh"));
    let tmp = tempfile::tempdir()?;
    let mut cfg = Config::default();
    cfg.filters.language.allow.clear(); // keep everything, to check the labels
    let r = build(&cfg, &opts(vec![en.clone(), zh.clone()], tmp.path()))?;
    assert_balanced(&r);
    let docs = all_docs(tmp.path())?;
    let share = |prefix: &str, lang: &str| {
        let from: Vec<&Document> = docs
            .iter()
            .filter(|d| d.source.starts_with(prefix))
            .collect();
        from.iter().filter(|d| d.lang == lang).count() as f64 / from.len().max(1) as f64
    };
    let (en_share, zh_share) = (share("fortunes/", "en"), share("fortunes-zh/", "zh"));
    println!(
        "English fortunes labelled en: {en_share:.4}; Chinese fortunes labelled zh: {zh_share:.4}"
    );
    assert!(en_share >= 0.95, "{en_share}");
    assert!(zh_share >= 0.99, "{zh_share}");
    // The Chinese fortunes colour with `ESC[32;1m ... ESC[;m`; a leftover would show as `[32;1m`.
    // (Literal `\x1b[31m` in shell examples is text, not an escape.)
    let ansi = regex::Regex::new(r"\x1b|\[[0-9]{1,2};1m|\[;m")?;
    let dirty: Vec<&str> = docs
        .iter()
        .filter(|d| ansi.is_match(&d.text))
        .map(|d| d.id.as_str())
        .collect();
    assert!(dirty.is_empty(), "ANSI escapes left in {dirty:?}");
    // With the default allow-list both languages are kept and the rest dropped by name.
    let r = build(&Config::default(), &opts(vec![en, zh], tmp.path()))?;
    assert_balanced(&r);
    assert!(
        r.languages.keys().all(|l| l == "en" || l == "zh"),
        "{:?}",
        r.languages
    );
    assert!(
        r.languages["en"] > 10_000 && r.languages["zh"] > 3_000,
        "{:?}",
        r.languages
    );
    Ok(())
}

#[test]
fn python_docs_keep_main_text_and_drop_navigation_and_scripts() -> Result<()> {
    let html = common::data("python3-doc");
    let tmp = tempfile::tempdir()?;
    let inputs = vec![
        html.join("library"),
        html.join("tutorial"),
        html.join("howto"),
    ];
    let r = build(&Config::default(), &opts(inputs, tmp.path()))?;
    assert_balanced(&r);
    let docs = all_docs(tmp.path())?;
    assert!(docs.len() > 200, "{} pages kept", docs.len());
    for junk in [
        "Quick search",
        "Navigation",
        "previous |",
        "modules |",
        "Show Source",
        "© Copyright",
        "Theme\nAuto",
        "DOCUMENTATION_OPTIONS",
        "document.getElementById",
        "jQuery",
        "¶",
    ] {
        let hits: Vec<&str> = docs
            .iter()
            .filter(|d| d.text.contains(junk))
            .map(|d| d.id.as_str())
            .take(3)
            .collect();
        assert!(hits.is_empty(), "{junk:?} left in {hits:?}");
    }
    // Headings and paragraphs survive.
    let tut = docs
        .iter()
        .find(|d| d.id.ends_with("tutorial/controlflow.html"))
        .expect("controlflow page kept");
    assert!(
        tut.text.starts_with("# 4. More Control Flow Tools"),
        "{}",
        &tut.text[..200]
    );
    assert!(
        tut.text.contains("\n\n## 4.1. if Statements\n\n"),
        "headings lost"
    );
    assert!(
        tut.meta["title"]
            .as_str()
            .is_some_and(|t| t.contains("Control Flow"))
    );
    Ok(())
}

#[test]
fn gcide_entries_become_documents() -> Result<()> {
    let gcide = common::data("dict-gcide");
    let index = std::fs::read_to_string(gcide.join("gcide.index"))?;
    let entries = index
        .lines()
        .filter(|l| !l.starts_with("00-database") && !l.starts_with("00database"))
        .count() as u64;
    let tmp = tempfile::tempdir()?;
    let mut cfg = Config::default();
    cfg.dedup.near = false; // the point here is reading and accounting
    let r = build(&cfg, &opts(vec![gcide], tmp.path()))?;
    assert_balanced(&r);
    assert_eq!(r.docs_in, entries);
    assert!(
        r.files
            .skipped
            .iter()
            .any(|s| s.source.ends_with("gcide.dict.dz")),
        "the .dz copy is skipped"
    );
    assert!(
        r.docs_out * 2 > r.docs_in,
        "{:?}",
        r.dropped.keys().collect::<Vec<_>>()
    );
    Ok(())
}

/// Applies edits to about `rate` of the characters: substitutions, deletions, insertions.
fn edit(text: &str, rate: f64, state: &mut u64) -> String {
    let mut next = || {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 33) as f64 / (1u64 << 31) as f64
    };
    let letters: Vec<char> = "abcdefghijklmnopqrstuvwxyz天地人山水火月日"
        .chars()
        .collect();
    let mut out = String::new();
    for c in text.chars() {
        if next() >= rate {
            out.push(c);
            continue;
        }
        let pick = letters[(next() * letters.len() as f64) as usize % letters.len()];
        match (next() * 3.0) as u32 {
            0 => out.push(pick),
            1 => {}
            _ => {
                out.push(c);
                out.push(pick);
            }
        }
    }
    out
}

#[test]
fn near_duplicates_with_five_percent_edits_are_removed() -> Result<()> {
    let (en, zh) = (common::data("fortunes"), common::data("fortunes-zh"));
    let tmp = tempfile::tempdir()?;
    let mut cfg = Config::default();
    cfg.split.valid = 0.0;
    cfg.split.test = 0.0;
    // The originals: a corpus of real fortunes, cleaned and filtered.
    let base = tmp.path().join("base");
    build(&cfg, &opts(vec![en, zh], &base))?;
    let originals = all_docs(&base)?;
    let orig_path = tmp.path().join("originals.jsonl");
    let mut lines = String::new();
    for d in &originals {
        lines += &serde_json::to_string(&serde_json::json!({"id": d.id, "text": d.text}))?;
        lines.push('\n');
    }
    std::fs::write(&orig_path, &lines)?;
    // 200 copies of documents of at least 100 characters, 5% of characters edited.
    let mut state = 20261129u64;
    let candidates: Vec<&Document> = originals
        .iter()
        .filter(|d| d.text.chars().count() >= 100)
        .collect();
    let step = candidates.len() / 200;
    let mut injected = String::new();
    for i in 0..200 {
        let d = candidates[i * step];
        injected += &serde_json::to_string(
            &serde_json::json!({"id": format!("copy-{i}"), "text": edit(&d.text, 0.05, &mut state)}),
        )?;
        injected.push('\n');
    }
    let inj_path = tmp.path().join("zz-injected.jsonl");
    std::fs::write(&inj_path, injected)?;
    // Baseline: the originals alone. Then originals followed by the copies.
    let alone = build(
        &cfg,
        &opts(vec![orig_path.clone()], &tmp.path().join("alone")),
    )?;
    let with = build(
        &cfg,
        &opts(vec![orig_path, inj_path], &tmp.path().join("with")),
    )?;
    assert_balanced(&with);
    let kept_alone: HashSet<String> = all_docs(&tmp.path().join("alone"))?
        .into_iter()
        .map(|d| d.id)
        .collect();
    let kept_with: HashSet<String> = all_docs(&tmp.path().join("with"))?
        .into_iter()
        .map(|d| d.id)
        .collect();
    let copies_kept = kept_with
        .iter()
        .filter(|id| id.starts_with("copy-"))
        .count();
    let originals_lost = kept_alone.difference(&kept_with).count();
    let removed = 1.0 - copies_kept as f64 / 200.0;
    let lost = originals_lost as f64 / alone.docs_out as f64;
    println!(
        "injected copies removed: {removed:.3}; original documents lost: {lost:.4} ({originals_lost} of {})",
        alone.docs_out
    );
    assert!(removed >= 0.95, "only {removed} of the copies removed");
    assert!(lost < 0.01, "{originals_lost} originals lost");
    Ok(())
}

#[test]
fn output_is_the_same_whatever_the_thread_count() -> Result<()> {
    let en = common::data("fortunes");
    let tmp = tempfile::tempdir()?;
    let mut texts = Vec::new();
    for threads in [1, 2, 3] {
        let cfg = Config {
            threads,
            ..Config::default()
        };
        let out = tmp.path().join(format!("t{threads}"));
        build(&cfg, &opts(vec![en.clone()], &out))?;
        let mut manifest = duet_corpus::Manifest::load(&out)?;
        manifest.config.threads = 0;
        texts.push((
            all_docs(&out)?,
            manifest,
            std::fs::read(out.join("dedup/signatures.bin"))?,
        ));
    }
    assert!(
        texts.windows(2).all(|w| w[0] == w[1]),
        "outputs differ across thread counts"
    );
    Ok(())
}

#[test]
fn sharded_runs_merge_into_one_deduplicated_corpus() -> Result<()> {
    let en = common::data("fortunes");
    let tmp = tempfile::tempdir()?;
    let cfg = Config::default();
    let full = build(&cfg, &opts(vec![en.clone()], &tmp.path().join("full")))?;
    let mut parts = Vec::new();
    for k in 0..2 {
        let mut o = opts(vec![en.clone()], &tmp.path().join(format!("part{k}")));
        o.shard = Some(duet_corpus::ShardSpec { index: k, count: 2 });
        build(&cfg, &o)?;
        parts.push(o.out);
    }
    let merged = duet_corpus::merge(&duet_corpus::MergeOptions {
        parts,
        out: tmp.path().join("merged"),
        force: false,
        progress: indicatif::ProgressBar::hidden(),
    })?;
    assert_balanced(&merged);
    assert_eq!(merged.docs_in, full.docs_in);
    let diff = (merged.docs_out as f64 - full.docs_out as f64).abs() / full.docs_out as f64;
    assert!(
        diff < 0.01,
        "merged keeps {} vs {} in one run",
        merged.docs_out,
        full.docs_out
    );
    let docs = all_docs(&tmp.path().join("merged"))?;
    let mut seen = HashSet::new();
    for d in &docs {
        assert!(
            seen.insert(duet_corpus::dedup::exact_key(&d.text)),
            "exact duplicate {} survived the merge",
            d.id
        );
    }
    assert!(
        merged
            .dropped
            .get("dedup.exact")
            .is_some_and(|d| d.count > 0)
    );
    Ok(())
}

#[test]
fn dedup_against_an_earlier_corpus_removes_what_it_holds() -> Result<()> {
    let en = common::data("fortunes");
    let tmp = tempfile::tempdir()?;
    let cfg = Config::default();
    let first = tmp.path().join("first");
    build(
        &cfg,
        &opts(vec![en.join("art"), en.join("computers")], &first),
    )?;
    let earlier: HashSet<u64> = all_docs(&first)?
        .iter()
        .map(|d| duet_corpus::dedup::exact_key(&d.text))
        .collect();
    let mut o = opts(vec![en.clone()], &tmp.path().join("second"));
    o.dedup_against = vec![first];
    let r = build(&cfg, &o)?;
    assert_balanced(&r);
    let again: Vec<Document> = all_docs(&o.out)?
        .into_iter()
        .filter(|d| earlier.contains(&duet_corpus::dedup::exact_key(&d.text)))
        .collect();
    assert!(
        again.is_empty(),
        "{} documents of the earlier corpus came back",
        again.len()
    );
    assert!(r.dropped["dedup.earlier_corpus"].count as usize >= earlier.len());
    let m = duet_corpus::Manifest::load(&o.out)?;
    assert_eq!(m.dedup_against.len(), 1);
    Ok(())
}

#[test]
fn decontamination_drops_documents_that_overlap_an_evaluation_set() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("docs.jsonl");
    let leak =
        "the quick brown fox jumps over the lazy dog near the river bank every single morning";
    std::fs::write(
        &input,
        format!(
            "{}\n{}\n",
            serde_json::json!({"id": "a", "text": format!("A blog post. {leak}. The end of the post.")}),
            serde_json::json!({"id": "b", "text": "An unrelated document about cooking rice and beans for dinner tonight."})
        ),
    )?;
    let eval = tmp.path().join("eval.txt");
    std::fs::write(&eval, leak)?;
    let mut o = opts(vec![input], &tmp.path().join("out"));
    o.decontaminate = vec![eval];
    let r = build(&Config::default(), &o)?;
    assert_eq!(r.dropped["decontaminated"].count, 1);
    assert_eq!(r.dropped["decontaminated"].examples[0].id, "a");
    assert_eq!(r.docs_out, 1);
    Ok(())
}

#[test]
fn malformed_records_are_counted_or_fatal_when_strict() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("bad.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"A perfectly fine first document with words.\"}\n{not json\n{\"body\": \"no text field\"}\n",
    )?;
    let r = build(
        &Config::default(),
        &opts(vec![input.clone()], &tmp.path().join("out")),
    )?;
    assert_balanced(&r);
    let m = &r.dropped["malformed"];
    assert_eq!(m.count, 2);
    assert!(
        m.examples[0].detail.starts_with("line 2: invalid JSON"),
        "{}",
        m.examples[0].detail
    );
    assert!(
        m.examples[1].detail.contains("missing text field \"text\""),
        "{}",
        m.examples[1].detail
    );
    let mut strict = opts(vec![input], &tmp.path().join("strict"));
    strict.strict = true;
    let err = build(&Config::default(), &strict).unwrap_err().to_string();
    assert!(
        err.contains("bad.jsonl#1") && err.contains("line 2"),
        "{err}"
    );
    assert!(!strict.out.join("manifest.json").exists());
    Ok(())
}

#[test]
fn an_existing_output_is_refused_without_force() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("a.txt");
    std::fs::write(
        &input,
        "Some text that is long enough to be kept as a document.",
    )?;
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("precious.txt"), "keep me")?;
    let mut o = opts(vec![input], &out);
    o.force = false;
    let err = build(&Config::default(), &o).unwrap_err().to_string();
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("precious.txt"))?,
        "keep me"
    );
    Ok(())
}

#[test]
fn report_lists_three_examples_per_reason_and_every_language() -> Result<()> {
    let zh = common::data("fortunes-zh");
    let tmp = tempfile::tempdir()?;
    let r = build(&Config::default(), &opts(vec![zh], tmp.path()))?;
    assert_balanced(&r);
    let json: Report = serde_json::from_slice(&std::fs::read(tmp.path().join("report.json"))?)?;
    assert_eq!(json, r);
    let md = std::fs::read_to_string(tmp.path().join("report.md"))?;
    assert!(md.contains(&format!(
        "{} read = {} kept + {} dropped.",
        r.docs_in,
        r.docs_out,
        r.total_dropped()
    )));
    for d in r.dropped.values() {
        assert_eq!(d.examples.len() as u64, d.count.min(3));
    }
    let langs: BTreeMap<_, _> = r.languages.clone();
    assert!(langs["zh"] as f64 > 0.95 * r.docs_out as f64, "{langs:?}");
    Ok(())
}
