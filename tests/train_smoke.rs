//! Training behaviour: each model overfits one batch, early stopping follows Keras on a
//! scripted loss sequence, checkpoints round-trip bit-exactly and reject what they must.

use autoencoder::models::{self, ModelKind};
use autoencoder::run::checkpoint::{self, CheckpointInfo};
use autoencoder::train::callbacks::{EarlyStopping, ReduceLrOnPlateau, Verdict};
use autoencoder::train::loss::Loss;
use autoencoder::train::optim::{Adam, AdamConfig};
use autoencoder::train::{train_step, StepBuffers};
use autoencoder::Tensor;
use kernels::bf16::Precision;

/// Smooth, garment-like synthetic images: a bright ellipse of random size and position.
fn blobs(n: usize, seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as f32 / (1u64 << 31) as f32
    };
    let mut data = Vec::with_capacity(n * 784);
    for _ in 0..n {
        let (cy, cx, ry, rx, v) =
            (10.0 + 8.0 * next(), 10.0 + 8.0 * next(), 4.0 + 6.0 * next(), 3.0 + 6.0 * next(), 0.5 + 0.5 * next());
        for y in 0..28 {
            for x in 0..28 {
                let d = ((y as f32 - cy) / ry).powi(2) + ((x as f32 - cx) / rx).powi(2);
                data.push(if d < 1.0 { v * (1.0 - 0.5 * d) } else { 0.0 });
            }
        }
    }
    Tensor::from_vec(&[n, 28, 28, 1], data)
}

/// `blobs` as a data set of 8-bit images with labels 0..9.
fn blob_dataset(n: usize, seed: u64) -> autoencoder::data::Dataset {
    autoencoder::data::Dataset {
        images: blobs(n, seed).data().iter().map(|&v| (v * 255.0).round() as u8).collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        origin: "synthetic".to_string(),
    }
}

#[test]
fn each_model_overfits_one_batch_under_each_loss() {
    let batch = blobs(8, 1);
    for kind in ModelKind::ALL {
        for loss in Loss::ALL {
            let mut model = models::build(kind, 42).unwrap();
            let mut adam = Adam::new(AdamConfig::default(), &model);
            let mut bufs = StepBuffers::default();
            let losses: Vec<f64> =
                (0..60).map(|_| train_step(&mut model, &mut adam, loss, &batch, &mut bufs)).collect();
            let (first, last) = (losses[0], *losses.last().unwrap());
            assert!(losses.iter().all(|l| l.is_finite()), "{kind}, {loss}: {losses:?}");
            assert!(last < 0.3 * first, "{kind}, {loss}: loss went from {first} to {last} in 60 steps");
        }
    }
}

#[test]
fn early_stopping_follows_keras_on_a_scripted_sequence() {
    // patience 2, min_delta 0.01: an improvement must beat the best by more than 0.01.
    let mut es = EarlyStopping::new(2, 0.01);
    let script = [
        (1.00, Verdict::Improved),
        (0.90, Verdict::Improved),
        (0.895, Verdict::Wait), // better, but by less than min_delta
        (0.85, Verdict::Improved),
        (0.86, Verdict::Wait),
        (0.845, Verdict::Stop), // 0.005 better than the best: not enough, patience exhausted
    ];
    for (epoch, (loss, want)) in script.iter().enumerate() {
        assert_eq!(es.update(epoch + 1, *loss), *want, "epoch {}", epoch + 1);
    }
    assert_eq!(es.best_epoch, 4);
    assert_eq!(es.best, 0.85);

    // min_delta 0: any decrease counts; equal does not.
    let mut es = EarlyStopping::new(1, 0.0);
    assert_eq!(es.update(1, 0.5), Verdict::Improved);
    assert_eq!(es.update(2, 0.5), Verdict::Stop);
}

