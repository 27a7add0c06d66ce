//! Atomic file replacement: write a temporary file next to the target, fsync
//! it, rename it over the target, fsync the directory. `rename` within one
//! directory is atomic on POSIX filesystems, so readers (and a crash) see the
//! old file or the new one, never a half-written one.
//!
//! Temporary files of writes in progress are listed, so that a process
//! being interrupted can remove them ([`abandon_writes`]; the `convlab`
//! tool calls it on SIGINT, SIGTERM and SIGHUP).

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Distinguishes temporary files of concurrent writes from one process; the
/// pid distinguishes processes.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The longest file name most filesystems take (ext4, XFS, btrfs, tmpfs:
/// `NAME_MAX`); temporary names are cut to fit it.
const NAME_MAX: usize = 255;

/// Symbolic links followed to the file a write replaces (Linux's limit).
const MAX_LINKS: usize = 40;

/// The temporary files of writes in progress.
struct Pending {
    files: Vec<PathBuf>,
    /// Set by [`abandon_writes`]: no write starts after it.
    abandoned: bool,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    files: Vec::new(),
    abandoned: false,
});

fn pending() -> MutexGuard<'static, Pending> {
    // A writer that panicked leaves the list as it was: still usable.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporary file of every write in progress and makes every
/// later write fail; returns how many files it removed.
///
/// For a process that is about to exit on a signal: call it from the thread
/// that handles the signal (not from inside an async signal handler: it
/// takes a lock), then exit. Targets are untouched — each keeps its old
/// content, or stays absent.
pub fn abandon_writes() -> usize {
    let mut p = pending();
    p.abandoned = true;
    let files = std::mem::take(&mut p.files);
    files.iter().filter(|f| fs::remove_file(f).is_ok()).count()
}

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
/// the same directory (`name` cut short so that the temporary name stays
/// within 255 bytes); it is then fsynced and renamed over `path`, and the
/// directory is fsynced (best effort: some filesystems refuse it). An
/// existing file's permissions are kept. On any error, including one
/// returned by `fill`, the temporary file is removed and `path` is untouched.
///
/// - A symbolic link is written through: the file it points to (following
///   links up to 40 deep) is replaced, and the link stays a link, as a
///   shell's `>` would do.
/// - A read-only file (no write permission bit set) is refused, not
///   replaced, though the directory would allow the rename.
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
    let target = resolve_links(path).map_err(|e| fail(&e))?;
    if fs::metadata(&target).is_ok_and(|m| m.is_file() && m.permissions().readonly()) {
        return Err(fail(&"it is read-only (no write permission); not replaced"));
    }
    let name = target
        .file_name()
        .ok_or_else(|| fail(&"the path has no file name"))?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(temp_name(name, std::process::id(), n));
    let file = {
        let mut p = pending();
        if p.abandoned {
            return Err(fail(&"the process is being interrupted"));
        }
        // create_new: never clobber a file we did not create (a stale or foreign temp).
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| fail(&e))?;
        p.files.push(tmp.clone());
        file
    };
    let filled = fill_and_sync(file, fill, &target);
    // Under the lock: `abandon_writes` removes a temporary file before or
    // after its rename, never during.
    let done = {
        let mut p = pending();
        let done = filled.and_then(|()| fs::rename(&tmp, &target));
        p.files.retain(|f| f != &tmp);
        if done.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        done
    };
    match done {
        Ok(()) => {
            // The rename is durable only once the directory entry is on disk.
            if let Ok(d) = File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        }
        Err(e) => Err(fail(&e)),
    }
}

/// `path` with symbolic links in its last component followed; a dangling
/// link gives the path it points to (which the write then creates).
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other(format!(
        "more than {MAX_LINKS} symbolic links to follow"
    )))
}

/// `.{name}.{pid}.{n}.tmp`, with `name` cut (at a character boundary when
/// it is UTF-8) so the whole stays within [`NAME_MAX`] bytes.
fn temp_name(name: &std::ffi::OsStr, pid: u32, n: u64) -> OsString {
    let suffix = format!(".{pid}.{n}.tmp");
    let room = NAME_MAX - 1 - suffix.len();
    let mut out = OsString::from(".");
    out.push(cut(name, room));
    out.push(suffix);
    out
}

/// At most `max` bytes of `name`.
#[cfg(unix)]
fn cut(name: &std::ffi::OsStr, max: usize) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = name.as_bytes();
    if bytes.len() <= max {
        return name.to_os_string();
    }
    let mut end = max;
    if let Ok(text) = std::str::from_utf8(bytes) {
        while !text.is_char_boundary(end) {
            end -= 1;
        }
    }
    OsString::from_vec(bytes[..end].to_vec())
}

/// At most `max` bytes of `name` (as UTF-8, lossily).
#[cfg(not(unix))]
fn cut(name: &std::ffi::OsStr, max: usize) -> OsString {
    let text = name.to_string_lossy();
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    OsString::from(&text[..end])
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
    #[test]
    fn temp_names_fit_the_name_limit() {
        for name in ["a", &"x".repeat(250), &"é".repeat(127), &"y".repeat(255)] {
            let t = temp_name(name.as_ref(), u32::MAX, u64::MAX);
            let t = t.to_str().expect("cut at a character boundary");
            assert!(t.len() <= NAME_MAX, "{} bytes", t.len());
            assert!(t.starts_with(".") && t.ends_with(".tmp"), "{t}");
        }
        assert_eq!(temp_name("a.npy".as_ref(), 7, 3), ".a.npy.7.3.tmp");
    }

    #[test]
    fn an_output_name_of_250_bytes_works() {
        let d = scratch("long");
        let p = d.join(format!("{}.npy", "n".repeat(246)));
        write_atomic(&p, b"x").unwrap();
        write_atomic(&p, b"yz").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"yz");
        assert_eq!(entries(&d).len(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_written_through() {
        let d = scratch("link");
        fs::create_dir(d.join("real")).unwrap();
        let target = d.join("real/t.bin");
        write_atomic(&target, b"old").unwrap();
        let link = d.join("link.bin");
        std::os::unix::fs::symlink("real/t.bin", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");
        // A dangling link: the file it names is created.
        let dangling = d.join("dangling.bin");
        std::os::unix::fs::symlink("real/new.bin", &dangling).unwrap();
        write_atomic(&dangling, b"made").unwrap();
        assert_eq!(fs::read(d.join("real/new.bin")).unwrap(), b"made");
        assert_eq!(entries(&d.join("real")), ["new.bin", "t.bin"]);
        // A loop is an error, not a hang.
        std::os::unix::fs::symlink("loop2", d.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", d.join("loop2")).unwrap();
        let e = write_atomic(&d.join("loop1"), b"x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic links"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_target_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("ro");
        let p = d.join("ro.bin");
        write_atomic(&p, b"keep").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o444)).unwrap();
        let e = write_atomic(&p, b"new").unwrap_err().to_string();
        assert!(e.contains("read-only"), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"keep");
        assert_eq!(entries(&d), ["ro.bin"]);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::remove_dir_all(&d).unwrap();
    }
}
