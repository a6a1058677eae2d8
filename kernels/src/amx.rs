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
//! gradient (`strided_input_grad`), the weight gradient (`weight_grad_acc`) and the dense
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

/// Whether `weight_grad_acc` runs `g` here: AMX `available`, channels in 16s.
pub(crate) fn weight_grad_applies(g: &ConvGeom) -> bool {
    g.c_in.is_multiple_of(16) && g.c_out.is_multiple_of(16) && available()
}

/// The pixel grid of `weight_grad_acc`: `(w, q, l)`, its row width (a phase plane's, made
/// even so that no pixel pair straddles two rows), its pixels (dy's rows on that grid, in
/// whole tile steps of 32) and the length of a channel's row of a transposed plane (every
/// tap's window of every grid pixel inside it).
fn grid(g: &ConvGeom) -> (usize, usize, usize) {
    let (hp, wp) = conv_direct::padded_dims(g);
    let w = wp.div_ceil(g.stride).next_multiple_of(2);
    let q = (g.h_out * w).next_multiple_of(32);
    let reach = (g.k - 1) / g.stride;
    (w, q, (q + reach * (w + 1)).max(hp.div_ceil(g.stride) * w))
}

/// Scratch (in f32 slots) of `weight_grad_acc`: the transposed phase planes and packed dy.
pub(crate) fn weight_work_len(g: &ConvGeom) -> usize {
    let (_, q, l) = grid(g);
    (g.stride * g.stride * g.c_in * l).div_ceil(2) + q / 2 * g.c_out
}

/// dw[kh, kw, ci, co] += sum over the pixels p of x_padded[s p + (kh, kw), ci] dy[p, co] for
/// one image on AMX (`weight_grad_applies`), stride s: `xq` its padded image from
/// `conv_direct::pad_input_bf16`. The image is split into s x s phase planes (plane (a, b)
/// holds padded pixels (s i + a, s j + b)), each transposed (a row per input channel). On the
/// grid of `grid` (dy zero past each row's `w_out` pixels), tap (kh, kw)'s window of grid
/// pixel q is pixel q + (kh / s) w + kw / s of plane (kh % s, kw % s), so each tap is one
/// product of a transposed plane (A: an input channel per row, 32 pixels per step, from the
/// tap's offset) by dy in pixel pairs (B: `[q / 2][c_out]` pairs), added to dw's rows (ci)
/// as they are. `work` holds `weight_work_len(g)`.
pub(crate) fn weight_grad_acc(g: &ConvGeom, xq: &[u16], dy: &[f32], work: &mut [f32], dw: &mut [f32]) {
    assert!(weight_grad_applies(g), "amx: weight_grad_acc needs AMX and channels in 16s");
    assert!(xq.len() >= conv_direct::padded_len(g) && dy.len() == g.y_len() && dw.len() == g.w_len());
    assert!(work.len() >= weight_work_len(g), "amx: weight gradient work area");
    let (w, q, l) = grid(g);
    let ((hp, wp), s) = (conv_direct::padded_dims(g), g.stride);
    let (ci_n, co_n) = (g.c_in, g.c_out);
    let planes_len = s * s * ci_n * l;
    let (xt, dyq) = work.split_at_mut(planes_len.div_ceil(2));
    let xt = &mut bf16::as_bf16(xt)[..planes_len];
    // The transposed planes: row (plane, ci) holds channel ci of each of the plane's rows, w
    // wide (zeros past its pixels), then zeros.
    assert!(i32::try_from(hp * wp * ci_n).is_ok(), "amx: image too large for 32-bit gather indices");
    for (a, b) in (0..s).flat_map(|a| (0..s).map(move |b| (a, b))) {
        let plane = &mut xt[(a * s + b) * ci_n * l..][..ci_n * l];
        // SAFETY: the CPU has AVX-512 (`available` means `bf16::native`); `transpose_plane`
        // reads pixels of the (hp, wp) image and writes the plane's ci_n rows of l.
        unsafe { transpose_plane(xq, (hp, wp, ci_n), (s, a, b), (w, l), plane) };
    }
    // dy on the grid in pixel pairs; zeros past each row's w_out pixels and past the last row.
    let dyq = &mut bf16::as_u32(dyq)[..q / 2 * co_n];
    dyq.fill(0);
    for (oh, src) in dy.chunks_exact(g.w_out * co_n).enumerate() {
        for ow in (0..g.w_out).step_by(2) {
            let pixel = |c: usize| src.get(c * co_n..(c + 1) * co_n);
            let (lo, hi) = (pixel(ow).expect("a pixel of the row"), pixel(ow + 1));
            bf16::pack_pair(lo, hi, &mut dyq[(oh * w + ow) / 2 * co_n..][..co_n]);
        }
    }
    // SAFETY: `available` (in `weight_grad_applies`) means the CPU has AMX and the OS granted
    // its state; `weight_grad_tiles` says why its reads and writes stay inside these slices.
    unsafe { weight_grad_tiles(g, (w, q, l), xt, dyq, dw) }
}

