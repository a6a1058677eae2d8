//! Which instruction set the kernels run on, chosen at run time so one binary runs on any
//! x86-64 CPU: AVX-512 where the CPU has it, else AVX2 + FMA, else portable code. `set_kernel_path`
//! forces a path (the engine's CLI reads `AUTOENCODER_KERNELS`).
//!
//! Results are bitwise identical on any thread count within a path; the paths may differ in
//! the last bits (fused against unfused multiply-adds), within the naive twins' tolerances.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// 512-bit AVX-512F (x86-64-v4: Intel Skylake-SP, AMD Zen 4 and later). A kernel whose
    /// channel count is not a multiple of 16 runs its AVX2 version (`for_channels`).
    Avx512,
    /// 256-bit AVX2 with fused multiply-add (x86-64-v3: Intel Haswell, AMD Zen and later).
    Avx2,
    /// Any x86-64 CPU (SSE2).
    Portable,
}

impl KernelPath {
    pub const ALL: [KernelPath; 3] = [KernelPath::Avx512, KernelPath::Avx2, KernelPath::Portable];

    /// The name `AUTOENCODER_KERNELS`, `bench` and `report.json` use.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Avx512 => "avx512",
            KernelPath::Avx2 => "avx2",
            KernelPath::Portable => "portable",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        let avx2 = || std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        match self {
            KernelPath::Avx512 => avx2() && std::arch::is_x86_feature_detected!("avx512f"),
            KernelPath::Avx2 => avx2(),
            KernelPath::Portable => true,
        }
    }

    /// f32 lanes per vector.
    pub const fn lanes(self) -> usize {
        match self {
            KernelPath::Avx512 => 16,
            KernelPath::Avx2 | KernelPath::Portable => 8,
        }
    }

    /// Vectors of output channels per register tile row: 2 where 16 registers hold a 6 x 2
    /// tile, 4 where AVX-512's 32 hold 6 x 4 (24 accumulators, 4 weight vectors, a
    /// broadcast).
    pub const fn block_vectors(self) -> usize {
        match self {
            KernelPath::Avx512 => 4,
            KernelPath::Avx2 | KernelPath::Portable => 2,
        }
    }

    /// The path a tiled kernel over `channels` output (or input) channels runs on: this one,
    /// except that AVX-512 hands channel counts that are not a multiple of its 16 lanes to
    /// AVX2 (the tiles need whole vectors; the models' 32, 64 and 128 all are).
    pub fn for_channels(self, channels: usize) -> Self {
        if self == KernelPath::Avx512 && !channels.is_multiple_of(self.lanes()) {
            KernelPath::Avx2
        } else {
            self
        }
    }

    /// The fastest path this CPU supports.
    pub fn best() -> Self {
        Self::ALL.into_iter().find(|p| p.is_supported()).unwrap_or(KernelPath::Portable)
    }

    /// Every path this CPU supports, fastest first.
    pub fn supported() -> Vec<Self> {
        Self::ALL.into_iter().filter(|p| p.is_supported()).collect()
    }

    /// 1 + its index in `ALL`, the value `CHOSEN` holds.
    fn code(self) -> u8 {
        1 + Self::ALL.iter().position(|&p| p == self).expect("every path is in ALL") as u8
    }
}

impl std::fmt::Display for KernelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// 0 until the first kernel call (or `set_kernel_path`) fixes the path.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// The path kernels run on: the one set with `set_kernel_path`, else the one the environment
/// variable `AUTOENCODER_KERNELS` names if this CPU supports it (so a test suite can be run on
/// each path; the CLI reports a bad value as an error), else `KernelPath::best()`.
pub fn kernel_path() -> KernelPath {
    match CHOSEN.load(Ordering::Relaxed).checked_sub(1).and_then(|i| KernelPath::ALL.get(i as usize)) {
        Some(&path) => path,
        None => {
            let from_env = std::env::var("AUTOENCODER_KERNELS").ok().and_then(|v| KernelPath::from_name(&v));
            let path = from_env.filter(|p| p.is_supported()).unwrap_or_else(KernelPath::best);
            CHOSEN.store(path.code(), Ordering::Relaxed);
            path
        }
    }
}

/// Runs every later kernel call on `path`; an error if this CPU lacks its instructions.
/// Set it before kernels run: a pass that changes path half-way is not repeatable.
pub fn set_kernel_path(path: KernelPath) -> Result<(), String> {
    if !path.is_supported() {
        let have: Vec<_> = KernelPath::supported().iter().map(|p| p.name()).collect();
        return Err(format!("this CPU cannot run the {path} kernels (it supports: {})", have.join(", ")));
    }
    CHOSEN.store(path.code(), Ordering::Relaxed);
    Ok(())
}

