//! Records the commit and the build date for `airlock --version` and the ledger's importer
//! field, so two builds can be told apart. Without git (a source tarball) both say "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The build date (UTC, `YYYY-MM-DD`): `SOURCE_DATE_EPOCH` when set, for reproducible builds.
fn build_date() -> Option<String> {
    let mut cmd = Command::new("date");
    cmd.arg("-u");
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        cmd.arg("-d").arg(format!("@{epoch}"));
    }
    let out = cmd.arg("+%Y-%m-%d").output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = build_date().unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=AIRLOCK_COMMIT={commit}");
    println!("cargo:rustc-env=AIRLOCK_BUILD_DATE={date}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit re-runs this: HEAD moves, or the branch it names does.
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
