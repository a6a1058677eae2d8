//! Every case of `tests/reference/keras_layers.json` through the fast kernels: forward output,
//! input gradient (upstream R), kernel and bias gradients, MSE, Adam (3 steps) and the tiny
//! composite autoencoder. f32 kernels vs the stored f64 Keras values: forward within
//! 1e-5 abs + 1e-4 rel, gradients within 1e-4 abs + 1e-3 rel. Each failure names its case; the
//! test counts the cases it checked per op and fails on an unknown op or a short count.
//! The convolutions and dense layers run in bf16 too, within bf16's bound of the same values
//! (`keras_close`).

mod common;

use common::{array, arrays, assert_close, case_name, dot64, number, Tol, FWD, GRAD};
use kernels::activation::{self, Activation};
use kernels::adam::{self, AdamConfig};
use kernels::bf16::Precision;
use kernels::geom::{ConvGeom, Padding, PoolGeom};
use kernels::upsample2d::UpGeom;
use kernels::{conv2d, conv_transpose2d, dense, loss, maxpool2d, upsample2d};
use serde_json::Value;
use std::collections::BTreeMap;

fn padding(case: &Value) -> Padding {
    match case["config"]["padding"].as_str() {
        Some("same") => Padding::Same,
        Some("valid") => Padding::Valid,
        p => panic!("{}: unknown padding {p:?}", case_name(case)),
    }
}

/// A square `[a, a]` config pair (kernel_size, strides, pool_size, size) as one number.
fn square(case: &Value, field: &str) -> usize {
    let v: Vec<u64> = case["config"][field]
        .as_array()
        .unwrap_or_else(|| panic!("{}: config.{field} missing", case_name(case)))
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(v.len() == 2 && v[0] == v[1], "{}: config.{field} {v:?} is not square", case_name(case));
    v[0] as usize
}

/// L = sum(output * R), checked against the stored `loss` (a cheap whole-output check).
fn check_loss(case: &Value, y: &[f32], r: &[f32]) {
    let l = dot64(y, r);
    let e = number(case, "loss");
    let tol = FWD.abs * (y.len() as f64).sqrt() + FWD.rel * e.abs();
    assert!((l - e).abs() <= tol, "{}: loss sum(y*R) {l} vs {e}", case_name(case));
}

fn conv2d_case(case: &Value) {
    let name = case_name(case);
    let (x, w, b, r) = (array(case, "input"), array(case, "kernel"), array(case, "bias"), array(case, "R"));
    let [n, h, wd, c_in] = x.shape[..] else { panic!("{name}: input not NHWC") };
    let c_out = w.shape[3];
    let (k, s) = (square(case, "kernel_size"), square(case, "strides"));
    let g = ConvGeom::new(h, wd, c_in, c_out, k, s, padding(case)).expect("geometry");
    assert_eq!(r.shape, [n, g.h_out, g.w_out, c_out], "{name}: output shape");
    let (xf, wf, bf, rf) = (x.f32(), w.f32(), b.f32(), r.f32());
    let mut scratch = vec![0.0; conv2d::scratch_len(&g, n)];
    // The sizes of each output's terms, for bf16's bound.
    let (ax, aw, ar) = (abs(&xf), abs(&wf), abs(&rf));
    let (mut my, mut mdx, mut mdw) = (vec![0.0; n * g.y_len()], vec![0.0; xf.len()], vec![0.0; wf.len()]);
    conv2d::forward_naive(&g, n, &ax, &aw, None, &mut my);
    conv2d::backward_input_naive(&g, n, &ar, &aw, &mut mdx);
    conv2d::backward_weight_naive(&g, n, &ax, &ar, &mut mdw, None);
    for p in Precision::ALL {
        let mut y = vec![0.0; n * g.y_len()];
        conv2d::forward(&g, n, &xf, &wf, Some(&bf), &mut y, &mut scratch, p);
        keras_close(name, "output", p, &y, &array(case, "output").data, FWD, &my);
        if p == Precision::F32 {
            check_loss(case, &y, &rf);
        }
        let mut dx = vec![0.0; xf.len()];
        conv2d::backward_input(&g, n, &rf, &wf, &mut dx, &mut scratch, p);
        keras_close(name, "grad_input", p, &dx, &array(case, "grad_input").data, GRAD, &mdx);
        let (mut dw, mut db) = (vec![0.0; wf.len()], vec![0.0; c_out]);
        conv2d::backward_weight(&g, n, &xf, &rf, &mut dw, Some(&mut db), &mut scratch, p);
        keras_close(name, "grad_kernel", p, &dw, &array(case, "grad_kernel").data, GRAD, &mdw);
        assert_close(name, "grad_bias", &db, &array(case, "grad_bias").data, GRAD);
    }
}

