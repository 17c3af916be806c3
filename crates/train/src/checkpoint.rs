//! Checkpoints: `checkpoints/step-NNNNNNN/` holds the model in the Hugging Face layout,
//! `optimizer.safetensors` and `trainer_state.json`. A checkpoint is written into a hidden
//! temporary directory and renamed into place, and `trainer_state.json` is written last, so a
//! run killed at any moment leaves the previous checkpoints whole and loadable.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::{Error, Result};

/// What the trainer needs, beside the weights and the optimizer, to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: usize,
    /// Tokens (or examples) trained on.
    pub seen: u64,
    /// Best value of the early-stopping metric so far.
    pub best: Option<f64>,
    /// The step of `best`.
    pub best_step: usize,
    /// Evaluations since the last improvement.
    pub bad_evals: usize,
    /// The dropout generator.
    pub dropout_rng: rand_pcg::Pcg32,
    /// The data loader's position and generator.
    pub data: serde_json::Value,
    /// SHA-256 of the resolved configuration (a resumed run must use the same).
    pub config_sha256: String,
}

/// The directory of the checkpoint at `step`.
pub fn dir_for(run: &Path, step: usize) -> PathBuf {
    run.join("checkpoints").join(format!("step-{step:07}"))
}

/// Writes a checkpoint: `write_model` fills the model files, then the optimizer state and the
/// trainer state follow, and the directory is renamed into place.
pub fn write(
    run: &Path,
    state: &TrainerState,
    optimizer: &std::collections::BTreeMap<String, candle_core::Tensor>,
    write_model: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let parent = run.join("checkpoints");
    std::fs::create_dir_all(&parent).at(&parent)?;
    let tmp = parent.join(format!(".tmp-step-{:07}", state.step));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).at(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).at(&tmp)?;
    write_model(&tmp)?;
    let map: std::collections::HashMap<String, candle_core::Tensor> = optimizer
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    candle_core::safetensors::save(&map, tmp.join("optimizer.safetensors"))?;
    let state_path = tmp.join("trainer_state.json");
    std::fs::write(&state_path, serde_json::to_vec_pretty(state)?).at(&state_path)?;
    for f in std::fs::read_dir(&tmp).at(&tmp)? {
        let p = f.at(&tmp)?.path();
        std::fs::File::open(&p).and_then(|f| f.sync_all()).at(&p)?;
    }
    let dst = dir_for(run, state.step);
    if dst.exists() {
        std::fs::remove_dir_all(&dst).at(&dst)?;
    }
    std::fs::rename(&tmp, &dst).at(&dst)?;
    Ok(dst)
}

/// The finished checkpoints of a run, oldest first.
pub fn list(run: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let parent = run.join("checkpoints");
    if !parent.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(&parent).at(&parent)? {
        let p = e.at(&parent)?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<usize>().ok())
            && p.join("trainer_state.json").is_file()
        {
            out.push((step, p));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes all but the newest `keep` checkpoints (and leftovers of interrupted writes).
pub fn prune(run: &Path, keep: usize) -> Result<()> {
    let all = list(run)?;
    for (_, p) in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        std::fs::remove_dir_all(p).at(p)?;
    }
    let parent = run.join("checkpoints");
    for e in std::fs::read_dir(&parent).at(&parent)? {
        let p = e.at(&parent)?.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
        {
            std::fs::remove_dir_all(&p).at(&p)?;
        }
    }
    Ok(())
}

/// Reads a checkpoint's trainer state.
pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let p = dir.join("trainer_state.json");
    let bytes = std::fs::read(&p).map_err(|e| Error::Checkpoint {
        path: dir.to_path_buf(),
        reason: format!("no readable trainer_state.json: {e}"),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
        path: dir.to_path_buf(),
        reason: format!("trainer_state.json: {e}"),
    })
}

/// Copies a model directory's files (not the optimizer or trainer state) into `dst`, replacing
/// it, through a temporary name.
pub fn publish_model(src: &Path, dst: &Path) -> Result<()> {
    let tmp = dst.with_file_name(format!(
        ".tmp-{}",
        dst.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).at(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).at(&tmp)?;
    for e in std::fs::read_dir(src).at(src)? {
        let p = e.at(src)?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "optimizer.safetensors" || name == "trainer_state.json" || !p.is_file() {
            continue;
        }
        std::fs::copy(&p, tmp.join(&name)).at(&p)?;
    }
    if dst.exists() {
        std::fs::remove_dir_all(dst).at(dst)?;
    }
    std::fs::rename(&tmp, dst).at(dst)
}
