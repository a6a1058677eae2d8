//! Finding, downloading and verifying Fashion-MNIST, and loading it as one 70,000-image set.
//!
//! Where the four IDX files are looked for, in order:
//! 1. `--data-dir DIR` ([`DataOptions::data_dir`]), then
//! 2. the `FASHION_MNIST_DIR` environment variable. Either one, when set, is the only place
//!    looked: a typo must not silently fall back to other data.
//! 3. the user cache, `$XDG_CACHE_HOME/autoencoder/fashion-mnist` (else `~/.cache/...`),
//! 4. `/usr/share/datasets/fashion-mnist` (Debian package `dataset-fashion-mnist`), unless a
//!    mirror is named (`--data-url`, else `FASHION_MNIST_URL`): then the mirror is the source,
//! 5. a download from the mirror, else the canonical location, into the user cache.
//!
//! A folder has the data when it holds each of the four files as `<name>` or `<name>.gz`. Each
//! decompressed file must match its published SHA-256 unless custom data is allowed.

use super::idx::{self, IdxKind, Images, RawIdx};
use super::{DataOptions, Dataset, IMAGE_SIDE};
use crate::run::fsutil::write_bytes_atomic;
use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming a folder that holds the four files.
pub const ENV_DIR: &str = "FASHION_MNIST_DIR";
/// Where the Debian package `dataset-fashion-mnist` installs the files.
pub const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The canonical download location; each file is `<BASE_URL>/<name>.gz`.
pub const BASE_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com";
/// Environment variable naming a mirror to download from instead of [`BASE_URL`].
pub const ENV_URL: &str = "FASHION_MNIST_URL";
/// No download is allowed to be larger than this (the largest file is about 26 MB).
const MAX_DOWNLOAD: u64 = 64 << 20;

/// One of the four published files.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec {
    pub name: &'static str,
    /// SHA-256 of the decompressed file (header included).
    pub sha256: &'static str,
    /// Decompressed length in bytes.
    pub len: usize,
}

/// Train images, train labels, test images, test labels: the order used everywhere here.
pub const FILES: [FileSpec; 4] = [
    FileSpec {
        name: "train-images-idx3-ubyte",
        sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        len: 47_040_016,
    },
    FileSpec {
        name: "train-labels-idx1-ubyte",
        sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        len: 60_008,
    },
    FileSpec {
        name: "t10k-images-idx3-ubyte",
        sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        len: 7_840_016,
    },
    FileSpec {
        name: "t10k-labels-idx1-ubyte",
        sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        len: 10_008,
    },
];

/// A folder holding the four files, and how it was chosen (for printing).
#[derive(Debug, Clone)]
pub struct Located {
    pub dir: PathBuf,
    /// In [`FILES`] order.
    pub files: [PathBuf; 4],
    pub origin: String,
}

/// The four files in `dir` (each `<name>` or else `<name>.gz`), or the names missing.
pub fn files_in(dir: &Path) -> std::result::Result<[PathBuf; 4], Vec<&'static str>> {
    let found = FILES.map(|f| {
        let plain = dir.join(f.name);
        let gz = dir.join(format!("{}.gz", f.name));
        if plain.is_file() {
            Some(plain)
        } else if gz.is_file() {
            Some(gz)
        } else {
            None
        }
    });
    let missing: Vec<&str> = FILES.iter().zip(&found).filter(|(_, p)| p.is_none()).map(|(f, _)| f.name).collect();
    match found {
        [Some(a), Some(b), Some(c), Some(d)] => Ok([a, b, c, d]),
        _ => Err(missing),
    }
}

/// `$XDG_CACHE_HOME/autoencoder/fashion-mnist`, else `~/.cache/autoencoder/fashion-mnist`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".cache"),
    };
    Some(base.join("autoencoder").join("fashion-mnist"))
}

/// The mirror to download from when one is named: `data_url`, else `FASHION_MNIST_URL`.
fn mirror(data_url: Option<&str>) -> Option<(String, String)> {
    match data_url {
        Some(u) => Some((u.to_string(), "--data-url".to_string())),
        None => std::env::var(ENV_URL).ok().filter(|v| !v.is_empty()).map(|u| (u, format!("from {ENV_URL}"))),
    }
    .map(|(u, how)| (u.trim_end_matches('/').to_string(), how))
}

