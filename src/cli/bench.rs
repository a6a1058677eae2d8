//! `autoencoder bench`: steady-state training and inference throughput of one model, the
//! machine's measured FMA peak, and with `--layers` the time of every pass of a training step.

use super::common::{in_pool, set_threads};
use super::data::DataSource;
use super::train::{parse_named, precision_label};
use anyhow::Result;
use autoencoder::data::IMAGE_LEN;
use autoencoder::models::{self, ModelKind, INPUT_SHAPE};
use autoencoder::profile::{Profile, Stage};
use autoencoder::sequential::Sequential;
use autoencoder::train::loss::Loss;
use autoencoder::train::optim::{Adam, AdamConfig};
use autoencoder::train::{train_step, train_step_timed, StepBuffers};
use autoencoder::Tensor;
use kernels::bf16::{self, Precision};
use kernels::isa;
use serde_json::json;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value = "modified", value_parser = parse_named::<ModelKind>)]
    pub model: ModelKind,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed training steps (after 3 warm-up steps).
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Also time every pass of every layer (forward, activation, weight and input gradients),
    /// the loss and Adam: ms per step, GFLOP/s and % of the measured peak.
    #[arg(long)]
    pub layers: bool,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
    /// Precision of the convolutions' and dense layers' products: f32 or bf16 (see `train
    /// --precision`).
    #[arg(long, default_value_t = Precision::F32, value_parser = parse_named::<Precision>)]
    pub precision: Precision,
    #[command(flatten)]
    pub data: DataSource,
    /// Benchmark on seeded noise instead of the data set (for a machine without it).
    #[arg(long, conflicts_with_all = ["data_dir", "allow_custom_data"])]
    pub synthetic: bool,
}

/// The first `count` images of the data set (cycled if it is smaller), or seeded noise.
fn bench_images(args: &BenchArgs, count: usize) -> Result<(Vec<f32>, String)> {
    if args.synthetic {
        return Ok((autoencoder::data::noise_images(count, 0x2545_f491_4f6c_dd1d), "synthetic noise".to_string()));
    }
    let d = args.data.load().map_err(|e| e.context("hint: `--synthetic` benchmarks on noise without the data"))?;
    let idx: Vec<usize> = (0..count).map(|i| i % d.len()).collect();
    let mut px = vec![0.0; count * IMAGE_LEN];
    d.fill_batch(&idx, &mut px);
    Ok((px, d.origin.to_string()))
}

/// What the timed loop measured.
struct Measured {
    train_ips: f64,
    infer_ips: f64,
    macs: usize,
    peak_1: f64,
    peak_n: f64,
    /// `VDPBF16PS`'s peak on 1 and on every thread; `None` without AVX512-BF16.
    bf16_peak_1: Option<f64>,
    bf16_peak_n: Option<f64>,
    /// (layer, kind, pass, ms per step, GFLOP/s when the pass does multiply-adds).
    layers: Vec<LayerRow>,
    /// The same for the forward passes at the inference batch, ms per batch.
    infer_layers: Vec<LayerRow>,
}

