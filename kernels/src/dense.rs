//! Dense (fully connected) layer over a batch: `x [n, c_in]`, `w [c_in, c_out]` (Keras
//! layout), `b [c_out]`, `y [n, c_out]`.
//!
//! Register-tiled kernels (`micro::Tile`, 6 rows x 16 columns) that read their f32 operands
//! in place or from small blocks on the stack (the weight gradient's panel of x, the input
//! gradient's transposed dy), so a pass allocates nothing (a training step must not; see
//! tests/zero_alloc.rs). `forward` and `backward_weight` stream the inner dimension through
//! the tiles; `backward_input` multiplies by wᵀ with the batch along the vector lanes, on
//! AVX-512 through 16 x 16 tiles transposed in registers where w's rows are short, and dot
//! products of dy's and w's rows where they are long (its 32 registers hold a 4 x 4 tile of
//! them). Every output element is summed by one task in a fixed order, whatever the thread
//! count.
//!
//! In bf16 (`crate::bf16`) the operands are rounded into the caller's scratch first, on every
//! core, as bf16 pairs along each pass's reduction axis (input features, output features,
//! batch rows) for `VDPBF16PS`, or as swapped f32 values for the emulation, which then runs
//! the f32 kernels.

use crate::amx;
use crate::bf16::{self, Precision};
use crate::geom::size;
use crate::isa::{dispatch, kernel_path, KernelPath};
use crate::micro::{
    channel_blocks, row_chunks, with_const, with_nv, with_rows, Avx512, Bf16Pairs, Operand, Simd, Strided, Tile,
    Values, MAX_M,
};
use crate::simd;
use rayon::prelude::*;

/// Batch rows per parallel task of `backward_input`'s transposed tiles (its block of dyᵀ), and
/// the fewest per task elsewhere (`rows_per_task`): 2 tasks at batch 64, and each task streams
/// the whole weight matrix (3 MB for the models' 6272 x 128 layers) only once.
const ROWS_PER_TASK: usize = 32;
/// Rows of dW (input features) per parallel task in `backward_weight`.
const W_ROWS_PER_TASK: usize = 64;
/// Batch rows of x per panel of `backward_weight` (`[PANEL_K, W_ROWS_PER_TASK]`, 16 KB on the
/// stack): a task copies its columns of x there, so its tiles' broadcasts read one panel
/// instead of a page per batch row (x's rows are 25 KB apart in the 6272 -> 128 layer), and
/// their runs need not be cut to `KB` for the TLB. Measured on AMD Zen 5, `bench --layers`,
/// that layer's weight gradient: 0.75-0.77 -> 0.62-0.65 ms on one thread.
const PANEL_K: usize = 64;
/// Inner-dimension block of `forward`: a `[KC, 16]` slab of w (16 KB) stays in L1 while every
/// row tile of the task uses it.
const KC: usize = 256;
/// Run length of a tile in `gemm_tiles` when the rows of its `a` are a page or more apart
/// (the native bf16 weight gradient, which reads its pairs of x in place).
const KB: usize = 32;
/// Output features per block of `backward_input`'s transposed dy (`[DX_OB, ROWS_PER_TASK]`, its
/// batch rows along the lanes: 16 KB on the stack, in L1 while every tile uses it).
const DX_OB: usize = 128;

fn check(n: usize, c_in: usize, c_out: usize, x: usize, w: usize, y: usize) {
    assert_eq!(x, size(&[n, c_in]), "dense: x length");
    assert_eq!(w, size(&[c_in, c_out]), "dense: w length");
    assert_eq!(y, size(&[n, c_out]), "dense: y length");
}

/// How a pass runs at `precision`: `None` in f32, else `Some(native)` for bf16, as in
/// `conv2d`. bf16 needs an even count along the pass's pairs (`pairs_fit`); natively, the
/// tiles along the output columns need whole 16-lane vectors (`tiles % 16 == 0`). A pass that
/// does not fit stays f32.
fn bf16_route(precision: Precision, pairs_fit: bool, tiles: usize) -> Option<bool> {
    (precision == Precision::Bf16 && pairs_fit).then(|| bf16::native() && tiles.is_multiple_of(16))
}

/// Scratch floats a pass over `n` rows needs at `precision`: none in f32; in bf16 room for both
/// rounded operands (the emulation's f32 copies are the largest).
pub fn scratch_len(n: usize, c_in: usize, c_out: usize, precision: Precision) -> usize {
    match precision {
        Precision::F32 => 0,
        Precision::Bf16 => size(&[c_in, c_out]) + size(&[n.next_multiple_of(2), c_in + c_out]),
    }
}

