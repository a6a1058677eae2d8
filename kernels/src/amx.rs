//! Intel AMX (Advanced Matrix Extensions) for the bf16 convolutions and dense layers.
//! `TDPBF16PS` multiplies a tile of up to 16 rows x 32 bf16 by a 32 x 16 one (stored as 16 rows
//! of pairs, the layout of `VDPBF16PS`'s kernels) into up to 16 x 16 f32 sums: 8,192
//! multiply-adds per instruction. On this project's Intel machines (`cargo bench --bench
//! probes`, 2026-12-06) it ran at 3.4 TFLOP/s per core from registers and 1.1 with its operands
//! loaded from L1 every step, against 117 GFLOP/s for `VDPBF16PS`. Rust's AMX intrinsics are
//! not stable: the kernels are inline assembly.
//!
//! Where `available()` (the CPU has AMX-TILE and AMX-BF16, the kernels run natively in bf16,
//! Linux grants the tile state, and `AUTOENCODER_AMX` is not `off`), these run here: the
//! forward convolution and its stride-1 input gradient (`conv_forward`), the strided input
//! gradient (`strided_input_grad`), the weight gradient (`weight_grad`) and the dense
//! passes (`gemm_acc`), each where its channel counts come in whole tiles (the `_applies`
//! checks); the rest keep their `VDPBF16PS` kernels. The products and the f32 sums are those
//! of the other bf16 paths, but the instruction adds its products in an order of its own, so
//! results can differ from theirs in the last bits (`tests/conv_paths.rs` bounds it); they
//! stay the same on any number of threads (each output is one task's, in a fixed order).

use crate::bf16;
use crate::conv_direct;
use crate::geom::ConvGeom;
use core::arch::asm;
use std::sync::atomic::{AtomicU8, Ordering};

/// 0 until first asked, then 1 (not used) or 2 (used).
static STATE: AtomicU8 = AtomicU8::new(0);

/// Whether the bf16 convolutions run on AMX here (see the module doc).
pub fn available() -> bool {
    if !bf16::native() {
        return false;
    }
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("AUTOENCODER_AMX").map_or(true, |v| v != "off") && supported();
            STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        s => s == 2,
    }
}

/// Uses AMX where `on` and the machine allows it (`supported`), else not: for comparing the
/// two bf16 paths on one machine. Set it before kernels run, as `isa::set_kernel_path`.
pub fn set_enabled(on: bool) {
    STATE.store(if on && supported() { 2 } else { 1 }, Ordering::Relaxed);
}

/// The CPU has AMX-TILE and AMX-BF16 (CPUID leaf 7: EDX bits 24 and 22) and Linux lets this
/// process use the tile data (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, needed
/// once per process before any thread touches a tile register).
fn supported() -> bool {
    let edx = core::arch::x86_64::__cpuid_count(7, 0).edx;
    if edx & (1 << 24) == 0 || edx & (1 << 22) == 0 || !cfg!(target_os = "linux") {
        return false;
    }
    let ret: i64;
    // SAFETY: the arch_prctl system call (158) with ARCH_REQ_XCOMP_PERM (0x1023) and
    // XFEATURE_XTILEDATA (18) only changes this process's permission; `syscall` clobbers rcx
    // and r11, and touches no memory of ours.
    unsafe {
        asm!("syscall", inlateout("rax") 158i64 => ret, in("rdi") 0x1023, in("rsi") 18,
            lateout("rcx") _, lateout("r11") _, options(nostack, nomem));
    }
    ret == 0
}

/// Pixels per tile in `conv_forward` for output rows of `w_out` pixels: the largest divisor of
/// `w_out` up to 16, so tiles never cross a row (28 and 14 -> 14, 7 -> 7).
fn pixel_rows(w_out: usize) -> usize {
    (1..=w_out.min(16)).rev().find(|m| w_out.is_multiple_of(*m)).unwrap_or(1)
}

/// Whether `conv_forward` runs `g` here: AMX `available`, input channels in 32s (one tile
/// step), output channels in 16s, and pixel tiles of at least 7 rows.
pub(crate) fn conv_applies(g: &ConvGeom) -> bool {
    g.c_in.is_multiple_of(32) && g.c_out.is_multiple_of(16) && pixel_rows(g.w_out) >= 7 && available()
}

