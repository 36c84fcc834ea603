//! What class of failure an error is, so a script can tell tampering from a registry that is
//! down from a failed gate: each library error type says its own [`ErrorKind`], and [`of`]
//! walks an error chain to the first type that knows. The CLI turns the kind into its exit
//! code and the `kind` of a JSON error; nothing here looks at message text.

use std::error::Error;

use serde::Serialize;

use crate::bundle::parts::{PartError, PartsError};
use crate::bundle::reader::BundleError;
use crate::collect::CollectError;
use crate::import::record::RecordError;
use crate::import::replay::ReplayError;
use crate::import::{ImportError, MappingError};
use crate::ledger::LedgerError;
use crate::receipt::ReceiptError;
use crate::registry::auth::AuthError;
use crate::registry::RegistryError;

/// The class of a failure; each has its own documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Anything not in a class below (a missing file, a full disk, a bad lockfile): exit 1.
    Other,
    /// The command line itself is wrong: exit 2.
    Usage,
    /// `lock --check` found the lockfile out of date: exit 3.
    Drift,
    /// Content failed a check (signature, digest, size, structure): tampering or damage: exit 4.
    Verification,
    /// Refused by the site's policy: the trust policy, an unsigned bundle, a replay, the scan
    /// gate: exit 5.
    Policy,
    /// A registry or the network failed or refused: exit 6.
    Registry,
    /// The provenance ledger cannot be read, written or verified: exit 7.
    Ledger,
}

impl ErrorKind {
    /// Every kind, in exit-code order (for the documentation table and tests).
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Other,
        ErrorKind::Usage,
        ErrorKind::Drift,
        ErrorKind::Verification,
        ErrorKind::Policy,
        ErrorKind::Registry,
        ErrorKind::Ledger,
    ];

    /// The process exit code for this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Other => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Drift => 3,
            ErrorKind::Verification => 4,
            ErrorKind::Policy => 5,
            ErrorKind::Registry => 6,
            ErrorKind::Ledger => 7,
        }
    }

    /// The name used in JSON errors (`"kind": "verification"`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Other => "other",
            ErrorKind::Usage => "usage",
            ErrorKind::Drift => "drift",
            ErrorKind::Verification => "verification",
            ErrorKind::Policy => "policy",
            ErrorKind::Registry => "registry",
            ErrorKind::Ledger => "ledger",
        }
    }

    /// One line on what the kind means, for `--help` and the README.
    pub fn meaning(self) -> &'static str {
        match self {
            ErrorKind::Other => "other failure (a missing file, a full disk, bad input)",
            ErrorKind::Usage => "usage error (a bad flag or argument)",
            ErrorKind::Drift => "`lock --check` found drift",
            ErrorKind::Verification => {
                "verification failed: signature, digest or structure (tampering or damage)"
            }
            ErrorKind::Policy => {
                "refused by policy: trust policy, unsigned bundle, replay, scan gate"
            }
            ErrorKind::Registry => "registry or network failure",
            ErrorKind::Ledger => "the ledger cannot be read, written or verified",
        }
    }
}

/// A command line that does not make sense although each flag parsed (two flags that
/// contradict each other): exit 2, like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl Classify for UsageError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

/// What class of failure an error is. A trait, not an inherent method, so it cannot clash with
/// a type's own `kind` (the ledger's problem names).
pub trait Classify {
    /// The class of this error; a wrapper answers for what it wraps when that decides.
    fn kind(&self) -> ErrorKind;
}

