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
            for (v, &p) in o.iter_mut().zip(&self.images[i * IMAGE_LEN..(i + 1) * IMAGE_LEN]) {
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
pub struct DataOptions {
    pub data_dir: Option<std::path::PathBuf>,
    pub allow_custom_data: bool,
}
pub fn load(_o: &DataOptions) -> crate::Result<Dataset> {
    Err(crate::Error::DataNotFound {
        searched: String::new(),
        download: String::new(),
    })
}
pub fn split(n: usize, _seed: u64) -> Split {
    Split {
        train: (0..n * 8 / 10).collect(),
        val: (n * 8 / 10..n * 9 / 10).collect(),
        test: (n * 9 / 10..n).collect(),
    }
}
pub mod idx {
    pub struct Images {
        pub rows: usize,
        pub cols: usize,
        pub pixels: Vec<u8>,
    }
    pub fn read_images(_p: &std::path::Path) -> crate::Result<Images> {
        unimplemented!()
    }
}
