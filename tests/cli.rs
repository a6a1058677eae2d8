//! The `autoencoder` binary end to end on a small synthetic data set: every subcommand's happy
//! path, and bad input giving a clear message and a non-zero exit.

mod common;

use common::{fails, ok, temp_with_data, write_squares as write_data};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[test]
fn every_subcommand_works_on_small_custom_data() {
    let (tmp, data) = temp_with_data(write_data);
    let d = data.to_str().unwrap();
    let src = ["--data-dir", d, "--allow-custom-data"];
    let run_dir = tmp.path().join("run");
    let r = run_dir.to_str().unwrap();

    let models = ok(&["models"]);
    assert!(models.contains("1640385") && models.contains("1926657"), "{models}");

    let out = ok(&[&["data"], &src[..]].concat());
    assert!(out.contains("160") && out.contains("20"), "{out}");

    let train_args = [
        &["train", "--model", "modified", "--epochs", "2", "--batch-size", "16", "--threads", "2", "--out", r],
        &src[..],
    ]
    .concat();
    let out = ok(&train_args);
    assert!(out.contains("epoch   1") && out.contains("test SSIM"), "{out}");
    for f in ["best.safetensors", "metrics.csv", "report.json", "reconstructions.png"] {
        assert!(run_dir.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["model"], "modified");
    assert_eq!(report["hyperparameters"]["batch_size"], 16);
    assert_eq!(report["hyperparameters"]["loss"], "mse+ssim");
    // The default recipe, named, and every value it set.
    let hyper = &report["hyperparameters"];
    assert_eq!(
        (&hyper["recipe"], &hyper["schedule"], &hyper["ema"]),
        (&"tuned".into(), &"cosine".into(), &0.999.into())
    );
    assert_eq!(hyper["precision"], "f32");
    for k in ["lr", "beta1", "beta2", "epsilon", "weight_decay", "patience", "warmup_epochs", "min_lr", "epochs"] {
        assert!(hyper[k].is_number(), "report.json's hyperparameters lack {k}");
    }
    assert_eq!(report["test"]["count"], 20);
    for k in ["epochs_run", "best_epoch", "wall_time_s", "train_images_per_s"] {
        assert!(report[k].is_number(), "report.json lacks {k}");
    }

    // Under --loss ssim, the loss early stopping watches is 1 - validation SSIM (Gaussian);
    // in bf16, recorded as such.
    let ssim_dir = tmp.path().join("run-ssim");
    let out =
        ok(
            &[
                &[
                    "train",
                    "--loss",
                    "ssim",
                    "--epochs",
                    "2",
                    "--batch-size",
                    "16",
                    "--out",
                    ssim_dir.to_str().unwrap(),
                ][..],
                &["--precision", "bf16"],
                &src[..],
            ]
            .concat(),
        );
    assert!(out.contains("loss ssim") && out.contains("bf16 ("), "{out}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(ssim_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["hyperparameters"]["loss"], "ssim");
    assert_eq!(report["hyperparameters"]["precision"], "bf16");
    for epoch in report["history"].as_array().unwrap() {
        let (val_loss, val_ssim) = (epoch["val_loss"].as_f64().unwrap(), epoch["val_ssim"].as_f64().unwrap());
        assert_eq!(val_loss, 1.0 - val_ssim, "{epoch}");
    }

    // An existing run is not overwritten without --force.
    let err = fails(&train_args);
    assert!(err.contains("--force"), "{err}");

    let ckpt = run_dir.join("best.safetensors");
    let c = ckpt.to_str().unwrap();
    let out = ok(&[&["eval", "--checkpoint", c, "--split", "val", "--json"], &src[..]].concat());
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["split"], "val");
    assert_eq!(v["count"], 20);
    for k in ["model", "ssim", "ssim_uniform7", "mse"] {
        assert!(!v[k].is_null(), "eval --json lacks {k}");
    }

    let npy = tmp.path().join("recon.npy");
    let png = tmp.path().join("recon.png");
    ok(&[
        &[
            "reconstruct",
            "--checkpoint",
            c,
            "--count",
            "5",
            "--npy",
            npy.to_str().unwrap(),
            "--png",
            png.to_str().unwrap(),
        ],
        &src[..],
    ]
    .concat());
    let set = autoencoder::run::npy::read_images(&npy).unwrap();
    assert_eq!((set.n, set.h, set.w), (5, 28, 28));
    assert!(png.is_file());

    // The user's own images: an IDX file, all of them by default.
    let own = data.join("t10k-images-idx3-ubyte.gz");
    let npy2 = tmp.path().join("own.npy");
    ok(&["reconstruct", "--checkpoint", c, "--input", own.to_str().unwrap(), "--npy", npy2.to_str().unwrap()]);
    assert_eq!(autoencoder::run::npy::read_images(&npy2).unwrap().n, 40);

    let codes = tmp.path().join("codes.npy");
    ok(&[&["encode", "--checkpoint", c, "--out", codes.to_str().unwrap()], &src[..]].concat());
    assert!(tmp.path().join("codes.labels.npy").is_file());
    let bytes = std::fs::read(&codes).unwrap();
    assert_eq!(npyz::NpyFile::new(&bytes[..]).unwrap().shape(), &[20, 128]);

    let table = ok(&["compare", r, r]);
    assert_eq!(table.lines().filter(|l| l.contains("modified")).count(), 2, "{table}");
}

#[test]
fn bad_input_gives_a_clear_message_and_nonzero_exit() {
    let err = fails(&["eval", "--checkpoint", "/nonexistent/best.safetensors"]);
    assert!(err.contains("/nonexistent/best.safetensors"), "{err}");
    let err = fails(&["train", "--model", "resnet"]);
    assert!(err.contains("resnet") && err.contains("baseline or modified"), "{err}");
    let err = fails(&["train", "--lr", "0"]);
    assert!(err.contains("--lr"), "{err}");
    let err = fails(&["train", "--weight-decay=-0.1"]);
    assert!(err.contains("--weight-decay"), "{err}");
    let err = fails(&["train", "--reduce-lr-factor", "1.5"]);
    assert!(err.contains("--reduce-lr-factor"), "{err}");
    let err = fails(&["train", "--recipe", "keras"]);
    assert!(err.contains("keras") && err.contains("tuned or reference"), "{err}");
    let err = fails(&["tune", "--trials", "2", "--out", "/nonexistent/tune", "--emas", "0.9,1.5"]);
    assert!(err.contains("--emas"), "{err}");
    let err = fails(&["train", "--loss", "l1"]);
    assert!(err.contains("l1") && err.contains("mse, ssim or mse+ssim"), "{err}");
    let err = fails(&["tune", "--trials", "2", "--out", "/nonexistent/tune", "--losses", "mse,huber"]);
    assert!(err.contains("huber") && err.contains("mse, ssim or mse+ssim"), "{err}");
    let err = fails(&["train", "--batch-size", "0"]);
    assert!(err.contains("--batch-size"), "{err}");
    let err = fails(&["train", "--data-dir", "/nonexistent/data", "--out", "/nonexistent/run"]);
    assert!(err.contains("/nonexistent"), "{err}");
    let err = fails(&["compare", "/nonexistent/run"]);
    assert!(err.contains("report.json"), "{err}");
    let err = fails(&["bench", "--batch-size", "0"]);
    assert!(err.contains("--batch-size"), "{err}");
    let err = fails(&["train", "--precision", "f16"]);
    assert!(err.contains("--precision") && err.contains("expected f32 or bf16, found f16"), "{err}");
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Weights of a checkpoint, as bits.
fn weight_bits(path: &Path) -> Vec<u32> {
    let (model, _) = autoencoder::run::checkpoint::load(path, None).unwrap();
    model.params().flat_map(|(_, p)| p.value.iter().map(|v| v.to_bits()).collect::<Vec<_>>()).collect()
}

/// Starts `train` in the background and waits until it has saved its first state.
fn start_and_wait_for_state(args: &[&str], dir: &Path) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_autoencoder"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !dir.join("state.safetensors").exists() {
        assert!(std::time::Instant::now() < deadline, "no state.safetensors after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child
}

#[test]
fn a_killed_or_interrupted_run_resumes_to_bitwise_identical_weights() {
    let (tmp, data) = temp_with_data(write_data);
    let d = data.to_str().unwrap();
    let run = |name: &str| tmp.path().join(name);
    let train_into = |out: &Path| {
        let out = out.to_str().unwrap().to_string();
        [
            "train",
            "--model",
            "modified",
            "--epochs",
            "6",
            "--batch-size",
            "16",
            // A learning-rate schedule whose state (the current rate, the plateau count) must
            // survive the interruption too.
            "--reduce-lr-patience",
            "1",
            "--min-delta",
            "0.004",
            "--data-dir",
            d,
            "--allow-custom-data",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out])
        .collect::<Vec<_>>()
    };

    // The reference: left alone.
    let a = run("a");
    ok(&as_strs(&train_into(&a)));

    // SIGKILL after the first saved state, then resume.
    let b = run("b");
    let mut child = start_and_wait_for_state(&as_strs(&train_into(&b)), &b);
    assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!b.join("report.json").exists(), "the killed run should not have finished");
    ok(&["train", "--resume", b.to_str().unwrap(), "--data-dir", d, "--allow-custom-data"]);

    // Ctrl-C (SIGINT) mid-epoch: a clean stop with a hint, then resume.
    let c = run("c");
    let child = start_and_wait_for_state(&as_strs(&train_into(&c)), &c);
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    ok(&["train", "--resume", c.to_str().unwrap(), "--data-dir", d, "--allow-custom-data"]);

    // SIGTERM (what Slurm and Kubernetes send before a kill) behaves as the first Ctrl-C.
    let e = run("e");
    let child = start_and_wait_for_state(&as_strs(&train_into(&e)), &e);
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    ok(&["train", "--resume", e.to_str().unwrap(), "--data-dir", d, "--allow-custom-data"]);

    for f in ["best.safetensors", "last.safetensors"] {
        let want = weight_bits(&a.join(f));
        assert!(weight_bits(&b.join(f)) == want, "{f}: killed-and-resumed run differs");
        assert!(weight_bits(&c.join(f)) == want, "{f}: interrupted-and-resumed run differs");
        assert!(weight_bits(&e.join(f)) == want, "{f}: terminated-and-resumed run differs");
    }
    let metrics = |dir: &Path| {
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        // Everything but the timing columns.
        let untimed = |l: &str| {
            let cells = l.split(',').enumerate().filter(|(i, _)| ![5, 6].contains(i)).map(|(_, c)| c);
            cells.collect::<Vec<_>>().join(",")
        };
        csv.lines().map(untimed).collect::<Vec<_>>()
    };
    let rates: std::collections::BTreeSet<String> =
        metrics(&a).iter().skip(1).map(|l| l.rsplit(',').next().unwrap().to_string()).collect();
    assert!(rates.len() >= 2, "the learning rate was never reduced: {:?}", metrics(&a));
    assert_eq!(metrics(&b), metrics(&a));
    assert_eq!(metrics(&c), metrics(&a));
    assert_eq!(metrics(&e), metrics(&a));
}

