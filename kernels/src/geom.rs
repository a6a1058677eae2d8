//! Geometry of every windowed op, built once: output sizes and Keras/TensorFlow padding.
//!
//! Keras 'same': out = ceil(in / s); total padding P = max((out - 1) * s + k - in, 0), with
//! floor(P / 2) at the top/left and the odd extra at the bottom/right (not PyTorch's symmetric
//! padding). 'valid': out = floor((in - k) / s) + 1, no padding.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    Same,
    Valid,
}

/// The product of `factors`: a buffer length. Every length the kernels check a slice against
/// comes from here, so a geometry too large for memory cannot wrap around to a small length
/// that a short slice would pass (the raw-pointer loops rely on those checks).
/// # Panics
/// If the product overflows `usize`.
pub fn size(factors: &[usize]) -> usize {
    factors
        .iter()
        .try_fold(1usize, |p, &f| p.checked_mul(f))
        .unwrap_or_else(|| panic!("buffer size {factors:?} overflows usize"))
}

/// Output size and leading pad along one axis of a k-wide window with stride s.
/// `None` when 'valid' leaves no output (window larger than the input).
pub fn window_out(input: usize, k: usize, stride: usize, padding: Padding) -> Option<(usize, usize)> {
    if input == 0 || k == 0 || stride == 0 {
        return None;
    }
    match padding {
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + k).saturating_sub(input);
            Some((out, total / 2))
        }
        Padding::Valid => (input >= k).then(|| ((input - k) / stride + 1, 0)),
    }
}

/// Output size along one axis of a transposed convolution (Keras, no output_padding).
pub fn transpose_out(input: usize, k: usize, stride: usize, padding: Padding) -> usize {
    match padding {
        Padding::Same => input * stride,
        Padding::Valid => (input - 1) * stride + k + stride.saturating_sub(k),
    }
}

/// A square-kernel 2-D convolution over one NHWC image:
/// `x [h_in, w_in, c_in]`, `w [k, k, c_in, c_out]`, `y [h_out, w_out, c_out]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub h_in: usize,
    pub w_in: usize,
    pub c_in: usize,
    pub h_out: usize,
    pub w_out: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl ConvGeom {
    /// Keras Conv2D geometry; `None` if 'valid' leaves no output or a size is zero.
    pub fn new(
        h_in: usize,
        w_in: usize,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: Padding,
    ) -> Option<Self> {
        let (h_out, pad_top) = window_out(h_in, k, stride, padding)?;
        let (w_out, pad_left) = window_out(w_in, k, stride, padding)?;
        (c_in > 0 && c_out > 0).then_some(ConvGeom {
            h_in,
            w_in,
            c_in,
            h_out,
            w_out,
            c_out,
            k,
            stride,
            pad_top,
            pad_left,
        })
    }

    /// Geometry of a Keras Conv2DTranspose taking `[h_in, w_in, c_in]` to `c_out` channels,
    /// expressed as the Conv2D whose input gradient it is: that conv reads the transpose's
    /// output (`c_out` channels) and writes its input (`c_in` channels), with the same
    /// `[k, k, c_out, c_in]` kernel array. Cropping of the "full" output then falls out of the
    /// conv's 'same' padding.
    pub fn transpose(
        h_in: usize,
        w_in: usize,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: Padding,
    ) -> Option<Self> {
        if h_in == 0 || w_in == 0 || k == 0 || stride == 0 {
            return None;
        }
        let h_out = transpose_out(h_in, k, stride, padding);
        let w_out = transpose_out(w_in, k, stride, padding);
        let g = ConvGeom::new(h_out, w_out, c_out, c_in, k, stride, padding)?;
        debug_assert_eq!((g.h_out, g.w_out), (h_in, w_in));
        Some(g)
    }

    pub fn x_len(&self) -> usize {
        size(&[self.h_in, self.w_in, self.c_in])
    }
    pub fn y_len(&self) -> usize {
        size(&[self.h_out, self.w_out, self.c_out])
    }
    pub fn w_len(&self) -> usize {
        size(&[self.k, self.k, self.c_in, self.c_out])
    }
    /// Length of one im2col row: a receptive field, `[k, k, c_in]`.
    pub fn patch_len(&self) -> usize {
        size(&[self.k, self.k, self.c_in])
    }
    /// Scratch one image's im2col needs: `[h_out * w_out, k * k * c_in]`.
    pub fn cols_len(&self) -> usize {
        size(&[self.h_out, self.w_out, self.patch_len()])
    }
    /// Multiply-adds of one image's forward pass.
    pub fn macs(&self) -> usize {
        size(&[self.h_out, self.w_out, self.patch_len(), self.c_out])
    }
    /// Rows of padding below the input: what the last window reaches past it (the odd extra
    /// row of TensorFlow's 'same'; 0 for 'valid').
    pub fn pad_bottom(&self) -> usize {
        ((self.h_out - 1) * self.stride + self.k).saturating_sub(self.h_in + self.pad_top)
    }
    /// Columns of padding right of the input, as `pad_bottom`.
    pub fn pad_right(&self) -> usize {
        ((self.w_out - 1) * self.stride + self.k).saturating_sub(self.w_in + self.pad_left)
    }
    /// Input row read by output row `oh` and kernel row `kh`, or `None` if it is padding.
    #[inline]
    pub fn in_row(&self, oh: usize, kh: usize) -> Option<usize> {
        (oh * self.stride + kh).checked_sub(self.pad_top).filter(|&r| r < self.h_in)
    }
    /// Input column read by output column `ow` and kernel column `kw`, or `None` if padding.
    #[inline]
    pub fn in_col(&self, ow: usize, kw: usize) -> Option<usize> {
        (ow * self.stride + kw).checked_sub(self.pad_left).filter(|&c| c < self.w_in)
    }
}

