//! Each conv2d and dense pass, and each elementwise pass, equals its naive twin on every kernel path this CPU has
//! (`kernels::isa`: AVX-512, AVX2, portable) and on the shapes the dispatch treats apart:
//! stride 1 and 2, wide (c_out % 8 == 0; blocks of 4, 2 and 1 vectors; channel counts that
//! AVX-512 hands to AVX2) and narrow outputs, 'same' and 'valid', odd sizes. One test function, so switching the process-wide path races with nothing.

mod common;

use common::{assert_bitwise, assert_close, Rng, Tol};
use kernels::activation::{self, Activation};
use kernels::adam::{self, AdamConfig};
use kernels::bf16::Precision;
use kernels::geom::PoolGeom;
use kernels::geom::{ConvGeom, Padding};
use kernels::isa::{set_kernel_path, KernelPath};
use kernels::{amx, conv2d, conv_transpose2d, dense, maxpool2d};

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u32) -> Vec<f32> {
    Rng::new(seed as u64).vec(len)
}

/// Fast against naive, to 1e-4 absolute plus 1e-4 relative.
fn close(what: &str, a: &[f32], b: &[f32]) {
    assert_close(what, "fast vs naive", a, b, Tol { abs: 1e-4, rel: 1e-4 });
}

#[test]
fn every_pass_matches_naive_on_each_path() {
    let paths = KernelPath::supported();
    assert!(paths.contains(&KernelPath::Portable), "the portable path runs everywhere");
    let mut first_bf16: Vec<(String, Vec<f32>)> = Vec::new();
    let mut avx512_tiled: Vec<(String, Vec<f32>)> = Vec::new();
    for path in paths {
        set_kernel_path(path).expect("a supported path");
        fused_activation_cases(path);
        next_layer_cases(path);
        elementwise_cases(path);
        // The tiled f32 passes sum each output in the same order on AVX-512 (tall tiles of up
        // to 14 rows along image rows, rows 12 at a time in the weight gradient) as on AVX2
        // (6 rows, 8 lanes): the same bits, not just close to the naive twins.
        let tiled = conv_cases(path);
        match path {
            KernelPath::Avx512 => avx512_tiled = tiled,
            KernelPath::Avx2 => {
                for ((name, a), (_, b)) in tiled.iter().zip(&avx512_tiled) {
                    assert_bitwise(name, "f32 on avx2 vs on avx512", a, b);
                }
            }
            KernelPath::Portable => {}
        }
        dense_cases(path);
        // bf16 gives the same bits on every path: natively (AVX-512 with AVX512-BF16) and
        // emulated (every other path, and channel counts the native kernel does not take).
        // AMX adds its products in an order of its own: its passes are held to the
        // fast-vs-naive tolerance of a different order of the sums (1e-4 absolute plus
        // relative; a wrong tap or channel is off by the size of a product) against
        // `VDPBF16PS`'s, and the other passes are the same bits.
        let mut bf16 = bf16_cases(path);
        if amx::available() {
            amx::set_enabled(false);
            let vdpbf16ps = bf16_cases(path);
            amx::set_enabled(true);
            for ((name, a), (_, b)) in bf16.iter().zip(&vdpbf16ps) {
                assert_close(name, "bf16 on AMX vs VDPBF16PS", a, b, Tol { abs: 1e-4, rel: 1e-4 });
            }
            bf16 = vdpbf16ps;
        }
        if first_bf16.is_empty() {
            eprintln!("bf16 reference path: {path}, {}", kernels::bf16::mode_name());
            first_bf16 = bf16;
        } else {
            for ((name, a), (_, b)) in bf16.iter().zip(&first_bf16) {
                assert_bitwise(name, &format!("bf16 on {path} vs on {}", KernelPath::supported()[0]), a, b);
            }
        }
    }
}

