//! End-to-end tests of the `duet` binary: run it in a temp dir and read what it wrote.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::Result;

fn duet(args: &[&str], dir: &Path) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_duet"))
        .args(args)
        .current_dir(dir)
        .output()?)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A small mixed input: fortunes, an HTML page, JSONL with a bad line, a CSV.
fn fixture(dir: &Path) -> Result<()> {
    let input = dir.join("input");
    std::fs::create_dir_all(&input)?;
    let mut fortunes = String::new();
    for i in 0..60 {
        fortunes += &format!(
            "Fortune number {i}: the early bird gets the worm, but the second mouse gets the cheese {}.\n%\n",
            i * 7
        );
    }
    fortunes += "床前明月光，疑是地上霜。举头望明月，低头思故乡。\n%\n";
    std::fs::write(input.join("quotes"), fortunes)?;
    std::fs::write(
        input.join("page.html"),
        "<html><head><title>T</title><script>track()</script></head><body><nav><a href=/>Home</a></nav>\
         <main><h1>Heading</h1><p>The main text of the page is what a reader came for, and it stays.</p></main>\
         <footer>Copyright</footer></body></html>",
    )?;
    std::fs::write(
        input.join("chat.jsonl"),
        "{\"id\":\"c1\",\"text\":\"Please write to me at someone@example.com about the order.\"}\n{broken\n",
    )?;
    std::fs::write(
        input.join("rows.csv"),
        "label,text\nham,\"Are we still meeting for lunch at noon today, friend?\"\n",
    )?;
    Ok(())
}

#[test]
fn corpus_build_tokenizer_train_and_encode() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    fixture(tmp.path())?;
    let out = duet(
        &[
            "corpus",
            "build",
            "input",
            "--out",
            "corpus",
            "--set",
            "split.valid=0.2",
        ],
        tmp.path(),
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("documents in"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("corpus/report.json"))?)?;
    assert_eq!(report["dropped"]["malformed"]["count"], 1);
    assert_eq!(report["redactions"]["email"], 1);
    let md = std::fs::read_to_string(tmp.path().join("corpus/report.md"))?;
    assert!(md.contains("Every document is accounted for"));
    let out = duet(
        &[
            "tokenizer",
            "train",
            "--corpus",
            "corpus",
            "--vocab-size",
            "400",
            "--out",
            "tok/tokenizer.json",
        ],
        tmp.path(),
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("bytes per token"),
        "{}",
        text(&out.stdout)
    );
    let out = duet(
        &[
            "tokenizer",
            "encode",
            "--corpus",
            "corpus",
            "--tokenizer",
            "tok/tokenizer.json",
            "--out",
            "tokens",
        ],
        tmp.path(),
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(tmp.path().join("tokens/train/tokens-00000.bin").is_file());
    assert!(tmp.path().join("tokens/manifest.json").is_file());
    for kind in ["wordpiece", "unigram"] {
        let o = format!("tok/{kind}.json");
        let out = duet(
            &[
                "tokenizer",
                "train",
                "--corpus",
                "corpus",
                "--kind",
                kind,
                "--vocab-size",
                "300",
                "--out",
                &o,
            ],
            tmp.path(),
        )?;
        assert!(out.status.success(), "{kind}: {}", text(&out.stderr));
    }
    Ok(())
}

#[test]
fn errors_name_the_problem_and_exit_with_2() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    fixture(tmp.path())?;
    let out = duet(
        &[
            "corpus",
            "build",
            "input",
            "--out",
            "c",
            "--set",
            "dedup.threshhold=0.3",
        ],
        tmp.path(),
    )?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("threshhold"),
        "{}",
        text(&out.stderr)
    );
    let out = duet(
        &["corpus", "build", "missing-dir", "--out", "c"],
        tmp.path(),
    )?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("missing-dir"),
        "{}",
        text(&out.stderr)
    );
    std::fs::create_dir_all(tmp.path().join("taken"))?;
    std::fs::write(tmp.path().join("taken/file"), "x")?;
    let out = duet(&["corpus", "build", "input", "--out", "taken"], tmp.path())?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    let out = duet(
        &["corpus", "build", "input", "--out", "c", "--strict"],
        tmp.path(),
    )?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("chat.jsonl#1") && text(&out.stderr).contains("line 2"),
        "{}",
        text(&out.stderr)
    );
    let out = duet(
        &["corpus", "build", "input", "--out", "c2", "--shard", "3/2"],
        tmp.path(),
    )?;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("K/N"), "{}", text(&out.stderr));
    Ok(())
}

