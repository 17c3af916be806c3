//! Commands: actions that run a program or call an HTTP endpoint, declared in the project's
//! `commands.yml` — the allow-list: nothing else can run. Arguments are fixed templates whose
//! `{slot}` places are filled with slot values, each value one whole argument (a program is
//! started directly, never through a shell; a URL gets the value percent-encoded), bounded in
//! length and stripped of control characters. Output is bounded; a JSON object's keys that are
//! slots of the domain set those slots; the declared response is rendered with the slots and
//! `{output}`.
//!
//! ```yaml
//! commands:
//!   action_order_lookup:
//!     program: scripts/order-status.sh      # relative to the project, or absolute
//!     args: ["--order", "{order_id}"]
//!     timeout: 5
//!     response: utter_order_lookup
//!   action_stock:
//!     http: {method: GET, url: "http://127.0.0.1:8000/stock/{product}"}
//!     response: utter_stock
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result, io};

/// Longest slot value passed to a command, in characters.
pub const MAX_ARG: usize = 256;
/// Most output read from a command.
pub const MAX_OUTPUT: usize = 64 * 1024;

pub use crate::project::{CommandDecl, Commands, HttpCall};

/// A slot value made safe to pass: a string without control characters, at most [`MAX_ARG`]
/// characters.
pub fn clean_value(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_ARG)
        .collect()
}

/// Fills `{slot}` places of a template; `encode` percent-encodes each value (for URLs).
pub fn fill(template: &str, slots: &BTreeMap<String, Value>, encode: bool) -> String {
    let mut vals = BTreeMap::new();
    for (k, v) in slots {
        let c = clean_value(v);
        let c = if encode {
            c.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        } else {
            c
        };
        vals.insert(k.clone(), Value::String(c));
    }
    crate::actions::fill_template(template, &vals)
}

/// What a command gave back.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Its standard output (or HTTP body), trimmed and bounded.
    pub text: String,
    /// The output parsed as a JSON object, if it is one.
    pub json: Option<serde_json::Map<String, Value>>,
}

/// Runs command `name` of `project` with the conversation's slots.
pub fn run(
    decl: &CommandDecl,
    name: &str,
    project: &Path,
    slots: &BTreeMap<String, Value>,
) -> Result<Output> {
    let timeout = Duration::from_secs_f64(decl.timeout.unwrap_or(5.0).clamp(0.1, 300.0));
    let fail = |why: String| Error::Model(format!("command {name}: {why}"));
    let text = match (&decl.program, &decl.http) {
        (Some(program), None) => {
            let path = PathBuf::from(program);
            let path = if path.is_absolute() {
                path
            } else {
                project.join(path)
            };
            // Absolute, since the child starts in the project folder.
            let path = path
                .canonicalize()
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            let args: Vec<String> = decl.args.iter().map(|a| fill(a, slots, false)).collect();
            let mut child = Command::new(&path)
                .args(&args)
                .current_dir(project)
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| fail(format!("cannot start {}: {e}", path.display())))?;
            let mut stdout = child.stdout.take();
            let reader = std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(out) = stdout.as_mut() {
                    let _ = out.take(MAX_OUTPUT as u64).read_to_end(&mut buf);
                }
                buf
            });
            let start = Instant::now();
            let status = loop {
                match child.try_wait().map_err(io(&path))? {
                    Some(s) => break s,
                    None if start.elapsed() > timeout => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(fail(format!("no answer within {timeout:?}; stopped")));
                    }
                    None => std::thread::sleep(Duration::from_millis(10)),
                }
            };
            let buf = reader.join().unwrap_or_default();
            if !status.success() {
                return Err(fail(format!("{} exited with {status}", path.display())));
            }
            String::from_utf8_lossy(&buf).trim().to_owned()
        }
        (None, Some(h)) => {
            let url = fill(&h.url, slots, true);
            let agent = ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .timeout_global(Some(timeout))
                    .http_status_as_error(false)
                    .build(),
            );
            let resp = match h.method.to_uppercase().as_str() {
                "GET" => agent.get(&url).call(),
                "POST" => agent.post(&url).send_empty(),
                m => return Err(fail(format!("method {m} is not GET or POST"))),
            };
            let mut resp = resp.map_err(|e| fail(format!("{url}: {e}")))?;
            let status = resp.status().as_u16();
            let body = resp
                .body_mut()
                .with_config()
                .limit(MAX_OUTPUT as u64)
                .read_to_string()
                .map_err(|e| fail(format!("{url}: {e}")))?;
            if status >= 400 {
                return Err(fail(format!("{url}: HTTP {status}")));
            }
            body.trim().to_owned()
        }
        _ => return Err(fail("give exactly one of `program` and `http`".into())),
    };
    let json = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.as_object().cloned());
    Ok(Output { text, json })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cleaned_bounded_and_encoded() {
        let mut s = BTreeMap::new();
        s.insert("x".to_owned(), Value::String("a b/..;\n$(rm)".into()));
        s.insert("long".to_owned(), Value::String("y".repeat(1000)));
        assert_eq!(fill("{x}", &s, false), "a b/..;$(rm)");
        assert_eq!(fill("/q/{x}", &s, true), "/q/a%20b%2F..%3B%24%28rm%29");
        assert_eq!(fill("{long}", &s, false).len(), MAX_ARG);
    }
}
