//! `autoencoder train`: trains one model on the split, writes the run folder, and reports the
//! best weights' test scores.

use super::common::{in_pool, load_data, set_threads};
use super::data::DataSource;
use anyhow::{Context, Result};
use autoencoder::checkpoint::{self, CheckpointInfo};
use autoencoder::data::{DataRecord, Dataset, Split};
use autoencoder::evaluate::{self, Images, Scores};
use autoencoder::fsutil::{self, RunLock};
use autoencoder::loss::Loss;
use autoencoder::models::ModelKind;
use autoencoder::picture;
use autoencoder::sequential::Sequential;
use autoencoder::train::{self, EpochStats, Progress, RunState, Schedule, TrainConfig, TrainOutcome};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Continue the interrupted run in DIR exactly where it stopped, with the flags recorded
    /// there (only --threads and the data flags may be given again).
    #[arg(long, value_name = "DIR", conflicts_with = "RunFlags")]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunFlags,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub source: DataSource,
    /// Append one JSON object per epoch (epoch, train_loss, val_loss, val_ssim,
    /// val_ssim_uniform7, lr, seconds) to FILE, flushed at once, for an external tuner to
    /// follow the run; `-` writes them to stdout (and the epoch lines to stderr).
    #[arg(long, value_name = "FILE")]
    pub metrics_jsonl: Option<PathBuf>,
}

/// One epoch as a line of `--metrics-jsonl`.
fn metrics_json_line(s: &EpochStats) -> String {
    // The rate as the f32 prints (0.001), not as its f64 widening (0.0010000000474974513).
    let lr: f64 = s.lr.to_string().parse().unwrap_or(f64::NAN);
    serde_json::json!({"epoch": s.epoch, "train_loss": s.train_loss, "val_loss": s.val_loss, "val_ssim": s.val_ssim,
                       "val_ssim_uniform7": s.val_ssim_uniform7, "lr": lr, "seconds": s.seconds})
    .to_string()
}

/// The defaults of `train`'s (and `tune`'s) flags: `TrainConfig::new`'s, for the default model.
pub fn defaults() -> TrainConfig {
    TrainConfig::new(ModelKind::Modified)
}

/// What a new run is: every flag `--resume` refuses (it takes them from the run folder).
/// Defaults come from `TrainConfig::new`, so they are written once.
#[derive(clap::Args, Debug)]
pub struct RunFlags {
    /// Which autoencoder to train.
    #[arg(long, default_value_t = defaults().model, value_parser = parse_model)]
    pub model: ModelKind,
    /// What training minimises and early stopping watches: mse, or ssim (1 − Gaussian SSIM,
    /// the `tf.image.ssim` score itself).
    #[arg(long, default_value_t = defaults().loss, value_parser = parse_loss)]
    pub loss: Loss,
    /// Maximum number of epochs (early stopping may end sooner).
    #[arg(long, default_value_t = defaults().epochs)]
    pub epochs: usize,
    #[arg(long, default_value_t = defaults().batch_size)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = defaults().lr)]
    pub lr: f32,
    /// Adam's beta1 (decay of the first-moment average).
    #[arg(long, default_value_t = defaults().beta1)]
    pub beta1: f32,
    /// Decoupled weight decay, as Keras's `Adam(weight_decay=...)`: every step first shrinks
    /// each weight by weight * wd * lr.
    #[arg(long, default_value_t = defaults().weight_decay)]
    pub weight_decay: f32,
    /// Epochs without a val_loss improvement before stopping.
    #[arg(long, default_value_t = defaults().patience)]
    pub patience: usize,
    /// Smallest val_loss decrease that counts as an improvement.
    #[arg(long, default_value_t = defaults().min_delta)]
    pub min_delta: f64,
    /// Epochs without a val_loss improvement before the learning rate is multiplied by
    /// --reduce-lr-factor (Keras ReduceLROnPlateau); 0 keeps it constant.
    #[arg(long, default_value_t = defaults().reduce_lr_patience)]
    pub reduce_lr_patience: usize,
    #[arg(long, default_value_t = defaults().reduce_lr_factor)]
    pub reduce_lr_factor: f32,
    /// Floor of the reduced learning rate, and where cosine and onecycle end.
    #[arg(long, default_value_t = defaults().min_lr)]
    pub min_lr: f32,
    /// How the learning rate moves: constant; plateau (--reduce-lr-patience epochs without
    /// improvement multiply it by --reduce-lr-factor); cosine (down to --min-lr over exactly
    /// --epochs, per step); onecycle (Smith and Topin's, beta1 not cycled: up from lr/25 over
    /// the warmup, default 30% of the steps, then down to --min-lr).
    #[arg(long, default_value_t = defaults().schedule, value_parser = parse_schedule)]
    pub schedule: Schedule,
    /// Epochs of linear warmup from 0 to --lr at the start (onecycle: its rising phase).
    #[arg(long, default_value_t = defaults().warmup_epochs)]
    pub warmup_epochs: usize,
    /// Decay of an exponential moving average of the weights (e.g. 0.999), updated after every
    /// step; validation, test and best.safetensors use the average; 0 is off.
    #[arg(long, value_name = "DECAY", default_value_t = defaults().ema)]
    pub ema: f32,
    /// Seed of the split, the initial weights and the minibatch order.
    #[arg(long, default_value_t = defaults().seed)]
    pub seed: u64,
    /// Run folder (default: runs/<model>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Overwrite an existing run in --out.
    #[arg(long)]
    pub force: bool,
}

