//! Direct convolution over one zero-padded NHWC image, register-tiled: the fast path behind
//! `conv2d::forward`, its input gradient (stride 1: the same kernel on the flipped weights;
//! larger strides: one correlation per output phase) and its weight gradient. No im2col
//! buffer: each tile (`micro::Tile`: up to 6 pixels x 4 vectors of channels, or on AVX-512
//! 14 pixels of one image row x 2 vectors) keeps its outputs in registers and streams the
//! receptive field from the padded input and the weights, with the bias in its prologue.
//! Every public kernel checks its slice lengths, then runs on the path `isa` chose.

use crate::bf16;
use crate::geom::{size, ConvGeom};
use crate::isa::{dispatch, kernel_path, KernelPath};
use crate::micro::{
    channel_blocks, each_tile, next_pixel, pixel_chunks, with_rows, Avx512, Bf16Pairs, Operand, Rows, Simd, Tile,
    Values,
};

/// Output pixels per block of `weight_grad_tiled_acc`.
const PIXEL_BLOCK: usize = 64;

/// Bytes of kernel a tile pass reads (`forward_tiled_with`): with the tile's image rows,
/// it stays in L1 (32 KB on Zen 4, 48 KB on recent Xeons) while every pixel tile uses it.
const WEIGHT_SLAB: usize = 16 * 1024;

/// Kernels of at most this many taps x input channels (`k * k * c_in`) run all their rows in
/// one pass over the pixels (see `forward_tiled_with`).
const SMALL_KERNEL: usize = 64;

/// Size of the zero-padded copy of one input image: `[hp, wp, c_in]` (tiles never run past
/// the last output pixel) plus `k` pixels that `conv2d`'s shifted-GEMM weight gradient reads
/// past the end.
pub fn padded_len(g: &ConvGeom) -> usize {
    let (hp, wp) = padded_dims(g);
    size(&[hp, wp, g.c_in]).checked_add(size(&[g.k, g.c_in])).expect("conv_direct: padded size overflows usize")
}
/// Rows and columns of the padded input: every window of every output fits.
pub fn padded_dims(g: &ConvGeom) -> (usize, usize) {
    let span =
        |out: usize| size(&[out - 1, g.stride]).checked_add(g.k).expect("conv_direct: padded size overflows usize");
    (span(g.h_out), span(g.w_out))
}

/// xp <- x placed at (pad_top, pad_left) in zeros. Rows/columns past the padded size (unused
/// by 'valid' windows) are dropped.
pub fn pad_input(g: &ConvGeom, x: &[f32], xp: &mut [f32]) {
    pad_input_to(g, padded_dims(g), x, xp);
}

/// `pad_input` into a padded image of `(rows, columns)` of its own (Winograd's whole tiles).
pub fn pad_input_to(g: &ConvGeom, dims: (usize, usize), x: &[f32], xp: &mut [f32]) {
    pad_rows(g, dims, x, xp, |src, dst| dst.copy_from_slice(src));
}

/// `pad_input` into bf16 (`xq`, `padded_len(g)` of them), each value rounded (`bf16::round`):
/// the image operand of `forward_tiled_bf16`.
pub fn pad_input_bf16(g: &ConvGeom, x: &[f32], xq: &mut [u16]) {
    pad_rows(g, padded_dims(g), x, xq, bf16::round_slice);
}

/// `pad_input`'s placement of x's rows into zeros, each row written by `row(src, dst)`.
fn pad_rows<T: Copy + Default>(
    g: &ConvGeom,
    (hp, wp): (usize, usize),
    x: &[f32],
    xp: &mut [T],
    row: impl Fn(&[f32], &mut [T]),
) {
    let ci = g.c_in;
    let (rows, cols) = (g.h_in.min(hp.saturating_sub(g.pad_top)), g.w_in.min(wp.saturating_sub(g.pad_left)));
    let runs = (0..rows).map(|r| (((r + g.pad_top) * wp + g.pad_left) * ci, &x[r * g.w_in * ci..][..cols * ci]));
    place_runs(xp, runs, row);
}

/// Writes each run `(at, src)` (ascending, not overlapping) to `dst[at..][..src.len()]` with
/// `row(src, dst)` and zeros the rest of `dst`: only the gaps, since clearing the whole buffer
/// before the copy cost a third as much as the copy.
fn place_runs<'a, T: Copy + Default>(
    dst: &mut [T],
    runs: impl Iterator<Item = (usize, &'a [f32])>,
    row: impl Fn(&[f32], &mut [T]),
) {
    let mut done = 0;
    for (at, src) in runs {
        dst[done..at].fill(T::default());
        row(src, &mut dst[at..at + src.len()]);
        done = at + src.len();
    }
    dst[done..].fill(T::default());
}

/// The emulated bf16 operand (see `bf16`): every value rounded to bf16, and each pair
/// (2i, 2i + 1) swapped so that an f32 kernel running in order adds the odd product first,
/// as `VDPBF16PS` does. For a padded image with an even `c_in`, the pairs are its channel
/// pairs.
pub fn quantize_swapped(v: &mut [f32]) {
    bf16::quantize_swapped_runs(v, 1);
}

/// The kernel of `forward_tiled_bf16` from `w [k, k, c_in, c_out]`: per tap and input
/// channel pair, one pair per output channel, `wq[((t * c_in / 2 + i) * c_out + co) * 2 + e]
/// = round(w[t][2i + e][co])`. Needs an even `c_in`. Overwrites `wq` (`w_len` of them).
pub fn pack_weights_bf16(g: &ConvGeom, w: &[f32], wq: &mut [u16]) {
    let (ci_n, co_n) = (g.c_in, g.c_out);
    for (src, dst) in w.chunks_exact(ci_n * co_n).zip(wq.chunks_exact_mut(ci_n * co_n)) {
        for ci in 0..ci_n {
            for co in 0..co_n {
                dst[((ci / 2) * co_n + co) * 2 + ci % 2] = bf16::round(src[ci * co_n + co]);
            }
        }
    }
}

