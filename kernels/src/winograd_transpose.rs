//! Minimal filtering for the stride-2 3 x 3 transposed convolutions (Keras 'same', an output
//! twice the input: the modified model's Conv2DTranspose layers), in the notation of
//! `conv_transpose2d`: `g` is the Conv2D that reads the layer's output, so the layer reads
//! `x [g.h_out, g.w_out, C = g.c_out]` and writes `y [g.h_in, g.w_in, F = g.c_in]` with the
//! kernel `w [3, 3, F, C]`.
//!
//! Along one axis, output 2i is x[i] W0 + x[i - 1] W2 and output 2i + 1 is x[i] W1. A tile of
//! two inputs i = 2t, 2t + 1 gives four outputs from the window d = (x[i - 1], x[i], x[i + 1]):
//! the even pair is a 2-tap correlation, which Winograd's F(2, 2) computes with 3 products
//! instead of 4 (m0 = (d0 - d1) W2, m1 = d1 (W2 + W0), m2 = (d2 - d1) W0; outputs m0 + m1 and
//! m1 + m2), the odd pair takes 2 (m3 = d1 W1, m4 = d2 W1): 5 products for 4 outputs where
//! the direct pass takes 6. In two dimensions a tile is 2 x 2 inputs and 4 x 4 outputs, 25
//! products where the direct pass takes 36: the 25 points (pr, pc) of 5 x 5, each a GEMM over
//! the tiles `M[p] = V[val(pr), val(pc)] U[taps(pr), taps(pc)]` on the register tiles, where
//! the window's 1-D values are d0 - d1, d1, d2 - d1 and d2 (`VALUE`: 16 planes `V`) and the
//! kernel's W2, W2 + W0, W0 and W1 (`TAPS`: 16 planes `U`, summed in f64 and rounded once).
//! The transforms only add and subtract. An odd side's last tiles hold one input and take
//! only the points of their first two outputs (`point_grid`). `strided` does the same for the
//! adjoint, the layer's input gradient (a stride-2 convolution), and `strided_weight_grad_acc`
//! for its kernel gradient.

// The transforms index rows and columns of small arrays of vectors, as the formulas do.
#![allow(clippy::needless_range_loop)]

use crate::conv_direct;
use crate::geom::{size, ConvGeom};
use crate::isa::{dispatch, kernel_path};
use crate::micro::{self, channel_blocks, channel_blocks_upto, each_tile, Finish, Simd, Tile};
use crate::simd;
use rayon::prelude::*;

/// Which of the window's four 1-D values (d0 - d1, d1, d2 - d1, d2) each of the 5 points reads.
const VALUE: [usize; 5] = [0, 1, 2, 1, 3];

/// Which of the four 1-D kernel sums (W2, W2 + W0, W0, W1) each point multiplies by.
const KERNEL: [usize; 5] = [0, 1, 2, 3, 3];

/// The taps each 1-D kernel sum adds.
const TAPS: [&[usize]; 4] = [&[2], &[0, 2], &[0], &[1]];

/// The points each of a tile's four outputs (2i, 2i + 1, 2i + 2, 2i + 3) adds: the sums that
/// `forward_with` spells out.
const OUTPUT: [&[usize]; 4] = [&[0, 1], &[3], &[1, 2], &[4]];

/// Vectors of the widest register tile of the point products, which read the transformed
/// kernels laid out for it (`micro::blocked_at`).
const TILE_VECTORS: usize = 2;

/// Tile rows per block: each `U` plane read from L2 serves that many tiles per GEMM. At 1
/// thread, 14 x 14 128 -> 28 x 28 64, batch 64: 1, 2, 4 rows ran the pass in 11.7-12.2,
/// 11.4-11.8 and 10.4-11.5 ms.
const BLOCK_ROWS: usize = 4;

/// Whether `g` runs here: a 3 x 3 stride-2 'same' transposed convolution whose output is twice
/// its input, channels in whole vectors on every path (16). An odd side's last tiles hold one
/// input (or, in the strided pass, one output): they take only the points of their first two
/// outputs (`ONE_INPUT`), so the modified model's 7 x 7 -> 14 x 14 layer takes 18 x 18
/// products per channel pair where the direct pass takes 20 x 20 (its cropped taps) and
/// padded tiles 20 x 20 (8 x 8 inputs). Odd sides only with `ODD_MIN_CHANNELS` each way.
pub fn applies(g: &ConvGeom) -> bool {
    let twice = g.h_in == 2 * g.h_out && g.w_in == 2 * g.w_out && g.h_out > 0 && g.w_out > 0;
    let twice = twice && g.pad_top == 0 && g.pad_left == 0;
    let even = g.h_out.is_multiple_of(2) && g.w_out.is_multiple_of(2);
    let wide = g.c_in.min(g.c_out) >= ODD_MIN_CHANNELS;
    g.k == 3 && g.stride == 2 && twice && (even || wide) && g.c_in.is_multiple_of(16) && g.c_out.is_multiple_of(16)
}

/// Fewest channels (in and out) for minimal filtering on an odd side: the transforms' share
/// grows as the channels shrink. `bench --layers --threads 1`, modified, medians of 3: the 7 x 7
/// 128 -> 128 layer's forward 8.95 -> 8.14 ms, its backward 18.2 -> 17.5; the 7 x 7 <-> 14 x 14
/// 32 / 64-channel passes of conv2d_1 1.16 -> 1.27 (forward) and 1.24 -> 1.38 (input gradient).
const ODD_MIN_CHANNELS: usize = 128;

/// The points a tile of one input along an axis (the last of an odd side) needs: those of
/// its first two outputs, `OUTPUT[0]` and `OUTPUT[1]`; the other two lie past the image. In
/// the strided pass, a tile of one output needs the points of `STRIDED_OUTPUT[0]`: the same.
const ONE_INPUT: [bool; 5] = points_of(&[OUTPUT[0], OUTPUT[1]]);

const _: () = {
    let strided = points_of(&[&STRIDED_OUTPUT[0]]);
    let mut p = 0;
    while p < 5 {
        assert!(strided[p] == ONE_INPUT[p], "the strided pass's one-output tiles need other points");
        p += 1;
    }
};

/// Whether any of `outputs` adds each of the 5 points.
const fn points_of(outputs: &[&[usize]]) -> [bool; 5] {
    let (mut any, mut o) = ([false; 5], 0);
    while o < outputs.len() {
        let mut i = 0;
        while i < outputs[o].len() {
            any[outputs[o][i]] = true;
            i += 1;
        }
        o += 1;
    }
    any
}

/// The tile rows and columns of a block of `rows x tw` tiles that point (pr, pc) is needed
/// for: all, less the last row where the block ends on an odd side's one-input row
/// (`edge_row`) and the point needs a second input along the rows, and likewise the last column.
fn point_grid(
    (pr, pc): (usize, usize),
    (rows, tw): (usize, usize),
    (edge_row, edge_col): (bool, bool),
) -> (usize, usize) {
    (rows - usize::from(edge_row && !ONE_INPUT[pr]), tw - usize::from(edge_col && !ONE_INPUT[pc]))
}

