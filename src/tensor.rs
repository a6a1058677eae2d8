//! A minimal owned tensor: contiguous row-major `f32` data with a shape. Images are NHWC, the
//! batch axis first, so one image or a run of images is a contiguous slice of `data`.

/// An owned `f32` array with a shape: row-major, contiguous, NHWC for images.
///
/// It has no strides, views or broadcasting: layers work on `data()` slices and the kernels
/// crate's shape arguments. Reshaping keeps the allocation (shapes have room for six axes).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Room reserved in every shape, so reshaping (including `Sequential`'s buffer swaps between
/// ranks 2 and 4) never reallocates it.
const SHAPE_CAPACITY: usize = 6;

fn shape_vec(shape: &[usize]) -> Vec<usize> {
    let mut v = Vec::with_capacity(SHAPE_CAPACITY.max(shape.len()));
    v.extend_from_slice(shape);
    v
}

impl Default for Tensor {
    fn default() -> Self {
        Tensor { shape: shape_vec(&[]), data: Vec::new() }
    }
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor { shape: shape_vec(shape), data: vec![0.0; shape.iter().product()] }
    }

    /// Wraps `data`. # Panics: if its length is not the product of `shape`.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Self {
        assert_eq!(data.len(), shape.iter().product::<usize>(), "tensor data length disagrees with shape {shape:?}");
        Tensor { shape: shape_vec(shape), data }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Number of items along the first (batch) axis.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Elements per batch item.
    pub fn item_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Items `start..end` of the batch, borrowed: no copy.
    pub fn items(&self, start: usize, end: usize) -> &[f32] {
        let n = self.item_len();
        &self.data[start * n..end * n]
    }

    /// Makes this a `[batch, item_shape...]` tensor, reusing the allocation when it is big enough
    /// (so a training loop stops allocating after its largest batch). Contents are unspecified.
    pub fn reshape_for(&mut self, batch: usize, item_shape: &[usize]) {
        self.shape.clear();
        self.shape.reserve(SHAPE_CAPACITY); // grows a cloned (capacity-less) shape once, then never
        self.shape.push(batch);
        self.shape.extend_from_slice(item_shape);
        self.data.resize(batch * item_shape.iter().product::<usize>(), 0.0);
    }
}
