//! The training loop: Adam on MSE (or 1 − SSIM) over shuffled minibatches, validation every
//! epoch, and Keras EarlyStopping semantics (monitor val_loss or a validation SSIM, patience,
//! min_delta, restore the best weights).

pub mod callbacks;
pub mod loss;
pub mod optim;
pub mod tune;

use crate::data::{shuffle, Dataset, Split};
use crate::eval::{evaluate, Images, Scores};
use crate::models::{self, ModelKind, INPUT_SHAPE};
use crate::profile::{Profile, Stage};
use crate::sequential::Sequential;
use crate::{Error, Result, Tensor};
use kernels::bf16::Precision;
use optim::{Adam, AdamConfig};

use callbacks::{EarlyStopping, ReduceLrOnPlateau, Verdict};
use loss::Loss;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Every value a training run depends on, besides the data and the thread count (which does
/// not change results).
///
/// `TrainConfig::recipe` gives the complete sets the `train` flags are laid over (`new`: the
/// tuned recipe, `reference`: Keras's); `validate` names the flag of any value training cannot
/// run with. The run state and `report.json` record it whole, and `--resume` reads it back, so
/// a field added later needs a `serde(default)` that means what runs before it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: ModelKind,
    /// Absent from runs saved before the loss could be chosen: those trained on MSE.
    #[serde(default)]
    pub loss: Loss,
    /// Maximum number of epochs.
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    /// Decoupled weight decay (Keras `Adam(weight_decay=...)`); 0 for plain Adam.
    #[serde(default)]
    pub weight_decay: f32,
    pub patience: usize,
    pub min_delta: f64,
    /// Epochs without an improvement of the monitored figure before the learning rate is multiplied by
    /// `reduce_lr_factor` (Keras `ReduceLROnPlateau`); 0 keeps it constant.
    #[serde(default)]
    pub reduce_lr_patience: usize,
    #[serde(default = "default_reduce_lr_factor")]
    pub reduce_lr_factor: f32,
    /// The learning rate is never reduced below this (and `cosine` and `onecycle` end there).
    #[serde(default)]
    pub min_lr: f32,
    pub seed: u64,
    /// How the learning rate moves (absent from runs saved before: constant, or plateau when
    /// `reduce_lr_patience` > 0).
    #[serde(default)]
    pub schedule: Schedule,
    /// Epochs of linear warmup from 0 to `lr` at the start (for `onecycle`: its rising phase).
    #[serde(default)]
    pub warmup_epochs: usize,
    /// Decay of an exponential moving average of the weights (Polyak averaging) updated after
    /// every step, lower while the run is young (`ema_decay`); validation, test and the saved
    /// best model use the average. 0: off.
    #[serde(default)]
    pub ema: f32,
    /// What early stopping, the restored best weights and `ReduceLROnPlateau` follow (absent
    /// from runs saved before it could be chosen: the validation loss).
    #[serde(default)]
    pub monitor: Monitor,
    /// The recipe the values were laid over (`--recipe`); runs saved before recipes existed
    /// trained on Keras's, `reference`.
    #[serde(default = "Recipe::before_recipes")]
    pub recipe: Recipe,
    /// The precision of the convolutions' products (`kernels::bf16`); absent from runs saved
    /// before it could be chosen: f32.
    #[serde(default, with = "precision_name")]
    pub precision: Precision,
}

/// `Precision` in the run state and `report.json`, by its name (`f32`, `bf16`).
pub(crate) mod precision_name {
    use kernels::bf16::Precision;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Precision, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Precision, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A complete set of training values that `train`'s flags are laid over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    /// The best measured within 20 epochs (see README's Recipes): MSE plus SSIM as the loss,
    /// batch 16, a cosine decay after one warmup epoch, decoupled weight decay, a moving
    /// average of the weights, and the epoch of best validation SSIM restored.
    Tuned,
    /// The reference Keras notebook's: Adam at a constant 1e-3, batch 64, up to 50 epochs with
    /// early stopping after 5 without a val_loss improvement.
    Reference,
}

impl Recipe {
    pub const ALL: [Recipe; 2] = [Recipe::Tuned, Recipe::Reference];

