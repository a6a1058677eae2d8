//! Running a model over a set of images: reconstruction scores (MSE, SSIM under both
//! definitions), reconstructions and latent codes.

pub mod metrics;

use crate::data::{Dataset, IMAGE_LEN};
use crate::models::{self, INPUT_SHAPE};
use crate::sequential::Sequential;
use crate::{Error, Result, Tensor};
use kernels::ssim::Window;
use serde::{Deserialize, Serialize};

/// Images per forward pass when only inferring. As large as a training batch, so evaluating
/// during training does not grow the activation buffers.
pub const EVAL_BATCH: usize = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub count: usize,
    /// Mean over all pixels of (reconstruction - original)².
    pub mse: f64,
    /// Mean SSIM, Gaussian 11x11 window, sigma 1.5 (the `tf.image.ssim` definition).
    pub ssim: f64,
    /// Mean SSIM, 7x7 uniform window (scikit-image's default).
    pub ssim_uniform7: f64,
}

/// A set of 28x28 images to run a model over.
#[derive(Clone, Copy)]
pub enum Images<'a> {
    /// Images `indices` of a data set (for example one part of the split).
    Subset(&'a Dataset, &'a [usize]),
    /// Pixels in [0, 1], `[n, 28, 28]`.
    Pixels(&'a [f32]),
}

impl Images<'_> {
    pub fn len(&self) -> usize {
        match self {
            Images::Subset(_, idx) => idx.len(),
            Images::Pixels(p) => p.len() / IMAGE_LEN,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes images `start..end` into `out` (`[end - start, 28, 28, 1]`).
    fn fill(&self, start: usize, end: usize, out: &mut [f32]) {
        match self {
            Images::Subset(data, idx) => data.fill_batch(&idx[start..end], out),
            Images::Pixels(p) => out.copy_from_slice(&p[start * IMAGE_LEN..end * IMAGE_LEN]),
        }
    }
}

/// Runs `model` over `images` in batches, handing each batch's input and the model (whose
/// layer outputs now hold that batch) to `visit`.
pub fn for_each_batch(
    model: &mut Sequential,
    images: Images,
    visit: impl FnMut(&Tensor, &Sequential) -> Result<()>,
) -> Result<()> {
    for_each_batch_prefix(model, images, usize::MAX, visit)
}

/// As [`for_each_batch`], running only the model's first `layers` layers.
fn for_each_batch_prefix(
    model: &mut Sequential,
    images: Images,
    layers: usize,
    mut visit: impl FnMut(&Tensor, &Sequential) -> Result<()>,
) -> Result<()> {
    let mut batch = Tensor::default();
    for start in (0..images.len()).step_by(EVAL_BATCH) {
        let end = (start + EVAL_BATCH).min(images.len());
        batch.reshape_for(end - start, &INPUT_SHAPE);
        images.fill(start, end, batch.data_mut());
        model.infer_prefix(&batch, layers);
        visit(&batch, model)?;
    }
    Ok(())
}

/// Scores of the reconstructions of `originals` (both `[n, 28, 28, 1]`), as sums to be divided
/// by the image count.
fn score_sums(originals: &[f32], recon: &[f32], n: usize) -> Result<(f64, f64, f64)> {
    let sq = kernels::loss::mse(recon, originals) * originals.len() as f64;
    let g: f64 = metrics::per_image_ssim(Window::Gaussian11, recon, originals, n, 28, 28)?.iter().sum();
    let u: f64 = metrics::per_image_ssim(Window::Uniform7, recon, originals, n, 28, 28)?.iter().sum();
    Ok((sq, g, u))
}

/// Mean scores of `model`'s reconstructions of `images`.
pub fn evaluate(model: &mut Sequential, images: Images) -> Result<Scores> {
    if images.is_empty() {
        // A mean over no images is no score: an error, not a silent 0.
        return Err(Error::InvalidArgument {
            name: "images to score",
            expected: "at least one".to_string(),
            found: "none (is the split empty?)".to_string(),
        });
    }
    let (mut sq, mut g, mut u) = (0.0, 0.0, 0.0);
    for_each_batch(model, images, |x, m| {
        let y = m.layer_output(m.layers().len() - 1);
        let (a, b, c) = score_sums(x.data(), y.data(), x.batch())?;
        (sq, g, u) = (sq + a, g + b, u + c);
        Ok(())
    })?;
    let n = images.len() as f64;
    Ok(Scores { count: images.len(), mse: sq / (n * IMAGE_LEN as f64), ssim: g / n, ssim_uniform7: u / n })
}

/// Reconstructions `[n, 28, 28]` of `images`.
pub fn reconstruct(model: &mut Sequential, images: Images) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(images.len() * IMAGE_LEN);
    for_each_batch(model, images, |_, m| {
        out.extend_from_slice(m.layer_output(m.layers().len() - 1).data());
        Ok(())
    })?;
    Ok(out)
}

/// The index of `model`'s latent layer, or an error naming the layer looked for.
fn latent_layer(model: &Sequential) -> Result<usize> {
    models::latent_index(model).ok_or_else(|| Error::InvalidArgument {
        name: "model",
        expected: format!("a model with a `{}` layer", models::LATENT_LAYER),
        found: "none".to_string(),
    })
}

/// Reconstructions `[n, 28, 28]` and latent codes `[n, 128]` of `images`, in one pass.
pub fn reconstruct_and_encode(model: &mut Sequential, images: Images) -> Result<(Vec<f32>, Vec<f32>)> {
    let latent = latent_layer(model)?;
    let mut recon = Vec::with_capacity(images.len() * IMAGE_LEN);
    let mut codes = Vec::with_capacity(images.len() * models::LATENT);
    for_each_batch(model, images, |_, m| {
        recon.extend_from_slice(m.layer_output(m.layers().len() - 1).data());
        codes.extend_from_slice(m.layer_output(latent).data());
        Ok(())
    })?;
    Ok((recon, codes))
}

/// Latent codes `[n, 128]` of `images` (the encoder alone runs).
pub fn encode(model: &mut Sequential, images: Images) -> Result<Vec<f32>> {
    let latent = latent_layer(model)?;
    let mut out = Vec::with_capacity(images.len() * models::LATENT);
    for_each_batch_prefix(model, images, latent + 1, |_, m| {
        out.extend_from_slice(m.layer_output(latent).data());
        Ok(())
    })?;
    Ok(out)
}