/// A layer run on each image of the pass before (`conv2d::NextLayer`: a pooling after a
/// convolution, a one-channel convolution after a transposed one, as in the two models),
/// with the pass before's output kept in its batch or discarded (`discarding_input`, for
/// inference): the next layer's outputs (and the pooling's winners) are the same bits either
/// way, and a discarded batch is left as it was (NaN here) while a kept one holds the images.
/// 11 images: tasks of 2 images and a last of 1, each through its own slot.
fn next_layer_cases(path: KernelPath) {
    let n = 11;
    // The baseline's encoder: Conv2D 3 -> 16, 3 x 3 'same', ReLU, then 2 x 2 max pooling.
    let g = ConvGeom::new(8, 6, 3, 16, 3, 1, Padding::Same).unwrap();
    let pg = PoolGeom::new(8, 6, 16, 2, 2, Padding::Valid).unwrap();
    let (x, w, b) = (values(n * g.x_len(), 81), values(g.w_len(), 82), values(g.c_out, 83));
    let mut scratch = vec![0.0; conv2d::scratch_len(&g, n)];
    let mut pooled = |discard: bool| {
        let (mut y, mut p, mut argmax) =
            (vec![f32::NAN; n * g.y_len()], vec![0.0; n * pg.y_len()], vec![0; n * pg.y_len()]);
        let mut slots = Vec::new();
        let mut next = conv2d::NextLayer::pool(&pg, n, &mut p, &mut argmax);
        if discard {
            slots.resize(next.input_slots_len(), 0.0);
            next = next.discarding_input(&mut slots);
        }
        conv2d::forward_act_next(
            &g,
            n,
            &x,
            &w,
            Some(&b),
            Activation::Relu,
            &mut y,
            &mut scratch,
            Precision::F32,
            Some(&next),
        );
        (y, p, argmax)
    };
    let ((kept, p_kept, arg_kept), (dropped, p_dropped, arg_dropped)) = (pooled(false), pooled(true));
    let what = format!("{path}: pooling after a convolution");
    assert_bitwise(&what, "pooled, discarded vs kept", &p_dropped, &p_kept);
    assert!(arg_dropped == arg_kept, "{what}: the winners differ");
    assert!(kept.iter().all(|v| !v.is_nan()), "{what}: the kept batch is not all written");
    assert!(dropped.iter().all(|v| v.is_nan()), "{what}: the discarded batch was written");

    // The modified model's decoder: a stride-2 Conv2DTranspose, ReLU, then a one-channel
    // stride-1 one, sigmoid (rows of 7 and channels in sixteens, as `forward_single` takes
    // them); on even sizes (minimal filtering, as the model's 14 -> 28 layer) and odd ones
    // (the direct kernel).
    for (h, w_in, c, f) in [(2, 14, 16, 16), (3, 7, 32, 16)] {
        let gt = ConvGeom::transpose(h, w_in, c, f, 3, 2, Padding::Same).unwrap();
        let gl = ConvGeom::transpose(2 * h, 2 * w_in, f, 1, 3, 1, Padding::Same).unwrap();
        let (x, w, b) = (values(n * gt.y_len(), 84), values(gt.w_len(), 85), values(gt.c_in, 86));
        let (wl, bl) = (values(gl.w_len(), 87), values(gl.c_in, 88));
        let mut scratch = vec![0.0; conv_transpose2d::scratch_len(&gt, n)];
        let mut decoded = |discard: bool| {
            let (mut y, mut out, mut flipped) = (vec![f32::NAN; n * gt.x_len()], vec![0.0; n * gl.x_len()], Vec::new());
            let mut slots = Vec::new();
            let mut next = conv2d::NextLayer::transpose(&gl, n, &wl, &bl, Activation::Sigmoid, &mut out, &mut flipped)
                .expect("a one-channel 3 x 3 stride-1 layer runs on each image");
            if discard {
                slots.resize(next.input_slots_len(), 0.0);
                next = next.discarding_input(&mut slots);
            }
            let p = Precision::F32;
            conv_transpose2d::forward_act_next(
                &gt,
                n,
                &x,
                &w,
                &b,
                Activation::Relu,
                &mut y,
                &mut scratch,
                p,
                Some(&next),
            );
            (y, out)
        };
        let ((kept, out_kept), (dropped, out_dropped)) = (decoded(false), decoded(true));
        let what = format!("{path}: a one-channel layer after a transposed one, {h}x{w_in}x{c} -> {f}");
        assert_bitwise(&what, "output, discarded vs kept", &out_dropped, &out_kept);
        assert!(kept.iter().all(|v| !v.is_nan()), "{what}: the kept batch is not all written");
        assert!(dropped.iter().all(|v| v.is_nan()), "{what}: the discarded batch was written");
    }
}

