//! A PNG contact sheet of originals over their reconstructions, for looking at a model's output.
//!
//! Layout: images go in columns of up to [`MAX_COLUMNS`]; each group of up to 16 originals is a
//! row, with the matching reconstructions in the row directly below. Every image is scaled up
//! `scale` times (nearest neighbour); tiles are separated, and the sheet framed, by
//! [`SEPARATOR`] pixels of mid-grey (so black and white image borders both stay visible).
//! Values are clipped to [0, 1] and mapped to 0..=255 (NaN shows as 0). 8-bit grayscale.

use crate::run::fsutil::write_bytes_atomic;
use crate::{Error, Result};
use std::path::Path;

/// Most images per row.
pub const MAX_COLUMNS: usize = 16;
/// Width in pixels of the gaps between tiles and of the frame.
pub const SEPARATOR: usize = 2;
/// Grey level of the separator.
pub const SEPARATOR_LEVEL: u8 = 128;

fn invalid(name: &'static str, expected: impl Into<String>, found: impl Into<String>) -> Error {
    Error::InvalidArgument { name, expected: expected.into(), found: found.into() }
}

/// [0, 1] -> 0..=255, rounded; values outside are clipped, NaN becomes 0.
fn to_u8(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// The grid as (width, height, row-major 8-bit pixels). See the module docs for the layout.
pub fn grid_pixels(
    originals: &[f32],
    reconstructions: &[f32],
    n: usize,
    h: usize,
    w: usize,
    scale: usize,
) -> Result<(usize, usize, Vec<u8>)> {
    stack_pixels(&[("originals", originals), ("reconstructions", reconstructions)], n, h, w, scale)
}

/// The grid of several named image sets (each `[n, h, w]`), image k of every set in column
/// k % 16: each group of up to 16 images is one row per set, in the order of `sets`. With two
/// sets this is [`grid_pixels`]. Returns (width, height, row-major 8-bit pixels).
pub fn stack_pixels(
    sets: &[(&'static str, &[f32])],
    n: usize,
    h: usize,
    w: usize,
    scale: usize,
) -> Result<(usize, usize, Vec<u8>)> {
    if n == 0 || h == 0 || w == 0 || scale == 0 || sets.is_empty() {
        return Err(invalid(
            "grid",
            "at least one image set and image, non-zero h, w and scale",
            format!("{} sets, n {n}, {h}x{w}, scale {scale}", sets.len()),
        ));
    }
    let len = n.checked_mul(h).and_then(|v| v.checked_mul(w));
    for &(name, s) in sets {
        if Some(s.len()) != len {
            return Err(invalid(name, format!("{n}x{h}x{w} values"), format!("{} values", s.len())));
        }
    }
    let cols = n.min(MAX_COLUMNS);
    let rows = sets.len() * n.div_ceil(MAX_COLUMNS);
    let (tile_h, tile_w) = (h * scale, w * scale);
    let width = cols * (tile_w + SEPARATOR) + SEPARATOR;
    let height = rows * (tile_h + SEPARATOR) + SEPARATOR;
    if width > u32::MAX as usize || height > u32::MAX as usize || width.saturating_mul(height) > 1 << 30 {
        return Err(invalid("grid size", "at most 2^30 pixels", format!("{width}x{height}")));
    }
    // [height, width]
    let mut pixels = vec![SEPARATOR_LEVEL; width * height];
    for k in 0..n {
        let (group, col) = (k / MAX_COLUMNS, k % MAX_COLUMNS);
        let x0 = SEPARATOR + col * (tile_w + SEPARATOR);
        for (slot, &(_, set)) in sets.iter().enumerate() {
            let image = &set[k * h * w..(k + 1) * h * w];
            let y0 = SEPARATOR + (sets.len() * group + slot) * (tile_h + SEPARATOR);
            for (y, out) in pixels[y0 * width..].chunks_exact_mut(width).take(tile_h).enumerate() {
                let src = &image[(y / scale) * w..(y / scale + 1) * w];
                for (x, p) in out[x0..x0 + tile_w].iter_mut().enumerate() {
                    *p = to_u8(src[x / scale]);
                }
            }
        }
    }
    Ok((width, height, pixels))
}

/// An 8-bit grayscale PNG file's bytes, from (width, height, row-major pixels) as
/// [`stack_pixels`] returns them.
pub fn encode_png(width: usize, height: usize, pixels: &[u8]) -> Result<Vec<u8>> {
    let dims = (u32::try_from(width), u32::try_from(height));
    let (Ok(w32), Ok(h32)) = dims else {
        return Err(invalid("png size", "at most u32::MAX per side", format!("{width}x{height}")));
    };
    if pixels.len() != width * height {
        return Err(invalid("png pixels", format!("{width}x{height} values"), format!("{}", pixels.len())));
    }
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w32, h32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let encoded = enc.write_header().and_then(|mut w| {
        w.write_image_data(pixels)?;
        w.finish()
    });
    encoded.map_err(|e| invalid("png", "an encodable image", e.to_string()))?;
    Ok(bytes)
}

/// Writes the grid of `originals` over `reconstructions` (each `[n, h, w]`, values in [0, 1])
/// as an 8-bit grayscale PNG, atomically.
pub fn write_grid_png(
    path: &Path,
    originals: &[f32],
    reconstructions: &[f32],
    n: usize,
    h: usize,
    w: usize,
    scale: usize,
) -> Result<()> {
    let (width, height, pixels) = grid_pixels(originals, reconstructions, n, h, w, scale)?;
    write_bytes_atomic(path, &encode_png(width, height, &pixels)?)
}
