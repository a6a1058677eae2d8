//! IDX reading and writing, malformed files, the data locator with custom data, and the split.
//! Everything runs on small synthetic files in temp folders: no network, no real data.

use autoencoder::data::idx::{self, IdxKind, Images};
use autoencoder::data::{self, fashion_mnist, DataOptions, Dataset, IMAGE_LEN};
use autoencoder::Error;
use proptest::prelude::*;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TRAIN_N: usize = 20;
const TEST_N: usize = 10;

fn pixels(n: usize, rows: usize, cols: usize, salt: u32) -> Vec<u8> {
    (0..n * rows * cols).map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(salt) >> 24) as u8).collect()
}

fn labels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 10) as u8).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Writes a valid synthetic set of the four files (train pair gzipped, test pair plain).
fn synthetic_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let [tri, trl, tei, tel] = fashion_mnist::FILES.map(|f| f.name);
    idx::write_images(&dir.path().join(format!("{tri}.gz")), 28, 28, &pixels(TRAIN_N, 28, 28, 1), true).unwrap();
    idx::write_labels(&dir.path().join(format!("{trl}.gz")), &labels(TRAIN_N), true).unwrap();
    idx::write_images(&dir.path().join(tei), 28, 28, &pixels(TEST_N, 28, 28, 2), false).unwrap();
    idx::write_labels(&dir.path().join(tel), &labels(TEST_N), false).unwrap();
    dir
}

fn custom(dir: &Path, allow: bool) -> DataOptions {
    DataOptions { data_dir: Some(dir.to_path_buf()), allow_custom_data: allow, data_url: None }
}

/// The plain bytes of a valid image file with `n` images of `rows` x `cols`.
fn image_file(n: usize, rows: usize, cols: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    idx::write_images(&p, rows, cols, &pixels(n, rows, cols, 3), false).unwrap();
    std::fs::read(p).unwrap()
}

fn label_file(n: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("y");
    idx::write_labels(&p, &labels(n), false).unwrap();
    std::fs::read(p).unwrap()
}

#[test]
fn images_round_trip_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    for (gz, name) in [(false, "plain"), (true, "packed.gz")] {
        let p = dir.path().join(name);
        let px = pixels(7, 5, 3, 9);
        idx::write_images(&p, 5, 3, &px, gz).unwrap();
        assert_eq!(std::fs::read(&p).unwrap().starts_with(&[0x1f, 0x8b]), gz);
        let back = idx::read_images(&p).unwrap();
        assert_eq!(back, Images { count: 7, rows: 5, cols: 3, pixels: px });
    }
}

#[test]
fn labels_round_trip_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    for gz in [false, true] {
        let p = dir.path().join(format!("labels-{gz}"));
        let l = labels(23);
        idx::write_labels(&p, &l, gz).unwrap();
        assert_eq!(idx::read_labels(&p).unwrap(), l);
    }
}

#[test]
fn writer_rejects_a_partial_image() {
    let dir = tempfile::tempdir().unwrap();
    let err = idx::write_images(&dir.path().join("z"), 2, 2, &[0; 7], false).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { name: "pixels", .. }), "{err}");
    assert!(!dir.path().join("z").exists());
}

type Mutation = fn(Vec<u8>) -> Vec<u8>;

