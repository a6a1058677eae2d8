//! Finite-difference gradient checks as proptest properties, one per layer op (and conv /
//! dense followed by ReLU or sigmoid through `kernels::activation`), and Conv2D's and Dense's
//! in bf16 within bf16's bound (`conv2d_bf16_case`, `dense_bf16_case`).
//!
//! Loss: L = sum(y * r) for a random r, with y computed in f32 by the fast kernel and the sum
//! taken in f64. Each property runs 512 random cases and checks up to 16 random coordinates
//! of each of x, w and b (all of them when there are at most 16) against the central difference (L(p + h) - L(p - h)) / (p_+ - p_-), where p_± are the
//! f32-rounded perturbed values, so the step is exact.
//!
//! Tolerance: |analytic - fd| <= 1e-3 + 1e-3 |fd|. The linear ops use h = 1/4 (central
//! differences are exact for linear and quadratic functions, so only f32 rounding of y
//! remains, about 1e-5 after dividing by 2h); ReLU, sigmoid and max-pool use h = 1/64
//! (sigmoid's truncation error is about h² / 6 · |L'''| ≈ 1e-5).
//! Kinks and ties: outputs whose ReLU pre-activation is within 4h of 0 get r = 0, so no
//! perturbation (which moves a pre-activation by at most h · max(|x|, |w|, 1) = h) crosses
//! the kink inside L; max-pool inputs are distinct values 1/16 apart (> 2h), so no window's
//! winner changes.

mod common;

use common::{dot64, Rng};
use kernels::activation::{self, Activation};
use kernels::bf16::Precision;
use kernels::geom::{ConvGeom, Padding, PoolGeom};
use kernels::ssim::{ssim_naive, Window};
use kernels::upsample2d::UpGeom;
use kernels::{conv2d, conv_transpose2d, dense, loss, maxpool2d, upsample2d};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const H_LINEAR: f32 = 0.25;
const H_NONLINEAR: f32 = 1.0 / 64.0;
const COORDS: usize = 16;

fn config() -> ProptestConfig {
    // No failure-persistence files: the minimal failing input is printed instead.
    ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() }
}

/// Compares analytic gradients with central differences on up to COORDS random coordinates
/// of each parameter (every coordinate when it has fewer). `loss` maps the parameters to L.
fn gradcheck(
    params: &[Vec<f32>],
    names: &[&str],
    analytic: &[Vec<f32>],
    loss: &dyn Fn(&[Vec<f32>]) -> f64,
    h: f32,
    rng: &mut Rng,
) -> Result<(), TestCaseError> {
    let none: Vec<Vec<f32>> = analytic.iter().map(|a| vec![0.0; a.len()]).collect();
    gradcheck_within(params, names, analytic, &none, loss, h, rng)
}

/// `gradcheck` with an extra allowance per coordinate (`slack[k][i]`): bf16's bound.
fn gradcheck_within(
    params: &[Vec<f32>],
    names: &[&str],
    analytic: &[Vec<f32>],
    slack: &[Vec<f32>],
    loss: &dyn Fn(&[Vec<f32>]) -> f64,
    h: f32,
    rng: &mut Rng,
) -> Result<(), TestCaseError> {
    let mut p = params.to_vec();
    for (k, name) in names.iter().enumerate() {
        let len = p[k].len();
        let coords: Vec<usize> = if len <= COORDS {
            (0..len).collect()
        } else {
            (0..COORDS).map(|_| (rng.next_u64() % len as u64) as usize).collect()
        };
        for i in coords {
            let x0 = p[k][i];
            let (xp, xm) = (x0 + h, x0 - h);
            p[k][i] = xp;
            let lp = loss(&p);
            p[k][i] = xm;
            let lm = loss(&p);
            p[k][i] = x0;
            let fd = (lp - lm) / (xp as f64 - xm as f64);
            let a = analytic[k][i] as f64;
            prop_assert!(
                (a - fd).abs() <= 1e-3 + 1e-3 * fd.abs() + slack[k][i] as f64,
                "d{name}[{i}]: analytic {a} vs finite difference {fd} (allowance {})",
                slack[k][i]
            );
        }
    }
    Ok(())
}