fn conv_transpose_case(case: &Value) {
    let name = case_name(case);
    let (x, w, b, r) = (array(case, "input"), array(case, "kernel"), array(case, "bias"), array(case, "R"));
    let [n, h, wd, c_in] = x.shape[..] else { panic!("{name}: input not NHWC") };
    let filters = w.shape[2];
    let (k, s) = (square(case, "kernel_size"), square(case, "strides"));
    let g = ConvGeom::transpose(h, wd, c_in, filters, k, s, padding(case)).expect("geometry");
    assert_eq!(r.shape, [n, g.h_in, g.w_in, filters], "{name}: output shape");
    let (xf, wf, bf, rf) = (x.f32(), w.f32(), b.f32(), r.f32());
    let mut scratch = vec![0.0; conv_transpose2d::scratch_len(&g, n)];
    let (ax, aw, ar) = (abs(&xf), abs(&wf), abs(&rf));
    let (mut my, mut mdx, mut mdw) = (vec![0.0; n * g.x_len()], vec![0.0; xf.len()], vec![0.0; wf.len()]);
    conv_transpose2d::forward_naive(&g, n, &ax, &aw, &vec![0.0; filters], &mut my);
    conv_transpose2d::backward_input_naive(&g, n, &ar, &aw, &mut mdx);
    conv_transpose2d::backward_weight_naive(&g, n, &ax, &ar, &mut mdw, &mut vec![0.0; filters]);
    for p in Precision::ALL {
        let mut y = vec![0.0; n * g.x_len()];
        conv_transpose2d::forward(&g, n, &xf, &wf, &bf, &mut y, &mut scratch, p);
        keras_close(name, "output", p, &y, &array(case, "output").data, FWD, &my);
        if p == Precision::F32 {
            check_loss(case, &y, &rf);
        }
        let mut dx = vec![0.0; xf.len()];
        conv_transpose2d::backward_input(&g, n, &rf, &wf, &mut dx, &mut scratch, p);
        keras_close(name, "grad_input", p, &dx, &array(case, "grad_input").data, GRAD, &mdx);
        let (mut dw, mut db) = (vec![0.0; wf.len()], vec![0.0; filters]);
        conv_transpose2d::backward_weight(&g, n, &xf, &rf, &mut dw, &mut db, &mut scratch, p);
        keras_close(name, "grad_kernel", p, &dw, &array(case, "grad_kernel").data, GRAD, &mdw);
        assert_close(name, "grad_bias", &db, &array(case, "grad_bias").data, GRAD);
    }
}

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// A pass against Keras's f64 value: within `tol` in f32; in bf16 also within bf16's bound,
/// 2^-7 + 2^-16 of the sum of the sizes of the output's terms (`magnitude`): each of a
/// product's two operands is off by up to 2^-8 of its size (8 significant bits), so the
/// product by up to (1 + 2^-8)^2 - 1 of its size.
fn keras_close(name: &str, what: &str, p: Precision, actual: &[f32], expected: &[f64], tol: Tol, magnitude: &[f32]) {
    if p == Precision::F32 {
        return assert_close(name, what, actual, expected, tol);
    }
    for (i, ((&a, &e), &m)) in actual.iter().zip(expected).zip(magnitude).enumerate() {
        let bound = (2f64.powi(-7) + 2f64.powi(-16)) * m as f64 + tol.abs + tol.rel * e.abs();
        assert!((a as f64 - e).abs() <= bound, "{name}: bf16 {what}[{i}] = {a}, Keras {e}: off by more than {bound}");
    }
}

