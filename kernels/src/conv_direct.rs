//! Direct convolution over one zero-padded NHWC image, register-tiled: the fast path behind
//! `conv2d::forward` (and, for stride 1, `conv2d::backward_input`). No im2col buffer: each
//! microkernel call keeps an `MR` pixels x `8 * NV` channels tile of `y` in registers and
//! streams the receptive field from the padded input and the weights, with the bias in its
//! epilogue.

use crate::geom::ConvGeom;
use crate::simd::{self, load};
use wide::f32x8;

/// Output pixels per microkernel tile (along a row).
const MR: usize = 8;

/// Size of the zero-padded copy of one input image: `[hp, wp, c_in]` plus slack so a tile may
/// run past the last column (its extra pixels are computed and discarded).
pub fn padded_len(g: &ConvGeom) -> usize {
    let (hp, wp) = padded_dims(g);
    hp * wp * g.c_in + MR * g.stride * g.c_in + g.k * g.c_in
}

/// Rows and columns of the padded input: every window of every output fits.
pub fn padded_dims(g: &ConvGeom) -> (usize, usize) {
    ((g.h_out - 1) * g.stride + g.k, (g.w_out - 1) * g.stride + g.k)
}

/// xp <- x placed at (pad_top, pad_left) in zeros. Rows/columns past the padded size (unused
/// by 'valid' windows) are dropped.
pub fn pad_input(g: &ConvGeom, x: &[f32], xp: &mut [f32]) {
    let (hp, wp) = padded_dims(g);
    let ci = g.c_in;
    xp.fill(0.0);
    for r in 0..g.h_in.min(hp.saturating_sub(g.pad_top)) {
        let cols = g.w_in.min(wp.saturating_sub(g.pad_left));
        let dst = ((r + g.pad_top) * wp + g.pad_left) * ci;
        xp[dst..dst + cols * ci].copy_from_slice(&x[r * g.w_in * ci..][..cols * ci]);
    }
}

/// One tile: y[ow0 + j, co0 .. co0 + 8 NV] for j < m, in output row `oh`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<const NV: usize>(
    g: &ConvGeom,
    xp: &[f32],
    wp: usize,
    w: &[f32],
    b: Option<&[f32]>,
    oh: usize,
    ow0: usize,
    m: usize,
    co0: usize,
    y: &mut [f32],
) {
    let (ci_n, co_n, s) = (g.c_in, g.c_out, g.stride);
    let mut acc = [[f32x8::splat(0.0); NV]; MR];
    if let Some(b) = b {
        let bv: [f32x8; NV] = std::array::from_fn(|v| load(&b[co0 + 8 * v..]));
        acc.iter_mut().for_each(|a| *a = bv);
    }
    for kh in 0..g.k {
        let row = ((oh * s + kh) * wp + ow0 * s) * ci_n;
        for kw in 0..g.k {
            let base = row + kw * ci_n;
            let xs: [&[f32]; MR] = std::array::from_fn(|j| &xp[base + j * s * ci_n..][..ci_n]);
            let wk = &w[(kh * g.k + kw) * ci_n * co_n..][..ci_n * co_n];
            for ci in 0..ci_n {
                let wr = &wk[ci * co_n + co0..][..8 * NV];
                let wv: [f32x8; NV] = std::array::from_fn(|v| load(&wr[8 * v..]));
                for j in 0..MR {
                    let xv = f32x8::splat(xs[j][ci]);
                    for v in 0..NV {
                        acc[j][v] = xv.mul_add(wv[v], acc[j][v]);
                    }
                }
            }
        }
    }
    for (j, a) in acc.iter().enumerate().take(m) {
        let dst = &mut y[((oh * g.w_out) + ow0 + j) * co_n + co0..][..8 * NV];
        for v in 0..NV {
            simd::store(a[v], &mut dst[8 * v..]);
        }
    }
}

