//! `autoencoder train`: trains one model on the split, writes the run folder, and reports the
//! best weights' test scores.

use super::common::{in_pool, load_data, set_threads};
use super::data::DataSource;
use anyhow::{Context, Result};
use autoencoder::data::{DataRecord, Dataset, Split};
use autoencoder::eval::{self, Images, Scores};
use autoencoder::models::ModelKind;
use autoencoder::run::checkpoint::{self, CheckpointInfo};
use autoencoder::run::fsutil::{self, RunLock};
use autoencoder::run::picture;
use autoencoder::run::{
    Hyperparameters, RunRecord, BEST_FILE, LAST_FILE, METRICS_FILE, RECONSTRUCTIONS_FILE, RUN_FILES, STATE_FILE,
};
use autoencoder::sequential::Sequential;
use autoencoder::train::loss::Loss;
use autoencoder::train::{self, EpochStats, Monitor, Progress, Recipe, RunState, Schedule, TrainConfig, TrainOutcome};
use indicatif::{ProgressBar, ProgressStyle};
use kernels::bf16::Precision;
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

/// What a new run is: every flag `--resume` refuses (it takes them from the run folder).
/// A value not given is the recipe's (`TrainConfig::recipe`), so each default is written once.
#[derive(clap::Args, Debug)]
pub struct RunFlags {
    /// Which autoencoder to train.
    #[arg(long, default_value_t = ModelKind::Modified, value_parser = parse_named::<ModelKind>)]
    pub model: ModelKind,
    /// The values the other flags are laid over (each flag given replaces one).
    #[arg(long, default_value_t = Recipe::Tuned, value_parser = parse_named::<Recipe>, long_help = recipe_help())]
    pub recipe: Recipe,
    /// What training minimises and early stopping watches: mse, ssim (1 − Gaussian SSIM, the
    /// `tf.image.ssim` score itself) or mse+ssim (MSE + 0.2 (1 − SSIM), the SSIM averaged over
    /// the Gaussian and uniform-7 windows) [default: the recipe's].
    #[arg(long, value_parser = parse_named::<Loss>)]
    pub loss: Option<Loss>,
    /// Number of epochs (early stopping may end sooner) [default: the recipe's].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// [default: the recipe's]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate (the peak, for cosine and onecycle) [default: the recipe's].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Adam's beta1 (decay of the first-moment average) [default: the recipe's].
    #[arg(long)]
    pub beta1: Option<f32>,
    /// Decoupled weight decay, as Keras's `Adam(weight_decay=...)`: every step first shrinks
    /// each weight by weight * wd * lr [default: the recipe's].
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Epochs without an improvement of --monitor before stopping [default: the recipe's].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Smallest decrease of --monitor (an SSIM counted as 1 - SSIM) that counts as an
    /// improvement [default: the recipe's].
    #[arg(long)]
    pub min_delta: Option<f64>,
    /// Epochs without an improvement of --monitor before the learning rate is multiplied by
    /// --reduce-lr-factor (Keras ReduceLROnPlateau); 0 keeps it constant; without --schedule,
    /// a patience > 0 selects --schedule plateau [default: the recipe's].
    #[arg(long)]
    pub reduce_lr_patience: Option<usize>,
    /// [default: the recipe's]
    #[arg(long)]
    pub reduce_lr_factor: Option<f32>,
    /// Floor of the reduced learning rate, and where cosine and onecycle end [default: the
    /// recipe's].
    #[arg(long)]
    pub min_lr: Option<f32>,
    /// How the learning rate moves: constant; plateau (--reduce-lr-patience epochs without
    /// improvement multiply it by --reduce-lr-factor); cosine (down to --min-lr over exactly
    /// --epochs, per step); onecycle (Smith and Topin's, beta1 not cycled: up from lr/25 over
    /// the warmup, default 30% of the steps, then down to --min-lr) [default: the recipe's].
    #[arg(long, value_parser = parse_named::<Schedule>)]
    pub schedule: Option<Schedule>,
    /// Epochs of linear warmup from 0 to --lr at the start (onecycle: its rising phase)
    /// [default: the recipe's, shortened to fit in --epochs].
    #[arg(long)]
    pub warmup_epochs: Option<usize>,
    /// Decay of an exponential moving average of the weights (e.g. 0.999), updated after every
    /// step; early steps use min(DECAY, (1+t)/(10+t)) after t updates, so the average does not
    /// carry the initial weights; validation, test and best.safetensors use the average; 0 is
    /// off [default: the recipe's].
    #[arg(long, value_name = "DECAY")]
    pub ema: Option<f32>,
    /// What early stopping, the restored best weights and --reduce-lr-patience follow:
    /// val_loss (Keras's), val_ssim or val_ssim_uniform7 [default: the recipe's].
    #[arg(long, value_parser = parse_named::<Monitor>)]
    pub monitor: Option<Monitor>,
    /// Precision of the convolutions' and dense layers' products: f32, or bf16 (operands
    /// rounded to bfloat16, sums, weights, Adam and the loss in f32; native on AVX512-BF16,
    /// else emulated with the same results) [default: f32]. A resumed run keeps its own.
    #[arg(long, value_parser = parse_named::<Precision>)]
    pub precision: Option<Precision>,
    /// Seed of the split, the initial weights and the minibatch order.
    #[arg(long, default_value_t = TrainConfig::new(ModelKind::Modified).seed)]
    pub seed: u64,
    /// Run folder (default: runs/<model>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Overwrite an existing run in --out.
    #[arg(long)]
    pub force: bool,
}

/// `--recipe`'s help: every value of each recipe, from `TrainConfig::recipe` itself.
fn recipe_help() -> String {
    let mut help = String::from(
        "The values the other flags are laid over (each flag given replaces one); report.json \
         records the recipe and every value.\n",
    );
    for recipe in Recipe::ALL {
        let c = TrainConfig::recipe(ModelKind::Modified, recipe);
        let what = match recipe {
            Recipe::Tuned => "the best measured in at most 20 epochs, both models",
            Recipe::Reference => "the reference Keras notebook's",
        };
        help += &format!("\n{recipe}: {what}: {}\n", c.value_flags());
    }
    help
}

impl RunFlags {
    /// The configuration the flags describe: the recipe's, with each flag given laid over it.
    pub fn config(&self) -> TrainConfig {
        let mut c = TrainConfig::recipe(self.model, self.recipe);
        macro_rules! lay {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { c.$field = v; })* };
        }
        lay!(
            loss,
            epochs,
            batch_size,
            lr,
            beta1,
            weight_decay,
            patience,
            min_delta,
            reduce_lr_patience,
            reduce_lr_factor,
            min_lr,
            schedule,
            warmup_epochs,
            ema,
            monitor,
            precision
        );
        // A plateau patience asks for the plateau schedule unless a schedule is named, whatever
        // the recipe's (the tuned recipe's cosine takes no patience).
        if self.schedule.is_none() && self.reduce_lr_patience.is_some_and(|p| p > 0) {
            c.schedule = Schedule::Plateau;
        }
        // The recipe's warmup fits inside a shorter run (`--epochs 1` trains without one).
        if self.warmup_epochs.is_none() {
            c.warmup_epochs = c.warmup_epochs.min(c.epochs.saturating_sub(1));
        }
        c.seed = self.seed;
        c
    }
}

