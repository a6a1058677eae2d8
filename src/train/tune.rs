//! Seeded random search over training hyperparameters, and the results table.
//!
//! Trial `i`'s hyperparameters depend only on the search's seed and `i`, so a search can be
//! resumed, or extended with more trials, without changing the trials already run. Every trial
//! trains from the same initial weights on the same split: only the sampled hyperparameters differ.

use crate::models::ModelKind;
use crate::train::loss::Loss;
use crate::train::{default_reduce_lr_factor, EpochStats, Monitor, Schedule, TrainConfig, MAX_BATCH_SIZE};
use crate::{Error, Result};
use kernels::bf16::Precision;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The ranges a search samples from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// Learning rate, log-uniform in [lr_min, lr_max].
    pub lr_min: f32,
    pub lr_max: f32,
    pub batch_sizes: Vec<usize>,
    pub patiences: Vec<usize>,
    pub beta1s: Vec<f32>,
    /// Training losses (searches saved before this was a choice trained on MSE).
    #[serde(default = "mse_only")]
    pub losses: Vec<Loss>,
    /// `ReduceLROnPlateau` patiences (0: constant learning rate), each with `reduce_lr_factor`.
    #[serde(default = "constant_lr")]
    pub reduce_lr_patiences: Vec<usize>,
    #[serde(default = "default_reduce_lr_factor")]
    pub reduce_lr_factor: f32,
    /// Adam's decoupled weight decay.
    #[serde(default = "no_decay")]
    pub weight_decays: Vec<f32>,
    /// Learning-rate schedules (`constant` with a reduce-lr patience > 0 is `plateau`).
    #[serde(default = "constant_schedule")]
    pub schedules: Vec<Schedule>,
    /// Decays of the weights' moving average (0: off).
    #[serde(default = "no_decay")]
    pub emas: Vec<f32>,
    /// Fixed for every trial: epochs of warmup, and the floor of the rate.
    #[serde(default)]
    pub warmup_epochs: usize,
    #[serde(default)]
    pub min_lr: f32,
    /// Fixed for every trial: what its early stopping and best weights follow.
    #[serde(default)]
    pub monitor: Monitor,
    /// Fixed for every trial: the precision of the convolutions' products (absent from
    /// searches saved before it could be chosen: f32).
    #[serde(default, with = "super::precision_name")]
    pub precision: Precision,
}

fn constant_schedule() -> Vec<Schedule> {
    vec![Schedule::Constant]
}

fn no_decay() -> Vec<f32> {
    vec![0.0]
}

fn constant_lr() -> Vec<usize> {
    vec![0]
}

fn mse_only() -> Vec<Loss> {
    vec![Loss::Mse]
}

impl Default for SearchSpace {
    fn default() -> Self {
        SearchSpace {
            lr_min: 1e-4,
            lr_max: 3e-3,
            batch_sizes: vec![32, 64, 128],
            patiences: vec![3, 5, 8],
            beta1s: vec![0.9, 0.95],
            losses: mse_only(),
            reduce_lr_patiences: constant_lr(),
            reduce_lr_factor: default_reduce_lr_factor(),
            weight_decays: no_decay(),
            schedules: constant_schedule(),
            emas: no_decay(),
            warmup_epochs: 0,
            min_lr: 0.0,
            monitor: Monitor::ValLoss,
            precision: Precision::F32,
        }
    }
}

/// A whole search: what `tune` records so that `--resume` continues it unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuneConfig {
    pub model: ModelKind,
    pub trials: usize,
    /// Maximum epochs of each trial (early stopping usually ends it sooner).
    pub epochs: usize,
    /// Seed of the split, of every trial's initial weights and minibatch order, and of the sampling.
    pub seed: u64,
    pub space: SearchSpace,
}

