//! `autoencoder compare`: the reference-style comparison table from runs' report.json files.

use anyhow::{Context, Result};
use autoencoder::run::RunRecord;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Run folders written by `autoencoder train`.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
}

/// Test SSIM the reference Keras notebook reported (scikit-image's default, uniform 7x7).
const REFERENCE: [(&str, f64); 2] = [("baseline", 0.8991), ("modified", 0.9180)];

pub fn run(args: CompareArgs) -> Result<()> {
    outln!(
        "| run | model | epochs (best) | test SSIM | test SSIM uniform7 | reference (uniform7) | test MSE | train img/s | wall time | recipe |"
    );
    outln!("|---|---|---|---|---|---|---|---|---|---|");
    for dir in &args.runs {
        let r = RunRecord::read(dir).with_context(|| {
            format!("cannot compare {} (hint: pass folders written by `autoencoder train`)", dir.display())
        })?;
        let reference =
            REFERENCE.iter().find(|(m, _)| *m == r.model.name()).map_or("-".to_string(), |(_, v)| format!("{v:.4}"));
        // A trial of `tune` is not scored on test (`"test": null`): dashes, not numbers.
        let test = |score: fn(&autoencoder::eval::Scores) -> f64, digits: usize| {
            r.test.as_ref().map_or("- (trial)".to_string(), |t| format!("{:.digits$}", score(t)))
        };
        outln!(
            "| {} | {} | {} ({}) | {} | {} | {} | {} | {:.0} | {:.0} s | {} |",
            dir.display(),
            r.model,
            r.epochs_run,
            r.best_epoch,
            test(|t| t.ssim, 4),
            test(|t| t.ssim_uniform7, 4),
            reference,
            test(|t| t.mse, 6),
            r.train_images_per_s,
            r.wall_time_s,
            r.hyperparameters.config.recipe,
        );
    }
    Ok(())
}