/// `len` values in [0, 1], and targets correlated with them: inputs for the SSIM losses.
fn ssim_images(len: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = rng.vec(len).iter().map(|v| 0.5 + 0.5 * v).collect();
    let y = x.iter().zip(rng.vec(len)).map(|(a, r)| (0.6 * a + 0.2 * (r + 1.0)).clamp(0.0, 1.0)).collect();
    (x, y)
}

/// Every coordinate of the SSIM losses' gradient `dx` at `x` against central differences of
/// `naive_loss` (h = 1/4096), within 1e-7 + 1e-3 |fd|; `what` names the case.
fn central_differences_agree(
    x: &[f32],
    dx: &[f32],
    naive_loss: impl Fn(&[f32]) -> f64,
    what: &str,
) -> Result<(), TestCaseError> {
    let step = 1.0 / 4096.0;
    let mut p = x.to_vec();
    for i in 0..x.len() {
        let (xp, xm) = (x[i] + step, x[i] - step);
        p[i] = xp;
        let lp = naive_loss(&p);
        p[i] = xm;
        let lm = naive_loss(&p);
        p[i] = x[i];
        let fd = (lp - lm) / (xp as f64 - xm as f64);
        let a = dx[i] as f64;
        prop_assert!(
            (a - fd).abs() <= 1e-7 + 1e-3 * fd.abs(),
            "dx[{i}] of {what}: analytic {a} vs finite difference {fd}"
        );
    }
    Ok(())
}

/// r with zeros where the ReLU pre-activation z is within `margin` of the kink.
fn mask_kink(act: Activation, z: &[f32], r: &mut [f32], margin: f32) {
    if act == Activation::Relu {
        for (rv, &zv) in r.iter_mut().zip(z) {
            if zv.abs() < margin {
                *rv = 0.0;
            }
        }
    }
}

fn step_for(act: Activation) -> f32 {
    if act == Activation::Linear {
        H_LINEAR
    } else {
        H_NONLINEAR
    }
}

fn pad(same: bool) -> Padding {
    if same {
        Padding::Same
    } else {
        Padding::Valid
    }
}

/// Conv2D (+ activation): y = act(conv(x, w) + b). The arguments mirror the property's.
#[allow(clippy::too_many_arguments)]
fn conv2d_case(
    n: usize,
    h: usize,
    w: usize,
    ci: usize,
    co: usize,
    k: usize,
    s: usize,
    same: bool,
    act: Activation,
    seed: u64,
) -> Result<(), TestCaseError> {
    let Some(g) = ConvGeom::new(h, w, ci, co, k, s, pad(same)) else {
        return Err(TestCaseError::reject("valid leaves no output"));
    };
    let mut rng = Rng::new(seed);
    let (x, wt, b) = (rng.vec(n * g.x_len()), rng.vec(g.w_len()), rng.vec(co));
    let mut r = rng.vec(n * g.y_len());
    let fwd = |p: &[Vec<f32>]| {
        let mut s = vec![0.0; conv2d::scratch_len(&g, n)];
        let mut z = vec![0.0; n * g.y_len()];
        conv2d::forward(&g, n, &p[0], &p[1], Some(&p[2]), &mut z, &mut s, Precision::F32);
        z
    };
    let params = vec![x, wt, b];
    let z = fwd(&params);
    let h_step = step_for(act);
    mask_kink(act, &z, &mut r, 4.0 * h_step);
    let mut y = z.clone();
    activation::forward(act, &mut y);
    let mut dz = r.clone();
    activation::backward(act, &y, &mut dz);
    let mut s = vec![0.0; conv2d::scratch_len(&g, n)];
    let (mut dx, mut dw, mut db) = (vec![0.0; params[0].len()], vec![0.0; g.w_len()], vec![0.0; co]);
    conv2d::backward_input(&g, n, &dz, &params[1], &mut dx, &mut s, Precision::F32);
    conv2d::backward_weight(&g, n, &params[0], &dz, &mut dw, Some(&mut db), &mut s, Precision::F32);
    let loss = |p: &[Vec<f32>]| {
        let mut y = fwd(p);
        activation::forward(act, &mut y);
        dot64(&y, &r)
    };
    gradcheck(&params, &["x", "w", "b"], &[dx, dw, db], &loss, h_step, &mut rng)
}

