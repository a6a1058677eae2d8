//! Checkpoints and run state as safetensors.
//!
//! * A checkpoint (`best.safetensors`, `last.safetensors`) holds one f32 tensor per weight,
//!   `<layer>.kernel` / `<layer>.bias` in Keras layouts, with metadata naming the model, the
//!   format version, the epoch and the seed.
//! * A run state (`state.safetensors`) holds everything `train --resume` needs in one file, so
//!   one atomic write keeps it consistent: the current weights (`weights.<name>`), the best
//!   weights (`best.<name>`), Adam's moments (`adam_m.<name>`, `adam_v.<name>`), and as JSON
//!   metadata the configuration, the position in the run and the history.

use crate::models::{self, ModelKind};
use crate::run::fsutil;
use crate::sequential::Sequential;
use crate::train::callbacks::EarlyStopping;
use crate::train::{EpochStats, RunState, TrainConfig};
use crate::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Bumped when names, layouts or metadata change incompatibly.
pub const FORMAT_VERSION: &str = "1";

#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointInfo {
    pub model: ModelKind,
    pub epoch: usize,
    pub seed: u64,
    /// `Dataset::digest` of the data and split the weights were trained on (absent in
    /// checkpoints written before it was recorded).
    pub data_digest: Option<String>,
}

fn checkpoint_err(path: &Path, reason: String) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), reason }
}

/// `<layer>.<param>` for every parameter, in `Sequential::params` order.
fn param_names(model: &Sequential) -> Vec<String> {
    model.params().map(|(layer, p)| format!("{layer}.{}", p.name)).collect()
}

/// Serialises named f32 tensors and metadata and writes them to `path` atomically.
fn write(path: &Path, tensors: &[(String, &[f32], &[usize])], metadata: HashMap<String, String>) -> Result<()> {
    let raw: Vec<Vec<u8>> = tensors.iter().map(|(_, v, _)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&raw)
        .map(|((name, _, shape), bytes)| TensorView::new(Dtype::F32, shape.to_vec(), bytes).map(|v| (name.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| checkpoint_err(path, format!("cannot encode: {e}")))?;
    let mut out = safetensors::serialize(views, &Some(metadata))
        .map_err(|e| checkpoint_err(path, format!("cannot encode: {e}")))?;
    sort_header(&mut out).map_err(|e| checkpoint_err(path, format!("cannot encode: {e}")))?;
    fsutil::write_bytes_atomic(path, &out)
}

/// Rewrites a serialised file's JSON header with its keys sorted, in place. `safetensors`
/// writes the metadata map in hash order, so two identical runs gave files that differed byte
/// for byte; sorted, they are identical. Same keys and values, so the header keeps its length
/// (and padding) and every tensor offset stays valid.
fn sort_header(file: &mut [u8]) -> std::result::Result<(), String> {
    let len = file.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    let header = len.and_then(|n| file.get_mut(8..8 + n)).ok_or("no header")?;
    // serde_json's map is a BTreeMap: parsing and writing again sorts every object's keys.
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    let sorted = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    let text_len = header.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    if sorted.len() != text_len {
        return Err(format!("sorted header is {} bytes, not {text_len}", sorted.len()));
    }
    header[..text_len].copy_from_slice(&sorted);
    Ok(())
}

/// A parsed safetensors file: its bytes and its metadata.
struct File {
    bytes: Vec<u8>,
    meta: HashMap<String, String>,
}

impl File {
    fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        SafeTensors::deserialize(&bytes).map_err(|e| {
            checkpoint_err(path, format!("not a valid safetensors file ({e}); is it truncated or corrupt?"))
        })?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| checkpoint_err(path, e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        Ok(File { bytes, meta })
    }

    fn field(&self, path: &Path, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| checkpoint_err(path, format!("metadata has no `{key}`; not written by this program?")))
    }

    /// Checks the format version and returns the model the file is for.
    fn model(&self, path: &Path) -> Result<ModelKind> {
        let version = self.field(path, "format_version")?;
        if version != FORMAT_VERSION {
            return Err(checkpoint_err(path, format!("format_version {version}, this program reads {FORMAT_VERSION}")));
        }
        self.field(path, "model")?.parse().map_err(|e: Error| checkpoint_err(path, e.to_string()))
    }

    fn tensors(&self, path: &Path) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| checkpoint_err(path, e.to_string()))
    }
}

/// Copies tensor `name` into `out`, checking dtype and shape.
fn read_into(path: &Path, st: &SafeTensors, name: &str, shape: &[usize], out: &mut [f32]) -> Result<()> {
    let t = st.tensor(name).map_err(|_| checkpoint_err(path, format!("missing tensor `{name}`")))?;
    if t.dtype() != Dtype::F32 {
        return Err(checkpoint_err(path, format!("tensor `{name}` has dtype {:?}, expected F32", t.dtype())));
    }
    if t.shape() != shape {
        return Err(checkpoint_err(path, format!("tensor `{name}` has shape {:?}, expected {shape:?}", t.shape())));
    }
    for (v, b) in out.iter_mut().zip(t.data().chunks_exact(4)) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(())
}

