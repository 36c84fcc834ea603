//! Application packages, read from the files that carry them while the layers stream by:
//! Go binaries ([`gobin`]), Python distributions ([`python`]), npm packages ([`node`]), Java
//! archives ([`java`]), .NET dependency manifests ([`dotnet`]) and the crate lists of Rust
//! binaries built with cargo-auditable ([`auditable`]). Each reader is bounded: a file over its cap is skipped with a warning
//! (recorded in the inventory), never read whole, and a malformed file is a warning naming it,
//! not a failed scan: one bad file in a large image must not hide the rest.

pub mod auditable;
pub mod dotnet;
pub mod gobin;
pub mod java;
pub mod node;
pub mod python;

use std::io::Read;

use super::flatten::Analyzer;
use super::Package;

/// The largest package manifest read (`package.json`, `METADATA`, `PKG-INFO`).
pub const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024;
/// The largest Java archive read (it is spooled to an unlinked temporary file, not memory).
pub const MAX_ARCHIVE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// The largest executable searched for Go build information (streamed, never held).
pub const MAX_BINARY_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// What one file held: packages, and why something was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The packages, each with the file as its location.
    pub packages: Vec<Package>,
    /// One line per thing skipped (`usr/bin/x: Go build info: ...`).
    pub warnings: Vec<String>,
}

impl Found {
    /// Nothing found and nothing to say.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty() && self.warnings.is_empty()
    }

    /// A rough count of the bytes this holds, for the flattening memory limit.
    pub fn weight(&self) -> u64 {
        let p: usize = self
            .packages
            .iter()
            .map(|p| 64 + p.name.len() + p.version.len() + p.purl.len() + p.location.len())
            .sum();
        let w: usize = self.warnings.iter().map(String::len).sum();
        (p + w) as u64
    }

    /// A finding that is only a warning.
    pub fn warning(path: &str, what: impl std::fmt::Display) -> Found {
        Found {
            packages: Vec::new(),
            warnings: vec![format!("{path}: {what}")],
        }
    }
}

/// Which reader a path goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Go,
    Python,
    Node,
    Java,
    DotNet,
}

fn reader_for(path: &str, mode: u32) -> Option<Reader> {
    if python::is_metadata(path) {
        Some(Reader::Python)
    } else if node::is_package_json(path) {
        Some(Reader::Node)
    } else if java::is_archive(path) {
        Some(Reader::Java)
    } else if dotnet::is_deps_json(path) {
        Some(Reader::DotNet)
    } else if mode & 0o111 != 0 {
        Some(Reader::Go)
    } else {
        None
    }
}

/// The analyzer [`super::inventory_layers`] streams files through.
pub struct LangAnalyzer;

impl Analyzer for LangAnalyzer {
    fn wants(&self, path: &str, mode: u32, size: u64) -> bool {
        size > 0 && reader_for(path, mode).is_some()
    }

    fn analyze(&self, path: &str, size: u64, content: &mut dyn Read) -> Found {
        let cap = |limit: u64, what: &str| {
            Found::warning(
                path,
                format_args!("{what} of {size} bytes is over the {limit} byte limit; not read"),
            )
        };
        match reader_for(path, 0o755) {
            Some(Reader::Python) if size > MAX_MANIFEST_BYTES => {
                cap(MAX_MANIFEST_BYTES, "Python metadata")
            }
            Some(Reader::Python) => python::read(path, content),
            Some(Reader::Node) if size > MAX_MANIFEST_BYTES => {
                cap(MAX_MANIFEST_BYTES, "package.json")
            }
            Some(Reader::Node) => node::read(path, content),
            Some(Reader::Java) if size > MAX_ARCHIVE_BYTES => {
                cap(MAX_ARCHIVE_BYTES, "Java archive")
            }
            Some(Reader::Java) => java::read(path, content),
            Some(Reader::DotNet) if size > MAX_MANIFEST_BYTES => {
                cap(MAX_MANIFEST_BYTES, ".NET deps.json")
            }
            Some(Reader::DotNet) => dotnet::read(path, content),
            Some(Reader::Go) if size > MAX_BINARY_BYTES => Found::default(),
            Some(Reader::Go) => executable(path, content),
            None => Found::default(),
        }
    }
}

/// Reads one executable once for both what Go and cargo-auditable embed: the Go reader pulls
/// the bytes, and the cargo-auditable search sees each as it passes (and the rest of the file
/// when the Go reader stops early).
fn executable(path: &str, content: &mut dyn Read) -> Found {
    struct Tee<'a> {
        inner: &'a mut dyn Read,
        tap: auditable::Scanner,
    }
    impl Read for Tee<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.tap.feed(&buf[..n]);
            Ok(n)
        }
    }
    let mut tee = Tee {
        inner: content,
        tap: auditable::Scanner::default(),
    };
    let mut found = gobin::read(path, &mut tee);
    if tee.tap.wants_more() {
        if let Err(e) = std::io::copy(&mut tee, &mut std::io::sink()) {
            found.warnings.push(format!("{path}: unreadable: {e}"));
        }
    }
    let rust = auditable::found(path, tee.tap.finish());
    found.packages.extend(rust.packages);
    found.warnings.extend(rust.warnings);
    found
}

/// Reads at most `cap` bytes; `Err` with the bytes read when the content is longer.
pub(crate) fn read_capped(content: &mut dyn Read, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    content.take(cap + 1).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= cap).then_some(buf))
}

/// An application package: its own name and version are what advisories are keyed by.
pub(crate) fn package(
    kind: super::PackageKind,
    name: &str,
    version: &str,
    purl: String,
    location: &str,
    license: Option<String>,
) -> Package {
    Package {
        kind,
        name: name.to_string(),
        version: version.to_string(),
        source_name: name.to_string(),
        source_version: version.to_string(),
        arch: None,
        maintainer: None,
        license,
        location: location.to_string(),
        purl,
    }
}

/// A purl whose name may have `/`-separated segments (`pkg:golang/golang.org/x/sys@v0.1.0`,
/// `pkg:npm/%40babel/core@7.0.0`), each segment percent-encoded; qualifiers sorted, empty ones
/// dropped.
pub(crate) fn purl(ptype: &str, path: &str, version: &str, qualifiers: &[(&str, &str)]) -> String {
    use super::purl::encode;
    let segments: Vec<String> = path.split('/').map(encode).collect();
    let mut s = format!("pkg:{ptype}/{}", segments.join("/"));
    if !version.is_empty() {
        s.push('@');
        s.push_str(&encode(version));
    }
    let mut q: Vec<&(&str, &str)> = qualifiers.iter().filter(|(_, v)| !v.is_empty()).collect();
    q.sort();
    for (i, (k, v)) in q.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(&encode(v));
    }
    s
}
