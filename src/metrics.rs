//! SSIM (both definitions) and MSE over batches of images.