#[test]
fn an_interrupted_build_leaves_no_shard_that_looks_finished() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    // Distinct documents (random words), so that de-duplication keeps them and many shards
    // are written.
    let words: Vec<String> = (0..500)
        .map(|i| format!("w{:x}", i * 2654435761u64 % 99991))
        .collect();
    let mut state = 1u64;
    let mut lines = String::new();
    for i in 0..120_000 {
        let text: Vec<&str> = (0..20)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                words[(state >> 33) as usize % words.len()].as_str()
            })
            .collect();
        lines += &format!(
            "{{\"id\":\"d{i}\",\"text\":\"the {} and the end\"}}\n",
            text.join(" ")
        );
    }
    std::fs::write(tmp.path().join("big.jsonl"), lines)?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_duet"))
        .args([
            "corpus",
            "build",
            "big.jsonl",
            "--out",
            "c",
            "--set",
            "output.shard_docs=2000",
            "--set",
            "filters.language.enabled=false",
        ])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    // Kill it while shards are being written: as soon as the first shard has its final name
    // (the next one is then being written), within a bounded wait.
    let train = tmp.path().join("c/train");
    let finished_shards = || -> Vec<String> {
        std::fs::read_dir(&train)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("shard-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while finished_shards().is_empty()
        && std::time::Instant::now() < deadline
        && child.try_wait()?.is_none()
    {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let exited_early = child.try_wait()?;
    child.kill()?;
    child.wait()?;
    assert!(
        exited_early.is_none() && !tmp.path().join("c/manifest.json").exists(),
        "the run ended ({exited_early:?}) before it was killed"
    );
    // Without a finished shard there would be nothing to check.
    let finished = finished_shards();
    assert!(
        !finished.is_empty(),
        "no shard was finished within two minutes"
    );
    for entry in std::fs::read_dir(&train)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("shard-") {
            // A shard under its final name decodes completely: 2,000 whole documents.
            let bytes = std::fs::read(train.join(&name))?;
            let text = zstd::decode_all(&bytes[..])
                .map_err(|e| anyhow::anyhow!("{name} does not decode: {e}"))?;
            assert!(text.ends_with(b"\n"), "{name} is cut short");
            let docs = text.split(|b| *b == b'\n').filter(|l| !l.is_empty());
            for line in docs.clone() {
                serde_json::from_slice::<serde_json::Value>(line)
                    .map_err(|e| anyhow::anyhow!("{name} holds a broken document: {e}"))?;
            }
            assert_eq!(docs.count(), 2000, "{name}");
        } else {
            assert!(name.ends_with(".tmp"), "unexpected file {name}");
        }
    }
    Ok(())
}

/// A small tokenizer (ids below 512, the tiny models' vocabulary) saved as `dir/tokenizer.json`.
fn small_tokenizer(dir: &Path, kind: duet_tokenizer::Kind) -> Result<()> {
    let texts = [
        "the cat sat on the mat",
        "a dog and a cat",
        "the end of the story",
    ]
    .repeat(20);
    let tok = duet_tokenizer::train(texts.iter(), &duet_tokenizer::TrainOptions::new(kind, 300))?;
    tok.save(dir.join("tokenizer.json"), false)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[test]
fn generate_embed_and_inspect_run_on_small_models() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // A decoder: the tiny Llama of the parity fixtures, with a tokenizer that fits it.
    let llama = tmp.path().join("llama");
    std::fs::create_dir_all(&llama)?;
    for f in ["config.json", "model.safetensors", "generation_config.json"] {
        std::fs::copy(
            root.join("testdata/model/tiny-llama").join(f),
            llama.join(f),
        )?;
    }
    small_tokenizer(&llama, duet_tokenizer::Kind::Bpe)?;
    let out = duet(&["inspect", "--model", "llama"], tmp.path())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("llama (Llama family) decoder")
            && s.contains("2 layers, 48 hidden, 4 heads (2 key/value)"),
        "{s}"
    );
    assert!(s.contains("f32: ") && s.contains("BPE"), "{s}");
    let out = duet(
        &[
            "generate",
            "--model",
            "llama",
            "--prompt",
            "the cat",
            "--max-new-tokens",
            "5",
            "--temperature",
            "0",
        ],
        tmp.path(),
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("the cat"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("prompt tokens"),
        "{}",
        text(&out.stderr)
    );
    // Generation from "the cat" under `--regex RE` or `--grammar FILE`, and what follows the
    // prompt, split at spaces.
    let constrained = |flag: &str, value: &str, seed: &str| {
        duet(
            &[
                "generate",
                "--model",
                "llama",
                "--prompt",
                "the cat",
                flag,
                value,
                "--max-new-tokens",
                "40",
                "--seed",
                seed,
            ],
            tmp.path(),
        )
    };
    let after_prompt = |out: &Output| -> Vec<String> {
        text(&out.stdout)
            .trim_end_matches('\n')
            .trim_start_matches("the cat")
            .split(' ')
            .map(str::to_owned)
            .collect()
    };
    // Under a regular expression the output has its form whatever the random model prefers,
    // and generation ends when the match is complete.
    let out = constrained("--regex", " (cat|dog)s? [0-9]{3}", "3")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let parts = after_prompt(&out);
    assert!(
        parts.len() == 3
            && parts[0].is_empty()
            && ["cat", "cats", "dog", "dogs"].contains(&parts[1].as_str())
            && parts[2].len() == 3
            && parts[2].chars().all(|c| c.is_ascii_digit()),
        "{parts:?}"
    );
    assert!(
        text(&out.stderr).contains("finish: Stop"),
        "{}",
        text(&out.stderr)
    );
    // A grammar that cannot compile is an error that says so.
    let out = constrained("--regex", "(unclosed", "3")?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("regular expression"),
        "{}",
        text(&out.stderr)
    );
    // A Lark grammar (llguidance's dialect) works the same way; a broken one names the file.
    std::fs::write(
        tmp.path().join("answer.lark"),
        "start: \" \" answer \" \" NUMBER\nanswer: \"yes\" | \"no\"\nNUMBER: /[0-9]{2}/\n",
    )?;
    std::fs::write(tmp.path().join("broken.lark"), "start: answer\n")?;
    let out = constrained("--grammar", "answer.lark", "5")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let parts = after_prompt(&out);
    assert!(
        parts.len() == 3
            && parts[0].is_empty()
            && ["yes", "no"].contains(&parts[1].as_str())
            && parts[2].len() == 2
            && parts[2].chars().all(|c| c.is_ascii_digit()),
        "{parts:?}"
    );
    let out = constrained("--grammar", "broken.lark", "5")?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("broken.lark"),
        "{}",
        text(&out.stderr)
    );
    // An encoder: the tiny BERT, embedding two lines.
    let bert = tmp.path().join("bert");
    std::fs::create_dir_all(&bert)?;
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(
            root.join("testdata/model/tiny-bert-mlm").join(f),
            bert.join(f),
        )?;
    }
    small_tokenizer(&bert, duet_tokenizer::Kind::Wordpiece)?;
    std::fs::write(tmp.path().join("lines.txt"), "the cat sat\na dog\n")?;
    let out = duet(&["embed", "--model", "bert", "lines.txt"], tmp.path())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let vecs: Vec<Vec<f32>> = text(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()?;
    assert_eq!(vecs.len(), 2);
    assert!(vecs.iter().all(|v| v.len() == 32));
    // `duet inspect | head -0`: the reader is gone before the first line; no panic, exit 0.
    let mut child = Command::new(env!("CARGO_BIN_EXE_duet"))
        .args(["inspect", "--model", "llama"])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    let out = child.wait_with_output()?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"));
    let out = duet(&["inspect", "--model", "missing"], tmp.path())?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("missing"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

/// Synthetic token shards for training tests.
fn token_dir(dir: &Path) -> Result<()> {
    use duet_tokenizer::encode::SplitStats;
    let mut splits = std::collections::BTreeMap::new();
    for (name, n) in [("train", 6000usize), ("valid", 600), ("test", 600)] {
        std::fs::create_dir_all(dir.join(name))?;
        let shard = format!("{name}/tokens-00000.bin");
        let toks: Vec<u32> = (0..n).map(|i| ((i * 31 + i / 7) % 40) as u32).collect();
        let mut w = duet_tokenizer::shard::ShardWriter::create(
            &dir.join(&shard),
            40,
            duet_tokenizer::shard::NO_SEPARATOR,
        )?;
        w.push_doc(&toks, n as u64)?;
        w.finish()?;
        splits.insert(
            name.to_owned(),
            SplitStats {
                docs: 1,
                tokens: n as u64,
                text_bytes: n as u64,
                shards: vec![shard],
                by_lang: Default::default(),
            },
        );
    }
    let m = duet_tokenizer::TokenManifest {
        tokenizer_sha256: "t".into(),
        corpus_manifest_sha256: "c".into(),
        vocab_size: 40,
        width: 2,
        separator: None,
        splits,
    };
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&m)?)?;
    Ok(())
}

