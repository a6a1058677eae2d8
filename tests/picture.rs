//! The PNG grid: decoded back with the png crate, size and pixels checked.

use autoencoder::run::picture::{write_grid_png, SEPARATOR, SEPARATOR_LEVEL};

fn decode(path: &std::path::Path) -> (u32, u32, png::ColorType, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type, buf)
}

#[test]
fn grid_layout_scale_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.png");
    let (n, h, w, scale) = (3, 2, 3, 2);
    // Original k: every pixel k/4 except pixel (0, 0) = 1.0 (and one out-of-range value).
    let mut orig = vec![0.0f32; n * h * w];
    for k in 0..n {
        for p in 0..h * w {
            orig[k * h * w + p] = k as f32 / 4.0;
        }
        orig[k * h * w] = 1.0;
    }
    orig[5] = 7.0; // clipped to 255
    let recon: Vec<f32> = orig.iter().map(|v| if *v > 0.9 { -1.0 } else { 0.5 }).collect();
    write_grid_png(&path, &orig, &recon, n, h, w, scale).unwrap();
    let (width, height, color, px) = decode(&path);
    let s = SEPARATOR;
    let (tw, th) = (w * scale, h * scale);
    assert_eq!(color, png::ColorType::Grayscale);
    assert_eq!(width as usize, n * (tw + s) + s);
    assert_eq!(height as usize, 2 * (th + s) + s);
    let at = |x: usize, y: usize| px[y * width as usize + x];
    // Frame and gaps.
    assert_eq!(at(0, 0), SEPARATOR_LEVEL);
    assert_eq!(at(s + tw, s), SEPARATOR_LEVEL);
    assert_eq!(at(s, s + th), SEPARATOR_LEVEL);
    // Original 0, pixel (0,0) = 1.0, scaled 2x: a 2x2 block of 255.
    for (x, y) in [(s, s), (s + 1, s), (s, s + 1), (s + 1, s + 1)] {
        assert_eq!(at(x, y), 255);
    }
    // Original 0, pixel (0,1) = 0.0 -> 0 at x = s + 2.
    assert_eq!(at(s + 2, s), 0);
    // Original 0, pixel (1,2) = 7.0, clipped -> 255 at the bottom-right block.
    assert_eq!(at(s + 5, s + 3), 255);
    // Original 2 (third tile), pixel (0,1) = 0.5 -> 128.
    let x2 = s + 2 * (tw + s);
    assert_eq!(at(x2 + 2, s), 128);
    // Reconstruction row, directly below: tile 1 pixel (0,0) = -1 clipped to 0; pixel (0,1) = 0.5.
    let (x1, y1) = (s + tw + s, s + th + s);
    assert_eq!(at(x1, y1), 0);
    assert_eq!(at(x1 + 2, y1), 128);
}

#[test]
fn more_than_16_images_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrap.png");
    let (n, h, w) = (17, 2, 2);
    let orig = vec![0.0f32; n * h * w];
    let recon = vec![1.0f32; n * h * w];
    write_grid_png(&path, &orig, &recon, n, h, w, 1).unwrap();
    let (width, height, _, px) = decode(&path);
    let s = SEPARATOR;
    assert_eq!(width as usize, 16 * (w + s) + s);
    assert_eq!(height as usize, 4 * (h + s) + s);
    // Image 16 is the first of the second group: originals row 2, reconstructions row 3.
    let at = |x: usize, y: usize| px[y * width as usize + x];
    assert_eq!(at(s, s + 2 * (h + s)), 0);
    assert_eq!(at(s, s + 3 * (h + s)), 255);
    // The rest of that row is separator.
    assert_eq!(at(s + (w + s), s + 2 * (h + s)), SEPARATOR_LEVEL);
}

#[test]
fn bad_arguments_are_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.png");
    assert!(write_grid_png(&path, &[0.0; 8], &[0.0; 7], 2, 2, 2, 1).is_err());
    assert!(write_grid_png(&path, &[0.0; 8], &[0.0; 8], 2, 2, 2, 0).is_err());
    assert!(write_grid_png(&path, &[], &[], 0, 2, 2, 1).is_err());
    assert!(!path.exists());
}
