//! examples/optuna_objective.py against Optuna from PyPI (pinned in
//! examples/optuna_requirements.txt, in target/optuna-venv, which `.ci/run` makes): three
//! trials of three epochs on small custom data, pruning by SIGINT; the pruned runs must have
//! saved a resumable state. Missing, the test fails under CI=true and is a visible skip
//! elsewhere.

mod common;

use common::{ok, temp_with_data, write_squares};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Command;

#[test]
fn the_optuna_example_runs_trials_and_prunes_by_sigint() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/optuna-venv/bin/python");
    let works = Command::new(&python).args(["-c", "import optuna"]).output().is_ok_and(|o| o.status.success());
    if !works {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but {} cannot import optuna", python.display());
        }
        let line =
            format!("SKIPPED: no {} with optuna (pip install -r examples/optuna_requirements.txt)\n", python.display());
        let _ = std::io::stderr().write_all(line.as_bytes());
        return;
    }
    let (tmp, data) = temp_with_data(write_squares);
    let out = tmp.path().join("study");
    let run = Command::new(&python)
        .arg(root.join("examples/optuna_objective.py"))
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_autoencoder"),
            "--trials",
            "3",
            "--epochs",
            "3",
            "--prune-below",
            "0.99",
        ])
        .args(["--out", out.to_str().unwrap(), "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!((summary["complete"].as_u64(), summary["pruned"].as_u64()), (Some(1), Some(2)), "{stdout}");
    assert!(summary["best_value"].as_f64().unwrap() > 0.0);
    // A pruned trial stopped after its first epoch with its state saved, and resumes.
    let pruned = out.join("trial-001");
    assert!(pruned.join("state.safetensors").is_file() && !pruned.join("report.json").exists());
    ok(&["train", "--resume", pruned.to_str().unwrap(), "--data-dir", data.to_str().unwrap(), "--allow-custom-data"]);
    assert!(pruned.join("report.json").is_file());
}
