//! Free space on the filesystem a file will be written to, so a long collect fails in its
//! first second with the figures instead of after hours with `ENOSPC` and a partial file.

use std::io;
use std::path::{Path, PathBuf};

/// Not enough room: names the place, what is needed and what is there.
#[derive(Debug, thiserror::Error)]
#[error("not enough space in `{}`: {what} needs {needed} bytes ({}), only {available} bytes ({}) are free", path.display(), crate::human_bytes(*needed), crate::human_bytes(*available))]
pub struct NoSpace {
    /// The directory written to.
    pub path: PathBuf,
    /// What would be written there.
    pub what: String,
    /// Bytes needed.
    pub needed: u64,
    /// Bytes available to this user.
    pub available: u64,
}

/// The nearest existing directory at or above `path` (the file itself need not exist yet).
fn existing_dir(path: &Path) -> PathBuf {
    let mut p = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    if p.as_os_str().is_empty() {
        p = PathBuf::from(".");
    }
    while !p.exists() {
        match p.parent() {
            Some(q) if !q.as_os_str().is_empty() => p = q.to_path_buf(),
            _ => return PathBuf::from("."),
        }
    }
    p
}

/// Bytes available to an unprivileged writer on the filesystem holding `path` (or, when it
/// does not exist yet, its nearest existing parent).
pub fn available_bytes(path: &Path) -> io::Result<u64> {
    let dir = existing_dir(path);
    let st = rustix::fs::statvfs(&dir).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Identifies the filesystem holding `path`, to tell whether two paths share their space.
pub fn filesystem_id(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    Ok(fs_err::metadata(existing_dir(path))?.dev())
}

/// Checks that `needs` (directory or file to be written, what it is, bytes) fit, adding the
/// needs of paths on the same filesystem together. Errors of `statvfs` itself are ignored
/// (an exotic filesystem must not block a collect): the write will tell.
pub fn check_room(needs: &[(&Path, &str, u64)]) -> Result<(), NoSpace> {
    let mut by_fs: Vec<(u64, PathBuf, Vec<&str>, u64)> = Vec::new();
    for (path, what, bytes) in needs {
        let Ok(id) = filesystem_id(path) else {
            continue;
        };
        match by_fs.iter_mut().find(|e| e.0 == id) {
            Some(e) => {
                e.2.push(what);
                e.3 += bytes;
            }
            None => by_fs.push((id, existing_dir(path), vec![what], *bytes)),
        }
    }
    for (_, dir, whats, needed) in by_fs {
        let Ok(available) = available_bytes(&dir) else {
            continue;
        };
        if needed > available {
            return Err(NoSpace {
                path: dir,
                what: whats.join(" and "),
                needed,
                available,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_needed_and_available_bytes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let free = available_bytes(tmp.path()).expect("statvfs");
        assert!(free > 0);
        assert!(check_room(&[(tmp.path(), "the bundle", 1)]).is_ok());
        let e = check_room(&[
            (&tmp.path().join("b.tar.zst"), "the bundle", free),
            (&tmp.path().join("cache"), "the cache", free),
        ])
        .expect_err("twice the free space on one filesystem");
        let s = e.to_string();
        assert!(s.contains("the bundle and the cache"), "{s}");
        assert!(s.contains(&format!("needs {} bytes", free * 2)), "{s}");
    }
}
