//! Subcommands, one file each; `common` holds what several share.

/// `println!` that treats a closed stdout (`autoencoder ... | head`) as the end of the output:
/// exit quietly instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }};
}

mod bench;
mod common;
mod compare;
mod data;
mod eval;
mod export;
mod models;
mod report;
mod ssim;
mod train;
mod tune;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "autoencoder",
    version,
    about = "Train and evaluate convolutional autoencoders on Fashion-MNIST, on the CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Locate, verify and load the data set; print where it came from, the split sizes, and the
    /// class counts and mean pixel value of each split.
    Data(data::DataArgs),
    /// Print every layer of both models: name, output shape, parameters, FLOPs.
    Models,
    /// Train a model (by default with the tuned recipe: 20 epochs; `--recipe reference` is the
    /// Keras notebook's); writes best.safetensors, metrics.csv, report.json, reconstructions.png.
    Train(train::TrainArgs),
    /// Random search over learning rate, batch size, patience, Adam beta1, loss, the
    /// learning-rate plateau patience, weight decay, the schedule and the weights' moving
    /// average, scored on validation SSIM; the best trial is then scored once on the test split.
    Tune(tune::TuneArgs),
    /// Run trials of a planned search (`tune --plan`): one (--trial I, for job arrays) or,
    /// with --claim, the next unclaimed one until none is left; many workers may share DIR.
    TuneWorker(tune::WorkerArgs),
    /// Mean SSIM (both definitions) and MSE of a checkpoint on a split.
    Eval(eval::EvalArgs),
    /// Originals above their reconstructions as a PNG grid, and/or reconstructions as .npy.
    Reconstruct(eval::ReconstructArgs),
    /// The 128-number latent codes of a split (labels beside them), or of your own images, as .npy.
    Encode(eval::EncodeArgs),
    /// A checkpoint as an ONNX file: the whole autoencoder, the encoder or the decoder.
    Export(export::ExportArgs),
    /// The comparison table of several training runs.
    Compare(compare::CompareArgs),
    /// Training and inference throughput (images/s) of one model.
    Bench(bench::BenchArgs),
    /// Mean SSIM between two image sets (.npy), under both definitions.
    ///
    /// Each file is a .npy array of float32, float64 or uint8 (uint8 is scaled by 1/255),
    /// shaped (N, H, W), (N, H, W, 1) or (H, W); float values are expected in [0, 1]. Image k
    /// of A is compared with image k of B, and the mean over the N pairs is printed as `ssim`
    /// (11x11 Gaussian window, sigma 1.5, as tf.image.ssim) and `ssim_uniform7` (7x7 uniform
    /// window, sample covariance, as scikit-image's default structural_similarity). The two are
    /// different metrics: compare values only under the same name. Images must be at least
    /// 11x11 pixels.
    Ssim(ssim::SsimArgs),
    /// An HTML and Markdown report comparing trained runs with each other and with PCA.
    Report(report::ReportArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = common::choose_kernels() {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Data(a) => data::run(a),
        Command::Models => models::run(),
        Command::Train(a) => train::run(a),
        Command::Tune(a) => tune::run(a),
        Command::TuneWorker(a) => tune::worker(a),
        Command::Eval(a) => eval::eval(a),
        Command::Reconstruct(a) => eval::reconstruct(a),
        Command::Encode(a) => eval::encode(a),
        Command::Export(a) => export::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Ssim(a) => ssim::run(&a),
        Command::Report(a) => report::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Stopped by Ctrl-C or SIGTERM with its state saved; the hint is printed already.
        Err(e) if matches!(e.downcast_ref(), Some(autoencoder::Error::Interrupted { .. })) => ExitCode::from(130),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
