//! IDX files (the MNIST container format): a big-endian header `00 00 TYPE NDIMS`, then NDIMS
//! big-endian `u32` dimensions, then the payload, row-major. Only unsigned-byte payloads are
//! read: images `0x00000803` (`[count, rows, cols]`) and labels `0x00000801` (`[count]`).
//! A file that starts with the gzip magic `1f 8b` is decompressed on the fly.
//!
//! Nothing here trusts the header: the payload is read through a reader bounded at the claimed
//! size + 1 byte, so a header claiming 4 billion images in a 100-byte file, a truncated file and
//! trailing bytes are all errors found before (or instead of) any large allocation.

use crate::run::fsutil::write_atomic;
use crate::{Error, Result};
use byteorder::{BigEndian, ByteOrder, WriteBytesExt};
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{self, Read, Write};
use std::path::Path;

/// The one element type read: unsigned byte.
const TYPE_U8: u8 = 0x08;
/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Decompressed-size guess per compressed byte, only for the first allocation (the `Vec` grows
/// past it if needed; it never exceeds the claimed size + 1).
const GZIP_RATIO_HINT: usize = 8;
/// How far past the claimed size a gzip stream is decoded to tell corruption from trailing data.
const TRAILING_PROBE: u64 = 1 << 20;

/// A stack of equally sized 8-bit grey images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    /// [count, rows, cols], row-major.
    pub pixels: Vec<u8>,
}

/// What an IDX file holds, which fixes its magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxKind {
    /// `0x00000803`: u8, dims [count, rows, cols].
    Images,
    /// `0x00000801`: u8, dims `[count]`.
    Labels,
}

impl IdxKind {
    pub fn ndims(self) -> usize {
        match self {
            IdxKind::Images => 3,
            IdxKind::Labels => 1,
        }
    }
}

/// A decompressed IDX file whose header agrees with its payload length.
#[derive(Debug, Clone)]
pub struct RawIdx {
    pub kind: IdxKind,
    /// The dimensions from the header, each > 0.
    pub dims: Vec<usize>,
    /// The whole decompressed file: header then payload (what the published SHA-256 covers).
    pub bytes: Vec<u8>,
}

impl RawIdx {
    fn header_len(&self) -> usize {
        4 + 4 * self.dims.len()
    }

    /// The payload, without the header.
    pub fn payload(&self) -> &[u8] {
        self.bytes.get(self.header_len()..).unwrap_or(&[])
    }

    /// The images, if this is an image file.
    pub fn into_images(mut self, path: &Path) -> Result<Images> {
        if self.kind != IdxKind::Images || self.dims.len() != 3 {
            return Err(format_error(path, "kind", "an image file", format!("{:?}", self.kind)));
        }
        let (count, rows, cols) = (self.dims[0], self.dims[1], self.dims[2]);
        let header_len = self.header_len();
        // Drop the header in place: a memmove, not a second 47 MB buffer.
        self.bytes.drain(..header_len);
        Ok(Images { count, rows, cols, pixels: self.bytes })
    }

    /// The labels, if this is a label file; every label must be a class in 0..=9.
    pub fn into_labels(mut self, path: &Path) -> Result<Vec<u8>> {
        if self.kind != IdxKind::Labels || self.dims.len() != 1 {
            return Err(format_error(path, "kind", "a label file", format!("{:?}", self.kind)));
        }
        let header_len = self.header_len();
        self.bytes.drain(..header_len);
        if let Some((i, &l)) = self.bytes.iter().enumerate().find(|(_, &l)| l > 9) {
            return Err(format_error(path, "label", "a class in 0..=9", format!("{l} at index {i}")));
        }
        Ok(self.bytes)
    }
}

fn format_error(path: &Path, field: &'static str, expected: impl Into<String>, found: impl Into<String>) -> Error {
    Error::Format { path: path.to_path_buf(), field, expected: expected.into(), found: found.into() }
}

