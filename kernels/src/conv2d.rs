//! Conv2D over NHWC batches, Keras semantics (cross-correlation, TF 'same' padding).
//!
//! Every pass runs per image on a zero-padded copy, through the register-tiled kernels of
//! `conv_direct` wherever the channel counts allow (all layers of both models):
//! * forward: in f32, Winograd's F(2x2, 3x3) for 3 x 3 stride-1 convolutions with channels in
//!   sixteens (`winograd`), minimal filtering for 3 x 3 stride-2 ones with whole 2 x 2 tiles
//!   (Conv2DTranspose's input gradient: `winograd_transpose::strided`); else the direct
//!   kernel (a narrow variant when `c_out % 8 != 0`, and for one output channel of a 3 x 3
//!   stride-1 kernel one that reads the image in place);
//! * input gradient: for stride 1, the same as the forward with the flipped kernel; for larger
//!   strides and `c_in % 8 == 0`, one direct correlation of dy per output phase, or in f32,
//!   for 3 x 3 stride 2 with whole 2 x 2 tiles and channels in sixteens (Conv2DTranspose's
//!   forward), minimal filtering over the phases (`winograd_transpose`);
//! * weight gradient: in f32, Winograd's where its forward applies and an image has 100 tiles
//!   or more, or the stride-2 minimal filtering where that forward applies; else a tiled
//!   kernel per kernel row (`c_out % 8 == 0`, or a single output channel).
//!
//! Other channel counts fall back to GEMMs: nine per image over shifted views of the padded
//! image (stride 1), or per-image im2col (one image's patch matrix stays in L2, unlike a whole
//! batch's 58 MB for a 28x28x32 layer).
//!
//! Buffers: `x [n, h_in, w_in, c_in]`, `w [k, k, c_in, c_out]`, `b [c_out]`,
//! `y [n, h_out, w_out, c_out]`; `scratch` holds `scratch_len(g, n)` floats.

use crate::activation::{self, Activation};
use crate::bf16::{self, Precision};
use crate::gemm::{gemm, Mat};
use crate::geom::{size, ConvGeom, PoolGeom};
use crate::micro::Finish;
use crate::winograd_transpose::StridedInput;
use crate::{amx, conv_direct, conv_task_images, maxpool2d, simd, winograd, winograd_transpose};
use rayon::iter::Either;
use rayon::prelude::*;

fn tasks(n: usize) -> usize {
    n.div_ceil(conv_task_images(n))
}

/// Columns of the padded-width grid the stride-1 weight gradient runs over.
fn grid_w(g: &ConvGeom) -> usize {
    conv_direct::padded_dims(g).1
}

/// How `backward_weight` computes one image's contribution.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WeightPath {
    Direct,
    Shifted,
    Im2col,
}

fn weight_path(g: &ConvGeom) -> WeightPath {
    if g.c_out.is_multiple_of(8) || g.c_out == 1 {
        WeightPath::Direct
    } else if g.stride == 1 {
        WeightPath::Shifted
    } else {
        WeightPath::Im2col
    }
}

/// Per task: a work area as large as the largest pass needs (the paths above), then a partial
/// dW and a partial db; in all a multiple of 16 floats, so that every task's area starts on a
/// cache line when the scratch does (`crate::alloc`).
fn task_scratch(g: &ConvGeom) -> usize {
    // Either padded copy: the direct kernel's, or the strided pass's (larger past an odd side).
    let padded = conv_direct::padded_len(g).max(winograd_transpose::strided_padded_len(g));
    let forward =
        (padded + winograd_transpose::strided_work_len(g)).max(winograd::padded_len(g) + winograd::work_len(g));
    let input = if g.stride == 1 {
        let gb = conv_direct::backward_input_geom(g);
        conv_direct::padded_len(&gb).max(winograd::padded_len(&gb) + winograd::work_len(&gb))
    } else if g.c_in.is_multiple_of(8) {
        let (hpd, wpd) = conv_direct::strided_dy_dims(g);
        size(&[hpd, wpd, g.c_out]).max(winograd_transpose::padded_len(g) + winograd_transpose::work_len(g))
    } else {
        g.cols_len()
    };
    let weight = match weight_path(g) {
        // The padded image (or its bf16 copy), then VDPBF16PS's work area or emulated dy; or
        // Winograd's sums and work area; or AMX's (which reads the images unpadded).
        WeightPath::Direct => {
            let winograd = if winograd::weight_grad_applies(g) {
                winograd::padded_len(g) + winograd::weights_len(g) + winograd::weight_work_len(g)
            } else {
                0
            };
            // The strided pass's: its sums, then its work area or the input gradient's (the
            // transposed layers' backward runs both, `transposed_backward`).
            // (On an odd side, the direct weight gradient's padded image in the work area.)
            let strided = winograd_transpose::strided_weight_sums_len(g)
                + (winograd_transpose::strided_weight_work_len(g).max(winograd_transpose::strided_work_len(g)))
                    .max(conv_direct::padded_len(g));
            let bf16_work = conv_direct::bf16_weight_work_len(g).max(g.y_len()).max(strided);
            (padded + bf16_work).max(winograd).max(amx::weight_work_len(g))
        }
        WeightPath::Shifted => conv_direct::padded_len(g) + g.h_out * grid_w(g) * g.c_out,
        WeightPath::Im2col => g.cols_len(),
    };
    (forward.max(input).max(weight) + g.w_len() + bias_len(g)).next_multiple_of(16)
}

/// Floats of a task's partial bias gradient: a convolution's (`c_out`) or a transposed one's
/// (`c_in`, `BiasOf::X`).
fn bias_len(g: &ConvGeom) -> usize {
    g.c_in.max(g.c_out)
}

/// Floats shared by all tasks: a rearranged copy of the kernel (the flipped one of a stride-1
/// input gradient), then the work area of `direct` (another copy, or Winograd's transform).
fn shared_len(g: &ConvGeom) -> usize {
    g.w_len() + g.w_len().max(winograd::weights_len(g))
}

/// Scratch floats any pass over `n` images needs: `shared_len`, then one area per task.
pub fn scratch_len(g: &ConvGeom, n: usize) -> usize {
    shared_len(g) + tasks(n) * task_scratch(g)
}

fn check(g: &ConvGeom, n: usize, x: usize, w: usize, y: usize, scratch: usize) {
    assert_eq!(x, size(&[n, g.x_len()]), "conv2d: x length");
    assert_eq!(w, g.w_len(), "conv2d: w length");
    assert_eq!(y, size(&[n, g.y_len()]), "conv2d: y length");
    assert!(scratch >= scratch_len(g, n), "conv2d: scratch too short");
}

