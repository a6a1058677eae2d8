//! PCA, the symmetric eigen-decomposition and k-NN on small cases with known answers, and each
//! fast pass against its naive twin on awkward sizes (not multiples of the block sizes).

mod common;

use common::{assert_close, on_threads, Rng, Tol};
use kernels::{eigen, knn, pca};

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// A random symmetric `[n, n]` matrix.
fn symmetric(rng: &mut Rng, n: usize) -> Vec<f64> {
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = f64::from(rng.uniform());
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
    a
}

/// max |A v - lambda v| over the eigenpairs, and max |V V^T - I|.
fn eigen_residuals(a: &[f64], n: usize, values: &[f64], vectors: &[f64]) -> (f64, f64) {
    let (mut res, mut orth) = (0.0f64, 0.0f64);
    for i in 0..n {
        let v = &vectors[i * n..(i + 1) * n];
        for r in 0..n {
            let av: f64 = (0..n).map(|c| a[r * n + c] * v[c]).sum();
            res = res.max((av - values[i] * v[r]).abs());
        }
        for j in 0..n {
            let dot: f64 = (0..n).map(|c| v[c] * vectors[j * n + c]).sum();
            orth = orth.max((dot - if i == j { 1.0 } else { 0.0 }).abs());
        }
    }
    (res, orth)
}

#[test]
fn eigen_matches_jacobi_and_is_a_true_decomposition() {
    let mut rng = Rng::new(7);
    for n in [1, 2, 3, 7, 37] {
        let a = symmetric(&mut rng, n);
        let (mut v1, mut w1) = (vec![0.0; n], vec![0.0; n * n]);
        let (mut v2, mut w2) = (vec![0.0; n], vec![0.0; n * n]);
        eigen::symmetric(&a, n, &mut v1, &mut w1);
        eigen::symmetric_naive(&a, n, &mut v2, &mut w2);
        let case = format!("random symmetric {n}x{n}");
        assert!(max_diff(&v1, &v2) < 1e-12, "{case}: eigenvalues {v1:?} vs Jacobi {v2:?}");
        assert!(max_diff(&w1, &w2) < 1e-9, "{case}: eigenvectors differ from Jacobi's by {:e}", max_diff(&w1, &w2));
        assert!(v1.windows(2).all(|p| p[0] >= p[1]), "{case}: not descending: {v1:?}");
        let (res, orth) = eigen_residuals(&a, n, &v1, &w1);
        assert!(res < 1e-12 && orth < 1e-12, "{case}: residual {res:e}, orthogonality {orth:e}");
    }
}

#[test]
fn eigen_of_a_diagonal_matrix_is_its_sorted_axes() {
    let n = 4;
    let diag = [1.0, 3.0, 2.0, 0.5];
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        a[i * n + i] = diag[i];
    }
    let (mut values, mut vectors) = (vec![0.0; n], vec![0.0; n * n]);
    eigen::symmetric(&a, n, &mut values, &mut vectors);
    assert_eq!(values, [3.0, 2.0, 1.0, 0.5]);
    let axis = |i: usize| (0..n).map(|j| if j == i { 1.0 } else { 0.0 }).collect::<Vec<f64>>();
    let want: Vec<f64> = [1, 2, 0, 3].iter().flat_map(|&i| axis(i)).collect();
    assert_eq!(vectors, want);
}

