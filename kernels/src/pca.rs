//! Principal component analysis of `[n, d]` row-major f32 data (one sample a row): the mean,
//! the covariance through `gemm`, its eigen-decomposition in f64 ([`crate::eigen`]), and the
//! projection onto / reconstruction from the top `k` components.
//!
//! Components are `[k, d]` row-major (row i = the i-th principal axis, unit length, signed as
//! [`crate::eigen`] says), sorted by descending variance.
//!
//! Determinism: the covariance sums fixed parts of the rows (their number and bounds depend on
//! `n` only), each on one thread, and adds the parts in order; projections split rows into
//! fixed chunks. Results are bitwise the same on any number of threads.

use crate::eigen;
use crate::gemm::{gemm, Mat};
use rayon::prelude::*;

/// Parts the covariance's rows are split into: enough to keep 2 to 8 threads busy, few enough
/// that the parts' `[d, d]` partial sums stay small (8 x 2.5 MB for d = 784).
const COV_PARTS: usize = 8;
/// Rows centred and multiplied per `gemm` call inside a part (scratch of `ROW_BLOCK * d`).
const ROW_BLOCK: usize = 256;
/// Rows per parallel task when projecting or reconstructing.
const PROJECT_ROWS: usize = 512;

/// `mean[j]` = (1/n) sum_i `x[i, j]`, accumulated in f64. Overwrites `mean` `[d]`.
/// # Panics
/// If `x.len() != n * d`, `mean.len() != d` or `n == 0`.
pub fn mean(x: &[f32], n: usize, d: usize, mean: &mut [f64]) {
    assert!(n > 0, "pca::mean: no samples");
    assert_eq!(x.len(), n * d, "pca::mean: x must be [n, d]");
    assert_eq!(mean.len(), d, "pca::mean: mean must be [d]");
    mean.fill(0.0);
    for row in x.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    for m in mean.iter_mut() {
        *m /= n as f64;
    }
}

/// `cov[a, b]` = 1/(n-1) sum_i (`x[i,a] - mean[a]`) (`x[i,b] - mean[b]`) (the sample covariance),
/// through `gemm` on centred f32 blocks, parts summed in f64. Overwrites `cov` `[d, d]`.
/// # Panics
/// If a length disagrees with `n` and `d`, or `n < 2`.
pub fn covariance(x: &[f32], n: usize, d: usize, mean: &[f64], cov: &mut [f64]) {
    check_cov(x, n, d, mean, cov);
    let part_rows = n.div_ceil(COV_PARTS);
    let parts: Vec<Vec<f32>> = x
        .par_chunks(part_rows * d)
        .map(|part| {
            let mut acc = vec![0.0f32; d * d]; // [d, d]
            let mut block = vec![0.0f32; ROW_BLOCK.min(part.len() / d) * d]; // [rows, d] centred
            for (b, rows) in part.chunks(ROW_BLOCK * d).enumerate() {
                let r = rows.len() / d;
                let centred = &mut block[..r * d];
                for (c, row) in centred.chunks_exact_mut(d).zip(rows.chunks_exact(d)) {
                    for ((o, &v), &m) in c.iter_mut().zip(row).zip(mean) {
                        *o = (f64::from(v) - m) as f32;
                    }
                }
                // acc <- centred^T centred + acc
                gemm(Mat::t(centred, d, r), Mat::rows(centred, r, d), if b == 0 { 0.0 } else { 1.0 }, &mut acc);
            }
            acc
        })
        .collect();
    cov.fill(0.0);
    for part in &parts {
        for (c, &p) in cov.iter_mut().zip(part) {
            *c += f64::from(p);
        }
    }
    let scale = 1.0 / (n - 1) as f64;
    for c in cov.iter_mut() {
        *c *= scale;
    }
}

fn check_cov(x: &[f32], n: usize, d: usize, mean: &[f64], cov: &[f64]) {
    assert!(n >= 2, "pca::covariance: needs at least 2 samples");
    assert_eq!(x.len(), n * d, "pca::covariance: x must be [n, d]");
    assert_eq!(mean.len(), d, "pca::covariance: mean must be [d]");
    assert_eq!(cov.len(), d * d, "pca::covariance: cov must be [d, d]");
}

/// The naive twin of [`covariance`]: plain loops, f64 throughout.
pub fn covariance_naive(x: &[f32], n: usize, d: usize, mean: &[f64], cov: &mut [f64]) {
    check_cov(x, n, d, mean, cov);
    for a in 0..d {
        for b in 0..d {
            let s: f64 = x.chunks_exact(d).map(|r| (f64::from(r[a]) - mean[a]) * (f64::from(r[b]) - mean[b])).sum();
            cov[a * d + b] = s / (n - 1) as f64;
        }
    }
}

