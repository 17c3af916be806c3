//! `duet dialog train|validate|test` and `duet chat`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use duet_dialog::assistant::{Assistant, default_model_dir};
use duet_dialog::check;
use duet_dialog::project::Project;

/// Dialog commands.
#[derive(Debug, Subcommand)]
pub enum DialogCommand {
    /// Validate the project, then train its NLU and policies into models/duet (or --out).
    Train(DialogArgs),
    /// Check the project: undefined or unused names, stories that contradict rules.
    Validate(DialogArgs),
    /// Run the project's test stories (tests/*.yml) against the trained assistant.
    Test(DialogArgs),
    /// Serve the trained assistant: Rasa's REST channel, tracker and parse routes.
    Serve(DialogServeArgs),
}

/// Arguments of `duet dialog serve`.
#[derive(Debug, Args)]
pub struct DialogServeArgs {
    /// The project and its trained assistant.
    #[command(flatten)]
    pub project: DialogArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free port).
    #[arg(long, default_value_t = 5005)]
    pub port: u16,
    /// The SQLite tracker store (default: PROJECT/models/trackers.db), a PostgreSQL URL
    /// (`postgres://user:password@host/db`, shared by several servers), or `memory`.
    #[arg(long)]
    pub tracker_store: Option<String>,
}

/// Arguments of the dialog commands.
#[derive(Debug, Args)]
pub struct DialogArgs {
    /// The Rasa 3.x project folder (domain.yml, config.yml, data/, tests/).
    #[arg(long, default_value = ".")]
    pub project: PathBuf,
    /// Where the trained assistant is written or read (default: PROJECT/models/duet).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `test`: NLU cross-validation folds (0: none).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// `test`: where the reports are written (default: PROJECT/results).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// `test`: also check NLU's intent and entities for each `user:` text (as `rasa test --e2e`).
    #[arg(long)]
    pub e2e: bool,
    /// `test`: stop at the first wrong prediction.
    #[arg(long)]
    pub fail_on_prediction_errors: bool,
    /// `test`: also measure held-out story prediction over this many folds of the stories
    /// (0: none), with and without the trained policy.
    #[arg(long, default_value_t = 0)]
    pub heldout: usize,
}

fn model_dir(a: &DialogArgs) -> PathBuf {
    a.out
        .clone()
        .unwrap_or_else(|| default_model_dir(&a.project))
}

fn load(project: &Path) -> Result<Project> {
    Project::load(project).with_context(|| format!("loading the project {}", project.display()))
}

