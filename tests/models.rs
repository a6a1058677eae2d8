//! The two models as Keras defines them (names, shapes, parameter counts), and the whole
//! `Sequential` forward/backward (including the copy-free Flatten/Reshape) against finite
//! differences.

use autoencoder::layers::Activation::{Linear, Relu, Sigmoid};
use autoencoder::layers::{Conv2D, Layer, MaxPooling2D, Padding, UpSampling2D};
use autoencoder::models::{self, ModelKind, Spec};
use autoencoder::profile::{Profile, Stage};
use autoencoder::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn layer_names_shapes_and_parameter_counts_match_keras() {
    // (name, output shape, params) as Keras's model.summary() prints them.
    let baseline: &[(&str, &[usize], usize)] = &[
        ("conv2d", &[28, 28, 32], 320),
        ("conv2d_1", &[28, 28, 32], 9248),
        ("max_pooling2d", &[14, 14, 32], 0),
        ("flatten", &[6272], 0),
        ("dense", &[128], 802_944),
        ("dense_1", &[6272], 809_088),
        ("reshape", &[14, 14, 32], 0),
        ("up_sampling2d", &[28, 28, 32], 0),
        ("conv2d_2", &[28, 28, 32], 9248),
        ("conv2d_3", &[28, 28, 32], 9248),
        ("conv2d_4", &[28, 28, 1], 289),
    ];
    let modified: &[(&str, &[usize], usize)] = &[
        ("conv2d", &[14, 14, 32], 320),
        ("conv2d_1", &[7, 7, 64], 18_496),
        ("conv2d_2", &[7, 7, 128], 73_856),
        ("flatten", &[6272], 0),
        ("dense", &[128], 802_944),
        ("dense_1", &[6272], 809_088),
        ("reshape", &[7, 7, 128], 0),
        ("conv2d_transpose", &[14, 14, 128], 147_584),
        ("conv2d_transpose_1", &[28, 28, 64], 73_792),
        ("conv2d_transpose_2", &[28, 28, 1], 577),
    ];
    for (kind, want, total) in [(ModelKind::Baseline, baseline, 1_640_385), (ModelKind::Modified, modified, 1_926_657)]
    {
        let m = models::build(kind, 42).unwrap();
        let got: Vec<_> = m
            .layers()
            .iter()
            .map(|l| {
                (
                    l.name().to_string(),
                    l.output_shape().to_vec(),
                    l.params().iter().map(|p| p.value.len()).sum::<usize>(),
                )
            })
            .collect();
        let want: Vec<_> = want.iter().map(|(n, s, p)| (n.to_string(), s.to_vec(), *p)).collect();
        assert_eq!(got, want, "{kind}");
        assert_eq!(m.param_count(), total, "{kind}");
    }
}

#[test]
fn glorot_init_is_seeded_bounded_and_biases_are_zero() {
    let a = models::build(ModelKind::Modified, 7).unwrap();
    let b = models::build(ModelKind::Modified, 7).unwrap();
    let c = models::build(ModelKind::Modified, 8).unwrap();
    let flat =
        |m: &autoencoder::sequential::Sequential| m.params().flat_map(|(_, p)| p.value.clone()).collect::<Vec<_>>();
    assert_eq!(flat(&a), flat(&b));
    assert_ne!(flat(&a), flat(&c));
    for (layer, p) in a.params() {
        if p.name == "bias" {
            assert!(p.value.iter().all(|&v| v == 0.0), "{layer}");
        } else {
            let (lead, last2) = p.shape.split_at(p.shape.len() - 2);
            let rf: usize = lead.iter().product();
            let limit = (6.0 / (rf * (last2[0] + last2[1])) as f64).sqrt() as f32;
            assert!(p.value.iter().all(|v| v.abs() <= limit), "{layer}");
            let max = p.value.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(max > 0.9 * limit, "{layer}: values should fill the Glorot range");
        }
    }
}