impl TuneConfig {
    /// Rejects ranges a search cannot sample from, naming the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, expected: &str, found: String| {
            Err(Error::InvalidArgument { name, expected: expected.to_string(), found })
        };
        let s = &self.space;
        if self.trials == 0 {
            return bad("--trials", "at least 1", self.trials.to_string());
        }
        if !(s.lr_min.is_finite() && s.lr_min > 0.0 && s.lr_max.is_finite() && s.lr_max >= s.lr_min) {
            return bad("--lr-min/--lr-max", "0 < lr-min <= lr-max", format!("{} / {}", s.lr_min, s.lr_max));
        }
        if s.batch_sizes.is_empty() || s.batch_sizes.iter().any(|b| !(1..=MAX_BATCH_SIZE).contains(b)) {
            return bad(
                "--batch-sizes",
                &format!("a list of sizes from 1 to {MAX_BATCH_SIZE}"),
                format!("{:?}", s.batch_sizes),
            );
        }
        if s.patiences.is_empty() || s.patiences.contains(&0) {
            return bad("--patiences", "a list of patiences >= 1", format!("{:?}", s.patiences));
        }
        if s.beta1s.is_empty() || s.beta1s.iter().any(|b| !(0.0..1.0).contains(b)) {
            return bad("--beta1s", "a list of values in [0, 1)", format!("{:?}", s.beta1s));
        }
        if s.losses.is_empty() {
            return bad("--losses", "a list of losses (mse, ssim)", "nothing".to_string());
        }
        if s.reduce_lr_patiences.is_empty() {
            return bad("--reduce-lr-patiences", "a list of patiences (0: constant rate)", "nothing".to_string());
        }
        if s.weight_decays.is_empty() || s.weight_decays.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return bad("--weight-decays", "a list of values >= 0", format!("{:?}", s.weight_decays));
        }
        if s.schedules.is_empty() {
            return bad(
                "--schedules",
                "a list of schedules (constant, plateau, cosine, onecycle)",
                "nothing".to_string(),
            );
        }
        if s.emas.is_empty() || s.emas.iter().any(|e| !(0.0..1.0).contains(e)) {
            return bad("--emas", "a list of decays in [0, 1) (0: off)", format!("{:?}", s.emas));
        }
        // Every pairing a trial can draw (a cosine trial with a plateau patience, say) must run.
        let first = self.trial(1);
        for &schedule in &s.schedules {
            for &reduce_lr_patience in &s.reduce_lr_patiences {
                TrainConfig { schedule, reduce_lr_patience, ..first.clone() }.validate()?;
            }
        }
        Ok(())
    }

    /// The training configuration of trial `trial` (1-based).
    pub fn trial(&self, trial: usize) -> TrainConfig {
        // A stream of its own per trial, of a seed distinct from the training's.
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x7475_6e65_7475_6e65);
        rng.set_stream(trial as u64);
        let s = &self.space;
        let (lo, hi) = (s.lr_min.ln(), s.lr_max.ln());
        let lr = round_significant(((lo + (hi - lo) * rng.random::<f32>()).exp()).clamp(s.lr_min, s.lr_max), 3);
        let batch_size = s.batch_sizes[rng.random_range(0..s.batch_sizes.len())];
        let patience = s.patiences[rng.random_range(0..s.patiences.len())];
        let beta1 = s.beta1s[rng.random_range(0..s.beta1s.len())];
        // Drawn after the others, in the order they were added, so adding a dimension left
        // earlier searches' draws unchanged.
        let loss = s.losses[rng.random_range(0..s.losses.len())];
        let reduce_lr_patience = s.reduce_lr_patiences[rng.random_range(0..s.reduce_lr_patiences.len())];
        let weight_decay = s.weight_decays[rng.random_range(0..s.weight_decays.len())];
        let schedule = s.schedules[rng.random_range(0..s.schedules.len())];
        let ema = s.emas[rng.random_range(0..s.emas.len())];
        TrainConfig {
            weight_decay,
            loss,
            reduce_lr_patience,
            reduce_lr_factor: s.reduce_lr_factor,
            epochs: self.epochs,
            batch_size,
            lr,
            patience,
            beta1,
            seed: self.seed,
            schedule,
            ema,
            warmup_epochs: s.warmup_epochs,
            min_lr: s.min_lr,
            monitor: s.monitor,
            precision: s.precision,
            // The values a search does not draw are Keras's, as they were before recipes.
            ..TrainConfig::reference(self.model)
        }
    }
}

/// `x` rounded to `digits` significant digits, so a trial's learning rate can be typed back
/// into `train --lr` exactly.
fn round_significant(x: f32, digits: i32) -> f32 {
    let scale = 10f64.powi(digits - 1 - (x as f64).log10().floor() as i32);
    ((x as f64 * scale).round() / scale) as f32
}

/// One finished trial, scored at its best epoch (whose weights early stopping restored), or a
/// trial whose training failed (diverged, or a non-finite loss): a search goes on without it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// 1-based.
    pub trial: usize,
    pub lr: f32,
    pub batch_size: usize,
    pub patience: usize,
    pub beta1: f32,
    /// Trials saved before the loss was a choice trained on MSE.
    #[serde(default)]
    pub loss: Loss,
    #[serde(default)]
    pub reduce_lr_patience: usize,
    #[serde(default)]
    pub weight_decay: f32,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub ema: f32,
    /// Epochs completed (for a failed trial, before the one that failed).
    pub epochs_run: usize,
    pub best_epoch: usize,
    /// Validation scores at the best epoch; `None` for a failed trial.
    pub val_ssim: Option<f64>,
    pub val_ssim_uniform7: Option<f64>,
    pub val_loss: Option<f64>,
    /// Training and validation time summed over the trial's epochs.
    pub wall_time_s: f64,
    /// Why training failed, e.g. `diverged in epoch 3`; `None` for a trial that finished.
    #[serde(default)]
    pub failure: Option<String>,
}