/// The kind of an error chain: the kind of the outermost error whose type is known here
/// (outer types delegate to what they wrap when that decides), else [`ErrorKind::Other`].
pub fn of(err: &(dyn Error + 'static)) -> ErrorKind {
    chain(err).find_map(known_kind).unwrap_or(ErrorKind::Other)
}

/// The artifact an error chain is about (an image reference, a part, a bundle entry), when the
/// error names one; for the `artifact` of a JSON error.
pub fn artifact(err: &(dyn Error + 'static)) -> Option<String> {
    chain(err).find_map(known_artifact)
}

fn chain<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn Error + 'static)| (*e).source())
}

fn known_kind(e: &(dyn Error + 'static)) -> Option<ErrorKind> {
    macro_rules! try_types {
        ($($t:ty),* $(,)?) => {
            $(if let Some(x) = e.downcast_ref::<$t>() { return Some(Classify::kind(x)); })*
        };
    }
    try_types!(
        UsageError,
        crate::config::ConfigError,
        crate::config::RequiresError,
        ImportError,
        CollectError,
        RecordError,
        ReplayError,
        LedgerError,
        BundleError,
        PartsError,
        PartError,
        RegistryError,
        AuthError,
        ReceiptError,
        MappingError,
        crate::import::gate::GateError,
        crate::scan::gate::GateError,
        crate::trust::verify::VerifyError,
        crate::trust::TrustError,
        crate::ledger::checkpoint::CheckpointError,
        crate::ledger::note::NoteError,
        crate::ledger::merkle::ProofError,
        crate::oci::DigestError,
    );
    None
}

fn known_artifact(e: &(dyn Error + 'static)) -> Option<String> {
    if let Some(x) = e.downcast_ref::<CollectError>() {
        return x.artifact().map(str::to_string);
    }
    if let Some(x) = e.downcast_ref::<ImportError>() {
        return x.artifact();
    }
    if let Some(x) = e.downcast_ref::<BundleError>() {
        return x.artifact().map(str::to_string);
    }
    if let Some(x) = e.downcast_ref::<PartError>() {
        return Some(x.part().display().to_string());
    }
    if let Some(crate::import::gate::GateError::Untrusted { image, .. }) = e.downcast_ref() {
        return Some(image.clone());
    }
    None
}

impl Classify for ImportError {
    /// See [`ErrorKind`].
    fn kind(&self) -> ErrorKind {
        match self {
            ImportError::Bundle(e) => e.kind(),
            ImportError::Registry { source, .. } => source.kind(),
            ImportError::Mapping(e) => e.kind(),
            ImportError::Gate(e) => e.kind(),
            ImportError::Replay(e) => e.kind(),
            ImportError::ScanGate(e) => e.kind(),
            ImportError::ScanFailed { .. } => ErrorKind::Policy,
            ImportError::MountRefused { .. } | ImportError::Referrers { .. } => ErrorKind::Registry,
            ImportError::Record(e) => e.kind(),
            ImportError::TagsAfterRecord { source, .. } => source.kind(),
            // What refused the import decides, not that recording the refusal failed too.
            ImportError::RejectionUnrecorded { error, .. } => error.kind(),
            _ => ErrorKind::Other,
        }
    }
}

impl ImportError {
    /// The artifact this error is about, when it names one.
    pub fn artifact(&self) -> Option<String> {
        match self {
            ImportError::MountRefused { repo, .. } => Some(repo.clone()),
            ImportError::DeriveIndex { source_ref, .. } => Some(source_ref.clone()),
            ImportError::Bundle(e) => e.artifact().map(str::to_string),
            ImportError::Gate(crate::import::gate::GateError::Untrusted { image, .. }) => {
                Some(image.clone())
            }
            _ => None,
        }
    }
}

impl Classify for CollectError {
    /// See [`ErrorKind`].
    fn kind(&self) -> ErrorKind {
        match self {
            CollectError::Registry { source, .. } => source.kind(),
            CollectError::Mismatch { .. } => ErrorKind::Verification,
            CollectError::Untrusted { .. }
            | CollectError::Policy(_)
            | CollectError::ScanGate { .. } => ErrorKind::Policy,
            CollectError::ScanPin(e) => e.kind(),
            _ => ErrorKind::Other,
        }
    }
}

impl CollectError {
    /// The artifact this error is about, when it names one.
    pub fn artifact(&self) -> Option<&str> {
        match self {
            CollectError::Registry { artifact, .. }
            | CollectError::Name { artifact, .. }
            | CollectError::Manifest { artifact, .. }
            | CollectError::Chart { artifact, .. }
            | CollectError::Mismatch { artifact, .. }
            | CollectError::Unsupported { artifact, .. }
            | CollectError::Untrusted { artifact, .. } => Some(artifact),
            CollectError::Unpinned { reference } => Some(reference),
            _ => None,
        }
    }
}

impl Classify for RecordError {
    /// See [`ErrorKind`].
    fn kind(&self) -> ErrorKind {
        match self {
            RecordError::Bundle { source, .. } => source.kind(),
            RecordError::Preflight { .. }
            | RecordError::Unverified { .. }
            | RecordError::Admitted { .. }
            | RecordError::Rejected { .. } => ErrorKind::Ledger,
        }
    }
}

impl Classify for ReplayError {
    /// See [`ErrorKind`].
    fn kind(&self) -> ErrorKind {
        match self {
            ReplayError::Ledger { .. } => ErrorKind::Ledger,
            ReplayError::Older { .. } => ErrorKind::Policy,
        }
    }
}

impl Classify for LedgerError {
    /// See [`ErrorKind`]: every ledger failure is one class, tampering with it included.
    fn kind(&self) -> ErrorKind {
        ErrorKind::Ledger
    }
}

impl Classify for BundleError {
    /// See [`ErrorKind`].
    fn kind(&self) -> ErrorKind {
        match self {
            BundleError::Io { .. } => ErrorKind::Other,
            BundleError::Unsigned { .. } => ErrorKind::Policy,
            BundleError::Part { source, .. } => source.kind(),
            BundleError::Corrupt { .. }
            | BundleError::UnsafeEntry { .. }
            | BundleError::UnexpectedEntry { .. }
            | BundleError::BadManifest { .. }
            | BundleError::DigestMismatch { .. }
            | BundleError::SizeMismatch { .. }
            | BundleError::Untrusted { .. }
            | BundleError::BadBlobManifest { .. }
            | BundleError::Incomplete { .. } => ErrorKind::Verification,
            BundleError::Parts { source, .. } => source.kind(),
        }
    }
}

impl BundleError {
    /// The bundle entry this error is about, when it names one.
    pub fn artifact(&self) -> Option<&str> {
        match self {
            BundleError::UnsafeEntry { entry, .. }
            | BundleError::UnexpectedEntry { entry, .. }
            | BundleError::DigestMismatch { entry, .. }
            | BundleError::SizeMismatch { entry, .. } => Some(entry),
            _ => None,
        }
    }
}

impl Classify for PartsError {
    /// See [`ErrorKind`].
    fn kind(&self) -> ErrorKind {
        match self {
            PartsError::Size { .. } => ErrorKind::Usage,
            PartsError::Io { .. }
            | PartsError::NotFound { .. }
            | PartsError::NoSpace(_)
            | PartsError::NotABundle { .. } => ErrorKind::Other,
            PartsError::Part(e) => e.kind(),
            PartsError::BadParts { damaged: false, .. } => ErrorKind::Other,
            PartsError::BadManifest { .. } | PartsError::BadParts { .. } => ErrorKind::Verification,
        }
    }
}

impl Classify for PartError {
    /// See [`ErrorKind`]: a missing or unreadable part is not tampering; a wrong one is.
    fn kind(&self) -> ErrorKind {
        if self.is_damage() {
            ErrorKind::Verification
        } else {
            ErrorKind::Other
        }
    }
}

impl Classify for RegistryError {
    /// See [`ErrorKind`]: content a registry sends that fails its digest is verification;
    /// a local file that cannot be read is other; the rest is the registry or the network.
    fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. } => {
                ErrorKind::Verification
            }
            RegistryError::CaFile { .. } | RegistryError::Io { .. } => ErrorKind::Other,
            RegistryError::Credentials(e) => e.kind(),
            _ => ErrorKind::Registry,
        }
    }
}