/// Each point's row of `M` for tile `t` of the block (`point_products` over `point_grid`):
/// row 0, unused, where the point skipped the tile.
fn point_rows(t: usize, (rows, tw): (usize, usize), edges: (bool, bool)) -> [usize; 25] {
    let (r, c) = (t / tw, t % tw);
    core::array::from_fn(|p| {
        let (rows_p, cols_p) = point_grid((p / 5, p % 5), (rows, tw), edges);
        if r < rows_p && c < cols_p {
            r * cols_p + c
        } else {
            0
        }
    })
}

/// Whether a block of `rows` tile rows from `r0` ends on a tile of one input (or output) row,
/// and whether the tile columns do: the edges of `point_grid`.
fn block_edges(g: &ConvGeom, r0: usize, rows: usize) -> (bool, bool) {
    (r0 + rows == tile_grid(g).0 && g.h_out % 2 == 1, g.w_out % 2 == 1)
}

/// Tile rows and tiles per row: 2 x 2 inputs each.
fn tile_grid(g: &ConvGeom) -> (usize, usize) {
    (g.h_out.div_ceil(2), g.w_out.div_ceil(2))
}

/// Rows and columns of a padded image of `per_tile` rows and columns per tile and one more:
/// the forward's input (2: a row and a column of zeros before and after) or the strided pass's
/// image (4: `conv_direct::padded_dims` where the output's sides are even; past an odd side,
/// zeros that only the points its last tiles skip read).
fn padded_dims(g: &ConvGeom, per_tile: usize) -> (usize, usize) {
    let (th, tw) = tile_grid(g);
    (per_tile * th + 1, per_tile * tw + 1)
}

/// Floats of a padded image (`padded_dims(g, per_tile)`) of `channels`, where `applies`.
fn padded_size(g: &ConvGeom, per_tile: usize, channels: usize) -> usize {
    if applies(g) {
        let (hp, wp) = padded_dims(g, per_tile);
        size(&[hp, wp, channels])
    } else {
        0
    }
}

/// Floats of the padded input (`pad_input`), where `applies`.
pub fn padded_len(g: &ConvGeom) -> usize {
    padded_size(g, 2, g.c_out)
}

/// xp <- x placed in zeros at (1, 1), `padded_dims(g, 2)` large.
pub fn pad_input(g: &ConvGeom, x: &[f32], xp: &mut [f32]) {
    let gx = ConvGeom { h_in: g.h_out, w_in: g.w_out, c_in: g.c_out, pad_top: 1, pad_left: 1, ..*g };
    crate::conv_direct::pad_input_to(&gx, padded_dims(g, 2), x, &mut xp[..padded_len(g)]);
}

/// Floats of a plane of `tiles` tiles of `width` channels in a work area (`V`, `M`): a cache
/// line more than the tiles, so that the 16-25 planes a transform reads or writes at once do
/// not share a few L1 sets (planes of 14 KB would start every 2 KB of the 4 KB set cycle).
fn plane_len(tiles: usize, width: usize) -> usize {
    tiles * width + 16
}

/// Tiles per block: `BLOCK_ROWS` tile rows at least (`micro::block_rows`).
fn block_tiles(g: &ConvGeom) -> usize {
    let tw = tile_grid(g).1;
    micro::block_rows(BLOCK_ROWS, tw) * tw
}

/// Floats of the transformed kernel `U [16][C][F]`.
pub fn weights_len(g: &ConvGeom) -> usize {
    size(&[16, g.c_out, g.c_in])
}

/// Floats of `forward`'s work area (`V [16][tiles][C]`, then `M [25][tiles][F]`), where
/// `applies`.
pub fn work_len(g: &ConvGeom) -> usize {
    if applies(g) {
        16 * plane_len(block_tiles(g), g.c_out) + 25 * plane_len(block_tiles(g), g.c_in)
    } else {
        0
    }
}

/// U[4 kr + kc][c][f] (at `micro::blocked_at`) = sum of w[a][b][f][c] over a in `TAPS[kr]`, b in
/// `TAPS[kc]`, in f64, rounded once. Overwrites `u` (`weights_len`).
pub fn transform_weights(g: &ConvGeom, w: &[f32], u: &mut [f32]) {
    assert!(applies(g) && w.len() == g.w_len() && u.len() >= weights_len(g), "winograd_transpose: kernel lengths");
    let (f_n, c_n) = (g.c_in, g.c_out);
    // A plane per task, in blocks of 16 x 16 (both counts are multiples of 16): summed along c,
    // contiguous in w, then written along f, contiguous in u. The 128 x 128 kernel, minimum
    // of 100 interleaved tries: 184 us on 1 thread and 109 on 2, where element by element
    // through the transpose, one plane after another, took 308.
    u[..weights_len(g)].par_chunks_exact_mut(c_n * f_n).enumerate().for_each(|(plane, up)| {
        // SAFETY: `applies` makes both counts multiples of 16, so every block is inside `up`.
        dispatch!(transposed_plane(w: &[f32], f_n: usize, c_n: usize, plane: usize, up: &mut [f32]))
    });
}

/// Plane `plane` of `transform_weights`: each 16 x 16 block's sums along c, then stored
/// transposed (`Simd::store_transposed16`).
/// # Safety
/// `S`'s instructions exist; `f_n` and `c_n` are multiples of 16 and `up` holds `c_n x f_n`.
#[inline(always)]
unsafe fn transposed_plane<S: Simd>(w: &[f32], f_n: usize, c_n: usize, plane: usize, up: &mut [f32]) {
    assert_eq!(up.len(), c_n * f_n, "winograd_transpose: kernel plane length");
    for f0 in (0..f_n).step_by(16) {
        for c0 in (0..c_n).step_by(16) {
            let mut block = [[0.0f32; 16]; 16];
            for (f, row) in block.iter_mut().enumerate() {
                kernel_sums(w, c_n * f_n, plane, (f0 + f) * c_n + c0, row);
            }
            let at = micro::blocked_at(S::PATH, TILE_VECTORS, (c0, f0), (c_n, f_n));
            S::store_transposed16(&block, up.as_mut_ptr().add(at), micro::column_block(S::PATH, f_n, TILE_VECTORS));
        }
    }
}

/// out[j] = the kernel sum `kernel` (w's taps a in `TAPS[kernel / 4]`, b in `TAPS[kernel % 4]`)
/// at element i0 + j of a tap's plane of `plane` floats, in f64 in that order, rounded once:
/// both passes' transformed kernels, in runs of 16 (`out`'s length is a multiple: channels in
/// sixteens). `strided_plane` inlines it on the path's vectors: on the baseline's two f64
/// lanes the 128 x 128 strided kernel took 228-250 us on one thread, on AVX-512 78-79 (2
/// threads: 110-140 -> 38-40); `transposed_plane` likewise.
#[inline(always)]
fn kernel_sums(w: &[f32], plane: usize, kernel: usize, i0: usize, out: &mut [f32]) {
    // A partial run would be skipped, not summed.
    assert!(out.len().is_multiple_of(16), "winograd_transpose: kernel sums in runs of 16");
    for (out, at) in out.chunks_exact_mut(16).zip((i0..).step_by(16)) {
        let mut sums = [0.0f64; 16];
        for &a in TAPS[kernel / 4] {
            for &b in TAPS[kernel % 4] {
                let w: &[f32; 16] = w[(a * 3 + b) * plane + at..][..16].try_into().expect("a run of 16");
                sums.iter_mut().zip(w).for_each(|(s, &v)| *s += f64::from(v));
            }
        }
        out.iter_mut().zip(&sums).for_each(|(o, &s)| *o = s as f32);
    }
}

