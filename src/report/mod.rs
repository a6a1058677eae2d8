//! `autoencoder report`'s analysis: for each trained run, its test reconstructions scored per
//! class, its worst images, its latent codes (a 2-D PCA picture and k-NN accuracy), and the same
//! for the linear baseline, PCA with as many components as the latent code has numbers.
//! [`render`] turns a [`Report`] into report.md and report.html; [`svg`] draws the plots.
//!
//! Images are `[n, 784]` f32 in [0, 1]; codes `[n, 128]`. The numerics (PCA, k-NN) are the
//! `kernels` crate's.

pub mod render;
pub mod svg;

use crate::data::{Dataset, Split, IMAGE_LEN, NUM_CLASSES};
use crate::eval::metrics::{self, Window};
use crate::eval::{self, Images, Scores};
use crate::models::LATENT;
use crate::run::RunRecord;
use crate::sequential::Sequential;
use crate::{Error, Result};
use kernels::{knn, pca};
use std::path::Path;

/// Neighbours that vote in the k-NN accuracy.
pub const KNN_K: usize = 5;
/// How many of the worst-reconstructed test images are shown.
pub const WORST: usize = 16;
/// How many of the first test images are shown reconstructed by every model.
pub const SAMPLE: usize = 16;

/// Fashion-MNIST's class names, by label.
pub const CLASS_NAMES: [&str; NUM_CLASSES] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// The train and test parts of the split, as pixels and labels.
pub struct Sets {
    /// [n_train, 784]
    pub train: Vec<f32>,
    pub train_labels: Vec<u8>,
    /// [n_test, 784]
    pub test: Vec<f32>,
    pub test_labels: Vec<u8>,
}

impl Sets {
    pub fn new(data: &Dataset, split: &Split) -> Sets {
        let pixels = |idx: &[usize]| {
            let mut v = vec![0.0; idx.len() * IMAGE_LEN];
            data.fill_batch(idx, &mut v);
            v
        };
        let labels = |idx: &[usize]| idx.iter().map(|&i| data.labels[i]).collect();
        Sets {
            train: pixels(&split.train),
            train_labels: labels(&split.train),
            test: pixels(&split.test),
            test_labels: labels(&split.test),
        }
    }

    pub fn n_test(&self) -> usize {
        self.test_labels.len()
    }
}

/// One model's (an autoencoder's, or the PCA baseline's) results on the test set.
pub struct Analysis {
    /// Mean test scores.
    pub scores: Scores,
    /// Mean Gaussian SSIM of each class's test images (NaN for a class with none).
    pub per_class: [f64; NUM_CLASSES],
    /// Reconstructions of the test set, [n_test, 784].
    pub recon: Vec<f32>,
    /// The [`WORST`] test images with the lowest Gaussian SSIM, worst first: (test position,
    /// SSIM).
    pub worst: Vec<(usize, f64)>,
    /// The test codes projected on the first two principal axes of the train codes, [n_test, 2].
    pub codes_2d: Vec<f32>,
    /// Share of the codes' total variance on those two axes.
    pub codes_2d_variance: f64,
    /// k-NN (k = [`KNN_K`]) accuracy of test codes against train codes.
    pub knn_accuracy: f64,
}

/// Scores, per-class SSIM and worst images of `recon`, the reconstructions of `sets.test`, plus
/// the 2-D picture and k-NN accuracy of the codes `train_codes`, `test_codes` (`[n, dim]`).
fn analyse(sets: &Sets, recon: Vec<f32>, train_codes: &[f32], test_codes: &[f32], dim: usize) -> Result<Analysis> {
    let n = sets.n_test();
    let gauss = metrics::per_image_ssim(Window::Gaussian11, &recon, &sets.test, n, 28, 28)?;
    let uniform = metrics::per_image_ssim(Window::Uniform7, &recon, &sets.test, n, 28, 28)?;
    let count = n.max(1) as f64;
    let scores = Scores {
        count: n,
        mse: metrics::mse(&recon, &sets.test)?,
        ssim: gauss.iter().sum::<f64>() / count,
        ssim_uniform7: uniform.iter().sum::<f64>() / count,
    };
    let mut per_class = [0.0; NUM_CLASSES];
    let mut members = [0usize; NUM_CLASSES];
    for (&s, &l) in gauss.iter().zip(&sets.test_labels) {
        per_class[usize::from(l)] += s;
        members[usize::from(l)] += 1;
    }
    for (p, &m) in per_class.iter_mut().zip(&members) {
        *p = if m == 0 { f64::NAN } else { *p / m as f64 };
    }
    let mut order: Vec<usize> = (0..n).collect();
    // Stable: equal SSIM keeps test order.
    order.sort_by(|&a, &b| gauss[a].total_cmp(&gauss[b]));
    let worst = order.iter().take(WORST).map(|&i| (i, gauss[i])).collect();

    let n_train = sets.train_labels.len();
    let (mut mean, mut axes, mut var) = (vec![0.0; dim], vec![0.0; 2 * dim], vec![0.0; dim]);
    pca::fit(train_codes, n_train, dim, 2, &mut mean, &mut axes, &mut var);
    let total: f64 = var.iter().sum();
    let mut codes_2d = vec![0.0; n * 2];
    pca::project(test_codes, dim, &mean, &axes, 2, &mut codes_2d);
    let mut pred = vec![0u8; n];
    knn::classify(train_codes, &sets.train_labels, test_codes, dim, KNN_K, &mut pred);
    Ok(Analysis {
        scores,
        per_class,
        recon,
        worst,
        codes_2d,
        codes_2d_variance: if total > 0.0 { (var[0] + var[1]) / total } else { 0.0 },
        knn_accuracy: knn::accuracy(&pred, &sets.test_labels),
    })
}

