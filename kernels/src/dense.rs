//! Dense (fully connected) layer over a batch: `x [n, c_in]`, `w [c_in, c_out]` (Keras
//! layout), `b [c_out]`, `y [n, c_out]`.

use crate::gemm::{gemm, Mat};
use crate::simd;
use rayon::prelude::*;

/// Batch rows per parallel task in `forward` / `backward_input`. Each task packs the whole
/// weight matrix (3 MB for the models' 6272 x 128 layers), so tasks are few and large.
const ROWS_PER_TASK: usize = 32;
/// Rows of dW (input features) per parallel task in `backward_weight`.
const W_ROWS_PER_TASK: usize = 64;

fn check(n: usize, c_in: usize, c_out: usize, x: usize, w: usize, y: usize) {
    assert_eq!(x, n * c_in, "dense: x length");
    assert_eq!(w, c_in * c_out, "dense: w length");
    assert_eq!(y, n * c_out, "dense: y length");
}

/// y = x w + b. Overwrites `y`.
/// # Panics
/// If a slice length disagrees with `n`, `c_in`, `c_out`.
pub fn forward(n: usize, c_in: usize, c_out: usize, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    check(n, c_in, c_out, x.len(), w.len(), y.len());
    assert_eq!(b.len(), c_out, "dense: b length");
    y.par_chunks_mut(ROWS_PER_TASK * c_out).zip(x.par_chunks(ROWS_PER_TASK * c_in)).for_each(|(yt, xt)| {
        let rows = xt.len() / c_in;
        gemm(Mat::rows(xt, rows, c_in), Mat::rows(w, c_in, c_out), 0.0, yt);
        simd::add_bias_rows(b, yt);
    });
}

/// dx = dy wᵀ. Overwrites `dx`.
/// # Panics
/// If a slice length disagrees with `n`, `c_in`, `c_out`.
pub fn backward_input(n: usize, c_in: usize, c_out: usize, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    check(n, c_in, c_out, dx.len(), w.len(), dy.len());
    dx.par_chunks_mut(ROWS_PER_TASK * c_in).zip(dy.par_chunks(ROWS_PER_TASK * c_out)).for_each(|(dxt, dyt)| {
        let rows = dyt.len() / c_out;
        gemm(Mat::rows(dyt, rows, c_out), Mat::t(w, c_out, c_in), 0.0, dxt);
    });
}

/// dw = xᵀ dy and db = the column sums of dy. Overwrites `dw` and `db`. Each element of dw is
/// computed whole by one task, so the result does not depend on the threads.
/// # Panics
/// If a slice length disagrees with `n`, `c_in`, `c_out`.
pub fn backward_weight(n: usize, c_in: usize, c_out: usize, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32]) {
    check(n, c_in, c_out, x.len(), dw.len(), dy.len());
    assert_eq!(db.len(), c_out, "dense: db length");
    dw.par_chunks_mut(W_ROWS_PER_TASK * c_out).enumerate().for_each(|(t, dwt)| {
        let r0 = t * W_ROWS_PER_TASK;
        let rows = dwt.len() / c_out;
        // Rows r0.. of xᵀ: a strided view of x's columns r0..r0+rows.
        let xt = Mat { data: &x[r0..], rows, cols: n, rs: 1, cs: c_in };
        gemm(xt, Mat::rows(dy, n, c_out), 0.0, dwt);
    });
    db.fill(0.0);
    simd::sum_rows_acc(dy, db);
}

/// The naive twin of `forward`.
pub fn forward_naive(n: usize, c_in: usize, c_out: usize, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    for r in 0..n {
        for o in 0..c_out {
            let mut acc = b[o] as f64;
            for i in 0..c_in {
                acc += x[r * c_in + i] as f64 * w[i * c_out + o] as f64;
            }
            y[r * c_out + o] = acc as f32;
        }
    }
}

/// The naive twin of `backward_input`.
pub fn backward_input_naive(n: usize, c_in: usize, c_out: usize, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    for r in 0..n {
        for i in 0..c_in {
            let mut acc = 0.0f64;
            for o in 0..c_out {
                acc += dy[r * c_out + o] as f64 * w[i * c_out + o] as f64;
            }
            dx[r * c_in + i] = acc as f32;
        }
    }
}

/// The naive twin of `backward_weight`.
pub fn backward_weight_naive(
    n: usize,
    c_in: usize,
    c_out: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    for i in 0..c_in {
        for o in 0..c_out {
            let mut acc = 0.0f64;
            for r in 0..n {
                acc += x[r * c_in + i] as f64 * dy[r * c_out + o] as f64;
            }
            dw[i * c_out + o] = acc as f32;
        }
    }
    for o in 0..c_out {
        db[o] = (0..n).map(|r| dy[r * c_out + o] as f64).sum::<f64>() as f32;
    }
}
