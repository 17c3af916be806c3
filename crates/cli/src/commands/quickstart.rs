//! `duet quickstart`: the whole system on one machine, from data shipped in the repository.
//!
//! Stages run in order, each as a `duet` subcommand (so each shows its own progress):
//! corpus → tokenizer → token shards → GPT → its evaluation and samples → the customer-service
//! assistant (NLU, policies, knowledge base) → its tests. Every stage writes its artefact into a
//! folder with a `quickstart.json` manifest holding the SHA-256 of its inputs (files, upstream
//! artefacts, command); a stage whose inputs did not change is reused, so a second run is quick
//! and any served answer traces back to the data and config that made its model. Then the LM
//! API, the assistant's REST channel and the web chat are served on one port.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Arguments of `duet quickstart`.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Where every artefact is written (and reused from on the next run).
    #[arg(long, default_value = "runs/quickstart")]
    pub dir: PathBuf,
    /// Train, evaluate and print the summary, then exit instead of serving.
    #[arg(long)]
    pub no_serve: bool,
    /// A reduced profile of the same path (a tiny model, a few steps, no cross-validation):
    /// about a minute, for CI and a first look.
    #[arg(long)]
    pub tiny: bool,
    /// The examples folder of the repository (holds quickstart/ and customer-service/).
    #[arg(long, default_value = "examples")]
    pub examples: PathBuf,
    /// The sentence encoder for the knowledge base (scripts/fetch-data.sh minilm); when the
    /// folder is missing, knowledge passages are found by their words alone (BM25).
    #[arg(long, default_value = "data/external/minilm")]
    pub encoder: PathBuf,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port for the LM API, the REST channel and the web chat (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

/// One step of the pipeline.
struct Stage {
    /// Short name (also the artefact folder under the run directory).
    name: &'static str,
    /// What it does, for the progress line.
    what: &'static str,
    /// Files and folders whose contents decide whether the artefact is still valid.
    inputs: Vec<PathBuf>,
    /// `duet` invocations, each with the file its standard output is saved to, if any.
    commands: Vec<(Vec<String>, Option<PathBuf>)>,
    /// The stage can continue an interrupted run of the same inputs (`--resume`).
    resumable: bool,
}

/// What a stage did.
struct Done {
    name: &'static str,
    reused: bool,
    seconds: f64,
}

/// The manifest file inside each artefact folder.
const MANIFEST: &str = "quickstart.json";

/// Runs `duet quickstart`.
pub fn run(a: QuickstartArgs) -> Result<()> {
    let ex = &a.examples;
    for need in [
        "quickstart/corpus",
        "quickstart/lm.toml",
        "customer-service",
    ] {
        if !ex.join(need).exists() {
            bail!(
                "{} not found: run from the repository root or pass --examples DIR",
                ex.join(need).display()
            );
        }
    }
    let d = &a.dir;
    std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    let encoder = a.encoder.is_dir().then(|| a.encoder.clone());
    let project = d.join("project");
    copy_project(&ex.join("customer-service"), &project, encoder.as_deref())?;

    let s = |p: &Path| p.display().to_string();
    let mut lm_args = vec![
        "train".into(),
        "lm".into(),
        "--config".into(),
        s(&ex.join("quickstart/lm.toml")),
        "--tokens".into(),
        s(&d.join("tokens")),
        "--tokenizer".into(),
        s(&d.join("tokenizer/tokenizer.json")),
        "--out".into(),
        s(&d.join("lm")),
    ];
    if a.tiny {
        for set in [
            "model.n_layer=2",
            "model.n_head=2",
            "model.n_embd=64",
            "train.max_steps=40",
            "train.batch_size=8",
            "train.warmup_steps=5",
            "train.eval_every=20",
            "train.eval_batches=4",
            "train.checkpoint_every=20",
        ] {
            lm_args.extend(["--set".into(), set.into()]);
        }
    }
    let folds = if a.tiny { "0" } else { "5" };
    let stages = [
        Stage {
            name: "corpus",
            what: "extracting, cleaning and de-duplicating the text",
            inputs: vec![ex.join("quickstart/corpus")],
            commands: vec![(
                args(&[
                    "corpus",
                    "build",
                    &s(&ex.join("quickstart/corpus")),
                    "--out",
                    &s(&d.join("corpus")),
                    "--force",
                ]),
                None,
            )],
            resumable: false,
        },
        Stage {
            name: "tokenizer",
            what: "training a byte-level BPE tokenizer",
            inputs: vec![d.join("corpus")],
            commands: vec![(
                args(&[
                    "tokenizer",
                    "train",
                    "--corpus",
                    &s(&d.join("corpus")),
                    "--kind",
                    "bpe",
                    "--vocab-size",
                    if a.tiny { "512" } else { "4000" },
                    "--out",
                    &s(&d.join("tokenizer/tokenizer.json")),
                ]),
                None,
            )],
            resumable: false,
        },
        Stage {
            name: "tokens",
            what: "encoding the corpus into token shards",
            inputs: vec![d.join("corpus"), d.join("tokenizer")],
            commands: vec![(
                args(&[
                    "tokenizer",
                    "encode",
                    "--corpus",
                    &s(&d.join("corpus")),
                    "--tokenizer",
                    &s(&d.join("tokenizer/tokenizer.json")),
                    "--out",
                    &s(&d.join("tokens")),
                    "--force",
                ]),
                None,
            )],
            resumable: false,
        },
        Stage {
            name: "lm",
            what: "training a GPT from scratch",
            inputs: vec![ex.join("quickstart/lm.toml"), d.join("tokens")],
            commands: vec![(lm_args, None)],
            resumable: true,
        },
        Stage {
            name: "lm-eval",
            what: "measuring the best checkpoint's perplexity on the test split; a sample",
            inputs: vec![d.join("lm/best"), d.join("tokens")],
            commands: vec![
                (
                    args(&[
                        "eval",
                        "lm",
                        "--model",
                        &s(&d.join("lm/best")),
                        "--data",
                        &s(&d.join("tokens")),
                        "--split",
                        "test",
                    ]),
                    Some(d.join("lm-eval/metrics.json")),
                ),
                (
                    args(&[
                        "generate",
                        "--model",
                        &s(&d.join("lm/best")),
                        "--prompt",
                        "The secret of life is",
                        "--max-new-tokens",
                        "48",
                        "--seed",
                        "1",
                    ]),
                    Some(d.join("lm-eval/sample.txt")),
                ),
            ],
            resumable: false,
        },
        Stage {
            name: "assistant",
            what: "training the customer-service assistant (NLU, policies, knowledge base)",
            inputs: [Some(project.clone()), encoder.clone()]
                .into_iter()
                .flatten()
                .collect(),
            commands: vec![(
                args(&[
                    "dialog",
                    "train",
                    "--project",
                    &s(&project),
                    "--out",
                    &s(&d.join("assistant")),
                ]),
                None,
            )],
            resumable: false,
        },
        Stage {
            name: "assistant-eval",
            what: "running the assistant's test stories and NLU cross-validation",
            inputs: vec![project.clone(), d.join("assistant")],
            commands: vec![(
                args(&[
                    "dialog",
                    "test",
                    "--project",
                    &s(&project),
                    "--out",
                    &s(&d.join("assistant")),
                    "--results",
                    &s(&d.join("assistant-eval")),
                    "--folds",
                    folds,
                ]),
                None,
            )],
            resumable: false,
        },
    ];
    let start = Instant::now();
    let mut done = Vec::new();
    let n = stages.len();
    for (i, st) in stages.iter().enumerate() {
        eprintln!("[{}/{n}] {}: {}", i + 1, st.name, st.what);
        done.push(run_stage(st, d)?);
    }
    say!();
    say!(
        "duet quickstart: {} stages in {:.1} s ({} reused) — {}",
        done.len(),
        start.elapsed().as_secs_f64(),
        done.iter().filter(|x| x.reused).count(),
        d.display()
    );
    say!("{}", summary(&done, d, encoder.is_some()).trim_end());
    if a.no_serve {
        return Ok(());
    }
    serve(&a, &project)
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// Copies the assistant's project (without its `models/` and `results/`) into `to`, pointing
/// the knowledge base at `encoder`, or at no encoder (word search) when there is none.
fn copy_project(from: &Path, to: &Path, encoder: Option<&Path>) -> Result<()> {
    let fresh = to.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&fresh);
    copy_dir(from, &fresh)?;
    let cfg = fresh.join("config.yml");
    let text =
        std::fs::read_to_string(&cfg).with_context(|| format!("reading {}", cfg.display()))?;
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("model:") && t.contains("minilm") {
            if let Some(e) = encoder {
                let abs = std::fs::canonicalize(e)
                    .with_context(|| format!("resolving {}", e.display()))?;
                out.push_str(&line[..line.len() - t.len()]);
                out.push_str(&format!("model: {:?}\n", abs.display().to_string()));
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(&cfg, out).with_context(|| format!("writing {}", cfg.display()))?;
    // Replace the old copy only when the new one differs, so that its hash stays put.
    if to.is_dir() && hash(to)? == hash(&fresh)? {
        std::fs::remove_dir_all(&fresh).with_context(|| format!("removing {}", fresh.display()))?;
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(to);
    std::fs::rename(&fresh, to).with_context(|| format!("moving {} into place", to.display()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let p = e?.path();
        let name = p.file_name().unwrap_or_default();
        if p.is_dir() {
            if name == "models" || name == "results" {
                continue;
            }
            copy_dir(&p, &to.join(name))?;
        } else {
            std::fs::copy(&p, to.join(name)).with_context(|| format!("copying {}", p.display()))?;
        }
    }
    Ok(())
}

/// SHA-256 over every file under `root` (name relative to it, and contents, in sorted order),
/// skipping stage manifests and checkpoints: a copy hashes like its original.
fn hash(root: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut files = Vec::new();
    walk(root, &mut files)?;
    files.sort();
    for f in files {
        let rel = f.strip_prefix(root).unwrap_or(&f);
        h.update(rel.as_os_str().as_encoded_bytes());
        let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if p.is_file() {
        out.push(p.to_path_buf());
        return Ok(());
    }
    if !p.is_dir() {
        bail!(
            "{} is missing (an earlier stage should have made it)",
            p.display()
        );
    }
    for e in std::fs::read_dir(p).with_context(|| format!("reading {}", p.display()))? {
        let c = e?.path();
        let name = c.file_name().unwrap_or_default();
        if name == MANIFEST || name == "checkpoints" || name == "pending.json" {
            continue;
        }
        walk(&c, out)?;
    }
    Ok(())
}

/// Runs one stage unless its manifest shows the same inputs.
fn run_stage(st: &Stage, d: &Path) -> Result<Done> {
    let out = d.join(st.name);
    let cmds: Vec<&Vec<String>> = st.commands.iter().map(|(c, _)| c).collect();
    // Each input is hashed once: for the key, and for the manifest.
    let hashes: Vec<String> = st.inputs.iter().map(|p| hash(p)).collect::<Result<_>>()?;
    let key = {
        let mut h = Sha256::new();
        for x in &hashes {
            h.update(x);
        }
        h.update(serde_json::to_vec(&cmds)?);
        h.update(env!("CARGO_PKG_VERSION"));
        hex(&h.finalize())
    };
    let manifest = out.join(MANIFEST);
    if let Ok(m) = std::fs::read(&manifest)
        && let Ok(m) = serde_json::from_slice::<Value>(&m)
        && m["key"] == key
    {
        eprintln!("    reused (inputs unchanged; {})", manifest.display());
        return Ok(Done {
            name: st.name,
            reused: true,
            seconds: 0.0,
        });
    }
    // An interrupted run of the same inputs continues; anything else starts afresh.
    let pending = out.join("pending.json");
    let resume = st.resumable
        && std::fs::read_to_string(&pending).is_ok_and(|k| k.trim() == key)
        && out.join("checkpoints").is_dir();
    if !resume {
        let _ = std::fs::remove_dir_all(&out);
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(&pending, &key).with_context(|| format!("writing {}", pending.display()))?;
    let exe = std::env::current_exe().context("finding the duet executable")?;
    let start = Instant::now();
    for (cmd, capture) in &st.commands {
        let mut cmd = cmd.clone();
        if resume && cmd.first().is_some_and(|c| c == "train") {
            cmd.push("--resume".into());
        }
        let mut c = Command::new(&exe);
        c.args(&cmd).stdin(Stdio::null());
        if capture.is_some() {
            c.stdout(Stdio::piped());
        }
        let o = c
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?
            .wait_with_output()
            .context("waiting for the stage")?;
        if !o.status.success() {
            bail!(
                "stage {} failed ({}): duet {}",
                st.name,
                o.status,
                cmd.join(" ")
            );
        }
        if let Some(f) = capture {
            std::fs::write(f, &o.stdout).with_context(|| format!("writing {}", f.display()))?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let inputs: Vec<Value> = st
        .inputs
        .iter()
        .zip(&hashes)
        .map(|(p, h)| json!({"path": p.display().to_string(), "sha256": h}))
        .collect();
    let m = json!({
        "stage": st.name,
        "key": key,
        "inputs": inputs,
        "commands": cmds,
        "duet_version": env!("CARGO_PKG_VERSION"),
        "seconds": seconds,
    });
    std::fs::write(&manifest, serde_json::to_string_pretty(&m)? + "\n")
        .with_context(|| format!("writing {}", manifest.display()))?;
    let _ = std::fs::remove_file(&pending);
    Ok(Done {
        name: st.name,
        reused: false,
        seconds,
    })
}

fn read_json(p: &Path) -> Value {
    std::fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// The table printed at the end: each stage, whether it ran, and what it measured.
fn summary(done: &[Done], d: &Path, encoder: bool) -> String {
    let mut rows = Vec::new();
    for x in done {
        let what = match x.name {
            "corpus" => {
                let r = read_json(&d.join("corpus/report.json"));
                format!("{} documents kept of {}", r["docs_out"], r["docs_in"])
            }
            "tokenizer" => {
                let t = read_json(&d.join("tokenizer/tokenizer.json"));
                let v = t["model"]["vocab"].as_object().map_or(0, |v| v.len());
                format!("byte-level BPE, {v} tokens")
            }
            "tokens" => {
                let m = read_json(&d.join("tokens/manifest.json"));
                format!("{} training tokens", m["splits"]["train"]["tokens"])
            }
            "lm" => lm_summary(&d.join("lm")),
            "lm-eval" => {
                let m = read_json(&d.join("lm-eval/metrics.json"));
                format!(
                    "test perplexity {:.1}, {:.3} bits per byte",
                    m["perplexity"].as_f64().unwrap_or(f64::NAN),
                    m["bits_per_byte"].as_f64().unwrap_or(f64::NAN)
                )
            }
            "assistant" => format!(
                "knowledge base by {}",
                if encoder {
                    "MiniLM embeddings + BM25"
                } else {
                    "words (BM25; no encoder)"
                }
            ),
            "assistant-eval" => {
                let r = read_json(&d.join("assistant-eval/story_results.json"));
                let all = r.as_array().map_or(0, Vec::len);
                let ok = r
                    .as_array()
                    .map_or(0, |v| v.iter().filter(|s| s["passed"] == true).count());
                let nlu = read_json(&d.join("assistant-eval/nlu_metrics.json"));
                match nlu["intents"]["accuracy"].as_f64() {
                    Some(acc) => {
                        format!("{ok}/{all} test stories; NLU intent accuracy {acc:.3} (5-fold)")
                    }
                    None => format!("{ok}/{all} test stories"),
                }
            }
            _ => String::new(),
        };
        let status = if x.reused {
            "reused".to_owned()
        } else {
            format!("{:.1} s", x.seconds)
        };
        rows.push((x.name, status, what));
    }
    let mut s = String::from("\n| stage | time | result |\n| --- | --- | --- |\n");
    for (n, t, w) in rows {
        s.push_str(&format!("| {n} | {t} | {w} |\n"));
    }
    let sample = std::fs::read_to_string(d.join("lm-eval/sample.txt")).unwrap_or_default();
    if !sample.trim().is_empty() {
        s.push_str(&format!(
            "\nA sample of the GPT:\n  {}\n",
            sample.trim().replace('\n', "\n  ")
        ));
    }
    s
}

/// The final validation loss and mean training speed from the run's `metrics.jsonl`.
fn lm_summary(run: &Path) -> String {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    let (mut val, mut step, mut tps, mut n) = (None, 0u64, 0f64, 0usize);
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(l) = v["val_loss"].as_f64() {
            val = Some(l);
        }
        if let Some(t) = v["tokens_per_sec"].as_f64() {
            tps += t;
            n += 1;
        }
        step = step.max(v["step"].as_u64().unwrap_or(0));
    }
    format!(
        "{step} steps, validation loss {:.3}, {:.0} tokens/s",
        val.unwrap_or(f64::NAN),
        tps / n.max(1) as f64
    )
}

/// SmolLM2-135M-Instruct (GGUF), where `scripts/fetch-data.sh smollm2` puts it.
const SMOLLM2: &str = "data/external/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Serves the LM API, the assistant's REST channel and the web chat on one port, the
/// assistant's LM fallback pointed at this same server (at SmolLM2 when it was fetched).
fn serve(a: &QuickstartArgs, project: &Path) -> Result<()> {
    use duet_dialog::assistant::Assistant;
    use duet_dialog::project::Project;
    use duet_dialog::store::SqliteStore;

    let d = &a.dir;
    let listener = std::net::TcpListener::bind((a.host.as_str(), a.port))
        .with_context(|| format!("binding {}:{}", a.host, a.port))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    // A real chat model, when `scripts/fetch-data.sh smollm2` has fetched it, answers what the
    // assistant's intents and documents do not; the fortune GPT is served beside it.
    // (`--tiny`, the CI profile, keeps to the fortune GPT: seconds, not minutes.)
    let chat = std::path::Path::new(SMOLLM2);
    let use_chat = !a.tiny && chat.is_file();
    let mut models = vec![("gpt".to_owned(), d.join("lm/best"))];
    if use_chat {
        models.push(("smollm2".to_owned(), chat.to_path_buf()));
    }
    let state = duet_serve::load(&duet_serve::ServeConfig {
        models,
        request_timeout: std::time::Duration::from_secs(120),
        blocking_jobs: 2,
        ..Default::default()
    })?;
    let mut p = Project::load(project)
        .with_context(|| format!("loading the project {}", project.display()))?;
    if let Some(llm) = p.endpoints.llm.as_mut() {
        llm.url = format!("http://{local}/v1");
        if use_chat {
            llm.model = "smollm2".into();
        } else {
            llm.model = "gpt".into();
            // A small model with a short context: short answers.
            llm.max_tokens = Some(llm.max_tokens.unwrap_or(128).min(48));
        }
    }
    let assistant = Assistant::load(&p, &d.join("assistant"))?;
    let store = SqliteStore::open(&d.join("trackers.db"))?;
    let status = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "model_file": d.join("assistant").display().to_string(),
        "tracker_store": d.join("trackers.db").display().to_string(),
    });
    let dialog = duet_dialog::server::AppState::new(assistant, Box::new(store), status);
    let app = duet_serve::router(state).merge(duet_dialog::server::router(dialog));
    super::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        say!("\nweb chat:      http://{local}/chat");
        say!("REST channel:  http://{local}/webhooks/rest/webhook");
        if use_chat {
            say!("LM API:        http://{local}/v1 (models \"gpt\" and \"smollm2\"; the assistant asks smollm2)");
        } else {
            say!("LM API:        http://{local}/v1 (model \"gpt\"; scripts/fetch-data.sh smollm2 adds a chat model)");
        }
        say!("Ctrl-C stops the server.");
        axum::serve(listener, app)
            .with_graceful_shutdown(super::serve::shutdown())
            .await
            .context("serving")
    })
}
