//! The elementwise loops (bias, sums, activations, max pooling's running maximum), on the
//! widest vectors of the CPU. Each is a plain scalar loop (`*_with`) that the compiler
//! vectorizes once `dispatch!` inlines it into a wrapper with the path's instruction set (`S`
//! picks only that), except ReLU and its gradient, written on `S`'s vectors (see
//! `Simd::keep_where_positive`). The binary is built for baseline x86-64, so the `wide`
//! vectors these loops used before were 128-bit SSE: the per-image ReLU of a 28x28x32 output
//! cost 2-3% of a baseline inference. Elementwise, so every path gives the same bits.

use crate::isa::dispatch;
use crate::micro::Simd;

/// Asks for the cache line holding `p` to be brought into L1: a hint, which reads nothing and
/// never faults, whatever the address.
#[inline(always)]
pub(crate) fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is SSE (every x86-64 CPU) and does not fault on any address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `prefetch` of the line at `offset` in each of `rows` rows `stride` floats apart from `v`:
/// in the Winograd transforms, the line each of their planes is written next (else each
/// store waited for its line), and a weight-gradient tile's sums before it adds to them.
/// Transposed 14 x 14 128 -> 64 at batch 64, 1 thread, Xeon: forward 11.9 -> 11.3 ms,
/// backward 24.9 -> 24.2 (medians of 5, alternated).
#[inline(always)]
pub(crate) fn prefetch_rows(v: *const f32, rows: usize, stride: usize, offset: usize) {
    (0..rows).for_each(|q| prefetch(v.wrapping_add(q * stride + offset)));
}

/// Sets each row of the row-major `[rows, row.len()]` matrix `y` to `row`.
pub fn copy_rows(row: &[f32], y: &mut [f32]) {
    assert!(!row.is_empty() && y.len().is_multiple_of(row.len()));
    y.chunks_exact_mut(row.len()).for_each(|r| r.copy_from_slice(row));
}

/// Where `x[i] > best[i]`: `best[i]` <- `x[i]` and `arg[i]` <- first_index + i. Strict `>` keeps
/// the first maximum of a window scanned in order (TensorFlow's tie rule). Written as selects,
/// so the compiler vectorizes it into compares and blends (branches here had run at about 10
/// cycles per element). Inlined into its caller's dispatched loop (`maxpool2d`).
/// # Safety
/// As `add_assign_with`.
#[inline(always)]
pub(crate) unsafe fn keep_first_max_with<S: Simd>(x: &[f32], first_index: u32, best: &mut [f32], arg: &mut [u32]) {
    for (i, ((&x, b), a)) in x.iter().zip(best.iter_mut()).zip(arg.iter_mut()).enumerate() {
        let gt = x > *b;
        *b = if gt { x } else { *b };
        *a = if gt { first_index + i as u32 } else { *a };
    }
}

/// y <- y + x, elementwise.
pub fn add_assign(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    dispatch!(add_assign_with(x: &[f32], y: &mut [f32]))
}

/// # Safety
/// None beyond `dispatch!`'s (the CPU has the path's instructions).
#[inline(always)]
unsafe fn add_assign_with<S: Simd>(x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += x);
}

/// Adds `bias` (length c) to each row of the row-major `[rows, c]` matrix `y`.
pub fn add_bias_rows(bias: &[f32], y: &mut [f32]) {
    let c = bias.len();
    assert!(c > 0 && y.len().is_multiple_of(c));
    dispatch!(add_bias_rows_with(bias: &[f32], y: &mut [f32]))
}

/// # Safety
/// As `add_assign_with`.
#[inline(always)]
unsafe fn add_bias_rows_with<S: Simd>(bias: &[f32], y: &mut [f32]) {
    y.chunks_exact_mut(bias.len()).for_each(|row| add_assign_with::<S>(bias, row));
}

/// acc <- acc + the column sums of the row-major `[rows, acc.len()]` matrix `y`.
pub fn sum_rows_acc(y: &[f32], acc: &mut [f32]) {
    let c = acc.len();
    assert!(c > 0 && y.len().is_multiple_of(c));
    dispatch!(sum_rows_acc_with(y: &[f32], acc: &mut [f32]))
}

/// # Safety
/// As `add_assign_with`.
#[inline(always)]
unsafe fn sum_rows_acc_with<S: Simd>(y: &[f32], acc: &mut [f32]) {
    // The models' channel counts: the sums stay in registers across the rows (through memory,
    // each row's adds waited on the stores of the row before). The same adds in the same
    // order either way.
    match acc.len() {
        16 => sum_rows_fixed::<16>(y, acc),
        32 => sum_rows_fixed::<32>(y, acc),
        64 => sum_rows_fixed::<64>(y, acc),
        128 => sum_rows_fixed::<128>(y, acc),
        _ => y.chunks_exact(acc.len()).for_each(|row| add_assign_with::<S>(row, acc)),
    }
}

