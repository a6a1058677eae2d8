//! Export to ONNX (opset 17, the standard domain): the whole autoencoder, the encoder alone or
//! the decoder alone, with NHWC (Keras) or NCHW images, batch size dynamic.
//!
//! ONNX convolutions are NCHW, so the graph transposes NHWC images in and out; kernels go
//! from Keras's `[kh, kw, in, out]` to ONNX's `(out, in, kh, kw)` (ConvTranspose: Keras
//! `[kh, kw, filters, in]` to `(in, filters, kh, kw)`). Keras flattens and reshapes in HWC
//! order, so Flatten is Transpose-to-NHWC then Reshape, and Reshape is Reshape then
//! Transpose-to-NCHW. Padding is written out explicitly from `kernels::geom` (TensorFlow's
//! 'same' puts the odd extra row at the bottom, which ONNX's `auto_pad` cannot say).
//! Operators: Transpose, Conv, ConvTranspose, MaxPool, Resize (nearest, asymmetric, floor: as
//! UpSampling2D), Reshape, Gemm, Relu, Sigmoid.

use crate::layers::{Activation, Param};
use crate::models::{self, Spec, INPUT_SHAPE, LATENT};
use crate::run::checkpoint::CheckpointInfo;
use crate::sequential::Sequential;
use crate::{Error, Result};
use kernels::conv_transpose2d;
use kernels::geom::{ConvGeom, Padding, PoolGeom};
use prost::Message;

/// The opset the graph is written for, and the IR version that goes with it.
pub const OPSET: i64 = 17;
const IR_VERSION: i64 = 8;

/// Which part of the autoencoder to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Images in, `reconstruction` out.
    Full,
    /// Images in, the 128-number `code` out.
    Encoder,
    /// `code` in, `reconstruction` out.
    Decoder,
}

/// The images' axis order at the graph's edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `(N, 28, 28, 1)`, as Keras.
    Nhwc,
    /// `(N, 1, 28, 28)`, as PyTorch.
    Nchw,
}

