//! The output of a run, written so that nothing of the user's is ever destroyed.
//!
//! Every byte goes to a temporary file created beside the destination (same folder, so
//! the final rename is atomic and never crosses file systems). The destination is only
//! touched on success, by that rename; an existing destination is replaced only with
//! `--overwrite`, and the input itself (by any name, symlink or hard link) never. On any
//! failure the temporary file, which this run created, is the only thing removed.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// What to do when the destination already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse before any work (the default).
    Refuse,
    /// Replace it, on success only (`--overwrite`).
    Replace,
}

/// A destination checked and reserved: the temporary file exists, the destination is
/// untouched until [`OutputFile::commit`].
#[derive(Debug)]
pub struct OutputFile {
    dest: PathBuf,
    temp: PathBuf,
    existing: Existing,
    /// Set once the temporary file is renamed, or must be kept: nothing left to remove.
    done: bool,
}

impl OutputFile {
    /// Check `dest` against the inputs and the overwrite policy, then create the
    /// temporary file beside it. Fails, before any work, when the run could destroy data.
    pub fn create(dest: &Path, inputs: &[&Path], existing: Existing) -> Result<Self> {
        check_destination(dest, inputs, existing)?;
        let temp = create_temp_beside(dest)?;
        Ok(Self {
            dest: dest.to_path_buf(),
            temp,
            existing,
            done: false,
        })
    }