/// Runs a dialog command.
pub fn run(cmd: DialogCommand) -> Result<()> {
    match cmd {
        DialogCommand::Validate(a) => {
            let p = load(&a.project)?;
            let v = check::validate(&p);
            for w in &v.warnings {
                eprintln!("warning: {w}");
            }
            for e in &v.errors {
                eprintln!("error: {e}");
            }
            if !v.errors.is_empty() {
                bail!("{} error(s) in {}", v.errors.len(), a.project.display());
            }
            say!(
                "{}: valid ({} warning(s))",
                a.project.display(),
                v.warnings.len()
            );
        }
        DialogCommand::Train(a) => {
            let p = load(&a.project)?;
            let start = std::time::Instant::now();
            let (assistant, v) = check::train_checked(&p)?;
            for w in &v.warnings {
                eprintln!("warning: {w}");
            }
            let dir = model_dir(&a);
            assistant.save(&p, &dir)?;
            say!(
                "trained {} intents, {} stories, {} rules in {:.2} s -> {}",
                assistant.nlu_intents(),
                duet_dialog::assistant::expand_stories(&p).len(),
                p.rules.len(),
                start.elapsed().as_secs_f64(),
                dir.display()
            );
        }
        DialogCommand::Serve(a) => serve(a)?,
        DialogCommand::Test(a) => {
            let p = load(&a.project)?;
            let assistant = Assistant::load(&p, &model_dir(&a))?;
            let opts = check::TestOptions {
                e2e: a.e2e,
                fail_on_prediction_errors: a.fail_on_prediction_errors,
            };
            let results = check::run_tests_with(&assistant, &p, opts);
            if a.fail_on_prediction_errors
                && let Some(r) = results.iter().find(|r| !r.passed)
            {
                bail!(
                    "story {:?} ({}): {}",
                    r.story,
                    r.at,
                    r.failure.as_deref().unwrap_or("")
                );
            }
            let dir = a
                .results
                .clone()
                .unwrap_or_else(|| a.project.join("results"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::write(dir.join("story_report.md"), check::report(&results))
                .with_context(|| format!("writing {}", dir.join("story_report.md").display()))?;
            std::fs::write(
                dir.join("story_results.json"),
                serde_json::to_string_pretty(&results)? + "\n",
            )
            .with_context(|| format!("writing {}", dir.join("story_results.json").display()))?;
            if a.folds > 1 {
                let cv = check::nlu_cross_validation(&p, a.folds, 42)?;
                std::fs::write(dir.join("nlu_report.md"), check::nlu_report(&cv))
                    .with_context(|| format!("writing {}", dir.join("nlu_report.md").display()))?;
                std::fs::write(
                    dir.join("nlu_metrics.json"),
                    serde_json::to_string_pretty(&cv)? + "\n",
                )
                .with_context(|| format!("writing {}", dir.join("nlu_metrics.json").display()))?;
                duet_eval::report::confusion_png(&dir.join("intent_confusion.png"), &cv.intents)?;
                say!(
                    "NLU ({}-fold): intent accuracy {:.4} (best-ranked {:.4}), macro F1 {:.4}; entity precision {:.4}, recall {:.4}, F1 {:.4}",
                    cv.folds,
                    cv.intents.accuracy,
                    cv.top1_accuracy,
                    cv.intents.macro_f1,
                    cv.entities.micro.precision,
                    cv.entities.micro.recall,
                    cv.entities.micro.f1
                );
            }
            if a.heldout > 0 {
                let h = check::policy_held_out(&p, a.heldout)?;
                std::fs::write(
                    dir.join("policy_heldout.json"),
                    serde_json::to_string_pretty(&h)? + "\n",
                )
                .with_context(|| {
                    format!("writing {}", dir.join("policy_heldout.json").display())
                })?;
                say!(
                    "held-out stories ({} folds over {} stories): {} actions; right with the trained policy {} ({:.4}), without {} ({:.4})",
                    h.folds,
                    h.stories,
                    h.actions,
                    h.right_with_learned,
                    h.right_with_learned as f64 / h.actions.max(1) as f64,
                    h.right_without_learned,
                    h.right_without_learned as f64 / h.actions.max(1) as f64
                );
            }
            for r in results.iter().filter(|r| !r.passed) {
                eprintln!(
                    "FAILED {} ({}): {}",
                    r.story,
                    r.at,
                    r.failure.as_deref().unwrap_or("")
                );
            }
            let passed = results.iter().filter(|r| r.passed).count();
            let failed = results.len() - passed;
            say!("report: {}", dir.join("story_report.md").display());
            say!("stories: {passed} passed, {failed} failed");
            if failed > 0 {
                bail!(
                    "{failed} test stor{} failed",
                    if failed == 1 { "y" } else { "ies" }
                );
            }
        }
    }
    Ok(())
}

/// Arguments of `duet chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The Rasa 3.x project folder.
    #[arg(long, default_value = ".")]
    pub project: PathBuf,
    /// The trained assistant (default: PROJECT/models/duet), or a chat model — a GGUF file or
    /// a decoder directory — to talk to directly.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The conversation id.
    #[arg(long, default_value = "terminal")]
    pub sender: String,
    /// Options of a chat with a model.
    #[command(flatten)]
    pub lm: crate::commands::chat::LmChatOptions,
}

/// Runs `duet chat`: talk to the assistant in the terminal (`/restart` starts over, `/quit` or
/// end of input leaves), or to a chat model when `--model` is one.
pub fn chat(a: ChatArgs) -> Result<()> {
    if let Some(m) = &a.model
        && crate::commands::chat::is_chat_model(m)
    {
        return crate::commands::chat::run(m, &a.lm);
    }
    let p = load(&a.project)?;
    let dir = a
        .model
        .clone()
        .unwrap_or_else(|| default_model_dir(&a.project));
    let assistant = Assistant::load(&p, &dir)?;
    let mut tracker = assistant.new_tracker(&a.sender);
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    write!(out, "you> ")?;
    out.flush()?;
    for line in stdin.lock().lines() {
        let line = line.context("reading standard input")?;
        let text = line.trim();
        if text == "/quit" || text == "/exit" {
            break;
        }
        if !text.is_empty() {
            // A language model's answer is printed as it streams in.
            let mut streamed = String::new();
            let mut sink = |piece: &str| {
                let mut o = std::io::stdout();
                if streamed.is_empty() {
                    let _ = write!(o, "bot> ");
                }
                streamed.push_str(piece);
                let _ = write!(o, "{piece}");
                let _ = o.flush();
            };
            let msgs = assistant.handle_streaming(&mut tracker, text, Some("cmdline"), &mut sink);
            if !streamed.is_empty() {
                writeln!(out)?;
            }
            for m in msgs {
                if let Some(t) = &m.text
                    && (streamed.is_empty() || t != streamed.trim())
                {
                    writeln!(out, "bot> {t}")?;
                }
                if let Some(i) = &m.image {
                    writeln!(out, "bot> [image] {i}")?;
                }
                for (k, b) in m.buttons.iter().enumerate() {
                    writeln!(out, "     {}: {} ({})", k + 1, b.title, b.payload)?;
                }
            }
        }
        write!(out, "you> ")?;
        out.flush()?;
    }
    writeln!(out)?;
    Ok(())
}

/// Runs `duet dialog serve`.
fn serve(a: DialogServeArgs) -> Result<()> {
    use duet_dialog::store::{MemoryStore, PostgresStore, SqliteStore, TrackerStore};
    let p = load(&a.project.project)?;
    let dir = model_dir(&a.project);
    let assistant = Assistant::load(&p, &dir)?;
    let (store, where_): (Box<dyn TrackerStore>, String) = match a.tracker_store.as_deref() {
        Some("memory") => (Box::new(MemoryStore::default()), "memory".into()),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            // The sync client runs its own runtime: connect before ours starts.
            let store = PostgresStore::connect(url)?;
            let shown = url.split('@').next_back().unwrap_or(url);
            (Box::new(store), format!("postgresql ({shown})"))
        }
        other => {
            let path = other.map_or_else(
                || a.project.project.join("models/trackers.db"),
                PathBuf::from,
            );
            (
                Box::new(SqliteStore::open(&path)?),
                path.display().to_string(),
            )
        }
    };
    let status = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "model_file": dir.display().to_string(),
        "tracker_store": where_,
    });
    let state = duet_dialog::server::AppState::new(assistant, store, status);
    super::runtime()?.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        say!(
            "duet dialog serve: http://{}/webhooks/rest/webhook — tracker store {where_}",
            listener.local_addr()?
        );
        axum::serve(listener, duet_dialog::server::router(state))
            .with_graceful_shutdown(super::serve::shutdown())
            .await
            .context("serving")?;
        Ok(())
    })
}
