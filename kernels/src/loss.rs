//! Training losses with their gradients:
//! * [`mse`]: mean squared error over all elements, as Keras's `MeanSquaredError()` with its
//!   default reduction: loss = sum (pred - target)² / N.
//! * [`ssim()`]: one minus the mean SSIM of each predicted image against its target, as the Keras
//!   loss `1 - tf.reduce_mean(tf.image.ssim(target, pred, max_val=1.0))` (Gaussian window).
//! * [`mse_ssim`]: MSE plus a weighted 1 − SSIM, the SSIM averaged over both windows.

use crate::ssim::{self, Window};
use rayon::prelude::*;

/// The loss, accumulated in f64 in a fixed order.
/// # Panics
/// If the slices differ in length.
pub fn mse(pred: &[f32], target: &[f32]) -> f64 {
    assert_eq!(pred.len(), target.len(), "mse: lengths");
    if pred.is_empty() {
        return 0.0;
    }
    let sum: f64 = pred.iter().zip(target).map(|(&p, &t)| ((p - t) as f64).powi(2)).sum();
    sum / pred.len() as f64
}

/// dpred = 2 (pred - target) / N. Overwrites `dpred`.
/// # Panics
/// If the slices differ in length.
pub fn mse_backward(pred: &[f32], target: &[f32], dpred: &mut [f32]) {
    assert!(pred.len() == target.len() && target.len() == dpred.len(), "mse: lengths");
    let scale = 2.0 / pred.len() as f32;
    for ((d, &p), &t) in dpred.iter_mut().zip(pred).zip(target) {
        *d = scale * (p - t);
    }
}

/// Most tasks [`ssim`] splits a batch into: the per-task sums live on the stack, and the chunk
/// size depends on the batch alone, so the loss is bitwise the same on any number of threads.
const SSIM_TASKS: usize = 16;

/// Scratch [`ssim()`] needs for images of `h x w` under `window` (f64 values).
pub fn ssim_scratch_len(window: Window, h: usize, w: usize) -> usize {
    SSIM_TASKS * ssim::backward_scratch_len(window, h, w)
}

/// loss = 1 − (1/n) Σ_i SSIM(pred_i, target_i) over the `n` images `[h, w]` in the batch, and
/// dpred = d loss / d pred (overwritten). SSIM is under `window`, in f64 (see `ssim::ssim`).
/// `scratch` holds at least `ssim_scratch_len(window, h, w)` values (overwritten).
/// # Panics
/// If the slices differ in length or do not hold whole `h x w` images, the window is larger
/// than the images, or `scratch` is too short.
pub fn ssim(
    window: Window,
    pred: &[f32],
    target: &[f32],
    h: usize,
    w: usize,
    dpred: &mut [f32],
    scratch: &mut [f64],
) -> f64 {
    assert!(pred.len() == target.len() && target.len() == dpred.len(), "ssim loss: lengths");
    let hw = h * w;
    assert!(hw > 0 && pred.len().is_multiple_of(hw), "ssim loss: {} values are not whole {h}x{w} images", pred.len());
    let n = pred.len() / hw;
    if n == 0 {
        return 0.0;
    }
    let chunk = n.div_ceil(SSIM_TASKS);
    let scale = -1.0 / n as f32;
    let task_len = ssim::backward_scratch_len(window, h, w);
    assert!(scratch.len() >= SSIM_TASKS * task_len, "ssim loss: scratch too short");
    let mut sums = [0.0f64; SSIM_TASKS];
    sums.par_iter_mut()
        .zip(scratch[..SSIM_TASKS * task_len].par_chunks_mut(task_len))
        .zip(pred.par_chunks(chunk * hw).zip(target.par_chunks(chunk * hw)).zip(dpred.par_chunks_mut(chunk * hw)))
        .for_each(|((sum, scratch), ((p, t), d))| {
            for ((pi, ti), di) in p.chunks_exact(hw).zip(t.chunks_exact(hw)).zip(d.chunks_exact_mut(hw)) {
                *sum += ssim::ssim_backward(window, pi, ti, h, w, di, scratch);
                di.iter_mut().for_each(|v| *v *= scale);
            }
        });
    1.0 - sums.iter().sum::<f64>() / n as f64
}

/// Scratch [`mse_ssim`] needs for images of `h x w` (f64 values).
pub fn mse_ssim_scratch_len(h: usize, w: usize) -> usize {
    SSIM_TASKS * mse_ssim_task_len(h, w)
}

fn mse_ssim_task_len(h: usize, w: usize) -> usize {
    BOTH_WINDOWS.iter().map(|&win| ssim::backward_scratch_len(win, h, w)).max().unwrap_or(0)
}

const BOTH_WINDOWS: [Window; 2] = [Window::Gaussian11, Window::Uniform7];

/// loss = MSE + `weight` (1 − (1/2n) Σ_i (SSIM_gauss(pred_i, target_i) + SSIM_uniform7(pred_i,
/// target_i))) over the `n` images `[h, w]` in the batch, and dpred = d loss / d pred
/// (overwritten): the pixel error everywhere, with the structure both SSIM definitions score.
/// `scratch` holds at least `mse_ssim_scratch_len(h, w)` values (overwritten).
/// # Panics
/// As [`ssim()`].
#[allow(clippy::too_many_arguments)]
pub fn mse_ssim(
    weight: f64,
    pred: &[f32],
    target: &[f32],
    h: usize,
    w: usize,
    dpred: &mut [f32],
    scratch: &mut [f64],
) -> f64 {
    let mse = mse(pred, target);
    mse_backward(pred, target, dpred);
    let hw = h * w;
    assert!(
        hw > 0 && pred.len().is_multiple_of(hw),
        "mse_ssim loss: {} values are not whole {h}x{w} images",
        pred.len()
    );
    let n = pred.len() / hw;
    if n == 0 {
        return 0.0;
    }
    let chunk = n.div_ceil(SSIM_TASKS);
    let scale = -weight / (2 * n) as f64;
    let task_len = mse_ssim_task_len(h, w);
    assert!(scratch.len() >= SSIM_TASKS * task_len, "mse_ssim loss: scratch too short");
    let mut sums = [0.0f64; SSIM_TASKS];
    sums.par_iter_mut()
        .zip(scratch[..SSIM_TASKS * task_len].par_chunks_mut(task_len))
        .zip(pred.par_chunks(chunk * hw).zip(target.par_chunks(chunk * hw)).zip(dpred.par_chunks_mut(chunk * hw)))
        .for_each(|((sum, scratch), ((p, t), d))| {
            for ((pi, ti), di) in p.chunks_exact(hw).zip(t.chunks_exact(hw)).zip(d.chunks_exact_mut(hw)) {
                for window in BOTH_WINDOWS {
                    let len = ssim::backward_scratch_len(window, h, w);
                    *sum += ssim::ssim_backward_add(window, pi, ti, h, w, scale, di, &mut scratch[..len]);
                }
            }
        });
    mse + weight * (1.0 - sums.iter().sum::<f64>() / (2 * n) as f64)
}
