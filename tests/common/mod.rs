//! Shared test helpers: tolerant comparison that names the case and the worst element, the
//! Keras reference file loader, and a tiny deterministic RNG (so failures reproduce).
//!
//! Each integration-test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;

/// Pass when |actual - expected| <= abs + rel * |expected| for every element.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub abs: f64,
    pub rel: f64,
}

/// Forward values (f32 engine vs f64 reference): the README's suggestion.
pub const FWD: Tol = Tol { abs: 1e-5, rel: 1e-4 };
/// Gradients, which sum over many positions.
pub const GRAD: Tol = Tol { abs: 1e-4, rel: 1e-3 };

/// Anything that converts losslessly to f64 (f32 or f64 expected values).
pub trait AsF64: Copy {
    fn as_f64(self) -> f64;
}
impl AsF64 for f32 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}
impl AsF64 for f64 {
    fn as_f64(self) -> f64 {
        self
    }
}

/// `f` run on a rayon pool of `threads` threads (the passes' results must not depend on it).
pub fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("rayon pool").install(f)
}

/// Panics with the case, the array, the worst index and the pair if any element is outside
/// `tol` (or the lengths differ, or a value is NaN).
pub fn assert_close<E: AsF64>(case: &str, what: &str, actual: &[f32], expected: &[E], tol: Tol) {
    assert_eq!(actual.len(), expected.len(), "{case}: {what}: length {} != expected {}", actual.len(), expected.len());
    // Worst element by how far it exceeds its allowance (ratio err / allowed).
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let (a, e) = (a as f64, e.as_f64());
        let allowed = tol.abs + tol.rel * e.abs();
        let diff = (a - e).abs();
        let ratio = if a.is_nan() || e.is_nan() {
            f64::INFINITY
        } else if diff == 0.0 {
            0.0
        } else {
            diff / allowed
        };
        if worst.is_none_or(|(_, r)| ratio > r) {
            worst = Some((i, ratio));
        }
    }
    if let Some((i, ratio)) = worst {
        assert!(
            ratio <= 1.0,
            "{case}: {what}: worst index {i}: actual {} vs expected {} (|diff| {:.3e}, {ratio:.2}x the allowed {:?})",
            actual[i],
            expected[i].as_f64(),
            (actual[i] as f64 - expected[i].as_f64()).abs(),
            tol
        );
    }
}

/// Bitwise equality, naming the first differing index.
pub fn assert_bitwise(case: &str, what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{case}: {what}: lengths");
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits()) {
        panic!("{case}: {what}: first bitwise difference at {i}: {} vs {}", a[i], b[i]);
    }
}

/// Dot product accumulated in f64.
pub fn dot64(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

// ---------------------------------------------------------------- the binary

/// Runs the `autoencoder` binary with `args`.
pub fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_autoencoder")).args(args).output().expect("run the binary")
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must fail; returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------- reference file

/// A temporary folder with a data set in `data/`, written there by `write_data`; returns the
/// folder (deleted when dropped) and the data folder.
pub fn temp_with_data(write_data: impl FnOnce(&std::path::Path)) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write_data(&data);
    (tmp, data)
}

pub fn reference_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("reference").join(file)
}

/// The parsed `tests/reference/keras_layers.json`.
pub fn keras_layers() -> Value {
    let path = reference_path("keras_layers.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A reference array `{"shape": [...], "data": [...]}`.
#[derive(Clone, Debug)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Array {
    pub fn from_value(case: &str, field: &str, v: &Value) -> Array {
        let shape: Vec<usize> = v["shape"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: {field}: no shape"))
            .iter()
            .map(|d| d.as_u64().unwrap_or_else(|| panic!("{case}: {field}: bad shape")) as usize)
            .collect();
        let data: Vec<f64> = v["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: {field}: no data"))
            .iter()
            .map(|d| d.as_f64().unwrap_or_else(|| panic!("{case}: {field}: non-number")))
            .collect();
        assert_eq!(shape.iter().product::<usize>(), data.len(), "{case}: {field}: shape vs data");
        Array { shape, data }
    }
    pub fn f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
}

/// Field `field` of a case, as an array.
pub fn array(case: &Value, field: &str) -> Array {
    let name = case_name(case);
    let v = case.get(field).unwrap_or_else(|| panic!("{name}: missing field {field}"));
    Array::from_value(name, field, v)
}

/// Field `field` of a case, a list of arrays (Adam's per-step values).
pub fn arrays(case: &Value, field: &str) -> Vec<Array> {
    let name = case_name(case);
    case[field]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: {field} is not a list"))
        .iter()
        .map(|v| Array::from_value(name, field, v))
        .collect()
}

pub fn number(case: &Value, field: &str) -> f64 {
    case[field].as_f64().unwrap_or_else(|| panic!("{}: {field} is not a number", case_name(case)))
}

pub fn case_name(case: &Value) -> &str {
    case["name"].as_str().unwrap_or("<unnamed case>")
}

// ---------------------------------------------------------------- deterministic data

/// 200 synthetic 28x28 images (a bright square whose size encodes the label) in IDX files.
pub fn write_squares(dir: &std::path::Path) {
    let n = 200;
    let mut pixels = vec![0u8; n * 784];
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (i, img) in pixels.chunks_mut(784).enumerate() {
        let side = 6 + labels[i] as usize;
        let off = 3 + i % 7;
        for y in off..off + side {
            for x in off..off + side {
                img[y * 28 + x] = 150 + (i % 100) as u8;
            }
        }
    }
    let (tr, te) = (160, 40);
    autoencoder::data::idx::write_images(&dir.join("train-images-idx3-ubyte"), 28, 28, &pixels[..tr * 784], false)
        .unwrap();
    autoencoder::data::idx::write_labels(&dir.join("train-labels-idx1-ubyte"), &labels[..tr], false).unwrap();
    autoencoder::data::idx::write_images(
        &dir.join("t10k-images-idx3-ubyte.gz"),
        28,
        28,
        &pixels[tr * 784..(tr + te) * 784],
        true,
    )
    .unwrap();
    autoencoder::data::idx::write_labels(&dir.join("t10k-labels-idx1-ubyte.gz"), &labels[tr..tr + te], true).unwrap();
}

/// SplitMix64: tiny, seedable, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.uniform()).collect()
    }
}
