//! The random search's sampling and its results table (the search end to end, with resume, is
//! in tests/cli.rs).

use autoencoder::models::ModelKind;
use autoencoder::train::loss::Loss;
use autoencoder::train::tune::{self, SearchSpace, TrialResult, TuneConfig};
use autoencoder::train::{EpochStats, Schedule, TrainConfig};

fn search(seed: u64, trials: usize) -> TuneConfig {
    TuneConfig { model: ModelKind::Modified, trials, epochs: 20, seed, space: SearchSpace::default() }
}

#[test]
fn trials_depend_on_the_seed_and_their_index_only() {
    let (a, b) = (search(1, 3), search(1, 50));
    for t in 1..=3 {
        assert_eq!(a.trial(t), b.trial(t), "trial {t} changed when the search grew");
        assert_eq!(a.trial(t), search(1, 3).trial(t), "trial {t} is not reproducible");
    }
    let other: Vec<_> = (1..=3).map(|t| search(2, 3).trial(t)).collect();
    assert!((1..=3).any(|t| a.trial(t) != other[t - 1]), "another seed sampled the same trials");
    assert_ne!(a.trial(1), a.trial(2));
    let t = a.trial(2);
    assert_eq!((t.seed, t.epochs, t.model), (1, 20, ModelKind::Modified));
}

#[test]
fn the_loss_is_drawn_last_so_older_searches_draw_the_same_trials() {
    let old = search(3, 400);
    let mut both = old.clone();
    both.space.losses = vec![Loss::Mse, Loss::Ssim];
    both.space.reduce_lr_patiences = vec![0, 3];
    both.space.weight_decays = vec![0.0, 0.004];
    both.space.schedules = vec![Schedule::Constant, Schedule::Cosine];
    both.space.emas = vec![0.0, 0.999];
    let (mut ssim, mut reduced, mut decayed, mut cosine, mut averaged) = (0, 0, 0, 0, 0);
    for t in 1..=400 {
        let (a, b) = (old.trial(t), both.trial(t));
        let drawn = (a.loss, a.reduce_lr_patience, a.weight_decay, a.schedule, a.ema);
        assert_eq!(drawn, (Loss::Mse, 0, 0.0, Schedule::Constant, 0.0), "the default search");
        // What a search does not draw is the reference recipe's, whatever `train`'s defaults.
        assert_eq!(a.recipe, autoencoder::train::Recipe::Reference);
        let same_rest = TrainConfig {
            loss: a.loss,
            reduce_lr_patience: 0,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            ema: 0.0,
            ..b.clone()
        };
        assert_eq!(same_rest, a, "trial {t}: adding dimensions changed another draw");
        ssim += usize::from(b.loss == Loss::Ssim);
        reduced += usize::from(b.reduce_lr_patience == 3);
        decayed += usize::from(b.weight_decay == 0.004);
        cosine += usize::from(b.schedule == Schedule::Cosine);
        averaged += usize::from(b.ema == 0.999);
    }
    let counts = [ssim, reduced, decayed, cosine, averaged];
    assert!(counts.iter().all(|n| (150..=250).contains(n)), "{counts:?} of 400");
    // A tune.json written before these existed reads back as an MSE, constant-rate, no-decay,
    // no-average search.
    let mut json: serde_json::Value = serde_json::to_value(&old).unwrap();
    let added = ["losses", "reduce_lr_patiences", "reduce_lr_factor", "weight_decays", "schedules", "emas"];
    for key in added.into_iter().chain(["warmup_epochs", "min_lr"]) {
        json["space"].as_object_mut().unwrap().remove(key);
    }
    assert_eq!(serde_json::from_value::<TuneConfig>(json).unwrap(), old);
}

#[test]
fn samples_cover_the_space_log_uniformly() {
    let s = search(7, 2000);
    let trials: Vec<_> = (1..=2000).map(|t| s.trial(t)).collect();
    let space = SearchSpace::default();
    for t in &trials {
        assert!((space.lr_min..=space.lr_max).contains(&t.lr), "lr {} outside the range", t.lr);
        // Three significant digits, so `train --lr` can repeat the trial exactly.
        let digits = format!("{:e}", t.lr).split('e').next().unwrap().replace(['.', '-'], "").len();
        assert!(digits <= 3, "lr {} has more than 3 significant digits", t.lr);
    }
    // Log-uniform: half the draws below the geometric mean of the bounds (binomial sd ~ 1.1%).
    let mid = (space.lr_min * space.lr_max).sqrt();
    let below = trials.iter().filter(|t| t.lr < mid).count() as f64 / 2000.0;
    assert!((below - 0.5).abs() < 0.05, "fraction below the geometric mean: {below}");
    for b in &space.batch_sizes {
        let n = trials.iter().filter(|t| t.batch_size == *b).count();
        assert!((500..=833).contains(&n), "batch size {b} drawn {n} times of 2000");
    }
    for p in &space.patiences {
        assert!(trials.iter().filter(|t| t.patience == *p).count() > 500, "patience {p} rarely drawn");
    }
    for b1 in &space.beta1s {
        assert!(trials.iter().filter(|t| t.beta1 == *b1).count() > 850, "beta1 {b1} rarely drawn");
    }
}

