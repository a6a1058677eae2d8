//! UpSampling2D layer (nearest, integer factor; no parameters).

use super::Layer;
use crate::{Error, Result, Tensor};
use kernels::upsample2d::{self, UpGeom};

pub struct UpSampling2D {
    name: String,
    geom: UpGeom,
    out_shape: [usize; 3],
}

impl UpSampling2D {
    pub fn new(name: &str, input: &[usize], factor: usize) -> Result<Self> {
        let geom = match *input {
            [h, w, c] if factor > 0 => UpGeom { h, w, c, factor },
            _ => {
                return Err(Error::Shape {
                    layer: name.to_string(),
                    expected: "[h, w, c] and a factor >= 1".to_string(),
                    found: format!("{input:?}, factor {factor}"),
                })
            }
        };
        Ok(UpSampling2D { name: name.to_string(), out_shape: [geom.h * factor, geom.w * factor, geom.c], geom })
    }
}

impl Layer for UpSampling2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "UpSampling2D"
    }
    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }
    fn forward(&mut self, x: &Tensor, y: &mut Tensor) {
        let n = x.batch();
        y.reshape_for(n, &self.out_shape);
        upsample2d::forward(&self.geom, n, x.data(), y.data_mut());
    }
    fn upsampling_factor(&self) -> Option<usize> {
        Some(self.geom.factor)
    }
    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        if let Some(dx) = dx {
            let n = x.batch();
            dx.reshape_for(n, &x.shape()[1..]);
            upsample2d::backward_input(&self.geom, n, dy.data(), dx.data_mut());
        }
    }
}
