//! The plan stage of `collect`: what the bundle will hold ([`Plan`]), built from the fetched
//! manifests in lock order, charts and files; and the pack order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bytes::Bytes;

use super::fetch::Fetched;
use super::{cache_path, chart, repo_of, CollectError, CollectOptions};
use crate::bundle::writer::BlobData;
use crate::bundle::{Artifact, ArtifactKind, BlobEntry};
use crate::oci::{media, Descriptor, Digest, ManifestKind, ParsedManifest, RepoName, Tag};
use crate::registry::{Registry, Repo};

/// What the bundle will hold: its artifacts, every manifest, the blobs to pull and the blobs
/// built here. The plan stage fills it in lock order; verify and scan add to it.
pub(super) struct Plan {
    pub(super) artifacts: Vec<Artifact>,
    pub(super) manifests: BTreeMap<Digest, (Bytes, String)>,
    /// Blobs to pull: digest → (descriptor, source repo).
    pub(super) pulls: BTreeMap<Digest, (Descriptor, Repo)>,
    /// Blobs built locally (chart configs, chart archives).
    pub(super) local: HashMap<Digest, (BlobData, BlobEntry)>,
}

impl Plan {
    /// A blob built or kept here rather than pulled (a chart's config and archive, a file),
    /// packed from `data`.
    fn add_local(&mut self, digest: Digest, size: u64, media_type: &str, data: BlobData) {
        let entry = BlobEntry {
            digest: digest.clone(),
            size,
            media_type: media_type.into(),
        };
        self.local.insert(digest, (data, entry));
    }

    /// A plain file: fetched into the cache (checked against its sha256), packed as an OCI
    /// artifact (empty config, one titled layer) bound for `files/<name>:<version>`.
    pub(super) async fn add_file(
        &mut self,
        f: &crate::files::LockedFile,
        registry: &Registry,
        opts: &CollectOptions,
    ) -> Result<(), CollectError> {
        use crate::files::{FileError, EMPTY_CONFIG, FILE_LAYER_MEDIA_TYPE};
        let cached = cache_path(&opts.cache, &f.sha256);
        let (size, fresh) = match fs_err::metadata(&cached) {
            Ok(m) => (m.len(), false),
            Err(_) if f.is_url() => {
                let (_, n) = chart::download(
                    registry.http(),
                    &f.source,
                    &cached,
                    Some(&f.sha256),
                    u64::MAX,
                )
                .await
                .map_err(|e| match e {
                    chart::ChartError::Mismatch {
                        expected, actual, ..
                    } => FileError::Mismatch {
                        source_: f.source.clone(),
                        expected,
                        actual,
                    },
                    other => FileError::Fetch {
                        source_: f.source.clone(),
                        why: crate::error_chain(&other),
                    },
                })?;
                (n, true)
            }
            Err(_) => {
                let src = crate::files::local_path(f, &opts.base_dir);
                (crate::files::copy_verified(&src, &cached, &f.sha256)?, true)
            }
        };
        let manifest = crate::files::file_manifest(f, size);
        let mdigest = Digest::of(&manifest);
        let config = Bytes::from_static(EMPTY_CONFIG);
        let config_digest = Digest::of(&config);
        self.add_local(
            config_digest,
            config.len() as u64,
            media::OCI_EMPTY,
            BlobData::Memory(config.clone()),
        );
        self.add_local(
            f.sha256.clone(),
            size,
            FILE_LAYER_MEDIA_TYPE,
            BlobData::File {
                path: cached,
                verified: fresh,
            },
        );
        let manifest_len = manifest.len() as u64;
        self.manifests
            .insert(mdigest.clone(), (manifest, media::OCI_MANIFEST.into()));
        self.artifacts.push(Artifact {
            verification: Vec::new(),
            size: size + config.len() as u64 + manifest_len,
            kind: ArtifactKind::File,
            source: f.source.clone(),
            registry: None,
            repository: RepoName::try_from(format!("files/{}", f.name)).map_err(|source| {
                CollectError::Name {
                    artifact: f.source.clone(),
                    source,
                }
            })?,
            tag: Some(Tag::parse(&f.version).map_err(|source| CollectError::Name {
                artifact: f.source.clone(),
                source,
            })?),
            digest: mdigest,
            media_type: media::OCI_MANIFEST.into(),
            platforms: Vec::new(),
            children: Vec::new(),
            subject: None,
            artifact_type: Some(crate::files::FILE_ARTIFACT_TYPE.into()),
            scan: None,
            origin: crate::bundle::Origin::Upstream,
        });
        Ok(())
    }