/// Phase plane (a, b) of stride s of the padded image `xq` (`[hp, wp, ci_n]` bf16), its
/// channels as rows of `l` (`plane`, `ci_n * l` long): row ci holds, w wide per plane row,
/// channel ci of pixels (s i + a, s j + b), zeros past the plane's columns, then zeros after
/// its last row. A gather loads a channel pair of 16 pixels at once (one u32 each), whose
/// halves are the two channels' 16 values.
/// # Safety
/// The CPU has AVX-512F, BW and VL; `xq` holds the image, `plane` its `ci_n * l` values, ci_n
/// is even and w >= the plane's columns, `l` >= its rows times w, and `hp * wp * ci_n` fits in
/// an i32.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn transpose_plane(
    xq: &[u16],
    (hp, wp, ci_n): (usize, usize, usize),
    (s, a, b): (usize, usize, usize),
    (w, l): (usize, usize),
    plane: &mut [u16],
) {
    use core::arch::x86_64::*;
    let (rows, cols) = ((hp - a).div_ceil(s), (wp - b).div_ceil(s));
    let (src, dst) = (xq.as_ptr().cast::<i32>(), plane.as_mut_ptr());
    // Lane t reads pixel j0 + t of the row: s pixels, s ci_n / 2 pairs, apart.
    let lanes = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32((s * ci_n / 2) as i32),
    );
    for i in 0..rows {
        let r = s * i + a;
        for j0 in (0..w).step_by(16) {
            let (take, keep) = (cols.saturating_sub(j0).min(16), (w - j0).min(16));
            let (gather, store) = ((1u32 << take) - 1, (1u32 << keep) - 1);
            let first = _mm512_set1_epi32(((r * wp + s * j0 + b) * ci_n / 2) as i32);
            for cp in 0..ci_n / 2 {
                let idx = _mm512_add_epi32(_mm512_add_epi32(first, lanes), _mm512_set1_epi32(cp as i32));
                // SAFETY: the unmasked lanes are pixels (r, s j + b) with j < cols, inside xq.
                let v = _mm512_mask_i32gather_epi32::<4>(_mm512_setzero_si512(), gather as u16, idx, src);
                let at = dst.add(2 * cp * l + i * w + j0);
                // SAFETY: `keep` lanes from column j0 stay inside row i (w wide) of rows 2cp
                // and 2cp + 1.
                _mm256_mask_storeu_epi16(at.cast(), store as u16, _mm512_cvtepi32_epi16(v));
                _mm256_mask_storeu_epi16(
                    at.add(l).cast(),
                    store as u16,
                    _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(v)),
                );
            }
        }
    }
    for row in plane.chunks_exact_mut(l) {
        row[rows * w..].fill(0);
    }
}

