//! The plan stage of an import: which target repositories lack which blob. It takes the
//! [`Needs`] the read stage sends once the gates passed, HEADs every (repository, blob) pair,
//! mounts a delta bundle's omitted blobs (or refuses the import), and only then lets the blob
//! stream through: each blob the target lacks goes on to the upload stage with the
//! repositories to put it in; one the target has everywhere is dropped here and counted.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::bundle::reader::BundleContents;
use crate::bundle::{Artifact, OmittedBlob};
use crate::oci::{Digest, RepoName};
use crate::registry::{Registry, Repo};

use super::read::Blob;
use super::upload::Upload;
use super::{reg, ImportError};

/// What the bundle asks of the target, known once every manifest is read and the gates
/// passed: the read stage's first value, the plan's input.
pub(super) struct Needs {
    /// Every blob of the admitted artifacts and the target repositories that need it.
    pub blobs: HashMap<Digest, Vec<Repo>>,
    /// A delta bundle's omitted blobs: never streamed, so mounted or refused here.
    pub omitted: Vec<OmittedBlob>,
}

/// What the target lacks: each blob and the repositories it must be put in.
pub(super) struct Plan {
    missing: HashMap<Digest, Vec<Repo>>,
}

/// The blobs `artifact`'s included manifests reference.
fn blobs_of(contents: &BundleContents, artifact: &Artifact) -> Vec<Digest> {
    let mut out = Vec::new();
    let roots = std::iter::once(&artifact.digest).chain(
        artifact
            .children
            .iter()
            .filter(|c| c.included)
            .map(|c| &c.digest),
    );
    for d in roots {
        if let Some((_, m)) = contents.manifests.get(d) {
            out.extend(m.blobs().map(|b| b.digest.clone()));
        }
    }
    out
}

/// Which repository needs which blob: every artifact (`repos[i]` is artifact `i`'s target)
/// except those the image policy left out (`skipped`, by artifact position).
pub(super) fn needs<T>(
    contents: &BundleContents,
    repos: &[Repo],
    skipped: &BTreeMap<usize, T>,
) -> Needs {
    let mut blobs: HashMap<Digest, Vec<Repo>> = HashMap::new();
    for (i, (a, repo)) in contents
        .manifest
        .artifacts
        .iter()
        .zip(repos.iter())
        .enumerate()
    {
        if skipped.contains_key(&i) {
            continue;
        }
        for d in blobs_of(contents, a) {
            let v = blobs.entry(d).or_default();
            if !v.contains(repo) {
                v.push(repo.clone());
            }
        }
    }
    Needs {
        blobs,
        omitted: contents.manifest.omitted.clone(),
    }
}

/// The (repository, blob) pairs of `needs` the target lacks, HEADed `jobs` at a time.
async fn head_missing(
    registry: &Registry,
    needs: HashMap<Digest, Vec<Repo>>,
    jobs: usize,
) -> Result<HashMap<Digest, Vec<Repo>>, ImportError> {
    let pairs: Vec<(Repo, Digest)> = needs
        .iter()
        .flat_map(|(d, repos)| repos.iter().map(move |r| (r.clone(), d.clone())))
        .collect();
    let present: HashSet<(Repo, Digest)> =
        stream::iter(pairs.into_iter().map(|(repo, d)| async move {
            let has = registry
                .blob_exists(&repo, &d)
                .await
                .map_err(reg(format!("checking {d} in {repo}")))?;
            Ok::<_, ImportError>(has.then_some((repo, d)))
        }))
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    Ok(needs
        .into_iter()
        .filter_map(|(d, repos)| {
            let lacking: Vec<Repo> = repos
                .into_iter()
                .filter(|r| !present.contains(&(r.clone(), d.clone())))
                .collect();
            (!lacking.is_empty()).then_some((d, lacking))
        })
        .collect())
}

