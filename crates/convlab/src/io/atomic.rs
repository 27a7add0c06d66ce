//! Atomic file replacement: write a temporary file next to the target, fsync
//! it, rename it over the target, fsync the directory. `rename` within one
//! directory is atomic on POSIX filesystems, so readers (and a crash) see the
//! old file or the new one, never a half-written one.

use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files of concurrent writes from one process; the
/// pid distinguishes processes.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
///
/// # Errors
/// [`Error::Io`] (`write: cannot write <path>: <reason>`) when the temporary
/// file cannot be created, written, synced or renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes `path` atomically, streaming its content from `fill`.
///
/// `fill` writes into a buffered temporary file `.{name}.{pid}.{n}.tmp` in
/// the same directory; it is then fsynced and renamed over `path`, and the
/// directory is fsynced (best effort: some filesystems refuse it). An
/// existing file's permissions are kept. On any error, including one
/// returned by `fill`, the temporary file is removed and `path` is untouched.
///
/// # Errors
/// [`Error::Io`] (`write: cannot write <path>: <reason>`).
pub fn write_atomic_with<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let fail = |reason: &dyn std::fmt::Display| {
        Error::io(
            "write",
            format!("cannot write {}: {reason}", path.display()),
        )
    };
    let name = path
        .file_name()
        .ok_or_else(|| fail(&"the path has no file name"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}.{n}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    // create_new: never clobber a file we did not create (a stale or foreign temp).
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| fail(&e))?;
    match fill_and_sync(file, fill, path).and_then(|()| fs::rename(&tmp, path)) {
        Ok(()) => {
            // The rename is durable only once the directory entry is on disk.
            if let Ok(d) = File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(fail(&e))
        }
    }
}

fn fill_and_sync<F>(file: File, fill: F, target: &Path) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let mut w = BufWriter::new(file);
    fill(&mut w)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    if let Ok(meta) = fs::metadata(target) {
        file.set_permissions(meta.permissions())?;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("convlab-atomic-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let d = scratch("replace");
        let p = d.join("a.bin");
        write_atomic(&p, b"first, longer content").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        assert_eq!(entries(&d), ["a.bin"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn failing_writer_keeps_old_file_and_removes_temp() {
        let d = scratch("fail");
        let p = d.join("keep.txt");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |w| {
            w.write_all(b"partial new content")?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("write: cannot write "), "{msg}");
        assert!(
            msg.contains("keep.txt") && msg.contains("disk on fire"),
            "{msg}"
        );
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(entries(&d), ["keep.txt"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_directory_is_an_error() {
        let d = scratch("missing");
        let err = write_atomic(&d.join("no/such/dir/x.bin"), b"x").unwrap_err();
        assert!(matches!(err, Error::Io { op: "write", .. }), "{err}");
        assert!(entries(&d).is_empty());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn directory_as_target_is_an_error_and_cleans_up() {
        let d = scratch("isdir");
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("sub/inner"), b"x").unwrap();
        assert!(write_atomic(&d.join("sub"), b"x").is_err());
        assert_eq!(entries(&d), ["sub"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn keeps_permissions_of_replaced_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("perm");
        let p = d.join("p.bin");
        write_atomic(&p, b"1").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"2").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