/// Conv2D's gradients in bf16 against central differences of the f32 loss: the bf16 passes
/// compute the gradient with rounded operands, so each coordinate may differ from the exact
/// one by bf16's bound, 2^-7 + 2^-16 of the sum of its terms' sizes (each of the two operands
/// off by up to 2^-8 of its size).
/// Channel counts the bf16 kernels take (c_out in eights, pairs along c_in and c_out).
fn conv2d_bf16_case(
    n: usize,
    h: usize,
    w: usize,
    ci: usize,
    co: usize,
    s: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let g = ConvGeom::new(h, w, ci, co, 3, s, Padding::Same).expect("'same' always has an output");
    let mut rng = Rng::new(seed);
    let params = vec![rng.vec(n * g.x_len()), rng.vec(g.w_len()), rng.vec(co)];
    let r = rng.vec(n * g.y_len());
    let loss = |p: &[Vec<f32>]| {
        let mut s = vec![0.0; conv2d::scratch_len(&g, n)];
        let mut y = vec![0.0; n * g.y_len()];
        conv2d::forward(&g, n, &p[0], &p[1], Some(&p[2]), &mut y, &mut s, Precision::F32);
        dot64(&y, &r)
    };
    let mut sc = vec![0.0; conv2d::scratch_len(&g, n)];
    let (mut dx, mut dw, mut db) = (vec![0.0; params[0].len()], vec![0.0; g.w_len()], vec![0.0; co]);
    conv2d::backward_input(&g, n, &r, &params[1], &mut dx, &mut sc, Precision::Bf16);
    conv2d::backward_weight(&g, n, &params[0], &r, &mut dw, Some(&mut db), &mut sc, Precision::Bf16);
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let (mut sx, mut sw) = (vec![0.0; dx.len()], vec![0.0; dw.len()]);
    conv2d::backward_input_naive(&g, n, &abs(&r), &abs(&params[1]), &mut sx);
    conv2d::backward_weight_naive(&g, n, &abs(&params[0]), &abs(&r), &mut sw, None);
    let bound = |v: Vec<f32>| v.iter().map(|m| m * (2f32.powi(-7) + 2f32.powi(-16))).collect::<Vec<_>>();
    let slack = [bound(sx), bound(sw), vec![0.0; co]];
    gradcheck_within(&params, &["x", "w", "b"], &[dx, dw, db], &slack, &loss, H_LINEAR, &mut rng)
}

/// Dense's gradients in bf16, as `conv2d_bf16_case`: even feature counts (pairs along c_in
/// and c_out), any batch (the weight gradient pairs batch rows, an odd last one with zero).
fn dense_bf16_case(n: usize, ci: usize, co: usize, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let params = vec![rng.vec(n * ci), rng.vec(ci * co), rng.vec(co)];
    let r = rng.vec(n * co);
    let loss = |p: &[Vec<f32>]| {
        let mut y = vec![0.0; n * co];
        dense::forward(n, ci, co, &p[0], &p[1], &p[2], &mut y, &mut [], Precision::F32);
        dot64(&y, &r)
    };
    let mut sc = vec![0.0; dense::scratch_len(n, ci, co, Precision::Bf16)];
    let (mut dx, mut dw, mut db) = (vec![0.0; n * ci], vec![0.0; ci * co], vec![0.0; co]);
    dense::backward_input(n, ci, co, &r, &params[1], &mut dx, &mut sc, Precision::Bf16);
    dense::backward_weight(n, ci, co, &params[0], &r, &mut dw, &mut db, &mut sc, Precision::Bf16);
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let (mut sx, mut sw) = (vec![0.0; dx.len()], vec![0.0; dw.len()]);
    dense::backward_input_naive(n, ci, co, &abs(&r), &abs(&params[1]), &mut sx);
    dense::backward_weight_naive(n, ci, co, &abs(&params[0]), &abs(&r), &mut sw, &mut vec![0.0; co]);
    let bound = |v: Vec<f32>| v.iter().map(|m| m * (2f32.powi(-7) + 2f32.powi(-16))).collect::<Vec<_>>();
    let slack = [bound(sx), bound(sw), vec![0.0; co]];
    gradcheck_within(&params, &["x", "w", "b"], &[dx, dw, db], &slack, &loss, H_LINEAR, &mut rng)
}