/// y = x w + b, the products at `precision` (bf16: pairs of input features; `scratch` holds
/// `scratch_len`). Overwrites `y`.
/// # Panics
/// If a slice length disagrees with `n`, `c_in`, `c_out`, or `scratch` is too short.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    n: usize,
    c_in: usize,
    c_out: usize,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
) {
    check(n, c_in, c_out, x.len(), w.len(), y.len());
    assert_eq!(b.len(), c_out, "dense: b length");
    assert!(scratch.len() >= scratch_len(n, c_in, c_out, precision), "dense: scratch too short");
    if n == 0 || c_out == 0 {
        return;
    }
    match bf16_route(precision, c_in.is_multiple_of(2), c_out) {
        None => forward_tasks(c_in, c_out, x, w, b, y, KC, |rows, k, a, bw, c, bias| {
            let (a_j, a_k, c, start) = (c_in, 1, c.as_mut_ptr(), Start::bias_or_c(bias));
            dispatch!(gemm_acc(rows: usize, k: usize, c_out: usize, a: *const f32, a_j: usize, a_k: usize, bw: *const f32, c: *mut f32, start: Start))
        }),
        Some(false) => {
            let (xe, we) = scratch.split_at_mut(x.len());
            let we = &mut we[..w.len()];
            xe.copy_from_slice(x);
            bf16::quantize_swapped_runs(xe, 1);
            we.copy_from_slice(w);
            bf16::quantize_swapped_runs(we, c_out);
            forward(n, c_in, c_out, xe, we, b, y, &mut [], Precision::F32);
        }
        Some(true) => {
            let (xq, wq) = scratch.split_at_mut(x.len() / 2);
            bf16::round_slice_par(x, &mut bf16::as_bf16(xq)[..x.len()]);
            let wq = &mut bf16::as_u32(wq)[..w.len() / 2];
            bf16::pack_row_pairs_par(w, c_out, wq);
            let xq = &bf16::as_u32(xq)[..x.len() / 2];
            forward_tasks(c_in / 2, c_out, xq, wq, b, y, KC / 2, |rows, k, a, bw, c, bias| {
                if amx::gemm_applies(rows, k, c_out) {
                    // AMX's tiles add to y: the bias goes there first.
                    if let Some(b) = bias {
                        simd::copy_rows(b, c);
                    }
                    let c = c.as_mut_ptr();
                    // SAFETY: rows x k pairs of xq (c_in / 2 apart), k x c_out of wq and rows x
                    // c_out of y, as `forward_tasks` says.
                    unsafe { amx::gemm_acc((rows, k, c_out), (a, c_in / 2), (bw, c_out), (c, c_out)) }
                } else {
                    let (c, start) = (c.as_mut_ptr(), Start::bias_or_c(bias));
                    // SAFETY: as for the f32 tiles (the pair arrays have the f32 ones' shape
                    // with half the inner dimension); `native` means the CPU has AVX512-BF16.
                    unsafe { gemm_acc_bf16(rows, k, c_out, a, c_in / 2, 1, bw, c, start) }
                }
            });
        }
    }
}

/// Batch rows per task of `forward` and of `backward_input`'s dot products over `n` rows: a
/// task per thread, at least `ROWS_PER_TASK`. Each task streams the whole of w, so on one
/// thread one task reads it once (measured on AMD Zen 5, `bench --layers`, one thread: 0.61-0.63
/// -> 0.54-0.59 ms for the forward pass of either dense layer of the baseline). Each element
/// is still one chain of multiply-adds in a fixed order, whatever the tasks' rows.
fn rows_per_task(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads()).max(ROWS_PER_TASK)
}

/// `forward`'s tasks over `x [n, k_len]` and `w [k_len, c_out]` (f32 values, or bf16 pairs
/// with `k_len` pairs): `acc(rows, k, a, bw, c, bias)` adds one block of `kc` inner steps at a
/// time to the task's rows of y (a `[kc, 16]` slab of w stays in L1 while every row tile of
/// the task uses it), the first block to `bias` in place of y's contents.
#[allow(clippy::too_many_arguments)]
fn forward_tasks<E: Sync>(
    k_len: usize,
    c_out: usize,
    x: &[E],
    w: &[E],
    b: &[f32],
    y: &mut [f32],
    kc: usize,
    acc: impl Fn(usize, usize, *const E, *const E, &mut [f32], Option<&[f32]>) + Sync,
) {
    let rows = rows_per_task(y.len() / c_out);
    y.par_chunks_mut(rows * c_out).zip(x.par_chunks(rows * k_len)).for_each(|(yt, xt)| {
        let rows = yt.len() / c_out;
        for k0 in (0..k_len).step_by(kc) {
            // SAFETY (of the pointers `acc` reads): rows x kc of xt from column k0, kc x c_out of
            // w from row k0, and rows x c_out of yt are inside the slices `check` measured.
            let bias = (k0 == 0).then_some(b);
            acc(rows, kc.min(k_len - k0), xt[k0..].as_ptr(), w[k0 * c_out..].as_ptr(), &mut *yt, bias);
        }
    });
}

/// The `k`-th of `parts` near-equal shares of 0..n: a tile's share of the lines it asks for
/// ahead (`simd::prefetch`), so that the asks spread over the tiles before the data is needed.
fn share(n: usize, k: usize, parts: usize) -> core::ops::Range<usize> {
    n * k / parts..n * (k + 1) / parts
}

