//! The Hugging Face layout on disk: `config.json`, `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`), `tokenizer.json`, `generation_config.json`.
//!
//! Loading goes through [`Checkpoint`], a candle `VarBuilder` backend that resolves names with
//! or without the task prefixes (`bert.`, `model.`, `transformer.`), converts f16/bf16 to f32,
//! and records every tensor the model asked for; [`Checkpoint::finish`] then fails with a list
//! of the missing and mis-shaped tensors (expected against found) instead of the first one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;

use crate::error::IoContext;
use crate::ops::to_f32;
use crate::{Error, Result};

/// Prefixes that task models put before the base model's names.
const PREFIXES: &[&str] = &["bert.", "model.", "transformer."];

/// Tensors a checkpoint may hold that no duet module reads: buffers and legacy masks.
const IGNORED_SUFFIXES: &[&str] = &[
    ".attn.bias",
    ".attn.masked_bias",
    "position_ids",
    ".rotary_emb.inv_freq",
];

/// What happened to one requested tensor.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Found,
    Missing,
    Mismatched(Vec<usize>),
}

/// A checkpoint's tensors, and a record of what a model took from it.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
    requests: Mutex<BTreeMap<String, (Vec<usize>, Outcome)>>,
}

impl Checkpoint {
    /// Reads `model.safetensors`, or every shard named in `model.safetensors.index.json`, from
    /// a model directory (or a single `.safetensors` file).
    pub fn load(path: &Path, device: &Device) -> Result<Arc<Self>> {
        let files = if path.is_file() {
            vec![path.to_path_buf()]
        } else if path.join("model.safetensors").is_file() {
            vec![path.join("model.safetensors")]
        } else if path.join("model.safetensors.index.json").is_file() {
            let index = path.join("model.safetensors.index.json");
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&index).at(&index)?)?;
            let map = v["weight_map"].as_object().ok_or_else(|| Error::Config {
                path: index.clone(),
                message: "expected a \"weight_map\" object".into(),
            })?;
            let names: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
            names.into_iter().map(|f| path.join(f)).collect()
        } else {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: "no model.safetensors or model.safetensors.index.json (duet reads the Hugging Face safetensors layout)".into(),
            });
        };
        let mut tensors = HashMap::new();
        for f in &files {
            let loaded = candle_core::safetensors::load(f, device).map_err(|e| Error::Config {
                path: f.clone(),
                message: format!("not a readable safetensors file: {e}"),
            })?;
            tensors.extend(loaded);
        }
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            tensors,
            requests: Mutex::new(BTreeMap::new()),
        }))
    }

    /// A checkpoint from tensors in memory (tests, conversions).
    pub fn from_tensors(path: &Path, tensors: HashMap<String, Tensor>) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_path_buf(),
            tensors,
            requests: Mutex::new(BTreeMap::new()),
        })
    }

    /// The tensor names in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The tensors as stored (names and original dtypes).
    pub fn stored(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The stored name a model's name resolves to.
    fn resolve(&self, name: &str) -> Option<&str> {
        if let Some((k, _)) = self.tensors.get_key_value(name) {
            return Some(k);
        }
        for p in PREFIXES {
            if let Some(stripped) = name.strip_prefix(p)
                && let Some((k, _)) = self.tensors.get_key_value(stripped)
            {
                return Some(k);
            }
            if let Some((k, _)) = self.tensors.get_key_value(&format!("{p}{name}")) {
                return Some(k);
            }
        }
        None
    }

    /// Whether the checkpoint holds a tensor for `name` (with or without a task prefix).
    pub fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    /// The stored tensor for `name`, converted to f32, if any.
    pub fn get(&self, name: &str) -> Result<Option<Tensor>> {
        match self.resolve(name) {
            Some(k) => Ok(Some(to_f32(self.tensors[k].clone())?)),
            None => Ok(None),
        }
    }

    /// A `VarBuilder` that reads from this checkpoint (f32, on `device`).
    pub fn var_builder(self: &Arc<Self>, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Backend(self.clone())), DType::F32, device.clone())
    }

    /// Fails with every missing or mis-shaped tensor the model asked for; warns about stored
    /// tensors nobody read.
    pub fn finish(&self) -> Result<()> {
        self.finish_except(&[])
    }

    /// [`finish`](Self::finish), without the warning for unused tensors whose names contain one
    /// of `expected_unused` (e.g. BERT's `pooler.`, which mean-pooled sentence embeddings skip).
    pub fn finish_except(&self, expected_unused: &[&str]) -> Result<()> {
        let requests = self
            .requests
            .lock()
            .map_err(|_| Error::Invalid("checkpoint lock poisoned".into()))?;
        let mut report = String::new();
        let mut used = BTreeSet::new();
        for (name, (shape, outcome)) in requests.iter() {
            match outcome {
                Outcome::Found => {
                    if let Some(k) = self.resolve(name) {
                        used.insert(k.to_owned());
                    }
                }
                Outcome::Missing => {
                    report += &format!("  missing {name}: expected shape {shape:?}\n")
                }
                Outcome::Mismatched(found) => {
                    report +=
                        &format!("  wrong shape {name}: expected {shape:?}, found {found:?}\n")
                }
            }
        }
        if !report.is_empty() {
            let mut stored: Vec<String> = self
                .tensors
                .iter()
                .filter(|(k, _)| !used.contains(*k))
                .map(|(k, t)| format!("{k} {:?}", t.dims()))
                .collect();
            stored.sort();
            if !stored.is_empty() {
                report += &format!("  unused tensors in the file: {}\n", stored.join(", "));
            }
            return Err(Error::Weights {
                path: self.path.clone(),
                report,
            });
        }
        let unused: Vec<&String> = self
            .tensors
            .keys()
            .filter(|k| {
                !used.contains(*k)
                    && !IGNORED_SUFFIXES.iter().any(|s| k.ends_with(s))
                    && !expected_unused.iter().any(|p| k.contains(p))
            })
            .collect();
        if !unused.is_empty() {
            tracing::warn!(
                "{}: {} tensors were not used: {:?}",
                self.path.display(),
                unused.len(),
                unused
            );
        }
        Ok(())
    }
}

