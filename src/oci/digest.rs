//! Content digests (`sha256:<hex>`), kept as the exact validated string.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A validated content digest. Only `sha256` is accepted: it is what every registry and
/// signature format airlock meets uses, and refusing others keeps comparisons exact.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("`{0}` is not a digest (expected sha256:<64 lowercase hex>)")]
    Malformed(String),
    /// An algorithm other than sha256.
    #[error("`{0}` uses an unsupported digest algorithm (only sha256 is supported)")]
    UnsupportedAlgorithm(String),
    /// Wrong length or not lowercase hex.
    #[error("`{0}` has an invalid sha256 hex part (expected 64 lowercase hex characters)")]
    BadHex(String),
}

impl Digest {
    /// The digest of a byte string.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut h = Hasher::new();
        h.update(bytes);
        h.finish()
    }

    /// Builds a digest from a finished SHA-256 state.
    pub fn from_sha256(raw: [u8; 32]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(raw)))
    }

    /// Builds `sha256:<hex>` from a bare hex string, validating it.
    pub fn from_hex(hex_part: &str) -> Result<Digest, DigestError> {
        format!("sha256:{hex_part}").parse()
    }

    /// The hex part, as used in blob paths (`blobs/sha256/<hex>`).
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The full string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short form for tables: `sha256:0123456789ab`.
    pub fn short(&self) -> &str {
        &self.0[..("sha256:".len() + 12)]
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((alg, hex_part)) = s.split_once(':') else {
            return Err(DigestError::Malformed(crate::untrusted::shorten(s)));
        };
        if alg != "sha256" {
            if alg.is_empty()
                || !alg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
            {
                return Err(DigestError::Malformed(crate::untrusted::shorten(s)));
            }
            return Err(DigestError::UnsupportedAlgorithm(
                crate::untrusted::shorten(s),
            ));
        }
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::BadHex(crate::untrusted::shorten(s)));
        }
        Ok(Digest(s.to_string()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Hashes everything written through it and counts the bytes: the one way airlock copies
/// content, so that no byte moves without being hashed.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Hasher,
    written: u64,
}

impl<W> DigestWriter<W> {
    /// Wraps a writer.
    pub fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            hasher: Hasher::new(),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Finishes hashing and returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.written)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes fed to every [`Hasher`] of this process.
static BYTES_HASHED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many bytes went through a [`Hasher`] in this process so far: what tests and
/// benchmarks use to check that a path hashes each byte once.
pub fn bytes_hashed() -> u64 {
    BYTES_HASHED.load(std::sync::atomic::Ordering::Relaxed)
}

/// An incremental SHA-256 for async paths where a `Write` does not fit.
#[derive(Default, Clone)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
        BYTES_HASHED.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest::from_sha256(self.inner.finalize().into())
    }
}

/// The error of a blob stream that ended after `got` of its `size` bytes.
pub(crate) fn short_blob(digest: &Digest, got: u64, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("blob {digest} ends after {got} of {size} bytes"),
    )
}

/// A reader that hashes what passes and, at its end, fails unless exactly `size` bytes
/// hashing to `digest` went past (and fails as soon as more arrive). Every blob airlock
/// streams from a bundle, a cache or a spool goes through it, so a consumer that reads to the
/// end has used only verified bytes.
pub struct CheckedReader<'a, R> {
    inner: R,
    /// None for bytes this run already checked (see [`CheckedReader::already_checked`]).
    hasher: Option<Hasher>,
    /// Bytes read so far.
    read: u64,
    digest: Digest,
    size: u64,
    mismatch: Option<Digest>,
    progress: &'a dyn crate::progress::Reporter,
}

impl<R: io::Read> CheckedReader<'static, R> {
    /// Wraps `inner`, expected to yield `size` bytes with `digest`.
    pub fn new(inner: R, digest: Digest, size: u64) -> Self {
        CheckedReader {
            inner,
            hasher: Some(Hasher::new()),
            read: 0,
            digest,
            size,
            mismatch: None,
            progress: &crate::progress::NoProgress,
        }
    }

    /// Wraps bytes this run has already checked against `digest` (a file it wrote through a
    /// digest check moments ago): only their length is checked, so no byte is hashed twice.
    pub fn already_checked(inner: R, digest: Digest, size: u64) -> Self {
        CheckedReader {
            hasher: None,
            ..CheckedReader::new(inner, digest, size)
        }
    }
}

