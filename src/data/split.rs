//! The seeded train / validation / test split: a permutation of `0..n` cut 80 / 10 / 10.
//!
//! The permutation is our own Fisher–Yates loop over raw `u64`s from ChaCha8 (whose stream, and
//! `seed_from_u64`'s expansion, are fixed by their specifications), with our own unbiased
//! bounded draw. Nothing depends on how `rand` happens to implement `shuffle` or `random_range`
//! in a given version, nor on the thread count, so a seed names the same split everywhere.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seed used when none is given.
pub const DEFAULT_SEED: u64 = 42;

/// Disjoint index sets covering `0..n`, in permuted order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// A uniform draw from `0..bound` (`bound > 0`), without modulo bias: values below
/// `2^64 mod bound` are rejected, so the accepted range is a whole number of `bound`s.
fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    let reject_under = bound.wrapping_neg() % bound; // (2^64 - bound) mod bound == 2^64 mod bound
    loop {
        let x = rng.next_u64();
        if x >= reject_under {
            return x % bound;
        }
    }
}

/// Shuffles `items` in place by Fisher–Yates (Durstenfeld's form): for i from len-1 down to 1,
/// swap element i with a uniformly chosen element j in 0..=i.
pub fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// `0..n` shuffled by a generator seeded with `seed`.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    shuffle(&mut perm, &mut ChaCha8Rng::seed_from_u64(seed));
    perm
}

/// Splits `0..n` with `seed`: the first `n*8/10` of the permutation train, the next `n/10`
/// validation, the rest test (56,000 / 7,000 / 7,000 for Fashion-MNIST's 70,000).
pub fn split(n: usize, seed: u64) -> Split {
    let mut perm = permutation(n, seed);
    let n_train = n / 10 * 8 + n % 10 * 8 / 10; // == n*8/10, without overflow
    let n_val = n / 10;
    let test = perm.split_off(n_train + n_val);
    let val = perm.split_off(n_train);
    Split { train: perm, val, test }
}
