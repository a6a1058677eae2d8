//! Conv2DTranspose over NHWC batches, Keras semantics, as the adjoint of Conv2D.
//!
//! `g` is the geometry from `ConvGeom::transpose`: the Conv2D that reads this layer's OUTPUT
//! and writes its INPUT. So here `x [n, g.h_out, g.w_out, g.c_out]` is the layer input,
//! `y [n, g.h_in, g.w_in, g.c_in]` the layer output, `w [k, k, g.c_in, g.c_out]` the Keras
//! kernel `(kh, kw, filters, in_channels)` as it is, and `b [g.c_in]` (one per filter).
//! Keras crops the odd extra row/column of the "full" output at the bottom/right, which is
//! exactly the conv's 'same' padding, so the three passes are the conv's passes swapped.

use crate::activation::Activation;
use crate::bf16::Precision;
use crate::conv2d;
use crate::geom::ConvGeom;

/// Scratch floats any pass over `n` images needs.
pub fn scratch_len(g: &ConvGeom, n: usize) -> usize {
    conv2d::scratch_len(g, n)
}

/// `full[n, i*s+kh, j*s+kw, o] += x[n,i,j,ci] * w[kh,kw,o,ci]`; y = crop(full) + b.
/// Overwrites `y`.
/// # Panics
/// If a slice length disagrees with `g` and `n`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
) {
    forward_act(g, n, x, w, b, Activation::Linear, y, scratch, precision);
}

/// `forward`, then `act`, both the bias and `act` applied to each output image while it is
/// still in cache: the same bits as `forward` followed by `activation::forward`.
/// # Panics
/// As `forward`.
#[allow(clippy::too_many_arguments)]
pub fn forward_act(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    act: Activation,
    y: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
) {
    forward_act_next(g, n, x, w, b, act, y, scratch, precision, None);
}

/// `forward_act`, then, where given, the next layer's forward pass on each output image while
/// it is in cache (`conv2d::NextLayer`, for the same `n`).
/// # Panics
/// As `forward`, or if `next` was made for another batch size.
#[allow(clippy::too_many_arguments)]
pub fn forward_act_next(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    act: Activation,
    y: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
    next: Option<&conv2d::NextLayer>,
) {
    assert_eq!(b.len(), g.c_in, "conv_transpose2d: b length");
    next.inspect(|next| next.check_batch(n));
    let post = conv2d::Epilogue { bias: Some(b), act, next, ..conv2d::Epilogue::NONE };
    conv2d::backward_input_then(g, n, x, w, y, scratch, precision, post);
}

/// `dx[n,i,j,ci]` = sum_{kh,kw,o} `dy_full[n, i*s+kh, j*s+kw, o] * w[kh,kw,o,ci]`: a strided
/// correlation of dy, i.e. a Conv2D forward. Overwrites `dx`.
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
    conv2d::forward(g, n, dy, w, None, dx, scratch, precision);
}

/// `backward_input`, then dx multiplied by the gradient of `act` at `x = act(z)` per image, as
/// `conv2d::backward_input_act`.
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
    assert_eq!(x.len(), dx.len(), "conv_transpose2d: x length");
    let post = conv2d::Epilogue { grad_of: Some((act, x)), ..conv2d::Epilogue::NONE };
    conv2d::forward_then(g, n, dy, w, None, dx, scratch, precision, post);
}

/// `dw[kh,kw,o,ci]` = sum_{n,i,j} `x[n,i,j,ci] * dy_full[n, i*s+kh, j*s+kw, o]` and
/// `db[o]` = sum `dy[..., o]`. Overwrites `dw` and `db`.
/// # Panics
/// If a slice length disagrees with `g` and `n`.
#[allow(clippy::too_many_arguments)]
pub fn backward_weight(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    scratch: &mut [f32],
    precision: Precision,
) {
    assert_eq!(db.len(), g.c_in, "conv_transpose2d: db length");
    // db: dy is the Conv2D's x, summed per image while the pass has it in cache.
    conv2d::backward_weight_sums(g, n, dy, x, dw, Some((conv2d::BiasOf::X, db)), scratch, precision);
}

/// Whether `backward` computes both gradients in one pass at `precision`.
pub fn backward_fuses(g: &ConvGeom, precision: Precision) -> bool {
    conv2d::transposed_backward_applies(g, precision)
}

/// The layer's whole backward pass: `backward_weight`, then, where `dx` is given,
/// `backward_input_act` with its activation. Where `backward_fuses` (in f32: both models'
/// transposed layers) one pass over the images does both: each image of dy is padded once for
/// both products, and x, which both read, is read once. The same bits as the two passes.
/// # Panics
/// As `backward_weight` and `backward_input_act`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    dy: &[f32],
    w: &[f32],
    (dw, db): (&mut [f32], &mut [f32]),
    dx: Option<(&mut [f32], Activation)>,
    scratch: &mut [f32],
    precision: Precision,
) {
    match dx {
        Some((dx, act)) if backward_fuses(g, precision) => {
            let pass = conv2d::TransposedBackward { g: *g, w, x, act, dw, db, scratch };
            conv2d::transposed_backward(n, pass, conv2d::OutputGradient::Batch(dy), dx);
        }
        dx => {
            backward_weight(g, n, x, dy, dw, db, scratch, precision);
            if let Some((dx, act)) = dx {
                backward_input_act(g, n, dy, w, dx, scratch, precision, act, x);
            }
        }
    }
}