    pub fn name(self) -> &'static str {
        match self {
            Recipe::Tuned => "tuned",
            Recipe::Reference => "reference",
        }
    }

    fn before_recipes() -> Recipe {
        Recipe::Reference
    }
}

by_name!(Recipe, "--recipe");

/// The learning-rate schedule of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// `lr` throughout (after any warmup); with `reduce_lr_patience` > 0, as `plateau`.
    #[default]
    Constant,
    /// Keras's ReduceLROnPlateau (`reduce_lr_patience`, `reduce_lr_factor`, `min_lr`).
    Plateau,
    /// After the warmup, a half cosine from `lr` down to `min_lr` at the last step of `epochs`.
    Cosine,
    /// Smith and Topin's one-cycle, beta1 not cycled: a half cosine up from `lr / 25` to `lr`
    /// over the warmup (default 30% of the steps), then a half cosine down to `min_lr` at the
    /// last step of `epochs`.
    OneCycle,
}

impl Schedule {
    pub const ALL: [Schedule; 4] = [Schedule::Constant, Schedule::Plateau, Schedule::Cosine, Schedule::OneCycle];

    pub fn name(self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Plateau => "plateau",
            Schedule::Cosine => "cosine",
            Schedule::OneCycle => "onecycle",
        }
    }

    /// The rate of step `t` (0-based, counted over the whole run) of `total`, for a run whose
    /// current base rate is `base` (what ReduceLROnPlateau changed, for constant and plateau).
    pub fn rate(self, cfg: &TrainConfig, base: f32, t: usize, total: usize, steps_per_epoch: usize) -> f32 {
        let warm = cfg.warmup_epochs * steps_per_epoch;
        let half_cos = |from: f64, to: f64, x: f64| to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * x).cos());
        let (lr, min) = (f64::from(cfg.lr), f64::from(cfg.min_lr));
        // Progress through a phase of `len` steps starting at `start`: 1 at its last step.
        let progress = |start: usize, len: usize| if len <= 1 { 1.0 } else { (t - start) as f64 / (len - 1) as f64 };
        let rate = match self {
            Schedule::Constant | Schedule::Plateau => {
                let ramp = if t < warm { (t + 1) as f64 / warm as f64 } else { 1.0 };
                f64::from(base) * ramp
            }
            Schedule::Cosine if t < warm => lr * (t + 1) as f64 / warm as f64,
            Schedule::Cosine => half_cos(lr, min, progress(warm, total - warm)),
            Schedule::OneCycle => {
                let rise = if warm > 0 { warm } else { (total * 3).div_ceil(10) };
                if t < rise {
                    half_cos(lr / 25.0, lr, progress(0, rise))
                } else {
                    half_cos(lr, min, progress(rise, total - rise))
                }
            }
        };
        rate as f32
    }
}

by_name!(Schedule, "--schedule");

/// The validation figure a run follows for early stopping, its best weights and
/// `ReduceLROnPlateau` (Keras's `monitor`). With the MSE loss the two can disagree at the end
/// of a run: validation MSE turns up while validation SSIM still rises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// The validation loss (Keras's default).
    #[default]
    ValLoss,
    /// Validation `ssim` (Gaussian, `tf.image.ssim`), what `tune` ranks trials by.
    ValSsim,
    /// Validation `ssim_uniform7` (scikit-image's default).
    ValSsimUniform7,
}

impl Monitor {
    pub const ALL: [Monitor; 3] = [Monitor::ValLoss, Monitor::ValSsim, Monitor::ValSsimUniform7];

    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValLoss => "val_loss",
            Monitor::ValSsim => "val_ssim",
            Monitor::ValSsimUniform7 => "val_ssim_uniform7",
        }
    }

    /// The followed figure of `epoch` as a loss, lower is better (an SSIM as 1 - SSIM), so
    /// early stopping and `min_delta` work on it unchanged.
    pub fn of(self, epoch: &EpochStats) -> f64 {
        match self {
            Monitor::ValLoss => epoch.val_loss,
            Monitor::ValSsim => 1.0 - epoch.val_ssim,
            Monitor::ValSsimUniform7 => 1.0 - epoch.val_ssim_uniform7,
        }
    }
}

by_name!(Monitor, "--monitor");

