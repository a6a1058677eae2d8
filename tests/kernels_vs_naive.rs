//! Every fast kernel pass equals its naive twin on awkward sizes (13x11 images, 5/7/9
//! channels, batch 5 which is not a multiple of IMAGES_PER_TASK = 4) and, for the convs, on
//! the two models' real layer shapes at batch 2. Naive twins accumulate in f64, so the fast
//! f32 result may differ by rounding: weights are scaled by 1/sqrt(fan-in) so values are O(1),
//! and the tolerance is 1e-4 abs + 1e-4 rel. Also: conv2d::backward_weight is bitwise
//! identical on 1 and 2 rayon threads.

mod common;

use common::{assert_bitwise, assert_close, on_threads, Rng, Tol};
use kernels::activation::{self, Activation};
use kernels::adam::{self, AdamConfig};
use kernels::bf16::Precision;
use kernels::gemm::{gemm, gemm_naive, Mat};
use kernels::geom::{ConvGeom, Padding, PoolGeom};
use kernels::upsample2d::UpGeom;
use kernels::{conv2d, conv_transpose2d, dense, maxpool2d, upsample2d};

const TOL: Tol = Tol { abs: 1e-4, rel: 1e-4 };

fn scaled(rng: &mut Rng, len: usize, fan_in: usize) -> Vec<f32> {
    let s = 1.0 / (fan_in as f32).sqrt();
    rng.vec(len).into_iter().map(|v| v * s).collect()
}

fn awkward_convs() -> Vec<(usize, ConvGeom)> {
    let mut v = Vec::new();
    for &(n, h, w, ci, co, k, s) in &[
        (5, 13, 11, 5, 7, 3, 1),
        (5, 13, 11, 7, 9, 3, 2),
        (5, 13, 11, 9, 5, 1, 2),
        (5, 11, 13, 1, 7, 2, 1),
        (2, 9, 9, 3, 3, 5, 2),
        (1, 3, 2, 5, 5, 3, 2),
        // Winograd's (3 x 3, stride 1, channels in sixteens, even outputs), 'valid' as well.
        (3, 10, 12, 16, 32, 3, 1),
    ] {
        for p in [Padding::Same, Padding::Valid] {
            if let Some(g) = ConvGeom::new(h, w, ci, co, k, s, p) {
                v.push((n, g));
            }
        }
    }
    v
}

/// (name, geometry) for every conv layer of the baseline and modified models (a transposed
/// layer's geometry is that of the conv whose input gradient it is).
fn real_convs() -> Vec<(&'static str, ConvGeom)> {
    let c = |h, ci, co, s| ConvGeom::new(h, h, ci, co, 3, s, Padding::Same).expect("geometry");
    let t = |h, ci, co, s| ConvGeom::transpose(h, h, ci, co, 3, s, Padding::Same).expect("geometry");
    vec![
        ("baseline conv 1->32 28x28", c(28, 1, 32, 1)),
        ("baseline conv 32->32 28x28", c(28, 32, 32, 1)),
        ("baseline conv 32->1 28x28", c(28, 32, 1, 1)),
        ("modified conv 1->32 s2 28->14", c(28, 1, 32, 2)),
        ("modified conv 32->64 s2 14->7", c(14, 32, 64, 2)),
        ("modified conv 64->128 7x7", c(7, 64, 128, 1)),
        ("modified convT 128->128 s2 7->14", t(7, 128, 128, 2)),
        ("modified convT 128->64 s2 14->28", t(14, 128, 64, 2)),
        ("modified convT 64->1 28x28", t(28, 64, 1, 1)),
    ]
}

