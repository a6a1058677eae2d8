//! `autoencoder report`: report.html and report.md comparing trained runs with each other and
//! with the PCA baseline (see `autoencoder::report`).

use super::common::{load_checkpoint, load_data, set_threads};
use super::data::DataSource;
use anyhow::{Context, Result};
use autoencoder::report::{self, render, Report, RunReport, Sets};
use autoencoder::run::fsutil::write_bytes_atomic;
use autoencoder::run::RunRecord;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Run folders written by `autoencoder train`, each holding report.json and
    /// best.safetensors. The runs must share one split seed (`train --seed`): the report scores
    /// every model on the same test images, so runs split with different seeds are refused.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Folder for report.html (self-contained), report.md and the images report.md links;
    /// created if missing, files in it overwritten.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub source: DataSource,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let start = Instant::now();
    set_threads(args.threads)?;
    // Every run is read before the slow part, so a bad folder fails at once.
    let mut runs = Vec::new();
    for (i, dir) in args.runs.iter().enumerate() {
        let record = RunRecord::read(dir).with_context(|| {
            format!("cannot read run folder {} (hint: pass folders written by `autoencoder train`)", dir.display())
        })?;
        let (model, info) = load_checkpoint(&dir.join(autoencoder::run::BEST_FILE), None)?;
        anyhow::ensure!(
            info.seed == record.seed() && info.model == record.model,
            "{}: report.json (model {}, seed {}) disagrees with best.safetensors (model {}, seed {}) (hint: the folder mixes files of different runs)",
            dir.display(),
            record.model,
            record.seed(),
            info.model.name(),
            info.seed
        );
        runs.push((report::run_label(i, dir), dir.display().to_string(), record, model));
    }
    let seed = runs[0].2.seed();
    if let Some((_, dir, other, _)) = runs.iter().find(|r| r.2.seed() != seed) {
        anyhow::bail!(
            "runs were split with different seeds: {} used {seed}, {dir} used {} (hint: the report scores every model on the same test images; pass runs trained with the same --seed)",
            runs[0].1,
            other.seed()
        );
    }
    let (data, split) = load_data(&args.source, seed)?;
    let sets = Sets::new(&data, &split);
    eprintln!(
        "data loaded ({} train, {} test images); fitting PCA-{} and k-NN on pixels",
        sets.train_labels.len(),
        sets.n_test(),
        autoencoder::models::LATENT
    );
    let baseline = report::analyse_baseline(&sets).context("cannot compute the PCA baseline")?;
    let mut reports = Vec::new();
    for (label, dir, record, mut model) in runs {
        eprintln!("[{:.0} s] {label}: reconstructing and encoding", start.elapsed().as_secs_f64());
        let analysis = report::analyse_model(&mut model, &sets).with_context(|| format!("cannot analyse {dir}"))?;
        reports.push(RunReport { label, dir, record, analysis });
    }
    let class_names = if args.source.allow_custom_data {
        (0..report::CLASS_NAMES.len()).map(|c| format!("class {c}")).collect()
    } else {
        report::CLASS_NAMES.iter().map(|s| s.to_string()).collect()
    };
    let report = Report {
        runs: reports,
        baseline,
        class_names,
        test_labels: sets.test_labels,
        test: sets.test,
        seed,
        n_train: sets.train_labels.len(),
        data_origin: data.origin.clone(),
    };
    let rendered = render::render(&report)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let docs = [
        ("report.md".to_string(), rendered.markdown.into_bytes()),
        ("report.html".to_string(), rendered.html.into_bytes()),
    ];
    for (name, bytes) in rendered.files.iter().chain(&docs) {
        write_bytes_atomic(&args.out.join(name), bytes)?;
    }
    let b = &report.baseline;
    outln!(
        "k-NN (k = {}) test accuracy: raw pixels {:.4}, PCA-{} {:.4}",
        report::KNN_K,
        b.knn_pixels,
        autoencoder::models::LATENT,
        b.pca.knn_accuracy
    );
    outln!(
        "PCA-{}: test ssim {:.4}, ssim_uniform7 {:.4}, MSE {:.6}",
        autoencoder::models::LATENT,
        b.pca.scores.ssim,
        b.pca.scores.ssim_uniform7,
        b.pca.scores.mse
    );
    for run in &report.runs {
        let s = &run.analysis.scores;
        outln!(
            "{}: test ssim {:.4} ({:+.4} vs PCA), ssim_uniform7 {:.4}, MSE {:.6}, k-NN on codes {:.4}",
            run.label,
            s.ssim,
            s.ssim - b.pca.scores.ssim,
            s.ssim_uniform7,
            s.mse,
            run.analysis.knn_accuracy
        );
    }
    outln!(
        "wrote {} and {} ({} images) in {:.1} s",
        args.out.join("report.html").display(),
        args.out.join("report.md").display(),
        rendered.files.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
