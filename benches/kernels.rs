// Run: `cargo bench --bench kernels` (filter with e.g. `cargo bench --bench kernels -- conv2d/forward`).
//! One criterion group per kernel pass over the real layer shapes of both models at batch 64,
//! reporting Throughput::Elements(2 * MACs) so the "elements/s" column reads as FLOP/s
//! (elementwise passes report elements). Each conv group also times the naive twin at one
//! shape, for the speed-up ratio. Measurement is kept short (10 samples, 2 s) because the
//! machine is shared; treat the figures as ratios.

mod common;

/// As the `autoencoder` binary: large buffers on cache lines (`kernels::alloc`).
#[global_allocator]
static ALLOC: kernels::alloc::CacheAligned = kernels::alloc::CacheAligned;

use common::data;
use criterion::measurement::WallTime;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use kernels::adam::{self, AdamConfig};
use kernels::bf16::Precision;
use kernels::geom::{ConvGeom, Padding, PoolGeom};
use kernels::upsample2d::UpGeom;
use kernels::{conv2d, conv_transpose2d, dense, maxpool2d, upsample2d};
use std::time::Duration;

const BATCH: usize = 64;

fn conv(h: usize, ci: usize, co: usize, s: usize) -> ConvGeom {
    ConvGeom::new(h, h, ci, co, 3, s, Padding::Same).expect("geometry")
}

/// Conv2D layers of both models.
fn conv_shapes() -> Vec<(&'static str, ConvGeom)> {
    vec![
        ("base 1->32 28x28", conv(28, 1, 32, 1)),
        ("base 32->32 28x28", conv(28, 32, 32, 1)),
        ("base 32->1 28x28", conv(28, 32, 1, 1)),
        ("mod 1->32 s2 28->14", conv(28, 1, 32, 2)),
        ("mod 32->64 s2 14->7", conv(14, 32, 64, 2)),
        ("mod 64->128 7x7", conv(7, 64, 128, 1)),
    ]
}

/// Conv2DTranspose layers of the modified model (geometry: the conv reading their output).
fn convt_shapes() -> Vec<(&'static str, ConvGeom)> {
    let t = |h, ci, co, s| ConvGeom::transpose(h, h, ci, co, 3, s, Padding::Same).expect("geometry");
    vec![
        ("mod T 128->128 s2 7->14", t(7, 128, 128, 2)),
        ("mod T 128->64 s2 14->28", t(14, 128, 64, 2)),
        ("mod T 64->1 28x28", t(28, 64, 1, 1)),
    ]
}

fn short<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    g
}

/// Buffers of one conv layer at BATCH: x [n, h_in, w_in, c_in], w, b, y [n, h_out, w_out, c_out].
struct ConvBufs {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    y: Vec<f32>,
    s: Vec<f32>,
}

fn bufs(g: &ConvGeom) -> ConvBufs {
    ConvBufs {
        x: data(BATCH * g.x_len(), 1),
        w: data(g.w_len(), 2),
        b: data(g.c_out.max(g.c_in), 3),
        y: data(BATCH * g.y_len(), 4),
        s: vec![0.0; conv2d::scratch_len(g, BATCH)],
    }
}

fn flops(g: &ConvGeom) -> Throughput {
    Throughput::Elements(2 * (BATCH * g.macs()) as u64)
}

