//! The run state's metadata (the JSON inside state.safetensors that `--resume` trusts): any
//! text is accepted or refused naming the field, never a panic.
#![no_main]
use autoencoder::run::checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(json) = std::str::from_utf8(bytes) {
        let _ = checkpoint::check_state_json(json);
    }
});
