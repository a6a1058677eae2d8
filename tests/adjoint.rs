//! Adjoint checks for the linear ops: <op(x), y> == <x, backward_input(y)> to 1e-5 relative
//! (dot products in f64, deterministic data), and conv2d::backward_input equals
//! conv_transpose2d::forward (zero bias) with the same weights, for the fast kernels and for
//! the naive twins (whose conv-transpose is an independent scatter-then-crop loop).

mod common;

use common::{assert_close, dot64, Rng, Tol};
use kernels::bf16::Precision;
use kernels::geom::{ConvGeom, Padding, PoolGeom};
use kernels::upsample2d::UpGeom;
use kernels::{conv2d, conv_transpose2d, dense, maxpool2d, upsample2d};

/// |lhs - rhs| <= 1e-5 * max(|lhs|, |rhs|).
fn assert_adjoint(case: &str, lhs: f64, rhs: f64) {
    let scale = lhs.abs().max(rhs.abs());
    assert!(scale > 0.0, "{case}: both inner products are zero, the check is vacuous");
    assert!(
        (lhs - rhs).abs() <= 1e-5 * scale,
        "{case}: <op(x), y> = {lhs} but <x, op*(y)> = {rhs} (rel {:.2e})",
        (lhs - rhs).abs() / scale
    );
}

/// Conv geometries: odd and even sizes, both paddings, k < stride, k > input.
fn conv_geoms() -> Vec<(String, ConvGeom)> {
    let mut v = Vec::new();
    for &(h, w, ci, co, k, s, p) in &[
        (13, 11, 3, 5, 3, 2, Padding::Same),
        (13, 11, 3, 5, 3, 2, Padding::Valid),
        (7, 7, 2, 3, 3, 1, Padding::Same),
        (8, 8, 5, 7, 3, 2, Padding::Same),
        (9, 9, 4, 2, 1, 2, Padding::Same),   // k < stride
        (10, 9, 3, 2, 1, 2, Padding::Valid), // k < stride, trailing rows unread
        (6, 7, 2, 3, 5, 2, Padding::Same),
        (5, 5, 1, 4, 5, 1, Padding::Valid),
        (3, 4, 2, 2, 3, 1, Padding::Same),
        (1, 1, 3, 2, 3, 2, Padding::Same),
    ] {
        let g = ConvGeom::new(h, w, ci, co, k, s, p).expect("geometry");
        v.push((format!("conv {h}x{w} c{ci}->{co} k{k} s{s} {p:?}"), g));
    }
    for &(h, ci, co, k, s, p) in &[
        (7, 4, 2, 3, 2, Padding::Same),
        (5, 2, 3, 3, 2, Padding::Valid),
        (5, 2, 2, 1, 2, Padding::Same),
        (7, 3, 2, 2, 2, Padding::Valid),
        (7, 2, 2, 5, 2, Padding::Same),
    ] {
        let g = ConvGeom::transpose(h, h + 1, ci, co, k, s, p).expect("geometry");
        v.push((format!("transpose-geom {h}x{} c{ci}->{co} k{k} s{s} {p:?}", h + 1), g));
    }
    v
}

#[test]
fn conv2d_backward_input_is_the_adjoint_of_forward() {
    let mut rng = Rng::new(1);
    let n = 3;
    for (name, g) in conv_geoms() {
        let (x, w, y) = (rng.vec(n * g.x_len()), rng.vec(g.w_len()), rng.vec(n * g.y_len()));
        let mut s = vec![0.0; conv2d::scratch_len(&g, n)];
        let (mut ax, mut aty) = (vec![0.0; y.len()], vec![0.0; x.len()]);
        conv2d::forward(&g, n, &x, &w, None, &mut ax, &mut s, Precision::F32);
        conv2d::backward_input(&g, n, &y, &w, &mut aty, &mut s, Precision::F32);
        assert_adjoint(&name, dot64(&ax, &y), dot64(&x, &aty));
    }
}

#[test]
fn conv_transpose2d_backward_input_is_the_adjoint_of_forward() {
    let mut rng = Rng::new(2);
    let n = 2;
    for (name, g) in conv_geoms() {
        // Layer input [n, h_out, w_out, c_out] of g, output [n, h_in, w_in, c_in].
        let (x, w, y) = (rng.vec(n * g.y_len()), rng.vec(g.w_len()), rng.vec(n * g.x_len()));
        let b = vec![0.0; g.c_in];
        let mut s = vec![0.0; conv_transpose2d::scratch_len(&g, n)];
        let (mut ax, mut aty) = (vec![0.0; y.len()], vec![0.0; x.len()]);
        conv_transpose2d::forward(&g, n, &x, &w, &b, &mut ax, &mut s, Precision::F32);
        conv_transpose2d::backward_input(&g, n, &y, &w, &mut aty, &mut s, Precision::F32);
        assert_adjoint(&name, dot64(&ax, &y), dot64(&x, &aty));
    }
}

