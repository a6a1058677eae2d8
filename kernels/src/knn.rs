//! k-nearest-neighbour classification under the squared Euclidean distance. Samples are rows of
//! `[n, d]` row-major f32; labels are u8 classes.
//!
//! **Ties, deterministic**: neighbours are ranked by (distance, train index), so of two train
//! rows at the same distance the earlier one is nearer. The vote goes to the class with the
//! most of the k neighbours; a tie in votes goes to the tied class whose nearest neighbour
//! ranks first.
//!
//! The fast pass computes ||a||^2 + ||b||^2 - 2 a.b with `gemm` on blocks of
//! [`TEST_BLOCK`] test rows x [`TRAIN_BLOCK`] train rows, so memory stays at one
//! `[TEST_BLOCK, TRAIN_BLOCK]` block of dot products per task however large the sets are.
//! Tasks are fixed blocks of test rows (rayon), each scanning the train rows in order, so the
//! result does not depend on the thread count.

use crate::gemm::{gemm, Mat};
use rayon::prelude::*;

/// Test rows per parallel task.
pub const TEST_BLOCK: usize = 256;
/// Train rows per `gemm` call.
pub const TRAIN_BLOCK: usize = 1024;

fn check(train: &[f32], train_labels: &[u8], test: &[f32], d: usize, k: usize, pred: &[u8]) {
    assert!(d > 0, "knn: d must be positive");
    let n_train = train_labels.len();
    assert_eq!(train.len(), n_train * d, "knn: train must be [train_labels.len(), d]");
    assert_eq!(test.len(), pred.len() * d, "knn: test must be [pred.len(), d]");
    assert!(k >= 1 && k <= n_train, "knn: k = {k} needs 1..={n_train} train rows");
}

/// A candidate neighbour: its squared distance and train row.
#[derive(Clone, Copy, Debug)]
struct Neighbour {
    dist: f32,
    index: usize,
}

/// Offers train row `index` at `dist` to the sorted list `best` (nearest first). Rows must be
/// offered in ascending index order: an equal distance then never displaces an earlier row.
fn offer(best: &mut [Neighbour], dist: f32, index: usize) {
    let last = best.len() - 1;
    // Not "less" also drops NaN.
    if dist.partial_cmp(&best[last].dist) != Some(std::cmp::Ordering::Less) {
        return;
    }
    let mut pos = last;
    while pos > 0 && best[pos - 1].dist > dist {
        best[pos] = best[pos - 1];
        pos -= 1;
    }
    best[pos] = Neighbour { dist, index };
}

/// The majority label of `best` (nearest first), ties to the class whose nearest member ranks
/// first. Neighbours never filled (NaN distances) do not vote; with none, class 0.
fn vote(best: &[Neighbour], labels: &[u8]) -> u8 {
    let voters = || best.iter().filter(|nb| nb.index < labels.len()).map(|nb| labels[nb.index]);
    let mut counts = [0u32; 256];
    for c in voters() {
        counts[usize::from(c)] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(0);
    voters().find(|&c| counts[usize::from(c)] == max).unwrap_or(0)
}

fn sq_norm(row: &[f32]) -> f32 {
    row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() as f32
}

/// `pred[i]` = the majority label among the `k` train rows nearest test row i (ties as in the
/// module docs). Overwrites `pred` `[n_test]`.
/// # Panics
/// If `train` is not `[train_labels.len(), d]`, `test` not `[pred.len(), d]`, `d == 0`, or
/// `k` is not in `1..=train_labels.len()`.
pub fn classify(train: &[f32], train_labels: &[u8], test: &[f32], d: usize, k: usize, pred: &mut [u8]) {
    check(train, train_labels, test, d, k, pred);
    let n_train = train_labels.len();
    let train_norms: Vec<f32> = train.par_chunks(d).map(sq_norm).collect(); // [n_train]
    test.par_chunks(TEST_BLOCK * d).zip(pred.par_chunks_mut(TEST_BLOCK)).for_each(|(ts, ps)| {
        let t = ps.len();
        let test_norms: Vec<f32> = ts.chunks_exact(d).map(sq_norm).collect(); // [t]
        let mut best = vec![Neighbour { dist: f32::INFINITY, index: usize::MAX }; t * k]; // [t, k]
        let mut dots = vec![0.0f32; t * TRAIN_BLOCK.min(n_train)]; // [t, r]
        for (b, tr) in train.chunks(TRAIN_BLOCK * d).enumerate() {
            let (r, base) = (tr.len() / d, b * TRAIN_BLOCK);
            let dots = &mut dots[..t * r];
            gemm(Mat::rows(ts, t, d), Mat::t(tr, d, r), 0.0, dots);
            for ((row, nb), &tn) in dots.chunks_exact(r).zip(best.chunks_exact_mut(k)).zip(&test_norms) {
                for (j, (&dot, &bn)) in row.iter().zip(&train_norms[base..base + r]).enumerate() {
                    offer(nb, (tn + bn - 2.0 * dot).max(0.0), base + j);
                }
            }
        }
        for (p, nb) in ps.iter_mut().zip(best.chunks_exact(k)) {
            *p = vote(nb, train_labels);
        }
    });
}

/// The naive twin of [`classify`]: every distance as an f64 sum of squared differences, a full
/// sort by (distance, index), the same vote.
pub fn classify_naive(train: &[f32], train_labels: &[u8], test: &[f32], d: usize, k: usize, pred: &mut [u8]) {
    check(train, train_labels, test, d, k, pred);
    for (p, a) in pred.iter_mut().zip(test.chunks_exact(d)) {
        let mut all: Vec<(f64, usize)> = train
            .chunks_exact(d)
            .enumerate()
            .map(|(j, b)| (a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum(), j))
            .collect();
        all.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let best: Vec<Neighbour> =
            all[..k].iter().map(|&(dist, index)| Neighbour { dist: dist as f32, index }).collect();
        *p = vote(&best, train_labels);
    }
}

/// The fraction of `pred` equal to `labels` (0 for empty input).
/// # Panics
/// If the lengths differ.
pub fn accuracy(pred: &[u8], labels: &[u8]) -> f64 {
    assert_eq!(pred.len(), labels.len(), "knn::accuracy: lengths");
    if pred.is_empty() {
        return 0.0;
    }
    pred.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / pred.len() as f64
}
