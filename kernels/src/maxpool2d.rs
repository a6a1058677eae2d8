//! MaxPooling2D over NHWC batches: `x [n, h_in, w_in, c]`, `y [n, h_out, w_out, c]`.
//! Padded cells never win (as if -inf); on ties the first maximum in row-major window order
//! wins, as in TensorFlow. `argmax [n, h_out, w_out, c]` records, per output, the winner's
//! index within its image, so backward needs no second scan.

use crate::activation::{self, Activation};
use crate::geom::{size, PoolGeom};
use crate::isa::dispatch;
use crate::micro::Simd;
use crate::{simd, IMAGES_PER_TASK};
use rayon::prelude::*;

fn check(g: &PoolGeom, n: usize, x: usize, y: usize) {
    assert_eq!(x, size(&[n, g.x_len()]), "maxpool2d: x length");
    assert_eq!(y, size(&[n, g.y_len()]), "maxpool2d: y length");
}

/// One image: for each output pixel, scan its window in row-major order over whole channel
/// runs (contiguous in NHWC), keeping the first maximum of each channel. Dispatched once per
/// image, so the comparisons inline into the loop: dispatching each window cell's 32 channels
/// had made the pass several times slower than its memory traffic.
pub(crate) fn forward_image(g: &PoolGeom, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    dispatch!(forward_image_with(g: &PoolGeom, x: &[f32], y: &mut [f32], argmax: &mut [u32]))
}

/// # Safety
/// None beyond `dispatch!`'s (the CPU has the path's instructions).
#[inline(always)]
unsafe fn forward_image_with<S: Simd>(g: &PoolGeom, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    let c = g.c;
    for oh in 0..g.h_out {
        for ow in 0..g.w_out {
            let o = (oh * g.w_out + ow) * c;
            let (yo, ao) = (&mut y[o..o + c], &mut argmax[o..o + c]);
            let mut first = true;
            for ph in 0..g.pool {
                let Some(r) = (oh * g.stride + ph).checked_sub(g.pad_top).filter(|&r| r < g.h_in) else {
                    continue;
                };
                for pw in 0..g.pool {
                    let Some(col) = (ow * g.stride + pw).checked_sub(g.pad_left).filter(|&q| q < g.w_in) else {
                        continue;
                    };
                    let i0 = (r * g.w_in + col) * c;
                    let xs = &x[i0..i0 + c];
                    if first {
                        yo.copy_from_slice(xs);
                        ao.iter_mut().zip(i0 as u32..).for_each(|(a, i)| *a = i);
                        first = false;
                    } else {
                        simd::keep_first_max_with::<S>(xs, i0 as u32, yo, ao);
                    }
                }
            }
        }
    }
}

/// `y[n,oh,ow,c]` = max over the window of x; argmax records the winner. Overwrites both.
/// # Panics
/// If a slice length disagrees with `g` and `n`.
pub fn forward(g: &PoolGeom, n: usize, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    check(g, n, x.len(), y.len());
    assert_eq!(argmax.len(), y.len(), "maxpool2d: argmax length");
    y.par_chunks_mut(IMAGES_PER_TASK * g.y_len())
        .zip(argmax.par_chunks_mut(IMAGES_PER_TASK * g.y_len()))
        .zip(x.par_chunks(IMAGES_PER_TASK * g.x_len()))
        .for_each(|((yt, at), xt)| {
            for ((yi, ai), xi) in yt.chunks_mut(g.y_len()).zip(at.chunks_mut(g.y_len())).zip(xt.chunks(g.x_len())) {
                forward_image(g, xi, yi, ai);
            }
        });
}

/// `dx[winner of (n,oh,ow,c)] += dy[n,oh,ow,c]`, zero elsewhere. Overwrites `dx`.
/// # Panics
/// If a slice length disagrees with `g` and `n`.
pub fn backward_input(g: &PoolGeom, n: usize, dy: &[f32], argmax: &[u32], dx: &mut [f32]) {
    route_to_winners(g, n, dy, argmax, dx, None);
}