fn dense_case(n: usize, ci: usize, co: usize, act: Activation, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let params = vec![rng.vec(n * ci), rng.vec(ci * co), rng.vec(co)];
    let mut r = rng.vec(n * co);
    let fwd = |p: &[Vec<f32>]| {
        let mut z = vec![0.0; n * co];
        dense::forward(n, ci, co, &p[0], &p[1], &p[2], &mut z, &mut [], Precision::F32);
        z
    };
    let z = fwd(&params);
    let h_step = step_for(act);
    mask_kink(act, &z, &mut r, 4.0 * h_step);
    let mut y = z.clone();
    activation::forward(act, &mut y);
    let mut dz = r.clone();
    activation::backward(act, &y, &mut dz);
    let (mut dx, mut dw, mut db) = (vec![0.0; n * ci], vec![0.0; ci * co], vec![0.0; co]);
    dense::backward_input(n, ci, co, &dz, &params[1], &mut dx, &mut [], Precision::F32);
    dense::backward_weight(n, ci, co, &params[0], &dz, &mut dw, &mut db, &mut [], Precision::F32);
    let loss = |p: &[Vec<f32>]| {
        let mut y = fwd(p);
        activation::forward(act, &mut y);
        dot64(&y, &r)
    };
    gradcheck(&params, &["x", "w", "b"], &[dx, dw, db], &loss, h_step, &mut rng)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn conv2d_gradients(n in 1usize..=3, h in 1usize..=9, w in 1usize..=9, ci in 1usize..=5, co in 1usize..=5,
                        k in 1usize..=3, s in 1usize..=2, same: bool, seed: u64) {
        conv2d_case(n, h, w, ci, co, k, s, same, Activation::Linear, seed)?;
    }

    #[test]
    fn conv2d_relu_gradients(n in 1usize..=3, h in 1usize..=9, w in 1usize..=9, ci in 1usize..=5, co in 1usize..=5,
                             k in 1usize..=3, s in 1usize..=2, same: bool, seed: u64) {
        conv2d_case(n, h, w, ci, co, k, s, same, Activation::Relu, seed)?;
    }

    #[test]
    fn conv2d_sigmoid_gradients(n in 1usize..=3, h in 1usize..=9, w in 1usize..=9, ci in 1usize..=5, co in 1usize..=5,
                                k in 1usize..=3, s in 1usize..=2, same: bool, seed: u64) {
        conv2d_case(n, h, w, ci, co, k, s, same, Activation::Sigmoid, seed)?;
    }

    /// bf16 gradients on the shapes the bf16 kernels take.
    #[test]
    fn conv2d_bf16_gradients(n in 1usize..=2, h in 2usize..=9, w in 2usize..=9, ci in prop::sample::select(vec![2usize, 8, 16]),
                             co in prop::sample::select(vec![8usize, 16, 32]), s in 1usize..=2, seed: u64) {
        conv2d_bf16_case(n, h, w, ci, co, s, seed)?;
    }

    /// Conv2DTranspose from an h x w input with `ci` channels to `co` filters.
    #[test]
    fn conv_transpose2d_gradients(n in 1usize..=3, h in 1usize..=9, w in 1usize..=9, ci in 1usize..=5, co in 1usize..=5,
                                  k in 1usize..=3, s in 1usize..=2, same: bool, seed: u64) {
        let g = ConvGeom::transpose(h, w, ci, co, k, s, pad(same)).expect("transpose geometry always exists");
        let mut rng = Rng::new(seed);
        // Layer input [n, h, w, ci] = [n, g.h_out, g.w_out, g.c_out]; output [n, g.h_in, g.w_in, co].
        let params = vec![rng.vec(n * g.y_len()), rng.vec(g.w_len()), rng.vec(co)];
        let r = rng.vec(n * g.x_len());
        let fwd = |p: &[Vec<f32>]| {
            let mut s = vec![0.0; conv_transpose2d::scratch_len(&g, n)];
            let mut y = vec![0.0; n * g.x_len()];
            conv_transpose2d::forward(&g, n, &p[0], &p[1], &p[2], &mut y, &mut s, Precision::F32);
            y
        };
        let mut s = vec![0.0; conv_transpose2d::scratch_len(&g, n)];
        let (mut dx, mut dw, mut db) = (vec![0.0; params[0].len()], vec![0.0; g.w_len()], vec![0.0; co]);
        conv_transpose2d::backward_input(&g, n, &r, &params[1], &mut dx, &mut s, Precision::F32);
        conv_transpose2d::backward_weight(&g, n, &params[0], &r, &mut dw, &mut db, &mut s, Precision::F32);
        gradcheck(&params, &["x", "w", "b"], &[dx, dw, db], &|p| dot64(&fwd(p), &r), H_LINEAR, &mut rng)?;
    }

    #[test]
    fn maxpool2d_gradients(n in 1usize..=3, h in 1usize..=9, w in 1usize..=9, c in 1usize..=5,
                           pool in 2usize..=3, s in 1usize..=2, same: bool, seed: u64) {
        let Some(g) = PoolGeom::new(h, w, c, pool, s, pad(same)) else {
            return Err(TestCaseError::reject("valid leaves no output"));
        };
        let mut rng = Rng::new(seed);
        // Distinct values 1/16 apart, shuffled: no ties, and a step of 1/64 changes no winner.
        let len = n * g.x_len();
        let mut x: Vec<f32> = (0..len).map(|i| (i as f32 - len as f32 / 2.0) / 16.0).collect();
        for i in (1..len).rev() {
            x.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let r = rng.vec(n * g.y_len());
        let fwd = |p: &[Vec<f32>]| {
            let (mut y, mut arg) = (vec![0.0; n * g.y_len()], vec![0u32; n * g.y_len()]);
            maxpool2d::forward(&g, n, &p[0], &mut y, &mut arg);
            (y, arg)
        };
        let params = vec![x];
        let (_, arg) = fwd(&params);
        let mut dx = vec![0.0; len];
        maxpool2d::backward_input(&g, n, &r, &arg, &mut dx);
        gradcheck(&params, &["x"], &[dx], &|p| dot64(&fwd(p).0, &r), H_NONLINEAR, &mut rng)?;
    }

    #[test]
    fn upsample2d_gradients(n in 1usize..=3, h in 1usize..=9, w in 1usize..=9, c in 1usize..=5,
                            factor in 1usize..=3, seed: u64) {
        let g = UpGeom { h, w, c, factor };
        let mut rng = Rng::new(seed);
        let params = vec![rng.vec(n * g.x_len())];
        let r = rng.vec(n * g.y_len());
        let fwd = |p: &[Vec<f32>]| {
            let mut y = vec![0.0; n * g.y_len()];
            upsample2d::forward(&g, n, &p[0], &mut y);
            y
        };
        let mut dx = vec![0.0; params[0].len()];
        upsample2d::backward_input(&g, n, &r, &mut dx);
        gradcheck(&params, &["x"], &[dx], &|p| dot64(&fwd(p), &r), H_LINEAR, &mut rng)?;
    }

    #[test]
    fn dense_gradients(n in 1usize..=3, ci in 1usize..=40, co in 1usize..=12, seed: u64) {
        dense_case(n, ci, co, Activation::Linear, seed)?;
    }

    #[test]
    fn dense_relu_gradients(n in 1usize..=3, ci in 1usize..=40, co in 1usize..=12, seed: u64) {
        dense_case(n, ci, co, Activation::Relu, seed)?;
    }

    /// bf16 gradients: output widths in 16s (native where the CPU has AVX512-BF16) and not.
    #[test]
    fn dense_bf16_gradients(n in 1usize..=5, ci in prop::sample::select(vec![2usize, 8, 40]),
                            co in prop::sample::select(vec![2usize, 16, 32]), seed: u64) {
        dense_bf16_case(n, ci, co, seed)?;
    }

    #[test]
    fn dense_sigmoid_gradients(n in 1usize..=3, ci in 1usize..=40, co in 1usize..=12, seed: u64) {
        dense_case(n, ci, co, Activation::Sigmoid, seed)?;
    }

    /// The SSIM loss (1 − mean SSIM over the batch) against central differences of the naive
    /// SSIM, on every coordinate: images in [0, 1], targets correlated with them, h = 1/4096.
    /// Its gradients are ~1/(n · window positions) in size, so the tolerance is relative:
    /// |analytic − fd| <= 1e-7 + 1e-3 |fd| (the truncation error is about h² |L'''| / 6).
    #[test]
    fn ssim_loss_gradients(n in 1usize..=3, dh in 0usize..=5, dw in 0usize..=5, gaussian: bool, seed: u64) {
        let window = if gaussian { Window::Gaussian11 } else { Window::Uniform7 };
        let (h, w) = (window.size() + dh, window.size() + dw);
        let (x, y) = ssim_images(n * h * w, seed);
        let naive_loss = |x: &[f32]| {
            let total: f64 = x.chunks(h * w).zip(y.chunks(h * w)).map(|(a, b)| ssim_naive(window, a, b, h, w)).sum();
            1.0 - total / n as f64
        };
        let mut dx = vec![0.0; x.len()];
        let mut scratch = vec![0.0; loss::ssim_scratch_len(window, h, w)];
        let value = loss::ssim(window, &x, &y, h, w, &mut dx, &mut scratch);
        prop_assert!((value - naive_loss(&x)).abs() <= 1e-12, "loss {value} vs naive {}", naive_loss(&x));
        central_differences_agree(&x, &dx, naive_loss, &format!("{n}x{h}x{w} {window:?}"))?;
    }

    /// The mixed loss (MSE + weight (1 − SSIM averaged over both windows)) against central
    /// differences of the naive MSE and SSIMs, on every coordinate, with the tolerance of
    /// `ssim_loss_gradients` (the MSE part is quadratic, so its differences are exact but for
    /// rounding).
    #[test]
    fn mse_ssim_loss_gradients(n in 1usize..=2, dh in 0usize..=3, dw in 0usize..=3, weight in 0.01f64..=1.0, seed: u64) {
        let (h, w) = (11 + dh, 11 + dw);
        let (x, y) = ssim_images(n * h * w, seed);
        let naive_loss = |x: &[f32]| {
            let sq: f64 = x.iter().zip(&y).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
            let total: f64 = x
                .chunks(h * w)
                .zip(y.chunks(h * w))
                .map(|(a, b)| ssim_naive(Window::Gaussian11, a, b, h, w) + ssim_naive(Window::Uniform7, a, b, h, w))
                .sum();
            sq / x.len() as f64 + weight * (1.0 - total / (2 * n) as f64)
        };
        let mut dx = vec![0.0; x.len()];
        let mut scratch = vec![0.0; loss::mse_ssim_scratch_len(h, w)];
        let value = loss::mse_ssim(weight, &x, &y, h, w, &mut dx, &mut scratch);
        // The kernel's MSE takes differences in f32: relative rounding about 1e-7.
        prop_assert!((value - naive_loss(&x)).abs() <= 1e-12 + 1e-6 * value.abs(), "loss {value} vs naive {}", naive_loss(&x));
        central_differences_agree(&x, &dx, naive_loss, &format!("{n}x{h}x{w}, weight {weight}"))?;
    }
}