#[test]
fn conv2d_backward_input_equals_conv_transpose2d_forward() {
    let mut rng = Rng::new(3);
    let n = 2;
    let tol = Tol { abs: 1e-5, rel: 1e-5 };
    for (name, g) in conv_geoms() {
        let (dy, w) = (rng.vec(n * g.y_len()), rng.vec(g.w_len()));
        let b = vec![0.0; g.c_in];
        let mut s = vec![0.0; conv2d::scratch_len(&g, n)];
        let (mut dx, mut yt) = (vec![0.0; n * g.x_len()], vec![0.0; n * g.x_len()]);
        conv2d::backward_input(&g, n, &dy, &w, &mut dx, &mut s, Precision::F32);
        conv_transpose2d::forward(&g, n, &dy, &w, &b, &mut yt, &mut s, Precision::F32);
        assert_close(&name, "fast: conv2d dx vs conv_transpose2d y", &dx, &yt, tol);
        let (mut dx_n, mut yt_n) = (vec![0.0; dx.len()], vec![0.0; dx.len()]);
        conv2d::backward_input_naive(&g, n, &dy, &w, &mut dx_n);
        conv_transpose2d::forward_naive(&g, n, &dy, &w, &b, &mut yt_n);
        assert_close(&name, "naive: conv2d dx vs conv_transpose2d y", &dx_n, &yt_n, tol);
        assert_close(&name, "fast vs naive transpose", &yt, &yt_n, tol);
    }
}

#[test]
fn dense_backward_input_is_the_adjoint_of_forward() {
    let mut rng = Rng::new(4);
    for &(n, ci, co) in &[(1, 1, 1), (5, 13, 7), (19, 300, 9), (3, 49, 10)] {
        let (x, w, y) = (rng.vec(n * ci), rng.vec(ci * co), rng.vec(n * co));
        let b = vec![0.0; co];
        let (mut ax, mut aty) = (vec![0.0; y.len()], vec![0.0; x.len()]);
        dense::forward(n, ci, co, &x, &w, &b, &mut ax, &mut [], Precision::F32);
        dense::backward_input(n, ci, co, &y, &w, &mut aty, &mut [], Precision::F32);
        assert_adjoint(&format!("dense n{n} {ci}->{co}"), dot64(&ax, &y), dot64(&x, &aty));
    }
}

#[test]
fn upsample2d_backward_input_is_the_adjoint_of_forward() {
    let mut rng = Rng::new(5);
    for &(n, h, w, c, f) in &[(5, 7, 7, 3, 2), (2, 13, 11, 5, 2), (3, 4, 5, 9, 3), (1, 1, 1, 1, 1)] {
        let g = UpGeom { h, w, c, factor: f };
        let (x, y) = (rng.vec(n * g.x_len()), rng.vec(n * g.y_len()));
        let (mut ax, mut aty) = (vec![0.0; y.len()], vec![0.0; x.len()]);
        upsample2d::forward(&g, n, &x, &mut ax);
        upsample2d::backward_input(&g, n, &y, &mut aty);
        assert_adjoint(&format!("upsample n{n} {h}x{w}x{c} f{f}"), dot64(&ax, &y), dot64(&x, &aty));
    }
}

/// With the argmax fixed, max-pooling is the linear gather P x = x[argmax]; its backward must
/// be P^T.
#[test]
fn maxpool2d_backward_input_is_the_adjoint_of_the_argmax_gather() {
    let mut rng = Rng::new(6);
    for &(n, h, w, c, pool, s, p) in &[
        (5, 13, 11, 3, 2, 2, Padding::Valid),
        (5, 13, 11, 3, 2, 2, Padding::Same),
        (2, 7, 9, 5, 3, 2, Padding::Same), // overlapping windows: contributions add
        (2, 6, 6, 2, 3, 1, Padding::Valid),
    ] {
        let g = PoolGeom::new(h, w, c, pool, s, p).expect("geometry");
        let name = format!("maxpool n{n} {h}x{w}x{c} pool{pool} s{s} {p:?}");
        let (mut y, mut arg) = (vec![0.0; n * g.y_len()], vec![0u32; n * g.y_len()]);
        maxpool2d::forward(&g, n, &rng.vec(n * g.x_len()), &mut y, &mut arg);
        let (x, dy) = (rng.vec(n * g.x_len()), rng.vec(n * g.y_len()));
        let px: Vec<f32> = arg.iter().enumerate().map(|(o, &i)| x[(o / g.y_len()) * g.x_len() + i as usize]).collect();
        let mut ptdy = vec![0.0; x.len()];
        maxpool2d::backward_input(&g, n, &dy, &arg, &mut ptdy);
        assert_adjoint(&name, dot64(&px, &dy), dot64(&x, &ptdy));
    }
}
