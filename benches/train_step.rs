// Run: `cargo bench --bench train_step` (one training step, forward + backward + Adam, per model).
//! Training throughput of each model at batch 64 on seeded noise images, reported as
//! images/s (criterion's elements/s). `autoencoder bench` measures the same on the real data.

use autoencoder::models::{self, ModelKind};
use autoencoder::train::loss::Loss;
use autoencoder::train::optim::{Adam, AdamConfig};
use autoencoder::train::{train_step, StepBuffers};
use autoencoder::Tensor;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

/// As the `autoencoder` binary: large buffers on cache lines (`kernels::alloc`).
#[global_allocator]
static ALLOC: kernels::alloc::CacheAligned = kernels::alloc::CacheAligned;

const BATCH: usize = 64;

fn bench_train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(BATCH as u64));
    let batch = Tensor::from_vec(&[BATCH, 28, 28, 1], autoencoder::data::noise_images(BATCH, 0x9e37_79b9));
    for kind in ModelKind::ALL {
        let mut model = models::build(kind, 42).expect("model builds");
        let mut adam = Adam::new(AdamConfig::default(), &model);
        let mut bufs = StepBuffers::default();
        // On a pool thread, where `train` runs its steps (the CLI's `in_pool`).
        let mut step = || rayon::scope(|_| train_step(&mut model, &mut adam, Loss::Mse, &batch, &mut bufs));
        group.bench_function(kind.name(), |b| b.iter(&mut step));
    }
    group.finish();
}

criterion_group!(benches, bench_train_step);
criterion_main!(benches);