/// `dispatch!(kernel(arg: Type, ...))` calls the generic `kernel::<S>(arg, ...)` for the
/// chosen path's vector type `S`; `dispatch!(on path, kernel(...))` for a given path. Each
/// vector path's call goes through a local `#[target_feature]` function that calls the
/// `#[inline(always)]` kernel directly, so the kernel and the intrinsics it uses are inlined
/// there and compiled for that instruction set (a closure in between
/// is not inlined, and every intrinsic became a call: 100x slower). The kernel is an
/// `unsafe fn` whose only requirement beyond its documented bounds is that `S`'s
/// instructions exist, which the path guarantees.
macro_rules! dispatch {
    ($f:ident ( $($arg:ident : $ty:ty),* $(,)? )) => {
        $crate::isa::dispatch!(on $crate::isa::kernel_path(), $f($($arg: $ty),*))
    };
    (on $path:expr, $f:ident ( $($arg:ident : $ty:ty),* $(,)? )) => {{
        #[target_feature(enable = "avx512f,avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn avx512($($arg: $ty),*) {
            $f::<$crate::micro::Avx512>($($arg),*)
        }
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn avx2($($arg: $ty),*) {
            $f::<$crate::micro::Avx2>($($arg),*)
        }
        match $path {
            // SAFETY: the Avx512 path is only chosen when the CPU has AVX-512F, AVX2 and FMA.
            $crate::isa::KernelPath::Avx512 => unsafe { avx512($($arg),*) },
            // SAFETY: the Avx2 path is only chosen when the CPU has AVX2 and FMA (Avx512
            // implies them).
            $crate::isa::KernelPath::Avx2 => unsafe { avx2($($arg),*) },
            // SAFETY: portable code runs on any x86-64 CPU.
            $crate::isa::KernelPath::Portable => unsafe { $f::<$crate::micro::Portable>($($arg),*) },
        }
    }};
}
pub(crate) use dispatch;

/// The machine's multiply-add peak in GFLOP/s: a register-only loop (12 independent chains of
/// FMAs, on the widest vectors this CPU has) run on one thread, or on every thread of
/// the current rayon pool at once; the best of 15 tries of about 15 ms each (on a shared
/// machine a try may lose a core for a while: with 5 tries, a 2-thread peak once came out
/// at the 1-thread figure, and a pass at "173% of peak"). The yardstick of `bench`'s "% of peak",
/// measured on the machine at hand rather than taken from a data sheet.
pub fn fma_peak_gflops(all_threads: bool) -> f64 {
    const ITERS: u64 = 1 << 23;
    let flops_per_thread = (ITERS * 12 * 16) as f64;
    let one = || match KernelPath::best() {
        // SAFETY: `best` only returns a path whose instructions the CPU has.
        KernelPath::Avx512 => unsafe { fma_loop_avx512(ITERS / 2) },
        // SAFETY: as above.
        KernelPath::Avx2 => unsafe { fma_loop_avx2(ITERS) },
        KernelPath::Portable => fma_loop_portable(ITERS),
    };
    best_rate(all_threads, flops_per_thread, one)
}

/// GFLOP/s of `one` (doing `flops_per_thread`) run on one thread, or on every thread of the
/// rayon pool at once: the best of 15 tries (see `fma_peak_gflops`).
pub(crate) fn best_rate(all_threads: bool, flops_per_thread: f64, one: impl Fn() -> f32 + Sync) -> f64 {
    let threads = if all_threads { rayon::current_num_threads() } else { 1 };
    (0..15)
        .map(|_| {
            let t = std::time::Instant::now();
            if all_threads {
                std::hint::black_box(rayon::broadcast(|_| one()));
            } else {
                std::hint::black_box(one());
            }
            threads as f64 * flops_per_thread / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// 12 independent chains of `acc = $step` on 512-bit vectors for `$iters` rounds, summed so
/// the work is not optimised away: the body of a peak loop. A macro rather than a function
/// taking the step as a closure, whose intrinsics would not be inlined (see `dispatch!`).
macro_rules! chains_512 {
    ($iters:expr, |$c:ident| $step:expr) => {{
        use core::arch::x86_64::*;
        let mut acc = [_mm512_setzero_ps(); 12];
        for _ in 0..$iters {
            for $c in acc.iter_mut() {
                *$c = $step;
            }
        }
        let mut sum = _mm512_setzero_ps();
        for c in acc {
            sum = _mm512_add_ps(sum, c);
        }
        _mm512_reduce_add_ps(sum)
    }};
}
pub(crate) use chains_512;

/// As `fma_loop_avx2` on 16 lanes: half the iterations give the same multiply-adds.
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512(iters: u64) -> f32 {
    use core::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    chains_512!(iters, |c| _mm512_fmadd_ps(*c, a, b))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2(iters: u64) -> f32 {
    use core::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); 12];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..iters {
        for c in acc.iter_mut() {
            *c = _mm256_fmadd_ps(*c, a, b);
        }
    }
    let mut sum = _mm256_setzero_ps();
    for c in acc {
        sum = _mm256_add_ps(sum, c);
    }
    _mm256_cvtss_f32(sum)
}

fn fma_loop_portable(iters: u64) -> f32 {
    let mut acc = [wide::f32x8::ZERO; 12];
    let (a, b) = (wide::f32x8::splat(0.999_999), wide::f32x8::splat(1e-7));
    for _ in 0..iters {
        for c in acc.iter_mut() {
            *c = c.mul_add(a, b);
        }
    }
    acc.iter().fold(wide::f32x8::ZERO, |s, &c| s + c).reduce_add()
}
