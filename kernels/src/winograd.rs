//! Winograd's F(2x2, 3x3) for the stride-1 3 x 3 convolutions (Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2016): each 2 x 2 block of outputs comes
//! from its 4 x 4 input window as Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A, 16 products per channel
//! pair where the direct convolution takes 36. Per image, a block of tile rows at a time: the
//! windows transformed into `V [16][tiles][c_in]`, sixteen GEMMs `M[ξ] = V[ξ] U[ξ]` on the
//! register tiles (`micro::Tile`, tall ones along a tile row on AVX-512) against the kernel
//! transformed once per pass (`U [16][c_in][c_out]`), then `M` transformed back into the
//! image, plus the bias.
//!
//! The weight gradient uses the same transforms backwards: y_t = Aᵀ [U ⊙ V_t] A is linear in
//! the kernel g, so dL/dg = Gᵀ [sum_t (A dy_t Aᵀ) ⊙ V_t] G, sixteen GEMMs `V[ξ]ᵀ Y[ξ]` that sum
//! along the tiles of every image, then one transform per pass.
//!
//! Rounding: the transforms add and subtract (Bᵀ, Aᵀ, A) or halve (G, exact), and the kernel
//! transforms run in f64, rounded once. Against the f64 sum, in units of the sum of the terms'
//! magnitudes, the forward error measured 0.3-0.9x the direct kernel's and the weight
//! gradient's 0.8-2.3x (the unit tests below bound them at 2x and 3x); both are a few ulps.
//! The same operations in the same order on every path and thread count.
//!
//! An odd output's last tile row or column runs one row or column past it (zeros in, dropped
//! out): the modified model's 7 x 7 layer, whose forward pass at batch 256 ran 16% faster.

// The transforms index rows and columns of 4 x 4 arrays of vectors, as the formulas do.
#![allow(clippy::needless_range_loop)]

use crate::geom::{size, ConvGeom};
use crate::isa::{dispatch, kernel_path};
use crate::micro::{self, channel_blocks, each_tile, Finish, Simd, Tile};
use crate::simd;
use rayon::prelude::*;

/// Tile rows (of `tile_grid`'s columns each) per block: each `U[ξ]` read from L2 serves that
/// many tall tiles. At 1 thread, 32->32 channels, 28 x 28, batch 64: 1, 2, 4 rows ran the
/// pass in 4.59, 4.34, 4.40 ms; blocks of 7 tiles (all of a block's `V` and `M` in L1) in
/// 5.8 ms.
const BLOCK_ROWS: usize = 2;

/// Tile rows per block of the weight gradient, whose GEMMs sum along the block's tiles: 1, 2,
/// 4, 7 rows ran the 32->32 28 x 28 pass (1 thread, batch 64) in 6.1-6.4, 5.4-5.9, 5.4, 5.3-5.4
/// ms.
const WEIGHT_BLOCK_ROWS: usize = 4;

/// Whether `g` runs on this kernel: 3 x 3, stride 1, and channel counts in whole vectors on
/// every path (16). An odd output's last tile row or column computes one row or column past
/// it, which is dropped.
pub fn applies(g: &ConvGeom) -> bool {
    g.k == 3 && g.stride == 1 && g.h_out > 0 && g.w_out > 0 && g.c_in.is_multiple_of(16) && g.c_out.is_multiple_of(16)
}

/// Whether the weight gradient of `g` runs here: where `applies` and an image has at least
/// `MIN_WEIGHT_TILES` tiles. Each block adds its sums (16 x c_in x c_out) to memory once, so
/// small images pay for that traffic on few products: 28 x 28 (196 tiles) ran 13-22% faster
/// than the direct kernel, 7 x 7 (16 tiles, 64 -> 128 channels) 64% slower.
pub fn weight_grad_applies(g: &ConvGeom) -> bool {
    let (th, tw) = tile_grid(g);
    applies(g) && th * tw >= MIN_WEIGHT_TILES
}

/// See `weight_grad_applies`.
const MIN_WEIGHT_TILES: usize = 100;

/// Tile rows and tiles per row: the 2 x 2 output blocks, the last ones partly past an odd
/// output.
fn tile_grid(g: &ConvGeom) -> (usize, usize) {
    (g.h_out.div_ceil(2), g.w_out.div_ceil(2))
}

