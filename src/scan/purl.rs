//! Package URLs (<https://github.com/package-url/purl-spec>) for OS packages:
//! `pkg:deb/debian/libc6@2.36-9%2Bdeb12u1?arch=amd64&distro=debian-12&upstream=glibc` and
//! `pkg:apk/alpine/musl@1.2.4-r0?arch=x86_64&distro=alpine-3.18.0`. Qualifiers are sorted by
//! key and every value is percent-encoded except the unreserved characters.

use std::fmt::Write as _;

/// Percent-encodes everything but `A-Z a-z 0-9 . - _ ~`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"._-~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes `%XX` escapes (invalid escapes are kept as written).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Bytes, never string slices: a `%` before a multi-byte character is just a `%`.
        if let [b'%', hi, lo, ..] = b[i..] {
            if let (Some(hi), Some(lo)) = (hex_value(hi), hex_value(lo)) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of one ASCII hex digit.
fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Builds a purl from its parts; qualifiers with empty values are dropped.
pub fn build(
    ptype: &str,
    namespace: &str,
    name: &str,
    version: &str,
    qualifiers: &[(&str, &str)],
) -> String {
    let mut s = format!("pkg:{ptype}/{}/{}", encode(namespace), encode(name));
    if !version.is_empty() {
        s.push('@');
        s.push_str(&encode(version));
    }
    let mut q: Vec<(&str, &str)> = qualifiers
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    q.sort();
    for (i, (k, v)) in q.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(&encode(v));
    }
    s
}

/// The comparable core of a purl: `pkg:type/namespace/name` and the decoded version, with
/// qualifiers and subpath dropped. `None` when it is not a purl.
pub fn core(purl: &str) -> Option<(String, Option<String>)> {
    let rest = purl.strip_prefix("pkg:")?;
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (path, version) = match rest.rsplit_once('@') {
        Some((p, v)) if !p.is_empty() => (p, Some(decode(v))),
        _ => (rest, None),
    };
    let path: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| decode(s).to_ascii_lowercase())
        .collect();
    Some((format!("pkg:{}", path.join("/")), version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_compares() {
        let p = build(
            "deb",
            "debian",
            "libattr1",
            "1:2.5.1-4",
            &[("distro", "debian-12"), ("arch", "arm64")],
        );
        assert_eq!(
            p,
            "pkg:deb/debian/libattr1@1%3A2.5.1-4?arch=arm64&distro=debian-12"
        );
        assert_eq!(
            core(&p),
            Some((
                "pkg:deb/debian/libattr1".to_string(),
                Some("1:2.5.1-4".to_string())
            ))
        );
        assert_eq!(decode("a%2Bb%"), "a+b%");
        assert_eq!(decode("a%2b%4"), "a+%4");
    }

    #[test]
    fn never_slices_inside_a_character() {
        // Issue 10 class 8: `%` followed by a multi-byte character panicked.
        assert_eq!(decode("1%aé"), "1%aé");
        assert_eq!(decode("%é"), "%é");
        assert_eq!(
            core("pkg:x/y@1%aé"),
            Some(("pkg:x/y".to_string(), Some("1%aé".to_string())))
        );
    }
}