/// The kernel of the emulated bf16 forward from `w [k, k, c_in, c_out]`: rounded, with
/// input channels 2i and 2i + 1 swapped to match `quantize_swapped`. Needs an even `c_in`.
/// Overwrites `we`.
pub fn quantize_swapped_weights(g: &ConvGeom, w: &[f32], we: &mut [f32]) {
    // Rows of c_out, one per (tap, input channel): with c_in even, pairs of rows are channel
    // pairs of one tap.
    we.copy_from_slice(w);
    bf16::quantize_swapped_runs(we, g.c_out);
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

/// Rows/columns of zeros around dy in `backward_input_strided`: enough that every tap of every
/// dx pixel reads inside the buffer.
fn strided_pad(g: &ConvGeom) -> usize {
    (g.k - 1).div_ceil(g.stride)
}

/// dy placed in the zeros of `strided_dy_dims` (`strided_pad` rows and columns before it),
/// each row written by `row(src, dst)`.
fn pad_dy<T: Copy + Default>(g: &ConvGeom, dy: &[f32], dyp: &mut [T], row: impl Fn(&[f32], &mut [T])) {
    let (hpd, wpd) = strided_dy_dims(g);
    let (p, co_n) = (strided_pad(g), g.c_out);
    let runs = dy.chunks_exact(g.w_out * co_n).enumerate().map(|(r, src)| (((r + p) * wpd + p) * co_n, src));
    place_runs(&mut dyp[..hpd * wpd * co_n], runs, row);
}

/// Size of the padded dy `backward_input_strided` needs: `[hpd, wpd, c_out]`.
pub fn strided_dy_dims(g: &ConvGeom) -> (usize, usize) {
    let p = strided_pad(g);
    ((g.h_in + g.pad_top) / g.stride + p + 1, (g.w_in + g.pad_left) / g.stride + p + 1)
}

/// The path `backward_input_strided` runs `g` on; `transpose_taps` lays its kernel out for it.
pub fn strided_path(g: &ConvGeom) -> KernelPath {
    kernel_path().for_channels(g.c_in)
}

/// Blocks of input channels of `backward_input_strided` on `path`, `(ci0, nv)` as
/// `channel_blocks`. Blocks of 4 vectors (AVX-512) run taps outermost (`strided_taps_outermost`);
/// narrower ones all of a pixel's taps in one tile, tall where the phase classes' rows allow.
pub(crate) fn strided_blocks(g: &ConvGeom, path: KernelPath) -> impl Iterator<Item = (usize, usize)> {
    channel_blocks(g.c_in, path)
}

/// The kernel of `backward_input_strided` on `path` (its `strided_path`), per tap and per block
/// of input channels (`strided_blocks`, `L nv` wide from ci0, L the path's lanes):
/// `wt[tap][ci0 * c_out + co * L nv + l] = w[tap][ci0 + l][co]`, so each tile's weights are one
/// contiguous run. Needs `c_in % 8 == 0`.
pub fn transpose_taps(g: &ConvGeom, path: KernelPath, w: &[f32], wt: &mut [f32]) {
    let (ci_n, co_n) = (g.c_in, g.c_out);
    for (src, dst) in w.chunks_exact(ci_n * co_n).zip(wt.chunks_exact_mut(ci_n * co_n)) {
        for (ci0, nv) in strided_blocks(g, path) {
            let width = path.lanes() * nv;
            for co in 0..co_n {
                for l in 0..width {
                    dst[ci0 * co_n + co * width + l] = src[(ci0 + l) * co_n + co];
                }
            }
        }
    }
}

/// y = conv(xp) + b for one image whose input is already padded (`pad_input`); `c_out` must be
/// a multiple of 8. Overwrites `y` (`[h_out, w_out, c_out]`).
pub fn forward_tiled(g: &ConvGeom, xp: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    assert!(g.c_out.is_multiple_of(8), "conv_direct: c_out must be a multiple of 8");
    assert!(xp.len() >= padded_len(g) && w.len() == g.w_len() && y.len() == g.y_len());
    assert!(b.is_none_or(|b| b.len() == g.c_out), "conv_direct: bias length");
    let path = kernel_path().for_channels(g.c_out);
    dispatch!(on path, forward_tiled_f32(g: &ConvGeom, xp: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]))
}

/// # Safety
/// `S`'s instructions exist; the lengths are those `forward_tiled` checks. Every read is
/// inside the padded image (`padded_dims` covers each window), every write inside `y`.
#[inline(always)]
unsafe fn forward_tiled_f32<S: Simd>(g: &ConvGeom, xp: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    forward_tiled_with::<S, Values>(g, xp.as_ptr(), w.as_ptr(), b, y)
}

/// The direct convolution over `O`'s elements: `xp` the padded image and `w` the kernel
/// (`[k, k, c_in / PER, c_out]` elements), so a pixel is `c_in / PER` elements.
/// # Safety
/// As `forward_tiled_f32` (for bf16: `forward_tiled_bf16`'s checks).
#[inline(always)]
unsafe fn forward_tiled_with<S: Simd, O: Operand<S>>(
    g: &ConvGeom,
    xp: *const O::E,
    w: *const O::E,
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    let (wp, k, s, co_n) = (padded_dims(g).1, g.k, g.stride, g.c_out);
    let unit = g.c_in / O::PER;
    let yp = y.as_mut_ptr();
    // Per channel block and kernel row, its weights (k x c_in x 16: 24 KB at c_in = 128)
    // stay in L1 while every pixel tile uses them; the tiles' partial sums go through y,
    // which does not change them (each output is the same chain of FMAs in kh order). With
    // few input channels a kernel row is a short run and that round trip would cost more
    // than the multiply-adds: then all rows go in one pass. Tiles run over the image's pixels
    // in row-major order: tall tiles along image rows, short ones across rows, so 7- and
    // 14-wide rows get full tiles too.
    let rows_per_pass = if k * k * g.c_in <= SMALL_KERNEL { k } else { 1 };
    let window = |p: usize| xp.add(((p / g.w_out) * s * wp + (p % g.w_out) * s) * unit);
    let run = k * unit;
    for (co0, nv) in channel_blocks(co_n, S::PATH) {
        // A pass over one kernel row reads its weights in chunks of at most WEIGHT_SLAB bytes
        // (a 3 x 64-channel row at 4 vectors is 48 KB and streamed from L2 for every tile).
        let chunk = if rows_per_pass == 1 { (WEIGHT_SLAB / (4 * S::LANES * nv)).max(1) } else { run };
        for kh0 in (0..k).step_by(rows_per_pass) {
            let khs = kh0..(kh0 + rows_per_pass).min(k);
            for q0 in (0..run).step_by(chunk) {
                let steps = q0..(q0 + chunk).min(run);
                let pass = (khs.clone(), steps);
                each_tile!(S, nv, g.h_out * g.w_out, g.w_out, s * unit, window, |p0, M, NV, rows| {
                    forward_tile::<S, O, M, NV>(g, rows, w, b, yp.add(p0 * co_n + co0), co0, pass.clone())
                });
            }
        }
    }
}

