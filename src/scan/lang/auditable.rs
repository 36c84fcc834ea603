//! The dependency list cargo-auditable embeds in Rust binaries: the `.dep-v0` section of an ELF
//! file, zlib-compressed JSON `{"packages":[{"name","version","source","kind","dependencies",
//! "root"}]}` (cargo-auditable's `auditable-serde`).
//!
//! The section's offset is in the section header table at the end of the file, so, as for Go
//! build information, the stream is searched instead of seeked: at every zlib header with a
//! 32 KiB window (`0x78` and a valid check byte), up to 4 KiB of the following bytes are
//! inflated, and only a stream that starts `{"packages":[` is taken and inflated to its end. The
//! search is fed the bytes the Go reader reads ([`Scanner::feed`]), so an executable is read
//! once for both. Bounded: at most [`MAX_JSON_BYTES`] inflated (a zip bomb is a warning naming
//! the file and offset), and the search keeps 4 KiB beyond what it was fed.

use flate2::{Decompress, FlushDecompress, Status};
use serde::Deserialize;

use super::{package, purl, Found};
use crate::scan::PackageKind;

/// The most bytes of JSON inflated: real lists are a few KiB per hundred crates.
pub const MAX_JSON_BYTES: usize = 8 * 1024 * 1024;
const PREFIX: &[u8] = b"{\"packages\":[";
/// Compressed bytes tried for a candidate before it is given up.
const LOOKAHEAD: usize = 4096;
const SCRATCH: usize = 64 * 1024;

/// Why an embedded dependency list could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuditableError {
    /// Inflating went past [`MAX_JSON_BYTES`].
    #[error("cargo-auditable dependency list at offset {offset} would inflate past the {limit} byte limit (zip bomb?); not read")]
    TooLarge {
        /// Where the zlib stream starts.
        offset: u64,
        /// The limit.
        limit: usize,
    },
    /// The zlib stream is damaged or ends with the file.
    #[error("corrupt cargo-auditable dependency list at offset {offset}: {what}")]
    Corrupt {
        /// Where the zlib stream starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

/// The search's state.
enum State {
    /// Not an ELF file: nothing to look for.
    NotElf,
    /// Looking for a zlib stream that inflates to the list.
    Searching,
    /// Inflating the stream found at `offset`.
    Inflating { offset: u64, json: Vec<u8> },
    /// Finished: the JSON, or why not.
    Done(Result<(u64, Vec<u8>), AuditableError>),
}

/// A push-style search of one file's bytes for the embedded list.
pub struct Scanner {
    state: State,
    /// Bytes not yet searched (and the lookahead), from file offset `base`.
    buf: Vec<u8>,
    base: u64,
    seen: u64,
    inflate: Decompress,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::Searching,
            buf: Vec::new(),
            base: 0,
            seen: 0,
            inflate: Decompress::new(true),
        }
    }
}

