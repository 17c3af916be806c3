//! The frameworks people use against OpenAI-compatible servers — langchain-openai (chat,
//! `bind_tools`, an agent loop, `with_structured_output` by function calling and by JSON schema), instructor
//! (TOOLS and JSON_SCHEMA modes) and litellm — run against the server over TCP with a tiny
//! random model (`tests/clients/frameworks.py`). Skipped, saying why, without `python3`.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, ensure};
use duet_serve::engine::EngineConfig;

/// A venv with `tests/clients/requirements.txt`, made once per target directory.
fn python() -> Result<Option<PathBuf>> {
    if Command::new("python3").arg("--version").output().is_err() {
        return Ok(None);
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clients-python");
    let py = venv.join("bin/python");
    let reqs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/requirements.txt");
    let stamp = venv.join("requirements.txt");
    if std::fs::read(&stamp).ok() != Some(std::fs::read(&reqs)?) {
        let out = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()?;
        ensure!(
            out.status.success(),
            "python3 -m venv: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "-r"])
            .arg(&reqs)
            .output()?;
        ensure!(
            out.status.success(),
            "installing {}: {}",
            reqs.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::copy(&reqs, &stamp)?;
    }
    Ok(Some(py))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn langchain_instructor_and_litellm_work_against_the_server() -> Result<()> {
    let Some(py) = python()? else {
        eprintln!("SKIPPED: no python3 for the client frameworks");
        return Ok(());
    };
    let s = util::server(vec![], EngineConfig::default())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(duet_serve::serve(listener, s.state.clone(), async {
        let _ = stopped.await;
    }));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/frameworks.py");
    let run = {
        let url = url.clone();
        move || {
            Command::new(&py)
                .arg(&script)
                .args([url.as_str(), "llama"])
                .output()
        }
    };
    let out = tokio::task::spawn_blocking(run).await??;
    let _ = stop.send(());
    server.await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(stdout.contains("all checks passed"), "{stdout}");
    Ok(())
}