/// One tile of `forward_tiled_with`: the outputs `c[j * c_out ..][.. L NV]` of the `M`
/// pixels whose windows start at `rows`, channels from `co0`, summed over the kernel rows
/// `khs`, steps `steps` of each row's run of k * c_in (from the bias or zero at the first
/// step, else from the partial sums in `c`).
/// # Safety
/// As `forward_tiled_with`.
#[inline(always)]
unsafe fn forward_tile<S: Simd, O: Operand<S>, const M: usize, const NV: usize>(
    g: &ConvGeom,
    rows: impl Rows<O::E, M>,
    w: *const O::E,
    b: Option<&[f32]>,
    c: *mut f32,
    co0: usize,
    (khs, steps): (core::ops::Range<usize>, core::ops::Range<usize>),
) {
    let (wp, k, co_n) = (padded_dims(g).1, g.k, g.c_out);
    let unit = g.c_in / O::PER;
    let mut t = match (khs.start + steps.start, b) {
        (0, Some(b)) => Tile::<S, M, NV>::rows_of(b.as_ptr().add(co0)),
        (0, None) => Tile::<S, M, NV>::zero(),
        _ => Tile::<S, M, NV>::load(c, co_n),
    };
    for kh in khs {
        // Along a kernel row the (kw, ci) pairs are contiguous in both the padded image and
        // the kernel: one run of k * c_in.
        let (row, q) = (kh * wp * unit, kh * k * unit + steps.start);
        let a = rows.moved((row + steps.start) as isize);
        O::run(&mut t, a, 1, w.add(q * co_n + co0), co_n, steps.len());
    }
    t.store(c, co_n);
}

/// `forward_tiled` in bf16, natively: `xq` the padded image from `pad_input_bf16`, `wq` the
/// kernel from `pack_weights_bf16`. Needs `bf16::native()`, an even `c_in` and `c_out % 16
/// == 0`. Each output is the chain of `VDPBF16PS` steps over its (kh, kw, channel pair)
/// terms in order, which the emulation (`quantize_swapped` operands through `forward_tiled`)
/// repeats. Overwrites `y`.
pub fn forward_tiled_bf16(g: &ConvGeom, xq: &[u16], wq: &[u16], b: Option<&[f32]>, y: &mut [f32]) {
    assert!(bf16::native(), "conv_direct: native bf16 needs AVX512-BF16 on the AVX-512 path");
    assert!(g.c_out.is_multiple_of(16) && g.c_in.is_multiple_of(2), "conv_direct: bf16 channel counts");
    assert!(xq.len() >= padded_len(g) && wq.len() == g.w_len() && y.len() == g.y_len());
    assert!(b.is_none_or(|b| b.len() == g.c_out), "conv_direct: bias length");
    #[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
    unsafe fn run(g: &ConvGeom, xq: &[u16], wq: &[u16], b: Option<&[f32]>, y: &mut [f32]) {
        // Pairs of bf16 read as u32 (unaligned loads).
        forward_tiled_with::<Avx512, Bf16Pairs>(g, xq.as_ptr().cast(), wq.as_ptr().cast(), b, y)
    }
    // SAFETY: `native` (asserted) means the CPU has AVX512-BF16 and AVX-512F.
    unsafe { run(g, xq, wq, b, y) }
}

/// y = conv(xp) + b for one image with few output channels (any `c_out`): dot products of
/// `k * c_in` lanes per (pixel, kernel row, channel), up to 6 pixels at a time, against
/// `wt [c_out, k, k, c_in]` (the kernel with its output axis first; see
/// `transpose_weights`). Overwrites `y`.
pub fn forward_narrow(g: &ConvGeom, xp: &[f32], wt: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    assert!(xp.len() >= padded_len(g) && wt.len() == g.w_len() && y.len() == g.y_len());
    assert!(b.is_none_or(|b| b.len() == g.c_out), "conv_direct: bias length");
    dispatch!(forward_narrow_with(g: &ConvGeom, xp: &[f32], wt: &[f32], b: Option<&[f32]>, y: &mut [f32]))
}

/// # Safety
/// As `forward_tiled_f32`.
#[inline(always)]
unsafe fn forward_narrow_with<S: Simd>(g: &ConvGeom, xp: &[f32], wt: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    let (wp, k, s, ci_n, co_n) = (padded_dims(g).1, g.k, g.stride, g.c_in, g.c_out);
    let (tap, seg) = (k * k * ci_n, k * ci_n);
    let body = seg - seg % S::LANES;
    let (xp, wt) = (xp.as_ptr(), wt.as_ptr());
    for (p0, m, px) in pixel_chunks(g.h_out, g.w_out) {
        for co in 0..co_n {
            with_rows!(m, M => {
                // One vector of partial sums per pixel across all kernel rows, summed once.
                let row = |j: usize, kh: usize| xp.add(((px[j].0 * s + kh) * wp + px[j].1 * s) * ci_n);
                let mut acc = [S::zero(); M];
                for kh in 0..k {
                    let a: [*const f32; M] = core::array::from_fn(|j| row(j, kh));
                    let wk = wt.add(co * tap + kh * seg);
                    let mut q = 0;
                    while q < body {
                        let wv = S::load(wk.add(q));
                        for j in 0..M {
                            acc[j] = S::fma(S::load(a[j].add(q)), wv, acc[j]);
                        }
                        q += S::LANES;
                    }
                }
                for j in 0..M {
                    let mut v = b.map_or(0.0, |b| b[co]) + S::sum(acc[j]);
                    for kh in 0..k {
                        let (a, wk) = (row(j, kh), wt.add(co * tap + kh * seg));
                        for q in body..seg {
                            v = (*a.add(q)).mul_add(*wk.add(q), v);
                        }
                    }
                    y[(p0 + j) * co_n + co] = v;
                }
            })
        }
    }
}

/// Output pixels of one image row that `forward_single` computes together.
const SINGLE_ROW: usize = 7;