/// The elementwise passes (ReLU and its mask, the sigmoid's gradient, max pooling with ties,
/// Adam with weight decay), vectorized by the compiler on each path: the same bits as their
/// naive twins, on lengths with a scalar tail and on NaN, -0 and ties.
fn elementwise_cases(path: KernelPath) {
    let len = 3 * 1024 + 13;
    let mut x = values(len, 41);
    x[..6].copy_from_slice(&[f32::NAN, -0.0, 0.0, f32::INFINITY, -f32::INFINITY, 1e-40]);
    x[len - 3..].copy_from_slice(&[f32::NAN, -0.0, -1e-40]);
    let (mut y, mut y_n) = (x.clone(), x.clone());
    activation::forward(Activation::Relu, &mut y);
    activation::forward_naive(Activation::Relu, &mut y_n);
    assert_bitwise("relu", &path.to_string(), &y, &y_n);
    for act in [Activation::Relu, Activation::Sigmoid] {
        let (mut d, mut d_n) = (values(len, 43), values(len, 43));
        activation::backward(act, &x, &mut d);
        activation::backward_naive(act, &x, &mut d_n);
        assert_bitwise(&format!("{act:?} gradient"), &path.to_string(), &d, &d_n);
    }

    // Quantized values, so windows hold ties.
    let g = PoolGeom::new(13, 11, 19, 2, 2, Padding::Same).expect("geometry");
    let n = 3;
    let xq: Vec<f32> = values(n * g.x_len(), 47).iter().map(|v| (v * 4.0).round()).collect();
    let (mut yp, mut yp_n, mut arg) = (vec![0.0; n * g.y_len()], vec![0.0; n * g.y_len()], vec![0; n * g.y_len()]);
    maxpool2d::forward(&g, n, &xq, &mut yp, &mut arg);
    maxpool2d::forward_naive(&g, n, &xq, &mut yp_n);
    assert_bitwise("maxpool forward", &path.to_string(), &yp, &yp_n);
    let dy = values(yp.len(), 53);
    let (mut dx, mut dx_n) = (vec![0.0; xq.len()], vec![0.0; xq.len()]);
    maxpool2d::backward_input(&g, n, &dy, &arg, &mut dx);
    maxpool2d::backward_input_naive(&g, n, &xq, &dy, &mut dx_n);
    assert_bitwise("maxpool input gradient (ties to the first)", &path.to_string(), &dx, &dx_n);

    let c = AdamConfig { weight_decay: 0.15, ..AdamConfig::default() };
    let (mut p, grad, mut m, mut v) = (values(len, 59), values(len, 61), vec![0.0; len], vec![0.0; len]);
    let (mut p_n, mut m_n, mut v_n) = (p.clone(), m.clone(), v.clone());
    for t in 1..=3 {
        adam::step(&c, t, &mut p, &grad, &mut m, &mut v);
        adam::step_naive(&c, t, &mut p_n, &grad, &mut m_n, &mut v_n);
    }
    for (what, a, b) in [("adam p", &p, &p_n), ("adam m", &m, &m_n), ("adam v", &v, &v_n)] {
        assert_bitwise(what, &path.to_string(), a, b);
    }
}

