//! An explicit training path for GPT-2-layout decoders on the CPU: hand-written forward and
//! backward kernels over buffers allocated once, matrix products through `gemm`. candle's
//! autograd allocates every intermediate and reduces broadcast gradients on one thread; for the
//! small networks a CPU trains, that overhead is most of a step (see shared/CANDLE-NOTES.md).

pub mod bert;
pub mod gpt2;
pub mod kernels;
pub mod matmul;

use std::collections::BTreeMap;

use candle_core::{CpuStorage, Storage, Tensor};
use candle_nn::VarMap;

use crate::{Error, Result};

/// Read access to the parameters as f32 slices, by name.
pub(crate) struct Params<'a> {
    map: BTreeMap<&'a str, &'a [f32]>,
}

impl<'a> Params<'a> {
    /// The parameter `name`.
    pub(crate) fn get(&self, name: &str) -> Result<&'a [f32]> {
        self.map
            .get(name)
            .copied()
            .ok_or_else(|| Error::Config(format!("the explicit path found no parameter {name}")))
    }
}

/// Runs `f` over the parameters of `varmap` and `fixed` (weights that are read but not
/// trained, such as frozen layers), then turns the gradients it returns for `varmap`'s
/// variables into tensors of their shapes.
pub(crate) fn with_params(
    varmap: &VarMap,
    fixed: &BTreeMap<String, Tensor>,
    f: impl FnOnce(&Params) -> Result<(f32, BTreeMap<String, Vec<f32>>)>,
) -> Result<(f32, BTreeMap<String, Tensor>)> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Config("varmap lock poisoned".into()))?;
    let tensors: Vec<(&String, &Tensor)> = data
        .iter()
        .map(|(n, v)| (n, v.as_tensor()))
        .chain(fixed.iter())
        .collect();
    let guards: Vec<_> = tensors
        .iter()
        .map(|(_, t)| t.storage_and_layout())
        .collect();
    let mut map = BTreeMap::new();
    for ((name, _), (g, layout)) in tensors.iter().zip(&guards) {
        let Storage::Cpu(CpuStorage::F32(s)) = &**g else {
            return Err(Error::Config(format!(
                "the explicit path needs f32 CPU parameters ({name} is not)"
            )));
        };
        let (a, b) = layout
            .contiguous_offsets()
            .ok_or_else(|| Error::Config(format!("{name} is not contiguous")))?;
        map.insert(name.as_str(), &s[a..b]);
    }
    let (loss, grads) = f(&Params { map })?;
    let dev = candle_core::Device::Cpu;
    let mut out = BTreeMap::new();
    for (name, var) in data.iter() {
        if let Some(g) = grads.get(name.as_str()) {
            out.insert(name.clone(), Tensor::from_slice(g, var.shape(), &dev)?);
        }
    }
    Ok((loss, out))
}
