//! Eigen-decomposition of a real symmetric matrix, in f64: `a = V diag(values) V^T`.
//!
//! Layout: `a` is `[n, n]` row-major; the result holds the eigenvalues in descending order and
//! the eigenvectors as the ROWS of `vectors` (`vectors[i*n..(i+1)*n]` belongs to `values[i]`),
//! each of unit length and signed so that its largest-magnitude entry is positive (the first
//! such entry on a tie), which makes the result unique for distinct eigenvalues.
//!
//! [`symmetric`] is Householder tridiagonalisation followed by the implicit QL algorithm
//! (EISPACK `tred2` / `tql2`, as in the public-domain JAMA): about 9n^3 flops. Its naive twin
//! [`symmetric_naive`] is the cyclic Jacobi method, an independent algorithm used as the oracle.

/// Eigenvalues (descending) and eigenvectors (rows) of the symmetric `a`. Reads the whole of
/// `a` and assumes it is symmetric. Overwrites `values` `[n]` and `vectors` `[n, n]`.
/// # Panics
/// If a slice length disagrees with `n`.
pub fn symmetric(a: &[f64], n: usize, values: &mut [f64], vectors: &mut [f64]) {
    check(a, n, values, vectors);
    if n == 0 {
        return;
    }
    let mut v = a.to_vec(); // [n, n], becomes the orthogonal Q of the tridiagonalisation
    let mut e = vec![0.0; n]; // [n] sub-diagonal
    tridiagonalise(&mut v, n, values, &mut e);
    // QL rotates pairs of columns of Q; rotate rows of Q^T instead, which are contiguous.
    let mut qt = vec![0.0; n * n]; // [n, n] = Q^T
    for i in 0..n {
        for j in 0..n {
            qt[j * n + i] = v[i * n + j];
        }
    }
    ql_implicit(&mut qt, n, values, &mut e);
    sort_and_sign(n, values, &qt, vectors);
}

fn check(a: &[f64], n: usize, values: &[f64], vectors: &[f64]) {
    assert_eq!(a.len(), n * n, "eigen: a must be [n, n]");
    assert_eq!(values.len(), n, "eigen: values must be [n]");
    assert_eq!(vectors.len(), n * n, "eigen: vectors must be [n, n]");
}

/// Householder reduction of the symmetric `v` to tridiagonal form (EISPACK tred2): on return
/// `d` is the diagonal, `e[1..]` the sub-diagonal and `v` the accumulated transformation Q.
fn tridiagonalise(v: &mut [f64], n: usize, d: &mut [f64], e: &mut [f64]) {
    d.copy_from_slice(&v[(n - 1) * n..]);
    for i in (1..n).rev() {
        let scale: f64 = d[..i].iter().map(|x| x.abs()).sum();
        let mut h = 0.0;
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[(i - 1) * n + j];
                v[i * n + j] = 0.0;
                v[j * n + i] = 0.0;
            }
        } else {
            // The Householder vector, scaled to avoid under- and overflow.
            for dk in &mut d[..i] {
                *dk /= scale;
                h += *dk * *dk;
            }
            let mut f = d[i - 1];
            let g = if f > 0.0 { -h.sqrt() } else { h.sqrt() };
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            e[..i].fill(0.0);
            // Apply the similarity transformation to the remaining columns.
            for j in 0..i {
                f = d[j];
                v[j * n + i] = f;
                let mut g = e[j] + v[j * n + j] * f;
                for k in j + 1..i {
                    g += v[k * n + j] * d[k];
                    e[k] += v[k * n + j] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                let (f, g) = (d[j], e[j]);
                for k in j..i {
                    v[k * n + j] -= f * e[k] + g * d[k];
                }
                d[j] = v[(i - 1) * n + j];
                v[i * n + j] = 0.0;
            }
        }
        d[i] = h;
    }
    // Accumulate the transformations.
    for i in 0..n - 1 {
        v[(n - 1) * n + i] = v[i * n + i];
        v[i * n + i] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[k * n + i + 1] / h;
            }
            for j in 0..=i {
                let g: f64 = (0..=i).map(|k| v[k * n + i + 1] * v[k * n + j]).sum();
                for k in 0..=i {
                    v[k * n + j] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[k * n + i + 1] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[(n - 1) * n + j];
        v[(n - 1) * n + j] = 0.0;
    }
    v[n * n - 1] = 1.0;
    e[0] = 0.0;
}

/// Most QL iterations spent on one eigenvalue; convergence normally takes 1 to 3. The cap only
/// guarantees termination on non-finite input.
const MAX_QL_ITERATIONS: usize = 64;

