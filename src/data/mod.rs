//! Data: IDX files, locating and verifying Fashion-MNIST, the seeded 80/10/10 split.
//!
//! The whole data set stays in memory as `u8` ([n, 28, 28], 55 MB for 70,000 images); images
//! are scaled to `f32` in [0, 1] only per batch, by [`Dataset::fill_batch`].

pub mod fashion_mnist;
pub mod idx;
mod split;

pub use fashion_mnist::load;
pub use split::{permutation, shuffle, split, Split, DEFAULT_SEED};

use std::path::PathBuf;

/// Images are `IMAGE_SIDE` x `IMAGE_SIDE`, one channel.
pub const IMAGE_SIDE: usize = 28;
/// Pixels per image.
pub const IMAGE_LEN: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Labels are classes `0..NUM_CLASSES`.
pub const NUM_CLASSES: usize = 10;

/// Where to find the data and how strictly to check it.
#[derive(Debug, Clone, Default)]
pub struct DataOptions {
    /// Use only this folder (else `FASHION_MNIST_DIR`, the user cache, the Debian package's
    /// folder, then a download).
    pub data_dir: Option<PathBuf>,
    /// Skip the SHA-256 check (every other check stays), for MNIST digits or one's own 28x28
    /// IDX data.
    pub allow_custom_data: bool,
    /// Download from this mirror (`<url>/<name>.gz`) instead of the canonical address, else
    /// from `FASHION_MNIST_URL` when set. A mirror named either way is the data's source: the
    /// Debian package's folder is not searched, the user cache is (and is filled from it).
    pub data_url: Option<String>,
}

/// All images (train then test, before the split) with their labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// [n, 28, 28] u8.
    pub images: Vec<u8>,
    /// `[n]`, each in 0..=9.
    pub labels: Vec<u8>,
    /// Where the data came from, for printing.
    pub origin: String,
}

/// Where a run's data came from, recorded in its state so that `--resume` continues on the
/// same data (`Dataset::digest` tells whether it is).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataRecord {
    /// `--data-dir` as given (`None`: the default search).
    pub data_dir: Option<PathBuf>,
    pub allow_custom_data: bool,
    /// `Dataset::origin`, for messages.
    pub origin: String,
    /// `Dataset::digest` with the run's seed.
    pub digest: String,
}

impl Dataset {
    /// SHA-256 (hex) of every image and label and of the split seed: equal digests, the same
    /// split of the same data.
    pub fn digest(&self, seed: u64) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((self.len() as u64).to_le_bytes());
        h.update(&self.images);
        h.update(&self.labels);
        h.update(seed.to_le_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`, [28, 28].
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_LEN..(i + 1) * IMAGE_LEN]
    }

    /// Writes images `indices` scaled by 1/255 into `out` ([indices.len(), 28, 28, 1] f32).
    ///
    /// # Panics
    /// If `out.len() != indices.len() * IMAGE_LEN` or an index is out of range.
    pub fn fill_batch(&self, indices: &[usize], out: &mut [f32]) {
        assert_eq!(
            out.len(),
            indices.len() * IMAGE_LEN,
            "fill_batch: out holds {} floats, {} images need {}",
            out.len(),
            indices.len(),
            indices.len() * IMAGE_LEN
        );
        for (&i, dst) in indices.iter().zip(out.chunks_exact_mut(IMAGE_LEN)) {
            for (d, &p) in dst.iter_mut().zip(self.image(i)) {
                // A true division, as Keras' `x / 255.`, not a multiply by a rounded 1/255.
                *d = f32::from(p) / 255.0;
            }
        }
    }

    /// How many of `indices` fall in each class.
    ///
    /// # Panics
    /// If an index is out of range, or a label is not a class (possible only for a
    /// hand-built `Dataset`: labels read from files are checked).
    pub fn class_counts(&self, indices: &[usize]) -> [usize; NUM_CLASSES] {
        let mut counts = [0; NUM_CLASSES];
        for &i in indices {
            counts[usize::from(self.labels[i])] += 1;
        }
        counts
    }

    /// The mean pixel value of images `indices`, in [0, 1] (0 if `indices` is empty).
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn mean_pixel(&self, indices: &[usize]) -> f64 {
        if indices.is_empty() {
            return 0.0;
        }
        // Exact integer sum: the result does not depend on the order of `indices`.
        let sum: u64 = indices.iter().map(|&i| self.image(i).iter().map(|&p| u64::from(p)).sum::<u64>()).sum();
        sum as f64 / (indices.len() * IMAGE_LEN) as f64 / 255.0
    }
}

/// `count` images of seeded uniform noise in [0, 1) (xorshift64): stand-ins of the right shape
/// for benchmarks on a machine without the data set (`bench --synthetic`, `benches/`).
pub fn noise_images(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    (0..count * IMAGE_LEN)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}