#[test]
fn bad_ranges_name_their_flag() {
    let mut s = search(1, 3);
    s.space.lr_min = 0.01;
    s.space.lr_max = 0.001;
    assert!(s.validate().unwrap_err().to_string().contains("--lr-min"));
    let mut s = search(1, 3);
    s.space.beta1s = vec![0.9, 1.0];
    assert!(s.validate().unwrap_err().to_string().contains("--beta1s"));
    let mut s = search(1, 3);
    s.space.patiences.clear();
    assert!(s.validate().unwrap_err().to_string().contains("--patiences"));
    let mut s = search(1, 3);
    s.space.weight_decays = vec![-0.1];
    assert!(s.validate().unwrap_err().to_string().contains("--weight-decays"));
    let mut s = search(1, 3);
    s.space.losses.clear();
    assert!(s.validate().unwrap_err().to_string().contains("--losses"));
    let mut s = search(1, 3);
    s.space.emas = vec![0.999, 1.0];
    assert!(s.validate().unwrap_err().to_string().contains("--emas"));
    // A pairing some trial would draw and could not train with.
    let mut s = search(1, 3);
    s.space.schedules = vec![Schedule::Constant, Schedule::Cosine];
    s.space.reduce_lr_patiences = vec![0, 2];
    assert!(s.validate().unwrap_err().to_string().contains("--reduce-lr-patience"));
    assert!(search(1, 0).validate().unwrap_err().to_string().contains("--trials"));
    assert!(search(1, 3).validate().is_ok());
}

fn result(trial: usize, val_ssim: f64) -> TrialResult {
    let cfg = search(1, 9).trial(trial);
    let epoch = |e: usize, ssim: f64| EpochStats {
        epoch: e,
        train_loss: 0.01,
        val_loss: 0.02 / e as f64,
        val_ssim: ssim,
        val_ssim_uniform7: ssim + 0.01,
        seconds: 2.5,
        images_per_s: 100.0,
        lr: 1e-3,
    };
    let history = [epoch(1, val_ssim - 0.1), epoch(2, val_ssim), epoch(3, val_ssim - 0.05)];
    TrialResult::new(trial, &cfg, &history, 2).unwrap()
}

#[test]
fn a_trial_is_scored_at_its_best_epoch_and_the_table_is_best_first() {
    let r = result(4, 0.8);
    assert_eq!((r.best_epoch, r.epochs_run, r.val_ssim, r.val_loss, r.wall_time_s), (2, 3, Some(0.8), Some(0.01), 7.5));
    assert_eq!(r.failure, None);
    assert!(TrialResult::new(1, &search(1, 9).trial(1), &[], 2).is_err(), "a best epoch outside the history");

    let failed = TrialResult::failed(5, &search(1, 9).trial(5), &[], "diverged in epoch 1".into());
    assert_eq!((failed.val_ssim, failed.epochs_run, failed.wall_time_s.to_bits()), (None, 0, 0.0f64.to_bits()));
    let results = [failed, result(1, 0.7), result(2, 0.9), result(3, 0.7), result(4, 0.8)];
    let order: Vec<usize> = tune::ranked(&results).iter().map(|r| r.trial).collect();
    assert_eq!(order, [2, 4, 1, 3, 5], "best first, ties to the earlier trial, failed trials last");
    let csv = tune::trials_csv(&results);
    let first: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((first[0], first[7]), ("2", "0.900000"), "{csv}");
    assert_eq!(csv.lines().count(), 6);
    assert!(csv.lines().all(|l| l.split(',').count() == 17), "{csv}");
    assert!(csv.lines().last().unwrap().ends_with(",,,,0.0,diverged in epoch 1,mse,0,0,constant,0"), "{csv}");
    assert!(csv.lines().nth(1).unwrap().ends_with(",ok,mse,0,0,constant,0"), "{csv}");
    let md = tune::trials_markdown(&results);
    let widths: Vec<usize> = md.lines().map(|l| l.matches('|').count()).collect();
    assert_eq!(widths, [18; 7], "every Markdown row has 17 cells:\n{md}");
    assert!(md.lines().nth(2).unwrap().starts_with("| 2 |"), "{md}");
}