/// Where the sums of `gemm_acc` start: from c's contents, from a bias row (the forward pass's
/// first block: y is not read back from memory), or from zero (the weight gradient's first
/// panel: dW is neither cleared first nor read back).
#[derive(Clone, Copy)]
enum Start {
    C,
    Bias(*const f32),
    Zero,
}

impl Start {
    fn bias_or_c(bias: Option<&[f32]>) -> Self {
        bias.map_or(Start::C, |b| Start::Bias(b.as_ptr()))
    }
}

/// c[j, o] = start[j, o] + sum_{p < k} a[j * a_j + p * a_k] * b[p * c_out + o] for j < rows,
/// o < c_out, with `c` row-major `[rows, c_out]` and `start` as said: `gemm_tiles` over the whole
/// vectors of columns, then scalar columns. Every element is one chain of multiply-adds in p
/// order.
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
    start: Start,
) {
    let vec_cols = c_out - c_out % S::LANES;
    gemm_tiles::<S, Values>(rows, k, c_out, vec_cols, a, a_j, a_k, b, c, start);
    for o in vec_cols..c_out {
        for j in 0..rows {
            let cp = c.add(j * c_out + o);
            let mut s = match start {
                Start::C => *cp,
                Start::Bias(bias) => *bias.add(o),
                Start::Zero => 0.0,
            };
            for p in 0..k {
                s = (*a.add(j * a_j + p * a_k)).mul_add(*b.add(p * c_out + o), s);
            }
            *cp = s;
        }
    }
}

/// `gemm_acc` in bf16 pairs (`VDPBF16PS`): `a` and `b` hold pairs along p, `k` of them;
/// `c_out % 16 == 0`; the tiles start from `start`, as the f32 ones.
/// # Safety
/// As `gemm_acc`, and the CPU has AVX512-BF16 besides AVX-512F.
#[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_acc_bf16(
    rows: usize,
    k: usize,
    c_out: usize,
    a: *const u32,
    a_j: usize,
    a_k: usize,
    b: *const u32,
    c: *mut f32,
    start: Start,
) {
    gemm_tiles::<Avx512, Bf16Pairs>(rows, k, c_out, c_out, a, a_j, a_k, b, c, start)
}

/// The tiles of `gemm_acc` over the first `vec_cols` columns (whole vectors), on elements `O`:
/// each block of b's columns (`micro::channel_blocks`, from L1) serves every row tile.
/// # Safety
/// As `gemm_acc`; for `Bf16Pairs` the CPU has AVX512-BF16.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_tiles<S: Simd, O: Operand<S>>(
    rows: usize,
    k: usize,
    c_out: usize,
    vec_cols: usize,
    a: *const O::E,
    a_j: usize,
    a_k: usize,
    b: *const O::E,
    c: *mut f32,
    start: Start,
) {
    // When a step along k jumps a page or more in `a` (4-byte elements either way), a tile's
    // run would touch more pages than the TLB holds: cut it into runs of KB (the partial sums
    // go through c, which does not change them). Not for b's rows far apart (a wide c_out): the
    // extra passes over c would cost more (measured: 20 against 30-39 GFLOP/s for the 128 ->
    // 6272 layer).
    let kb = if a_k * 4 >= 4096 { KB } else { k.max(1) };
    // Where b's rows are a page or more apart (the 128 -> 6272 layer's weights and output
    // gradient), a block's slab of b is a few lines from each of `len` pages: too many streams
    // for the hardware prefetchers, so the first row tile waited for each line in turn. The
    // next block's slab is asked for while this one runs, a share before each row tile.
    let far = c_out * 4 >= 4096;
    let tiles = row_chunks(rows).count();
    for p0 in (0..k).step_by(kb) {
        let len = kb.min(k - p0);
        let (a, b) = (a.add(p0 * a_k), b.add(p0 * c_out));
        for (o0, nv) in channel_blocks(vec_cols, S::PATH) {
            let next = o0 + nv * S::LANES;
            for (i, (r0, m)) in row_chunks(rows).enumerate() {
                if far && next < vec_cols {
                    let lines = (vec_cols - next).min(nv * S::LANES).div_ceil(16);
                    for p in share(len, i, tiles) {
                        (0..lines).for_each(|l| simd::prefetch(b.add(p * c_out + next + 16 * l).cast()));
                    }
                }
                with_rows!(m, M => with_nv!(S, nv, NV => {
                    let cp = c.add(r0 * c_out + o0);
                    let mut t = match start {
                        Start::Bias(bias) if p0 == 0 => Tile::<S, M, NV>::rows_of(bias.add(o0)),
                        Start::Zero if p0 == 0 => Tile::<S, M, NV>::zero(),
                        _ => Tile::<S, M, NV>::load(cp, c_out),
                    };
                    O::run(&mut t, Tile::<S, M, NV>::rows(a.add(r0 * a_j), a_j), a_k, b.add(o0), c_out, len);
                    t.store(cp, c_out);
                }))
            }
        }
    }
}