/// Checks what PCA and k-NN need of the split: enough train images, some test images.
fn check_sizes(sets: &Sets) -> Result<()> {
    let n_train = sets.train_labels.len();
    if n_train < LATENT.max(KNN_K) + 1 || sets.n_test() == 0 {
        return Err(Error::InvalidArgument {
            name: "data set",
            expected: format!("more than {} train images and at least 1 test image", LATENT.max(KNN_K)),
            found: format!("{n_train} train and {} test images", sets.n_test()),
        });
    }
    Ok(())
}

/// An autoencoder's analysis: one pass over the test set (reconstructions and codes) and one
/// over the train set (codes).
pub fn analyse_model(model: &mut Sequential, sets: &Sets) -> Result<Analysis> {
    check_sizes(sets)?;
    let (recon, test_codes) = eval::reconstruct_and_encode(model, Images::Pixels(&sets.test))?;
    let train_codes = eval::encode(model, Images::Pixels(&sets.train))?;
    analyse(sets, recon, &train_codes, &test_codes, LATENT)
}

/// The PCA baseline and the raw-pixel k-NN.
pub struct Baseline {
    /// PCA with [`LATENT`] components fitted on the train pixels; its reconstructions are
    /// clipped to [0, 1]. Its codes are the `LATENT` PCA coefficients.
    pub pca: Analysis,
    /// Share of the train pixels' variance the `LATENT` components keep.
    pub pca_variance: f64,
    /// k-NN accuracy on raw pixels (784 numbers per image).
    pub knn_pixels: f64,
}

/// Fits PCA-`LATENT` to the train pixels and reconstructs the test set; k-NN on its codes and
/// on the raw pixels.
pub fn analyse_baseline(sets: &Sets) -> Result<Baseline> {
    check_sizes(sets)?;
    let (d, k, n_train) = (IMAGE_LEN, LATENT, sets.train_labels.len());
    let (mut mean, mut comps, mut var) = (vec![0.0; d], vec![0.0; k * d], vec![0.0; d]);
    pca::fit(&sets.train, n_train, d, k, &mut mean, &mut comps, &mut var);
    let total: f64 = var.iter().sum();
    let mut train_codes = vec![0.0; n_train * k];
    pca::project(&sets.train, d, &mean, &comps, k, &mut train_codes);
    let mut test_codes = vec![0.0; sets.n_test() * k];
    pca::project(&sets.test, d, &mean, &comps, k, &mut test_codes);
    let mut recon = vec![0.0; sets.n_test() * d];
    pca::reconstruct(&test_codes, k, &mean, &comps, d, &mut recon);
    // The autoencoders' sigmoid output lies in [0, 1]; clipping PCA's to the same range can
    // only bring it closer to the originals, so the baseline is not handicapped.
    for v in &mut recon {
        *v = v.clamp(0.0, 1.0);
    }
    let pca = analyse(sets, recon, &train_codes, &test_codes, k)?;
    let mut pred = vec![0u8; sets.n_test()];
    knn::classify(&sets.train, &sets.train_labels, &sets.test, d, KNN_K, &mut pred);
    Ok(Baseline {
        pca,
        pca_variance: if total > 0.0 { var[..k].iter().sum::<f64>() / total } else { 0.0 },
        knn_pixels: knn::accuracy(&pred, &sets.test_labels),
    })
}

/// A run as the report shows it.
pub struct RunReport {
    /// Unique, file-name-safe label, e.g. `1-baseline`.
    pub label: String,
    /// The run folder as given.
    pub dir: String,
    pub record: RunRecord,
    pub analysis: Analysis,
}

/// Everything report.md and report.html show.
pub struct Report {
    pub runs: Vec<RunReport>,
    pub baseline: Baseline,
    /// Class names by label.
    pub class_names: Vec<String>,
    pub test_labels: Vec<u8>,
    /// [n_test, 784]
    pub test: Vec<f32>,
    pub seed: u64,
    pub n_train: usize,
    pub data_origin: String,
}

/// `1-baseline` from index 0 and folder `runs/baseline`: letters, digits, `-`, `_` and `.`
/// kept, anything else `_`; the index keeps labels unique.
pub fn run_label(index: usize, dir: &Path) -> String {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    format!("{}-{safe}", index + 1)
}
