//! Tar entries of archives from outside (bundles, image layers, chart archives), read so that
//! no header can make us buffer more than a few KiB.
//!
//! The `tar` crate reads a GNU long name, long link or PAX record whole before the entry it
//! describes, whatever size its header declares: a 17 KiB archive can claim a 512 MiB name.
//! Here entries are read raw and those extension headers are either refused outright (airlock's
//! own bundles never need one: every name it writes fits the header) or read up to
//! [`MAX_EXTENSION_BYTES`] and applied to the next entry ourselves.

use std::io::{self, Read};

/// The largest GNU long name, long link or PAX record accepted (Linux paths are at most 4 KiB).
pub const MAX_EXTENSION_BYTES: u64 = 64 * 1024;

/// What to do with extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extensions {
    /// Refuse any: the format never uses them.
    Refuse,
    /// Read each up to [`MAX_EXTENSION_BYTES`] and apply its name and link name.
    Apply,
}

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// The archive is truncated or corrupt.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// An extension header that is not accepted here.
    #[error("a {kind} header of {size} bytes: {why}")]
    Extension {
        /// Entry number, counting extension headers (0-based).
        index: usize,
        /// Which extension.
        kind: &'static str,
        /// The size it declares.
        size: u64,
        /// Why it is refused.
        why: &'static str,
    },
    /// A PAX `size` record or a GNU sparse entry: the data would not be where the header says.
    #[error("{what} is not supported")]
    Unsupported {
        /// Entry number (0-based).
        index: usize,
        /// What.
        what: &'static str,
    },
}

/// One entry, with its path and link name as the archive means them.
pub struct Entry<'a, R: Read> {
    /// The entry itself (header and data).
    pub inner: tar::Entry<'a, R>,
    /// Its path: from a long name or PAX `path` when there was one, else the header's.
    pub path: Vec<u8>,
    /// Its link name, likewise (`None` when it has none).
    pub link: Option<Vec<u8>>,
}

impl<R: Read> Entry<'_, R> {
    /// The path as text (lossy).
    pub fn path_lossy(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// The entries of `archive`, extension headers handled as `mode` says.
pub fn entries<R: Read>(
    archive: &mut tar::Archive<R>,
    mode: Extensions,
) -> io::Result<Entries<'_, R>> {
    Ok(Entries {
        inner: archive.entries()?.raw(true),
        mode,
        index: 0,
    })
}

/// Iterator of [`entries`].
pub struct Entries<'a, R: Read> {
    inner: tar::Entries<'a, R>,
    mode: Extensions,
    index: usize,
}

fn extension_kind(t: tar::EntryType) -> Option<&'static str> {
    match t {
        tar::EntryType::GNULongName => Some("GNU long name"),
        tar::EntryType::GNULongLink => Some("GNU long link"),
        tar::EntryType::XHeader => Some("PAX extension"),
        tar::EntryType::XGlobalHeader => Some("PAX global extension"),
        _ => None,
    }
}

/// A name as the GNU extension stores it: NUL-terminated.
fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(end) = v.iter().position(|&b| b == 0) {
        v.truncate(end);
    }
    v
}