/// Halving, for configurations saved before the schedule existed and for new ones.
pub fn default_reduce_lr_factor() -> f32 {
    0.5
}

impl TrainConfig {
    /// The defaults of `autoencoder train`: the tuned recipe.
    pub fn new(model: ModelKind) -> Self {
        TrainConfig::recipe(model, Recipe::Tuned)
    }

    /// The values of `recipe` for `model`.
    pub fn recipe(model: ModelKind, recipe: Recipe) -> Self {
        let reference = TrainConfig::reference(model);
        match recipe {
            Recipe::Reference => reference,
            Recipe::Tuned => TrainConfig {
                // The scores measure structure; MSE alone reaches them far later.
                loss: Loss::MseSsim,
                epochs: 20,
                batch_size: 16,
                lr: 1.1e-3,
                weight_decay: 0.15,
                // A fixed budget: the patience only guards against a run that stops improving.
                patience: 20,
                schedule: Schedule::Cosine,
                warmup_epochs: 1,
                min_lr: 1e-5,
                ema: 0.999,
                // The score, not the MSE, picks the weights (the MSE turns up first).
                monitor: Monitor::ValSsim,
                recipe,
                ..reference
            },
        }
    }

    /// The reference Keras notebook's recipe.
    pub fn reference(model: ModelKind) -> Self {
        let adam = AdamConfig::default();
        TrainConfig {
            model,
            loss: Loss::Mse,
            epochs: 50,
            batch_size: 64,
            lr: adam.lr,
            beta1: adam.beta1,
            beta2: adam.beta2,
            epsilon: adam.eps,
            weight_decay: 0.0,
            patience: 5,
            min_delta: 0.0,
            reduce_lr_patience: 0,
            reduce_lr_factor: default_reduce_lr_factor(),
            min_lr: 0.0,
            seed: 42,
            schedule: Schedule::Constant,
            warmup_epochs: 0,
            ema: 0.0,
            monitor: Monitor::ValLoss,
            recipe: Recipe::Reference,
            precision: Precision::F32,
        }
    }

    /// The `autoencoder train` flags that set every value of this configuration, whatever the
    /// defaults: how a search's trial, or any run, is repeated alone.
    pub fn train_flags(&self) -> String {
        format!("--model {} --recipe {} {} --seed {}", self.model, self.recipe, self.value_flags(), self.seed)
    }

    /// The flags of every value but the model, the recipe and the seed.
    pub fn value_flags(&self) -> String {
        format!(
            "--loss {} --epochs {} --batch-size {} --lr {} --beta1 {} --weight-decay {} --patience {} \
             --min-delta {} --schedule {} --reduce-lr-patience {} --reduce-lr-factor {} --min-lr {} \
             --warmup-epochs {} --ema {} --monitor {} --precision {}",
            self.loss,
            self.epochs,
            self.batch_size,
            self.lr,
            self.beta1,
            self.weight_decay,
            self.patience,
            self.min_delta,
            self.schedule,
            self.reduce_lr_patience,
            self.reduce_lr_factor,
            self.min_lr,
            self.warmup_epochs,
            self.ema,
            self.monitor,
            self.precision
        )
    }

