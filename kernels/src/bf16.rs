//! bfloat16 mixed precision (issue 16): the precision a pass runs at, the conversion and the
//! pair dot product of AVX512-BF16, each with the portable twin that defines it, and the
//! machine's bf16 multiply-add peak beside the f32 one (`isa::fma_peak_gflops`).
//!
//! In bf16 a pass rounds its two operands to bf16 and accumulates their products in f32. It
//! runs natively (`VDPBF16PS`) where `native` says so, else emulated: the rounded operands
//! go through the f32 kernels with each channel pair swapped, so every output is the same
//! chain of additions `VDPBF16PS` makes (odd product, then even; each product is exact in
//! f32, so an FMA adds it with the instruction's one rounding). The two agree bit for bit
//! except where a denormal appears (the instruction flushes those to zero).
//!
//! A bf16 is the upper half of an f32: 8 exponent bits and 8 significant bits. `VDPBF16PS`
//! multiplies pairs of bf16 and adds both products to an f32 lane: twice the multiply-adds of an
//! f32 FMA per instruction. The product of two bf16 is exact in f32 (8 + 8 significant bits), so
//! the twins can match the instructions bit for bit; `tests/bf16.rs` checks that they do on
//! every CPU that has the instructions.

use crate::isa::{kernel_path, KernelPath};

/// The precision of the multiply-add passes (convolutions, dense layers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 operands and sums.
    #[default]
    F32,
    /// bf16 operands, f32 sums (see the module doc).
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::Bf16];

    /// The name `--precision`, `bench` and `report.json` use.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| format!("expected f32 or bf16, found {s}"))
    }
}

/// Whether bf16 passes run natively: the kernels run on the AVX-512 path and the CPU has
/// AVX512-BF16. Otherwise they are emulated (same results, f32 speed or a little slower).
pub fn native() -> bool {
    kernel_path() == KernelPath::Avx512 && has_avx512_bf16()
}

/// How bf16 passes run here, as `bench` and `report.json` name it: `native` or `emulated`.
pub fn mode_name() -> &'static str {
    if native() {
        "native"
    } else {
        "emulated"
    }
}

/// `buf` seen as twice as many bf16 slots: scratch for bf16 operands in an f32 work area.
pub fn as_bf16(buf: &mut [f32]) -> &mut [u16] {
    // SAFETY: u16 has a smaller alignment than f32 and every bit pattern is valid for both;
    // the view covers exactly the same bytes and borrows `buf` mutably for its lifetime.
    unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u16>(), buf.len() * 2) }
}

/// `as_bf16` from the first slot on a 64-byte boundary (at most 31 slots in): where rows of
/// whole 64 bytes from there stay on cache lines, as AMX tiles want (`cargo bench --bench
/// probes`: 2,529-2,636 GFLOP/s with the tiles' rows on cache lines, 1,017-1,046 with them 16
/// bytes off).
pub fn as_bf16_aligned(buf: &mut [f32]) -> &mut [u16] {
    let all = as_bf16(buf);
    let skip = all.as_ptr().align_offset(64).min(all.len());
    &mut all[skip..]
}

/// `buf` seen as u32 slots: packed bf16 pairs (the even element low) in an f32 work area.
pub fn as_u32(buf: &mut [f32]) -> &mut [u32] {
    // SAFETY: u32 and f32 have the same size and alignment and every bit pattern is valid
    // for both; the view covers exactly `buf`'s bytes and borrows it mutably.
    unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u32>(), buf.len()) }
}

/// `x` rounded to bf16 and widened back: the value a bf16 operand stands for.
pub fn quantize(x: f32) -> f32 {
    widen(round(x))
}

/// The emulated bf16 operand of a pass whose pairs are runs of `run` values (`run` 1: adjacent
/// values; `run` = a row's length: pairs of rows): every value rounded to bf16, and runs 2i and
/// 2i + 1 swapped, so that an f32 kernel adding in order adds the odd product first, as
/// `VDPBF16PS` does. An odd last run stays where it is.
pub fn quantize_swapped_runs(v: &mut [f32], run: usize) {
    for pair in v.chunks_exact_mut(2 * run) {
        let (even, odd) = pair.split_at_mut(run);
        even.swap_with_slice(odd);
    }
    v.iter_mut().for_each(|x| *x = quantize(*x));
}

/// The native bf16 operand of a pass whose pairs are pairs of rows of `m` (`[rows, cols]`,
/// row-major): `out[q * cols + c]` holds `round(m[2q][c])` in its low half and `round(m[2q +
/// 1][c])` in its high half; an odd last row pairs with zero. On AVX512-BF16 16 columns at a
/// time (`VCVTNEPS2BF16`), else by `round`; the two give the same bits.
/// # Panics
/// If `m` is not whole rows of `cols` or `out` is not `rows.div_ceil(2) * cols` long.
pub fn pack_row_pairs(m: &[f32], cols: usize, out: &mut [u32]) {
    check_row_pairs(m, cols, out);
    for (q, dst) in out.chunks_exact_mut(cols.max(1)).enumerate() {
        pack_pair(&m[2 * q * cols..][..cols], m.get((2 * q + 1) * cols..(2 * q + 2) * cols), dst);
    }
}