/// `backward_input` with each dy first multiplied by the gradient of `act` at its window's
/// maximum, the pooled output `y` (`activation::backward_apply`): for windows that do not
/// overlap (`stride >= pool`: each input cell gets at most one dy, and a winner's value is its
/// window's output), the same bits as `backward_input` followed by `activation::backward(act,
/// x, dx)` (finite x), while reading the pooled batch, a quarter of x for 2 x 2 windows, and
/// no second pass over dx. Overwrites `dx`.
/// # Panics
/// If a slice length disagrees with `g` and `n`, or the windows overlap.
pub fn backward_input_act(
    g: &PoolGeom,
    n: usize,
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
    act: Activation,
    y: &[f32],
) {
    assert_eq!(y.len(), dy.len(), "maxpool2d: y length");
    assert!(g.stride >= g.pool, "maxpool2d: a fused activation gradient needs windows that do not overlap");
    route_to_winners(g, n, dy, argmax, dx, Some((act, y)));
}

/// dx = each dy added at its window's winner, zero elsewhere; with `grad_of`, dy times the
/// gradient of that activation at the outputs given (through a stack buffer, a run at a time).
fn route_to_winners(
    g: &PoolGeom,
    n: usize,
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
    grad_of: Option<(Activation, &[f32])>,
) {
    /// Outputs whose dy goes through the stack buffer at a time.
    const RUN: usize = 256;
    check(g, n, dx.len(), dy.len());
    assert_eq!(argmax.len(), dy.len(), "maxpool2d: argmax length");
    let (task_in, task_out) = (IMAGES_PER_TASK * g.x_len(), IMAGES_PER_TASK * g.y_len());
    dx.par_chunks_mut(task_in).enumerate().for_each(|(t, dxt)| {
        let mut dz = [0.0f32; RUN];
        for (i, dxi) in dxt.chunks_mut(g.x_len()).enumerate() {
            dxi.fill(0.0);
            let first = t * task_out + i * g.y_len();
            for o in (first..first + g.y_len()).step_by(RUN) {
                let run = o..(o + RUN).min(first + g.y_len());
                let d = match grad_of {
                    None => &dy[run.clone()],
                    Some((act, y)) => {
                        let dz = &mut dz[..run.len()];
                        dz.copy_from_slice(&dy[run.clone()]);
                        activation::backward_apply(act, &y[run.clone()], dz);
                        &*dz
                    }
                };
                for (&v, &w) in d.iter().zip(&argmax[run]) {
                    dxi[w as usize] += v;
                }
            }
        }
    });
}

/// The naive twin of `forward` (no argmax).
pub fn forward_naive(g: &PoolGeom, n: usize, x: &[f32], y: &mut [f32]) {
    for img in 0..n {
        for oh in 0..g.h_out {
            for ow in 0..g.w_out {
                for ch in 0..g.c {
                    let mut m = f32::NEG_INFINITY;
                    for ph in 0..g.pool {
                        for pw in 0..g.pool {
                            let (r, c) = (oh * g.stride + ph, ow * g.stride + pw);
                            if r < g.pad_top || c < g.pad_left || r - g.pad_top >= g.h_in || c - g.pad_left >= g.w_in {
                                continue;
                            }
                            m = m.max(x[img * g.x_len() + ((r - g.pad_top) * g.w_in + c - g.pad_left) * g.c + ch]);
                        }
                    }
                    y[img * g.y_len() + (oh * g.w_out + ow) * g.c + ch] = m;
                }
            }
        }
    }
}

/// The naive twin of `backward_input`: finds each window's first maximum again from `x`.
pub fn backward_input_naive(g: &PoolGeom, n: usize, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    dx.fill(0.0);
    for img in 0..n {
        let xi = &x[img * g.x_len()..][..g.x_len()];
        for oh in 0..g.h_out {
            for ow in 0..g.w_out {
                for ch in 0..g.c {
                    let mut best: Option<(usize, f32)> = None;
                    for ph in 0..g.pool {
                        for pw in 0..g.pool {
                            let (r, c) = (oh * g.stride + ph, ow * g.stride + pw);
                            if r < g.pad_top || c < g.pad_left || r - g.pad_top >= g.h_in || c - g.pad_left >= g.w_in {
                                continue;
                            }
                            let i = ((r - g.pad_top) * g.w_in + c - g.pad_left) * g.c + ch;
                            if best.is_none_or(|(_, v)| xi[i] > v) {
                                best = Some((i, xi[i]));
                            }
                        }
                    }
                    if let Some((i, _)) = best {
                        dx[img * g.x_len() + i] += dy[img * g.y_len() + (oh * g.w_out + ow) * g.c + ch];
                    }
                }
            }
        }
    }
}
