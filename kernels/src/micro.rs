//! The register tile every matrix-shaped pass (convolutions, their gradients, dense layers)
//! runs on, written once over a vector type `S: Simd` and compiled for each instruction set
//! the dispatcher (`crate::isa`) can choose at run time.
//!
//! A tile holds `M x L NV` outputs (`L = S::LANES`) in `M * NV` accumulators and adds rank-1
//! updates `a[j] * b[0..L NV]`: one vector load of `b` per `L` lanes, one broadcast of `a[j]`
//! per row. With AVX2's 16 registers the widest tile that does not spill is 6 x 16 (12
//! accumulators, 2 rows of `b`, 1 broadcast), as in BLIS's Haswell kernel; AVX-512 runs the
//! same 6 x 2 vectors at 16 lanes (6 x 32), half the instructions per multiply-add, and 6 x
//! 4 where there are 64 or more channels. Where a tile's rows are evenly spaced (pixels of
//! one image row), AVX-512 runs tall tiles of up to 14 x 2 vectors (`tall_tile`) addressed
//! from one pointer. The callers split rows into chunks of at most `MAX_M`, or `TALL_M`.
//!
//! Inner loops index raw pointers: the public kernels check every slice length once at entry,
//! and each tile's reads and writes stay inside the ranges those checks cover (argued at each
//! kernel). This removed the per-FMA bounds checks and stack reloads of the slice-based loop.

// Indexed loops over the tile's rows and lanes keep the accumulator array in registers.
#![allow(clippy::needless_range_loop)]

use crate::isa::KernelPath;
use core::arch::x86_64::*;

/// Rows per tile: 6 x 16 fills AVX2's 16 registers without spilling.
pub(crate) const MAX_M: usize = 6;

/// Tile rows per block of a minimal-filtering pass (`winograd`, `winograd_transpose`), whose
/// point products run over a block's tiles: at least `rows`, and enough for 12 tiles (a 7-wide
/// image has 4 tiles per row, which short register tiles of 4 rows would run at half their
/// width).
pub(crate) fn block_rows(rows: usize, tiles_per_row: usize) -> usize {
    rows.max(12usize.div_ceil(tiles_per_row))
}

/// Columns per block of a matrix whose rows register tiles of at most `widest` vectors read as
/// their vectors (a minimal-filtering pass's transformed kernel), at `blocked_at`: one tile's
/// width, so that the rows a tile reads lie in one run. 16 on AVX2 (and portable): rows
/// 256-512 bytes apart fell out of L1 and the 512 KB L2 of AMD Zen 3, and the tiles waited on
/// their loads. On AVX-512, 32 where the tiles are at most 2 vectors wide (the transposed
/// passes', `winograd_transpose`) and the rows are 512 bytes or more apart: such rows fall in
/// one of L1's sets in eight (64 sets of 64-byte lines), so the 16 KB a tile reads of a 128 x
/// 128 plane did not stay in L1 for the next tile. On an Intel Xeon (2 MB L2), `bench
/// --layers`, modified, 5 rounds alternated, the 7 x 7 128 -> 128 layer's backward pass
/// 16.7 -> 15.7 ms on 1 thread and 9.2 -> 8.8 on 2; 32 for the 64-wide planes too ran
/// within noise. Else the whole width (`winograd`'s tiles of 4 vectors: row-major).
pub(crate) fn column_block(path: KernelPath, cols: usize, widest: usize) -> usize {
    match path {
        KernelPath::Avx512 if widest <= 2 && cols >= 128 && cols.is_multiple_of(32) => 32,
        KernelPath::Avx512 => cols,
        KernelPath::Avx2 | KernelPath::Portable => 16,
    }
}

/// Where element (r, c) of a `rows x cols` matrix is on `path` for tiles of at most `widest`
/// vectors: in column blocks of `column_block` columns (`cols` a multiple), each `rows` rows
/// of that width.
pub(crate) fn blocked_at(
    path: KernelPath,
    widest: usize,
    (r, c): (usize, usize),
    (rows, cols): (usize, usize),
) -> usize {
    let bw = column_block(path, cols, widest);
    c / bw * bw * rows + r * bw + c % bw
}

