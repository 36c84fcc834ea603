//! Semantic Versioning 2.0.0 precedence (<https://semver.org/#spec-item-11>), as npm, Go
//! modules (with their `v` prefix; pseudo-versions are pre-releases) and crates.io order
//! versions: numeric major.minor.patch, then a version with a pre-release before the same
//! version without, pre-release identifiers compared dot by dot (numeric ones numerically and
//! below alphanumeric ones, a shorter list first), build metadata (`+incompatible`) ignored.
//! Lenient where upstream data is: a missing minor or patch counts as 0, extra numeric parts
//! are compared too.

use std::cmp::Ordering;

struct Parsed<'a> {
    core: Vec<&'a str>,
    pre: Option<&'a str>,
}

fn parse(v: &str) -> Parsed<'_> {
    let v = v.trim();
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    let v = v.split('+').next().unwrap_or(v);
    // The pre-release starts at the first `-` after the numeric core.
    let (core, pre) = match v.find('-') {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    Parsed {
        core: core.split('.').collect(),
        pre,
    }
}

fn num_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn is_num(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

fn ident_cmp(a: &str, b: &str) -> Ordering {
    match (is_num(a), is_num(b)) {
        (true, true) => num_cmp(a, b),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

/// Compares two versions by semver precedence.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (pa, pb) = (parse(a), parse(b));
    let n = pa.core.len().max(pb.core.len()).max(3);
    for i in 0..n {
        let x = pa.core.get(i).copied().unwrap_or("0");
        let y = pb.core.get(i).copied().unwrap_or("0");
        let o = ident_cmp(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    match (pa.pre, pb.pre) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let (xs, ys): (Vec<&str>, Vec<&str>) = (x.split('.').collect(), y.split('.').collect());
            for (p, q) in xs.iter().zip(ys.iter()) {
                let o = ident_cmp(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            xs.len().cmp(&ys.len())
        }
    }
}

/// Whether `v` is a well-formed semantic version (a `v` prefix allowed).
pub fn is_valid(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (v, build) = match v.split_once('+') {
        Some((v, b)) => (v, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let ident_ok =
        |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    parts.len() == 3
        && parts
            .iter()
            .all(|p| is_num(p) && (p.len() == 1 || !p.starts_with('0')))
        && pre.is_none_or(|p| {
            p.split('.')
                .all(|i| ident_ok(i) && !(is_num(i) && i.len() > 1 && i.starts_with('0')))
        })
        && build.is_none_or(|b| b.split('.').all(ident_ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_order() {
        // semver.org item 11's example chain.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ];
        for w in chain.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        assert_eq!(compare("v1.2.3", "1.2.3+incompatible"), Ordering::Equal);
        assert_eq!(
            compare("v0.0.0-20230101000000-abcdef123456", "v0.0.1"),
            Ordering::Less
        );
        assert!(is_valid("v1.2.3-rc.1+b5") && !is_valid("1.2") && !is_valid("01.2.3"));
    }
}