/// Whether `forward_single` runs `g`: one output channel, a 3 x 3 kernel, stride 1, rows in
/// whole blocks of `SINGLE_ROW` and channels in whole vectors of every path (16).
pub fn single_applies(g: &ConvGeom) -> bool {
    g.c_out == 1 && g.k == 3 && g.stride == 1 && g.c_in.is_multiple_of(16) && g.w_out.is_multiple_of(SINGLE_ROW)
}

/// y = conv(x) + b for one image `x [h_in, w_in, c_in]` (not padded) with one output channel
/// (`single_applies`), `w [3, 3, c_in]`: the models' last layers. `SINGLE_ROW` pixels of one
/// row at a time; each image vector (16 channels of one pixel) is loaded once and multiplied
/// by the up to three kernel taps that read it, into the pixels that need it (9 loads per 21
/// FMAs, where `forward_narrow`'s dot product per pixel loads its own window: one load per
/// FMA); the lanes of each pixel summed at the end (`Simd::sums8`). Windows that cross the
/// border skip the missing rows and columns, so there is no padded copy (which took 40% of
/// the pass). Overwrites `y`.
pub fn forward_single(g: &ConvGeom, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    assert!(single_applies(g), "conv_direct: forward_single needs one output channel, 3 x 3, stride 1");
    assert!(x.len() == g.x_len() && w.len() == g.w_len() && y.len() == g.y_len(), "conv_direct: lengths");
    assert!(b.is_none_or(|b| b.len() == 1), "conv_direct: bias length");
    dispatch!(forward_single_with(g: &ConvGeom, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]))
}

/// # Safety
/// `S`'s instructions exist; the lengths are those `forward_single` checks. Every image read
/// is at a row and column inside the image.
#[inline(always)]
unsafe fn forward_single_with<S: Simd>(g: &ConvGeom, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    // With 32 registers, two sets of accumulators (even and odd vectors of channels): each
    // pixel's chain of dependent FMAs is half as long (one image hot: 6.4 -> 5.6 µs).
    if S::LANES == 16 && g.c_in.is_multiple_of(32) {
        forward_single_sets::<S, 2>(g, x, w, b, y)
    } else {
        forward_single_sets::<S, 1>(g, x, w, b, y)
    }
}

/// `forward_single_with` with `SETS` accumulators per pixel, each fed every `SETS`-th vector
/// of channels (`c_in % (SETS * LANES) == 0`).
/// # Safety
/// As `forward_single_with`.
#[inline(always)]
unsafe fn forward_single_sets<S: Simd, const SETS: usize>(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    const B: usize = SINGLE_ROW;
    let ci_n = g.c_in;
    let (xs, w) = (x.as_ptr(), w.as_ptr());
    let bias = b.map_or(0.0, |b| b[0]);
    let mut sums = [0.0f32; 8];
    // The image row that the next output row reads and this one does not, asked for a part per
    // block of this row: the image is read in place, three rows at a time, a pattern the
    // hardware prefetchers did not follow when it came from memory.
    let row_lines = (g.w_in * ci_n).div_ceil(16);
    let lines_per_block = row_lines.div_ceil((g.w_out / B).max(1));
    for oh in 0..g.h_out {
        // Kernel rows that read a row of the image: i = oh + kh - pad_top in 0..h_in.
        let khs = (0..3).filter(|kh| (oh + kh).checked_sub(g.pad_top).is_some_and(|i| i < g.h_in));
        let ahead = (oh + 3).checked_sub(g.pad_top).filter(|&i| i < g.h_in).map(|i| xs.add(i * g.w_in * ci_n));
        for (block, ow0) in (0..g.w_out).step_by(B).enumerate() {
            if let Some(row) = ahead {
                let lines = block * lines_per_block..((block + 1) * lines_per_block).min(row_lines);
                lines.for_each(|l| crate::simd::prefetch(row.wrapping_add(16 * l)));
            }
            // Window column c (0..B + 2) is image column ow0 + c - pad_left.
            let col = |c: usize| (ow0 + c).checked_sub(g.pad_left).filter(|&j| j < g.w_in);
            let mut acc = [[S::zero(); B]; SETS];
            for kh in khs.clone() {
                let row = xs.add((oh + kh - g.pad_top) * g.w_in * ci_n);
                for c0 in (0..ci_n).step_by(SETS * S::LANES) {
                    for (set, acc) in acc.iter_mut().enumerate() {
                        let c0 = c0 + set * S::LANES;
                        let wv: [S::V; 3] = core::array::from_fn(|kw| S::load(w.add((kh * 3 + kw) * ci_n + c0)));
                        // Column c feeds pixel ow0 + c - kw through tap kw.
                        for c in 0..B + 2 {
                            let Some(j) = col(c) else { continue };
                            let v = S::load(row.add(j * ci_n + c0));
                            for kw in 0..3 {
                                if c >= kw && c - kw < B {
                                    acc[c - kw] = S::fma(v, wv[kw], acc[c - kw]);
                                }
                            }
                        }
                    }
                }
            }
            let total: [S::V; 8] = core::array::from_fn(|j| {
                if j < B {
                    acc[1..].iter().fold(acc[0][j], |s, a| S::add(s, a[j]))
                } else {
                    S::zero()
                }
            });
            S::sums8(total, sums.as_mut_ptr());
            for (j, s) in sums.iter().take(B).enumerate() {
                y[oh * g.w_out + ow0 + j] = bias + s;
            }
        }
    }
}

/// dw[kh, kw, ci, co] += sum over output pixels p of xp[window(p) + (kh, kw), ci] * dy[p, co]
/// for one padded image, any stride and `c_in`, `c_out % 8 == 0`: a GEMM whose rows are the
/// `k * k * c_in` (kh, kw, ci) triples (K = the pixels), in tiles of up to 6 of them x 16
/// output channels.
///
/// With `swapped`, dy's rows come in pixel pairs swapped (`quantize_swapped_rows`) and the
/// pixels are read in that order too, so each pair's odd product is added first: the emulated
/// bf16 weight gradient, with `xp` and dy rounded to bf16.
pub fn weight_grad_tiled_acc(g: &ConvGeom, xp: &[f32], dy: &[f32], dw: &mut [f32], swapped: bool) {
    assert!(g.c_out.is_multiple_of(8), "conv_direct: tiled weight gradient needs c_out in eights");
    assert!(xp.len() >= padded_len(g) && dy.len() == g.y_len() && dw.len() == g.w_len());
    let path = kernel_path().for_channels(g.c_out);
    dispatch!(on path, weight_grad_tiled_with(g: &ConvGeom, xp: &[f32], dy: &[f32], dw: &mut [f32], swapped: bool))
}

