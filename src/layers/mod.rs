//! Layers: one file each, forward and backward side by side. A layer is built for a known
//! per-image input shape (so its geometry is computed once), keeps the scratch its kernels need,
//! and writes its parameter gradients in `backward`. Activations are fused into the layer, as in
//! Keras, and differentiated from the layer's output.

mod conv2d;
mod dense;
mod maxpool2d;
mod reshape;
mod upsample2d;

pub use conv2d::Conv2D;
pub use dense::Dense;
pub use kernels::activation::Activation;
pub use kernels::geom::Padding;
pub use maxpool2d::MaxPooling2D;
pub use reshape::Reshape;
pub use upsample2d::UpSampling2D;

use crate::profile::Profile;
use crate::Tensor;
use kernels::conv2d::NextLayer;
use kernels::conv_transpose2d::NextBackward;

/// A trainable array and its gradient, in Keras layout.
#[derive(Clone, Debug)]
pub struct Param {
    /// "kernel" or "bias".
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub value: Vec<f32>,
    pub grad: Vec<f32>,
}

impl Param {
    pub fn zeros(name: &'static str, shape: &[usize]) -> Self {
        let len = shape.iter().product();
        Param { name, shape: shape.to_vec(), value: vec![0.0; len], grad: vec![0.0; len] }
    }
}

