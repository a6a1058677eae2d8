//! UpSampling2D (nearest) over NHWC batches by an integer factor f:
//! `x [n, h, w, c]` -> `y [n, h*f, w*f, c]`.

use crate::geom::size;
use crate::{simd, IMAGES_PER_TASK};
use rayon::prelude::*;

/// Shape of one input image and the factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpGeom {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub factor: usize,
}

impl UpGeom {
    pub fn x_len(&self) -> usize {
        size(&[self.h, self.w, self.c])
    }
    pub fn y_len(&self) -> usize {
        size(&[self.x_len(), self.factor, self.factor])
    }
}

fn check(g: &UpGeom, n: usize, x: usize, y: usize) {
    assert_eq!(x, size(&[n, g.x_len()]), "upsample2d: x length");
    assert_eq!(y, size(&[n, g.y_len()]), "upsample2d: y length");
}

/// y[n, i, j, c] = x[n, i / f, j / f, c]. Overwrites `y`.
/// # Panics
/// If a slice length disagrees with `g` and `n`.
pub fn forward(g: &UpGeom, n: usize, x: &[f32], y: &mut [f32]) {
    check(g, n, x.len(), y.len());
    let (f, c, wo) = (g.factor, g.c, g.w * g.factor);
    y.par_chunks_mut(IMAGES_PER_TASK * g.y_len()).zip(x.par_chunks(IMAGES_PER_TASK * g.x_len())).for_each(
        |(yt, xt)| {
            for (yi, xi) in yt.chunks_mut(g.y_len()).zip(xt.chunks(g.x_len())) {
                for (r, yrow) in yi.chunks_mut(wo * c).enumerate() {
                    let xrow = &xi[(r / f) * g.w * c..][..g.w * c];
                    for (q, px) in yrow.chunks_mut(c).enumerate() {
                        px.copy_from_slice(&xrow[(q / f) * c..][..c]);
                    }
                }
            }
        },
    );
}

/// dx[n, i, j, c] = sum of dy over the f x f block (i*f.., j*f..). Overwrites `dx`.
/// # Panics
/// If a slice length disagrees with `g` and `n`.
pub fn backward_input(g: &UpGeom, n: usize, dy: &[f32], dx: &mut [f32]) {
    check(g, n, dx.len(), dy.len());
    let (f, c, wo) = (g.factor, g.c, g.w * g.factor);
    dx.par_chunks_mut(IMAGES_PER_TASK * g.x_len()).zip(dy.par_chunks(IMAGES_PER_TASK * g.y_len())).for_each(
        |(dxt, dyt)| {
            for (dxi, dyi) in dxt.chunks_mut(g.x_len()).zip(dyt.chunks(g.y_len())) {
                dxi.fill(0.0);
                for (r, dyrow) in dyi.chunks(wo * c).enumerate() {
                    let dxrow = &mut dxi[(r / f) * g.w * c..][..g.w * c];
                    for (q, px) in dyrow.chunks(c).enumerate() {
                        simd::add_assign(px, &mut dxrow[(q / f) * c..][..c]);
                    }
                }
            }
        },
    );
}

/// The naive twin of `forward`.
pub fn forward_naive(g: &UpGeom, n: usize, x: &[f32], y: &mut [f32]) {
    let (ho, wo) = (g.h * g.factor, g.w * g.factor);
    for img in 0..n {
        for i in 0..ho {
            for j in 0..wo {
                for ch in 0..g.c {
                    y[img * g.y_len() + (i * wo + j) * g.c + ch] =
                        x[img * g.x_len() + ((i / g.factor) * g.w + j / g.factor) * g.c + ch];
                }
            }
        }
    }
}

/// The naive twin of `backward_input`.
pub fn backward_input_naive(g: &UpGeom, n: usize, dy: &[f32], dx: &mut [f32]) {
    let (ho, wo) = (g.h * g.factor, g.w * g.factor);
    dx.fill(0.0);
    for img in 0..n {
        for i in 0..ho {
            for j in 0..wo {
                for ch in 0..g.c {
                    dx[img * g.x_len() + ((i / g.factor) * g.w + j / g.factor) * g.c + ch] +=
                        dy[img * g.y_len() + (i * wo + j) * g.c + ch];
                }
            }
        }
    }
}
