//! Evidence: the small artifacts (signatures, attestations, SBOMs, scan reports, referrers
//! indexes) that gates check before anything is pushed.
//!
//! Their blobs are listed right after the manifests, before any layer, so an importer reads
//! them whole (each is capped), runs its gates on them, and only then starts pushing: a bundle
//! whose images fail the isolated side's policy leaves nothing behind at the target.

use std::collections::BTreeSet;

use super::manifest::Artifact;
use crate::oci::{Digest, ParsedManifest};

/// The largest content one evidence artifact may declare (all its blobs and manifests):
/// signature material is small, and a 1 GiB "signature" is refused before download.
pub const MAX_EVIDENCE_ARTIFACT: u64 = 16 * 1024 * 1024;

/// The most evidence bytes a reader holds in memory for one bundle.
pub const MAX_EVIDENCE_TOTAL: u64 = 256 * 1024 * 1024;

/// Every blob (config or layer, not manifest) an evidence artifact references, through its
/// root manifest and its included children. `manifest` looks a manifest up by digest; a
/// manifest it does not know contributes nothing (completeness is checked elsewhere).
pub fn evidence_blobs<'a>(
    artifacts: &[Artifact],
    manifest: impl Fn(&Digest) -> Option<&'a ParsedManifest>,
) -> BTreeSet<Digest> {
    let mut out = BTreeSet::new();
    for a in artifacts.iter().filter(|a| a.kind.is_evidence()) {
        let roots = std::iter::once(&a.digest)
            .chain(a.children.iter().filter(|c| c.included).map(|c| &c.digest));
        for d in roots {
            if let Some(m) = manifest(d) {
                out.extend(m.blobs().map(|b| b.digest.clone()));
            }
        }
    }
    out
}
