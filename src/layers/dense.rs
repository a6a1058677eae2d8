//! Dense layer over the flattened per-image input: kernel `[in, units]`, bias `[units]`,
//! fused activation.

use super::{Activation, Layer, Param};
use crate::profile::Profile;
use crate::{Error, Result, Tensor};
use kernels::bf16::Precision;
use kernels::{activation, dense};

pub struct Dense {
    name: String,
    c_in: usize,
    act: Activation,
    out_shape: [usize; 1],
    params: [Param; 2],
    scratch: Vec<f32>,
    precision: Precision,
}

impl Dense {
    /// A Dense layer for a flat per-image input `[in]`.
    pub fn new(name: &str, input: &[usize], units: usize, act: Activation) -> Result<Self> {
        let c_in = match *input {
            [c] if c > 0 && units > 0 => c,
            _ => {
                return Err(Error::Shape {
                    layer: name.to_string(),
                    expected: "a flat input [features] (add a Flatten first)".to_string(),
                    found: format!("{input:?}"),
                })
            }
        };
        Ok(Dense {
            name: name.to_string(),
            c_in,
            act,
            out_shape: [units],
            params: [Param::zeros("kernel", &[c_in, units]), Param::zeros("bias", &[units])],
            scratch: Vec::new(),
            precision: Precision::F32,
        })
    }
}

impl Layer for Dense {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "Dense"
    }
    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }
    fn forward(&mut self, x: &Tensor, y: &mut Tensor) {
        self.forward_timed(x, y, &mut Profile::off());
    }
    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        self.backward_timed(x, y, dy, dx, &mut Profile::off());
    }
    fn forward_timed(&mut self, x: &Tensor, y: &mut Tensor, profile: &mut Profile) {
        let (n, units) = (x.batch(), self.out_shape[0]);
        y.reshape_for(n, &self.out_shape);
        let [w, b] = &self.params;
        self.scratch.resize(dense::scratch_len(n, self.c_in, units, self.precision), 0.0);
        let (scratch, precision) = (&mut self.scratch, self.precision);
        dense::forward(n, self.c_in, units, x.data(), &w.value, &b.value, y.data_mut(), scratch, precision);
        profile.lap("forward", 2.0 * (n * self.c_in * units) as f64);
        activation::forward(self.act, y.data_mut());
        profile.lap("activation", 0.0);
    }
    fn backward_timed(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        dy: &mut Tensor,
        dx: Option<&mut Tensor>,
        profile: &mut Profile,
    ) {
        let (n, units) = (x.batch(), self.out_shape[0]);
        let flops = 2.0 * (n * self.c_in * units) as f64;
        activation::backward(self.act, y.data(), dy.data_mut());
        let dz = dy.data();
        profile.lap("activation gradient", 0.0);
        let [w, b] = &mut self.params;
        self.scratch.resize(dense::scratch_len(n, self.c_in, units, self.precision), 0.0);
        let (scratch, precision) = (&mut self.scratch, self.precision);
        dense::backward_weight(n, self.c_in, units, x.data(), dz, &mut w.grad, &mut b.grad, scratch, precision);
        profile.lap("weight gradient", flops);
        if let Some(dx) = dx {
            dx.reshape_for(n, &x.shape()[1..]);
            dense::backward_input(n, self.c_in, units, dz, &w.value, dx.data_mut(), scratch, precision);
            profile.lap("input gradient", flops);
        }
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
    fn macs(&self) -> usize {
        self.c_in * self.out_shape[0]
    }
    fn activation(&self) -> Activation {
        self.act
    }
    fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }
}