/// y = conv(xq) + b for one image on AMX: `xq` the padded image from
/// `conv_direct::pad_input_bf16`, `wq` the kernel from `conv_direct::pack_weights_bf16`
/// (per tap, rows of input-channel pairs: a tile's B operand as it is). Each step multiplies
/// two tiles of pixels (A: a pixel per row, 32 input channels) by two tiles of 16 output
/// channels into four 16 x 16 sums (tile registers 0-3), over every tap and 32 input channels
/// at a time. Needs `conv_applies(g)`. Overwrites `y`.
pub(crate) fn conv_forward(g: &ConvGeom, xq: &[u16], wq: &[u16], b: Option<&[f32]>, y: &mut [f32]) {
    assert!(conv_applies(g), "amx: conv_forward needs AMX and channels in 32s / 16s");
    assert!(xq.len() >= conv_direct::padded_len(g) && wq.len() == g.w_len() && y.len() == g.y_len());
    assert!(b.is_none_or(|b| b.len() == g.c_out), "amx: bias length");
    // SAFETY: `available` (in `conv_applies`) means the CPU has AMX and the OS granted its
    // state; the lengths are checked above, and `conv_forward_tiles` says why its reads and
    // writes stay inside them.
    unsafe { conv_forward_tiles(g, xq, wq, b, y) }
}

/// The tile configuration (palette 1) of every kernel here: tiles 0-3 (sums) and 4-5 (A
/// operands: pixels, or channel rows) `m` rows of 64 bytes, tiles 6-7 (B operands: rows of
/// pairs) 16 rows of 64 bytes.
fn config(m: usize) -> [u8; 64] {
    let mut cfg = [0u8; 64];
    cfg[0] = 1;
    for t in 0..8 {
        cfg[16 + 2 * t] = 64;
        cfg[48 + t] = if t < 6 { m as u8 } else { 16 };
    }
    cfg
}

/// Tile registers 0-3, the 2 x 2 tiles of sums of every kernel here, loaded from `at` (rows
/// `stride` bytes apart; a zero stride repeats one row).
/// # Safety
/// A configured tile state; each tile's rows are inside its buffer.
#[inline(always)]
unsafe fn load_sums(at: [*const f32; 4], stride: usize) {
    asm!(
        "tileloadd tmm0, [{c0} + {s}*1]", "tileloadd tmm1, [{c1} + {s}*1]",
        "tileloadd tmm2, [{c2} + {s}*1]", "tileloadd tmm3, [{c3} + {s}*1]",
        c0 = in(reg) at[0], c1 = in(reg) at[1], c2 = in(reg) at[2], c3 = in(reg) at[3], s = in(reg) stride,
        options(nostack, readonly),
    );
}

/// Tile registers 0-3 set to zero.
/// # Safety
/// A configured tile state.
#[inline(always)]
unsafe fn zero_sums() {
    asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
}

/// Tile registers 0-3 stored to `at` (rows `stride` bytes apart).
/// # Safety
/// As `load_sums`.
#[inline(always)]
unsafe fn store_sums(at: [*mut f32; 4], stride: usize) {
    asm!(
        "tilestored [{c0} + {s}*1], tmm0", "tilestored [{c1} + {s}*1], tmm1",
        "tilestored [{c2} + {s}*1], tmm2", "tilestored [{c3} + {s}*1], tmm3",
        c0 = in(reg) at[0], c1 = in(reg) at[1], c2 = in(reg) at[2], c3 = in(reg) at[3], s = in(reg) stride,
        options(nostack),
    );
}

/// One step of the 2 x 2 tiles: A tiles (registers 4, 5) from `a` (rows `sa` bytes apart), B
/// tiles (6, 7) from `b` (rows `sb[j]` bytes apart), and sum tile 2 i + j += A_i B_j.
/// # Safety
/// A configured tile state; each tile's rows are inside its buffer.
#[inline(always)]
unsafe fn step<A, B>(a: [*const A; 2], sa: usize, b: [*const B; 2], sb: [usize; 2]) {
    asm!(
        "tileloadd tmm4, [{a0} + {sa}*1]",
        "tileloadd tmm6, [{b0} + {sb0}*1]",
        "tdpbf16ps tmm0, tmm4, tmm6",
        "tileloadd tmm7, [{b1} + {sb1}*1]",
        "tdpbf16ps tmm1, tmm4, tmm7",
        "tileloadd tmm5, [{a1} + {sa}*1]",
        "tdpbf16ps tmm2, tmm5, tmm6",
        "tdpbf16ps tmm3, tmm5, tmm7",
        a0 = in(reg) a[0], a1 = in(reg) a[1], b0 = in(reg) b[0], b1 = in(reg) b[1],
        sa = in(reg) sa, sb0 = in(reg) sb[0], sb1 = in(reg) sb[1],
        options(nostack, readonly),
    );
}