/// Where a register tile over columns `c0..` of a `rows x cols` matrix laid out at
/// `blocked_at` reads its first row, and how far apart its rows are.
pub(crate) fn column_run(path: KernelPath, widest: usize, c0: usize, (rows, cols): (usize, usize)) -> (usize, usize) {
    (blocked_at(path, widest, (0, c0), (rows, cols)), column_block(path, cols, widest))
}

/// What a pass does to each output as it stores it, in the order of the epilogue it stands for
/// (`conv2d::Epilogue`, whose passes over the stored image it saves): add the bias where
/// given, then ReLU with `relu`.
#[derive(Clone, Copy)]
pub(crate) struct Finish<'a> {
    pub bias: Option<&'a [f32]>,
    pub relu: bool,
}

impl Finish<'_> {
    /// Output vector `v` as stored, `bias` the bias's vector for its channels (loaded once for
    /// the outputs that share it).
    #[inline(always)]
    pub unsafe fn vector<S: Simd>(self, v: S::V, bias: Option<S::V>) -> S::V {
        let v = match bias {
            Some(b) => S::add(v, b),
            None => v,
        };
        if self.relu {
            S::keep_where_positive(v, v)
        } else {
            v
        }
    }
}

/// Rows of a tall tile (`tall_tile`): 14 x 2 vectors fill AVX-512's 32 registers (28
/// accumulators, 2 kernel vectors, a broadcast), and 14 divides the models' widths 28 and 14.
pub(crate) const TALL_M: usize = 14;

/// Rows of a tall tile over a run of `width` rows, each `stride` elements after the one
/// before, at `nv` vectors on `path`: 14, 12, 8 or 7 rows that divide the run (pixels of one
/// image row: 28 or 14 wide -> 14, 7 -> 7; a weight gradient's kernel row of 3 x 32 (kw,
/// ci) -> 12; the 32 input channels of a Winograd weight gradient -> 8), whose addresses are
/// constant offsets from one pointer (`Strided`). `None`
/// where that does not apply (other paths, runs, strides, or wider blocks): those run
/// `MAX_M`-row tiles with a pointer per row.
///
/// Why: on a CPU with two 512-bit FMA ports (Intel Xeon) a 6 x 2 tile issues 6 broadcasts
/// per 12 FMAs and ran the 32-channel convolutions at 53% of the FMA peak; 12 or 14 separate
/// row pointers do not fit the 16 general registers (the spilled ones were reloaded every
/// step, and the weight gradient fell to 28%).
pub(crate) fn tall_tile(path: KernelPath, nv: usize, width: usize, stride: usize) -> Option<usize> {
    let fits = path == KernelPath::Avx512 && nv <= 2 && matches!(stride, 1 | 16 | 32 | 64 | 128);
    [TALL_M, 12, 8, TALL_M / 2].into_iter().find(|&m| fits && width.is_multiple_of(m))
}

/// Where the rows of a tile read their operand (`E`: f32, or u32 holding a bf16 pair).
pub(crate) trait Rows<E, const M: usize>: Copy {
    /// Row j's element at `offset`.
    /// # Safety
    /// The element is inside the allocation the rows point into.
    unsafe fn at(self, j: usize, offset: usize) -> *const E;
    /// Every row moved by `n` elements (pointer arithmetic only; reads are checked by `at`'s
    /// callers).
    fn moved(self, n: isize) -> Self;
}

/// Each row its own pointer.
impl<E, const M: usize> Rows<E, M> for [*const E; M] {
    #[inline(always)]
    unsafe fn at(self, j: usize, offset: usize) -> *const E {
        self[j].add(offset)
    }
    #[inline(always)]
    fn moved(self, n: isize) -> Self {
        self.map(|p| p.wrapping_offset(n))
    }
}

