//! `autoencoder export` against onnxruntime: every part (full, encoder, decoder) of both models
//! in both layouts, checked by `onnx.checker` and run on 256 test images (seeded noise when
//! the data set is not installed), must give what `autoencoder reconstruct --npy` and
//! `autoencoder encode` give, to 1e-5. The checkpoints hold seeded random weights and biases
//! (a fresh model's biases are zero and would hide a misplaced bias).
//!
//! Python comes from target/onnx-venv (made by `.ci/run` from tests/onnx/requirements.txt) or
//! `$ONNX_PYTHON`: missing, the test fails under CI=true and is a visible skip elsewhere.

mod common;

use autoencoder::data::{self, DataOptions, IMAGE_LEN};
use autoencoder::models::{self, ModelKind, LATENT};
use autoencoder::run::checkpoint::{self, CheckpointInfo};
use autoencoder::run::npy;
use common::{ok, Rng};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const N: usize = 256;

fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/onnx-venv/bin/python");
    let python = std::env::var_os("ONNX_PYTHON").map(PathBuf::from).unwrap_or(venv);
    let works = Command::new(&python)
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(python);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {} cannot import onnx, onnxruntime and numpy", python.display());
    }
    let line = format!(
        "SKIPPED: no Python with onnxruntime at {} (python3 -m venv target/onnx-venv && target/onnx-venv/bin/pip install -r tests/onnx/requirements.txt)\n",
        python.display()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// The first N test images, or noise when the data set is absent.
fn images() -> Vec<f32> {
    match data::load(&DataOptions::default()) {
        Ok(ds) => {
            let split = data::split(ds.len(), data::DEFAULT_SEED);
            let mut px = vec![0.0; N * IMAGE_LEN];
            ds.fill_batch(&split.test[..N], &mut px);
            px
        }
        Err(_) => data::noise_images(N, 7),
    }
}

fn read_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    npyz::NpyFile::new(&bytes[..]).unwrap().into_vec::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn exported_models_match_the_engine_in_onnxruntime() {
    let Some(python) = python() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx/run.py");
    let tmp = tempfile::tempdir().unwrap();
    let t = |name: &str| tmp.path().join(name);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let px = images();
    npy::write_f32(&t("nhwc.npy"), &[N, 28, 28, 1], &px).unwrap();
    // One channel: NCHW holds the same values in the same order, under another shape.
    npy::write_f32(&t("nchw.npy"), &[N, 1, 28, 28], &px).unwrap();
    let onnxrt = |model: &Path, input: &Path, output: &Path| {
        let out = Command::new(&python).args([s(&script), s(model), s(input), s(output)]).output().unwrap();
        assert!(out.status.success(), "onnxruntime on {}: {}", model.display(), String::from_utf8_lossy(&out.stderr));
        read_npy(output)
    };

    for kind in ModelKind::ALL {
        let mut model = models::build(kind, 3).unwrap();
        let mut rng = Rng::new(11);
        for p in model.params_mut() {
            let scale = if p.name == "bias" { 0.1 } else { 1.0 };
            p.value.iter_mut().for_each(|v| *v += scale * 0.05 * rng.uniform());
        }
        let ckpt = t(&format!("{kind}.safetensors"));
        let info = CheckpointInfo { model: kind, epoch: 4, seed: 3, data_digest: None };
        checkpoint::save(&ckpt, &model, &info).unwrap();
        let c = s(&ckpt);

        let ours_recon = t(&format!("{kind}-recon.npy"));
        let ours_codes = t(&format!("{kind}-codes.npy"));
        ok(&["reconstruct", "--checkpoint", &c, "--input", &s(&t("nhwc.npy")), "--npy", &s(&ours_recon)]);
        ok(&["encode", "--checkpoint", &c, "--input", &s(&t("nhwc.npy")), "--out", &s(&ours_codes)]);
        let (recon, codes) = (read_npy(&ours_recon), read_npy(&ours_codes));
        assert_eq!((recon.len(), codes.len()), (N * IMAGE_LEN, N * LATENT));

        for layout in ["nhwc", "nchw"] {
            for (part, input, want) in [
                ("full", t(&format!("{layout}.npy")), &recon),
                ("encoder", t(&format!("{layout}.npy")), &codes),
                ("decoder", ours_codes.clone(), &recon),
            ] {
                let file = t(&format!("{kind}-{part}-{layout}.onnx"));
                let said = ok(&["export", "--checkpoint", &c, "--onnx", &s(&file), "--part", part, "--layout", layout]);
                assert!(said.contains("opset 17"), "{said}");
                let got = onnxrt(&file, &input, &t("out.npy"));
                let diff = max_abs_diff(&got, want);
                assert!(diff < 1e-5, "{kind} {part} {layout}: max abs difference {diff}");
                eprintln!("{kind} {part} {layout}: max abs difference {diff:.2e}");
            }
        }
    }
}

#[test]
fn export_refuses_a_damaged_checkpoint_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.safetensors");
    std::fs::write(&bad, b"not a checkpoint").unwrap();
    let out = tmp.path().join("m.onnx");
    let err = common::fails(&["export", "--checkpoint", bad.to_str().unwrap(), "--onnx", out.to_str().unwrap()]);
    assert!(err.contains("bad.safetensors") && err.contains("safetensors"), "{err}");
    assert!(!out.exists());
}