/// `dst` <- `dy [pixels, c_out]` rounded to bf16 with rows 2i and 2i + 1 swapped (an odd
/// last row stays): dy for `weight_grad_tiled_acc`'s `swapped`.
pub fn quantize_swapped_rows(g: &ConvGeom, dy: &[f32], dst: &mut [f32]) {
    dst.copy_from_slice(dy);
    bf16::quantize_swapped_runs(dst, g.c_out);
}

/// # Safety
/// As `forward_tiled_f32`.
#[inline(always)]
unsafe fn weight_grad_tiled_with<S: Simd>(g: &ConvGeom, xp: &[f32], dy: &[f32], dw: &mut [f32], swapped: bool) {
    let (wp, k, s, ci_n, co_n) = (padded_dims(g).1, g.k, g.stride, g.c_in, g.c_out);
    // (kw, ci) pairs of one kernel row: contiguous in the padded image.
    let seg = k * ci_n;
    // Offset in the padded image of dw row t = (kh, kw, ci), from a window's top-left pixel.
    let offset = |t: usize| (t / seg) * wp * ci_n + t % seg;
    let (xp, dy, dwp) = (xp.as_ptr(), dy.as_ptr(), dw.as_mut_ptr());
    // Blocks of pixels, each finished by every tile before the next: the block's dy rows and
    // windows stay in L1 (streaming every pixel through each tile made the pass bound by L2
    // bandwidth). A table of the windows' offsets lets a tile run across image rows.
    let mut windows = [0usize; PIXEL_BLOCK];
    let count = g.h_out * g.w_out;
    for p0 in (0..count).step_by(PIXEL_BLOCK) {
        let len = PIXEL_BLOCK.min(count - p0);
        let mut at = (p0 / g.w_out, p0 % g.w_out);
        for o in windows.iter_mut().take(len) {
            *o = (at.0 * s * wp + at.1 * s) * ci_n;
            at = next_pixel(at, g.w_out);
        }
        if swapped {
            // PIXEL_BLOCK is even, so a block holds whole pairs (and an odd last pixel).
            windows[..len].chunks_exact_mut(2).for_each(|pair| pair.swap(0, 1));
        }
        let (dyb, windows) = (dy.add(p0 * co_n), &windows[..len]);
        for (co0, nv) in channel_blocks(co_n, S::PATH) {
            // Within a kernel row's (kw, ci) run the dw rows are adjacent in the image (1
            // apart): tall tiles where the run splits into whole ones.
            each_tile!(S, nv, k * seg, seg, 1, |r| xp.add(offset(r)), |r0, M, NV, rows| {
                weight_tile::<S, M, NV>(rows, windows, dyb.add(co0), co_n, dwp.add(r0 * co_n + co0))
            });
        }
    }
}

/// One tile of `weight_grad_tiled_with`: dw rows `rows` (their image values at each window
/// offset) times the block's dy rows from `dy` (`c_out` apart), added to `dw` (`c_out` apart).
/// # Safety
/// As `weight_grad_tiled_with`.
#[inline(always)]
unsafe fn weight_tile<S: Simd, const M: usize, const NV: usize>(
    rows: impl Rows<f32, M>,
    windows: &[usize],
    dy: *const f32,
    co_n: usize,
    dw: *mut f32,
) {
    let mut t = Tile::<S, M, NV>::zero();
    t.run_offsets(rows, windows, dy, co_n);
    t.add_to(dw, co_n);
}

/// Scratch (in u32 slots) of `weight_grad_tiled_bf16_acc`: one block's packed operands.
pub fn bf16_weight_work_len(g: &ConvGeom) -> usize {
    size(&[PIXEL_BLOCK / 2, g.k * g.k * g.c_in + g.c_out])
}

/// `weight_grad_tiled_acc` in bf16, natively: pairs run along the pixels. Per block of
/// `PIXEL_BLOCK` pixels, `work` (`bf16_weight_work_len` u32) receives the image operand
/// `[pixel pair][k * k * c_in]` (each entry the two pixels' values of one dw row, from `xq`,
/// the padded image of `pad_input_bf16`) and dy rounded, `[pixel pair][c_out]`; an odd last
/// pixel pairs with zeros. Needs `bf16::native()` and `c_out % 16 == 0`. Each dw entry gets
/// the same chain per block as the emulation (`swapped`).
pub fn weight_grad_tiled_bf16_acc(g: &ConvGeom, xq: &[u16], dy: &[f32], work: &mut [u32], dw: &mut [f32]) {
    assert!(bf16::native(), "conv_direct: native bf16 needs AVX512-BF16 on the AVX-512 path");
    assert!(g.c_out.is_multiple_of(16), "conv_direct: bf16 weight gradient needs c_out in sixteens");
    assert!(xq.len() >= padded_len(g) && dy.len() == g.y_len() && dw.len() == g.w_len());
    assert!(work.len() >= bf16_weight_work_len(g), "conv_direct: bf16 weight gradient work area");
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma")]
    unsafe fn run(g: &ConvGeom, xq: &[u16], dy: &[f32], work: &mut [u32], dw: &mut [f32]) {
        weight_grad_tiled_bf16_with(g, xq, dy, work, dw)
    }
    // SAFETY: `native` (asserted) means the CPU has AVX512-BF16 and AVX-512F (BW comes with
    // every AVX512-BF16 CPU: Cooper Lake, Sapphire Rapids, Zen 4).
    unsafe { run(g, xq, dy, work, dw) }
}

