//! Reads a chart's files from a `.tgz` or a directory, refusing what could escape or exhaust:
//! `..` and absolute paths, links, oversized files and archives, deep nesting.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Helm's own limit on a chart's inflated size.
pub const MAX_CHART_BYTES: u64 = 100 << 20;
/// Helm's own limit on one inflated file.
pub const MAX_FILE_BYTES: u64 = 5 << 20;
/// Entries one archive may hold.
pub const MAX_ENTRIES: usize = 20_000;
/// How deep `charts/*.tgz` may nest.
pub const MAX_NESTING: usize = 8;

/// A chart's files, paths relative to the chart's root (`Chart.yaml`, `templates/x.yaml`).
pub type Files = Vec<(String, Vec<u8>)>;

/// Why a chart's files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Not gzip/tar, or truncated.
    #[error("{archive}: not a chart archive: {reason}")]
    Corrupt {
        /// The archive.
        archive: String,
        /// What is wrong.
        reason: String,
    },
    /// An entry that would land outside the chart.
    #[error("{archive}: entry `{entry}` escapes the chart (absolute or `..` path)")]
    Escapes {
        /// The archive.
        archive: String,
        /// The entry.
        entry: String,
    },
    /// A symbolic or hard link, or a device.
    #[error(
        "{archive}: entry `{entry}` is a link or special file; charts hold regular files only"
    )]
    Link {
        /// The archive.
        archive: String,
        /// The entry.
        entry: String,
    },
    /// One file too large.
    #[error("{archive}: file `{entry}` inflates to more than {limit} bytes")]
    FileTooLarge {
        /// The archive.
        archive: String,
        /// The entry.
        entry: String,
        /// The cap.
        limit: u64,
    },
    /// The whole chart too large.
    #[error("{archive}: chart inflates to more than {limit} bytes")]
    ChartTooLarge {
        /// The archive.
        archive: String,
        /// The cap.
        limit: u64,
    },
    /// Too many entries.
    #[error("{archive}: more than {limit} entries")]
    TooManyEntries {
        /// The archive.
        archive: String,
        /// The cap.
        limit: usize,
    },
    /// Subchart archives nested too deeply.
    #[error("{archive}: subcharts nested more than {limit} deep")]
    TooDeep {
        /// The archive.
        archive: String,
        /// The cap.
        limit: usize,
    },
    /// A directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Inflation budget shared by a chart and its nested subchart archives.
#[derive(Debug)]
pub struct Budget {
    left: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            left: MAX_CHART_BYTES,
        }
    }
}

/// Reads a gzipped chart archive, stripping the top directory (`mychart/…`) as Helm does.
pub fn read_tgz(bytes: &[u8], label: &str, budget: &mut Budget) -> Result<Files, ArchiveError> {
    let corrupt = |reason: String| ArchiveError::Corrupt {
        archive: label.to_string(),
        reason,
    };
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut tar = tar::Archive::new(gz);
    let mut out: Files = Vec::new();
    let entries = tar.entries().map_err(|e| corrupt(e.to_string()))?;
    for (n, entry) in entries.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(ArchiveError::TooManyEntries {
                archive: label.to_string(),
                limit: MAX_ENTRIES,
            });
        }
        let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() {
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(ArchiveError::Link {
                archive: label.to_string(),
                entry: raw,
            });
        }
        let rel = clean_path(&raw).ok_or_else(|| ArchiveError::Escapes {
            archive: label.to_string(),
            entry: raw.clone(),
        })?;
        // Strip the chart's top directory.
        let Some((_, inner)) = rel.split_once('/') else {
            continue;
        };
        let size = entry.header().size().map_err(|e| corrupt(e.to_string()))?;
        take_budget(label, &raw, size, budget)?;
        let mut data = Vec::with_capacity(size as usize);
        (&mut entry)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| corrupt(e.to_string()))?;
        if data.len() as u64 != size {
            return Err(corrupt(format!("entry `{raw}` is truncated")));
        }
        out.push((inner.to_string(), data));
    }
    Ok(out)
}

