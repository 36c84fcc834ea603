//! A small, strict PEM reader and writer shared by the key formats in this module.
//!
//! Why not `pem-rfc7468`: Go's `encoding/pem` (which wrote every cosign key in the field) is more
//! lenient than RFC 7468's strict profile about line lengths, so a strict parser would refuse keys
//! cosign reads. This one accepts any line wrapping and surrounding whitespace, but still refuses
//! PEM headers, text between blocks and anything after the single block, and it caps the input
//! size before decoding.

use base64::Engine as _;

/// The largest PEM text we read. An RSA-4096 cosign key is about 5 KiB; anything near this is not
/// a key.
pub(crate) const MAX_PEM_BYTES: usize = 64 * 1024;

/// Why a PEM text could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemError {
    /// The text is larger than the cap (64 KiB): refused before any decoding.
    #[error("PEM text is {len} bytes, more than the {max} bytes a key file may have")]
    TooLarge {
        /// Size of the input.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// No `-----BEGIN …-----` line.
    #[error("not a PEM file: no `-----BEGIN …-----` line")]
    NoBegin,
    /// Something other than whitespace precedes the BEGIN line or follows the END line.
    #[error("unexpected text outside the PEM block")]
    TextOutsideBlock,
    /// The BEGIN line has no matching END line.
    #[error("PEM block `{label}` has no matching `-----END {label}-----` line")]
    NoEnd {
        /// Label of the BEGIN line.
        label: String,
    },
    /// The PEM block carries `Key: value` headers, which none of our formats use.
    #[error("PEM block `{label}` has headers; none are expected")]
    Headers {
        /// Label of the block.
        label: String,
    },
    /// The body is not valid base64.
    #[error("PEM block `{label}` is not valid base64")]
    Base64 {
        /// Label of the block.
        label: String,
    },
    /// The block's label is not one the caller accepts.
    #[error("unexpected PEM label `{label}`, expected one of: {expected}")]
    UnexpectedLabel {
        /// Label found.
        label: String,
        /// The labels accepted, comma separated.
        expected: String,
    },
}

/// One decoded PEM block.
pub(crate) struct Block {
    /// The label between `BEGIN ` and the closing dashes.
    pub(crate) label: String,
    /// The decoded body.
    pub(crate) der: Vec<u8>,
}

/// Decodes exactly one PEM block and checks that its label is one of `accepted`.
pub(crate) fn decode(text: &str, accepted: &[&str]) -> Result<Block, PemError> {
    if text.len() > MAX_PEM_BYTES {
        return Err(PemError::TooLarge {
            len: text.len(),
            max: MAX_PEM_BYTES,
        });
    }
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let label = loop {
        match lines.next() {
            None => return Err(PemError::NoBegin),
            Some(line) if line.trim().is_empty() => continue,
            Some(line) => {
                let line = line.trim();
                match line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|rest| rest.strip_suffix("-----"))
                {
                    Some(label) => break label.to_owned(),
                    None if line.starts_with("-----BEGIN") => return Err(PemError::NoBegin),
                    None => return Err(PemError::TextOutsideBlock),
                }
            }
        }
    };
    let end_line = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for line in lines.by_ref() {
        let line = line.trim();
        if line == end_line {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err(PemError::Headers { label });
        }
        if line.starts_with("-----") {
            return Err(PemError::NoEnd { label });
        }
        body.push_str(line);
    }
    if !ended {
        return Err(PemError::NoEnd { label });
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(PemError::TextOutsideBlock);
    }
    if !accepted.contains(&label.as_str()) {
        return Err(PemError::UnexpectedLabel {
            label,
            expected: accepted.join(", "),
        });
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|_| PemError::Base64 {
            label: label.clone(),
        })?;
    Ok(Block { label, der })
}

/// Encodes `der` as a PEM block with 64-column lines and a trailing newline, as Go's
/// `encoding/pem` writes it.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk boundary is a char boundary.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_round_trip_any_length() {
        for len in [0usize, 1, 47, 48, 49, 200] {
            let der: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let pem = encode("TEST", &der);
            let block = decode(&pem, &["TEST"]).expect("round trip");
            assert_eq!(block.der, der);
            assert_eq!(block.label, "TEST");
        }
    }

    #[test]
    fn accepts_crlf_and_odd_wrapping() {
        let pem = "\r\n-----BEGIN TEST-----\r\nAAEC\r\nAw==\r\n-----END TEST-----\r\n\r\n";
        assert_eq!(
            decode(pem, &["TEST"]).expect("decodes").der,
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn rejects_malformed_blocks() {
        let cases: &[(&str, PemError)] = &[
            ("", PemError::NoBegin),
            ("hello", PemError::TextOutsideBlock),
            (
                "-----BEGIN TEST-----\nAAEC\n",
                PemError::NoEnd {
                    label: "TEST".into(),
                },
            ),
            (
                "-----BEGIN TEST-----\nAAEC\n-----END OTHER-----\n",
                PemError::NoEnd {
                    label: "TEST".into(),
                },
            ),
            (
                "-----BEGIN TEST-----\nProc-Type: 4,ENCRYPTED\nAAEC\n-----END TEST-----\n",
                PemError::Headers {
                    label: "TEST".into(),
                },
            ),
            (
                "-----BEGIN TEST-----\nAA*C\n-----END TEST-----\n",
                PemError::Base64 {
                    label: "TEST".into(),
                },
            ),
            (
                "-----BEGIN TEST-----\nAAEC\n-----END TEST-----\ntrailing",
                PemError::TextOutsideBlock,
            ),
            (
                "-----BEGIN OTHER-----\nAAEC\n-----END OTHER-----\n",
                PemError::UnexpectedLabel {
                    label: "OTHER".into(),
                    expected: "TEST".into(),
                },
            ),
        ];
        for (text, want) in cases {
            match decode(text, &["TEST"]) {
                Err(got) => assert_eq!(&got, want, "input {text:?}"),
                Ok(_) => panic!("accepted {text:?}"),
            }
        }
    }

    #[test]
    fn refuses_oversized_input() {
        let text = "A".repeat(MAX_PEM_BYTES + 1);
        assert!(matches!(
            decode(&text, &["TEST"]),
            Err(PemError::TooLarge { .. })
        ));
    }
}