/// A zlib header with a 32 KiB window, deflate, no preset dictionary and a valid check.
fn zlib_header(b: &[u8]) -> bool {
    b[0] == 0x78 && b[1] & 0x20 == 0 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

impl Scanner {
    /// Whether the rest of the file is still of interest (an ELF file whose list is not found).
    pub fn wants_more(&self) -> bool {
        matches!(self.state, State::Searching | State::Inflating { .. })
    }

    /// The next bytes of the file.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.seen < 4 && matches!(self.state, State::Searching) {
            let have = self.seen as usize;
            let need = (4 - have).min(bytes.len());
            if bytes[..need] != b"\x7fELF"[have..have + need] {
                self.state = State::NotElf;
                self.buf = Vec::new();
            }
        }
        self.seen += bytes.len() as u64;
        match &mut self.state {
            State::Searching => {
                self.buf.extend_from_slice(bytes);
                self.search(false);
            }
            State::Inflating { .. } => self.inflate_more(bytes),
            State::NotElf | State::Done(_) => {}
        }
    }

    /// Searches `buf` for a candidate, leaving the lookahead unless at the end of the file.
    fn search(&mut self, at_end: bool) {
        let end = if at_end {
            self.buf.len().saturating_sub(1)
        } else {
            self.buf.len().saturating_sub(LOOKAHEAD)
        };
        let mut i = 0;
        while i < end {
            let Some(at) = self.buf[i..end].iter().position(|&b| b == 0x78) else {
                i = end;
                break;
            };
            i += at;
            if zlib_header(&self.buf[i..i + 2]) && self.starts_list(i) {
                let offset = self.base + i as u64;
                let rest = std::mem::take(&mut self.buf);
                self.inflate.reset(true);
                self.state = State::Inflating {
                    offset,
                    json: Vec::new(),
                };
                self.inflate_more(&rest[i..]);
                return;
            }
            i += 1;
        }
        self.buf.drain(..i);
        self.base += i as u64;
    }

    /// Whether the zlib stream at `i` inflates to the list's first bytes.
    fn starts_list(&mut self, i: usize) -> bool {
        self.inflate.reset(true);
        let input = &self.buf[i..self.buf.len().min(i + LOOKAHEAD)];
        let mut out = [0u8; PREFIX.len()];
        // An error after the prefix (a damaged stream, which the full inflation names) still
        // makes this the list.
        let _ = self
            .inflate
            .decompress(input, &mut out, FlushDecompress::None);
        self.inflate.total_out() == PREFIX.len() as u64 && out == PREFIX
    }

    fn inflate_more(&mut self, mut input: &[u8]) {
        let State::Inflating { offset, json } = &mut self.state else {
            return;
        };
        let offset = *offset;
        let mut scratch = vec![0u8; SCRATCH];
        loop {
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(input, &mut scratch, FlushDecompress::None);
            let used = (self.inflate.total_in() - before_in) as usize;
            let made = (self.inflate.total_out() - before_out) as usize;
            input = &input[used..];
            if json.len() + made > MAX_JSON_BYTES {
                self.state = State::Done(Err(AuditableError::TooLarge {
                    offset,
                    limit: MAX_JSON_BYTES,
                }));
                return;
            }
            json.extend_from_slice(&scratch[..made]);
            match status {
                Ok(Status::StreamEnd) => {
                    let json = std::mem::take(json);
                    self.state = State::Done(Ok((offset, json)));
                    return;
                }
                Ok(_) if input.is_empty() && made < SCRATCH => return, // wants more input
                Ok(_) if used == 0 && made == 0 => return,
                Ok(_) => {}
                Err(e) => {
                    self.state = State::Done(Err(AuditableError::Corrupt {
                        offset,
                        what: e.to_string(),
                    }));
                    return;
                }
            }
        }
    }

    /// The end of the file: the list's JSON and where its stream starts, or `Ok(None)` when
    /// there is none.
    pub fn finish(mut self) -> Result<Option<(u64, Vec<u8>)>, AuditableError> {
        if matches!(self.state, State::Searching) {
            self.search(true);
        }
        match self.state {
            State::NotElf | State::Searching => Ok(None),
            State::Inflating { offset, .. } => Err(AuditableError::Corrupt {
                offset,
                what: "the zlib stream ends with the file".into(),
            }),
            State::Done(r) => r.map(Some),
        }
    }
}

