//! Adam as Keras 3 defines it: epsilon is added to sqrt of the raw second moment and the bias
//! correction is folded into the step size (not the paper / PyTorch form). Weight decay is
//! Keras's `weight_decay` argument: decoupled (AdamW), `p -= p * wd * lr` on every parameter
//! before the Adam update.

use crate::isa::dispatch;
use crate::micro::Simd;
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled weight decay; 0 for plain Adam.
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-7, weight_decay: 0.0 }
    }
}

/// The step size at step t (1-based): lr * sqrt(1 - beta2^t) / (1 - beta1^t), in f64.
pub fn step_size(c: &AdamConfig, t: u64) -> f32 {
    let t = t.min(i32::MAX as u64) as i32;
    let (b1, b2) = (c.beta1 as f64, c.beta2 as f64);
    (c.lr as f64 * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t))) as f32
}

/// One step t (1-based): p -= p wd lr; m += (1-b1)(g-m); v += (1-b2)(g²-v);
/// p -= alpha_t m / (sqrt(v)+eps). Overwrites `p`, `m`, `v`.
/// # Panics
/// If the slices differ in length or t is 0.
pub fn step(c: &AdamConfig, t: u64, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    assert!(t >= 1, "adam: steps count from 1");
    assert!(p.len() == g.len() && g.len() == m.len() && m.len() == v.len(), "adam: lengths");
    let alpha = step_size(c, t);
    let (a1, a2) = (1.0 - c.beta1, 1.0 - c.beta2);
    let decay = c.weight_decay * c.lr;
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| {
            let eps = c.eps;
            dispatch!(step_with(a1: f32, a2: f32, alpha: f32, eps: f32, decay: f32, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]))
        });
}

/// `step_one` over the slices, vectorized by the compiler on the path's widest vectors (no
/// fused multiply-adds: the same bits as `step_one` on every path).
/// # Safety
/// None beyond `dispatch!`'s (the CPU has the path's instructions).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn step_with<S: Simd>(
    a1: f32,
    a2: f32,
    alpha: f32,
    eps: f32,
    decay: f32,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        step_one(a1, a2, alpha, eps, decay, p, g, m, v);
    }
}

#[inline]
#[allow(clippy::too_many_arguments)]
fn step_one(a1: f32, a2: f32, alpha: f32, eps: f32, decay: f32, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
    *p -= *p * decay;
    *m += a1 * (g - *m);
    *v += a2 * (g * g - *v);
    *p -= alpha * *m / (v.sqrt() + eps);
}

/// The naive twin of `step`.
pub fn step_naive(c: &AdamConfig, t: u64, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let alpha = step_size(c, t);
    for i in 0..p.len() {
        let decay = c.weight_decay * c.lr;
        step_one(1.0 - c.beta1, 1.0 - c.beta2, alpha, c.eps, decay, &mut p[i], g[i], &mut m[i], &mut v[i]);
    }
}
