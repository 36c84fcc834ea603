//! The rpm package database, in its three formats: the sqlite file of RHEL/UBI 9, Fedora 33+
//! and CentOS Stream (`rpmdb.sqlite`, whose `Packages` table holds one header blob per
//! package), the Berkeley DB hash file of RHEL/CentOS 5–8 (`Packages`, [`super::bdb`]) and the
//! ndb file of SUSE (`Packages.db`, [`super::ndb`]). All three store the same thing: one rpm
//! header per installed package. The header format (rpm's `lib/header.c`): big-endian index
//! count and data length, 16-byte index entries (tag, type, offset, count), then the data.

use super::bdb::{self, HashDb};
use super::ndb;
use super::sqlite::{self, Db, Value};

/// How an rpm database file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFormat {
    /// `rpmdb.sqlite`.
    Sqlite,
    /// `Packages.db`.
    Ndb,
    /// `Packages` (Berkeley DB hash).
    Bdb,
}

/// The rpm databases, in the order they are looked for; the first found is read. Newer
/// formats first: an image converted by `rpmdb --rebuilddb` may keep its old file beside the
/// new one, and rpm reads only the configured (newest) backend.
pub const DB_FILES: &[(&str, DbFormat)] = &[
    ("var/lib/rpm/rpmdb.sqlite", DbFormat::Sqlite),
    ("usr/lib/sysimage/rpm/rpmdb.sqlite", DbFormat::Sqlite),
    ("var/lib/rpm/Packages.db", DbFormat::Ndb),
    ("usr/lib/sysimage/rpm/Packages.db", DbFormat::Ndb),
    ("var/lib/rpm/Packages", DbFormat::Bdb),
    ("usr/lib/sysimage/rpm/Packages", DbFormat::Bdb),
];

/// Whether `path` is one of [`DB_FILES`].
pub fn is_db_file(path: &str) -> bool {
    DB_FILES.iter().any(|(f, _)| *f == path)
}

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_VENDOR: u32 = 1011;
const TAG_LICENSE: u32 = 1014;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

/// One installed rpm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmPackage {
    /// `NAME`.
    pub name: String,
    /// `VERSION`.
    pub version: String,
    /// `RELEASE`.
    pub release: String,
    /// `EPOCH`, when set.
    pub epoch: Option<u32>,
    /// `ARCH` (none for `gpg-pubkey`).
    pub arch: Option<String>,
    /// `SOURCERPM` (`bash-5.1.8-6.el9.src.rpm`).
    pub source_rpm: Option<String>,
    /// `LICENSE`.
    pub license: Option<String>,
    /// `VENDOR`.
    pub vendor: Option<String>,
}