/// Rows `RS` elements apart from one pointer: pixels side by side in an image row.
pub(crate) struct Strided<E, const RS: usize>(pub *const E);

impl<E, const RS: usize> Clone for Strided<E, RS> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E, const RS: usize> Copy for Strided<E, RS> {}

impl<E, const M: usize, const RS: usize> Rows<E, M> for Strided<E, RS> {
    #[inline(always)]
    unsafe fn at(self, j: usize, offset: usize) -> *const E {
        self.0.add(j * RS + offset)
    }
    #[inline(always)]
    fn moved(self, n: isize) -> Self {
        Strided(self.0.wrapping_offset(n))
    }
}

/// The vector operations a tile needs, `LANES` f32 lanes wide.
/// # Safety
/// The methods use the instructions of their type: call them only when `crate::isa` says
/// the CPU has them, through `crate::isa::dispatch!`.
pub(crate) trait Simd: Copy {
    type V: Copy;
    /// The path whose instructions these are.
    const PATH: KernelPath;
    const LANES: usize = Self::PATH.lanes();
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// All lanes set to `*p`.
    unsafe fn splat(p: *const f32) -> Self::V;
    /// a * b + c (fused where the instruction set has it).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// `v` where `y > 0`, else +0 (`0 < y ? v : 0`: a NaN or -0 `y` gives +0): ReLU
    /// (`y = v`) and its gradient, as a compare and a mask. The scalar select these loops were
    /// compiled from became masked stores of zero, which AVX2 runs as `VMASKMOVPS`,
    /// microcoded on AMD Zen (5.5% of the samples of a one-thread modified bench on Zen 3).
    unsafe fn keep_where_positive(v: Self::V, y: Self::V) -> Self::V;
    /// The sum of the lanes, in a fixed order.
    unsafe fn sum(v: Self::V) -> f32;
    /// The sums of the lanes of 8 vectors, each in a fixed order: `sum` of each, unless the
    /// path has a faster way.
    #[inline(always)]
    unsafe fn sums8(v: [Self::V; 8], out: *mut f32) {
        for (j, v) in v.into_iter().enumerate() {
            *out.add(j) = Self::sum(v);
        }
    }
    /// out[c * ld + j] = block[j][c]: a 16 x 16 block stored transposed, a row of `out` per
    /// column of the block, element by element unless the path has a faster way.
    #[inline(always)]
    unsafe fn store_transposed16(block: &[[f32; 16]; 16], out: *mut f32, ld: usize) {
        for c in 0..16 {
            for (j, row) in block.iter().enumerate() {
                *out.add(c * ld + j) = row[c];
            }
        }
    }
}

/// AVX2 + FMA (x86-64-v3).
#[derive(Clone, Copy)]
pub(crate) struct Avx2;

impl Simd for Avx2 {
    type V = __m256;
    const PATH: KernelPath = KernelPath::Avx2;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m256 {
        _mm256_broadcast_ss(&*p)
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn keep_where_positive(v: __m256, y: __m256) -> __m256 {
        _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_GT_OQ>(y, _mm256_setzero_ps()))
    }
    #[inline(always)]
    unsafe fn sum(v: __m256) -> f32 {
        let mut l = [0.0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), v);
        lane_sum(l)
    }
}

/// AVX-512F (x86-64-v4): 16 lanes and 32 registers.
#[derive(Clone, Copy)]
pub(crate) struct Avx512;

