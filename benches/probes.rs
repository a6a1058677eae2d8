//! Probes of where a pass's time goes, as README's Performance section quotes them:
//! `cargo bench --bench probes` (add `-- 1` for one thread).
//!
//! * `tile`: the bf16 register tile of the convolutions (6 rows x 2 vectors, 12 `VDPBF16PS`
//!   per step of 6 broadcasts and 2 loads) alone, its operands in L1, against the
//!   `VDPBF16PS` peak: what the core can do with that instruction mix, with and without a
//!   tile's stores and restart every 32 steps. Needs AVX512-BF16.
//! * `tile_f32`: the f32 register tile of a 32-channel convolution alone (`M` pixel rows x 2
//!   vectors, each step 2 kernel loads, `M` broadcasts and `2 M` FMAs over a 3 x 32 kernel
//!   row), its operands in L1, against the FMA peak: 6 rows with a pointer each (the short
//!   tile) against 12 and 14 rows addressed from one pointer (the tall tiles of
//!   `micro::tall_tile`); and the 4-vector tiles of the 64- and 128-channel layers (6 x 4, 7 x
//!   4, 8 x 3). Needs AVX-512.
//! * `amx`: the AMX bf16 peak (`TDPBF16PS`, Intel's tile unit, which Keras's oneDNN uses for
//!   `mixed_bfloat16` on Xeons): four 16 x 16 f32 accumulator tiles, with the 16 x 32 bf16
//!   operand tiles reloaded from L1 every step (a GEMM's inner loop) or not, against the
//!   `VDPBF16PS` peak the bf16 kernels run at. What issue 16's speed targets would take on a
//!   CPU with AMX; the engine does not use it. Needs AMX-TILE and AMX-BF16 and Linux.
//! * `fused`: the conv passes with the activation applied per image inside them
//!   (`forward_act`, `backward_input_act`) against the pass followed by the activation's own
//!   pass over the batch, interleaved, batch 64, medians of 15.

mod common;

/// As the `autoencoder` binary: large buffers on cache lines (`kernels::alloc`).
#[global_allocator]
static ALLOC: kernels::alloc::CacheAligned = kernels::alloc::CacheAligned;

use common::data;
use core::arch::x86_64::*;
use kernels::activation::{self, Activation};
use kernels::bf16::Precision;
use kernels::geom::{ConvGeom, Padding};
use kernels::{conv2d, conv_transpose2d};
use std::time::Instant;

/// 12 accumulators, `steps` rank-2 steps over `a` (6 pairs per step) and `b` (32 pairs per
/// step), `reps` times; with `restart`, the accumulators are added to memory and zeroed
/// before each repetition, as a kernel's tile does.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile(a: &[u32], b: &[u32], steps: usize, reps: usize, restart: bool, out: &mut [f32]) {
    let mut acc = [_mm512_setzero_ps(); 12];
    assert!(a.len() >= 6 * steps && b.len() >= 32 * steps && out.len() >= 12 * 16 * 48);
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    for rep in 0..reps {
        if restart {
            let o = out.as_mut_ptr().add((rep % 48) * 12 * 16);
            for (i, a) in acc.iter_mut().enumerate() {
                let p = o.add(i * 16);
                _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), *a));
                *a = _mm512_setzero_ps();
            }
        }
        for k in 0..steps {
            let b0: __m512bh = core::mem::transmute(_mm512_loadu_si512(bp.add(k * 32).cast()));
            let b1: __m512bh = core::mem::transmute(_mm512_loadu_si512(bp.add(k * 32 + 16).cast()));
            for j in 0..6 {
                let x: __m512bh = core::mem::transmute(_mm512_set1_epi32(*ap.add(k * 6 + j) as i32));
                acc[2 * j] = _mm512_dpbf16_ps(acc[2 * j], x, b0);
                acc[2 * j + 1] = _mm512_dpbf16_ps(acc[2 * j + 1], x, b1);
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        _mm512_storeu_ps(out.as_mut_ptr().add(i * 16), *a);
    }
}