/// A flag's value by name (`--model`, `--loss`, `--schedule`, `--recipe`), with the library's
/// message naming the flag and the names it takes.
pub fn parse_named<T: std::str::FromStr<Err: std::fmt::Display>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: T::Err| e.to_string())
}

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

/// "f32", or "bf16 (native)" / "bf16 (native, AMX)" / "bf16 (emulated)": how the run's
/// products are computed here.
pub fn precision_label(p: Precision) -> String {
    match p {
        Precision::F32 => p.name().to_string(),
        Precision::Bf16 if kernels::amx::available() => format!("bf16 ({}, AMX)", kernels::bf16::mode_name()),
        Precision::Bf16 => format!("bf16 ({})", kernels::bf16::mode_name()),
    }
}

/// For a run in bf16, a note on stderr when bf16 is likely slower than f32 on this CPU
/// (`bf16_speed_note`); nothing for f32.
pub fn note_bf16_speed(precision: Precision) {
    if precision == Precision::Bf16 {
        if let Some(note) = bf16_speed_note() {
            eprintln!("note: {note}");
        }
    }
}

/// Why `--precision bf16` is likely slower than f32 on this CPU, if it is: emulated (no
/// AVX512-BF16 on the kernel path), or a `VDPBF16PS` peak no higher than the FMA peak (Intel
/// Xeons run it at half their FMA rate, AMD Zen 4 at twice) without AMX to run the products
/// instead. Measures both peaks on one thread (about half a second).
fn bf16_speed_note() -> Option<String> {
    if kernels::amx::available() {
        return None;
    }
    if !kernels::bf16::native() {
        return Some(
            "bf16 is emulated here (the kernels have no AVX512-BF16): it gives bf16's results, more slowly than f32"
                .to_string(),
        );
    }
    let (bf16, fma) = (kernels::bf16::peak_gflops(false)?, kernels::isa::fma_peak_gflops(false));
    (bf16 <= fma).then(|| {
        format!(
            "this CPU's VDPBF16PS peaks at {bf16:.0} GFLOP/s against {fma:.0} for f32 FMAs (one thread, measured now), \
             so bf16 is likely slower than f32 here; `autoencoder bench --precision bf16` measures both"
        )
    })
}