/// y = the transposed convolution of one image whose input is already padded (`pad_input`),
/// `u` from `transform_weights`, `work` of `work_len` floats, plus the bias (added last), then
/// ReLU, where `finish` says. Overwrites `y`.
pub fn forward(g: &ConvGeom, xp: &[f32], u: &[f32], finish: Finish, y: &mut [f32], work: &mut [f32]) {
    assert!(applies(g), "winograd_transpose: a 3 x 3 stride-2 transposed convolution with channels in sixteens");
    assert!(xp.len() >= padded_len(g) && u.len() >= weights_len(g) && y.len() == g.x_len());
    assert!(work.len() >= work_len(g), "winograd_transpose: work length");
    assert!(finish.bias.is_none_or(|b| b.len() == g.c_in), "winograd_transpose: bias length");
    dispatch!(forward_with(g: &ConvGeom, xp: &[f32], u: &[f32], finish: Finish, y: &mut [f32], work: &mut [f32]))
}

/// # Safety
/// `S`'s instructions exist; the lengths are those `forward` checks: every window of every
/// tile is inside the padded image, every block inside `work`, every output inside `y`.
#[inline(always)]
unsafe fn forward_with<S: Simd>(g: &ConvGeom, xp: &[f32], u: &[f32], finish: Finish, y: &mut [f32], work: &mut [f32]) {
    let (f_n, c_n) = (g.c_in, g.c_out);
    let ((th, tw), block) = (tile_grid(g), block_tiles(g));
    let (v, m) = work.split_at_mut(16 * plane_len(block, c_n));
    let (v, m, xp, u, yp) = (v.as_mut_ptr(), m.as_mut_ptr(), xp.as_ptr(), u.as_ptr(), y.as_mut_ptr());
    for r0 in (0..th).step_by(block / tw) {
        let rows = (block / tw).min(th - r0);
        let tiles = rows * tw;
        let edges = block_edges(g, r0, rows);
        transform_input::<S>(g, xp, r0, tiles, v);
        // M[p] = V[value(p)] U[kernel(p)]: each element one chain over C in order.
        point_products::<S>((v, u, m), plane_len(tiles, c_n), (rows, tw), (c_n, f_n), |pr, pc| {
            let grid = point_grid((pr, pc), (rows, tw), edges);
            (VALUE[pr] * 4 + VALUE[pc], KERNEL[pr] * 4 + KERNEL[pc], grid)
        });
        // The 4 x 4 outputs of each tile: sums of points along columns, then along rows.
        for t in 0..tiles {
            let ((oh, ow), (out_rows, out_cols)) = output_tile(4, (r0 * tw + t, tw), (g.h_in, g.w_in));
            if t + 1 < tiles {
                prefetch_tile_outputs(yp, output_tile(4, (r0 * tw + t + 1, tw), (g.h_in, g.w_in)), (g.w_in, f_n));
            }
            let rows_of = point_rows(t, (rows, tw), edges);
            for f0 in (0..f_n).step_by(S::LANES) {
                let bias = finish.bias.map(|b| S::load(b.as_ptr().add(f0)));
                let point = |p: usize| S::load(m.add(p * plane_len(tiles, f_n) + rows_of[p] * f_n + f0));
                // Point row pr's sums along columns (`OUTPUT` along columns).
                let cols = |pr: usize| {
                    let p = 5 * pr;
                    let m1 = point(p + 1);
                    [S::add(point(p), m1), point(p + 3), S::add(m1, point(p + 2)), point(p + 4)]
                };
                let add = |a: [S::V; 4], b: [S::V; 4]| {
                    [S::add(a[0], b[0]), S::add(a[1], b[1]), S::add(a[2], b[2]), S::add(a[3], b[3])]
                };
                // Along rows, as `OUTPUT`: rows 0 and 2 share point row 1.
                let row = |or: usize| yp.add(((oh + or) * g.w_in + ow) * f_n + f0);
                let c1 = cols(1);
                store_row::<S>(row(0), f_n, add(cols(0), c1), out_cols, (finish, bias));
                store_row::<S>(row(1), f_n, cols(3), out_cols, (finish, bias));
                if out_rows > 2 {
                    store_row::<S>(row(2), f_n, add(c1, cols(2)), out_cols, (finish, bias));
                    store_row::<S>(row(3), f_n, cols(4), out_cols, (finish, bias));
                }
            }
        }
    }
}

/// Stores the first `cols` of an output row's 4 vectors `v` at `at` (`f_n` apart), each
/// finished by `finish` with the bias's vector `bias`. A function, not a closure: the closure
/// was compiled out of line, its intrinsics as calls.
/// # Safety
/// `S`'s instructions exist; `at` holds `cols` pixels of `f_n` channels.
#[inline(always)]
unsafe fn store_row<S: Simd>(
    at: *mut f32,
    f_n: usize,
    v: [S::V; 4],
    cols: usize,
    (finish, bias): (Finish, Option<S::V>),
) {
    let v = [
        finish.vector::<S>(v[0], bias),
        finish.vector::<S>(v[1], bias),
        finish.vector::<S>(v[2], bias),
        finish.vector::<S>(v[3], bias),
    ];
    // A constant count for whole tiles, so that their stores unroll.
    if cols == 4 {
        for (oc, &v) in v.iter().enumerate() {
            S::store(at.add(oc * f_n), v);
        }
    } else {
        for (oc, &v) in v.iter().enumerate().take(cols) {
            S::store(at.add(oc * f_n), v);
        }
    }
}

/// Where tile `t` (of `tw` a row) puts its `side x side` outputs in an `h x w` output: its
/// first output's row and column, and how many of its rows and columns lie inside.
fn output_tile(side: usize, (t, tw): (usize, usize), (h, w): (usize, usize)) -> ((usize, usize), (usize, usize)) {
    let (oh, ow) = (side * (t / tw), side * (t % tw));
    ((oh, ow), ((h - oh).min(side), (w - ow).min(side)))
}

/// Asks for the lines of a tile's outputs (`output_tile`) in an output image `w` pixels wide
/// of `c` channels, from `y`, before they are written. The output is not in cache, and each
/// store that waited for its line stalled the output transform: 14 x 14 128 -> 64 at batch
/// 64, 1 thread, forward 13.8 -> 12.3 ms with the next tile's lines asked for (the strided
/// pass's 2 x 2 outputs measured no gain).
fn prefetch_tile_outputs(
    y: *const f32,
    ((oh, ow), (rows, cols)): ((usize, usize), (usize, usize)),
    (w, c): (usize, usize),
) {
    for or in 0..rows {
        simd::prefetch_rows(y, (cols * c).div_ceil(16), 16, ((oh + or) * w + ow) * c);
    }
}