#[test]
fn reduce_lr_on_plateau_follows_keras_on_a_scripted_sequence() {
    use autoencoder::train::TrainConfig;
    // patience 2, factor 0.5, min_lr 0.2, min_delta 0.01.
    let cfg = TrainConfig {
        reduce_lr_patience: 2,
        reduce_lr_factor: 0.5,
        min_lr: 0.2,
        min_delta: 0.01,
        ..TrainConfig::reference(ModelKind::Modified)
    };
    let mut plateau = ReduceLrOnPlateau::new(2, 0.5, 0.2, 0.01);
    let mut lr = 1.0f32;
    let script = [
        (1.00, 1.0),
        (0.995, 1.0), // better by less than min_delta: wait 1
        (0.99, 0.5),  // wait 2: reduce, and count again
        (0.98, 0.5),  // improved (0.98 < 1.00 - 0.01)
        (0.98, 0.5),
        (0.98, 0.25),
        (0.98, 0.25),
        (0.98, 0.2), // not below min_lr
        (0.98, 0.2),
        (0.98, 0.2), // at min_lr: no further change
    ];
    for (epoch, (loss, want)) in script.iter().enumerate() {
        if let Some(new) = plateau.update(*loss, lr) {
            lr = new;
        }
        assert_eq!(lr, *want, "epoch {}", epoch + 1);
    }
    // The schedule's position survives a save and load of the run state (what --resume reads).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let model = models::build(ModelKind::Modified, 1).unwrap();
    let mut state = autoencoder::train::RunState::new(&cfg, &model);
    state.adam.config.lr = 0.25;
    state.plateau.update(0.5, 0.25);
    state.plateau.update(0.6, 0.25);
    checkpoint::save_state(&path, &cfg, &model, &state).unwrap();
    let (_, _, loaded) = checkpoint::load_state(&path).unwrap();
    assert_eq!((loaded.adam.config.lr, loaded.plateau.clone()), (0.25, state.plateau.clone()));
    assert_eq!((loaded.plateau.best, loaded.plateau.wait), (0.5, 1));

    // Patience 0: the rate never changes.
    let mut off = ReduceLrOnPlateau::new(0, 0.5, 0.0, 0.0);
    assert!((0..20).all(|_| off.update(1.0, 1e-3).is_none()));
}

#[test]
fn checkpoint_round_trip_is_bit_exact_and_bad_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("best.safetensors");
    let mut model = models::build(ModelKind::Baseline, 3).unwrap();
    for (i, p) in model.params_mut().enumerate() {
        p.value.iter_mut().enumerate().for_each(|(j, v)| *v = ((i * 31 + j) as f32).sin() * 1e-3);
    }
    let info = CheckpointInfo { model: ModelKind::Baseline, epoch: 7, seed: 3, data_digest: None };
    checkpoint::save(&path, &model, &info).unwrap();
    let (loaded, got) = checkpoint::load(&path, Some(ModelKind::Baseline)).unwrap();
    assert_eq!(got, info);
    let bits = |m: &autoencoder::sequential::Sequential| {
        m.params().flat_map(|(_, p)| p.value.iter().map(|v| v.to_bits()).collect::<Vec<_>>()).collect::<Vec<_>>()
    };
    assert_eq!(bits(&loaded), bits(&model));

    // The wrong model.
    let err = checkpoint::load(&path, Some(ModelKind::Modified)).err().unwrap().to_string();
    assert!(err.contains("baseline") && err.contains("modified"), "{err}");
    // Truncated.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = checkpoint::load(&cut, None).err().unwrap().to_string();
    assert!(err.contains("cut.safetensors") && err.contains("truncated or corrupt"), "{err}");
    // A missing tensor: a modified-model file relabelled as baseline.
    let other = dir.path().join("other.safetensors");
    let m2 = models::build(ModelKind::Modified, 1).unwrap();
    checkpoint::save(&other, &m2, &CheckpointInfo { model: ModelKind::Modified, epoch: 1, seed: 1, data_digest: None })
        .unwrap();
    let text = std::fs::read(&other).unwrap();
    let relabelled = String::from_utf8_lossy(&text).replacen("\"modified\"", "\"baseline\"", 1);
    let forged = dir.path().join("forged.safetensors");
    std::fs::write(&forged, relabelled.as_bytes()).unwrap();
    let err = checkpoint::load(&forged, None).err().unwrap().to_string();
    assert!(err.contains("tensor"), "{err}");
    // Not there at all.
    let err = checkpoint::load(&dir.path().join("nope.safetensors"), None).err().unwrap().to_string();
    assert!(err.contains("nope.safetensors"), "{err}");
}