#[test]
fn pca_of_a_plane_in_3d_has_two_components_and_reconstructs_exactly() {
    // Points c + s u + t v on a tilted plane.
    let (c, u, v) = ([0.5f32, -1.0, 2.0], [0.6f32, 0.8, 0.0], [0.0f32, 0.6, -0.8]);
    let mut x = Vec::new();
    let mut rng = Rng::new(3);
    for _ in 0..50 {
        let (s, t) = (3.0 * rng.uniform(), rng.uniform());
        x.extend((0..3).map(|j| c[j] + s * u[j] + t * v[j]));
    }
    let (n, d, k) = (50, 3, 2);
    let (mut mean, mut comps, mut var) = (vec![0.0; d], vec![0.0; k * d], vec![0.0; d]);
    pca::fit(&x, n, d, k, &mut mean, &mut comps, &mut var);
    assert!(var[2].abs() < 1e-6 * var[0], "third variance {} should vanish (first {})", var[2], var[0]);
    assert!(var[0] > var[1] && var[1] > 1e-2, "{var:?}");
    // The plane's normal is orthogonal to both components.
    let normal = [0.8f32 * -0.8 - 0.0, -(0.6 * -0.8), 0.6 * 0.6]; // u x v
    for row in comps.chunks_exact(d) {
        let dot: f32 = row.iter().zip(&normal).map(|(a, b)| a * b).sum();
        assert!(dot.abs() < 1e-5, "component {row:?} leaves the plane");
    }
    let mut codes = vec![0.0; n * k];
    pca::project(&x, d, &mean, &comps, k, &mut codes);
    let mut back = vec![0.0; n * d];
    pca::reconstruct(&codes, k, &mean, &comps, d, &mut back);
    assert_close("plane", "reconstruction", &back, &x, Tol { abs: 1e-5, rel: 1e-5 });
}

#[test]
fn pca_of_axis_aligned_data_gives_sorted_axes_and_known_variances() {
    // +-s_j e_j for each axis j: mean 0, covariance diag(2 s_j^2 / (n - 1)).
    let s = [1.0f32, 3.0, 2.0, 0.5];
    let d = 4;
    let mut x = Vec::new();
    for (j, &sj) in s.iter().enumerate() {
        for sign in [1.0, -1.0] {
            x.extend((0..d).map(|i| if i == j { sign * sj } else { 0.0 }));
        }
    }
    let n = 2 * d;
    let (mut mean, mut comps, mut var) = (vec![0.0; d], vec![0.0; d * d], vec![0.0; d]);
    pca::fit(&x, n, d, d, &mut mean, &mut comps, &mut var);
    assert_eq!(mean, [0.0; 4]);
    let want_var: Vec<f64> = [3.0f64, 2.0, 1.0, 0.5].iter().map(|s| 2.0 * s * s / (n - 1) as f64).collect();
    assert_close("axes", "variances", &f32s(&var), &want_var, Tol { abs: 1e-12, rel: 1e-6 });
    let want: Vec<f32> =
        [1usize, 2, 0, 3].iter().flat_map(|&a| (0..d).map(move |j| if j == a { 1.0 } else { 0.0 })).collect();
    assert_close("axes", "components", &comps, &want, Tol { abs: 1e-6, rel: 0.0 });
}

#[test]
fn covariance_and_fit_equal_their_naive_twins() {
    let mut rng = Rng::new(11);
    // 1,003 rows: several parts and row blocks, none full.
    let (n, d) = (1003, 13);
    let x: Vec<f32> = rng.vec(n * d).iter().enumerate().map(|(i, v)| v * (1 + i % d) as f32 + 0.3).collect();
    let mut mean = vec![0.0; d];
    pca::mean(&x, n, d, &mut mean);
    let (mut fast, mut naive) = (vec![0.0; d * d], vec![0.0; d * d]);
    pca::covariance(&x, n, d, &mean, &mut fast);
    pca::covariance_naive(&x, n, d, &mean, &mut naive);
    assert_close("covariance 1003x13", "cov", &f32s(&fast), &naive, Tol { abs: 1e-5, rel: 1e-5 });
    let one = on_threads(1, || {
        let mut c = vec![0.0; d * d];
        pca::covariance(&x, n, d, &mean, &mut c);
        c
    });
    assert!(one.iter().zip(&fast).all(|(a, b)| a.to_bits() == b.to_bits()), "covariance differs on 1 thread");

    let k = 5;
    let fit = |naive: bool| {
        let (mut m, mut c, mut v) = (vec![0.0; d], vec![0.0; k * d], vec![0.0; d]);
        let f = if naive { pca::fit_naive } else { pca::fit };
        f(&x, n, d, k, &mut m, &mut c, &mut v);
        (m, c, v)
    };
    let (m1, c1, v1) = fit(false);
    let (m2, c2, v2) = fit(true);
    assert_close("fit 1003x13", "mean", &m1, &m2, Tol { abs: 0.0, rel: 0.0 });
    assert_close("fit 1003x13", "variances", &f32s(&v1), &v2, Tol { abs: 1e-6, rel: 1e-5 });
    assert_close("fit 1003x13", "components", &c1, &c2, Tol { abs: 1e-4, rel: 0.0 });
}

