//! `autoencoder report` end to end on tiny synthetic data with tiny trained runs: the files are
//! produced and well-formed (HTML tags balanced, inlined PNGs decode, every file report.md links
//! exists), hold every section and the runs' numbers; bad run folders give clear errors.

mod common;

use autoencoder::data::idx;
use autoencoder::models::ModelKind;
use autoencoder::run::{Hyperparameters, RunRecord};
use autoencoder::train::TrainConfig;
use base64::Engine as _;
use common::{fails, ok, temp_with_data};
use serde_json::Value;
use std::path::Path;

/// 200 images of horizontal stripes whose period encodes the label (200 = 160 train + 40 test
/// before the 80/10/10 split: 160 train, 20 val, 20 test).
fn write_stripes(dir: &Path) {
    let n = 200;
    let labels: Vec<u8> = (0..n).map(|i| (i * 3 % 10) as u8).collect();
    let pixels: Vec<u8> = (0..n * 784)
        .map(|p| {
            let (i, y) = (p / 784, p % 784 / 28);
            let period = 2 + usize::from(labels[i]);
            if (y + i % 3) % period < period / 2 + 1 {
                100 + (i % 120) as u8
            } else {
                0
            }
        })
        .collect();
    let files = [("train", 0, 160), ("t10k", 160, 200)];
    for (name, a, b) in files {
        idx::write_images(&dir.join(format!("{name}-images-idx3-ubyte")), 28, 28, &pixels[a * 784..b * 784], false)
            .unwrap();
        idx::write_labels(&dir.join(format!("{name}-labels-idx1-ubyte")), &labels[a..b], false).unwrap();
    }
}

/// Trains `model` for `epochs` on the data in `data` with `seed` into `dir/<model>-<seed>`,
/// with `extra` flags; returns that folder.
fn train(dir: &Path, data: &Path, model: &str, seed: &str, epochs: &str, extra: &[&str]) -> String {
    let out = dir.join(format!("{model}-{seed}")).to_str().unwrap().to_string();
    let d = data.to_str().unwrap();
    let args = [
        "train",
        "--model",
        model,
        "--epochs",
        epochs,
        "--batch-size",
        "16",
        "--seed",
        seed,
        "--out",
        &out,
        "--data-dir",
        d,
        "--allow-custom-data",
    ];
    ok(&[&args[..], extra].concat());
    out
}

/// Panics unless every opened tag is closed in order (void elements and `<.../>` excepted).
fn assert_tags_balanced(html: &str) {
    const VOID: [&str; 6] = ["meta", "img", "br", "hr", "link", "!doctype"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = start + rest[start..].find('>').expect("unterminated tag");
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        let name: String =
            tag.trim_start_matches('/').chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
        let name = name.to_ascii_lowercase();
        if tag.starts_with('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.as_str()), "closing </{name}> does not match");
        } else if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed tags: {stack:?}");
}

/// Decodes every inlined PNG; returns how many there were.
fn check_inline_pngs(html: &str) -> usize {
    let marker = "data:image/png;base64,";
    let mut count = 0;
    for piece in html.split(marker).skip(1) {
        let b64 = &piece[..piece.find('"').expect("unterminated data URI")];
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).expect("valid base64");
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("PNG pixels");
        assert!(info.width > 28 && info.height > 28, "{}x{}", info.width, info.height);
        count += 1;
    }
    count
}

/// The targets of every `](file)` link in `md`.
fn md_links(md: &str) -> Vec<String> {
    md.split("](").skip(1).map(|s| s[..s.find(')').expect("unterminated link")].to_string()).collect()
}