fn check_conv2d(name: &str, n: usize, g: &ConvGeom, rng: &mut Rng) {
    let x = rng.vec(n * g.x_len());
    let w = scaled(rng, g.w_len(), g.patch_len());
    let b = rng.vec(g.c_out);
    let dy = rng.vec(n * g.y_len());
    let mut s = vec![0.0; conv2d::scratch_len(g, n)];
    let (mut y, mut y_n) = (vec![0.0; dy.len()], vec![0.0; dy.len()]);
    conv2d::forward(g, n, &x, &w, Some(&b), &mut y, &mut s, Precision::F32);
    conv2d::forward_naive(g, n, &x, &w, Some(&b), &mut y_n);
    assert_close(name, "conv2d forward", &y, &y_n, TOL);
    conv2d::forward(g, n, &x, &w, None, &mut y, &mut s, Precision::F32);
    conv2d::forward_naive(g, n, &x, &w, None, &mut y_n);
    assert_close(name, "conv2d forward (no bias)", &y, &y_n, TOL);
    let (mut dx, mut dx_n) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    conv2d::backward_input(g, n, &dy, &w, &mut dx, &mut s, Precision::F32);
    conv2d::backward_input_naive(g, n, &dy, &w, &mut dx_n);
    assert_close(name, "conv2d backward_input", &dx, &dx_n, TOL);
    let (mut dw, mut dw_n, mut db, mut db_n) =
        (vec![0.0; w.len()], vec![0.0; w.len()], vec![0.0; b.len()], vec![0.0; b.len()]);
    conv2d::backward_weight(g, n, &x, &dy, &mut dw, Some(&mut db), &mut s, Precision::F32);
    conv2d::backward_weight_naive(g, n, &x, &dy, &mut dw_n, Some(&mut db_n));
    assert_close(name, "conv2d backward_weight dw", &dw, &dw_n, TOL);
    assert_close(name, "conv2d backward_weight db", &db, &db_n, TOL);
    // Without db the dw must be the same.
    let mut dw2 = vec![0.0; w.len()];
    conv2d::backward_weight(g, n, &x, &dy, &mut dw2, None, &mut s, Precision::F32);
    assert_bitwise(name, "conv2d backward_weight dw with vs without db", &dw, &dw2);
}

/// `g` from `ConvGeom::transpose`: layer input [n, g.h_out, g.w_out, g.c_out], output
/// [n, g.h_in, g.w_in, g.c_in].
fn check_conv_transpose2d(name: &str, n: usize, g: &ConvGeom, rng: &mut Rng) {
    let x = rng.vec(n * g.y_len());
    let w = scaled(rng, g.w_len(), g.k * g.k * g.c_out);
    let b = rng.vec(g.c_in);
    let dy = rng.vec(n * g.x_len());
    let mut s = vec![0.0; conv_transpose2d::scratch_len(g, n)];
    let (mut y, mut y_n) = (vec![0.0; dy.len()], vec![0.0; dy.len()]);
    conv_transpose2d::forward(g, n, &x, &w, &b, &mut y, &mut s, Precision::F32);
    conv_transpose2d::forward_naive(g, n, &x, &w, &b, &mut y_n);
    assert_close(name, "conv_transpose2d forward", &y, &y_n, TOL);
    let (mut dx, mut dx_n) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    conv_transpose2d::backward_input(g, n, &dy, &w, &mut dx, &mut s, Precision::F32);
    conv_transpose2d::backward_input_naive(g, n, &dy, &w, &mut dx_n);
    assert_close(name, "conv_transpose2d backward_input", &dx, &dx_n, TOL);
    let (mut dw, mut dw_n, mut db, mut db_n) =
        (vec![0.0; w.len()], vec![0.0; w.len()], vec![0.0; b.len()], vec![0.0; b.len()]);
    conv_transpose2d::backward_weight(g, n, &x, &dy, &mut dw, &mut db, &mut s, Precision::F32);
    conv_transpose2d::backward_weight_naive(g, n, &x, &dy, &mut dw_n, &mut db_n);
    assert_close(name, "conv_transpose2d backward_weight dw", &dw, &dw_n, TOL);
    assert_close(name, "conv_transpose2d backward_weight db", &db, &db_n, TOL);
}

#[test]
fn conv2d_fast_equals_naive_on_awkward_sizes() {
    let mut rng = Rng::new(10);
    for (n, g) in awkward_convs() {
        check_conv2d(&format!("n{n} {g:?}"), n, &g, &mut rng);
    }
}

