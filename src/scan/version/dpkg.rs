//! Debian version order, as `dpkg --compare-versions` implements it (`lib/dpkg/version.c`):
//! `[epoch:]upstream[-revision]`, compared epoch first (numerically), then upstream and
//! revision with dpkg's alternating non-digit / digit comparison where `~` sorts before
//! everything, even the end of the string.

use std::cmp::Ordering;

/// Why a string is not a valid Debian version (the checks of `Dpkg::Version::is_valid`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebVersionError {
    /// The version string is empty.
    #[error("empty Debian version")]
    Empty,
    /// The epoch (before the first `:`) is empty or not a number.
    #[error("Debian version `{0}` has an empty or non-numeric epoch")]
    BadEpoch(String),
    /// The upstream part is empty.
    #[error("Debian version `{0}` has an empty upstream version")]
    EmptyUpstream(String),
    /// The upstream part does not start with a digit.
    #[error("Debian version `{0}`: the upstream version does not start with a digit")]
    UpstreamNotDigit(String),
    /// The revision (after the last `-`) is empty.
    #[error("Debian version `{0}` has an empty revision")]
    EmptyRevision(String),
    /// A character outside `[A-Za-z0-9.+~:-]` (upstream) or `[A-Za-z0-9.+~]` (revision).
    #[error("Debian version `{0}` contains an invalid character")]
    BadChar(String),
}

/// A parsed Debian version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebVersion {
    /// The epoch, as written (digits); `None` when absent (which means 0).
    pub epoch: Option<String>,
    /// The upstream version.
    pub upstream: String,
    /// The Debian revision; `None` when absent.
    pub revision: Option<String>,
}

impl DebVersion {
    /// Parses and validates a version.
    pub fn parse(s: &str) -> Result<DebVersion, DebVersionError> {
        if s.is_empty() {
            return Err(DebVersionError::Empty);
        }
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) => {
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(DebVersionError::BadEpoch(s.to_string()));
                }
                (Some(e.to_string()), rest)
            }
            None => (None, s),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, Some(r)),
            None => (rest, None),
        };
        if upstream.is_empty() {
            return Err(DebVersionError::EmptyUpstream(s.to_string()));
        }
        if let Some(r) = revision {
            if r.is_empty() {
                return Err(DebVersionError::EmptyRevision(s.to_string()));
            }
            if !r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.~".contains(&b))
            {
                return Err(DebVersionError::BadChar(s.to_string()));
            }
        }
        if !upstream.as_bytes()[0].is_ascii_digit() {
            return Err(DebVersionError::UpstreamNotDigit(s.to_string()));
        }
        if !upstream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+.~:-".contains(&b))
        {
            return Err(DebVersionError::BadChar(s.to_string()));
        }
        Ok(DebVersion {
            epoch,
            upstream: upstream.to_string(),
            revision: revision.map(str::to_string),
        })
    }
}

/// Splits without validating: `(epoch, upstream, revision)`, the way dpkg does before comparing.
fn split(s: &str) -> (&str, &str, &str) {
    let (epoch, rest) = match s.split_once(':') {
        Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => (e, rest),
        _ => ("0", s),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

/// Compares two digit strings numerically without overflow.
fn cmp_numeric(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Compares two Debian versions (never fails; malformed input is compared the way dpkg does).
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    cmp_numeric(ea, eb)
        .then_with(|| compare_part(ua, ub))
        .then_with(|| compare_part(ra, rb))
}

/// The weight of one character in dpkg's non-digit comparison: `~` first, then the end of the
/// string (and digits), then letters, then everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// Compares one upstream or revision part (dpkg's `verrevcmp`).
pub fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(|c| c.is_ascii_digit());
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// Compares two non-digit fragments character by character in dpkg's lexical order (`~`
/// before the end of the string, before letters, before other characters).
pub fn compare_string(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for k in 0..a.len().max(b.len()) {
        let (x, y) = (order(a.get(k).copied()), order(b.get(k).copied()));
        if x != y {
            return x.cmp(&y);
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_order() {
        assert_eq!(compare("1.0~rc1-1", "1.0-1"), Ordering::Less);
        assert_eq!(compare("1:0.1", "2.0"), Ordering::Greater);
        assert_eq!(compare("2.38.1-5+b1", "2.38.1-5"), Ordering::Greater);
        assert_eq!(compare("1.0", "1.0-0"), Ordering::Equal);
    }
}