/// # Safety
/// As `conv_forward` after its checks. Every A row read is one pixel of a window in the padded
/// image (`padded_dims` covers every window), 32 channels from a multiple of 32 below c_in;
/// every B row is one input-channel pair of a tap's 16 output channels from co0 < c_out; every
/// sum row stored is one output pixel's 16 channels. A tile beyond the last (an odd count)
/// repeats the last one: the same values stored twice.
unsafe fn conv_forward_tiles(g: &ConvGeom, xq: &[u16], wq: &[u16], b: Option<&[f32]>, y: &mut [f32]) {
    let (wp, k, s, ci_n, co_n) = (conv_direct::padded_dims(g).1, g.k, g.stride, g.c_in, g.c_out);
    let m = pixel_rows(g.w_out);
    let per_row = g.w_out / m;
    let tiles = g.h_out * per_row;
    // Byte strides between the rows of a pixel tile, a kernel tile and a sum tile.
    let (a_stride, b_stride, c_stride) = (s * ci_n * 2, co_n * 4, co_n * 4);
    // A tile's first pixel: (output row, column).
    let first = |t: usize| (t / per_row, (t % per_row) * m);
    let yp = y.as_mut_ptr();
    let cfg = config(m);
    asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack, readonly));
    for t0 in (0..tiles).step_by(2) {
        let (p0, p1) = (first(t0), first((t0 + 1).min(tiles - 1)));
        for co0 in (0..co_n).step_by(32) {
            let co1 = (co0 + 16).min(co_n - 16);
            match b {
                // Every row of a sum tile starts from the bias (a zero stride repeats it).
                Some(b) => {
                    let (b0, b1) = (b.as_ptr().add(co0), b.as_ptr().add(co1));
                    load_sums([b0, b1, b0, b1], 0);
                }
                None => zero_sums(),
            }
            for kh in 0..k {
                for kw in 0..k {
                    let tap = kh * k + kw;
                    for c0 in (0..ci_n).step_by(32) {
                        let pixel = |(oh, ow): (usize, usize)| ((oh * s + kh) * wp + ow * s + kw) * ci_n + c0;
                        let kernel = |co: usize| ((tap * ci_n + c0) / 2 * co_n + co) * 2;
                        let a = [xq.as_ptr().add(pixel(p0)), xq.as_ptr().add(pixel(p1))];
                        step(a, a_stride, [wq.as_ptr().add(kernel(co0)), wq.as_ptr().add(kernel(co1))], [b_stride; 2]);
                    }
                }
            }
            let out = |(oh, ow): (usize, usize), co: usize| yp.add((oh * g.w_out + ow) * co_n + co);
            store_sums([out(p0, co0), out(p0, co1), out(p1, co0), out(p1, co1)], c_stride);
        }
    }
    asm!("tilerelease", options(nostack, nomem));
}

/// Whether `weight_grad` runs `g` here: AMX `available`, channels in 16s (input channels
/// at most `MAX_PAIR_CHANNELS`).
pub(crate) fn weight_grad_applies(g: &ConvGeom) -> bool {
    g.c_in.is_multiple_of(16) && g.c_in <= MAX_PAIR_CHANNELS && g.c_out.is_multiple_of(16) && available()
}

/// Input channels `pair_planes` holds one pixel of in registers.
const MAX_PAIR_CHANNELS: usize = 256;

/// The pixel grid of `weight_grad`: `(w, q, np)`, its row width (a phase plane's), its
/// pixels (dy's rows on that grid, in whole tile steps of 32) and the pixel pairs of each
/// parity copy of a plane (every tap's window of every grid pixel inside them).
fn grid(g: &ConvGeom) -> (usize, usize, usize) {
    let (hp, wp) = conv_direct::padded_dims(g);
    let w = wp.div_ceil(g.stride);
    let q = (g.h_out * w).next_multiple_of(32);
    let reach = (g.k - 1) / g.stride;
    let pixels = (q + reach * (w + 1)).max(hp.div_ceil(g.stride) * w);
    (w, q, pixels.div_ceil(2) + 1)
}

/// The parts of `weight_grad`'s work area, in f32 slots, each a whole number of cache
/// lines: the transposed sums `[k, k, c_out, c_in]`, the pair copies of the phase planes and
/// dy transposed.
fn weight_parts(g: &ConvGeom) -> [usize; 3] {
    let (_, q, np) = grid(g);
    let s = g.stride;
    [g.w_len().next_multiple_of(16), s * s * 2 * np * g.c_in, g.c_out * q / 2]
}

/// Scratch (in f32 slots) of `weight_grad`: its parts and room to start on a cache line.
pub(crate) fn weight_work_len(g: &ConvGeom) -> usize {
    weight_parts(g).iter().sum::<usize>() + 15
}

