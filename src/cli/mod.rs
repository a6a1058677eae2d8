//! Subcommands, one file each.

mod ssim;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "autoencoder", version, about = "Train and evaluate convolutional autoencoders on Fashion-MNIST, on the CPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match &cli.command {
        Command::Ssim(args) => ssim::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
