//! After the first step, a training step makes no heap allocation: every workspace is owned and
//! reused. A counting global allocator watches the real training loop (`train::train`, both
//! models, 2 threads, batch 64 with a ragged last batch) and every `Progress::Step` reads the
//! count; from step 2 to the epoch's last step it must not move.
//!
//! `harness = false` (see Cargo.toml): no test-harness threads allocate behind our back.
//! Run with `cargo test --release --test zero_alloc`. To find an allocation that breaks it, run
//! with `ZERO_ALLOC_TRACE=1`: the first allocation inside a step prints its backtrace.

use autoencoder::data::{self, Dataset};
use autoencoder::models::ModelKind;
use autoencoder::train::loss::Loss;
use autoencoder::train::{self, Progress, Recipe, TrainConfig};
use kernels::alloc::CacheAligned;
use kernels::bf16::Precision;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

/// Counts calls to alloc, alloc_zeroed and realloc (frees are not counted), served by the
/// binary's allocator.
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// Set from the first step on when tracing: the next allocation prints a backtrace.
static TRACE_ARMED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// True while this thread is printing a backtrace (which allocates itself).
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

fn counted() {
    ALLOCS.fetch_add(1, SeqCst);
    if TRACE_ARMED.load(SeqCst) && !IN_TRACE.with(|t| t.replace(true)) {
        TRACE_ARMED.store(false, SeqCst);
        eprintln!("zero_alloc: allocation during a step:\n{}", std::backtrace::Backtrace::force_capture());
        IN_TRACE.with(|t| t.set(false));
    }
}

// SAFETY: every call is forwarded unchanged to the binary's allocator; counting has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted();
        unsafe { CacheAligned.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted();
        unsafe { CacheAligned.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        counted();
        unsafe { CacheAligned.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { CacheAligned.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Synthetic images: a bright diagonal band whose position depends on the image.
fn dataset(n: usize) -> Dataset {
    let images = (0..n * 784).map(|p| (((p % 784) / 28 + p % 28 + 3 * (p / 784)) % 37 * 7) as u8).collect();
    Dataset { images, labels: (0..n).map(|i| (i % 10) as u8).collect(), origin: "synthetic".to_string() }
}

/// Trains two epochs of `kind` with `recipe`'s options on 2 threads; returns the failures (step,
/// allocations since the step before), empty when steps 2.. of each epoch allocated nothing.
fn check(
    kind: ModelKind,
    recipe: Recipe,
    loss: Loss,
    precision: Precision,
    ds: &Dataset,
    split: &data::Split,
    trace: bool,
) -> Vec<(usize, usize)> {
    let cfg = TrainConfig { epochs: 2, batch_size: 64, loss, precision, ..TrainConfig::recipe(kind, recipe) };
    let steps = split.train.len().div_ceil(cfg.batch_size);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("thread pool");
    // Fixed-size storage: the callback itself must not allocate.
    let mut failures = [(0usize, 0usize); 64];
    let mut failed = 0;
    let mut last = 0;
    let mut on = |p: Progress| {
        if let Progress::Step { step, .. } = p {
            let now = ALLOCS.load(SeqCst);
            if step >= 2 && now != last && failed < failures.len() {
                failures[failed] = (step, now - last);
                failed += 1;
            }
            last = ALLOCS.load(SeqCst);
            TRACE_ARMED.store(trace && step < steps, SeqCst);
        }
        Ok(())
    };
    let run = pool.install(|| train::train(&cfg, ds, split, None, &AtomicBool::new(false), &mut on));
    TRACE_ARMED.store(false, SeqCst);
    run.expect("training runs");
    failures[..failed].to_vec()
}

fn main() {
    let trace = std::env::var_os("ZERO_ALLOC_TRACE").is_some();
    // 700 images: 560 train = 8 steps of 64 and a last step of 48.
    let ds = dataset(700);
    let split = data::split(ds.len(), 42);
    let steps = split.train.len().div_ceil(64);
    let mut ok = true;
    // The tuned recipe adds a warmup, the cosine schedule, weight decay and the moving average.
    // bf16 with the tuned recipe and MSE: its packing buffers live in the layers' scratch.
    let runs = ModelKind::ALL.into_iter().flat_map(|k| Recipe::ALL.map(|r| (k, r))).flat_map(|(k, r)| {
        let bf16 = (r == Recipe::Tuned).then_some((k, r, Loss::Mse, Precision::Bf16));
        Loss::ALL.map(|l| (k, r, l, Precision::F32)).into_iter().chain(bf16)
    });
    for (kind, recipe, loss, precision) in runs {
        let failures = check(kind, recipe, loss, precision, &ds, &split, trace);
        let what = format!("{kind}, recipe {recipe}, loss {loss}, {precision}");
        if failures.is_empty() {
            println!("zero_alloc: {what}: steps 2..={steps} of each epoch made no heap allocation (2 threads)");
        }
        for (step, count) in failures {
            println!("zero_alloc: FAILED: {what}: step {step} of {steps} made {count} heap allocation(s)");
            ok = false;
        }
    }
    if !ok {
        println!("zero_alloc: rerun with ZERO_ALLOC_TRACE=1 to print where the first one came from");
        std::process::exit(1);
    }
}