/// The bf16 forward, input gradient and weight gradient of the models' shapes and of the dispatch's edges
/// (channel blocks of 4 + 1 vectors, 24 channels that AVX-512 emulates, strided input
/// gradients, a 1-channel input that stays f32): each equal to the naive f32 conv of the
/// bf16-rounded operands up to the order of the sums, and within bf16's bound of the f32
/// result (each product off by at most 2^-7 + 2^-16 of its size: see `within_bf16`).
/// Returns the bf16 results, for the comparison across paths.
fn bf16_cases(path: KernelPath) -> Vec<(String, Vec<f32>)> {
    let q = |v: &[f32]| v.iter().map(|&x| kernels::bf16::quantize(x)).collect::<Vec<_>>();
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    let mut out = Vec::new();
    for (i, &(h, w, ci, co, s)) in [
        (28, 28, 32, 32, 1),
        (14, 14, 32, 64, 2),
        (7, 7, 64, 128, 1),
        (7, 7, 80, 96, 1),
        (8, 9, 112, 80, 2),
        (9, 7, 16, 24, 2),
        (13, 11, 24, 16, 2),
        (28, 28, 64, 128, 2),
        (13, 11, 8, 8, 1),
        (28, 28, 1, 32, 1),
    ]
    .iter()
    .enumerate()
    {
        let g = ConvGeom::new(h, w, ci, co, 3, s, Padding::Same).unwrap();
        let n = 5;
        let x = values(n * g.x_len(), 900 + i as u32);
        let wt = values(g.w_len(), 1000 + i as u32);
        let b = values(co, 1100 + i as u32);
        let dy = values(n * g.y_len(), 1200 + i as u32);
        let mut scratch = vec![f32::NAN; conv2d::scratch_len(&g, n)];
        let name = format!("{path} bf16 case {i} {h}x{w} {ci}->{co} s{s}");
        let bf16 = ci % 2 == 0;

        let (mut y, mut y_q, mut y_f, mut mag) =
            (vec![0.0; n * g.y_len()], vec![0.0; n * g.y_len()], vec![0.0; n * g.y_len()], vec![0.0; n * g.y_len()]);
        conv2d::forward(&g, n, &x, &wt, Some(&b), &mut y, &mut scratch, Precision::Bf16);
        let (xq, wq) = if bf16 { (q(&x), q(&wt)) } else { (x.clone(), wt.clone()) };
        conv2d::forward_naive(&g, n, &xq, &wq, Some(&b), &mut y_q);
        conv2d::forward_naive(&g, n, &x, &wt, Some(&b), &mut y_f);
        conv2d::forward_naive(&g, n, &abs(&x), &abs(&wt), None, &mut mag);
        close(&format!("{name} forward"), &y, &y_q);
        within_bf16(&format!("{name} forward"), &y, &y_f, &mag);
        if bf16 {
            out.push((format!("{name} forward"), y));
        }

        let (mut dx, mut dx_q, mut dx_f, mut mag) =
            (vec![0.0; n * g.x_len()], vec![0.0; n * g.x_len()], vec![0.0; n * g.x_len()], vec![0.0; n * g.x_len()]);
        conv2d::backward_input(&g, n, &dy, &wt, &mut dx, &mut scratch, Precision::Bf16);
        // The input gradient's pairs run along c_out, its tiles over c_in in eights (stride 1:
        // a conv from c_out to c_in channels; larger strides: one per phase class).
        let bf16 = co % 2 == 0 && ci % 8 == 0;
        let (dyq, wq) = if bf16 { (q(&dy), q(&wt)) } else { (dy.clone(), wt.clone()) };
        conv2d::backward_input_naive(&g, n, &dyq, &wq, &mut dx_q);
        conv2d::backward_input_naive(&g, n, &dy, &wt, &mut dx_f);
        conv2d::backward_input_naive(&g, n, &abs(&dy), &abs(&wt), &mut mag);
        close(&format!("{name} backward_input"), &dx, &dx_q);
        within_bf16(&format!("{name} backward_input"), &dx, &dx_f, &mag);
        // f32 passes may differ across paths (fused or not); bf16 ones may not.
        if bf16 {
            out.push((format!("{name} backward_input"), dx));
        }

        // The weight gradient pairs pixels; a 1-channel input stays f32 (see `bf16_weight_route`).
        let bf16 = ci % 2 == 0;
        let (mut dw, mut dw_q, mut dw_f, mut mag) =
            (vec![0.0; g.w_len()], vec![0.0; g.w_len()], vec![0.0; g.w_len()], vec![0.0; g.w_len()]);
        let mut db = vec![0.0; co];
        conv2d::backward_weight(&g, n, &x, &dy, &mut dw, Some(&mut db), &mut scratch, Precision::Bf16);
        let (xq, dyq) = if bf16 { (q(&x), q(&dy)) } else { (x.clone(), dy.clone()) };
        conv2d::backward_weight_naive(&g, n, &xq, &dyq, &mut dw_q, None);
        conv2d::backward_weight_naive(&g, n, &x, &dy, &mut dw_f, None);
        conv2d::backward_weight_naive(&g, n, &abs(&x), &abs(&dy), &mut mag, None);
        let per_image = |v: &[f32]| v.iter().map(|x| x / n as f32).collect::<Vec<_>>();
        close(&format!("{name} backward_weight"), &per_image(&dw), &per_image(&dw_q));
        within_bf16(&format!("{name} backward_weight"), &dw, &dw_f, &mag);
        // The bias gradient stays f32 (AMX sums it while transposing dy): the f32 pass's bits.
        let (mut dw32, mut db32) = (vec![0.0; g.w_len()], vec![0.0; co]);
        conv2d::backward_weight(&g, n, &x, &dy, &mut dw32, Some(&mut db32), &mut scratch, Precision::F32);
        assert_bitwise(&name, "backward_weight db", &db, &db32);
        if bf16 {
            out.push((format!("{name} backward_weight"), dw));
        }
    }
    dense_bf16_cases(path, &mut out);
    out
}