/// The lines of a run's `metrics.jsonl` without their timing figures (`*_per_sec`), which no
/// two runs share.
fn metrics_without_timings(run: &Path) -> Result<Vec<serde_json::Value>> {
    std::fs::read_to_string(run.join("metrics.jsonl"))?
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l)?;
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, _| !k.ends_with("_per_sec"));
            }
            Ok(v)
        })
        .collect()
}

/// Catches: `--resume` starting again from step 0, or from the checkpoint's weights without its
/// optimizer, data or dropout state: the resumed run must log the steps after the checkpoint's
/// and end with exactly the metrics of an uninterrupted run with the same seed.
#[test]
fn a_training_run_killed_with_sigkill_resumes_from_its_last_checkpoint() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    token_dir(&tmp.path().join("tok"))?;
    const STEPS: u64 = 300;
    let max_steps = STEPS.to_string();
    let args = |out: &'static str| -> Vec<&str> {
        vec![
            "train",
            "lm",
            "--tokens",
            "tok",
            "--out",
            out,
            "--max-steps",
            &max_steps,
            "--set",
            "model.n_layer=2",
            "--set",
            "model.n_embd=32",
            "--set",
            "model.n_head=2",
            "--set",
            "model.block_size=16",
            "--set",
            "model.dropout=0.1",
            "--set",
            "train.batch_size=4",
            "--set",
            "train.checkpoint_every=10",
            "--set",
            "train.log_every=10",
            "--set",
            "train.eval_every=0",
            "--set",
            "train.keep_checkpoints=3",
        ]
    };
    // The same run, uninterrupted.
    let out = duet(&args("straight"), tmp.path())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let straight = metrics_without_timings(&tmp.path().join("straight"))?;
    let steps: Vec<u64> = straight.iter().filter_map(|m| m["step"].as_u64()).collect();
    assert_eq!(steps.first(), Some(&10));
    assert_eq!(steps.last(), Some(&STEPS));

    let mut child = Command::new(env!("CARGO_BIN_EXE_duet"))
        .args(args("run"))
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let ck = tmp.path().join("run/checkpoints");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    // Kill it at an arbitrary moment once a few checkpoints exist (likely mid-write).
    while std::time::Instant::now() < deadline && child.try_wait()?.is_none() {
        let n = std::fs::read_dir(&ck).map(|d| d.count()).unwrap_or(0);
        if n >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    let exited_early = child.try_wait()?;
    child.kill()?;
    child.wait()?;
    assert!(
        exited_early.is_none() && !tmp.path().join("run/final").exists(),
        "the run ended ({exited_early:?}) before it was killed"
    );
    let mut step = 0;
    for e in std::fs::read_dir(&ck)? {
        let p = e?.path();
        if p.join("trainer_state.json").is_file()
            && p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
        {
            let state: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p.join("trainer_state.json"))?)?;
            step = step.max(state["step"].as_u64().unwrap_or(0));
        }
    }
    assert!(
        (10..STEPS).contains(&step),
        "no whole checkpoint left before step {STEPS}: {step}"
    );
    let before = metrics_without_timings(&tmp.path().join("run"))?;

    let mut resume = args("run");
    resume.push("--resume");
    let out = duet(&resume, tmp.path())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resumed = metrics_without_timings(&tmp.path().join("run"))?;
    // 1) The lines up to the checkpoint are kept as the killed run wrote them; the resumed run
    // logs the steps after the checkpoint's, each once, up to the last.
    let kept = before
        .iter()
        .take_while(|m| m["step"].as_u64().is_some_and(|s| s <= step))
        .count();
    assert!(
        kept >= 1 && resumed[..kept] == before[..kept],
        "{resumed:?}"
    );
    let after: Vec<u64> = resumed[kept..]
        .iter()
        .filter_map(|m| m["step"].as_u64())
        .collect();
    let expected: Vec<u64> = (step / 10 + 1..=STEPS / 10).map(|i| i * 10).collect();
    let mut after_steps = after.clone();
    after_steps.dedup(); // the last step has a training and an evaluation line
    assert_eq!(
        after_steps, expected,
        "steps logged after resuming from step {step}"
    );
    // 2) Training is deterministic given the seed (data order, initialisation, dropout masks;
    // CPU kernels that split work the same way every run), so every line, the final
    // evaluation included, equals the uninterrupted run's.
    assert_eq!(resumed.len(), straight.len());
    for (a, b) in resumed.iter().zip(&straight) {
        assert_eq!(a, b, "resumed from step {step} against uninterrupted");
    }
    println!("killed after the checkpoint of step {step}; resumed to step {STEPS}");
    Ok(())
}

/// A labelled CSV with a slice column: two topics told apart by their words.
fn labelled_csv(dir: &Path) -> Result<std::path::PathBuf> {
    let sport = [
        "match", "goal", "team", "league", "striker", "coach", "season",
    ];
    let money = [
        "shares", "market", "bank", "profit", "rates", "investor", "stock",
    ];
    let mut csv = String::from("text,label,source\n");
    for i in 0..60 {
        let (words, label) = if i % 2 == 0 {
            (&sport, "sport")
        } else {
            (&money, "business")
        };
        let text = format!(
            "the {} and the {} were in the news on day {i}",
            words[i % 7],
            words[(i / 2 + 3) % 7]
        );
        let source = if i % 3 == 0 { "wire" } else { "paper" };
        csv += &format!("\"{text}\",{label},{source}\n");
    }
    let path = dir.join("news.csv");
    std::fs::write(&path, csv)?;
    Ok(path)
}