/// y = conv(xp) + b for one image whose input is already padded (`pad_input`); `c_out` must be
/// a multiple of 8. Overwrites `y` (`[h_out, w_out, c_out]`).
pub fn forward_tiled(g: &ConvGeom, xp: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    assert!(g.c_out % 8 == 0, "conv_direct: c_out must be a multiple of 8");
    assert!(xp.len() >= padded_len(g) && w.len() == g.w_len() && y.len() == g.y_len());
    let wp = padded_dims(g).1;
    for oh in 0..g.h_out {
        for ow0 in (0..g.w_out).step_by(MR) {
            let m = MR.min(g.w_out - ow0);
            let mut co0 = 0;
            while co0 + 16 <= g.c_out {
                tile::<2>(g, xp, wp, w, b, oh, ow0, m, co0, y);
                co0 += 16;
            }
            if co0 < g.c_out {
                tile::<1>(g, xp, wp, w, b, oh, ow0, m, co0, y);
            }
        }
    }
}

/// y = conv(xp) + b for one image with few output channels (any `c_out`): one dot product of
/// `c_in` lanes per (pixel, kernel tap, channel), against `wt [c_out, k, k, c_in]` (the kernel
/// with its output axis first; see `transpose_weights`). Overwrites `y`.
pub fn forward_narrow(g: &ConvGeom, xp: &[f32], wt: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    assert!(xp.len() >= padded_len(g) && wt.len() == g.w_len() && y.len() == g.y_len());
    let (wp, ci_n, s) = (padded_dims(g).1, g.c_in, g.stride);
    let tap = g.k * g.k * ci_n;
    for oh in 0..g.h_out {
        for ow in 0..g.w_out {
            for co in 0..g.c_out {
                let wc = &wt[co * tap..][..tap];
                let mut acc = b.map_or(0.0, |b| b[co]);
                for kh in 0..g.k {
                    let x = &xp[((oh * s + kh) * wp + ow * s) * ci_n..][..g.k * ci_n];
                    acc += simd::dot(x, &wc[kh * g.k * ci_n..][..g.k * ci_n]);
                }
                y[(oh * g.w_out + ow) * g.c_out + co] = acc;
            }
        }
    }
}

/// wt[co, kh, kw, ci] = w[kh, kw, ci, co]. Overwrites `wt`.
pub fn transpose_weights(g: &ConvGeom, w: &[f32], wt: &mut [f32]) {
    let taps = g.k * g.k * g.c_in;
    for (t, row) in w.chunks_exact(g.c_out).enumerate() {
        for (co, &v) in row.iter().enumerate() {
            wt[co * taps + t] = v;
        }
    }
}

/// For stride 1, the input gradient is a convolution of dy with the kernel flipped in space
/// and its channel axes swapped, padded by k - 1 - pad. Returns that conv's geometry.
pub fn backward_input_geom(g: &ConvGeom) -> ConvGeom {
    debug_assert_eq!(g.stride, 1);
    ConvGeom {
        h_in: g.h_out,
        w_in: g.w_out,
        c_in: g.c_out,
        h_out: g.h_in,
        w_out: g.w_in,
        c_out: g.c_in,
        k: g.k,
        stride: 1,
        pad_top: g.k - 1 - g.pad_top,
        pad_left: g.k - 1 - g.pad_left,
    }
}

/// wf[kh, kw, co, ci] = w[k-1-kh, k-1-kw, ci, co]: the kernel of `backward_input_geom`.
pub fn flip_weights(g: &ConvGeom, w: &[f32], wf: &mut [f32]) {
    let (k, ci_n, co_n) = (g.k, g.c_in, g.c_out);
    for kh in 0..k {
        for kw in 0..k {
            let src = &w[((k - 1 - kh) * k + (k - 1 - kw)) * ci_n * co_n..][..ci_n * co_n];
            let dst = &mut wf[(kh * k + kw) * co_n * ci_n..][..co_n * ci_n];
            for ci in 0..ci_n {
                for co in 0..co_n {
                    dst[co * ci_n + ci] = src[ci * co_n + co];
                }
            }
        }
    }
}