/// dx = dy wᵀ, the products at `precision` (bf16: pairs of output features; `scratch` holds
/// `scratch_len`). Overwrites `dx`.
/// # Panics
/// If a slice length disagrees with `n`, `c_in`, `c_out`, or `scratch` is too short.
#[allow(clippy::too_many_arguments)]
pub fn backward_input(
    n: usize,
    c_in: usize,
    c_out: usize,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
) {
    check(n, c_in, c_out, dx.len(), w.len(), dy.len());
    assert!(scratch.len() >= scratch_len(n, c_in, c_out, precision), "dense: scratch too short");
    if n == 0 || c_in == 0 {
        return;
    }
    if c_out == 0 {
        dx.fill(0.0);
        return;
    }
    // The lanes run along the batch, so natively any c_out fits.
    let route = bf16_route(precision, c_out.is_multiple_of(2), 16);
    // On AMX, dxᵀ is computed whole and transposed into dx; the dot products' first run stores
    // into dx (a fill of the 6272 -> 128 layer's 1.6 MB dx ran on one thread before the tasks);
    // every other path adds into dx.
    let amx_whole = route == Some(true) && amx::gemm_applies(c_in, c_out / 2, n);
    let dots = route.is_none() && kernel_path() == KernelPath::Avx512;
    if !(amx_whole || dots) {
        dx.fill(0.0);
    }
    match route {
        // With 32 registers and a short row of w (the 6272 -> 128 layer): w's rows broadcast
        // along the batch, 16 x 16 tiles stored through a transpose in registers. One block of
        // dyᵀ (c_out <= DX_OB), so the tiles store into dx rather than add.
        None if dots && broadcast_applies(c_out) => {
            transposed_tasks(c_in, c_out, DX_OB, dy, w, dx, |rows, _, a, b, c| {
                let ld = c_out;
                dispatch!(on KernelPath::Avx512, broadcast_tiles(rows: usize, c_in: usize, ld: usize, a: *const f32, b: *const f32, c: *mut f32))
            })
        }
        // With 32 registers and long rows of w, dot products along the output features: a
        // tile's sums stay in registers for the whole run and reach dx once (the transposed
        // tiles below add each block of products to dx one float at a time).
        None if dots => {
            let rows = rows_per_task(n);
            dx.par_chunks_mut(rows * c_in).zip(dy.par_chunks(rows * c_out)).for_each(|(dxt, dyt)| {
                let rows = dxt.len() / c_in;
                let (dy, w, dx) = (dyt.as_ptr(), w.as_ptr(), dxt.as_mut_ptr());
                // SAFETY: rows x c_out of dyt, c_in x c_out of w and rows x c_in of dxt, as
                // `check` measured.
                dispatch!(on KernelPath::Avx512, dot_acc(rows: usize, c_in: usize, c_out: usize, dy: *const f32, w: *const f32, dx: *mut f32))
            })
        }
        None => transposed_f32(c_in, c_out, dy, w, dx),
        Some(false) => {
            let (dye, we) = scratch.split_at_mut(dy.len());
            let we = &mut we[..w.len()];
            dye.copy_from_slice(dy);
            bf16::quantize_swapped_runs(dye, 1);
            we.copy_from_slice(w);
            bf16::quantize_swapped_runs(we, 1);
            // Each sum one chain in the order of the output features, as VDPBF16PS's pairs.
            transposed_f32(c_in, c_out, dye, we, dx);
        }
        Some(true) => {
            let (dyq, rest) = scratch.split_at_mut(dy.len() / 2);
            let (wq, wt) = rest.split_at_mut(w.len() / 2);
            bf16::round_slice_par(dy, &mut bf16::as_bf16(dyq)[..dy.len()]);
            let dyq = &bf16::as_u32(dyq)[..dy.len() / 2];
            bf16::round_slice_par(w, &mut bf16::as_bf16(wq)[..w.len()]);
            let wq = &bf16::as_u32(wq)[..w.len() / 2];
            if amx_whole {
                // On AMX, dxᵀ = w dyᵀ: w's rows are pairs along the output features as they
                // are (the kernel rounded, not transposed: transposing its 3 MB took more
                // than the products), dy's pairs transposed (a row per output pair, a column
                // per batch row), and dxᵀ transposed back at the end.
                let (dyt, dxt) = wt.split_at_mut(dy.len() / 2);
                let dyt = bf16::as_u32(dyt);
                amx::transpose_pairs(dyq, n, c_out / 2, dyt);
                let dyt = &*dyt;
                let dxt = &mut dxt[..c_in * n];
                dxt.par_chunks_mut(W_ROWS_PER_TASK * n).zip(wq.par_chunks(W_ROWS_PER_TASK * c_out / 2)).for_each(
                    |(ct, at)| {
                        ct.fill(0.0);
                        // SAFETY: the task's rows of wq (c_out / 2 pairs each), c_out / 2 x n
                        // pairs of dyt and the task's rows of dxt (n each) are inside their
                        // slices; `gemm_applies` holds for every task (W_ROWS_PER_TASK % 16 == 0).
                        unsafe {
                            amx::gemm_acc(
                                (ct.len() / n, c_out / 2, n),
                                (at.as_ptr(), c_out / 2),
                                (dyt.as_ptr(), n),
                                (ct.as_mut_ptr(), n),
                            )
                        }
                    },
                );
                amx::transpose_pairs(bf16::as_u32(dxt), c_in, n, bf16::as_u32(dx));
                return;
            }
            transposed_tasks(c_in, c_out / 2, DX_OB / 2, dyq, wq, dx, |rows, ob, a, b, c| {
                // SAFETY: as for the f32 tiles, with pairs along the output features; `native`
                // means the CPU has AVX512-BF16.
                unsafe { transposed_acc_bf16(rows, c_in, c_out / 2, ob, a, b, c) }
            });
        }
    }
}

