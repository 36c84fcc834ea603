//! Semantic versions and constraints as Masterminds/semver v3 reads them (sprig's
//! `semverCompare`, Helm's `kubeVersion` check and dependency version ranges).

use std::cmp::Ordering;
use std::fmt;

/// A version: `v1.2.3-pre+meta`, with missing parts zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
    /// Pre-release (after `-`), empty when none.
    pub pre: String,
    /// Build metadata (after `+`).
    pub meta: String,
    /// As written.
    pub original: String,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.meta.is_empty() {
            write!(f, "+{}", self.meta)?;
        }
        Ok(())
    }
}

impl Version {
    /// Parses a version leniently (a leading `v`, missing minor/patch).
    pub fn parse(s: &str) -> Option<Version> {
        let orig = s.trim();
        let t = orig.strip_prefix(['v', 'V']).unwrap_or(orig);
        let (t, meta) = match t.split_once('+') {
            Some((a, b)) => (a, b.to_string()),
            None => (t, String::new()),
        };
        let (core, pre) = match t.split_once('-') {
            Some((a, b)) => (a, b.to_string()),
            None => (t, String::new()),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        let mut n = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            n[i] = p.parse().ok()?;
        }
        if (!pre.is_empty() || t.ends_with('-'))
            && !pre
                .split('.')
                .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return None;
        }
        Some(Version {
            major: n[0],
            minor: n[1],
            patch: n[2],
            pre,
            meta,
            original: orig.to_string(),
        })
    }

    fn cmp_pre(a: &str, b: &str) -> Ordering {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            _ => {}
        }
        let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
        for (x, y) in pa.iter().zip(pb.iter()) {
            let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                (Ok(i), Ok(j)) => i.cmp(&j),
                (Ok(_), Err(_)) => Ordering::Less,
                (Err(_), Ok(_)) => Ordering::Greater,
                _ => x.cmp(y),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        pa.len().cmp(&pb.len())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(o.major, o.minor, o.patch))
            .then_with(|| Version::cmp_pre(&self.pre, &o.pre))
    }
}

/// Why a constraint could not be read.
#[derive(Debug, thiserror::Error)]
#[error("improper constraint: {0}")]
pub struct ConstraintError(pub String);

/// Whether `version` satisfies `constraint` (`>=1.19-0`, `^1.2`, `~1.2.3`, `1.2.x`, `a || b`,
/// `>=1, <2`).
pub fn matches(constraint: &str, version: &Version) -> Result<bool, ConstraintError> {
    let bad = || ConstraintError(constraint.to_string());
    for alt in constraint.split("||") {
        let alt = alt.trim();
        if alt.is_empty() {
            return Err(bad());
        }
        // Hyphen ranges `1.2 - 1.4`.
        let alt = if let Some((a, b)) = alt.split_once(" - ") {
            format!(">= {}, <= {}", a.trim(), b.trim())
        } else {
            alt.to_string()
        };
        let mut all = true;
        for term in split_terms(&alt) {
            if !term_matches(&term, version).ok_or_else(bad)? {
                all = false;
            }
        }
        if all {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Splits `>= 1.2, <3 !=2.1` into `>=1.2`, `<3`, `!=2.1`.
fn split_terms(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pending_op = String::new();
    for tok in s.split([',', ' ']).filter(|t| !t.is_empty()) {
        if tok.chars().all(|c| "<>=!~^".contains(c)) {
            pending_op.push_str(tok);
        } else {
            out.push(format!("{pending_op}{tok}"));
            pending_op.clear();
        }
    }
    out
}

fn term_matches(term: &str, v: &Version) -> Option<bool> {
    let op_len = term
        .find(|c: char| !"<>=!~^".contains(c))
        .unwrap_or(term.len());
    let (op, rest) = term.split_at(op_len);
    let rest = rest.trim().strip_prefix(['v', 'V']).unwrap_or(rest.trim());
    // Wildcards and missing parts.
    let core = rest.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let wild = |p: &str| matches!(p, "x" | "X" | "*");
    let nparts = parts.iter().take_while(|p| !wild(p)).count();
    let dirty = nparts < 3;
    let fill: Vec<&str> = (0..3)
        .map(|i| if i < nparts { parts[i] } else { "0" })
        .collect();
    let tail = &rest[core.len()..];
    let c = Version::parse(&format!("{}{}", fill.join("."), tail))?;
    let has_pre = !c.pre.is_empty();
    if !v.pre.is_empty() && !has_pre {
        return Some(false);
    }
    let upper = |n: usize| -> Version {
        let mut u = c.clone();
        u.pre.clear();
        match n {
            0 => {
                u.major += 1;
                u.minor = 0;
                u.patch = 0;
            }
            1 => {
                u.minor += 1;
                u.patch = 0;
            }
            _ => u.patch += 1,
        }
        u.pre = "0".into();
        u
    };
    let r = match op {
        "" | "=" | "==" => {
            if dirty {
                nparts == 0 || (*v >= c && *v < upper(nparts - 1))
            } else {
                *v == c
            }
        }
        "!=" => {
            if dirty {
                !(nparts == 0 || (*v >= c && *v < upper(nparts - 1)))
            } else {
                *v != c
            }
        }
        ">" => {
            if dirty && nparts > 0 {
                *v >= upper(nparts - 1)
            } else {
                *v > c
            }
        }
        "<" => *v < c,
        ">=" | "=>" => *v >= c,
        "<=" | "=<" => {
            if dirty && nparts > 0 {
                *v < upper(nparts - 1)
            } else {
                *v <= c
            }
        }
        "~" | "~>" => {
            let n = if nparts >= 2 { 1 } else { 0 };
            *v >= c && *v < upper(n)
        }
        "^" => {
            let n = if c.major > 0 || nparts < 2 {
                0
            } else if c.minor > 0 || nparts < 3 {
                1
            } else {
                2
            };
            *v >= c && *v < upper(n)
        }
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(c: &str, v: &str) -> bool {
        matches(c, &Version::parse(v).unwrap()).unwrap()
    }

    #[test]
    fn constraints_like_masterminds() {
        assert!(m(">=1.19-0", "v1.36.0"));
        assert!(m(">= 1.21.0-0", "1.21.0"));
        assert!(!m("<1.25.0-0", "v1.36.0"));
        assert!(m("^1.2.0", "1.9.0"));
        assert!(!m("^1.2.0", "2.0.0"));
        assert!(m("~1.2.3", "1.2.9"));
        assert!(!m("~1.2.3", "1.3.0"));
        assert!(m("1.2.x", "1.2.7"));
        assert!(m(">=1.0, <2.0 || >=3", "3.1.0"));
        assert!(!m(">=1.0 <2.0", "2.1.0"));
        assert!(!m(">=1.20", "1.21.0-rc.1"));
        assert!(m(">=1.20-0", "1.21.0-rc.1"));
        assert!(m("*", "4.5.6"));
    }
}