/// L = sum(y * r) in f64 for the model's current weights.
fn loss(m: &mut autoencoder::sequential::Sequential, x: &Tensor, r: &[f32]) -> f64 {
    let y = m.forward(x);
    y.data().iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

#[test]
fn sequential_gradients_match_finite_differences() {
    // A small model with every layer kind, both views, and smooth activations: ReLU kinks make
    // finite differences through a whole model unreliable (ReLU is checked per layer, away from
    // its kink, in gradcheck.rs). A convolution after a convolution (and after a transposed
    // one) applies the earlier layer's activation gradient in its input-gradient pass
    // (`Layer::fuse_input_activation`).
    let specs = [
        Spec::Conv2D { filters: 3, k: 3, stride: 1, act: Sigmoid },
        Spec::Conv2D { filters: 3, k: 3, stride: 1, act: Sigmoid },
        Spec::MaxPooling2D { pool: 2 },
        Spec::Flatten,
        Spec::Dense { units: 5, act: Linear },
        Spec::Dense { units: 48, act: Linear },
        Spec::Reshape { shape: [4, 4, 3] },
        Spec::UpSampling2D { factor: 2 },
        Spec::Conv2DTranspose { filters: 2, k: 3, stride: 2, act: Sigmoid },
        Spec::Conv2D { filters: 1, k: 3, stride: 2, act: Sigmoid },
        // Taken over by the convolution after it (`Layer::fuse_input_upsampling`).
        Spec::UpSampling2D { factor: 2 },
        Spec::Conv2D { filters: 2, k: 3, stride: 1, act: Sigmoid },
    ];
    let mut m = models::build_specs(&specs, &[8, 8, 1], 3).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for p in m.params_mut() {
        p.value.iter_mut().for_each(|v| *v += rng.random_range(-0.2..0.2));
    }
    let x = Tensor::from_vec(&[2, 8, 8, 1], (0..128).map(|_| rng.random_range(0.0..1.0)).collect());
    let out_len = m.forward(&x).data().len();
    let r: Vec<f32> = (0..out_len).map(|_| rng.random_range(-1.0..1.0)).collect();
    let dy = Tensor::from_vec(m.forward(&x).shape(), r.clone());
    m.forward(&x);
    m.backward(&dy);
    let grads: Vec<Vec<f32>> = m.params().map(|(_, p)| p.grad.clone()).collect();
    let names: Vec<String> = m.params().map(|(l, p)| format!("{l}.{}", p.name)).collect();
    let h = 1e-3f32;
    let mut bad = Vec::new();
    let mut checked = 0;
    for (pi, name) in names.iter().enumerate() {
        let len = grads[pi].len();
        for j in (0..len).step_by(len.div_ceil(6)) {
            let bump = |m: &mut autoencoder::sequential::Sequential, d: f32| {
                m.params_mut().nth(pi).unwrap().value[j] += d;
            };
            bump(&mut m, h);
            let lp = loss(&mut m, &x, &r);
            bump(&mut m, -2.0 * h);
            let lm = loss(&mut m, &x, &r);
            bump(&mut m, h);
            let numeric = (lp - lm) / (2.0 * h as f64);
            let analytic = grads[pi][j] as f64;
            if (numeric - analytic).abs() > 2e-3 + 2e-2 * numeric.abs() {
                bad.push(format!("{name}[{j}]: analytic {analytic}, finite difference {numeric}"));
            }
            checked += 1;
        }
    }
    assert!(bad.is_empty(), "{} of {checked} gradients disagree:\n{}", bad.len(), bad.join("\n"));
    assert!(checked >= 6 * names.len() / 2, "checked only {checked}");
}

/// Random values in [lo, hi).
fn uniform(rng: &mut ChaCha8Rng, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

#[test]
fn a_convolution_that_takes_over_the_upsampling_computes_what_the_two_layers_do() {
    // In a Sequential, a 3 x 3 'same' Conv2D after a 2x UpSampling2D runs as a 4 x 4 stride-2
    // transposed convolution of the small image (`kernels::upsample_conv`); here the same three
    // layers run one by one, the upsampling written out. Outputs and every gradient (the first
    // layer's are the fused layer's input gradient) must agree to rounding: the baseline
    // decoder's geometry on the fast kernels, and a small odd one.
    for (h, w, c, filters, act) in [(14, 14, 32, 32, Relu), (3, 5, 3, 2, Sigmoid)] {
        let specs = [
            Spec::Conv2D { filters: c, k: 3, stride: 1, act: Sigmoid },
            Spec::UpSampling2D { factor: 2 },
            Spec::Conv2D { filters, k: 3, stride: 1, act },
        ];
        let mut fused = models::build_specs(&specs, &[h, w, 2], 4).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(h as u64);
        for p in fused.params_mut() {
            let noise = uniform(&mut rng, p.value.len(), -0.1, 0.1);
            p.value.iter_mut().zip(noise).for_each(|(v, d)| *v += d);
        }
        let mut first = Conv2D::new("first", &[h, w, 2], c, 3, 1, Padding::Same, Sigmoid).unwrap();
        let mut up = UpSampling2D::new("up", &[h, w, c], 2).unwrap();
        let mut conv = Conv2D::new("conv", &[2 * h, 2 * w, c], filters, 3, 1, Padding::Same, act).unwrap();
        let values: Vec<Vec<f32>> = fused.params().map(|(_, p)| p.value.clone()).collect();
        for (p, v) in first.params_mut().iter_mut().chain(conv.params_mut()).zip(values) {
            p.value = v;
        }

        let n = 2;
        let x = Tensor::from_vec(&[n, h, w, 2], uniform(&mut rng, n * h * w * 2, 0.0, 1.0));
        let dy = Tensor::from_vec(&[n, 2 * h, 2 * w, filters], uniform(&mut rng, n * 4 * h * w * filters, -1.0, 1.0));
        let y_fused = fused.forward(&x).clone();
        fused.backward(&dy);
        let (mut a, mut au, mut y) = (Tensor::default(), Tensor::default(), Tensor::default());
        first.forward(&x, &mut a);
        up.forward(&a, &mut au);
        conv.forward(&au, &mut y);
        let (mut dy_conv, mut dau, mut da) = (dy.clone(), Tensor::default(), Tensor::default());
        conv.backward(&au, &y, &mut dy_conv, Some(&mut dau));
        up.backward(&a, &au, &mut dau, Some(&mut da));
        first.backward(&x, &a, &mut da, None);

        let close = |what: &str, got: &[f32], want: &[f32]| {
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{what}: all zero");
            for (i, (g, e)) in got.iter().zip(want).enumerate() {
                assert!((g - e).abs() <= 1e-5 * scale, "{h}x{w}x{c}: {what}[{i}]: fused {g}, two layers {e}");
            }
        };
        assert_eq!(y_fused.shape(), y.shape());
        close("output", y_fused.data(), y.data());
        let grads = first.params().iter().chain(conv.params()).map(|p| p.grad.clone());
        for ((layer, p), want) in fused.params().zip(grads) {
            close(&format!("{layer}.{}", p.name), &p.grad, &want);
        }
    }
}

#[test]
fn a_layer_run_on_each_image_of_the_layer_before_gives_the_same_bits() {
    // A one-output-channel 3 x 3 stride-1 convolution after a convolution (the baseline's
    // last two layers) or a transposed one (the modified model's), or a max pooling after a
    // convolution (the baseline's encoder), runs on each output image of the layer before
    // while it is in cache (`Layer::forward_with_next`): the same operations, so the same bits
    // as the two layers run one by one; and the backward pass that follows gives the same
    // gradients.
    for (input, transpose) in [([14, 14, 32], false), ([7, 7, 32], true)] {
        let first = if transpose {
            Spec::Conv2DTranspose { filters: 16, k: 3, stride: 2, act: Relu }
        } else {
            Spec::Conv2D { filters: 16, k: 3, stride: 1, act: Relu }
        };
        let last = if transpose {
            Spec::Conv2DTranspose { filters: 1, k: 3, stride: 1, act: Sigmoid }
        } else {
            Spec::Conv2D { filters: 1, k: 3, stride: 1, act: Sigmoid }
        };
        let mut fused = models::build_specs(&[first, last], &input, 6).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        for p in fused.params_mut() {
            let noise = uniform(&mut rng, p.value.len(), -0.1, 0.1);
            p.value.iter_mut().zip(noise).for_each(|(v, d)| *v += d);
        }
        let (h, w) = (input[0] * if transpose { 2 } else { 1 }, input[1] * if transpose { 2 } else { 1 });
        let (mut a, mut b) = if transpose {
            let a = Conv2D::transpose("a", &input, 16, 3, 2, Padding::Same, Relu).unwrap();
            (a, Conv2D::transpose("b", &[h, w, 16], 1, 3, 1, Padding::Same, Sigmoid).unwrap())
        } else {
            let a = Conv2D::new("a", &input, 16, 3, 1, Padding::Same, Relu).unwrap();
            (a, Conv2D::new("b", &[h, w, 16], 1, 3, 1, Padding::Same, Sigmoid).unwrap())
        };
        let values: Vec<Vec<f32>> = fused.params().map(|(_, p)| p.value.clone()).collect();
        for (p, v) in a.params_mut().iter_mut().chain(b.params_mut()).zip(values) {
            p.value = v;
        }
        let n = 5;
        let x = Tensor::from_vec(
            &[n, input[0], input[1], 32],
            uniform(&mut rng, n * input.iter().product::<usize>(), -1.0, 1.0),
        );
        let dy = Tensor::from_vec(&[n, h, w, 1], uniform(&mut rng, n * h * w, -1.0, 1.0));
        let y_fused = fused.forward(&x).clone();
        fused.backward(&dy);
        let (mut ya, mut yb) = (Tensor::default(), Tensor::default());
        a.forward(&x, &mut ya);
        b.forward(&ya, &mut yb);
        let same_bits = |what: &str, got: &[f32], want: &[f32]| {
            assert_eq!(got.len(), want.len(), "transpose {transpose}: {what} length");
            let differ = got.iter().zip(want).position(|(a, b)| a.to_bits() != b.to_bits());
            assert!(differ.is_none(), "transpose {transpose}: {what}[{differ:?}] differs");
        };
        same_bits("output", y_fused.data(), yb.data());
        let (mut dyb, mut dya) = (dy.clone(), Tensor::default());
        b.backward(&ya, &yb, &mut dyb, Some(&mut dya));
        a.backward(&x, &ya, &mut dya, None);
        let grads = a.params().iter().chain(b.params()).map(|p| p.grad.clone());
        for ((layer, p), want) in fused.params().zip(grads) {
            same_bits(&format!("{layer}.{}", p.name), &p.grad, &want);
        }
    }
}

#[test]
fn a_transposed_layer_run_inside_the_backward_pass_of_the_one_before_gives_the_same_bits() {
    // The modified model's last two layers (a stride-2 Conv2DTranspose with ReLU, then a
    // one-channel stride-1 one with a sigmoid) after a layer that needs their input gradient:
    // in f32 the stride-2 layer runs the last one's backward pass on each image, just before
    // it needs that image of its output gradient (`Layer::backward_with_next`). Against the
    // three layers run one by one: the same bits in every gradient.
    let input = [7, 5, 8];
    let specs = [
        Spec::Conv2D { filters: 16, k: 3, stride: 1, act: Relu },
        Spec::Conv2DTranspose { filters: 16, k: 3, stride: 2, act: Relu },
        Spec::Conv2DTranspose { filters: 1, k: 3, stride: 1, act: Sigmoid },
    ];
    let mut fused = models::build_specs(&specs, &input, 7).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for p in fused.params_mut() {
        let noise = uniform(&mut rng, p.value.len(), -0.1, 0.1);
        p.value.iter_mut().zip(noise).for_each(|(v, d)| *v += d);
    }
    let mut a = Conv2D::new("a", &input, 16, 3, 1, Padding::Same, Relu).unwrap();
    let mut b = Conv2D::transpose("b", &[7, 5, 16], 16, 3, 2, Padding::Same, Relu).unwrap();
    let mut c = Conv2D::transpose("c", &[14, 10, 16], 1, 3, 1, Padding::Same, Sigmoid).unwrap();
    let values: Vec<Vec<f32>> = fused.params().map(|(_, p)| p.value.clone()).collect();
    let params = a.params_mut().iter_mut().chain(b.params_mut()).chain(c.params_mut());
    params.zip(values).for_each(|(p, v)| p.value = v);
    // 9 images: tasks of 4, 4 and 1.
    let n = 9;
    let x = Tensor::from_vec(&[n, 7, 5, 8], uniform(&mut rng, n * 7 * 5 * 8, -1.0, 1.0));
    let dy = Tensor::from_vec(&[n, 14, 10, 1], uniform(&mut rng, n * 14 * 10, -1.0, 1.0));
    fused.forward(&x);
    let mut profile = Profile::on();
    fused.backward_timed(&dy, &mut profile);
    // The last layer's gradients ran inside the layer before's pass: its rows carry no
    // products, that layer's weight gradient carries all four passes'.
    let flops = |layer: usize, pass: &str| {
        let row = profile.passes().iter().find(|p| p.stage == Stage::Layer(layer) && p.pass == pass);
        row.unwrap_or_else(|| panic!("no {pass} of layer {layer}")).flops
    };
    let macs = |l: &Conv2D| (n * l.macs()) as f64;
    assert_eq!(flops(2, "weight gradient"), 0.0, "the last layer's backward ran on its own");
    assert_eq!(flops(1, "weight gradient"), 4.0 * (macs(&b) + macs(&c)));
    let (mut ya, mut yb, mut yc) = (Tensor::default(), Tensor::default(), Tensor::default());
    a.forward(&x, &mut ya);
    b.forward(&ya, &mut yb);
    c.forward(&yb, &mut yc);
    let (mut dyc, mut dyb, mut dya) = (dy.clone(), Tensor::default(), Tensor::default());
    c.backward(&yb, &yc, &mut dyc, Some(&mut dyb));
    b.backward(&ya, &yb, &mut dyb, Some(&mut dya));
    a.backward(&x, &ya, &mut dya, None);
    let grads = a.params().iter().chain(b.params()).chain(c.params()).map(|p| p.grad.clone());
    for ((layer, p), want) in fused.params().zip(grads) {
        let differ = p.grad.iter().zip(&want).position(|(g, w)| g.to_bits() != w.to_bits());
        assert!(differ.is_none(), "{layer}.{}[{differ:?}] differs", p.name);
    }
}

#[test]
fn a_pooling_run_on_each_image_of_the_convolution_before_gives_the_same_bits() {
    let specs = [Spec::Conv2D { filters: 16, k: 3, stride: 1, act: Relu }, Spec::MaxPooling2D { pool: 2 }];
    let mut fused = models::build_specs(&specs, &[6, 10, 3], 8).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut conv = Conv2D::new("conv", &[6, 10, 3], 16, 3, 1, Padding::Same, Relu).unwrap();
    let values: Vec<Vec<f32>> = fused.params().map(|(_, p)| p.value.clone()).collect();
    for (p, v) in conv.params_mut().iter_mut().zip(values) {
        p.value = v;
    }
    let mut pool = MaxPooling2D::new("pool", &[6, 10, 16], 2, 2, Padding::Valid).unwrap();
    let x = Tensor::from_vec(&[3, 6, 10, 3], uniform(&mut rng, 3 * 6 * 10 * 3, -1.0, 1.0));
    let dy = Tensor::from_vec(&[3, 3, 5, 16], uniform(&mut rng, 3 * 3 * 5 * 16, -1.0, 1.0));
    let y_fused = fused.forward(&x).clone();
    fused.backward(&dy);
    let (mut a, mut y) = (Tensor::default(), Tensor::default());
    conv.forward(&x, &mut a);
    pool.forward(&a, &mut y);
    let (mut dyp, mut da) = (dy.clone(), Tensor::default());
    pool.backward(&a, &y, &mut dyp, Some(&mut da));
    conv.backward(&x, &a, &mut da, None);
    let bits = |t: &[f32]| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert!(bits(y_fused.data()) == bits(y.data()), "pooled outputs differ");
    for ((layer, p), want) in fused.params().zip(conv.params()) {
        assert!(bits(&p.grad) == bits(&want.grad), "{layer}.{} differs", p.name);
    }
}

#[test]
fn views_move_buffers_and_backward_restores_them() {
    // Forward twice and backward twice must give identical gradients: the Flatten/Reshape
    // buffer moves must be undone exactly.
    let mut m = models::build(ModelKind::Baseline, 1).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = Tensor::from_vec(&[3, 28, 28, 1], (0..3 * 784).map(|_| rng.random_range(0.0..1.0)).collect());
    let dy = Tensor::from_vec(&[3, 28, 28, 1], (0..3 * 784).map(|_| rng.random_range(-1.0..1.0)).collect());
    let run = |m: &mut autoencoder::sequential::Sequential| {
        m.forward(&x);
        m.backward(&dy);
        m.params().map(|(_, p)| p.grad.clone()).collect::<Vec<_>>()
    };
    let first = run(&mut m);
    let second = run(&mut m);
    assert_eq!(first, second);
    assert!(first.iter().flatten().any(|&g| g != 0.0));
}

/// Scoring no images (an empty split) is an error, not a count of 0 with SSIM 0.0.
#[test]
fn evaluating_no_images_is_an_error() {
    use autoencoder::eval::{evaluate, Images};
    let mut model = autoencoder::models::build(autoencoder::models::ModelKind::Baseline, 1).unwrap();
    let err = evaluate(&mut model, Images::Pixels(&[])).unwrap_err().to_string();
    assert!(err.contains("at least one") && err.contains("empty"), "{err}");
    assert_eq!(evaluate(&mut model, Images::Pixels(&[0.5; 784])).unwrap().count, 1);
}

#[test]
fn inference_gives_the_bits_of_the_training_pass_and_keeps_no_chained_output() {
    // `infer` runs the layer that the one before runs on each image (the baseline's pooling,
    // the modified model's last layer) on images it never writes to the batch: the model's
    // output and latent code are the bits of `forward`; the skipped output cannot be read,
    // nor can a backward pass follow.
    for kind in [ModelKind::Baseline, ModelKind::Modified] {
        let mut m = models::build(kind, 11).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 9;
        let x = Tensor::from_vec(&[n, 28, 28, 1], uniform(&mut rng, n * 784, 0.0, 1.0));
        let latent = models::latent_index(&m).unwrap();
        let out = m.layers().len() - 1;
        let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        m.forward(&x);
        let kept: Vec<Vec<u32>> = (0..=out).map(|i| bits(m.layer_output(i))).collect();
        m.infer(&x);
        assert!(bits(m.layer_output(out)) == kept[out], "{kind:?}: the output differs from forward's");
        assert!(bits(m.layer_output(latent)) == kept[latent], "{kind:?}: the latent code differs from forward's");
        // The layers that run the next one on each image: the baseline's second convolution
        // (its pooling) and its last but one (its last), the modified model's last but one.
        let unread: Vec<usize> = (0..out)
            .filter(|&i| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.layer_output(i).clone())).is_err())
            .collect();
        let chained = match kind {
            ModelKind::Baseline => vec![1, out - 1],
            ModelKind::Modified => vec![out - 1],
        };
        assert_eq!(unread, chained, "{kind:?}: the outputs infer did not keep");
        let dy = Tensor::from_vec(&[n, 28, 28, 1], vec![0.0; n * 784]);
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.backward(&dy)));
        assert!(refused.is_err(), "{kind:?}: a backward pass ran after infer");
        // A training pass keeps them again.
        m.forward(&x);
        for i in chained {
            assert!(bits(m.layer_output(i)) == kept[i], "{kind:?}: layer {i} after forward");
        }
    }
}