fn bench_conv2d(c: &mut Criterion) {
    let mut grp = short(c, "conv2d/forward");
    for (name, g) in conv_shapes() {
        let mut d = bufs(&g);
        grp.throughput(flops(&g));
        grp.bench_function(BenchmarkId::from_parameter(name), |bn| {
            bn.iter(|| {
                conv2d::forward(&g, BATCH, &d.x, &d.w, Some(&d.b[..g.c_out]), &mut d.y, &mut d.s, Precision::F32)
            })
        });
    }
    // The naive twin at one shape, at batch 4 (it is slow); compare per-FLOP rates.
    let g = conv(28, 32, 32, 1);
    let (x, w, mut y) = (data(4 * g.x_len(), 1), data(g.w_len(), 2), vec![0.0; 4 * g.y_len()]);
    grp.throughput(Throughput::Elements(2 * (4 * g.macs()) as u64));
    grp.bench_function("naive base 32->32 28x28 (batch 4)", |bn| {
        bn.iter(|| conv2d::forward_naive(&g, 4, &x, &w, None, &mut y))
    });
    grp.finish();

    let mut grp = short(c, "conv2d/backward_input");
    for (name, g) in conv_shapes() {
        let mut d = bufs(&g);
        grp.throughput(flops(&g));
        grp.bench_function(BenchmarkId::from_parameter(name), |bn| {
            bn.iter(|| conv2d::backward_input(&g, BATCH, &d.y, &d.w, &mut d.x, &mut d.s, Precision::F32))
        });
    }
    grp.finish();

    let mut grp = short(c, "conv2d/backward_weight");
    for (name, g) in conv_shapes() {
        let mut d = bufs(&g);
        let mut db = vec![0.0; g.c_out];
        grp.throughput(flops(&g));
        grp.bench_function(BenchmarkId::from_parameter(name), |bn| {
            bn.iter(|| {
                conv2d::backward_weight(&g, BATCH, &d.x, &d.y, &mut d.w, Some(&mut db), &mut d.s, Precision::F32)
            })
        });
    }
    grp.finish();
}

fn bench_conv_transpose2d(c: &mut Criterion) {
    // Layer input is the conv geometry's y side, layer output its x side.
    let mut grp = short(c, "conv_transpose2d/forward");
    for (name, g) in convt_shapes() {
        let mut d = bufs(&g);
        grp.throughput(flops(&g));
        grp.bench_function(BenchmarkId::from_parameter(name), |bn| {
            bn.iter(|| {
                conv_transpose2d::forward(&g, BATCH, &d.y, &d.w, &d.b[..g.c_in], &mut d.x, &mut d.s, Precision::F32)
            })
        });
    }
    let g = convt_shapes()[0].1;
    let (x, w, b, mut y) = (data(4 * g.y_len(), 1), data(g.w_len(), 2), data(g.c_in, 3), vec![0.0; 4 * g.x_len()]);
    grp.throughput(Throughput::Elements(2 * (4 * g.macs()) as u64));
    grp.bench_function("naive mod T 128->128 s2 7->14 (batch 4)", |bn| {
        bn.iter(|| conv_transpose2d::forward_naive(&g, 4, &x, &w, &b, &mut y))
    });
    grp.finish();

    let mut grp = short(c, "conv_transpose2d/backward_input");
    for (name, g) in convt_shapes() {
        let mut d = bufs(&g);
        grp.throughput(flops(&g));
        grp.bench_function(BenchmarkId::from_parameter(name), |bn| {
            bn.iter(|| conv_transpose2d::backward_input(&g, BATCH, &d.x, &d.w, &mut d.y, &mut d.s, Precision::F32))
        });
    }
    grp.finish();

    let mut grp = short(c, "conv_transpose2d/backward_weight");
    for (name, g) in convt_shapes() {
        let mut d = bufs(&g);
        let mut db = vec![0.0; g.c_in];
        grp.throughput(flops(&g));
        grp.bench_function(BenchmarkId::from_parameter(name), |bn| {
            bn.iter(|| {
                conv_transpose2d::backward_weight(&g, BATCH, &d.y, &d.x, &mut d.w, &mut db, &mut d.s, Precision::F32)
            })
        });
    }
    grp.finish();
}