/// Rows and columns of the padded input the tiles read: two per tile, plus two.
pub fn padded_dims(g: &ConvGeom) -> (usize, usize) {
    let (th, tw) = tile_grid(g);
    (2 * th + 2, 2 * tw + 2)
}

/// Floats of the padded input (`pad_input`), where `applies`.
pub fn padded_len(g: &ConvGeom) -> usize {
    if applies(g) {
        let (hp, wp) = padded_dims(g);
        size(&[hp, wp, g.c_in])
    } else {
        0
    }
}

/// xp <- x placed in zeros at (pad_top, pad_left), `padded_dims` large.
pub fn pad_input(g: &ConvGeom, x: &[f32], xp: &mut [f32]) {
    crate::conv_direct::pad_input_to(g, padded_dims(g), x, &mut xp[..padded_len(g)]);
}

/// Tile rows per block, at least `rows` (`micro::block_rows`).
fn block_rows(g: &ConvGeom, rows: usize) -> usize {
    micro::block_rows(rows, tile_grid(g).1)
}

/// Floats of the transformed kernel `U`.
pub fn weights_len(g: &ConvGeom) -> usize {
    size(&[16, g.c_in, g.c_out])
}

/// Floats of one block's transforms of `rows` (at least) tile rows: `V` of the image, then
/// `M` (forward) or `Y` of dy (weight gradient).
fn block_len(g: &ConvGeom, rows: usize) -> usize {
    size(&[16, block_rows(g, rows), tile_grid(g).1, g.c_in + g.c_out])
}

/// Floats of `forward`'s work area, where `applies`.
pub fn work_len(g: &ConvGeom) -> usize {
    if applies(g) {
        block_len(g, BLOCK_ROWS)
    } else {
        0
    }
}

/// G, the kernel transform (rows ξ, columns kernel taps).
const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

/// (ci, co) pairs the kernel transforms take at a time, their partial products on the stack
/// (a training step allocates nothing), one plane of a tap or ξ per row so that the loops run
/// along the pairs in vectors.
const CHUNK: usize = 64;

/// U[ξ = 4a + b][ci][co] (at `micro::blocked_at`) = (G g Gᵀ)[a][b] for `w [3, 3, c_in,
/// c_out]`, in f64 (G's entries are 0, 1/2 and 1, so the products are exact), rounded once.
/// Overwrites `u` (`weights_len`).
pub fn transform_weights(g: &ConvGeom, w: &[f32], u: &mut [f32]) {
    assert!(applies(g) && w.len() == g.w_len() && u.len() >= weights_len(g), "winograd: kernel lengths");
    let cc = g.c_in * g.c_out;
    let u = Planes(u.as_mut_ptr());
    // Chunks on every thread, on the path's vectors: one after another on the pass's thread,
    // the others waiting, the 7 x 7 64 -> 128 kernels took ~150 us a pass (twice a step of
    // the modified model), the 28 x 28 32 -> 32 ones 25-35 us. Channels in sixteens make
    // whole chunks.
    assert!(cc.is_multiple_of(CHUNK), "winograd: channels in sixteens");
    (0..cc / CHUNK).into_par_iter().with_min_len(8).for_each(|c| {
        let i0 = c * CHUNK;
        // SAFETY: chunk i0..i0 + CHUNK of each of u's 16 planes of cc is inside the `u` that
        // `weights_len` measured, and only this task writes it.
        let dims = (cc, g.c_out);
        dispatch!(transform_chunk(w: &[f32], dims: (usize, usize), i0: usize, u: Planes))
    });
}

/// A transform's output planes, written by tasks that each own a chunk of every plane.
#[derive(Clone, Copy)]
struct Planes(*mut f32);
// SAFETY: each task writes only its own chunk of the planes (`transform_weights`).
unsafe impl Send for Planes {}
// SAFETY: as for Send.
unsafe impl Sync for Planes {}