type LayerRow = (String, String, &'static str, f64, Option<f64>);

pub fn run(args: BenchArgs) -> Result<()> {
    let max = autoencoder::train::MAX_BATCH_SIZE;
    anyhow::ensure!(
        (1..=max).contains(&args.batch_size),
        "invalid --batch-size: expected 1 to {max}, found {}",
        args.batch_size
    );
    anyhow::ensure!(args.steps >= 1, "invalid --steps: expected at least 1, found 0");
    let threads = set_threads(args.threads)?;
    const INFER_BATCH: usize = 256;
    let (pixels, source) = bench_images(&args, args.batch_size.max(INFER_BATCH))?;
    // Timed on a pool thread, where `train` runs its loop (see `in_pool`).
    let m = in_pool(|| -> Result<Measured> {
        let (peak_1, peak_n) = (isa::fma_peak_gflops(false), isa::fma_peak_gflops(true));
        let (bf16_peak_1, bf16_peak_n) = (bf16::peak_gflops(false), bf16::peak_gflops(true));
        let mut model = models::build(args.model, 42)?;
        model.set_precision(args.precision);
        let mut adam = Adam::new(AdamConfig::default(), &model);
        let batch = Tensor::from_vec(&[args.batch_size, 28, 28, 1], pixels[..args.batch_size * IMAGE_LEN].to_vec());
        let mut bufs = StepBuffers::default();
        for _ in 0..3 {
            train_step(&mut model, &mut adam, Loss::Mse, &batch, &mut bufs);
        }
        let t = Instant::now();
        for _ in 0..args.steps {
            train_step(&mut model, &mut adam, Loss::Mse, &batch, &mut bufs);
        }
        let train_ips = (args.steps * args.batch_size) as f64 / t.elapsed().as_secs_f64();

        let mut layers = Vec::new();
        if args.layers {
            let mut profile = Profile::on();
            for _ in 0..args.steps {
                train_step_timed(&mut model, &mut adam, Loss::Mse, &batch, &mut bufs, &mut profile);
            }
            layers = layer_rows(&model, &profile, args.steps);
        }

        let mut infer = Tensor::default();
        infer.reshape_for(INFER_BATCH, &INPUT_SHAPE);
        infer.data_mut().copy_from_slice(&pixels[..INFER_BATCH * IMAGE_LEN]);
        model.infer(&infer);
        let reps = args.steps.div_ceil(4).max(2);
        let t = Instant::now();
        for _ in 0..reps {
            model.infer(&infer);
        }
        let infer_ips = (reps * INFER_BATCH) as f64 / t.elapsed().as_secs_f64();
        let mut infer_layers = Vec::new();
        if args.layers {
            let mut profile = Profile::on();
            for _ in 0..reps {
                model.infer_timed(&infer, usize::MAX, &mut profile);
            }
            infer_layers = layer_rows(&model, &profile, reps);
        }
        Ok(Measured {
            train_ips,
            infer_ips,
            macs: model.macs(),
            peak_1,
            peak_n,
            bf16_peak_1,
            bf16_peak_n,
            layers,
            infer_layers,
        })
    })?;
    // Training costs about three forward passes: forward, input gradient, weight gradient.
    let gflops_train = m.train_ips * 3.0 * 2.0 * m.macs as f64 / 1e9;
    let path = isa::kernel_path();
    let precision = precision_label(args.precision);
    if !args.json {
        outln!(
            "{}: batch {}, {} threads, {}, kernels {path}, {precision}: training {:.0} images/s ({:.1} GFLOP/s, {:.0}% of peak), inference (batch {INFER_BATCH}) {:.0} images/s",
            args.model, args.batch_size, threads, source, m.train_ips, gflops_train, 100.0 * gflops_train / m.peak_n, m.infer_ips
        );
        outln!("FMA peak, measured: {:.1} GFLOP/s on 1 thread, {:.1} on {threads}", m.peak_1, m.peak_n);
        match (m.bf16_peak_1, m.bf16_peak_n) {
            (Some(one), Some(all)) => {
                outln!("bf16 pair multiply-add peak (VDPBF16PS), measured: {one:.1} GFLOP/s on 1 thread, {all:.1} on {threads}")
            }
            _ => outln!("bf16: this CPU has no AVX512-BF16"),
        }
        if kernels::amx::available() {
            outln!("bf16: the convolutions and dense layers run on AMX tiles (TDPBF16PS) here; AUTOENCODER_AMX=off runs them on VDPBF16PS")
        }
        if args.layers {
            outln!("\ntraining, batch {} (ms per step):", args.batch_size);
            print_layers(&m.layers, m.peak_n);
            outln!("\ninference, batch {INFER_BATCH} (ms per batch):");
            print_layers(&m.infer_layers, m.peak_n);
        }
    }
    let mut v = json!({"model": args.model, "batch_size": args.batch_size, "threads": threads,
                   "train_images_per_s": m.train_ips, "infer_images_per_s": m.infer_ips, "gflops_train": gflops_train,
                   "kernel_path": path.name(), "peak_gflops": m.peak_n, "peak_gflops_1thread": m.peak_1,
                   "bf16_peak_gflops": m.bf16_peak_n, "bf16_peak_gflops_1thread": m.bf16_peak_1,
                   "precision": args.precision.name(),
                   "bf16_kernels": (args.precision == Precision::Bf16).then(bf16::mode_name),
                   "bf16_amx": (args.precision == Precision::Bf16).then(kernels::amx::available),
                   "data": source});
    if args.layers {
        let rows = |rows: &[LayerRow]| -> serde_json::Value {
            rows.iter()
                .map(|(layer, kind, pass, ms, gflops)| {
                    json!({"layer": layer, "kind": kind, "pass": pass, "ms": ms, "gflops": gflops,
                           "pct_peak": gflops.map(|g| 100.0 * g / m.peak_n)})
                })
                .collect()
        };
        v["layers"] = rows(&m.layers);
        v["inference_layers"] = rows(&m.infer_layers);
    }
    outln!("{v}");
    Ok(())
}

fn layer_rows(model: &Sequential, profile: &Profile, steps: usize) -> Vec<LayerRow> {
    profile
        .passes()
        .iter()
        .map(|p| {
            let (name, kind) = match p.stage {
                Stage::Layer(i) => (model.layers()[i].name().to_string(), model.layers()[i].kind().to_string()),
                Stage::Loss => ("loss".to_string(), "Loss".to_string()),
                Stage::Optimizer => ("optimizer".to_string(), "Adam".to_string()),
            };
            let gflops = (p.flops > 0.0).then(|| p.flops / p.seconds / 1e9);
            (name, kind, p.pass, 1e3 * p.seconds / steps as f64, gflops)
        })
        .collect()
}

fn print_layers(rows: &[LayerRow], peak: f64) {
    outln!("\n{:<20} {:<16} {:<20} {:>9} {:>9} {:>7}", "layer", "kind", "pass", "ms", "GFLOP/s", "% peak");
    for (layer, kind, pass, ms, gflops) in rows {
        let (g, pct) = match gflops {
            Some(g) => (format!("{g:.1}"), format!("{:.0}%", 100.0 * g / peak)),
            None => ("-".to_string(), "-".to_string()),
        };
        outln!("{layer:<20} {kind:<16} {pass:<20} {ms:>9.3} {g:>9} {pct:>7}");
    }
    let total: f64 = rows.iter().map(|r| r.3).sum();
    let mac_ms: f64 = rows.iter().filter(|r| r.4.is_some()).map(|r| r.3).sum();
    outln!("{:<58} {total:>9.3}   (multiply-add passes {mac_ms:.3}, the rest {:.3})", "total", total - mac_ms);
}