/// Fits PCA with `k` components to `x` `[n, d]`: overwrites `mean` `[d]`, `components` `[k, d]`
/// and `variances` `[d]` (every eigenvalue of the covariance, descending; the first `k` are the
/// kept components' variances, and their sum over the total is the variance explained).
/// # Panics
/// If a length disagrees with `n`, `d`, `k`, or `k > d`, or `n < 2`.
pub fn fit(x: &[f32], n: usize, d: usize, k: usize, mean: &mut [f32], components: &mut [f32], variances: &mut [f64]) {
    fit_with(x, n, d, k, mean, components, variances, covariance, eigen::symmetric);
}

/// The naive twin of [`fit`]: [`covariance_naive`] and Jacobi ([`eigen::symmetric_naive`]).
pub fn fit_naive(
    x: &[f32],
    n: usize,
    d: usize,
    k: usize,
    mean: &mut [f32],
    components: &mut [f32],
    variances: &mut [f64],
) {
    fit_with(x, n, d, k, mean, components, variances, covariance_naive, eigen::symmetric_naive);
}

type CovFn = fn(&[f32], usize, usize, &[f64], &mut [f64]);
type EigFn = fn(&[f64], usize, &mut [f64], &mut [f64]);

#[allow(clippy::too_many_arguments)]
fn fit_with(
    x: &[f32],
    n: usize,
    d: usize,
    k: usize,
    mean_out: &mut [f32],
    components: &mut [f32],
    variances: &mut [f64],
    cov_fn: CovFn,
    eig_fn: EigFn,
) {
    assert!(k <= d, "pca::fit: k = {k} components of {d}-dimensional data");
    assert_eq!(mean_out.len(), d, "pca::fit: mean must be [d]");
    assert_eq!(components.len(), k * d, "pca::fit: components must be [k, d]");
    assert_eq!(variances.len(), d, "pca::fit: variances must be [d]");
    let mut m = vec![0.0f64; d]; // [d]
    mean(x, n, d, &mut m);
    let mut cov = vec![0.0f64; d * d]; // [d, d]
    cov_fn(x, n, d, &m, &mut cov);
    let mut vectors = vec![0.0f64; d * d]; // [d, d], rows = axes
    eig_fn(&cov, d, variances, &mut vectors);
    for (o, &v) in mean_out.iter_mut().zip(&m) {
        *o = v as f32;
    }
    for (o, &v) in components.iter_mut().zip(&vectors[..k * d]) {
        *o = v as f32;
    }
}

fn check_project(n: usize, d: usize, k: usize, x: &[f32], mean: &[f32], components: &[f32], codes: &[f32]) {
    assert_eq!(x.len(), n * d, "pca: x must be [n, d]");
    assert_eq!(mean.len(), d, "pca: mean must be [d]");
    assert_eq!(components.len(), k * d, "pca: components must be [k, d]");
    assert_eq!(codes.len(), n * k, "pca: codes must be [n, k]");
}

/// `codes[i, c] = sum_j (x[i, j] - mean[j]) components[c, j]`. Overwrites `codes` `[n, k]`.
/// # Panics
/// If a length disagrees with `d` and `k`.
pub fn project(x: &[f32], d: usize, mean: &[f32], components: &[f32], k: usize, codes: &mut [f32]) {
    let n = x.len().checked_div(d).unwrap_or(0);
    check_project(n, d, k, x, mean, components, codes);
    if k == 0 {
        return;
    }
    let mut centred_mean = vec![0.0f32; k]; // [k] = components . mean
    gemm(Mat::rows(mean, 1, d), Mat::t(components, d, k), 0.0, &mut centred_mean);
    x.par_chunks(PROJECT_ROWS * d).zip(codes.par_chunks_mut(PROJECT_ROWS * k)).for_each(|(xs, cs)| {
        gemm(Mat::rows(xs, xs.len() / d, d), Mat::t(components, d, k), 0.0, cs);
        for row in cs.chunks_exact_mut(k) {
            for (c, &m) in row.iter_mut().zip(&centred_mean) {
                *c -= m;
            }
        }
    });
}

/// `out[i, j] = mean[j] + sum_c codes[i, c] components[c, j]`. Overwrites `out` `[n, d]`.
/// # Panics
/// If a length disagrees with `d` and `k`.
pub fn reconstruct(codes: &[f32], k: usize, mean: &[f32], components: &[f32], d: usize, out: &mut [f32]) {
    let n = out.len().checked_div(d).unwrap_or(0);
    check_project(n, d, k, out, mean, components, codes);
    if k == 0 {
        out.chunks_exact_mut(d.max(1)).for_each(|row| row.copy_from_slice(mean));
        return;
    }
    out.par_chunks_mut(PROJECT_ROWS * d).zip(codes.par_chunks(PROJECT_ROWS * k)).for_each(|(os, cs)| {
        for row in os.chunks_exact_mut(d) {
            row.copy_from_slice(mean);
        }
        gemm(Mat::rows(cs, os.len() / d, k), Mat::rows(components, k, d), 1.0, os);
    });
}
