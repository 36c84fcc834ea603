//! Bounded reads of outside data. Every local file airlock reads whole (keys, policies, specs,
//! receipts, proofs, databases…) goes through [`read_capped`], so a huge file, `/dev/zero` or
//! a FIFO that never ends costs at most its cap in memory, and the error names the file, what
//! it was meant to be and the cap.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The largest `--ca-file` read: a bundle of a few hundred PEM certificates.
pub const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// The largest credentials file (`auth.json`, docker `config.json`) read.
pub const MAX_AUTH_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Why a capped read failed. Each variant names the file and what it was read as.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file cannot be opened or read.
    #[error("{what} `{path}`: {source}")]
    Io {
        /// What the file was read as (`policy file`, `receipt`…).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file (or stream) is larger than the cap for its kind.
    #[error("{what} `{path}`: larger than the {} limit for a {what}", crate::human_bytes(*cap))]
    TooLarge {
        /// What the file was read as.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cap in bytes.
        cap: u64,
    },
    /// A text file that is not UTF-8.
    #[error("{what} `{path}`: not UTF-8 text")]
    NotUtf8 {
        /// What the file was read as.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
}

impl ReadError {
    /// Whether the file was over its cap.
    pub fn is_too_large(&self) -> bool {
        matches!(self, ReadError::TooLarge { .. })
    }

    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Reads a whole file of outside data, refusing one over `cap` bytes: a regular file's size is
/// checked before a byte is read, and any file (a device, a FIFO, a file growing while read) is
/// read at most `cap + 1` bytes. `what` names the kind of file in errors.
pub fn read_capped(path: &Path, cap: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
    let io_err = |source| ReadError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(io_err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        )));
    }
    let too_large = || ReadError::TooLarge {
        what,
        path: path.to_path_buf(),
        cap,
    };
    if meta.is_file() && meta.len() > cap {
        return Err(too_large());
    }
    let hint = if meta.is_file() { meta.len() } else { 0 };
    read_stream_capped(file, cap, hint).map_err(|e| match e {
        StreamError::TooLarge(_) => too_large(),
        StreamError::Io(source) => io_err(source),
    })
}

/// [`read_capped`] for a text file: the bytes must be UTF-8.
pub fn read_text_capped(path: &Path, cap: u64, what: &'static str) -> Result<String, ReadError> {
    String::from_utf8(read_capped(path, cap, what)?).map_err(|_| ReadError::NotUtf8 {
        what,
        path: path.to_path_buf(),
    })
}

/// Why [`read_stream_capped`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// More than the cap.
    #[error("larger than the {} limit", crate::human_bytes(*.0))]
    TooLarge(u64),
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads a stream to its end, at most `cap + 1` bytes: more than `cap` is refused. `hint` (a
/// declared size, trusted only up to the cap) presizes the buffer.
pub fn read_stream_capped<R: Read>(r: R, cap: u64, hint: u64) -> Result<Vec<u8>, StreamError> {
    let mut buf = Vec::with_capacity(hint.min(cap).min(64 * 1024 * 1024) as usize);
    r.take(cap.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(StreamError::TooLarge(cap));
    }
    Ok(buf)
}

/// Writes a file atomically: a temporary file beside it (mode 0600), synced, renamed into
/// place, so a reader (a metrics collector, docker reading `config.json`) never sees half a
/// file and a crash leaves the old one whole.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".airlock-tmp-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_over_the_cap_before_or_while_reading() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("f");
        std::fs::write(&f, b"12345").expect("write");
        assert_eq!(read_capped(&f, 5, "test file").expect("fits"), b"12345");
        let e = read_capped(&f, 4, "test file").expect_err("over");
        assert!(e.is_too_large());
        assert!(e.to_string().contains("test file `"), "{e}");
        assert!(e.to_string().contains("larger than the 4 B limit"), "{e}");
        let e = read_capped(Path::new("/dev/zero"), 1000, "key").expect_err("endless");
        assert!(e.is_too_large(), "{e}");
        let e = read_capped(dir.path(), 1000, "key").expect_err("a directory");
        assert!(e.to_string().contains("is a directory"), "{e}");
        let e = read_capped(&dir.path().join("missing"), 10, "key").expect_err("missing");
        assert!(e.to_string().starts_with("key `"), "{e}");
    }
}
