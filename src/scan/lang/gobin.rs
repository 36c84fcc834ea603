//! Go module build information, read from an ELF binary as it streams by.
//!
//! Go 1.18 and later write a 32-byte header starting `\xff Go buildinf:` at a 16-byte aligned
//! offset of the `.go.buildinfo` section (byte 15 has flag 2: strings inline), followed by two
//! varint-length strings: the toolchain version (`go1.21.5`) and the module information, framed
//! by 16 bytes on each side, with tab-separated lines `path`, `mod` (the main module), `dep`
//! and `=>` (a replacement of the line before) (Go's `debug/buildinfo` and
//! `runtime/debug.ParseBuildInfo`). The section's offset is in the section header table at the
//! end of the file, so instead of seeking the stream is searched for the header at aligned
//! offsets and a candidate is accepted only when both strings parse; a binary that merely
//! contains the magic as data (a Go tool that imports `debug/buildinfo`) is not fooled, since
//! its string is not followed by a valid version. Binaries from Go before 1.18 keep pointers
//! instead of strings and are reported as skipped.

use std::io::{self, Read};

use super::{package, Found};
use crate::scan::PackageKind;

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER: usize = 32;
/// The most bytes of version and module information read after a header.
const MAX_INFO_BYTES: usize = 4 * 1024 * 1024;
/// The longest toolchain version string (`go1.21.5 X:boringcrypto,nocoverageredesign`).
const MAX_VERSION_BYTES: usize = 256;
const CHUNK: usize = 256 * 1024;

/// The build information of one Go binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// The toolchain (`go1.21.5`).
    pub go_version: String,
    /// The main package path (`github.com/distribution/distribution/cmd/registry`).
    pub path: Option<String>,
    /// The main module.
    pub main: Option<Module>,
    /// Dependencies, replacements applied.
    pub deps: Vec<Module>,
}

/// One module line (`mod` or `dep`), after its `=>` replacement if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Module path.
    pub path: String,
    /// Version (`v1.2.3`, `(devel)`, a pseudo-version).
    pub version: String,
}

/// Why build information could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GoError {
    /// The header says pointers, not inline strings (Go before 1.18).
    #[error("Go build info in the pre-1.18 pointer format is not read")]
    PointerFormat,
    /// The header was found but what follows is not version and module strings.
    #[error("corrupt Go build info at offset {offset}: {what}")]
    Corrupt {
        /// Byte offset of the header in the file.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// The file could not be read to its end.
    #[error("unreadable: {0}")]
    Unreadable(String),
    /// A module line does not have the fields it must.
    #[error("corrupt Go module info line {line}: `{text}`")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line (truncated).
        text: String,
    },
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    for (i, &c) in b.iter().enumerate().take(10) {
        x |= u64::from(c & 0x7f) << (7 * i);
        if c < 0x80 {
            return Some((x, i + 1));
        }
    }
    None
}

/// What the bytes at a magic string are.
enum Candidate {
    /// Too few bytes yet to tell.
    Short,
    /// Not build information (the magic as data, or the pre-1.18 pointer format).
    NotHeader { pointer_format: bool },
    /// The version and module strings.
    Info(String, String),
}

/// Parses the bytes from a magic string on.
fn parse_at(b: &[u8], offset: u64) -> Result<Candidate, GoError> {
    if b.len() < HEADER {
        return Ok(Candidate::Short);
    }
    if b[15] & 2 == 0 {
        return Ok(Candidate::NotHeader {
            pointer_format: matches!(b[14], 4 | 8),
        });
    }
    let mut rest = &b[HEADER..];
    let mut strings: Vec<String> = Vec::with_capacity(2);
    for i in 0..2 {
        let Some((n, used)) = uvarint(rest) else {
            return if rest.len() < 10 {
                Ok(Candidate::Short)
            } else {
                Err(GoError::Corrupt {
                    offset,
                    what: "bad string length",
                })
            };
        };
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        // A version string is short; anything else means this is not a header.
        let limit = if i == 0 {
            MAX_VERSION_BYTES
        } else {
            MAX_INFO_BYTES
        };
        if n > limit {
            return if i == 0 {
                Ok(Candidate::NotHeader {
                    pointer_format: false,
                })
            } else {
                Err(GoError::Corrupt {
                    offset,
                    what: "module info longer than the limit",
                })
            };
        }
        if rest.len() < used + n {
            return Ok(Candidate::Short);
        }
        let s = String::from_utf8_lossy(&rest[used..used + n]).into_owned();
        if i == 0 && !s.starts_with("go") && !s.starts_with("devel") {
            return Ok(Candidate::NotHeader {
                pointer_format: false,
            });
        }
        strings.push(s);
        rest = &rest[used + n..];
    }
    let modinfo = strings.pop().unwrap_or_default();
    let version = strings.pop().unwrap_or_default();
    // `debug/buildinfo`: strip the 16-byte sentinels when the framing is there.
    let bytes = modinfo.as_bytes();
    let modinfo = if bytes.len() >= 33 && bytes[bytes.len() - 17] == b'\n' {
        String::from_utf8_lossy(&bytes[16..bytes.len() - 16]).into_owned()
    } else {
        String::new()
    };
    Ok(Candidate::Info(version, modinfo))
}