#[test]
fn classify_split_train_eval_predict_and_cross_validate_with_tfidf() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let data = labelled_csv(dir)?;
    let data = data.to_str().unwrap_or_default();

    let out = duet(
        &["eval", "split", "--data", data, "--out", "split.json"],
        dir,
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let split: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("split.json"))?)?;
    let test_ids = split["test"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(test_ids, 12, "20% of 60, stratified: {split}");

    let out = duet(
        &[
            "train",
            "classify",
            "--model",
            "tfidf",
            "--train",
            data,
            "--exclude",
            "split.json",
            "--out",
            "run",
        ],
        dir,
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join("run/final/config.json").is_file());

    let out = duet(
        &[
            "eval",
            "classify",
            "--model",
            "run/final",
            "--data",
            data,
            "--ids",
            "split.json",
            "--out",
            "eval",
            "--slice-by",
            "source",
        ],
        dir,
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("eval/metrics.json"))?)?;
    assert_eq!(m["support"], 12);
    let acc = m["accuracy"].as_f64().unwrap_or(-1.0);
    assert!(acc >= 0.9, "accuracy {acc} on separable topics: {m}");
    let report = std::fs::read_to_string(dir.join("eval/report.md"))?;
    assert!(
        report.contains("wire") && report.contains("paper"),
        "{report}"
    );
    assert!(dir.join("eval/confusion.png").is_file());

    let out = duet(
        &[
            "classify",
            "--model",
            "run/final",
            "the goal of the striker",
        ],
        dir,
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(line["label"], "sport", "{line}");
    let p: f64 = ["sport", "business"]
        .iter()
        .map(|l| line["probs"][l].as_f64().unwrap_or(0.0))
        .sum();
    assert!((p - 1.0).abs() < 1e-5, "probabilities sum to {p}");

    let out = duet(
        &[
            "eval", "classify", "--model", "tfidf", "--data", data, "--folds", "3", "--out", "cv",
        ],
        dir,
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in 0..3 {
        assert!(dir.join(format!("cv/fold-{f}/metrics.json")).is_file());
    }
    let cv: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cv/metrics.json"))?)?;
    assert_eq!(cv["folds"], 3);

    // A bad label field is an error that names it.
    let out = duet(
        &[
            "eval",
            "classify",
            "--model",
            "run/final",
            "--data",
            data,
            "--out",
            "e2",
            "--label-field",
            "topic",
        ],
        dir,
    )?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("topic"), "{}", text(&out.stderr));
    Ok(())
}

/// The Python interpreter with the `openai` client: `DUET_TEST_PYTHON`, or a virtual
/// environment made once under the target directory from `tests/requirements.txt`.
/// Tests share one venv; the first to need it makes it.
static VENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A Python with the packages of tests/requirements.txt (the OpenAI client, rasa-sdk), in a
/// venv under the target directory, made on first use.
fn test_python() -> Result<std::path::PathBuf> {
    if let Ok(p) = std::env::var("DUET_TEST_PYTHON") {
        return Ok(p.into());
    }
    let _guard = VENV.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-python");
    let py = venv.join("bin/python");
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import openai, jsonschema, rasa_sdk"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has(&py) {
        let reqs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/requirements.txt");
        let out = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "python3 -m venv: {}",
            text(&out.stderr)
        );
        let out = Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "-r"])
            .arg(&reqs)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "installing the test packages ({}): {}",
            reqs.display(),
            text(&out.stderr)
        );
    }
    Ok(py)
}

/// Kills the server when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_official_openai_client_works_against_duet_serve() -> Result<()> {
    let python = test_python()?;
    let tmp = tempfile::tempdir()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let llama = tmp.path().join("llama");
    std::fs::create_dir_all(&llama)?;
    for f in ["config.json", "model.safetensors", "generation_config.json"] {
        std::fs::copy(
            root.join("testdata/model/tiny-llama").join(f),
            llama.join(f),
        )?;
    }
    // The end token of the tokenizer trained here (the fixture's id 2 is `"` in it); room for
    // the prompt that describes tools.
    let cfg = std::fs::read_to_string(llama.join("config.json"))?
        .replace(
            "\"max_position_embeddings\": 64",
            "\"max_position_embeddings\": 1024",
        )
        .replace("\"eos_token_id\": 2", "\"eos_token_id\": 0");
    std::fs::write(llama.join("config.json"), cfg)?;
    small_tokenizer(&llama, duet_tokenizer::Kind::Bpe)?;
    let bert = tmp.path().join("bert");
    std::fs::create_dir_all(&bert)?;
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(
            root.join("testdata/model/tiny-bert-mlm").join(f),
            bert.join(f),
        )?;
    }
    small_tokenizer(&bert, duet_tokenizer::Kind::Wordpiece)?;
    let (server, line) = start(
        Command::new(env!("CARGO_BIN_EXE_duet"))
            .args([
                "serve",
                "--model",
                "tiny=llama",
                "--model",
                "emb=bert",
                "--port",
                "0",
                "--api-key",
                "test-key",
            ])
            .current_dir(tmp.path()),
        "http://",
    )?;
    let url = url_in(&line)?;
    assert!(
        line.contains("tiny (generator)") && line.contains("emb (embeddings)"),
        "{line}"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let out = Command::new(&python)
        .arg(&script)
        .args([url.as_str(), "test-key", "tiny", "emb"])
        .output()?;
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("all checks passed"));
    drop(server);
    Ok(())
}

/// A tiny encoder directory: the 2-layer `tiny-bert-tok` weights with a WordPiece tokenizer
/// over `words` (ids below its 512-entry vocabulary).
fn tiny_encoder(dir: &Path, words: &[&str]) -> Result<std::path::PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/model/tiny-bert-tok");
    let enc = dir.join("encoder");
    std::fs::create_dir_all(&enc)?;
    std::fs::copy(src.join("model.safetensors"), enc.join("model.safetensors"))?;
    std::fs::copy(src.join("config.json"), enc.join("config.json"))?;
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut vocab = serde_json::Map::new();
    for (i, w) in specials.iter().chain(words).chain([&"."]).enumerate() {
        vocab.insert((*w).to_owned(), i.into());
    }
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| serde_json::json!({"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab},
    });
    std::fs::write(enc.join("tokenizer.json"), serde_json::to_string(&tok)?)?;
    Ok(enc)
}

