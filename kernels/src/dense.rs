//! Dense (fully connected) layer over a batch: `x [n, c_in]`, `w [c_in, c_out]` (Keras
//! layout), `b [c_out]`, `y [n, c_out]`.
//!
//! Register-tiled kernels that read their operands in place: no packing buffer, so a pass
//! allocates nothing (a training step must not; see tests/zero_alloc.rs). `forward` and
//! `backward_weight` keep an `MR x 16` tile of the output in registers and stream the inner
//! dimension; `backward_input` multiplies by wᵀ, whose inner dimension (c_out) is contiguous
//! in both operands, so it keeps `2 x 8` dot products as 8-lane partial sums. Every output
//! element is summed by one task in a fixed order, whatever the thread count.

use crate::simd::{self, load, store};
use rayon::prelude::*;
use wide::f32x8;

/// Batch rows per parallel task in `forward` / `backward_input`: 2 tasks at batch 64, and each
/// task streams the whole weight matrix (3 MB for the models' 6272 x 128 layers) only once.
const ROWS_PER_TASK: usize = 32;
/// Rows of dW (input features) per parallel task in `backward_weight`.
const W_ROWS_PER_TASK: usize = 64;
/// Output rows per register tile of `forward` and `backward_weight` (x 16 columns: 16
/// accumulators).
const MR: usize = 8;
/// Inner-dimension block of `forward`: a `[KC, 16]` slab of w (16 KB) stays in L1 while every
/// row tile of the task uses it.
const KC: usize = 256;
/// Inner-dimension block of `backward_input`: a task's `[32, KC_T]` block of dy stays in L2
/// while 8 rows of w at a time (16 KB) are dotted with it from L1.
const KC_T: usize = 512;

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
    if n == 0 || c_out == 0 {
        return;
    }
    y.par_chunks_mut(ROWS_PER_TASK * c_out).zip(x.par_chunks(ROWS_PER_TASK * c_in)).for_each(|(yt, xt)| {
        let rows = yt.len() / c_out;
        simd::copy_rows(b, yt);
        for k0 in (0..c_in).step_by(KC) {
            let kc = KC.min(c_in - k0);
            let wk = &w[k0 * c_out..][..kc * c_out]; // [kc, c_out]
            let mut r = 0;
            while r + MR <= rows {
                let xs: [&[f32]; MR] = std::array::from_fn(|j| &xt[(r + j) * c_in + k0..][..kc]);
                row_tile(kc, |p| -> [f32; MR] { std::array::from_fn(|j| xs[j][p]) }, wk, c_out, &mut yt[r * c_out..]);
                r += MR;
            }
            for r in r..rows {
                let xr = &xt[r * c_in + k0..][..kc];
                row_tile(kc, |p| [xr[p]], wk, c_out, &mut yt[r * c_out..]);
            }
        }
    });
}

/// c[j, ..c_out] += sum_{p < k} a(p)[j] * b[p, ..c_out] for the M rows j of a row-major
/// `[M, c_out]` block of `c`, where `a(p)` gives column p of the left operand's M rows: 16-column
/// register tiles, then one 8-column tile, then scalar columns. Every element is the same chain
/// of fused multiply-adds in p order, whichever path computes it.
#[inline(always)]
fn row_tile<const M: usize>(k: usize, a: impl Fn(usize) -> [f32; M] + Copy, b: &[f32], c_out: usize, c: &mut [f32]) {
    let mut o = 0;
    while o + 16 <= c_out {
        tile::<M, 2>(k, a, &b[o..], c_out, &mut c[o..], c_out);
        o += 16;
    }
    if o + 8 <= c_out {
        tile::<M, 1>(k, a, &b[o..], c_out, &mut c[o..], c_out);
        o += 8;
    }
    for o in o..c_out {
        let mut acc: [f32; M] = std::array::from_fn(|j| c[j * c_out + o]);
        for p in 0..k {
            let (av, bv) = (a(p), b[p * c_out + o]);
            acc.iter_mut().zip(av).for_each(|(s, av)| *s = av.mul_add(bv, *s));
        }
        acc.iter().enumerate().for_each(|(j, &s)| c[j * c_out + o] = s);
    }
}

/// The register tile: c[j * ldc + v] += sum_{p < k} a(p)[j] * b[p * ldb + v] for j < M,
/// v < 8 NV.
#[inline(always)]
fn tile<const M: usize, const NV: usize>(
    k: usize,
    a: impl Fn(usize) -> [f32; M],
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let mut acc: [[f32x8; NV]; M] = std::array::from_fn(|j| std::array::from_fn(|v| load(&c[j * ldc + 8 * v..])));
    for p in 0..k {
        let br = &b[p * ldb..][..8 * NV];
        let bv: [f32x8; NV] = std::array::from_fn(|v| load(&br[8 * v..]));
        let av = a(p);
        for j in 0..M {
            let aj = f32x8::splat(av[j]);
            for v in 0..NV {
                acc[j][v] = aj.mul_add(bv[v], acc[j][v]);
            }
        }
    }
    for (j, row) in acc.iter().enumerate() {
        for (v, a) in row.iter().enumerate() {
            store(*a, &mut c[j * ldc + 8 * v..]);
        }
    }
}