#[test]
fn report_writes_well_formed_html_and_markdown_with_every_section() {
    let (tmp, data) = temp_with_data(write_stripes);
    let d = data.to_str().unwrap();
    let src = ["--data-dir", d, "--allow-custom-data"];
    // `a`'s rate halves after epoch 2 (nothing improves by 1), so the report charts the rate.
    // It trains on MSE (not the tuned recipe's mse+ssim), so each loss chart has one run.
    let schedule = ["--min-delta", "1", "--reduce-lr-patience", "1", "--loss", "mse"];
    let a = train(tmp.path(), &data, "modified", "42", "3", &schedule);
    // `b` trains on 1 - SSIM: its losses get a chart of their own.
    let b = train(tmp.path(), &data, "baseline", "42", "2", &["--loss", "ssim"]);
    // `b` as saved before the rate was recorded per epoch: the report charts its starting rate.
    let b_json = Path::new(&b).join("report.json");
    let mut old: Value = serde_json::from_str(&std::fs::read_to_string(&b_json).unwrap()).unwrap();
    for e in old["history"].as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("lr");
    }
    std::fs::write(&b_json, serde_json::to_string(&old).unwrap()).unwrap();
    let out_dir = tmp.path().join("report");
    let o = out_dir.to_str().unwrap();
    let stdout = ok(&[&["report", &a, &b, "--out", o], &src[..]].concat());
    assert!(stdout.contains("k-NN") && stdout.contains("PCA-128"), "{stdout}");

    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    for section in [
        "Summary",
        "What the code keeps: k-NN accuracy",
        "Training curves",
        "Reconstructions",
        "Per-class test SSIM",
        "Worst-reconstructed test images",
        "Latent codes in 2-D",
    ] {
        assert!(md.contains(&format!("## {section}")), "report.md lacks {section}");
        assert!(html.contains(&format!("<h2>{section}</h2>")), "report.html lacks {section}");
    }
    // Each run's test scores as report.json has them (the report recomputes them).
    for run in [&a, &b] {
        let text = std::fs::read_to_string(Path::new(run).join("report.json")).unwrap();
        let r: Value = serde_json::from_str(&text).unwrap();
        for key in ["ssim", "ssim_uniform7"] {
            let v = format!("{:.4}", r["test"][key].as_f64().unwrap());
            assert!(md.contains(&v) && html.contains(&v), "{run}: test {key} {v} missing");
        }
    }
    for row in ["raw pixels", "PCA-128 of the pixels", "class 0", "class 9"] {
        assert!(md.contains(row) && html.contains(row), "{row} missing");
    }

    assert_tags_balanced(&html);
    assert!(!html.contains("src=\"") || html.matches("src=\"").count() == html.matches("src=\"data:").count());
    // reconstructions + one worst grid per run.
    assert_eq!(check_inline_pngs(&html), 3);
    // MSE loss, 1 - SSIM loss, val SSIM per epoch and per second, learning rate, one latent
    // picture per run and PCA's.
    assert_eq!(html.matches("<svg ").count(), 8);
    // Each loss on its own axis, titled by what it is.
    let (mse, ssim) = (
        std::fs::read_to_string(out_dir.join("loss.svg")).unwrap(),
        std::fs::read_to_string(out_dir.join("loss_ssim.svg")).unwrap(),
    );
    assert!(mse.contains("Loss (MSE)") && mse.contains("modified-42") && !mse.contains("baseline-42"), "{mse}");
    assert!(
        ssim.contains("Loss (1 - SSIM)") && ssim.contains("baseline-42") && !ssim.contains("modified-42"),
        "{ssim}"
    );
    let lr_chart = std::fs::read_to_string(out_dir.join("lr.svg")).unwrap();
    assert_eq!(lr_chart.matches("<path d=\"M").count(), 2, "one rate line per run: {lr_chart}");
    let links = md_links(&md);
    assert_eq!(links.len(), 11, "{links:?}");
    for file in &links {
        assert!(out_dir.join(file).is_file(), "report.md links {file}, which was not written");
    }

    // A run at a constant rate alone: no rate chart.
    let b_dir = tmp.path().join("report-b");
    ok(&[&["report", &b, "--out", b_dir.to_str().unwrap()], &src[..]].concat());
    assert!(b_dir.join("report.md").is_file() && !b_dir.join("lr.svg").exists());
}

#[test]
fn report_refuses_bad_run_folders_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let err = fails(&["report", empty.to_str().unwrap(), "--out", o]);
    assert!(err.contains("report.json") && err.contains("empty"), "{err}");

    // A report.json but no checkpoint.
    let record = RunRecord {
        model: ModelKind::Modified,
        hyperparameters: Hyperparameters { config: TrainConfig::new(ModelKind::Modified), threads: 1 },
        epochs_run: 1,
        best_epoch: 1,
        stopped_early: false,
        test: None,
        wall_time_s: 1.0,
        train_images_per_s: 1.0,
        data: "test".into(),
        kernel_path: "portable".into(),
        data_digest: String::new(),
        milestones: Vec::new(),
        history: Vec::new(),
        extra: Default::default(),
    };
    record.write(&empty).unwrap();
    assert_eq!(RunRecord::read(&empty).unwrap(), record, "report.json reads back as written");
    let err = fails(&["report", empty.to_str().unwrap(), "--out", o]);
    assert!(err.contains("best.safetensors"), "{err}");

    std::fs::write(empty.join("report.json"), "{\"model\": 3}").unwrap();
    let err = fails(&["report", empty.to_str().unwrap(), "--out", o]);
    assert!(err.contains("report.json"), "{err}");
    assert!(!out.exists(), "nothing is written on error");
}

#[test]
fn report_refuses_runs_split_with_different_seeds() {
    let (tmp, data) = temp_with_data(write_stripes);
    let d = data.to_str().unwrap();
    let dirs: Vec<String> =
        ["1", "2"].iter().map(|seed| train(tmp.path(), &data, "modified", seed, "1", &[])).collect();
    let o = tmp.path().join("report");
    let err =
        fails(&["report", &dirs[0], &dirs[1], "--out", o.to_str().unwrap(), "--data-dir", d, "--allow-custom-data"]);
    assert!(err.contains("different seeds") && err.contains("--seed"), "{err}");
}
