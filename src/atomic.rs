//! Atomic file writes: a file is written to a uniquely named temporary file in its
//! directory, synced, and renamed into place, so a reader (or a crash) sees the old file
//! or the new one, never a mixture.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

/// Temporary files are named `.<file>.<random>.tmp`.
const TEMPORARY_SUFFIX: &str = ".tmp";

/// Whether `name` is one of this module's temporary files (left behind only by a
/// process that was killed mid-write).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMPORARY_SUFFIX)
}

/// How old a temporary file must be before [`remove_abandoned`] takes it for a dead
/// writer's: an atomic write takes milliseconds, so a minute is far beyond any live one.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the temporary files of `file` (in its directory) that a writer killed
/// mid-write left behind, where no lock says whether a writer is still at work (a
/// live writer's file is younger than [`ABANDONED_AFTER`]). Best effort: a file that
/// cannot be removed is left.
pub fn remove_abandoned(file: &Path) {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let entry_name = entry_name.to_string_lossy();
        let old = || {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > ABANDONED_AFTER)
        };
        if entry_name.starts_with(&prefix) && is_temporary(&entry_name) && old() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value).context("serialising JSON")?;
    text.push(b'\n');
    write_bytes(path, &text)
}

/// Lets `write` fill a fresh, uniquely named temporary file beside `path` (any writer
/// that takes a path, such as `VarMap::save`), syncs it, and renames it into place. The
/// temporary name is created exclusively with a random suffix, so concurrent writers on
/// one host or on a shared filesystem never share one.
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let result = (|| {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(TEMPORARY_SUFFIX);
        // tempfile creates owner-only files; results are usually shared, so give the
        // file what `std::fs::write` would (0666 less the umask).
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = builder.tempfile_in(dir)?;
        write(temp.path())?;
        std::fs::File::open(temp.path())?.sync_all()?;
        crate::fault::point("write");
        temp.persist(path)?;
        sync_parent(path)
    })();
    result.with_context(|| format!("writing {}", path.display()))
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |temp| Ok(std::fs::write(temp, bytes)?))
}

/// Makes the rename itself durable.
fn sync_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