impl Classify for AuthError {
    /// See [`ErrorKind`]: a malformed `--creds` is usage; an unreadable auth file is other.
    fn kind(&self) -> ErrorKind {
        match self {
            AuthError::BadCredsFlag | AuthError::BadHelperTimeout(_) => ErrorKind::Usage,
            AuthError::BadAuthFile { .. } | AuthError::MissingAuthFile(_) => ErrorKind::Other,
            // The helper stands in for the registry's login: no credentials, no access.
            AuthError::Helper(_) => ErrorKind::Registry,
        }
    }
}

impl Classify for ReceiptError {
    /// See [`ErrorKind`].
    fn kind(&self) -> ErrorKind {
        match self {
            ReceiptError::Registry { source, .. } => source.kind(),
            ReceiptError::Untrusted { .. } => ErrorKind::Verification,
            _ => ErrorKind::Other,
        }
    }
}

impl Classify for MappingError {
    /// See [`ErrorKind`]: a bad `--to` is usage; the rest is the mapping file or the names.
    fn kind(&self) -> ErrorKind {
        match self {
            MappingError::BadTarget(_) => ErrorKind::Usage,
            _ => ErrorKind::Other,
        }
    }
}

impl Classify for crate::import::gate::GateError {
    /// See [`ErrorKind`]: an image failing the trust policy is a refusal by policy; a policy
    /// that cannot be loaded is other.
    fn kind(&self) -> ErrorKind {
        match self {
            crate::import::gate::GateError::Policy { .. } => ErrorKind::Other,
            crate::import::gate::GateError::Untrusted { .. } => ErrorKind::Policy,
        }
    }
}

