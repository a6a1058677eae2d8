//! Dense (fully connected) layer over a batch: `x [n, c_in]`, `w [c_in, c_out]` (Keras
//! layout), `b [c_out]`, `y [n, c_out]`.
//!
//! Register-tiled kernels (`micro::Tile`, 6 rows x 16 columns) that read their operands in
//! place: no packing buffer, so a pass allocates nothing (a training step must not; see
//! tests/zero_alloc.rs). `forward` and `backward_weight` stream the inner dimension through
//! the tiles; `backward_input` multiplies by wᵀ, whose inner dimension (c_out) is contiguous
//! in both operands, so it keeps `3 x 4` dot products as 8-lane partial sums. Every output
//! element is summed by one task in a fixed order, whatever the thread count.

use crate::geom::size;
use crate::isa::dispatch;
use crate::micro::{channel_blocks, row_chunks, with_nv, with_rows, Simd, Tile, MAX_M};
use crate::simd;
use rayon::prelude::*;

/// Batch rows per parallel task in `forward` / `backward_input`: 2 tasks at batch 64, and each
/// task streams the whole weight matrix (3 MB for the models' 6272 x 128 layers) only once.
const ROWS_PER_TASK: usize = 32;
/// Rows of dW (input features) per parallel task in `backward_weight`.
const W_ROWS_PER_TASK: usize = 64;
/// Inner-dimension block of `forward`: a `[KC, 16]` slab of w (16 KB) stays in L1 while every
/// row tile of the task uses it.
const KC: usize = 256;
/// Run length of a tile in `gemm_acc` when the rows of its `a` are a page or more apart.
const KB: usize = 32;
/// Output features per block of `backward_input`'s transposed dy (`[DX_OB, ROWS_PER_TASK]`, its
/// batch rows along the lanes: 16 KB on the stack, in L1 while every tile uses it).
const DX_OB: usize = 128;

fn check(n: usize, c_in: usize, c_out: usize, x: usize, w: usize, y: usize) {
    assert_eq!(x, size(&[n, c_in]), "dense: x length");
    assert_eq!(w, size(&[c_in, c_out]), "dense: w length");
    assert_eq!(y, size(&[n, c_out]), "dense: y length");
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
            // SAFETY: rows x kc of xt from column k0, kc x c_out of w from row k0, and
            // rows x c_out of yt are inside the slices `check` measured.
            let (a, bw, c) = (xt[k0..].as_ptr(), w[k0 * c_out..].as_ptr(), yt.as_mut_ptr());
            let (k, a_j, a_k) = (kc, c_in, 1);
            dispatch!(gemm_acc(rows: usize, k: usize, c_out: usize, a: *const f32, a_j: usize, a_k: usize, bw: *const f32, c: *mut f32))
        }
    });
}

