//! User-named files, read and written defensively.
//!
//! A path from a property, a control request or the command line may name anything: a FIFO
//! (opening it for reading blocks until a writer appears), `/dev/zero` (endless), a directory,
//! a 100 GB file. Reads here open without blocking, accept only regular files and stop at a
//! size limit; writes go to a temporary file that is synced and renamed over the target, so a
//! crash leaves the old file or the new one, never half of one.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    NotFound,
    /// Not a regular file: what it is instead ("a FIFO", "a directory", ...).
    NotRegular(&'static str),
    TooLarge {
        size: u64,
        limit: u64,
    },
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("no such file"),
            Self::NotRegular(what) => write!(f, "it is {what}, not a regular file"),
            Self::TooLarge { size, limit } => write!(
                f,
                "it is larger than the limit of {limit} bytes ({})",
                if *size > *limit {
                    format!("{size} bytes")
                } else {
                    "it grew while being read".to_string()
                }
            ),
            Self::Io(e) => e.fmt(f),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::NotFound {
            Self::NotFound
        } else {
            Self::Io(e)
        }
    }
}

fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Why `path` cannot be an input file, if it cannot: missing, or there but not a regular file
/// (a folder is not "missing": that would send the user looking in the wrong place).
pub fn input_file_problem(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => None,
        Ok(meta) => Some(format!(
            "input {} is {}, not a file",
            path.display(),
            describe(meta.file_type())
        )),
        Err(_) => Some(format!("input {} does not exist", path.display())),
    }
}

/// Open `path` for reading only if it is a regular file of at most `max_bytes`; returns the
/// file and its size. The open never blocks (O_NONBLOCK: a FIFO without a writer would), and
/// the type and size are those of the file actually opened (fstat), not of a path that may
/// change in between.
pub fn open_regular(path: &Path, max_bytes: u64) -> Result<(File, u64), ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(describe(meta.file_type())));
    }
    if meta.len() > max_bytes {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            limit: max_bytes,
        });
    }
    Ok((file, meta.len()))
}

/// The contents of a regular file of at most `max_bytes` (see [`open_regular`]); a file that
/// grows past the limit while being read is refused too.
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let (file, size) = open_regular(path, max_bytes)?;
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            limit: max_bytes,
        });
    }
    Ok(bytes)
}

/// Replace `path` with `bytes` atomically: write `tmp_name` in the same folder, fsync it,
/// rename it over `path`, fsync the folder. On failure the temporary file is removed and
/// `path` is untouched. `tmp_name` must be unique among concurrent writers.
pub fn write_atomic(path: &Path, tmp_name: &str, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    // The rename is durable once the folder is synced; a failure here loses nothing.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// SHA-256 of a file, streamed (model files are hundreds of MB).
pub fn sha256_file(path: &Path) -> crate::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path).map_err(|e| crate::Error::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| crate::Error::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("stylize-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = scratch("read");
        let file = dir.join("a.txt");
        std::fs::write(&file, b"hello").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap(), b"hello");
        let err = read_regular(&file, 4).unwrap_err().to_string();
        assert!(err.contains("limit of 4 bytes"), "{err}");
        assert!(matches!(
            read_regular(&dir.join("missing"), 9),
            Err(ReadError::NotFound)
        ));
        let err = read_regular(&dir, 9).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
        // /dev/zero never ends: refused before the first byte is read.
        let err = read_regular(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a character device"), "{err}");
        // A sparse file past the limit is refused from its size, without reading it.
        let big = dir.join("big");
        File::create(&big).unwrap().set_len(1 << 40).unwrap();
        let err = read_regular(&big, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("1099511627776 bytes"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn input_problems_say_what_is_wrong() {
        let dir = scratch("input");
        let file = dir.join("a.mp4");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(input_file_problem(&file), None);
        let folder = input_file_problem(&dir).unwrap();
        assert!(folder.ends_with("is a directory, not a file"), "{folder}");
        let missing = input_file_problem(&dir.join("b.mp4")).unwrap();
        assert!(missing.ends_with("b.mp4 does not exist"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = scratch("fifo");
        let fifo = dir.join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let start = Instant::now();
        let err = read_regular(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("a FIFO"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(2));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn atomic_write_replaces_and_cleans_up() {
        let dir = scratch("write");
        let path = dir.join("index.toml");
        write_atomic(&path, ".t1", b"one").unwrap();
        write_atomic(&path, ".t2", b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // A failed write (the target is a directory) leaves no temporary file behind.
        let target_dir = dir.join("sub");
        std::fs::create_dir(&target_dir).unwrap();
        std::fs::write(target_dir.join("keep"), b"x").unwrap();
        assert!(write_atomic(&target_dir, ".t3", b"three").is_err());
        assert!(!dir.join(".t3").exists());
        assert_eq!(std::fs::read(target_dir.join("keep")).unwrap(), b"x");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