impl Classify for crate::scan::gate::GateError {
    /// See [`ErrorKind`]: the scan gate could not be set up (no database, bad policy file).
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl Classify for crate::trust::verify::VerifyError {
    /// See [`ErrorKind`]: an image without the signatures its trust rule requires.
    fn kind(&self) -> ErrorKind {
        ErrorKind::Policy
    }
}

impl Classify for crate::trust::TrustError {
    /// See [`ErrorKind`]: signatures that do not check are verification; key files are other.
    fn kind(&self) -> ErrorKind {
        match self {
            crate::trust::TrustError::BadSignature { .. }
            | crate::trust::TrustError::NotEnoughSignatures { .. } => ErrorKind::Verification,
            crate::trust::TrustError::InvalidThreshold { .. } => ErrorKind::Usage,
            _ => ErrorKind::Other,
        }
    }
}

impl Classify for crate::ledger::checkpoint::CheckpointError {
    /// See [`ErrorKind`].
    fn kind(&self) -> ErrorKind {
        ErrorKind::Ledger
    }
}

impl Classify for crate::ledger::note::NoteError {
    /// See [`ErrorKind`]: a signed note (checkpoint, receipt note) that does not verify.
    fn kind(&self) -> ErrorKind {
        ErrorKind::Verification
    }
}

impl Classify for crate::ledger::merkle::ProofError {
    /// See [`ErrorKind`]: an inclusion or consistency proof that does not hold.
    fn kind(&self) -> ErrorKind {
        ErrorKind::Ledger
    }
}

impl Classify for crate::oci::DigestError {
    /// See [`ErrorKind`]: a malformed digest typed by the user.
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

impl PartError {
    /// The part this error is about.
    pub fn part(&self) -> &std::path::Path {
        match self {
            PartError::Missing { part }
            | PartError::Unreadable { part, .. }
            | PartError::WrongSize { part, .. }
            | PartError::BadDigest { part, .. } => part,
            PartError::WholeMismatch { .. } => std::path::Path::new("(all parts)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_documented_in_order() {
        let codes: Vec<u8> = ErrorKind::ALL.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes, vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn a_digest_mismatch_in_a_bundle_is_verification() {
        let d = crate::oci::Digest::of(b"a");
        let e = BundleError::DigestMismatch {
            path: "b.tar.zst".into(),
            entry: "blobs/sha256/x".into(),
            expected: d.clone(),
            actual: crate::oci::Digest::of(b"b"),
        };
        assert_eq!(of(&e), ErrorKind::Verification);
        assert_eq!(artifact(&e).as_deref(), Some("blobs/sha256/x"));
        // Wrapped by the importer and by anyhow context, the kind is kept.
        let wrapped = anyhow::Error::new(ImportError::Bundle(e)).context("importing `b.tar.zst`");
        assert_eq!(of(wrapped.as_ref()), ErrorKind::Verification);
    }

    #[test]
    fn an_unsigned_bundle_is_policy_and_a_bad_signature_is_verification() {
        let unsigned = BundleError::Unsigned {
            path: "b".into(),
            why: "not signed".into(),
        };
        let bad = BundleError::Untrusted {
            path: "b".into(),
            why: "signature does not verify".into(),
        };
        assert_eq!(of(&unsigned), ErrorKind::Policy);
        assert_eq!(of(&bad), ErrorKind::Verification);
    }

    #[test]
    fn ledger_failures_are_ledger_even_inside_an_import() {
        let e = ImportError::Record(Box::new(RecordError::Unverified {
            dir: "l".into(),
            why: "edited".into(),
        }));
        assert_eq!(of(&e), ErrorKind::Ledger);
        assert_eq!(
            of(&ReplayError::Ledger {
                ledger: "l".into(),
                why: "x".into()
            }),
            ErrorKind::Ledger
        );
    }

    #[test]
    fn a_rejection_keeps_the_kind_of_what_refused_it() {
        let e = ImportError::RejectionUnrecorded {
            error: Box::new(ImportError::ScanFailed {
                failures: vec!["critical".into()],
                evidence: Vec::new(),
            }),
            record: "disk full".into(),
        };
        assert_eq!(of(&e), ErrorKind::Policy);
    }

    #[test]
    fn a_missing_part_is_other_and_a_wrong_part_is_verification() {
        let missing = PartsError::Part(PartError::Missing {
            part: "b.part001".into(),
        });
        assert_eq!(of(&missing), ErrorKind::Other);
        let bad = PartError::WrongSize {
            part: "b.part002".into(),
            expected: 10,
            actual: 9,
        };
        assert_eq!(of(&bad), ErrorKind::Verification);
        assert_eq!(artifact(&bad).as_deref(), Some("b.part002"));
    }

    #[test]
    fn registry_failures_are_registry_but_lying_content_is_verification() {
        let status = RegistryError::Status {
            method: reqwest::Method::GET,
            url: "https://r/v2/".into(),
            status: reqwest::StatusCode::NOT_FOUND,
            detail: String::new(),
        };
        assert_eq!(of(&status), ErrorKind::Registry);
        let lying = CollectError::Registry {
            artifact: "r/app:1".into(),
            source: RegistryError::DigestMismatch {
                what: "manifest".into(),
                expected: crate::oci::Digest::of(b"a"),
                actual: crate::oci::Digest::of(b"b"),
            },
        };
        assert_eq!(of(&lying), ErrorKind::Verification);
        assert_eq!(artifact(&lying).as_deref(), Some("r/app:1"));
    }

    #[test]
    fn an_unknown_error_is_other() {
        let e = std::io::Error::other("boom");
        assert_eq!(of(&e), ErrorKind::Other);
        assert_eq!(artifact(&e), None);
    }
}