/// One row pair of `pack_row_pairs`: `dst[c]` holds `round(lo[c])` in its low half and
/// `round(hi[c])` (or zero) in its high half.
/// # Panics
/// If `lo`, `hi` and `dst` differ in length.
pub(crate) fn pack_pair(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) {
    assert!(lo.len() == dst.len() && hi.is_none_or(|h| h.len() == dst.len()), "bf16::pack_pair: lengths");
    let body = if has_avx512_bf16() {
        // SAFETY: the CPU has AVX512-BF16, AVX512-BW and AVX-512F (BW comes with every
        // AVX512-BF16 CPU: Cooper Lake, Sapphire Rapids, Zen 4); the rows are `dst`'s length.
        unsafe { pack_pair_avx512(lo, hi, dst) }
    } else {
        0
    };
    for c in body..dst.len() {
        dst[c] = u32::from(round(lo[c])) | hi.map_or(0, |h| u32::from(round(h[c])) << 16);
    }
}

/// Values per rayon task of the `_par` conversions: 128 KB of f32, so a 6272 x 128 kernel
/// splits into 25 tasks and a pass's whole-operand rounding runs on every core.
const PAR_CHUNK: usize = 1 << 15;

/// `round_slice` on the rayon pool in fixed chunks (the same bits): for an operand a pass
/// rounds whole before its parallel tasks (never call it inside one).
/// # Panics
/// If the lengths differ.
pub fn round_slice_par(src: &[f32], dst: &mut [u16]) {
    use rayon::prelude::*;
    assert_eq!(src.len(), dst.len(), "bf16::round_slice_par: lengths");
    src.par_chunks(PAR_CHUNK).zip(dst.par_chunks_mut(PAR_CHUNK)).for_each(|(s, d)| round_slice(s, d));
}

/// `pack_row_pairs` on the rayon pool, whole row pairs per task (the same bits), as
/// `round_slice_par`.
/// # Panics
/// As `pack_row_pairs`.
pub fn pack_row_pairs_par(m: &[f32], cols: usize, out: &mut [u32]) {
    use rayon::prelude::*;
    if cols == 0 {
        return pack_row_pairs(m, cols, out);
    }
    // Whole before the split, which would otherwise cut a short `out` silently.
    check_row_pairs(m, cols, out);
    let pairs = (PAR_CHUNK / (2 * cols)).max(1);
    m.par_chunks(2 * pairs * cols).zip(out.par_chunks_mut(pairs * cols)).for_each(|(m, o)| pack_row_pairs(m, cols, o));
}

/// The lengths `pack_row_pairs` needs: `m` whole rows of `cols`, `out` one row per row pair.
fn check_row_pairs(m: &[f32], cols: usize, out: &[u32]) {
    let rows = m.len().checked_div(cols).unwrap_or(0);
    assert_eq!(m.len(), rows * cols, "bf16::pack_row_pairs: m is not whole rows");
    assert_eq!(out.len(), rows.div_ceil(2) * cols, "bf16::pack_row_pairs: out length");
}

/// `pack_row_pairs` for one pair of rows, over the largest multiple of 16 of the columns;
/// returns how many.
/// # Safety
/// The CPU has AVX512-BF16, AVX512-BW and AVX-512F; `lo`, `hi` (when given) and `dst` have one length.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_pair_avx512(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) -> usize {
    use core::arch::x86_64::*;
    let body = dst.len() - dst.len() % 16;
    for c in (0..body).step_by(16) {
        // SAFETY: c + 16 <= body <= every length; unaligned loads and stores.
        // (No closure for the repeated rounding: its intrinsics would not be inlined.)
        unsafe {
            let l: __m256i = core::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(lo.as_ptr().add(c))));
            let h = match hi {
                Some(hi) => {
                    let h: __m256i = core::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(hi.as_ptr().add(c))));
                    _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)
                }
                None => _mm512_setzero_si512(),
            };
            _mm512_storeu_si512(dst.as_mut_ptr().add(c).cast(), _mm512_or_si512(_mm512_cvtepu16_epi32(l), h));
        }
    }
    body
}

/// Whether this CPU has AVX512-BF16 (`VCVTNE2PS2BF16`, `VDPBF16PS`).
pub fn has_avx512_bf16() -> bool {
    KernelPath::Avx512.is_supported() && std::arch::is_x86_feature_detected!("avx512bf16")
}

/// `x` rounded to the nearest bf16, ties to even, as `VCVTNE2PS2BF16` rounds: a NaN stays a
/// NaN (made quiet), a value beyond the largest bf16 becomes an infinity, and a denormal input
/// counts as zero (the instruction's DAZ).
pub fn round(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return (bits >> 16) as u16 | 0x0040;
    }
    if bits & 0x7f80_0000 == 0 {
        return (bits >> 16) as u16 & 0x8000;
    }
    // Adding 0x7fff, plus 1 when the kept part is odd, carries into the kept part exactly when
    // the dropped half is above a tie, or a tie with an odd kept part.
    let bias = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(bias) >> 16) as u16
}

