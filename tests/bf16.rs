//! bfloat16 (issue 16's first step): the rounding and the pair dot product of `kernels::bf16`
//! against the definitions they keep, and against the AVX512-BF16 instructions bit for bit
//! where the CPU has them (on a CPU without, those comparisons say so and pass vacuously).

mod common;

use common::Rng;
use kernels::bf16;

/// Values where rounding is easy to get wrong: zeros, denormals, the edges of the normal range,
/// infinities, NaNs, and exact ties between two bf16 (both parities).
fn edge_values() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        f32::from_bits(0x8000_0001),
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7f80_0001), // a signalling NaN
        f32::from_bits(0xffc0_1234),
        1.0,
        -1.0,
    ];
    for kept in [0x3f80u32, 0x3f81, 0x4000, 0x4001, 0x7f7f] {
        for low in [0x7fffu32, 0x8000, 0x8001] {
            v.push(f32::from_bits(kept << 16 | low));
            v.push(-f32::from_bits(kept << 16 | low));
        }
    }
    v
}

#[test]
fn rounding_is_to_nearest_even_within_half_a_unit() {
    // Exact ties go to the even neighbour; just above a tie goes up.
    assert_eq!(bf16::round(f32::from_bits(0x3f80_8000)), 0x3f80);
    assert_eq!(bf16::round(f32::from_bits(0x3f81_8000)), 0x3f82);
    assert_eq!(bf16::round(f32::from_bits(0x3f80_8001)), 0x3f81);
    assert_eq!(bf16::round(f32::from_bits(0x3f80_7fff)), 0x3f80);
    assert_eq!(bf16::round(f32::MAX), 0x7f80, "beyond the largest bf16 is an infinity");
    assert_eq!(bf16::round(f32::from_bits(1)), 0, "a denormal counts as zero");
    assert_eq!(bf16::round(-f32::from_bits(1)), 0x8000);
    assert!(bf16::widen(bf16::round(f32::NAN)).is_nan());
    assert!(
        bf16::widen(bf16::round(f32::from_bits(0x7f80_0001))).is_nan(),
        "a NaN whose payload is below the kept bits"
    );
    // Every bf16 with a normal exponent, and the infinities, round to themselves.
    for h in 0..=u16::MAX {
        let x = bf16::widen(h);
        if x.is_normal() || x.is_infinite() {
            assert_eq!(bf16::round(x), h, "{h:#06x}");
        }
    }
    // Random normal values: within half a unit in the last place (2^-8 relative to the
    // exponent's power of two), and never past a nearer neighbour.
    let mut rng = Rng::new(7);
    for _ in 0..200_000 {
        let x = f32::from_bits(rng.next_u64() as u32);
        if !x.is_normal() || x.abs() > 3.3e38 {
            continue;
        }
        let r = bf16::widen(bf16::round(x)) as f64;
        let unit = 2f64.powi(x.abs().log2().floor() as i32 - 7);
        assert!((r - x as f64).abs() <= unit / 2.0, "{x:e} -> {r:e}");
    }
}

#[test]
fn the_conversion_instruction_rounds_as_the_definition() {
    let mut rng = Rng::new(11);
    let mut src = edge_values();
    // Random bit patterns (every exponent, NaNs included) and ordinary values.
    src.extend((0..100_000).map(|_| f32::from_bits(rng.next_u64() as u32)));
    src.extend((0..10_000).map(|_| rng.uniform() * 3.0));
    src.extend([0.5, 0.25, 0.125]); // a tail shorter than one 32-value step
    let mut fast = vec![0u16; src.len()];
    bf16::round_slice(&src, &mut fast);
    if !bf16::has_avx512_bf16() {
        eprintln!("no AVX512-BF16 on this CPU: round_slice ran the definition itself");
    }
    for (i, (&x, &h)) in src.iter().zip(&fast).enumerate() {
        let want = bf16::round(x);
        // NaNs need only stay NaNs of the same sign (payloads are not part of the contract).
        let same = h == want || (x.is_nan() && bf16::widen(h).is_nan() && (h ^ want) & 0x8000 == 0);
        assert!(same, "value {i}: {x:e} ({:#010x}) -> {h:#06x}, the definition gives {want:#06x}", x.to_bits());
    }
}

/// Random bf16 operands whose products cancel and carry, so that the order of the two
/// additions and their roundings shows.
fn pair_operands(rng: &mut Rng) -> ([f32; 16], [u16; 32], [u16; 32]) {
    let mut r = || bf16::round(rng.uniform() * 4.0);
    let a: [u16; 32] = std::array::from_fn(|_| r());
    let b: [u16; 32] = std::array::from_fn(|_| r());
    let acc = std::array::from_fn(|j| bf16::widen(a[j]) * 1e-3 + (j as f32) * 0.37);
    (acc, a, b)
}

#[test]
fn the_pair_dot_product_instruction_matches_its_twin_bitwise() {
    if !bf16::has_avx512_bf16() {
        eprintln!("no AVX512-BF16 on this CPU: nothing to compare the twin with");
        return;
    }
    let mut rng = Rng::new(3);
    for case in 0..20_000 {
        let (acc, a, b) = pair_operands(&mut rng);
        let (mut fast, mut twin) = (acc, acc);
        // SAFETY: the CPU has AVX512-BF16 (checked above).
        unsafe { bf16::pair_dot_acc_avx512(&mut fast, &a, &b) };
        bf16::pair_dot_acc_portable(&mut twin, &a, &b);
        for j in 0..16 {
            assert_eq!(
                fast[j].to_bits(),
                twin[j].to_bits(),
                "case {case}, lane {j}: acc {} + {} x {} + {} x {}: instruction {} twin {}",
                acc[j],
                bf16::widen(a[2 * j]),
                bf16::widen(b[2 * j]),
                bf16::widen(a[2 * j + 1]),
                bf16::widen(b[2 * j + 1]),
                fast[j],
                twin[j]
            );
        }
    }
}

#[test]
fn the_pair_dot_product_is_the_sum_of_both_products() {
    let mut rng = Rng::new(5);
    for _ in 0..1000 {
        let (acc, a, b) = pair_operands(&mut rng);
        let mut got = acc;
        bf16::pair_dot_acc(&mut got, &a, &b);
        for j in 0..16 {
            let exact = acc[j] as f64
                + bf16::widen(a[2 * j]) as f64 * bf16::widen(b[2 * j]) as f64
                + bf16::widen(a[2 * j + 1]) as f64 * bf16::widen(b[2 * j + 1]) as f64;
            // Two roundings of f32, each within half a unit of a value below 2 x 30.
            assert!((got[j] as f64 - exact).abs() <= 8e-6, "lane {j}: {} vs {exact}", got[j]);
        }
    }
}
