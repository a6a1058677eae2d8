//! Activations, applied in place to a layer's output, and their gradients computed from that
//! output (so a layer never keeps its pre-activation values).

use crate::simd;
use rayon::prelude::*;

/// Elements per parallel task: these passes are memory-bound, and one thread alone cannot
/// saturate the memory bus (a 28x28x32 batch of 64 is 13 MB per array).
const CHUNK: usize = 1 << 15;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Linear,
    Relu,
    Sigmoid,
}

/// Logistic function, stable for large |z|: never evaluates exp of a large positive number.
#[inline]
pub fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// y <- act(y), on the rayon pool. Overwrites `y`.
pub fn forward(act: Activation, y: &mut [f32]) {
    if act != Activation::Linear {
        y.par_chunks_mut(CHUNK).for_each(|c| apply(act, c));
    }
}

/// `forward` on the calling thread, for a pass that applies it per image while the image is
/// still in cache (inside its own parallel tasks); elementwise, so the same bits as `forward`.
pub fn apply(act: Activation, y: &mut [f32]) {
    match act {
        Activation::Linear => {}
        Activation::Relu => simd::relu_inplace(y),
        Activation::Sigmoid => y.iter_mut().for_each(|v| *v = sigmoid(*v)),
    }
}

/// dy <- dy * act'(z) in place (dL/dy becomes dL/dz), computed from the activation's output
/// `y = act(z)`: no separate output array, whose writes cost as much as the pass's reads.
/// # Panics
/// If the slices differ in length.
pub fn backward(act: Activation, y: &[f32], dy: &mut [f32]) {
    assert_eq!(y.len(), dy.len(), "activation: lengths");
    if act != Activation::Linear {
        dy.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK)).for_each(|(dy, y)| backward_apply(act, y, dy));
    }
}

/// `backward` on the calling thread (see `apply`): the same bits.
/// # Panics
/// If the slices differ in length.
pub fn backward_apply(act: Activation, y: &[f32], dy: &mut [f32]) {
    assert_eq!(y.len(), dy.len(), "activation: lengths");
    match act {
        Activation::Linear => {}
        Activation::Relu => simd::relu_mask(y, dy),
        Activation::Sigmoid => simd::sigmoid_grad(y, dy),
    }
}

/// The naive twin of `forward`.
pub fn forward_naive(act: Activation, y: &mut [f32]) {
    for v in y.iter_mut() {
        *v = match act {
            Activation::Linear => *v,
            Activation::Relu => {
                if *v > 0.0 {
                    *v
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => 1.0 / (1.0 + (-(*v as f64)).exp()) as f32,
        };
    }
}

/// The naive twin of `backward`.
pub fn backward_naive(act: Activation, y: &[f32], dy: &mut [f32]) {
    for (d, &y) in dy.iter_mut().zip(y) {
        *d = match act {
            Activation::Linear => *d,
            Activation::Relu => {
                if y > 0.0 {
                    *d
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => *d * y * (1.0 - y),
        };
    }
}