/// cols[(oh*w_out + ow), (kh*k + kw)*c_in + ci] = xpad[oh*s + kh, ow*s + kw, ci] for one
/// image. Overwrites `cols` (`[h_out * w_out, k * k * c_in]`).
pub(crate) fn im2col(g: &ConvGeom, x: &[f32], cols: &mut [f32]) {
    let (ci, pl) = (g.c_in, g.patch_len());
    for oh in 0..g.h_out {
        for ow in 0..g.w_out {
            let row = &mut cols[(oh * g.w_out + ow) * pl..][..pl];
            for kh in 0..g.k {
                for kw in 0..g.k {
                    let dst = &mut row[(kh * g.k + kw) * ci..][..ci];
                    match (g.in_row(oh, kh), g.in_col(ow, kw)) {
                        (Some(r), Some(c)) => dst.copy_from_slice(&x[(r * g.w_in + c) * ci..][..ci]),
                        _ => dst.fill(0.0),
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col`: dx[r, c, ci] = sum of the patch entries that read it, dropping
/// padding. Overwrites `dx` (`[h_in, w_in, c_in]`).
pub(crate) fn col2im(g: &ConvGeom, cols: &[f32], dx: &mut [f32]) {
    let (ci, pl) = (g.c_in, g.patch_len());
    dx.fill(0.0);
    for oh in 0..g.h_out {
        for ow in 0..g.w_out {
            let row = &cols[(oh * g.w_out + ow) * pl..][..pl];
            for kh in 0..g.k {
                let Some(r) = g.in_row(oh, kh) else { continue };
                for kw in 0..g.k {
                    let Some(c) = g.in_col(ow, kw) else { continue };
                    simd::add_assign(&row[(kh * g.k + kw) * ci..][..ci], &mut dx[(r * g.w_in + c) * ci..][..ci]);
                }
            }
        }
    }
}

/// `y[n,oh,ow,co] = b[co] + sum_{kh,kw,ci} xpad[n, oh*s+kh, ow*s+kw, ci] * w[kh,kw,ci,co]`
/// (no bias term when `b` is `None`), the products at `precision` (bf16: see `bf16_route`).
/// Overwrites `y`.
/// # Panics
/// If a slice length disagrees with `g` and `n`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
) {
    forward_act(g, n, x, w, b, Activation::Linear, y, scratch, precision);
}

/// `forward`, then `act` on each output image while it is still in cache: the same bits as
/// `forward` followed by `activation::forward`, without a pass over the whole batch.
/// # Panics
/// As `forward`.
#[allow(clippy::too_many_arguments)]
pub fn forward_act(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
) {
    forward_act_next(g, n, x, w, b, act, y, scratch, precision, None);
}

/// `forward_act`, then, where given, the next layer's forward pass on each output image while
/// it is in cache (`NextLayer`, for the same `n`).
/// # Panics
/// As `forward`, or if `next` was made for another batch size.
#[allow(clippy::too_many_arguments)]
pub fn forward_act_next(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
    next: Option<&NextLayer>,
) {
    next.inspect(|next| next.check_batch(n));
    forward_then(g, n, x, w, b, y, scratch, precision, Epilogue { act, next, ..Epilogue::NONE });
}

/// `forward`, then `post` on each output image (Conv2DTranspose's input gradient).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_then(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
    post: Epilogue,
) {
    check(g, n, x.len(), w.len(), y.len(), scratch.len());
    if let Some(b) = b {
        assert_eq!(b.len(), g.c_out, "conv2d: b length");
    }
    let (shared, rest) = scratch.split_at_mut(shared_len(g));
    direct(g, g, n, (y, g.y_len()), (x, g.x_len()), (w, &mut shared[g.w_len()..]), b, post, rest, precision);
}

/// What a pass does to each output image right after computing it, while the image is in
/// cache: add a bias (Conv2DTranspose's, whose kernel pass has none), then an activation; or,
/// for an input gradient, multiply by the gradient of the activation whose outputs `grad_of`
/// holds (the layer's input batch: the layer before it then skips that pass).
#[derive(Clone, Copy)]
pub(crate) struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub act: Activation,
    pub grad_of: Option<(Activation, &'a [f32])>,
    /// The next layer's forward pass, on the finished image (`NextLayer`).
    pub next: Option<&'a NextLayer<'a>>,
}

impl<'a> Epilogue<'a> {
    pub const NONE: Epilogue<'static> = Epilogue { bias: None, act: Activation::Linear, grad_of: None, next: None };

    /// What a kernel that adds its own bias `b` does to each output as it stores it (`Finish`:
    /// that bias, then this epilogue's ReLU, while the output is in registers), and the
    /// epilogue left to run after it. The ReLU moves where this epilogue adds no bias (which
    /// would have to come first): the same operations in the same order as `apply`, so the
    /// same bits.
    fn finish_in_kernel(self, b: Option<&'a [f32]>) -> (Finish<'a>, Self) {
        if self.bias.is_none() && self.act == Activation::Relu {
            (Finish { bias: b, relu: true }, Epilogue { act: Activation::Linear, ..self })
        } else {
            (Finish { bias: b, relu: false }, self)
        }
    }

    /// `finish_in_kernel` for a kernel that adds this epilogue's bias.
    fn bias_in_kernel(self) -> (Finish<'a>, Self) {
        Epilogue { bias: None, ..self }.finish_in_kernel(self.bias)
    }

    /// On output image number `image` of the batch, `y`.
    fn apply(&self, y: &mut [f32], image: usize) {
        if let Some(b) = self.bias {
            simd::add_bias_rows(b, y);
        }
        activation::apply(self.act, y);
        if let Some((act, outputs)) = self.grad_of {
            activation::backward_apply(act, &outputs[image * y.len()..][..y.len()], y);
        }
        if let Some(next) = self.next {
            next.run(y, image);
        }
    }
}

/// The forward pass of the layer after this pass's, run on each output image as soon as it is
/// finished, while it is in cache, rather than by a pass over the batch that reads the images
/// back from memory: a one-output-channel 3 x 3 stride-1 convolution (`conv_direct::
/// single_applies`: both models' last layers) or a max pooling (the baseline's). The same
/// operations as that layer's own pass (`forward_act`, `conv_transpose2d::forward_act` at
/// stride 1, `maxpool2d::forward`), so the same bits.
///
/// Where nothing reads the pass before's output after this layer has (inference: no backward
/// pass follows), `discarding_input` gives each of that pass's tasks a slot for its image, in
/// cache, instead of the batch, whose writes went out to memory (25-50 MB at batch 256).
pub struct NextLayer<'a> {
    kind: NextKind<'a>,
    /// The next layer's output, `n` images of `out_len`.
    y: *mut f32,
    out_len: usize,
    n: usize,
    /// Floats of one image of this layer's input (the output of the pass before).
    in_len: usize,
    /// Where the pass before computes its images instead of its batch: a slot of
    /// `slot_len(in_len)` floats per task of that pass (`discarding_input`).
    slots: Option<*mut f32>,
}

enum NextKind<'a> {
    /// The direct convolution `forward_single` runs and its kernel (flipped for a transpose),
    /// the bias inside the kernel (Conv2D's) or added after it (Conv2DTranspose's).
    Conv { g: ConvGeom, w: &'a [f32], b: Option<&'a [f32]>, bias_after: Option<&'a [f32]>, act: Activation },
    /// The pooling and its winners' indices, `n` images of `out_len`.
    Pool { g: PoolGeom, argmax: *mut u32 },
}

// SAFETY: `y` and `argmax` are only written through `run`, each image's own `out_len` values,
// and the passes visit every image once, in one task.
unsafe impl Sync for NextLayer<'_> {}

impl<'a> NextLayer<'a> {
    /// For the Conv2D `g` (`forward_act`'s arguments) over `n` images into `y`; `None` where its
    /// forward pass is not the one-output-channel kernel.
    /// # Panics
    /// If a length disagrees with `g` and `n`.
    pub fn conv(g: &ConvGeom, n: usize, w: &'a [f32], b: &'a [f32], act: Activation, y: &'a mut [f32]) -> Option<Self> {
        assert!(w.len() == g.w_len() && b.len() == g.c_out && y.len() == size(&[n, g.y_len()]), "conv2d: next lengths");
        let kind = NextKind::Conv { g: *g, w, b: Some(b), bias_after: None, act };
        let next = NextLayer { kind, y: y.as_mut_ptr(), out_len: g.y_len(), n, in_len: g.x_len(), slots: None };
        conv_direct::single_applies(g).then_some(next)
    }

    /// For the stride-1 Conv2DTranspose `g` (`conv_transpose2d::forward_act`'s arguments),
    /// its kernel flipped into `flipped` (resized to `w_len` floats where it applies); `None`
    /// where its forward pass is not the one-output-channel kernel.
    /// # Panics
    /// If a length disagrees with `g` and `n`.
    #[allow(clippy::too_many_arguments)]
    pub fn transpose(
        g: &ConvGeom,
        n: usize,
        w: &[f32],
        b: &'a [f32],
        act: Activation,
        y: &'a mut [f32],
        flipped: &'a mut Vec<f32>,
    ) -> Option<Self> {
        assert!(w.len() == g.w_len() && b.len() == g.c_in && y.len() == size(&[n, g.x_len()]), "conv2d: next lengths");
        let gb = conv_direct::backward_input_geom(g);
        if g.stride != 1 || !conv_direct::single_applies(&gb) {
            return None;
        }
        flipped.resize(g.w_len(), 0.0);
        conv_direct::flip_weights(g, w, flipped);
        let kind = NextKind::Conv { g: gb, w: flipped, b: None, bias_after: Some(b), act };
        Some(NextLayer { kind, y: y.as_mut_ptr(), out_len: gb.y_len(), n, in_len: gb.x_len(), slots: None })
    }

    /// For the max pooling `g` over `n` images into `y` and `argmax` (`maxpool2d::forward`'s).
    /// # Panics
    /// If a length disagrees with `g` and `n`.
    pub fn pool(g: &PoolGeom, n: usize, y: &'a mut [f32], argmax: &'a mut [u32]) -> Self {
        assert!(y.len() == size(&[n, g.y_len()]) && argmax.len() == y.len(), "conv2d: next pooling lengths");
        let kind = NextKind::Pool { g: *g, argmax: argmax.as_mut_ptr() };
        NextLayer { kind, y: y.as_mut_ptr(), out_len: g.y_len(), n, in_len: g.x_len(), slots: None }
    }

    /// Floats `discarding_input` needs: a slot per task of the pass before (`per_image`'s).
    pub fn input_slots_len(&self) -> usize {
        tasks(self.n) * slot_len(self.in_len)
    }

    /// This layer for a pass before whose output nothing reads after it: that pass computes
    /// each image into its task's slot of `slots` (`input_slots_len` floats or more) instead
    /// of its output batch, which it leaves as it was.
    /// # Panics
    /// If `slots` is too short.
    pub fn discarding_input(self, slots: &'a mut [f32]) -> Self {
        assert!(slots.len() >= self.input_slots_len(), "conv2d: next input slots too short");
        NextLayer { slots: Some(slots.as_mut_ptr()), ..self }
    }

    /// The slot of the pass before's task `task` for an image of `len` floats, where
    /// `discarding_input` gave slots.
    /// # Panics
    /// If `len` is not this layer's input image, or `task` is past the pass's tasks.
    #[allow(clippy::mut_from_ref)]
    fn input_slot(&self, task: usize, len: usize) -> Option<&mut [f32]> {
        let slots = self.slots?;
        assert!(len == self.in_len && task < tasks(self.n), "conv2d: next input slot");
        // SAFETY: inside the `input_slots_len` floats `discarding_input` measured; each task
        // of the pass before uses only its own slot, one image at a time.
        Some(unsafe { std::slice::from_raw_parts_mut(slots.add(task * slot_len(len)), len) })
    }

    /// Multiply-adds per image.
    pub fn macs(&self) -> usize {
        match &self.kind {
            NextKind::Conv { g, .. } => g.macs(),
            NextKind::Pool { .. } => 0,
        }
    }

    /// # Panics
    /// If made for a batch of other than `n` images.
    pub(crate) fn check_batch(&self, n: usize) {
        assert_eq!(self.n, n, "conv2d: the next layer's batch size");
    }

    /// On image `image` of this pass's output, `x`: the next layer's image `image`.
    fn run(&self, x: &[f32], image: usize) {
        assert!(image < self.n, "conv2d: next image out of range");
        // SAFETY: inside the `n` images `y` was measured for; no other task writes image
        // `image` (see the `Sync` impl).
        let y = unsafe { std::slice::from_raw_parts_mut(self.y.add(image * self.out_len), self.out_len) };
        match self.kind {
            NextKind::Conv { g, w, b, bias_after, act } => {
                conv_direct::forward_single(&g, x, w, b, y);
                Epilogue { bias: bias_after, act, ..Epilogue::NONE }.apply(y, image);
            }
            NextKind::Pool { g, argmax } => {
                // SAFETY: as `y`, `argmax` holding as many values.
                let argmax = unsafe { std::slice::from_raw_parts_mut(argmax.add(image * self.out_len), self.out_len) };
                maxpool2d::forward_image(&g, x, y, argmax);
            }
        }
    }
}

/// How a pass runs at `precision`: `None` in f32, else `Some(native)` for bf16. bf16 needs
/// pairs (an even count along `pairs`) and the tiled kernel (`tiles % 8 == 0`; natively, whole
/// 16-lane vectors). Forward passes pair input channels and tile output channels; the strided
/// input gradient the reverse. The weight gradient pairs pixels, so any `c_in` could; but with
/// one input channel (the models' first conv, the last Conv2DTranspose's gradient) packing the
/// pairs cost more than the products gained (`bench --layers`: 0.15 -> 0.68 ms and 1.3 -> 7.3
/// ms), so it takes the forward's rule and those layers stay f32 in every pass.
fn bf16_route(precision: Precision, pairs: usize, tiles: usize) -> Option<bool> {
    let fits = pairs.is_multiple_of(2) && tiles.is_multiple_of(8);
    (precision == Precision::Bf16 && fits).then(|| bf16::native() && tiles.is_multiple_of(16))
}

/// The direct convolution `gd` (a forward, or a stride-1 input gradient's flipped one) of
/// each image of `inp` into `out`, in the tasks of `g`: the kernel `w [k, k, gd.c_in,
/// gd.c_out]`, `work` (`shared_len` less `w_len` floats) for its rearranged copy; `post` on
/// each output image. In f32, Winograd's F(2x2, 3x3) where it applies (`winograd::applies`).
#[allow(clippy::too_many_arguments)]
fn direct(
    g: &ConvGeom,
    gd: &ConvGeom,
    n: usize,
    out: (&mut [f32], usize),
    inp: (&[f32], usize),
    (w, work): (&[f32], &mut [f32]),
    b: Option<&[f32]>,
    post: Epilogue,
    rest: &mut [f32],
    precision: Precision,
) {
    let len = conv_direct::padded_len(gd);
    if precision == Precision::F32 && winograd::applies(gd) {
        let u = &mut work[..winograd::weights_len(gd)];
        winograd::transform_weights(gd, w, u);
        let u = &*u;
        let (finish, post) = post.finish_in_kernel(b);
        per_image(g, n, out, inp, rest, post, |yi, xi, s| {
            let (xp, ws) = s.split_at_mut(winograd::padded_len(gd));
            winograd::pad_input(gd, xi, xp);
            winograd::forward(gd, xp, u, finish, yi, ws);
        });
        return;
    }
    if precision == Precision::F32 && winograd_transpose::applies(gd) {
        let u = &mut work[..winograd_transpose::strided_weights_len(gd)];
        winograd_transpose::transform_weights_strided(gd, w, u);
        let u = &*u;
        per_image(g, n, out, inp, rest, post, |yi, xi, s| {
            let (xp, ws) = s.split_at_mut(winograd_transpose::strided_padded_len(gd));
            winograd_transpose::strided_pad_input(gd, xi, xp);
            winograd_transpose::strided(gd, StridedInput::Padded(xp), u, b, yi, ws);
        });
        return;
    }
    let work = &mut work[..gd.w_len()];
    match bf16_route(precision, gd.c_in, gd.c_out) {
        Some(true) => {
            // Both operands from a cache-line boundary: an AMX tile row is then one line.
            conv_direct::pack_weights_bf16(gd, w, &mut bf16::as_bf16_aligned(work)[..gd.w_len()]);
            let wq = &bf16::as_bf16_aligned(work)[..gd.w_len()];
            let on_amx = amx::conv_applies(gd);
            per_image(g, n, out, inp, rest, post, |yi, xi, s| {
                let xq = &mut bf16::as_bf16_aligned(s)[..len];
                conv_direct::pad_input_bf16(gd, xi, xq);
                if on_amx {
                    amx::conv_forward(gd, xq, wq, b, yi);
                } else {
                    conv_direct::forward_tiled_bf16(gd, xq, wq, b, yi);
                }
            });
        }
        Some(false) => {
            conv_direct::quantize_swapped_weights(gd, w, work);
            let we = &*work;
            per_image(g, n, out, inp, rest, post, |yi, xi, s| {
                let xp = &mut s[..len];
                conv_direct::pad_input(gd, xi, xp);
                conv_direct::quantize_swapped(xp);
                conv_direct::forward_tiled(gd, xp, we, b, yi);
            });
        }
        // One output channel: w [k, k, c_in, 1] is already the layout the kernel reads.
        None if conv_direct::single_applies(gd) => {
            per_image(g, n, out, inp, rest, post, |yi, xi, _| conv_direct::forward_single(gd, xi, w, b, yi));
        }
        None => {
            let narrow = !gd.c_out.is_multiple_of(8);
            if narrow {
                conv_direct::transpose_weights(gd, w, work);
            }
            let wt = &*work;
            per_image(g, n, out, inp, rest, post, |yi, xi, s| {
                let xp = &mut s[..len];
                conv_direct::pad_input(gd, xi, xp);
                if narrow {
                    conv_direct::forward_narrow(gd, xp, wt, b, yi);
                } else {
                    conv_direct::forward_tiled(gd, xp, w, b, yi);
                }
            });
        }
    }
}

/// Floats of a task's slot for an image of `len` (`NextLayer`'s input slots, the chained
/// backward pass's input-gradient images): whole cache lines, so slots share none.
fn slot_len(len: usize) -> usize {
    len.next_multiple_of(16)
}

/// Runs `f(out image, its input image, the task's scratch)`, then `post` on the out image, for
/// each of the `n` images, in parallel tasks of `conv_task_images(n)` images, each task on
/// its own `task_scratch` part. Where the next layer discards this pass's output
/// (`NextLayer::discarding_input`), the out image is the task's slot there instead of the
/// batch's.
fn per_image(
    g: &ConvGeom,
    n: usize,
    (out, out_len): (&mut [f32], usize),
    (inp, in_len): (&[f32], usize),
    scratch: &mut [f32],
    post: Epilogue,
    f: impl Fn(&mut [f32], &[f32], &mut [f32]) + Sync,
) {
    let per_task = conv_task_images(n);
    out.par_chunks_mut(per_task * out_len)
        .zip(inp.par_chunks(per_task * in_len))
        .zip(scratch.par_chunks_mut(task_scratch(g)))
        .enumerate()
        .for_each(|(task, ((ot, it), s))| {
            for (i, (oi, ii)) in ot.chunks_mut(out_len).zip(it.chunks(in_len)).enumerate() {
                let oi = post.next.and_then(|next| next.input_slot(task, out_len)).unwrap_or(oi);
                f(oi, ii, s);
                post.apply(oi, task * per_task + i);
            }
        });
}

/// `dx[n,ih,iw,ci] = sum over (oh,ow,kh,kw) reading (ih,iw) of dy[n,oh,ow,co] * w[kh,kw,ci,co]`.
/// Overwrites `dx`.
/// # Panics
/// If a slice length disagrees with `g` and `n`.
pub fn backward_input(
    g: &ConvGeom,
    n: usize,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
) {
    backward_input_then(g, n, dy, w, dx, scratch, precision, Epilogue::NONE);
}

/// `backward_input`, then dx multiplied by the gradient of `act` at `x = act(z)` (the layer's
/// input, the output of the layer before) on each image while it is in cache: the same bits
/// as `backward_input` followed by `activation::backward(act, x, dx)`, so dx is dL/dz.
/// # Panics
/// As `backward_input`, or if `x` is not as long as `dx`.
#[allow(clippy::too_many_arguments)]
pub fn backward_input_act(
    g: &ConvGeom,
    n: usize,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
    act: Activation,
    x: &[f32],
) {
    assert_eq!(x.len(), dx.len(), "conv2d: x length");
    let post = Epilogue { grad_of: Some((act, x)), ..Epilogue::NONE };
    backward_input_then(g, n, dy, w, dx, scratch, precision, post);
}

/// `backward_input`, then `post` on each image of dx (Conv2DTranspose's forward pass).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_input_then(
    g: &ConvGeom,
    n: usize,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
    post: Epilogue,
) {
    check(g, n, dx.len(), w.len(), dy.len(), scratch.len());
    let (shared, rest) = scratch.split_at_mut(shared_len(g));
    if g.stride == 1 {
        // dx = conv(dy) with the flipped kernel: the direct kernel, no col2im.
        let gb = conv_direct::backward_input_geom(g);
        let (wf, work) = shared.split_at_mut(g.w_len());
        conv_direct::flip_weights(g, w, wf);
        direct(g, &gb, n, (dx, g.x_len()), (dy, g.y_len()), (wf, work), None, post, rest, precision);
        return;
    }
    if precision == Precision::F32 && winograd_transpose::applies(g) {
        let u = &mut shared[..winograd_transpose::weights_len(g)];
        winograd_transpose::transform_weights(g, w, u);
        let u = &*u;
        let (finish, post) = post.bias_in_kernel();
        per_image(g, n, (dx, g.x_len()), (dy, g.y_len()), rest, post, |dxi, dyi, s| {
            let (xp, work) = s.split_at_mut(winograd_transpose::padded_len(g));
            winograd_transpose::pad_input(g, dyi, xp);
            winograd_transpose::forward(g, xp, u, finish, dxi, work);
        });
        return;
    }
    if g.c_in.is_multiple_of(8) {
        // Strided: per phase class of dx, a direct correlation of dy (no im2col, no col2im);
        // in bf16 its pairs run along c_out.
        let wt = &mut shared[..g.w_len()];
        let (hpd, wpd) = conv_direct::strided_dy_dims(g);
        let dyp_len = hpd * wpd * g.c_out;
        let route = bf16_route(precision, g.c_out, g.c_in);
        if route == Some(true) {
            conv_direct::pack_taps_bf16(g, w, &mut bf16::as_bf16_aligned(wt)[..g.w_len()]);
            let wq = &bf16::as_bf16_aligned(wt)[..g.w_len()];
            per_image(g, n, (dx, g.x_len()), (dy, g.y_len()), rest, post, |dxi, dyi, s| {
                let dyq = &mut bf16::as_bf16_aligned(s)[..dyp_len];
                conv_direct::backward_input_strided_bf16(g, dyi, wq, dyq, dxi);
            });
            return;
        }
        let path = conv_direct::strided_path(g);
        conv_direct::transpose_taps(g, path, w, wt);
        let emulate = route == Some(false);
        if emulate {
            conv_direct::quantize_swapped_taps(g, path, wt);
        }
        let wt = &*wt;
        per_image(g, n, (dx, g.x_len()), (dy, g.y_len()), rest, post, |dxi, dyi, s| {
            conv_direct::backward_input_strided(g, path, dyi, wt, &mut s[..dyp_len], dxi, emulate);
        });
        return;
    }
    let (p, pl) = (g.h_out * g.w_out, g.patch_len());
    per_image(g, n, (dx, g.x_len()), (dy, g.y_len()), rest, post, |dxi, dyi, s| {
        let cols = &mut s[..g.cols_len()];
        gemm(Mat::rows(dyi, p, g.c_out), Mat::t(w, g.c_out, pl), 0.0, cols);
        col2im(g, cols, dxi);
    });
}

/// `dw[kh,kw,ci,co] = sum_{n,oh,ow} xpad[n, oh*s+kh, ow*s+kw, ci] * dy[n,oh,ow,co]` and, when
/// given, `db[co] = sum_{n,oh,ow} dy[n,oh,ow,co]`. Overwrites `dw` and `db`. Partial sums of
/// fixed groups of images are added in order, so the result does not depend on the threads.
/// In bf16 (`bf16_route`) the products of x and dy take bf16 operands.
/// # Panics
/// If a slice length disagrees with `g` and `n`.
#[allow(clippy::too_many_arguments)]
pub fn backward_weight(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    scratch: &mut [f32],
    precision: Precision,
) {
    backward_weight_sums(g, n, x, dy, dw, db.map(|db| (BiasOf::Dy, db)), scratch, precision);
}

/// Whose rows a weight-gradient pass sums into its bias gradient while it has each image in
/// cache: dy's (a convolution's bias, `[c_out]`) or x's (a transposed convolution's, whose
/// output gradient is the convolution's x: `[c_in]`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BiasOf {
    Dy,
    X,
}

impl BiasOf {
    /// Adds image `(xi, dyi)`'s rows to the task's partial sums.
    fn add(self, (xi, dyi): (&[f32], &[f32]), db_t: &mut [f32]) {
        simd::sum_rows_acc(if self == BiasOf::X { xi } else { dyi }, db_t);
    }
}

/// `backward_weight` with the bias gradient `db` of either kind (`BiasOf`), summed per image
/// in image order: the same bits as one sum over each task's images.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_weight_sums(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<(BiasOf, &mut [f32])>,
    scratch: &mut [f32],
    precision: Precision,
) {
    check(g, n, x.len(), dw.len(), dy.len(), scratch.len());
    let bias = db.as_ref().map(|(of, db)| {
        assert_eq!(db.len(), if *of == BiasOf::X { g.c_in } else { g.c_out }, "conv2d: db length");
        (*of, db.len())
    });
    let (ts, work) = (task_scratch(g), sums_start(g));
    let wino = precision == Precision::F32 && winograd::weight_grad_applies(g);
    let strided = precision == Precision::F32 && winograd_transpose::weight_grad_applies(g);
    let on_amx = precision == Precision::Bf16 && amx::weight_grad_applies(g);
    let (shared, rest) = scratch.split_at_mut(shared_len(g));
    let rest = &mut rest[..tasks(n) * ts];
    rest.par_chunks_mut(ts)
        .zip(x.par_chunks(conv_task_images(n) * g.x_len()))
        .zip(dy.par_chunks(conv_task_images(n) * g.y_len()))
        .for_each(|((s, xt), dyt)| {
            let (work, partial) = s.split_at_mut(work);
            let (dw_t, db_t) = partial.split_at_mut(g.w_len());
            let db_t = &mut db_t[..bias.map_or(0, |(_, len)| len)];
            db_t.fill(0.0);
            let images = || xt.chunks(g.x_len()).zip(dyt.chunks(g.y_len()));
            if on_amx {
                // Transposed: `untranspose_weights` below, once for the sum of the tasks.
                let amx_db = (bias.map(|(of, _)| of) == Some(BiasOf::Dy)).then_some(&mut *db_t);
                amx::weight_grad(g, (xt, dyt), work, dw_t, amx_db);
                if let Some((BiasOf::X, _)) = bias {
                    images().for_each(|image| BiasOf::X.add(image, db_t));
                }
                return;
            }
            dw_t.fill(0.0);
            if wino || strided {
                // Winograd's sums of every image of the task, or the strided pass's minimal
                // filtering's (`transposed_backward` too), then dw_t from them.
                let (padded, sums_len) = if wino {
                    (winograd::padded_len(g), winograd::weights_len(g))
                } else {
                    (winograd_transpose::strided_padded_len(g), winograd_transpose::strided_weight_sums_len(g))
                };
                let (xp, rest) = work.split_at_mut(padded);
                let (sums, rest) = rest.split_at_mut(sums_len);
                sums.fill(0.0);
                for (xi, dyi) in images() {
                    if let Some((of, _)) = bias {
                        of.add((xi, dyi), db_t);
                    }
                    if wino {
                        winograd::pad_input(g, xi, xp);
                        winograd::weight_grad_acc(g, xp, dyi, sums, rest);
                    } else {
                        winograd_transpose::strided_pad_input(g, xi, xp);
                        winograd_transpose::strided_weight_grad_acc(g, xp, dyi, sums, rest);
                    }
                }
                if wino {
                    winograd::weight_grad_finish(g, sums, dw_t);
                } else {
                    winograd_transpose::strided_weight_grad_finish(g, sums, dw_t);
                }
                return;
            }
            for (xi, dyi) in images() {
                if let Some((of, _)) = bias {
                    of.add((xi, dyi), db_t);
                }
                weight_grad_image(g, (xi, dyi), work, dw_t, precision);
            }
        });
    reduce_tasks(g, (shared, &*rest), ts, work, dw, db.map(|(_, db)| db), on_amx);
}

/// One image's contribution to `dw_t` on the paths other than Winograd's and AMX's, `work`
/// holding its padded copy (and, in bf16, its packed operands).
fn weight_grad_image(
    g: &ConvGeom,
    (xi, dyi): (&[f32], &[f32]),
    work: &mut [f32],
    dw_t: &mut [f32],
    precision: Precision,
) {
    match (weight_path(g), bf16_route(precision, g.c_in, g.c_out)) {
        (WeightPath::Direct, Some(true)) => {
            let (xq, rest) = work.split_at_mut(conv_direct::padded_len(g));
            let xq = &mut bf16::as_bf16(xq)[..conv_direct::padded_len(g)];
            conv_direct::pad_input_bf16(g, xi, xq);
            conv_direct::weight_grad_tiled_bf16_acc(g, xq, dyi, bf16::as_u32(rest), dw_t);
        }
        (WeightPath::Direct, Some(false)) => {
            let (xp, dye) = work.split_at_mut(conv_direct::padded_len(g));
            conv_direct::pad_input(g, xi, xp);
            xp.iter_mut().for_each(|v| *v = bf16::quantize(*v));
            conv_direct::quantize_swapped_rows(g, dyi, &mut dye[..g.y_len()]);
            conv_direct::weight_grad_tiled_acc(g, xp, &dye[..g.y_len()], dw_t, true);
        }
        (WeightPath::Direct, None) => {
            let xp = &mut work[..conv_direct::padded_len(g)];
            conv_direct::pad_input(g, xi, xp);
            if g.c_out == 1 {
                conv_direct::weight_grad_narrow_acc(g, xp, dyi, dw_t);
            } else {
                conv_direct::weight_grad_tiled_acc(g, xp, dyi, dw_t, false);
            }
        }
        (WeightPath::Shifted, _) => weight_grad_shifted_acc(g, xi, dyi, work, dw_t),
        (WeightPath::Im2col, _) => {
            let cols = &mut work[..g.cols_len()];
            im2col(g, xi, cols);
            let p = g.h_out * g.w_out;
            gemm(Mat::t(cols, g.patch_len(), p), Mat::rows(dyi, p, g.c_out), 1.0, dw_t);
        }
    }
}

/// dw and db from the tasks' partial sums (`rest`, areas of `ts` floats: `work` floats, then
/// dw's and db's partials), added in task order, each stretch of dw on its own thread: the
/// same bits on any number of threads. On AMX the partials are transposed: their sum goes
/// through `shared` and is transposed once.
fn reduce_tasks(
    g: &ConvGeom,
    (shared, rest): (&mut [f32], &[f32]),
    ts: usize,
    work: usize,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    on_amx: bool,
) {
    let total = if on_amx { &mut shared[..g.w_len()] } else { &mut *dw };
    total.par_chunks_mut(REDUCE_CHUNK).enumerate().for_each(|(c, d)| {
        d.fill(0.0);
        for s in rest.chunks(ts) {
            simd::add_assign(&s[work + c * REDUCE_CHUNK..][..d.len()], d);
        }
    });
    if on_amx {
        amx::untranspose_weights(g, &shared[..g.w_len()], dw);
    }
    if let Some(db) = db {
        db.fill(0.0);
        for s in rest.chunks(ts) {
            simd::add_assign(&s[work + g.w_len()..][..db.len()], db);
        }
    }
}

/// Whether `transposed_backward` applies to `g` at `precision`: in f32, where the forward
/// pass and the weight gradient both run the direct tiled kernels on the same padded copy of
/// x (no Winograd: both models' Conv2DTranspose layers, whose input gradient is this forward).
pub(crate) fn transposed_backward_applies(g: &ConvGeom, precision: Precision) -> bool {
    precision == Precision::F32
        && g.c_out.is_multiple_of(8)
        && !winograd::applies(g)
        && !winograd::weight_grad_applies(g)
}

/// A transposed convolution's backward pass as `transposed_backward` runs it, in the Conv2D
/// terms of `g` (`conv_transpose2d`): the kernel `w`, the layer's input `x` (`[n, g.y_len()]`,
/// the Conv2D's dy; `act`'s outputs, whose gradient multiplies dx), the kernel and bias
/// gradients `dw` and `db` (`[g.c_in]`) it overwrites, and its `scratch`.
pub(crate) struct TransposedBackward<'a> {
    pub g: ConvGeom,
    pub w: &'a [f32],
    pub x: &'a [f32],
    pub act: Activation,
    pub dw: &'a mut [f32],
    pub db: &'a mut [f32],
    pub scratch: &'a mut [f32],
}

/// Where a transposed layer's output gradient comes from: a batch `[n, g.x_len()]`, or the
/// backward pass of the transposed layer after it, run on each image (its output gradient
/// `dz`) just before this layer needs that image's input gradient. That layer's scratch then
/// holds `transposed_next_scratch_len` floats: each task keeps its image of dx there (in
/// cache) instead of writing the batch out and reading it back.
pub(crate) enum OutputGradient<'a> {
    Batch(&'a [f32]),
    Next(TransposedBackward<'a>, &'a [f32]),
}

/// Scratch floats of the transposed layer `g` whose backward pass the layer before runs
/// (`OutputGradient::Next`): its own, then one image of its input gradient per task.
pub(crate) fn transposed_next_scratch_len(g: &ConvGeom, n: usize) -> usize {
    scratch_len(g, n) + tasks(n) * slot_len(g.y_len())
}

/// The transposed layer `pass`'s weight, bias and input gradients in one pass over the
/// images (where `transposed_backward_applies`): each image of dz is padded once and serves
/// the weight gradient and the input gradient (the Conv2D's forward) into `dx` (`[n,
/// g.y_len()]`), and x, which both read (the second as the activation's outputs), is read
/// once. The same operations in the same order as `backward_weight_sums` (with `BiasOf::X`)
/// and `forward_then` with `grad_of`, so the same bits.
/// # Panics
/// If a length disagrees with `g` and `n`, or a pass does not apply.
pub(crate) fn transposed_backward(n: usize, pass: TransposedBackward, dz: OutputGradient, dx: &mut [f32]) {
    let (this, mut this_sums) = pass.split(n);
    assert_eq!(dx.len(), size(&[n, this.g.y_len()]), "conv2d: dx length");
    let (batch, next, mut next_sums) = match dz {
        OutputGradient::Batch(dz) => {
            assert_eq!(dz.len(), size(&[n, this.g.x_len()]), "conv2d: dz length");
            (Some(dz), None, None)
        }
        OutputGradient::Next(next, dz) => {
            assert_eq!(dz.len(), size(&[n, next.g.x_len()]), "conv2d: the next layer's dz length");
            assert_eq!(next.g.y_len(), this.g.x_len(), "conv2d: the next layer's input is not this output");
            assert!(next.scratch.len() >= transposed_next_scratch_len(&next.g, n), "conv2d: next scratch too short");
            let (next, sums) = next.split(n);
            (None, Some((next, dz)), Some(sums))
        }
    };
    let per_task = conv_task_images(n);
    // Each task's parts of the next layer's scratch: its partial sums, and its image of dx.
    let next_parts = match (&next, next_sums.as_mut()) {
        (Some((next, _)), Some(sums)) => {
            let (areas, images) = sums.tasks_and_rest();
            let image_len = slot_len(next.g.y_len());
            Either::Left(areas.par_chunks_mut(task_scratch(&next.g)).zip(images.par_chunks_mut(image_len)).map(Some))
        }
        _ => Either::Right((0..tasks(n)).into_par_iter().map(|_| None)),
    };
    this_sums.tasks().zip(dx.par_chunks_mut(per_task * this.g.y_len())).zip(next_parts).enumerate().for_each(
        |(task, ((part, dx_t), mut next_part))| {
            this.zero_sums(part);
            if let (Some((next, _)), Some((next_part, _))) = (&next, next_part.as_mut()) {
                next.zero_sums(next_part);
            }
            for (i, dx_i) in dx_t.chunks_mut(this.g.y_len()).enumerate() {
                let image = task * per_task + i;
                let dz_i = match (&next, next_part.as_mut()) {
                    (Some((next, dz)), Some((next_part, dx_next))) => {
                        let dx_next = &mut dx_next[..next.g.y_len()];
                        next.image(next_part, &dz[image * next.g.x_len()..][..next.g.x_len()], dx_next, image);
                        &*dx_next
                    }
                    _ => &batch.expect("a batch where no next layer")[image * this.g.x_len()..][..this.g.x_len()],
                };
                this.image(part, dz_i, dx_i, image);
            }
            this.finish_sums(part);
            if let (Some((next, _)), Some((next_part, _))) = (&next, next_part.as_mut()) {
                next.finish_sums(next_part);
            }
        },
    );
    this_sums.reduce();
    if let Some(sums) = next_sums {
        sums.reduce();
    }
}

/// The half of a `TransposedBackward` its tasks read.
struct TransposedImages<'a> {
    g: ConvGeom,
    w: &'a [f32],
    x: &'a [f32],
    act: Activation,
    /// The kernel transformed for the input gradient by minimal filtering, where it applies
    /// (`winograd_transpose::applies`), as `forward_then` computes it; the weight gradient
    /// then runs by minimal filtering too where the sides are even
    /// (`winograd_transpose::weight_grad_applies`), as `backward_weight_sums`, else direct.
    strided: Option<&'a [f32]>,
}