impl RunFlags {
    /// The configuration the flags describe.
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            loss: self.loss,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            beta1: self.beta1,
            weight_decay: self.weight_decay,
            patience: self.patience,
            min_delta: self.min_delta,
            reduce_lr_patience: self.reduce_lr_patience,
            reduce_lr_factor: self.reduce_lr_factor,
            min_lr: self.min_lr,
            seed: self.seed,
            schedule: self.schedule,
            warmup_epochs: self.warmup_epochs,
            ema: self.ema,
            ..TrainConfig::new(self.model)
        }
    }
}

pub fn parse_model(s: &str) -> Result<ModelKind, String> {
    s.parse().map_err(|e: autoencoder::Error| e.to_string())
}

pub fn parse_schedule(s: &str) -> Result<Schedule, String> {
    s.parse().map_err(|e: autoencoder::Error| e.to_string())
}

pub fn parse_loss(s: &str) -> Result<Loss, String> {
    s.parse().map_err(|e: autoencoder::Error| e.to_string())
}

#[derive(Serialize)]
struct Report<'a> {
    model: ModelKind,
    hyperparameters: Hyper<'a>,
    epochs_run: usize,
    best_epoch: usize,
    stopped_early: bool,
    /// `None` for a trial of `tune`: a search scores only its best trial on test.
    test: Option<Scores>,
    /// Epoch times summed (training and validation), over every invocation of a resumed run.
    wall_time_s: f64,
    train_images_per_s: f64,
    data: &'a str,
    /// The kernel path (`avx512`, `avx2`, `portable`) this invocation ran on.
    kernel_path: &'static str,
    /// `Dataset::digest` of the data and split seed the run was scored on.
    data_digest: String,
    /// The first epoch (and wall seconds) at which validation ssim_uniform7 reached each of
    /// `train::MILESTONES`.
    milestones: Vec<train::Milestone>,
    history: &'a [EpochStats],
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct Hyper<'a> {
    #[serde(flatten)]
    config: &'a TrainConfig,
    threads: usize,
}

/// Everything `--resume` needs, rewritten after every epoch.
const STATE_FILE: &str = "state.safetensors";

/// The files a run writes; any of them present means a run is there.
const RUN_FILES: [&str; 6] =
    ["best.safetensors", "last.safetensors", STATE_FILE, "metrics.csv", "report.json", "reconstructions.png"];

