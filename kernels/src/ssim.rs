//! SSIM of one pair of single-channel images (slice-level), under the Gaussian and uniform-7
//! windows. Images are `[h, w]` row-major f32 with values in [0, 1] (data range L = 1).
//!
//! Per valid window position p (the window wholly inside the image, no padding):
//!
//! ```text
//! S(p) = (2 mx my + C1) / (mx² + my² + C1) * (2 sxy + C2) / (sxx + syy + C2)
//! mx = Σ w x,  sxx = c (Σ w x² − mx²),  sxy = c (Σ w x y − mx my),  C1 = 1e-4, C2 = 9e-4
//! ```
//!
//! and the SSIM is the mean of S over the `(h − k + 1) x (w − k + 1)` map.
//! * [`Window::Gaussian11`]: `tf.image.ssim` (= skimage with `gaussian_weights=True`,
//!   `sigma=1.5`, `use_sample_covariance=False`): 11x11 normalised Gaussian, σ 1.5, c = 1.
//! * [`Window::Uniform7`]: skimage's default `structural_similarity`: 7x7 uniform window,
//!   sample covariance c = 49/48.
//!
//! The local statistics are accumulated in f64: in f32, `E[x²] − mx²` loses most of its digits
//! where the image is flat, and C2 is small, so flat images would be off by up to 4e-4.

/// K1 = 0.01, L = 1: C1 = (K1 L)².
const C1: f64 = 1e-4;
/// K2 = 0.03, L = 1: C2 = (K2 L)².
const C2: f64 = 9e-4;

/// The SSIM window: which local weights and which covariance estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    /// 11x11 Gaussian, σ 1.5, population statistics (`tf.image.ssim`).
    Gaussian11,
    /// 7x7 uniform, sample covariance ×49/48 (scikit-image's default).
    Uniform7,
}

impl Window {
    /// Side length k of the square window; an image needs `h >= k` and `w >= k`.
    pub fn size(self) -> usize {
        match self {
            Window::Gaussian11 => 11,
            Window::Uniform7 => 7,
        }
    }

    /// The normalised 1-D taps; the 2-D window is their outer product.
    pub fn taps(self) -> Vec<f64> {
        match self {
            Window::Gaussian11 => {
                let sigma = 1.5f64;
                let g: Vec<f64> = (0..11)
                    .map(|i| {
                        let d = i as f64 - 5.0;
                        (-(d * d) / (2.0 * sigma * sigma)).exp()
                    })
                    .collect();
                let s: f64 = g.iter().sum();
                g.into_iter().map(|v| v / s).collect()
            }
            Window::Uniform7 => vec![1.0 / 7.0; 7],
        }
    }

    /// Factor on the variances and covariance: 1 (population) or k²/(k²−1) (sample).
    pub fn cov_scale(self) -> f64 {
        match self {
            Window::Gaussian11 => 1.0,
            Window::Uniform7 => 49.0 / 48.0,
        }
    }
}

/// S(p) from the five weighted local moments E[x], E[y], E[x²], E[y²], E[xy].
#[inline]
fn ssim_pixel(mx: f64, my: f64, exx: f64, eyy: f64, exy: f64, c: f64) -> f64 {
    let sxx = c * (exx - mx * mx);
    let syy = c * (eyy - my * my);
    let sxy = c * (exy - mx * my);
    (2.0 * mx * my + C1) / (mx * mx + my * my + C1) * (2.0 * sxy + C2) / (sxx + syy + C2)
}

fn check(window: Window, a: &[f32], b: &[f32], h: usize, w: usize) {
    assert_eq!(a.len(), h * w, "ssim: a has {} values, expected {h}x{w}", a.len());
    assert_eq!(b.len(), h * w, "ssim: b has {} values, expected {h}x{w}", b.len());
    let k = window.size();
    assert!(h >= k && w >= k, "ssim: {k}x{k} window larger than the {h}x{w} image");
}