/// dx = dy wᵀ. Overwrites `dx`.
/// # Panics
/// If a slice length disagrees with `n`, `c_in`, `c_out`.
pub fn backward_input(n: usize, c_in: usize, c_out: usize, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    check(n, c_in, c_out, dx.len(), w.len(), dy.len());
    if n == 0 || c_in == 0 {
        return;
    }
    dx.fill(0.0);
    if c_out == 0 {
        return;
    }
    dx.par_chunks_mut(ROWS_PER_TASK * c_in).zip(dy.par_chunks(ROWS_PER_TASK * c_out)).for_each(|(dxt, dyt)| {
        let rows = dxt.len() / c_in;
        // dx[r, i] += the dot product of dy's row r and w's row i, over one block of c_out.
        for k0 in (0..c_out).step_by(KC_T) {
            let kc = KC_T.min(c_out - k0);
            let dyr = |r: usize| &dyt[r * c_out + k0..][..kc];
            let mut i = 0;
            while i + 8 <= c_in {
                let wr: [&[f32]; 8] = std::array::from_fn(|l| &w[(i + l) * c_out + k0..][..kc]);
                let mut r = 0;
                while r + 2 <= rows {
                    let sums = dots8::<2>([dyr(r), dyr(r + 1)], wr);
                    for (j, s) in sums.into_iter().enumerate() {
                        let d = &mut dxt[(r + j) * c_in + i..];
                        store(load(d) + s, d);
                    }
                    r += 2;
                }
                if r < rows {
                    let [s] = dots8::<1>([dyr(r)], wr);
                    let d = &mut dxt[r * c_in + i..];
                    store(load(d) + s, d);
                }
                i += 8;
            }
            for i in i..c_in {
                for r in 0..rows {
                    dxt[r * c_in + i] += simd::dot(dyr(r), &w[i * c_out + k0..][..kc]);
                }
            }
        }
    });
}

/// The dot products of each row a[j] with the 8 rows b[l] (all of one length), as one vector
/// per j whose lane l is a[j]·b[l]: 8-lane partial sums, then an 8 x 8 transpose whose rows are
/// added (cheaper than 8 horizontal sums), then the scalar tail. The tail stays behind its
/// branch: computed unconditionally (empty), it made this kernel 2-3x slower.
#[inline(always)]
fn dots8<const M: usize>(a: [&[f32]; M], b: [&[f32]; 8]) -> [f32x8; M] {
    let k = a[0].len();
    let body = k - k % 8;
    let mut acc = [[f32x8::splat(0.0); 8]; M];
    for p in (0..body).step_by(8) {
        let av: [f32x8; M] = std::array::from_fn(|j| load(&a[j][p..]));
        for l in 0..8 {
            let bv = load(&b[l][p..]);
            for j in 0..M {
                acc[j][l] = av[j].mul_add(bv, acc[j][l]);
            }
        }
    }
    let mut sums: [f32x8; M] = std::array::from_fn(|j| {
        let t = f32x8::transpose(acc[j]);
        ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]))
    });
    if body < k {
        for (j, s) in sums.iter_mut().enumerate() {
            let tail: [f32; 8] = std::array::from_fn(|l| {
                a[j][body..].iter().zip(&b[l][body..]).fold(0.0, |s, (&av, &bv)| av.mul_add(bv, s))
            });
            *s += f32x8::from(tail);
        }
    }
    sums
}

/// dw = xᵀ dy and db = the column sums of dy. Overwrites `dw` and `db`. Each element of dw is
/// computed whole by one task, so the result does not depend on the threads.
/// # Panics
/// If a slice length disagrees with `n`, `c_in`, `c_out`.
pub fn backward_weight(n: usize, c_in: usize, c_out: usize, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32]) {
    check(n, c_in, c_out, x.len(), dw.len(), dy.len());
    assert_eq!(db.len(), c_out, "dense: db length");
    if c_in > 0 && c_out > 0 {
        dw.par_chunks_mut(W_ROWS_PER_TASK * c_out).enumerate().for_each(|(t, dwt)| {
            let (i0, rows) = (t * W_ROWS_PER_TASK, dwt.len() / c_out);
            dwt.fill(0.0);
            let mut i = 0;
            // Rows i0 + i.. of xᵀ: for each p, MR consecutive features of x's row p.
            while i + MR <= rows {
                let xt = |p: usize| -> [f32; MR] { x[p * c_in + i0 + i..][..MR].try_into().expect("MR lanes") };
                row_tile(n, xt, dy, c_out, &mut dwt[i * c_out..]);
                i += MR;
            }
            for i in i..rows {
                row_tile(n, |p| [x[p * c_in + i0 + i]], dy, c_out, &mut dwt[i * c_out..]);
            }
        });
    }
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