#[test]
fn conv_transpose2d_fast_equals_naive_on_awkward_sizes() {
    let mut rng = Rng::new(11);
    for &(n, h, w, ci, co, k, s) in &[
        (5, 13, 11, 5, 7, 3, 2),
        (5, 11, 13, 7, 9, 3, 1),
        (5, 7, 9, 9, 5, 1, 2), // k < stride: trailing rows are bias only
        (5, 6, 7, 3, 5, 2, 2),
        (2, 7, 7, 3, 3, 5, 2),
    ] {
        for p in [Padding::Same, Padding::Valid] {
            let g = ConvGeom::transpose(h, w, ci, co, k, s, p).expect("geometry");
            check_conv_transpose2d(&format!("n{n} {h}x{w} c{ci}->{co} k{k} s{s} {p:?}"), n, &g, &mut rng);
        }
    }
}

#[test]
fn convs_fast_equal_naive_on_the_models_real_shapes() {
    let mut rng = Rng::new(12);
    for (name, g) in real_convs() {
        if name.contains("convT") {
            check_conv_transpose2d(name, 2, &g, &mut rng);
        } else {
            check_conv2d(name, 2, &g, &mut rng);
        }
    }
}

#[test]
fn maxpool2d_fast_equals_naive() {
    let mut rng = Rng::new(13);
    for &(n, h, w, c, pool, s) in
        &[(5, 13, 11, 5, 2, 2), (5, 13, 11, 7, 3, 2), (5, 11, 13, 9, 2, 1), (2, 28, 28, 32, 2, 2)]
    {
        for p in [Padding::Same, Padding::Valid] {
            let g = PoolGeom::new(h, w, c, pool, s, p).expect("geometry");
            let name = format!("maxpool n{n} {h}x{w}x{c} pool{pool} s{s} {p:?}");
            let (x, dy) = (rng.vec(n * g.x_len()), rng.vec(n * g.y_len()));
            let (mut y, mut y_n, mut arg) = (vec![0.0; dy.len()], vec![0.0; dy.len()], vec![0u32; dy.len()]);
            maxpool2d::forward(&g, n, &x, &mut y, &mut arg);
            maxpool2d::forward_naive(&g, n, &x, &mut y_n);
            assert_bitwise(&name, "forward", &y, &y_n);
            let (mut dx, mut dx_n) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            maxpool2d::backward_input(&g, n, &dy, &arg, &mut dx);
            maxpool2d::backward_input_naive(&g, n, &x, &dy, &mut dx_n);
            assert_close(&name, "backward_input", &dx, &dx_n, Tol { abs: 1e-6, rel: 1e-6 });
            if s < pool {
                continue;
            }
            // With the input's activation gradient fused in, from the pooled outputs: the same
            // bits as the two passes (x = act(z) made of the same values).
            for act in [Activation::Relu, Activation::Sigmoid] {
                let mut x_act = x.clone();
                activation::forward(act, &mut x_act);
                maxpool2d::forward(&g, n, &x_act, &mut y, &mut arg);
                let (mut fused, mut two) = (vec![0.0; x.len()], vec![0.0; x.len()]);
                maxpool2d::backward_input_act(&g, n, &dy, &arg, &mut fused, act, &y);
                maxpool2d::backward_input(&g, n, &dy, &arg, &mut two);
                activation::backward(act, &x_act, &mut two);
                assert_bitwise(&name, &format!("backward_input_act {act:?}"), &fused, &two);
            }
        }
    }
}