/// The model in `model` (weights as loaded from a checkpoint described by `info`) as the bytes
/// of an ONNX file.
pub fn export(model: &Sequential, info: &CheckpointInfo, part: Part, layout: Layout) -> Result<Vec<u8>> {
    let specs = models::specs(info.model);
    let latent = specs
        .iter()
        .position(|s| matches!(s, Spec::Dense { .. }))
        .ok_or_else(|| Error::Onnx("the model has no latent Dense layer".to_string()))?;
    let params: Vec<(&str, &Param)> = model.params().collect();
    // Parameters of the specs before the decoder, which the decoder skips.
    let encoder_params = specs[..=latent].iter().filter(|s| has_params(s)).count() * 2;
    let mut g = Graph::default();
    let (range, mut params_at, input, input_shape) = match part {
        Part::Full => (0..specs.len(), 0, "images", INPUT_SHAPE.to_vec()),
        Part::Encoder => (0..latent + 1, 0, "images", INPUT_SHAPE.to_vec()),
        Part::Decoder => (latent + 1..specs.len(), encoder_params, "code", vec![LATENT]),
    };
    let mut shape = input_shape.clone();
    let mut x = input.to_string();
    if shape.len() == 3 && layout == Layout::Nhwc {
        x = g.transpose(&x, &[0, 3, 1, 2]);
    }
    for spec in &specs[range] {
        let mut take = || -> Result<(&Param, &Param)> {
            let pair =
                params.get(params_at..params_at + 2).ok_or_else(|| Error::Onnx("too few tensors".to_string()))?;
            params_at += 2;
            match (pair[0].1.name, pair[1].1.name) {
                ("kernel", "bias") => Ok((pair[0].1, pair[1].1)),
                other => Err(Error::Onnx(format!("expected a kernel and a bias, found {other:?}"))),
            }
        };
        match *spec {
            Spec::Conv2D { filters, k, stride, act } => {
                let (kernel, bias) = take()?;
                let cg = ConvGeom::new(shape[0], shape[1], shape[2], filters, k, stride, Padding::Same)
                    .ok_or_else(|| Error::Onnx("conv geometry".to_string()))?;
                let w =
                    g.init(&reorder(&kernel.value, [k, k, cg.c_in, filters], [3, 2, 0, 1]), &[filters, cg.c_in, k, k]);
                let b = g.init(&bias.value, &[filters]);
                let attrs = vec![
                    ints("kernel_shape", &[k, k]),
                    ints("strides", &[stride, stride]),
                    ints("pads", &[cg.pad_top, cg.pad_left, cg.pad_bottom(), cg.pad_right()]),
                ];
                let y = g.node("Conv", &[&x, &w, &b], attrs);
                x = g.activation(y, act);
                shape = vec![cg.h_out, cg.w_out, filters];
            }
            Spec::Conv2DTranspose { filters, k, stride, act } => {
                let (kernel, bias) = take()?;
                let cg = ConvGeom::transpose(shape[0], shape[1], shape[2], filters, k, stride, Padding::Same)
                    .ok_or_else(|| Error::Onnx("transposed conv geometry".to_string()))?;
                // cg is the conv whose input gradient this layer is: cg.h_out is the layer's
                // input, cg.h_in its output; Keras crops the "full" output as the conv pads.
                let (full_h, full_w, top, left) = conv_transpose2d::full_geom(&cg);
                let (bottom, right) = (full_h.saturating_sub(cg.h_in + top), full_w.saturating_sub(cg.w_in + left));
                let extra = [cg.h_in.saturating_sub(full_h), cg.w_in.saturating_sub(full_w)];
                let w = g
                    .init(&reorder(&kernel.value, [k, k, filters, shape[2]], [3, 2, 0, 1]), &[shape[2], filters, k, k]);
                let b = g.init(&bias.value, &[filters]);
                let attrs = vec![
                    ints("kernel_shape", &[k, k]),
                    ints("strides", &[stride, stride]),
                    ints("pads", &[top, left, bottom, right]),
                    ints("output_padding", &extra),
                ];
                let y = g.node("ConvTranspose", &[&x, &w, &b], attrs);
                x = g.activation(y, act);
                shape = vec![cg.h_in, cg.w_in, filters];
            }
            Spec::MaxPooling2D { pool } => {
                let pg = PoolGeom::new(shape[0], shape[1], shape[2], pool, pool, Padding::Valid)
                    .ok_or_else(|| Error::Onnx("pooling geometry".to_string()))?;
                let attrs = vec![ints("kernel_shape", &[pool, pool]), ints("strides", &[pool, pool])];
                x = g.node("MaxPool", &[&x], attrs);
                shape = vec![pg.h_out, pg.w_out, pg.c];
            }
            Spec::Flatten => {
                let t = g.transpose(&x, &[0, 2, 3, 1]);
                let to = g.shape(&[0, -1]);
                x = g.node("Reshape", &[&t, &to], vec![]);
                shape = vec![shape.iter().product()];
            }
            Spec::Dense { units, act } => {
                let (kernel, bias) = take()?;
                let w = g.init(&kernel.value, &[shape[0], units]);
                let b = g.init(&bias.value, &[units]);
                let y = g.node("Gemm", &[&x, &w, &b], vec![]);
                x = g.activation(y, act);
                shape = vec![units];
            }
            Spec::Reshape { shape: [h, w, c] } => {
                let to = g.shape(&[0, h as i64, w as i64, c as i64]);
                let r = g.node("Reshape", &[&x, &to], vec![]);
                x = g.transpose(&r, &[0, 3, 1, 2]);
                shape = vec![h, w, c];
            }
            Spec::UpSampling2D { factor } => {
                let scales = g.init(&[1.0, 1.0, factor as f32, factor as f32], &[4]);
                let attrs = vec![
                    string("mode", "nearest"),
                    string("coordinate_transformation_mode", "asymmetric"),
                    string("nearest_mode", "floor"),
                ];
                x = g.node("Resize", &[&x, "", &scales], attrs);
                shape = vec![shape[0] * factor, shape[1] * factor, shape[2]];
            }
        }
    }
    if shape.len() == 3 && layout == Layout::Nhwc {
        x = g.transpose(&x, &[0, 2, 3, 1]);
    }
    let output = if shape.len() == 3 { "reconstruction" } else { "code" };
    g.rename_output(&x, output);
    let edge = |name: &str, shape: &[usize]| {
        let mut dims = vec![Dim::param("N")];
        dims.extend(
            match (shape.len(), layout) {
                (3, Layout::Nchw) => vec![shape[2], shape[0], shape[1]],
                _ => shape.to_vec(),
            }
            .into_iter()
            .map(Dim::value),
        );
        ValueInfo::float(name, dims)
    };
    let graph = GraphProto {
        name: format!("{}_{}", info.model, part_name(part)),
        node: g.nodes,
        initializer: g.inits,
        input: vec![edge(input, &input_shape)],
        output: vec![edge(output, &shape)],
        doc_string: String::new(),
    };
    let meta = |key: &str, value: String| StringStringEntryProto { key: key.to_string(), value };
    let model = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "autoencoder".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        domain: String::new(),
        model_version: 1,
        doc_string: format!("The {} of the `{}` Fashion-MNIST autoencoder", part_name(part), info.model),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        metadata_props: vec![
            meta("model", info.model.name().to_string()),
            meta("part", part_name(part).to_string()),
            meta("layout", if layout == Layout::Nhwc { "nhwc" } else { "nchw" }.to_string()),
            meta("epoch", info.epoch.to_string()),
            meta("seed", info.seed.to_string()),
            meta("producer", format!("autoencoder {}", env!("CARGO_PKG_VERSION"))),
        ],
    };
    Ok(model.encode_to_vec())
}