/// `tune` on the small data: two trials of a few epochs, everything on a tiny budget.
fn tune_args(out: &Path, data: &str, trials: &str) -> Vec<String> {
    let args = ["tune", "--model", "modified", "--trials", trials, "--epochs", "4", "--seed", "3"];
    let rest = ["--batch-sizes", "16,32", "--data-dir", data, "--allow-custom-data", "--out"];
    args.iter().chain(&rest).map(|s| s.to_string()).chain([out.to_str().unwrap().to_string()]).collect()
}

/// trials.csv without the wall-time column.
fn trials_without_time(dir: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("trials.csv")).unwrap();
    let time = csv.lines().next().unwrap().split(',').position(|c| c == "wall_time_s").unwrap();
    let drop_time = |l: &str| {
        let cells: Vec<&str> = l.split(',').enumerate().filter(|(i, _)| *i != time).map(|(_, c)| c).collect();
        cells.join(",")
    };
    csv.lines().map(drop_time).collect()
}

#[test]
fn tune_is_deterministic_and_a_killed_search_resumes_without_redoing_trials() {
    let (tmp, data) = temp_with_data(write_data);
    let d = data.to_str().unwrap();

    // The reference search, left alone.
    let a = tmp.path().join("a");
    // --dry-run lists the trials and writes nothing; the search then runs exactly those.
    let mut dry = tune_args(&a, d, "3");
    dry.push("--dry-run".to_string());
    let listed = ok(&as_strs(&dry));
    assert!(!a.exists(), "--dry-run wrote {}", a.display());
    let out = ok(&as_strs(&tune_args(&a, d, "3")));
    assert_eq!(listed.lines().count(), 3, "{listed}");
    for line in listed.lines() {
        assert!(out.lines().any(|l| l.starts_with(&format!("{line} -> "))), "{line} not run:\n{out}");
    }
    assert_eq!(ok(&["tune", "--dry-run", "--resume", a.to_str().unwrap()]), listed);
    let csv = std::fs::read_to_string(a.join("trials.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(csv.lines().next().unwrap().split(',').count(), 17, "{csv}");
    assert_eq!(rows.len(), 3, "{csv}");
    let val_ssim: Vec<f64> = rows.iter().map(|r| r[7].parse().unwrap()).collect();
    assert!(val_ssim.windows(2).all(|w| w[0] >= w[1]), "trials.csv not sorted by val_ssim:\n{csv}");
    for r in &rows {
        assert!(["16", "32"].contains(&r[2]) && ["3", "5", "8"].contains(&r[3]) && ["0.9", "0.95"].contains(&r[4]));
        assert_eq!((r[11], r[12], r[13], r[14], r[15], r[16]), ("ok", "mse", "0", "0", "constant", "0"), "{csv}");
        let lr: f64 = r[1].parse().unwrap();
        assert!((1e-4..=3e-3).contains(&lr), "lr {lr} outside the default range");
    }
    let md = std::fs::read_to_string(a.join("trials.md")).unwrap();
    assert_eq!(md.lines().filter(|l| l.starts_with('|')).count(), 2 + 3, "{md}");
    assert!(out.contains("| trial | lr |"), "the table is not printed:\n{out}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(a.join("report.json")).unwrap()).unwrap();
    let best = report["best_trial"].as_u64().unwrap();
    assert_eq!(best.to_string(), rows[0][0], "best_trial is not the top row");
    assert!(report["test"]["ssim"].as_f64().unwrap() > 0.0 && report["trials"].as_array().unwrap().len() == 3);
    // Each trial folder is a run folder (not scored on test): report, compare and eval take it.
    let trial = a.join("trial-001");
    let t = trial.to_str().unwrap();
    let trial_report: Value =
        serde_json::from_str(&std::fs::read_to_string(trial.join("report.json")).unwrap()).unwrap();
    assert!(trial_report["test"].is_null() && trial.join("reconstructions.png").is_file(), "{trial_report}");
    let table = ok(&["compare", t, a.to_str().unwrap()]);
    assert!(table.contains("- (trial)") && table.lines().count() == 4, "{table}");
    let html = tmp.path().join("trial-report");
    ok(&["report", t, "--out", html.to_str().unwrap(), "--data-dir", d, "--allow-custom-data"]);
    assert!(html.join("report.html").is_file());
    ok(&[
        "eval",
        "--checkpoint",
        trial.join("best.safetensors").to_str().unwrap(),
        "--data-dir",
        d,
        "--allow-custom-data",
    ]);
    assert!(report["search_wall_time_s"].as_f64().unwrap() >= report["wall_time_s"].as_f64().unwrap());
    assert!(
        weight_bits(&a.join("best.safetensors")) == weight_bits(&a.join(format!("trial-{best:03}/best.safetensors")))
    );

    // The same search killed during its second trial, then resumed: trial 1 is not run again,
    // and the results are those of the search left alone.
    let b = tmp.path().join("b");
    let mut child = start_and_wait_for_state(&as_strs(&tune_args(&b, d, "3")), &b.join("trial-002"));
    assert!(child.try_wait().unwrap().is_none(), "the search finished before it could be killed");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(b.join("trial-001/result.json").exists() && !b.join("report.json").exists());
    let first_trial_mtime = || std::fs::metadata(b.join("trial-001/best.safetensors")).unwrap().modified().unwrap();
    let before = first_trial_mtime();
    let out = ok(&["tune", "--resume", b.to_str().unwrap(), "--data-dir", d, "--allow-custom-data"]);
    assert!(out.contains("trial 1/3") && out.contains("finished earlier"), "{out}");
    assert_eq!(first_trial_mtime(), before, "trial 1 was run again");
    assert_eq!(trials_without_time(&b), trials_without_time(&a));
    assert!(weight_bits(&b.join("best.safetensors")) == weight_bits(&a.join("best.safetensors")));

    // Extending a search keeps its trials; another seed samples other ones.
    ok(&["tune", "--resume", b.to_str().unwrap(), "--trials", "4", "--data-dir", d, "--allow-custom-data"]);
    let extended = trials_without_time(&b);
    assert_eq!(extended.len(), 1 + 4);
    assert!(trials_without_time(&a).iter().all(|row| extended.contains(row)));
    let c = tmp.path().join("c");
    let mut other_seed = tune_args(&c, d, "3");
    other_seed[8] = "4".to_string();
    ok(&as_strs(&other_seed));
    assert_ne!(trials_without_time(&c), trials_without_time(&a));
    // --force starts over: nothing of the old search is left beside the new one.
    let mut again = tune_args(&c, d, "1");
    again.push("--force".to_string());
    ok(&as_strs(&again));
    assert_eq!(trials_without_time(&c).len(), 1 + 1);
    assert!(!c.join("trial-002").exists() && c.join("trial-001/result.json").exists());

    // Trials that diverge are recorded and the search goes on; when all do, nothing is scored.
    let mut diverging = tune_args(&tmp.path().join("d"), d, "2");
    diverging.extend(["--lr-min", "1e30", "--lr-max", "1e31"].map(String::from));
    let err = fails(&as_strs(&diverging));
    assert!(err.contains("every trial diverged") && err.contains("--lr-max"), "{err}");
    let csv = std::fs::read_to_string(tmp.path().join("d/trials.csv")).unwrap();
    assert_eq!(csv.lines().filter(|l| l.ends_with(",diverged in epoch 1,mse,0,0,constant,0")).count(), 2, "{csv}");

    // Bad input.
    let err = fails(&as_strs(&tune_args(&a, d, "3")));
    assert!(err.contains("already holds a search") && err.contains("--resume"), "{err}");
    let err = fails(&as_strs(&tune_args(&tmp.path().join("z"), d, "0")));
    assert!(err.contains("--trials"), "{err}");
    let err = fails(&["tune", "--trials", "2", "--out", "x", "--lr-min", "0.01", "--lr-max", "0.001"]);
    assert!(err.contains("--lr-min"), "{err}");
    let err = fails(&["tune", "--trials", "2", "--out", "x", "--batch-sizes", "32,0"]);
    assert!(err.contains("--batch-sizes"), "{err}");
    let err = fails(&["tune", "--resume", tmp.path().join("nothing").to_str().unwrap()]);
    assert!(err.contains("tune.json"), "{err}");
}

/// `bench --layers --json`: every pass of every layer with its time, and the measured peak and
/// kernel path; `AUTOENCODER_KERNELS` picks the path or names what it expected; `bench` on a
/// folder without data is an error that points at `--synthetic`, not a benchmark of noise.
#[test]
fn bench_reports_layers_peak_and_kernel_path() {
    let (_tmp, data) = temp_with_data(write_data);
    let d = data.to_str().unwrap();
    let args =
        ["bench", "--model", "baseline", "--batch-size", "8", "--steps", "1", "--threads", "1", "--layers", "--json"];
    let out = ok(&[&args[..], &["--data-dir", d, "--allow-custom-data"]].concat());
    let v: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(v["peak_gflops"].as_f64().unwrap() > 0.0 && v["peak_gflops_1thread"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["kernel_path"], kernels::isa::KernelPath::best().name());
    let layers = v["layers"].as_array().unwrap();
    let has = |layer: &str, pass: &str| layers.iter().any(|l| l["layer"] == layer && l["pass"] == pass);
    for pass in ["forward", "weight gradient", "input gradient"] {
        assert!(has("conv2d_1", pass), "no {pass} of conv2d_1 in {v}");
    }
    // conv2d_1's ReLU gradient runs inside max_pooling2d's input gradient; the last layer's
    // sigmoid gradient is a pass of its own.
    assert!(!has("conv2d_1", "activation gradient") && has("conv2d_4", "activation gradient"), "{v}");
    // A convolution applies its activation per image inside its forward pass; a dense layer
    // has it as a pass of its own.
    assert!(!has("conv2d_1", "activation") && has("dense", "activation"), "{v}");
    assert!(has("dense", "weight gradient") && has("max_pooling2d", "forward") && has("optimizer", "adam"), "{v}");
    // The pooling and the last layer run on each image inside the forward pass before them
    // (`Layer::forward_with_next`): their rows stay, with no time of their own.
    let ms =
        |layer: &str| layers.iter().find(|l| l["layer"] == layer && l["pass"] == "forward").unwrap()["ms"].as_f64();
    assert!(ms("max_pooling2d").unwrap() < 0.05 && ms("conv2d_4").unwrap() < 0.05, "{v}");
    // The first layer's input gradient is never computed.
    assert!(!has("conv2d", "input gradient"), "{v}");
    // And every layer's forward pass at the inference batch, nothing else.
    let inference = v["inference_layers"].as_array().unwrap();
    for layer in ["conv2d", "conv2d_1", "max_pooling2d", "dense", "conv2d_4"] {
        assert!(inference.iter().any(|l| l["layer"] == layer && l["pass"] == "forward"), "no {layer} in {v}");
    }
    assert!(inference.iter().all(|l| ["forward", "activation"].contains(&l["pass"].as_str().unwrap())), "{v}");
    for l in layers.iter().chain(inference) {
        assert!(l["ms"].as_f64().unwrap() >= 0.0, "{l}");
        match l["gflops"].as_f64() {
            Some(g) => assert!(g > 0.0 && l["pct_peak"].as_f64().unwrap() > 0.0, "{l}"),
            None => assert!(l["pct_peak"].is_null(), "{l}"),
        }
    }

    let with_env = |value: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_autoencoder"))
            .args(["bench", "--synthetic", "--batch-size", "4", "--steps", "1", "--threads", "1", "--json"])
            .args(extra)
            .env("AUTOENCODER_KERNELS", value)
            .output()
            .unwrap()
    };
    let out = with_env("portable", &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(v["kernel_path"], "portable");
    assert_eq!(v["data"], "synthetic noise");
    assert!(v["precision"] == "f32" && v["bf16_kernels"].is_null(), "{v}");
    // bf16 on the portable path is emulated; on the best path, native where the CPU has it.
    let json = |out: std::process::Output| -> Value {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap()
    };
    let v = json(with_env("portable", &["--precision", "bf16"]));
    assert!(v["precision"] == "bf16" && v["bf16_kernels"] == "emulated", "{v}");
    let v = json(with_env(kernels::isa::KernelPath::best().name(), &["--precision", "bf16"]));
    assert_eq!(v["bf16_kernels"], if kernels::bf16::has_avx512_bf16() { "native" } else { "emulated" }, "{v}");
    // AMX where this machine has it (the test process asks the same question), never when
    // emulated or switched off.
    assert_eq!(v["bf16_amx"], kernels::amx::available(), "{v}");
    let v = json(with_env("portable", &["--precision", "bf16"]));
    assert_eq!(v["bf16_amx"], false, "{v}");
    let out = with_env("sse9", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("AUTOENCODER_KERNELS=sse9") && err.contains("avx2, portable"),
        "{err}"
    );

    let empty = tempfile::tempdir().unwrap();
    let err = fails(&["bench", "--steps", "1", "--data-dir", empty.path().to_str().unwrap()]);
    assert!(err.contains("--synthetic"), "{err}");
}

/// `train --precision bf16` says when bf16 is likely slower than f32 here: always when
/// emulated, and natively when the CPU's `VDPBF16PS` peak is no higher than its FMA peak (an
/// Intel Xeon's is half, a Zen 4's twice) and there is no AMX to run the products (or
/// `AUTOENCODER_AMX=off`); an f32 run says nothing of it. `tune` says the same.
#[test]
fn bf16_training_says_when_it_is_slower_here() {
    let (tmp, data) = temp_with_data(write_data);
    let run = |command: &[&str], kernels: &str, precision: &str, out: &str| {
        let dir = tmp.path().join(out);
        Command::new(env!("CARGO_BIN_EXE_autoencoder"))
            .args(command)
            .args(["--epochs", "1", "--precision", precision, "--out"])
            .arg(&dir)
            .args(["--data-dir", data.to_str().unwrap(), "--allow-custom-data"])
            .env("AUTOENCODER_KERNELS", kernels)
            .env("AUTOENCODER_AMX", if out.ends_with("no-amx") { "off" } else { "on" })
            .output()
            .unwrap()
    };
    let train =
        |kernels: &str, precision: &str, out: &str| run(&["train", "--batch-size", "16"], kernels, precision, out);
    let tune = |kernels: &str, precision: &str, out: &str| {
        run(&["tune", "--model", "baseline", "--trials", "1", "--batch-sizes", "16"], kernels, precision, out)
    };
    let stderr = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = stderr(train("portable", "bf16", "emulated"));
    assert!(err.contains("note: bf16 is emulated here"), "{err}");
    let err = stderr(tune("portable", "bf16", "tune-emulated"));
    assert!(err.contains("note: bf16 is emulated here"), "{err}");
    let best = kernels::isa::KernelPath::best().name();
    let err = stderr(train(best, "f32", "f32"));
    assert!(!err.contains("note:"), "{err}");
    let err = stderr(tune(best, "f32", "tune-f32"));
    assert!(!err.contains("note:"), "{err}");
    let slower = match kernels::bf16::peak_gflops(false) {
        Some(bf16) => bf16 <= kernels::isa::fma_peak_gflops(false),
        None => true,
    };
    let err = stderr(train(best, "bf16", "native-no-amx"));
    assert_eq!(err.contains("note: "), slower, "{err}");
    assert_eq!(err.contains("VDPBF16PS peaks at"), slower && kernels::bf16::has_avx512_bf16(), "{err}");
    let err = stderr(train(best, "bf16", "native"));
    assert_eq!(err.contains("note: "), slower && !kernels::amx::available(), "{err}");
}

/// `train --resume` of a bf16 run warns when the run started with its products on AMX and
/// continues without (`AUTOENCODER_AMX=off`), since the two sum in different orders, and says
/// nothing of it when the run continues as it started.
#[test]
fn bf16_resume_warns_when_amx_changes() {
    let (tmp, data) = temp_with_data(write_data);
    let dir = tmp.path().join("run");
    let run = |args: &[&str], amx: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_autoencoder"))
            .args(args)
            .arg(&dir)
            .env("AUTOENCODER_AMX", amx)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let data = data.to_str().unwrap();
    let train = ["train", "--epochs", "1", "--batch-size", "16", "--precision", "bf16"];
    let (ok, err) = run(&[&train[..], &["--data-dir", data, "--allow-custom-data", "--out"]].concat(), "on");
    assert!(ok, "{err}");
    let warned = |err: &str| err.contains("bf16 products on");
    let (_, err) = run(&["train", "--resume"], "on");
    assert!(!warned(&err), "{err}");
    let (_, err) = run(&["train", "--resume"], "off");
    assert_eq!(warned(&err), kernels::amx::available(), "{err}");
}

/// A hand-edited tune.json (no trials, an empty list, lr_min above lr_max, a negative lr_min)
/// is an error naming the file and the field, for `--resume` and `--dry-run --resume` alike:
/// never a panic while sampling, never `lr NaN`.
#[test]
fn invalid_tune_json_is_an_error_not_a_panic() {
    use autoencoder::train::tune::{SearchSpace, TuneConfig};
    let valid = TuneConfig {
        model: autoencoder::models::ModelKind::Modified,
        trials: 2,
        epochs: 1,
        seed: 42,
        space: SearchSpace::default(),
    };
    type Edit = (&'static str, fn(&mut Value));
    let edits: [Edit; 4] = [
        ("trials", |v| v["trials"] = 0.into()),
        ("batch-sizes", |v| v["space"]["batch_sizes"] = Value::Array(vec![])),
        ("lr-min", |v| v["space"]["lr_min"] = 0.01.into()),
        ("lr-min", |v| v["space"]["lr_min"] = (-0.001).into()),
    ];
    for (field, edit) in edits {
        let dir = tempfile::tempdir().unwrap();
        let mut v = serde_json::to_value(&valid).unwrap();
        edit(&mut v);
        std::fs::write(dir.path().join("tune.json"), v.to_string()).unwrap();
        let d = dir.path().to_str().unwrap();
        for args in [vec!["tune", "--dry-run", "--resume", d], vec!["tune", "--resume", d]] {
            let out = common::run(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(err.contains("tune.json") && err.contains(field), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

/// Sizes that used to abort on a failed allocation (a batch of a million) or take seconds to
/// start (3,000 threads) are refused up front, naming the flag and the range.
#[test]
fn oversized_batches_and_thread_pools_are_refused() {
    for args in [
        &["train", "--batch-size", "1000000"][..],
        &["bench", "--batch-size", "1000000", "--synthetic"],
        &["tune", "--dry-run", "--trials", "1", "--batch-sizes", "32,1000000"],
    ] {
        let err = fails(args);
        assert!(err.contains("--batch-size") && err.contains("4096"), "{args:?}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let train = ["train", "--threads", "3000", "--out", out.to_str().unwrap()];
    for args in [&["bench", "--threads", "3000", "--synthetic"][..], &train] {
        let err = fails(args);
        assert!(err.contains("--threads") && err.contains("256"), "{args:?}: {err}");
    }
    assert!(!out.exists(), "a refused train left {} behind", out.display());
}

/// One writer per run folder: while a run trains in D, a second `train --out D --force` (or
/// `--resume D`) is refused naming the holder, and D keeps only the first run's files; after a
/// SIGKILL the dead holder's lock is taken over on resume, and the temp files it left are
/// removed; `--force` removes the old run's files before the new run writes any.
#[test]
fn a_run_folder_has_one_writer() {
    let (tmp, data) = temp_with_data(write_data);
    let d = data.to_str().unwrap();
    let dir = tmp.path().join("run");
    let r = dir.to_str().unwrap();
    let src = ["--data-dir", d, "--allow-custom-data"];
    let train = |model: &str, extra: &[&str]| -> Vec<String> {
        [&["train", "--model", model, "--epochs", "30", "--batch-size", "16", "--out", r][..], &src, extra]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let mut first = start_and_wait_for_state(&as_strs(&train("modified", &[])), &dir);
    let holder = std::fs::read_to_string(dir.join("lock")).unwrap();
    assert!(holder.contains(&first.id().to_string()), "{holder}");
    let err = fails(&as_strs(&train("baseline", &["--force"])));
    assert!(err.contains("held by") && err.contains(&first.id().to_string()), "{err}");
    let err = fails(&[&["train", "--resume", r][..], &src].concat());
    assert!(err.contains("held by"), "{err}");

    first.kill().unwrap(); // SIGKILL: the lock stays behind
    first.wait().unwrap();
    assert!(dir.join("lock").exists());
    std::fs::write(dir.join("state.safetensors.99999.tmp"), b"half-written").unwrap();
    let out = common::run(&[&["train", "--resume", r][..], &src].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("taking it over"), "{stderr}");
    assert!(!dir.join("lock").exists() && !dir.join("state.safetensors.99999.tmp").exists());
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["model"], "modified");

    // --force: the old run's files go before the new run writes anything (killed after its
    // first epoch, the folder holds no report.json of the old run).
    let mut second = Command::new(env!("CARGO_BIN_EXE_autoencoder"))
        .args(train("baseline", &["--force"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = second.id().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::fs::read_to_string(dir.join("lock")).is_ok_and(|l| l.contains(&pid)) {
        assert!(std::time::Instant::now() < deadline, "the second run never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // The old files go right after the lock is taken; then wait for the new run's first state.
    std::thread::sleep(std::time::Duration::from_millis(300));
    while !dir.join("state.safetensors").exists() {
        assert!(std::time::Instant::now() < deadline, "no state.safetensors after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(!dir.join("report.json").exists(), "the old run's report.json outlived --force");
}

/// A run knows its data: killed, then resumed without data flags, a custom-data run continues
/// on its recorded data (not the default Fashion-MNIST) and ends as the uninterrupted run
/// does; resumed on other data, it is refused with both digests named.
#[test]
fn a_resumed_run_continues_on_its_own_data() {
    let (tmp, data) = temp_with_data(write_data);
    let d = data.to_str().unwrap();
    let train = |out: &Path| -> Vec<String> {
        [
            "train",
            "--model",
            "baseline",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--data-dir",
            d,
            "--allow-custom-data",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.to_str().unwrap().to_string()])
        .collect()
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&as_strs(&train(&a)));
    let mut child = start_and_wait_for_state(&as_strs(&train(&b)), &b);
    child.kill().unwrap();
    child.wait().unwrap();
    ok(&["train", "--resume", b.to_str().unwrap()]);
    let report = |dir: &Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
    };
    assert_eq!(report(&b)["test"]["count"], 20, "resumed on other data");
    assert_eq!(report(&b)["data_digest"], report(&a)["data_digest"]);
    let milestones = report(&a)["milestones"].as_array().unwrap().clone();
    let levels: Vec<f64> = milestones.iter().map(|m| m["val_ssim_uniform7"].as_f64().unwrap()).collect();
    assert_eq!(levels, [0.918, 0.925, 0.930, 0.935]);
    // 3 epochs on 160 images reach none of them.
    assert!(milestones.iter().all(|m| m["epoch"].is_null() && m["wall_s"].is_null()), "{milestones:?}");
    assert!(weight_bits(&b.join("best.safetensors")) == weight_bits(&a.join("best.safetensors")));

    // Other data (one image changed): refused, naming both digests.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    for f in std::fs::read_dir(&data).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, other.join(f.file_name().unwrap())).unwrap();
    }
    let images = other.join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&images).unwrap();
    bytes[16 + 400] ^= 0xff;
    std::fs::write(&images, bytes).unwrap();
    let c = tmp.path().join("c");
    let mut child = start_and_wait_for_state(&as_strs(&train(&c)), &c);
    child.kill().unwrap();
    child.wait().unwrap();
    let err = fails(&[
        "train",
        "--resume",
        c.to_str().unwrap(),
        "--data-dir",
        other.to_str().unwrap(),
        "--allow-custom-data",
    ]);
    let digest = report(&a)["data_digest"].as_str().unwrap().to_string();
    assert!(err.contains("digest") && err.contains(&digest), "{err}");

    // eval, reconstruct and encode warn when the checkpoint was trained on other data (or
    // another split), and only then.
    let best = a.join("best.safetensors");
    let best = best.to_str().unwrap();
    let (png, npy) = (tmp.path().join("r.png"), tmp.path().join("codes.npy"));
    for (cmd, extra) in [
        ("eval", vec![]),
        ("reconstruct", vec!["--png", png.to_str().unwrap()]),
        ("encode", vec!["--out", npy.to_str().unwrap()]),
    ] {
        let stderr = |src: &[&str]| {
            let out = common::run(&[&[cmd, "--checkpoint", best][..], &extra, src, &["--allow-custom-data"]].concat());
            assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        let warned = stderr(&["--data-dir", other.to_str().unwrap()]);
        assert!(warned.contains("warning") && warned.contains(&digest), "{cmd} on other data: {warned}");
        let own = stderr(&["--data-dir", d]);
        assert!(!own.contains("warning"), "{cmd} on its own data: {own}");
        let other_split = stderr(&["--data-dir", d, "--seed", "7"]);
        assert!(other_split.contains("warning"), "{cmd} on another split: {other_split}");
    }
}

/// A search spread over workers (`tune --plan`, `tune-worker`, `tune --finalize`) ends with the
/// trials.csv (but for wall time) and the best.safetensors bytes of one `tune` process: with
/// three workers at once, after a worker is SIGKILLed mid-trial (its claim taken over), and
/// after a SIGTERM (state saved, claim released, exit 130).
#[test]
fn a_search_spread_over_workers_ends_as_one_process_does() {
    let (tmp, data) = temp_with_data(write_data);
    let d = data.to_str().unwrap();
    let src = ["--data-dir", d, "--allow-custom-data"];
    // Six trials of two epochs.
    let search = |out: &Path, trials: &str| -> Vec<String> {
        let mut args = tune_args(out, d, trials);
        let at = args.iter().position(|a| a == "--epochs").unwrap();
        args[at + 1] = "2".to_string();
        args
    };
    let reference = tmp.path().join("one");
    ok(&as_strs(&search(&reference, "6")));
    let plan = |dir: &Path| {
        let mut args = search(dir, "6");
        args.push("--plan".to_string());
        let said = ok(&as_strs(&args));
        assert!(said.contains("tune-worker") && dir.join("tune.json").is_file() && !dir.join("trial-001").exists());
    };
    let worker = |dir: &Path, how: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_autoencoder"))
            .args([&["tune-worker", dir.to_str().unwrap(), "--threads", "1"][..], how, &src].concat())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let same_as_reference = |dir: &Path| {
        ok(&[&["tune", "--finalize", dir.to_str().unwrap()][..], &src].concat());
        assert_eq!(trials_without_time(dir), trials_without_time(&reference), "{}", dir.display());
        let (a, b) = (
            std::fs::read(dir.join("best.safetensors")).unwrap(),
            std::fs::read(reference.join("best.safetensors")).unwrap(),
        );
        assert!(a == b, "{}: best.safetensors differs from one process's", dir.display());
    };

    // Three workers at once.
    let two = tmp.path().join("three");
    plan(&two);
    let mut other = search(&two, "5");
    other.push("--plan".to_string());
    assert!(fails(&as_strs(&other)).contains("different search"));
    let err = fails(&[&["tune", "--finalize", two.to_str().unwrap()][..], &src].concat());
    assert!(err.contains("6 of 6 trials are not finished: 1, 2, 3, 4, 5, 6"), "{err}");
    let workers = [worker(&two, &["--claim"]), worker(&two, &["--claim"]), worker(&two, &["--claim"])];
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    same_as_reference(&two);

    // --trial I for every I, in a shuffled order.
    let each = tmp.path().join("each");
    plan(&each);
    // Trial 2 claimed by a worker of another host that has made no progress for 100 s: busy
    // within the default --stale-after, taken over with a shorter one.
    std::fs::create_dir_all(each.join("trial-002")).unwrap();
    let long_ago = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 100;
    std::fs::write(each.join("trial-002/lock"), format!("other-host 4242 {long_ago}\n")).unwrap();
    let out = worker(&each, &["--trial", "2"]).wait_with_output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("another worker"));
    for trial in ["4", "1", "6", "3", "5", "2"] {
        let out = worker(&each, &["--trial", trial, "--stale-after", "60s"]).wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stderr.contains("taking over"), trial == "2", "trial {trial}: {stderr}");
    }
    let out = worker(&each, &["--trial", "7"]).wait_with_output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("trials 1 to 6"));
    same_as_reference(&each);

    // A worker SIGKILLed mid-trial: its dead claim is taken over and the trial continued.
    let killed = tmp.path().join("killed");
    plan(&killed);
    let mut w = worker(&killed, &["--claim"]);
    let state = killed.join("trial-001/state.safetensors");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !state.exists() {
        assert!(std::time::Instant::now() < deadline, "no trial state after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    w.kill().unwrap();
    w.wait().unwrap();
    assert!(killed.join("trial-001/lock").exists(), "the killed worker's claim should be left behind");
    let err = fails(&[&["tune", "--finalize", killed.to_str().unwrap(), "--partial"][..], &src].concat());
    assert!(err.contains("not finished"), "--partial with nothing finished: {err}");
    let out = worker(&killed, &["--claim"]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("taking over"), "{stderr}");
    same_as_reference(&killed);

    // SIGTERM: the state is saved, the claim released, exit 130; another worker continues.
    let term = tmp.path().join("term");
    plan(&term);
    let w = worker(&term, &["--trial", "2"]);
    let state = term.join("trial-002/state.safetensors");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !state.exists() {
        assert!(std::time::Instant::now() < deadline, "no trial state after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(Command::new("kill").args(["-TERM", &w.id().to_string()]).status().unwrap().success());
    let out = w.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!term.join("trial-002/lock").exists(), "SIGTERM should release the claim");
    let out = worker(&term, &["--trial", "1"]).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // --partial ranks what is finished (trial 1 alone) and scores it.
    let partial = ok(&[&["tune", "--finalize", term.to_str().unwrap(), "--partial"][..], &src].concat());
    assert!(partial.contains("best: trial 1"), "{partial}");
    let out = worker(&term, &["--claim"]).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    same_as_reference(&term);
}