/// dwt[kh, kw, co, ci] = sum over the images and their pixels p of x_padded[s p + (kh, kw),
/// ci] dy[p, co]: the weight gradient transposed (`untranspose_weights` restores it), for the
/// images `x` (unpadded, `[n, h_in, w_in, c_in]`) and `dy` of one task, on AMX
/// (`weight_grad_applies`), stride s, bf16 operands (rounded to nearest even). Overwrites
/// `dwt`.
///
/// Per image: the padded image is split into s x s phase planes (plane (a, b) holds padded
/// pixels (s i + a, s j + b), `w` per row), and dy is laid on the same grid (zero past each
/// row's `w_out` pixels). Tap (kh, kw)'s window of grid pixel q is then pixel
/// q + (kh / s) w + kw / s of plane (kh % s, kw % s), so each tap is one product over the grid: A = dy
/// transposed (an output channel per row, 32 pixels per step), B = the plane in pixel pairs
/// (16 input channels per row) from the tap's offset. Each plane is kept in two pair copies,
/// (2r, 2r + 1) and (2r + 1, 2r + 2), so that every tap's B rows are whole pairs on cache
/// lines whatever its offset (reading a transposed plane at the offsets instead put 8 of 9
/// taps' rows across cache lines, and transposing the image took AVX-512 gathers). The sums
/// stay in `work` (on cache lines) between the task's images; the last image stores them to
/// `dwt`. `work` holds `weight_work_len(g)`. With `db`, dy's rows are added to it in order
/// (`transpose_dy`).
/// # Panics
/// If the lengths disagree with `g`, or without `weight_grad_applies(g)`.
pub(crate) fn weight_grad(
    g: &ConvGeom,
    (x, dy): (&[f32], &[f32]),
    work: &mut [f32],
    dwt: &mut [f32],
    mut db: Option<&mut [f32]>,
) {
    assert!(weight_grad_applies(g), "amx: weight_grad needs AMX and channels in 16s");
    let n = x.len() / g.x_len();
    assert!(x.len() == n * g.x_len() && dy.len() == n * g.y_len() && dwt.len() == g.w_len());
    assert!(db.as_deref().is_none_or(|db| db.len() == g.c_out), "amx: db length");
    assert!(work.len() >= weight_work_len(g), "amx: weight gradient work area");
    if n == 0 {
        dwt.fill(0.0);
    }
    let skip = work.as_ptr().align_offset(64);
    let [sums_len, pairs_len, dyt_len] = weight_parts(g);
    let (sums, rest) = work[skip..].split_at_mut(sums_len);
    let (pairs, dyt) = rest.split_at_mut(pairs_len);
    let (pairs, dyt) = (bf16::as_u32(pairs), &mut bf16::as_bf16(&mut dyt[..dyt_len])[..]);
    for (i, (xi, dyi)) in x.chunks_exact(g.x_len()).zip(dy.chunks_exact(g.y_len())).enumerate() {
        // The sums start from zero at the first image and go to dwt from the last.
        let from = (i > 0).then_some(sums.as_ptr());
        let to = if i + 1 == n { dwt.as_mut_ptr() } else { sums.as_mut_ptr() };
        // SAFETY: `available` (in `weight_grad_applies`) means the CPU has AMX, AVX512-BF16
        // (`bf16::native`) with AVX-512 F, BW and VL, and the OS granted the tile state; the
        // lengths are checked above and the parts cut to `weight_parts`; each function says
        // why its accesses stay inside them.
        unsafe {
            pair_planes(g, xi, pairs);
            transpose_dy(g, dyi, dyt, db.as_deref_mut());
            weight_grad_tiles(g, pairs, dyt, from, to);
        }
    }
}

/// dw[tap][ci][co] = dwt[tap][co][ci]: `weight_grad`'s layout back to the kernel's, through
/// `transpose_pairs` (a transposition of 32-bit values, whatever they hold).
/// # Panics
/// If a length is not `g.w_len()`, or without `weight_grad_applies(g)`.
pub(crate) fn untranspose_weights(g: &ConvGeom, dwt: &[f32], dw: &mut [f32]) {
    assert!(weight_grad_applies(g) && dwt.len() == g.w_len() && dw.len() == g.w_len(), "amx: untranspose lengths");
    // SAFETY: u32 and f32 have the same size and alignment and every bit pattern is valid for
    // both; the view covers exactly `dwt`'s values and borrows it.
    let dwt = unsafe { core::slice::from_raw_parts(dwt.as_ptr().cast::<u32>(), dwt.len()) };
    let tap = g.c_in * g.c_out;
    for (d, s) in bf16::as_u32(dw).chunks_exact_mut(tap).zip(dwt.chunks_exact(tap)) {
        transpose_pairs(s, g.c_out, g.c_in, d);
    }
}