fn maxpool_case(case: &Value) {
    let name = case_name(case);
    let (x, r) = (array(case, "input"), array(case, "R"));
    let [n, h, w, c] = x.shape[..] else { panic!("{name}: input not NHWC") };
    let g =
        PoolGeom::new(h, w, c, square(case, "pool_size"), square(case, "strides"), padding(case)).expect("geometry");
    assert_eq!(r.shape, [n, g.h_out, g.w_out, c], "{name}: output shape");
    let (xf, rf) = (x.f32(), r.f32());
    let (mut y, mut arg) = (vec![0.0; n * g.y_len()], vec![0u32; n * g.y_len()]);
    maxpool2d::forward(&g, n, &xf, &mut y, &mut arg);
    assert_close(name, "output", &y, &array(case, "output").data, FWD);
    check_loss(case, &y, &rf);
    let mut dx = vec![0.0; xf.len()];
    maxpool2d::backward_input(&g, n, &rf, &arg, &mut dx);
    assert_close(name, "grad_input", &dx, &array(case, "grad_input").data, GRAD);
}

fn upsample_case(case: &Value) {
    let name = case_name(case);
    let (x, r) = (array(case, "input"), array(case, "R"));
    let [n, h, w, c] = x.shape[..] else { panic!("{name}: input not NHWC") };
    assert_eq!(case["config"]["interpolation"].as_str(), Some("nearest"), "{name}: interpolation");
    let g = UpGeom { h, w, c, factor: square(case, "size") };
    let (xf, rf) = (x.f32(), r.f32());
    let mut y = vec![0.0; n * g.y_len()];
    upsample2d::forward(&g, n, &xf, &mut y);
    assert_close(name, "output", &y, &array(case, "output").data, FWD);
    check_loss(case, &y, &rf);
    let mut dx = vec![0.0; xf.len()];
    upsample2d::backward_input(&g, n, &rf, &mut dx);
    assert_close(name, "grad_input", &dx, &array(case, "grad_input").data, GRAD);
}

fn dense_case(case: &Value) {
    let name = case_name(case);
    let (x, w, b, r) = (array(case, "input"), array(case, "kernel"), array(case, "bias"), array(case, "R"));
    let [n, c_in] = x.shape[..] else { panic!("{name}: input not [n, features]") };
    let c_out = w.shape[1];
    let (xf, wf, bf, rf) = (x.f32(), w.f32(), b.f32(), r.f32());
    let (ax, aw, ar) = (abs(&xf), abs(&wf), abs(&rf));
    let (mut my, mut mdx, mut mdw) = (vec![0.0; n * c_out], vec![0.0; xf.len()], vec![0.0; wf.len()]);
    dense::forward_naive(n, c_in, c_out, &ax, &aw, &vec![0.0; c_out], &mut my);
    dense::backward_input_naive(n, c_in, c_out, &ar, &aw, &mut mdx);
    dense::backward_weight_naive(n, c_in, c_out, &ax, &ar, &mut mdw, &mut vec![0.0; c_out]);
    for p in Precision::ALL {
        let mut scratch = vec![0.0; dense::scratch_len(n, c_in, c_out, p)];
        let mut y = vec![0.0; n * c_out];
        dense::forward(n, c_in, c_out, &xf, &wf, &bf, &mut y, &mut scratch, p);
        keras_close(name, "output", p, &y, &array(case, "output").data, FWD, &my);
        if p == Precision::F32 {
            check_loss(case, &y, &rf);
        }
        let mut dx = vec![0.0; xf.len()];
        dense::backward_input(n, c_in, c_out, &rf, &wf, &mut dx, &mut scratch, p);
        keras_close(name, "grad_input", p, &dx, &array(case, "grad_input").data, GRAD, &mdx);
        let (mut dw, mut db) = (vec![0.0; wf.len()], vec![0.0; c_out]);
        dense::backward_weight(n, c_in, c_out, &xf, &rf, &mut dw, &mut db, &mut scratch, p);
        keras_close(name, "grad_kernel", p, &dw, &array(case, "grad_kernel").data, GRAD, &mdw);
        assert_close(name, "grad_bias", &db, &array(case, "grad_bias").data, GRAD);
    }
}

