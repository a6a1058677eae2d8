//! The two autoencoders of the reference notebook, written as their Keras definitions.
//! Layer names follow Keras's automatic naming (`conv2d`, `conv2d_1`, ...), so checkpoint
//! tensors `<layer>.kernel` / `<layer>.bias` map one-to-one onto the Keras model.

use crate::layers::{glorot_uniform, Activation, Conv2D, Dense, Layer, MaxPooling2D, Padding, Reshape, UpSampling2D};
use crate::sequential::Sequential;
use crate::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

use Activation::{Linear, Relu, Sigmoid};

/// Per-image input shape of both models.
pub const INPUT_SHAPE: [usize; 3] = [28, 28, 1];
/// Size of the latent code.
pub const LATENT: usize = 128;
/// Name of the layer whose output is the latent code.
pub const LATENT_LAYER: &str = "dense";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Baseline,
    Modified,
}

impl ModelKind {
    pub const ALL: [ModelKind; 2] = [ModelKind::Baseline, ModelKind::Modified];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Baseline => "baseline",
            ModelKind::Modified => "modified",
        }
    }
}

by_name!(ModelKind, "model");

/// One layer of a model definition, in Keras's terms (padding 'same' throughout).
#[derive(Clone, Debug)]
pub enum Spec {
    Conv2D { filters: usize, k: usize, stride: usize, act: Activation },
    Conv2DTranspose { filters: usize, k: usize, stride: usize, act: Activation },
    MaxPooling2D { pool: usize },
    Flatten,
    Dense { units: usize, act: Activation },
    Reshape { shape: [usize; 3] },
    UpSampling2D { factor: usize },
}

fn conv(filters: usize, stride: usize, act: Activation) -> Spec {
    Spec::Conv2D { filters, k: 3, stride, act }
}

fn conv_t(filters: usize, stride: usize, act: Activation) -> Spec {
    Spec::Conv2DTranspose { filters, k: 3, stride, act }
}

/// The layer list of a model.
pub fn specs(kind: ModelKind) -> Vec<Spec> {
    match kind {
        ModelKind::Baseline => vec![
            conv(32, 1, Relu),
            conv(32, 1, Relu),
            Spec::MaxPooling2D { pool: 2 }, // [14, 14, 32]
            Spec::Flatten,                  // [6272]
            Spec::Dense { units: LATENT, act: Linear },
            Spec::Dense { units: 6272, act: Relu },
            Spec::Reshape { shape: [14, 14, 32] },
            Spec::UpSampling2D { factor: 2 }, // [28, 28, 32]
            conv(32, 1, Relu),
            conv(32, 1, Relu),
            conv(1, 1, Sigmoid),
        ],
        ModelKind::Modified => vec![
            conv(32, 2, Relu),  // [14, 14, 32]
            conv(64, 2, Relu),  // [7, 7, 64]
            conv(128, 1, Relu), // [7, 7, 128]
            Spec::Flatten,      // [6272]
            Spec::Dense { units: LATENT, act: Linear },
            Spec::Dense { units: 6272, act: Relu },
            Spec::Reshape { shape: [7, 7, 128] },
            conv_t(128, 2, Relu), // [14, 14, 128]
            conv_t(64, 2, Relu),  // [28, 28, 64]
            conv_t(1, 1, Sigmoid),
        ],
    }
}

/// Keras's automatic name for the next layer of class `base` (`dense`, then `dense_1`, ...).
fn keras_name(counts: &mut HashMap<&'static str, usize>, base: &'static str) -> String {
    let seen = counts.entry(base).or_insert(0);
    let name = if *seen == 0 { base.to_string() } else { format!("{base}_{seen}") };
    *seen += 1;
    name
}

/// Builds the layers of `specs` for `input` and initialises them as Keras does (Glorot-uniform
/// kernels, zero biases) from `seed`.
pub fn build_specs(specs: &[Spec], input: &[usize], seed: u64) -> Result<Sequential> {
    let mut counts = HashMap::new();
    let mut shape = input.to_vec();
    let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(specs.len());
    for spec in specs {
        let layer: Box<dyn Layer> = match *spec {
            Spec::Conv2D { filters, k, stride, act } => Box::new(Conv2D::new(
                &keras_name(&mut counts, "conv2d"),
                &shape,
                filters,
                k,
                stride,
                Padding::Same,
                act,
            )?),
            Spec::Conv2DTranspose { filters, k, stride, act } => Box::new(Conv2D::transpose(
                &keras_name(&mut counts, "conv2d_transpose"),
                &shape,
                filters,
                k,
                stride,
                Padding::Same,
                act,
            )?),
            Spec::MaxPooling2D { pool } => Box::new(MaxPooling2D::new(
                &keras_name(&mut counts, "max_pooling2d"),
                &shape,
                pool,
                pool,
                Padding::Valid,
            )?),
            Spec::Flatten => Box::new(Reshape::flatten(&keras_name(&mut counts, "flatten"), &shape)),
            Spec::Dense { units, act } => Box::new(Dense::new(&keras_name(&mut counts, "dense"), &shape, units, act)?),
            Spec::Reshape { shape: target } => {
                Box::new(Reshape::new(&keras_name(&mut counts, "reshape"), &shape, &target)?)
            }
            Spec::UpSampling2D { factor } => {
                Box::new(UpSampling2D::new(&keras_name(&mut counts, "up_sampling2d"), &shape, factor)?)
            }
        };
        shape = layer.output_shape().to_vec();
        layers.push(layer);
    }
    let mut model = Sequential::new(layers, input);
    init_glorot(&mut model, seed);
    Ok(model)
}

/// Builds model `kind`, initialised from `seed`.
pub fn build(kind: ModelKind, seed: u64) -> Result<Sequential> {
    build_specs(&specs(kind), &INPUT_SHAPE, seed)
}

/// Glorot-uniform kernels, zero biases, drawn layer by layer from one seeded stream. Fans follow
/// Keras: receptive field size times the kernel's last two axes.
fn init_glorot(model: &mut Sequential, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for p in model.params_mut() {
        if p.name == "kernel" {
            let (lead, last2) = p.shape.split_at(p.shape.len() - 2);
            let receptive: usize = lead.iter().product();
            glorot_uniform(&mut p.value, receptive * last2[0], receptive * last2[1], &mut rng);
        } else {
            p.value.fill(0.0);
        }
    }
}

/// Index of the latent layer in a model built by `build`.
pub fn latent_index(model: &Sequential) -> Option<usize> {
    model.layers().iter().position(|l| l.name() == LATENT_LAYER)
}