/// The pair copies of `weight_grad`'s phase planes from the image `x` (unpadded), rounded
/// to bf16: `pairs[((plane * 2 + parity) * np + r) * c_in + ci]` holds channel ci of plane
/// pixels 2 r + parity (low half) and 2 r + parity + 1 (high half), where plane pixel
/// p = i w + j is padded pixel (s i + a, s j + b) of plane a s + b, zero outside the image (and past
/// the padded size, as `conv_direct::pad_input`). Each pixel is rounded once and closes one
/// pair: with the one before it, in the copy of that pair's parity.
/// # Safety
/// The CPU has AVX-512 F, BW and AVX512-BF16; `x` is one image of `g`, `pairs` holds
/// `weight_parts(g)[1]` slots, `g.c_in` is a multiple of 16 up to `MAX_PAIR_CHANNELS`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pair_planes(g: &ConvGeom, x: &[f32], pairs: &mut [u32]) {
    use core::arch::x86_64::*;
    let ((hp, wp), s, ci_n) = (conv_direct::padded_dims(g), g.stride, g.c_in);
    let (w, _, np) = grid(g);
    let blocks = ci_n / 16;
    let mut prev = [_mm256_setzero_si256(); MAX_PAIR_CHANNELS / 16];
    // The image pixel at padded (row, column), if inside the image and the padded size.
    let pixel = |r: usize, c: usize| {
        let (ih, iw) = (r.checked_sub(g.pad_top)?, c.checked_sub(g.pad_left)?);
        (r < hp && c < wp && ih < g.h_in && iw < g.w_in).then(|| x.as_ptr().add((ih * g.w_in + iw) * ci_n))
    };
    for (a, b) in (0..s).flat_map(|a| (0..s).map(move |b| (a, b))) {
        let copies = pairs.as_mut_ptr().add((a * s + b) * 2 * np * ci_n);
        let (mut i, mut j) = (0, 0);
        for p in 0..2 * np + 1 {
            let src = pixel(s * i + a, s * j + b);
            // Pixel p closes pair (p - 1, p): parity (p - 1) % 2, number (p - 1) / 2.
            let dst = (p > 0).then(|| copies.add((((p - 1) % 2) * np + (p - 1) / 2) * ci_n));
            for (cb, prev) in prev.iter_mut().enumerate().take(blocks) {
                let cur: __m256i = match src {
                    // SAFETY: 16 channels of a pixel inside the image.
                    Some(px) => {
                        core::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(px.add(cb * 16))))
                    }
                    None => _mm256_setzero_si256(),
                };
                if let Some(d) = dst {
                    let pair = _mm512_or_si512(
                        _mm512_cvtepu16_epi32(*prev),
                        _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(cur)),
                    );
                    // SAFETY: pair (p - 1) / 2 < np of its copy, 16 channels from cb * 16.
                    _mm512_storeu_si512(d.add(cb * 16).cast(), pair);
                }
                *prev = cur;
            }
            j += 1;
            if j == w {
                (i, j) = (i + 1, 0);
            }
        }
    }
}

/// dy (`[h_out, w_out, c_out]`) transposed onto `weight_grad`'s grid in bf16:
/// `dyt[co * q + oh * w + ow] = round(dy[oh, ow, co])`, zero for ow >= w_out and past the last
/// row; 16 x 16 blocks transposed in registers. With `db`, each dy row is also added to it
/// in pixel order: the bits of `simd::sum_rows_acc`, without reading dy again.
/// # Safety
/// The CPU has AVX-512 F, BW, VL and AVX512-BF16; `dy` is one image of `g`, `dyt` holds `c_out
/// * q` values, `db` `c_out`, `g.c_out` is a multiple of 16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn transpose_dy(g: &ConvGeom, dy: &[f32], dyt: &mut [u16], mut db: Option<&mut [f32]>) {
    use core::arch::x86_64::*;
    let (w, q, _) = grid(g);
    let co_n = g.c_out;
    for oh in 0..g.h_out {
        for ow0 in (0..w).step_by(16) {
            let keep = ((1u32 << (w - ow0).min(16)) - 1) as u16;
            let pixels = g.w_out.saturating_sub(ow0).min(16);
            for co0 in (0..co_n).step_by(16) {
                let mut r: [__m512; 16] = core::array::from_fn(|t| {
                    // SAFETY: pixel (oh, ow0 + t) of dy, 16 channels from co0 < c_out.
                    if t < pixels {
                        _mm512_loadu_ps(dy.as_ptr().add((oh * g.w_out + ow0 + t) * co_n + co0))
                    } else {
                        _mm512_setzero_ps()
                    }
                });
                if let Some(db) = db.as_deref_mut() {
                    // SAFETY: 16 of db's c_out values from co0.
                    let at = db.as_mut_ptr().add(co0);
                    let sum = r[..pixels].iter().fold(_mm512_loadu_ps(at), |acc, row| _mm512_add_ps(acc, *row));
                    _mm512_storeu_ps(at, sum);
                }
                crate::micro::transpose16(&mut r);
                for (c, v) in r.iter().enumerate() {
                    let v = core::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(*v));
                    // SAFETY: row co0 + c, grid columns ow0.. of row oh, inside it (`keep`).
                    _mm256_mask_storeu_epi16(dyt.as_mut_ptr().add((co0 + c) * q + oh * w + ow0).cast(), keep, v);
                }
            }
        }
    }
    for row in dyt.chunks_exact_mut(q) {
        row[g.h_out * w..].fill(0);
    }
}

