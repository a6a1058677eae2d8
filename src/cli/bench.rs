//! `autoencoder bench`: steady-state training and inference throughput of one model.

use super::common::{in_pool, set_threads};
use super::train::parse_model;
use anyhow::Result;
use autoencoder::data::{self, IMAGE_LEN};
use autoencoder::models::{self, ModelKind, INPUT_SHAPE};
use autoencoder::optim::{Adam, AdamConfig};
use autoencoder::train::{train_step, Loss};
use autoencoder::Tensor;
use serde_json::json;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value = "modified", value_parser = parse_model)]
    pub model: ModelKind,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed training steps (after 3 warm-up steps).
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Images for the benchmark: the real data when it can be found, else seeded noise.
fn bench_images(count: usize) -> (Vec<f32>, &'static str) {
    let opts = data::DataOptions { data_dir: None, allow_custom_data: false };
    match data::load(&opts) {
        Ok(d) if d.len() >= count => {
            let idx: Vec<usize> = (0..count).collect();
            let mut px = vec![0.0; count * IMAGE_LEN];
            d.fill_batch(&idx, &mut px);
            (px, "Fashion-MNIST")
        }
        _ => {
            let mut state = 0x2545_f491_4f6c_dd1du64;
            let px = (0..count * IMAGE_LEN)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect();
            (px, "synthetic noise (Fashion-MNIST not found)")
        }
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    anyhow::ensure!(args.batch_size >= 1, "invalid --batch-size: expected at least 1, found 0");
    anyhow::ensure!(args.steps >= 1, "invalid --steps: expected at least 1, found 0");
    let threads = set_threads(args.threads)?;
    const INFER_BATCH: usize = 256;
    let (pixels, source) = bench_images(args.batch_size.max(INFER_BATCH));
    // Timed on a pool thread, where `train` runs its loop (see `in_pool`).
    let (train_ips, infer_ips, macs) = in_pool(|| -> Result<(f64, f64, usize)> {
        let mut model = models::build(args.model, 42)?;
        let mut adam = Adam::new(AdamConfig::default(), &model);
        let batch = Tensor::from_vec(&[args.batch_size, 28, 28, 1], pixels[..args.batch_size * IMAGE_LEN].to_vec());
        let mut dy = Tensor::default();
        for _ in 0..3 {
            train_step(&mut model, &mut adam, Loss::Mse, &batch, &mut dy);
        }
        let t = Instant::now();
        for _ in 0..args.steps {
            train_step(&mut model, &mut adam, Loss::Mse, &batch, &mut dy);
        }
        let train_ips = (args.steps * args.batch_size) as f64 / t.elapsed().as_secs_f64();

        let mut infer = Tensor::default();
        infer.reshape_for(INFER_BATCH, &INPUT_SHAPE);
        infer.data_mut().copy_from_slice(&pixels[..INFER_BATCH * IMAGE_LEN]);
        model.forward(&infer);
        let reps = args.steps.div_ceil(4).max(2);
        let t = Instant::now();
        for _ in 0..reps {
            model.forward(&infer);
        }
        let infer_ips = (reps * INFER_BATCH) as f64 / t.elapsed().as_secs_f64();
        Ok((train_ips, infer_ips, model.macs()))
    })?;
    // Training costs about three forward passes: forward, input gradient, weight gradient.
    let gflops_train = train_ips * 3.0 * 2.0 * macs as f64 / 1e9;
    if !args.json {
        outln!(
            "{}: batch {}, {} threads, {}: training {:.0} images/s ({:.1} GFLOP/s), inference (batch {INFER_BATCH}) {:.0} images/s",
            args.model, args.batch_size, threads, source, train_ips, gflops_train, infer_ips
        );
    }
    let v = json!({"model": args.model, "batch_size": args.batch_size, "threads": threads,
                   "train_images_per_s": train_ips, "infer_images_per_s": infer_ips, "gflops_train": gflops_train});
    outln!("{v}");
    Ok(())
}
