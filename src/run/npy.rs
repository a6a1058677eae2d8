//! Reading and writing image arrays in NumPy .npy format (through `npyz`).
//!
//! Reading: f32, f64 or u8 arrays (u8 scaled by 1/255), either byte order, C order, shaped
//! `(N, H, W)`, `(N, H, W, 1)` or `(H, W)` (one image), into an [`ImageSet`] of row-major
//! `[n, h, w]` f32. Anything else is an [`Error::Format`] naming the file and the field.
//!
//! Untrusted bytes never panic or allocate without bound: before `npyz` sees a file, the
//! pre-header, the header length, the bracket nesting and the shape are checked here, and the
//! data length is checked against the shape before anything is read. (`npyz` would otherwise
//! allocate whatever the header length says and multiply the shape without overflow checks.)
//!
//! Writing: [`write_f32`] and [`write_u8`] write standard version-1.0 C-order files, atomically.

use crate::run::fsutil::write_atomic;
use crate::{Error, Result};
use npyz::{DType, NpyFile, Order, TypeChar, WriteOptions, WriterBuilder};
use std::path::Path;

/// A batch of single-channel images: `data` is `[n, h, w]` row-major, values as stored (u8
/// files scaled to [0, 1]).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

/// Largest header accepted, in bytes (NumPy's own `np.load` refuses more than 10,000).
const MAX_HEADER_LEN: usize = 100_000;
/// Deepest bracket nesting accepted in the header (a plain array needs 2: `{` and `(`).
const MAX_NESTING: usize = 4;

const SHAPE_FORMS: &str = "(N, H, W), (N, H, W, 1) or (H, W)";

fn format_err(path: &Path, field: &'static str, expected: impl Into<String>, found: impl Into<String>) -> Error {
    Error::Format { path: path.to_path_buf(), field, expected: expected.into(), found: found.into() }
}

/// Reads an image set from a .npy file.
pub fn read_images(path: &Path) -> Result<ImageSet> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_images(&bytes, path)
}

/// Parses the bytes of a .npy file; `path` is only used in error messages.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<ImageSet> {
    let (data_start, shape) = precheck(bytes, path)?;
    let npy =
        NpyFile::new(bytes).map_err(|e| format_err(path, "header", "a valid .npy header dictionary", e.to_string()))?;
    let npy_shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    if npy_shape != shape {
        return Err(format_err(path, "header", "one unambiguous 'shape' entry", "a header that reads two ways"));
    }
    if npy.order() != Order::C {
        return Err(format_err(
            path,
            "order",
            "C order (fortran_order: False)",
            "Fortran order; save np.ascontiguousarray(x)",
        ));
    }
    let (n, h, w) = image_dims(&shape, path)?;
    let dtype = npy.dtype();
    let DType::Plain(ts) = &dtype else {
        return Err(format_err(path, "dtype", "float32, float64 or uint8", dtype.descr()));
    };
    let item = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) | (TypeChar::Float, 8) | (TypeChar::Uint, 1) => ts.size_field() as usize,
        _ => return Err(format_err(path, "dtype", "float32, float64 or uint8", ts.to_string())),
    };
    // The shape was checked not to overflow in `precheck`.
    let count = n * h * w;
    let need = count * item;
    let have = bytes.len() - data_start;
    if have != need {
        let what = if have < need { "truncated file" } else { "trailing bytes" };
        return Err(format_err(
            path,
            "data length",
            format!("{need} bytes for shape {shape:?} of {ts}"),
            format!("{have} bytes ({what})"),
        ));
    }
    let read_err = |e: std::io::Error| format_err(path, "data", format!("{count} values of {ts}"), e.to_string());
    let data: Vec<f32> = match (ts.type_char(), item) {
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(read_err)?,
        (TypeChar::Float, _) => npy.into_vec::<f64>().map_err(read_err)?.into_iter().map(|v| v as f32).collect(),
        _ => npy.into_vec::<u8>().map_err(read_err)?.into_iter().map(|v| f32::from(v) / 255.0).collect(),
    };
    if data.len() != count {
        return Err(format_err(path, "data", format!("{count} values"), format!("{} values", data.len())));
    }
    Ok(ImageSet { n, h, w, data })
}