/// The half its tasks write: their areas of the scratch after the shared part (`task_scratch`:
/// a work area, then the partial sums of dw and db), added up into dw and db at the end.
struct TransposedSums<'a> {
    g: ConvGeom,
    n: usize,
    dw: &'a mut [f32],
    db: &'a mut [f32],
    scratch: &'a mut [f32],
}

impl<'a> TransposedBackward<'a> {
    /// # Panics
    /// If a length disagrees with `g` and `n`, or `transposed_backward` does not apply.
    fn split(self, n: usize) -> (TransposedImages<'a>, TransposedSums<'a>) {
        let TransposedBackward { g, w, x, act, dw, db, scratch } = self;
        check(&g, n, size(&[n, g.x_len()]), w.len(), x.len(), scratch.len());
        assert_eq!(dw.len(), g.w_len(), "conv2d: dw length");
        assert_eq!(db.len(), g.c_in, "conv2d: db length");
        assert!(transposed_backward_applies(&g, Precision::F32), "conv2d: transposed_backward does not apply");
        let (shared, scratch) = scratch.split_at_mut(shared_len(&g));
        let strided = winograd_transpose::applies(&g).then(|| {
            let u = &mut shared[..winograd_transpose::strided_weights_len(&g)];
            winograd_transpose::transform_weights_strided(&g, w, u);
            &*u
        });
        (TransposedImages { g, w, x, act, strided }, TransposedSums { g, n, dw, db, scratch })
    }
}