#[test]
fn train_tokens_from_rasa_yaml_then_evaluate_and_extract_entities() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let cities = ["berlin", "paris", "london", "rome", "madrid", "oslo"];
    let days = ["monday", "friday", "sunday"];
    let other = [
        "fly", "to", "i", "want", "a", "ticket", "for", "on", "please", "book", "flight", "go",
    ];
    let words: Vec<&str> = cities.iter().chain(&days).chain(&other).copied().collect();
    let enc = tiny_encoder(dir, &words)?;
    // Training, validation and test sentences are disjoint: each set has its own sentence
    // shapes and city-day pairs, so a tagger that learnt where entities sit in the training
    // sentences, rather than which words they are, fails the test set.
    let nlu = |examples: &[String]| {
        let mut yml = String::from("version: \"3.1\"\nnlu:\n- intent: book\n  examples: |\n");
        for e in examples {
            yml += &format!("    - {e}\n");
        }
        yml
    };
    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for (i, c) in cities.iter().enumerate() {
        let day = |j: usize| days[(i + j) % days.len()];
        train.push(format!("fly to [{c}](city)"));
        train.push(format!(
            "i want a ticket to [{c}](city) on [{}](day) please",
            day(0)
        ));
        train.push(format!(
            "book a flight to [{c}]{{\"entity\": \"city\"}} for [{}](day)",
            day(1)
        ));
        train.push(format!("on [{}](day) i want to go to [{c}](city)", day(2)));
        train.push(format!("[{c}](city) on [{}](day)", day(0)));
        train.push(format!("please book [{c}](city)"));
        train.push(format!("[{}](day) fly to [{c}](city)", day(1)));
        let d = days[(i + 2) % days.len()];
        valid.push(format!(
            "please book a ticket for [{d}](day) to [{c}](city)"
        ));
        let d = days[(i + 1) % days.len()];
        test.push(format!("i want to fly to [{c}](city) on [{d}](day)"));
        test.push(format!("please go to [{c}](city) for [{d}](day)"));
        test.push(format!("[{d}](day) a flight to [{c}](city) please"));
    }
    std::fs::write(dir.join("train.yml"), nlu(&train))?;
    std::fs::write(dir.join("valid.yml"), nlu(&valid))?;
    std::fs::write(dir.join("test.yml"), nlu(&test))?;
    let out = duet(
        &[
            "train",
            "tokens",
            "--model",
            enc.to_str().unwrap_or_default(),
            "--train",
            "train.yml",
            "--valid",
            "valid.yml",
            "--out",
            "run",
            "--epochs",
            "25",
            "--set",
            "train.lr=0.005",
            "--set",
            "train.batch_size=8",
            "--set",
            "model.dropout=0.0",
            "--set",
            "model.max_length=16",
        ],
        dir,
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("run/final/config.json"))?)?;
    assert_eq!(cfg["architectures"][0], "BertForTokenClassification");
    assert_eq!(cfg["id2label"]["1"], "B-city", "{cfg}");
    assert!(dir.join("run/final/tokenizer.json").is_file());

    // Scored on the held-out sentences.
    let out = duet(
        &[
            "eval",
            "tokens",
            "--model",
            "run/final",
            "--data",
            "test.yml",
            "--out",
            "eval",
        ],
        dir,
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("eval/metrics.json"))?)?;
    assert_eq!(m["entities"], 36, "{m}");
    assert!(m["per_type"]["day"]["support"] == 18, "{m}");
    let f1 = m["f1"].as_f64().unwrap_or(-1.0);
    assert!(f1 >= 0.9, "entity F1 {f1} on held-out sentences: {m}");
    println!("entity F1 {f1:.3} on held-out sentences");

    let out = duet(
        &[
            "extract",
            "entities",
            "--model",
            "run/final",
            "Please fly to Madrid on Friday.",
        ],
        dir,
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let found: Vec<_> = line["entities"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["entity"].as_str(),
                        e["value"].as_str(),
                        e["start"].as_u64(),
                        e["end"].as_u64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        found,
        [
            (Some("city"), Some("Madrid"), Some(14), Some(20)),
            (Some("day"), Some("Friday"), Some(24), Some(30))
        ],
        "{line}"
    );

    let bad = duet(
        &[
            "train",
            "tokens",
            "--model",
            enc.to_str().unwrap_or_default(),
            "--train",
            "missing.conll",
        ],
        dir,
    )?;
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("missing.conll"),
        "{}",
        text(&bad.stderr)
    );
    Ok(())
}

/// One HTTP/1.1 request with `Connection: close`; the status and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Chunked bodies: keep the JSON between the chunk sizes.
    let body = if head.to_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut r = rest;
        while let Some((size, tail)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            r = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        rest.to_owned()
    };
    Ok((status, body))
}

/// Starts `duet dialog serve` on a free port; the process and its address.
fn dialog_server(project: &Path) -> Result<(Killed, String)> {
    dialog_server_with(project, &[])
}

/// Starts `duet dialog serve` on a free port with more arguments.
fn dialog_server_with(project: &Path, extra: &[&str]) -> Result<(Killed, String)> {
    let (server, line) = start(
        Command::new(env!("CARGO_BIN_EXE_duet"))
            .args(["dialog", "serve", "--port", "0", "--project"])
            .arg(project)
            .args(extra),
        "http://",
    )?;
    Ok((server, host_port(&url_in(&line)?)))
}

/// Starts `cmd` (the duet binary with its arguments) with standard output piped and reads it up
/// to the first line that contains `marker`: the process, killed when dropped, and that line.
fn start(cmd: &mut Command, marker: &str) -> Result<(Killed, String)> {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let out = child.stdout.take();
    let child = Killed(child);
    if let Some(out) = out {
        let mut lines = std::io::BufReader::new(out).lines();
        while let Some(line) = lines.next() {
            let line = line?;
            if line.contains(marker) {
                // Keep reading: a server may print more after its marker, and its writes must
                // not meet a closed pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return Ok((child, line));
            }
        }
    }
    anyhow::bail!("the server printed no line with {marker:?}")
}

/// The first `http://` URL in `line`.
fn url_in(line: &str) -> Result<String> {
    Ok(line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .ok_or_else(|| anyhow::anyhow!("no URL in {line:?}"))?
        .to_owned())
}

/// `host:port` of an `http://` URL.
fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn say(addr: &str, sender: &str, message: &str) -> Result<String> {
    let body = serde_json::json!({"sender": sender, "message": message}).to_string();
    let (status, reply) = http(addr, "POST", "/webhooks/rest/webhook", &body)?;
    anyhow::ensure!(status == 200, "{status}: {reply}");
    let msgs: Vec<serde_json::Value> = serde_json::from_str(&reply)?;
    for m in &msgs {
        anyhow::ensure!(
            m["recipient_id"] == sender,
            "a reply for {sender} went to {m}"
        );
    }
    Ok(msgs
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect::<Vec<_>>()
        .join(" / "))
}