/// The sums of one image's products (its pair copies in `pairs`, dy transposed in `dyt`)
/// added to those at `from` (zero if `None`), stored to `to` (which may be `from`).
/// # Safety
/// As `weight_grad` after its setup, with `pairs` and `dyt` filled. A rows: 32 bf16 of dyt
/// row co < c_out from q0 < q; B rows: pairs (q0 + offset) / 2 + r, r < 16, of one parity
/// copy (inside its np: `grid`), 16 input channels from ci0 < c_in; sum rows: 16 input
/// channels of row (tap, co) of `from` and `to` (each `w_len` long). A, B and `from` rows on cache
/// lines (`weight_parts`). A pair of blocks beyond the last (an odd count) repeats the last:
/// summed and stored with the same values twice.
unsafe fn weight_grad_tiles(g: &ConvGeom, pairs: &[u32], dyt: &[u16], from: Option<*const f32>, to: *mut f32) {
    let (k, s, ci_n, co_n) = (g.k, g.stride, g.c_in, g.c_out);
    let (w, q, np) = grid(g);
    let (a_stride, b_stride, c_stride) = (q * 2, ci_n * 4, ci_n * 4);
    let cfg = config(16);
    asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack, readonly));
    for kh in 0..k {
        for kw in 0..k {
            let tap = kh * k + kw;
            // The tap's pairs: those of its phase plane, in the copy of its offset's parity,
            // from the pair its offset starts.
            let offset = (kh / s) * w + kw / s;
            let copy = (((kh % s) * s + kw % s) * 2 + offset % 2) * np;
            let rows = pairs.as_ptr().add((copy + offset / 2) * ci_n);
            for co0 in (0..co_n).step_by(32) {
                let co1 = (co0 + 16).min(co_n - 16);
                for ci0 in (0..ci_n).step_by(32) {
                    let ci1 = (ci0 + 16).min(ci_n - 16);
                    let at =
                        [(co0, ci0), (co0, ci1), (co1, ci0), (co1, ci1)].map(|(co, ci)| (tap * co_n + co) * ci_n + ci);
                    match from {
                        Some(f) => load_sums(at.map(|i| f.add(i)), c_stride),
                        None => zero_sums(),
                    }
                    for q0 in (0..q).step_by(32) {
                        let a = [dyt.as_ptr().add(co0 * q + q0), dyt.as_ptr().add(co1 * q + q0)];
                        let b = [rows.add(q0 / 2 * ci_n + ci0), rows.add(q0 / 2 * ci_n + ci1)];
                        step(a, a_stride, b, [b_stride; 2]);
                    }
                    store_sums(at.map(|i| to.add(i)), c_stride);
                }
            }
        }
    }
    asm!("tilerelease", options(nostack, nomem));
}

/// Whether `strided_input_grad` runs `g` here: AMX `available`, the sums over output channels
/// in 32s, input channels in 16s, and every phase class's rows in pixel tiles of at least 7.
pub(crate) fn strided_applies(g: &ConvGeom) -> bool {
    g.c_out.is_multiple_of(32)
        && g.c_in.is_multiple_of(16)
        && conv_direct::strided_classes(g).all(|c| c.rows == 0 || pixel_rows(c.cols) >= 7)
        && available()
}

