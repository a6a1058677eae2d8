//! Pure slice-level f32 kernels for the autoencoder engine: no tensor type, no I/O, no model
//! knowledge.
//!
//! * **Layout**: images are NHWC (`[n, h, w, c]`, channels fastest), matching Keras, so
//!   reference values compare directly. Conv kernels are Keras's `[kh, kw, c_in, c_out]`.
//! * **Overwrite vs accumulate**: every kernel overwrites its outputs; one that must accumulate
//!   ends in `_acc` and says so.
//! * **Threading**: rayon on the outermost loop only (fixed chunks of images), never inside.
//!   Chunks do not depend on the thread count and partial sums are added in a fixed order, so
//!   results are bitwise identical on 1 or many threads.
//! * Every fast kernel has a `naive` twin in plain loops, always compiled, used as the oracle.
//! * **unsafe** only in the register-tiled kernels (`micro`, `conv_direct`, `winograd`,
//!   `winograd_transpose`, `dense`, `bf16`, `amx`), the dispatcher (`isa`), `gemm` and the
//!   allocator (`alloc`), each block with its `SAFETY:` argument (a lint below enforces it);
//!   every length those blocks rely on is computed in checked arithmetic (`geom::size`) and
//!   checked once at the public entry.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod activation;
pub mod adam;
pub mod alloc;
pub mod amx;
pub mod bf16;
pub mod conv2d;
mod conv_direct;
pub mod conv_transpose2d;
pub mod dense;
pub mod eigen;
pub mod gemm;
pub mod geom;
pub mod isa;
pub mod knn;
pub mod loss;
pub mod maxpool2d;
mod micro;
pub mod pca;
mod simd;
pub mod ssim;
pub mod upsample2d;
pub mod upsample_conv;
mod winograd;
mod winograd_transpose;

/// Images per parallel task. Fixed (not derived from the thread count) so that the order of
/// floating-point sums, and therefore every result, is the same on any number of threads.
pub(crate) const IMAGES_PER_TASK: usize = 4;

/// Most tasks a convolution pass splits a batch into. Each task owns a scratch area, so this
/// bounds the scratch (it does not grow with the batch) while leaving tasks enough to keep
/// the threads balanced.
pub(crate) const MAX_CONV_TASKS: usize = 8;

/// Images per convolution task for a batch of `n`: a function of `n` alone, never of the
/// thread count, so results stay bitwise repeatable.
pub(crate) fn conv_task_images(n: usize) -> usize {
    n.div_ceil(MAX_CONV_TASKS).max(IMAGES_PER_TASK)
}