/// Writes the model's weights to `path` atomically.
pub fn save(path: &Path, model: &Sequential, info: &CheckpointInfo) -> Result<()> {
    let weights: Vec<&[f32]> = model.params().map(|(_, p)| &p.value[..]).collect();
    save_weights(path, model, &weights, info)
}

/// Writes `weights` (one per parameter of `model`, in `Sequential::params` order: the best
/// epoch's, say) as a checkpoint of `model` to `path` atomically.
pub fn save_weights(path: &Path, model: &Sequential, weights: &[&[f32]], info: &CheckpointInfo) -> Result<()> {
    let names = param_names(model);
    let tensors: Vec<_> =
        names.iter().zip(model.params()).zip(weights).map(|((n, (_, p)), w)| (n.clone(), *w, &p.shape[..])).collect();
    let mut metadata = HashMap::from([
        ("model".to_string(), info.model.name().to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("epoch".to_string(), info.epoch.to_string()),
        ("seed".to_string(), info.seed.to_string()),
    ]);
    if let Some(digest) = &info.data_digest {
        metadata.insert("data_digest".to_string(), digest.clone());
    }
    write(path, &tensors, metadata)
}

/// Reads a checkpoint: builds the model it names and loads every tensor, checking names,
/// dtypes and shapes. `expect` rejects a checkpoint of another model.
pub fn load(path: &Path, expect: Option<ModelKind>) -> Result<(Sequential, CheckpointInfo)> {
    let file = File::read(path)?;
    let model_kind = file.model(path)?;
    if let Some(want) = expect.filter(|&w| w != model_kind) {
        return Err(checkpoint_err(path, format!("holds the `{model_kind}` model, expected `{want}`")));
    }
    let number = |key: &str| {
        file.field(path, key)?.parse::<u64>().map_err(|e| checkpoint_err(path, format!("metadata `{key}`: {e}")))
    };
    let info = CheckpointInfo {
        model: model_kind,
        epoch: number("epoch")? as usize,
        seed: number("seed")?,
        data_digest: file.meta.get("data_digest").cloned(),
    };
    let mut model = models::build(model_kind, info.seed)?;
    let st = file.tensors(path)?;
    let names = param_names(&model);
    if st.names().len() != names.len() {
        return Err(checkpoint_err(path, format!("holds {} tensors, the model has {}", st.names().len(), names.len())));
    }
    for (name, p) in names.iter().zip(model.params_mut()) {
        read_into(path, &st, name, &p.shape, &mut p.value)?;
    }
    Ok((model, info))
}

/// The run state's scalar part, stored as JSON metadata. Floats that may be infinite (the
/// best loss before the first epoch) or must round-trip bit-exactly are stored as bits.
#[derive(Serialize, Deserialize)]
struct StateMeta {
    config: TrainConfig,
    epoch: usize,
    step: usize,
    loss_sum_bits: u64,
    train_secs: f64,
    train_images: usize,
    adam_t: u64,
    best_bits: u64,
    best_epoch: usize,
    wait: usize,
    stopped_early: bool,
    initial_loss_bits: u64,
    history: Vec<EpochStats>,
    /// The current learning rate and the plateau count (absent in states saved before the
    /// schedule existed: the configured rate, no count).
    #[serde(default)]
    lr_bits: Option<u32>,
    #[serde(default)]
    plateau_best_bits: Option<u64>,
    #[serde(default)]
    plateau_wait: usize,
    #[serde(default)]
    kernel_path: Option<String>,
    #[serde(default)]
    bf16_amx: Option<bool>,
    #[serde(default)]
    data: Option<crate::data::DataRecord>,
}

/// Writes the run state (with the current weights of `model`) to `path` atomically.
pub fn save_state(path: &Path, cfg: &TrainConfig, model: &Sequential, state: &RunState) -> Result<()> {
    let names = param_names(model);
    let mut tensors = Vec::with_capacity(4 * names.len());
    for (i, (name, (_, p))) in names.iter().zip(model.params()).enumerate() {
        tensors.push((format!("weights.{name}"), &p.value[..], &p.shape[..]));
        tensors.push((format!("best.{name}"), &state.best_weights[i][..], &p.shape[..]));
        tensors.push((format!("adam_m.{name}"), &state.adam.m[i][..], &p.shape[..]));
        tensors.push((format!("adam_v.{name}"), &state.adam.v[i][..], &p.shape[..]));
        if let Some(ema) = state.ema_weights.get(i) {
            tensors.push((format!("ema.{name}"), &ema[..], &p.shape[..]));
        }
    }
    let meta = StateMeta {
        config: cfg.clone(),
        epoch: state.epoch,
        step: state.step,
        loss_sum_bits: state.loss_sum.to_bits(),
        train_secs: state.train_secs,
        train_images: state.train_images,
        adam_t: state.adam.t,
        best_bits: state.stopper.best.to_bits(),
        best_epoch: state.stopper.best_epoch,
        wait: state.stopper.wait,
        stopped_early: state.stopped_early,
        initial_loss_bits: state.initial_loss.to_bits(),
        history: state.history.clone(),
        lr_bits: Some(state.adam.config.lr.to_bits()),
        plateau_best_bits: Some(state.plateau.best.to_bits()),
        plateau_wait: state.plateau.wait,
        kernel_path: state.kernel_path.clone(),
        bf16_amx: state.bf16_amx,
        data: state.data.clone(),
    };
    let json = serde_json::to_string(&meta).map_err(|e| checkpoint_err(path, format!("cannot encode state: {e}")))?;
    let metadata = HashMap::from([
        ("model".to_string(), cfg.model.name().to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("state".to_string(), json),
    ]);
    write(path, &tensors, metadata)
}

/// What a run state must satisfy before training continues from it: a damaged or edited state
/// is an error naming the field, not a panic or an epoch of no images.
fn check_state(meta: &StateMeta) -> std::result::Result<(), String> {
    meta.config.validate().map_err(|e| format!("config: {e}"))?;
    let epochs = meta.config.epochs;
    if meta.epoch > epochs {
        return Err(format!("`epoch` is {}, beyond the run's {epochs} epochs", meta.epoch));
    }
    if meta.history.len() != meta.epoch {
        return Err(format!("`history` holds {} epochs, `epoch` says {}", meta.history.len(), meta.epoch));
    }
    // Far beyond any run (2^40 steps), and far from the counter's wrap-around.
    if meta.adam_t > 1 << 40 {
        return Err(format!("`adam_t` is {}, not a step count of a run", meta.adam_t));
    }
    if !(meta.train_secs.is_finite() && meta.train_secs >= 0.0) {
        return Err(format!("`train_secs` is {}", meta.train_secs));
    }
    if meta.history.iter().any(|h| !(h.train_loss.is_finite() && h.val_loss.is_finite())) {
        return Err("`history` holds a loss that is not finite".to_string());
    }
    Ok(())
}

/// The run state's JSON metadata, parsed and checked (`check_state`).
fn parse_state(json: &str) -> std::result::Result<StateMeta, String> {
    let meta: StateMeta = serde_json::from_str(json).map_err(|e| e.to_string())?;
    check_state(&meta)?;
    Ok(meta)
}

/// Whether `json` is run-state metadata that `load_state` accepts (the fuzz target's entry:
/// any text gives `Ok` or an error naming the field, never a panic).
pub fn check_state_json(json: &str) -> std::result::Result<(), String> {
    parse_state(json).map(|_| ())
}

/// Reads a run state: the configuration it was trained with, the model with its current
/// weights, and the rest of the state.
pub fn load_state(path: &Path) -> Result<(TrainConfig, Sequential, RunState)> {
    let file = File::read(path)?;
    let kind = file.model(path)?;
    let meta = parse_state(file.field(path, "state")?)
        .map_err(|reason| checkpoint_err(path, format!("metadata `state`: {reason}")))?;
    if meta.config.model != kind {
        return Err(checkpoint_err(path, "metadata names two different models".to_string()));
    }
    let cfg = meta.config;
    let mut model = models::build(kind, cfg.seed)?;
    let mut state = RunState::new(&cfg, &model);
    let st = file.tensors(path)?;
    let names = param_names(&model);
    for (i, (name, p)) in names.iter().zip(model.params_mut()).enumerate() {
        read_into(path, &st, &format!("weights.{name}"), &p.shape, &mut p.value)?;
        read_into(path, &st, &format!("best.{name}"), &p.shape, &mut state.best_weights[i])?;
        read_into(path, &st, &format!("adam_m.{name}"), &p.shape, &mut state.adam.m[i])?;
        read_into(path, &st, &format!("adam_v.{name}"), &p.shape, &mut state.adam.v[i])?;
        if let Some(ema) = state.ema_weights.get_mut(i) {
            read_into(path, &st, &format!("ema.{name}"), &p.shape, ema)?;
        }
    }
    state.epoch = meta.epoch;
    state.step = meta.step;
    state.loss_sum = f64::from_bits(meta.loss_sum_bits);
    state.train_secs = meta.train_secs;
    state.train_images = meta.train_images;
    state.adam.t = meta.adam_t;
    state.stopper = EarlyStopping {
        best: f64::from_bits(meta.best_bits),
        best_epoch: meta.best_epoch,
        wait: meta.wait,
        ..state.stopper
    };
    state.stopped_early = meta.stopped_early;
    state.initial_loss = f64::from_bits(meta.initial_loss_bits);
    state.history = meta.history;
    if let Some(bits) = meta.lr_bits {
        state.adam.config.lr = f32::from_bits(bits);
    }
    state.plateau.best = meta.plateau_best_bits.map_or(f64::INFINITY, f64::from_bits);
    state.plateau.wait = meta.plateau_wait;
    state.kernel_path = meta.kernel_path;
    state.bf16_amx = meta.bf16_amx;
    state.data = meta.data;
    Ok((cfg, model, state))
}