/// dw[kh, kw, 0, co] += sum_p xp[window(p) + (kh, kw)] * dy[p, co] for one image with a single
/// input channel (`c_in == 1`, `k <= 3`, `c_out % 8 == 0`): as a GEMM its M would be 1 and run
/// at a few GFLOP/s, so instead each pass over the pixels keeps all k*k taps of a 16-channel
/// block in registers.
pub fn weight_grad_single_channel_acc(g: &ConvGeom, xp: &[f32], dy: &[f32], dw: &mut [f32]) {
    assert!(g.c_in == 1 && g.k <= 3 && g.c_out % 8 == 0, "conv_direct: single-channel weight gradient");
    assert!(xp.len() >= padded_len(g) && dy.len() == g.y_len() && dw.len() == g.w_len());
    let mut co0 = 0;
    while co0 + 16 <= g.c_out {
        weight_grad_block::<2>(g, xp, dy, co0, dw);
        co0 += 16;
    }
    if co0 < g.c_out {
        weight_grad_block::<1>(g, xp, dy, co0, dw);
    }
}

#[inline(always)]
fn weight_grad_block<const NV: usize>(g: &ConvGeom, xp: &[f32], dy: &[f32], co0: usize, dw: &mut [f32]) {
    let (wp, k, s, co_n) = (padded_dims(g).1, g.k, g.stride, g.c_out);
    let taps = k * k;
    // Offset of each tap from the window's top-left pixel (no division in the pixel loop).
    let offsets: [usize; 9] = std::array::from_fn(|t| (t / k) * wp + t % k);
    let mut acc = [[f32x8::splat(0.0); NV]; 9];
    for oh in 0..g.h_out {
        for ow in 0..g.w_out {
            let d = &dy[(oh * g.w_out + ow) * co_n + co0..][..8 * NV];
            let dv: [f32x8; NV] = std::array::from_fn(|v| load(&d[8 * v..]));
            let origin = oh * s * wp + ow * s;
            for (a, off) in acc.iter_mut().zip(offsets).take(taps) {
                let xv = f32x8::splat(xp[origin + off]);
                for v in 0..NV {
                    a[v] = xv.mul_add(dv[v], a[v]);
                }
            }
        }
    }
    for (t, a) in acc.iter().enumerate().take(taps) {
        let dst = &mut dw[t * co_n + co0..][..8 * NV];
        for v in 0..NV {
            let sum = load(&dst[8 * v..]) + a[v];
            simd::store(sum, &mut dst[8 * v..]);
        }
    }
}

/// dw[kh, kw, ci, co] += sum over output pixels p of xp[window(p) + (kh, kw), ci] * dy[p, co]
/// for one padded image, any stride, `c_in % 8 == 0` and `c_out % 8 == 0`. Each register tile
/// holds 8 input channels x `8 * NV` output channels of one tap while the pixels stream by,
/// the same shape of work as the forward microkernel.
pub fn weight_grad_tiled_acc(g: &ConvGeom, xp: &[f32], dy: &[f32], dw: &mut [f32]) {
    assert!(g.c_in % 8 == 0 && g.c_out % 8 == 0, "conv_direct: tiled weight gradient needs channels in eights");
    assert!(xp.len() >= padded_len(g) && dy.len() == g.y_len() && dw.len() == g.w_len());
    for tap in 0..g.k * g.k {
        for ci0 in (0..g.c_in).step_by(8) {
            let mut co0 = 0;
            while co0 + 16 <= g.c_out {
                weight_grad_tile::<2>(g, xp, dy, tap, ci0, co0, dw);
                co0 += 16;
            }
            if co0 < g.c_out {
                weight_grad_tile::<1>(g, xp, dy, tap, ci0, co0, dw);
            }
        }
    }
}

