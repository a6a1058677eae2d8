//! tune.json, as `tune --resume` and `--dry-run` read it: any bytes give a search or an error,
//! and a search that validates draws every trial without a panic.
#![no_main]
use autoencoder::train::tune::TuneConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(cfg) = serde_json::from_slice::<TuneConfig>(bytes) else { return };
    if cfg.validate().is_ok() {
        for trial in 1..=cfg.trials.min(64) {
            let _ = cfg.trial(trial).validate();
        }
    }
});
