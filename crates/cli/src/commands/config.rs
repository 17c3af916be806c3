//! Loading a TOML config file and applying `--set key.path=value` overrides before the typed
//! config is deserialised, so every key can be set from the command line.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Starts from the type's defaults, merges `file` (if any) over them, applies the overrides in
/// order, and deserialises the result. Starting from the whole default value keeps a section's
/// own defaults (e.g. the fine-tuning recipe of `[train]` in a classify config) when a file or
/// an override sets only some of its keys.
pub fn load<T: DeserializeOwned + Serialize + Default>(
    file: Option<&Path>,
    overrides: &[String],
) -> Result<T> {
    let mut table =
        toml::Table::try_from(T::default()).context("writing the default configuration")?;
    let from_file = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<toml::Table>(&text)
                .with_context(|| format!("{}: invalid TOML", path.display()))?
        }
        None => toml::Table::new(),
    };
    merge(&mut table, from_file);
    for o in overrides {
        set(&mut table, o)?;
    }
    let what = file.map_or_else(
        || "the command line".to_owned(),
        |p| p.display().to_string(),
    );
    toml::Value::Table(table)
        .try_into()
        .with_context(|| format!("invalid configuration in {what}"))
}

/// Merges `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Applies one `a.b.c=value` override; the value is parsed as TOML, or taken as a string.
pub fn set(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let Some((key, raw)) = assignment.split_once('=') else {
        bail!("--set expects key.path=value, found {assignment:?}");
    };
    let value = parse_value(raw.trim());
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set: empty key segment in {key:?}");
    }
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry((*p).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("--set {key}: {p} is not a table"),
        };
    }
    cur.insert(parts[parts.len() - 1].to_owned(), value);
    Ok(())
}

/// A command-line value as TOML (`3`, `0.5`, `true`, `["en","zh"]`), else a plain string.
fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_nest_and_parse_types() {
        let mut t = toml::Table::new();
        set(&mut t, "dedup.threshold=0.7").unwrap();
        set(&mut t, "filters.language.allow=[\"en\"]").unwrap();
        set(&mut t, "input.text_field=body").unwrap();
        assert_eq!(t["dedup"]["threshold"].as_float(), Some(0.7));
        assert_eq!(t["filters"]["language"]["allow"][0].as_str(), Some("en"));
        assert_eq!(t["input"]["text_field"].as_str(), Some("body"));
        assert!(set(&mut t, "novalue").is_err());
        assert!(set(&mut t, "dedup.threshold.x=1").is_err());
    }
}