impl TrialResult {
    /// Scores trial `trial` of configuration `cfg` from its epoch history.
    pub fn new(trial: usize, cfg: &TrainConfig, history: &[EpochStats], best_epoch: usize) -> Result<Self> {
        let best = history.iter().find(|s| s.epoch == best_epoch).ok_or_else(|| Error::InvalidArgument {
            name: "best_epoch",
            expected: "an epoch of the trial's history".to_string(),
            found: best_epoch.to_string(),
        })?;
        Ok(TrialResult {
            best_epoch,
            val_ssim: Some(best.val_ssim),
            val_ssim_uniform7: Some(best.val_ssim_uniform7),
            val_loss: Some(best.val_loss),
            ..TrialResult::unscored(trial, cfg, history)
        })
    }

    /// A trial whose training failed, for `failure`, after the epochs in `history`.
    pub fn failed(trial: usize, cfg: &TrainConfig, history: &[EpochStats], failure: String) -> Self {
        TrialResult { failure: Some(failure), ..TrialResult::unscored(trial, cfg, history) }
    }

    fn unscored(trial: usize, cfg: &TrainConfig, history: &[EpochStats]) -> Self {
        TrialResult {
            trial,
            lr: cfg.lr,
            batch_size: cfg.batch_size,
            patience: cfg.patience,
            beta1: cfg.beta1,
            loss: cfg.loss,
            reduce_lr_patience: cfg.reduce_lr_patience,
            weight_decay: cfg.weight_decay,
            schedule: cfg.schedule,
            ema: cfg.ema,
            epochs_run: history.len(),
            best_epoch: 0,
            val_ssim: None,
            val_ssim_uniform7: None,
            val_loss: None,
            wall_time_s: history.iter().fold(0.0, |t, s| t + s.seconds),
            failure: None,
        }
    }
}

/// Best first: by validation SSIM (Gaussian), failed trials last, ties to the earlier trial.
pub fn ranked(results: &[TrialResult]) -> Vec<&TrialResult> {
    let mut order: Vec<&TrialResult> = results.iter().collect();
    let score = |r: &TrialResult| r.val_ssim.unwrap_or(f64::NEG_INFINITY);
    order.sort_by(|a, b| score(b).total_cmp(&score(a)).then(a.trial.cmp(&b.trial)));
    order
}

/// The columns after the first twelve came later; they are last so that scripts reading
/// columns by position keep working.
const COLUMNS: [&str; 17] = [
    "trial",
    "lr",
    "batch_size",
    "patience",
    "beta1",
    "epochs_run",
    "best_epoch",
    "val_ssim",
    "val_ssim_uniform7",
    "val_loss",
    "wall_time_s",
    "status",
    "loss",
    "reduce_lr_patience",
    "weight_decay",
    "schedule",
    "ema",
];

fn cells(r: &TrialResult) -> [String; 17] {
    let score = |v: Option<f64>, digits: usize| v.map_or(String::new(), |v| format!("{v:.digits$}"));
    [
        r.trial.to_string(),
        r.lr.to_string(),
        r.batch_size.to_string(),
        r.patience.to_string(),
        r.beta1.to_string(),
        r.epochs_run.to_string(),
        r.best_epoch.to_string(),
        score(r.val_ssim, 6),
        score(r.val_ssim_uniform7, 6),
        score(r.val_loss, 7),
        format!("{:.1}", r.wall_time_s),
        r.failure.clone().unwrap_or_else(|| "ok".to_string()),
        r.loss.to_string(),
        r.reduce_lr_patience.to_string(),
        r.weight_decay.to_string(),
        r.schedule.to_string(),
        r.ema.to_string(),
    ]
}

/// `trials.csv`: one row per finished trial, best first.
pub fn trials_csv(results: &[TrialResult]) -> String {
    let mut csv = COLUMNS.join(",") + "\n";
    for r in ranked(results) {
        csv += &(cells(r).join(",") + "\n");
    }
    csv
}

/// The same table in Markdown, best first.
pub fn trials_markdown(results: &[TrialResult]) -> String {
    let mut md = format!("| {} |\n|{}\n", COLUMNS.join(" | "), "---|".repeat(COLUMNS.len()));
    for r in ranked(results) {
        md += &format!("| {} |\n", cells(r).join(" | "));
    }
    md
}
