//! The one safe wrapper over `matrixmultiply::sgemm`.

/// A strided f32 matrix view: element (r, c) is `data[r * rs + c * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `[rows, cols]` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, rs: cols, cs: 1 }
    }
    /// The transpose of a row-major `[cols, rows]` matrix, without copying.
    pub fn t(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, rs: 1, cs: rows }
    }
}

/// Smallest slice length that holds every element of a strided `rows x cols` matrix, in
/// checked arithmetic: a view whose last offset overflows panics instead of wrapping to a
/// small span that a short slice would pass (and sgemm then reading out of bounds).
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    assert!(isize::try_from(rs.max(cs)).is_ok(), "gemm: a stride exceeds isize::MAX");
    (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
        .and_then(|last| last.checked_add(1))
        .expect("gemm: the view's last offset overflows usize")
}

/// C <- A B + beta C, with C a row-major `[a.rows, b.cols]` matrix in `c`.
/// # Panics
/// If the inner dimensions disagree, a slice is too short for its view, or a view's extent
/// overflows.
pub fn gemm(a: Mat, b: Mat, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions disagree");
    assert!(a.data.len() >= span(m, k, a.rs, a.cs), "gemm: A too short");
    assert!(b.data.len() >= span(k, n, b.rs, b.cs), "gemm: B too short");
    assert!(c.len() >= crate::geom::size(&[m, n]), "gemm: C too short");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the asserts above prove every index sgemm touches, (m-1)*rs + (k-1)*cs for A,
    // (k-1)*rs + (n-1)*cs for B and (m-1)*n + (n-1) for C, is inside its slice; C is a unique
    // borrow, so it aliases neither A nor B.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// The naive twin: C <- A B + beta C in plain loops, with an f64 accumulator.
pub fn gemm_naive(a: Mat, b: Mat, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions disagree");
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for p in 0..k {
                acc += a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
            }
            let old = if beta == 0.0 { 0.0 } else { beta * c[i * n + j] };
            c[i * n + j] = acc as f32 + old;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "overflows")]
    fn a_view_whose_extent_wraps_is_refused() {
        // Row 4 of A starts at 4 * 2^62, which wraps to 0: unchecked, the span was 1 and
        // sgemm read far outside the one-element slice.
        let a = Mat { data: &[1.0], rows: 5, cols: 1, rs: 1 << 62, cs: 1 };
        gemm(a, Mat::rows(&[1.0], 1, 1), 0.0, &mut [0.0; 5]);
    }
}