/// M[p] = V[vp] U[up] for the 25 points p = 5 pr + pc, `(vp, up, (rows_p, cols_p)) = planes(pr,
/// pc)`, over the block's first `rows_p` tile rows and `cols_p` tile columns: `V` planes of
/// `rows x tw` tiles by `k` (`v_plane` floats apart: the block's, or the whole image's where
/// the block is part of it), `U` planes of `k x n`, `M` planes of as many tiles by `n`, each
/// point's tiles in its grid's row-major order, on the register tiles.
/// # Safety
/// `S`'s instructions exist; every plane `planes` names is inside `v` and `u`, and 25 planes
/// inside `m`; its grid is inside `rows x tw`.
#[inline(always)]
unsafe fn point_products<S: Simd>(
    (v, u, m): (*const f32, *const f32, *mut f32),
    v_plane: usize,
    (rows, tw): (usize, usize),
    (k, n): (usize, usize),
    planes: impl Fn(usize, usize) -> (usize, usize, (usize, usize)),
) {
    let (path, tiles) = (kernel_path(), rows * tw);
    for p in 0..25 {
        let (vp, up, (rows_p, cols_p)) = planes(p / 5, p % 5);
        let (vx, ux, mx) = (v.add(vp * v_plane), u.add(up * k * n), m.add(p * plane_len(tiles, n)));
        // Whole tile rows run on, evenly spaced; else runs of `cols_p` tiles a row.
        let (count, run) = (rows_p * cols_p, if cols_p == tw { rows_p * tw } else { cols_p });
        let tile = |j: usize| if cols_p == tw { j } else { j / cols_p * tw + j % cols_p };
        for (c0, nv) in channel_blocks_upto(n, path, TILE_VECTORS) {
            let (u0, u_k) = micro::column_run(S::PATH, TILE_VECTORS, c0, (k, n));
            each_tile!(S, nv, count, run, k, |j: usize| vx.add(tile(j) * k), |t0, M, NV, rows| {
                let mut acc = Tile::<S, M, NV>::zero();
                acc.run(rows, 1, ux.add(u0), u_k, k);
                acc.store(mx.add(t0 * n + c0), n);
            });
        }
    }
}

/// The 1-D values of a window (d0, d1, d2): d0 - d1, d1, d2 - d1, d2.
#[inline(always)]
unsafe fn values<S: Simd>(d: [S::V; 3]) -> [S::V; 4] {
    [S::sub(d[0], d[1]), d[1], S::sub(d[2], d[1]), d[2]]
}

/// V[4 a + b][t][c] = the values along rows (a) of the values along columns (b) of the 3 x 3
/// window of each of the `tiles` tiles from tile row `r0` of the padded input `xp`.
/// # Safety
/// As `forward_with`.
#[inline(always)]
unsafe fn transform_input<S: Simd>(g: &ConvGeom, xp: *const f32, r0: usize, tiles: usize, v: *mut f32) {
    let (c_n, wp, tw) = (g.c_out, padded_dims(g, 2).1, tile_grid(g).1);
    for t in 0..tiles {
        let corner = xp.add((2 * (r0 + t / tw) * wp + 2 * (t % tw)) * c_n);
        for c0 in (0..c_n).step_by(S::LANES) {
            if t + 1 < tiles {
                simd::prefetch_rows(v, 16, plane_len(tiles, c_n), (t + 1) * c_n + c0);
            }
            let rows: [[S::V; 4]; 3] = core::array::from_fn(|r| {
                values::<S>(core::array::from_fn(|c| S::load(corner.add((r * wp + c) * c_n + c0))))
            });
            for b in 0..4 {
                let col = values::<S>([rows[0][b], rows[1][b], rows[2][b]]);
                for (a, &val) in col.iter().enumerate() {
                    S::store(v.add((a * 4 + b) * plane_len(tiles, c_n) + t * c_n + c0), val);
                }
            }
        }
    }
}

// The adjoint side: the layer's input gradient, which is the Conv2D `g`'s forward pass (a
// stride-2 correlation of an image of `g.h_in x g.w_in`, F channels, into `g.h_out x g.w_out`,
// C channels). Along one axis output i reads x[2i], x[2i + 1], x[2i + 2] with W0, W1, W2. A
// tile of two outputs reads five inputs d0..d4 (from x[4t]): the even ones e = (d0, d2, d4)
// with W0 and W2, a 2-tap correlation that F(2, 2) computes with 3 products (m0 = (d0 - d2)
// W0, m1 = d2 (W0 + W2), m2 = (d4 - d2) W2; outputs m0 + m1 and m1 + m2), the odd ones with
// W1 (m3 = d1 W1, m4 = d3 W1; outputs + m3 and + m4): again 25 products per 2 x 2 outputs
// where the direct pass takes 36, and the same four kernel sums.

/// Which of the four 1-D kernel sums (`TAPS`) each of the strided pass's 5 points multiplies by.
const STRIDED_KERNEL: [usize; 5] = [2, 1, 0, 3, 3];

/// The points each of a strided tile's two outputs adds: the sums that `strided_with` spells
/// out.
const STRIDED_OUTPUT: [[usize; 3]; 2] = [[0, 1, 3], [1, 2, 4]];

/// Tile rows per block of the strided pass: its `M` holds 25 planes of C channels.
const STRIDED_BLOCK_ROWS: usize = 2;

/// Floats of the strided pass's transformed kernel `U [16][F][C]`.
pub fn strided_weights_len(g: &ConvGeom) -> usize {
    size(&[16, g.c_in, g.c_out])
}

/// Tiles per block of the strided pass: `STRIDED_BLOCK_ROWS` tile rows at least.
fn strided_block_tiles(g: &ConvGeom) -> usize {
    let tw = tile_grid(g).1;
    micro::block_rows(STRIDED_BLOCK_ROWS, tw) * tw
}

/// Floats of the strided pass's padded image (`strided_pad_input`), where `applies`.
pub fn strided_padded_len(g: &ConvGeom) -> usize {
    padded_size(g, 4, g.c_in)
}

/// xp <- x placed in zeros (`padded_dims(g, 4)` large) for `strided` and
/// `strided_weight_grad_acc`.
pub fn strided_pad_input(g: &ConvGeom, x: &[f32], xp: &mut [f32]) {
    conv_direct::pad_input_to(g, padded_dims(g, 4), x, &mut xp[..strided_padded_len(g)]);
}

/// Floats of `strided`'s work area (`V [25][tiles][F]`, then `M [25][tiles][C]`), where
/// `applies`.
pub fn strided_work_len(g: &ConvGeom) -> usize {
    if applies(g) {
        25 * (plane_len(strided_block_tiles(g), g.c_in) + plane_len(strided_block_tiles(g), g.c_out))
    } else {
        0
    }
}

/// U[4 kr + kc][f][c] (at `micro::blocked_at`) = sum of w[a][b][f][c] over a in `TAPS[kr]`, b in
/// `TAPS[kc]`, in f64, rounded once. Overwrites `u` (`strided_weights_len`).
pub fn transform_weights_strided(g: &ConvGeom, w: &[f32], u: &mut [f32]) {
    assert!(
        applies(g) && w.len() == g.w_len() && u.len() >= strided_weights_len(g),
        "winograd_transpose: kernel lengths"
    );
    let c_n = g.c_out;
    // A plane per task: the pass runs this once, before its tasks.
    u[..strided_weights_len(g)]
        .par_chunks_exact_mut(g.c_in * c_n)
        .enumerate()
        .for_each(|(kernel, up)| dispatch!(strided_plane(w: &[f32], c_n: usize, kernel: usize, up: &mut [f32])));
}