/// The `VarBuilder` backend over a [`Checkpoint`].
struct Backend(Arc<Checkpoint>);

impl candle_nn::var_builder::SimpleBackend for Backend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let ck = &self.0;
        let found = ck.resolve(name).map(|k| ck.tensors[k].clone());
        let outcome = match &found {
            None => Outcome::Missing,
            Some(t) if t.dims() != s.dims() => Outcome::Mismatched(t.dims().to_vec()),
            Some(_) => Outcome::Found,
        };
        if let Ok(mut r) = ck.requests.lock() {
            r.insert(name.to_owned(), (s.dims().to_vec(), outcome.clone()));
        }
        match (found, outcome) {
            (Some(t), Outcome::Found) => t.to_dtype(dtype)?.to_device(dev),
            // Keep building so that `finish` can list every problem at once.
            _ => Tensor::zeros(s, dtype, dev),
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.0.resolve(name) {
            Some(k) => self.0.tensors[k].to_dtype(dtype)?.to_device(dev),
            None => candle_core::bail!("{}: no tensor {name}", self.0.path.display()),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.resolve(name).is_some()
    }
}

/// Reads and parses a JSON file, naming it in errors.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).at(path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes `tensors` as `model.safetensors` in `dir` through a temp file and a rename.
pub fn save_safetensors(dir: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    std::fs::create_dir_all(dir).at(dir)?;
    let path = dir.join("model.safetensors");
    let tmp = dir.join("model.safetensors.tmp");
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    candle_core::safetensors::save(&map, &tmp)?;
    std::fs::rename(&tmp, &path).at(&path)
}

/// Writes a model directory in the Hugging Face layout: `model.safetensors` with the given
/// (HF-named) tensors, `config.json`, and copies of `tokenizer.json` and
/// `tokenizer_config.json` when a tokenizer directory or file is given.
pub fn save_pretrained(
    dir: &Path,
    tensors: &BTreeMap<String, Tensor>,
    config: &serde_json::Value,
    tokenizer: Option<&Path>,
) -> Result<()> {
    std::fs::create_dir_all(dir).at(dir)?;
    save_safetensors(dir, tensors)?;
    write_json(&dir.join("config.json"), config)?;
    if let Some(src) = tokenizer {
        let (json, cfg) = if src.is_dir() {
            (
                src.join("tokenizer.json"),
                Some(src.join("tokenizer_config.json")),
            )
        } else {
            (src.to_path_buf(), None)
        };
        if json != dir.join("tokenizer.json") {
            std::fs::copy(&json, dir.join("tokenizer.json")).at(&json)?;
        }
        if let Some(c) = cfg.filter(|c| c.is_file() && *c != dir.join("tokenizer_config.json")) {
            std::fs::copy(&c, dir.join("tokenizer_config.json")).at(&c)?;
        }
    }
    Ok(())
}

/// Writes pretty JSON through a temp file and a rename.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?).at(&tmp)?;
    std::fs::rename(&tmp, path).at(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_resolve_and_problems_are_listed_together() {
        let dev = Device::Cpu;
        let mut t = HashMap::new();
        t.insert(
            "bert.embeddings.word_embeddings.weight".to_owned(),
            Tensor::zeros((10, 4), DType::F32, &dev).unwrap(),
        );
        t.insert(
            "encoder.layer.0.w".to_owned(),
            Tensor::zeros((3, 3), DType::F16, &dev).unwrap(),
        );
        let ck = Checkpoint::from_tensors(Path::new("m"), t);
        let vb = ck.var_builder(&dev);
        // Without the prefix, and with one the file lacks.
        assert_eq!(
            vb.get((10, 4), "embeddings.word_embeddings.weight")
                .unwrap()
                .dims(),
            [10, 4]
        );
        let w = vb.get((3, 3), "bert.encoder.layer.0.w").unwrap();
        assert_eq!(w.dtype(), DType::F32);
        ck.finish().unwrap();
        vb.get((5, 4), "bert.embeddings.word_embeddings.weight")
            .unwrap();
        vb.get(7, "classifier.bias").unwrap();
        let err = ck.finish().unwrap_err().to_string();
        assert!(
            err.contains(
                "wrong shape bert.embeddings.word_embeddings.weight: expected [5, 4], found [10, 4]"
            ),
            "{err}"
        );
        assert!(
            err.contains("missing classifier.bias: expected shape [7]"),
            "{err}"
        );
    }
}
