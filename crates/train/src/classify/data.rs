//! Labelled text: CSV/TSV (with a header naming `text` and `label`, or headerless
//! `label<TAB>text` as the SMS Spam Collection ships), JSONL (`{"text", "label", ...}`), or a
//! folder per label of text files (as BBC News ships). Files that are not UTF-8 are read as
//! Windows-1252, which is what such files almost always are. Other fields are kept for slicing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One labelled example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Stable id: `<file>#<row>` or the file path.
    pub id: String,
    /// The text.
    pub text: String,
    /// The label.
    pub label: String,
    /// Other fields of the record (for `--slice-by`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// Which fields hold the text and the label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fields {
    /// Text field (a name, or a 0-based column index for headerless files).
    pub text: String,
    /// Label field.
    pub label: String,
}

impl Default for Fields {
    fn default() -> Self {
        Self {
            text: "text".into(),
            label: "label".into(),
        }
    }
}

/// Decodes bytes as UTF-8, or as Windows-1252 when they are not UTF-8.
pub fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads labelled examples from a file or a folder per label.
pub fn load(path: &Path, fields: &Fields) -> Result<Vec<Example>> {
    if path.is_dir() {
        return load_folders(path);
    }
    let bytes = std::fs::read(path).map_err(io(path))?;
    let text = decode(&bytes);
    let name = path.to_string_lossy().to_lowercase();
    if name.ends_with(".jsonl") || name.ends_with(".json") {
        return load_jsonl(path, &text, fields);
    }
    let tab = name.ends_with(".tsv")
        || text
            .lines()
            .next()
            .is_some_and(|l| l.matches('\t').count() > l.matches(',').count());
    load_delimited(path, &text, fields, tab)
}

fn load_folders(dir: &Path) -> Result<Vec<Example>> {
    let mut labels: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    labels.sort();
    if labels.is_empty() {
        return Err(Error::Config(format!(
            "{}: a folder of labelled text needs one sub-folder per label",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    for l in labels {
        let label = l
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&l)
            .map_err(io(&l))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let text = decode(&std::fs::read(&f).map_err(io(&f))?);
            let rel = format!(
                "{label}/{}",
                f.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            out.push(Example {
                id: rel,
                text,
                label: label.clone(),
                fields: BTreeMap::new(),
            });
        }
    }
    Ok(out)
}

fn load_jsonl(path: &Path, text: &str, fields: &Fields) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| Error::Config(format!("{}:{}: {m}", path.display(), i + 1));
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        let get = |k: &str| -> Result<String> {
            match obj.get(k) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
                Some(serde_json::Value::Bool(b)) => Ok(b.to_string()),
                _ => Err(bad(format!("expected a string field {k:?}"))),
            }
        };
        let mut rest = BTreeMap::new();
        for (k, v) in obj {
            if k != &fields.text && k != &fields.label {
                rest.insert(
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                );
            }
        }
        let id = obj
            .get("id")
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            })
            .unwrap_or_else(|| format!("{}#{i}", file_name(path)));
        out.push(Example {
            id,
            text: get(&fields.text)?,
            label: get(&fields.label)?,
            fields: rest,
        });
    }
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn load_delimited(path: &Path, text: &str, fields: &Fields, tab: bool) -> Result<Vec<Example>> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(if tab { b'\t' } else { b',' })
        .quoting(!tab)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows: Vec<csv::StringRecord> = Vec::new();
    for (i, r) in rdr.records().enumerate() {
        rows.push(r.map_err(|e| Error::Config(format!("{}:{}: {e}", path.display(), i + 1)))?);
    }
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let header: Vec<String> = first.iter().map(|h| h.trim().to_owned()).collect();
    let find = |f: &str| header.iter().position(|h| h == f);
    let (ti, li, body, names) = match (find(&fields.text), find(&fields.label)) {
        (Some(t), Some(l)) => (t, l, &rows[1..], header.clone()),
        _ => {
            // No header naming the fields: indices, or `label<TAB>text` for two columns.
            let idx = |f: &str, default: usize| f.parse::<usize>().unwrap_or(default);
            if header.len() != 2
                && (fields.text.parse::<usize>().is_err() || fields.label.parse::<usize>().is_err())
            {
                return Err(Error::Config(format!(
                    "{}: no header naming {:?} and {:?}; the first row is {:?} (give the fields as column indices for a headerless file)",
                    path.display(),
                    fields.text,
                    fields.label,
                    header
                )));
            }
            (
                idx(&fields.text, 1),
                idx(&fields.label, 0),
                &rows[..],
                (0..header.len()).map(|i| format!("col{i}")).collect(),
            )
        }
    };
    let mut out = Vec::with_capacity(body.len());
    for (i, r) in body.iter().enumerate() {
        let (Some(t), Some(l)) = (r.get(ti), r.get(li)) else {
            return Err(Error::Config(format!(
                "{}: row {} has {} columns, expected at least {}",
                path.display(),
                i + 1,
                r.len(),
                ti.max(li) + 1
            )));
        };
        let mut rest = BTreeMap::new();
        for (j, v) in r.iter().enumerate() {
            if j != ti && j != li {
                rest.insert(
                    names.get(j).cloned().unwrap_or_else(|| format!("col{j}")),
                    v.to_owned(),
                );
            }
        }
        out.push(Example {
            id: format!("{}#{i}", file_name(path)),
            text: t.to_owned(),
            label: l.trim().to_owned(),
            fields: rest,
        });
    }
    Ok(out)
}

