//! `autoencoder ssim`: runs the built binary on .npy files written by the library.

use autoencoder::run::npy::{write_f32, write_u8};
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&Path], json: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autoencoder"));
    cmd.arg("ssim").args(args);
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

fn images(n: usize, h: usize, w: usize, seed: usize) -> Vec<f32> {
    (0..n * h * w).map(|i| ((i * 31 + seed * 17) % 101) as f32 / 100.0).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn same_set_gives_one_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.npy");
    write_f32(&a, &[3, 28, 28, 1], &images(3, 28, 28, 0)).unwrap();
    let out = run(&[&a, &a], false);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ssim          1.000000"), "{text}");
    assert!(text.contains("ssim_uniform7 1.000000"), "{text}");
    assert!(text.contains("count         3"), "{text}");

    let out = run(&[&a, &a], true);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 3, "{v}");
    assert!((v["ssim"].as_f64().unwrap() - 1.0).abs() < 1e-12, "{v}");
    assert!((v["ssim_uniform7"].as_f64().unwrap() - 1.0).abs() < 1e-12, "{v}");
    assert_eq!(v["count"].as_u64(), Some(3));
}

#[test]
fn u8_against_f32_set_differs_from_one() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    let f = images(2, 12, 14, 1);
    write_f32(&a, &[2, 12, 14], &f).unwrap();
    let u: Vec<u8> = images(2, 12, 14, 5).iter().map(|v| (v * 255.0) as u8).collect();
    write_u8(&b, &[2, 12, 14], &u).unwrap();
    let out = run(&[&a, &b], true);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = v["ssim"].as_f64().unwrap();
    assert!(s < 0.99 && s > -1.0, "{v}");
    assert_eq!(v["count"].as_u64(), Some(2));
}

#[test]
fn missing_file_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.npy");
    write_f32(&a, &[1, 28, 28], &images(1, 28, 28, 0)).unwrap();
    let missing = dir.path().join("missing.npy");
    let out = run(&[&a, &missing], false);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("missing.npy") && err.contains("hint"), "{err}");
}

#[test]
fn mismatched_shapes_fail_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("first.npy"), dir.path().join("second.npy"));
    write_f32(&a, &[2, 28, 28], &images(2, 28, 28, 0)).unwrap();
    write_f32(&b, &[3, 28, 28], &images(3, 28, 28, 0)).unwrap();
    let out = run(&[&a, &b], true);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains("shapes differ") && err.contains("first.npy") && err.contains("second.npy"), "{err}");
    assert!(err.contains("hint"), "{err}");
}

#[test]
fn images_smaller_than_window_fail() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("small.npy");
    write_f32(&a, &[4, 5, 5], &images(4, 5, 5, 0)).unwrap();
    let out = run(&[&a, &a], false);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("small.npy") && err.contains("11x11") && err.contains("5x5"), "{err}");
}

#[test]
fn bad_dtype_fails_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("text.npy");
    std::fs::write(&a, b"not a numpy file").unwrap();
    let out = run(&[&a, &a], false);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("text.npy") && err.contains("magic"), "{err}");
}

/// Images holding NaN or infinity are an error naming the file, image and pixel (it printed
/// `"ssim": null` and exited 0).
#[test]
fn non_finite_pixels_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    write_f32(&a, &[2, 28, 28], &images(2, 28, 28, 0)).unwrap();
    for bad in [f32::NAN, f32::INFINITY] {
        let mut px = images(2, 28, 28, 1);
        px[784 + 5] = bad;
        write_f32(&b, &[2, 28, 28], &px).unwrap();
        let out = run(&[&a, &b], true);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("b.npy") && err.contains("not finite") && err.contains("image 1, pixel 5"), "{err}");
    }
}