    /// Where the pipeline writes.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Move the finished file to its destination. Without `--overwrite` a destination
    /// that appeared during the run is not replaced: the result stays in the temporary
    /// file and the error says where.
    pub fn commit(mut self) -> Result<PathBuf> {
        let result = match self.existing {
            Existing::Replace => std::fs::rename(&self.temp, &self.dest),
            Existing::Refuse => rename_no_replace(&self.temp, &self.dest),
        };
        if let Err(err) = result {
            // The work is done: keep it rather than lose it.
            self.done = true;
            let why = if err.kind() == std::io::ErrorKind::AlreadyExists {
                format!("{} appeared while stylizing", self.dest.display())
            } else {
                format!("cannot rename to {}: {err}", self.dest.display())
            };
            bail!("{why}; the result is kept in {}", self.temp.display());
        }
        self.done = true;
        Ok(self.dest.clone())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.done {
            // Only the file this run created; the destination was never touched.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Refuse a destination that is an input (by any path), that exists without `--overwrite`,
/// or that is not a regular file (a folder, a device, a FIFO).
pub fn check_destination(dest: &Path, inputs: &[&Path], existing: Existing) -> Result<()> {
    let name = dest.file_name().filter(|n| *n != "." && *n != "..");
    if name.is_none() {
        bail!("output {} is not a file name", dest.display());
    }
    let parent = parent_dir(dest);
    if !parent.is_dir() {
        bail!("output folder {} does not exist", parent.display());
    }
    for input in inputs {
        if same_file(input, dest) {
            bail!(
                "output {} is the input file {}: choose another output name",
                dest.display(),
                input.display()
            );
        }
    }
    // symlink_metadata: a dangling symlink exists too, and a link is judged as a link.
    let Ok(link_meta) = std::fs::symlink_metadata(dest) else {
        return Ok(());
    };
    if existing == Existing::Refuse {
        bail!(
            "output {} exists: pass --overwrite to replace it (only once the new file is complete)",
            dest.display()
        );
    }
    // Replacing renames over the directory entry: a symlink is replaced, its target
    // untouched. Anything but a regular file or a link is refused even with --overwrite.
    if !(link_meta.is_file() || link_meta.file_type().is_symlink()) {
        bail!(
            "output {} exists and is not a regular file: refusing to replace it",
            dest.display()
        );
    }
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether two paths name the same file: same canonical path (through symlinks), or the
/// same device and inode (hard links, bind mounts).
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Some(a), Some(b)) = (canonical(a), canonical(b)) {
        if a == b {
            return true;
        }
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(ma), Ok(mb)) => same_inode(&ma, &mb),
        _ => false,
    }
}

fn same_inode(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// The canonical form of a path whose last component may not exist yet (an output).
fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let name = path.file_name()?;
    Some(parent_dir(path).canonicalize().ok()?.join(name))
}

/// Create (exclusively: never an existing file) a hidden temporary file beside `dest`.
fn create_temp_beside(dest: &Path) -> Result<PathBuf> {
    let parent = parent_dir(dest);
    let name = dest
        .file_name()
        .expect("checked by check_destination")
        .to_string_lossy();
    let pid = std::process::id();
    for attempt in 0..100u32 {
        let temp = parent.join(format!(".{name}.stylize-{pid}-{attempt}.part"));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => {
                drop::<File>(file);
                return Ok(temp);
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => {
                return Err(err).with_context(|| {
                    format!("cannot create a temporary file in {}", parent.display())
                })
            }
        }
    }
    bail!(
        "cannot create a temporary file in {}: too many stale ones",
        parent.display()
    )
}

/// Rename `from` to `to` unless `to` exists, atomically where the kernel and file system
/// allow it (renameat2 RENAME_NOREPLACE), else with a check just before the rename.
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
        let (cf, ct) = (c(from)?, c(to)?);
        // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them like rename.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                cf.as_ptr(),
                libc::AT_FDCWD,
                ct.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        // Only "not supported here" falls back; every other error is the answer.
        if !matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            return Err(err);
        }
    }
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(std::io::ErrorKind::AlreadyExists.into());
    }
    std::fs::rename(from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("stylize-output-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_input_is_refused_as_output_by_any_name() {
        let dir = scratch("same");
        let input = dir.join("a.mp4");
        std::fs::write(&input, b"precious").unwrap();
        let link = dir.join("link.mp4");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let hard = dir.join("hard.mp4");
        std::fs::hard_link(&input, &hard).unwrap();
        let dotted = dir.join(".").join("a.mp4");
        for dest in [&input, &link, &hard, &dotted] {
            for existing in [Existing::Refuse, Existing::Replace] {
                let err = OutputFile::create(dest, &[&input], existing).unwrap_err();
                assert!(err.to_string().contains("is the input file"), "{err}");
            }
        }
        assert_eq!(std::fs::read(&input).unwrap(), b"precious");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            3,
            "no temp file left"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_existing_output_is_kept_on_failure_and_replaced_only_on_success() {
        let dir = scratch("existing");
        let input = dir.join("in.mp4");
        std::fs::write(&input, b"input").unwrap();
        let dest = dir.join("out.mp4");
        std::fs::write(&dest, b"old").unwrap();
        let err = OutputFile::create(&dest, &[&input], Existing::Refuse).unwrap_err();
        assert!(err.to_string().contains("--overwrite"), "{err}");

        // A failed run (dropped without commit) removes its temp file only.
        let out = OutputFile::create(&dest, &[&input], Existing::Replace).unwrap();
        std::fs::write(out.temp_path(), b"half").unwrap();
        let temp = out.temp_path().to_path_buf();
        drop(out);
        assert!(!temp.exists());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");

        let out = OutputFile::create(&dest, &[&input], Existing::Replace).unwrap();
        std::fs::write(out.temp_path(), b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_destination_that_appears_during_the_run_is_not_replaced() {
        let dir = scratch("race");
        let dest = dir.join("out.mp4");
        let out = OutputFile::create(&dest, &[], Existing::Refuse).unwrap();
        std::fs::write(out.temp_path(), b"result").unwrap();
        let temp = out.temp_path().to_path_buf();
        std::fs::write(&dest, b"someone else's").unwrap();
        let err = out.commit().unwrap_err();
        assert!(err.to_string().contains("appeared"), "{err}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"someone else's");
        assert_eq!(std::fs::read(&temp).unwrap(), b"result", "the work is kept");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlink_is_replaced_never_written_through_and_devices_are_refused() {
        let dir = scratch("link");
        let target = dir.join("target.mp4");
        std::fs::write(&target, b"target").unwrap();
        let link = dir.join("out.mp4");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = OutputFile::create(&link, &[], Existing::Refuse).unwrap_err();
        assert!(err.to_string().contains("exists"), "{err}");
        let out = OutputFile::create(&link, &[], Existing::Replace).unwrap();
        std::fs::write(out.temp_path(), b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"target");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());

        let err = OutputFile::create(Path::new("/dev/null"), &[], Existing::Replace).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = OutputFile::create(&dir, &[], Existing::Replace).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err =
            OutputFile::create(&dir.join("no/such/out.mp4"), &[], Existing::Refuse).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
