//! Crash-safe file writing: every file goes to a temp file in the same directory, is flushed
//! and synced, then renamed over the target, so a crash leaves either the old file or the new
//! one, never half of either.

use crate::{Error, Result};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The temp path beside `path` (same directory, so the rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Writes `path` atomically with whatever `fill` writes. On any error the target is untouched
/// and the temp file removed.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let file = fs::File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// The file that marks a folder as being written by one process.
pub const LOCK_FILE: &str = "lock";

/// One writer per run folder: a `lock` file created with O_EXCL (no `flock`, so it works on
/// network file systems) holding `host pid start-time`, removed when dropped. A lock whose
/// process is gone (same host, no such pid) is taken over, with a note on stderr.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Creates `path` with O_EXCL holding `host pid start`: `None` if it exists.
    fn create(path: &Path) -> Result<Option<RunLock>> {
        let me = format!(
            "{} {} {}\n",
            host_name(),
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
        );
        match fs::OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut f) => {
                f.write_all(me.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| Error::io(path, e))?;
                Ok(Some(RunLock { path: path.to_path_buf() }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Takes `dir`'s lock, or fails naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        for _ in 0..2 {
            if let Some(lock) = RunLock::create(&path)? {
                return Ok(lock);
            }
            let holder = Holder::read(&path);
            if !holder.is_gone() {
                return Err(Error::InvalidArgument {
                    name: "run folder",
                    expected: format!("no other process writing {}", dir.display()),
                    found: format!(
                        "{} held by `{}` (host pid start); if that process is gone, remove the file",
                        path.display(),
                        holder.text.trim()
                    ),
                });
            }
            eprintln!(
                "note: {} was left by process {} of {}, which is gone; taking it over",
                path.display(),
                holder.pid.unwrap_or(0),
                holder.host
            );
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        Err(Error::InvalidArgument {
            name: "run folder",
            expected: "a lock file that can be taken over".to_string(),
            found: format!("{} reappeared while being taken over", path.display()),
        })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// What a lock file says of the process that made it: `host pid start` (`RunLock::create`).
struct Holder {
    text: String,
    host: String,
    pid: Option<u32>,
    /// Seconds since the Unix epoch (0 if unreadable).
    start: u64,
}

impl Holder {
    fn read(path: &Path) -> Holder {
        let text = fs::read_to_string(path).unwrap_or_default();
        let mut fields = text.split_whitespace();
        let host = fields.next().unwrap_or("").to_string();
        let pid = fields.next().and_then(|p| p.parse().ok());
        let start = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        Holder { text, host, pid, start }
    }

    /// A process of this host that no longer exists.
    fn is_gone(&self) -> bool {
        self.host == host_name() && self.pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists())
    }
}

/// How a claim on a trial of a distributed search (`tune-worker`) was settled.
pub enum Claim {
    /// This process holds it (released when the value drops).
    Held(RunLock),
    /// A live holder has it, or is taking it over.
    Busy(String),
}

/// Claims `dir` for this process, as `RunLock::acquire` does, but for a trial that workers on
/// many hosts share: a claim whose holder is gone (same host, no such pid) or whose `progress`
/// file (the trial's saved state) has not changed within `stale_after` of the claim's time is
/// taken over. Only O_EXCL creates and removals: no `flock`, so it works on NFS. Two workers
/// that both find a claim stale race for `DIR/lock.takeover` (O_EXCL); the loser backs off.
pub fn claim(dir: &Path, stale_after: std::time::Duration, progress: &Path) -> Result<Claim> {
    let path = dir.join(LOCK_FILE);
    if let Some(lock) = RunLock::create(&path)? {
        return Ok(Claim::Held(lock));
    }
    let holder = Holder::read(&path);
    let now = std::time::SystemTime::now();
    let secs = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let last = fs::metadata(progress).and_then(|m| m.modified()).map_or(holder.start, |t| secs(t).max(holder.start));
    let dead = holder.is_gone();
    let idle = secs(now).saturating_sub(last);
    if !dead && idle <= stale_after.as_secs() {
        return Ok(Claim::Busy(format!("{} (`{}`, last progress {idle} s ago)", path.display(), holder.text.trim())));
    }
    let marker = dir.join(format!("{LOCK_FILE}.takeover"));
    let Some(taking) = RunLock::create(&marker)? else {
        // Another worker is taking it over; a marker its taker left when killed expires.
        let marker_age =
            fs::metadata(&marker).and_then(|m| m.modified()).map_or(0, |t| secs(now).saturating_sub(secs(t)));
        if marker_age > 60 {
            let _ = fs::remove_file(&marker);
        }
        return Ok(Claim::Busy(format!("{} (being taken over)", path.display())));
    };
    // Still the stale claim we judged (not one a faster taker has just made)?
    if fs::read_to_string(&path).unwrap_or_default() != holder.text {
        return Ok(Claim::Busy(format!("{} (taken over by another worker)", path.display())));
    }
    eprintln!(
        "note: taking over {} from `{}` ({}, last progress {idle} s ago)",
        dir.display(),
        holder.text.trim(),
        if dead { "its process is gone" } else { "stale" }
    );
    let _ = fs::remove_file(&path);
    let claimed = RunLock::create(&path)?;
    drop(taking);
    Ok(claimed.map_or_else(|| Claim::Busy(format!("{} (claimed meanwhile)", path.display())), Claim::Held))
}

/// Removes the temp files (`*.tmp`) a killed writer left in `dir`; call it holding the lock.
pub fn remove_stale_temps(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.extension().is_some_and(|x| x == "tmp") && path.is_file() {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".to_string())
}