/// Where a task area's partial sums start.
fn sums_start(g: &ConvGeom) -> usize {
    task_scratch(g) - g.w_len() - bias_len(g)
}

impl TransposedImages<'_> {
    /// Floats of the task's padded image: the strided pass's (`strided`) or the direct kernel's.
    fn padded_len(&self) -> usize {
        match self.strided {
            Some(_) => winograd_transpose::strided_padded_len(&self.g),
            None => conv_direct::padded_len(&self.g),
        }
    }

    /// The strided pass's sums of the kernel gradient, where it runs (`strided`): in the
    /// task's work area after the padded image.
    fn strided_sums(&self) -> core::ops::Range<usize> {
        let start = self.padded_len();
        start..start + self.strided.map_or(0, |_| winograd_transpose::strided_weight_sums_len(&self.g))
    }

    fn zero_sums(&self, part: &mut [f32]) {
        part[sums_start(&self.g)..].fill(0.0);
        part[self.strided_sums()].fill(0.0);
    }

    /// After the task's last image: its kernel gradient from the strided pass's sums.
    fn finish_sums(&self, part: &mut [f32]) {
        if self.strided.is_some() && winograd_transpose::weight_grad_applies(&self.g) {
            let (work, sums) = part.split_at_mut(sums_start(&self.g));
            winograd_transpose::strided_weight_grad_finish(
                &self.g,
                &work[self.strided_sums()],
                &mut sums[..self.g.w_len()],
            );
        }
    }

    /// Image `image`, its output gradient `dz_i`: its bias and weight gradients added to the
    /// task's area `part`, its input gradient into `dx_i`, times the gradient of `act`.
    fn image(&self, part: &mut [f32], dz_i: &[f32], dx_i: &mut [f32], image: usize) {
        let g = &self.g;
        let x_i = &self.x[image * g.y_len()..][..g.y_len()];
        let (work, sums) = part.split_at_mut(sums_start(g));
        let (dw_t, db_t) = sums.split_at_mut(g.w_len());
        BiasOf::X.add((dz_i, x_i), &mut db_t[..g.c_in]);
        let (xp, work) = work.split_at_mut(self.padded_len());
        match self.strided {
            Some(u) => {
                winograd_transpose::strided_pad_input(g, dz_i, xp);
                let (sums, work) = work.split_at_mut(winograd_transpose::strided_weight_sums_len(g));
                if winograd_transpose::weight_grad_applies(g) {
                    // The input gradient from the values the kernel gradient transformed.
                    winograd_transpose::strided_weight_grad_acc(g, xp, x_i, sums, work);
                    let (values, work) = work.split_at_mut(winograd_transpose::strided_values_len(g));
                    winograd_transpose::strided(g, StridedInput::Values(values), u, None, dx_i, work);
                } else {
                    // The direct kernel's padded copy in the work area, which `strided` reuses.
                    let xd = &mut work[..conv_direct::padded_len(g)];
                    conv_direct::pad_input(g, dz_i, xd);
                    conv_direct::weight_grad_tiled_acc(g, xd, x_i, dw_t, false);
                    winograd_transpose::strided(g, StridedInput::Padded(xp), u, None, dx_i, work);
                }
            }
            None => {
                conv_direct::pad_input(g, dz_i, xp);
                conv_direct::weight_grad_tiled_acc(g, xp, x_i, dw_t, false);
                conv_direct::forward_tiled(g, xp, self.w, None, dx_i);
            }
        }
        Epilogue { grad_of: Some((self.act, self.x)), ..Epilogue::NONE }.apply(dx_i, image);
    }
}