/// Each malformation of one file and the error it must produce (`field` of `Error::Format`).
/// Files: 0 train images (stored .gz), 1 train labels (.gz), 2 test images, 3 test labels.
const MALFORMED: &[(&str, usize, Mutation, &str)] = &[
    ("empty file", 2, |_| Vec::new(), "header"),
    ("header cut inside the dimensions", 2, |b| b[..9].to_vec(), "header"),
    ("not IDX (text file)", 2, |_| b"hello, world, not an IDX file".to_vec(), "magic"),
    (
        "float data type 0x0d",
        2,
        |mut b| {
            b[2] = 0x0d;
            b
        },
        "data type",
    ),
    ("labels where images belong", 2, |_| label_file(TEST_N), "dimensions"),
    ("images where labels belong", 3, |_| image_file(TEST_N, 28, 28), "dimensions"),
    (
        "zero rows",
        2,
        |mut b| {
            b[8..12].copy_from_slice(&[0; 4]);
            b
        },
        "dimension size",
    ),
    (
        "dimensions whose product overflows",
        2,
        |mut b| {
            b[4..16].copy_from_slice(&[0xff; 12]);
            b
        },
        "payload size",
    ),
    (
        "truncated payload",
        2,
        |mut b| {
            b.truncate(b.len() - 5);
            b
        },
        "payload length",
    ),
    (
        "4 billion images in a 100-byte file",
        2,
        |mut b| {
            b[4..8].copy_from_slice(&[0xff; 4]);
            b.truncate(100);
            b
        },
        // The loader refuses the count from the header (idx::parse_images alone, below, says
        // the payload is short).
        "count",
    ),
    (
        "4 billion images in a gzip file",
        0,
        |b| {
            let mut p = image_file(TRAIN_N, 28, 28);
            p[4..8].copy_from_slice(&[0xff; 4]);
            let _ = b;
            gzip(&p)
        },
        "count",
    ),
    (
        "trailing bytes",
        2,
        |mut b| {
            b.extend_from_slice(&[1, 2, 3]);
            b
        },
        "trailing bytes",
    ),
    (
        "trailing bytes inside the gzip stream",
        1,
        |_| {
            let mut p = label_file(TRAIN_N);
            p.push(0);
            gzip(&p)
        },
        "trailing bytes",
    ),
    (
        "corrupt gzip stream",
        0,
        |mut b| {
            let m = b.len() / 2;
            for x in &mut b[m..m + 16] {
                *x ^= 0x5a;
            }
            b
        },
        "gzip stream",
    ),
    (
        "gzip CRC mismatch",
        1,
        |mut b| {
            let n = b.len();
            b[n - 8] ^= 1;
            b
        },
        "gzip stream",
    ),
    (
        "gzip stream cut short",
        0,
        |mut b| {
            b.truncate(b.len() / 2);
            b
        },
        "gzip stream",
    ),
    (
        "garbage after the gzip stream",
        1,
        |mut b| {
            b.extend_from_slice(b"junk");
            b
        },
        "gzip stream",
    ),
    (
        "label 10",
        3,
        |mut b| {
            b[8 + 4] = 10;
            b
        },
        "label",
    ),
    ("images 27x29", 2, |_| image_file(TEST_N, 27, 29), "image size"),
    ("one label missing", 3, |_| label_file(TEST_N - 1), "label count"),
];

#[test]
fn each_malformation_has_its_own_error() {
    let mut fields_seen = HashSet::new();
    for &(case, file, mutate, field) in MALFORMED {
        let dir = synthetic_dir();
        let path: PathBuf = fashion_mnist::files_in(dir.path()).unwrap()[file].clone();
        std::fs::write(&path, mutate(std::fs::read(&path).unwrap())).unwrap();
        let start = Instant::now();
        let err = data::load(&custom(dir.path(), true)).expect_err(case);
        assert!(start.elapsed() < Duration::from_secs(2), "{case}: took {:?}", start.elapsed());
        let msg = err.to_string();
        match &err {
            Error::Format { field: f, path: p, .. } => {
                assert_eq!(*f, field, "{case}: wrong error: {msg}");
                assert_eq!(p, &path, "{case}: {msg}");
            }
            other => panic!("{case}: expected a Format error on `{field}`, got {other:?}"),
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(msg.contains(name), "{case}: message does not name {name}: {msg}");
        assert!(msg.contains("expected") && msg.contains("found"), "{case}: {msg}");
        fields_seen.insert(field);
    }
    assert!(fields_seen.len() >= 12, "only {} distinct errors", fields_seen.len());
}

#[test]
fn four_billion_images_in_100_bytes_fails_fast_in_memory() {
    let mut b = vec![0u8; 100];
    b[..8].copy_from_slice(&[0, 0, 8, 3, 0xee, 0x6b, 0x28, 0x00]); // 4,000,000,000 images
    b[8..16].copy_from_slice(&[0, 0, 0, 28, 0, 0, 0, 28]);
    for bytes in [b.clone(), gzip(&b)] {
        let start = Instant::now();
        let err = idx::parse_images(&bytes, Path::new("huge.idx")).unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(500));
        assert!(matches!(err, Error::Format { field: "payload length", .. }), "{err}");
        assert!(err.to_string().contains("huge.idx") && err.to_string().contains("3136000000000"), "{err}");
    }
}