/// Implicit QL with Wilkinson-style shifts on the tridiagonal (`d`, `e`) (EISPACK tql2), the
/// rotations applied to the rows of `qt` (= Q^T). On return `d` holds the eigenvalues (unsorted)
/// and row i of `qt` the eigenvector of `d[i]`.
fn ql_implicit(qt: &mut [f64], n: usize, d: &mut [f64], e: &mut [f64]) {
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let (mut f, mut tst1) = (0.0f64, 0.0f64);
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        // The first negligible sub-diagonal element at or after l (e[n-1] = 0 ends the search).
        let mut m = l;
        while m < n - 1 && e[m].abs() > eps * tst1 {
            m += 1;
        }
        if m > l {
            for _ in 0..MAX_QL_ITERATIONS {
                // The implicit shift.
                let g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let r = p.hypot(1.0).copysign(p);
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let h = g - d[l];
                for di in &mut d[l + 2..] {
                    *di -= h;
                }
                f += h;
                // The implicit QL transformation.
                p = d[m];
                let (mut c, mut c2, mut c3) = (1.0, 1.0, 1.0);
                let el1 = e[l + 1];
                let (mut s, mut s2) = (0.0, 0.0);
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    let g = c * e[i];
                    let h = c * p;
                    let r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    let (lo, hi) = qt.split_at_mut((i + 1) * n);
                    let (row_i, row_i1) = (&mut lo[i * n..], &mut hi[..n]);
                    for (a, b) in row_i.iter_mut().zip(row_i1.iter_mut()) {
                        let t = *b;
                        *b = s * *a + c * t;
                        *a = c * *a - s * t;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                // Not "greater" also stops on NaN.
                if e[l].abs().partial_cmp(&(eps * tst1)) != Some(std::cmp::Ordering::Greater) {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
}

/// Writes the eigenpairs (`d[i]`, row i of `rows`) sorted by descending eigenvalue (a stable
/// sort, so equal eigenvalues keep their order), each vector signed per the module docs.
fn sort_and_sign(n: usize, d: &mut [f64], rows: &[f64], vectors: &mut [f64]) {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| d[b].total_cmp(&d[a]));
    let sorted: Vec<f64> = order.iter().map(|&i| d[i]).collect();
    d.copy_from_slice(&sorted);
    for (dst, &src) in vectors.chunks_exact_mut(n).zip(&order) {
        let row = &rows[src * n..(src + 1) * n];
        let big = row.iter().fold(0.0f64, |m, x| if x.abs() > m.abs() { *x } else { m });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        for (o, &x) in dst.iter_mut().zip(row) {
            *o = sign * x;
        }
    }
}

/// (a[x + k*stride], a[y + k*stride]) <- (c u - s w, s u + c w) of their old values (u, w),
/// for k in 0..n: a plane rotation of two rows (stride 1) or two columns (stride n).
fn rotate(a: &mut [f64], n: usize, x: usize, y: usize, stride: usize, c: f64, s: f64) {
    for k in 0..n {
        let (i, j) = (x + k * stride, y + k * stride);
        let (u, w) = (a[i], a[j]);
        a[i] = c * u - s * w;
        a[j] = s * u + c * w;
    }
}

/// The naive twin: cyclic Jacobi rotations until the off-diagonal part vanishes (at most 100
/// sweeps), with the same output conventions as [`symmetric`].
/// # Panics
/// If a slice length disagrees with `n`.
pub fn symmetric_naive(a: &[f64], n: usize, values: &mut [f64], vectors: &mut [f64]) {
    check(a, n, values, vectors);
    let mut m = a.to_vec(); // [n, n], driven to diagonal
    let mut v = vec![0.0; n * n]; // [n, n], columns = eigenvectors
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = m.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|p| (0..n).filter(move |&q| q != p).map(move |q| (p, q)))
            .map(|(p, q)| m[p * n + q].powi(2))
            .sum();
        if off <= 1e-30 * scale || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = 1.0f64.copysign(theta) / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // m <- J^T m J, v <- v J, with J the rotation in the (p, q) plane.
                rotate(&mut m, n, p, q, n, c, s);
                rotate(&mut m, n, p * n, q * n, 1, c, s);
                rotate(&mut v, n, p, q, n, c, s);
            }
        }
    }
    let mut d: Vec<f64> = (0..n).map(|i| m[i * n + i]).collect();
    let mut rows = vec![0.0; n * n]; // [n, n] = v^T
    for i in 0..n {
        for j in 0..n {
            rows[j * n + i] = v[i * n + j];
        }
    }
    sort_and_sign(n, &mut d, &rows, vectors);
    values.copy_from_slice(&d);
}
