//! A fixed sequence of layers with no autograd graph: forward keeps every activation, backward
//! calls each layer's backward in exact reverse order. All buffers are owned here and reused,
//! so steps after the first (largest) batch do not allocate.

use crate::layers::{Activation, Layer, Param};
use crate::profile::{Profile, Stage};
use crate::Tensor;

/// A model: layers in order, and the activations and gradients between them.
///
/// `forward` runs a batch through every layer and keeps each activation; `backward` (after a
/// `forward` of the same batch) fills every parameter's gradient; the optimizer then reads
/// `params_mut`. Buffers grow to the largest batch seen and are reused after it, which is what
/// makes a training step allocation-free (`tests/zero_alloc.rs`).
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
    shapes: Vec<Vec<usize>>, // per-image shape of acts[i]
    acts: Vec<Tensor>,       // acts[0] = input, acts[i + 1] = output of layer i
    grads: Vec<Tensor>,      // grads[i] = dL/d acts[i]
    /// Layers whose work the next layer does (an upsampling the convolution after it took
    /// over, `Layer::fuse_input_upsampling`): their input passes on as it is, as a view's.
    handed_on: Vec<bool>,
    /// Activations the last pass did not keep (`infer`): stale, never to be read.
    discarded: Vec<bool>,
    /// Where an inference pass's layers compute the images the next layer discards
    /// (`kernels::conv2d::NextLayer::discarding_input`).
    slots: Vec<f32>,
}

