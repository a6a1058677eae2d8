// PLACEHOLDER until the data branch merges.
use std::path::PathBuf;
#[derive(clap::Args, Clone, Debug)]
pub struct DataSource {
    /// Folder holding the four Fashion-MNIST IDX files (plain or .gz).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Accept IDX data other than the official Fashion-MNIST (skips the SHA-256 check).
    #[arg(long)]
    pub allow_custom_data: bool,
}
