//! The OCI model airlock needs: digests, media types, platforms, and read-only views of
//! manifests. Manifests are only ever parsed to *read* them; the bytes are what we store and push.

pub mod digest;
pub mod manifest;
pub mod media;
pub mod name;
pub mod platform;

pub use digest::{Digest, DigestError, DigestWriter};
pub use manifest::{Descriptor, ManifestError, ManifestKind, ParsedManifest};
pub use name::{ManifestRef, NameError, RepoName, Tag};
pub use platform::Platform;