impl<'a, R: io::Read> CheckedReader<'a, R> {
    /// Reports every byte read to `progress`.
    pub fn with_progress<'b>(
        self,
        progress: &'b dyn crate::progress::Reporter,
    ) -> CheckedReader<'b, R> {
        CheckedReader {
            inner: self.inner,
            hasher: self.hasher,
            read: self.read,
            digest: self.digest,
            size: self.size,
            mismatch: self.mismatch,
            progress,
        }
    }

    /// The digest the bytes actually had, once the end showed they did not match.
    pub fn take_mismatch(&mut self) -> Option<Digest> {
        self.mismatch.take()
    }
}

impl<R: io::Read> io::Read for CheckedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if self.read != self.size {
                return Err(short_blob(&self.digest, self.read, self.size));
            }
            let actual = self.hasher.clone().map(Hasher::finish);
            if let Some(actual) = actual.filter(|a| *a != self.digest) {
                self.mismatch = Some(actual.clone());
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("digest mismatch: expected {}, got {actual}", self.digest),
                ));
            }
            return Ok(0);
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.read += n as u64;
        if self.read > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {} is longer than its {} bytes",
                    self.digest, self.size
                ),
            ));
        }
        self.progress.advance(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_valid_sha256() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .expect("valid");
        assert_eq!(d, Digest::of(b""));
        assert_eq!(d.hex().len(), 64);
    }

    #[test]
    fn rejects_bad_digests_naming_the_input() {
        let cases = [
            ("", DigestError::Malformed(String::new())),
            ("sha256", DigestError::Malformed("sha256".into())),
            ("sha256:abc", DigestError::BadHex("sha256:abc".into())),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                DigestError::BadHex(
                    "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
                        .into(),
                ),
            ),
            (
                "sha512:00",
                DigestError::UnsupportedAlgorithm("sha512:00".into()),
            ),
            (":00", DigestError::Malformed(":00".into())),
            ("SHA256:00", DigestError::Malformed("SHA256:00".into())),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<Digest>().unwrap_err(), want, "{input}");
        }
        let long = format!("sha256:{}0", "a".repeat(64));
        assert!(matches!(
            long.parse::<Digest>(),
            Err(DigestError::BadHex(_))
        ));
    }

    #[test]
    fn writer_hashes_what_it_copies() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"hello").expect("write");
        let (buf, d, n) = w.finish();
        assert_eq!(buf, b"hello");
        assert_eq!(n, 5);
        assert_eq!(d, Digest::of(b"hello"));
    }

    /// Both readers fail on a short or long blob; only the checking one fails on wrong bytes
    /// (the other is for bytes checked already, and must not hash them again).
    #[test]
    fn checked_reader_checks_length_and_digest_and_already_checked_only_length() {
        use std::io::Read;
        let d = Digest::of(b"hello");
        let read = |r: &mut dyn Read| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map(|_| v).map_err(|e| e.to_string())
        };
        for (bytes, size) in [(&b"hell"[..], 5), (&b"hello!"[..], 5)] {
            let e = read(&mut CheckedReader::new(bytes, d.clone(), size)).unwrap_err();
            assert!(e.contains(d.as_str()), "{e}");
            let e = read(&mut CheckedReader::already_checked(bytes, d.clone(), size)).unwrap_err();
            assert!(e.contains(d.as_str()), "{e}");
        }
        let mut wrong = CheckedReader::new(&b"jello"[..], d.clone(), 5);
        let e = read(&mut wrong).unwrap_err();
        assert!(e.contains("digest mismatch"), "{e}");
        assert_eq!(wrong.take_mismatch(), Some(Digest::of(b"jello")));
        assert_eq!(
            read(&mut CheckedReader::already_checked(
                &b"jello"[..],
                d.clone(),
                5
            )),
            Ok(b"jello".to_vec())
        );
        assert_eq!(
            read(&mut CheckedReader::new(&b"hello"[..], d, 5)),
            Ok(b"hello".to_vec())
        );
    }
}