    /// Drops every non-manifest blob `receipt` lists from what is pulled or packed, and returns
    /// them (sorted by digest) for `airlock.json`.
    /// The blobs of evidence artifacts (signatures, SBOMs, reports): listed right after the
    /// manifests, and never left out of a delta.
    pub(super) fn evidence(&self) -> std::collections::BTreeSet<Digest> {
        let parsed: BTreeMap<&Digest, ParsedManifest> = self
            .manifests
            .iter()
            .filter_map(|(d, (bytes, mt))| Some((d, ParsedManifest::parse(bytes, Some(mt)).ok()?)))
            .collect();
        crate::bundle::evidence::evidence_blobs(&self.artifacts, |d| parsed.get(d))
    }

    /// The blobs to pull that the cache lacks (absent, or of the wrong size), with where to
    /// pull each from.
    pub(super) fn not_in_cache(&self, cache: &Path) -> Vec<(Digest, Descriptor, Repo)> {
        self.pulls
            .iter()
            .filter(|(d, (desc, _))| {
                fs_err::metadata(cache_path(cache, d))
                    .map(|m| m.len() != desc.size)
                    .unwrap_or(true)
            })
            .map(|(d, (desc, repo))| (d.clone(), desc.clone(), repo.clone()))
            .collect()
    }

    pub(super) fn omit(
        &mut self,
        receipt: &crate::receipt::Receipt,
    ) -> Vec<crate::bundle::OmittedBlob> {
        // Evidence stays in the bundle: the isolated side checks it before it trusts the target.
        let evidence = self.evidence();
        let mut out = Vec::new();
        for held in receipt
            .blobs
            .iter()
            .filter(|b| !evidence.contains(&b.digest))
        {
            let size = match (self.pulls.get(&held.digest), self.local.get(&held.digest)) {
                (Some((desc, _)), _) => desc.size,
                (None, Some((_, entry))) => entry.size,
                (None, None) => continue,
            };
            if size != held.size {
                continue;
            }
            self.pulls.remove(&held.digest);
            self.local.remove(&held.digest);
            out.push(crate::bundle::OmittedBlob {
                digest: held.digest.clone(),
                size,
                repositories: held.repositories.clone(),
            });
        }
        out
    }

    pub(super) fn add_image_blobs(
        &mut self,
        artifact: &str,
        m: &ParsedManifest,
        repo: &Repo,
    ) -> Result<u64, CollectError> {
        let mut total = 0;
        for d in m.blobs() {
            if !d.urls.is_empty() || media::is_foreign_layer(&d.media_type) {
                return Err(CollectError::Unsupported {
                    artifact: artifact.to_string(),
                    why: format!(
                        "layer {} is a foreign (non-distributable) layer fetched from {}; airlock does not carry foreign layers",
                        d.digest,
                        d.urls.first().map(String::as_str).unwrap_or("an external URL")
                    ),
                });
            }
            total += d.size;
            self.pulls
                .entry(d.digest.clone())
                .or_insert_with(|| (d.clone(), repo.clone()));
        }
        Ok(total)
    }

    /// The plan stage for one registry artifact: its fetched manifests, the blobs they name
    /// and its entry in `airlock.json`. Runs in lock order, so the plan (and the bundle) does
    /// not depend on which fetch finished first.
    pub(super) fn add_fetched(&mut self, f: Fetched<'_>) -> Result<(), CollectError> {
        let Fetched {
            pin,
            root,
            children: fetched_children,
            children_listed,
        } = f;
        let name = pin.source.to_string();
        let repo = repo_of(pin.source);
        let (root_bytes, root_parsed) = root;
        let mut size = root_parsed.blobs().map(|d| d.size).sum::<u64>() + root_bytes.len() as u64;
        self.manifests.insert(
            pin.digest.clone(),
            (root_bytes, root_parsed.media_type.clone()),
        );
        if root_parsed.kind != ManifestKind::Index {
            self.add_image_blobs(&name, &root_parsed, &repo)?;
        }
        for (digest, bytes, parsed) in fetched_children {
            size += self.add_image_blobs(&name, &parsed, &repo)? + bytes.len() as u64;
            self.manifests
                .insert(digest, (bytes, parsed.media_type.clone()));
        }
        self.artifacts.push(Artifact {
            verification: Vec::new(),
            subject: pin.subject.map(|(d, _)| d.clone()),
            artifact_type: pin.subject.and_then(|(_, t)| t.map(str::to_string)),
            scan: None,
            origin: crate::bundle::Origin::Upstream,
            size,
            kind: pin.kind,
            source: name,
            registry: Some(pin.source.registry.clone()),
            repository: pin.source.repository.clone(),
            tag: pin.source.tag.clone(),
            digest: pin.digest.clone(),
            media_type: pin.media_type.to_string(),
            platforms: pin.platforms.to_vec(),
            children: children_listed,
        });
        Ok(())
    }