/// Elements `i0..i0 + CHUNK` of `transform_weights`' 16 planes of `cc`.
/// # Safety
/// `S`'s instructions exist; those elements are inside `u` and no other task writes them.
#[inline(always)]
unsafe fn transform_chunk<S: Simd>(w: &[f32], (cc, c_out): (usize, usize), i0: usize, u: Planes) {
    // t[3a + kw] = sum over kh of G[a][kh] g[kh][kw], then U[a][b] = sum over kw of t[3a + kw] G[b][kw].
    let mut t = [[0.0f64; CHUNK]; 12];
    for (tap, src) in w.chunks_exact(cc).enumerate() {
        let (kh, kw) = (tap / 3, tap % 3);
        let src: &[f32; CHUNK] = src[i0..i0 + CHUNK].try_into().expect("a whole chunk");
        for (a, ga) in G.iter().enumerate() {
            for (tv, &x) in t[3 * a + kw].iter_mut().zip(src) {
                *tv += ga[kh] * f64::from(x);
            }
        }
    }
    for (a, b) in (0..4).flat_map(|a| (0..4).map(move |b| (a, b))) {
        let gb = G[b];
        // Runs of 16 along c_out: whole in the plane's column blocks too.
        for l0 in (0..CHUNK).step_by(16) {
            let i = i0 + l0;
            let at = micro::blocked_at(S::PATH, S::PATH.block_vectors(), (i / c_out, i % c_out), (cc / c_out, c_out));
            let dst = &mut *u.0.add((a * 4 + b) * cc + at).cast::<[f32; 16]>();
            for (l, d) in (l0..).zip(dst.iter_mut()) {
                *d = (gb[0] * t[3 * a][l] + gb[1] * t[3 * a + 1][l] + gb[2] * t[3 * a + 2][l]) as f32;
            }
        }
    }
}

/// y = conv(xp) + the bias, then ReLU where `finish` says, for one image whose input is
/// already padded (this module's `pad_input`: whole tiles, so an odd output has a row and
/// column more than `conv_direct`'s), `u` from `transform_weights`, `work` of `work_len`
/// floats. Overwrites `y`.
pub fn forward(g: &ConvGeom, xp: &[f32], u: &[f32], finish: Finish, y: &mut [f32], work: &mut [f32]) {
    assert!(applies(g), "winograd: a 3 x 3 stride-1 convolution with channels in sixteens");
    assert!(xp.len() >= padded_len(g) && u.len() >= weights_len(g) && y.len() == g.y_len());
    let bias_fits = finish.bias.is_none_or(|b| b.len() == g.c_out);
    assert!(work.len() >= work_len(g) && bias_fits, "winograd: work or bias length");
    dispatch!(forward_with(g: &ConvGeom, xp: &[f32], u: &[f32], finish: Finish, y: &mut [f32], work: &mut [f32]))
}

/// # Safety
/// `S`'s instructions exist; the lengths are those `forward` checks: every window of every
/// tile is inside the padded image, every block inside `work`, every output inside `y`.
#[inline(always)]
unsafe fn forward_with<S: Simd>(g: &ConvGeom, xp: &[f32], u: &[f32], finish: Finish, y: &mut [f32], work: &mut [f32]) {
    let (ci_n, co_n) = (g.c_in, g.c_out);
    let ((th, tw), block) = (tile_grid(g), block_rows(g, BLOCK_ROWS));
    let (v, m) = work.split_at_mut(16 * block * tw * ci_n);
    let (v, m, xp, u, yp) = (v.as_mut_ptr(), m.as_mut_ptr(), xp.as_ptr(), u.as_ptr(), y.as_mut_ptr());
    let gemm_path = kernel_path().for_channels(co_n);
    for r0 in (0..th).step_by(block) {
        let tiles = block.min(th - r0) * tw;
        transform_input::<S>(g, xp, r0, tiles, v);
        // M[ξ] = V[ξ] U[ξ]: each element one chain over c_in in order.
        for xi in 0..16 {
            let (vx, ux, mx) =
                (v.add(xi * tiles * ci_n).cast_const(), u.add(xi * ci_n * co_n), m.add(xi * tiles * co_n));
            for (co0, nv) in channel_blocks(co_n, gemm_path) {
                let (u0, u_k) = micro::column_run(S::PATH, S::PATH.block_vectors(), co0, (ci_n, co_n));
                each_tile!(S, nv, tiles, tw, ci_n, |t: usize| vx.add(t * ci_n), |t0, M, NV, rows| {
                    let mut acc = Tile::<S, M, NV>::zero();
                    acc.run(rows, 1, ux.add(u0), u_k, ci_n);
                    acc.store(mx.add(t0 * co_n + co0), co_n);
                });
            }
        }
        // Y = Aᵀ M A + b into the tiles' 2 x 2 outputs.
        for t in 0..tiles {
            let (oh, ow) = (2 * (r0 + t / tw), 2 * (t % tw));
            for c0 in (0..co_n).step_by(S::LANES) {
                let mv: [[S::V; 4]; 4] = core::array::from_fn(|r| {
                    core::array::from_fn(|c| S::load(m.add(((r * 4 + c) * tiles + t) * co_n + c0)))
                });
                // cols[c][i] = (Aᵀ M)[i][c]; then Aᵀ along each row of that.
                let cols: [[S::V; 2]; 4] = core::array::from_fn(|c| at::<S>([mv[0][c], mv[1][c], mv[2][c], mv[3][c]]));
                let bias = finish.bias.map_or(S::zero(), |b| S::load(b.as_ptr().add(c0)));
                for i in (0..2).filter(|i| oh + i < g.h_out) {
                    let out = at::<S>([cols[0][i], cols[1][i], cols[2][i], cols[3][i]]);
                    for (j, &val) in out.iter().enumerate().filter(|(j, _)| ow + j < g.w_out) {
                        let v = finish.vector::<S>(val, Some(bias));
                        S::store(yp.add(((oh + i) * g.w_out + ow + j) * co_n + c0), v);
                    }
                }
            }
        }
    }
}