impl<'a, R: Read> Entries<'a, R> {
    fn next_entry(&mut self) -> Result<Option<Entry<'a, R>>, TarError> {
        let (mut long_name, mut long_link) = (None, None);
        let (mut pax_path, mut pax_link) = (None, None);
        loop {
            let Some(entry) = self.inner.next() else {
                if long_name.is_some() || long_link.is_some() || pax_path.is_some() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "an extension header describes an entry that never comes",
                    )
                    .into());
                }
                return Ok(None);
            };
            let mut entry = entry?;
            let index = self.index;
            self.index += 1;
            let t = entry.header().entry_type();
            // A sparse entry whose map fits in its header keeps the stream in step (its data is
            // the header's size); where extensions are applied (layers) it is passed on, and
            // its reader must not take that data for the file's content. An extended map
            // would be read as data: refused.
            let extended_sparse = t == tar::EntryType::GNUSparse
                && entry.header().as_gnu().is_none_or(|g| g.is_extended());
            if t == tar::EntryType::GNUSparse
                && (self.mode == Extensions::Refuse || extended_sparse)
            {
                return Err(TarError::Unsupported {
                    index,
                    what: "a GNU sparse entry",
                });
            }
            let Some(kind) = extension_kind(t) else {
                let path = pax_path
                    .or(long_name)
                    .unwrap_or_else(|| entry.path_bytes().into_owned());
                let link = pax_link
                    .or(long_link)
                    .or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
                return Ok(Some(Entry {
                    inner: entry,
                    path,
                    link,
                }));
            };
            let size = entry.size();
            let refuse = |why| TarError::Extension {
                index,
                kind,
                size,
                why,
            };
            if self.mode == Extensions::Refuse {
                return Err(refuse("this archive never holds one"));
            }
            if size > MAX_EXTENSION_BYTES {
                return Err(refuse("over the 64 KiB limit"));
            }
            let data = crate::io::read_stream_capped(&mut entry, MAX_EXTENSION_BYTES, size)
                .map_err(|_| refuse("cannot be read"))?;
            match t {
                tar::EntryType::GNULongName => long_name = Some(trim_nul(data)),
                tar::EntryType::GNULongLink => long_link = Some(trim_nul(data)),
                tar::EntryType::XHeader => {
                    for ext in tar::PaxExtensions::new(&data) {
                        let ext = ext?;
                        match ext.key_bytes() {
                            b"path" => pax_path = Some(ext.value_bytes().to_vec()),
                            b"linkpath" => pax_link = Some(ext.value_bytes().to_vec()),
                            // Raw entries take their size from the header: an entry whose
                            // data is elsewhere would desynchronize the stream.
                            b"size" => {
                                return Err(TarError::Unsupported {
                                    index,
                                    what: "a PAX `size` record (an entry over 8 GiB)",
                                })
                            }
                            _ => {}
                        }
                    }
                }
                // Global records (comments, defaults for every entry) change no name.
                _ => {}
            }
        }
    }
}

impl<'a, R: Read> Iterator for Entries<'a, R> {
    type Item = Result<Entry<'a, R>, TarError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar stream with one extension header of `kind` declaring `size` bytes, then a file.
    fn with_extension(kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut h = tar::Header::new_gnu();
        h.set_path("././@LongLink").expect("path");
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        let mut b = tar::Builder::new(out);
        let mut f = tar::Header::new_gnu();
        f.set_path("short").expect("path");
        f.set_size(2);
        f.set_cksum();
        b.append(&f, &b"hi"[..]).expect("append");
        b.into_inner().expect("finish")
    }

    fn paths(bytes: &[u8], mode: Extensions) -> Result<Vec<String>, TarError> {
        let mut ar = tar::Archive::new(bytes);
        entries(&mut ar, mode)?
            .map(|e| e.map(|e| e.path_lossy()))
            .collect()
    }

    #[test]
    fn applies_small_extensions_and_refuses_large_ones() {
        let long = "d/".repeat(200) + "f";
        let gnu = with_extension(tar::EntryType::GNULongName, format!("{long}\0").as_bytes());
        assert_eq!(
            paths(&gnu, Extensions::Apply).expect("apply"),
            std::slice::from_ref(&long)
        );
        let e = paths(&gnu, Extensions::Refuse).expect_err("refuse");
        assert!(e.to_string().contains("GNU long name header"), "{e}");
        let record = format!("{} path={long}\n", long.len() + 10);
        let pax = with_extension(tar::EntryType::XHeader, record.as_bytes());
        assert_eq!(paths(&pax, Extensions::Apply).expect("pax"), [long]);
        let big = with_extension(
            tar::EntryType::GNULongName,
            &vec![b'a'; MAX_EXTENSION_BYTES as usize + 1],
        );
        let e = paths(&big, Extensions::Apply).expect_err("too long");
        assert!(e.to_string().contains("over the 64 KiB limit"), "{e}");
        let size = with_extension(tar::EntryType::XHeader, b"12 size=100\n");
        let e = paths(&size, Extensions::Apply).expect_err("pax size");
        assert!(e.to_string().contains("PAX `size`"), "{e}");
    }
}
