//! Conv2D and Conv2DTranspose layers: one struct, since a transposed convolution is the
//! adjoint of a convolution with the same kernel array and geometry (see
//! `kernels::conv_transpose2d`). Keras kernels: Conv2D `[k, k, c_in, c_out]`,
//! Conv2DTranspose `[k, k, c_out, c_in]`; bias `[c_out]`; fused activation. A 3 x 3 Conv2D
//! after a 2x UpSampling2D may take over the upsampling (`Layer::fuse_input_upsampling`).

use super::{Activation, Layer, Padding, Param};
use crate::profile::Profile;
use crate::{Error, Result, Tensor};
use kernels::bf16::Precision;
use kernels::conv2d::NextLayer;
use kernels::conv_transpose2d::NextBackward;
use kernels::{activation, conv2d, conv_transpose2d, geom::ConvGeom, upsample_conv};

/// A Conv2D whose input is the small image the 2x upsampling before it left as it was: the
/// layer runs as a 4 x 4 stride-2 transposed convolution with its kernel folded
/// (`kernels::upsample_conv`), 4 multiply-adds per output where the upsampled convolution
/// takes 9.
struct Upsampled {
    /// The transposed convolution's geometry (`upsample_conv::geom`).
    geom: ConvGeom,
    /// The folded kernel of this step's weights, refolded by every forward pass.
    kernel: Vec<f32>,
    /// The folded kernel's gradient, unfolded into the layer's.
    grad: Vec<f32>,
}

pub struct Conv2D {
    name: String,
    transpose: bool,
    /// For a transpose, the Conv2D that reads this layer's output and writes its input.
    geom: ConvGeom,
    act: Activation,
    out_shape: [usize; 3],
    params: [Param; 2],
    scratch: Vec<f32>,
    precision: Precision,
    /// The activation whose output this layer's input is, when its gradient is applied inside
    /// the input-gradient pass (`Layer::fuse_input_activation`); else `Linear`.
    input_act: Activation,
    /// Whether `backward`'s dy arrives as dL/dz already (the next layer applied `act`'s gradient).
    dy_is_pre_activation: bool,
    /// Set when the layer took over the upsampling before it.
    upsampled: Option<Upsampled>,
    /// The flipped kernel a stride-1 transpose's `next_forward` hands over.
    flipped: Vec<f32>,
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
        Self::build(name, input, filters, k, stride, padding, act, false)
    }

    /// A Conv2DTranspose for per-image input `[h, w, c_in]`.
    pub fn transpose(
        name: &str,
        input: &[usize],
        filters: usize,
        k: usize,
        stride: usize,
        padding: Padding,
        act: Activation,
    ) -> Result<Self> {
        Self::build(name, input, filters, k, stride, padding, act, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        name: &str,
        input: &[usize],
        filters: usize,
        k: usize,
        stride: usize,
        padding: Padding,
        act: Activation,
        transpose: bool,
    ) -> Result<Self> {
        let geom = match (input, transpose) {
            (&[h, w, c], false) => ConvGeom::new(h, w, c, filters, k, stride, padding),
            (&[h, w, c], true) => ConvGeom::transpose(h, w, c, filters, k, stride, padding),
            _ => None,
        }
        .ok_or_else(|| Error::Shape {
            layer: name.to_string(),
            expected: format!("[h, w, c] with nonzero sizes (h, w >= {k} for a {k}x{k} {padding:?} kernel)"),
            found: format!("{input:?}"),
        })?;
        let (out_shape, kernel) = if transpose {
            ([geom.h_in, geom.w_in, filters], [k, k, filters, geom.c_out])
        } else {
            ([geom.h_out, geom.w_out, filters], [k, k, geom.c_in, filters])
        };
        Ok(Conv2D {
            name: name.to_string(),
            transpose,
            geom,
            act,
            out_shape,
            params: [Param::zeros("kernel", &kernel), Param::zeros("bias", &[filters])],
            scratch: Vec::new(),
            precision: Precision::F32,
            input_act: Activation::Linear,
            dy_is_pre_activation: false,
            upsampled: None,
            flipped: Vec::new(),
        })
    }

    /// The geometry the kernels run: the layer's own, or the transposed convolution it runs
    /// as where it took over the upsampling before it.
    fn kernel_geom(&self) -> ConvGeom {
        self.upsampled.as_ref().map_or(self.geom, |u| u.geom)
    }

    /// Whether the layer's backward pass can run inside the transposed layer before it, or
    /// run the next one's inside its own (`conv_transpose2d::NextBackward`): a transpose whose
    /// two gradients fuse.
    fn chains_backward(&self) -> bool {
        self.transpose && self.upsampled.is_none() && conv_transpose2d::backward_fuses(&self.geom, self.precision)
    }

    /// dy times the gradient of the layer's activation at its outputs `y`, in place, unless
    /// the next layer already applied it (`dy_is_pre_activation`).
    fn activation_gradient(&self, y: &Tensor, dy: &mut Tensor, profile: &mut Profile) {
        if !self.dy_is_pre_activation {
            activation::backward(self.act, y.data(), dy.data_mut());
            profile.lap("activation gradient", 0.0);
        }
    }

    /// Where the layer took over the upsampling before it: its kernel's gradient from the
    /// folded kernel's (`upsample_conv::unfold_gradient`).
    fn unfold_gradient(&mut self) {
        if let Some(u) = &self.upsampled {
            upsample_conv::unfold_gradient(self.geom.c_in, self.geom.c_out, &u.grad, &mut self.params[0].grad);
        }
    }

    /// The forward pass, with `next` (the next layer's) on each output image where given.
    fn forward_then(&mut self, x: &Tensor, y: &mut Tensor, next: Option<&NextLayer>, profile: &mut Profile) {
        let n = x.batch();
        let macs = self.geom.macs() + next.map_or(0, |next| next.macs());
        y.reshape_for(n, &self.out_shape);
        let g = &self.kernel_geom();
        self.scratch.resize(conv2d::scratch_len(g, n), 0.0);
        let [w, b] = &self.params;
        // The activation runs on each output image as the kernel finishes it (`forward_act`).
        let (x, act, y, scratch, p) = (x.data(), self.act, y.data_mut(), &mut self.scratch, self.precision);
        if let Some(u) = &mut self.upsampled {
            upsample_conv::fold_kernel(self.geom.c_in, self.geom.c_out, &w.value, &mut u.kernel);
            conv_transpose2d::forward_act_next(g, n, x, &u.kernel, &b.value, act, y, scratch, p, next);
        } else if self.transpose {
            conv_transpose2d::forward_act_next(g, n, x, &w.value, &b.value, act, y, scratch, p, next);
        } else {
            conv2d::forward_act_next(g, n, x, &w.value, Some(&b.value), act, y, scratch, p, next);
        }
        profile.lap("forward", 2.0 * (n * macs) as f64);
    }
}

