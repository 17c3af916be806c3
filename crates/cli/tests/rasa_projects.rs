//! The real Rasa 3.x projects (`testdata/rasa/`, laid there by `scripts/fetch-rasa-projects.sh`)
//! through the `duet` binary, as a Rasa user runs them: `dialog validate`, `dialog train`,
//! `dialog test`, with a real `rasa-sdk` action server serving the project's own `actions/`;
//! and a scripted conversation with a form over the REST channel. Skipped, saying why, when the
//! project copies or Python are missing. Duckling: duet's built-in extraction
//! (`DUET_DUCKLING=builtin`), since no Duckling server exists here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use anyhow::{Context, Result, bail, ensure};

/// The projects: every Rasa example in 3.x format and financial-demo.
const PROJECTS: &[&str] = &[
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

/// Where the project copies are: `$DUET_RASA_PROJECTS`, `testdata/rasa/`, or
/// `../shared/rasa-projects/`.
fn projects_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::var_os("DUET_RASA_PROJECTS")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join("testdata/rasa"),
            root.join("../shared/rasa-projects"),
        ])
        .find(|d| d.join("formbot/domain.yml").is_file())
}

/// A Python with rasa-sdk and what the projects' actions import: `$DUET_TEST_PYTHON`, or a
/// venv made from `tests/requirements-rasa.txt`; `None` when there is no `python3`.
fn python() -> Result<Option<PathBuf>> {
    if let Ok(p) = std::env::var("DUET_TEST_PYTHON") {
        return Ok(Some(p.into()));
    }
    // The tests run in parallel; one makes the venv while the others wait.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if Command::new("python3").arg("--version").output().is_err() {
        return Ok(None);
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rasa-python");
    let py = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args([
                "-c",
                "import rasa_sdk, sqlalchemy, dateutil, pytz, ruamel.yaml",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready(&py) {
        let out = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()?;
        ensure!(
            out.status.success(),
            "python3 -m venv: {}",
            text(&out.stderr)
        );
        let reqs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/requirements-rasa.txt");
        let out = Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "-r"])
            .arg(&reqs)
            .output()?;
        ensure!(
            out.status.success(),
            "installing {}: {}",
            reqs.display(),
            text(&out.stderr)
        );
        // financial-demo's actions call `ruamel.yaml.safe_load` (gone from 0.18); rasa-sdk 3.21
        // asks for 0.19 but runs with 0.17.
        let out = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "ruamel.yaml==0.17.40",
            ])
            .output()?;
        ensure!(
            out.status.success(),
            "installing ruamel.yaml 0.17: {}",
            text(&out.stderr)
        );
    }
    Ok(Some(py))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn duet(args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_duet"))
        .args(args)
        .env("DUET_DUCKLING", "builtin")
        .output()?)
}

/// Kills a process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One HTTP/1.1 request; the status and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
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
    Ok((status, rest.to_owned()))
}

/// Copies a folder.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
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

