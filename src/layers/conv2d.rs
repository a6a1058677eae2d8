//! Conv2D layer: Keras kernel `[k, k, c_in, c_out]`, bias `[c_out]`, fused activation.

use super::{Activation, Layer, Padding, Param};
use crate::{Error, Result, Tensor};
use kernels::{activation, conv2d, geom::ConvGeom};

pub struct Conv2D {
    name: String,
    geom: ConvGeom,
    act: Activation,
    out_shape: [usize; 3],
    params: [Param; 2],
    scratch: Vec<f32>,
    dz: Vec<f32>, // [n, h_out, w_out, c_out]: dL/d(pre-activation)
}

impl Conv2D {
    /// A Conv2D for per-image input `[h, w, c_in]`.
    pub fn new(
        name: &str,
        input: &[usize],
        filters: usize,
        k: usize,
        stride: usize,
        padding: Padding,
        act: Activation,
    ) -> Result<Self> {
        let geom = match *input {
            [h, w, c] => ConvGeom::new(h, w, c, filters, k, stride, padding),
            _ => None,
        }
        .ok_or_else(|| Error::Shape {
            layer: name.to_string(),
            expected: format!("[h, w, c] with h, w >= {k} for a {k}x{k} {padding:?} kernel"),
            found: format!("{input:?}"),
        })?;
        Ok(Conv2D {
            name: name.to_string(),
            out_shape: [geom.h_out, geom.w_out, filters],
            params: [
                Param::zeros("kernel", &[k, k, geom.c_in, filters]),
                Param::zeros("bias", &[filters]),
            ],
            geom,
            act,
            scratch: Vec::new(),
            dz: Vec::new(),
        })
    }

    pub fn geom(&self) -> &ConvGeom {
        &self.geom
    }
}

impl Layer for Conv2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "Conv2D"
    }
    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }
    fn forward(&mut self, x: &Tensor, y: &mut Tensor) {
        let n = x.batch();
        y.reshape_for(n, &self.out_shape);
        self.scratch.resize(conv2d::scratch_len(&self.geom, n), 0.0);
        let [w, b] = &self.params;
        conv2d::forward(
            &self.geom,
            n,
            x.data(),
            &w.value,
            Some(&b.value),
            y.data_mut(),
            &mut self.scratch,
        );
        activation::forward(self.act, y.data_mut());
    }
    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let n = x.batch();
        self.dz.resize(dy.data().len(), 0.0);
        activation::backward(self.act, y.data(), dy.data(), &mut self.dz);
        self.scratch.resize(conv2d::scratch_len(&self.geom, n), 0.0);
        let [w, b] = &mut self.params;
        conv2d::backward_weight(
            &self.geom,
            n,
            x.data(),
            &self.dz,
            &mut w.grad,
            Some(&mut b.grad),
            &mut self.scratch,
        );
        if let Some(dx) = dx {
            dx.reshape_for(n, &x.shape()[1..]);
            conv2d::backward_input(&self.geom, n, &self.dz, &w.value, dx.data_mut(), &mut self.scratch);
        }
    }
    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
    fn macs(&self) -> usize {
        self.geom.macs()
    }
}