/// `bf16_cases` for the dense passes: the models' shapes, an odd batch (the weight gradient
/// pairs batch rows, the last with zero), odd feature counts (a pass without pairs stays f32)
/// and output widths that are not whole 16-lane vectors (emulated on every path).
fn dense_bf16_cases(path: KernelPath, out: &mut Vec<(String, Vec<f32>)>) {
    let q = |v: &[f32]| v.iter().map(|&x| kernels::bf16::quantize(x)).collect::<Vec<_>>();
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    for (i, &(n, ci, co)) in
        [(64, 6272, 128), (64, 128, 6272), (7, 50, 32), (5, 33, 48), (6, 40, 24), (9, 64, 17)].iter().enumerate()
    {
        let name = format!("{path} bf16 dense case {i} {n}x{ci}->{co}");
        let x = values(n * ci, 1300 + i as u32);
        let w = values(ci * co, 1400 + i as u32);
        let b = values(co, 1500 + i as u32);
        let dy = values(n * co, 1600 + i as u32);
        let mut scratch = vec![f32::NAN; dense::scratch_len(n, ci, co, Precision::Bf16)];
        let pass = |bf16: bool,
                    what: &str,
                    fast: Vec<f32>,
                    quantized: &[f32],
                    exact: &[f32],
                    mag: &[f32],
                    out: &mut Vec<_>| {
            let what = format!("{name} {what}");
            close(&what, &fast, quantized);
            within_bf16(&what, &fast, exact, mag);
            if bf16 {
                out.push((what, fast));
            }
        };

        let (mut y, mut y_q, mut y_f, mut mag) =
            (vec![0.0; n * co], vec![0.0; n * co], vec![0.0; n * co], vec![0.0; n * co]);
        dense::forward(n, ci, co, &x, &w, &b, &mut y, &mut scratch, Precision::Bf16);
        let bf16 = ci % 2 == 0;
        let (xq, wq) = if bf16 { (q(&x), q(&w)) } else { (x.clone(), w.clone()) };
        dense::forward_naive(n, ci, co, &xq, &wq, &b, &mut y_q);
        dense::forward_naive(n, ci, co, &x, &w, &b, &mut y_f);
        dense::forward_naive(n, ci, co, &abs(&x), &abs(&w), &vec![0.0; co], &mut mag);
        pass(bf16, "forward", y, &y_q, &y_f, &mag, out);

        let (mut dx, mut dx_q, mut dx_f, mut mag) =
            (vec![0.0; n * ci], vec![0.0; n * ci], vec![0.0; n * ci], vec![0.0; n * ci]);
        dense::backward_input(n, ci, co, &dy, &w, &mut dx, &mut scratch, Precision::Bf16);
        let bf16 = co % 2 == 0;
        let (dyq, wq) = if bf16 { (q(&dy), q(&w)) } else { (dy.clone(), w.clone()) };
        dense::backward_input_naive(n, ci, co, &dyq, &wq, &mut dx_q);
        dense::backward_input_naive(n, ci, co, &dy, &w, &mut dx_f);
        dense::backward_input_naive(n, ci, co, &abs(&dy), &abs(&w), &mut mag);
        pass(bf16, "backward_input", dx, &dx_q, &dx_f, &mag, out);

        let (mut dw, mut dw_q, mut dw_f, mut mag) =
            (vec![0.0; ci * co], vec![0.0; ci * co], vec![0.0; ci * co], vec![0.0; ci * co]);
        let (mut db, mut db_f) = (vec![0.0; co], vec![0.0; co]);
        dense::backward_weight(n, ci, co, &x, &dy, &mut dw, &mut db, &mut scratch, Precision::Bf16);
        dense::backward_weight_naive(n, ci, co, &q(&x), &q(&dy), &mut dw_q, &mut vec![0.0; co]);
        dense::backward_weight_naive(n, ci, co, &x, &dy, &mut dw_f, &mut db_f);
        dense::backward_weight_naive(n, ci, co, &abs(&x), &abs(&dy), &mut mag, &mut vec![0.0; co]);
        let per_row = |v: &[f32]| v.iter().map(|x| x / n as f32).collect::<Vec<_>>();
        close(&format!("{name} backward_weight"), &per_row(&dw), &per_row(&dw_q));
        within_bf16(&format!("{name} backward_weight"), &dw, &dw_f, &mag);
        // The bias gradient stays f32.
        close(&format!("{name} db"), &per_row(&db), &per_row(&db_f));
        out.push((format!("{name} backward_weight"), dw));
    }
}

/// |a - f32| <= (2^-7 + 2^-16) sum |terms| (+ f32 rounding) element by element: each operand
/// is off by up to 2^-8 of its size (half a unit in its 8th significant bit), so a product by
/// up to (1 + 2^-8)^2 - 1. (A bound of 2^-8 held on the convolutions' mixed signs by luck and
/// failed on a dense weight gradient whose terms shared their sign.)
fn within_bf16(what: &str, a: &[f32], f32_result: &[f32], magnitude: &[f32]) {
    for (i, ((&a, &e), &m)) in a.iter().zip(f32_result).zip(magnitude).enumerate() {
        let bound = m * (2f32.powi(-7) + 2f32.powi(-16)) + 1e-5 * (1.0 + m);
        assert!((a - e).abs() <= bound, "{what}: element {i} is {a}, f32 gives {e}: off by more than bf16's {bound}");
    }
}