#[test]
fn training_is_bitwise_identical_on_one_and_two_threads() {
    use autoencoder::data;
    use autoencoder::train::{self, TrainConfig};
    let ds = blob_dataset(120, 4);
    let split = data::split(ds.len(), 42);
    for (kind, precision) in ModelKind::ALL.into_iter().flat_map(|k| Precision::ALL.map(|p| (k, p))) {
        // Batch 10 is not a multiple of the 4-image task size, so a ragged last task is covered.
        let cfg = TrainConfig { epochs: 2, batch_size: 10, precision, ..TrainConfig::new(kind) };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let out =
                pool.install(|| train::train(&cfg, &ds, &split, None, &Default::default(), &mut |_| Ok(())).unwrap());
            let weights: Vec<u32> = out.model.params().flat_map(|(_, p)| p.value.iter().map(|v| v.to_bits())).collect();
            let losses: Vec<u64> = out.history.iter().map(|e| e.val_loss.to_bits()).collect();
            (weights, losses)
        };
        let one = run(1);
        assert!(one == run(2), "{kind} {precision}: 1 and 2 threads differ");
        assert!(one == run(2), "{kind} {precision}: two runs differ");
        if precision == Precision::Bf16 {
            let f32_run = { TrainConfig { precision: Precision::F32, ..cfg.clone() } };
            let out = train::train(&f32_run, &ds, &split, None, &Default::default(), &mut |_| Ok(())).unwrap();
            let weights: Vec<u32> = out.model.params().flat_map(|(_, p)| p.value.iter().map(|v| v.to_bits())).collect();
            assert!(weights != one.0, "{kind}: bf16 trained exactly as f32: the precision was not applied");
        }
    }
}

/// A run on a per-step schedule (cosine after a warmup epoch) with a moving average of the
/// weights, interrupted mid-epoch, saved, loaded and resumed, ends bitwise as the
/// uninterrupted run: the rate comes from the position, the average is in the state, and
/// the precision is in the state's configuration.
#[test]
fn a_scheduled_run_resumes_bitwise() {
    use autoencoder::data;
    use autoencoder::train::{self, Progress, Schedule, TrainConfig};
    use std::sync::atomic::{AtomicBool, Ordering};
    let ds = blob_dataset(120, 5);
    let split = data::split(ds.len(), 42);
    // In bf16, so the state also carries the precision back (`loaded == cfg`).
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 16,
        schedule: Schedule::Cosine,
        warmup_epochs: 1,
        min_lr: 1e-5,
        ema: 0.9,
        precision: Precision::Bf16,
        ..TrainConfig::new(ModelKind::Baseline)
    };
    let bits = |m: &autoencoder::sequential::Sequential| -> Vec<u32> {
        m.params().flat_map(|(_, p)| p.value.iter().map(|v| v.to_bits())).collect()
    };
    let whole = train::train(&cfg, &ds, &split, None, &AtomicBool::new(false), &mut |_| Ok(())).unwrap();
    let rates: Vec<f32> = whole.history.iter().map(|e| e.lr).collect();
    assert!(rates[0] > rates[1] && rates[1] > rates[2] && (rates[2] - 1e-5).abs() < 1e-9, "{rates:?}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let stop = AtomicBool::new(false);
    // Stopped at step 3 of epoch 2, on the cosine's way down.
    let mut epoch_now = 0;
    let err = train::train(&cfg, &ds, &split, None, &stop, &mut |p| {
        match p {
            Progress::EpochStart { epoch, .. } => epoch_now = epoch,
            Progress::Step { step: 3, .. } if epoch_now == 2 => stop.store(true, Ordering::SeqCst),
            Progress::Interrupted { model, state } => checkpoint::save_state(&path, &cfg, model, state).unwrap(),
            _ => {}
        }
        Ok(())
    });
    assert!(matches!(err, Err(autoencoder::Error::Interrupted { .. })), "{:?}", err.err());
    let (loaded, model, state) = checkpoint::load_state(&path).unwrap();
    assert_eq!(loaded, cfg);
    let resumed =
        train::train(&cfg, &ds, &split, Some((model, state)), &AtomicBool::new(false), &mut |_| Ok(())).unwrap();
    assert!(bits(&resumed.model) == bits(&whole.model), "the resumed scheduled run differs");
    assert_eq!(resumed.history.iter().map(|e| e.lr).collect::<Vec<_>>(), rates);
}

