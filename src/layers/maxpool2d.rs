//! MaxPooling2D layer (no parameters). Keeps the argmax of each window for backward.

use super::{Activation, Layer, Padding};
use crate::{Error, Result, Tensor};
use kernels::conv2d::NextLayer;
use kernels::{geom::PoolGeom, maxpool2d};

pub struct MaxPooling2D {
    name: String,
    geom: PoolGeom,
    out_shape: [usize; 3],
    argmax: Vec<u32>, // [n, h_out, w_out, c]: winner's index within its image
    /// The activation of the layer before, when its gradient is applied in `backward`
    /// (`Layer::fuse_input_activation`); else `Linear`.
    input_act: Activation,
}

impl MaxPooling2D {
    /// Pooling `pool x pool` windows with the given stride, for per-image input `[h, w, c]`.
    pub fn new(name: &str, input: &[usize], pool: usize, stride: usize, padding: Padding) -> Result<Self> {
        let geom = match *input {
            [h, w, c] => PoolGeom::new(h, w, c, pool, stride, padding),
            _ => None,
        }
        .ok_or_else(|| Error::Shape {
            layer: name.to_string(),
            expected: format!("[h, w, c] with h, w >= {pool}"),
            found: format!("{input:?}"),
        })?;
        Ok(MaxPooling2D {
            name: name.to_string(),
            out_shape: [geom.h_out, geom.w_out, geom.c],
            geom,
            argmax: Vec::new(),
            input_act: Activation::Linear,
        })
    }
}

impl Layer for MaxPooling2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "MaxPooling2D"
    }
    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }
    fn forward(&mut self, x: &Tensor, y: &mut Tensor) {
        let n = x.batch();
        y.reshape_for(n, &self.out_shape);
        self.argmax.resize(y.data().len(), 0);
        maxpool2d::forward(&self.geom, n, x.data(), y.data_mut(), &mut self.argmax);
    }
    /// Run on each output image of the layer before while it is in cache.
    fn next_forward<'a>(&'a mut self, n: usize, y: &'a mut Tensor) -> Option<NextLayer<'a>> {
        y.reshape_for(n, &self.out_shape);
        self.argmax.resize(y.data().len(), 0);
        Some(NextLayer::pool(&self.geom, n, y.data_mut(), &mut self.argmax))
    }
    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        if let Some(dx) = dx {
            let n = x.batch();
            dx.reshape_for(n, &x.shape()[1..]);
            let (g, dy, dx) = (&self.geom, dy.data(), dx.data_mut());
            match self.input_act {
                Activation::Linear => maxpool2d::backward_input(g, n, dy, &self.argmax, dx),
                act => maxpool2d::backward_input_act(g, n, dy, &self.argmax, dx, act, y.data()),
            }
        }
    }
    /// Only where the windows do not overlap: then the pooled output holds every winner's
    /// value (`maxpool2d::backward_input_act`).
    fn fuse_input_activation(&mut self, act: Activation) -> bool {
        let disjoint = self.geom.stride >= self.geom.pool;
        if disjoint {
            self.input_act = act;
        }
        disjoint
    }
}