/// # Safety
/// As `forward_tiled_f32`, and the CPU has AVX512-BF16 and AVX512-BW.
#[inline(always)]
unsafe fn weight_grad_tiled_bf16_with(g: &ConvGeom, xq: &[u16], dy: &[f32], work: &mut [u32], dw: &mut [f32]) {
    use core::arch::x86_64::*;
    let (wp, k, s, ci_n, co_n) = (padded_dims(g).1, g.k, g.stride, g.c_in, g.c_out);
    let (seg, rows) = (k * ci_n, k * k * ci_n);
    let count = g.h_out * g.w_out;
    let window = |p: usize| ((p / g.w_out) * s * wp + (p % g.w_out) * s) * ci_n;
    let (img, dys) = work.split_at_mut((PIXEL_BLOCK / 2) * rows);
    let dwp = dw.as_mut_ptr();
    for p0 in (0..count).step_by(PIXEL_BLOCK) {
        let len = PIXEL_BLOCK.min(count - p0);
        let pairs = len.div_ceil(2);
        for q in 0..pairs {
            let (pa, pb) = (p0 + 2 * q, p0 + 2 * q + 1);
            let (ra, rb) = (&xq[window(pa)..], (pb < count).then(|| &xq[window(pb)..]));
            let out = &mut img[q * rows..][..rows];
            // Dw row (kh, kw, ci) reads the window's kernel row kh at (kw, ci): one run of
            // seg values per kernel row, interleaved 16 at a time.
            for kh in 0..k {
                let (a, o) = (&ra[kh * wp * ci_n..][..seg], &mut out[kh * seg..][..seg]);
                let b = rb.map(|rb| &rb[kh * wp * ci_n..][..seg]);
                let body = seg - seg % 16;
                for i in (0..body).step_by(16) {
                    let lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(a.as_ptr().add(i).cast()));
                    let hi = match b {
                        Some(b) => {
                            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(b.as_ptr().add(i).cast())), 16)
                        }
                        None => _mm512_setzero_si512(),
                    };
                    _mm512_storeu_si512(o.as_mut_ptr().add(i).cast(), _mm512_or_si512(lo, hi));
                }
                for i in body..seg {
                    o[i] = u32::from(a[i]) | b.map_or(0, |b| u32::from(b[i]) << 16);
                }
            }
        }
        // dy's pixel pairs rounded and interleaved 16 channels at a time (c_out % 16 == 0): a
        // scalar loop here cost as much as the products for the 32-channel convolutions.
        crate::bf16::pack_row_pairs(&dy[p0 * co_n..(p0 + len) * co_n], co_n, &mut dys[..pairs * co_n]);
        let (ip, dp) = (img.as_ptr(), dys.as_ptr());
        for (co0, nv) in channel_blocks(co_n, KernelPath::Avx512) {
            // The packed block's dw rows are adjacent (1 apart): tall tiles where they split
            // into whole ones.
            each_tile!(Avx512, nv, rows, rows, 1, |r| ip.add(r), |r0, M, NV, a| {
                let mut t = Tile::<Avx512, M, NV>::zero();
                t.run_pairs(a, rows, dp.add(co0), co_n, pairs);
                t.add_to(dwp.add(r0 * co_n + co0), co_n);
            });
        }
    }
}

/// The weight gradient for a single output channel (`c_out == 1`): for each kernel row, the
/// `k * c_in` (kw, ci) pairs are contiguous in both the padded image and dw, so one vector
/// accumulator per 8 of them gathers dy-scaled runs of the image.
pub fn weight_grad_narrow_acc(g: &ConvGeom, xp: &[f32], dy: &[f32], dw: &mut [f32]) {
    assert!(g.c_out == 1, "conv_direct: narrow weight gradient needs one output channel");
    assert!(xp.len() >= padded_len(g) && dy.len() == g.y_len() && dw.len() == g.w_len());
    dispatch!(weight_grad_narrow_with(g: &ConvGeom, xp: &[f32], dy: &[f32], dw: &mut [f32]))
}

/// # Safety
/// As `forward_tiled_f32`.
#[inline(always)]
unsafe fn weight_grad_narrow_with<S: Simd>(g: &ConvGeom, xp: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (wp, k, s, ci_n) = (padded_dims(g).1, g.k, g.stride, g.c_in);
    let rows = k * ci_n;
    let (xpp, dyp, dwp) = (xp.as_ptr(), dy.as_ptr(), dw.as_mut_ptr());
    for kh in 0..k {
        // dy is the broadcast operand (one row), the image the vector one: 12 (AVX2) or 6
        // (AVX-512) accumulators cover a whole 3 x 32-channel kernel row, then blocks of 4
        // and 1 vectors.
        let mut r0 = 0;
        while r0 + S::LANES <= rows {
            r0 += match (rows - r0) / S::LANES {
                12.. => narrow_block::<S, 12>(g, xpp, dyp, dwp, kh, r0),
                6.. => narrow_block::<S, 6>(g, xpp, dyp, dwp, kh, r0),
                4.. => narrow_block::<S, 4>(g, xpp, dyp, dwp, kh, r0),
                _ => narrow_block::<S, 1>(g, xpp, dyp, dwp, kh, r0),
            };
        }
        for r in r0..rows {
            let mut acc = 0.0f32;
            for oh in 0..g.h_out {
                for ow in 0..g.w_out {
                    acc += xp[(oh * s + kh) * wp * ci_n + ow * s * ci_n + r] * dy[oh * g.w_out + ow];
                }
            }
            dw[kh * rows + r] += acc;
        }
    }
}

/// dw[kh, r0 .. r0 + 8 NV] += sum over pixels p of dy[p] * xp[window(p) + kh row, r0 ..] for
/// `weight_grad_narrow_with`; returns the lanes done.
/// # Safety
/// As `forward_tiled_f32`.
#[inline(always)]
unsafe fn narrow_block<S: Simd, const NV: usize>(
    g: &ConvGeom,
    xp: *const f32,
    dy: *const f32,
    dw: *mut f32,
    kh: usize,
    r0: usize,
) -> usize {
    let (wp, s, ci_n) = (padded_dims(g).1, g.stride, g.c_in);
    let mut t = Tile::<S, 1, NV>::zero();
    for oh in 0..g.h_out {
        t.run([dy.add(oh * g.w_out)], 1, xp.add((oh * s + kh) * wp * ci_n + r0), s * ci_n, g.w_out);
    }
    t.add_to(dw.add(kh * g.k * ci_n + r0), 0);
    S::LANES * NV
}