fn take_budget(
    label: &str,
    entry: &str,
    size: u64,
    budget: &mut Budget,
) -> Result<(), ArchiveError> {
    if size > MAX_FILE_BYTES {
        return Err(ArchiveError::FileTooLarge {
            archive: label.to_string(),
            entry: entry.to_string(),
            limit: MAX_FILE_BYTES,
        });
    }
    if size > budget.left {
        return Err(ArchiveError::ChartTooLarge {
            archive: label.to_string(),
            limit: MAX_CHART_BYTES,
        });
    }
    budget.left -= size;
    Ok(())
}

/// `a/./b` → `a/b`; `None` for absolute paths and any `..`.
fn clean_path(p: &str) -> Option<String> {
    if p.starts_with('/') || p.starts_with('\\') || p.contains('\\') {
        return None;
    }
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Reads a chart directory (no links followed), honouring its `.helmignore`.
pub fn read_dir(root: &Path, budget: &mut Budget) -> Result<Files, ArchiveError> {
    let io = |path: &Path, source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    };
    let ignore =
        crate::io::read_text_capped(&root.join(".helmignore"), MAX_FILE_BYTES, ".helmignore")
            .map(|t| Ignore::parse(&t))
            .unwrap_or_default();
    let label = root.display().to_string();
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| io(&dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| io(&dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let r = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let ft = e.file_type().map_err(|err| io(&path, err))?;
            if ignore.ignored(&r, ft.is_dir()) {
                continue;
            }
            if ft.is_symlink() {
                return Err(ArchiveError::Link {
                    archive: label.clone(),
                    entry: r,
                });
            }
            if ft.is_dir() {
                stack.push((path, r));
                continue;
            }
            if out.len() >= MAX_ENTRIES {
                return Err(ArchiveError::TooManyEntries {
                    archive: label,
                    limit: MAX_ENTRIES,
                });
            }
            let size = e.metadata().map_err(|err| io(&path, err))?.len();
            take_budget(&label, &r, size, budget)?;
            let mut data = Vec::new();
            std::fs::File::open(&path)
                .map_err(|err| io(&path, err))?
                .take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut data)
                .map_err(|err| io(&path, err))?;
            out.push((r, data));
        }
    }
    Ok(out)
}

/// `.helmignore` rules (gitignore-like: globs on names or paths, `dir/`, `!` ignored).
#[derive(Default)]
struct Ignore {
    rules: Vec<(regex::Regex, bool, bool)>,
}

impl Ignore {
    fn parse(text: &str) -> Ignore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with('!') {
                continue;
            }
            let dir_only = l.ends_with('/');
            let l = l.trim_end_matches('/');
            let anchored = l.contains('/');
            let l = l.trim_start_matches('/');
            let mut re = String::from("^");
            for c in l.chars() {
                match c {
                    '*' => re.push_str("[^/]*"),
                    '?' => re.push_str("[^/]"),
                    c => re.push_str(&regex::escape(&c.to_string())),
                }
            }
            re.push('$');
            if let Ok(r) = regex::Regex::new(&re) {
                rules.push((r, dir_only, anchored));
            }
        }
        Ignore { rules }
    }

    fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        let base = rel.rsplit('/').next().unwrap_or(rel);
        self.rules.iter().any(|(re, dir_only, anchored)| {
            (!dir_only || is_dir)
                && if *anchored {
                    re.is_match(rel)
                } else {
                    re.is_match(base)
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths() {
        assert_eq!(clean_path("a/./b").as_deref(), Some("a/b"));
        assert_eq!(clean_path("../x"), None);
        assert_eq!(clean_path("/etc/passwd"), None);
        assert_eq!(clean_path("a/../../b"), None);
    }

    #[test]
    fn helmignore_rules() {
        let i = Ignore::parse("*.swp\n.git/\n/ci\n# c\n");
        assert!(i.ignored("templates/a.swp", false));
        assert!(i.ignored(".git", true));
        assert!(i.ignored("ci", false));
        assert!(!i.ignored("templates/ci", false));
        assert!(!i.ignored("values.yaml", false));
    }
}