#[inline(always)]
fn weight_grad_tile<const NV: usize>(
    g: &ConvGeom,
    xp: &[f32],
    dy: &[f32],
    tap: usize,
    ci0: usize,
    co0: usize,
    dw: &mut [f32],
) {
    let (wp, s, ci_n, co_n) = (padded_dims(g).1, g.stride, g.c_in, g.c_out);
    let (kh, kw) = (tap / g.k, tap % g.k);
    let mut acc = [[f32x8::splat(0.0); NV]; 8];
    for oh in 0..g.h_out {
        let xrow = ((oh * s + kh) * wp + kw) * ci_n + ci0;
        let dyrow = &dy[oh * g.w_out * co_n..][..g.w_out * co_n];
        for ow in 0..g.w_out {
            let xs = &xp[xrow + ow * s * ci_n..][..8];
            let d = &dyrow[ow * co_n + co0..][..8 * NV];
            let dv: [f32x8; NV] = std::array::from_fn(|v| load(&d[8 * v..]));
            for j in 0..8 {
                let xv = f32x8::splat(xs[j]);
                for v in 0..NV {
                    acc[j][v] = xv.mul_add(dv[v], acc[j][v]);
                }
            }
        }
    }
    for (j, a) in acc.iter().enumerate() {
        let dst = &mut dw[(tap * ci_n + ci0 + j) * co_n + co0..][..8 * NV];
        for v in 0..NV {
            let sum = load(&dst[8 * v..]) + a[v];
            simd::store(sum, &mut dst[8 * v..]);
        }
    }
}

/// The weight gradient for few output channels (`c_out % 8 != 0`, `c_in % 8 == 0`): per tap,
/// output channel and block of up to 32 input channels, vectors of input channels accumulate
/// dy-scaled runs of the padded image.
pub fn weight_grad_narrow_acc(g: &ConvGeom, xp: &[f32], dy: &[f32], dw: &mut [f32]) {
    assert!(g.c_in % 8 == 0, "conv_direct: narrow weight gradient needs c_in in eights");
    assert!(xp.len() >= padded_len(g) && dy.len() == g.y_len() && dw.len() == g.w_len());
    let (wp, s, ci_n, co_n) = (padded_dims(g).1, g.stride, g.c_in, g.c_out);
    for tap in 0..g.k * g.k {
        let (kh, kw) = (tap / g.k, tap % g.k);
        for co in 0..co_n {
            for ci0 in (0..ci_n).step_by(32) {
                let nv = ((ci_n - ci0) / 8).min(4);
                let mut acc = [f32x8::splat(0.0); 4];
                for oh in 0..g.h_out {
                    let xrow = ((oh * s + kh) * wp + kw) * ci_n + ci0;
                    for ow in 0..g.w_out {
                        let d = f32x8::splat(dy[(oh * g.w_out + ow) * co_n + co]);
                        let xs = &xp[xrow + ow * s * ci_n..][..8 * nv];
                        for (a, x8) in acc.iter_mut().zip(xs.chunks_exact(8)) {
                            *a = load(x8).mul_add(d, *a);
                        }
                    }
                }
                for (v, a) in acc.iter().enumerate().take(nv) {
                    for (l, x) in a.to_array().into_iter().enumerate() {
                        dw[(tap * ci_n + ci0 + 8 * v + l) * co_n + co] += x;
                    }
                }
            }
        }
    }
}

/// Rows/columns of zeros around dy in `backward_input_strided`: enough that every tap of every
/// dx pixel reads inside the buffer.
fn strided_pad(g: &ConvGeom) -> usize {
    (g.k - 1).div_ceil(g.stride)
}

/// Size of the padded dy `backward_input_strided` needs: `[hpd, wpd, c_out]`.
pub fn strided_dy_dims(g: &ConvGeom) -> (usize, usize) {
    let p = strided_pad(g);
    ((g.h_in + g.pad_top) / g.stride + p + 1, (g.w_in + g.pad_left) / g.stride + p + 1 + MR)
}

/// wt[kh, kw, co, ci] = w[kh, kw, ci, co]: per tap, input channels contiguous.
pub fn transpose_taps(g: &ConvGeom, w: &[f32], wt: &mut [f32]) {
    let (ci_n, co_n) = (g.c_in, g.c_out);
    for (src, dst) in w.chunks_exact(ci_n * co_n).zip(wt.chunks_exact_mut(ci_n * co_n)) {
        for ci in 0..ci_n {
            for co in 0..co_n {
                dst[co * ci_n + ci] = src[ci * co_n + co];
            }
        }
    }
}