/// dx = the input gradient of a strided conv for one image, without im2col: dx pixels fall
/// into stride x stride classes by their phase, and each class is a small stride-1
/// correlation of dy with the taps of matching phase. Tiles hold up to 6 same-class pixels
/// (`stride` apart in dx, adjacent in dy) x 2 vectors of input channels. `dyp` is scratch of
/// `strided_dy_dims`, `wt` the kernel from `transpose_taps` for `path`, which must be
/// `strided_path(g)`; needs `c_in % 8 == 0`. Overwrites `dx` (`[h_in, w_in, c_in]`).
///
/// With `emulate_bf16`, dy is rounded with its channel pairs swapped (`quantize_swapped`),
/// for a kernel from `quantize_swapped_taps`: the emulated bf16 pass.
#[allow(clippy::too_many_arguments)]
pub fn backward_input_strided(
    g: &ConvGeom,
    path: KernelPath,
    dy: &[f32],
    wt: &[f32],
    dyp: &mut [f32],
    dx: &mut [f32],
    emulate_bf16: bool,
) {
    assert!(g.c_in.is_multiple_of(8), "conv_direct: strided input gradient needs c_in in eights");
    let (hpd, wpd) = strided_dy_dims(g);
    assert!(dyp.len() >= size(&[hpd, wpd, g.c_out]) && dy.len() == g.y_len() && dx.len() == g.x_len());
    assert!(wt.len() == g.w_len());
    assert_eq!(path, path.for_channels(g.c_in), "conv_direct: a path the strided input gradient can run");
    pad_dy(g, dy, dyp, |src, dst| dst.copy_from_slice(src));
    if emulate_bf16 {
        quantize_swapped(&mut dyp[..hpd * wpd * g.c_out]);
    }
    let dyp = &*dyp;
    dispatch!(on path, backward_input_strided_f32(g: &ConvGeom, dyp: &[f32], wt: &[f32], dx: &mut [f32]))
}

/// # Safety
/// As `forward_tiled_f32`; `strided_dy_dims` covers every tap of every dx pixel.
#[inline(always)]
unsafe fn backward_input_strided_f32<S: Simd>(g: &ConvGeom, dyp: &[f32], wt: &[f32], dx: &mut [f32]) {
    backward_input_strided_with::<S, Values>(g, dyp.as_ptr(), wt.as_ptr(), dx)
}

/// The strided input gradient over `O`'s elements: a dy pixel is `c_out / PER` of them, and
/// so is each channel block's row of a tap in `wt` (`transpose_taps` / `pack_taps_bf16`).
/// # Safety
/// As `backward_input_strided_f32` (for bf16: `backward_input_strided_bf16`'s checks).
#[inline(always)]
unsafe fn backward_input_strided_with<S: Simd, O: Operand<S>>(
    g: &ConvGeom,
    dyp: *const O::E,
    wt: *const O::E,
    dx: &mut [f32],
) {
    let (ci_n, unit) = (g.c_in, g.c_out / O::PER);
    let wpd = strided_dy_dims(g).1;
    let dxp = dx.as_mut_ptr();
    for c in strided_classes(g) {
        // Per class and channel block, the taps' weights (at most 4 x c_out x 16) stay in
        // L1 while every pixel of the class streams by: tall tiles along its rows (adjacent
        // in dy), short ones across them.
        let first = |i: usize| dyp.add(c.dy_pixel((i / c.cols, i % c.cols), 0, 0, wpd) * unit);
        let target = |i: usize| dxp.add(c.dx_pixel(g, (i / c.cols, i % c.cols)) * ci_n);
        for (ci0, nv) in strided_blocks(g, S::PATH) {
            if S::PATH.block_vectors() >= 4 && nv == 4 {
                strided_taps_outermost::<S, O>(g, &c, dyp, wt, ci0, dxp);
                continue;
            }
            each_tile!(S, nv, c.rows * c.cols, c.cols, unit, first, |p0, M, NV, rows| {
                let out: [*mut f32; M] = core::array::from_fn(|j| target(p0 + j).add(ci0));
                strided_tile::<S, O, M, NV>(g, &c, rows, wt, ci0, out);
            });
        }
    }
}

/// `backward_input_strided_with` for class `c` and the 4-vector block of input channels from
/// `ci0`, taps outermost: each tap's weights for the block (`c_out` x 64 floats, 32 KB at
/// c_out = 128) stay in L1 while every 6-pixel tile of the class uses them, the tiles' partial
/// sums going through dx (each output the same chain of FMAs, tap by tap, as in one tile).
/// With every tap in one 6 x 4 tile, the class's weights (up to 128 KB) came from L2 for each
/// tile; tall 14 x 2 tiles with every tap, which read each weight vector 14 times, ran the
/// models' two layers 8-12% slower on one thread (`bench --layers`, 64 images), 0-7% on two.
/// # Safety
/// As `backward_input_strided_with`.
#[inline(always)]
unsafe fn strided_taps_outermost<S: Simd, O: Operand<S>>(
    g: &ConvGeom,
    c: &StridedClass,
    dyp: *const O::E,
    wt: *const O::E,
    ci0: usize,
    dxp: *mut f32,
) {
    const NV: usize = 4;
    let (s, k, ci_n, unit) = (g.stride, g.k, g.c_in, g.c_out / O::PER);
    let wpd = strided_dy_dims(g).1;
    for (th, kh) in (c.a..k).step_by(s).enumerate() {
        for (tw, kw) in (c.b..k).step_by(s).enumerate() {
            let w = wt.add((kh * k + kw) * unit * ci_n + ci0 * unit);
            for (_, m, px) in pixel_chunks(c.rows, c.cols) {
                with_rows!(m, M => {
                    let rows: [_; M] = core::array::from_fn(|j| dyp.add(c.dy_pixel(px[j], th, tw, wpd) * unit));
                    let out: [_; M] = core::array::from_fn(|j| dxp.add(c.dx_pixel(g, px[j]) * ci_n + ci0));
                    let mut t = if th == 0 && tw == 0 { Tile::<S, M, NV>::zero() } else { Tile::load_at(out) };
                    O::run(&mut t, rows, 1, w, S::LANES * NV, unit);
                    t.store_at(out);
                })
            }
        }
    }
}

