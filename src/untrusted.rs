//! Strings from outside on their way to a terminal. A bundle, a registry or a file can hold
//! escape sequences that erase an error line and print a fake "OK", bidirectional overrides
//! that reorder what people read, or a name of megabytes. Everything printed for people goes
//! through [`escape`]; names quoted in error messages go through [`shorten`] too.

use std::fmt::Write as _;

/// The most characters of an untrusted name an error message quotes.
pub const SHOWN_CHARS: usize = 120;

/// True for characters that move the cursor, change colours, or reorder or hide text: C0 and C1
/// controls, DEL, bidirectional embeddings, overrides and isolates, and zero-width characters.
fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}' | '\u{061C}')
}

/// The text with every dangerous character written as `\u{XXXX}` (tab kept). Newlines are
/// escaped too: one error is one line.
pub fn escape(s: &str) -> String {
    escape_except(s, &['\t'])
}

/// [`escape`] for text of several lines: newlines kept, every other dangerous character
/// escaped.
pub fn escape_lines(s: &str) -> String {
    escape_except(s, &['\t', '\n'])
}

fn escape_except(s: &str, keep: &[char]) -> String {
    let bad = |c: char| is_dangerous(c) && !keep.contains(&c);
    if !s.chars().any(bad) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// [`escape`], cut to [`SHOWN_CHARS`] characters with the original length said, for quoting a
/// name in an error.
pub fn shorten(s: &str) -> String {
    let count = s.chars().count();
    if count <= SHOWN_CHARS {
        return escape(s);
    }
    let head: String = s.chars().take(SHOWN_CHARS).collect();
    format!("{}… ({count} characters)", escape(&head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        let fake = "x\u{1b}[2K\r\u{1b}[32mOK\u{1b}[0m\n\u{9b}31m\u{202e}gnp.exe\u{7f}";
        let shown = escape(fake);
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() || c == '\u{202e}' || c == '\u{9b}'),
            "{shown}"
        );
        assert!(shown.contains("\\u{001b}[2K\\u{000d}"), "{shown}");
        assert_eq!(escape("plain text\twith tab"), "plain text\twith tab");
        assert_eq!(escape_lines("a\nb\u{1b}c"), "a\nb\\u{001b}c");
    }

    #[test]
    fn shortens_long_names_and_says_how_long() {
        let s = shorten(&"é".repeat(1000));
        assert!(s.ends_with("… (1000 characters)"), "{s}");
        assert_eq!(s.chars().filter(|&c| c == 'é').count(), SHOWN_CHARS);
        assert_eq!(shorten("short"), "short");
    }
}
