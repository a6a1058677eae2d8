//! `autoencoder tune`: seeded random search over the training hyperparameters. Each trial is a
//! run folder `DIR/trial-NNN` trained with early stopping and scored on validation SSIM; the
//! best trial is scored once on the test split at the end, into DIR/report.json.

use super::common::{load_data, set_threads};
use super::data::DataSource;
use super::train::{
    finish_run, finish_trial, install_ctrl_c, load_run_state, lock_run, note_bf16_speed, parse_named, train_in,
};
use anyhow::{Context, Result};
use autoencoder::data::{Dataset, Split};
use autoencoder::models::ModelKind;
use autoencoder::run::checkpoint::{self, CheckpointInfo};
use autoencoder::run::{fsutil, BEST_FILE, RECONSTRUCTIONS_FILE, REPORT_FILE, STATE_FILE};
use autoencoder::train::loss::Loss;
use autoencoder::train::tune::{self, SearchSpace, TrialResult, TuneConfig};
use autoencoder::train::{self, Monitor, Schedule, TrainConfig};
use autoencoder::Error;
use kernels::bf16::Precision;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

#[derive(clap::Args, Debug)]
pub struct TuneArgs {
    /// Continue the search in DIR where it stopped, with the settings recorded there; finished
    /// trials are not run again. Only --trials (to extend the search), --threads and the data
    /// flags may be given again.
    #[arg(long, value_name = "DIR", conflicts_with = "SearchFlags")]
    pub resume: Option<PathBuf>,
    /// Number of trials (hyperparameter samples).
    #[arg(long, required_unless_present_any = ["resume", "finalize"])]
    pub trials: Option<usize>,
    #[command(flatten)]
    pub search: SearchFlags,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub source: DataSource,
    /// Print the trials the search would run (or, with --resume, the search's trials) and
    /// exit: no training, nothing written.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the search (tune.json in --out) and nothing else, for `tune-worker`s to run and
    /// `tune --finalize` to rank; an existing different plan is refused.
    #[arg(long, conflicts_with_all = ["resume", "dry_run"])]
    pub plan: bool,
    /// Rank the finished trials of the search in DIR, write trials.csv / trials.md and score
    /// the best once on test, as `tune` does at its end; unfinished trials are listed and the
    /// exit status is non-zero, unless --partial.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["SearchFlags", "resume", "dry_run", "plan", "trials"])]
    pub finalize: Option<PathBuf>,
    /// With --finalize: rank the trials finished so far.
    #[arg(long, requires = "finalize")]
    pub partial: bool,
}

/// `autoencoder tune-worker`: runs trials of a planned search (`tune --plan`), alone or beside
/// other workers on a shared folder.
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// The search folder (`tune --plan --out DIR`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Run this trial (1-based; a Slurm array task passes $SLURM_ARRAY_TASK_ID, a Kubernetes
    /// Indexed Job $JOB_COMPLETION_INDEX + 1).
    #[arg(long, required_unless_present = "claim", conflicts_with = "claim")]
    pub trial: Option<usize>,
    /// Claim the next unfinished trial, run it, and repeat until none is left.
    #[arg(long)]
    pub claim: bool,
    /// A claim whose trial's saved state has not advanced for this long (90s, 30m, 2h) is
    /// taken over, and the trial continued from its last saved epoch.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub stale_after: std::time::Duration,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub source: DataSource,
}

