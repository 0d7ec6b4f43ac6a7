//! Opening the files a user hands in: regular files only, and never more than memory holds.
//!
//! A FIFO blocks whoever opens it until something writes to it (a run would hang in
//! open(2), deaf to SIGTERM), and a device such as /dev/zero never ends. Files are
//! opened with `O_NONBLOCK`, so that opening a FIFO returns at once, and refused unless
//! `fstat` says the file is regular; a symbolic link is followed, and a link to a
//! regular file is fine. `O_NONBLOCK` has no effect on reading a regular file.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Opens `path` for reading if it is a regular file; anything else is an
/// [`io::ErrorKind::InvalidInput`] error that says what it is.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file: it is {what}"),
    ))
}

/// Files above this size are checked against the memory available before reading.
const LARGE: u64 = 64 << 20;

/// The whole of regular file `path`, refused before any reading when it is larger than
/// the memory available.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    // Only a large file can be too large; reading /proc for every small one costs more
    // than the read (`runs` reads 10,000 result files).
    if len > LARGE {
        crate::memory::ensure_fits(|| "the file holds".to_string(), len)
            .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e.to_string()))?;
    }
    // The length is a hint: the file may grow while it is read, and some (procfs)
    // say 0 whatever they hold. Read no more than it said, or than a large file.
    let limit = len.max(LARGE);
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it holds more than the {} its size said when it was opened",
                crate::memory::Bytes(limit)
            ),
        ));
    }
    Ok(bytes)
}

/// [`read`], as UTF-8 text.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (byte offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
        ] {
            let e = read(path).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{path:?}");
            assert!(e.to_string().contains(what), "{e}");
        }
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(read(&link)
            .unwrap_err()
            .to_string()
            .contains("character device"));

        let file = dir.path().join("file");
        std::fs::write(&file, "text").unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("to-file")).unwrap();
        assert_eq!(read_to_string(&dir.path().join("to-file")).unwrap(), "text");
    }
}