/// `(n, h, w)` from an accepted shape.
fn image_dims(shape: &[usize], path: &Path) -> Result<(usize, usize, usize)> {
    let dims = match *shape {
        [h, w] => (1, h, w),
        [n, h, w] | [n, h, w, 1] => (n, h, w),
        _ => return Err(format_err(path, "shape", SHAPE_FORMS, format!("{shape:?}"))),
    };
    if dims.1 == 0 || dims.2 == 0 {
        return Err(format_err(path, "shape", "non-zero height and width", format!("{shape:?}")));
    }
    Ok(dims)
}

/// Checks what `npyz` would trust: magic, version, header length, nesting, and a shape of an
/// accepted rank whose element count fits in memory. Returns (data offset, shape).
fn precheck(bytes: &[u8], path: &Path) -> Result<(usize, Vec<usize>)> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        let found = format!("{:?}", &bytes[..bytes.len().min(6)]);
        return Err(format_err(path, "magic", "\\x93NUMPY (a .npy file)", found));
    }
    let (header_len, prefix) = match (bytes[6], bytes[7]) {
        (1, 0) => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        (2, 0) | (3, 0) if bytes.len() >= 12 => {
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (usize::try_from(len).unwrap_or(usize::MAX), 12)
        }
        (major, minor) => return Err(format_err(path, "version", "1.0, 2.0 or 3.0", format!("{major}.{minor}"))),
    };
    if header_len > MAX_HEADER_LEN || bytes.len() - prefix < header_len {
        return Err(format_err(
            path,
            "header length",
            format!("at most {} bytes present", (bytes.len() - prefix).min(MAX_HEADER_LEN)),
            format!("{header_len} (truncated or corrupt file)"),
        ));
    }
    let text = std::str::from_utf8(&bytes[prefix..prefix + header_len])
        .map_err(|_| format_err(path, "header", "UTF-8 text", "invalid UTF-8"))?;
    // NumPy never writes escapes; refusing them keeps the shape we read here the one npyz reads.
    if text.contains('\\') {
        return Err(format_err(path, "header", "no backslash escapes", "a backslash"));
    }
    let mut depth = 0usize;
    for ch in text.chars() {
        match ch {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err(format_err(
                path,
                "header",
                format!("brackets nested at most {MAX_NESTING} deep"),
                "deeper nesting",
            ));
        }
    }
    let shape =
        parse_shape(text).ok_or_else(|| format_err(path, "shape", "one 'shape': (d0, d1, ...) entry", text.trim()))?;
    image_dims(&shape, path)?;
    let fits =
        shape.iter().try_fold(8usize, |acc, &d| acc.checked_mul(d.max(1))).is_some_and(|v| v <= isize::MAX as usize);
    if !fits {
        return Err(format_err(path, "shape", "an array that fits in memory", format!("{shape:?}")));
    }
    Ok((prefix + header_len, shape))
}

/// The integers of the one `'shape': (...)` entry, or None if absent, repeated or malformed.
fn parse_shape(text: &str) -> Option<Vec<usize>> {
    if text.matches("shape").count() != 1 {
        return None;
    }
    let rest = text.split_once("'shape'")?.1.trim_start().strip_prefix(':')?;
    let inner = rest.trim_start().strip_prefix('(')?.split_once(')')?.0;
    inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse::<usize>().ok()).collect()
}

/// Checks that `shape` describes `len` values; returns it as u64 for `npyz`.
fn shape_u64(path: &Path, shape: &[usize], len: usize) -> Result<Vec<u64>> {
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count != Some(len) {
        return Err(Error::InvalidArgument {
            name: "npy shape",
            expected: format!("a shape whose product is the {len} values given (writing {})", path.display()),
            found: format!("{shape:?}"),
        });
    }
    Ok(shape.iter().map(|&d| d as u64).collect())
}

/// Writes `data` (row-major, `shape`) as a little-endian float32 .npy file, atomically.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let shape = shape_u64(path, shape, data.len())?;
    write_atomic(path, |w| {
        let mut out = WriteOptions::<f32>::new().default_dtype().shape(&shape).writer(w).begin_nd()?;
        out.extend(data.iter().copied())?;
        out.finish()
    })
}

/// Writes `data` (row-major, `shape`) as a uint8 .npy file, atomically.
pub fn write_u8(path: &Path, shape: &[usize], data: &[u8]) -> Result<()> {
    let shape = shape_u64(path, shape, data.len())?;
    write_atomic(path, |w| {
        let mut out = WriteOptions::<u8>::new().default_dtype().shape(&shape).writer(w).begin_nd()?;
        out.extend(data.iter().copied())?;
        out.finish()
    })
}