#[test]
fn maxpool2d_ties_go_to_the_first_maximum_in_both() {
    // All-equal input: every window ties, TF gives the gradient to the first (top-left) cell.
    // 11 channels: a vector of 8 and a scalar tail.
    let g = PoolGeom::new(5, 5, 11, 2, 2, Padding::Same).expect("geometry");
    let n = 5;
    let x = vec![0.5; n * g.x_len()];
    let dy: Vec<f32> = (0..n * g.y_len()).map(|i| i as f32).collect();
    let (mut y, mut arg) = (vec![0.0; dy.len()], vec![0u32; dy.len()]);
    maxpool2d::forward(&g, n, &x, &mut y, &mut arg);
    let (mut dx, mut dx_n) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    maxpool2d::backward_input(&g, n, &dy, &arg, &mut dx);
    maxpool2d::backward_input_naive(&g, n, &x, &dy, &mut dx_n);
    assert_bitwise("all ties", "backward_input", &dx, &dx_n);
    // Output (oh, ow) of image 0, channel 0 lands on input (2 oh, 2 ow).
    assert_eq!(arg[(g.w_out + 1) * g.c], ((2 * g.w_in + 2) * g.c) as u32);
}

#[test]
fn upsample2d_fast_equals_naive() {
    let mut rng = Rng::new(14);
    for &(n, h, w, c, f) in &[(5, 13, 11, 5, 2), (5, 7, 7, 9, 3), (2, 14, 14, 32, 2), (1, 1, 1, 1, 1)] {
        let g = UpGeom { h, w, c, factor: f };
        let name = format!("upsample n{n} {h}x{w}x{c} f{f}");
        let (x, dy) = (rng.vec(n * g.x_len()), rng.vec(n * g.y_len()));
        let (mut y, mut y_n) = (vec![0.0; dy.len()], vec![0.0; dy.len()]);
        upsample2d::forward(&g, n, &x, &mut y);
        upsample2d::forward_naive(&g, n, &x, &mut y_n);
        assert_bitwise(&name, "forward", &y, &y_n);
        let (mut dx, mut dx_n) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        upsample2d::backward_input(&g, n, &dy, &mut dx);
        upsample2d::backward_input_naive(&g, n, &dy, &mut dx_n);
        assert_close(&name, "backward_input", &dx, &dx_n, Tol { abs: 1e-6, rel: 1e-6 });
    }
}

#[test]
fn dense_fast_equals_naive() {
    let mut rng = Rng::new(15);
    // Rows: 19 and 37 leave tails after 8-row and 4-row tiles, 37 crosses ROWS_PER_TASK = 32.
    // Columns: 7, 9 and 27 = 16 + 8 + 3 take every tile width and the scalar tail. Inner sizes:
    // 300 crosses KC = 256 and W_ROWS_PER_TASK = 64; 1030 crosses KC_T = 512 twice, with a
    // last block shorter than 8 lanes.
    let cases = [(5, 13, 7), (19, 300, 9), (37, 300, 27), (6, 10, 1030), (1, 1, 1), (2, 6272, 128), (2, 128, 6272)];
    for &(n, ci, co) in &cases {
        let name = format!("dense n{n} {ci}->{co}");
        let (x, w, b, dy) = (rng.vec(n * ci), scaled(&mut rng, ci * co, ci), rng.vec(co), rng.vec(n * co));
        // The fast outputs start as NaN: every kernel overwrites its outputs.
        let (mut y, mut y_n) = (vec![f32::NAN; dy.len()], vec![0.0; dy.len()]);
        dense::forward(n, ci, co, &x, &w, &b, &mut y, &mut [], Precision::F32);
        dense::forward_naive(n, ci, co, &x, &w, &b, &mut y_n);
        assert_close(&name, "forward", &y, &y_n, TOL);
        let (mut dx, mut dx_n) = (vec![f32::NAN; x.len()], vec![0.0; x.len()]);
        dense::backward_input(n, ci, co, &dy, &w, &mut dx, &mut [], Precision::F32);
        dense::backward_input_naive(n, ci, co, &dy, &w, &mut dx_n);
        assert_close(&name, "backward_input", &dx, &dx_n, TOL);
        let (mut dw, mut dw_n, mut db, mut db_n) =
            (vec![f32::NAN; w.len()], vec![0.0; w.len()], vec![f32::NAN; co], vec![0.0; co]);
        dense::backward_weight(n, ci, co, &x, &dy, &mut dw, &mut db, &mut [], Precision::F32);
        dense::backward_weight_naive(n, ci, co, &x, &dy, &mut dw_n, &mut db_n);
        assert_close(&name, "backward_weight dw", &dw, &dw_n, TOL);
        assert_close(&name, "backward_weight db", &db, &db_n, TOL);
    }
}

