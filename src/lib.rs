//! A convolutional-autoencoder engine for Fashion-MNIST, written from scratch: tensor, layers
//! with hand-written backward passes, the two reference models, Adam, training with early
//! stopping, data loading and SSIM. The numerics live in the `kernels` crate; this crate holds
//! everything that knows about models, files and users.
#![forbid(unsafe_code)]

pub mod callbacks;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod fsutil;
pub mod layers;
pub mod loss;
pub mod metrics;
pub mod models;
pub mod npy;
pub mod onnx;
pub mod optim;
pub mod picture;
pub mod profile;
pub mod report;
pub mod sequential;
pub mod tensor;
pub mod train;
pub mod tune;

pub use error::{Error, Result};
pub use tensor::Tensor;
