//! IDX images and labels, plain or gzip: any bytes give a value or an error, never a panic.
#![no_main]
use autoencoder::data::idx;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let _ = idx::parse_images(bytes, Path::new("fuzz"));
    let _ = idx::parse_labels(bytes, Path::new("fuzz"));
});