#[test]
fn official_checksums_reject_other_data() {
    let dir = synthetic_dir();
    let err = data::load(&custom(dir.path(), false)).unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("--allow-custom-data"), "{err}");
}

#[test]
fn custom_data_loads_when_allowed() {
    let dir = synthetic_dir();
    let ds = data::load(&custom(dir.path(), true)).unwrap();
    assert_eq!(ds.len(), TRAIN_N + TEST_N);
    assert_eq!(ds.images.len(), (TRAIN_N + TEST_N) * IMAGE_LEN);
    // Train first, then test.
    assert_eq!(&ds.images[..TRAIN_N * IMAGE_LEN], &pixels(TRAIN_N, 28, 28, 1)[..]);
    assert_eq!(&ds.images[TRAIN_N * IMAGE_LEN..], &pixels(TEST_N, 28, 28, 2)[..]);
    assert_eq!(ds.labels, [labels(TRAIN_N), labels(TEST_N)].concat());
    assert!(ds.origin.contains("--data-dir") && ds.origin.contains("custom"), "{}", ds.origin);
}

#[test]
fn env_variable_names_the_folder() {
    // The only test in this binary that reads the environment (the others pass data_dir).
    let dir = synthetic_dir();
    std::env::set_var(fashion_mnist::ENV_DIR, dir.path());
    let result = data::load(&DataOptions { data_dir: None, allow_custom_data: true, data_url: None });
    std::env::remove_var(fashion_mnist::ENV_DIR);
    let ds = result.unwrap();
    assert!(ds.origin.contains(fashion_mnist::ENV_DIR), "{}", ds.origin);
}

#[test]
fn missing_folder_is_data_not_found_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), b"").unwrap();
    let err = data::load(&custom(dir.path(), true)).unwrap_err();
    assert!(matches!(err, Error::DataNotFound { .. }), "{err}");
    let msg = err.to_string();
    for needle in
        ["t10k-labels-idx1-ubyte", "dataset-fashion-mnist", "FASHION_MNIST_DIR", &dir.path().display().to_string()]
    {
        assert!(msg.contains(needle), "no {needle:?} in: {msg}");
    }
    assert!(!msg.contains("missing train-images-idx3-ubyte,"), "{msg}");
}

#[test]
fn fill_batch_scales_to_unit_range() {
    let ds = Dataset { images: pixels(3, 28, 28, 5), labels: vec![1, 2, 3], origin: String::new() };
    let mut out = vec![0.0f32; 2 * IMAGE_LEN];
    ds.fill_batch(&[2, 0], &mut out);
    for (k, &i) in [2usize, 0].iter().enumerate() {
        for j in 0..IMAGE_LEN {
            assert_eq!(out[k * IMAGE_LEN + j], ds.images[i * IMAGE_LEN + j] as f32 / 255.0);
        }
    }
    assert!(out.iter().all(|&v| (0.0..=1.0).contains(&v)));
}