impl RpmPackage {
    /// `[EPOCH:]VERSION-RELEASE`, the form rpm compares and advisories use.
    pub fn evr(&self) -> String {
        match self.epoch {
            Some(e) => format!("{e}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }

    /// The source package's name and `[EPOCH:]VERSION-RELEASE` (`bash`, `5.1.8-6.el9`), from
    /// `SOURCERPM`; the binary's own when it has none.
    pub fn source(&self) -> (String, String) {
        let parsed = self.source_rpm.as_deref().and_then(|s| {
            let s = s.strip_suffix(".rpm")?;
            let s = s.rsplit_once('.').map(|(s, _arch)| s)?;
            let (nv, release) = s.rsplit_once('-')?;
            let (name, version) = nv.rsplit_once('-')?;
            Some((name.to_string(), version.to_string(), release.to_string()))
        });
        match parsed {
            Some((n, v, r)) => {
                let evr = match self.epoch {
                    Some(e) => format!("{e}:{v}-{r}"),
                    None => format!("{v}-{r}"),
                };
                (n, evr)
            }
            None => (self.name.clone(), self.evr()),
        }
    }
}

/// Why the rpm database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    /// The sqlite file is unreadable.
    #[error("{file}: {source}")]
    Sqlite {
        /// The database file in the image.
        file: String,
        /// What is wrong.
        source: sqlite::SqliteError,
    },
    /// The Berkeley DB file is unreadable.
    #[error("{file}: {source}")]
    Bdb {
        /// The database file in the image.
        file: String,
        /// What is wrong.
        source: bdb::BdbError,
    },
    /// The ndb file is unreadable.
    #[error("{file}: {source}")]
    Ndb {
        /// The database file in the image.
        file: String,
        /// What is wrong.
        source: ndb::NdbError,
    },
    /// A header blob is malformed.
    #[error("{file}: package row {row}: malformed rpm header: {what}")]
    Header {
        /// The database file.
        file: String,
        /// The row (1-based).
        row: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// A header blob of a Berkeley DB or ndb file is malformed.
    #[error("{file}: package header at offset {offset}: malformed rpm header: {what}")]
    HeaderAt {
        /// The database file.
        file: String,
        /// Where the blob (or the item naming it) starts.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
}

/// Parses one header blob (without the 8-byte magic that rpm files have, as the database
/// stores it).
pub fn parse_header(blob: &[u8]) -> Result<RpmPackage, &'static str> {
    let u32_at = |o: usize| -> Option<u32> {
        blob.get(o..o + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let il = u32_at(0).ok_or("shorter than its counts")? as usize;
    let dl = u32_at(4).ok_or("shorter than its counts")? as usize;
    let data_start = il
        .checked_mul(16)
        .and_then(|n| n.checked_add(8))
        .ok_or("index count overflows")?;
    let data_end = data_start.checked_add(dl).ok_or("data length overflows")?;
    if data_end > blob.len() {
        return Err("index and data longer than the blob");
    }
    let data = &blob[data_start..data_end];
    let mut p = RpmPackage {
        name: String::new(),
        version: String::new(),
        release: String::new(),
        epoch: None,
        arch: None,
        source_rpm: None,
        license: None,
        vendor: None,
    };
    for i in 0..il {
        let e = 8 + i * 16;
        let (Some(tag), Some(ty), Some(off)) = (u32_at(e), u32_at(e + 4), u32_at(e + 8)) else {
            return Err("index entry past the blob");
        };
        let off = off as usize;
        let string = || -> Result<String, &'static str> {
            if ty != TYPE_STRING && ty != TYPE_I18NSTRING {
                return Err("string tag of another type");
            }
            let s = data.get(off..).ok_or("string offset past the data")?;
            let end = s
                .iter()
                .position(|&c| c == 0)
                .ok_or("string not terminated")?;
            Ok(String::from_utf8_lossy(&s[..end]).into_owned())
        };
        match tag {
            TAG_NAME => p.name = string()?,
            TAG_VERSION => p.version = string()?,
            TAG_RELEASE => p.release = string()?,
            TAG_ARCH => p.arch = Some(string()?),
            TAG_SOURCERPM => p.source_rpm = Some(string()?),
            TAG_LICENSE => p.license = Some(string()?),
            TAG_VENDOR => p.vendor = Some(string()?),
            TAG_EPOCH => {
                if ty != TYPE_INT32 {
                    return Err("epoch of another type");
                }
                let b = data.get(off..off + 4).ok_or("epoch past the data")?;
                p.epoch = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
            _ => {}
        }
    }
    if p.name.is_empty() || p.version.is_empty() {
        return Err("no name or version");
    }
    Ok(p)
}

/// Reads every package of a sqlite rpm database (`file` names it in errors).
pub fn read_sqlite(bytes: &[u8], file: &str) -> Result<Vec<RpmPackage>, RpmError> {
    let sq = |source| RpmError::Sqlite {
        file: file.to_string(),
        source,
    };
    let db = Db::open(bytes).map_err(sq)?;
    let rows = db.rows("Packages").map_err(sq)?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let header = |what| RpmError::Header {
            file: file.to_string(),
            row: i + 1,
            what,
        };
        let blob = row
            .iter()
            .find_map(|v| match v {
                Value::Blob(b) => Some(b),
                _ => None,
            })
            .ok_or_else(|| header("no header blob"))?;
        out.push(parse_header(blob).map_err(header)?);
    }
    Ok(out)
}

/// Reads every package of a database file in `format` (`file` names it in errors).
pub fn read_db(bytes: &[u8], file: &str, format: DbFormat) -> Result<Vec<RpmPackage>, RpmError> {
    match format {
        DbFormat::Sqlite => read_sqlite(bytes, file),
        DbFormat::Ndb => read_ndb(bytes, file),
        DbFormat::Bdb => read_bdb(bytes, file),
    }
}

fn parse_at(blob: &[u8], file: &str, offset: u64) -> Result<RpmPackage, RpmError> {
    parse_header(blob).map_err(|what| RpmError::HeaderAt {
        file: file.to_string(),
        offset,
        what,
    })
}

/// Reads every package of a Berkeley DB hash `Packages` file (`file` names it in errors).
pub fn read_bdb(bytes: &[u8], file: &str) -> Result<Vec<RpmPackage>, RpmError> {
    let err = |source| RpmError::Bdb {
        file: file.to_string(),
        source,
    };
    let values = HashDb::open(bytes)
        .and_then(|db| db.values())
        .map_err(err)?;
    values
        .iter()
        .map(|(offset, blob)| parse_at(blob, file, *offset))
        .collect()
}

/// Reads every package of an ndb `Packages.db` file (`file` names it in errors).
pub fn read_ndb(bytes: &[u8], file: &str) -> Result<Vec<RpmPackage>, RpmError> {
    let blobs = ndb::blobs(bytes).map_err(|source| RpmError::Ndb {
        file: file.to_string(),
        source,
    })?;
    blobs
        .iter()
        .map(|(offset, blob)| parse_at(blob, file, *offset))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(entries: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, ty, value) in entries {
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&ty.to_be_bytes());
            index.extend_from_slice(&(data.len() as u32).to_be_bytes());
            index.extend_from_slice(&1u32.to_be_bytes());
            data.extend_from_slice(value);
        }
        let mut b = (entries.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend(index);
        b.extend(data);
        b
    }

    #[test]
    fn header_fields_and_source() {
        let b = header(&[
            (TAG_NAME, TYPE_STRING, b"bash\0"),
            (TAG_VERSION, TYPE_STRING, b"5.1.8\0"),
            (TAG_RELEASE, TYPE_STRING, b"6.el9\0"),
            (TAG_EPOCH, TYPE_INT32, &1u32.to_be_bytes()),
            (TAG_ARCH, TYPE_STRING, b"x86_64\0"),
            (TAG_SOURCERPM, TYPE_STRING, b"bash-5.1.8-6.el9.src.rpm\0"),
        ]);
        let p = parse_header(&b).expect("parses");
        assert_eq!(p.evr(), "1:5.1.8-6.el9");
        assert_eq!(p.source(), ("bash".into(), "1:5.1.8-6.el9".into()));
        assert_eq!(
            parse_header(&b[..b.len() - 3]),
            Err("index and data longer than the blob")
        );
        let unterminated = header(&[(TAG_NAME, TYPE_STRING, b"bash")]);
        assert_eq!(parse_header(&unterminated), Err("string not terminated"));
    }
}
