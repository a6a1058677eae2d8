//! Data: IDX files, locating and verifying Fashion-MNIST, the seeded 80/10/10 split.
// PLACEHOLDER until the data branch merges.
pub const IMAGE_SIDE: usize = 28;
pub const IMAGE_LEN: usize = 784;
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub origin: String,
}
impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn fill_batch(&self, indices: &[usize], out: &mut [f32]) {
        for (o, &i) in out.chunks_mut(IMAGE_LEN).zip(indices) {
            for (v, &p) in o
                .iter_mut()
                .zip(&self.images[i * IMAGE_LEN..(i + 1) * IMAGE_LEN])
            {
                *v = p as f32 / 255.0;
            }
        }
    }
}
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}