    /// Rejects values training cannot run with, naming the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, expected: &str, found: String| {
            Err(Error::InvalidArgument { name, expected: expected.to_string(), found })
        };
        if self.epochs == 0 {
            return bad("--epochs", "at least 1", self.epochs.to_string());
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return bad("--batch-size", &format!("1 to {MAX_BATCH_SIZE}"), self.batch_size.to_string());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("--lr", "a positive number", self.lr.to_string());
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("--beta1/--beta2", "in [0, 1)", format!("{} / {}", self.beta1, self.beta2));
        }
        if !(self.min_delta.is_finite() && self.min_delta >= 0.0) {
            return bad("--min-delta", "a number >= 0", self.min_delta.to_string());
        }
        if !(self.reduce_lr_factor > 0.0 && self.reduce_lr_factor < 1.0) {
            return bad("--reduce-lr-factor", "in (0, 1)", self.reduce_lr_factor.to_string());
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("--weight-decay", "a number >= 0", self.weight_decay.to_string());
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0) {
            return bad("--min-lr", "a number >= 0", self.min_lr.to_string());
        }
        let decays = matches!(self.schedule, Schedule::Cosine | Schedule::OneCycle);
        if decays && self.reduce_lr_patience > 0 {
            return bad(
                "--reduce-lr-patience",
                &format!("0 with --schedule {}", self.schedule),
                self.reduce_lr_patience.to_string(),
            );
        }
        if self.schedule == Schedule::Plateau && self.reduce_lr_patience == 0 {
            return bad("--reduce-lr-patience", "at least 1 with --schedule plateau", "0".to_string());
        }
        if decays && self.min_lr > self.lr {
            return bad(
                "--min-lr",
                &format!("at most --lr ({}) for a decaying schedule", self.lr),
                self.min_lr.to_string(),
            );
        }
        if !(0.0..1.0).contains(&self.ema) {
            return bad("--ema", "a decay in [0, 1) (0: off)", self.ema.to_string());
        }
        if self.warmup_epochs >= self.epochs && self.warmup_epochs > 0 {
            return bad(
                "--warmup-epochs",
                &format!("fewer than --epochs ({})", self.epochs),
                self.warmup_epochs.to_string(),
            );
        }
        Ok(())
    }
}

/// What happened in one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_ssim: f64,
    pub val_ssim_uniform7: f64,
    pub seconds: f64,
    /// Training images per second in this epoch (validation excluded).
    pub images_per_s: f64,
    /// The learning rate of this epoch (runs saved before the schedule existed: 0, unknown).
    #[serde(default)]
    pub lr: f32,
}

/// Validation `ssim_uniform7` levels whose first crossing `report.json` records: the
/// reference notebook's test 0.918, then 0.925, 0.930 and 0.935.
pub const MILESTONES: [f64; 4] = [0.918, 0.925, 0.930, 0.935];

/// When a run first reached a validation `ssim_uniform7` level: the epoch, and the seconds of
/// training and validation up to the end of it (`None` if never).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Milestone {
    pub val_ssim_uniform7: f64,
    pub epoch: Option<usize>,
    pub wall_s: Option<f64>,
}

/// The `MILESTONES` of `history`.
pub fn milestones(history: &[EpochStats]) -> Vec<Milestone> {
    MILESTONES
        .iter()
        .map(|&level| {
            let mut wall = 0.0;
            let hit = history.iter().find_map(|e| {
                wall += e.seconds;
                (e.val_ssim_uniform7 >= level).then_some((e.epoch, wall))
            });
            Milestone { val_ssim_uniform7: level, epoch: hit.map(|h| h.0), wall_s: hit.map(|h| h.1) }
        })
        .collect()
}

/// Everything besides the current weights that a run needs to continue exactly where it
/// stopped: saved after every epoch and on interrupt (see `checkpoint::save_state`).
#[derive(Clone, Debug)]
pub struct RunState {
    /// Epochs fully done.
    pub epoch: usize,
    /// Steps already done in epoch `epoch + 1` (non-zero only after an interrupt).
    pub step: usize,
    /// Sum over those steps of batch loss times batch size.
    pub loss_sum: f64,
    /// Training seconds and images so far, validation excluded (for images/s only).
    pub train_secs: f64,
    pub train_images: usize,
    /// Its `config.lr` is the current learning rate.
    pub adam: Adam,
    pub stopper: EarlyStopping,
    pub plateau: ReduceLrOnPlateau,
    pub history: Vec<EpochStats>,
    /// Weights of the best epoch so far, in `Sequential::params` order.
    pub best_weights: Vec<Vec<f32>>,
    /// The moving average of the weights (`TrainConfig::ema` > 0; else empty).
    pub ema_weights: Vec<Vec<f32>>,
    /// Early stopping has ended the run.
    pub stopped_early: bool,
    /// Loss of the run's very first batch, on the untrained model: an epoch whose mean training
    /// loss is `DIVERGED_FACTOR` times it or more has diverged.
    pub initial_loss: f64,
    /// The kernel path (`kernels::isa`) the run started on; `None` for states saved before it
    /// was recorded. Paths may differ in the last bits, so a resume on another path is not
    /// bitwise the uninterrupted run.
    pub kernel_path: Option<String>,
    /// Whether the run's bf16 products started on AMX (`kernels::amx`), which sums in another
    /// order than `VDPBF16PS` on the same path; `None` in f32 and for states saved before it
    /// was recorded.
    pub bf16_amx: Option<bool>,
    /// The data the run trains on (`None` for states saved before it was recorded, and for
    /// runs the library trains without one).
    pub data: Option<crate::data::DataRecord>,
}