impl TransposedSums<'_> {
    /// The tasks' areas, then the rest of the scratch after them.
    fn tasks_and_rest(&mut self) -> (&mut [f32], &mut [f32]) {
        self.scratch.split_at_mut(tasks(self.n) * task_scratch(&self.g))
    }

    fn tasks(&mut self) -> rayon::slice::ChunksMut<'_, f32> {
        let ts = task_scratch(&self.g);
        self.tasks_and_rest().0.par_chunks_mut(ts)
    }

    /// dw and db from the tasks' partial sums (`reduce_tasks`).
    fn reduce(self) {
        let (g, n) = (self.g, self.n);
        let ts = task_scratch(&g);
        reduce_tasks(&g, (&mut [], &self.scratch[..tasks(n) * ts]), ts, sums_start(&g), self.dw, Some(self.db), false);
    }
}

/// Floats of dw per thread task when `backward_weight` adds up its tasks' partial sums.
const REDUCE_CHUNK: usize = 1 << 14;

/// dw[kh,kw] += xpad_shifted(kh,kw)ᵀ dy for one image, stride 1: over the padded-width grid
/// (`grid_w` columns per row, dy zero in the extra columns), the input window of tap (kh, kw)
/// is one contiguous run of the padded image, so each tap is a single GEMM with K = pixels.
fn weight_grad_shifted_acc(g: &ConvGeom, x: &[f32], dy: &[f32], work: &mut [f32], dw: &mut [f32]) {
    let wp = grid_w(g);
    let (xp, dyp) = work.split_at_mut(conv_direct::padded_len(g));
    let dyp = &mut dyp[..g.h_out * wp * g.c_out]; // [h_out, wp, c_out]
    conv_direct::pad_input(g, x, xp);
    dyp.fill(0.0);
    for (src, dst) in dy.chunks_exact(g.w_out * g.c_out).zip(dyp.chunks_exact_mut(wp * g.c_out)) {
        dst[..g.w_out * g.c_out].copy_from_slice(src);
    }
    let pixels = g.h_out * wp;
    let tap_len = g.c_in * g.c_out;
    for kh in 0..g.k {
        for kw in 0..g.k {
            let a = Mat::t(&xp[(kh * wp + kw) * g.c_in..], g.c_in, pixels);
            gemm(a, Mat::rows(dyp, pixels, g.c_out), 1.0, &mut dw[(kh * g.k + kw) * tap_len..][..tap_len]);
        }
    }
}

