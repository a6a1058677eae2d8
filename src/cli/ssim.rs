//! `autoencoder ssim A.npy B.npy [--json]`: mean SSIM between two image sets from any source.

use anyhow::{anyhow, bail, Result};
use autoencoder::eval::metrics::{mean_ssim, Window};
use autoencoder::run::npy::read_images;
use autoencoder::Error;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `autoencoder ssim` (its --help text is on `Command::Ssim`).
#[derive(Args)]
pub struct SsimArgs {
    /// First image set (.npy), e.g. the originals.
    pub a: PathBuf,
    /// Second image set (.npy) with the same shape, e.g. the reconstructions.
    pub b: PathBuf,
    /// Print one JSON object {"ssim", "ssim_uniform7", "count"} instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &SsimArgs) -> Result<()> {
    // Library errors already name the file and the field; the hint goes last.
    let read = |path: &PathBuf| {
        read_images(path).map_err(|e| {
            let hint = match e {
                Error::Io { .. } => "check the path and that the file is readable",
                _ => "pass a .npy array of float32, float64 or uint8 shaped (N, H, W), (N, H, W, 1) or (H, W)",
            };
            anyhow!("{e}\nhint: {hint}")
        })
    };
    let a = read(&args.a)?;
    let b = read(&args.b)?;
    if (a.n, a.h, a.w) != (b.n, b.h, b.w) {
        bail!(
            "shapes differ: {} holds {} images of {}x{}, {} holds {} images of {}x{}\n\
             hint: pass two image sets of the same count and size (image k of one is compared \
             with image k of the other)",
            args.a.display(),
            a.n,
            a.h,
            a.w,
            args.b.display(),
            b.n,
            b.h,
            b.w
        );
    }
    for (path, set) in [(&args.a, &a), (&args.b, &b)] {
        if let Some(i) = set.data.iter().position(|v| !v.is_finite()) {
            let per = set.h * set.w;
            bail!(
                "{} holds a value that is not finite ({}) in image {}, pixel {}: SSIM of it would be NaN\n\
                 hint: pass images whose pixels are numbers (in [0, 1])",
                path.display(),
                set.data[i],
                i / per,
                i % per
            );
        }
    }
    let mut values = Vec::new();
    for window in [Window::Gaussian11, Window::Uniform7] {
        let v = mean_ssim(window, &a.data, &b.data, a.n, a.h, a.w).map_err(|e| {
            anyhow!(
                "{} and {}: {e}\nhint: SSIM needs at least one image of at least 11x11 pixels",
                args.a.display(),
                args.b.display()
            )
        })?;
        values.push(v);
    }
    let (ssim, uniform7) = (values[0], values[1]);
    if args.json {
        let obj = serde_json::json!({ "ssim": ssim, "ssim_uniform7": uniform7, "count": a.n });
        outln!("{obj}");
    } else {
        outln!("ssim          {ssim:.6}  (11x11 Gaussian window, sigma 1.5, as tf.image.ssim)");
        outln!("ssim_uniform7 {uniform7:.6}  (7x7 uniform window, as skimage structural_similarity)");
        outln!("count         {}  ({}x{} images)", a.n, a.h, a.w);
    }
    Ok(())
}