/// The f32 a bf16 stands for (exact).
pub fn widen(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `dst[i] = round(src[i])`: on AVX512-BF16 with `VCVTNE2PS2BF16` 32 values at a time, else
/// by `round`; the two give the same bits.
/// # Panics
/// If the lengths differ.
pub fn round_slice(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "bf16::round_slice: lengths");
    let body = if has_avx512_bf16() {
        // SAFETY: the CPU has AVX512-BF16 and AVX-512F (checked just above).
        unsafe { round_avx512(src, dst) }
    } else {
        0
    };
    for (d, &s) in dst[body..].iter_mut().zip(&src[body..]) {
        *d = round(s);
    }
}

/// Rounds the largest multiple of 32 of `src`'s values into `dst`; returns how many.
/// # Safety
/// The CPU has AVX512-BF16 and AVX-512F; `dst` is as long as `src`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn round_avx512(src: &[f32], dst: &mut [u16]) -> usize {
    use core::arch::x86_64::*;
    let body = src.len() - src.len() % 32;
    for i in (0..body).step_by(32) {
        // SAFETY: i + 32 <= body <= both lengths; unaligned loads and stores.
        unsafe {
            let lo = _mm512_loadu_ps(src.as_ptr().add(i));
            let hi = _mm512_loadu_ps(src.as_ptr().add(i + 16));
            // The second operand fills the lower half of the result.
            let packed = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512(dst.as_mut_ptr().add(i).cast(), core::mem::transmute::<__m512bh, __m512i>(packed));
        }
    }
    body
}

/// `acc[j] += a[2j] b[2j] + a[2j+1] b[2j+1]` for 16 lanes, as `VDPBF16PS` computes it on this
/// CPU when it has the instruction (`pair_dot_acc_avx512`), else in portable code: each product
/// exact, then added to the lane with one rounding each, the odd product first (the order
/// Intel's pseudo-code gives), denormal inputs and results as zero.
pub fn pair_dot_acc(acc: &mut [f32; 16], a: &[u16; 32], b: &[u16; 32]) {
    if has_avx512_bf16() {
        // SAFETY: the CPU has AVX512-BF16 and AVX-512F (checked just above).
        unsafe { pair_dot_acc_avx512(acc, a, b) }
    } else {
        pair_dot_acc_portable(acc, a, b);
    }
}

/// The portable twin of `VDPBF16PS` (see `pair_dot_acc`).
pub fn pair_dot_acc_portable(acc: &mut [f32; 16], a: &[u16; 32], b: &[u16; 32]) {
    let daz = |x: f32| if x.is_subnormal() { 0.0f32.copysign(x) } else { x };
    for (j, lane) in acc.iter_mut().enumerate() {
        let odd = widen(a[2 * j + 1]) * widen(b[2 * j + 1]);
        let even = widen(a[2 * j]) * widen(b[2 * j]);
        *lane = daz(daz(daz(*lane) + odd) + even);
    }
}

/// `VDPBF16PS` on one vector.
/// # Safety
/// The CPU has AVX512-BF16 and AVX-512F.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn pair_dot_acc_avx512(acc: &mut [f32; 16], a: &[u16; 32], b: &[u16; 32]) {
    use core::arch::x86_64::*;
    // SAFETY: the arrays hold exactly one 512-bit vector each; unaligned loads and stores.
    unsafe {
        let va: __m512bh = core::mem::transmute(_mm512_loadu_si512(a.as_ptr().cast()));
        let vb: __m512bh = core::mem::transmute(_mm512_loadu_si512(b.as_ptr().cast()));
        let r = _mm512_dpbf16_ps(_mm512_loadu_ps(acc.as_ptr()), va, vb);
        _mm512_storeu_ps(acc.as_mut_ptr(), r);
    }
}

/// The machine's bf16 multiply-add peak in GFLOP/s (a multiply-add counts 2, as for f32): a
/// register-only loop of 12 independent chains of `VDPBF16PS`, measured as
/// `isa::fma_peak_gflops` is (one thread or every thread of the rayon pool, best of 15).
/// `None` without AVX512-BF16.
pub fn peak_gflops(all_threads: bool) -> Option<f64> {
    // The multiply-adds of one `fma_peak_gflops` try: about 15 ms at the bf16 rate here.
    const ITERS: u64 = 1 << 21;
    if !has_avx512_bf16() {
        return None;
    }
    // 12 chains x 32 multiply-adds x 2 flops per instruction.
    let flops_per_thread = (ITERS * 12 * 64) as f64;
    // SAFETY: the CPU has AVX512-BF16 and AVX-512F (checked above).
    let one = || unsafe { dp_loop(ITERS) };
    Some(crate::isa::best_rate(all_threads, flops_per_thread, one))
}

/// # Safety
/// The CPU has AVX512-BF16 and AVX-512F.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn dp_loop(iters: u64) -> f32 {
    use core::arch::x86_64::*;
    let a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.999), _mm512_set1_ps(0.999));
    let b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-7), _mm512_set1_ps(1e-7));
    crate::isa::chains_512!(iters, |c| _mm512_dpbf16_ps(*c, a, b))
}