impl RunState {
    /// The state of a run that has not started, for `model`'s initial weights.
    pub fn new(cfg: &TrainConfig, model: &Sequential) -> Self {
        let adam_cfg = AdamConfig {
            lr: cfg.lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.epsilon,
            weight_decay: cfg.weight_decay,
        };
        RunState {
            epoch: 0,
            step: 0,
            loss_sum: 0.0,
            train_secs: 0.0,
            train_images: 0,
            adam: Adam::new(adam_cfg, model),
            stopper: EarlyStopping::new(cfg.patience, cfg.min_delta),
            plateau: ReduceLrOnPlateau::new(cfg.reduce_lr_patience, cfg.reduce_lr_factor, cfg.min_lr, cfg.min_delta),
            history: Vec::new(),
            best_weights: snapshot(model),
            ema_weights: if cfg.ema > 0.0 { snapshot(model) } else { Vec::new() },
            stopped_early: false,
            initial_loss: f64::INFINITY,
            kernel_path: Some(kernels::isa::kernel_path().name().to_string()),
            bf16_amx: (cfg.precision == kernels::bf16::Precision::Bf16).then(kernels::amx::available),
            data: None,
        }
    }
}

/// How far an epoch's mean training loss must rise above the first batch's for the run to
/// have diverged. One batch is a noisy sample of the untrained model's loss: a run that had
/// barely moved in its first epoch (the SSIM loss on 100 images, warming up from a rate of 0)
/// ended it 0.3% above its first batch and was called diverged. Runs that blow up go far past
/// this, or to NaN (`Error::NonFinite`).
pub const DIVERGED_FACTOR: f64 = 1.25;

/// Largest batch `train` and `bench` accept: its activations and gradients take about 1.2 MB
/// per image for the modified model (5 GB at this size), and a larger batch aborted on a failed
/// allocation instead of giving an error.
pub const MAX_BATCH_SIZE: usize = 4096;

/// Progress reports, for a progress bar, per-epoch lines and saving state.
pub enum Progress<'a> {
    EpochStart {
        epoch: usize,
        steps: usize,
    },
    Step {
        step: usize,
        images: usize,
        running_loss: f64,
    },
    /// Validation is running.
    Validating,
    /// An epoch finished; `state.history` ends with `stats`. `improved` says it is the new
    /// best, whose weights `model` holds.
    EpochEnd {
        stats: &'a EpochStats,
        model: &'a Sequential,
        state: &'a RunState,
        improved: bool,
    },
    /// Training stopped at an interrupt request, after a whole step; save `model` and `state`
    /// to resume later. `train` then returns `Error::Interrupted`.
    Interrupted {
        model: &'a Sequential,
        state: &'a RunState,
    },
}

pub struct TrainOutcome {
    /// The model with the best epoch's weights restored.
    pub model: Sequential,
    pub history: Vec<EpochStats>,
    pub best_epoch: usize,
    pub stopped_early: bool,
    /// Wall time of the whole run, validation included.
    pub seconds: f64,
    /// Training images per second over all epochs (validation excluded).
    pub images_per_s: f64,
}

/// The generator for epoch `epoch`'s minibatch order: its own stream of the run's seed, so an
/// epoch's order does not depend on what ran before it.
fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64 + 1);
    rng
}

/// dst <- the model's weights (same shapes, no allocation): `restore`'s reverse.
fn copy_weights(model: &Sequential, dst: &mut [Vec<f32>]) {
    for (d, (_, p)) in dst.iter_mut().zip(model.params()) {
        d.copy_from_slice(&p.value);
    }
}

fn snapshot(model: &Sequential) -> Vec<Vec<f32>> {
    model.params().map(|(_, p)| p.value.clone()).collect()
}