#[test]
#[should_panic(expected = "fill_batch")]
fn fill_batch_panics_on_wrong_length() {
    let ds = Dataset { images: vec![0; IMAGE_LEN], labels: vec![0], origin: String::new() };
    ds.fill_batch(&[0], &mut [0.0; IMAGE_LEN - 1]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), gz in any::<bool>()) {
        let bytes = if gz { [&[0x1f, 0x8b][..], &bytes].concat() } else { bytes };
        let _ = idx::parse_images(&bytes, Path::new("p"));
        let _ = idx::parse_labels(&bytes, Path::new("p"));
    }

    #[test]
    fn arbitrary_payload_after_a_valid_header_never_panics(
        dims in (1u32..6, 1u32..6, 1u32..6),
        tail in proptest::collection::vec(any::<u8>(), 0..200),
        gz in any::<bool>(),
    ) {
        let mut images = vec![0, 0, 8, 3];
        for d in [dims.0, dims.1, dims.2] { images.extend_from_slice(&d.to_be_bytes()); }
        images.extend_from_slice(&tail);
        let mut lab = vec![0, 0, 8, 1];
        lab.extend_from_slice(&dims.0.to_be_bytes());
        lab.extend_from_slice(&tail);
        let (images, lab) = if gz { (gzip(&images), gzip(&lab)) } else { (images, lab) };
        let want = (dims.0 * dims.1 * dims.2) as usize;
        match idx::parse_images(&images, Path::new("i")) {
            Ok(im) => prop_assert_eq!((im.count * im.rows * im.cols, im.pixels.len()), (want, want)),
            Err(e) => prop_assert!(tail.len() != want, "{}", e),
        }
        if let Ok(l) = idx::parse_labels(&lab, Path::new("l")) {
            prop_assert_eq!(l.len(), dims.0 as usize);
        }
        let _ = idx::decode(&lab, Path::new("l"), IdxKind::Images);
    }
}

#[test]
fn same_seed_same_split_other_seed_other_split() {
    assert_eq!(data::split(70_000, 42), data::split(70_000, 42));
    assert_ne!(data::split(70_000, 42).train, data::split(70_000, 43).train);
    assert_ne!(data::split(70_000, 0).test, data::split(70_000, 1).test);
}

#[test]
fn split_is_pinned() {
    // Our own Fisher-Yates over ChaCha8: a change here changes every published split.
    assert_eq!(data::permutation(10, 42), PINNED_42);
}
const PINNED_42: [usize; 10] = [1, 5, 9, 6, 3, 2, 0, 8, 4, 7];

#[test]
fn split_parts_are_disjoint_and_cover_with_80_10_10_sizes() {
    for (n, sizes) in [
        (70_000, (56_000, 7_000, 7_000)),
        (1001, (800, 100, 101)),
        (10, (8, 1, 1)),
        (3, (2, 0, 1)),
        (1, (0, 0, 1)),
        (0, (0, 0, 0)),
    ] {
        let s = data::split(n, 42);
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), sizes, "n = {n}");
        let mut all: Vec<usize> = [&s.train[..], &s.val[..], &s.test[..]].concat();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "n = {n}");
    }
}

#[test]
fn permutation_is_not_the_identity_and_moves_most_items() {
    let p = data::permutation(1000, 7);
    let fixed = p.iter().enumerate().filter(|&(i, &v)| i == v).count();
    assert!(fixed < 10, "{fixed} fixed points");
}

/// The loader checks a file's header (28x28 images, at most MAX_IMAGES items) before it
/// decompresses the payload: a small .gz claiming 1000x1000x1000 images, or ten million
/// 28x28 images, is refused by its header, not after inflating what it holds.
#[test]
fn data_sizes_are_checked_from_the_header_before_decompressing() {
    let [tri, ..] = fashion_mnist::FILES.map(|f| f.name);
    let header = |n: u32, rows: u32, cols: u32| -> Vec<u8> {
        let mut b = vec![0, 0, 8, 3];
        for d in [n, rows, cols] {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend(std::iter::repeat_n(0u8, 1 << 20)); // 1 MB of the claimed payload
        b
    };
    for (bytes, field, found) in
        [(header(1000, 1000, 1000), "image size", "1000x1000"), (header(10_000_000, 28, 28), "count", "10000000")]
    {
        let dir = synthetic_dir();
        std::fs::write(dir.path().join(format!("{tri}.gz")), gzip(&bytes)).unwrap();
        let err = data::load(&custom(dir.path(), true)).unwrap_err();
        assert!(matches!(&err, Error::Format { field: f, .. } if *f == field), "{err}");
        assert!(err.to_string().contains(found), "{err}");
    }
    const { assert!(fashion_mnist::MAX_IMAGES >= 60_000) };
}
