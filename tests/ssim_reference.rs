//! SSIM against the reference values of tests/reference/ssim_cases.json (TensorFlow and
//! scikit-image, float64), and the fast kernel against its naive twin on awkward sizes.

mod common;

use autoencoder::eval::metrics::{mean_ssim, per_image_ssim, Window};
use kernels::ssim::{ssim, ssim_naive};
use serde_json::Value;

const TOL: f64 = 1e-5;

fn load() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/ssim_cases.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn floats(v: &Value, what: &str) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: not an array"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("{what}: not a number")))
        .collect()
}

fn f32s(v: &Value, what: &str) -> Vec<f32> {
    floats(v, what).into_iter().map(|x| x as f32).collect()
}

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{what}: missing or not a number"))
}

/// (window, expected keys that window must match)
const CHECKS: [(Window, &[&str]); 2] =
    [(Window::Gaussian11, &["tf_ssim_float64", "skimage_gaussian"]), (Window::Uniform7, &["skimage_default"])];

#[test]
fn single_cases_match_reference() {
    let data = load();
    let cases = data["cases"].as_array().unwrap_or_else(|| panic!("no cases array"));
    let mut failures = Vec::new();
    let mut checked_cases = 0;
    let mut worst = 0.0f64;
    for case in cases {
        let name = case["name"].as_str().unwrap_or("<unnamed>");
        let shape = floats(&case["shape"], name);
        let (h, w) = (shape[0] as usize, shape[1] as usize);
        let a = f32s(&case["a"], name);
        let b = f32s(&case["b"], name);
        for (window, keys) in CHECKS {
            let fast = ssim(window, &a, &b, h, w);
            let naive = ssim_naive(window, &a, &b, h, w);
            let lib = mean_ssim(window, &a, &b, 1, h, w).unwrap_or_else(|e| panic!("{name}: {e}"));
            for key in keys {
                let expected = num(&case["expected"][key], &format!("{name}.expected.{key}"));
                for (how, got) in [("fast", fast), ("naive", naive), ("mean_ssim", lib)] {
                    worst = worst.max((got - expected).abs());
                    if (got - expected).abs() > TOL {
                        failures.push(format!("{name} {window:?} {how}: got {got}, {key} = {expected}"));
                    }
                }
            }
        }
        checked_cases += 1;
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(checked_cases > 0, "no cases checked");
    assert_eq!(checked_cases, cases.len(), "not every case was checked");
    eprintln!("checked {checked_cases} cases under both windows, worst |error| {worst:.2e}");
}

#[test]
fn batch_matches_reference() {
    let data = load();
    let batch = &data["batch"];
    let name = batch["name"].as_str().unwrap_or("batch");
    let shape: Vec<usize> = floats(&batch["shape"], name).into_iter().map(|v| v as usize).collect();
    let (n, h, w) = (shape[0], shape[1], shape[2]);
    let a = f32s(&batch["a"], name);
    let b = f32s(&batch["b"], name);
    let mut failures = Vec::new();
    let mut checked = 0;
    for (window, keys) in CHECKS {
        let per = per_image_ssim(window, &a, &b, n, h, w).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mean = mean_ssim(window, &a, &b, n, h, w).unwrap_or_else(|e| panic!("{name}: {e}"));
        for key in keys {
            let expected = floats(&batch["expected_per_image"][key], &format!("{name}.expected_per_image.{key}"));
            assert_eq!(expected.len(), n, "{name}: expected_per_image.{key} length");
            assert_eq!(per.len(), n, "{name}: per_image_ssim length");
            for (k, (got, want)) in per.iter().zip(&expected).enumerate() {
                if (got - want).abs() > TOL {
                    failures.push(format!("{name}[{k}] {window:?}: got {got}, {key} = {want}"));
                }
                checked += 1;
            }
            let want = num(&batch["expected_mean"][key], &format!("{name}.expected_mean.{key}"));
            if (mean - want).abs() > TOL {
                failures.push(format!("{name} mean {window:?}: got {mean}, {key} = {want}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(checked, 3 * n, "per-image values checked");
}

/// The training loss `--loss ssim` on the reference batch is 1 − TensorFlow's mean SSIM, and
/// its gradient is the same bitwise on 1 and 2 threads.
#[test]
fn ssim_loss_is_one_minus_tf_ssim_on_the_reference_batch() {
    let data = load();
    let batch = &data["batch"];
    let want = 1.0 - num(&batch["expected_mean"]["tf_ssim_float64"], "batch.expected_mean.tf_ssim_float64");
    let loss = same_on_1_and_2_threads(batch, |a, b, h, w, da| {
        let mut scratch = vec![0.0; kernels::loss::ssim_scratch_len(Window::Gaussian11, h, w)];
        kernels::loss::ssim(Window::Gaussian11, a, b, h, w, da, &mut scratch)
    });
    // As close as the metric itself comes (its mean differs from the reference by 1e-9 here).
    assert!((loss - want).abs() <= 1e-8, "loss {loss}, 1 - tf_ssim_float64 = {want}");
}

/// The training loss `--loss mse+ssim` on the reference batch is its MSE plus the weight times
/// 1 − the mean of TensorFlow's and scikit-image's default SSIM, and its gradient is the same
/// bitwise on 1 and 2 threads.
#[test]
fn mse_ssim_loss_matches_tf_and_skimage_on_the_reference_batch() {
    let data = load();
    let batch = &data["batch"];
    let (a, b) = (f32s(&batch["a"], "batch"), f32s(&batch["b"], "batch"));
    // Keras's MSE: differences in f32, as the loss takes them.
    let mse = a.iter().zip(&b).map(|(&x, &y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len() as f64;
    let tf = num(&batch["expected_mean"]["tf_ssim_float64"], "batch.expected_mean.tf_ssim_float64");
    let sk = num(&batch["expected_mean"]["skimage_default"], "batch.expected_mean.skimage_default");
    let weight = 0.3;
    let want = mse + weight * (1.0 - (tf + sk) / 2.0);
    let loss = same_on_1_and_2_threads(batch, |a, b, h, w, da| {
        let mut scratch = vec![0.0; kernels::loss::mse_ssim_scratch_len(h, w)];
        kernels::loss::mse_ssim(weight, a, b, h, w, da, &mut scratch)
    });
    assert!((loss - want).abs() <= 1e-8, "loss {loss}, mse + {weight} (1 - mean of tf and skimage) = {want}");
}

/// Runs a loss (`(pred, target, h, w, dpred) -> loss`) on the reference batch on 1 and on 2
/// threads, checks that the loss and the gradient are bitwise the same and the gradient not
/// zero, and returns the loss.
fn same_on_1_and_2_threads(
    batch: &Value,
    loss: impl Fn(&[f32], &[f32], usize, usize, &mut [f32]) -> f64 + Sync,
) -> f64 {
    let shape: Vec<usize> = floats(&batch["shape"], "batch").into_iter().map(|v| v as usize).collect();
    let (h, w) = (shape[1], shape[2]);
    let (a, b) = (f32s(&batch["a"], "batch"), f32s(&batch["b"], "batch"));
    let run = |threads: usize| {
        common::on_threads(threads, || {
            let mut da = vec![0.0f32; a.len()];
            (loss(&a, &b, h, w, &mut da), da)
        })
    };
    let (loss1, grad1) = run(1);
    let (loss2, grad2) = run(2);
    assert_eq!(loss1.to_bits(), loss2.to_bits(), "loss differs between 1 and 2 threads");
    assert!(
        grad1.iter().zip(&grad2).all(|(x, y)| x.to_bits() == y.to_bits()),
        "gradient differs between 1 and 2 threads"
    );
    assert!(grad1.iter().any(|&g| g != 0.0), "zero gradient");
    loss1
}

/// Deterministic values in [0, 1).
fn pseudo_random(len: usize, seed: u64) -> Vec<f32> {
    common::Rng::new(seed).vec(len).iter().map(|v| 0.5 + 0.5 * v).collect()
}

#[test]
fn fast_equals_naive_on_awkward_sizes() {
    let mut checked = 0;
    for (h, w) in [(13, 17), (11, 11), (7, 7), (29, 12), (12, 31), (19, 8)] {
        for window in [Window::Gaussian11, Window::Uniform7] {
            if h < window.size() || w < window.size() {
                continue;
            }
            let a = pseudo_random(h * w, (h * 100 + w) as u64);
            // b: a blend of a and fresh noise, so the pair is correlated but not equal.
            let noise = pseudo_random(h * w, (w * 100 + h) as u64 + 7);
            let b: Vec<f32> = a.iter().zip(&noise).map(|(x, n)| 0.7 * x + 0.3 * n).collect();
            let fast = ssim(window, &a, &b, h, w);
            let naive = ssim_naive(window, &a, &b, h, w);
            assert!((fast - naive).abs() <= 1e-12, "{h}x{w} {window:?}: fast {fast} vs naive {naive}");
            assert!(fast > -1.0 && fast < 1.0, "{h}x{w} {window:?}: {fast}");
            checked += 1;
        }
    }
    assert_eq!(checked, 10);
}

/// Rough cost of the metric at evaluation size (7,000 28x28 pairs). Ignored by default; run with
/// `cargo test -j1 --test ssim_reference -- --ignored --nocapture` (the test profile is opt-level 3).
#[test]
#[ignore]
fn timing_7000_pairs() {
    let (n, h, w) = (7000, 28, 28);
    let a = pseudo_random(n * h * w, 1);
    let b = pseudo_random(n * h * w, 2);
    for window in [Window::Gaussian11, Window::Uniform7] {
        let t = std::time::Instant::now();
        let m = mean_ssim(window, &a, &b, n, h, w).unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "{window:?}: mean_ssim of {n} {h}x{w} pairs: {:?} ({m:.4}), {} rayon threads",
            t.elapsed(),
            rayon::current_num_threads()
        );
    }
}
