//! `autoencoder eval`, `reconstruct` and `encode`: a trained checkpoint applied to one part of
//! the split (or, for `reconstruct`, to the user's own images).

use super::common::{load_checkpoint, load_data, warn_if_other_data, SplitName};
use super::data::DataSource;
use super::train::parse_named;
use anyhow::{Context, Result};
use autoencoder::data::{idx, IMAGE_LEN};
use autoencoder::eval::{self, Images};
use autoencoder::models;
use autoencoder::run::{npy, picture};
use kernels::bf16::Precision;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint written by `autoencoder train` (best.safetensors).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitName,
    /// Seed of the split (default: the one recorded in the checkpoint).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object: model, split, count, ssim, ssim_uniform7, mse, precision.
    #[arg(long)]
    pub json: bool,
    /// Precision of the convolutions' and dense layers' products: f32 or bf16 (see `train
    /// --precision`).
    #[arg(long, default_value_t = Precision::F32, value_parser = parse_named::<Precision>)]
    pub precision: Precision,
    #[command(flatten)]
    pub source: DataSource,
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let (mut model, info) = load_checkpoint(&args.checkpoint, None)?;
    model.set_precision(args.precision);
    let seed = args.seed.unwrap_or(info.seed);
    let (data, split) = load_data(&args.source, seed)?;
    warn_if_other_data(&args.checkpoint, &info, &data, seed);
    let s = eval::evaluate(&mut model, Images::Subset(&data, args.split.indices(&split)))?;
    if args.json {
        let v = json!({"model": info.model, "split": args.split.name(), "count": s.count,
                       "ssim": s.ssim, "ssim_uniform7": s.ssim_uniform7, "mse": s.mse,
                       "precision": args.precision.name()});
        outln!("{v}");
    } else {
        outln!(
            "{} on {} ({} images): SSIM {:.4} (gaussian) / {:.4} (uniform7), MSE {:.6}",
            info.model,
            args.split.name(),
            s.count,
            s.ssim,
            s.ssim_uniform7,
            s.mse
        );
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ReconstructArgs {
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// PNG grid of originals above their reconstructions (default reconstructions.png when
    /// neither --png nor --npy is given).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// The reconstructions as a NumPy array (N x 28 x 28, f32), in input order.
    #[arg(long, value_name = "FILE")]
    pub npy: Option<PathBuf>,
    /// How many images (default 16 from a split, all of --input).
    #[arg(long)]
    pub count: Option<usize>,
    #[arg(long, value_enum, default_value = "test", conflicts_with = "input")]
    pub split: SplitName,
    /// Your own images instead of a split: .npy (f32 in [0,1] or u8; (N,28,28) or (N,28,28,1))
    /// or an IDX image file.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Seed of the split (default: the one recorded in the checkpoint).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Precision of the convolutions' and dense layers' products: f32 or bf16 (see `train
    /// --precision`).
    #[arg(long, default_value_t = Precision::F32, value_parser = parse_named::<Precision>)]
    pub precision: Precision,
    #[command(flatten)]
    pub source: DataSource,
}

/// Pixels `[n, 28, 28]` in [0, 1] from a user's .npy or IDX file.
fn read_user_images(path: &Path) -> Result<Vec<f32>> {
    let is_npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let (h, w, pixels) = if is_npy {
        let set = npy::read_images(path)?;
        (set.h, set.w, set.data)
    } else {
        let imgs = idx::read_images(path)?;
        (imgs.rows, imgs.cols, imgs.pixels.iter().map(|&p| p as f32 / 255.0).collect())
    };
    anyhow::ensure!(
        (h, w) == (28, 28),
        "{}: images are {h}x{w}, the models take 28x28 (hint: resize them first)",
        path.display()
    );
    anyhow::ensure!(
        pixels.iter().all(|p| (0.0..=1.0).contains(p)),
        "{}: pixel values must lie in [0, 1] (or be u8)",
        path.display()
    );
    Ok(pixels)
}

pub fn reconstruct(args: ReconstructArgs) -> Result<()> {
    let (mut model, info) = load_checkpoint(&args.checkpoint, None)?;
    model.set_precision(args.precision);
    let originals = match &args.input {
        Some(path) => {
            let mut px = read_user_images(path)?;
            let n = args.count.unwrap_or(usize::MAX).min(px.len() / IMAGE_LEN);
            px.truncate(n * IMAGE_LEN);
            px
        }
        None => {
            let seed = args.seed.unwrap_or(info.seed);
            let (data, split) = load_data(&args.source, seed)?;
            warn_if_other_data(&args.checkpoint, &info, &data, seed);
            let idx = args.split.indices(&split);
            let shown = &idx[..args.count.unwrap_or(16).min(idx.len())];
            let mut px = vec![0.0; shown.len() * IMAGE_LEN];
            data.fill_batch(shown, &mut px);
            px
        }
    };
    anyhow::ensure!(!originals.is_empty(), "no images to reconstruct (hint: check --count and --input)");
    let n = originals.len() / IMAGE_LEN;
    let recon = eval::reconstruct(&mut model, Images::Pixels(&originals))?;
    let png = match (&args.png, &args.npy) {
        (None, None) => Some(PathBuf::from("reconstructions.png")),
        (p, _) => p.clone(),
    };
    if let Some(p) = &png {
        picture::write_grid_png(p, &originals, &recon, n, 28, 28, 4)?;
        outln!("wrote {} ({n} originals above their reconstructions)", p.display());
    }
    if let Some(p) = &args.npy {
        npy::write_f32(p, &[n, 28, 28], &recon)?;
        outln!("wrote {} ({n} x 28 x 28 f32)", p.display());
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Where to write the codes (N x 128 f32); for a split, labels go to the sibling
    /// FILE.labels.npy.
    #[arg(long, value_name = "FILE.npy")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitName,
    /// Your own images instead of a split: .npy (f32 in [0,1] or u8; (N,28,28) or
    /// (N,28,28,1)) or an IDX image file; no labels are written
    #[arg(long, value_name = "FILE", conflicts_with = "split")]
    pub input: Option<PathBuf>,
    /// Seed of the split (default: the one recorded in the checkpoint).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Precision of the convolutions' and dense layers' products: f32 or bf16 (see `train
    /// --precision`).
    #[arg(long, default_value_t = Precision::F32, value_parser = parse_named::<Precision>)]
    pub precision: Precision,
    #[command(flatten)]
    pub source: DataSource,
}

/// `codes.npy` -> `codes.labels.npy`.
fn labels_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    out.with_file_name(format!("{stem}.labels.npy"))
}

pub fn encode(args: EncodeArgs) -> Result<()> {
    let (mut model, info) = load_checkpoint(&args.checkpoint, None)?;
    model.set_precision(args.precision);
    if let Some(path) = &args.input {
        let px = read_user_images(path)?;
        let n = px.len() / IMAGE_LEN;
        let codes = eval::encode(&mut model, Images::Pixels(&px))?;
        npy::write_f32(&args.out, &[n, models::LATENT], &codes).context("cannot write the codes")?;
        outln!("wrote {} ({} x {} f32)", args.out.display(), n, models::LATENT);
        return Ok(());
    }
    let seed = args.seed.unwrap_or(info.seed);
    let (data, split) = load_data(&args.source, seed)?;
    warn_if_other_data(&args.checkpoint, &info, &data, seed);
    let idx = args.split.indices(&split);
    let codes = eval::encode(&mut model, Images::Subset(&data, idx))?;
    let labels: Vec<u8> = idx.iter().map(|&i| data.labels[i]).collect();
    npy::write_f32(&args.out, &[idx.len(), models::LATENT], &codes).context("cannot write the codes")?;
    let lp = labels_path(&args.out);
    npy::write_u8(&lp, &[idx.len()], &labels).context("cannot write the labels")?;
    outln!("wrote {} ({} x {} f32) and {}", args.out.display(), idx.len(), models::LATENT, lp.display());
    Ok(())
}
