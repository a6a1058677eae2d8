//! Checkpoints and run states (safetensors): any file gives a model or an error, never a panic.
#![no_main]
use autoencoder::run::checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = std::env::temp_dir().join(format!("autoencoder-fuzz-{}.safetensors", std::process::id()));
    if std::fs::write(&path, bytes).is_ok() {
        let _ = checkpoint::load(&path, None);
        let _ = checkpoint::load_state(&path);
    }
});