/// One tile of `backward_input_strided_with`: the dx pixels `out` (channels from `ci0`) of
/// class `c`, whose dy pixels through the class's first tap are `rows`.
/// # Safety
/// As `backward_input_strided_with`.
#[inline(always)]
unsafe fn strided_tile<S: Simd, O: Operand<S>, const M: usize, const NV: usize>(
    g: &ConvGeom,
    c: &StridedClass,
    rows: impl Rows<O::E, M>,
    wt: *const O::E,
    ci0: usize,
    out: [*mut f32; M],
) {
    let (s, k, ci_n, unit) = (g.stride, g.k, g.c_in, g.c_out / O::PER);
    let wpd = strided_dy_dims(g).1;
    let mut t = Tile::<S, M, NV>::zero();
    for (th, kh) in (c.a..k).step_by(s).enumerate() {
        for (tw, kw) in (c.b..k).step_by(s).enumerate() {
            // The (th, tw)-th tap reads th dy rows up and tw pixels left.
            let at = rows.moved(-(((th * wpd + tw) * unit) as isize));
            O::run(&mut t, at, 1, wt.add((kh * k + kw) * unit * ci_n + ci0 * unit), S::LANES * NV, unit);
        }
    }
    t.store_at(out);
}

/// One phase class of `backward_input_strided`: the dx pixels (ih0 + r s, iw0 + q s), r <
/// rows, q < cols, which read dy through the taps kh = a + t s, kw = b + u s.
pub(crate) struct StridedClass {
    pub a: usize,
    pub b: usize,
    ih0: usize,
    iw0: usize,
    pub rows: usize,
    pub cols: usize,
    /// The padded dy pixel that (ih0, iw0) reads through tap (a, b).
    oh0: usize,
    ow0: usize,
}

impl StridedClass {
    /// The padded dy pixel that the class's pixel (r, q) reads through its (th, tw)-th tap.
    pub fn dy_pixel(&self, (r, q): (usize, usize), th: usize, tw: usize, wpd: usize) -> usize {
        (self.oh0 + r - th) * wpd + self.ow0 + q - tw
    }

    /// The dx pixel of the class's pixel (r, q).
    pub fn dx_pixel(&self, g: &ConvGeom, (r, q): (usize, usize)) -> usize {
        (self.ih0 + r * g.stride) * g.w_in + self.iw0 + q * g.stride
    }
}

/// The stride x stride phase classes of dx.
pub(crate) fn strided_classes(g: &ConvGeom) -> impl Iterator<Item = StridedClass> + '_ {
    let (s, p) = (g.stride, strided_pad(g));
    (0..s).flat_map(move |a| {
        let ih0 = (a + s - g.pad_top % s) % s; // first dx row with (ih + pad_top) % s == a
        let rows = if ih0 < g.h_in { (g.h_in - ih0).div_ceil(s) } else { 0 };
        // Tap a + t s reads t rows above, and the class's r-th row r rows below.
        let oh0 = (ih0 + g.pad_top - a) / s + p;
        (0..s).map(move |b| {
            let iw0 = (b + s - g.pad_left % s) % s;
            let cols = if iw0 < g.w_in { (g.w_in - iw0).div_ceil(s) } else { 0 };
            let ow0 = (iw0 + g.pad_left - b) / s + p;
            StridedClass { a, b, ih0, iw0, rows, cols, oh0, ow0 }
        })
    })
}

/// `backward_input_strided` in bf16, natively: `wq` from `pack_taps_bf16`, `dyq` scratch of
/// `strided_dy_dims` bf16 for the rounded, padded dy. Needs `bf16::native()`, `c_in % 16 ==
/// 0` and an even `c_out` (the pairs run along it). On AMX where `amx::strided_applies`.
/// Overwrites `dx`.
pub fn backward_input_strided_bf16(g: &ConvGeom, dy: &[f32], wq: &[u16], dyq: &mut [u16], dx: &mut [f32]) {
    assert!(bf16::native(), "conv_direct: native bf16 needs AVX512-BF16 on the AVX-512 path");
    assert!(g.c_in.is_multiple_of(16) && g.c_out.is_multiple_of(2), "conv_direct: bf16 channel counts");
    let (hpd, wpd) = strided_dy_dims(g);
    assert!(dyq.len() >= size(&[hpd, wpd, g.c_out]) && dy.len() == g.y_len() && dx.len() == g.x_len());
    assert!(wq.len() == g.w_len());
    pad_dy(g, dy, dyq, bf16::round_slice);
    if crate::amx::strided_applies(g) {
        return crate::amx::strided_input_grad(g, dyq, wq, dx);
    }
    #[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
    unsafe fn run(g: &ConvGeom, dyq: &[u16], wq: &[u16], dx: &mut [f32]) {
        backward_input_strided_with::<Avx512, Bf16Pairs>(g, dyq.as_ptr().cast(), wq.as_ptr().cast(), dx)
    }
    // SAFETY: `native` (asserted) means the CPU has AVX512-BF16 and AVX-512F.
    unsafe { run(g, dyq, wq, dx) }
}

/// The kernel of `backward_input_strided_bf16`: per tap and AVX-512 block of input channels
/// (`strided_blocks`, `width = 16 nv` from ci0), per pair i of output channels, one pair per
/// input channel: `wq[tap][ci0 * c_out + (i * width + l) * 2 + e] = round(w[tap][ci0 +
/// l][2i + e])`. Overwrites `wq`.
pub fn pack_taps_bf16(g: &ConvGeom, w: &[f32], wq: &mut [u16]) {
    let (ci_n, co_n) = (g.c_in, g.c_out);
    for (src, dst) in w.chunks_exact(ci_n * co_n).zip(wq.chunks_exact_mut(ci_n * co_n)) {
        for (ci0, nv) in strided_blocks(g, KernelPath::Avx512) {
            let width = 16 * nv;
            for co in 0..co_n {
                for l in 0..width {
                    dst[ci0 * co_n + ((co / 2) * width + l) * 2 + co % 2] = bf16::round(src[(ci0 + l) * co_n + co]);
                }
            }
        }
    }
}

/// `transpose_taps`' kernel made the emulated bf16 operand: rounded, with output channels 2i
/// and 2i + 1 swapped (to match dy's `quantize_swapped`). Needs an even `c_out`.
pub fn quantize_swapped_taps(g: &ConvGeom, path: KernelPath, wt: &mut [f32]) {
    let co_n = g.c_out;
    for tap in wt.chunks_exact_mut(g.c_in * co_n) {
        for (ci0, nv) in strided_blocks(g, path) {
            // The block's rows, one per output channel, `width` long.
            let width = path.lanes() * nv;
            bf16::quantize_swapped_runs(&mut tap[ci0 * co_n..][..co_n * width], width);
        }
    }
}