impl Layer for Conv2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        if self.transpose {
            "Conv2DTranspose"
        } else {
            "Conv2D"
        }
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
        self.forward_then(x, y, None, profile);
    }
    fn runs_next_forward(&self) -> bool {
        true
    }
    fn forward_with_next(&mut self, x: &Tensor, y: &mut Tensor, next: &NextLayer, profile: &mut Profile) {
        self.forward_then(x, y, Some(next), profile);
    }
    fn next_forward<'a>(&'a mut self, n: usize, y: &'a mut Tensor) -> Option<NextLayer<'a>> {
        if self.upsampled.is_some() {
            return None;
        }
        y.reshape_for(n, &self.out_shape);
        let (g, [w, b], act) = (&self.geom, &self.params, self.act);
        if self.transpose {
            NextLayer::transpose(g, n, &w.value, &b.value, act, y.data_mut(), &mut self.flipped)
        } else {
            NextLayer::conv(g, n, &w.value, &b.value, act, y.data_mut())
        }
    }
    fn backward_timed(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        dy: &mut Tensor,
        mut dx: Option<&mut Tensor>,
        profile: &mut Profile,
    ) {
        let n = x.batch();
        let flops = 2.0 * (n * self.geom.macs()) as f64;
        self.activation_gradient(y, dy, profile);
        let dz = dy.data();
        let g = &self.kernel_geom();
        self.scratch.resize(conv2d::scratch_len(g, n), 0.0);
        let (scratch, p, act) = (&mut self.scratch, self.precision, self.input_act);
        // A transpose, or a Conv2D that runs as one after taking over the upsampling (its
        // folded kernel, whose gradient is unfolded into the layer's at the end).
        let transposed = self.transpose || self.upsampled.is_some();
        let [w, b] = &mut self.params;
        let (kernel, grad) = match &mut self.upsampled {
            Some(u) => (&u.kernel[..], &mut u.grad[..]),
            None => (&w.value[..], &mut w.grad[..]),
        };
        if let Some(dx) = dx.as_mut() {
            dx.reshape_for(n, &x.shape()[1..]);
        }
        if transposed && dx.is_some() && conv_transpose2d::backward_fuses(g, p) {
            let dx = dx.map(|dx| (dx.data_mut(), act));
            conv_transpose2d::backward(g, n, x.data(), dz, kernel, (grad, &mut b.grad), dx, scratch, p);
            // One pass for both gradients: its time and both products under the weight
            // gradient, the input gradient's row at 0 ms.
            self.unfold_gradient();
            profile.lap("weight gradient", 2.0 * flops);
            profile.lap("input gradient", 0.0);
            return;
        }
        if transposed {
            conv_transpose2d::backward_weight(g, n, x.data(), dz, grad, &mut b.grad, scratch, p);
        } else {
            conv2d::backward_weight(g, n, x.data(), dz, grad, Some(&mut b.grad), scratch, p);
        }
        profile.lap("weight gradient", flops);
        if let Some(dx) = dx {
            let dx = dx.data_mut();
            if transposed {
                conv_transpose2d::backward_input_act(g, n, dz, kernel, dx, scratch, p, act, x.data());
            } else {
                conv2d::backward_input_act(g, n, dz, kernel, dx, scratch, p, act, x.data());
            }
            profile.lap("input gradient", flops);
        }
        self.unfold_gradient();
    }
    fn runs_next_backward(&self) -> bool {
        // Its own output gradient arrives pre-activation (the next layer applies this layer's
        // activation gradient), as the next layer's pass leaves it.
        let pre_activation = self.dy_is_pre_activation || self.act == Activation::Linear;
        self.chains_backward() && pre_activation
    }
    fn backward_with_next(&mut self, x: &Tensor, dx: &mut Tensor, next: NextBackward, profile: &mut Profile) {
        assert!(self.runs_next_backward(), "{} cannot run the next layer's backward pass", self.name);
        let n = x.batch();
        let flops = 2.0 * (n * (self.geom.macs() + next.macs())) as f64;
        let g = &self.geom;
        self.scratch.resize(conv2d::scratch_len(g, n), 0.0);
        dx.reshape_for(n, &x.shape()[1..]);
        let [w, b] = &mut self.params;
        let (dx, act) = (dx.data_mut(), self.input_act);
        conv_transpose2d::backward_with_next(
            g,
            n,
            x.data(),
            &w.value,
            (&mut w.grad, &mut b.grad),
            (dx, act),
            &mut self.scratch,
            next,
        );
        // Both layers' passes, all four products: the weight gradient's row; the input
        // gradient's at 0 ms.
        profile.lap("weight gradient", 2.0 * flops);
        profile.lap("input gradient", 0.0);
    }
    fn next_backward<'a>(
        &'a mut self,
        x: &'a Tensor,
        y: &Tensor,
        dy: &'a mut Tensor,
        profile: &mut Profile,
    ) -> Option<NextBackward<'a>> {
        if !self.chains_backward() {
            return None;
        }
        let n = x.batch();
        self.activation_gradient(y, dy, profile);
        let g = &self.geom;
        self.scratch.resize(conv_transpose2d::next_scratch_len(g, n), 0.0);
        let [w, b] = &mut self.params;
        let grads = (&mut w.grad[..], &mut b.grad[..]);
        let (dy, act, p) = (dy.data(), self.input_act, self.precision);
        NextBackward::new(g, n, x.data(), dy, &w.value, grads, act, &mut self.scratch, p)
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
    fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }
    fn activation(&self) -> Activation {
        self.act
    }
    fn fuse_input_activation(&mut self, act: Activation) -> bool {
        self.input_act = act;
        true
    }
    fn receive_pre_activation_gradient(&mut self) {
        self.dy_is_pre_activation = true;
    }
    fn fuse_input_upsampling(&mut self, factor: usize) -> bool {
        let g = self.geom;
        let same_3x3 = g.k == 3 && g.stride == 1 && g.pad_top == 1 && g.pad_left == 1 && g.h_out == g.h_in;
        let small =
            (factor == 2 && !self.transpose && same_3x3 && g.h_in.is_multiple_of(2) && g.w_in.is_multiple_of(2))
                .then(|| upsample_conv::geom(g.h_in / 2, g.w_in / 2, g.c_in, g.c_out))
                .flatten();
        if let Some(geom) = small {
            let len = upsample_conv::folded_len(g.c_in, g.c_out);
            self.upsampled = Some(Upsampled { geom, kernel: vec![0.0; len], grad: vec![0.0; len] });
        }
        self.upsampled.is_some()
    }
}