/// Finds the folder holding the data (see the module docs for the order), downloading into the
/// user cache (from `data_url` if given) as the last resort.
pub fn locate(data_dir: Option<&Path>, data_url: Option<&str>) -> Result<Located> {
    // The environment is read only when no folder was given.
    let explicit = match data_dir {
        Some(d) => Some((d.to_path_buf(), "--data-dir".to_string())),
        None => {
            std::env::var_os(ENV_DIR).filter(|v| !v.is_empty()).map(|d| (PathBuf::from(d), format!("from {ENV_DIR}")))
        }
    };
    if let Some((dir, how)) = explicit {
        return match files_in(&dir) {
            Ok(files) => Ok(Located { origin: format!("{} ({how})", dir.display()), dir, files }),
            Err(missing) => Err(Error::DataNotFound {
                searched: format!("  {} ({how}): missing {}", dir.display(), missing.join(", ")),
                download: format!("not attempted: {how} names the only folder to use"),
            }),
        };
    }

    let cache = cache_dir();
    let mirror = mirror(data_url);
    let mut candidates = Vec::new();
    if let Some(c) = &cache {
        candidates.push((c.clone(), "user cache".to_string()));
    }
    if mirror.is_none() {
        candidates.push((PathBuf::from(SYSTEM_DIR), "Debian package dataset-fashion-mnist".to_string()));
    }
    let mut searched = Vec::new();
    for (dir, how) in candidates {
        match files_in(&dir) {
            Ok(files) => return Ok(Located { origin: format!("{} ({how})", dir.display()), dir, files }),
            Err(missing) => searched.push(format!("  {} ({how}): missing {}", dir.display(), missing.join(", "))),
        }
    }
    if let Some((url, how)) = &mirror {
        searched.push(format!("  {SYSTEM_DIR}: not searched, the mirror {url} ({how}) is the source"));
    }
    searched.push(format!("  {ENV_DIR}: not set"));

    let Some(cache) = cache else {
        return Err(Error::DataNotFound {
            searched: searched.join("\n"),
            download: "no cache folder to download into (neither XDG_CACHE_HOME nor HOME is set)".to_string(),
        });
    };
    let base = mirror.map_or_else(|| BASE_URL.to_string(), |(url, _)| url);
    match download(&cache, &base)
        .and_then(|()| files_in(&cache).map_err(|m| format!("still missing after download: {}", m.join(", "))))
    {
        Ok(files) => Ok(Located { origin: format!("{} (downloaded from {base})", cache.display()), dir: cache, files }),
        Err(download) => Err(Error::DataNotFound { searched: searched.join("\n"), download }),
    }
}