/// `--monitor` picks the epoch whose weights are restored: the lowest validation loss, or the
/// highest validation SSIM of the chosen definition. The runs are identical but for that
/// choice, and on this data the two figures disagree about the best epoch.
#[test]
fn the_monitor_picks_the_restored_epoch() {
    use autoencoder::train::{self, Monitor, TrainConfig};
    use std::sync::atomic::AtomicBool;
    let ds = blob_dataset(120, 7);
    let split = autoencoder::data::split(ds.len(), 42);
    let run = |monitor| {
        let cfg = TrainConfig { epochs: 6, batch_size: 16, monitor, ..TrainConfig::reference(ModelKind::Baseline) };
        train::train(&cfg, &ds, &split, None, &AtomicBool::new(false), &mut |_| Ok(())).unwrap()
    };
    let best = |h: &[train::EpochStats], key: fn(&train::EpochStats) -> f64| {
        h.iter().min_by(|a, b| key(a).total_cmp(&key(b))).unwrap().epoch
    };
    let by_loss = run(Monitor::ValLoss);
    let by_ssim = run(Monitor::ValSsim);
    let by_uniform7 = run(Monitor::ValSsimUniform7);
    assert_eq!(by_loss.best_epoch, best(&by_loss.history, |e| e.val_loss));
    assert_eq!(by_ssim.best_epoch, best(&by_ssim.history, |e| -e.val_ssim));
    assert_eq!(by_uniform7.best_epoch, best(&by_uniform7.history, |e| -e.val_ssim_uniform7));
    assert_ne!(by_loss.best_epoch, by_ssim.best_epoch, "this data no longer tells the monitors apart");
}

/// With --ema, validation scores the average (the weights the run state holds at the epoch's
/// end, not the model's), and the average's warmup (`ema_decay`) means even a decay of
/// 0.999999 does not leave it at the initial weights after one short epoch.
#[test]
fn validation_scores_the_moving_average() {
    use autoencoder::eval::{evaluate, Images};
    use autoencoder::train::{self, Progress, TrainConfig};
    use std::sync::atomic::AtomicBool;
    let ds = blob_dataset(120, 6);
    let split = autoencoder::data::split(ds.len(), 42);
    let cfg = TrainConfig { epochs: 1, batch_size: 16, ema: 0.999_999, ..TrainConfig::reference(ModelKind::Baseline) };
    let mut untrained = models::build(ModelKind::Baseline, 42).unwrap();
    let initial = evaluate(&mut untrained, Images::Subset(&ds, &split.val)).unwrap().mse;
    let (mut average, mut trained) = (models::build(ModelKind::Baseline, 42).unwrap(), None);
    let run = train::train(&cfg, &ds, &split, None, &AtomicBool::new(false), &mut |p| {
        if let Progress::EpochEnd { model, state, .. } = p {
            for (p, w) in average.params_mut().zip(&state.ema_weights) {
                p.value.copy_from_slice(w);
            }
            let mut copy = models::build(ModelKind::Baseline, 42).unwrap();
            for (p, (_, w)) in copy.params_mut().zip(model.params()) {
                p.value.copy_from_slice(&w.value);
            }
            trained = Some(evaluate(&mut copy, Images::Subset(&ds, &split.val)).unwrap().mse);
        }
        Ok(())
    })
    .unwrap();
    let averaged = evaluate(&mut average, Images::Subset(&ds, &split.val)).unwrap().mse;
    assert_eq!(run.history[0].val_loss, averaged, "validation did not score the average");
    assert_ne!(Some(averaged), trained, "the average is the trained model itself");
    assert!(averaged < 0.9 * initial, "the average {averaged} stayed near the untrained {initial}");
}

