//! NumPy image arrays: any bytes give a value or an error, never a panic.
#![no_main]
use autoencoder::run::npy;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let _ = npy::parse_images(bytes, Path::new("fuzz"));
});
