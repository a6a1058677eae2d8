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
    let n = image_count("ssim loss", pred, target, dpred, h, w);
    if n == 0 {
        return 0.0;
    }
    let scale = -1.0 / n as f32;
    let task_len = ssim::backward_scratch_len(window, h, w);
    let total = sum_over_images("ssim loss", pred, target, dpred, h * w, task_len, scratch, |pi, ti, di, scratch| {
        let s = ssim::ssim_backward(window, pi, ti, h, w, di, scratch);
        di.iter_mut().for_each(|v| *v *= scale);
        s
    });
    1.0 - total / n as f64
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
    let n = image_count("mse_ssim loss", pred, target, dpred, h, w);
    if n == 0 {
        return 0.0;
    }
    let mse = mse(pred, target);
    mse_backward(pred, target, dpred);
    let scale = -weight / (2 * n) as f64;
    let task_len = mse_ssim_task_len(h, w);
    let total =
        sum_over_images("mse_ssim loss", pred, target, dpred, h * w, task_len, scratch, |pi, ti, di, scratch| {
            BOTH_WINDOWS
                .iter()
                .map(|&window| {
                    let len = ssim::backward_scratch_len(window, h, w);
                    ssim::ssim_backward_add(window, pi, ti, h, w, scale, di, &mut scratch[..len])
                })
                .sum::<f64>()
        });
    mse + weight * (1.0 - total / (2 * n) as f64)
}

/// The number of whole `h x w` images in a batch, after checking that `pred`, `target` and
/// `dpred` agree in length and hold whole images (panics naming `what` otherwise).
fn image_count(what: &str, pred: &[f32], target: &[f32], dpred: &[f32], h: usize, w: usize) -> usize {
    assert!(pred.len() == target.len() && target.len() == dpred.len(), "{what}: lengths");
    let hw = h * w;
    assert!(hw > 0 && pred.len().is_multiple_of(hw), "{what}: {} values are not whole {h}x{w} images", pred.len());
    pred.len() / hw
}

/// Σ over the batch's images of `per_image(pred_i, target_i, dpred_i, task scratch)`: the images
/// split into at most [`SSIM_TASKS`] runs of a size that depends on the batch alone, summed in
/// a fixed order, so the result is bitwise the same on any number of threads. Each task gets
/// `task_len` values of `scratch` (panics naming `what` if it is too short).
#[allow(clippy::too_many_arguments)]
fn sum_over_images(
    what: &str,
    pred: &[f32],
    target: &[f32],
    dpred: &mut [f32],
    hw: usize,
    task_len: usize,
    scratch: &mut [f64],
    per_image: impl Fn(&[f32], &[f32], &mut [f32], &mut [f64]) -> f64 + Sync,
) -> f64 {
    let chunk = (pred.len() / hw).div_ceil(SSIM_TASKS) * hw;
    assert!(scratch.len() >= SSIM_TASKS * task_len, "{what}: scratch too short");
    let mut sums = [0.0f64; SSIM_TASKS];
    sums.par_iter_mut()
        .zip(scratch[..SSIM_TASKS * task_len].par_chunks_mut(task_len))
        .zip(pred.par_chunks(chunk).zip(target.par_chunks(chunk)).zip(dpred.par_chunks_mut(chunk)))
        .for_each(|((sum, scratch), ((p, t), d))| {
            for ((pi, ti), di) in p.chunks_exact(hw).zip(t.chunks_exact(hw)).zip(d.chunks_exact_mut(hw)) {
                *sum += per_image(pi, ti, di, scratch);
            }
        });
    sums.iter().sum()
}