fn dense_cases(path: KernelPath) {
    // (n, c_in, c_out): tails of every tile (rows of 6, columns of 16 and 8, then scalar),
    // inner blocks of 256 and 512 crossed, the models' shapes; for the input gradient's
    // broadcast tiles (c_out of 16 to 128 on AVX-512), batches that end inside a vector and
    // input features past the last 16; for the weight gradient, a batch over several panels.
    for (i, &(n, ci, co)) in [
        (37, 13, 21),
        (0, 5, 16),
        (150, 70, 48),
        (37, 45, 64),
        (20, 300, 16),
        (5, 16, 32),
        (5, 300, 40),
        (64, 600, 24),
        (7, 8, 1),
        (3, 1030, 9),
        (9, 50, 112),
        (6, 33, 88),
        (64, 6272, 128),
        (64, 128, 6272),
    ]
    .iter()
    .enumerate()
    {
        let name = format!("{path} dense case {i} {n}x{ci}->{co}");
        let x = values(n * ci, 400 + i as u32);
        let w = values(ci * co, 500 + i as u32).iter().map(|v| v / (ci as f32).sqrt()).collect::<Vec<_>>();
        let b = values(co, 600 + i as u32);
        let dy = values(n * co, 700 + i as u32);
        // NaN where a pass must write: an element left alone fails.
        let (mut y, mut y0) = (vec![f32::NAN; n * co], vec![0.0; n * co]);
        dense::forward(n, ci, co, &x, &w, &b, &mut y, &mut [], Precision::F32);
        dense::forward_naive(n, ci, co, &x, &w, &b, &mut y0);
        close(&format!("{name} forward"), &y, &y0);
        let (mut dx, mut dx0) = (vec![f32::NAN; n * ci], vec![0.0; n * ci]);
        dense::backward_input(n, ci, co, &dy, &w, &mut dx, &mut [], Precision::F32);
        dense::backward_input_naive(n, ci, co, &dy, &w, &mut dx0);
        close(&format!("{name} backward_input"), &dx, &dx0);
        let (mut dw, mut dw0, mut db, mut db0) =
            (vec![f32::NAN; ci * co], vec![0.0; ci * co], vec![f32::NAN; co], vec![0.0; co]);
        dense::backward_weight(n, ci, co, &x, &dy, &mut dw, &mut db, &mut [], Precision::F32);
        dense::backward_weight_naive(n, ci, co, &x, &dy, &mut dw0, &mut db0);
        // dW sums n products of O(1) values: scale the tolerance by the batch.
        let per_row = |v: &[f32]| v.iter().map(|x| x / n.max(1) as f32).collect::<Vec<_>>();
        close(&format!("{name} backward_weight"), &per_row(&dw), &per_row(&dw0));
        close(&format!("{name} db"), &per_row(&db), &per_row(&db0));
    }
}