fn has_params(spec: &Spec) -> bool {
    matches!(spec, Spec::Conv2D { .. } | Spec::Conv2DTranspose { .. } | Spec::Dense { .. })
}

fn part_name(part: Part) -> &'static str {
    match part {
        Part::Full => "autoencoder",
        Part::Encoder => "encoder",
        Part::Decoder => "decoder",
    }
}

/// `src` as an array of shape `dims` with its axes permuted: output axis i is input axis
/// `perm[i]`.
fn reorder(src: &[f32], dims: [usize; 4], perm: [usize; 4]) -> Vec<f32> {
    let out_dims = perm.map(|p| dims[p]);
    let strides = [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1];
    let mut out = Vec::with_capacity(src.len());
    for a in 0..out_dims[0] {
        for b in 0..out_dims[1] {
            for c in 0..out_dims[2] {
                for d in 0..out_dims[3] {
                    let idx = [a, b, c, d];
                    let mut at = 0;
                    for (i, &p) in perm.iter().enumerate() {
                        at += idx[i] * strides[p];
                    }
                    out.push(src[at]);
                }
            }
        }
    }
    out
}

/// The graph being built: nodes in order, initializers, and a counter for fresh names.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    names: usize,
}

impl Graph {
    fn fresh(&mut self, what: &str) -> String {
        self.names += 1;
        format!("{what}_{}", self.names)
    }

    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.to_string(),
            attribute,
            domain: String::new(),
        });
        out
    }

    fn activation(&mut self, x: String, act: Activation) -> String {
        match act {
            Activation::Linear => x,
            Activation::Relu => self.node("Relu", &[&x], vec![]),
            Activation::Sigmoid => self.node("Sigmoid", &[&x], vec![]),
        }
    }

    fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        let perm: Vec<usize> = perm.iter().map(|&p| p as usize).collect();
        self.node("Transpose", &[x], vec![ints("perm", &perm)])
    }

    fn init(&mut self, values: &[f32], dims: &[usize]) -> String {
        let name = self.fresh("w");
        self.inits.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name
    }

    /// A Reshape target (int64; 0 copies the input's dimension, -1 is inferred).
    fn shape(&mut self, dims: &[i64]) -> String {
        let name = self.fresh("shape");
        self.inits.push(TensorProto {
            dims: vec![dims.len() as i64],
            data_type: INT64,
            name: name.clone(),
            raw_data: dims.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name
    }

    /// Gives the node that produces `x` (the last one) the graph output's name.
    fn rename_output(&mut self, x: &str, name: &str) {
        if let Some(node) = self.nodes.iter_mut().rev().find(|n| n.output.iter().any(|o| o == x)) {
            node.output = vec![name.to_string()];
        }
    }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: ATTR_INTS,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto { name: name.to_string(), r#type: ATTR_STRING, s: value.as_bytes().to_vec(), ..Default::default() }
}

// ------------------------------------------------- the subset of onnx.proto (ONNX IR) used

const FLOAT: i32 = 1;
const INT64: i32 = 7;
const ATTR_STRING: i32 = 3;
const ATTR_INTS: i32 = 7;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(string, tag = "2")]
    producer_name: String,
    #[prost(string, tag = "3")]
    producer_version: String,
    #[prost(string, tag = "4")]
    domain: String,
    #[prost(int64, tag = "5")]
    model_version: i64,
    #[prost(string, tag = "6")]
    doc_string: String,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Clone, PartialEq, Message)]
struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(string, tag = "10")]
    doc_string: String,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfo>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfo>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
    #[prost(string, tag = "7")]
    domain: String,
}

#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(bytes = "vec", tag = "4")]
    s: Vec<u8>,
    #[prost(int64, repeated, tag = "8")]
    ints: Vec<i64>,
    #[prost(int32, tag = "20")]
    r#type: i32,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
}

/// ValueInfoProto.
#[derive(Clone, PartialEq, Message)]
struct ValueInfo {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

impl ValueInfo {
    fn float(name: &str, dims: Vec<Dim>) -> Self {
        ValueInfo {
            name: name.to_string(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorType { elem_type: FLOAT, shape: Some(TensorShapeProto { dim: dims }) }),
            }),
        }
    }
}

#[derive(Clone, PartialEq, Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorType>,
}

/// TypeProto.Tensor.
#[derive(Clone, PartialEq, Message)]
struct TensorType {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dim>,
}

/// TensorShapeProto.Dimension: a size, or a named (dynamic) one.
#[derive(Clone, PartialEq, Message)]
struct Dim {
    #[prost(int64, optional, tag = "1")]
    dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    dim_param: Option<String>,
}

impl Dim {
    fn value(v: usize) -> Self {
        Dim { dim_value: Some(v as i64), dim_param: None }
    }
    fn param(name: &str) -> Self {
        Dim { dim_value: None, dim_param: Some(name.to_string()) }
    }
}
