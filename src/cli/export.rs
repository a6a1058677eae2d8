//! `autoencoder export`: a checkpoint as an ONNX file (the whole model, the encoder or the
//! decoder), for onnxruntime and every other ONNX runtime.

use super::common::load_checkpoint;
use anyhow::{Context, Result};
use autoencoder::onnx::{self, Layout, Part};
use autoencoder::run::fsutil::write_bytes_atomic;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// A best.safetensors (or last.safetensors) written by `autoencoder train`.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Where to write the ONNX file (opset 17); written atomically.
    #[arg(long, value_name = "OUT.onnx")]
    pub onnx: PathBuf,
    /// full: images in, `reconstruction` out; encoder: images in, the 128-number `code` out;
    /// decoder: `code` in, `reconstruction` out.
    #[arg(long, value_enum, default_value = "full")]
    pub part: PartArg,
    /// Axis order of the images: nhwc, (N, 28, 28, 1) as Keras; nchw, (N, 1, 28, 28) as
    /// PyTorch. Pixels are float32 in [0, 1]; N is dynamic.
    #[arg(long, value_enum, default_value = "nhwc")]
    pub layout: LayoutArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PartArg {
    Full,
    Encoder,
    Decoder,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LayoutArg {
    Nhwc,
    Nchw,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let (model, info) = load_checkpoint(&args.checkpoint, None)?;
    let part = match args.part {
        PartArg::Full => Part::Full,
        PartArg::Encoder => Part::Encoder,
        PartArg::Decoder => Part::Decoder,
    };
    let layout = match args.layout {
        LayoutArg::Nhwc => Layout::Nhwc,
        LayoutArg::Nchw => Layout::Nchw,
    };
    let bytes = onnx::export(&model, &info, part, layout)?;
    write_bytes_atomic(&args.onnx, &bytes).with_context(|| format!("cannot write {}", args.onnx.display()))?;
    outln!(
        "wrote {} ({} bytes): the {:?} of `{}` (epoch {}), {:?} images, ONNX opset {}",
        args.onnx.display(),
        bytes.len(),
        args.part,
        info.model,
        info.epoch,
        args.layout,
        onnx::OPSET
    );
    Ok(())
}
