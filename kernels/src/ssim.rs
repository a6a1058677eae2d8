//! SSIM of one pair of images (slice-level), under the Gaussian and uniform-7 windows.
// PLACEHOLDER until the metrics branch merges.
pub enum Window {
    Gaussian11,
    Uniform7,
}