mod bad_files {
    use autoencoder::models::{self, ModelKind};
    use autoencoder::run::checkpoint::{self, CheckpointInfo};
    use proptest::prelude::*;

    /// A valid checkpoint's bytes, to damage (written once).
    fn valid_checkpoint() -> Vec<u8> {
        static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        BYTES
            .get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("m.safetensors");
                let model = models::build(ModelKind::Modified, 1).unwrap();
                let info = CheckpointInfo { model: ModelKind::Modified, epoch: 1, seed: 1, data_digest: None };
                checkpoint::save(&path, &model, &info).unwrap();
                std::fs::read(&path).unwrap()
            })
            .clone()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn arbitrary_or_damaged_checkpoints_are_errors_not_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..8),
            cut in 0usize..2000,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.safetensors");
            std::fs::write(&path, &bytes).unwrap();
            prop_assert!(checkpoint::load(&path, None).is_err());
            prop_assert!(checkpoint::load_state(&path).is_err());
            // A real file with bytes of its header changed, or cut short.
            let mut good = valid_checkpoint();
            for (i, v) in flips {
                let i = i % good.len();
                good[i] = v;
            }
            std::fs::write(&path, &good).unwrap();
            let _ = checkpoint::load(&path, None);
            let _ = checkpoint::load_state(&path);
            let mut cut_file = valid_checkpoint();
            cut_file.truncate(cut.min(cut_file.len() - 1));
            std::fs::write(&path, &cut_file).unwrap();
            prop_assert!(checkpoint::load(&path, None).is_err());
        }
    }
}