/// # Safety
/// As `weight_grad_acc` after its setup. A rows: 32 bf16 of plane row (plane, ci), ci < c_in,
/// from q0 + (kh / s) w + kw / s, at most q - 1 + ((k - 1) / s)(w + 1) < l; B rows: the pairs of 16 output channels from
/// co0 (< c_out) of pixel pair (q0 / 2 + r) < q / 2; sum rows: dw's 16 channels from co0 of row
/// (tap, ci). A pair of blocks beyond the last (an odd count) repeats the last: loaded, summed
/// and stored with the same values twice.
unsafe fn weight_grad_tiles(g: &ConvGeom, (w, q, l): (usize, usize, usize), xt: &[u16], dyq: &[u32], dw: &mut [f32]) {
    let (k, s, ci_n, co_n) = (g.k, g.stride, g.c_in, g.c_out);
    let (a_stride, b_stride, c_stride) = (l * 2, co_n * 4, co_n * 4);
    let cfg = config(16);
    let dwp = dw.as_mut_ptr();
    asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack, readonly));
    for kh in 0..k {
        for kw in 0..k {
            let tap = kh * k + kw;
            // The tap's channel rows: those of its phase plane, from its offset.
            let rows = xt.as_ptr().add(((kh % s) * s + kw % s) * ci_n * l + (kh / s) * w + kw / s);
            for ci0 in (0..ci_n).step_by(32) {
                let ci1 = (ci0 + 16).min(ci_n - 16);
                for co0 in (0..co_n).step_by(32) {
                    let co1 = (co0 + 16).min(co_n - 16);
                    let sum = |ci: usize, co: usize| dwp.add((tap * ci_n + ci) * co_n + co);
                    let sums = [sum(ci0, co0), sum(ci0, co1), sum(ci1, co0), sum(ci1, co1)];
                    load_sums(sums.map(|p| p.cast_const()), c_stride);
                    for q0 in (0..q).step_by(32) {
                        let b = [dyq.as_ptr().add(q0 / 2 * co_n + co0), dyq.as_ptr().add(q0 / 2 * co_n + co1)];
                        step([rows.add(ci0 * l + q0), rows.add(ci1 * l + q0)], a_stride, b, [b_stride; 2]);
                    }
                    store_sums(sums, c_stride);
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

/// `dst[j * rows + i] = src[i * cols + j]` for 32-bit elements (bf16 pairs), 16 rows of a
/// column per gather, a block of columns per rayon task: the operand of `gemm_acc` from pairs
/// packed along the other axis. (Call it outside parallel tasks, as `bf16::round_slice_par`.)
/// # Panics
/// If the lengths are not `rows * cols`, or the indices do not fit an i32.
pub(crate) fn transpose_pairs(src: &[u32], rows: usize, cols: usize, dst: &mut [u32]) {
    use rayon::prelude::*;
    const COLS_PER_TASK: usize = 16;
    assert!(src.len() == rows * cols && dst.len() == rows * cols, "amx: transpose_pairs lengths");
    assert!(i32::try_from(src.len()).is_ok() && available(), "amx: transpose_pairs needs AVX-512 and 32-bit indices");
    if rows == 0 {
        return;
    }
    dst.par_chunks_mut(COLS_PER_TASK * rows).enumerate().for_each(|(t, d)| {
        // SAFETY: `available` means the CPU has AVX-512 (`bf16::native`); the task's columns
        // are inside src's `cols` and its rows of dst are `d`.
        unsafe { transpose_pairs_avx512(src, rows, cols, t * COLS_PER_TASK, d) }
    });
}

/// Columns `j0..` of `src` (`rows x cols`) into rows of `dst` (`dst.len() / rows` of them).
/// # Safety
/// As `transpose_pairs` after its checks: every unmasked gather lane is a row i < rows of a
/// column j0 + j < cols.
#[target_feature(enable = "avx512f")]
unsafe fn transpose_pairs_avx512(src: &[u32], rows: usize, cols: usize, j0: usize, dst: &mut [u32]) {
    use core::arch::x86_64::*;
    let lanes = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32(cols as i32),
    );
    for i0 in (0..rows).step_by(16) {
        let mask = ((1u32 << (rows - i0).min(16)) - 1) as u16;
        for j in 0..dst.len() / rows {
            let idx = _mm512_add_epi32(lanes, _mm512_set1_epi32((i0 * cols + j0 + j) as i32));
            let v = _mm512_mask_i32gather_epi32::<4>(_mm512_setzero_si512(), mask, idx, src.as_ptr().cast());
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(j * rows + i0).cast(), mask, v);
        }
    }
}