/// c[j, o] += sum_{p < k} a[j * a_j + p * a_k] * b[p * c_out + o] for j < rows, o < c_out, with
/// `c` row-major `[rows, c_out]`: each block of b's columns (`micro::channel_blocks`, from L1)
/// serves every row tile, then scalar columns. Every element is one chain of multiply-adds in p order.
/// # Safety
/// `S`'s instructions exist, and every index above is inside its buffer.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_acc<S: Simd>(
    rows: usize,
    k: usize,
    c_out: usize,
    a: *const f32,
    a_j: usize,
    a_k: usize,
    b: *const f32,
    c: *mut f32,
) {
    let vec_cols = c_out - c_out % S::LANES;
    // When a step along k jumps a page or more in `a`, a tile's run would touch more pages
    // than the TLB holds: cut it into runs of KB (the partial sums go through c, which does
    // not change them). Not for b's rows far apart (a wide c_out): the extra passes over c
    // would cost more (measured: 20 against 30-39 GFLOP/s for the 128 -> 6272 layer).
    let kb = if a_k * 4 >= 4096 { KB } else { k.max(1) };
    for p0 in (0..k).step_by(kb) {
        let len = kb.min(k - p0);
        let (a, b) = (a.add(p0 * a_k), b.add(p0 * c_out));
        for (o0, nv) in channel_blocks(vec_cols, S::PATH) {
            for (r0, m) in row_chunks(rows) {
                with_rows!(m, M => with_nv!(S, nv, NV => {
                    let cp = c.add(r0 * c_out + o0);
                    let mut t = Tile::<S, M, NV>::load(cp, c_out);
                    t.run(Tile::<S, M, NV>::rows(a.add(r0 * a_j), a_j), a_k, b.add(o0), c_out, len);
                    t.store(cp, c_out);
                }))
            }
        }
    }
    for o in vec_cols..c_out {
        for j in 0..rows {
            let cp = c.add(j * c_out + o);
            let mut s = *cp;
            for p in 0..k {
                s = (*a.add(j * a_j + p * a_k)).mul_add(*b.add(p * c_out + o), s);
            }
            *cp = s;
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
        // A block of dyᵀ: output feature o's row holds the task's batch rows (zeros past
        // `rows`), so the batch runs along the vector lanes.
        let mut dy_t = [0.0f32; DX_OB * ROWS_PER_TASK];
        for o0 in (0..c_out).step_by(DX_OB) {
            let ob = DX_OB.min(c_out - o0);
            for (o, row) in dy_t.chunks_exact_mut(ROWS_PER_TASK).take(ob).enumerate() {
                for (r, v) in row.iter_mut().enumerate() {
                    *v = if r < rows { dyt[r * c_out + o0 + o] } else { 0.0 };
                }
            }
            // SAFETY: c_in rows of w from column o0, ob long (c_out apart); ob x ROWS_PER_TASK of
            // dy_t; rows x c_in of dxt: inside the slices `check` measured.
            let (a, b, c) = (w[o0..].as_ptr(), dy_t.as_ptr(), dxt.as_mut_ptr());
            dispatch!(transposed_acc(rows: usize, c_in: usize, c_out: usize, ob: usize, a: *const f32, b: *const f32, c: *mut f32))
        }
    });
}

/// c[r * cols + i] += sum over o < ob of a[i * ld + o] * b[o * ROWS_PER_TASK + r], for r < rows,
/// i < cols: tiles of up to 6 input features (rows of w, broadcast) x the batch rows (lanes
/// of dyᵀ), each added to c as columns. No horizontal sums: the dot products of length
/// c_out that this replaced spent more time summing lanes than multiplying (23% of peak).
/// # Safety
/// `S`'s instructions exist, and every index above is inside its buffer.
#[inline(always)]
unsafe fn transposed_acc<S: Simd>(
    rows: usize,
    cols: usize,
    ld: usize,
    ob: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
) {
    let mut out = [0.0f32; MAX_M * ROWS_PER_TASK];
    for (i0, m) in row_chunks(cols) {
        for (r0, nv) in channel_blocks(ROWS_PER_TASK, S::PATH).take_while(|&(r0, _)| r0 < rows) {
            with_rows!(m, M => with_nv!(S, nv, NV => {
                let mut t = Tile::<S, M, NV>::zero();
                t.run(Tile::<S, M, NV>::rows(a.add(i0 * ld), ld), 1, b.add(r0), ROWS_PER_TASK, ob);
                t.store(out.as_mut_ptr(), ROWS_PER_TASK);
                for j in 0..M {
                    for l in 0..(rows - r0).min(NV * S::LANES) {
                        *c.add((r0 + l) * cols + i0 + j) += out[j * ROWS_PER_TASK + l];
                    }
                }
            }))
        }
    }
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
            // Rows i0.. of xᵀ: row j, column p is x[p, i0 + j].
            // SAFETY: x[p * c_in + i0 + j] for p < n, j < rows, dy's n x c_out and dwt's
            // rows x c_out are inside the slices `check` measured.
            let (a, b, c) = (x[i0..].as_ptr(), dy.as_ptr(), dwt.as_mut_ptr());
            let (a_j, a_k) = (1, c_in);
            dispatch!(gemm_acc(rows: usize, n: usize, c_out: usize, a: *const f32, a_j: usize, a_k: usize, b: *const f32, c: *mut f32))
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

#[cfg(test)]
mod tests {
    #[test]
    #[should_panic(expected = "overflows")]
    fn sizes_that_wrap_are_refused() {
        // n * c_in = 2^64 wraps to 0, so empty slices passed the length checks unchecked, and
        // the tiles then read 2^62 rows of x.
        let (mut dw, mut db) = ([0.0; 16], [0.0; 4]);
        super::backward_weight(1 << 62, 4, 4, &[], &[], &mut dw, &mut db);
    }
}