/// One entry of the list (`auditable-serde`'s `Package`; `source`, `root` and `dependencies`
/// are not needed).
#[derive(Debug, Deserialize)]
struct Entry {
    name: String,
    version: String,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct List {
    packages: Vec<Entry>,
}

/// The packages of a list: every crate linked into the binary (`kind` runtime, the default),
/// as `pkg:cargo/NAME@VERSION`, whatever its source, the root (the binary's own crate)
/// included, as syft 1.18 and trivy 0.76 list them. Build-time crates (build scripts, proc
/// macros: `kind: build`) are not in the binary and are left out, as by both.
pub fn packages(path: &str, json: &[u8]) -> Result<Vec<crate::scan::Package>, serde_json::Error> {
    let list: List = serde_json::from_slice(json)?;
    Ok(list
        .packages
        .iter()
        .filter(|e| e.kind.as_deref().unwrap_or("runtime") == "runtime")
        .map(|e| {
            let p = purl("cargo", &e.name, &e.version, &[]);
            package(PackageKind::Cargo, &e.name, &e.version, p, path, None)
        })
        .collect())
}

/// What a finished search found in the file at `path`: packages, or a warning naming it.
pub fn found(path: &str, result: Result<Option<(u64, Vec<u8>)>, AuditableError>) -> Found {
    match result {
        Ok(None) => Found::default(),
        Ok(Some((offset, json))) => match packages(path, &json) {
            Ok(packages) => Found {
                packages,
                warnings: Vec::new(),
            },
            Err(e) => Found::warning(
                path,
                AuditableError::Corrupt {
                    offset,
                    what: format!("not the list's JSON: {e}"),
                },
            ),
        },
        Err(e) => Found::warning(path, e),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const LIST: &str = r#"{"packages":[{"name":"app","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},{"name":"autocfg","version":"1.5.1","source":"crates.io","kind":"build"},{"name":"itoa","version":"1.0.19","source":"crates.io"}],"format":1}"#;

    fn zlib(b: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(b).expect("compress");
        e.finish().expect("compress")
    }

    /// An ELF-looking file with decoys (a zlib header that is not a list, a zlib stream of
    /// other JSON) before the list.
    fn binary(section: &[u8]) -> Vec<u8> {
        let mut b = b"\x7fELF".to_vec();
        b.resize(300_000, 0x78);
        b.extend_from_slice(&[0x78, 0x9c, 1, 2, 3]);
        b.extend(zlib(br#"{"other":[]}"#, 6));
        b.resize(600_001, 0);
        b.extend_from_slice(section);
        b.resize(b.len() + 70_000, 0xda);
        b
    }

    /// Feeds `bytes` in pieces of `step`, as a stream delivers them.
    fn scan(bytes: &[u8], step: usize) -> Result<Option<(u64, Vec<u8>)>, AuditableError> {
        let mut s = Scanner::default();
        for c in bytes.chunks(step) {
            s.feed(c);
        }
        s.finish()
    }

    #[test]
    fn finds_the_list_whatever_the_chunking_and_level() {
        for level in [1, 6, 7, 9] {
            let b = binary(&zlib(LIST.as_bytes(), level));
            for step in [1 << 20, 65_536, 4097, 13] {
                let (offset, json) = scan(&b, step).expect("reads").expect("found");
                assert_eq!(offset, 600_001, "level {level} step {step}");
                assert_eq!(json, LIST.as_bytes());
            }
        }
        let p = packages("usr/bin/app", LIST.as_bytes()).expect("json");
        let purls: Vec<&str> = p.iter().map(|p| p.purl.as_str()).collect();
        assert_eq!(purls, ["pkg:cargo/app@0.1.0", "pkg:cargo/itoa@1.0.19"]);
        assert!(p
            .iter()
            .all(|p| p.kind == PackageKind::Cargo && p.location == "usr/bin/app"));
    }

    #[test]
    fn not_elf_or_no_list_is_nothing() {
        let mut b = binary(&zlib(LIST.as_bytes(), 6));
        b[0] = b'#';
        assert_eq!(scan(&b, 4096), Ok(None));
        assert_eq!(scan(&binary(b""), 4096), Ok(None));
        assert_eq!(scan(b"\x7fEL", 1), Ok(None));
    }

    #[test]
    fn a_bomb_truncation_and_damage_are_named_by_offset() {
        // 100 MiB of a list that never ends inflates from about 100 KiB.
        let mut bomb = LIST.as_bytes()[..13].to_vec();
        bomb.resize(100 << 20, b' ');
        let b = binary(&zlib(&bomb, 9));
        assert!(b.len() < 2 << 20);
        assert_eq!(
            scan(&b, 65_536),
            Err(AuditableError::TooLarge {
                offset: 600_001,
                limit: MAX_JSON_BYTES
            })
        );
        let z = zlib(LIST.as_bytes(), 6);
        let cut = &binary(b"")[..600_001];
        let mut t = cut.to_vec();
        t.extend_from_slice(&z[..z.len() - 6]);
        assert_eq!(
            scan(&t, 4096),
            Err(AuditableError::Corrupt {
                offset: 600_001,
                what: "the zlib stream ends with the file".into()
            })
        );
        let mut damaged = z.clone();
        let n = damaged.len();
        damaged[n - 2] ^= 0xff; // the Adler-32 trailer
        let e = scan(&binary(&damaged), 4096).expect_err("checksum");
        assert!(
            matches!(
                e,
                AuditableError::Corrupt {
                    offset: 600_001,
                    ..
                }
            ),
            "{e}"
        );
        let f = found("usr/bin/app", Ok(Some((7, b"{\"packages\":[1]}".to_vec()))));
        assert!(f.packages.is_empty());
        assert!(
            f.warnings[0].starts_with("usr/bin/app: corrupt cargo-auditable dependency list at offset 7: not the list's JSON"),
            "{:?}",
            f.warnings
        );
    }

    #[test]
    fn the_image_analyzer_searches_executables_and_names_a_bomb() {
        use crate::scan::flatten::Analyzer;
        let analyze = |b: &[u8]| {
            super::super::LangAnalyzer.analyze("usr/bin/app", b.len() as u64, &mut &b[..])
        };
        let f = analyze(&binary(&zlib(LIST.as_bytes(), 7)));
        assert_eq!(f.warnings, Vec::<String>::new());
        assert_eq!(f.packages.len(), 2);
        let mut bomb = LIST.as_bytes()[..13].to_vec();
        bomb.resize(64 << 20, b'[');
        let f = analyze(&binary(&zlib(&bomb, 9)));
        assert!(f.packages.is_empty());
        assert_eq!(
            f.warnings,
            ["usr/bin/app: cargo-auditable dependency list at offset 600001 would inflate past the 8388608 byte limit (zip bomb?); not read"]
        );
    }
}
