//! The elementwise loops (bias, sums, activations, max pooling's running maximum), on the
//! widest vectors of the CPU. Each is a plain scalar loop (`*_with`) that the compiler
//! vectorizes once `dispatch!` inlines it into a wrapper with the path's instruction set (`S`
//! picks only that). The binary is built for baseline x86-64, so the `wide` vectors these
//! loops used before were 128-bit SSE: the per-image ReLU of a 28x28x32 output cost 2-3% of
//! a baseline inference. Elementwise, so every path gives the same bits.

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
    x.iter_mut().for_each(|v| *v = if *v > 0.0 { *v } else { 0.0 });
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
    d.iter_mut().zip(y).for_each(|(d, &y)| *d = if y > 0.0 { *d } else { 0.0 });
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
