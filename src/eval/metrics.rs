//! SSIM (both definitions) and MSE over batches of images. A batch is `[n, h, w]` row-major
//! f32 (single channel, values in [0, 1]); image k is `data[k*h*w .. (k+1)*h*w]`.
//!
//! The two SSIM definitions are different metrics, reported under different names:
//! [`Window::Gaussian11`] as `ssim` (`tf.image.ssim`), [`Window::Uniform7`] as `ssim_uniform7`
//! (scikit-image's default). Do not compare values across them.
//!
//! Determinism: rayon computes one value per image, collected in image order, and the mean sums
//! them serially in that order, so results do not depend on the thread count.

use crate::{Error, Result};
use rayon::prelude::*;

pub use kernels::ssim::Window;

/// The name users see for a window's SSIM: `ssim` or `ssim_uniform7`.
pub fn metric_name(window: Window) -> &'static str {
    match window {
        Window::Gaussian11 => "ssim",
        Window::Uniform7 => "ssim_uniform7",
    }
}

/// Checks that `a` and `b` are both `[n, h, w]` and that the window fits in `h x w`.
fn check_batch(window: Window, a: &[f32], b: &[f32], n: usize, h: usize, w: usize) -> Result<usize> {
    let k = window.size();
    if h < k || w < k {
        return Err(Error::ImageTooSmall { metric: metric_name(window), window: k, h, w });
    }
    let len = n.checked_mul(h).and_then(|v| v.checked_mul(w)).ok_or_else(|| Error::InvalidArgument {
        name: "batch shape",
        expected: "n*h*w to fit in memory".into(),
        found: format!("{n}x{h}x{w}"),
    })?;
    for (name, s) in [("first image batch", a), ("second image batch", b)] {
        if s.len() != len {
            return Err(Error::InvalidArgument {
                name,
                expected: format!("{len} values ({n}x{h}x{w})"),
                found: format!("{} values", s.len()),
            });
        }
    }
    Ok(h * w)
}

/// SSIM of each pair `(a[k], b[k])`, k in 0..n, in image order.
///
/// Errors: [`Error::ImageTooSmall`] if the window does not fit in `h x w`;
/// [`Error::InvalidArgument`] if `a` or `b` does not hold `n*h*w` values.
pub fn per_image_ssim(window: Window, a: &[f32], b: &[f32], n: usize, h: usize, w: usize) -> Result<Vec<f64>> {
    let hw = check_batch(window, a, b, n, h, w)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    Ok(a.par_chunks_exact(hw)
        .zip(b.par_chunks_exact(hw))
        .map(|(x, y)| kernels::ssim::ssim(window, x, y, h, w))
        .collect())
}

/// Mean over the batch of the per-image SSIM (the per-image values summed in image order).
///
/// Errors: as [`per_image_ssim`], and [`Error::InvalidArgument`] for an empty batch.
pub fn mean_ssim(window: Window, a: &[f32], b: &[f32], n: usize, h: usize, w: usize) -> Result<f64> {
    if n == 0 {
        return Err(Error::InvalidArgument {
            name: "image count",
            expected: "at least 1 image".into(),
            found: "0".into(),
        });
    }
    let values = per_image_ssim(window, a, b, n, h, w)?;
    Ok(values.iter().sum::<f64>() / n as f64)
}

/// Mean squared error over all elements, accumulated in f64 (0 for empty slices).
///
/// Errors: [`Error::InvalidArgument`] if the slices differ in length.
pub fn mse(a: &[f32], b: &[f32]) -> Result<f64> {
    if a.len() != b.len() {
        return Err(Error::InvalidArgument {
            name: "mse operands",
            expected: format!("equal lengths ({} values)", a.len()),
            found: format!("{} values", b.len()),
        });
    }
    Ok(kernels::loss::mse(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_small_is_an_error() {
        let a = vec![0.5f32; 2 * 5 * 5];
        let err = mean_ssim(Window::Uniform7, &a, &a, 2, 5, 5);
        assert!(matches!(err, Err(Error::ImageTooSmall { window: 7, h: 5, w: 5, .. })));
        let err = mean_ssim(Window::Gaussian11, &a, &a, 2, 5, 5);
        assert!(matches!(err, Err(Error::ImageTooSmall { window: 11, .. })));
    }

    #[test]
    fn wrong_length_and_empty_are_errors() {
        let a = vec![0.5f32; 2 * 12 * 12];
        assert!(mean_ssim(Window::Uniform7, &a, &a[1..], 2, 12, 12).is_err());
        assert!(mean_ssim(Window::Uniform7, &[], &[], 0, 12, 12).is_err());
        assert!(mse(&a, &a[1..]).is_err());
        assert_eq!(mse(&[0.0, 1.0], &[1.0, 1.0]).ok(), Some(0.5));
    }

    #[test]
    fn same_result_on_one_and_two_threads() {
        let (n, h, w) = (9, 12, 15);
        let a: Vec<f32> = (0..n * h * w).map(|i| ((i * 37) % 97) as f32 / 96.0).collect();
        let b: Vec<f32> = (0..n * h * w).map(|i| ((i * 53) % 89) as f32 / 88.0).collect();
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map(|p| p.install(|| mean_ssim(Window::Gaussian11, &a, &b, n, h, w).ok()))
                .ok()
                .flatten()
        };
        let (one, two) = (run(1), run(2));
        assert!(one.is_some());
        assert_eq!(one.map(f64::to_bits), two.map(f64::to_bits));
    }
}