impl Simd for Avx512 {
    type V = __m512;
    const PATH: KernelPath = KernelPath::Avx512;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> __m512 {
        _mm512_set1_ps(*p)
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        _mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn keep_where_positive(v: __m512, y: __m512) -> __m512 {
        _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, _mm512_setzero_ps()), v)
    }
    #[inline(always)]
    unsafe fn sum(v: __m512) -> f32 {
        let mut l = [0.0f32; 16];
        _mm512_storeu_ps(l.as_mut_ptr(), v);
        let (lo, hi) = (l[..8].try_into().expect("8 lanes"), l[8..].try_into().expect("8 lanes"));
        lane_sum(lo) + lane_sum(hi)
    }
    /// Transposes while it adds (halves of 512, then of 256, then of 128 bits): 24
    /// instructions for the 8 sums, where `sum` takes ~32 for each.
    #[inline(always)]
    unsafe fn sums8(v: [__m512; 8], out: *mut f32) {
        // Blocks of 128 bits: [a0 + a2, a1 + a3, b0 + b2, b1 + b3] for the pairs (a, b).
        let half = |a, b| _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(a, b), _mm512_shuffle_f32x4::<0xEE>(a, b));
        let s = [half(v[0], v[1]), half(v[2], v[3]), half(v[4], v[5]), half(v[6], v[7])];
        // Block k of t0 is pixel k's 4 partial sums, of t1 pixel k + 4's.
        let quarter = |a, b| _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(a, b), _mm512_shuffle_f32x4::<0xDD>(a, b));
        let (t0, t1) = (quarter(s[0], s[1]), quarter(s[2], s[3]));
        // Per block: [k: x0 + x2, k + 4: x0 + x2, k: x1 + x3, k + 4: x1 + x3], then the halves
        // added: lanes 0 and 1 of block k hold the sums of pixels k and k + 4.
        let u = _mm512_add_ps(_mm512_unpacklo_ps(t0, t1), _mm512_unpackhi_ps(t0, t1));
        let u = _mm512_add_ps(u, _mm512_shuffle_ps::<0x4E>(u, u));
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
        _mm256_storeu_ps(out, _mm512_castps512_ps256(_mm512_permutexvar_ps(order, u)));
    }
    /// In registers: 16 loads, the shuffles of `transpose16`, 16 stores.
    #[inline(always)]
    unsafe fn store_transposed16(block: &[[f32; 16]; 16], out: *mut f32, ld: usize) {
        let mut r: [__m512; 16] = core::array::from_fn(|j| _mm512_loadu_ps(block[j].as_ptr()));
        transpose16(&mut r);
        for (c, v) in r.iter().enumerate() {
            _mm512_storeu_ps(out.add(c * ld), *v);
        }
    }
}