/// The layers' forward passes with the activation applied per image as it is computed
/// (`forward_act`, and Conv2DTranspose's bias with it), and their input gradients with the
/// previous layer's activation gradient applied the same way (`backward_input_act`), give the
/// same bits as the pass followed by `activation::forward` (`backward`) over the batch, in
/// f32 and bf16: the models' shapes, a narrow output, and images whose length is not a whole
/// number of vectors.
fn fused_activation_cases(path: KernelPath) {
    let cases = [
        // (h, w, c_in, c_out, stride, transpose, activation)
        (28, 28, 32, 32, 1, false, Activation::Relu),
        (28, 28, 32, 1, 1, false, Activation::Sigmoid),
        (28, 28, 1, 32, 2, false, Activation::Relu),
        (7, 7, 128, 64, 2, true, Activation::Relu),
        // Minimal filtering for the forward and the input gradient (`winograd_transpose`), on
        // even sides and on odd ones (the modified model's 7 x 7 128 -> 128 layer).
        (4, 6, 32, 16, 2, true, Activation::Relu),
        (7, 7, 128, 128, 2, true, Activation::Relu),
        (14, 14, 64, 1, 2, true, Activation::Sigmoid),
        (5, 3, 3, 5, 1, false, Activation::Relu),
        (3, 5, 8, 3, 2, true, Activation::Relu),
        (9, 7, 16, 1, 1, true, Activation::Relu),
    ];
    let mut fused_backward = 0;
    for (i, &(h, w, ci, co, s, transpose, act)) in cases.iter().enumerate() {
        let g = if transpose {
            ConvGeom::transpose(h, w, ci, co, 3, s, Padding::Same)
        } else {
            ConvGeom::new(h, w, ci, co, 3, s, Padding::Same)
        }
        .unwrap();
        let n = 3;
        // A transposed layer reads the conv's output shape and writes its input shape.
        let (in_len, out_len, bias) =
            if transpose { (g.y_len(), g.x_len(), g.c_in) } else { (g.x_len(), g.y_len(), g.c_out) };
        let x = values(n * in_len, 1500 + i as u32);
        let wt = values(g.w_len(), 1600 + i as u32);
        let b = values(bias, 1700 + i as u32);
        let mut scratch = vec![f32::NAN; conv2d::scratch_len(&g, n)];
        for p in Precision::ALL {
            let (mut fused, mut apart) = (vec![0.0; n * out_len], vec![0.0; n * out_len]);
            if transpose {
                conv_transpose2d::forward_act(&g, n, &x, &wt, &b, act, &mut fused, &mut scratch, p);
                conv_transpose2d::forward(&g, n, &x, &wt, &b, &mut apart, &mut scratch, p);
            } else {
                conv2d::forward_act(&g, n, &x, &wt, Some(&b), act, &mut fused, &mut scratch, p);
                conv2d::forward(&g, n, &x, &wt, Some(&b), &mut apart, &mut scratch, p);
            }
            activation::forward(act, &mut apart);
            let name = format!("{path} {p} fused {act:?} case {i} {h}x{w} {ci}->{co} s{s} transpose {transpose}");
            assert!(apart.iter().any(|&v| v == 0.0 || act != Activation::Relu), "{name}: no value clipped");
            assert_bitwise(&name, "forward_act vs forward + activation::forward", &fused, &apart);

            // The input gradient times the gradient of the activation that made the input
            // (`backward_input_act`), against the two passes.
            let mut x_act = x.clone();
            activation::forward(act, &mut x_act);
            let dy = values(n * out_len, 1800 + i as u32);
            let (mut fused, mut apart) = (vec![0.0; n * in_len], vec![0.0; n * in_len]);
            if transpose {
                conv_transpose2d::backward_input_act(&g, n, &dy, &wt, &mut fused, &mut scratch, p, act, &x_act);
                conv_transpose2d::backward_input(&g, n, &dy, &wt, &mut apart, &mut scratch, p);
            } else {
                conv2d::backward_input_act(&g, n, &dy, &wt, &mut fused, &mut scratch, p, act, &x_act);
                conv2d::backward_input(&g, n, &dy, &wt, &mut apart, &mut scratch, p);
            }
            activation::backward(act, &x_act, &mut apart);
            assert!(apart.iter().any(|&v| v == 0.0 || act != Activation::Relu), "{name}: no gradient masked");
            assert_bitwise(&name, "backward_input_act vs backward_input + activation::backward", &fused, &apart);

            if transpose {
                // The whole backward pass (one pass over the images where it fuses), against
                // `backward_weight` and `backward_input_act`; 9 images, so 3 tasks of 4, 4, 1.
                let n = 9;
                let mut scratch = vec![f32::NAN; conv2d::scratch_len(&g, n)];
                let mut x_act = values(n * in_len, 1900 + i as u32);
                activation::forward(act, &mut x_act);
                let dy = values(n * out_len, 2000 + i as u32);
                let mut one = (vec![0.0; g.w_len()], vec![0.0; bias], vec![0.0; n * in_len]);
                let mut two = (vec![1.0; g.w_len()], vec![1.0; bias], vec![1.0; n * in_len]);
                let (dw, db, dx) = (&mut one.0, &mut one.1, &mut one.2);
                let dx = Some((&mut dx[..], act));
                conv_transpose2d::backward(&g, n, &x_act, &dy, &wt, (dw, db), dx, &mut scratch, p);
                conv_transpose2d::backward_weight(&g, n, &x_act, &dy, &mut two.0, &mut two.1, &mut scratch, p);
                conv_transpose2d::backward_input_act(&g, n, &dy, &wt, &mut two.2, &mut scratch, p, act, &x_act);
                fused_backward += usize::from(conv_transpose2d::backward_fuses(&g, p));
                assert_bitwise(&name, "backward's dw vs backward_weight", &one.0, &two.0);
                assert_bitwise(&name, "backward's db vs backward_weight", &one.1, &two.1);
                assert_bitwise(&name, "backward's dx vs backward_input_act", &one.2, &two.2);
            }
        }
    }
    assert_eq!(fused_backward, 6, "the transposed cases in f32 fuse their backward passes");
}

