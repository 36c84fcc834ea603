//! Operating system detection from the files every distribution ships:
//! `etc/os-release` (or `usr/lib/os-release`), `etc/debian_version`, `etc/alpine-release`
//! and `etc/apk/repositories` (whose `vX.Y` release wins for Alpine, because that is the
//! branch packages and advisories come from).

use std::collections::BTreeMap;

use serde::Serialize;

use super::flatten::RootFs;
use super::version::VersionScheme;

/// The files [`detect`] reads.
pub const OS_FILES: &[&str] = &[
    "etc/os-release",
    "usr/lib/os-release",
    "etc/debian_version",
    "etc/alpine-release",
    "etc/apk/repositories",
];

/// The distributions airlock knows the package databases and advisories of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Debian and derivatives that say `ID=debian`.
    Debian,
    /// Ubuntu: packages are read, but the database has no Ubuntu advisories.
    Ubuntu,
    /// Alpine Linux.
    Alpine,
    /// rpm-based: RHEL (and UBI), CentOS, Rocky, AlmaLinux, Oracle Linux, Fedora, Amazon Linux.
    RedHat,
    /// Something else (packages not read).
    Other,
}

impl Family {
    /// The version order of this family's packages.
    pub fn version_scheme(self) -> Option<VersionScheme> {
        match self {
            Family::Debian | Family::Ubuntu => Some(VersionScheme::Dpkg),
            Family::Alpine => Some(VersionScheme::Apk),
            Family::RedHat => Some(VersionScheme::Rpm),
            Family::Other => None,
        }
    }
}

/// What the image says it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsInfo {
    /// The family.
    pub family: Family,
    /// `ID` from os-release (`debian`, `alpine`, `ubuntu`, ...).
    pub id: String,
    /// The version as precise as the image tells (`12`, `12.5`, `3.18.0`).
    pub version_id: Option<String>,
    /// The release advisories are keyed by: `12` for Debian, `v3.18` (or `edge`) for Alpine.
    pub release: Option<String>,
    /// `VERSION_CODENAME` (`bookworm`).
    pub codename: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
}

impl OsInfo {
    /// The OSV ecosystem of this OS's packages (`Debian:12`, `Alpine:v3.18`), if it has one.
    pub fn osv_ecosystem(&self) -> Option<String> {
        let release = self.release.as_deref()?;
        match self.family {
            Family::Debian => Some(format!("Debian:{release}")),
            Family::Alpine => Some(format!("Alpine:{release}")),
            Family::Ubuntu => Some(format!("Ubuntu:{release}")),
            Family::RedHat => match self.id.as_str() {
                "almalinux" => Some(format!("AlmaLinux:{release}")),
                "rocky" => Some(format!("Rocky Linux:{release}")),
                "rhel" => Some(format!("Red Hat:{release}")),
                _ => None,
            },
            Family::Other => None,
        }
    }

    /// The purl namespace of this OS's packages (`debian`, `alpine`, `redhat`, `fedora`).
    pub fn purl_namespace(&self) -> &str {
        match (self.family, self.id.as_str()) {
            (Family::RedHat, "rhel") => "redhat",
            (Family::Debian, _) => "debian",
            _ => &self.id,
        }
    }

    /// The purl `distro` qualifier: `debian-12`, `alpine-3.18.0`.
    pub fn purl_distro(&self) -> Option<String> {
        let v = self.version_id.as_deref().or(self.release.as_deref())?;
        Some(format!("{}-{}", self.id, v))
    }
}

/// Parses os-release `KEY=value` lines (values optionally quoted).
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            out.insert(k.trim().to_string(), v.replace("\\\"", "\""));
        }
    }
    out
}

/// The Debian release number for a codename (for testing/sid images without `VERSION_ID`).
fn debian_codename_release(codename: &str) -> Option<&'static str> {
    Some(match codename {
        "wheezy" => "7",
        "jessie" => "8",
        "stretch" => "9",
        "buster" => "10",
        "bullseye" => "11",
        "bookworm" => "12",
        "trixie" => "13",
        "forky" => "14",
        _ => return None,
    })
}