/// The sorted set of labels.
pub fn label_set(examples: &[Example]) -> Vec<String> {
    let mut l: Vec<String> = examples.iter().map(|e| e.label.clone()).collect();
    l.sort();
    l.dedup();
    l
}

/// A seeded, stratified split: the indices of the held-out examples (`share` of each label).
pub fn stratified_holdout(examples: &[Example], share: f64, seed: u64) -> Vec<usize> {
    let mut by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in examples.iter().enumerate() {
        by.entry(e.label.as_str()).or_default().push(i);
    }
    let mut rng = Pcg32::seed_from_u64(seed);
    let mut out = Vec::new();
    for idx in by.values_mut() {
        idx.shuffle(&mut rng);
        let n = (idx.len() as f64 * share).round() as usize;
        out.extend_from_slice(&idx[..n.min(idx.len())]);
    }
    out.sort_unstable();
    out
}

/// Indices of exact duplicates (case and whitespace ignored), one group per distinct text, in
/// order of first occurrence.
pub fn duplicate_groups(examples: &[Example]) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, e) in examples.iter().enumerate() {
        let key = e
            .text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        groups.entry(key).or_default().push(i);
    }
    let mut members: Vec<Vec<usize>> = groups.into_values().collect();
    // First-occurrence order, so splits do not depend on the texts' sort order.
    members.sort_by_key(|g| g[0]);
    members
}

/// A seeded, stratified test split that keeps exact duplicates together: texts equal after
/// lower-casing and collapsing whitespace form one group, and a group goes wholly to one side,
/// so no test text also occurs in training. Returns the test indices and the number of
/// examples that had a duplicate.
pub fn grouped_test_split(examples: &[Example], share: f64, seed: u64) -> (Vec<usize>, usize) {
    let members = duplicate_groups(examples);
    let duplicated = members.iter().filter(|g| g.len() > 1).map(Vec::len).sum();
    let heads: Vec<Example> = members.iter().map(|g| examples[g[0]].clone()).collect();
    let mut test: Vec<usize> = stratified_holdout(&heads, share, seed)
        .into_iter()
        .flat_map(|h| members[h].iter().copied())
        .collect();
    test.sort_unstable();
    (test, duplicated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sms.csv");
        std::fs::write(&p, "ham\tGo until jurong point\nspam\tWIN cash now\n").unwrap();
        let e = load(&p, &Fields::default()).unwrap();
        assert_eq!(
            (e[1].label.as_str(), e[1].text.as_str()),
            ("spam", "WIN cash now")
        );
        let p = dir.path().join("d.csv");
        std::fs::write(
            &p,
            "text,label,lang\n\"hello, world\",greet,en\nbye,leave,en\n",
        )
        .unwrap();
        let e = load(&p, &Fields::default()).unwrap();
        assert_eq!(
            (e[0].text.as_str(), e[0].fields["lang"].as_str()),
            ("hello, world", "en")
        );
        let p = dir.path().join("d.jsonl");
        std::fs::write(&p, "{\"text\":\"a\",\"label\":1}\n{\"label\":\"x\"}\n").unwrap();
        assert!(
            load(&p, &Fields::default())
                .unwrap_err()
                .to_string()
                .contains("d.jsonl:2")
        );
        let f = dir.path().join("news/tech");
        std::fs::create_dir_all(&f).unwrap();
        std::fs::write(f.join("1.txt"), b"caf\xe9 \x93quoted\x94").unwrap();
        let e = load(&dir.path().join("news"), &Fields::default()).unwrap();
        assert_eq!(e[0].text, "café “quoted”");
        assert_eq!(e[0].label, "tech");
    }

    #[test]
    fn duplicate_groups_ignore_case_and_spacing() {
        let ex = |t: &str| Example {
            id: t.into(),
            text: t.into(),
            label: "a".into(),
            fields: Default::default(),
        };
        let g = duplicate_groups(&[ex("Hi  there"), ex("other"), ex("hi there"), ex("x")]);
        assert_eq!(g, vec![vec![0, 2], vec![1], vec![3]]);
    }

    #[test]
    fn grouped_split_keeps_duplicates_together() {
        let ex: Vec<Example> = (0..200)
            .map(|i| Example {
                id: i.to_string(),
                text: format!("text {}", i % 150),
                label: if i % 150 < 20 { "spam" } else { "ham" }.into(),
                fields: BTreeMap::new(),
            })
            .collect();
        let (test, dup) = grouped_test_split(&ex, 0.2, 7);
        assert_eq!(dup, 100);
        let test_texts: std::collections::HashSet<&str> =
            test.iter().map(|&i| ex[i].text.as_str()).collect();
        for (i, e) in ex.iter().enumerate() {
            if !test.contains(&i) {
                assert!(!test_texts.contains(e.text.as_str()));
            }
        }
        assert_eq!(test, grouped_test_split(&ex, 0.2, 7).0);
        let spam = test.iter().filter(|&&i| ex[i].label == "spam").count();
        assert!(spam > 0 && spam < test.len());
    }

    #[test]
    fn holdout_is_stratified_and_stable() {
        let ex: Vec<Example> = (0..100)
            .map(|i| Example {
                id: i.to_string(),
                text: String::new(),
                label: if i % 10 == 0 {
                    "spam".into()
                } else {
                    "ham".into()
                },
                fields: BTreeMap::new(),
            })
            .collect();
        let h = stratified_holdout(&ex, 0.2, 3);
        assert_eq!(h.len(), 20);
        assert_eq!(h.iter().filter(|&&i| ex[i].label == "spam").count(), 2);
        assert_eq!(h, stratified_holdout(&ex, 0.2, 3));
    }
}