/// V[ξ][t][ci] = (Bᵀ d B)[ξ] for the 4 x 4 window d of each of the `tiles` tiles from tile
/// row `r0` of the padded image `xp`.
/// # Safety
/// As `forward_with`.
#[inline(always)]
unsafe fn transform_input<S: Simd>(g: &ConvGeom, xp: *const f32, r0: usize, tiles: usize, v: *mut f32) {
    let (ci_n, wp, tw) = (g.c_in, padded_dims(g).1, tile_grid(g).1);
    for t in 0..tiles {
        let corner = xp.add((2 * (r0 + t / tw) * wp + 2 * (t % tw)) * ci_n);
        for c0 in (0..ci_n).step_by(S::LANES) {
            if t + 1 < tiles {
                simd::prefetch_rows(v, 16, tiles * ci_n, (t + 1) * ci_n + c0);
            }
            let d: [[S::V; 4]; 4] =
                core::array::from_fn(|r| core::array::from_fn(|c| S::load(corner.add((r * wp + c) * ci_n + c0))));
            // cols[c][r] = (Bᵀ d)[r][c]; then Bᵀ along each row of that.
            let cols: [[S::V; 4]; 4] = core::array::from_fn(|c| bt::<S>([d[0][c], d[1][c], d[2][c], d[3][c]]));
            for r in 0..4 {
                let f = bt::<S>([cols[0][r], cols[1][r], cols[2][r], cols[3][r]]);
                for (c, &val) in f.iter().enumerate() {
                    S::store(v.add(((r * 4 + c) * tiles + t) * ci_n + c0), val);
                }
            }
        }
    }
}

/// Floats of `weight_grad_acc`'s work area.
pub fn weight_work_len(g: &ConvGeom) -> usize {
    block_len(g, WEIGHT_BLOCK_ROWS)
}

/// m[ξ][ci][co] += sum over the tiles t of one image of V[ξ][t][ci] Y[ξ][t][co], with V the
/// input transform of the padded image `xp` (as in `forward`) and Y = A dy_t Aᵀ the 4 x 4
/// transform of tile t's 2 x 2 block of `dy`: since y_t = Aᵀ [U ⊙ V_t] A is linear in the
/// kernel g (U = G g Gᵀ), dL/dg = Gᵀ [sum_t (A dy_t Aᵀ) ⊙ V_t] G, which `weight_grad_finish`
/// applies to the sums of every image. `work` holds `weight_work_len` floats.
pub fn weight_grad_acc(g: &ConvGeom, xp: &[f32], dy: &[f32], m: &mut [f32], work: &mut [f32]) {
    assert!(weight_grad_applies(g), "winograd: a 3 x 3 stride-1 convolution, channels in sixteens, 100 tiles");
    assert!(xp.len() >= padded_len(g) && dy.len() == g.y_len() && m.len() >= weights_len(g));
    assert!(work.len() >= weight_work_len(g), "winograd: work length");
    dispatch!(weight_grad_with(g: &ConvGeom, xp: &[f32], dy: &[f32], m: &mut [f32], work: &mut [f32]))
}