#[test]
fn knn_classifies_hand_made_clusters() {
    // Three clusters around (0,0) label 4, (10,0) label 1, (0,10) label 9, five points each.
    let centres = [((0.0, 0.0), 4u8), ((10.0, 0.0), 1), ((0.0, 10.0), 9)];
    let offsets = [(0.0, 0.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)];
    let (mut train, mut labels) = (Vec::new(), Vec::new());
    for &((cx, cy), l) in &centres {
        for &(ox, oy) in &offsets {
            train.extend([cx + ox, cy + oy]);
            labels.push(l);
        }
    }
    let test = [0.5f32, 0.5, 9.0, 1.0, 1.0, 8.0, 4.0, 0.0];
    let mut pred = [0u8; 4];
    knn::classify(&train, &labels, &test, 2, 5, &mut pred);
    assert_eq!(pred, [4, 1, 9, 4]);
    let mut naive = [0u8; 4];
    knn::classify_naive(&train, &labels, &test, 2, 5, &mut naive);
    assert_eq!(naive, pred);
    assert_eq!(knn::accuracy(&pred, &[4, 1, 9, 1]), 0.75);
}

#[test]
fn knn_ties_go_to_the_earlier_row_and_the_nearest_class() {
    let check = |train: &[f32], labels: &[u8], test: &[f32], k: usize, want: u8, case: &str| {
        for naive in [false, true] {
            let mut p = [0u8];
            let f = if naive { knn::classify_naive } else { knn::classify };
            f(train, labels, test, 1, k, &mut p);
            assert_eq!(p[0], want, "{case} (naive: {naive})");
        }
    };
    // Two rows at distance 1 from the query: the earlier row wins.
    check(&[0.0, 2.0], &[3, 7], &[1.0], 1, 3, "distance tie, k = 1");
    check(&[2.0, 0.0], &[7, 3], &[1.0], 1, 7, "distance tie, k = 1, rows swapped");
    // One vote each: the class of the nearest (here the earlier, equally near) row.
    check(&[0.0, 2.0], &[3, 7], &[1.0], 2, 3, "vote tie, k = 2");
    // Ranked labels 1, 2, 3, 2, 3: classes 2 and 3 tie with two votes; 2 ranks first.
    check(&[0.0, 1.0, 2.0, 3.0, 4.0], &[1, 2, 3, 2, 3], &[-0.5], 5, 2, "vote tie, k = 5");
    // Ranked labels 1, 2, 2, 1, 3: classes 1 and 2 tie; 1 ranks first.
    check(&[0.0, 1.0, 2.0, 3.0, 4.0], &[1, 2, 2, 1, 3], &[-0.5], 5, 1, "vote tie won by the nearest");
    // A plain majority beats the nearest row.
    check(&[0.0, 1.0, 2.0, 3.0, 4.0], &[1, 2, 2, 2, 3], &[-0.5], 5, 2, "majority");
}

#[test]
fn knn_equals_its_naive_twin_across_blocks_and_threads() {
    // Small-integer coordinates: every f32 distance is exact, so ties (frequent here) are
    // resolved identically by both passes. Sizes cross TRAIN_BLOCK and TEST_BLOCK unevenly.
    let mut rng = Rng::new(5);
    let (n_train, n_test, d) = (knn::TRAIN_BLOCK * 2 + 37, knn::TEST_BLOCK + 45, 13);
    let mut ints = |len: usize| (0..len).map(|_| (rng.next_u64() % 9) as f32 - 4.0).collect::<Vec<f32>>();
    let (train, test) = (ints(n_train * d), ints(n_test * d));
    let labels: Vec<u8> = (0..n_train).map(|i| (i * 7 % 10) as u8).collect();
    let mut naive = vec![0u8; n_test];
    knn::classify_naive(&train, &labels, &test, d, 5, &mut naive);
    for threads in [1, 2] {
        let fast = on_threads(threads, || {
            let mut p = vec![0u8; n_test];
            knn::classify(&train, &labels, &test, d, 5, &mut p);
            p
        });
        assert_eq!(fast, naive, "{threads} thread(s)");
    }
}