/// The 16 x 16 matrix of 32-bit elements in `r` (a row per register) transposed in place:
/// pairs, then quads within 128-bit lanes, then the lanes themselves (AMX's operands and
/// `Simd::store_transposed16`).
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn transpose16(r: &mut [__m512; 16]) {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // r[4 i + k], 128-bit lane l: column 4 l + k of rows 4 i .. 4 i + 4.
    for i in 0..4 {
        r[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
    }
    for k in 0..4 {
        t[k] = _mm512_shuffle_f32x4::<0x88>(r[k], r[4 + k]);
        t[4 + k] = _mm512_shuffle_f32x4::<0xDD>(r[k], r[4 + k]);
        t[8 + k] = _mm512_shuffle_f32x4::<0x88>(r[8 + k], r[12 + k]);
        t[12 + k] = _mm512_shuffle_f32x4::<0xDD>(r[8 + k], r[12 + k]);
    }
    for k in 0..4 {
        r[k] = _mm512_shuffle_f32x4::<0x88>(t[k], t[8 + k]);
        r[8 + k] = _mm512_shuffle_f32x4::<0xDD>(t[k], t[8 + k]);
        r[4 + k] = _mm512_shuffle_f32x4::<0x88>(t[4 + k], t[12 + k]);
        r[12 + k] = _mm512_shuffle_f32x4::<0xDD>(t[4 + k], t[12 + k]);
    }
}

/// Any x86-64 CPU: `wide`'s portable 8-lane type (SSE2 pairs without compile-time AVX), with
/// an unfused multiply-add where the target has no FMA.
#[derive(Clone, Copy)]
pub(crate) struct Portable;

impl Simd for Portable {
    type V = wide::f32x8;
    const PATH: KernelPath = KernelPath::Portable;
    #[inline(always)]
    unsafe fn zero() -> wide::f32x8 {
        wide::f32x8::ZERO
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> wide::f32x8 {
        wide::f32x8::from(p.cast::<[f32; 8]>().read_unaligned())
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: wide::f32x8) {
        p.cast::<[f32; 8]>().write_unaligned(v.to_array())
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> wide::f32x8 {
        wide::f32x8::splat(*p)
    }
    #[inline(always)]
    unsafe fn fma(a: wide::f32x8, b: wide::f32x8, c: wide::f32x8) -> wide::f32x8 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn add(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a - b
    }
    #[inline(always)]
    unsafe fn keep_where_positive(v: wide::f32x8, y: wide::f32x8) -> wide::f32x8 {
        use wide::CmpGt;
        v & y.cmp_gt(wide::f32x8::ZERO)
    }
    #[inline(always)]
    unsafe fn sum(v: wide::f32x8) -> f32 {
        lane_sum(v.to_array())
    }
}

/// Pairwise sum of 8 lanes; every path uses this order.
#[inline(always)]
fn lane_sum(l: [f32; 8]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// `M x L NV` accumulators (`L = S::LANES`): row j, lanes `L v .. L v + L`.
pub(crate) struct Tile<S: Simd, const M: usize, const NV: usize> {
    acc: [[S::V; NV]; M],
}

impl<S: Simd, const M: usize, const NV: usize> Tile<S, M, NV> {
    #[inline(always)]
    pub unsafe fn zero() -> Self {
        Tile { acc: [[S::zero(); NV]; M] }
    }

    /// Every row set to `row[0 .. L NV]` (a bias).
    #[inline(always)]
    pub unsafe fn rows_of(row: *const f32) -> Self {
        let mut r = [S::zero(); NV];
        for (v, r) in r.iter_mut().enumerate() {
            *r = S::load(row.add(S::LANES * v));
        }
        Tile { acc: [r; M] }
    }

    /// Row j set to c[j * ldc ..][.. L NV] (partial sums stored by an earlier tile).
    #[inline(always)]
    pub unsafe fn load(c: *const f32, ldc: usize) -> Self {
        let mut acc = [[S::zero(); NV]; M];
        for (j, row) in acc.iter_mut().enumerate() {
            for (v, a) in row.iter_mut().enumerate() {
                *a = S::load(c.add(j * ldc + S::LANES * v));
            }
        }
        Tile { acc }
    }

    /// Row j set to c[j][.. L NV] (partial sums `store_at` left there).
    #[inline(always)]
    pub unsafe fn load_at(c: [*mut f32; M]) -> Self {
        Tile { acc: core::array::from_fn(|j| core::array::from_fn(|v| S::load(c[j].add(S::LANES * v)))) }
    }

    /// acc[j] += a[j][offset] * b[.. L NV]: one rank-1 update.
    #[inline(always)]
    unsafe fn update(&mut self, a: impl Rows<f32, M>, offset: usize, b: *const f32) {
        let mut bv = [S::zero(); NV];
        for (v, bv) in bv.iter_mut().enumerate() {
            *bv = S::load(b.add(S::LANES * v));
        }
        for j in 0..M {
            let x = S::splat(a.at(j, offset));
            for v in 0..NV {
                self.acc[j][v] = S::fma(x, bv[v], self.acc[j][v]);
            }
        }
    }

    /// acc[j] += sum over k < len of a[j][k * a_k] * b[k * b_k ..][.. L NV]: `len` rank-1
    /// updates in k order, row j's operand starting at `a[j]`.
    #[inline(always)]
    pub unsafe fn run(&mut self, a: impl Rows<f32, M>, a_k: usize, b: *const f32, b_k: usize, len: usize) {
        for k in 0..len {
            self.update(a, k * a_k, b.add(k * b_k));
        }
    }

    /// acc[j] += sum over k of a[j][offsets[k]] * b[k * b_k ..][.. L NV]: `run` with the
    /// k-th step of `a` read from a table.
    #[inline(always)]
    pub unsafe fn run_offsets(&mut self, a: impl Rows<f32, M>, offsets: &[usize], b: *const f32, b_k: usize) {
        for (k, &o) in offsets.iter().enumerate() {
            self.update(a, o, b.add(k * b_k));
        }
    }

    /// Row pointers `base + j * step` for `run`.
    #[inline(always)]
    pub fn rows<E>(base: *const E, step: usize) -> [*const E; M] {
        core::array::from_fn(|j| base.wrapping_add(j * step))
    }

    /// c[j * ldc ..][.. L NV] <- row j.
    #[inline(always)]
    pub unsafe fn store(&self, c: *mut f32, ldc: usize) {
        for j in 0..M {
            for v in 0..NV {
                S::store(c.add(j * ldc + S::LANES * v), self.acc[j][v]);
            }
        }
    }

    /// c[j][.. L NV] <- row j, each row to its own place.
    #[inline(always)]
    pub unsafe fn store_at(&self, c: [*mut f32; M]) {
        for j in 0..M {
            for v in 0..NV {
                S::store(c[j].add(S::LANES * v), self.acc[j][v]);
            }
        }
    }

    /// Asks for the lines of c[j * ldc ..][.. L NV] (`simd::prefetch_rows`): before a run whose
    /// sums `add_to` adds there, so that they are in L1 by then.
    #[inline(always)]
    pub fn prefetch(c: *const f32, ldc: usize) {
        (0..(NV * S::LANES).div_ceil(16)).for_each(|l| crate::simd::prefetch_rows(c, M, ldc, 16 * l));
    }

    /// c[j * ldc ..][.. L NV] += row j.
    #[inline(always)]
    pub unsafe fn add_to(&self, c: *mut f32, ldc: usize) {
        for j in 0..M {
            for v in 0..NV {
                let p = c.add(j * ldc + S::LANES * v);
                S::store(p, S::add(S::load(p), self.acc[j][v]));
            }
        }
    }
}

impl<const M: usize, const NV: usize> Tile<Avx512, M, NV> {
    /// `run` in bf16 pairs with `VDPBF16PS`: acc[j] += sum over k < len of the pair `a[j][k a_k]`
    /// (two bf16 in one u32, the even element low) times the `NV` vectors of 16 pairs at
    /// `b[k * b_k ..]`, lane l taking pair l: two multiply-adds per lane and step.
    /// # Safety
    /// The CPU has AVX512-BF16 besides AVX-512F; every pointer range read is in bounds (no
    /// alignment needed).
    #[inline(always)]
    pub unsafe fn run_pairs(&mut self, a: impl Rows<u32, M>, a_k: usize, b: *const u32, b_k: usize, len: usize) {
        for k in 0..len {
            let mut bv = [_mm512_setzero_si512(); NV];
            for (v, bv) in bv.iter_mut().enumerate() {
                *bv = _mm512_loadu_si512(b.add(k * b_k + 16 * v).cast());
            }
            for j in 0..M {
                let x: __m512bh = core::mem::transmute(_mm512_set1_epi32(a.at(j, k * a_k).read_unaligned() as i32));
                for v in 0..NV {
                    let w: __m512bh = core::mem::transmute(bv[v]);
                    self.acc[j][v] = _mm512_dpbf16_ps(self.acc[j][v], x, w);
                }
            }
        }
    }
}

/// What a tile's steps multiply: f32 values (`Values`: one FMA per lane and step) or bf16
/// pairs (`Bf16Pairs`: one `VDPBF16PS`, two multiply-adds), so that one kernel body serves
/// both precisions.
pub(crate) trait Operand<S: Simd> {
    /// What one step reads per row: an f32, or a u32 holding two bf16 (the even one low).
    type E: Copy;
    /// Values per element: a reduction over `c` channels takes `c / PER` steps.
    const PER: usize;
    /// `Tile::run` (or `run_pairs`) on these elements.
    /// # Safety
    /// As `Tile::run`; for `Bf16Pairs` the CPU has AVX512-BF16.
    unsafe fn run<const M: usize, const NV: usize>(
        t: &mut Tile<S, M, NV>,
        a: impl Rows<Self::E, M>,
        a_k: usize,
        b: *const Self::E,
        b_k: usize,
        len: usize,
    );
}

pub(crate) struct Values;

impl<S: Simd> Operand<S> for Values {
    type E = f32;
    const PER: usize = 1;
    #[inline(always)]
    unsafe fn run<const M: usize, const NV: usize>(
        t: &mut Tile<S, M, NV>,
        a: impl Rows<f32, M>,
        a_k: usize,
        b: *const f32,
        b_k: usize,
        len: usize,
    ) {
        t.run(a, a_k, b, b_k, len)
    }
}

pub(crate) struct Bf16Pairs;

impl Operand<Avx512> for Bf16Pairs {
    type E = u32;
    const PER: usize = 2;
    #[inline(always)]
    unsafe fn run<const M: usize, const NV: usize>(
        t: &mut Tile<Avx512, M, NV>,
        a: impl Rows<u32, M>,
        a_k: usize,
        b: *const u32,
        b_k: usize,
        len: usize,
    ) {
        t.run_pairs(a, a_k, b, b_k, len)
    }
}

/// Runs `$body` with `const $name: usize` bound to the runtime `$value`, one of the listed
/// literals, so that each gets its own fully unrolled code.
macro_rules! with_const {
    ($value:expr, $name:ident in [$($n:literal),+] => $body:expr) => {
        match $value {
            $($n => {
                const $name: usize = $n;
                $body
            })+
            v => unreachable!("{} = {v}, expected one of {:?}", stringify!($name), [$($n),+]),
        }
    };
}
pub(crate) use with_const;

/// Runs `$body` with `const $m: usize` bound to the runtime row count `$rows` (1 ..= MAX_M).
macro_rules! with_rows {
    ($rows:expr, $m:ident => $body:expr) => {
        $crate::micro::with_const!($rows, $m in [1, 2, 3, 4, 5, 6] => $body)
    };
}
pub(crate) use with_rows;

/// Runs `$body` with `const $m: usize` bound to a tall tile's rows (`tall_tile`: 14, 12, 8 or
/// 7) and `const $rs: usize` to its row stride (1, 16, 32, 64 or 128).
macro_rules! with_tall {
    ($rows:expr, $stride:expr, $m:ident, $rs:ident => $body:expr) => {
        $crate::micro::with_const!($rows, $m in [14, 12, 8, 7] => {
            $crate::micro::with_const!($stride, $rs in [1, 16, 32, 64, 128] => $body)
        })
    };
}
pub(crate) use with_tall;

/// Runs `$body` for each tile over rows `0..$count` of a `$nv`-vector channel block on `$s`'s
/// path, row r's operand at `$first(r)`: with `$p0` the tile's first row, `const $m` its rows,
/// `const $n` = `$nv`, and `$rows` its `Rows`. Tall tiles (`tall_tile`) where the rows come in
/// runs of `$width`, `$stride` elements apart (`Strided` from one pointer), else `MAX_M`-row
/// tiles with a pointer per row.
macro_rules! each_tile {
    ($s:ty, $nv:expr, $count:expr, $width:expr, $stride:expr, $first:expr,
     |$p0:ident, $m:ident, $n:ident, $rows:ident| $body:expr) => {{
        let first = $first;
        match $crate::micro::tall_tile(<$s as $crate::micro::Simd>::PATH, $nv, $width, $stride) {
            Some(tall) => {
                for $p0 in (0..$count).step_by(tall) {
                    $crate::micro::with_tall!(tall, $stride, $m, RS => $crate::micro::with_nv!($s, $nv, $n => {
                        let $rows = $crate::micro::Strided::<_, RS>(first($p0));
                        $body
                    }))
                }
            }
            None => {
                for ($p0, rows) in $crate::micro::row_chunks($count) {
                    $crate::micro::with_rows!(rows, $m => $crate::micro::with_nv!($s, $nv, $n => {
                        let $rows: [_; $m] = core::array::from_fn(|j| first($p0 + j));
                        $body
                    }))
                }
            }
        }
    }};
}
pub(crate) use each_tile;

/// Channel blocks of a tile row on `path`: `(c0, nv)` with `nv` vectors (`nv * lanes`
/// channels) from `c0`: `path.block_vectors()` at a time, then blocks of 2 and 1 (`c %
/// lanes == 0`).
pub(crate) fn channel_blocks(c: usize, path: KernelPath) -> impl Iterator<Item = (usize, usize)> {
    channel_blocks_upto(c, path, path.block_vectors())
}

/// `channel_blocks` with blocks of at most `widest` vectors (4, 2 or 1).
pub(crate) fn channel_blocks_upto(c: usize, path: KernelPath, widest: usize) -> impl Iterator<Item = (usize, usize)> {
    let lanes = path.lanes();
    let mut c0 = 0;
    core::iter::from_fn(move || {
        let vectors_left = (c - c0) / lanes;
        let nv = [widest, 2, 1].into_iter().find(|&v| v <= vectors_left)?;
        let block = (c0, nv);
        c0 += nv * lanes;
        Some(block)
    })
}

/// Runs `$body` with `const $nv: usize` bound to a channel block's vector count (1, 2, or 4
/// where `$s::PATH` allows blocks of 4).
macro_rules! with_nv {
    ($s:ty, $nv:expr, $n:ident => $body:expr) => {
        match $nv {
            4 if <$s as $crate::micro::Simd>::PATH.block_vectors() >= 4 => {
                const $n: usize = 4;
                $body
            }
            2 => {
                const $n: usize = 2;
                $body
            }
            _ => {
                const $n: usize = 1;
                $body
            }
        }
    };
}
pub(crate) use with_nv;

/// Splits `0..n` into `n.div_ceil(MAX_M)` runs of nearly equal length (at most `MAX_M`):
/// 28 -> 6,6,6,5,5; 14 -> 5,5,4; 7 -> 4,3. Yields (start, len).
pub(crate) fn row_chunks(n: usize) -> impl Iterator<Item = (usize, usize)> {
    let parts = n.div_ceil(MAX_M);
    let (base, extra) = (n.checked_div(parts).unwrap_or(0), n.checked_rem(parts).unwrap_or(0));
    (0..parts).scan(0, move |start, i| {
        let len = base + usize::from(i < extra);
        let s = *start;
        *start += len;
        Some((s, len))
    })
}

/// `row_chunks` over the `h x w` pixels of an image in row-major order, with the (row,
/// column) of each pixel of a chunk (entries past `len` unspecified). Yields (start, len,
/// positions).
pub(crate) fn pixel_chunks(h: usize, w: usize) -> impl Iterator<Item = (usize, usize, [(usize, usize); MAX_M])> {
    let mut at = (0, 0);
    row_chunks(h * w).map(move |(p0, m)| {
        let mut px = [at; MAX_M];
        for j in 1..m {
            px[j] = next_pixel(px[j - 1], w);
        }
        at = next_pixel(px[m - 1], w);
        (p0, m, px)
    })
}

/// The pixel after `(row, column)` in row-major order on rows `w` wide: pixels stepped along
/// rather than divided out of their index (a division per pixel was 5-10% of the
/// one-input-channel weight gradient).
#[inline(always)]
pub(crate) fn next_pixel((r, q): (usize, usize), w: usize) -> (usize, usize) {
    if q + 1 == w {
        (r + 1, 0)
    } else {
        (r, q + 1)
    }
}