/// One layer of a [`Sequential`](crate::sequential::Sequential) model, built for a fixed
/// per-image input shape.
///
/// The contract a new layer keeps: `forward` and `backward` work on a whole batch (the first
/// axis), overwrite their outputs (never accumulate), allocate nothing once the buffers have
/// reached the largest batch, and give bitwise the same results on any number of threads.
/// `backward` is called right after the `forward` of the same batch, with the same `x` and `y`,
/// so a layer may keep what `forward` computed for it. Every layer is checked against Keras's
/// outputs and gradients (`tests/keras_reference.rs`) and by finite differences
/// (`tests/gradcheck.rs`).
pub trait Layer: Send {
    /// The Keras-style instance name, e.g. `conv2d_1`; checkpoint tensors are `<name>.kernel`.
    fn name(&self) -> &str;
    /// The Keras class name, e.g. `Conv2D`.
    fn kind(&self) -> &'static str;
    /// Per-image output shape, e.g. `[28, 28, 32]`.
    fn output_shape(&self) -> &[usize];
    /// y = layer(x) for a batch `x [n, input_shape...]`; resizes and overwrites `y`.
    fn forward(&mut self, x: &Tensor, y: &mut Tensor);
    /// Given x, y = forward(x) and dy = dL/dy, overwrites the parameter gradients and, when
    /// asked, `dx` = dL/dx. `dy` is this step's alone: a layer may overwrite it (a fused
    /// activation turns it into dL/d(pre-activation) in place).
    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>);
    /// `forward`, charging its passes to `profile` (`bench --layers`). Layers made of one
    /// pass keep this default.
    fn forward_timed(&mut self, x: &Tensor, y: &mut Tensor, profile: &mut Profile) {
        self.forward(x, y);
        profile.lap("forward", 0.0);
    }
    /// `backward`, charging its passes to `profile`.
    fn backward_timed(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        dy: &mut Tensor,
        dx: Option<&mut Tensor>,
        profile: &mut Profile,
    ) {
        self.backward(x, y, dy, dx);
        profile.lap("input gradient", 0.0);
    }
    fn params(&self) -> &[Param] {
        &[]
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut []
    }
    /// Runs the layer's multiply-add passes at `precision` from now on (`kernels::bf16`);
    /// layers without such passes keep this default, which ignores it.
    fn set_precision(&mut self, _precision: kernels::bf16::Precision) {}
    /// Multiply-adds of one image's forward pass.
    fn macs(&self) -> usize {
        0
    }
    /// A pure reshape (Flatten, Reshape): the model passes the buffer on without a copy.
    fn is_view(&self) -> bool {
        false
    }
    /// The activation fused into the layer's output (`y = act(z)`), `Linear` if none.
    fn activation(&self) -> Activation {
        Activation::Linear
    }
    /// Asks the layer to multiply its input gradient by the gradient of `act`, the activation
    /// whose output its input is, inside its input-gradient pass (image by image, while dx is
    /// in cache); true if it will. `Sequential::new` then tells the layer before it, whose
    /// `backward` receives dL/dz and skips its own activation-gradient pass
    /// (`receive_pre_activation_gradient`). The default declines.
    fn fuse_input_activation(&mut self, _act: Activation) -> bool {
        false
    }
    /// From now on the `dy` of `backward` is already the gradient of the pre-activation (the
    /// next layer applied this layer's activation gradient). Only called on a layer whose
    /// next layer accepted `fuse_input_activation`.
    fn receive_pre_activation_gradient(&mut self) {
        unreachable!("{} has no activation gradient to hand over", self.name())
    }
    /// Whether `forward_with_next` runs: the layer can run the next layer's forward pass on
    /// each of its output images while the image is in cache (`next_forward`).
    fn runs_next_forward(&self) -> bool {
        false
    }
    /// `forward_timed`, running `next` (the next layer's `next_forward`) on each output image
    /// as soon as it is finished; the time of both is charged to this layer's forward.
    fn forward_with_next(&mut self, _x: &Tensor, _y: &mut Tensor, _next: &NextLayer, _profile: &mut Profile) {
        unreachable!("{} does not run the next layer's forward pass", self.name())
    }
    /// This layer's forward pass for the layer before to run (`forward_with_next`) over `n`
    /// images into `y` (resized here), where it is a one-output-channel 3 x 3 stride-1
    /// convolution or a max pooling (`kernels::conv2d::NextLayer`); `Sequential` then skips
    /// this layer's own forward pass. The default declines.
    fn next_forward<'a>(&'a mut self, _n: usize, _y: &'a mut Tensor) -> Option<NextLayer<'a>> {
        None
    }
    /// Whether `backward_with_next` runs: the layer can run the next layer's backward pass on
    /// each image, just before it needs that image of its output gradient (`next_backward`).
    fn runs_next_backward(&self) -> bool {
        false
    }
    /// `backward_timed` with an input gradient, its output gradient computed image by image
    /// by `next` (the next layer's `next_backward`), which this pass finishes; the time of both
    /// is charged to this layer's weight gradient.
    fn backward_with_next(&mut self, _x: &Tensor, _dx: &mut Tensor, _next: NextBackward, _profile: &mut Profile) {
        unreachable!("{} does not run the next layer's backward pass", self.name())
    }
    /// This layer's backward pass over its input `x` and output gradient `dy` for the layer
    /// before to run (`backward_with_next`), where both are transposed convolutions that fuse
    /// (`kernels::conv_transpose2d::NextBackward`); its activation gradient is applied to `dy`
    /// first. `Sequential` then skips this layer's own backward pass. The default declines.
    fn next_backward<'a>(
        &'a mut self,
        _x: &'a Tensor,
        _y: &Tensor,
        _dy: &'a mut Tensor,
        _profile: &mut Profile,
    ) -> Option<NextBackward<'a>> {
        None
    }
    /// The factor of a nearest upsampling, if this layer is one (UpSampling2D).
    fn upsampling_factor(&self) -> Option<usize> {
        None
    }
    /// Asks the layer to take inputs before the upsampling (by `factor`) that precedes it and
    /// do that upsampling's work itself; true if it will. `Sequential` then passes the small
    /// image on as it is, forward and backward. The default declines.
    fn fuse_input_upsampling(&mut self, _factor: usize) -> bool {
        false
    }
}

/// Glorot-uniform initialisation as Keras does it: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).
pub fn glorot_uniform(value: &mut [f32], fan_in: usize, fan_out: usize, rng: &mut impl rand::Rng) {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
    for v in value {
        *v = rng.random_range(-limit..limit);
    }
}
