//! PEP 440 version order (<https://peps.python.org/pep-0440/#summary-of-permitted-suffixes-and-relative-ordering>),
//! as PyPI advisories are written: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]` with the
//! spellings PEP 440 normalises (`alpha`, `c`, `pre`, `preview`, `-N` and `rev`/`r` for post,
//! separators `.`, `-`, `_` or none, a leading `v`, any case). The sort key is the one the
//! reference implementation (`packaging.version`) uses: epoch; release with trailing zeros
//! dropped; pre-release (a dev release of no pre- or post-release sorts before any
//! pre-release); post-release; dev release; local segments (numbers above strings). A string
//! that is not PEP 440 sorts below every valid version, and among such strings lexically.

use std::cmp::Ordering;

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pep440 {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<Local>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Local {
    Str(String),
    Num(u64),
}

fn take_num(s: &str) -> (Option<u64>, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        (None, s)
    } else {
        (s[..n].parse().ok(), &s[n..])
    }
}

fn skip_sep(s: &str) -> &str {
    s.strip_prefix(['.', '-', '_']).unwrap_or(s)
}

impl Pep440 {
    /// Parses a version; `None` when it is not PEP 440.
    pub fn parse(v: &str) -> Option<Pep440> {
        let lower = v.trim().to_ascii_lowercase();
        let mut s = lower.strip_prefix('v').unwrap_or(&lower);
        let (local_part, main) = match s.split_once('+') {
            Some((m, l)) => (Some(l.to_string()), m.to_string()),
            None => (None, s.to_string()),
        };
        s = &main;
        let mut epoch = 0;
        if let Some((e, rest)) = s.split_once('!') {
            epoch = e.parse().ok()?;
            s = rest;
        }
        let mut release = Vec::new();
        loop {
            let (n, rest) = take_num(s);
            release.push(n?);
            s = rest;
            match s.strip_prefix('.') {
                Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => s = r,
                _ => break,
            }
        }
        let mut pre = None;
        let t = skip_sep(s);
        for (words, rank) in [
            (&["alpha", "a"][..], 0u8),
            (&["beta", "b"][..], 1),
            (&["preview", "pre", "rc", "c"][..], 2),
        ] {
            if let Some(w) = words.iter().find(|w| t.starts_with(**w)) {
                let (n, rest) = take_num(skip_sep(&t[w.len()..]));
                let rest = if n.is_none() { &t[w.len()..] } else { rest };
                pre = Some((rank, n.unwrap_or(0)));
                s = rest;
                break;
            }
        }
        let mut post = None;
        if let Some(r) = s
            .strip_prefix('-')
            .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        {
            let (n, rest) = take_num(r);
            post = n;
            s = rest;
        } else {
            let t = skip_sep(s);
            if let Some(w) = ["post", "rev", "r"].iter().find(|w| t.starts_with(**w)) {
                let (n, rest) = take_num(skip_sep(&t[w.len()..]));
                post = Some(n.unwrap_or(0));
                s = if n.is_none() { &t[w.len()..] } else { rest };
            }
        }
        let mut dev = None;
        let t = skip_sep(s);
        if let Some(r) = t.strip_prefix("dev") {
            let (n, rest) = take_num(skip_sep(r));
            dev = Some(n.unwrap_or(0));
            s = if n.is_none() { r } else { rest };
        }
        if !s.is_empty() {
            return None;
        }
        let mut local = Vec::new();
        if let Some(l) = local_part {
            for seg in l.split(['.', '-', '_']) {
                if seg.is_empty() || !seg.bytes().all(|c| c.is_ascii_alphanumeric()) {
                    return None;
                }
                local.push(match seg.parse() {
                    Ok(n) => Local::Num(n),
                    Err(_) => Local::Str(seg.to_string()),
                });
            }
        }
        Some(Pep440 {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    fn key(&self) -> impl Ord + '_ {
        let mut release: &[u64] = &self.release;
        while let [rest @ .., 0] = release {
            release = rest;
        }
        // None sorts first in Option's order: encode -inf/+inf explicitly.
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (0u8, 0u8, 0u64),
            (None, _, _) => (2, 0, 0),
            (Some((r, n)), _, _) => (1, r, n),
        };
        let post = self.post.map_or((0u8, 0u64), |n| (1, n));
        let dev = self.dev.map_or((1u8, 0u64), |n| (0, n));
        (
            self.epoch,
            release.to_vec(),
            pre,
            post,
            dev,
            (!self.local.is_empty(), self.local.clone()),
        )
    }
}

/// Compares two versions in PEP 440 order.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (Pep440::parse(a), Pep440::parse(b)) {
        (Some(x), Some(y)) => x.key().cmp(&y.key()),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep_440_summary_order() {
        // The ordering example of PEP 440's "Summary of permitted suffixes".
        let chain = [
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ];
        for w in chain.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        assert_eq!(compare("1.0", "1.0.0"), Ordering::Equal);
        assert_eq!(compare("1.0-1", "1.0.post1"), Ordering::Equal);
        assert_eq!(compare("1.0.ALPHA1", "1.0a1"), Ordering::Equal);
        assert_eq!(compare("1!0.1", "2.0"), Ordering::Greater);
        assert!(Pep440::parse("1.0junk").is_none());
    }
}
