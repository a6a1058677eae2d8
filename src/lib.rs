//! A convolutional-autoencoder engine for Fashion-MNIST, written from scratch: tensor, layers
//! with hand-written backward passes, the two reference models, Adam, training with early
//! stopping, data loading and SSIM. The numerics live in the `kernels` crate; this crate holds
//! everything that knows about models, files and users:
//!
//! * [`tensor`], [`layers`], [`sequential`], [`models`]: the networks and their passes;
//! * [`data`]: finding, checking, loading and splitting Fashion-MNIST;
//! * [`train`]: the training loop and its configuration, with its parts (loss, optimizer,
//!   callbacks) and the hyperparameter search;
//! * [`eval`]: running a model over images, and the metrics;
//! * [`run`]: what lands on disk (run folders, checkpoints and run state, `.npy`, pictures,
//!   atomic writes);
//! * [`report`], [`onnx`], [`profile`]: the comparison report, ONNX export, the per-pass bench.
#![forbid(unsafe_code)]

/// `Display` and `FromStr` by name for an enum with an `ALL` array and a `name()`: the error
/// names `$what` (the flag or field) and lists every name.
macro_rules! by_name {
    ($t:ty, $what:literal) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $t {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<Self> {
                Self::ALL.into_iter().find(|v| v.name() == s).ok_or_else(|| crate::Error::InvalidArgument {
                    name: $what,
                    expected: crate::error::one_of(Self::ALL.map(|v| v.name())),
                    found: s.to_string(),
                })
            }
        }
    };
}

pub mod data;
pub mod error;
pub mod eval;
pub mod layers;
pub mod models;
pub mod onnx;
pub mod profile;
pub mod report;
pub mod run;
pub mod sequential;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use tensor::Tensor;
