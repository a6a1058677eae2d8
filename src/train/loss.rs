//! The training losses, as a choice of the run: what `train` minimises and what early stopping
//! and the learning-rate schedule watch on the validation split. The numerics are
//! `kernels::loss`.

use crate::eval::Scores;
use crate::models::INPUT_SHAPE;
use kernels::ssim::Window;
use serde::{Deserialize, Serialize};

/// What training minimises (and early stopping watches on the validation split).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Mean squared error per pixel (the reference notebook's loss).
    #[default]
    Mse,
    /// 1 − mean SSIM under the Gaussian window (`1 - tf.image.ssim`): optimises the score itself.
    Ssim,
    /// MSE + [`SSIM_WEIGHT`] (1 − SSIM), the SSIM averaged over the Gaussian and uniform-7
    /// windows: the pixel error everywhere, with the structure both scores measure.
    #[serde(rename = "mse+ssim")]
    MseSsim,
}

/// The weight of 1 − SSIM in `mse+ssim`. With MSE near 0.0026 and 1 − SSIM near 0.07, both
/// shrinking as the squared error does, 0.037 would make the two terms pull equally hard; 0.2
/// lets SSIM lead while the MSE still shapes the flat regions SSIM's constants blur (the one
/// weight measured so far, see README's Recipes).
pub const SSIM_WEIGHT: f64 = 0.2;

impl Loss {
    pub const ALL: [Loss; 3] = [Loss::Mse, Loss::Ssim, Loss::MseSsim];

    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::Ssim => "ssim",
            Loss::MseSsim => "mse+ssim",
        }
    }

    /// The loss of a model with these validation scores.
    pub fn of(self, scores: &Scores) -> f64 {
        match self {
            Loss::Mse => scores.mse,
            Loss::Ssim => 1.0 - scores.ssim,
            Loss::MseSsim => scores.mse + SSIM_WEIGHT * (1.0 - (scores.ssim + scores.ssim_uniform7) / 2.0),
        }
    }

    /// The batch loss of `pred` against `target` (`[b, 28, 28, 1]`), writing d loss / d pred
    /// into `dpred`; `scratch` is the loss's working memory, grown on first use and then
    /// reused (so a training loop's steps allocate nothing).
    pub fn forward_backward(self, pred: &[f32], target: &[f32], dpred: &mut [f32], scratch: &mut Vec<f64>) -> f64 {
        match self {
            Loss::Mse => {
                let loss = kernels::loss::mse(pred, target);
                kernels::loss::mse_backward(pred, target, dpred);
                loss
            }
            Loss::Ssim => {
                let [h, w, _] = INPUT_SHAPE;
                let scratch = grown(scratch, kernels::loss::ssim_scratch_len(Window::Gaussian11, h, w));
                kernels::loss::ssim(Window::Gaussian11, pred, target, h, w, dpred, scratch)
            }
            Loss::MseSsim => {
                let [h, w, _] = INPUT_SHAPE;
                let scratch = grown(scratch, kernels::loss::mse_ssim_scratch_len(h, w));
                kernels::loss::mse_ssim(SSIM_WEIGHT, pred, target, h, w, dpred, scratch)
            }
        }
    }
}

/// `scratch` grown to at least `len` values on first use (later steps allocate nothing).
fn grown(scratch: &mut Vec<f64>, len: usize) -> &mut [f64] {
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
    scratch
}

by_name!(Loss, "--loss");