#[test]
fn activations_fast_equal_naive() {
    let mut rng = Rng::new(16);
    for len in [1, 7, 8, 13, 1000 + 5] {
        // Include exact zeros and large magnitudes (sigmoid's stable branches).
        let mut z: Vec<f32> = rng.vec(len).into_iter().map(|v| v * 12.0).collect();
        z[0] = 0.0;
        let dy = rng.vec(len);
        for act in [Activation::Linear, Activation::Relu, Activation::Sigmoid] {
            let name = format!("{act:?} len {len}");
            let (mut y, mut y_n) = (z.clone(), z.clone());
            activation::forward(act, &mut y);
            activation::forward_naive(act, &mut y_n);
            assert_close(&name, "forward", &y, &y_n, Tol { abs: 1e-7, rel: 1e-6 });
            let (mut dz, mut dz_n) = (dy.clone(), dy.clone());
            activation::backward(act, &y, &mut dz);
            activation::backward_naive(act, &y, &mut dz_n);
            assert_close(&name, "backward", &dz, &dz_n, Tol { abs: 1e-7, rel: 1e-6 });
        }
    }
}

#[test]
fn adam_fast_equals_naive() {
    let mut rng = Rng::new(17);
    let plain = AdamConfig::default();
    let decayed = AdamConfig { lr: 0.01, weight_decay: 0.05, ..plain };
    // 16384 + 13 crosses the parallel CHUNK and leaves a scalar tail.
    for (c, len) in [plain, decayed].into_iter().flat_map(|c| [1, 13, (1 << 14) + 13].map(|len| (c, len))) {
        let mut p = rng.vec(len);
        let (mut m, mut v) = (vec![0.0; len], vec![0.0; len]);
        let (mut p_n, mut m_n, mut v_n) = (p.clone(), m.clone(), v.clone());
        for t in 1..=3u64 {
            let g: Vec<f32> = rng.vec(len).into_iter().map(|v| v * 10f32.powi((t as i32) - 3)).collect();
            adam::step(&c, t, &mut p, &g, &mut m, &mut v);
            adam::step_naive(&c, t, &mut p_n, &g, &mut m_n, &mut v_n);
            let name = format!("adam len {len} step {t} weight_decay {}", c.weight_decay);
            let tol = Tol { abs: 1e-7, rel: 1e-6 };
            assert_close(&name, "p", &p, &p_n, tol);
            assert_close(&name, "m", &m, &m_n, tol);
            assert_close(&name, "v", &v, &v_n, Tol { abs: 1e-12, rel: 1e-6 });
        }
    }
}

/// Keras's decoupled weight decay: with a zero gradient the Adam term is 0, so one step only
/// shrinks every parameter by p * wd * lr.
#[test]
fn adam_weight_decay_shrinks_by_wd_times_lr() {
    let c = AdamConfig { lr: 0.01, weight_decay: 0.05, ..AdamConfig::default() };
    let p0: Vec<f32> = Rng::new(19).vec(37);
    let mut p = p0.clone();
    let (mut m, mut v) = (vec![0.0; 37], vec![0.0; 37]);
    adam::step(&c, 1, &mut p, &[0.0; 37], &mut m, &mut v);
    let want: Vec<f32> = p0.iter().map(|&x| x - x * (0.05f32 * 0.01)).collect();
    assert_bitwise("adam weight decay", "p", &p, &want);
    assert!(p.iter().zip(&p0).all(|(a, b)| a.abs() < b.abs() || *b == 0.0), "no shrink");
}

