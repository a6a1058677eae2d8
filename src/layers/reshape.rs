//! Flatten and Reshape: a new per-image shape over the same data. `Sequential` moves the buffer
//! from input to output instead of calling `forward`, so neither copies.

use super::Layer;
use crate::{Error, Result, Tensor};

pub struct Reshape {
    name: String,
    kind: &'static str,
    out_shape: Vec<usize>,
}

impl Reshape {
    /// Keras Flatten: `[h, w, c]` -> `[h * w * c]`, row-major (channels_last order).
    pub fn flatten(name: &str, input: &[usize]) -> Self {
        Reshape { name: name.to_string(), kind: "Flatten", out_shape: vec![input.iter().product()] }
    }

    /// Keras Reshape to `target`, which must hold as many elements as `input`.
    pub fn new(name: &str, input: &[usize], target: &[usize]) -> Result<Self> {
        if input.iter().product::<usize>() != target.iter().product::<usize>() {
            return Err(Error::Shape {
                layer: name.to_string(),
                expected: format!("{} elements to reshape to {target:?}", target.iter().product::<usize>()),
                found: format!("{input:?}"),
            });
        }
        Ok(Reshape { name: name.to_string(), kind: "Reshape", out_shape: target.to_vec() })
    }
}

impl Layer for Reshape {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }
    fn is_view(&self) -> bool {
        true
    }
    /// The copying path, for callers outside `Sequential`.
    fn forward(&mut self, x: &Tensor, y: &mut Tensor) {
        y.reshape_for(x.batch(), &self.out_shape);
        y.data_mut().copy_from_slice(x.data());
    }
    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        if let Some(dx) = dx {
            dx.reshape_for(x.batch(), &x.shape()[1..]);
            dx.data_mut().copy_from_slice(dy.data());
        }
    }
}