#[test]
fn dialog_server_keeps_conversations_across_kill_9_and_serves_many_at_once() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/customer-service");
    let project = tmp.path().join("shop");
    copy_example(&src, &project)?;
    let p = project.to_str().unwrap_or_default();
    let out = duet(&["dialog", "train", "--project", p], tmp.path())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = duet(&["dialog", "test", "--project", p], tmp.path())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("stories: 22 passed, 0 failed"),
        "{}",
        text(&out.stdout)
    );

    // Mid-form, the server is killed (SIGKILL) and started again: the form goes on.
    let (server, addr) = dialog_server(&project)?;
    assert!(say(&addr, "u1", "where is my order?")?.contains("order number"));
    assert!(say(&addr, "u1", "ORD-12345")?.contains("email"));
    drop(server);
    let (_server, addr) = dialog_server(&project)?;
    let done = say(&addr, "u1", "jane@example.com")?;
    assert!(
        done.contains("Order ORD-12345 for jane@example.com"),
        "{done}"
    );
    let (status, tracker) = http(&addr, "GET", "/conversations/u1/tracker", "")?;
    assert_eq!(status, 200);
    let t: serde_json::Value = serde_json::from_str(&tracker)?;
    assert_eq!(t["slots"]["order_id"], "ORD-12345");
    assert!(t["active_loop"]["name"].is_null(), "{}", t["active_loop"]);

    // 100 conversations at once, each with its own order number: no reply crosses over.
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || -> Result<()> {
                let who = format!("c{i}");
                let id = format!("ORD-{:05}", 20000 + i);
                say(&addr, &who, "hi")?;
                say(&addr, &who, "track my order")?;
                say(&addr, &who, &id)?;
                let done = say(&addr, &who, &format!("{who}@example.com"))?;
                anyhow::ensure!(
                    done.contains(&id) && done.contains(&format!("{who}@example.com")),
                    "{who}: {done}"
                );
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
    }

    // Bad requests: a clear 400, and the server keeps serving.
    let (status, body) = http(
        &addr,
        "POST",
        "/webhooks/rest/webhook",
        r#"{"message": "hi"}"#,
    )?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sender"), "{body}");
    let (status, body) = http(&addr, "POST", "/webhooks/rest/webhook", "{not json")?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = http(
        &addr,
        "POST",
        "/model/parse",
        r#"{"text": "where is my order ORD-12345"}"#,
    )?;
    assert_eq!(status, 200);
    let parsed: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(parsed["intent"]["name"], "order_status", "{parsed}");
    assert_eq!(parsed["entities"][0]["value"], "ORD-12345", "{parsed}");
    assert!(say(&addr, "u2", "hello")?.contains("I can"));
    Ok(())
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[test]
fn custom_actions_run_on_a_real_rasa_sdk_action_server() -> Result<()> {
    let python = test_python()?;
    let tmp = tempfile::tempdir()?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dialog/sdk");
    let project = tmp.path().join("sdk");
    for sub in ["", "data", "actions"] {
        std::fs::create_dir_all(project.join(sub))?;
        for e in std::fs::read_dir(src.join(sub))? {
            let p = e?.path();
            if p.is_file() {
                std::fs::copy(
                    &p,
                    project.join(sub).join(p.file_name().unwrap_or_default()),
                )?;
            }
        }
    }
    let port = free_port()?;
    std::fs::write(
        project.join("endpoints.yml"),
        format!("action_endpoint:\n  url: \"http://127.0.0.1:{port}/webhook\"\n"),
    )?;
    let sdk = Killed(
        Command::new(&python)
            .args(["-m", "rasa_sdk", "--actions", "actions", "--port"])
            .arg(port.to_string())
            .current_dir(&project)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let sdk_addr = format!("127.0.0.1:{port}");
    let start = std::time::Instant::now();
    while !http(&sdk_addr, "GET", "/health", "").is_ok_and(|(s, _)| s == 200) {
        anyhow::ensure!(
            start.elapsed().as_secs() < 60,
            "the action server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let p = project.to_str().unwrap_or_default();
    let out = duet(&["dialog", "train", "--project", p], tmp.path())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_server, addr) = dialog_server(&project)?;

    let reply = say(&addr, "shopper", "is the laptop in stock?")?;
    assert_eq!(
        reply,
        "The laptop is in stock (asked by shopper). / Anything else?"
    );
    let (_, tracker) = http(&addr, "GET", "/conversations/shopper/tracker", "")?;
    let t: serde_json::Value = serde_json::from_str(&tracker)?;
    assert_eq!(t["slots"]["in_stock"], true, "{}", t["slots"]);
    assert!(
        t["events"].as_array().is_some_and(|e| e
            .iter()
            .any(|e| e["event"] == "action" && e["name"] == "action_check_stock")),
        "{tracker}"
    );
    assert!(say(&addr, "shopper", "do you have the tablet")?.starts_with("The tablet is sold out"));

    // The action server goes away: the request still gets an answer and the server lives on.
    drop(sdk);
    let (status, body) = http(
        &addr,
        "POST",
        "/webhooks/rest/webhook",
        r#"{"sender": "shopper", "message": "is the phone in stock?"}"#,
    )?;
    assert_eq!(status, 200, "{body}");
    assert!(say(&addr, "shopper", "hello")?.contains("in stock"));
    Ok(())
}

#[test]
fn questions_nobody_foresaw_go_to_the_language_model_through_the_openai_api() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let llama = tmp.path().join("llama");
    std::fs::create_dir_all(&llama)?;
    for f in ["config.json", "model.safetensors", "generation_config.json"] {
        std::fs::copy(
            root.join("testdata/model/tiny-llama").join(f),
            llama.join(f),
        )?;
    }
    let cfg = std::fs::read_to_string(llama.join("config.json"))?
        .replace(
            "\"max_position_embeddings\": 64",
            "\"max_position_embeddings\": 512",
        )
        .replace("\"eos_token_id\": 2", "\"eos_token_id\": 0");
    std::fs::write(llama.join("config.json"), cfg)?;
    small_tokenizer(&llama, duet_tokenizer::Kind::Bpe)?;
    let (lm, line) = start(
        Command::new(env!("CARGO_BIN_EXE_duet"))
            .args([
                "serve",
                "--model",
                "tiny=llama",
                "--port",
                "0",
                "--api-key",
                "lm-key",
            ])
            .current_dir(tmp.path()),
        "http://",
    )?;
    let lm_url = url_in(&line)?;
    let lm_addr = host_port(&lm_url);

    let project = tmp.path().join("bot");
    std::fs::create_dir_all(project.join("data"))?;
    std::fs::write(
        project.join("domain.yml"),
        "intents:\n  - greet\n  - goodbye\nresponses:\n  utter_greet:\n    - text: Hello!\n  utter_goodbye:\n    - text: Bye!\n  utter_default:\n    - text: Sorry, I can't help with that right now.\n",
    )?;
    std::fs::write(
        project.join("data/nlu.yml"),
        "nlu:\n- intent: greet\n  examples: |\n    - hi\n    - hello\n    - hey\n    - good morning\n- intent: goodbye\n  examples: |\n    - bye\n    - goodbye\n    - see you\n    - good night\n",
    )?;
    std::fs::write(
        project.join("data/rules.yml"),
        "rules:\n- rule: greet\n  steps:\n  - intent: greet\n  - action: utter_greet\n- rule: bye\n  steps:\n  - intent: goodbye\n  - action: utter_goodbye\n",
    )?;
    std::fs::write(
        project.join("config.yml"),
        "pipeline:\n  - name: FallbackClassifier\n    threshold: 0.9\npolicies:\n  - name: RulePolicy\n",
    )?;
    // Greedy: without a seed the server samples afresh on every request, and a random tiny
    // model sometimes answers nothing (then the assistant rightly says utter_default).
    std::fs::write(
        project.join("endpoints.yml"),
        format!(
            "llm:\n  url: \"{lm_url}\"\n  model: tiny\n  api_key_env: DUET_TEST_LM_KEY\n  max_tokens: 8\n  temperature: 0\n  timeout: 5\n  retries: 1\n"
        ),
    )?;
    let p = project.to_str().unwrap_or_default();
    let out = duet(&["dialog", "train", "--project", p], tmp.path())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_dm, line) = start(
        Command::new(env!("CARGO_BIN_EXE_duet"))
            .args(["dialog", "serve", "--port", "0", "--project", p])
            .env("DUET_TEST_LM_KEY", "lm-key"),
        "http://",
    )?;
    let addr = host_port(&url_in(&line)?);

    assert_eq!(say(&addr, "q", "hello")?, "Hello!");
    let answer = say(
        &addr,
        "q",
        "what is the capital of the moon, my mail is ada@example.com",
    )?;
    assert!(
        !answer.is_empty() && !answer.contains("Sorry"),
        "{answer:?}"
    );
    let (_, tracker) = http(&addr, "GET", "/conversations/q/tracker", "")?;
    let t: serde_json::Value = serde_json::from_str(&tracker)?;
    let events = t["events"].as_array().cloned().unwrap_or_default();
    assert!(
        events.iter().any(|e| e["event"] == "bot"
            && e["data"]["source"] == "llm"
            && e["data"]["model"] == "tiny"),
        "{tracker}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "action" && e["name"] == "action_llm_fallback")
    );
    let (_, metrics) = http(&lm_addr, "GET", "/metrics", "")?;
    assert!(
        metrics.contains("chat"),
        "the LM server saw the request: {metrics}"
    );

    // The streaming channel: pieces of the model's answer arrive before the whole message.
    let (status, sse) = http(
        &addr,
        "POST",
        "/webhooks/rest/stream",
        r#"{"sender": "q", "message": "why is the sky made of cheese"}"#,
    )?;
    assert_eq!(status, 200, "{sse}");
    let mut events: Vec<(String, serde_json::Value)> = Vec::new();
    for block in sse.split("\n\n") {
        let mut event = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_owned();
            }
            if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim());
            }
        }
        if !event.is_empty() {
            events.push((event, serde_json::from_str(&data).unwrap_or_default()));
        }
    }
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    let first_message = kinds.iter().position(|k| *k == "message");
    assert!(
        kinds.first() == Some(&"delta") && first_message.is_some(),
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"done"), "{kinds:?}");
    let streamed: String = events
        .iter()
        .filter(|(e, _)| e == "delta")
        .filter_map(|(_, d)| d["text"].as_str())
        .collect();
    let message = &events[first_message.unwrap_or(0)].1;
    assert_eq!(
        message["text"].as_str(),
        Some(streamed.trim()),
        "{events:?}"
    );

    // The model goes away: the configured fallback arrives within the timeout.
    drop(lm);
    let start = std::time::Instant::now();
    let answer = say(&addr, "q", "tell me a story about dragons")?;
    assert_eq!(answer, "Sorry, I can't help with that right now.");
    assert!(start.elapsed().as_secs_f64() < 6.0, "{:?}", start.elapsed());
    Ok(())
}