fn activation_case(case: &Value, act: Activation) {
    let name = case_name(case);
    let (x, r) = (array(case, "input"), array(case, "R"));
    let rf = r.f32();
    let mut y = x.f32();
    activation::forward(act, &mut y);
    assert_close(name, "output", &y, &array(case, "output").data, FWD);
    check_loss(case, &y, &rf);
    let mut dz = rf.clone();
    activation::backward(act, &y, &mut dz);
    assert_close(name, "grad_input", &dz, &array(case, "grad_input").data, GRAD);
}

fn mse_case(case: &Value) {
    let name = case_name(case);
    let (t, p) = (array(case, "y_true").f32(), array(case, "y_pred").f32());
    let l = loss::mse(&p, &t);
    assert_close(name, "loss", &[l as f32], &[number(case, "loss")], Tol { abs: 0.0, rel: 1e-5 });
    let mut d = vec![0.0; p.len()];
    loss::mse_backward(&p, &t, &mut d);
    assert_close(name, "grad_y_pred", &d, &array(case, "grad_y_pred").data, GRAD);
}

fn adam_case(case: &Value) {
    let name = case_name(case);
    let cfg = &case["config"];
    let f = |k: &str| cfg[k].as_f64().unwrap_or_else(|| panic!("{name}: config.{k}")) as f32;
    assert_eq!(cfg["amsgrad"].as_bool(), Some(false), "{name}: amsgrad");
    let c = AdamConfig {
        lr: f("learning_rate"),
        beta1: f("beta_1"),
        beta2: f("beta_2"),
        eps: f("epsilon"),
        weight_decay: 0.0,
    };
    let grads = arrays(case, "grads");
    let (want_p, want_m, want_v) =
        (arrays(case, "params_after_step"), arrays(case, "m_after_step"), arrays(case, "v_after_step"));
    assert_eq!(grads.len(), 3, "{name}: expected 3 steps");
    let mut p = array(case, "params0").f32();
    let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
    for (t, gk) in grads.iter().enumerate() {
        adam::step(&c, t as u64 + 1, &mut p, &gk.f32(), &mut m, &mut v);
        let step = format!("step {}", t + 1);
        assert_close(name, &format!("params {step}"), &p, &want_p[t].data, Tol { abs: 1e-6, rel: 0.0 });
        assert_close(name, &format!("m {step}"), &m, &want_m[t].data, Tol { abs: 1e-9, rel: 1e-5 });
        assert_close(name, &format!("v {step}"), &v, &want_v[t].data, Tol { abs: 1e-12, rel: 1e-4 });
    }
}