/// The strided input gradient (`conv_direct::backward_input_strided_bf16`, the transposed
/// convolutions' forward) on AMX, from its padded, rounded dy `dyq` and its kernel `wq`
/// (`conv_direct::pack_taps_bf16`): per phase class of dx, two tiles of the class's pixels
/// (A: the dy pixel each reads through a tap, 32 output channels per step) by two tiles of 16
/// input channels (B: rows of output-channel pairs), over the class's taps. Needs
/// `strided_applies(g)`. Overwrites dx.
pub(crate) fn strided_input_grad(g: &ConvGeom, dyq: &[u16], wq: &[u16], dx: &mut [f32]) {
    assert!(strided_applies(g), "amx: strided_input_grad needs AMX and channels in 32s / 16s");
    let (hpd, wpd) = conv_direct::strided_dy_dims(g);
    assert!(dyq.len() >= hpd * wpd * g.c_out && wq.len() == g.w_len() && dx.len() == g.x_len());
    // SAFETY: `available` (in `strided_applies`) means the CPU has AMX and the OS granted its
    // state; `strided_tiles` says why its reads and writes stay inside these slices.
    unsafe { strided_tiles(g, wpd, dyq, wq, dx) }
}

/// # Safety
/// As `strided_input_grad` after its checks. A rows: 32 channels from k0 < c_out of the dy
/// pixel a class pixel reads through a tap (`strided_dy_dims` covers every tap of every dx
/// pixel); B rows: output-channel pair (k0 / 2 + r) of 16 input channels from c (< c_in) in
/// their `strided_blocks` block; sum rows: a dx pixel's 16 channels from c. Tiles beyond the
/// last (odd counts) repeat the last: the same values stored twice.
unsafe fn strided_tiles(g: &ConvGeom, wpd: usize, dyq: &[u16], wq: &[u16], dx: &mut [f32]) {
    let (s, k, ci_n, co_n) = (g.stride, g.k, g.c_in, g.c_out);
    let dxp = dx.as_mut_ptr();
    // Where the B tile of the 16 input channels from c starts (in u16) within a tap's kernel,
    // and its row stride in bytes: its channel block's width of pairs.
    let b_tile = |c: usize| {
        let (ci0, nv) = conv_direct::strided_blocks(g, crate::isa::KernelPath::Avx512)
            .find(|&(ci0, nv)| c < ci0 + 16 * nv)
            .expect("a block holds every channel");
        (ci0 * co_n + (c - ci0) * 2, 16 * nv * 4)
    };
    for class in conv_direct::strided_classes(g).filter(|c| c.rows > 0 && c.cols > 0) {
        let m = pixel_rows(class.cols);
        let per_row = class.cols / m;
        let tiles = class.rows * per_row;
        let first = |t: usize| (t / per_row, (t % per_row) * m);
        let cfg = config(m);
        asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack, readonly));
        for t0 in (0..tiles).step_by(2) {
            let (p0, p1) = (first(t0), first((t0 + 1).min(tiles - 1)));
            for c0 in (0..ci_n).step_by(32) {
                let c1 = (c0 + 16).min(ci_n - 16);
                let ((b0, sb0), (b1, sb1)) = (b_tile(c0), b_tile(c1));
                zero_sums();
                for (th, kh) in (class.a..k).step_by(s).enumerate() {
                    for (tw, kw) in (class.b..k).step_by(s).enumerate() {
                        let tap = wq.as_ptr().add((kh * k + kw) * ci_n * co_n);
                        for k0 in (0..co_n).step_by(32) {
                            // Row i of a B tile is output-channel pair i: width x 2 apart.
                            let pairs = |stride: usize| k0 / 2 * (stride / 2);
                            let pixel = |p| dyq.as_ptr().add(class.dy_pixel(p, th, tw, wpd) * co_n + k0);
                            let w = [tap.add(b0 + pairs(sb0)), tap.add(b1 + pairs(sb1))];
                            step([pixel(p0), pixel(p1)], co_n * 2, w, [sb0, sb1]);
                        }
                    }
                }
                let out = |p: (usize, usize), c: usize| dxp.add(class.dx_pixel(g, p) * ci_n + c);
                store_sums([out(p0, c0), out(p0, c1), out(p1, c0), out(p1, c1)], s * ci_n * 4);
            }
        }
    }
    asm!("tilerelease", options(nostack, nomem));
}

/// Whether `gemm_acc` takes an `m x (2 kp)` by `(2 kp) x n` product here: AMX `available`
/// and every dimension in whole tiles (16 rows, 16 pairs, 16 columns).
pub(crate) fn gemm_applies(m: usize, kp: usize, n: usize) -> bool {
    m.is_multiple_of(16) && kp.is_multiple_of(16) && n.is_multiple_of(16) && m * kp * n > 0 && available()
}

