//! Checkpoints as safetensors: tensors `<layer>.kernel` / `<layer>.bias` in Keras layouts, and
//! metadata naming the model, the format version, the epoch and the seed.

use crate::models::{self, ModelKind};
use crate::sequential::Sequential;
use crate::{fsutil, Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Bumped when names, layouts or metadata change incompatibly.
pub const FORMAT_VERSION: &str = "1";

#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointInfo {
    pub model: ModelKind,
    pub epoch: usize,
    pub seed: u64,
}

/// Writes the model's weights to `path` atomically.
pub fn save(path: &Path, model: &Sequential, info: &CheckpointInfo) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = model
        .params()
        .map(|(layer, p)| {
            let raw = p.value.iter().flat_map(|v| v.to_le_bytes()).collect();
            (format!("{layer}.{}", p.name), raw, p.shape.clone())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, raw, shape)| TensorView::new(Dtype::F32, shape.clone(), raw).map(|v| (name.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| checkpoint_err(path, format!("cannot encode: {e}")))?;
    let metadata = HashMap::from([
        ("model".to_string(), info.model.name().to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("epoch".to_string(), info.epoch.to_string()),
        ("seed".to_string(), info.seed.to_string()),
    ]);
    let out = safetensors::serialize(views, &Some(metadata))
        .map_err(|e| checkpoint_err(path, format!("cannot encode: {e}")))?;
    fsutil::write_bytes_atomic(path, &out)
}

fn checkpoint_err(path: &Path, reason: String) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), reason }
}

/// Reads a checkpoint: builds the model it names and loads every tensor, checking names,
/// dtypes and shapes. `expect` rejects a checkpoint of another model.
pub fn load(path: &Path, expect: Option<ModelKind>) -> Result<(Sequential, CheckpointInfo)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        checkpoint_err(path, format!("not a valid safetensors file ({e}); is it truncated or corrupt?"))
    })?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| checkpoint_err(path, e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let field = |key: &str| {
        meta.get(key)
            .cloned()
            .ok_or_else(|| checkpoint_err(path, format!("metadata has no `{key}`; not written by this program?")))
    };
    let version = field("format_version")?;
    if version != FORMAT_VERSION {
        return Err(checkpoint_err(path, format!("format_version {version}, this program reads {FORMAT_VERSION}")));
    }
    let model_kind: ModelKind = field("model")?.parse().map_err(|e: Error| checkpoint_err(path, e.to_string()))?;
    if let Some(want) = expect.filter(|&w| w != model_kind) {
        return Err(checkpoint_err(path, format!("holds the `{model_kind}` model, expected `{want}`")));
    }
    let parse_num =
        |key: &str| field(key)?.parse::<u64>().map_err(|e| checkpoint_err(path, format!("metadata `{key}`: {e}")));
    let info = CheckpointInfo { model: model_kind, epoch: parse_num("epoch")? as usize, seed: parse_num("seed")? };
    let mut model = models::build(model_kind, info.seed)?;
    load_weights(path, &st, &mut model)?;
    Ok((model, info))
}

fn load_weights(path: &Path, st: &SafeTensors, model: &mut Sequential) -> Result<()> {
    let names: Vec<String> = model.params().map(|(l, p)| format!("{l}.{}", p.name)).collect();
    for (name, p) in names.iter().zip(model.params_mut()) {
        let t = st.tensor(name).map_err(|_| checkpoint_err(path, format!("missing tensor `{name}`")))?;
        if t.dtype() != Dtype::F32 {
            return Err(checkpoint_err(path, format!("tensor `{name}` has dtype {:?}, expected F32", t.dtype())));
        }
        if t.shape() != p.shape.as_slice() {
            return Err(checkpoint_err(
                path,
                format!("tensor `{name}` has shape {:?}, expected {:?}", t.shape(), p.shape),
            ));
        }
        for (v, b) in p.value.iter_mut().zip(t.data().chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    if st.names().len() != names.len() {
        return Err(checkpoint_err(path, format!("holds {} tensors, the model has {}", st.names().len(), names.len())));
    }
    Ok(())
}
