"""An Optuna study that drives the `autoencoder` binary: each trial runs `autoencoder train`
with `--metrics-jsonl -`, reports validation SSIM after every epoch, and is pruned by sending
SIGINT, which makes the run save its state and exit (it stays resumable with
`autoencoder train --resume DIR`).

    pip install -r examples/optuna_requirements.txt
    python examples/optuna_objective.py --trials 20 --epochs 10 --out runs/optuna

Prints one JSON line at the end: trials complete and pruned, the best value and parameters.
"""
import argparse
import json
import os
import signal
import subprocess

import optuna


class BelowPruner(optuna.pruners.BasePruner):
    """Prunes a trial (but the first) whose last reported value is below `lower`."""

    def __init__(self, lower):
        self.lower = lower

    def prune(self, study, trial):
        step = trial.last_step
        return trial.number > 0 and step is not None and trial.intermediate_values[step] < self.lower


def objective(trial, args):
    lr = trial.suggest_float("lr", 1e-4, 3e-3, log=True)
    batch_size = trial.suggest_categorical("batch_size", [16, 32, 64])
    out = os.path.join(args.out, f"trial-{trial.number:03d}")
    cmd = [args.binary, "train", "--model", args.model, "--epochs", str(args.epochs), "--lr", str(lr),
           "--batch-size", str(batch_size), "--out", out, "--force", "--metrics-jsonl", "-"] + args.data
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    best = None
    for line in proc.stdout:
        if not line.startswith("{"):
            continue  # the run's other stdout lines (the header, the final scores)
        epoch = json.loads(line)
        best = epoch["val_ssim"] if best is None else max(best, epoch["val_ssim"])
        trial.report(epoch["val_ssim"], epoch["epoch"])
        if trial.should_prune():
            proc.send_signal(signal.SIGINT)  # finishes the step, saves the state, exits 130
            proc.communicate()
            raise optuna.TrialPruned()
    if proc.wait() != 0 or best is None:
        raise RuntimeError(f"{' '.join(cmd)} failed with status {proc.returncode}")
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default="autoencoder")
    p.add_argument("--model", default="modified")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default="runs/optuna")
    p.add_argument("--seed", type=int, default=42, help="the sampler's seed")
    p.add_argument("--prune-below", type=float, help="prune trials whose validation SSIM falls below this "
                   "(default: Optuna's median rule)")
    p.add_argument("--data-dir", help="passed to the binary, with --allow-custom-data")
    args = p.parse_args()
    args.data = ["--data-dir", args.data_dir, "--allow-custom-data"] if args.data_dir else []
    pruner = BelowPruner(args.prune_below) if args.prune_below is not None else optuna.pruners.MedianPruner()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed), pruner=pruner)
    study.optimize(lambda t: objective(t, args), n_trials=args.trials)
    states = [t.state for t in study.trials]
    print(json.dumps({"complete": states.count(optuna.trial.TrialState.COMPLETE),
                      "pruned": states.count(optuna.trial.TrialState.PRUNED),
                      "best_value": study.best_value, "best_params": study.best_params}))


if __name__ == "__main__":
    main()