/// `node` with playwright-core (from npm) under the target directory, installed on first use.
fn node_with_playwright() -> Result<std::path::PathBuf> {
    let _guard = VENV.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-node");
    if !dir.join("node_modules/playwright-core").is_dir() {
        std::fs::create_dir_all(&dir)?;
        let out = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg("playwright-core@1.64")
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "npm install playwright-core: {}",
            text(&out.stderr)
        );
    }
    Ok(dir)
}

/// Runs the playwright script `tests/NAME` in headless Chromium (Debian's chromium, which
/// `scripts/test.sh` installs) against the server at `addr`; its standard output, or an error with both
/// streams when it fails.
fn browser_script(name: &str, addr: &str) -> Result<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    anyhow::ensure!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: install Debian's chromium (scripts/test.sh does)"
    );
    let node_dir = node_with_playwright()?;
    let local = node_dir.join(name);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(name),
        &local,
    )?;
    let out = Command::new("node")
        .arg(&local)
        .arg(format!("http://{addr}"))
        .env("CHROMIUM", &chromium)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{name}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(text(&out.stdout))
}

#[test]
fn the_web_chat_works_in_headless_chromium() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/customer-service");
    let project = tmp.path().join("shop");
    copy_example(&src, &project)?;
    let p = project.to_str().unwrap_or_default();
    let out = duet(&["dialog", "train", "--project", p], tmp.path())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_server, addr) = dialog_server(&project)?;
    let stdout = browser_script("webchat.mjs", &addr)?;
    assert!(stdout.contains("all checks passed"), "{stdout}");
    Ok(())
}

/// A throwaway PostgreSQL server (Debian's postgresql package, which `scripts/test.sh` installs) in a
/// temporary folder, stopped when dropped; run as the `postgres` user when the test is root.
struct Postgres {
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    root: bool,
    url: String,
    _dir: tempfile::TempDir,
}

impl Postgres {
    fn run(&self, args: &[&str]) -> Result<std::process::Output> {
        let mut c = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]);
            c
        } else {
            Command::new(self.bin.join(args[0]))
        };
        if self.root {
            c.arg(self.bin.join(args[0]));
        }
        Ok(c.args(&args[1..]).output()?)
    }

    fn start() -> Result<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| {
                anyhow::anyhow!("PostgreSQL is not installed (scripts/test.sh installs it): {e}")
            })?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").is_file())
            .max()
            .ok_or_else(|| anyhow::anyhow!("no initdb under /usr/lib/postgresql"))?;
        let root = Command::new("id")
            .arg("-u")
            .output()?
            .stdout
            .starts_with(b"0");
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        if root {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?
                .success();
            anyhow::ensure!(ok, "chown postgres failed");
        }
        let port = free_port()?;
        let pg = Self {
            bin,
            data: data.clone(),
            root,
            url: format!("postgres://duet@127.0.0.1:{port}/postgres"),
            _dir: dir,
        };
        let d = data.to_str().unwrap_or_default();
        let out = pg.run(&["initdb", "-D", d, "-A", "trust", "-U", "duet"])?;
        anyhow::ensure!(out.status.success(), "initdb: {}", text(&out.stderr));
        let opts = format!("-p {port} -k {d} -c listen_addresses=127.0.0.1");
        let log = format!("{d}/log");
        let out = pg.run(&["pg_ctl", "-D", d, "-o", &opts, "-l", &log, "-w", "start"])?;
        anyhow::ensure!(
            out.status.success(),
            "pg_ctl start: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        Ok(pg)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let d = self.data.to_str().unwrap_or_default().to_owned();
        let _ = self.run(&["pg_ctl", "-D", &d, "-m", "immediate", "stop"]);
    }
}

