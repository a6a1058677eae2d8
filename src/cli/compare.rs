//! `autoencoder compare`: the reference-style comparison table from runs' report.json files.

use anyhow::{Context, Result};
use serde_json::Value;
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
        "| run | model | epochs (best) | test SSIM | test SSIM uniform7 | reference (uniform7) | test MSE | train img/s | wall time |"
    );
    outln!("|---|---|---|---|---|---|---|---|---|");
    for dir in &args.runs {
        let path = dir.join("report.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("cannot read {} (hint: pass folders written by `autoencoder train`)", path.display())
        })?;
        let r: Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        let num = |v: &Value, what: &str| {
            v.as_f64().with_context(|| format!("{}: missing or non-numeric `{what}`", path.display()))
        };
        let model = r["model"].as_str().with_context(|| format!("{}: missing `model`", path.display()))?;
        let reference = REFERENCE.iter().find(|(m, _)| *m == model).map_or("-".to_string(), |(_, v)| format!("{v:.4}"));
        // A trial of `tune` is not scored on test (`"test": null`): dashes, not numbers.
        let test = |key: &str, digits: usize| -> Result<String> {
            if r["test"].is_null() {
                return Ok("- (trial)".to_string());
            }
            Ok(format!("{:.digits$}", num(&r["test"][key], &format!("test.{key}"))?))
        };
        outln!(
            "| {} | {} | {} ({}) | {} | {} | {} | {} | {:.0} | {:.0} s |",
            dir.display(),
            model,
            num(&r["epochs_run"], "epochs_run")?,
            num(&r["best_epoch"], "best_epoch")?,
            test("ssim", 4)?,
            test("ssim_uniform7", 4)?,
            reference,
            test("mse", 6)?,
            num(&r["train_images_per_s"], "train_images_per_s")?,
            num(&r["wall_time_s"], "wall_time_s")?,
        );
    }
    Ok(())
}