/// `backward_input` in f32 on the transposed tiles: each element of dx one chain of
/// multiply-adds in the order of the output features.
fn transposed_f32(c_in: usize, c_out: usize, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    transposed_tasks(
        c_in,
        c_out,
        DX_OB,
        dy,
        w,
        dx,
        |rows, ob, a, b, c| dispatch!(transposed_acc(rows: usize, c_in: usize, c_out: usize, ob: usize, a: *const f32, b: *const f32, c: *mut f32)),
    )
}

/// Batch rows and input features of a `dot_tile`: 4 x 4 accumulators, 4 vectors of dy and
/// one of w, each step 8 loads for 16 FMAs (at 4 x 6, LLVM spilled 7 of the 24 accumulators
/// to the stack, and the pass ran slower than the transposed tiles).
const DOT_R: usize = 4;
const DOT_I: usize = 4;
/// Output features per run of `dot_tile`: the block's rows of w (16 KB) stay in L1 while every
/// row tile of the task uses them (measured: runs of 512 and 2048 were slower).
const DOT_OC: usize = 1024;

/// dx[r, i] = sum over o of dy[r, o] w[i, o] for r < rows, i < c_in, with `dy [rows, c_out]`,
/// `w [c_in, c_out]`, `dx [rows, c_in]`: `dot_tile`s over runs of `DOT_OC` output features.
/// Each element of dx gets its first run's sum, then the others' added in run order, whatever
/// the threads.
/// # Safety
/// `S`'s instructions exist, and the three arrays are as long as said.
#[inline(always)]
unsafe fn dot_acc<S: Simd>(rows: usize, c_in: usize, c_out: usize, dy: *const f32, w: *const f32, dx: *mut f32) {
    for o0 in (0..c_out).step_by(DOT_OC) {
        let len = DOT_OC.min(c_out - o0);
        for i0 in (0..c_in).step_by(DOT_I) {
            for r0 in (0..rows).step_by(DOT_R) {
                let (r_n, i_n) = (DOT_R.min(rows - r0), DOT_I.min(c_in - i0));
                let dyr = core::array::from_fn(|r| dy.add((r0 + r.min(r_n - 1)) * c_out + o0));
                let wr = core::array::from_fn(|i| w.add((i0 + i.min(i_n - 1)) * c_out + o0));
                dot_tile::<S>(dyr, wr, len, (r_n, i_n), o0 == 0, dx.add(r0 * c_in + i0), c_in);
            }
        }
    }
}

/// One tile of `dot_acc`: the dot products of `len` floats of 4 rows of dy and 4 of w (rows
/// past `r_n` / `i_n` repeat the last valid one; their sums are dropped), each summed along
/// the vector lanes, then across them (`Simd::sums8`), then the tail past whole vectors, and
/// stored into dx (rows `ldx` apart) on the `first` run, else added to it.
/// # Safety
/// As `dot_acc`.
#[inline(always)]
unsafe fn dot_tile<S: Simd>(
    dy: [*const f32; DOT_R],
    w: [*const f32; DOT_I],
    len: usize,
    (r_n, i_n): (usize, usize),
    first: bool,
    dx: *mut f32,
    ldx: usize,
) {
    let mut acc = [[S::zero(); DOT_I]; DOT_R];
    let whole = len - len % S::LANES;
    for o in (0..whole).step_by(S::LANES) {
        let d: [S::V; DOT_R] = core::array::from_fn(|r| S::load(dy[r].add(o)));
        for (i, wp) in w.iter().enumerate() {
            let wv = S::load(wp.add(o));
            for r in 0..DOT_R {
                acc[r][i] = S::fma(d[r], wv, acc[r][i]);
            }
        }
    }
    let mut sums = [0.0f32; DOT_R * DOT_I];
    for g in 0..DOT_R * DOT_I / 8 {
        let v = core::array::from_fn(|k| acc[(g * 8 + k) / DOT_I][(g * 8 + k) % DOT_I]);
        S::sums8(v, sums.as_mut_ptr().add(g * 8));
    }
    for r in 0..r_n {
        for i in 0..i_n {
            let mut s = sums[r * DOT_I + i];
            for o in whole..len {
                s = (*dy[r].add(o)).mul_add(*w[i].add(o), s);
            }
            let d = dx.add(r * ldx + i);
            *d = if first { s } else { *d + s };
        }
    }
}

