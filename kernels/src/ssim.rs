//! SSIM of one pair of images (slice-level), under the Gaussian and uniform-7 windows.
