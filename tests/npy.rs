//! .npy reading and writing: round trips, accepted dtypes and shapes, clear errors, no panics.

use autoencoder::run::npy::{parse_images, read_images, write_f32, write_u8, ImageSet};
use autoencoder::Error;
use proptest::prelude::*;
use std::path::Path;

/// A version-1.0 .npy file with the given header fields and raw data bytes.
fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn format_field(result: Result<ImageSet, Error>) -> (&'static str, String) {
    match result {
        Err(e @ Error::Format { field, .. }) => (field, e.to_string()),
        other => panic!("expected a Format error, got {other:?}"),
    }
}

#[test]
fn f32_round_trip_all_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<f32> = (0..2 * 3 * 5).map(|i| i as f32 / 29.0).collect();
    for shape in [vec![2, 3, 5], vec![2, 3, 5, 1]] {
        let path = dir.path().join("x.npy");
        write_f32(&path, &shape, &data).unwrap();
        let set = read_images(&path).unwrap();
        assert_eq!((set.n, set.h, set.w), (2, 3, 5), "shape {shape:?}");
        assert_eq!(set.data, data);
    }
    let path = dir.path().join("one.npy");
    write_f32(&path, &[6, 5], &data).unwrap();
    let set = read_images(&path).unwrap();
    assert_eq!((set.n, set.h, set.w), (1, 6, 5));
    assert_eq!(set.data, data);
}

#[test]
fn u8_round_trip_scales_by_1_over_255() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u8.npy");
    let data: Vec<u8> = vec![0, 1, 128, 255, 7, 9];
    write_u8(&path, &[1, 2, 3], &data).unwrap();
    let set = read_images(&path).unwrap();
    assert_eq!((set.n, set.h, set.w), (1, 2, 3));
    let want: Vec<f32> = data.iter().map(|&v| f32::from(v) / 255.0).collect();
    assert_eq!(set.data, want);
    assert_eq!(set.data[3], 1.0);
}

#[test]
fn written_file_is_standard_npy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("std.npy");
    write_f32(&path, &[1, 2, 2], &[0.0, 0.25, 0.5, 1.0]).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0, "data must start 64-byte aligned");
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    assert!(header.contains("'shape': (1, 2, 2"), "{header}");
    assert_eq!(&bytes[10 + header_len..10 + header_len + 8], &[0, 0, 0, 0, 0, 0, 0x80, 0x3e]);
    // No temp file left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn f64_and_big_endian_are_read() {
    let vals = [0.5f64, 0.25, 1.0, 0.0];
    let le: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let set = parse_images(&npy_bytes("<f8", false, "(1, 2, 2)", &le), Path::new("f8.npy")).unwrap();
    assert_eq!(set.data, vec![0.5, 0.25, 1.0, 0.0]);
    let be: Vec<u8> = vals.iter().flat_map(|v| (*v as f32).to_be_bytes()).collect();
    let set = parse_images(&npy_bytes(">f4", false, "(2, 2)", &be), Path::new("be.npy")).unwrap();
    assert_eq!((set.n, set.h, set.w), (1, 2, 2));
    assert_eq!(set.data, vec![0.5, 0.25, 1.0, 0.0]);
}

#[test]
fn wrong_dtype_is_named() {
    let bytes = npy_bytes("<i4", false, "(1, 2, 2)", &[0; 16]);
    let (field, msg) = format_field(parse_images(&bytes, Path::new("ints.npy")));
    assert_eq!(field, "dtype");
    assert!(msg.contains("ints.npy") && msg.contains("<i4") && msg.contains("float32"), "{msg}");
}

#[test]
fn wrong_shape_is_named() {
    for shape in ["(4,)", "(1, 2, 2, 3)", "(1, 1, 2, 2, 1)", "(2, 0)"] {
        let bytes = npy_bytes("<f4", false, shape, &[0; 48]);
        let (field, msg) = format_field(parse_images(&bytes, Path::new("s.npy")));
        assert_eq!(field, "shape", "{shape}: {msg}");
        assert!(msg.contains("s.npy"), "{msg}");
    }
}

#[test]
fn fortran_order_is_refused() {
    let bytes = npy_bytes("<f4", true, "(1, 2, 2)", &[0; 16]);
    assert_eq!(format_field(parse_images(&bytes, Path::new("f.npy"))).0, "order");
}

#[test]
fn truncated_and_corrupt_files_are_errors() {
    let good = npy_bytes("<f4", false, "(2, 3, 3)", &[0; 72]);
    assert!(parse_images(&good, Path::new("g.npy")).is_ok());
    let (field, msg) = format_field(parse_images(&good[..good.len() - 1], Path::new("t.npy")));
    assert_eq!(field, "data length");
    assert!(msg.contains("truncated") && msg.contains("72 bytes"), "{msg}");
    let mut long = good.clone();
    long.push(0);
    assert_eq!(format_field(parse_images(&long, Path::new("l.npy"))).0, "data length");
    assert_eq!(format_field(parse_images(&good[..40], Path::new("h.npy"))).0, "header length");
    assert_eq!(format_field(parse_images(b"PK\x03\x04 not npy", Path::new("z.npy"))).0, "magic");
    assert_eq!(format_field(parse_images(b"", Path::new("e.npy"))).0, "magic");
    // A header claiming an absurd size must be refused before any allocation.
    let huge = npy_bytes("<f4", false, "(18446744073709551615, 99999999999, 2)", &[]);
    assert_eq!(format_field(parse_images(&huge, Path::new("x.npy"))).0, "shape");
    let huge = npy_bytes("<f4", false, "(0, 4294967296, 4294967296, 1)", &[]);
    assert_eq!(format_field(parse_images(&huge, Path::new("x.npy"))).0, "shape");
}

#[test]
fn missing_file_is_io_error() {
    let err = read_images(Path::new("/nonexistent/none.npy")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("none.npy"));
}

#[test]
fn write_refuses_shape_that_disagrees_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.npy");
    assert!(write_f32(&path, &[2, 2], &[0.0; 3]).is_err());
    assert!(write_u8(&path, &[2, 2], &[0; 5]).is_err());
    assert!(!path.exists());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_images(&bytes, Path::new("fuzz.npy"));
    }

    #[test]
    fn corrupted_valid_file_never_panics(
        flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..8),
        cut in 0usize..200,
    ) {
        let mut bytes = npy_bytes("<f4", false, "(2, 3, 3)", &[0x3f; 72]);
        for (pos, v) in flips {
            let i = pos % bytes.len();
            bytes[i] = v;
        }
        let _ = parse_images(&bytes, Path::new("fuzz.npy"));
        let _ = parse_images(&bytes[..cut.min(bytes.len())], Path::new("fuzz.npy"));
    }

    #[test]
    fn header_text_mutations_never_panic(text in "[{}()\\[\\]',: a-z0-9<>|]{0,120}") {
        let mut header = text.into_bytes();
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(&header);
        bytes.extend([0u8; 64]);
        let _ = parse_images(&bytes, Path::new("fuzz.npy"));
    }
}