/// The average's decay after `updates` earlier updates: `decay`, or less while the run is young,
/// min(decay, (1 + t) / (10 + t)) as TensorFlow's `ExponentialMovingAverage(num_updates)`, so
/// the average follows the fast-moving early weights instead of carrying the initial ones
/// (0.999 alone left 17% of them in the average after a 1,750-step epoch).
pub fn ema_decay(decay: f32, updates: usize) -> f32 {
    let t = updates as f32;
    decay.min((1.0 + t) / (10.0 + t))
}

/// ema <- decay ema + (1 - decay) w, for every parameter.
fn update_ema(model: &Sequential, ema: &mut [Vec<f32>], decay: f32) {
    for ((_, p), e) in model.params().zip(ema) {
        for (e, &w) in e.iter_mut().zip(&p.value) {
            *e = decay * *e + (1.0 - decay) * w;
        }
    }
}

/// Exchanges the model's weights with `other` (no copy, no allocation).
fn swap_weights(model: &mut Sequential, other: &mut [Vec<f32>]) {
    for (p, o) in model.params_mut().zip(other) {
        std::mem::swap(&mut p.value, o);
    }
}

fn restore(model: &mut Sequential, weights: &[Vec<f32>]) {
    for (p, w) in model.params_mut().zip(weights) {
        p.value.copy_from_slice(w);
    }
}

/// What a training step writes besides the model: the loss gradient and the loss's scratch,
/// owned by the caller and reused from step to step.
#[derive(Default)]
pub struct StepBuffers {
    /// d loss / d output, `[b, 28, 28, 1]`.
    pub dy: Tensor,
    loss_scratch: Vec<f64>,
}

/// One optimisation step on `batch` (the input is also the target): forward, `loss`, backward,
/// Adam. Returns the batch loss; when it is not finite the weights are left untouched.
pub fn train_step(model: &mut Sequential, adam: &mut Adam, loss: Loss, batch: &Tensor, bufs: &mut StepBuffers) -> f64 {
    train_step_timed(model, adam, loss, batch, bufs, &mut Profile::off())
}

/// `train_step`, charging every pass to `profile` (`bench --layers`).
pub fn train_step_timed(
    model: &mut Sequential,
    adam: &mut Adam,
    loss: Loss,
    batch: &Tensor,
    bufs: &mut StepBuffers,
    profile: &mut Profile,
) -> f64 {
    let y = model.forward_timed(batch, usize::MAX, profile);
    profile.enter(Stage::Loss);
    let dy = &mut bufs.dy;
    dy.reshape_for(batch.batch(), &batch.shape()[1..]);
    let value = loss.forward_backward(y.data(), batch.data(), dy.data_mut(), &mut bufs.loss_scratch);
    profile.lap(loss.name(), 0.0);
    if !value.is_finite() {
        return value;
    }
    model.backward_timed(dy, profile);
    profile.enter(Stage::Optimizer);
    adam.step(model);
    profile.lap("adam", 0.0);
    value
}