/// Conv2D(3, 3, s2, same, relu) -> Conv2DTranspose(1, 3, s2, same, sigmoid), MSE vs input.
fn composite_case(case: &Value) {
    let name = case_name(case);
    let x = array(case, "input");
    let [n, h, w, c] = x.shape[..] else { panic!("{name}: input not NHWC") };
    let (xf, k1, b1, k2, b2) = (
        x.f32(),
        array(case, "conv_kernel").f32(),
        array(case, "conv_bias").f32(),
        array(case, "convT_kernel").f32(),
        array(case, "convT_bias").f32(),
    );
    let g1 = ConvGeom::new(h, w, c, b1.len(), 3, 2, Padding::Same).expect("conv geometry");
    let g2 = ConvGeom::transpose(g1.h_out, g1.w_out, g1.c_out, b2.len(), 3, 2, Padding::Same).expect("convT geometry");
    assert_eq!((g2.h_in, g2.w_in, g2.c_in), (h, w, c), "{name}: reconstruction shape");
    let mut s1 = vec![0.0; conv2d::scratch_len(&g1, n)];
    let mut s2 = vec![0.0; conv_transpose2d::scratch_len(&g2, n)];
    // Forward: a1 [n, 4, 4, 3] (after ReLU), recon [n, 8, 8, 1] (after sigmoid).
    let mut a1 = vec![0.0; n * g1.y_len()];
    conv2d::forward(&g1, n, &xf, &k1, Some(&b1), &mut a1, &mut s1, Precision::F32);
    activation::forward(Activation::Relu, &mut a1);
    let mut recon = vec![0.0; n * g2.x_len()];
    conv_transpose2d::forward(&g2, n, &a1, &k2, &b2, &mut recon, &mut s2, Precision::F32);
    activation::forward(Activation::Sigmoid, &mut recon);
    assert_close(name, "reconstruction", &recon, &array(case, "reconstruction").data, FWD);
    let l = loss::mse(&recon, &xf);
    assert_close(name, "loss", &[l as f32], &[number(case, "loss")], FWD);
    // Backward in exact reverse order.
    let mut d_recon = vec![0.0; recon.len()];
    loss::mse_backward(&recon, &xf, &mut d_recon);
    let mut dz2 = d_recon;
    activation::backward(Activation::Sigmoid, &recon, &mut dz2);
    let (mut dk2, mut db2) = (vec![0.0; k2.len()], vec![0.0; b2.len()]);
    conv_transpose2d::backward_weight(&g2, n, &a1, &dz2, &mut dk2, &mut db2, &mut s2, Precision::F32);
    let mut da1 = vec![0.0; a1.len()];
    conv_transpose2d::backward_input(&g2, n, &dz2, &k2, &mut da1, &mut s2, Precision::F32);
    let mut dz1 = da1;
    activation::backward(Activation::Relu, &a1, &mut dz1);
    let (mut dk1, mut db1) = (vec![0.0; k1.len()], vec![0.0; b1.len()]);
    conv2d::backward_weight(&g1, n, &xf, &dz1, &mut dk1, Some(&mut db1), &mut s1, Precision::F32);
    // These gradients are ~1e-3, so the absolute part of GRAD would hide everything: tighten it.
    let tight = Tol { abs: 1e-6, rel: 1e-3 };
    assert_close(name, "grad_conv_kernel", &dk1, &array(case, "grad_conv_kernel").data, tight);
    assert_close(name, "grad_conv_bias", &db1, &array(case, "grad_conv_bias").data, tight);
    assert_close(name, "grad_convT_kernel", &dk2, &array(case, "grad_convT_kernel").data, tight);
    assert_close(name, "grad_convT_bias", &db2, &array(case, "grad_convT_bias").data, tight);
}

#[test]
fn every_keras_case_matches() {
    let file = common::keras_layers();
    let cases = file["cases"].as_array().expect("cases is a list");
    assert!(!cases.is_empty(), "keras_layers.json holds no cases");
    let mut checked: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in cases {
        let op = case["op"].as_str().unwrap_or("<no op>").to_string();
        let result = std::panic::catch_unwind(|| match op.as_str() {
            "conv2d" => conv2d_case(case),
            "conv2d_transpose" => conv_transpose_case(case),
            "max_pooling2d" => maxpool_case(case),
            "up_sampling2d" => upsample_case(case),
            "dense" => dense_case(case),
            "relu" => activation_case(case, Activation::Relu),
            "sigmoid" => activation_case(case, Activation::Sigmoid),
            "mse" => mse_case(case),
            "adam" => adam_case(case),
            "composite_autoencoder" => composite_case(case),
            other => panic!("{}: unknown op {other:?}", case_name(case)),
        });
        match result {
            Ok(()) => *checked.entry(op).or_default() += 1,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{} ({op}): {msg}", case_name(case)));
            }
        }
    }
    let total: usize = checked.values().sum();
    eprintln!("keras_reference: checked {total} of {} cases: {checked:?}", cases.len());
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
    assert!(total > 0 && total == cases.len(), "checked {total} of {} cases", cases.len());
}