/// Whether `backward_input` on AVX-512 runs `broadcast_tiles` for `c_out` output features:
/// rows of w short enough for one block of dyᵀ, at a row stride `Strided` can hold as a
/// constant (one pointer for 16 rows). Measured on the 6272 -> 128 layer (AMD Zen 5, one
/// thread, `bench --layers`): 36-40% of the FMA peak in dot products (8 vector steps along
/// 128 features, then sums across the lanes), 54-59% in these tiles.
fn broadcast_applies(c_out: usize) -> bool {
    matches!(c_out, 16 | 32 | 64 | 128)
}

/// Input features (rows of w) per tile of `broadcast_tiles`.
const BT: usize = 16;
/// Tiles of rows of w ahead that `broadcast_tiles` and `transposed_tiles` ask for: a tile
/// reads a line of each of its rows in turn, which the hardware prefetchers did not follow
/// (43-45% of the peak without; 1 and 4 tiles ahead measured no better than 2).
const AHEAD: usize = 2;

/// dx[r, i] = sum over o < ld of w[i, o] dy_t[o, r] for r < rows, i < c_in, with `w [c_in, ld]`
/// (`broadcast_applies(ld)`), `dy_t [ld, ROWS_PER_TASK]` the task's dy transposed and `dx
/// [rows, c_in]`: tiles of `BT` rows of w (broadcast, from one pointer) x a vector of batch
/// rows, each stored through a 16 x 16 transpose (`Simd::store_transposed16`) into `BT`
/// consecutive features of 16 rows of dx. Every element is one chain of multiply-adds in o
/// order from zero, the last `c_in % BT` features too (scalar), so the tiles' shape does not
/// change the bits. Overwrites dx.
/// # Safety
/// `S`'s instructions exist, and the three arrays are as long as said.
#[inline(always)]
unsafe fn broadcast_tiles<S: Simd>(rows: usize, c_in: usize, ld: usize, w: *const f32, dy_t: *const f32, dx: *mut f32) {
    let whole = c_in - c_in % BT;
    with_const!(ld, LD in [16, 32, 64, 128] => {
        let mut block = [[0.0f32; 16]; BT];
        let (lines, tiles) = (BT * LD / 16, rows.div_ceil(S::LANES));
        for i0 in (0..whole).step_by(BT) {
            for (k, r0) in (0..rows).step_by(S::LANES).enumerate() {
                let ahead = w.wrapping_add((i0 + AHEAD * BT) * LD);
                share(lines, k, tiles).for_each(|l| simd::prefetch(ahead.wrapping_add(16 * l)));
                let mut t = Tile::<S, BT, 1>::zero();
                t.run(Strided::<f32, LD>(w.add(i0 * LD)), 1, dy_t.add(r0), ROWS_PER_TASK, LD);
                t.store(block.as_mut_ptr().cast(), 16);
                let out = dx.add(r0 * c_in + i0);
                if S::LANES == 16 && rows - r0 >= 16 {
                    S::store_transposed16(&block, out, c_in);
                } else {
                    for (j, row) in block.iter().enumerate() {
                        row.iter().take(S::LANES.min(rows - r0)).enumerate().for_each(|(l, v)| *out.add(l * c_in + j) = *v);
                    }
                }
            }
        }
    });
    for i in whole..c_in {
        for r in 0..rows {
            let mut s = 0.0f32;
            for o in 0..ld {
                s = (*w.add(i * ld + o)).mul_add(*dy_t.add(o * ROWS_PER_TASK + r), s);
            }
            *dx.add(r * c_in + i) = s;
        }
    }
}

/// `backward_input`'s tasks over `dy [n, o_len]` and `w [c_in, o_len]` (f32 values, or bf16
/// pairs with `o_len` pairs), `block` output features (or pairs) at a time: a block of dyᵀ holds
/// the task's batch rows along its rows (zeros past `rows`), so the batch runs along the
/// vector lanes, and `acc(rows, ob, a, b, c)` adds its products to the task's dx.
fn transposed_tasks<E: Copy + Default + Sync>(
    c_in: usize,
    o_len: usize,
    block: usize,
    dy: &[E],
    w: &[E],
    dx: &mut [f32],
    acc: impl Fn(usize, usize, *const E, *const E, *mut f32) + Sync,
) {
    dx.par_chunks_mut(ROWS_PER_TASK * c_in).zip(dy.par_chunks(ROWS_PER_TASK * o_len)).for_each(|(dxt, dyt)| {
        let rows = dxt.len() / c_in;
        let mut dy_t = [E::default(); DX_OB * ROWS_PER_TASK];
        for o0 in (0..o_len).step_by(block) {
            let ob = block.min(o_len - o0);
            for (o, row) in dy_t.chunks_exact_mut(ROWS_PER_TASK).take(ob).enumerate() {
                for (r, v) in row.iter_mut().enumerate() {
                    *v = if r < rows { dyt[r * o_len + o0 + o] } else { E::default() };
                }
            }
            // SAFETY (of the pointers `acc` reads): c_in rows of w from column o0, ob long
            // (o_len apart); ob x ROWS_PER_TASK of dy_t; rows x c_in of dxt: inside the slices
            // `check` measured.
            acc(rows, ob, w[o0..].as_ptr(), dy_t.as_ptr(), dxt.as_mut_ptr());
        }
    });
}