/// Makes `out` ready for a new run and takes its lock (held until the returned value drops):
/// an old run there is refused without `force`, and with it removed before anything new is
/// written, so no file of the old run outlives it beside the new one's.
pub fn prepare_out(out: &Path, force: bool) -> Result<RunLock> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let lock = lock_run(out)?;
    let existing: Vec<_> = RUN_FILES.iter().filter(|f| out.join(f).exists()).collect();
    if !existing.is_empty() && !force {
        anyhow::bail!(
            "{} already holds a run ({}); pass --force to overwrite it or --out to choose another folder",
            out.display(),
            existing.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    for f in existing {
        let path = out.join(f);
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(lock)
}

/// Takes `dir`'s lock (one writer per run folder) and removes the temp files a killed writer
/// left there.
pub fn lock_run(dir: &Path) -> Result<RunLock> {
    let lock = RunLock::acquire(dir).context("hint: wait for the other run, or write to another --out")?;
    fsutil::remove_stale_temps(dir)?;
    Ok(lock)
}

pub fn epoch_line(s: &EpochStats) -> String {
    format!(
        "epoch {:>3}  train_loss {:.6}  val_loss {:.6}  val_ssim {:.4}  val_ssim_uniform7 {:.4}  {:.1}s  {:.0} img/s  lr {}",
        s.epoch, s.train_loss, s.val_loss, s.val_ssim, s.val_ssim_uniform7, s.seconds, s.images_per_s, s.lr
    )
}

fn metrics_csv(history: &[EpochStats]) -> String {
    let mut csv = String::from("epoch,train_loss,val_loss,val_ssim,val_ssim_uniform7,seconds,images_per_s,lr\n");
    for s in history {
        csv += &format!(
            "{},{},{},{},{},{:.3},{:.1},{}\n",
            s.epoch, s.train_loss, s.val_loss, s.val_ssim, s.val_ssim_uniform7, s.seconds, s.images_per_s, s.lr
        );
    }
    csv
}

/// Set by the first Ctrl-C: training stops after the current step and saves its state.
static INTERRUPT: AtomicBool = AtomicBool::new(false);
static CTRL_C_PRESSES: AtomicUsize = AtomicUsize::new(0);

/// The first Ctrl-C, or SIGTERM / SIGHUP (what Slurm and Kubernetes send before a kill), asks
/// training to stop cleanly; a second one exits at once.
pub fn install_ctrl_c() -> Result<()> {
    ctrlc::set_handler(|| {
        if CTRL_C_PRESSES.fetch_add(1, Ordering::SeqCst) >= 1 {
            std::process::exit(130);
        }
        INTERRUPT.store(true, Ordering::SeqCst);
        eprintln!("\ninterrupt: finishing the current batch and saving the run's state (Ctrl-C again to quit at once)");
    })
    .context("cannot install the Ctrl-C handler")
}

/// Reads the state a run folder holds for `--resume` (`command` names the subcommand in the
/// hint), warning when the run started on another kernel path than this process's.
pub fn load_run_state(dir: &Path, command: &str) -> Result<(TrainConfig, Sequential, RunState)> {
    let loaded = checkpoint::load_state(&dir.join(STATE_FILE)).with_context(|| {
        format!("cannot resume from {} (hint: pass a run folder written by `autoencoder {command}`)", dir.display())
    })?;
    let now = kernels::isa::kernel_path();
    if let Some(started) = loaded.2.kernel_path.as_deref().filter(|p| *p != now.name()) {
        eprintln!(
            "warning: {} started on the {started} kernels and continues on the {now} kernels: the paths round \
             differently in the last bits, so the result will not be bitwise that of an uninterrupted run \
             (AUTOENCODER_KERNELS={started} keeps the path)",
            dir.display()
        );
    }
    Ok(loaded)
}

/// Trains `cfg` (or continues `resume`) in run folder `out`: a progress bar on a terminal, one
/// line per epoch otherwise; after every epoch metrics.csv, best.safetensors, last.safetensors
/// and state.safetensors are current. On Ctrl-C (or SIGTERM) the state is saved, `resume_hint`
/// printed as the command that continues, and `Error::Interrupted` returned (`main` exits 130).
pub fn train_in(
    out: &Path,
    cfg: &TrainConfig,
    resume: Option<(Sequential, RunState)>,
    data: &Dataset,
    split: &Split,
    resume_hint: &str,
    metrics_jsonl: Option<&Path>,
) -> Result<TrainOutcome> {
    let to_stdout = metrics_jsonl.is_some_and(|p| p == Path::new("-"));
    let mut jsonl = match metrics_jsonl.filter(|_| !to_stdout) {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open --metrics-jsonl {}", p.display()))?,
        ),
        None => None,
    };
    let interactive = std::io::stdout().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let (best_path, csv_path) = (out.join("best.safetensors"), out.join("metrics.csv"));
    let (last_path, state_path) = (out.join("last.safetensors"), out.join(STATE_FILE));
    let data_digest = Some(data.digest(cfg.seed));
    let info = |epoch| CheckpointInfo { model: cfg.model, epoch, seed: cfg.seed, data_digest: data_digest.clone() };
    // Every epoch leaves metrics.csv current, best.safetensors holding the best weights so far,
    // last.safetensors the current ones, and state.safetensors all that --resume needs.
    let save_last = |model: &Sequential, st: &RunState| -> autoencoder::Result<()> {
        checkpoint::save_state(&state_path, cfg, model, st)?;
        checkpoint::save(&last_path, model, &info(st.epoch))
    };
    let mut on = |p: Progress| -> autoencoder::Result<()> {
        match p {
            Progress::EpochStart { epoch, steps } if interactive => {
                let b = ProgressBar::new(steps as u64);
                b.set_style(
                    ProgressStyle::with_template("epoch {prefix:>3} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                b.set_prefix(epoch.to_string());
                bar = Some(b);
            }
            Progress::Step { step, images, running_loss } => {
                if let Some(b) = &bar {
                    b.set_position(step as u64);
                    let rate = images as f64 / b.elapsed().as_secs_f64().max(1e-9);
                    b.set_message(format!("loss {running_loss:.5} {rate:.0} img/s"));
                }
            }
            Progress::Validating => {
                if let Some(b) = &bar {
                    b.set_message("validating");
                }
            }
            Progress::EpochEnd { stats, model, state, improved } => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                if to_stdout {
                    eprintln!("{}", epoch_line(stats));
                    outln!("{}", metrics_json_line(stats));
                } else {
                    outln!("{}", epoch_line(stats));
                }
                let _ = std::io::stdout().flush();
                if let Some(f) = jsonl.as_mut() {
                    writeln!(f, "{}", metrics_json_line(stats))
                        .and_then(|()| f.flush())
                        .map_err(|e| autoencoder::Error::io(metrics_jsonl.unwrap_or(Path::new("-")), e))?;
                }
                fsutil::write_bytes_atomic(&csv_path, metrics_csv(&state.history).as_bytes())?;
                if improved {
                    // The best epoch's weights (with --ema, the average's, not the model's).
                    let best: Vec<&[f32]> = state.best_weights.iter().map(|w| &w[..]).collect();
                    checkpoint::save_weights(&best_path, model, &best, &info(stats.epoch))?;
                }
                save_last(model, state)?;
            }
            Progress::Interrupted { model, state } => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                save_last(model, state)?;
            }
            _ => {}
        }
        Ok(())
    };
    match in_pool(|| train::train(cfg, data, split, resume, &INTERRUPT, &mut on)) {
        // Returned, not exited on: the run lock (or a tune trial's claim) is released on the
        // way out, and `main` exits 130.
        Err(e @ autoencoder::Error::Interrupted { epoch, step }) => {
            eprintln!(
                "interrupted at epoch {epoch}, step {step}; state saved in {}\nhint: continue with `{resume_hint}`",
                out.display()
            );
            Err(e.into())
        }
        other => Ok(other?),
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    // Before anything is written: a bad --threads must leave no run folder behind.
    let threads = set_threads(args.threads)?;
    let (cfg, out, resume, _lock) = match &args.resume {
        Some(dir) => {
            anyhow::ensure!(
                dir.is_dir(),
                "cannot resume from {}: no such folder (it should hold a run's {STATE_FILE})",
                dir.display()
            );
            let lock = lock_run(dir)?;
            let (cfg, model, state) = load_run_state(dir, "train")?;
            (cfg, dir.clone(), Some((model, state)), lock)
        }
        None => {
            let cfg = args.run.config();
            cfg.validate().context("hint: see `autoencoder train --help`")?;
            let out = args.run.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(cfg.model.name()));
            let lock = prepare_out(&out, args.run.force)?;
            (cfg, out, None, lock)
        }
    };
    // A resumed run continues on the data it started on: without data flags, the recorded
    // ones; whatever was given, data of another digest is refused.
    let recorded = resume.as_ref().and_then(|(_, st)| st.data.clone());
    let source = match &recorded {
        Some(rec) if args.source.data_dir.is_none() && !args.source.allow_custom_data => DataSource {
            data_dir: rec.data_dir.clone(),
            allow_custom_data: rec.allow_custom_data,
            data_url: args.source.data_url.clone(),
        },
        _ => args.source.clone(),
    };
    let (data, split) = load_data(&source, cfg.seed)?;
    let digest = data.digest(cfg.seed);
    if let Some(rec) = &recorded {
        anyhow::ensure!(
            rec.digest == digest,
            "{} was trained on other data: {} (digest {}), not {} (digest {digest})\nhint: resume with the run's data flags, or drop them to use the recorded ones",
            out.display(),
            rec.origin,
            rec.digest,
            data.origin
        );
    }
    let resume = match resume {
        Some(r) => Some(r),
        None => {
            // A new run: its state records the data from the first save on.
            let model = autoencoder::models::build(cfg.model, cfg.seed)?;
            let mut state = RunState::new(&cfg, &model);
            state.data = Some(DataRecord {
                data_dir: source.data_dir.clone(),
                allow_custom_data: source.allow_custom_data,
                origin: data.origin.clone(),
                digest: digest.clone(),
            });
            Some((model, state))
        }
    };
    install_ctrl_c()?;
    let from = match &resume {
        Some((_, st)) if st.epoch + st.step > 0 => format!(", resuming after epoch {} step {}", st.epoch, st.step),
        _ => String::new(),
    };
    outln!(
        "training `{}` on {} ({} train / {} val / {} test), loss {}, batch {}, lr {}, {} threads -> {}{from}",
        cfg.model,
        data.origin,
        split.train.len(),
        split.val.len(),
        split.test.len(),
        cfg.loss,
        cfg.batch_size,
        cfg.lr,
        threads,
        out.display()
    );

    let hint = format!("autoencoder train --resume {}", out.display());
    let outcome = train_in(&out, &cfg, resume, &data, &split, &hint, args.metrics_jsonl.as_deref())?;
    finish_run(&out, &cfg, threads, outcome, &data, &split, &serde_json::Map::new())?;
    Ok(())
}

/// Scores a finished run's best weights on the test split once, and writes reconstructions.png
/// and report.json (with `extra`'s keys added) to `out`.
pub fn finish_run(
    out: &Path,
    cfg: &TrainConfig,
    threads: usize,
    outcome: TrainOutcome,
    data: &Dataset,
    split: &Split,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> Result<Scores> {
    let mut outcome = outcome;
    let test = evaluate::evaluate(&mut outcome.model, Images::Subset(data, &split.test))?;
    write_run_files(out, cfg, threads, &mut outcome, data, &split.test, Some(test), extra)?;
    outln!(
        "{}: best epoch {} of {}; test SSIM {:.4} (gaussian, tf.image.ssim) / {:.4} (uniform7, skimage default), MSE {:.6} over {} images",
        cfg.model,
        outcome.best_epoch,
        outcome.history.len(),
        test.ssim,
        test.ssim_uniform7,
        test.mse,
        test.count
    );
    Ok(test)
}

/// Makes a finished trial of `tune` a run folder like any other (`report`, `compare` and
/// `eval` take it) without scoring it on test: its report.json has `"test": null`, and its
/// reconstructions.png shows validation images.
pub fn finish_trial(
    out: &Path,
    cfg: &TrainConfig,
    threads: usize,
    mut outcome: TrainOutcome,
    data: &Dataset,
    split: &Split,
) -> Result<()> {
    write_run_files(out, cfg, threads, &mut outcome, data, &split.val, None, &serde_json::Map::new())
}

/// reconstructions.png (the first 16 of `shown_from`) and report.json of a finished run.
#[allow(clippy::too_many_arguments)]
fn write_run_files(
    out: &Path,
    cfg: &TrainConfig,
    threads: usize,
    outcome: &mut TrainOutcome,
    data: &Dataset,
    shown_from: &[usize],
    test: Option<Scores>,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let shown = &shown_from[..shown_from.len().min(16)];
    let recon = evaluate::reconstruct(&mut outcome.model, Images::Subset(data, shown))?;
    let mut originals = vec![0.0; recon.len()];
    data.fill_batch(shown, &mut originals);
    picture::write_grid_png(&out.join("reconstructions.png"), &originals, &recon, shown.len(), 28, 28, 4)?;
    let report = Report {
        model: cfg.model,
        hyperparameters: Hyper { config: cfg, threads },
        epochs_run: outcome.history.len(),
        best_epoch: outcome.best_epoch,
        stopped_early: outcome.stopped_early,
        test,
        wall_time_s: outcome.history.iter().map(|s| s.seconds).sum(),
        train_images_per_s: outcome.images_per_s,
        data: &data.origin,
        kernel_path: kernels::isa::kernel_path().name(),
        data_digest: data.digest(cfg.seed),
        milestones: train::milestones(&outcome.history),
        history: &outcome.history,
        extra,
    };
    let json = serde_json::to_string_pretty(&report)?;
    fsutil::write_bytes_atomic(&out.join("report.json"), json.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TrainArgs,
    }

    #[test]
    fn the_flags_defaults_are_train_configs() {
        let cli = Cli::try_parse_from(["train"]).unwrap();
        assert_eq!(cli.args.run.config(), TrainConfig::new(ModelKind::Modified));
        let cli = Cli::try_parse_from(["train", "--model", "baseline"]).unwrap();
        assert_eq!(cli.args.run.config(), TrainConfig::new(ModelKind::Baseline));
    }

    #[test]
    fn resume_refuses_every_run_flag_and_takes_threads_and_data_flags() {
        let flags = super::super::common::flag_samples::<RunFlags>();
        assert_eq!(flags.len(), 18);
        for flag in flags {
            assert!(Cli::try_parse_from(["train", &flag]).is_ok(), "{flag} alone");
            let err = Cli::try_parse_from(["train", "--resume", "d", &flag]).err();
            assert_eq!(err.map(|e| e.kind()), Some(clap::error::ErrorKind::ArgumentConflict), "{flag} with --resume");
        }
        for flag in ["--threads=1", "--data-dir=d", "--allow-custom-data", "--data-url=http://x"] {
            assert!(Cli::try_parse_from(["train", "--resume", "d", flag]).is_ok(), "{flag} refused with --resume");
        }
    }
}
