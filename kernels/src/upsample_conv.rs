//! Nearest 2x upsampling followed by a 3 x 3 'same' stride-1 convolution, run as one 4 x 4
//! stride-2 transposed convolution of the small image (`conv_transpose2d`, Keras 'same').
//!
//! Output row 2i + p of the convolution reads upsampled rows 2i + p - 1 ..= 2i + p + 1, which
//! are small rows i - 1, i, i (p = 0) or i, i, i + 1 (p = 1): every output reads a 2 x 2
//! window of the small image, and kernel rows that land on the same small row act as their
//! sum. The transposed convolution's output row 2i + p reads small row i' through its kernel
//! row a = 2(i - i') + p + 1, so its row a is the sum of the 3 x 3 kernel's rows `TAPS[a]`;
//! the same along columns. That is 4 multiply-adds per output and channel pair instead of 9,
//! without writing or reading the upsampled image (4x the small one) or transforming windows
//! as Winograd's F(2x2, 3x3) does for its 4.
//!
//! Rounding: the folded kernel is each sum of up to 4 taps in f64, rounded once, and the
//! kernel gradient is folded back the same way (`unfold_gradient`, the adjoint): the results
//! differ from the upsampled convolution's by rounding only.

use crate::geom::{size, ConvGeom, Padding};

/// The 3 x 3 kernel rows (or columns) summed into each row (or column) of the folded 4 x 4
/// kernel: see the module comment.
const TAPS: [&[usize]; 4] = [&[2], &[1, 2], &[0, 1], &[0]];

/// The transposed convolution's geometry (`ConvGeom::transpose`) for a small image
/// `[h, w, c_in]` and `c_out` filters: output `[2h, 2w, c_out]`, as the upsampled convolution.
pub fn geom(h: usize, w: usize, c_in: usize, c_out: usize) -> Option<ConvGeom> {
    ConvGeom::transpose(h, w, c_in, c_out, 4, 2, Padding::Same)
}

/// Floats of the folded kernel `[4, 4, c_out, c_in]` (a Conv2DTranspose kernel).
pub fn folded_len(c_in: usize, c_out: usize) -> usize {
    size(&[16, c_out, c_in])
}

/// `w4[a][b][co][ci]` = sum of `w3[kh][kw][ci][co]` over kh in `TAPS[a]`, kw in `TAPS[b]`, for
/// the Conv2D kernel `w3 [3, 3, c_in, c_out]`. Overwrites `w4` (`folded_len`).
/// # Panics
/// If a length disagrees with `c_in` and `c_out`.
pub fn fold_kernel(c_in: usize, c_out: usize, w3: &[f32], w4: &mut [f32]) {
    assert_eq!(w3.len(), size(&[9, c_in, c_out]), "upsample_conv: 3 x 3 kernel length");
    assert_eq!(w4.len(), folded_len(c_in, c_out), "upsample_conv: folded kernel length");
    for (ab, plane) in w4.chunks_exact_mut(c_out * c_in).enumerate() {
        let (ta, tb) = (TAPS[ab / 4], TAPS[ab % 4]);
        for (co, row) in plane.chunks_exact_mut(c_in).enumerate() {
            for (ci, out) in row.iter_mut().enumerate() {
                let mut sum = 0.0f64;
                for &kh in ta {
                    for &kw in tb {
                        sum += f64::from(w3[((kh * 3 + kw) * c_in + ci) * c_out + co]);
                    }
                }
                *out = sum as f32;
            }
        }
    }
}

/// `dw3[kh][kw][ci][co]` = sum of `dw4[a][b][co][ci]` over the (a, b) whose `TAPS` hold kh and kw:
/// the gradient of `fold_kernel`'s input from that of its output. Overwrites `dw3`.
/// # Panics
/// If a length disagrees with `c_in` and `c_out`.
pub fn unfold_gradient(c_in: usize, c_out: usize, dw4: &[f32], dw3: &mut [f32]) {
    assert_eq!(dw4.len(), folded_len(c_in, c_out), "upsample_conv: folded gradient length");
    assert_eq!(dw3.len(), size(&[9, c_in, c_out]), "upsample_conv: 3 x 3 gradient length");
    let rows_of = |k: usize| (0..4).filter(move |&a| TAPS[a].contains(&k));
    for (tap, plane) in dw3.chunks_exact_mut(c_in * c_out).enumerate() {
        let (kh, kw) = (tap / 3, tap % 3);
        for (ci, row) in plane.chunks_exact_mut(c_out).enumerate() {
            for (co, out) in row.iter_mut().enumerate() {
                let mut sum = 0.0f64;
                for a in rows_of(kh) {
                    for b in rows_of(kw) {
                        sum += f64::from(dw4[((a * 4 + b) * c_out + co) * c_in + ci]);
                    }
                }
                *out = sum as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv2d;
    use crate::conv_transpose2d;
    use crate::upsample2d::{self, UpGeom};

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn close(what: &str, a: &[f32], b: &[f32]) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{what}[{i}]: folded {x}, upsampled {y}");
        }
    }

    /// The folded transposed convolution against upsampling then convolving, every pass, on
    /// the naive twins (odd sizes too).
    #[test]
    fn folded_transpose_is_upsampling_then_convolution() {
        for (n, h, w, ci, co) in [(2, 3, 5, 2, 3), (1, 4, 4, 5, 1), (2, 1, 2, 3, 4)] {
            let up = UpGeom { h, w, c: ci, factor: 2 };
            let conv = ConvGeom::new(2 * h, 2 * w, ci, co, 3, 1, Padding::Same).unwrap();
            let ft = geom(h, w, ci, co).unwrap();
            assert_eq!((ft.h_in, ft.w_in, ft.c_in, ft.h_out, ft.c_out), (2 * h, 2 * w, co, h, ci));
            let (x, w3, b, dy) =
                (data(n * up.x_len(), 1), data(9 * ci * co, 2), data(co, 3), data(n * conv.y_len(), 4));
            let mut w4 = vec![0.0; folded_len(ci, co)];
            fold_kernel(ci, co, &w3, &mut w4);

            let mut xu = vec![0.0; n * up.y_len()];
            upsample2d::forward_naive(&up, n, &x, &mut xu);
            let (mut y, mut y4) = (vec![0.0; n * conv.y_len()], vec![0.0; n * conv.y_len()]);
            conv2d::forward_naive(&conv, n, &xu, &w3, Some(&b), &mut y);
            conv_transpose2d::forward_naive(&ft, n, &x, &w4, &b, &mut y4);
            close("forward", &y4, &y);

            let (mut dxu, mut dx, mut dx4) = (vec![0.0; xu.len()], vec![0.0; x.len()], vec![0.0; x.len()]);
            conv2d::backward_input_naive(&conv, n, &dy, &w3, &mut dxu);
            upsample2d::backward_input_naive(&up, n, &dxu, &mut dx);
            conv_transpose2d::backward_input_naive(&ft, n, &dy, &w4, &mut dx4);
            close("input gradient", &dx4, &dx);

            let (mut dw3, mut dw4, mut dw3_from4, mut db) =
                (vec![0.0; w3.len()], vec![0.0; w4.len()], vec![0.0; w3.len()], vec![0.0; co]);
            conv2d::backward_weight_naive(&conv, n, &xu, &dy, &mut dw3, None);
            conv_transpose2d::backward_weight_naive(&ft, n, &x, &dy, &mut dw4, &mut db);
            unfold_gradient(ci, co, &dw4, &mut dw3_from4);
            close("weight gradient", &dw3_from4, &dw3);
        }
    }
}
