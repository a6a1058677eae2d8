//! The library's one error type. Every variant names what was wrong (a file, a field, a flag)
//! and what was expected, so the binary can print it as is and add a hint.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the library can fail with. Each variant's message names the file, field or flag
/// and what was expected; the binary wraps it (`anyhow`) with a hint of what to do. Library code
/// returns these instead of panicking on any input from outside (files, flags, data).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error while reading or writing `path`. The cause is part of the
    /// message and deliberately not a `source()` as well, or `{:#}` chains print it twice.
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },

    /// A file whose contents break its format: `field` held `found`, the format wants `expected`.
    #[error("{path}: bad {field}: expected {expected}, found {found}")]
    Format { path: PathBuf, field: &'static str, expected: String, found: String },

    /// A payload whose SHA-256 is not the published one.
    #[error("{path}: SHA-256 of the decompressed payload is {found}, expected {expected} (the file is corrupt or not the official data; pass --allow-custom-data to use other IDX data)")]
    Checksum { path: PathBuf, expected: String, found: String },

    /// The data set was found nowhere and could not be downloaded.
    #[error("Fashion-MNIST not found; looked in:\n{searched}\ndownload failed: {download}\nhint: install the Debian package `dataset-fashion-mnist`, or point --data-dir or FASHION_MNIST_DIR at a folder holding the four IDX files")]
    DataNotFound { searched: String, download: String },

    /// A user-supplied value (flag, argument) outside what it may be.
    #[error("invalid {name}: expected {expected}, found {found}")]
    InvalidArgument { name: &'static str, expected: String, found: String },

    /// Layer shapes that do not chain, found when a model is built.
    #[error("layer `{layer}`: expected input shape {expected}, found {found}")]
    Shape { layer: String, expected: String, found: String },

    /// A checkpoint that cannot be loaded into the model asked for.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },

    /// A model the ONNX export cannot write (a checkpoint that loaded but does not fit).
    #[error("ONNX export: {0}")]
    Onnx(String),

    /// An image smaller than the metric's window (SSIM needs the window to fit inside).
    #[error("{metric} needs images of at least {window}x{window} (its window), found {h}x{w}")]
    ImageTooSmall { metric: &'static str, window: usize, h: usize, w: usize },

    /// Training stopped at the user's request (Ctrl-C) after saving its state.
    #[error("interrupted at epoch {epoch}, step {step}; the run's state is saved")]
    Interrupted { epoch: usize, step: usize },

    /// Training made the model worse than untrained: an epoch's mean loss rose well above the
    /// first batch's (`train::DIVERGED_FACTOR`).
    #[error("training diverged in epoch {epoch}: mean training loss {loss:.5} is far above the untrained model's {initial:.5}; nothing of this epoch was saved (try a smaller --lr)")]
    Diverged { epoch: usize, loss: f64, initial: f64 },

    /// Training produced a NaN or infinity.
    #[error("non-finite {what} at epoch {epoch}, step {step}; the last good checkpoint is kept (try a smaller --lr)")]
    NonFinite { what: &'static str, epoch: usize, step: usize },
}

impl Error {
    /// Wraps an `io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io { path: path.into(), cause }
    }
}

/// "a", "a or b", "a, b or c": the names an `InvalidArgument` expects.
pub fn one_of<const N: usize>(names: [&str; N]) -> String {
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}