/// A delta bundle leaves out blobs the site's receipt listed. Each must already be in every
/// target repository that needs it, or be mounted there from a repository that has it (another
/// target repository, or one the receipt names). Runs before any blob is uploaded and any
/// manifest pushed; refuses the import listing every omitted blob the target lacks.
async fn mount_omitted(
    registry: &Registry,
    needs: &HashMap<Digest, Vec<Repo>>,
    missing: &mut HashMap<Digest, Vec<Repo>>,
    omitted: &[OmittedBlob],
) -> Result<(), ImportError> {
    let mut lacking = Vec::new();
    for o in omitted {
        let Some(repos) = missing.remove(&o.digest) else {
            continue;
        };
        let have: Vec<&Repo> = needs
            .get(&o.digest)
            .map(|all| all.iter().filter(|r| !repos.contains(r)).collect())
            .unwrap_or_default();
        for repo in &repos {
            let mut sources: Vec<RepoName> = have.iter().map(|r| r.name.clone()).collect();
            sources.extend(o.repositories.iter().cloned());
            let mut mounted = false;
            for from in sources.iter().filter(|f| **f != repo.name) {
                // Mount only from where the blob really is: a registry may open an upload
                // instead, or (with some configurations) mount what it should not.
                let there = Repo::new(repo.registry.clone(), from.clone());
                if !registry
                    .blob_exists(&there, &o.digest)
                    .await
                    .map_err(reg(format!("checking {} in {there}", o.digest)))?
                {
                    continue;
                }
                if registry
                    .mount_blob(repo, &o.digest, from)
                    .await
                    .map_err(reg(format!("mounting {} into {repo}", o.digest)))?
                {
                    mounted = true;
                    break;
                }
            }
            if !mounted {
                lacking.push(format!("{} ({} bytes) for {repo}", o.digest, o.size));
            }
        }
    }
    if lacking.is_empty() {
        return Ok(());
    }
    Err(ImportError::OmittedMissing { missing: lacking })
}

/// Makes the plan: HEADs every needed (repository, blob) pair, then mounts the omitted blobs.
pub(super) async fn make(
    registry: &Registry,
    needs: Needs,
    jobs: usize,
) -> Result<Plan, ImportError> {
    let mut missing = head_missing(registry, needs.blobs.clone(), jobs).await?;
    mount_omitted(registry, &needs.blobs, &mut missing, &needs.omitted).await?;
    Ok(Plan { missing })
}

/// Where the streamed blob passing through the plan stage goes.
enum Passing {
    /// To the upload stage, chunk by chunk.
    Upload,
    /// Nowhere: the target has it. Its size counts once the reader verified it.
    Present(u64),
}

/// The plan stage: waits for the read stage's [`Needs`], makes the [`Plan`], then passes each
/// blob the target lacks to the upload stage (in bundle order, through the bounded `to_upload`
/// queue) and drops the others. A blob already in the target counts on the import's bar
/// once the reader verified it. Returns how many blobs the target already had.
pub(super) async fn run(
    registry: &Registry,
    needs: tokio::sync::oneshot::Receiver<Needs>,
    mut blobs: tokio::sync::mpsc::Receiver<Blob>,
    to_upload: tokio::sync::mpsc::Sender<Upload>,
    jobs: usize,
    reporter: &dyn crate::progress::Reporter,
) -> Result<usize, ImportError> {
    // No needs: the read stage stopped before the gates passed, and its error says why.
    let needs = needs.await.map_err(|_| ImportError::UploadStopped)?;
    let mut plan = make(registry, needs, jobs).await?;
    let mut present = 0;
    let mut passing = Passing::Upload;
    let send = |u: Upload| {
        let to_upload = &to_upload;
        async move {
            to_upload
                .send(u)
                .await
                .map_err(|_| ImportError::UploadStopped)
        }
    };
    while let Some(blob) = blobs.recv().await {
        match blob {
            Blob::Whole { entry, bytes } => match plan.missing.remove(&entry.digest) {
                Some(repos) => {
                    send(Upload::Whole {
                        entry,
                        repos,
                        bytes,
                    })
                    .await?
                }
                None => {
                    present += 1;
                    reporter.advance(entry.size);
                }
            },
            Blob::Start { entry } => match plan.missing.remove(&entry.digest) {
                Some(repos) => {
                    passing = Passing::Upload;
                    send(Upload::Start { entry, repos }).await?
                }
                None => passing = Passing::Present(entry.size),
            },
            // The target has it: it is still read and checked (the upload stage does that),
            // so a bad bundle fails as it would have if the blob were needed.
            Blob::Located { entry, offset } => match plan.missing.remove(&entry.digest) {
                Some(repos) => {
                    send(Upload::Located {
                        entry,
                        repos,
                        offset,
                    })
                    .await?
                }
                None => {
                    present += 1;
                    send(Upload::Check { entry, offset }).await?
                }
            },
            Blob::Chunk(chunk) => {
                if let Passing::Upload = passing {
                    send(Upload::Chunk(chunk)).await?
                }
            }
            Blob::End { verified } => match passing {
                Passing::Upload => send(Upload::End { verified }).await?,
                Passing::Present(size) => {
                    if verified {
                        present += 1;
                        reporter.advance(size);
                    }
                }
            },
        }
    }
    Ok(present)
}