#[test]
fn a_failed_write_leaves_the_previous_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    autoencoder::run::fsutil::write_bytes_atomic(&path, b"old contents").unwrap();
    let err = autoencoder::run::fsutil::write_atomic(&path, |w| {
        w.write_all(b"half of the new")?;
        Err(std::io::Error::other("disk full"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("metrics.csv") && err.to_string().contains("disk full"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"old contents");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the temp file was left behind");
    // A folder that does not exist: a clear error naming the file.
    let missing = dir.path().join("no/such/dir/best.safetensors");
    let err = autoencoder::run::fsutil::write_bytes_atomic(&missing, b"x").unwrap_err();
    assert!(err.to_string().contains("best.safetensors"), "{err}");
}

#[test]
fn a_diverging_learning_rate_is_caught_before_anything_is_saved() {
    use autoencoder::data::{self, Dataset};
    use autoencoder::train::{self, Progress, TrainConfig};
    // Busy images (unlike the blobs, whose near-black background an all-zero output would fit).
    let images: Vec<u8> = (0..200 * 784).map(|i| ((i * 7919) % 251) as u8).collect();
    let ds = Dataset { images, labels: vec![0; 200], origin: "synthetic".to_string() };
    let split = data::split(ds.len(), 42);
    for kind in ModelKind::ALL {
        let cfg = TrainConfig { epochs: 3, batch_size: 16, lr: 10.0, ..TrainConfig::new(kind) };
        let mut epochs_reported = 0;
        let mut on = |p: Progress| {
            if let Progress::EpochEnd { .. } = p {
                epochs_reported += 1;
            }
            Ok(())
        };
        let err =
            train::train(&cfg, &ds, &split, None, &Default::default(), &mut on).err().expect("lr 10 should diverge");
        assert!(matches!(err, autoencoder::Error::Diverged { epoch: 1, .. }), "{kind}: {err}");
        assert!(err.to_string().contains("--lr"), "{err}");
        assert_eq!(epochs_reported, 0, "{kind}: a diverged epoch must not be reported (and so saved)");
    }
}

/// A run state whose fields a run cannot have reached (an Adam step near the counter's wrap,
/// an epoch past the run's last, a history that disagrees with the epoch, a non-finite loss)
/// is refused on load, naming the file and the field, instead of panicking or training an
/// epoch of no images later.
#[test]
fn impossible_run_states_are_clear_errors() {
    use autoencoder::train::{EpochStats, RunState, TrainConfig};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.safetensors");
    let cfg = TrainConfig { epochs: 3, ..TrainConfig::new(ModelKind::Baseline) };
    let model = models::build(ModelKind::Baseline, 1).unwrap();
    let stats = |epoch| EpochStats {
        epoch,
        train_loss: 0.01,
        val_loss: 0.01,
        val_ssim: 0.5,
        val_ssim_uniform7: 0.5,
        seconds: 1.0,
        images_per_s: 1.0,
        lr: 1e-3,
    };
    type Edit = (&'static str, fn(&mut RunState, fn(usize) -> EpochStats));
    let edits: [Edit; 4] = [
        ("adam_t", |s, _| s.adam.t = u64::MAX),
        ("epoch", |s, st| {
            s.epoch = 4;
            s.history = (1..=4).map(st).collect();
        }),
        ("history", |s, st| {
            s.epoch = 2;
            s.history = vec![st(1)];
        }),
        // JSON has no NaN: serde writes null, which the reader refuses.
        ("metadata `state`", |s, st| {
            s.epoch = 1;
            s.history = vec![EpochStats { val_loss: f64::NAN, ..st(1) }];
        }),
    ];
    let mut good = RunState::new(&cfg, &model);
    good.epoch = 1;
    good.history = vec![stats(1)];
    checkpoint::save_state(&path, &cfg, &model, &good).unwrap();
    assert!(checkpoint::load_state(&path).is_ok());
    for (field, edit) in edits {
        let mut state = RunState::new(&cfg, &model);
        edit(&mut state, stats);
        checkpoint::save_state(&path, &cfg, &model, &state).unwrap();
        let err = checkpoint::load_state(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("state.safetensors") && err.contains(field), "{field}: {err:?}");
    }
}

/// Saving the same state again gives the same bytes (the metadata map was written in hash
/// order, so `sha256sum` of two identical runs disagreed), and the file still loads.
#[test]
fn the_same_state_saves_to_identical_bytes() {
    use autoencoder::train::{RunState, TrainConfig};
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig::new(ModelKind::Baseline);
    let model = models::build(ModelKind::Baseline, 3).unwrap();
    let state = RunState::new(&cfg, &model);
    let files: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let path = dir.path().join(format!("state-{i}.safetensors"));
            checkpoint::save_state(&path, &cfg, &model, &state).unwrap();
            let info = CheckpointInfo { model: ModelKind::Baseline, epoch: 1, seed: 3, data_digest: None };
            checkpoint::save(&dir.path().join(format!("best-{i}.safetensors")), &model, &info).unwrap();
            [std::fs::read(&path).unwrap(), std::fs::read(dir.path().join(format!("best-{i}.safetensors"))).unwrap()]
                .concat()
        })
        .collect();
    assert!(files.windows(2).all(|w| w[0] == w[1]), "two saves of the same state differ");
    assert!(checkpoint::load_state(&dir.path().join("state-0.safetensors")).is_ok());
    assert!(checkpoint::load(&dir.path().join("best-0.safetensors"), None).is_ok());
}
