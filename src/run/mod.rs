//! What lands on disk: the run folder (its file names, and `report.json` as [`RunRecord`]),
//! checkpoints and the run state, `.npy` arrays, PNG pictures, and the atomic writes and locks
//! that keep them whole.

pub mod checkpoint;
pub mod fsutil;
pub mod npy;
pub mod picture;

use crate::eval::Scores;
use crate::models::ModelKind;
use crate::train::loss::Loss;
use crate::train::{EpochStats, Milestone, TrainConfig};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The best epoch's weights (with `--ema`, the average's).
pub const BEST_FILE: &str = "best.safetensors";
/// The current weights, after the last finished epoch.
pub const LAST_FILE: &str = "last.safetensors";
/// Everything `--resume` needs, rewritten after every epoch.
pub const STATE_FILE: &str = "state.safetensors";
/// One row per epoch.
pub const METRICS_FILE: &str = "metrics.csv";
/// [`RunRecord`], written when the run ends.
pub const REPORT_FILE: &str = "report.json";
/// Originals above their reconstructions.
pub const RECONSTRUCTIONS_FILE: &str = "reconstructions.png";

/// The files a run writes; any of them present means a run is there.
pub const RUN_FILES: [&str; 6] = [BEST_FILE, LAST_FILE, STATE_FILE, METRICS_FILE, REPORT_FILE, RECONSTRUCTIONS_FILE];

/// A finished run's `report.json`: what `train` and `tune` write, and `compare` and `report`
/// read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub model: ModelKind,
    pub hyperparameters: Hyperparameters,
    pub epochs_run: usize,
    pub best_epoch: usize,
    #[serde(default)]
    pub stopped_early: bool,
    /// `None` for a trial of `tune`: a search scores only its best trial on test.
    pub test: Option<Scores>,
    /// Epoch times summed (training and validation), over every invocation of a resumed run.
    pub wall_time_s: f64,
    pub train_images_per_s: f64,
    /// Where the data came from (`Dataset::origin`).
    pub data: String,
    /// The kernel path (`avx512`, `avx2`, `portable`) the last invocation ran on.
    #[serde(default)]
    pub kernel_path: String,
    /// `Dataset::digest` of the data and split seed the run was scored on.
    #[serde(default)]
    pub data_digest: String,
    /// The first epoch (and wall seconds) at which validation ssim_uniform7 reached each of
    /// `train::MILESTONES`.
    #[serde(default)]
    pub milestones: Vec<Milestone>,
    pub history: Vec<EpochStats>,
    /// What a search adds (`best_trial`, `search`, `trials`, `search_wall_time_s`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The configuration, with the thread count it ran on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    #[serde(flatten)]
    pub config: TrainConfig,
    pub threads: usize,
}

impl RunRecord {
    /// The seed the run's data split used.
    pub fn seed(&self) -> u64 {
        self.hyperparameters.config.seed
    }

    /// What `history`'s train and validation losses measure.
    pub fn loss(&self) -> Loss {
        self.hyperparameters.config.loss
    }

    /// The learning rate of epoch `e`: runs saved before the rate was recorded per epoch (0)
    /// trained at a constant rate, their starting one.
    pub fn lr(&self, e: &EpochStats) -> f32 {
        if e.lr > 0.0 {
            e.lr
        } else {
            self.hyperparameters.config.lr
        }
    }

    /// Reads `dir/report.json`.
    pub fn read(dir: &Path) -> Result<RunRecord> {
        let path = dir.join(REPORT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Format {
            path,
            field: REPORT_FILE,
            expected: "the JSON `autoencoder train` writes (model, hyperparameters, epochs_run, best_epoch, test, \
                       wall_time_s, train_images_per_s, data, history)"
                .into(),
            found: e.to_string(),
        })
    }

    /// Writes `dir/report.json` atomically (a failure to serialise is one to write the file).
    pub fn write(&self, dir: &Path) -> Result<()> {
        fsutil::write_atomic(&dir.join(REPORT_FILE), |w| {
            serde_json::to_writer_pretty(&mut *w, self)?;
            w.write_all(b"\n")
        })
    }
}