/// Reads the state a run folder holds for `--resume` (`command` names the subcommand in the
/// hint), warning when the run started on another kernel path than this process's, or with
/// its bf16 products on AMX and now without (or the reverse).
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
    let amx_now = kernels::amx::available();
    if let Some(started) = loaded.2.bf16_amx.filter(|&on| on != amx_now) {
        let on = |amx: bool| if amx { "AMX tiles" } else { "VDPBF16PS" };
        eprintln!(
            "warning: {} started with its bf16 products on {} and continues on {}: they sum in another order, \
             so the result will not be bitwise that of an uninterrupted run{}",
            dir.display(),
            on(started),
            on(amx_now),
            if started { "" } else { " (AUTOENCODER_AMX=off keeps VDPBF16PS)" }
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
    let (best_path, csv_path) = (out.join(BEST_FILE), out.join(METRICS_FILE));
    let (last_path, state_path) = (out.join(LAST_FILE), out.join(STATE_FILE));
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
        "training `{}` on {} ({} train / {} val / {} test), loss {}, batch {}, lr {}, {}, {} threads -> {}{from}",
        cfg.model,
        data.origin,
        split.train.len(),
        split.val.len(),
        split.test.len(),
        cfg.loss,
        cfg.batch_size,
        cfg.lr,
        precision_label(cfg.precision),
        threads,
        out.display()
    );
    note_bf16_speed(cfg.precision);

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
    let test = eval::evaluate(&mut outcome.model, Images::Subset(data, &split.test))?;
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
    let recon = eval::reconstruct(&mut outcome.model, Images::Subset(data, shown))?;
    let mut originals = vec![0.0; recon.len()];
    data.fill_batch(shown, &mut originals);
    picture::write_grid_png(&out.join(RECONSTRUCTIONS_FILE), &originals, &recon, shown.len(), 28, 28, 4)?;
    let record = RunRecord {
        model: cfg.model,
        hyperparameters: Hyperparameters { config: cfg.clone(), threads },
        epochs_run: outcome.history.len(),
        best_epoch: outcome.best_epoch,
        stopped_early: outcome.stopped_early,
        test,
        wall_time_s: outcome.history.iter().map(|s| s.seconds).sum(),
        train_images_per_s: outcome.images_per_s,
        data: data.origin.clone(),
        kernel_path: kernels::isa::kernel_path().name().to_string(),
        data_digest: data.digest(cfg.seed),
        milestones: train::milestones(&outcome.history),
        history: outcome.history.clone(),
        extra: extra.clone(),
    };
    record.write(out)?;
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
    fn the_flags_defaults_are_the_recipes_and_each_flag_given_replaces_one_value() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["train"], args].concat()).unwrap().args.run.config();
        assert_eq!(parse(&[]), TrainConfig::new(ModelKind::Modified));
        assert_eq!(parse(&["--model", "baseline"]), TrainConfig::new(ModelKind::Baseline));
        assert_eq!(parse(&[]).recipe, Recipe::Tuned);
        let reference = parse(&["--recipe", "reference", "--model", "baseline"]);
        assert_eq!(reference, TrainConfig::reference(ModelKind::Baseline));
        assert_eq!((reference.batch_size, reference.lr, reference.epochs, reference.patience), (64, 1e-3, 50, 5));
        assert_eq!((reference.schedule, reference.ema, reference.weight_decay), (Schedule::Constant, 0.0, 0.0));
        let plateau = parse(&["--reduce-lr-patience", "2"]);
        assert_eq!((plateau.schedule, plateau.reduce_lr_patience), (Schedule::Plateau, 2));
        assert_eq!(parse(&["--reduce-lr-patience", "2", "--schedule", "cosine"]).schedule, Schedule::Cosine);
        assert_eq!(parse(&["--epochs", "1"]).warmup_epochs, 0);
        assert_eq!(
            parse(&["--epochs", "1", "--warmup-epochs", "1"]).warmup_epochs,
            1,
            "given, it is kept (and refused)"
        );
        let laid = parse(&["--recipe", "reference", "--lr", "0.002", "--ema", "0.99", "--seed", "7"]);
        let want = TrainConfig { lr: 0.002, ema: 0.99, seed: 7, ..TrainConfig::reference(ModelKind::Modified) };
        assert_eq!(laid, want);
        // The help lists every value of each recipe, from the recipe itself.
        let help = recipe_help();
        for recipe in Recipe::ALL {
            assert!(help.contains(&TrainConfig::recipe(ModelKind::Modified, recipe).value_flags()), "{help}");
        }
    }

    #[test]
    fn resume_refuses_every_run_flag_and_takes_threads_and_data_flags() {
        let flags = super::super::common::flag_samples::<RunFlags>();
        assert_eq!(flags.len(), 21);
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
