//! `autoencoder data`: locate, verify and load the data set, then describe it and its split.
//! [`DataSource`] is the pair of flags every subcommand that reads data flattens in.

use autoencoder::data::{self, DataOptions, Dataset, NUM_CLASSES};
use autoencoder::Error;
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
}

impl DataSource {
    pub fn options(&self) -> DataOptions {
        DataOptions {
            data_dir: self.data_dir.clone(),
            allow_custom_data: self.allow_custom_data,
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
    println!("data:   {}", ds.origin);
    println!(
        "images: {} of {}x{}, loaded and verified in {:.2} s",
        ds.len(),
        data::IMAGE_SIDE,
        data::IMAGE_SIDE,
        elapsed.as_secs_f64()
    );
    println!(
        "split (seed {}): train {} / val {} / test {}",
        args.seed,
        split.train.len(),
        split.val.len(),
        split.test.len()
    );
    print!("\nclass  ");
    for c in 0..NUM_CLASSES {
        print!("{c:>6}");
    }
    println!("   mean pixel");
    for (name, part) in [
        ("train", &split.train),
        ("val", &split.val),
        ("test", &split.test),
    ] {
        print!("{name:<7}");
        for n in ds.class_counts(part) {
            print!("{n:>6}");
        }
        println!("   {:.4}", ds.mean_pixel(part));
    }
    Ok(())
}