#[test]
fn gemm_fast_equals_naive_with_transposed_views() {
    let mut rng = Rng::new(18);
    for &(m, k, n) in &[(13, 7, 9), (1, 1, 1), (5, 33, 3), (17, 288, 32)] {
        let a = rng.vec(m * k);
        let b = rng.vec(k * n);
        let c0 = rng.vec(m * n);
        let views = |ta: bool, tb: bool| {
            let av = if ta { Mat::t(&a, m, k) } else { Mat::rows(&a, m, k) };
            let bv = if tb { Mat::t(&b, k, n) } else { Mat::rows(&b, k, n) };
            (av, bv)
        };
        for ta in [false, true] {
            for tb in [false, true] {
                for beta in [0.0f32, 1.0, 0.5] {
                    let name = format!("gemm {m}x{k}x{n} ta={ta} tb={tb} beta={beta}");
                    let (av, bv) = views(ta, tb);
                    let (mut c, mut c_n) = (c0.clone(), c0.clone());
                    gemm(av, bv, beta, &mut c);
                    gemm_naive(av, bv, beta, &mut c_n);
                    assert_close(&name, "C", &c, &c_n, Tol { abs: 1e-4, rel: 1e-5 });
                }
            }
        }
    }
}

#[test]
fn dense_passes_are_bitwise_identical_on_1_2_and_3_threads() {
    // The forward pass and the input gradient's dot products take a task per thread: 100 rows
    // in one task, two of 50, or tasks of 34, 34 and 32. Output widths for the broadcast tiles
    // (128), the dot products (1000) and the rest (40).
    let mut rng = Rng::new(23);
    let n = 100;
    for (ci, co) in [(300, 128), (70, 1000), (50, 40)] {
        let (x, w, b, dy) = (rng.vec(n * ci), rng.vec(ci * co), rng.vec(co), rng.vec(n * co));
        let run = |threads: usize| {
            on_threads(threads, || {
                let (mut y, mut dx) = (vec![0.0; n * co], vec![0.0; n * ci]);
                let (mut dw, mut db) = (vec![0.0; ci * co], vec![0.0; co]);
                dense::forward(n, ci, co, &x, &w, &b, &mut y, &mut [], Precision::F32);
                dense::backward_input(n, ci, co, &dy, &w, &mut dx, &mut [], Precision::F32);
                dense::backward_weight(n, ci, co, &x, &dy, &mut dw, &mut db, &mut [], Precision::F32);
                [y, dx, dw, db]
            })
        };
        let one = run(1);
        for threads in [2, 3] {
            let other = run(threads);
            for (what, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(one.iter().zip(&other)) {
                assert_bitwise(&format!("dense {n}x{ci}->{co}"), &format!("{what} 1 vs {threads} threads"), a, b);
            }
        }
    }
}

#[test]
fn conv2d_backward_weight_is_bitwise_identical_on_1_and_2_threads() {
    let mut rng = Rng::new(19);
    let geoms = [
        (9, ConvGeom::new(13, 11, 5, 7, 3, 2, Padding::Same).expect("geometry")),
        (8, ConvGeom::new(28, 28, 32, 32, 3, 1, Padding::Same).expect("geometry")),
    ];
    for (n, g) in geoms {
        let (x, dy) = (rng.vec(n * g.x_len()), rng.vec(n * g.y_len()));
        let run = |threads: usize| {
            on_threads(threads, || {
                let mut s = vec![0.0; conv2d::scratch_len(&g, n)];
                let (mut dw, mut db) = (vec![0.0; g.w_len()], vec![0.0; g.c_out]);
                conv2d::backward_weight(&g, n, &x, &dy, &mut dw, Some(&mut db), &mut s, Precision::F32);
                (dw, db)
            })
        };
        let ((dw1, db1), (dw2, db2)) = (run(1), run(2));
        let name = format!("n{n} {g:?}");
        assert_bitwise(&name, "dw 1 vs 2 threads", &dw1, &dw2);
        assert_bitwise(&name, "db 1 vs 2 threads", &db1, &db2);
    }
}