/// The backward pass of a transposed layer that the transposed layer before it runs on each
/// image (`backward_with_next`), where both fuse (`backward_fuses`): its input gradient, the
/// other layer's output gradient, then never leaves the cache as a batch.
pub struct NextBackward<'a>(conv2d::TransposedBackward<'a>, &'a [f32]);

impl<'a> NextBackward<'a> {
    /// `backward`'s arguments (dx, of `act`, computed image by image inside the other layer's
    /// pass), with `scratch` of `next_scratch_len` floats; `None` where `backward_fuses` does
    /// not hold at `precision`.
    /// # Panics
    /// If a length disagrees with `g` and `n`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        g: &ConvGeom,
        n: usize,
        x: &'a [f32],
        dy: &'a [f32],
        w: &'a [f32],
        (dw, db): (&'a mut [f32], &'a mut [f32]),
        act: Activation,
        scratch: &'a mut [f32],
        precision: Precision,
    ) -> Option<Self> {
        if !backward_fuses(g, precision) {
            return None;
        }
        assert!(scratch.len() >= next_scratch_len(g, n), "conv_transpose2d: next scratch too short");
        assert_eq!(dy.len(), n * g.x_len(), "conv_transpose2d: dy length");
        Some(NextBackward(conv2d::TransposedBackward { g: *g, w, x, act, dw, db, scratch }, dy))
    }

    /// Multiply-adds per image of one of its passes.
    pub fn macs(&self) -> usize {
        self.0.g.macs()
    }
}

/// Scratch floats of a layer whose backward pass another runs (`NextBackward`).
pub fn next_scratch_len(g: &ConvGeom, n: usize) -> usize {
    conv2d::transposed_next_scratch_len(g, n)
}

/// `backward` with an input gradient, where `backward_fuses`, with `dy` computed image by
/// image by `next`, the layer after this one, which this pass also finishes (its weight, bias
/// and input gradients). The same bits as the two layers' `backward` one after the other.
/// # Panics
/// As `backward`, or if `next`'s input is not this layer's output or `backward_fuses` fails.
#[allow(clippy::too_many_arguments)]
pub fn backward_with_next(
    g: &ConvGeom,
    n: usize,
    x: &[f32],
    w: &[f32],
    (dw, db): (&mut [f32], &mut [f32]),
    (dx, act): (&mut [f32], Activation),
    scratch: &mut [f32],
    next: NextBackward,
) {
    let pass = conv2d::TransposedBackward { g: *g, w, x, act, dw, db, scratch };
    conv2d::transposed_backward(n, pass, conv2d::OutputGradient::Next(next.0, next.1), dx);
}

/// Sizes of the uncropped "full" output along each axis, and the crop at the top/left.
pub fn full_geom(g: &ConvGeom) -> (usize, usize, usize, usize) {
    let full_h = (g.h_out - 1) * g.stride + g.k;
    let full_w = (g.w_out - 1) * g.stride + g.k;
    let crop_top = full_h.saturating_sub(g.h_in) / 2;
    let crop_left = full_w.saturating_sub(g.w_in) / 2;
    (full_h, full_w, crop_top, crop_left)
}

/// The naive twin of `forward`: scatter into the full buffer, then crop, as Keras documents it
/// (independent of the Conv2D code, so it checks the adjoint construction).
pub fn forward_naive(g: &ConvGeom, n: usize, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    let (fh, fw, ct, cl) = full_geom(g);
    let (c_out, c_in) = (g.c_in, g.c_out); // this layer's channels
    let (h_in, w_in, h_out, w_out) = (g.h_out, g.w_out, g.h_in, g.w_in);
    for img in 0..n {
        let mut full = vec![0.0f64; fh.max(h_out + ct) * fw.max(w_out + cl) * c_out];
        let fwid = fw.max(w_out + cl);
        for i in 0..h_in {
            for j in 0..w_in {
                for ci in 0..c_in {
                    let xv = x[img * h_in * w_in * c_in + (i * w_in + j) * c_in + ci] as f64;
                    for kh in 0..g.k {
                        for kw in 0..g.k {
                            for o in 0..c_out {
                                let wv = w[((kh * g.k + kw) * c_out + o) * c_in + ci] as f64;
                                full[((i * g.stride + kh) * fwid + j * g.stride + kw) * c_out + o] += xv * wv;
                            }
                        }
                    }
                }
            }
        }
        for r in 0..h_out {
            for q in 0..w_out {
                for o in 0..c_out {
                    y[img * h_out * w_out * c_out + (r * w_out + q) * c_out + o] =
                        (full[((r + ct) * fwid + q + cl) * c_out + o] + b[o] as f64) as f32;
                }
            }
        }
    }
}

/// The naive twin of `backward_input` (a plain strided correlation of dy).
pub fn backward_input_naive(g: &ConvGeom, n: usize, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    conv2d::forward_naive(g, n, dy, w, None, dx);
}

/// The naive twin of `backward_weight`.
pub fn backward_weight_naive(g: &ConvGeom, n: usize, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32]) {
    conv2d::backward_weight_naive(g, n, dy, x, dw, None);
    db.fill(0.0);
    for row in dy.chunks(g.c_in) {
        db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
    }
}