/// # Safety
/// As `forward_with`, with `dy` the image's output gradient.
#[inline(always)]
unsafe fn weight_grad_with<S: Simd>(g: &ConvGeom, xp: &[f32], dy: &[f32], m: &mut [f32], work: &mut [f32]) {
    let (ci_n, co_n) = (g.c_in, g.c_out);
    let ((th, tw), block) = (tile_grid(g), block_rows(g, WEIGHT_BLOCK_ROWS));
    let (v, yt) = work.split_at_mut(16 * block * tw * ci_n);
    let (v, yt, xp, dy, mp) = (v.as_mut_ptr(), yt.as_mut_ptr(), xp.as_ptr(), dy.as_ptr(), m.as_mut_ptr());
    let gemm_path = kernel_path().for_channels(co_n);
    for r0 in (0..th).step_by(block) {
        let tiles = block.min(th - r0) * tw;
        transform_input::<S>(g, xp, r0, tiles, v);
        // Y[ξ][t][co] = (A e Aᵀ)[ξ] for tile t's 2 x 2 block e of dy.
        for t in 0..tiles {
            let (oh, ow) = (2 * (r0 + t / tw), 2 * (t % tw));
            for c0 in (0..co_n).step_by(S::LANES) {
                if t + 1 < tiles {
                    simd::prefetch_rows(yt, 16, tiles * co_n, (t + 1) * co_n + c0);
                }
                // Past an odd output, zeros.
                let e: [[S::V; 2]; 2] = core::array::from_fn(|i| {
                    core::array::from_fn(|j| {
                        let inside = oh + i < g.h_out && ow + j < g.w_out;
                        if inside {
                            S::load(dy.add(((oh + i) * g.w_out + ow + j) * co_n + c0))
                        } else {
                            S::zero()
                        }
                    })
                });
                // cols[j][r] = (A e)[r][j]; then A along each row of that.
                let cols: [[S::V; 4]; 2] = core::array::from_fn(|j| a::<S>([e[0][j], e[1][j]]));
                for r in 0..4 {
                    let f = a::<S>([cols[0][r], cols[1][r]]);
                    for (c, &val) in f.iter().enumerate() {
                        S::store(yt.add(((r * 4 + c) * tiles + t) * co_n + c0), val);
                    }
                }
            }
        }
        // m[ξ] += V[ξ]ᵀ Y[ξ]: rows ci, the tiles along the sum, in order.
        for xi in 0..16 {
            let (vx, yx, mx) = (
                v.add(xi * tiles * ci_n).cast_const(),
                yt.add(xi * tiles * co_n).cast_const(),
                mp.add(xi * ci_n * co_n),
            );
            for (co0, nv) in channel_blocks(co_n, gemm_path) {
                each_tile!(S, nv, ci_n, ci_n, 1, |ci: usize| vx.add(ci), |c0, M, NV, rows| {
                    let at = mx.add(c0 * co_n + co0);
                    Tile::<S, M, NV>::prefetch(at, co_n);
                    let mut acc = Tile::<S, M, NV>::zero();
                    acc.run(rows, ci_n, yx.add(co0), co_n, tiles);
                    acc.add_to(at, co_n);
                });
            }
        }
    }
}

/// dw = Gᵀ m G per (ci, co): the kernel gradient from `weight_grad_acc`'s sums, each in f64
/// and rounded once. Overwrites `dw` (`w_len`).
pub fn weight_grad_finish(g: &ConvGeom, m: &[f32], dw: &mut [f32]) {
    assert!(applies(g) && m.len() >= weights_len(g) && dw.len() == g.w_len(), "winograd: kernel lengths");
    let cc = g.c_in * g.c_out;
    // Channels in sixteens make whole chunks, on the path's vectors as `transform_chunk`'s.
    assert!(cc.is_multiple_of(CHUNK), "winograd: channels in sixteens");
    for i0 in (0..cc).step_by(CHUNK) {
        dispatch!(finish_chunk(m: &[f32], cc: usize, i0: usize, dw: &mut [f32]))
    }
}