impl Sequential {
    /// Layers already built for chained shapes (see `models`), taking `input_shape` per image.
    pub fn new(mut layers: Vec<Box<dyn Layer>>, input_shape: &[usize]) -> Self {
        // Where a layer can apply the activation gradient of the layer before it inside its
        // own input-gradient pass, that pass over the whole batch goes (`Layer::fuse_input_activation`).
        for i in 1..layers.len() {
            let act = layers[i - 1].activation();
            if act != Activation::Linear && layers[i].fuse_input_activation(act) {
                layers[i - 1].receive_pre_activation_gradient();
            }
        }
        let mut handed_on = vec![false; layers.len()];
        for i in 1..layers.len() {
            if let Some(factor) = layers[i - 1].upsampling_factor() {
                handed_on[i - 1] = layers[i].fuse_input_upsampling(factor);
            }
        }
        let slots = layers.len() + 1;
        let mut shapes = vec![input_shape.to_vec()];
        shapes.extend(layers.iter().map(|l| l.output_shape().to_vec()));
        let (acts, grads) = (vec![Tensor::default(); slots], vec![Tensor::default(); slots]);
        let discarded = vec![false; slots];
        Sequential { layers, shapes, acts, grads, handed_on, discarded, slots: Vec::new() }
    }

    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.shapes[0]
    }

    pub fn output_shape(&self) -> &[usize] {
        &self.shapes[self.layers.len()]
    }

    /// Runs the model on `x [n, input_shape...]` and returns its output.
    /// # Panics
    /// If `x`'s per-image shape is not the model's input shape.
    pub fn forward(&mut self, x: &Tensor) -> &Tensor {
        self.forward_prefix(x, self.layers.len())
    }

    /// Runs only the first `layers` layers (all of them if more), for example up to the latent
    /// code, and returns the last one's output; later layers keep their old outputs.
    /// # Panics
    /// If `x`'s per-image shape is not the model's input shape.
    pub fn forward_prefix(&mut self, x: &Tensor, layers: usize) -> &Tensor {
        self.forward_timed(x, layers, &mut Profile::off())
    }

    /// `forward_prefix`, charging each layer's passes to `profile`.
    pub fn forward_timed(&mut self, x: &Tensor, layers: usize, profile: &mut Profile) -> &Tensor {
        self.run(x, layers, profile, true)
    }

    /// `forward` for inference: the same output, but a layer whose forward pass the layer
    /// before runs on each of its images (`Layer::forward_with_next`) reads them from the
    /// cache, and their batch is not written. `layer_output` of such a layer, or `backward`,
    /// then panics.
    /// # Panics
    /// If `x`'s per-image shape is not the model's input shape.
    pub fn infer(&mut self, x: &Tensor) -> &Tensor {
        self.infer_timed(x, self.layers.len(), &mut Profile::off())
    }

    /// `infer` of the first `layers` layers, as `forward_prefix`.
    pub fn infer_prefix(&mut self, x: &Tensor, layers: usize) -> &Tensor {
        self.infer_timed(x, layers, &mut Profile::off())
    }

    /// `infer_prefix`, charging each layer's passes to `profile`.
    pub fn infer_timed(&mut self, x: &Tensor, layers: usize, profile: &mut Profile) -> &Tensor {
        self.run(x, layers, profile, false)
    }

    /// The forward pass of the first `layers` layers, keeping every activation (`keep`, for a
    /// backward pass) or not (inference).
    fn run(&mut self, x: &Tensor, layers: usize, profile: &mut Profile, keep: bool) -> &Tensor {
        assert_eq!(&x.shape()[1..], self.input_shape(), "model input shape");
        let n = x.batch();
        let layers = layers.min(self.layers.len());
        let Sequential { layers: model, shapes, acts, handed_on, discarded, slots, .. } = self;
        acts[0].reshape_for(n, &shapes[0]);
        acts[0].data_mut().copy_from_slice(x.data());
        // This pass writes acts[..=layers]; the ones after keep their state, stale or not.
        discarded[..=layers].fill(false);
        let mut i = 0;
        while i < layers {
            let (before, after) = acts.split_at_mut(i + 1);
            let (x, (y, later)) = (&mut before[i], after.split_first_mut().expect("an output slot per layer"));
            let (layer, next) = model[i..].split_first_mut().expect("i < layers");
            profile.enter(Stage::Layer(i));
            if layer.is_view() {
                std::mem::swap(x, y);
                y.reshape_for(n, layer.output_shape());
            } else if handed_on[i] && i + 1 < layers {
                // The next layer reads the input as it is (at its own shape).
                std::mem::swap(x, y);
            } else if let Some(next) =
                (layer.runs_next_forward() && i + 1 < layers).then(|| next[0].next_forward(n, &mut later[0])).flatten()
            {
                // The next layer's forward pass runs on each output image while it is in cache
                // (where it is of a kind that can); its row in a profile stays, with no time of
                // its own.
                let next = if keep {
                    next
                } else {
                    if slots.len() < next.input_slots_len() {
                        slots.resize(next.input_slots_len(), 0.0);
                    }
                    discarded[i + 1] = true;
                    next.discarding_input(slots)
                };
                layer.forward_with_next(x, y, &next, profile);
                profile.enter(Stage::Layer(i + 1));
                profile.lap("forward", 0.0);
                i += 1;
            } else {
                layer.forward_timed(x, y, profile);
            }
            i += 1;
        }
        &self.acts[layers]
    }

    /// Output of layer `index` from the last `forward` or `infer` (for example the latent code).
    /// # Panics
    /// If the last pass was `infer` and did not keep it.
    pub fn layer_output(&self, index: usize) -> &Tensor {
        assert!(!self.discarded[index + 1], "layer {index}'s output was not kept by an inference pass");
        &self.acts[index + 1]
    }

    /// Backpropagates `dy` = dL/d(output of the last forward), writing every parameter
    /// gradient. The input gradient is not computed (nothing needs it).
    /// # Panics
    /// If `dy` does not have the output's shape, or the last pass was `infer`.
    pub fn backward(&mut self, dy: &Tensor) {
        self.backward_timed(dy, &mut Profile::off());
    }

    /// `backward`, charging each layer's passes to `profile`.
    pub fn backward_timed(&mut self, dy: &Tensor, profile: &mut Profile) {
        let last = self.layers.len();
        assert!(
            !self.discarded.contains(&true),
            "backward after an inference pass (infer), which keeps no activations for it"
        );
        assert_eq!(dy.shape(), self.acts[last].shape(), "output gradient shape");
        self.grads[last].reshape_for(dy.batch(), &dy.shape()[1..]);
        self.grads[last].data_mut().copy_from_slice(dy.data());
        let mut i = last;
        while i > 0 {
            i -= 1;
            profile.enter(Stage::Layer(i));
            if i >= 2 && self.layers[i - 1].runs_next_backward() {
                // The layer before runs this one's backward pass on each image, just before it
                // needs that image of its output gradient (`Layer::backward_with_next`): this
                // layer's rows stay, with no time of their own.
                let (below, above) = self.layers.split_at_mut(i);
                let (grads_lo, grads_hi) = self.grads.split_at_mut(i);
                let acts = &self.acts;
                if let Some(next) = above[0].next_backward(&acts[i], &acts[i + 1], &mut grads_hi[1], profile) {
                    profile.lap("weight gradient", 0.0);
                    profile.lap("input gradient", 0.0);
                    profile.enter(Stage::Layer(i - 1));
                    below[i - 1].backward_with_next(&acts[i - 1], &mut grads_lo[i - 1], next, profile);
                    i -= 1;
                    continue;
                }
            }
            let layer = &mut self.layers[i];
            let (acts_lo, acts_hi) = self.acts.split_at_mut(i + 1);
            let (grads_lo, grads_hi) = self.grads.split_at_mut(i + 1);
            if layer.is_view() || self.handed_on[i] {
                // Undo the forward move: the buffers go back to the layer's input side.
                let n = acts_hi[0].batch();
                std::mem::swap(&mut acts_lo[i], &mut acts_hi[0]);
                std::mem::swap(&mut grads_lo[i], &mut grads_hi[0]);
                acts_lo[i].reshape_for(n, &self.shapes[i]);
                grads_lo[i].reshape_for(n, &self.shapes[i]);
                // The buffer swapped into slot i + 1 receives the next step's gradient: size it
                // now, so that only the first step allocates (the next layer's input gradient
                // has this layer's input shape where it does this layer's work).
                let next = if self.handed_on[i] { &self.shapes[i] } else { &self.shapes[i + 1] };
                grads_hi[0].reshape_for(n, next);
            } else {
                let dx = (i > 0).then_some(&mut grads_lo[i]);
                layer.backward_timed(&acts_lo[i], &acts_hi[0], &mut grads_hi[0], dx, profile);
            }
        }
    }

    /// Every parameter, layer by layer, kernel before bias.
    pub fn params(&self) -> impl Iterator<Item = (&str, &Param)> {
        self.layers.iter().flat_map(|l| l.params().iter().map(move |p| (l.name(), p)))
    }

    pub fn params_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut Param> {
        self.layers.iter_mut().flat_map(|l| l.params_mut().iter_mut())
    }

    pub fn param_count(&self) -> usize {
        self.params().map(|(_, p)| p.value.len()).sum()
    }

    /// Runs every layer's multiply-add passes at `precision` from now on.
    pub fn set_precision(&mut self, precision: kernels::bf16::Precision) {
        for l in &mut self.layers {
            l.set_precision(precision);
        }
    }

    /// Multiply-adds of one image's forward pass.
    pub fn macs(&self) -> usize {
        self.layers.iter().map(|l| l.macs()).sum()
    }
}