/// `90s`, `30m`, `2h`, or plain seconds.
fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let (number, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = number.parse().map_err(|_| format!("`{s}`: expected a duration such as 90s, 30m or 2h"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{s}`: unit must be s, m or h")),
    };
    n.checked_mul(scale).map(std::time::Duration::from_secs).ok_or_else(|| format!("`{s}`: too long"))
}

/// The defaults of the search's flags: `SearchSpace::default()`'s, and the reference
/// recipe's epochs and seed (what a trial does not draw is the reference recipe's).
fn space() -> SearchSpace {
    SearchSpace::default()
}

fn train_defaults() -> TrainConfig {
    TrainConfig::reference(ModelKind::Modified)
}

/// What a new search is: every flag `--resume` refuses (it reads them from tune.json).
#[derive(clap::Args, Debug)]
pub struct SearchFlags {
    /// Which autoencoder to tune.
    #[arg(long, default_value_t = train_defaults().model, value_parser = parse_named::<ModelKind>)]
    pub model: ModelKind,
    /// Maximum epochs of each trial (early stopping usually ends it sooner).
    #[arg(long, default_value_t = train_defaults().epochs)]
    pub epochs: usize,
    /// Seed of the sampling, the split, and every trial's initial weights and minibatch order.
    #[arg(long, default_value_t = train_defaults().seed)]
    pub seed: u64,
    /// Learning rates are drawn log-uniformly from [--lr-min, --lr-max].
    #[arg(long, default_value_t = space().lr_min)]
    pub lr_min: f32,
    #[arg(long, default_value_t = space().lr_max)]
    pub lr_max: f32,
    /// Batch sizes to draw from (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = space().batch_sizes)]
    pub batch_sizes: Vec<usize>,
    /// Early-stopping patiences to draw from (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = space().patiences)]
    pub patiences: Vec<usize>,
    /// Adam beta1 values to draw from (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = space().beta1s)]
    pub beta1s: Vec<f32>,
    /// Training losses to draw from (comma-separated: mse, ssim, mse+ssim; see `train --loss`).
    #[arg(long, value_delimiter = ',', default_values_t = space().losses, value_parser = parse_named::<Loss>)]
    pub losses: Vec<Loss>,
    /// ReduceLROnPlateau patiences to draw from (comma-separated; 0: constant learning rate;
    /// see `train --reduce-lr-patience`).
    #[arg(long, value_delimiter = ',', default_values_t = space().reduce_lr_patiences)]
    pub reduce_lr_patiences: Vec<usize>,
    /// The factor of every trial's learning-rate reductions.
    #[arg(long, default_value_t = space().reduce_lr_factor)]
    pub reduce_lr_factor: f32,
    /// Adam weight decays to draw from (comma-separated; see `train --weight-decay`).
    #[arg(long, value_delimiter = ',', default_values_t = space().weight_decays)]
    pub weight_decays: Vec<f32>,
    /// Learning-rate schedules to draw from (comma-separated: constant, plateau, cosine,
    /// onecycle; see `train --schedule`).
    #[arg(long, value_delimiter = ',', default_values_t = space().schedules, value_parser = parse_named::<Schedule>)]
    pub schedules: Vec<Schedule>,
    /// Decays of the weights' moving average to draw from (comma-separated; 0: off; see
    /// `train --ema`).
    #[arg(long, value_delimiter = ',', default_values_t = space().emas)]
    pub emas: Vec<f32>,
    /// Every trial's epochs of warmup (see `train --warmup-epochs`).
    #[arg(long, default_value_t = space().warmup_epochs)]
    pub warmup_epochs: usize,
    /// Every trial's floor of the learning rate, where cosine and onecycle end.
    #[arg(long, default_value_t = space().min_lr)]
    pub min_lr: f32,
    /// What every trial's early stopping and best weights follow: val_loss, val_ssim or
    /// val_ssim_uniform7 (see `train --monitor`).
    #[arg(long, default_value_t = space().monitor, value_parser = parse_named::<Monitor>)]
    pub monitor: Monitor,
    /// Every trial's precision of the convolutions' and dense layers' products: f32 or bf16
    /// (see `train --precision`).
    #[arg(long, default_value_t = space().precision, value_parser = parse_named::<Precision>)]
    pub precision: Precision,
    /// Folder for the search: tune.json, trials.csv, trials.md, a folder per trial, and the
    /// best trial's best.safetensors, report.json and reconstructions.png.
    #[arg(long, value_name = "DIR", required_unless_present_any = ["resume", "dry_run", "finalize"])]
    pub out: Option<PathBuf>,
    /// Overwrite an existing search in --out (its trial folders are deleted).
    #[arg(long)]
    pub force: bool,
}

/// The search's settings, written when it starts and read by `--resume`.
const TUNE_FILE: &str = "tune.json";
/// A finished trial's scores, in its folder.
const RESULT_FILE: &str = "result.json";

fn trial_dir(out: &Path, trial: usize) -> PathBuf {
    out.join(format!("trial-{trial:03}"))
}

/// The search recorded in `dir`, checked as the flags are: a hand-edited or damaged tune.json
/// is an error naming the file and the field, never a panic while sampling.
fn read_search(dir: &Path) -> Result<TuneConfig> {
    let path = dir.join(TUNE_FILE);
    let cfg: TuneConfig = read_json(&path)?;
    cfg.validate().with_context(|| {
        format!("{} holds an invalid search (its fields take the values of the flags of the same name)", path.display())
    })?;
    Ok(cfg)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is damaged: not the JSON `autoencoder tune` writes", path.display()))
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    fsutil::write_bytes_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())?;
    Ok(())
}

/// The search the flags describe.
fn config_from_args(args: &TuneArgs) -> Result<TuneConfig> {
    let f = &args.search;
    let cfg = TuneConfig {
        model: f.model,
        trials: args.trials.unwrap_or(1),
        epochs: f.epochs,
        seed: f.seed,
        space: SearchSpace {
            lr_min: f.lr_min,
            lr_max: f.lr_max,
            batch_sizes: f.batch_sizes.clone(),
            patiences: f.patiences.clone(),
            beta1s: f.beta1s.clone(),
            losses: f.losses.clone(),
            reduce_lr_patiences: f.reduce_lr_patiences.clone(),
            reduce_lr_factor: f.reduce_lr_factor,
            weight_decays: f.weight_decays.clone(),
            schedules: f.schedules.clone(),
            emas: f.emas.clone(),
            warmup_epochs: f.warmup_epochs,
            min_lr: f.min_lr,
            monitor: f.monitor,
            precision: f.precision,
        },
    };
    cfg.validate().context("hint: see `autoencoder tune --help`")?;
    Ok(cfg)
}

/// Starts a new search in `out`: refuses to overwrite one without `force`.
fn start(cfg: TuneConfig, force: bool, out: &Path) -> Result<TuneConfig> {
    if out.join(TUNE_FILE).exists() {
        anyhow::ensure!(
            force,
            "{} already holds a search; pass --resume {} to continue it, --force to overwrite it, or another --out",
            out.display(),
            out.display()
        );
        for entry in std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))? {
            let path = entry?.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("trial-")) {
                std::fs::remove_dir_all(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
        // The old search's results, so none of them outlives it next to the new one's.
        for file in ["trials.csv", "trials.md", REPORT_FILE, BEST_FILE, RECONSTRUCTIONS_FILE] {
            let path = out.join(file);
            if path.exists() {
                std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_json(&out.join(TUNE_FILE), &cfg)?;
    Ok(cfg)
}

/// A finished trial's result, after checking it belongs to this search.
fn finished_trial(dir: &Path, trial: usize, cfg: &TrainConfig) -> Result<Option<TrialResult>> {
    let path = dir.join(RESULT_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let r: TrialResult = read_json(&path)?;
    let same = r.trial == trial
        && r.lr == cfg.lr
        && r.batch_size == cfg.batch_size
        && r.patience == cfg.patience
        && r.beta1 == cfg.beta1
        && r.loss == cfg.loss
        && r.reduce_lr_patience == cfg.reduce_lr_patience
        && r.weight_decay == cfg.weight_decay
        && r.schedule == cfg.schedule
        && r.ema == cfg.ema;
    anyhow::ensure!(same, "{} holds a trial of another search than {}", path.display(), TUNE_FILE);
    Ok(Some(r))
}

/// trials.csv and trials.md, best first, rewritten as each trial is done.
fn write_tables(out: &Path, cfg: &TuneConfig, results: &[TrialResult]) -> Result<()> {
    fsutil::write_bytes_atomic(&out.join("trials.csv"), tune::trials_csv(results).as_bytes())?;
    let md =
        format!("# `autoencoder tune` of `{}`, seed {}\n\n{}", cfg.model, cfg.seed, tune::trials_markdown(results));
    fsutil::write_bytes_atomic(&out.join("trials.md"), md.as_bytes())?;
    Ok(())
}

fn summary(r: &TrialResult) -> String {
    match (&r.failure, r.val_ssim, r.val_ssim_uniform7, r.val_loss) {
        (None, Some(ssim), Some(u7), Some(loss)) => format!(
            "val_ssim {ssim:.4}, val_ssim_uniform7 {u7:.4}, val_loss {loss:.6} (best epoch {} of {})",
            r.best_epoch, r.epochs_run
        ),
        (failure, ..) => format!("failed: {}", failure.as_deref().unwrap_or("no validation scores")),
    }
}

fn describe(cfg: &TrainConfig) -> String {
    format!(
        "lr {}, batch {}, patience {}, beta1 {}, loss {}, reduce_lr_patience {}, weight_decay {}, schedule {}, ema {}",
        cfg.lr,
        cfg.batch_size,
        cfg.patience,
        cfg.beta1,
        cfg.loss,
        cfg.reduce_lr_patience,
        cfg.weight_decay,
        cfg.schedule,
        cfg.ema
    )
}

pub fn run(args: TuneArgs) -> Result<()> {
    if args.dry_run {
        let mut cfg = match &args.resume {
            Some(dir) => read_search(dir)?,
            None => config_from_args(&args)?,
        };
        cfg.trials = args.trials.unwrap_or(cfg.trials);
        cfg.validate()?;
        for trial in 1..=cfg.trials {
            outln!("trial {trial}/{}: {}", cfg.trials, describe(&cfg.trial(trial)));
        }
        return Ok(());
    }
    if let Some(dir) = &args.finalize {
        return finalize_only(dir, &args);
    }
    if args.plan {
        return plan(&args);
    }
    // Before anything is written: a bad --threads must leave no search folder behind.
    let threads = set_threads(args.threads)?;
    // One writer per search folder, from before its tune.json is read or written; bad flags
    // leave no folder behind.
    let (out, new_search) = match &args.resume {
        Some(dir) => {
            anyhow::ensure!(
                dir.is_dir(),
                "cannot resume from {}: no such folder (it should hold a search's {TUNE_FILE})",
                dir.display()
            );
            (dir.clone(), None)
        }
        None => (args.search.out.clone().context("--out is required")?, Some(config_from_args(&args)?)),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let _lock = lock_run(&out)?;
    let cfg = match new_search {
        None => {
            let mut cfg = read_search(&out).with_context(|| {
                format!("cannot resume from {} (hint: pass a folder written by `autoencoder tune`)", out.display())
            })?;
            if let Some(trials) = args.trials {
                cfg.trials = trials;
                cfg.validate()?;
                write_json(&out.join(TUNE_FILE), &cfg)?;
            }
            cfg
        }
        Some(cfg) => start(cfg, args.search.force, &out)?,
    };
    let (data, split) = load_data(&args.source, cfg.seed)?;
    install_ctrl_c()?;
    outln!(
        "tuning `{}`: {} trials of at most {} epochs, seed {}, {} train / {} val images, {} threads -> {}",
        cfg.model,
        cfg.trials,
        cfg.epochs,
        cfg.seed,
        split.train.len(),
        split.val.len(),
        threads,
        out.display()
    );
    note_bf16_speed(cfg.space.precision);
    let mut results = Vec::new();
    for trial in 1..=cfg.trials {
        let (tcfg, dir) = (cfg.trial(trial), trial_dir(&out, trial));
        let r = match finished_trial(&dir, trial, &tcfg)? {
            Some(r) => {
                outln!("trial {trial}/{}: {} -- finished earlier: {}", cfg.trials, describe(&tcfg), summary(&r));
                r
            }
            None => {
                std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
                let _claim = lock_run(&dir)?;
                run_trial(&out, &cfg, trial, threads, &data, &split)?
            }
        };
        results.push(r);
        write_tables(&out, &cfg, &results)?;
    }
    finalize(&out, &cfg, &results, threads, &data, &split)
}

/// `tune --plan`: writes the search and nothing else.
fn plan(args: &TuneArgs) -> Result<()> {
    let cfg = config_from_args(args)?;
    let out = args.search.out.clone().context("--out is required")?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let _lock = lock_run(&out)?;
    if out.join(TUNE_FILE).exists() {
        let planned = read_search(&out)?;
        anyhow::ensure!(
            planned == cfg,
            "{} already holds a different search; pass --force with tune (not --plan) to replace it, or another --out",
            out.display()
        );
        outln!("{} already holds this search", out.display());
    } else {
        write_json(&out.join(TUNE_FILE), &cfg)?;
    }
    outln!(
        "planned {} trials of `{}` in {}: run `autoencoder tune-worker {} --claim` on each worker (or --trial I), then `autoencoder tune --finalize {}`",
        cfg.trials,
        cfg.model,
        out.display(),
        out.display(),
        out.display()
    );
    Ok(())
}

/// `tune --finalize DIR [--partial]`: ranks what the workers finished.
fn finalize_only(out: &Path, args: &TuneArgs) -> Result<()> {
    let cfg = read_search(out).with_context(|| format!("cannot finalize {}: not a planned search", out.display()))?;
    let threads = set_threads(args.threads)?;
    let _lock = lock_run(out)?;
    let mut results = Vec::new();
    let mut unfinished = Vec::new();
    for trial in 1..=cfg.trials {
        match finished_trial(&trial_dir(out, trial), trial, &cfg.trial(trial))? {
            Some(r) => results.push(r),
            None => unfinished.push(trial.to_string()),
        }
    }
    if !unfinished.is_empty() {
        anyhow::ensure!(
            args.partial && !results.is_empty(),
            "{} of {} trials are not finished: {} (hint: wait for the workers, or --partial to rank the finished ones)",
            unfinished.len(),
            cfg.trials,
            unfinished.join(", ")
        );
        eprintln!("note: ranking {} finished trials; not finished: {}", results.len(), unfinished.join(", "));
    }
    let (data, split) = load_data(&args.source, cfg.seed)?;
    write_tables(out, &cfg, &results)?;
    finalize(out, &cfg, &results, threads, &data, &split)
}

/// `autoencoder tune-worker DIR (--trial I | --claim)`.
pub fn worker(args: WorkerArgs) -> Result<()> {
    let out = &args.dir;
    let cfg = read_search(out).with_context(|| {
        format!("cannot work on {} (hint: make it with `autoencoder tune --plan --out DIR`)", out.display())
    })?;
    let threads = set_threads(args.threads)?;
    let (data, split) = load_data(&args.source, cfg.seed)?;
    install_ctrl_c()?;
    // Claims `trial`, then runs it unless it is finished (checked again under the claim: another
    // worker may have finished it meanwhile). Returns whether this worker ran it.
    let work = |trial: usize| -> Result<Option<bool>> {
        let dir = trial_dir(out, trial);
        if finished_trial(&dir, trial, &cfg.trial(trial))?.is_some() {
            return Ok(Some(false));
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        match fsutil::claim(&dir, args.stale_after, &dir.join(STATE_FILE))? {
            fsutil::Claim::Busy(holder) => {
                outln!("trial {trial}/{}: claimed by {holder}", cfg.trials);
                Ok(None)
            }
            fsutil::Claim::Held(_claim) => {
                if finished_trial(&dir, trial, &cfg.trial(trial))?.is_some() {
                    return Ok(Some(false));
                }
                run_trial(out, &cfg, trial, threads, &data, &split)?;
                Ok(Some(true))
            }
        }
    };
    if let Some(trial) = args.trial {
        anyhow::ensure!(
            (1..=cfg.trials).contains(&trial),
            "--trial {trial}: the search has trials 1 to {}",
            cfg.trials
        );
        return match work(trial)? {
            Some(true) => Ok(()),
            Some(false) => {
                outln!("trial {trial}/{} is finished already", cfg.trials);
                Ok(())
            }
            None => anyhow::bail!("trial {trial} is being run by another worker"),
        };
    }
    // Passes over the trials in order until one runs nothing: a claim that went stale while
    // this worker ran another trial is found by the next pass.
    loop {
        let mut ran = false;
        for trial in 1..=cfg.trials {
            ran |= work(trial)? == Some(true);
        }
        if !ran {
            break;
        }
    }
    outln!("no unclaimed trial left in {}", out.display());
    Ok(())
}

/// Runs trial `trial` of `cfg` in its folder to the end (continuing its saved state), makes the
/// folder a run folder and writes its result.json. The caller holds the trial's lock.
fn run_trial(
    out: &Path,
    cfg: &TuneConfig,
    trial: usize,
    threads: usize,
    data: &Dataset,
    split: &Split,
) -> Result<TrialResult> {
    let (tcfg, dir) = (cfg.trial(trial), trial_dir(out, trial));
    let resume = if dir.join(STATE_FILE).exists() {
        let (saved, model, state) = load_run_state(&dir, "tune")?;
        anyhow::ensure!(saved == tcfg, "{} holds a trial of another search than {}", dir.display(), TUNE_FILE);
        Some((model, state))
    } else {
        None
    };
    outln!("trial {trial}/{}: {} -> {}", cfg.trials, describe(&tcfg), dir.display());
    let hint = format!("autoencoder tune --resume {} (or a tune-worker)", out.display());
    let r = match train_in(&dir, &tcfg, resume, data, split, &hint, None) {
        Ok(outcome) => {
            let r = TrialResult::new(trial, &tcfg, &outcome.history, outcome.best_epoch)?;
            finish_trial(&dir, &tcfg, threads, outcome, data, split)?;
            r
        }
        // A diverged trial is a result of the search, not the end of it.
        Err(e) => match e.downcast_ref::<Error>() {
            Some(Error::Diverged { epoch, .. } | Error::NonFinite { epoch, .. }) => {
                eprintln!("trial {trial}: {e:#}");
                let failure = format!("diverged in epoch {epoch}");
                // The epochs before the failed one, as saved after each of them.
                let saved = dir.join(STATE_FILE).exists();
                let history = if saved { load_run_state(&dir, "tune")?.2.history } else { Vec::new() };
                TrialResult::failed(trial, &tcfg, &history, failure)
            }
            _ => return Err(e),
        },
    };
    write_json(&dir.join(RESULT_FILE), &r)?;
    outln!("trial {trial}/{}: {}", cfg.trials, summary(&r));
    Ok(r)
}

/// The end of a search: the table, then the best trial by validation SSIM scored once on the
/// test split, its weights, report.json and reconstructions.png in `out`.
fn finalize(
    out: &Path,
    cfg: &TuneConfig,
    results: &[TrialResult],
    threads: usize,
    data: &Dataset,
    split: &Split,
) -> Result<()> {
    outln!("\n{}", tune::trials_markdown(results));
    let top = tune::ranked(results)[0];
    anyhow::ensure!(
        top.failure.is_none(),
        "every trial diverged; nothing to score on the test split (hint: lower --lr-max)"
    );
    let best = top.trial;
    let (bcfg, model, state) = load_run_state(&trial_dir(out, best), "tune")?;
    // The trial is finished, so `train` only restores its best weights.
    let outcome = train::train(&bcfg, data, split, Some((model, state)), &AtomicBool::new(false), &mut |_| Ok(()))?;
    let data_digest = Some(data.digest(bcfg.seed));
    let info = CheckpointInfo { model: bcfg.model, epoch: outcome.best_epoch, seed: bcfg.seed, data_digest };
    checkpoint::save(&out.join(BEST_FILE), &outcome.model, &info)?;
    let mut extra = serde_json::Map::new();
    extra.insert("best_trial".into(), best.into());
    extra.insert("search".into(), serde_json::to_value(cfg)?);
    extra.insert("trials".into(), serde_json::to_value(tune::ranked(results))?);
    // `wall_time_s` and `train_images_per_s` are the best trial's; this is the whole search's.
    extra.insert("search_wall_time_s".into(), results.iter().map(|r| r.wall_time_s).sum::<f64>().into());
    outln!("best: trial {best} ({}); its test scores:", describe(&bcfg));
    finish_run(out, &bcfg, threads, outcome, data, split, &extra)?;
    outln!("reproduce it alone: autoencoder train {}", bcfg.train_flags());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TuneArgs,
    }

    #[test]
    fn the_flags_defaults_are_the_search_space_and_train_configs() {
        let cli = Cli::try_parse_from(["tune", "--trials", "3", "--out", "x"]).unwrap();
        let d = TrainConfig::reference(ModelKind::Modified);
        let want =
            TuneConfig { model: d.model, trials: 3, epochs: d.epochs, seed: d.seed, space: SearchSpace::default() };
        assert_eq!(config_from_args(&cli.args).unwrap(), want);
    }

    #[test]
    fn resume_refuses_every_search_flag_and_takes_trials_threads_and_data_flags() {
        let flags = super::super::common::flag_samples::<SearchFlags>();
        assert_eq!(flags.len(), 20);
        for flag in flags {
            assert!(Cli::try_parse_from(["tune", "--trials", "2", "--dry-run", &flag]).is_ok(), "{flag} alone");
            let err = Cli::try_parse_from(["tune", "--resume", "d", &flag]).err();
            assert_eq!(err.map(|e| e.kind()), Some(clap::error::ErrorKind::ArgumentConflict), "{flag} with --resume");
        }
        for flag in ["--trials=9", "--threads=1", "--data-dir=d", "--allow-custom-data", "--dry-run"] {
            assert!(Cli::try_parse_from(["tune", "--resume", "d", flag]).is_ok(), "{flag} refused with --resume");
        }
    }
}