/// Returns the outputs of the passes that run on register tiles (every channel count a
/// multiple of 8), named without the path.
fn conv_cases(path: KernelPath) -> Vec<(String, Vec<f32>)> {
    let mut tiled = Vec::new();
    let cases = [
        // (h, w, c_in, c_out, k, stride, padding)
        (28, 28, 32, 32, 3, 1, Padding::Same),
        (28, 28, 1, 32, 3, 1, Padding::Same),
        (28, 28, 32, 1, 3, 1, Padding::Same),
        (28, 28, 1, 32, 3, 2, Padding::Same),
        (14, 14, 32, 64, 3, 2, Padding::Same),
        (7, 7, 64, 128, 3, 1, Padding::Same),
        (13, 11, 5, 24, 3, 1, Padding::Same),
        (13, 11, 7, 8, 3, 2, Padding::Valid),
        (9, 10, 3, 5, 5, 1, Padding::Valid),
        (6, 7, 9, 3, 3, 2, Padding::Same),
        (5, 5, 8, 16, 1, 2, Padding::Same),
        (28, 28, 1, 64, 3, 1, Padding::Same),
        (11, 9, 1, 24, 3, 2, Padding::Valid),
        (8, 8, 1, 8, 2, 1, Padding::Same),
        (9, 7, 40, 3, 3, 1, Padding::Same),
        (9, 7, 16, 24, 3, 2, Padding::Same),
        (13, 11, 8, 8, 3, 2, Padding::Valid),
        (14, 13, 16, 8, 5, 2, Padding::Same),
        (7, 9, 24, 16, 2, 2, Padding::Valid),
        (28, 28, 64, 1, 3, 1, Padding::Same),
        (7, 7, 128, 128, 3, 1, Padding::Same),
        (5, 3, 3, 40, 3, 1, Padding::Same),
        (10, 10, 12, 1, 3, 2, Padding::Same),
        (9, 9, 5, 1, 3, 1, Padding::Same),
        (8, 6, 48, 1, 3, 1, Padding::Valid),
        // AVX-512 blocks of 4 + 1, 4 + 2 and 4 + 2 + 1 vectors, and 40 channels (not in 16s).
        (7, 7, 80, 96, 3, 1, Padding::Same),
        (8, 9, 112, 80, 3, 2, Padding::Same),
        (6, 6, 40, 112, 3, 2, Padding::Same),
        (7, 5, 96, 40, 3, 1, Padding::Valid),
        // The transposed convolutions' forward (this conv's input gradient): 4-vector blocks of
        // dx channels, taps outermost, over 7 x 7 phase classes of 1, 2 and 4 taps.
        (14, 14, 128, 128, 3, 2, Padding::Same),
        // AVX-512's tall tiles: 7 pixels on 7-wide rows, 16-channel pixels (row stride 16),
        // stride 2 (row stride 64), a 16-channel output (one vector), 12-row weight-gradient
        // tiles over kernel rows of 3 x 16 and 3 x 32, and 48 channels (blocks of 2 + 1
        // vectors, row stride 48: short tiles).
        (7, 7, 32, 32, 3, 1, Padding::Same),
        (14, 14, 16, 32, 3, 1, Padding::Same),
        (28, 28, 32, 16, 3, 2, Padding::Same),
        (14, 14, 48, 48, 3, 1, Padding::Same),
    ];
    for (i, &(h, w, ci, co, k, s, p)) in cases.iter().enumerate() {
        let g = ConvGeom::new(h, w, ci, co, k, s, p).unwrap();
        // Batches above 32 make tasks of more than IMAGES_PER_TASK images (MAX_CONV_TASKS caps
        // the task count); keep those to the small shapes, the naive twins are slow.
        let n = if h * w * ci * co < 10_000 { 37 } else { 5 };
        let x = values(n * g.x_len(), 1 + i as u32);
        let wt = values(g.w_len(), 100 + i as u32);
        let b = values(co, 200 + i as u32);
        let dy = values(n * g.y_len(), 300 + i as u32);
        let mut scratch = vec![f32::NAN; conv2d::scratch_len(&g, n)];
        let case = format!("case {i} {h}x{w} {ci}->{co} k{k} s{s} {p:?}");
        let name = format!("{path} {case}");
        let tiled_all = ci % 8 == 0 && co % 8 == 0;

        let (mut y, mut y0) = (vec![0.0; n * g.y_len()], vec![0.0; n * g.y_len()]);
        conv2d::forward(&g, n, &x, &wt, Some(&b), &mut y, &mut scratch, Precision::F32);
        conv2d::forward_naive(&g, n, &x, &wt, Some(&b), &mut y0);
        close(&format!("{name} forward"), &y, &y0);

        let (mut dx, mut dx0) = (vec![0.0; n * g.x_len()], vec![0.0; n * g.x_len()]);
        conv2d::backward_input(&g, n, &dy, &wt, &mut dx, &mut scratch, Precision::F32);
        conv2d::backward_input_naive(&g, n, &dy, &wt, &mut dx0);
        close(&format!("{name} backward_input"), &dx, &dx0);

        let (mut dw, mut dw0) = (vec![0.0; g.w_len()], vec![0.0; g.w_len()]);
        let (mut db, mut db0) = (vec![0.0; co], vec![0.0; co]);
        conv2d::backward_weight(&g, n, &x, &dy, &mut dw, Some(&mut db), &mut scratch, Precision::F32);
        conv2d::backward_weight_naive(&g, n, &x, &dy, &mut dw0, Some(&mut db0));
        close(&format!("{name} backward_weight"), &dw, &dw0);
        close(&format!("{name} db"), &db, &db0);
        if tiled_all {
            tiled.extend([
                (format!("{case} forward"), y),
                (format!("{case} backward_input"), dx),
                (format!("{case} backward_weight"), dw),
            ]);
        }
    }
    tiled
}
