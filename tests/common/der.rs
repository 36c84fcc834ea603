//! Just enough DER to write an RFC 3161 time-stamp token by hand (the test TSA in
//! [`super::cosign3::FakeSigstore`]) and to read the issuer and serial number out of a
//! certificate for the CMS signer identifier.

/// One TLV: `tag`, definite length, `content`.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// SEQUENCE of the concatenated parts.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// SET OF the parts, sorted by their encoding as DER requires.
pub fn set(parts: &[&[u8]]) -> Vec<u8> {
    let mut sorted = parts.to_vec();
    sorted.sort();
    tlv(0x31, &sorted.concat())
}

/// An OBJECT IDENTIFIER from its arcs.
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        groups.reverse();
        body.extend(groups);
    }
    tlv(0x06, &body)
}

/// A non-negative INTEGER.
pub fn int(n: u64) -> Vec<u8> {
    let mut bytes: Vec<u8> = n
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    if bytes.first().is_none_or(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    tlv(0x02, &bytes)
}

/// OCTET STRING.
pub fn octets(bytes: &[u8]) -> Vec<u8> {
    tlv(0x04, bytes)
}

/// GeneralizedTime for Unix seconds `t` (UTC, `YYYYMMDDHHMMSSZ`).
pub fn generalized_time(t: i64) -> Vec<u8> {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let text = format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    tlv(0x18, text.as_bytes())
}

/// Splits the TLV at the start of `der`: (the whole TLV, its content, the rest).
fn split(der: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let (header, len) = match der[1] {
        n if n < 0x80 => (2, n as usize),
        n => {
            let k = (n & 0x7f) as usize;
            let len = der[2..2 + k]
                .iter()
                .fold(0usize, |acc, b| acc << 8 | *b as usize);
            (2 + k, len)
        }
    };
    (
        &der[..header + len],
        &der[header..header + len],
        &der[header + len..],
    )
}

/// The issuer Name and serialNumber INTEGER of a certificate, as DER TLVs.
pub fn issuer_and_serial(cert: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, cert, _) = split(cert);
    let (_, tbs, _) = split(cert);
    let mut rest = tbs;
    if rest[0] == 0xa0 {
        rest = split(rest).2;
    }
    let (serial, _, rest) = split(rest);
    let (_, _, rest) = split(rest); // signature algorithm
    let (issuer, _, _) = split(rest);
    (issuer.to_vec(), serial.to_vec())
}
