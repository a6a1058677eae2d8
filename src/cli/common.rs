//! Pieces several subcommands share: loading data and checkpoints, the thread pool.

use super::data::DataSource;
use anyhow::{Context, Result};
use autoencoder::data::{self, Dataset, Split};
use autoencoder::models::ModelKind;
use autoencoder::run::checkpoint::{self, CheckpointInfo};
use autoencoder::sequential::Sequential;
use std::path::Path;

/// Applies `AUTOENCODER_KERNELS` (`avx512`, `avx2` or `portable`), when set, to every kernel call of
/// this process; otherwise the kernels run on the fastest path the CPU supports.
pub fn choose_kernels() -> Result<()> {
    use kernels::isa::{set_kernel_path, KernelPath};
    let Some(value) = std::env::var_os("AUTOENCODER_KERNELS") else { return Ok(()) };
    let names: Vec<_> = KernelPath::ALL.iter().map(|p| p.name()).collect();
    let path = value.to_str().and_then(KernelPath::from_name).with_context(|| {
        format!("invalid AUTOENCODER_KERNELS={}: expected one of {}", value.to_string_lossy(), names.join(", "))
    })?;
    set_kernel_path(path).map_err(|e| anyhow::anyhow!("AUTOENCODER_KERNELS={path}: {e}"))
}

/// Most worker threads `--threads` accepts.
const MAX_THREADS: usize = 256;

/// Sizes the global rayon pool; `None` means one thread per core.
pub fn set_threads(threads: Option<usize>) -> Result<usize> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        // A pool of thousands of threads took seconds to start and can exhaust the process table.
        anyhow::ensure!((1..=MAX_THREADS).contains(&t), "invalid --threads: expected 1 to {MAX_THREADS}, found {t}");
        builder = builder.num_threads(t);
    }
    builder.build_global().context("cannot start the thread pool")?;
    Ok(rayon::current_num_threads())
}

/// Runs `f` on a thread of the global pool (`rayon::scope` runs its closure there) and waits.
/// A parallel pass started from outside the pool is pushed onto the pool's shared job queue,
/// which allocates a new block every 63 jobs; from a pool thread it goes onto that thread's own
/// queue, which does not, so a training step allocates nothing (tests/zero_alloc.rs).
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Locates, verifies and loads the data, and splits it with `seed`.
pub fn load_data(source: &DataSource, seed: u64) -> Result<(Dataset, Split)> {
    let dataset = data::load(&source.options()).context("cannot load the data")?;
    let split = data::split(dataset.len(), seed);
    Ok((dataset, split))
}

pub fn load_checkpoint(path: &Path, expect: Option<ModelKind>) -> Result<(Sequential, CheckpointInfo)> {
    checkpoint::load(path, expect).with_context(|| {
        format!(
            "cannot load checkpoint {} (hint: pass a best.safetensors written by `autoencoder train`)",
            path.display()
        )
    })
}

/// Warns when `checkpoint` was trained on other data than `data` split with `seed`: its
/// scores, codes or reconstructions are then of images it may have been trained on.
pub fn warn_if_other_data(checkpoint: &Path, info: &CheckpointInfo, data: &Dataset, seed: u64) {
    let Some(trained) = &info.data_digest else { return };
    let here = data.digest(seed);
    if *trained != here {
        eprintln!(
            "warning: {} was trained on other data or another split (digest {trained}) than {} split with seed \
             {seed} (digest {here}): its test split may hold images it was trained on",
            checkpoint.display(),
            data.origin
        );
    }
}

/// Which part of the split to use.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitName {
    Train,
    Val,
    Test,
}

impl SplitName {
    pub fn indices(self, split: &Split) -> &[usize] {
        match self {
            SplitName::Train => &split.train,
            SplitName::Val => &split.val,
            SplitName::Test => &split.test,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Val => "val",
            SplitName::Test => "test",
        }
    }
}

/// For tests: one valid use of each flag of the clap group `A` (`--flag` or `--flag=value`).
#[cfg(test)]
pub fn flag_samples<A: clap::Args>() -> Vec<String> {
    use clap::ArgAction;
    let cmd = A::augment_args(clap::Command::new("flags"));
    cmd.get_arguments()
        .map(|arg| {
            let long = arg.get_long().expect("every flag of the group is a --flag");
            match (arg.get_action(), long) {
                (ArgAction::SetTrue, _) => format!("--{long}"),
                (_, "model") => "--model=baseline".to_string(),
                (_, "loss" | "losses") => format!("--{long}=ssim"),
                (_, "schedule" | "schedules") => format!("--{long}=cosine"),
                (_, "recipe") => "--recipe=reference".to_string(),
                (_, "monitor") => "--monitor=val_ssim".to_string(),
                (_, "precision") => "--precision=bf16".to_string(),
                _ => format!("--{long}=1"),
            }
        })
        .collect()
}