/// `sum_rows_acc_with` for rows of `C` floats, the sums in a local array.
#[inline(always)]
fn sum_rows_fixed<const C: usize>(y: &[f32], acc: &mut [f32]) {
    let mut sums: [f32; C] = acc.try_into().expect("C sums");
    for row in y.chunks_exact(C) {
        sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    acc.copy_from_slice(&sums);
}

/// x <- max(x, 0) (`0 < x ? x : 0`: NaN and -0 give +0).
pub fn relu_inplace(x: &mut [f32]) {
    dispatch!(relu_with(x: &mut [f32]))
}

/// # Safety
/// As `add_assign_with`.
#[inline(always)]
unsafe fn relu_with<S: Simd>(x: &mut [f32]) {
    let p = x.as_mut_ptr();
    keep_where_positive_with::<S>(p, p, x.len());
}

/// d <- d where y > 0, else 0, in place (ReLU's gradient is 0 at exactly 0, as in TensorFlow).
pub fn relu_mask(y: &[f32], d: &mut [f32]) {
    assert_eq!(y.len(), d.len());
    dispatch!(relu_mask_with(y: &[f32], d: &mut [f32]))
}

/// # Safety
/// As `add_assign_with`.
#[inline(always)]
unsafe fn relu_mask_with<S: Simd>(y: &[f32], d: &mut [f32]) {
    keep_where_positive_with::<S>(y.as_ptr(), d.as_mut_ptr(), d.len());
}

/// d[i] <- d[i] where y[i] > 0, else +0, for i < len, on whole vectors of
/// `Simd::keep_where_positive` (the last few through a vector's worth of copies, which a scalar
/// loop would have become masked stores again). `y` may be `d` (ReLU itself).
/// # Safety
/// As `add_assign_with`; `y` and `d` hold `len` floats.
#[inline(always)]
unsafe fn keep_where_positive_with<S: Simd>(y: *const f32, d: *mut f32, len: usize) {
    let whole = len - len % S::LANES;
    for i in (0..whole).step_by(S::LANES) {
        S::store(d.add(i), S::keep_where_positive(S::load(d.add(i)), S::load(y.add(i))));
    }
    let rest = len - whole;
    if rest > 0 {
        let (mut dv, mut yv) = ([0.0f32; 16], [0.0f32; 16]);
        core::ptr::copy_nonoverlapping(d.add(whole), dv.as_mut_ptr(), rest);
        core::ptr::copy_nonoverlapping(y.add(whole), yv.as_mut_ptr(), rest);
        S::store(dv.as_mut_ptr(), S::keep_where_positive(S::load(dv.as_ptr()), S::load(yv.as_ptr())));
        core::ptr::copy_nonoverlapping(dv.as_ptr(), d.add(whole), rest);
    }
}

/// d <- d * y * (1 - y) in place: the sigmoid's gradient from its output y.
pub fn sigmoid_grad(y: &[f32], d: &mut [f32]) {
    assert_eq!(y.len(), d.len());
    dispatch!(sigmoid_grad_with(y: &[f32], d: &mut [f32]))
}

/// # Safety
/// As `add_assign_with`.
#[inline(always)]
unsafe fn sigmoid_grad_with<S: Simd>(y: &[f32], d: &mut [f32]) {
    d.iter_mut().zip(y).for_each(|(d, &y)| *d = *d * y * (1.0 - y));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_and_its_mask_keep_the_scalar_rule_bit_for_bit_on_every_path() {
        let special = [f32::NAN, -0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY, 1e-45, -1e-45, f32::MIN_POSITIVE];
        let y: Vec<f32> = (0..37).map(|i| special.get(i).copied().unwrap_or((i as f32 - 20.0) * 0.37)).collect();
        let d: Vec<f32> = (0..37).map(|i| [-0.0, f32::NAN, 2.5, -3.0][i % 4]).collect();
        let keep = |v: f32, y: f32| if y > 0.0 { v } else { 0.0 };
        for path in crate::isa::KernelPath::supported() {
            let (mut relu, mut mask) = (y.clone(), d.clone());
            let (x, ys, ds): (&mut [f32], &[f32], &mut [f32]) = (&mut relu, &y, &mut mask);
            dispatch!(on path, relu_with(x: &mut [f32]));
            dispatch!(on path, relu_mask_with(ys: &[f32], ds: &mut [f32]));
            for i in 0..y.len() {
                assert_eq!(relu[i].to_bits(), keep(y[i], y[i]).to_bits(), "{path} relu of {}", y[i]);
                assert_eq!(mask[i].to_bits(), keep(d[i], y[i]).to_bits(), "{path} mask {} at {}", d[i], y[i]);
            }
        }
    }

    #[test]
    fn row_sums_are_the_rows_added_in_order() {
        // Values of mixed magnitudes, so that another order of the adds gives other bits.
        let value = |i: usize| ((i as u32).wrapping_mul(2_654_435_761) % 20_011) as f32 * [1e-3, 1.0, 1e3][i % 3] - 7.0;
        for c in [16, 32, 64, 128, 24] {
            let rows = 37;
            let y: Vec<f32> = (0..rows * c).map(value).collect();
            let start: Vec<f32> = (0..c).map(|i| value(i + 99)).collect();
            let mut want = start.clone();
            for row in y.chunks(c) {
                for (w, v) in want.iter_mut().zip(row) {
                    *w += v;
                }
            }
            let mut got = start;
            sum_rows_acc(&y, &mut got);
            let differ = got.iter().zip(&want).position(|(g, w)| g.to_bits() != w.to_bits());
            assert!(differ.is_none(), "c = {c}: sum {differ:?} differs");
        }
    }
}
