//! Winograd's F(2x2, 3x3) for the stride-1 3 x 3 convolutions (Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2016): each 2 x 2 block of outputs comes
//! from its 4 x 4 input window as Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A, 16 products per channel
//! pair where the direct convolution takes 36. Per image, a block of tile rows at a time: the
//! windows transformed into `V [16][tiles][c_in]`, sixteen GEMMs `M[ξ] = V[ξ] U[ξ]` on the
//! register tiles (`micro::Tile`, tall ones along a tile row on AVX-512) against the kernel
//! transformed once per pass (`U [16][c_in][c_out]`), then `M` transformed back into the
//! image, plus the bias.
//!
//! Rounding: the transforms add and subtract (Bᵀ, Aᵀ) or halve (G, exact), so the result
//! differs from the direct sum by a few ulps of the window's magnitude; `tests/` bound it
//! against the f64 naive twin like every other kernel. The same operations in the same order
//! on every path and thread count.

// The transforms index rows and columns of 4 x 4 arrays of vectors, as the formulas do.
#![allow(clippy::needless_range_loop)]

use crate::geom::{size, ConvGeom};
use crate::isa::{dispatch, kernel_path};
use crate::micro::{channel_blocks, each_tile, Simd, Tile};

/// Tile rows (of `w_out / 2` tiles each) per block: each `U[ξ]` read from L2 serves that
/// many tall tiles. At 1 thread, 32->32 channels, 28 x 28, batch 64: 1, 2, 4 rows ran the
/// pass in 4.59, 4.34, 4.40 ms; blocks of 7 tiles (all of a block's `V` and `M` in L1) in
/// 5.8 ms.
const BLOCK_ROWS: usize = 2;

/// Whether `g` runs on this kernel: 3 x 3, stride 1, an even output, and channel counts in
/// whole vectors on every path (16).
pub fn applies(g: &ConvGeom) -> bool {
    g.k == 3
        && g.stride == 1
        && g.h_out.is_multiple_of(2)
        && g.w_out.is_multiple_of(2)
        && g.h_out > 0
        && g.w_out > 0
        && g.c_in.is_multiple_of(16)
        && g.c_out.is_multiple_of(16)
}

/// Floats of the transformed kernel `U`.
pub fn weights_len(g: &ConvGeom) -> usize {
    size(&[16, g.c_in, g.c_out])
}

/// Floats of one image's work area (`V` and `M` of a block), where `applies`.
pub fn work_len(g: &ConvGeom) -> usize {
    if applies(g) {
        size(&[16, BLOCK_ROWS, g.w_out / 2, g.c_in + g.c_out])
    } else {
        0
    }
}

/// G, the kernel transform (rows ξ, columns kernel taps).
const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

/// U[ξ = 4a + b][ci][co] = (G g Gᵀ)[a][b] for `w [3, 3, c_in, c_out]`, each summed in f64 and
/// rounded once. Overwrites `u` (`weights_len`).
pub fn transform_weights(g: &ConvGeom, w: &[f32], u: &mut [f32]) {
    assert!(applies(g) && w.len() == g.w_len() && u.len() >= weights_len(g), "winograd: kernel lengths");
    let cc = g.c_in * g.c_out;
    for i in 0..cc {
        let tap = |kh: usize, kw: usize| f64::from(w[(kh * 3 + kw) * cc + i]);
        for (a, ga) in G.iter().enumerate() {
            for (b, gb) in G.iter().enumerate() {
                let mut s = 0.0;
                for (kh, &x) in ga.iter().enumerate() {
                    for (kw, &y) in gb.iter().enumerate() {
                        s += x * tap(kh, kw) * y;
                    }
                }
                u[(a * 4 + b) * cc + i] = s as f32;
            }
        }
    }
}