/// Reads into `buf` until it is full or the stream ends; returns how many bytes were read.
/// Unlike `read_exact`, a clean end of stream is told apart from a decoder error.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Decompresses (if gzipped) and validates an IDX file held in memory: magic, data type, number
/// of dimensions, every dimension > 0, payload length exactly the product of the dimensions.
/// `path` only names the file in errors.
pub fn decode(bytes: &[u8], path: &Path, kind: IdxKind) -> Result<RawIdx> {
    decode_checked(bytes, path, kind, |_| Ok(()))
}

/// `decode`, with `check` run on the header's dimensions before any of the payload is
/// decompressed or allocated (a small .gz may claim a gigabyte).
pub fn decode_checked(
    bytes: &[u8],
    path: &Path,
    kind: IdxKind,
    check: impl Fn(&[usize]) -> Result<()>,
) -> Result<RawIdx> {
    let gzip = bytes.starts_with(&GZIP_MAGIC);
    let mut gz;
    let mut plain = bytes;
    let reader: &mut dyn Read = if gzip {
        gz = MultiGzDecoder::new(bytes);
        &mut gz
    } else {
        &mut plain
    };
    let stream_error = |e: io::Error| format_error(path, "gzip stream", "a valid gzip stream", e.to_string());

    let mut magic = [0u8; 4];
    let got = read_full(reader, &mut magic).map_err(stream_error)?;
    if got < 4 {
        return Err(format_error(path, "header", "at least 4 bytes (the magic number)", format!("{got} bytes")));
    }
    let want_magic = 0x0000_0800 | kind.ndims() as u32;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(format_error(
            path,
            "magic",
            format!("{want_magic:#010x} (IDX, first two bytes zero)"),
            format!("{:#010x}", BigEndian::read_u32(&magic)),
        ));
    }
    if magic[2] != TYPE_U8 {
        return Err(format_error(path, "data type", "0x08 (unsigned byte)", format!("{:#04x}", magic[2])));
    }
    if magic[3] as usize != kind.ndims() {
        return Err(format_error(
            path,
            "dimensions",
            format!("{} ({:?} file, magic {want_magic:#010x})", kind.ndims(), kind),
            magic[3].to_string(),
        ));
    }

    let ndims = kind.ndims();
    let mut dim_bytes = [0u8; 12]; // at most 3 dims
    let dim_bytes = &mut dim_bytes[..4 * ndims];
    let got = read_full(reader, dim_bytes).map_err(stream_error)?;
    if got < dim_bytes.len() {
        return Err(format_error(
            path,
            "header",
            format!("{} bytes ({} dimensions)", 4 + 4 * ndims, ndims),
            format!("{} bytes", 4 + got),
        ));
    }
    let dims: Vec<usize> = dim_bytes.chunks_exact(4).map(|c| BigEndian::read_u32(c) as usize).collect();
    if let Some(i) = dims.iter().position(|&d| d == 0) {
        return Err(format_error(
            path,
            "dimension size",
            "every dimension > 0",
            format!("dimension {i} is 0 (dims {dims:?})"),
        ));
    }
    let claimed = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&c| c < usize::MAX - 16)
        .ok_or_else(|| {
            format_error(path, "payload size", "a product of dimensions that fits in memory", format!("dims {dims:?}"))
        })?;
    let header_len = 4 + 4 * ndims;
    check(&dims)?;

    // Plain files: compare lengths before allocating anything.
    if !gzip {
        let have = bytes.len() - header_len;
        if have < claimed {
            return Err(truncated(path, &dims, claimed, have));
        }
        if have > claimed {
            return Err(trailing(path, &dims, claimed, format!("{} bytes ({} extra)", have, have - claimed)));
        }
    }

    let hint = if gzip { bytes.len().saturating_mul(GZIP_RATIO_HINT) } else { bytes.len() };
    let mut out = Vec::with_capacity(header_len + claimed.min(hint));
    out.extend_from_slice(&magic);
    out.extend_from_slice(dim_bytes);
    // The +1 byte tells "exactly the claimed size" from "trailing bytes" without reading on.
    reader.take(claimed as u64 + 1).read_to_end(&mut out).map_err(stream_error)?;
    let have = out.len() - header_len;
    if have < claimed {
        return Err(truncated(path, &dims, claimed, have));
    }
    if have > claimed {
        // Extra output from a gzip stream may be a corrupt stream decoding to garbage: read a
        // bounded amount further, so a decoder or CRC error is reported as what it is.
        if gzip {
            io::copy(&mut reader.take(TRAILING_PROBE), &mut io::sink()).map_err(stream_error)?;
        }
        return Err(trailing(path, &dims, claimed, "more bytes after the payload".to_string()));
    }
    Ok(RawIdx { kind, dims, bytes: out })
}