/// Parses module information text (`runtime/debug.ParseBuildInfo` lines).
pub fn parse_modinfo(go_version: &str, text: &str) -> Result<BuildInfo, GoError> {
    let mut info = BuildInfo {
        go_version: go_version.to_string(),
        path: None,
        main: None,
        deps: Vec::new(),
    };
    let mut last_was_main = false;
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || GoError::BadLine {
            line: i + 1,
            text: line.chars().take(120).collect(),
        };
        match f[0] {
            "path" => info.path = f.get(1).map(|s| s.to_string()),
            "mod" | "dep" => {
                if f.len() < 3 || f[1].is_empty() {
                    return Err(bad());
                }
                let m = Module {
                    path: f[1].to_string(),
                    version: f[2].to_string(),
                };
                last_was_main = f[0] == "mod";
                if last_was_main {
                    info.main = Some(m);
                } else {
                    info.deps.push(m);
                }
            }
            "=>" => {
                if f.len() < 3 || f[1].is_empty() {
                    return Err(bad());
                }
                let m = Module {
                    path: f[1].to_string(),
                    version: f[2].to_string(),
                };
                let target = if last_was_main {
                    info.main.as_mut()
                } else {
                    info.deps.last_mut()
                };
                *target.ok_or_else(bad)? = m;
            }
            _ => {}
        }
    }
    Ok(info)
}

/// Searches a stream for Go build information. `Ok(None)`: not an ELF file, or no build info.
pub fn search(content: &mut dyn Read) -> Result<Option<BuildInfo>, GoError> {
    search_inner(content).map_err(|e| match e {
        Searched::Go(g) => g,
        Searched::Io(e) => GoError::Unreadable(e.to_string()),
    })
}

enum Searched {
    Go(GoError),
    Io(io::Error),
}