#[test]
fn two_dialog_servers_share_conversations_through_postgresql() -> Result<()> {
    let pg = Postgres::start()?;
    let tmp = tempfile::tempdir()?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/customer-service");
    let project = tmp.path().join("shop");
    copy_example(&src, &project)?;
    let p = project.to_str().unwrap_or_default();
    let out = duet(&["dialog", "train", "--project", p], tmp.path())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store = ["--tracker-store", pg.url.as_str()];
    let (_a, one) = dialog_server_with(&project, &store)?;
    let (_b, two) = dialog_server_with(&project, &store)?;
    // One conversation, its turns alternating between the two servers.
    assert!(say(&one, "shared", "I want to return something")?.contains("order number"));
    assert!(say(&two, "shared", "ORD-24680")?.contains("Which product"));
    assert!(say(&one, "shared", "the keyboard")?.contains("Why are you returning"));
    let done = say(&two, "shared", "it was broken")?;
    assert!(
        done.contains("keyboard") && done.contains("ORD-24680") && done.contains("damaged"),
        "{done}"
    );
    for addr in [&one, &two] {
        let (_, tracker) = http(addr, "GET", "/conversations/shared/tracker", "")?;
        let t: serde_json::Value = serde_json::from_str(&tracker)?;
        assert_eq!(t["slots"]["order_id"], "ORD-24680");
        assert_eq!(t["slots"]["product"], "keyboard");
        assert_eq!(t["slots"]["return_reason"], "damaged");
    }
    Ok(())
}

/// Copies the customer-service example's YAML files and services (not its models, results or
/// knowledge base, whose embedding model is not at the relative path in a copy).
fn copy_example(src: &Path, project: &Path) -> Result<()> {
    for sub in ["", "data", "tests", "services"] {
        std::fs::create_dir_all(project.join(sub))?;
        for e in std::fs::read_dir(src.join(sub))? {
            let p = e?.path();
            if p.is_file() && (sub == "services" || p.extension().is_some_and(|x| x == "yml")) {
                std::fs::copy(
                    &p,
                    project.join(sub).join(p.file_name().unwrap_or_default()),
                )?;
            }
        }
    }
    Ok(())
}

/// `duet quickstart --tiny`: every stage runs, a second run reuses them all, and served, the
/// web chat answers through the form, the knowledge base and the GPT on one port.
#[test]
fn quickstart_trains_reuses_and_serves_everything_on_one_port() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("qs");
    let examples = root.join("examples");
    let encoder = root.join("data/external/minilm");
    let base = [
        "quickstart",
        "--tiny",
        "--dir",
        dir.to_str().unwrap_or_default(),
        "--examples",
        examples.to_str().unwrap_or_default(),
        "--encoder",
        encoder.to_str().unwrap_or_default(),
    ];
    let mut no_serve = base.to_vec();
    no_serve.push("--no-serve");
    let out = duet(&no_serve, tmp.path())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("(0 reused)"), "{stdout}");
    assert!(stdout.contains("22/22 test stories"), "{stdout}");
    assert!(stdout.contains("test perplexity"), "{stdout}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("lm/quickstart.json"))?)?;
    assert_eq!(m["inputs"].as_array().map(Vec::len), Some(2), "{m}");

    let again = duet(&no_serve, tmp.path())?;
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("(7 reused)"),
        "{}",
        text(&again.stdout)
    );

    let mut serve = base.to_vec();
    serve.extend(["--port", "0"]);
    let (_server, line) = start(
        Command::new(env!("CARGO_BIN_EXE_duet"))
            .args(&serve)
            .current_dir(tmp.path()),
        "web chat:",
    )?;
    let addr = host_port(&url_in(&line)?);
    let (status, models) = http(&addr, "GET", "/v1/models", "")?;
    assert_eq!(status, 200, "{models}");
    assert!(models.contains("\"gpt\""), "{models}");

    // The applications against the served GPT: JSON under a schema, keywords.
    let schema = tmp.path().join("order.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "properties": {"order": {"type": "string", "maxLength": 12}, "urgent": {"type": "boolean"}}, "required": ["order", "urgent"], "additionalProperties": false}"#,
    )?;
    let url = format!("http://{addr}/v1");
    let out = duet(
        &[
            "extract",
            "json",
            "--url",
            &url,
            "--model",
            "gpt",
            "--max-tokens",
            "48",
            "--instruction",
            "Fill the schema.",
            "--schema",
            schema.to_str().unwrap_or_default(),
            "where is order ORD-12345? it is urgent",
        ],
        tmp.path(),
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: serde_json::Value = serde_json::from_str(text(&out.stdout).trim())?;
    assert!(
        line["json"]["order"].is_string() && line["json"]["urgent"].is_boolean(),
        "{line}"
    );
    let body = serde_json::json!({"task": "keywords", "input": "Orders ship within one working day. Express orders arrive the next day.", "top": 2});
    let (status, kw) = http(&addr, "POST", "/v1/extract", &body.to_string())?;
    assert_eq!(status, 200, "{kw}");
    assert!(kw.contains("Orders") || kw.contains("orders"), "{kw}");
    let doc = tmp.path().join("doc.txt");
    std::fs::write(
        &doc,
        "Kaggle hosts data science competitions. Google is acquiring Kaggle.",
    )?;
    let out = duet(
        &[
            "extract",
            "keywords",
            "--top",
            "2",
            doc.to_str().unwrap_or_default(),
        ],
        tmp.path(),
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("data science"),
        "{}",
        text(&out.stdout)
    );

    browser_script("quickstart.mjs", &addr)?;
    // The off-topic answer came from the GPT through this server's own OpenAI API.
    let (_, metrics) = http(&addr, "GET", "/metrics", "")?;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("/v1/chat/completions") && l.contains("status=\"200\"")),
        "{metrics}"
    );
    Ok(())
}
