//! `autoencoder data`: locate, verify and load the data set, then describe it and its split.
//! [`DataSource`] is the pair of flags every subcommand that reads data flattens in.

use anyhow::Context;
use autoencoder::data::{self, DataOptions, Dataset, NUM_CLASSES};
use autoencoder::Error;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// Where the data comes from.
#[derive(clap::Args, Debug, Clone)]
pub struct DataSource {
    /// Folder holding the four Fashion-MNIST IDX files (each plain or .gz); when given, the only
    /// place looked. Otherwise: $FASHION_MNIST_DIR, the user cache
    /// ($XDG_CACHE_HOME or ~/.cache, /autoencoder/fashion-mnist),
    /// /usr/share/datasets/fashion-mnist, then a download into the user cache
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Accept IDX data whose SHA-256 is not Fashion-MNIST's (e.g. MNIST digits, or your own
    /// 28x28 images with labels 0-9); every other check still applies
    #[arg(long)]
    pub allow_custom_data: bool,

    /// Download from this mirror (`URL/<name>.gz`, e.g. a local copy of the four .gz files)
    /// instead of the canonical address; default $FASHION_MNIST_URL. A named mirror is the
    /// source: the Debian package's folder is not searched, the user cache is and is filled
    /// from it (files land there only after their SHA-256 matched)
    #[arg(long, value_name = "URL")]
    pub data_url: Option<String>,
}

impl DataSource {
    pub fn options(&self) -> DataOptions {
        DataOptions {
            data_dir: self.data_dir.clone(),
            allow_custom_data: self.allow_custom_data,
            data_url: self.data_url.clone(),
        }
    }

    /// Loads the data set; an error ends with what to try.
    pub fn load(&self) -> anyhow::Result<Dataset> {
        data::load(&self.options()).map_err(|e| {
            // DataNotFound and Checksum already end with a hint.
            let hint = match &e {
                Error::Format { .. } => {
                    "\nhint: the file is damaged or not IDX data; reinstall or re-download it, or point --data-dir at good files"
                }
                Error::Io { .. } => "\nhint: check that the file exists and is readable",
                _ => "",
            };
            anyhow::anyhow!("cannot load the data set: {e}{hint}")
        })
    }
}

/// Arguments of `autoencoder data`.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    #[command(flatten)]
    pub source: DataSource,

    /// Seed of the train/validation/test permutation (same seed, same split on every machine)
    #[arg(long, default_value_t = data::DEFAULT_SEED)]
    pub seed: u64,
}

pub fn run(args: DataArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let ds = args.source.load()?;
    let elapsed = start.elapsed();
    let split = data::split(ds.len(), args.seed);
    let side = data::IMAGE_SIDE;
    let mut out = String::new();
    writeln!(out, "data:   {}", ds.origin)?;
    writeln!(out, "images: {} of {side}x{side}, loaded and checked in {:.2} s", ds.len(), elapsed.as_secs_f64())?;
    let (tr, va, te) = (&split.train, &split.val, &split.test);
    writeln!(out, "split (seed {}): train {} / val {} / test {}", args.seed, tr.len(), va.len(), te.len())?;
    write!(out, "\nclass  ")?;
    for c in 0..NUM_CLASSES {
        write!(out, "{c:>6}")?;
    }
    writeln!(out, "   mean pixel")?;
    for (name, part) in [("train", tr), ("val", va), ("test", te)] {
        write!(out, "{name:<7}")?;
        for n in ds.class_counts(part) {
            write!(out, "{n:>6}")?;
        }
        writeln!(out, "   {:.4}", ds.mean_pixel(part))?;
    }
    // One write, and a closed pipe (`autoencoder data | head`) is not an error.
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output (is the terminal or pipe still open?)")
        }
        _ => Ok(()),
    }
}