/// dx = the input gradient of a strided conv for one image, without im2col: dx pixels fall
/// into stride x stride classes by their phase, and each class is a small stride-1
/// correlation of dy with the taps of matching phase. Register tiles hold 8 same-class pixels
/// (`stride` apart in dx, adjacent in dy) x `8 * NV` input channels. `dyp` is scratch of
/// `strided_dy_dims`, `wt` the kernel from `transpose_taps`; needs `c_in % 8 == 0`.
/// Overwrites `dx` (`[h_in, w_in, c_in]`).
pub fn backward_input_strided(g: &ConvGeom, dy: &[f32], wt: &[f32], dyp: &mut [f32], dx: &mut [f32]) {
    assert!(g.c_in % 8 == 0, "conv_direct: strided input gradient needs c_in in eights");
    let (hpd, wpd) = strided_dy_dims(g);
    assert!(dyp.len() >= hpd * wpd * g.c_out && dy.len() == g.y_len() && dx.len() == g.x_len());
    let (s, p, co_n) = (g.stride, strided_pad(g), g.c_out);
    dyp[..hpd * wpd * co_n].fill(0.0);
    for (r, row) in dy.chunks_exact(g.w_out * co_n).enumerate() {
        dyp[((r + p) * wpd + p) * co_n..][..g.w_out * co_n].copy_from_slice(row);
    }
    for a in 0..s {
        let ih0 = (a + s - g.pad_top % s) % s; // first dx row with (ih + pad_top) % s == a
        for bcls in 0..s {
            let iw0 = (bcls + s - g.pad_left % s) % s;
            let members = if iw0 < g.w_in { (g.w_in - iw0).div_ceil(s) } else { 0 };
            for ih in (ih0..g.h_in).step_by(s) {
                for j0 in (0..members).step_by(MR) {
                    let m = MR.min(members - j0);
                    let mut ci0 = 0;
                    while ci0 + 16 <= g.c_in {
                        strided_tile::<2>(g, dyp, wpd, wt, a, bcls, ih, iw0 + j0 * s, m, ci0, dx);
                        ci0 += 16;
                    }
                    if ci0 < g.c_in {
                        strided_tile::<1>(g, dyp, wpd, wt, a, bcls, ih, iw0 + j0 * s, m, ci0, dx);
                    }
                }
            }
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn strided_tile<const NV: usize>(
    g: &ConvGeom,
    dyp: &[f32],
    wpd: usize,
    wt: &[f32],
    a: usize,
    bcls: usize,
    ih: usize,
    iw: usize,
    m: usize,
    ci0: usize,
    dx: &mut [f32],
) {
    let (s, p, k, ci_n, co_n) = (g.stride, strided_pad(g), g.k, g.c_in, g.c_out);
    let mut acc = [[f32x8::splat(0.0); NV]; MR];
    for kh in (a..k).step_by(s) {
        // dy row read by dx row ih through tap kh, in the padded buffer (exact division).
        let oh = (ih + g.pad_top + p * s - kh) / s;
        for kw in (bcls..k).step_by(s) {
            let ow = (iw + g.pad_left + p * s - kw) / s;
            let base = (oh * wpd + ow) * co_n;
            let xs: [&[f32]; MR] = std::array::from_fn(|j| &dyp[base + j * co_n..][..co_n]);
            let wk = &wt[(kh * k + kw) * co_n * ci_n..][..co_n * ci_n];
            for co in 0..co_n {
                let wr = &wk[co * ci_n + ci0..][..8 * NV];
                let wv: [f32x8; NV] = std::array::from_fn(|v| load(&wr[8 * v..]));
                for j in 0..MR {
                    let xv = f32x8::splat(xs[j][co]);
                    for v in 0..NV {
                        acc[j][v] = xv.mul_add(wv[v], acc[j][v]);
                    }
                }
            }
        }
    }
    for (j, acc_j) in acc.iter().enumerate().take(m) {
        let dst = &mut dx[(ih * g.w_in + iw + j * s) * ci_n + ci0..][..8 * NV];
        for v in 0..NV {
            simd::store(acc_j[v], &mut dst[8 * v..]);
        }
    }
}
