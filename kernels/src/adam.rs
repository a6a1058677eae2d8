//! Adam as Keras 3 defines it: epsilon is added to sqrt of the raw second moment and the bias
//! correction is folded into the step size (not the paper / PyTorch form). Weight decay is
//! Keras's `weight_decay` argument: decoupled (AdamW), `p -= p * wd * lr` on every parameter
//! before the Adam update.

use crate::simd::load;
use rayon::prelude::*;
use wide::f32x8;

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
            let (va1, va2, valpha, veps, vdecay) =
                (f32x8::splat(a1), f32x8::splat(a2), f32x8::splat(alpha), f32x8::splat(c.eps), f32x8::splat(decay));
            let body = p.len() / 8 * 8;
            for i in (0..body).step_by(8) {
                let ld = |s: &[f32]| load(&s[i..]);
                let gv = ld(g);
                let mv = ld(m) + va1 * (gv - ld(m));
                let vv = ld(v) + va2 * (gv * gv - ld(v));
                let pv = ld(p) - ld(p) * vdecay;
                let pv = pv - valpha * mv / (vv.sqrt() + veps);
                m[i..i + 8].copy_from_slice(&mv.to_array());
                v[i..i + 8].copy_from_slice(&vv.to_array());
                p[i..i + 8].copy_from_slice(&pv.to_array());
            }
            for i in body..p.len() {
                step_one(a1, a2, alpha, c.eps, decay, &mut p[i], g[i], &mut m[i], &mut v[i]);
            }
        });
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