    /// An HTTP chart: its `.tgz` from the cache (or downloaded, checked against the lock's
    /// sha256), wrapped as an OCI chart (config and manifest built here).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn add_http_chart(
        &mut self,
        registry: &Registry,
        cache: &Path,
        repo: &str,
        name: &str,
        version: &str,
        url: &str,
        sha256: &Digest,
    ) -> Result<(), CollectError> {
        let artifact = format!("{repo} {name}:{version}");
        let chart_err = |source| CollectError::Chart {
            artifact: artifact.clone(),
            source,
        };
        let tgz = cache_path(cache, sha256);
        let (size, fresh_tgz) = match fs_err::metadata(&tgz) {
            Ok(m) => (m.len(), false),
            Err(_) => {
                let (_, n) = chart::download(
                    registry.http(),
                    url,
                    &tgz,
                    Some(sha256),
                    chart::MAX_CHART_BYTES,
                )
                .await
                .map_err(chart_err)?;
                (n, true)
            }
        };
        let config = Bytes::from(chart::chart_config(&tgz, name, version).map_err(chart_err)?);
        let manifest = chart::chart_manifest(&config, sha256, size, name, version);
        let mdigest = Digest::of(&manifest);
        let manifest_len = manifest.len() as u64;
        let config_digest = Digest::of(&config);
        self.add_local(
            config_digest,
            config.len() as u64,
            media::HELM_CONFIG,
            BlobData::Memory(config.clone()),
        );
        self.add_local(
            sha256.clone(),
            size,
            media::HELM_CHART,
            BlobData::File {
                path: tgz,
                verified: fresh_tgz,
            },
        );
        self.manifests
            .insert(mdigest.clone(), (manifest, media::OCI_MANIFEST.into()));
        self.artifacts.push(Artifact {
            verification: Vec::new(),
            subject: None,
            artifact_type: None,
            scan: None,
            origin: crate::bundle::Origin::Upstream,
            size: size + config.len() as u64 + manifest_len,
            kind: ArtifactKind::Chart,
            source: url.to_string(),
            registry: None,
            repository: RepoName::try_from(format!("charts/{name}")).map_err(|source| {
                CollectError::Name {
                    artifact: url.to_string(),
                    source,
                }
            })?,
            // OCI tags cannot hold SemVer build metadata: Helm writes `+` as `_`.
            tag: Some(Tag::parse(&version.replace('+', "_")).map_err(|source| {
                CollectError::Name {
                    artifact: url.to_string(),
                    source,
                }
            })?),
            digest: mdigest,
            media_type: media::OCI_MANIFEST.into(),
            platforms: Vec::new(),
            children: Vec::new(),
        });
        Ok(())
    }

    /// The pack order — manifests by digest, then evidence, then every other blob, each group
    /// by (size, digest) — and where the bytes of each blob already in place are: all but
    /// those `downloading`, which the download stage hands to the pack stage. `checked` blobs
    /// (downloaded, or hashed by the scan, in this run) are not hashed again.
    pub(super) fn pack_order(
        &self,
        cache: &Path,
        downloading: &std::collections::HashSet<Digest>,
        checked: &std::collections::HashSet<Digest>,
    ) -> (Vec<BlobEntry>, HashMap<Digest, BlobData>) {
        let mut data: HashMap<Digest, BlobData> = HashMap::new();
        let mut blobs: Vec<BlobEntry> = Vec::new();
        for (d, (bytes, mt)) in &self.manifests {
            blobs.push(BlobEntry {
                digest: d.clone(),
                size: bytes.len() as u64,
                media_type: mt.clone(),
            });
            data.insert(d.clone(), BlobData::Memory(bytes.clone()));
        }
        let mut rest: Vec<BlobEntry> = Vec::new();
        for (d, (desc, _)) in &self.pulls {
            rest.push(BlobEntry {
                digest: d.clone(),
                size: desc.size,
                media_type: desc.media_type.clone(),
            });
            if !downloading.contains(d) {
                data.insert(
                    d.clone(),
                    BlobData::File {
                        path: cache_path(cache, d),
                        verified: checked.contains(d),
                    },
                );
            }
        }
        for (d, (bd, entry)) in &self.local {
            if !data.contains_key(d) && !downloading.contains(d) {
                rest.push(entry.clone());
                data.insert(d.clone(), bd.clone());
            }
        }
        // Evidence (signatures, SBOMs, reports) right after the manifests, so an importer can
        // check it before pushing anything; then everything else. Each group by (size, digest).
        let evidence = self.evidence();
        rest.sort_by(|a, b| {
            (!evidence.contains(&a.digest), a.size, &a.digest).cmp(&(
                !evidence.contains(&b.digest),
                b.size,
                &b.digest,
            ))
        });
        rest.dedup_by(|a, b| a.digest == b.digest);
        blobs.extend(rest);
        (blobs, data)
    }
}
