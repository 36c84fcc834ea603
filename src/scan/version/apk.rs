//! Alpine version order, ported from apk-tools (`src/version.c`, apk v3 rules):
//! `digit{.digit}...{letter}{_suffix{number}}...{~hash}{-rN}`. Pre-release suffixes
//! (`_alpha`, `_beta`, `_pre`, `_rc`) sort before the bare version, post-release ones
//! (`_cvs`, `_svn`, `_git`, `_hg`, `_p`) after it. A dot-separated number with a leading zero is
//! compared as a string, as apk does.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffix ranks: pre-release ones below `NONE`, post-release ones above.
const SUFFIXES: &[(&str, u8)] = &[
    ("alpha", 1),
    ("beta", 2),
    ("pre", 3),
    ("rc", 4),
    ("cvs", 6),
    ("svn", 7),
    ("git", 8),
    ("hg", 9),
    ("p", 10),
];
const SUFFIX_NONE: u8 = 5;

struct State<'a> {
    token: Token,
    value: &'a [u8],
    suffix: u8,
    rest: &'a [u8],
}

fn take_while(s: &[u8], f: impl Fn(u8) -> bool) -> usize {
    s.iter().take_while(|&&c| f(c)).count()
}

impl<'a> State<'a> {
    fn first(s: &'a [u8]) -> State<'a> {
        let n = take_while(s, |c| c.is_ascii_digit());
        State {
            token: if n > 0 {
                Token::InitialDigit
            } else {
                Token::Invalid
            },
            value: &s[..n],
            suffix: 0,
            rest: &s[n..],
        }
    }

    fn invalid(&mut self) {
        self.token = Token::Invalid;
    }

    fn next(&mut self) {
        let Some(&c) = self.rest.first() else {
            self.token = Token::End;
            return;
        };
        if c.is_ascii_lowercase() {
            if self.token > Token::Digit {
                return self.invalid();
            }
            self.value = &self.rest[..1];
            self.rest = &self.rest[1..];
            self.token = Token::Letter;
            return;
        }
        if c.is_ascii_digit() && self.token == Token::Suffix {
            let n = take_while(self.rest, |c| c.is_ascii_digit());
            self.value = &self.rest[..n];
            self.rest = &self.rest[n..];
            self.token = Token::SuffixNo;
            return;
        }
        match c {
            b'.' => {
                if self.token > Token::Digit {
                    return self.invalid();
                }
                let s = &self.rest[1..];
                let n = take_while(s, |c| c.is_ascii_digit());
                if n == 0 {
                    return self.invalid();
                }
                self.value = &s[..n];
                self.rest = &s[n..];
                self.token = Token::Digit;
            }
            b'_' => {
                if self.token > Token::SuffixNo {
                    return self.invalid();
                }
                let s = &self.rest[1..];
                let n = take_while(s, |c| c.is_ascii_lowercase());
                let name = &s[..n];
                let Some(&(_, rank)) = SUFFIXES.iter().find(|(w, _)| w.as_bytes() == name) else {
                    return self.invalid();
                };
                self.suffix = rank;
                self.value = name;
                self.rest = &s[n..];
                self.token = Token::Suffix;
            }
            b'~' => {
                if self.token >= Token::CommitHash {
                    return self.invalid();
                }
                let s = &self.rest[1..];
                let n = take_while(s, |c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
                if n == 0 {
                    return self.invalid();
                }
                self.value = &s[..n];
                self.rest = &s[n..];
                self.token = Token::CommitHash;
            }
            b'-' => {
                if self.token >= Token::RevisionNo || self.rest.get(1) != Some(&b'r') {
                    return self.invalid();
                }
                let s = &self.rest[2..];
                let n = take_while(s, |c| c.is_ascii_digit());
                if n == 0 {
                    return self.invalid();
                }
                self.value = &s[..n];
                self.rest = &s[n..];
                self.token = Token::RevisionNo;
            }
            _ => self.invalid(),
        }
    }
}

fn cmp_numeric(a: &[u8], b: &[u8]) -> Ordering {
    let trim = |s: &[u8]| -> usize { take_while(s, |c| c == b'0') };
    let (a, b) = (&a[trim(a)..], &b[trim(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn token_cmp(a: &State<'_>, b: &State<'_>) -> Ordering {
    match a.token {
        Token::Digit if a.value.first() == Some(&b'0') || b.value.first() == Some(&b'0') => {
            a.value.cmp(b.value)
        }
        Token::Digit | Token::InitialDigit | Token::SuffixNo | Token::RevisionNo => {
            cmp_numeric(a.value, b.value)
        }
        Token::Letter | Token::CommitHash => a.value.cmp(b.value),
        Token::Suffix => a.suffix.cmp(&b.suffix),
        Token::End | Token::Invalid => Ordering::Equal,
    }
}

/// The comparison result; with `fuzzy`, `a` equals `b` when `b` is a prefix of `a` by tokens.
fn compare_fuzzy(a: &str, b: &str, fuzzy: bool) -> Ordering {
    let mut ta = State::first(a.as_bytes());
    let mut tb = State::first(b.as_bytes());
    while ta.token == tb.token && ta.token < Token::End {
        let r = token_cmp(&ta, &tb);
        if r != Ordering::Equal {
            return r;
        }
        ta.next();
        tb.next();
    }
    if ta.token == tb.token || (fuzzy && tb.token == Token::End) {
        return Ordering::Equal;
    }
    if ta.token == Token::Suffix && ta.suffix < SUFFIX_NONE {
        return Ordering::Less;
    }
    if tb.token == Token::Suffix && tb.suffix < SUFFIX_NONE {
        return Ordering::Greater;
    }
    tb.token.cmp(&ta.token)
}

/// Compares two Alpine versions (never fails; invalid versions are ordered as apk orders them).
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_fuzzy(a, b, false)
}

/// True when `v` is a valid Alpine version (`apk_version_validate`).
pub fn validate(v: &str) -> bool {
    let mut t = State::first(v.as_bytes());
    while t.token != Token::End && t.token != Token::Invalid {
        t.next();
    }
    t.token == Token::End
}

/// `apk_version_match`: whether `a OP b` holds, where `op` combines `<`, `>`, `=` and `~`
/// (fuzzy: `b` is a prefix of `a`). An unknown operator character never matches.
pub fn matches(a: &str, op: &str, b: &str) -> bool {
    let (mut less, mut equal, mut greater, mut fuzzy) = (false, false, false, false);
    for c in op.chars() {
        match c {
            '<' => less = true,
            '>' => greater = true,
            '=' => equal = true,
            '~' => {
                fuzzy = true;
                equal = true
            }
            _ => return false,
        }
    }
    match compare_fuzzy(a, b, fuzzy) {
        Ordering::Less => less,
        Ordering::Equal => equal,
        Ordering::Greater => greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_order() {
        assert_eq!(compare("1.2.4-r0", "1.2.4-r3"), Ordering::Less);
        assert_eq!(compare("1.2.4_rc1", "1.2.4"), Ordering::Less);
        assert_eq!(compare("1.2.4_p1", "1.2.4"), Ordering::Greater);
        assert!(validate("0.1_pre2~1234abcd"));
        assert!(!validate("0.1a1"));
    }
}