/// Elements `i0..i0 + CHUNK` of `weight_grad_finish`'s 9 taps of `cc`.
/// # Safety
/// `S`'s instructions exist.
#[inline(always)]
unsafe fn finish_chunk<S: Simd>(m: &[f32], cc: usize, i0: usize, dw: &mut [f32]) {
    // t[3a + kw] = sum over b of m[a][b] G[b][kw], then dw[kh][kw] = sum over a of G[a][kh] t[3a + kw].
    let mut t = [[0.0f64; CHUNK]; 12];
    for (xi, plane) in m[..16 * cc].chunks_exact(cc).enumerate() {
        let (a, b) = (xi / 4, xi % 4);
        let src: &[f32; CHUNK] = plane[i0..i0 + CHUNK].try_into().expect("a whole chunk");
        for (kw, &gw) in G[b].iter().enumerate() {
            for (tv, &v) in t[3 * a + kw].iter_mut().zip(src) {
                *tv += f64::from(v) * gw;
            }
        }
    }
    for (kh, kw) in (0..3).flat_map(|kh| (0..3).map(move |kw| (kh, kw))) {
        let dst: &mut [f32; CHUNK] = (&mut dw[(kh * 3 + kw) * cc + i0..][..CHUNK]).try_into().expect("a whole chunk");
        for (l, d) in dst.iter_mut().enumerate() {
            *d = G.iter().enumerate().map(|(a, ga)| ga[kh] * t[3 * a + kw][l]).sum::<f64>() as f32;
        }
    }
}

/// Bᵀ times a column of 4: (d0 - d2, d1 + d2, d2 - d1, d1 - d3).
#[inline(always)]
unsafe fn bt<S: Simd>(d: [S::V; 4]) -> [S::V; 4] {
    [S::sub(d[0], d[2]), S::add(d[1], d[2]), S::sub(d[2], d[1]), S::sub(d[1], d[3])]
}

/// A times a column of 2: (e0, e0 + e1, e0 - e1, -e1).
#[inline(always)]
unsafe fn a<S: Simd>(e: [S::V; 2]) -> [S::V; 4] {
    [e[0], S::add(e[0], e[1]), S::sub(e[0], e[1]), S::sub(S::zero(), e[1])]
}