/// c[i * ldc + j] += sum over p < kp of the pair products a[i * lda + p] . b[p * ldb + j], for
/// i < m and j < n: `a` rows of bf16 pairs along the sum, `b` rows of pairs (one per column),
/// as `VDPBF16PS`'s kernels take them; two tiles of 16 rows by two of 16 columns at a time,
/// their sums loaded from c and stored back. Needs `gemm_applies(m, kp, n)`.
/// # Safety
/// Every index above is inside its buffer. Row and column tiles beyond the last (odd counts)
/// repeat the last: the same values loaded, summed and stored twice.
pub(crate) unsafe fn gemm_acc(
    (m, kp, n): (usize, usize, usize),
    (a, lda): (*const u32, usize),
    (b, ldb): (*const u32, usize),
    (c, ldc): (*mut f32, usize),
) {
    assert!(gemm_applies(m, kp, n), "amx: gemm_acc needs AMX and whole tiles");
    let cfg = config(16);
    asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack, readonly));
    for i0 in (0..m).step_by(32) {
        let i1 = (i0 + 16).min(m - 16);
        for j0 in (0..n).step_by(32) {
            let j1 = (j0 + 16).min(n - 16);
            let sums = [c.add(i0 * ldc + j0), c.add(i0 * ldc + j1), c.add(i1 * ldc + j0), c.add(i1 * ldc + j1)];
            load_sums(sums.map(|p| p.cast_const()), ldc * 4);
            for p0 in (0..kp).step_by(16) {
                let rows = [a.add(i0 * lda + p0), a.add(i1 * lda + p0)];
                step(rows, lda * 4, [b.add(p0 * ldb + j0), b.add(p0 * ldb + j1)], [ldb * 4; 2]);
            }
            store_sums(sums, ldc * 4);
        }
    }
    asm!("tilerelease", options(nostack, nomem));
}

/// `dst[j * rows + i] = src[i * cols + j]` for 32-bit elements, 16 x 16 blocks transposed in
/// registers (AVX-512 gathers, 16 rows of a column each, ran slowly here), a block of columns
/// per rayon task: the operand of `gemm_acc` from pairs packed along the other axis, and
/// `weight_grad`'s sums back in the kernel's layout. (Call it outside parallel tasks, as
/// `bf16::round_slice_par`.)
/// # Panics
/// If the lengths are not `rows * cols`, or without AMX (`available`).
pub(crate) fn transpose_pairs(src: &[u32], rows: usize, cols: usize, dst: &mut [u32]) {
    use rayon::prelude::*;
    const COLS_PER_TASK: usize = 16;
    assert!(src.len() == rows * cols && dst.len() == rows * cols, "amx: transpose_pairs lengths");
    assert!(available(), "amx: transpose_pairs needs AVX-512");
    if rows == 0 {
        return;
    }
    dst.par_chunks_mut(COLS_PER_TASK * rows).enumerate().for_each(|(t, d)| {
        // SAFETY: `available` means the CPU has AVX-512 (`bf16::native`); the task's columns
        // are inside src's `cols` and its rows of dst are `d`.
        unsafe { transpose_pairs_avx512(src, rows, cols, t * COLS_PER_TASK, d) }
    });
}

/// Columns `j0..` of `src` (`rows x cols`) into rows of `dst` (`dst.len() / rows` of them, at
/// most 16).
/// # Safety
/// As `transpose_pairs` after its checks: every unmasked load is a row i < rows, column j0 + j
/// < cols, and every unmasked store a row of `d`, i < rows.
#[target_feature(enable = "avx512f")]
unsafe fn transpose_pairs_avx512(src: &[u32], rows: usize, cols: usize, j0: usize, dst: &mut [u32]) {
    use core::arch::x86_64::*;
    let width = dst.len() / rows;
    let columns = ((1u32 << width) - 1) as u16;
    for i0 in (0..rows).step_by(16) {
        let height = (rows - i0).min(16);
        let mut r: [__m512; 16] = core::array::from_fn(|t| {
            if t < height {
                _mm512_castsi512_ps(_mm512_maskz_loadu_epi32(columns, src.as_ptr().add((i0 + t) * cols + j0).cast()))
            } else {
                _mm512_setzero_ps()
            }
        });
        crate::micro::transpose16(&mut r);
        let keep = ((1u32 << height) - 1) as u16;
        for (j, v) in r.iter().enumerate().take(width) {
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(j * rows + i0).cast(), keep, _mm512_castps_si512(*v));
        }
    }
}