/// y = conv(xp) + b for one image whose input is already padded (`conv_direct::pad_input`),
/// `u` from `transform_weights`, `work` of `work_len` floats. Overwrites `y`.
pub fn forward(g: &ConvGeom, xp: &[f32], u: &[f32], b: Option<&[f32]>, y: &mut [f32], work: &mut [f32]) {
    assert!(applies(g), "winograd: a 3 x 3 stride-1 convolution with an even output and channels in sixteens");
    let (hp, wp) = crate::conv_direct::padded_dims(g);
    assert!(xp.len() >= size(&[hp, wp, g.c_in]) && u.len() >= weights_len(g) && y.len() == g.y_len());
    assert!(work.len() >= work_len(g) && b.is_none_or(|b| b.len() == g.c_out), "winograd: work or bias length");
    dispatch!(forward_with(g: &ConvGeom, xp: &[f32], u: &[f32], b: Option<&[f32]>, y: &mut [f32], work: &mut [f32]))
}

/// # Safety
/// `S`'s instructions exist; the lengths are those `forward` checks: every window of every
/// tile is inside the padded image, every block inside `work`, every output inside `y`.
#[inline(always)]
unsafe fn forward_with<S: Simd>(
    g: &ConvGeom,
    xp: &[f32],
    u: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    work: &mut [f32],
) {
    let (ci_n, co_n, wp) = (g.c_in, g.c_out, g.w_out + 2);
    let (tw, th) = (g.w_out / 2, g.h_out / 2);
    let (v, m) = work.split_at_mut(16 * BLOCK_ROWS * tw * ci_n);
    let (v, m, xp, u, yp) = (v.as_mut_ptr(), m.as_mut_ptr(), xp.as_ptr(), u.as_ptr(), y.as_mut_ptr());
    let gemm_path = kernel_path().for_channels(co_n);
    for r0 in (0..th).step_by(BLOCK_ROWS) {
        let tiles = BLOCK_ROWS.min(th - r0) * tw;
        // V[ξ][t][ci] = (Bᵀ d B)[ξ] for tile t's 4 x 4 window d.
        for t in 0..tiles {
            let corner = xp.add((2 * (r0 + t / tw) * wp + 2 * (t % tw)) * ci_n);
            for c0 in (0..ci_n).step_by(S::LANES) {
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
        // M[ξ] = V[ξ] U[ξ]: each element one chain over c_in in order.
        for xi in 0..16 {
            let (vx, ux, mx) =
                (v.add(xi * tiles * ci_n).cast_const(), u.add(xi * ci_n * co_n), m.add(xi * tiles * co_n));
            for (co0, nv) in channel_blocks(co_n, gemm_path) {
                each_tile!(S, nv, tiles, tw, ci_n, |t: usize| vx.add(t * ci_n), |t0, M, NV, rows| {
                    let mut acc = Tile::<S, M, NV>::zero();
                    acc.run(rows, 1, ux.add(co0), co_n, ci_n);
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
                let bias = b.map_or(S::zero(), |b| S::load(b.as_ptr().add(c0)));
                for i in 0..2 {
                    let out = at::<S>([cols[0][i], cols[1][i], cols[2][i], cols[3][i]]);
                    for (j, &val) in out.iter().enumerate() {
                        S::store(yp.add(((oh + i) * g.w_out + ow + j) * co_n + c0), S::add(val, bias));
                    }
                }
            }
        }
    }
}

/// Bᵀ times a column of 4: (d0 - d2, d1 + d2, d2 - d1, d1 - d3).
#[inline(always)]
unsafe fn bt<S: Simd>(d: [S::V; 4]) -> [S::V; 4] {
    [S::sub(d[0], d[2]), S::add(d[1], d[2]), S::sub(d[2], d[1]), S::sub(d[1], d[3])]
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

    /// Seeded values in [-1, 1).
    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
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
        for (h, ci, co) in [(28, 32, 32), (14, 64, 32), (8, 16, 48)] {
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
            forward(&g, &xp, &u, Some(&b), &mut wino, &mut work);
            let (e_direct, e_wino) = (worst_error(&g, &xp, &w, &b, &direct), worst_error(&g, &xp, &w, &b, &wino));
            eprintln!("{h}x{h} {ci}->{co}: direct {e_direct:.2e}, winograd {e_wino:.2e}");
            assert!(e_wino <= 2.0 * e_direct, "{h}x{h} {ci}->{co}: {e_wino:e} vs {e_direct:e}");
        }
    }
}
