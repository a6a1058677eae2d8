//! A convolutional-autoencoder engine for Fashion-MNIST, written from scratch: tensor, layers
//! with hand-written backward passes, the two reference models, Adam, training with early
//! stopping, data loading and SSIM. The numerics live in the `kernels` crate; this crate holds
//! everything that knows about models, files and users.

pub mod data;
pub mod error;
pub mod fsutil;
pub mod metrics;
pub mod npy;
pub mod picture;
pub mod tensor;

pub use error::{Error, Result};
pub use tensor::Tensor;