/// A max-pooling window over one NHWC image `[h_in, w_in, c]` -> `[h_out, w_out, c]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub h_in: usize,
    pub w_in: usize,
    pub c: usize,
    pub h_out: usize,
    pub w_out: usize,
    pub pool: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl PoolGeom {
    /// `None` if 'valid' leaves no output, `c` is zero, or an image has more elements than
    /// the `u32` indices of max pooling's argmax can name.
    pub fn new(h_in: usize, w_in: usize, c: usize, pool: usize, stride: usize, padding: Padding) -> Option<Self> {
        let (h_out, pad_top) = window_out(h_in, pool, stride, padding)?;
        let (w_out, pad_left) = window_out(w_in, pool, stride, padding)?;
        let elements = h_in.checked_mul(w_in)?.checked_mul(c)?;
        (c > 0 && u32::try_from(elements).is_ok()).then_some(PoolGeom {
            h_in,
            w_in,
            c,
            h_out,
            w_out,
            pool,
            stride,
            pad_top,
            pad_left,
        })
    }
    pub fn x_len(&self) -> usize {
        size(&[self.h_in, self.w_in, self.c])
    }
    pub fn y_len(&self) -> usize {
        size(&[self.h_out, self.w_out, self.c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_the_keras_table() {
        // (input, kernel, stride) -> (out, pad_top), from the reference README.
        for &(i, k, s, out, top) in &[
            (28, 3, 2, 14, 0),
            (14, 3, 2, 7, 0),
            (7, 3, 2, 4, 1),
            (5, 3, 2, 3, 1),
            (14, 5, 2, 7, 1),
            (9, 3, 1, 9, 1),
            (5, 1, 2, 3, 0),
        ] {
            assert_eq!(window_out(i, k, s, Padding::Same), Some((out, top)), "{i} k{k} s{s}");
        }
    }

    #[test]
    fn transpose_sizes_match_keras() {
        assert_eq!(transpose_out(7, 3, 2, Padding::Same), 14);
        assert_eq!(transpose_out(7, 3, 2, Padding::Valid), 15);
        assert_eq!(transpose_out(14, 3, 2, Padding::Valid), 29);
        assert_eq!(transpose_out(7, 2, 2, Padding::Valid), 14);
        assert_eq!(transpose_out(5, 1, 2, Padding::Valid), 10);
        for (i, k, s, p) in [(7, 3, 2, Padding::Same), (5, 1, 2, Padding::Same), (5, 3, 1, Padding::Valid)] {
            let g = ConvGeom::transpose(i, i, 2, 3, k, s, p).unwrap();
            assert_eq!((g.h_out, g.w_out), (i, i));
        }
    }

    #[test]
    fn valid_window_larger_than_input_is_none() {
        assert_eq!(window_out(2, 3, 1, Padding::Valid), None);
    }
}