/// c[r * cols + i] += sum over o < ob of a[i * ld + o] * b[o * ROWS_PER_TASK + r], for r < rows,
/// i < cols: `transposed_tiles` on f32 values.
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
    transposed_tiles::<S, Values>(rows, cols, ld, ob, a, b, c)
}

/// `transposed_acc` in bf16 pairs (`VDPBF16PS`): `a` and `b` hold pairs along o, `ob` of them.
/// # Safety
/// As `transposed_acc`, and the CPU has AVX512-BF16 besides AVX-512F.
#[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
unsafe fn transposed_acc_bf16(
    rows: usize,
    cols: usize,
    ld: usize,
    ob: usize,
    a: *const u32,
    b: *const u32,
    c: *mut f32,
) {
    transposed_tiles::<Avx512, Bf16Pairs>(rows, cols, ld, ob, a, b, c)
}

/// The tiles of `transposed_acc`: up to 6 input features (rows of w, broadcast) x the batch
/// rows (lanes of dyᵀ), each added to c as columns. No horizontal sums: the dot products of
/// length c_out that this replaced spent more time summing lanes than multiplying (23% of peak).
/// # Safety
/// As `transposed_acc`; for `Bf16Pairs` the CPU has AVX512-BF16.
#[inline(always)]
unsafe fn transposed_tiles<S: Simd, O: Operand<S>>(
    rows: usize,
    cols: usize,
    ld: usize,
    ob: usize,
    a: *const O::E,
    b: *const O::E,
    c: *mut f32,
) {
    let mut out = [0.0f32; MAX_M * ROWS_PER_TASK];
    let lines = (ob * core::mem::size_of::<O::E>()).div_ceil(64);
    let tiles = channel_blocks(ROWS_PER_TASK, S::PATH).take_while(|&(r0, _)| r0 < rows).count();
    for (i0, m) in row_chunks(cols) {
        for (k, (r0, nv)) in channel_blocks(ROWS_PER_TASK, S::PATH).take_while(|&(r0, _)| r0 < rows).enumerate() {
            // The rows of a (w) that the chunk `AHEAD` on reads, a share per tile of this one:
            // a tile reads its 6 rows across, as `broadcast_tiles` does (AVX2 on AMD Zen 5,
            // `bench --layers`, one thread: the 6272 -> 128 layer's 1.77-1.94 -> 1.19-1.35 ms).
            let ahead = i0 + AHEAD * MAX_M;
            for q in share(MAX_M * lines, k, tiles) {
                let (j, l) = (q / lines, q % lines);
                if ahead + j < cols {
                    simd::prefetch(a.wrapping_add((ahead + j) * ld).cast::<f32>().wrapping_add(16 * l));
                }
            }
            with_rows!(m, M => with_nv!(S, nv, NV => {
                let mut t = Tile::<S, M, NV>::zero();
                O::run(&mut t, Tile::<S, M, NV>::rows(a.add(i0 * ld), ld), 1, b.add(r0), ROWS_PER_TASK, ob);
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

/// dw = xᵀ dy and db = the column sums of dy, the products at `precision` (bf16: pairs of
/// batch rows, an odd last row paired with zero; `scratch` holds `scratch_len`; db stays f32).
/// Overwrites `dw` and `db`. Each element of dw is computed whole by one task, so the result
/// does not depend on the threads.
/// # Panics
/// If a slice length disagrees with `n`, `c_in`, `c_out`, or `scratch` is too short.
#[allow(clippy::too_many_arguments)]
pub fn backward_weight(
    n: usize,
    c_in: usize,
    c_out: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
) {
    check(n, c_in, c_out, x.len(), dw.len(), dy.len());
    assert_eq!(db.len(), c_out, "dense: db length");
    assert!(scratch.len() >= scratch_len(n, c_in, c_out, precision), "dense: scratch too short");
    if c_in > 0 && c_out > 0 {
        let f32_tiles = |_, rows: usize, a: *const f32, b: *const f32, c| {
            let mut panel = [0.0f32; PANEL_K * W_ROWS_PER_TASK];
            for p0 in (0..n).step_by(PANEL_K) {
                let len = PANEL_K.min(n - p0);
                for (p, dst) in panel.chunks_exact_mut(W_ROWS_PER_TASK).take(len).enumerate() {
                    // SAFETY: x[(p0 + p) * c_in + i0 + j] for j < rows is inside x (`weight_tasks`).
                    dst[..rows].copy_from_slice(unsafe { core::slice::from_raw_parts(a.add((p0 + p) * c_in), rows) });
                }
                let (a, a_j, a_k, b) = (panel.as_ptr(), 1, W_ROWS_PER_TASK, b.wrapping_add(p0 * c_out));
                let start = if p0 == 0 { Start::Zero } else { Start::C };
                dispatch!(gemm_acc(rows: usize, len: usize, c_out: usize, a: *const f32, a_j: usize, a_k: usize, b: *const f32, c: *mut f32, start: Start))
            }
        };
        match bf16_route(precision, true, c_out) {
            // The f32 tiles start from zero (an empty batch runs none: dW is cleared then).
            None => weight_tasks(n, c_in, c_out, x, dy, dw, n == 0, f32_tiles),
            Some(false) => {
                let (xe, dye) = scratch.split_at_mut(x.len());
                let dye = &mut dye[..dy.len()];
                xe.copy_from_slice(x);
                bf16::quantize_swapped_runs(xe, c_in);
                dye.copy_from_slice(dy);
                bf16::quantize_swapped_runs(dye, c_out);
                weight_tasks(n, c_in, c_out, xe, dye, dw, n == 0, f32_tiles);
            }
            Some(true) => {
                let pairs = n.div_ceil(2);
                let (xq, rest) = scratch.split_at_mut(pairs * c_in);
                let (dyq, xt) = rest.split_at_mut(pairs * c_out);
                let (xq, dyq) = (bf16::as_u32(xq), bf16::as_u32(dyq));
                bf16::pack_row_pairs_par(x, c_in, xq);
                bf16::pack_row_pairs_par(dy, c_out, dyq);
                // On AMX, x's pairs transposed: a row per input feature, its pairs along it.
                let on_amx = amx::gemm_applies(16, pairs, c_out) && c_in.is_multiple_of(16);
                let xt = &mut bf16::as_u32(xt)[..pairs * c_in];
                if on_amx {
                    amx::transpose_pairs(xq, pairs, c_in, xt);
                }
                let xt = &*xt;
                weight_tasks(pairs, c_in, c_out, &*xq, &*dyq, dw, true, |i0, rows, a, b, c| {
                    if on_amx && amx::gemm_applies(rows, pairs, c_out) {
                        // SAFETY: rows x pairs of xt from row i0, pairs x c_out of dyq and
                        // rows x c_out of the task's dw are inside their slices.
                        unsafe {
                            amx::gemm_acc(
                                (rows, pairs, c_out),
                                (xt[i0 * pairs..].as_ptr(), pairs),
                                (b, c_out),
                                (c, c_out),
                            )
                        }
                    } else {
                        // SAFETY: as for the f32 tiles, with pairs of batch rows; `native`
                        // means the CPU has AVX512-BF16.
                        unsafe { gemm_acc_bf16(rows, pairs, c_out, a, 1, c_in, b, c, Start::C) }
                    }
                });
            }
        }
    }
    db.fill(0.0);
    simd::sum_rows_acc(dy, db);
}

/// `backward_weight`'s tasks over `x [k_len, c_in]` and `dy [k_len, c_out]` (f32 values, or
/// bf16 pairs of batch rows, `k_len` of them): `acc(i0, rows, a, b, c)` puts rows `i0..` of
/// xᵀ dy into the task's rows of dw (row j, column p of xᵀ is x[p, i0 + j]), adding to zeros
/// where `clear` (the task clears them first), else starting its sums from zero itself.
#[allow(clippy::too_many_arguments)]
fn weight_tasks<E: Sync>(
    k_len: usize,
    c_in: usize,
    c_out: usize,
    x: &[E],
    dy: &[E],
    dw: &mut [f32],
    clear: bool,
    acc: impl Fn(usize, usize, *const E, *const E, *mut f32) + Sync,
) {
    debug_assert!(x.len() == k_len * c_in && dy.len() == k_len * c_out);
    dw.par_chunks_mut(W_ROWS_PER_TASK * c_out).enumerate().for_each(|(t, dwt)| {
        let (i0, rows) = (t * W_ROWS_PER_TASK, dwt.len() / c_out);
        if clear {
            dwt.fill(0.0);
        }
        // SAFETY (of the pointers `acc` reads): x[p * c_in + i0 + j] for p < k_len, j < rows,
        // dy's k_len x c_out and dwt's rows x c_out are inside the slices `check` measured.
        acc(i0, rows, x[i0..].as_ptr(), dy.as_ptr(), dwt.as_mut_ptr());
    });
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
        super::backward_weight(1 << 62, 4, 4, &[], &[], &mut dw, &mut db, &mut [], super::Precision::F32);
    }
}