/// Aᵀ times a column of 4: (m0 + m1 + m2, m1 - m2 - m3).
#[inline(always)]
unsafe fn at<S: Simd>(m: [S::V; 4]) -> [S::V; 2] {
    [S::add(S::add(m[0], m[1]), m[2]), S::sub(S::sub(m[1], m[2]), m[3])]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_direct;
    use crate::geom::Padding;

    /// Seeded values in [-1, 1): a multiplicative hash of the index.
    fn data(len: usize, seed: u64) -> Vec<f32> {
        let hash = |i: u64| ((i ^ seed << 40).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as f32;
        (0..len as u64).map(|i| hash(i) / (1u64 << 23) as f32 - 1.0).collect()
    }

    /// The largest error of `y` against the f64 sum, in units of the sum of the terms'
    /// magnitudes (the scale of an f32 dot product's rounding error).
    fn worst_error(g: &ConvGeom, xp: &[f32], w: &[f32], b: &[f32], y: &[f32]) -> f64 {
        let wp = g.w_out + 2;
        let mut worst = 0.0f64;
        for p in 0..g.h_out * g.w_out {
            let (oh, ow) = (p / g.w_out, p % g.w_out);
            for co in 0..g.c_out {
                let (mut sum, mut scale) = (f64::from(b[co]), f64::from(b[co]).abs());
                for kh in 0..3 {
                    for kw in 0..3 {
                        for ci in 0..g.c_in {
                            let t = f64::from(xp[((oh + kh) * wp + ow + kw) * g.c_in + ci])
                                * f64::from(w[((kh * 3 + kw) * g.c_in + ci) * g.c_out + co]);
                            sum += t;
                            scale += t.abs();
                        }
                    }
                }
                worst = worst.max((f64::from(y[p * g.c_out + co]) - sum).abs() / scale);
            }
        }
        worst
    }

    #[test]
    fn error_is_no_worse_than_twice_the_direct_kernels() {
        for (h, ci, co) in [(28, 32, 32), (14, 64, 32), (8, 16, 48), (7, 64, 128)] {
            let g = ConvGeom::new(h, h, ci, co, 3, 1, Padding::Same).expect("geometry");
            assert!(applies(&g));
            let (x, w, b) = (data(g.x_len(), 1), data(g.w_len(), 2), data(co, 3));
            let mut xp = vec![0.0; conv_direct::padded_len(&g)];
            conv_direct::pad_input(&g, &x, &mut xp);
            let (mut direct, mut wino) = (vec![0.0; g.y_len()], vec![0.0; g.y_len()]);
            conv_direct::forward_tiled(&g, &xp, &w, Some(&b), &mut direct);
            let mut u = vec![0.0; weights_len(&g)];
            transform_weights(&g, &w, &mut u);
            let mut work = vec![0.0; work_len(&g)];
            let mut xw = vec![0.0; padded_len(&g)];
            pad_input(&g, &x, &mut xw);
            forward(&g, &xw, &u, Finish { bias: Some(&b), relu: false }, &mut wino, &mut work);
            let (e_direct, e_wino) = (worst_error(&g, &xp, &w, &b, &direct), worst_error(&g, &xp, &w, &b, &wino));
            eprintln!("{h}x{h} {ci}->{co}: direct {e_direct:.2e}, winograd {e_wino:.2e}");
            assert!(e_wino <= 2.0 * e_direct, "{h}x{h} {ci}->{co}: {e_wino:e} vs {e_direct:e}");
        }
    }

    #[test]
    fn weight_gradient_error_is_no_worse_than_three_times_the_direct_kernels() {
        for (h, ci, co) in [(28, 32, 32), (20, 16, 48), (21, 32, 16)] {
            let g = ConvGeom::new(h, h, ci, co, 3, 1, Padding::Same).expect("geometry");
            let (x, dy) = (data(g.x_len(), 4), data(g.y_len(), 5));
            let mut xp = vec![0.0; conv_direct::padded_len(&g)];
            conv_direct::pad_input(&g, &x, &mut xp);
            let mut direct = vec![0.0; g.w_len()];
            conv_direct::weight_grad_tiled_acc(&g, &xp, &dy, &mut direct, false);
            let (mut sums, mut work) = (vec![0.0; weights_len(&g)], vec![0.0; weight_work_len(&g)]);
            let mut xw = vec![0.0; padded_len(&g)];
            pad_input(&g, &x, &mut xw);
            weight_grad_acc(&g, &xw, &dy, &mut sums, &mut work);
            let mut wino = vec![0.0; g.w_len()];
            weight_grad_finish(&g, &sums, &mut wino);
            // Each entry's error against the f64 sum, in units of the sum of its terms' magnitudes.
            let wp = g.w_out + 2;
            let mut worst = [0.0f64; 2];
            for t in 0..9 {
                for i in 0..ci {
                    for o in 0..co {
                        let (mut sum, mut scale) = (0.0f64, 0.0f64);
                        for p in 0..h * h {
                            let (oh, ow) = (p / h, p % h);
                            let v =
                                f64::from(xp[((oh + t / 3) * wp + ow + t % 3) * ci + i]) * f64::from(dy[p * co + o]);
                            sum += v;
                            scale += v.abs();
                        }
                        let at = (t * ci + i) * co + o;
                        for (w, got) in worst.iter_mut().zip([direct[at], wino[at]]) {
                            *w = w.max((f64::from(got) - sum).abs() / scale);
                        }
                    }
                }
            }
            eprintln!("{h}x{h} {ci}->{co} weight gradient: direct {:.2e}, winograd {:.2e}", worst[0], worst[1]);
            // Measured: 2.3x at 28 x 28, 0.8x at 20 x 20, 1.1x at 21 x 21 (the transformed terms
            // are sums of up to 16 products, larger than the products they stand for).
            assert!(worst[1] <= 3.0 * worst[0], "{h}x{h} {ci}->{co}: {:e} vs {:e}", worst[1], worst[0]);
        }
    }
}