/// Starts `python -m rasa_sdk` on the project's own `actions/` at a free port, points the
/// project's `endpoints.yml` there (as a user running it on another port would), and waits for
/// `/health`. The server's log goes to `log`.
fn action_server(py: &Path, project: &Path, log: &Path) -> Result<Killed> {
    let port = free_port()?;
    let ep = project.join("endpoints.yml");
    let old = std::fs::read_to_string(&ep).unwrap_or_default();
    let kept: String = old
        .lines()
        .filter(|l| {
            !l.trim_start().starts_with("action_endpoint") && !l.trim_start().starts_with("url:")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        &ep,
        format!("{kept}action_endpoint:\n  url: \"http://127.0.0.1:{port}/webhook\"\n"),
    )?;
    let log = std::fs::File::create(log)?;
    let server = Killed(
        Command::new(py)
            .args(["-m", "rasa_sdk", "--actions", "actions", "--port"])
            .arg(port.to_string())
            .current_dir(project)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let addr = format!("127.0.0.1:{port}");
    let start = std::time::Instant::now();
    while !http(&addr, "GET", "/health", "").is_ok_and(|(s, _)| s == 200) {
        ensure!(
            start.elapsed().as_secs() < 60,
            "the action server of {} did not start",
            project.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    Ok(server)
}

/// `stories: N passed, M failed` of `duet dialog test`'s output.
fn stories_line(out: &str) -> Option<(usize, usize)> {
    let l = out.lines().find_map(|l| l.strip_prefix("stories: "))?;
    let mut n = l
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    Some((n.next()?.parse().ok()?, n.next()?.parse().ok()?))
}

#[test]
fn every_real_rasa_project_validates_trains_and_passes_its_test_stories_with_the_binary()
-> Result<()> {
    let Some(dir) = projects_dir() else {
        eprintln!("SKIPPED: no copies of the real Rasa projects (scripts/fetch-rasa-projects.sh)");
        return Ok(());
    };
    let py = python()?;
    if py.is_none() {
        eprintln!("note: no python3: the projects' action servers are not started");
    }
    let tmp = tempfile::tempdir()?;
    let mut table = vec!["| project | validate | train | test stories passed |".to_owned()];
    table.push("|---|---|---|---|".into());
    let mut problems = Vec::new();
    for name in PROJECTS {
        let project = tmp.path().join(name);
        copy_dir(&dir.join(name), &project)?;
        let p = project.to_str().context("path")?;
        // `dialog test` calls no action (as `rasa test`), so a server that does not start is
        // reported, not fatal: knowledgebasebot's actions do not start under rasa-sdk 3.21
        // (its server cannot pickle the example's in-memory knowledge base).
        let log = tmp.path().join(format!("{name}-sdk.log"));
        let _server = match (&py, project.join("actions").is_dir()) {
            (Some(py), true) => match action_server(py, &project, &log) {
                Ok(s) => Some(s),
                Err(e) => {
                    let tail: String = std::fs::read_to_string(&log)
                        .unwrap_or_default()
                        .lines()
                        .rev()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" | ");
                    eprintln!("{name}: {e}: {tail}");
                    None
                }
            },
            _ => None,
        };
        let v = duet(&["dialog", "validate", "--project", p])?;
        if !v.status.success() {
            problems.push(format!("{name}: validate: {}", text(&v.stderr)));
            table.push(format!("| {name} | errors | - | - |"));
            continue;
        }
        let t = duet(&["dialog", "train", "--project", p])?;
        if !t.status.success() {
            problems.push(format!("{name}: train: {}", text(&t.stderr)));
            table.push(format!("| {name} | ok | failed | - |"));
            continue;
        }
        let r = duet(&["dialog", "test", "--project", p, "--folds", "0"])?;
        let (passed, failed) = stories_line(&text(&r.stdout)).unwrap_or((0, 0));
        table.push(format!(
            "| {name} | ok | ok | {passed}/{} |",
            passed + failed
        ));
        if !r.status.success() {
            problems.push(format!(
                "{name}: test: {}{}",
                text(&r.stdout),
                text(&r.stderr)
            ));
        }
    }
    eprintln!("{}", table.join("\n"));
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// Starts `duet dialog serve` on a free port; the process and its address.
fn dialog_server(project: &Path) -> Result<(Killed, String)> {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_duet"))
        .args([
            "dialog",
            "serve",
            "--port",
            "0",
            "--tracker-store",
            "memory",
            "--project",
        ])
        .arg(project)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let out = child.stdout.take();
    let child = Killed(child);
    let mut lines = std::io::BufReader::new(out.context("no stdout")?).lines();
    while let Some(line) = lines.next() {
        let line = line?;
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            let addr = url
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            // Keep reading: the server's writes must not meet a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((child, addr));
        }
    }
    bail!("duet dialog serve printed no address")
}

/// Sends a message over the REST channel; the bot's texts.
fn say(addr: &str, sender: &str, message: &str) -> Result<Vec<String>> {
    let body = serde_json::json!({"sender": sender, "message": message}).to_string();
    let (status, reply) = http(addr, "POST", "/webhooks/rest/webhook", &body)?;
    ensure!(status == 200, "{status}: {reply}");
    let msgs: Vec<serde_json::Value> = serde_json::from_str(&reply)?;
    Ok(msgs
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect())
}

#[test]
fn a_form_asks_validates_on_the_action_server_resumes_after_chitchat_and_submits() -> Result<()> {
    let Some(dir) = projects_dir() else {
        eprintln!("SKIPPED: no copies of the real Rasa projects (scripts/fetch-rasa-projects.sh)");
        return Ok(());
    };
    let Some(py) = python()? else {
        eprintln!("SKIPPED: no python3 for the rasa-sdk action server");
        return Ok(());
    };
    // financial-demo's transfer_money_form, validated by its own validate_transfer_money_form.
    if !dir.join("financial-demo/actions").is_dir() {
        // A data-only copy (../shared/rasa-projects keeps no fetched code) has no actions.
        eprintln!("SKIPPED: the copy of financial-demo has no actions/ for the action server");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let project = tmp.path().join("financial-demo");
    copy_dir(&dir.join("financial-demo"), &project)?;
    let _sdk = action_server(&py, &project, &tmp.path().join("sdk.log"))?;
    let p = project.to_str().context("path")?;
    let t = duet(&["dialog", "train", "--project", p])?;
    ensure!(t.status.success(), "{}", text(&t.stderr));
    let (_server, addr) = dialog_server(&project)?;
    let u = "ada";
    say(&addr, u, "hi")?;
    // The profile the action server made for this conversation names the known recipients.
    let listed = say(&addr, u, "who can I send money to?")?.join("\n");
    let recipient = listed
        .lines()
        .find_map(|l| l.trim().strip_prefix("- "))
        .context(format!("no recipients in {listed:?}"))?
        .to_owned();
    let first = recipient
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    // The form starts and asks.
    let asked = say(&addr, u, "I want to transfer money")?;
    ensure!(
        asked
            .iter()
            .any(|m| m.contains("continue scheduling the money transfer")),
        "{asked:?}"
    );
    let asked = say(&addr, u, "yes")?;
    ensure!(
        asked.iter().any(|m| m.contains("Who do you want")),
        "{asked:?}"
    );
    // Chitchat inside the form: answered by its rule, then the form asks again.
    let chit = say(&addr, u, "are you a bot?")?;
    ensure!(
        chit.len() == 2
            && chit[0].contains("virtual assistant")
            && chit[1].contains("Who do you want"),
        "{chit:?}"
    );
    // The first name goes to validate_transfer_money_form, which makes it the full name.
    let asked = say(&addr, u, &first)?;
    ensure!(asked.iter().any(|m| m.contains("How much")), "{asked:?}");
    let confirm = say(&addr, u, "$50")?;
    ensure!(
        confirm
            .iter()
            .any(|m| m.contains("$50.00") && m.contains(&recipient)),
        "{confirm:?} (recipient {recipient})"
    );
    let done = say(&addr, u, "yes")?;
    ensure!(
        done.iter()
            .any(|m| m.contains("Successfully transferred $50.00") && m.contains(&recipient)),
        "{done:?}"
    );
    // The validation ran on the action server: the slots it returned follow the form's action.
    let (_, tracker) = http(&addr, "GET", &format!("/conversations/{u}/tracker"), "")?;
    let t: serde_json::Value = serde_json::from_str(&tracker)?;
    let events = t["events"].as_array().context("events")?;
    let validated = events.windows(2).any(|w| {
        w[0]["event"] == "action"
            && w[0]["name"] == "transfer_money_form"
            && w[1]["event"] == "slot"
            && w[1]["name"] == "PERSON"
            && w[1]["value"] == recipient.as_str()
    });
    ensure!(validated, "no validated PERSON in {tracker}");
    ensure!(t["active_loop"]["name"].is_null(), "{}", t["active_loop"]);
    Ok(())
}

#[test]
fn formbot_asks_resumes_after_chitchat_and_submits_over_rest() -> Result<()> {
    let Some(dir) = projects_dir() else {
        eprintln!("SKIPPED: no copies of the real Rasa projects (scripts/fetch-rasa-projects.sh)");
        return Ok(());
    };
    // This copy of formbot lists no validate_restaurant_form (see the fetch script), so Rasa
    // would call no action server for it either.
    let tmp = tempfile::tempdir()?;
    let project = tmp.path().join("formbot");
    copy_dir(&dir.join("formbot"), &project)?;
    let p = project.to_str().context("path")?;
    let t = duet(&["dialog", "train", "--project", p])?;
    ensure!(t.status.success(), "{}", text(&t.stderr));
    let (_server, addr) = dialog_server(&project)?;
    let u = "bo";
    say(&addr, u, "hi")?;
    let conversation = [
        ("im looking for a restaurant", vec!["What cuisine?"]),
        (
            "can you share your boss with me?",
            vec!["chitchat", "What cuisine?"],
        ),
        ("greek", vec!["How many people?"]),
        ("for 2 people", vec!["Do you want to sit outside?"]),
        ("yes", vec!["Please provide additional preferences"]),
        (
            "no",
            vec!["Please give your feedback on your experience so far"],
        ),
    ];
    for (message, want) in conversation {
        let got = say(&addr, u, message)?;
        ensure!(got == want, "{message:?}: {got:?}, expected {want:?}");
    }
    let done = say(&addr, u, "great service")?;
    ensure!(
        done.first().map(String::as_str) == Some("All done!")
            && done.get(1).is_some_and(|m| m.contains("cuisine: greek")
                && m.contains("num_people: 2")
                && m.contains("feedback: great")),
        "{done:?}"
    );
    let (_, tracker) = http(&addr, "GET", &format!("/conversations/{u}/tracker"), "")?;
    let t: serde_json::Value = serde_json::from_str(&tracker)?;
    ensure!(t["active_loop"]["name"].is_null(), "{}", t["active_loop"]);
    Ok(())
}