/// The Alpine branch (`v3.18`, `edge`) named by `etc/apk/repositories`.
fn alpine_repositories_release(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        for seg in line.split('/') {
            if seg == "edge" {
                return Some("edge".into());
            }
            if let Some(v) = seg.strip_prefix('v') {
                let mut it = v.split('.');
                if let (Some(a), Some(b)) = (it.next(), it.next()) {
                    if !a.is_empty()
                        && !b.is_empty()
                        && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
                    {
                        return Some(format!("v{a}.{b}"));
                    }
                }
            }
        }
    }
    None
}

/// `3.18.0` → `v3.18`.
fn alpine_branch(version: &str) -> Option<String> {
    let mut it = version.trim().split('.');
    match (it.next(), it.next()) {
        (Some(a), Some(b))
            if !a.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && !b.is_empty()
                && b.bytes().all(|c| c.is_ascii_digit()) =>
        {
            Some(format!("v{a}.{b}"))
        }
        _ => None,
    }
}

fn text(fs: &RootFs, path: &str) -> Option<String> {
    fs.read(path)
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
}

/// The family of an os-release `ID`.
pub fn family_of(id: &str) -> Family {
    match id {
        "debian" => Family::Debian,
        "ubuntu" => Family::Ubuntu,
        "alpine" => Family::Alpine,
        "rhel" | "centos" | "fedora" | "rocky" | "almalinux" | "ol" | "amzn" => Family::RedHat,
        _ => Family::Other,
    }
}

/// Detects the OS of a flattened image; `None` when nothing tells.
pub fn detect(fs: &RootFs) -> Option<OsInfo> {
    let rel = text(fs, "etc/os-release")
        .or_else(|| text(fs, "usr/lib/os-release"))
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let alpine_release = text(fs, "etc/alpine-release");
    let apk_repos = text(fs, "etc/apk/repositories");
    let debian_version = text(fs, "etc/debian_version");
    let id = rel.get("ID").cloned().or_else(|| {
        if alpine_release.is_some() {
            Some("alpine".into())
        } else if debian_version.is_some() {
            Some("debian".into())
        } else {
            None
        }
    })?;
    let family = match id.as_str() {
        "debian" => Family::Debian,
        "ubuntu" => Family::Ubuntu,
        id => family_of(id),
    };
    let codename = rel
        .get("VERSION_CODENAME")
        .cloned()
        .filter(|c| !c.is_empty());
    let mut version_id = rel.get("VERSION_ID").cloned().filter(|v| !v.is_empty());
    let release = match family {
        Family::Debian => {
            if version_id.is_none() {
                version_id = debian_version
                    .clone()
                    .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()));
            }
            version_id
                .as_deref()
                .and_then(|v| v.split('.').next())
                .filter(|v| !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()))
                .map(str::to_string)
                .or_else(|| {
                    codename
                        .as_deref()
                        .and_then(debian_codename_release)
                        .map(str::to_string)
                })
        }
        Family::Ubuntu => version_id.clone(),
        Family::RedHat => version_id
            .as_deref()
            .and_then(|v| v.split('.').next())
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        Family::Alpine => {
            if let Some(r) = alpine_release.clone() {
                version_id = Some(r);
            }
            apk_repos
                .as_deref()
                .and_then(alpine_repositories_release)
                .or_else(|| version_id.as_deref().and_then(alpine_branch))
        }
        Family::Other => None,
    };
    Some(OsInfo {
        family,
        id,
        version_id,
        release,
        codename,
        pretty_name: rel.get("PRETTY_NAME").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpine_repositories_win() {
        let fs = RootFs::from_files([
            ("etc/alpine-release", b"3.18.0\n".to_vec()),
            (
                "etc/apk/repositories",
                b"https://dl-cdn.alpinelinux.org/alpine/v3.19/main\n".to_vec(),
            ),
        ]);
        let os = detect(&fs).expect("os");
        assert_eq!(os.osv_ecosystem().as_deref(), Some("Alpine:v3.19"));
        assert_eq!(os.purl_distro().as_deref(), Some("alpine-3.18.0"));
    }

    #[test]
    fn debian_from_debian_version_only() {
        let fs = RootFs::from_files([("etc/debian_version", b"11.7\n".to_vec())]);
        let os = detect(&fs).expect("os");
        assert_eq!(os.osv_ecosystem().as_deref(), Some("Debian:11"));
    }
}