/// Trains on `split.train`, validating on `split.val` after every epoch: a fresh model from
/// `cfg.seed`, or, given `resume`, a run continued exactly where its state was saved. `on` sees
/// progress; an error it returns (say, a failed checkpoint write) stops training. When
/// `interrupt` becomes true, training stops after the current step, reports
/// `Progress::Interrupted` and returns `Error::Interrupted`.
pub fn train(
    cfg: &TrainConfig,
    data: &Dataset,
    split: &Split,
    resume: Option<(Sequential, RunState)>,
    interrupt: &AtomicBool,
    on: &mut dyn FnMut(Progress) -> Result<()>,
) -> Result<TrainOutcome> {
    cfg.validate()?;
    if split.train.is_empty() || split.val.is_empty() {
        return Err(Error::InvalidArgument {
            name: "data",
            expected: "at least one training and one validation image".to_string(),
            found: format!("{} / {}", split.train.len(), split.val.len()),
        });
    }
    let started = Instant::now();
    let (mut model, mut st) = match resume {
        Some((_, st)) if st.step.checked_mul(cfg.batch_size).is_none_or(|n| n >= split.train.len()) => {
            return Err(Error::InvalidArgument {
                name: "run state `step`",
                expected: format!("fewer than the {} steps of an epoch", split.train.len().div_ceil(cfg.batch_size)),
                found: st.step.to_string(),
            });
        }
        Some(resumed) => resumed,
        None => {
            let model = models::build(cfg.model, cfg.seed)?;
            let st = RunState::new(cfg, &model);
            (model, st)
        }
    };
    model.set_precision(cfg.precision);
    let mut order = split.train.clone();
    let mut batch = Tensor::default(); // [b, 28, 28, 1]
    let mut bufs = StepBuffers::default();
    let steps = split.train.len().div_ceil(cfg.batch_size);
    let total_steps = cfg.epochs * steps;

    while st.epoch < cfg.epochs && !st.stopped_early {
        let epoch = st.epoch + 1;
        if interrupt.load(Ordering::SeqCst) {
            on(Progress::Interrupted { model: &model, state: &st })?;
            return Err(Error::Interrupted { epoch, step: st.step });
        }
        let epoch_start = Instant::now();
        order.copy_from_slice(&split.train);
        shuffle(&mut order, &mut epoch_rng(cfg.seed, epoch));
        on(Progress::EpochStart { epoch, steps })?;
        let first_step = st.step;
        for (step, idx) in order.chunks(cfg.batch_size).enumerate().skip(first_step) {
            batch.reshape_for(idx.len(), &INPUT_SHAPE);
            data.fill_batch(idx, batch.data_mut());
            // This step's rate, from the run's position alone (so a resumed run gets the same);
            // adam.config.lr keeps the base rate that ReduceLROnPlateau moves.
            let (base, t) = (st.adam.config.lr, st.epoch * steps + step);
            st.adam.config.lr = cfg.schedule.rate(cfg, base, t, total_steps, steps);
            let loss = train_step(&mut model, &mut st.adam, cfg.loss, &batch, &mut bufs);
            st.adam.config.lr = base;
            if cfg.ema > 0.0 && loss.is_finite() {
                update_ema(&model, &mut st.ema_weights, ema_decay(cfg.ema, t));
            }
            if !loss.is_finite() {
                return Err(Error::NonFinite { what: "loss", epoch, step: step + 1 });
            }
            if st.epoch == 0 && step == 0 {
                st.initial_loss = loss;
            }
            st.loss_sum += loss * idx.len() as f64;
            st.step = step + 1;
            let done = (step * cfg.batch_size + idx.len()).min(order.len());
            on(Progress::Step { step: step + 1, images: done, running_loss: st.loss_sum / done as f64 })?;
            if interrupt.load(Ordering::SeqCst) && st.step < steps {
                st.train_secs += epoch_start.elapsed().as_secs_f64();
                st.train_images += done - (first_step * cfg.batch_size).min(order.len());
                on(Progress::Interrupted { model: &model, state: &st })?;
                return Err(Error::Interrupted { epoch, step: st.step });
            }
        }
        let train_loss = st.loss_sum / order.len() as f64;
        if train_loss > DIVERGED_FACTOR * st.initial_loss {
            return Err(Error::Diverged { epoch, loss: train_loss, initial: st.initial_loss });
        }
        let secs = epoch_start.elapsed().as_secs_f64();
        let images = order.len() - (first_step * cfg.batch_size).min(order.len());
        st.train_secs += secs;
        st.train_images += images;
        on(Progress::Validating)?;
        // With an average, validation and the best weights are the average's: swapped in for
        // them, swapped back before the epoch ends.
        if cfg.ema > 0.0 {
            swap_weights(&mut model, &mut st.ema_weights);
        }
        let val = evaluate(&mut model, Images::Subset(data, &split.val));
        if cfg.ema > 0.0 && val.is_err() {
            swap_weights(&mut model, &mut st.ema_weights);
        }
        let val: Scores = val?;
        let val_loss = cfg.loss.of(&val);
        if !val_loss.is_finite() {
            return Err(Error::NonFinite { what: "validation loss", epoch, step: steps });
        }
        st.history.push(EpochStats {
            epoch,
            train_loss,
            val_loss,
            val_ssim: val.ssim,
            val_ssim_uniform7: val.ssim_uniform7,
            seconds: epoch_start.elapsed().as_secs_f64(),
            images_per_s: images as f64 / secs.max(1e-9),
            // The rate of the epoch's last step.
            lr: cfg.schedule.rate(cfg, st.adam.config.lr, epoch * steps - 1, total_steps, steps),
        });
        let monitored = cfg.monitor.of(&st.history[st.history.len() - 1]);
        let verdict = st.stopper.update(epoch, monitored);
        let improved = verdict == Verdict::Improved;
        if improved {
            copy_weights(&model, &mut st.best_weights);
        }
        if cfg.ema > 0.0 {
            swap_weights(&mut model, &mut st.ema_weights);
        }
        st.stopped_early = verdict == Verdict::Stop;
        if let Some(lr) = st.plateau.update(monitored, st.adam.config.lr) {
            st.adam.config.lr = lr;
        }
        (st.epoch, st.step, st.loss_sum) = (epoch, 0, 0.0);
        let stats = &st.history[st.history.len() - 1];
        on(Progress::EpochEnd { stats, model: &model, state: &st, improved })?;
    }
    restore(&mut model, &st.best_weights);
    Ok(TrainOutcome {
        model,
        best_epoch: st.stopper.best_epoch,
        stopped_early: st.stopped_early,
        seconds: started.elapsed().as_secs_f64(),
        images_per_s: st.train_images as f64 / st.train_secs.max(1e-9),
        history: st.history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_warm_up_linearly_and_decay_to_min_lr_at_the_last_step() {
        let cfg = |schedule, warmup_epochs| TrainConfig {
            lr: 1e-3,
            min_lr: 1e-5,
            epochs: 4,
            schedule,
            warmup_epochs,
            ..TrainConfig::new(ModelKind::Modified)
        };
        let (steps, total) = (10, 40);
        let rates = |c: &TrainConfig| (0..total).map(|t| c.schedule.rate(c, c.lr, t, total, steps)).collect::<Vec<_>>();
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-6 * b.abs().max(1e-6);
        // Constant: the base rate, bitwise (what runs before schedules did); warmup ramps to it.
        assert!(rates(&cfg(Schedule::Constant, 0)).iter().all(|&r| r == 1e-3));
        let warm = rates(&cfg(Schedule::Constant, 1));
        assert!(close(warm[0], 1e-4) && close(warm[4], 5e-4) && warm[9] == 1e-3 && warm[39] == 1e-3, "{warm:?}");
        // Cosine after one warmup epoch: lr at the first step after it, min_lr at the last.
        let cos = rates(&cfg(Schedule::Cosine, 1));
        assert!(close(cos[9], 1e-3) && close(cos[10], 1e-3) && close(cos[39], 1e-5), "{cos:?}");
        assert!(cos[10..].windows(2).all(|w| w[1] <= w[0]), "cosine must not rise: {cos:?}");
        // One-cycle: lr/25 up to lr over 30% of the steps (12), then down to min_lr.
        let one = rates(&cfg(Schedule::OneCycle, 0));
        assert!(close(one[0], 4e-5) && close(one[11], 1e-3) && close(one[39], 1e-5), "{one:?}");
        assert!(one[..12].windows(2).all(|w| w[1] >= w[0]) && one[12..].windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn the_average_warms_up_to_its_decay() {
        assert_eq!(ema_decay(0.999, 0), 0.1);
        assert_eq!(ema_decay(0.999, 90), 0.91);
        assert_eq!(ema_decay(0.999, 8990), 0.999);
        assert_eq!(ema_decay(0.9, 1_000_000), 0.9);
    }

    #[test]
    fn milestones_are_the_first_epochs_at_each_level_with_wall_time_so_far() {
        let e = |epoch, u7, seconds| EpochStats {
            epoch,
            train_loss: 0.0,
            val_loss: 0.0,
            val_ssim: 0.0,
            val_ssim_uniform7: u7,
            seconds,
            images_per_s: 0.0,
            lr: 0.0,
        };
        let m = milestones(&[e(1, 0.90, 10.0), e(2, 0.926, 11.0), e(3, 0.92, 12.0), e(4, 0.931, 13.0)]);
        let got: Vec<_> = m.iter().map(|m| (m.epoch, m.wall_s)).collect();
        assert_eq!(got, [(Some(2), Some(21.0)), (Some(2), Some(21.0)), (Some(4), Some(46.0)), (None, None)]);
    }
}