/// The naive twin of `forward`: the defining sum in plain loops, accumulated in f64.
pub fn forward_naive(g: &ConvGeom, n: usize, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    for img in 0..n {
        let (xi, yi) = (&x[img * g.x_len()..], &mut y[img * g.y_len()..]);
        for oh in 0..g.h_out {
            for ow in 0..g.w_out {
                for co in 0..g.c_out {
                    let mut acc = b.map_or(0.0, |b| b[co] as f64);
                    for kh in 0..g.k {
                        for kw in 0..g.k {
                            let (Some(r), Some(c)) = (g.in_row(oh, kh), g.in_col(ow, kw)) else {
                                continue;
                            };
                            for ci in 0..g.c_in {
                                acc += xi[(r * g.w_in + c) * g.c_in + ci] as f64
                                    * w[((kh * g.k + kw) * g.c_in + ci) * g.c_out + co] as f64;
                            }
                        }
                    }
                    yi[(oh * g.w_out + ow) * g.c_out + co] = acc as f32;
                }
            }
        }
    }
}

/// The naive twin of `backward_input`.
pub fn backward_input_naive(g: &ConvGeom, n: usize, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let mut acc = vec![0.0f64; dx.len()];
    for img in 0..n {
        for oh in 0..g.h_out {
            for ow in 0..g.w_out {
                for kh in 0..g.k {
                    for kw in 0..g.k {
                        let (Some(r), Some(c)) = (g.in_row(oh, kh), g.in_col(ow, kw)) else {
                            continue;
                        };
                        for ci in 0..g.c_in {
                            for co in 0..g.c_out {
                                acc[img * g.x_len() + (r * g.w_in + c) * g.c_in + ci] +=
                                    dy[img * g.y_len() + (oh * g.w_out + ow) * g.c_out + co] as f64
                                        * w[((kh * g.k + kw) * g.c_in + ci) * g.c_out + co] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    dx.iter_mut().zip(acc).for_each(|(d, a)| *d = a as f32);
}

/// The naive twin of `backward_weight`.
pub fn backward_weight_naive(g: &ConvGeom, n: usize, x: &[f32], dy: &[f32], dw: &mut [f32], db: Option<&mut [f32]>) {
    let mut acc = vec![0.0f64; dw.len()];
    let mut acc_b = vec![0.0f64; g.c_out];
    for img in 0..n {
        for oh in 0..g.h_out {
            for ow in 0..g.w_out {
                for co in 0..g.c_out {
                    let d = dy[img * g.y_len() + (oh * g.w_out + ow) * g.c_out + co] as f64;
                    acc_b[co] += d;
                    for kh in 0..g.k {
                        for kw in 0..g.k {
                            let (Some(r), Some(c)) = (g.in_row(oh, kh), g.in_col(ow, kw)) else {
                                continue;
                            };
                            for ci in 0..g.c_in {
                                acc[((kh * g.k + kw) * g.c_in + ci) * g.c_out + co] +=
                                    x[img * g.x_len() + (r * g.w_in + c) * g.c_in + ci] as f64 * d;
                            }
                        }
                    }
                }
            }
        }
    }
    dw.iter_mut().zip(acc).for_each(|(d, a)| *d = a as f32);
    if let Some(db) = db {
        db.iter_mut().zip(acc_b).for_each(|(d, a)| *d = a as f32);
    }
}