fn bench_dense(c: &mut Criterion) {
    let shapes = [("base 6272->128", 6272usize, 128usize), ("base 128->6272", 128, 6272)];
    let fl = |ci: usize, co: usize| Throughput::Elements(2 * (BATCH * ci * co) as u64);
    let mut grp = short(c, "dense/forward");
    for &(name, ci, co) in &shapes {
        let (x, w, b, mut y) = (data(BATCH * ci, 1), data(ci * co, 2), data(co, 3), vec![0.0; BATCH * co]);
        grp.throughput(fl(ci, co));
        grp.bench_function(name, |bn| {
            bn.iter(|| dense::forward(BATCH, ci, co, &x, &w, &b, &mut y, &mut [], Precision::F32))
        });
    }
    let (ci, co) = (6272, 128);
    let (x, w, b, mut y) = (data(BATCH * ci, 1), data(ci * co, 2), data(co, 3), vec![0.0; BATCH * co]);
    grp.throughput(fl(ci, co));
    grp.bench_function("naive base 6272->128", |bn| {
        bn.iter(|| dense::forward_naive(BATCH, ci, co, &x, &w, &b, &mut y))
    });
    grp.finish();

    let mut grp = short(c, "dense/backward_input");
    for &(name, ci, co) in &shapes {
        let (dy, w, mut dx) = (data(BATCH * co, 1), data(ci * co, 2), vec![0.0; BATCH * ci]);
        grp.throughput(fl(ci, co));
        grp.bench_function(name, |bn| {
            bn.iter(|| dense::backward_input(BATCH, ci, co, &dy, &w, &mut dx, &mut [], Precision::F32))
        });
    }
    grp.finish();

    let mut grp = short(c, "dense/backward_weight");
    for &(name, ci, co) in &shapes {
        let (x, dy, mut dw, mut db) = (data(BATCH * ci, 1), data(BATCH * co, 2), vec![0.0; ci * co], vec![0.0; co]);
        grp.throughput(fl(ci, co));
        grp.bench_function(name, |bn| {
            bn.iter(|| dense::backward_weight(BATCH, ci, co, &x, &dy, &mut dw, &mut db, &mut [], Precision::F32))
        });
    }
    grp.finish();
}

fn bench_elementwise(c: &mut Criterion) {
    let g = PoolGeom::new(28, 28, 32, 2, 2, Padding::Valid).expect("geometry");
    let x = data(BATCH * g.x_len(), 1);
    let (mut y, mut arg) = (vec![0.0; BATCH * g.y_len()], vec![0u32; BATCH * g.y_len()]);
    let mut grp = short(c, "maxpool2d");
    grp.throughput(Throughput::Elements((BATCH * g.x_len()) as u64));
    grp.bench_function("forward base 28->14 c32", |bn| bn.iter(|| maxpool2d::forward(&g, BATCH, &x, &mut y, &mut arg)));
    let (dy, mut dx) = (data(BATCH * g.y_len(), 2), vec![0.0; BATCH * g.x_len()]);
    grp.bench_function("backward_input base 28->14 c32", |bn| {
        bn.iter(|| maxpool2d::backward_input(&g, BATCH, &dy, &arg, &mut dx))
    });
    grp.bench_function("forward_naive base 28->14 c32", |bn| {
        bn.iter(|| maxpool2d::forward_naive(&g, BATCH, &x, &mut y))
    });
    grp.finish();

    let u = UpGeom { h: 14, w: 14, c: 32, factor: 2 };
    let (x, mut y) = (data(BATCH * u.x_len(), 1), vec![0.0; BATCH * u.y_len()]);
    let (dy, mut dx) = (data(BATCH * u.y_len(), 2), vec![0.0; BATCH * u.x_len()]);
    let mut grp = short(c, "upsample2d");
    grp.throughput(Throughput::Elements((BATCH * u.y_len()) as u64));
    grp.bench_function("forward base 14->28 c32", |bn| bn.iter(|| upsample2d::forward(&u, BATCH, &x, &mut y)));
    grp.bench_function("backward_input base 14->28 c32", |bn| {
        bn.iter(|| upsample2d::backward_input(&u, BATCH, &dy, &mut dx))
    });
    grp.bench_function("forward_naive base 14->28 c32", |bn| {
        bn.iter(|| upsample2d::forward_naive(&u, BATCH, &x, &mut y))
    });
    grp.finish();

    // Adam over about the modified model's parameter count (~1.9 M).
    let len = 1_900_000;
    let cfg = AdamConfig::default();
    let (mut p, gr, mut m, mut v) = (data(len, 1), data(len, 2), vec![0.0; len], vec![0.0; len]);
    let mut grp = short(c, "adam");
    grp.throughput(Throughput::Elements(len as u64));
    grp.bench_function("step 1.9M params", |bn| {
        bn.iter(|| adam::step(&cfg, black_box(3), &mut p, &gr, &mut m, &mut v))
    });
    grp.bench_function("step_naive 1.9M params", |bn| {
        bn.iter(|| adam::step_naive(&cfg, black_box(3), &mut p, &gr, &mut m, &mut v))
    });
    grp.finish();
}

criterion_group!(benches, bench_conv2d, bench_conv_transpose2d, bench_dense, bench_elementwise);
criterion_main!(benches);
