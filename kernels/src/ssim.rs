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

use std::sync::OnceLock;

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

    /// The normalised 1-D taps; the 2-D window is their outer product. Computed once, so the
    /// training loss allocates nothing per step.
    pub fn taps(self) -> &'static [f64] {
        static GAUSSIAN: OnceLock<[f64; 11]> = OnceLock::new();
        const UNIFORM: [f64; 7] = [1.0 / 7.0; 7];
        match self {
            Window::Gaussian11 => GAUSSIAN.get_or_init(|| {
                let sigma = 1.5f64;
                let g: [f64; 11] = std::array::from_fn(|i| {
                    let d = i as f64 - 5.0;
                    (-(d * d) / (2.0 * sigma * sigma)).exp()
                });
                let s: f64 = g.iter().sum();
                g.map(|v| v / s)
            }),
            Window::Uniform7 => &UNIFORM,
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

/// The five weighted local moments (x, y, x², y², xy) at every valid window position, by
/// separable filtering in f64: a row pass into `rows` (`[h, w_out, 5]`), then a column pass into
/// `moments` (`[h_out, w_out, 5]`). Both buffers are overwritten.
fn local_moments(taps: &[f64], a: &[f32], b: &[f32], h: usize, w: usize, rows: &mut [f64], moments: &mut [f64]) {
    let k = taps.len();
    let (h_out, w_out) = (h - k + 1, w - k + 1);
    // Interleaved so the column pass reads one contiguous run per output row.
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
    for i in 0..h_out {
        let acc = &mut moments[i * w_out * 5..(i + 1) * w_out * 5];
        acc.iter_mut().for_each(|v| *v = 0.0);
        for (ki, t) in taps.iter().enumerate() {
            let src = &rows[(i + ki) * w_out * 5..(i + ki + 1) * w_out * 5];
            for (d, s) in acc.iter_mut().zip(src) {
                *d += t * s;
            }
        }
    }
}

/// Mean SSIM of `a` and `b` (each `[h, w]`) under `window`, by separable filtering: a row pass
/// then a column pass over the five maps x, y, x², y², xy, all in f64.
///
/// # Panics
/// If `a` or `b` does not hold `h * w` values, or the window is larger than the image.
pub fn ssim(window: Window, a: &[f32], b: &[f32], h: usize, w: usize) -> f64 {
    check(window, a, b, h, w);
    let k = window.size();
    let (h_out, w_out) = (h - k + 1, w - k + 1);
    let mut rows = vec![0.0f64; h * w_out * 5];
    let mut moments = vec![0.0f64; h_out * w_out * 5];
    local_moments(window.taps(), a, b, h, w, &mut rows, &mut moments);
    let c = window.cov_scale();
    let total: f64 = moments.chunks_exact(5).map(|m| ssim_pixel(m[0], m[1], m[2], m[3], m[4], c)).sum();
    total / (h_out * w_out) as f64
}

/// f64 values [`ssim_backward`] needs as scratch for `h x w` images under `window`.
pub fn backward_scratch_len(window: Window, h: usize, w: usize) -> usize {
    let k = window.size();
    let (h_out, w_out) = ((h + 1).saturating_sub(k), (w + 1).saturating_sub(k));
    // rows [h, w_out, 5], moments [h_out, w_out, 5], then the gradient's column pass
    // [h, w_out, 3] and row pass [h, w, 3].
    h * w_out * 5 + h_out * w_out * 5 + h * w_out * 3 + h * w * 3
}

/// Mean SSIM of `x` against a fixed `y` (as [`ssim`], same value bitwise), and its gradient
/// `dx = d ssim / d x`, overwriting `dx`. With A1 = 2 mx my + C1, B1 = mx² + my² + C1,
/// A2 = 2 sxy + C2, B2 = sxx + syy + C2 and S = A1 A2 / (B1 B2), each window position p gives
///
/// ```text
/// dS/dmx  = 2 my (A2 − c A1) / (B1 B2) − 2 mx S (1/B1 − c/B2)
/// dS/dExy = 2 c A1 / (B1 B2),   dS/dExx = −c S / B2
/// ```
///
/// and, as every moment is a window sum of x, x² or xy, the gradient at pixel q is
/// `G_m(q) + 2 x(q) G_xx(q) + y(q) G_xy(q)`, where `G_*` spreads the p-maps back through the
/// window (the adjoint of the column pass, then of the row pass). `scratch` holds
/// [`backward_scratch_len`] values.
///
/// # Panics
/// As [`ssim`], or if `dx` or `scratch` has the wrong length.
pub fn ssim_backward(
    window: Window,
    x: &[f32],
    y: &[f32],
    h: usize,
    w: usize,
    dx: &mut [f32],
    scratch: &mut [f64],
) -> f64 {
    assert_eq!(dx.len(), h * w, "ssim_backward: dx length");
    let (total, grad) = gradient_maps(window, x, y, h, w, scratch);
    for (((d, g), &xq), &yq) in dx.iter_mut().zip(grad.chunks_exact(3)).zip(x).zip(y) {
        *d = pixel_gradient(g, xq, yq) as f32;
    }
    total
}

/// As [`ssim_backward`], but adds `scale · d ssim / d x` to `dx` instead of overwriting it (for
/// a loss that sums several terms).
#[allow(clippy::too_many_arguments)]
pub fn ssim_backward_add(
    window: Window,
    x: &[f32],
    y: &[f32],
    h: usize,
    w: usize,
    scale: f64,
    dx: &mut [f32],
    scratch: &mut [f64],
) -> f64 {
    assert_eq!(dx.len(), h * w, "ssim_backward_add: dx length");
    let (total, grad) = gradient_maps(window, x, y, h, w, scratch);
    for (((d, g), &xq), &yq) in dx.iter_mut().zip(grad.chunks_exact(3)).zip(x).zip(y) {
        *d += (scale * pixel_gradient(g, xq, yq)) as f32;
    }
    total
}

/// The gradient at pixel q from the spread-back maps `g = (G_m, G_xx, G_xy)` at q.
#[inline]
fn pixel_gradient(g: &[f64], xq: f32, yq: f32) -> f64 {
    g[0] + 2.0 * f64::from(xq) * g[1] + f64::from(yq) * g[2]
}

/// The mean SSIM and, per pixel, the three spread-back maps (`[h, w, 3]`, inside `scratch`)
/// that [`pixel_gradient`] turns into the gradient.
fn gradient_maps<'a>(
    window: Window,
    x: &[f32],
    y: &[f32],
    h: usize,
    w: usize,
    scratch: &'a mut [f64],
) -> (f64, &'a [f64]) {
    check(window, x, y, h, w);
    assert_eq!(scratch.len(), backward_scratch_len(window, h, w), "ssim_backward: scratch length");
    let k = window.size();
    let taps = window.taps();
    let c = window.cov_scale();
    let (h_out, w_out) = (h - k + 1, w - k + 1);
    let (rows, rest) = scratch.split_at_mut(h * w_out * 5);
    let (moments, rest) = rest.split_at_mut(h_out * w_out * 5);
    let (col_back, row_back) = rest.split_at_mut(h * w_out * 3);
    local_moments(taps, x, y, h, w, rows, moments);

    // Per window position: its S, and the mean's derivatives by (mx, Exx, Exy), stored in place
    // of the first three moments.
    let inv_count = 1.0 / (h_out * w_out) as f64;
    let mut total = 0.0f64;
    for m in moments.chunks_exact_mut(5) {
        let (mx, my, exx, eyy, exy) = (m[0], m[1], m[2], m[3], m[4]);
        let s = ssim_pixel(mx, my, exx, eyy, exy, c);
        total += s;
        let a1 = 2.0 * mx * my + C1;
        let b1 = mx * mx + my * my + C1;
        let a2 = 2.0 * c * (exy - mx * my) + C2;
        let b2 = c * (exx - mx * mx) + c * (eyy - my * my) + C2;
        let b1b2 = b1 * b2;
        m[0] = inv_count * (2.0 * my * (a2 - c * a1) / b1b2 - 2.0 * mx * s * (1.0 / b1 - c / b2));
        m[1] = inv_count * (-c * s / b2);
        m[2] = inv_count * (2.0 * c * a1 / b1b2);
    }

    // Adjoint of the column pass: col_back[i + ki, j] += t[ki] · d[i, j].
    col_back.iter_mut().for_each(|v| *v = 0.0);
    for i in 0..h_out {
        for (ki, t) in taps.iter().enumerate() {
            let dst = &mut col_back[(i + ki) * w_out * 3..(i + ki + 1) * w_out * 3];
            let src = &moments[i * w_out * 5..(i + 1) * w_out * 5];
            for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(5)) {
                d[0] += t * s[0];
                d[1] += t * s[1];
                d[2] += t * s[2];
            }
        }
    }
    // Adjoint of the row pass: row_back[r, j + kj] += t[kj] · col_back[r, j].
    row_back.iter_mut().for_each(|v| *v = 0.0);
    for r in 0..h {
        let src = &col_back[r * w_out * 3..(r + 1) * w_out * 3];
        let dst = &mut row_back[r * w * 3..(r + 1) * w * 3];
        for (j, s) in src.chunks_exact(3).enumerate() {
            for (kj, t) in taps.iter().enumerate() {
                let d = &mut dst[(j + kj) * 3..(j + kj + 1) * 3];
                d[0] += t * s[0];
                d[1] += t * s[1];
                d[2] += t * s[2];
            }
        }
    }
    (total * inv_count, row_back)
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