/// Mean SSIM of `a` and `b` (each `[h, w]`) under `window`, by separable filtering: a row pass
/// then a column pass over the five maps x, y, x², y², xy, all in f64.
///
/// # Panics
/// If `a` or `b` does not hold `h * w` values, or the window is larger than the image.
pub fn ssim(window: Window, a: &[f32], b: &[f32], h: usize, w: usize) -> f64 {
    check(window, a, b, h, w);
    let k = window.size();
    let taps = window.taps();
    let c = window.cov_scale();
    let (h_out, w_out) = (h - k + 1, w - k + 1);

    // Row pass: [h, w_out, 5] moments (x, y, x², y², xy), interleaved so the column pass reads
    // one contiguous run per output row.
    let mut rows = vec![0.0f64; h * w_out * 5];
    for r in 0..h {
        let (ra, rb) = (&a[r * w..(r + 1) * w], &b[r * w..(r + 1) * w]);
        let out = &mut rows[r * w_out * 5..(r + 1) * w_out * 5];
        for (j, m) in out.chunks_exact_mut(5).enumerate() {
            let mut s = [0.0f64; 5];
            for (t, (&x, &y)) in taps.iter().zip(ra[j..j + k].iter().zip(&rb[j..j + k])) {
                let (x, y) = (f64::from(x), f64::from(y));
                s[0] += t * x;
                s[1] += t * y;
                s[2] += t * x * x;
                s[3] += t * y * y;
                s[4] += t * x * y;
            }
            m.copy_from_slice(&s);
        }
    }

    // Column pass, one output row at a time: [w_out, 5] accumulator.
    let mut acc = vec![0.0f64; w_out * 5];
    let mut total = 0.0f64;
    for i in 0..h_out {
        acc.iter_mut().for_each(|v| *v = 0.0);
        for (ki, t) in taps.iter().enumerate() {
            let src = &rows[(i + ki) * w_out * 5..(i + ki + 1) * w_out * 5];
            for (d, s) in acc.iter_mut().zip(src) {
                *d += t * s;
            }
        }
        for m in acc.chunks_exact(5) {
            total += ssim_pixel(m[0], m[1], m[2], m[3], m[4], c);
        }
    }
    total / (h_out * w_out) as f64
}

/// Naive twin of [`ssim`]: direct 2-D window sums with weights `taps[ki] * taps[kj]`.
///
/// # Panics
/// As [`ssim`].
pub fn ssim_naive(window: Window, a: &[f32], b: &[f32], h: usize, w: usize) -> f64 {
    check(window, a, b, h, w);
    let k = window.size();
    let taps = window.taps();
    let c = window.cov_scale();
    let (h_out, w_out) = (h - k + 1, w - k + 1);
    let mut total = 0.0f64;
    for i in 0..h_out {
        for j in 0..w_out {
            let (mut mx, mut my, mut exx, mut eyy, mut exy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for ki in 0..k {
                for kj in 0..k {
                    let wt = taps[ki] * taps[kj];
                    let x = f64::from(a[(i + ki) * w + j + kj]);
                    let y = f64::from(b[(i + ki) * w + j + kj]);
                    mx += wt * x;
                    my += wt * y;
                    exx += wt * x * x;
                    eyy += wt * y * y;
                    exy += wt * x * y;
                }
            }
            total += ssim_pixel(mx, my, exx, eyy, exy, c);
        }
    }
    total / (h_out * w_out) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_is_one_and_taps_sum_to_one() {
        let a: Vec<f32> = (0..13 * 17).map(|i| ((i * 7919) % 101) as f32 / 100.0).collect();
        for win in [Window::Gaussian11, Window::Uniform7] {
            assert!((win.taps().iter().sum::<f64>() - 1.0).abs() < 1e-15);
            assert!((ssim(win, &a, &a, 13, 17) - 1.0).abs() < 1e-12);
            assert!((ssim_naive(win, &a, &a, 13, 17) - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    #[should_panic(expected = "window larger")]
    fn window_too_large_panics() {
        let a = vec![0.5f32; 25];
        ssim(Window::Uniform7, &a, &a, 5, 5);
    }
}