/// Plane `kernel` of `transform_weights_strided` (`c_n` output channels): runs of 16 along c,
/// contiguous in w and in u.
/// # Safety
/// `S`'s instructions exist (the sums are compiled for its vectors).
#[inline(always)]
unsafe fn strided_plane<S: Simd>(w: &[f32], c_n: usize, kernel: usize, up: &mut [f32]) {
    let (plane, f_n) = (up.len(), up.len() / c_n);
    for f in 0..f_n {
        for c0 in (0..c_n).step_by(16) {
            let at = micro::blocked_at(S::PATH, TILE_VECTORS, (f, c0), (f_n, c_n));
            kernel_sums(w, plane, kernel, f * c_n + c0, &mut up[at..at + 16]);
        }
    }
}

/// What `strided` reads: the image padded by `strided_pad_input`, or its values `V` that
/// `strided_weight_grad_acc` left at the start of its work area (`strided_values_len` floats;
/// where `weight_grad_applies`), which spares transforming the image twice: the same products,
/// so the same bits.
#[derive(Clone, Copy)]
pub enum StridedInput<'a> {
    Padded(&'a [f32]),
    Values(&'a [f32]),
}

/// y = the Conv2D `g`'s forward pass (stride 2: a transposed layer's input gradient) of one
/// image, `u` from `transform_weights_strided`, `work` of `strided_work_len` floats (from its
/// values: `strided_values_work_len`); plus the bias `b` (its sum last) where given.
/// Overwrites `y`.
pub fn strided(g: &ConvGeom, input: StridedInput, u: &[f32], b: Option<&[f32]>, y: &mut [f32], work: &mut [f32]) {
    assert!(applies(g), "winograd_transpose: a 3 x 3 stride-2 convolution with channels in sixteens");
    let work_len = match input {
        StridedInput::Padded(xp) => {
            assert!(xp.len() >= strided_padded_len(g), "winograd_transpose: padded image length");
            strided_work_len(g)
        }
        StridedInput::Values(v) => {
            assert!(weight_grad_applies(g), "winograd_transpose: values only where the weight gradient runs");
            assert!(v.len() >= strided_values_len(g), "winograd_transpose: values length");
            strided_values_work_len(g)
        }
    };
    assert!(u.len() >= strided_weights_len(g) && y.len() == g.y_len());
    assert!(work.len() >= work_len, "winograd_transpose: work length");
    assert!(b.is_none_or(|b| b.len() == g.c_out), "winograd_transpose: bias length");
    dispatch!(strided_with(g: &ConvGeom, input: StridedInput, u: &[f32], b: Option<&[f32]>, y: &mut [f32], work: &mut [f32]))
}

/// Floats of the image's values `V [25][tiles][F]` that `strided_weight_grad_acc` leaves at
/// the start of its work area, where `weight_grad_applies`.
pub fn strided_values_len(g: &ConvGeom) -> usize {
    if weight_grad_applies(g) {
        let (th, tw) = tile_grid(g);
        25 * plane_len(th * tw, g.c_in)
    } else {
        0
    }
}

/// Floats of `strided`'s work area from the values: the products `M` of a block.
fn strided_values_work_len(g: &ConvGeom) -> usize {
    25 * plane_len(strided_block_tiles(g), g.c_out)
}

/// # Safety
/// `S`'s instructions exist; the lengths are those `strided` checks: every window of
/// every tile is inside the padded image (`padded_dims(g, 4)`) or every tile inside the values,
/// every block inside `work`, every output stored inside `y`.
#[inline(always)]
unsafe fn strided_with<S: Simd>(
    g: &ConvGeom,
    input: StridedInput,
    u: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    work: &mut [f32],
) {
    let (f_n, c_n) = (g.c_in, g.c_out);
    let ((th, tw), block) = (tile_grid(g), strided_block_tiles(g));
    // The blocks' own values where the pass transforms the padded image.
    let own = match input {
        StridedInput::Padded(_) => 25 * plane_len(block, f_n),
        StridedInput::Values(_) => 0,
    };
    let (v, m) = work.split_at_mut(own);
    let (v, m, u, yp) = (v.as_mut_ptr(), m.as_mut_ptr(), u.as_ptr(), y.as_mut_ptr());
    for r0 in (0..th).step_by(block / tw) {
        let rows = (block / tw).min(th - r0);
        let (tiles, edges) = (rows * tw, block_edges(g, r0, rows));
        let (v, v_plane) = match input {
            StridedInput::Padded(xp) => {
                strided_transform_input::<S>(g, xp.as_ptr(), r0, tiles, v);
                (v.cast_const(), plane_len(tiles, f_n))
            }
            StridedInput::Values(values) => (values.as_ptr().add(r0 * tw * f_n), plane_len(th * tw, f_n)),
        };
        // M[p] = V[p] U[kernel(p)]: each element one chain over F in order.
        point_products::<S>((v, u, m), v_plane, (rows, tw), (f_n, c_n), |pr, pc| {
            (pr * 5 + pc, STRIDED_KERNEL[pr] * 4 + STRIDED_KERNEL[pc], point_grid((pr, pc), (rows, tw), edges))
        });
        // The 2 x 2 outputs of each tile (those inside y): each the sum of 3 x 3 points, along
        // columns first.
        for t in 0..tiles {
            let ((oh, ow), (out_rows, out_cols)) = output_tile(2, (r0 * tw + t, tw), (g.h_out, g.w_out));
            let rows_of = point_rows(t, (rows, tw), edges);
            for c0 in (0..c_n).step_by(S::LANES) {
                let point = |p: usize| S::load(m.add(p * plane_len(tiles, c_n) + rows_of[p] * c_n + c0));
                // Point row pr's two sums along columns (`STRIDED_OUTPUT` along columns).
                let cols = |pr: usize| {
                    let p = 5 * pr;
                    let m1 = point(p + 1);
                    [S::add(S::add(point(p), m1), point(p + 3)), S::add(S::add(m1, point(p + 2)), point(p + 4))]
                };
                let bias = b.map(|b| S::load(b.as_ptr().add(c0)));
                let store = |or: usize, [i, j, k]: [[S::V; 2]; 3]| {
                    let at = yp.add(((oh + or) * g.w_out + ow) * c_n + c0);
                    for oc in 0..out_cols {
                        let out = S::add(S::add(i[oc], j[oc]), k[oc]);
                        S::store(at.add(oc * c_n), bias.map_or(out, |bias| S::add(out, bias)));
                    }
                };
                // Along rows, as `STRIDED_OUTPUT`: both rows add point row 1.
                let c1 = cols(1);
                store(0, [cols(0), c1, cols(3)]);
                if out_rows == 2 {
                    store(1, [c1, cols(2), cols(4)]);
                }
            }
        }
    }
}

/// The 1-D values of a strided window (d0, .., d4): d0 - d2, d2, d4 - d2, d1, d3.
#[inline(always)]
unsafe fn strided_values<S: Simd>(d: [S::V; 5]) -> [S::V; 5] {
    [S::sub(d[0], d[2]), d[2], S::sub(d[4], d[2]), d[1], d[3]]
}

/// V[5 a + b][t][f] = the values along rows (a) of the values along columns (b) of the 5 x 5
/// window of each of the `tiles` tiles from tile row `r0` of the padded image `xp`.
/// # Safety
/// As `strided_with`.
#[inline(always)]
unsafe fn strided_transform_input<S: Simd>(g: &ConvGeom, xp: *const f32, r0: usize, tiles: usize, v: *mut f32) {
    let (f_n, wp, tw) = (g.c_in, padded_dims(g, 4).1, tile_grid(g).1);
    for t in 0..tiles {
        let corner = xp.add((4 * (r0 + t / tw) * wp + 4 * (t % tw)) * f_n);
        for f0 in (0..f_n).step_by(S::LANES) {
            if t + 1 < tiles {
                simd::prefetch_rows(v, 25, plane_len(tiles, f_n), (t + 1) * f_n + f0);
            }
            let rows: [[S::V; 5]; 5] = core::array::from_fn(|r| {
                strided_values::<S>(core::array::from_fn(|c| S::load(corner.add((r * wp + c) * f_n + f0))))
            });
            for b in 0..5 {
                let col = strided_values::<S>([rows[0][b], rows[1][b], rows[2][b], rows[3][b], rows[4][b]]);
                for (a, &val) in col.iter().enumerate() {
                    S::store(v.add((a * 5 + b) * plane_len(tiles, f_n) + t * f_n + f0), val);
                }
            }
        }
    }
}

// Its weight gradient: the strided pass is linear in the four kernel sums, so the gradient of
// sum U[kernel(p)] is the sum over the tiles of each point's input value times the output
// gradients that point adds to (`STRIDED_GRADIENT`), and the gradient of a tap the sum
// over the points whose kernel sum holds it (`STRIDED_TAP`): 25 products per tile where the
// direct pass takes 36.

/// The points whose kernel sums hold each tap (W0: W0 and W0 + W2; W1; W2: W0 + W2 and W2).
const STRIDED_TAP: [[usize; 2]; 3] = [[0, 1], [3, 4], [1, 2]];

/// Whether `strided_weight_grad_acc` runs `g`: `applies`, in whole tiles (even sides). On an
/// odd side the direct kernel is faster: a 7 x 7 image has 16 tiles, so each point's product
/// sums 16 terms between loads and stores of its sums (7 x 7 128 -> 128, 1 thread, 32 images:
/// 159-162 us per image against the direct 138-141).
pub fn weight_grad_applies(g: &ConvGeom) -> bool {
    applies(g) && g.h_out.is_multiple_of(2) && g.w_out.is_multiple_of(2)
}

/// Floats of `strided_weight_grad_acc`'s sums `S [25][F][C]`, where `weight_grad_applies`.
pub fn strided_weight_sums_len(g: &ConvGeom) -> usize {
    if weight_grad_applies(g) {
        size(&[25, g.c_in, g.c_out])
    } else {
        0
    }
}

/// Which of the three output-gradient sums (y0, y0 + y1, y1) each point adds along an axis.
const STRIDED_GRADIENT: [usize; 5] = [0, 1, 2, 0, 2];

/// Floats of `strided_weight_grad_acc`'s work area: the image's input values `V
/// [25][tiles][F]` (as `strided`'s, `strided_values_len`), then its 9 output-gradient sums `D
/// [9][tiles][C]` or, afterwards, `strided`'s work area from the values, where
/// `weight_grad_applies`.
pub fn strided_weight_work_len(g: &ConvGeom) -> usize {
    if weight_grad_applies(g) {
        let (th, tw) = tile_grid(g);
        strided_values_len(g) + (9 * plane_len(th * tw, g.c_out)).max(strided_values_work_len(g))
    } else {
        0
    }
}

/// s[p][f][c] += the sum over the image's tiles t of V[p][t][f] D[p][t][c]: V the strided
/// pass's input values of `xp` (padded by `strided_pad_input`), D the sum of the output
/// gradients of `dy` that point p adds to. `strided_weight_grad_finish` turns the sums of
/// every image into the kernel gradient. V stays at the start of `work` for `strided`
/// (`StridedInput::Values`).
pub fn strided_weight_grad_acc(g: &ConvGeom, xp: &[f32], dy: &[f32], s: &mut [f32], work: &mut [f32]) {
    assert!(
        weight_grad_applies(g),
        "winograd_transpose: a 3 x 3 stride-2 convolution, even sides, channels in sixteens"
    );
    assert!(xp.len() >= strided_padded_len(g) && dy.len() == g.y_len() && s.len() >= strided_weight_sums_len(g));
    assert!(work.len() >= strided_weight_work_len(g), "winograd_transpose: work length");
    dispatch!(strided_weight_grad_with(g: &ConvGeom, xp: &[f32], dy: &[f32], s: &mut [f32], work: &mut [f32]))
}

/// # Safety
/// As `strided_with`, with `dy` the image's output gradient and `s` the sums.
#[inline(always)]
unsafe fn strided_weight_grad_with<S: Simd>(g: &ConvGeom, xp: &[f32], dy: &[f32], s: &mut [f32], work: &mut [f32]) {
    let (f_n, c_n) = (g.c_in, g.c_out);
    let (th, tw) = tile_grid(g);
    let tiles = th * tw;
    let (v, d) = work.split_at_mut(25 * plane_len(tiles, f_n));
    let (v, d, dy, sp) = (v.as_mut_ptr(), d.as_mut_ptr(), dy.as_ptr(), s.as_mut_ptr());
    strided_transform_input::<S>(g, xp.as_ptr(), 0, tiles, v);
    // D[3 a + b][t][c]: sum a along rows of sum b along columns of tile t's 2 x 2 block.
    for t in 0..tiles {
        let (oh, ow) = (2 * (t / tw), 2 * (t % tw));
        for c0 in (0..c_n).step_by(S::LANES) {
            if t + 1 < tiles {
                simd::prefetch_rows(d, 9, plane_len(tiles, c_n), (t + 1) * c_n + c0);
            }
            let y: [[S::V; 2]; 2] = core::array::from_fn(|i| {
                core::array::from_fn(|j| S::load(dy.add(((oh + i) * g.w_out + ow + j) * c_n + c0)))
            });
            let sums = |y0: S::V, y1: S::V| [y0, S::add(y0, y1), y1];
            let (r0, r1) = (sums(y[0][0], y[0][1]), sums(y[1][0], y[1][1]));
            for b in 0..3 {
                let col = sums(r0[b], r1[b]);
                for (a, &val) in col.iter().enumerate() {
                    S::store(d.add((3 * a + b) * plane_len(tiles, c_n) + t * c_n + c0), val);
                }
            }
        }
    }
    let gemm_path = kernel_path().for_channels(c_n);
    for p in 0..25 {
        let (pr, pc) = (p / 5, p % 5);
        // s[p] += Vᵀ D: rows f, the tiles along the sum, in order.
        let dx = d.add((3 * STRIDED_GRADIENT[pr] + STRIDED_GRADIENT[pc]) * plane_len(tiles, c_n)).cast_const();
        let (vx, sx) = (v.add(p * plane_len(tiles, f_n)).cast_const(), sp.add(p * f_n * c_n));
        for (c0, nv) in channel_blocks(c_n, gemm_path) {
            each_tile!(S, nv, f_n, f_n, 1, |f: usize| vx.add(f), |f0, M, NV, rows| {
                let at = sx.add(f0 * c_n + c0);
                Tile::<S, M, NV>::prefetch(at, c_n);
                let mut acc = Tile::<S, M, NV>::zero();
                acc.run(rows, f_n, dx.add(c0), c_n, tiles);
                acc.add_to(at, c_n);
            });
        }
    }
}

/// dw[a][b][f][c] = the sum of s[pr][pc][f][c] over pr in `STRIDED_TAP[a]`, pc in
/// `STRIDED_TAP[b]`, in f64, rounded once: the kernel gradient from the sums of
/// `strided_weight_grad_acc`. Overwrites `dw` (`w_len`).
pub fn strided_weight_grad_finish(g: &ConvGeom, s: &[f32], dw: &mut [f32]) {
    assert!(
        weight_grad_applies(g) && s.len() >= strided_weight_sums_len(g) && dw.len() == g.w_len(),
        "winograd_transpose: kernel lengths"
    );
    let plane = g.c_in * g.c_out;
    let point = |pr: usize, pc: usize| &s[(pr * 5 + pc) * plane..][..plane];
    for (tap, out) in dw.chunks_exact_mut(plane).enumerate() {
        let ([r0, r1], [c0, c1]) = (STRIDED_TAP[tap / 3], STRIDED_TAP[tap % 3]);
        let (a, b, c, d) = (point(r0, c0), point(r0, c1), point(r1, c0), point(r1, c1));
        // Element by element, so that the loop runs on vectors.
        for ((o, (&a, &b)), (&c, &d)) in out.iter_mut().zip(a.iter().zip(b)).zip(c.iter().zip(d)) {
            *o = (f64::from(a) + f64::from(b) + f64::from(c) + f64::from(d)) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::Padding;
    use crate::{conv_direct, conv_transpose2d};

    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// The forward pass against the naive twin (in f64, rounded once): the worst error in
    /// units of the output's largest magnitude. Blocks of whole and partial tile rows.
    #[test]
    fn forward_matches_the_naive_transposed_convolution() {
        for (h, c, f) in [(14, 15, 16), (7, 64, 128), (7, 128, 64)] {
            let g = ConvGeom::transpose(h, h, c, f, 3, 2, Padding::Same).unwrap();
            assert!(!applies(&g), "{g:?}");
        }
        let cases = [(4, 6, 32, 16), (2, 2, 16, 16), (14, 14, 32, 48), (10, 4, 16, 32)];
        // Odd sides: the last tile row or column holds one input.
        let odd = [(7, 7, 128, 128), (3, 6, 128, 256), (6, 5, 256, 128), (1, 1, 128, 128), (9, 3, 128, 128)];
        for (h, w, c, f) in cases.into_iter().chain(odd) {
            let g = ConvGeom::transpose(h, w, c, f, 3, 2, Padding::Same).unwrap();
            assert!(applies(&g), "{g:?}");
            let (x, k) = (data(g.y_len(), 1), data(g.w_len(), 2));
            let mut want = vec![0.0; g.x_len()];
            conv_transpose2d::forward_naive(&g, 1, &x, &k, &vec![0.0; f], &mut want);
            let mut u = vec![0.0; weights_len(&g)];
            transform_weights(&g, &k, &mut u);
            let mut xp = vec![f32::NAN; padded_len(&g)];
            pad_input(&g, &x, &mut xp);
            let (mut y, mut work) = (vec![f32::NAN; g.x_len()], vec![f32::NAN; work_len(&g)]);
            forward(&g, &xp, &u, Finish { bias: None, relu: false }, &mut y, &mut work);
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= 1e-5 * scale, "{h}x{w} {c}->{f}: y[{i}] = {a}, naive {b}");
            }
        }
    }

    /// The largest error of `y` against the f64 sum, in units of the sum of the terms'
    /// magnitudes (the scale of an f32 dot product's rounding error).
    fn worst_error(g: &ConvGeom, x: &[f32], k: &[f32], y: &[f32]) -> f64 {
        let (f_n, c_n) = (g.c_in, g.c_out);
        let (mut sum, mut scale) = (vec![0.0f64; g.x_len()], vec![0.0f64; g.x_len()]);
        for (p, px) in x.chunks_exact(c_n).enumerate() {
            let (i, j) = (p / g.w_out, p % g.w_out);
            for (tap, taps) in k.chunks_exact(f_n * c_n).enumerate() {
                let (oh, ow) = (2 * i + tap / 3, 2 * j + tap % 3);
                if oh >= g.h_in || ow >= g.w_in {
                    continue;
                }
                for (f, row) in taps.chunks_exact(c_n).enumerate() {
                    let at = (oh * g.w_in + ow) * f_n + f;
                    for (&a, &b) in px.iter().zip(row) {
                        let t = f64::from(a) * f64::from(b);
                        sum[at] += t;
                        scale[at] += t.abs();
                    }
                }
            }
        }
        y.iter().zip(sum.iter().zip(&scale)).map(|(&v, (s, m))| (f64::from(v) - s).abs() / m).fold(0.0, f64::max)
    }

    /// Its differences cancel what they add, so against the f64 sum the error must stay within
    /// twice the direct (phase-class) kernel's.
    #[test]
    fn error_is_no_worse_than_twice_the_direct_kernels() {
        for (h, c, f) in [(14, 128, 64), (8, 64, 128), (4, 32, 16), (7, 128, 128)] {
            let g = ConvGeom::transpose(h, h, c, f, 3, 2, Padding::Same).unwrap();
            let (x, k) = (data(g.y_len(), 3), data(g.w_len(), 4));
            let path = conv_direct::strided_path(&g);
            let mut kt = vec![0.0; g.w_len()];
            conv_direct::transpose_taps(&g, path, &k, &mut kt);
            let (hpd, wpd) = conv_direct::strided_dy_dims(&g);
            let (mut direct, mut xs) = (vec![0.0; g.x_len()], vec![0.0; hpd * wpd * c]);
            conv_direct::backward_input_strided(&g, path, &x, &kt, &mut xs, &mut direct, false);
            let mut u = vec![0.0; weights_len(&g)];
            transform_weights(&g, &k, &mut u);
            let mut xp = vec![0.0; padded_len(&g)];
            pad_input(&g, &x, &mut xp);
            let (mut wino, mut work) = (vec![0.0; g.x_len()], vec![0.0; work_len(&g)]);
            forward(&g, &xp, &u, Finish { bias: None, relu: false }, &mut wino, &mut work);
            let (e_direct, e_wino) = (worst_error(&g, &x, &k, &direct), worst_error(&g, &x, &k, &wino));
            eprintln!("{h}x{h} {c}->{f}: direct {e_direct:.2e}, winograd {e_wino:.2e}");
            assert!(e_wino <= 2.0 * e_direct, "{h}x{h} {c}->{f}: {e_wino:e} vs {e_direct:e}");
        }
    }

    /// The strided pass (the Conv2D's forward) against the naive twin, and its error against
    /// the f64 sum within twice the direct kernel's.
    #[test]
    fn strided_matches_the_naive_convolution_within_twice_the_direct_error() {
        let even = [(4, 6, 16, 32), (2, 2, 16, 16), (14, 14, 64, 128), (10, 4, 32, 16), (8, 8, 48, 64)];
        // Odd output sides: the last tile row or column holds one output.
        let odd = [(7, 7, 128, 128), (3, 6, 128, 256), (6, 5, 256, 128), (1, 1, 128, 128), (9, 3, 128, 128)];
        for (h, w, f, c) in even.into_iter().chain(odd) {
            let g = ConvGeom::transpose(h, w, c, f, 3, 2, Padding::Same).unwrap();
            assert!(applies(&g), "{g:?}");
            let (x, k) = (data(g.x_len(), 5), data(g.w_len(), 6));
            let mut u = vec![f32::NAN; strided_weights_len(&g)];
            transform_weights_strided(&g, &k, &mut u);
            let mut xp = vec![f32::NAN; strided_padded_len(&g)];
            strided_pad_input(&g, &x, &mut xp);
            let (mut y, mut work) = (vec![f32::NAN; g.y_len()], vec![f32::NAN; strided_work_len(&g)]);
            strided(&g, StridedInput::Padded(&xp), &u, None, &mut y, &mut work);
            let mut direct = vec![f32::NAN; g.y_len()];
            let mut xd = vec![f32::NAN; conv_direct::padded_len(&g)];
            conv_direct::pad_input(&g, &x, &mut xd);
            conv_direct::forward_tiled(&g, &xd, &k, None, &mut direct);
            let (mut worst_wino, mut worst_direct) = (0.0f64, 0.0f64);
            for (p, (yp, dp)) in y.chunks_exact(c).zip(direct.chunks_exact(c)).enumerate() {
                let (oh, ow) = (p / g.w_out, p % g.w_out);
                for co in 0..c {
                    let (mut sum, mut scale) = (0.0f64, 0.0f64);
                    for tap in 0..9 {
                        let (r, q) = (2 * oh + tap / 3, 2 * ow + tap % 3);
                        if r >= g.h_in || q >= g.w_in {
                            continue;
                        }
                        for ci in 0..f {
                            let t = f64::from(x[(r * g.w_in + q) * f + ci]) * f64::from(k[(tap * f + ci) * c + co]);
                            sum += t;
                            scale += t.abs();
                        }
                    }
                    worst_wino = worst_wino.max((f64::from(yp[co]) - sum).abs() / scale);
                    worst_direct = worst_direct.max((f64::from(dp[co]) - sum).abs() / scale);
                    assert!(
                        (f64::from(yp[co]) - sum).abs() <= 1e-5 * scale,
                        "{h}x{w} {f}->{c}: y[{p}][{co}] = {}, sum {sum}",
                        yp[co]
                    );
                }
            }
            eprintln!("{h}x{w} {f}->{c}: direct {worst_direct:.2e}, winograd {worst_wino:.2e}");
            assert!(
                worst_wino <= 2.0 * worst_direct.max(f64::from(f32::EPSILON)),
                "{h}x{w}: {worst_wino:e} vs {worst_direct:e}"
            );
        }
    }

    /// The weight gradient against the naive twin (f64), its error against the f64 sum within
    /// three times the direct kernel's (measured 1.1-2.1x), over two images.
    #[test]
    fn strided_weight_gradient_matches_the_naive_one() {
        for (h, w, f, c) in [(4, 6, 16, 32), (2, 2, 16, 16), (14, 14, 64, 128), (10, 4, 32, 16)] {
            let g = ConvGeom::transpose(h, w, c, f, 3, 2, Padding::Same).unwrap();
            let (x, dy) = (data(2 * g.x_len(), 7), data(2 * g.y_len(), 8));
            let mut sums = vec![0.0; strided_weight_sums_len(&g)];
            let (mut xp, mut work) =
                (vec![f32::NAN; strided_padded_len(&g)], vec![f32::NAN; strided_weight_work_len(&g)]);
            let mut xd = vec![f32::NAN; conv_direct::padded_len(&g)];
            let mut direct = vec![0.0; g.w_len()];
            let mut u = vec![f32::NAN; strided_weights_len(&g)];
            transform_weights_strided(&g, &data(g.w_len(), 9), &mut u);
            for (xi, dyi) in x.chunks_exact(g.x_len()).zip(dy.chunks_exact(g.y_len())) {
                strided_pad_input(&g, xi, &mut xp);
                strided_weight_grad_acc(&g, &xp, dyi, &mut sums, &mut work);
                // The input gradient from the values left in the work area: the image's bits.
                let (mut from_image, mut from_values) = (vec![f32::NAN; g.y_len()], vec![f32::NAN; g.y_len()]);
                let mut own = vec![f32::NAN; strided_work_len(&g)];
                strided(&g, StridedInput::Padded(&xp), &u, None, &mut from_image, &mut own);
                let (values, rest) = work.split_at_mut(strided_values_len(&g));
                strided(&g, StridedInput::Values(values), &u, None, &mut from_values, rest);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&from_image), bits(&from_values), "{h}x{w} {f}->{c}: strided from the values");
                conv_direct::pad_input(&g, xi, &mut xd);
                conv_direct::weight_grad_tiled_acc(&g, &xd, dyi, &mut direct, false);
            }
            let mut dw = vec![f32::NAN; g.w_len()];
            strided_weight_grad_finish(&g, &sums, &mut dw);
            let (mut worst_wino, mut worst_direct) = (0.0f64, 0.0f64);
            for tap in 0..9 {
                for fi in 0..f {
                    for co in 0..c {
                        let (mut sum, mut scale) = (0.0f64, 0.0f64);
                        for (xi, dyi) in x.chunks_exact(g.x_len()).zip(dy.chunks_exact(g.y_len())) {
                            for (p, dyp) in dyi.chunks_exact(c).enumerate() {
                                let (r, q) = (2 * (p / g.w_out) + tap / 3, 2 * (p % g.w_out) + tap % 3);
                                if r < g.h_in && q < g.w_in {
                                    let t = f64::from(xi[(r * g.w_in + q) * f + fi]) * f64::from(dyp[co]);
                                    sum += t;
                                    scale += t.abs();
                                }
                            }
                        }
                        let at = (tap * f + fi) * c + co;
                        let err = (f64::from(dw[at]) - sum).abs() / scale.max(f64::MIN_POSITIVE);
                        assert!(err <= 1e-5, "{h}x{w} {f}->{c}: dw[{at}] = {}, sum {sum}", dw[at]);
                        worst_wino = worst_wino.max(err);
                        worst_direct =
                            worst_direct.max((f64::from(direct[at]) - sum).abs() / scale.max(f64::MIN_POSITIVE));
                    }
                }
            }
            eprintln!("{h}x{w} {f}->{c}: direct {worst_direct:.2e}, winograd {worst_wino:.2e}");
            // Each sum of a point's products cancels against its neighbour's in the finish; with
            // only the 2 tiles of two 2 x 2 images that cancellation is the whole sum (16x).
            if h * w >= 16 {
                assert!(worst_wino <= 3.0 * worst_direct, "{h}x{w}: {worst_wino:e} vs {worst_direct:e}");
            }
        }
    }
}