fn probe_tile() {
    if !kernels::bf16::has_avx512_bf16() {
        println!("tile: no AVX512-BF16 here");
        return;
    }
    let peak = kernels::bf16::peak_gflops(false).expect("AVX512-BF16");
    let (steps, reps) = (32, 20_000);
    let a: Vec<u32> = (0..steps * 6).map(|i| 0x3f80_3f80 + (i as u32 % 7)).collect();
    let b: Vec<u32> = (0..steps * 32).map(|i| 0x3c00_3c00 + (i as u32 % 5)).collect();
    let mut out = vec![0.0f32; 12 * 16 * 48];
    for restart in [false, true] {
        let best = (0..7)
            .map(|_| {
                let t = Instant::now();
                // SAFETY: the CPU has AVX512-BF16 (checked above); the lengths are asserted.
                unsafe { tile(&a, &b, steps, reps, restart, &mut out) };
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        let gflops = (reps * steps * 12 * 64) as f64 / best / 1e9;
        println!(
            "tile 6x2 bf16, restart every {steps} steps: {restart}: {gflops:.0} GFLOP/s of a {peak:.0} peak (1 thread)"
        );
    }
    std::hint::black_box(&out);
}

/// Medians of 15 interleaved runs of `pass(false)` (apart) and `pass(true)` (fused), in ms.
fn median(pass: &mut dyn FnMut(bool)) -> (f64, f64) {
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..15 {
        for (fused, t) in times.iter_mut().enumerate() {
            let start = Instant::now();
            pass(fused == 1);
            t.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let [a, b] = times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[7]
    });
    (a, b)
}

fn probe_fused() {
    let n = 64;
    let relu = Activation::Relu;
    let shapes = [
        ("conv 28x28 32->32", ConvGeom::new(28, 28, 32, 32, 3, 1, Padding::Same).unwrap(), false),
        ("convT 14->28 128->64", ConvGeom::transpose(14, 14, 128, 64, 3, 2, Padding::Same).unwrap(), true),
    ];
    for (name, g, transpose) in shapes {
        // A transposed layer reads the conv's output shape and writes its input shape.
        let (in_len, out_len, bias) =
            if transpose { (g.y_len(), g.x_len(), g.c_in) } else { (g.x_len(), g.y_len(), g.c_out) };
        let (x, w, b, dy) = (data(n * in_len, 1), data(g.w_len(), 2), data(bias, 3), data(n * out_len, 4));
        let mut x_act = x.clone();
        activation::forward(relu, &mut x_act);
        let (mut y, mut dx) = (vec![0.0; n * out_len], vec![0.0; n * in_len]);
        let mut s = vec![0.0; conv2d::scratch_len(&g, n)];
        for p in Precision::ALL {
            let (apart, fused) = median(&mut |fused| match (transpose, fused) {
                (true, true) => conv_transpose2d::forward_act(&g, n, &x, &w, &b, relu, &mut y, &mut s, p),
                (false, true) => conv2d::forward_act(&g, n, &x, &w, Some(&b), relu, &mut y, &mut s, p),
                (true, false) => {
                    conv_transpose2d::forward(&g, n, &x, &w, &b, &mut y, &mut s, p);
                    activation::forward(relu, &mut y);
                }
                (false, false) => {
                    conv2d::forward(&g, n, &x, &w, Some(&b), &mut y, &mut s, p);
                    activation::forward(relu, &mut y);
                }
            });
            println!("{name} {p} forward + ReLU: two passes {apart:.3} ms, fused {fused:.3} ms");
            let (apart, fused) = median(&mut |fused| match (transpose, fused) {
                (true, true) => conv_transpose2d::backward_input_act(&g, n, &dy, &w, &mut dx, &mut s, p, relu, &x_act),
                (false, true) => conv2d::backward_input_act(&g, n, &dy, &w, &mut dx, &mut s, p, relu, &x_act),
                (true, false) => {
                    conv_transpose2d::backward_input(&g, n, &dy, &w, &mut dx, &mut s, p);
                    activation::backward(relu, &x_act, &mut dx);
                }
                (false, false) => {
                    conv2d::backward_input(&g, n, &dy, &w, &mut dx, &mut s, p);
                    activation::backward(relu, &x_act, &mut dx);
                }
            });
            println!("{name} {p} input gradient + ReLU mask: two passes {apart:.3} ms, fused {fused:.3} ms");
        }
    }
}

/// `M` x 2 accumulators over `steps` steps, `reps` times, as a convolution's tile runs them:
/// row j broadcasts `a[j * stride + k]` (from one pointer with `ONE_POINTER`, else from its own
/// pointer, as the short tiles hold them), then adds it times two 16-lane kernel vectors.
#[target_feature(enable = "avx512f")]
unsafe fn tile_f32<const M: usize, const NV: usize, const ONE_POINTER: bool>(
    a: &[f32],
    b: &[f32],
    steps: usize,
    reps: usize,
    out: &mut [f32],
) {
    const STRIDE: usize = 32;
    let w = 16 * NV;
    assert!(a.len() >= M * STRIDE + steps && b.len() >= w * steps && out.len() >= M * w);
    let rows: [*const f32; M] = core::array::from_fn(|j| std::hint::black_box(a.as_ptr().add(j * STRIDE)));
    let (a0, bp) = (a.as_ptr(), b.as_ptr());
    for rep in 0..reps {
        let mut acc = [[_mm512_setzero_ps(); NV]; M];
        for k in 0..steps {
            let bv: [__m512; NV] = core::array::from_fn(|v| _mm512_loadu_ps(bp.add(k * w + 16 * v)));
            for j in 0..M {
                let x = _mm512_set1_ps(if ONE_POINTER { *a0.add(j * STRIDE + k) } else { *rows[j].add(k) });
                for v in 0..NV {
                    acc[j][v] = _mm512_fmadd_ps(x, bv[v], acc[j][v]);
                }
            }
        }
        // A tile's store and restart; `rep` keeps the loop from being folded.
        for (j, r) in acc.iter().enumerate() {
            let o = out.as_mut_ptr().add(j * w);
            _mm512_storeu_ps(o, _mm512_add_ps(r[0], _mm512_set1_ps(rep as f32)));
            for (v, &acc) in r.iter().enumerate().skip(1) {
                _mm512_storeu_ps(o.add(16 * v), acc);
            }
        }
    }
}

fn probe_tile_f32() {
    if !is_x86_feature_detected!("avx512f") {
        println!("tile_f32: no AVX-512 here");
        return;
    }
    let peak = kernels::isa::fma_peak_gflops(false);
    let steps = 96; // one kernel row of a 3 x 3 x 32 convolution
    let a = data(14 * 32 + steps, 5);
    let b = data(64 * steps, 6);
    let mut out = vec![0.0f32; 14 * 64];
    let mut probe = |name: &str, rows: usize, nv: usize, run: &dyn Fn(usize, &mut [f32])| {
        let reps = 40_000_000 / (rows * nv * steps);
        let best = (0..7)
            .map(|_| {
                let t = Instant::now();
                run(reps, &mut out);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        let gflops = (reps * steps * rows * nv * 32) as f64 / best / 1e9;
        println!("tile f32 {name}: {gflops:.0} GFLOP/s of a {peak:.0} peak (1 thread)");
    };
    // SAFETY (all three): the CPU has AVX-512F (checked above); the lengths are asserted.
    probe("6 x 2, a pointer per row", 6, 2, &|reps, out| unsafe { tile_f32::<6, 2, false>(&a, &b, steps, reps, out) });
    probe("12 x 2, one pointer", 12, 2, &|reps, out| unsafe { tile_f32::<12, 2, true>(&a, &b, steps, reps, out) });
    probe("14 x 2, one pointer", 14, 2, &|reps, out| unsafe { tile_f32::<14, 2, true>(&a, &b, steps, reps, out) });
    probe("6 x 4, a pointer per row", 6, 4, &|reps, out| unsafe { tile_f32::<6, 4, false>(&a, &b, steps, reps, out) });
    probe("6 x 4, one pointer", 6, 4, &|reps, out| unsafe { tile_f32::<6, 4, true>(&a, &b, steps, reps, out) });
    probe("7 x 4, one pointer", 7, 4, &|reps, out| unsafe { tile_f32::<7, 4, true>(&a, &b, steps, reps, out) });
    probe("8 x 3, one pointer", 8, 3, &|reps, out| unsafe { tile_f32::<8, 3, true>(&a, &b, steps, reps, out) });
    std::hint::black_box(&out);
}

/// `steps` steps of four `TDPBF16PS` into tiles 0-3 (16 x 16 f32 each) from A tiles 4-5 and B
/// tiles 6-7 (16 rows of 64 bytes); with `reload`, the four operand tiles are loaded from `a`
/// and `b` (L1) before every step. Returns tile 0's first row.
/// # Safety
/// `kernels::amx::available()`; `a` and `b` hold 2 x 16 x 64 bytes each.
unsafe fn amx_steps(a: &[u16], b: &[u16], steps: usize, reload: bool) -> f32 {
    assert!(a.len() >= 2 * 16 * 32 && b.len() >= 2 * 16 * 32);
    // Palette 1; tiles 0-7 of 16 rows x 64 bytes.
    let mut cfg = [0u8; 64];
    cfg[0] = 1;
    for t in 0..8 {
        cfg[16 + 2 * t] = 64;
        cfg[48 + t] = 16;
    }
    let mut out = [0.0f32; 16 * 16];
    let (ap, bp, stride) = (a.as_ptr(), b.as_ptr(), 64usize);
    core::arch::asm!(
        "ldtilecfg [{cfg}]",
        "tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3",
        "tileloadd tmm4, [{a} + {s}*1]", "tileloadd tmm5, [{a2} + {s}*1]",
        "tileloadd tmm6, [{b} + {s}*1]", "tileloadd tmm7, [{b2} + {s}*1]",
        cfg = in(reg) cfg.as_ptr(), a = in(reg) ap, a2 = in(reg) ap.add(512), b = in(reg) bp,
        b2 = in(reg) bp.add(512), s = in(reg) stride, options(nostack),
    );
    for _ in 0..steps {
        if reload {
            core::arch::asm!(
                "tileloadd tmm4, [{a} + {s}*1]", "tileloadd tmm6, [{b} + {s}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm7, [{b2} + {s}*1]",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tileloadd tmm5, [{a2} + {s}*1]",
                "tdpbf16ps tmm2, tmm5, tmm6", "tdpbf16ps tmm3, tmm5, tmm7",
                a = in(reg) ap, a2 = in(reg) ap.add(512), b = in(reg) bp, b2 = in(reg) bp.add(512),
                s = in(reg) stride, options(nostack),
            );
        } else {
            core::arch::asm!(
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                options(nostack),
            );
        }
    }
    core::arch::asm!("tilestored [{o} + {s}*1], tmm0", "tilerelease", o = in(reg) out.as_mut_ptr(), s = in(reg) stride,
        options(nostack));
    out[0]
}

fn probe_amx() {
    if !kernels::amx::available() {
        println!(
            "amx: not used here (no AMX-TILE / AMX-BF16, the OS does not grant its state, or AUTOENCODER_AMX=off)"
        );
        return;
    }
    let vdp = kernels::bf16::peak_gflops(false).map_or("-".to_string(), |p| format!("{p:.0}"));
    let (a, b) = (vec![0x3f80u16; 2 * 16 * 32], vec![0x3c00u16; 2 * 16 * 32]);
    let steps = 200_000;
    for reload in [false, true] {
        let best = (0..7)
            .map(|_| {
                let t = Instant::now();
                // SAFETY: `available` above; a and b hold 2 x 16 x 32 bf16.
                let sum = unsafe { amx_steps(&a, &b, steps, reload) };
                // Each step adds 32 products of 1 x 2^-7 to every sum: exact in f32.
                assert_eq!(sum, steps as f32 * 0.25, "TDPBF16PS's sums");
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        // Each TDPBF16PS: 16 x 16 outputs x 32 products, 2 flops each.
        let gflops = (steps * 4 * 16 * 16 * 32 * 2) as f64 / best / 1e9;
        println!("amx TDPBF16PS, 4 tiles, operands reloaded every step: {reload}: {gflops:.0} GFLOP/s (1 thread; VDPBF16PS peak {vdp})");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a bare number is the thread count.
    let threads = std::env::args().skip(1).find_map(|a| a.parse::<usize>().ok()).unwrap_or(2);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().expect("the rayon pool");
    println!("{threads} threads");
    probe_tile_f32();
    probe_tile();
    probe_amx();
    probe_fused();
}