fn truncated(path: &Path, dims: &[usize], claimed: usize, have: usize) -> Error {
    format_error(
        path,
        "payload length",
        format!("{claimed} bytes (dims {dims:?}); the file is truncated"),
        format!("{have} bytes"),
    )
}

fn trailing(path: &Path, dims: &[usize], claimed: usize, found: String) -> Error {
    format_error(
        path,
        "trailing bytes",
        format!("the file to end after {claimed} payload bytes (dims {dims:?})"),
        found,
    )
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Parses an image file held in memory (gzipped or plain). `path` only names it in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<Images> {
    decode(bytes, path, IdxKind::Images)?.into_images(path)
}

/// Parses a label file held in memory (gzipped or plain); labels must be in 0..=9.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    decode(bytes, path, IdxKind::Labels)?.into_labels(path)
}

/// Reads an image file (`0x00000803`), gzipped or plain.
pub fn read_images(path: &Path) -> Result<Images> {
    parse_images(&read_file(path)?, path)
}

/// Reads a label file (`0x00000801`), gzipped or plain; labels must be in 0..=9.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    parse_labels(&read_file(path)?, path)
}

fn dim_u32(path: &Path, name: &'static str, v: usize) -> Result<u32> {
    match u32::try_from(v) {
        Ok(d) if d > 0 => Ok(d),
        _ => Err(Error::InvalidArgument {
            name,
            expected: format!("1..={} (an IDX dimension) for {}", u32::MAX, path.display()),
            found: v.to_string(),
        }),
    }
}

/// Writes the header then the payload, through gzip if asked, atomically.
fn write_idx(path: &Path, kind: IdxKind, dims: &[u32], payload: &[u8], gzip: bool) -> Result<()> {
    let mut header = Vec::with_capacity(16);
    header.extend_from_slice(&[0, 0, TYPE_U8, kind.ndims() as u8]);
    for &d in dims {
        header.write_u32::<BigEndian>(d).map_err(|e| Error::io(path, e))?;
    }
    write_atomic(path, |w| {
        if gzip {
            let mut enc = GzEncoder::new(w, Compression::fast());
            enc.write_all(&header)?;
            enc.write_all(payload)?;
            enc.finish()?.flush()
        } else {
            w.write_all(&header)?;
            w.write_all(payload)
        }
    })
}

/// Writes `pixels` ([count, rows, cols] u8) as an IDX image file, gzipped if `gzip`.
/// Errors if `pixels` is not a whole, non-zero number of `rows * cols` images.
pub fn write_images(path: &Path, rows: usize, cols: usize, pixels: &[u8], gzip: bool) -> Result<()> {
    let r = dim_u32(path, "rows", rows)?;
    let c = dim_u32(path, "cols", cols)?;
    let image_len = rows * cols;
    if !pixels.len().is_multiple_of(image_len) {
        return Err(Error::InvalidArgument {
            name: "pixels",
            expected: format!("a multiple of {rows}x{cols} = {image_len} bytes for {}", path.display()),
            found: format!("{} bytes", pixels.len()),
        });
    }
    let n = dim_u32(path, "image count", pixels.len() / image_len)?;
    write_idx(path, IdxKind::Images, &[n, r, c], pixels, gzip)
}

/// Writes `labels` as an IDX label file, gzipped if `gzip`. Errors if `labels` is empty.
pub fn write_labels(path: &Path, labels: &[u8], gzip: bool) -> Result<()> {
    let n = dim_u32(path, "label count", labels.len())?;
    write_idx(path, IdxKind::Labels, &[n], labels, gzip)
}