/// Downloads each missing file from `base` into `dir` as `<name>.gz`. A file is held in
/// memory, checked against the announced length and `MAX_DOWNLOAD`, verified (IDX structure
/// and SHA-256), and only then written (atomically), so `dir` never holds a partial or
/// unverified file.
fn download(dir: &Path, base: &str) -> std::result::Result<(), String> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
        .build();
    for (spec, kind) in FILES.iter().zip(KINDS) {
        let target = dir.join(format!("{}.gz", spec.name));
        if target.is_file() || dir.join(spec.name).is_file() {
            continue;
        }
        let url = format!("{base}/{}.gz", spec.name);
        // ureq's error message already names the URL.
        let response = agent.get(&url).call().map_err(|e| e.to_string())?;
        let total = response.header("Content-Length").and_then(|v| v.parse::<u64>().ok());
        let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(spec.name);
        if let Some(total) = total.filter(|&t| t > MAX_DOWNLOAD) {
            return Err(format!(
                "{url}: announces {total} bytes, more than any Fashion-MNIST file ({MAX_DOWNLOAD} at most)"
            ));
        }
        let mut body = Vec::new();
        bar.wrap_read(response.into_reader().take(MAX_DOWNLOAD + 1))
            .read_to_end(&mut body)
            .map_err(|e| format!("{url}: the download broke off: {e}"))?;
        bar.finish_and_clear();
        if body.len() as u64 > MAX_DOWNLOAD {
            return Err(format!("{url}: more than {MAX_DOWNLOAD} bytes, more than any Fashion-MNIST file"));
        }
        if let Some(total) = total.filter(|&t| t != body.len() as u64) {
            return Err(format!("{url}: truncated: {} of the {total} bytes announced arrived", body.len()));
        }
        verify(&body, &target, spec, kind, false).map_err(|e| format!("{url}: {e}"))?;
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        write_bytes_atomic(&target, &body).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The kind of each of [`FILES`].
const KINDS: [IdxKind; 4] = [IdxKind::Images, IdxKind::Labels, IdxKind::Images, IdxKind::Labels];

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Most images (and labels) one IDX file of a data set may hold: 784 MB of pixels.
pub const MAX_IMAGES: usize = 1_000_000;

/// Decodes `bytes` (the file at `path`) and, unless `allow_custom`, checks its SHA-256.
fn verify(bytes: &[u8], path: &Path, spec: &FileSpec, kind: IdxKind, allow_custom: bool) -> Result<RawIdx> {
    // From the header, before the payload is decompressed: 28x28 images, and at most
    // MAX_IMAGES of them (the official files hold 60,000 and 10,000).
    let raw = idx::decode_checked(bytes, path, kind, |dims| {
        let bad = |field, expected: String, found: String| {
            Err(Error::Format { path: path.to_path_buf(), field, expected, found })
        };
        if kind == IdxKind::Images && dims[1..] != [IMAGE_SIDE, IMAGE_SIDE] {
            return bad("image size", format!("{IMAGE_SIDE}x{IMAGE_SIDE}"), format!("{}x{}", dims[1], dims[2]));
        }
        if dims[0] > MAX_IMAGES {
            return bad("count", format!("at most {MAX_IMAGES} items"), dims[0].to_string());
        }
        Ok(())
    })?;
    if !allow_custom {
        let found = sha256_hex(&raw.bytes);
        if found != spec.sha256 {
            return Err(Error::Checksum { path: path.to_path_buf(), expected: spec.sha256.to_string(), found });
        }
    }
    Ok(raw)
}

fn read_verified(path: &Path, spec: &FileSpec, kind: IdxKind, allow_custom: bool) -> Result<RawIdx> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    verify(&bytes, path, spec, kind, allow_custom)
}

/// Reads and checks one images/labels pair: 28x28 images, as many labels as images.
fn read_pair(images: &Path, labels: &Path, specs: [&FileSpec; 2], allow_custom: bool) -> Result<(Images, Vec<u8>)> {
    let img = read_verified(images, specs[0], IdxKind::Images, allow_custom)?.into_images(images)?;
    if (img.rows, img.cols) != (IMAGE_SIDE, IMAGE_SIDE) {
        return Err(Error::Format {
            path: images.to_path_buf(),
            field: "image size",
            expected: format!("{IMAGE_SIDE}x{IMAGE_SIDE}"),
            found: format!("{}x{}", img.rows, img.cols),
        });
    }
    let lab = read_verified(labels, specs[1], IdxKind::Labels, allow_custom)?.into_labels(labels)?;
    if lab.len() != img.count {
        return Err(Error::Format {
            path: labels.to_path_buf(),
            field: "label count",
            expected: format!("{} labels, one per image in {}", img.count, images.display()),
            found: lab.len().to_string(),
        });
    }
    Ok((img, lab))
}

/// Locates, verifies and reads the data, then concatenates train (first) and test.
pub fn load(opts: &DataOptions) -> Result<Dataset> {
    let loc = locate(opts.data_dir.as_deref(), opts.data_url.as_deref())?;
    let [tr_img, tr_lab, te_img, te_lab] = &loc.files;
    let custom = opts.allow_custom_data;
    // The two pairs are independent: decompress and hash them on both cores.
    let (train, test) = rayon::join(
        || read_pair(tr_img, tr_lab, [&FILES[0], &FILES[1]], custom),
        || read_pair(te_img, te_lab, [&FILES[2], &FILES[3]], custom),
    );
    let ((train_img, train_lab), (test_img, test_lab)) = (train?, test?);
    let mut images = train_img.pixels;
    images.extend_from_slice(&test_img.pixels);
    let mut labels = train_lab;
    labels.extend_from_slice(&test_lab);
    let mut origin = loc.origin;
    if custom {
        origin.push_str(", custom data allowed: checksums not checked");
    }
    Ok(Dataset { images, labels, origin })
}