fn fill(content: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> Result<bool, Searched> {
    let start = buf.len();
    buf.resize(start + want, 0);
    let mut got = 0;
    while got < want {
        match content.read(&mut buf[start + got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(start + got);
                return Err(Searched::Io(e));
            }
        }
    }
    buf.truncate(start + got);
    Ok(got > 0)
}

fn search_inner(content: &mut dyn Read) -> Result<Option<BuildInfo>, Searched> {
    let mut buf = Vec::with_capacity(CHUNK * 2);
    fill(content, &mut buf, 4)?;
    if buf.len() < 4 || &buf[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let mut base: u64 = 0; // file offset of buf[0], always a multiple of 16
    let mut i = 0usize; // next aligned candidate, relative to buf
    let mut eof = false;
    let mut pointer_format = false;
    loop {
        while i + MAGIC.len() <= buf.len() {
            if &buf[i..i + MAGIC.len()] == MAGIC {
                let offset = base + i as u64;
                loop {
                    match parse_at(&buf[i..], offset).map_err(Searched::Go)? {
                        Candidate::Info(version, modinfo) => {
                            return parse_modinfo(&version, &modinfo)
                                .map(Some)
                                .map_err(Searched::Go);
                        }
                        Candidate::NotHeader { pointer_format: p } => {
                            pointer_format |= p;
                            break;
                        }
                        Candidate::Short if !eof => {
                            eof = !fill(content, &mut buf, CHUNK)?;
                        }
                        Candidate::Short => {
                            return Err(Searched::Go(GoError::Corrupt {
                                offset,
                                what: "truncated",
                            }))
                        }
                    }
                }
            }
            i += 16;
        }
        if eof {
            return if pointer_format {
                Err(Searched::Go(GoError::PointerFormat))
            } else {
                Ok(None)
            };
        }
        // Keep the unsearched tail (less than one candidate), aligned.
        let keep_from = i.min(buf.len() / 16 * 16);
        buf.drain(..keep_from);
        base += keep_from as u64;
        i -= keep_from;
        eof = !fill(content, &mut buf, CHUNK)?;
    }
}

/// Reads one executable: its modules and the toolchain as packages, or a warning.
pub fn read(path: &str, content: &mut dyn Read) -> Found {
    match search(content) {
        Ok(None) => Found::default(),
        Ok(Some(info)) => Found {
            packages: packages(path, &info),
            warnings: Vec::new(),
        },
        Err(e) => Found::warning(path, e),
    }
}

/// The packages of a binary: `stdlib` at the toolchain version, the main module (unless it is
/// `(devel)`, which names no release), and every dependency.
pub fn packages(path: &str, info: &BuildInfo) -> Vec<crate::scan::Package> {
    let mut out = Vec::new();
    let pkg = |name: &str, version: &str| {
        let p = super::purl("golang", name, version, &[]);
        package(PackageKind::GoModule, name, version, p, path, None)
    };
    if let Some(v) = info.go_version.strip_prefix("go") {
        // `go1.21.5 X:boringcrypto`: the version is the first word.
        let v = v.split_whitespace().next().unwrap_or(v);
        out.push(pkg("stdlib", &format!("v{v}")));
    }
    if let Some(m) = &info.main {
        if m.version != "(devel)" && !m.version.is_empty() {
            out.push(pkg(&m.path, &m.version));
        }
    }
    for d in &info.deps {
        out.push(pkg(&d.path, &d.version));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(version: &str, modinfo: &str) -> Vec<u8> {
        let mut b = b"\x7fELF".to_vec();
        b.resize(4096, 0);
        // The magic as data, not followed by build info, before the real header.
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(b"\x08\x02 not a version...");
        while !b.len().is_multiple_of(16) {
            b.push(0);
        }
        b.resize(8192, 0);
        b.extend_from_slice(MAGIC);
        b.push(8);
        b.push(2);
        b.resize(8192 + HEADER, 0);
        for s in [version.as_bytes().to_vec(), framed(modinfo)] {
            let mut n = s.len();
            loop {
                let c = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    b.push(c);
                    break;
                }
                b.push(c | 0x80);
            }
            b.extend_from_slice(&s);
        }
        b.resize(b.len() + 1000, 0);
        b
    }

    fn framed(s: &str) -> Vec<u8> {
        let mut v = vec![b'0'; 16];
        v.extend_from_slice(s.as_bytes());
        v.extend_from_slice(&[b'1'; 16]);
        v
    }

    #[test]
    fn reads_modules_and_replacements() {
        let text = "path\texample.com/cmd/x\nmod\texample.com\tv1.2.3\th1:x=\ndep\tgolang.org/x/sys\tv0.1.0\th1:y=\ndep\tgithub.com/a/b\tv1.0.0\n=>\tgithub.com/c/b\tv1.0.1\th1:z=\nbuild\t-compiler=gc\n";
        let b = blob("go1.21.5", text);
        let info = search(&mut &b[..]).expect("parses").expect("found");
        assert_eq!(info.go_version, "go1.21.5");
        assert_eq!(info.path.as_deref(), Some("example.com/cmd/x"));
        assert_eq!(info.deps[1].path, "github.com/c/b");
        assert_eq!(info.deps[1].version, "v1.0.1");
        let p = packages("usr/bin/x", &info);
        let names: Vec<_> = p.iter().map(|p| p.purl.as_str()).collect();
        assert_eq!(
            names,
            [
                "pkg:golang/stdlib@v1.21.5",
                "pkg:golang/example.com@v1.2.3",
                "pkg:golang/golang.org/x/sys@v0.1.0",
                "pkg:golang/github.com/c/b@v1.0.1"
            ]
        );
    }

    #[test]
    fn not_elf_and_no_info() {
        assert_eq!(search(&mut &b"#!/bin/sh\n"[..]), Ok(None));
        let mut b = b"\x7fELF".to_vec();
        b.resize(100_000, 7);
        assert_eq!(search(&mut &b[..]), Ok(None));
    }

    #[test]
    fn corrupt_and_truncated_info() {
        let b = blob("go1.21.5", "mod\n");
        assert!(matches!(
            search(&mut &b[..]),
            Err(GoError::BadLine { line: 1, .. })
        ));
        let mut b = blob("go1.21.5", "mod\tx\tv1\n");
        let cut = 8192 + HEADER + 5;
        b.truncate(cut);
        assert!(matches!(
            search(&mut &b[..]),
            Err(GoError::Corrupt {
                what: "truncated",
                ..
            })
        ));
        let mut b = blob("go1.21.5", "");
        b[8192 + 15] = 0;
        b[8192 + 14] = 8;
        assert_eq!(search(&mut &b[..]), Err(GoError::PointerFormat));
    }
}
