//! Activations, applied in place to a layer's output, and their gradients computed from that
//! output (so a layer never keeps its pre-activation values).

use crate::simd;

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

/// y <- act(y). Overwrites `y`.
pub fn forward(act: Activation, y: &mut [f32]) {
    match act {
        Activation::Linear => {}
        Activation::Relu => simd::relu_inplace(y),
        Activation::Sigmoid => y.iter_mut().for_each(|v| *v = sigmoid(*v)),
    }
}

/// dz <- dy * act'(z), computed from the activation's output `y = act(z)`. Overwrites `dz`.
/// # Panics
/// If the slices differ in length.
pub fn backward(act: Activation, y: &[f32], dy: &[f32], dz: &mut [f32]) {
    match act {
        Activation::Linear => dz.copy_from_slice(dy),
        Activation::Relu => simd::relu_mask(y, dy, dz),
        Activation::Sigmoid => simd::sigmoid_grad(y, dy, dz),
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
pub fn backward_naive(act: Activation, y: &[f32], dy: &[f32], dz: &mut [f32]) {
    for i in 0..dz.len() {
        dz[i] = match act {
            Activation::Linear => dy[i],
            Activation::Relu => {
                if y[i] > 0.0 {
                    dy[i]
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => dy[i] * y[i] * (1.0 - y[i]),
        };
    }
}
