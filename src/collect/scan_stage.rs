//! The scan stage of `collect` (with a scan policy): each image platform is scanned as soon as
//! the blobs it needs are in the cache, while the rest still download. The download stage hands
//! over each blob as it finishes; a scan runs on a thread of its own, a few at a time; the
//! results come back in target order whatever order the scans finished in, so the evidence
//! (and the bundle) does not depend on it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use super::download::{self, download_stage};
use super::CollectError;
use crate::oci::{Descriptor, Digest};
use crate::progress::Reporter;
use crate::registry::{Registry, Repo};
use crate::scan::image::Target;

/// The blobs a scan reads: the config (for the platform and Trivy's layout) and the layers.
fn needs(t: &Target) -> impl Iterator<Item = &Digest> {
    t.config.iter().chain(t.layers.iter()).map(|d| &d.digest)
}

/// Which targets still wait for which downloads; a target is ready when it waits for none.
struct Waiting {
    /// Per target, the blobs it still waits for.
    left: Vec<HashSet<Digest>>,
    /// Per blob being downloaded, the targets that wait for it.
    wanted_by: HashMap<Digest, Vec<usize>>,
}

impl Waiting {
    /// What each of `targets` waits for among `downloading`, and the targets ready already.
    fn new(targets: &[Target], downloading: &HashSet<Digest>) -> (Self, VecDeque<usize>) {
        let mut w = Waiting {
            left: Vec::with_capacity(targets.len()),
            wanted_by: HashMap::new(),
        };
        let mut ready = VecDeque::new();
        for (i, t) in targets.iter().enumerate() {
            let left: HashSet<Digest> = needs(t)
                .filter(|d| downloading.contains(*d))
                .cloned()
                .collect();
            for d in &left {
                w.wanted_by.entry(d.clone()).or_default().push(i);
            }
            if left.is_empty() {
                ready.push_back(i);
            }
            w.left.push(left);
        }
        (w, ready)
    }

    /// `digest` is in the cache: the targets this made ready, in target order.
    fn arrived(&mut self, digest: &Digest) -> Vec<usize> {
        let mut ready = Vec::new();
        for i in self.wanted_by.remove(digest).unwrap_or_default() {
            if let Some(left) = self.left.get_mut(i) {
                if left.remove(digest) && left.is_empty() {
                    ready.push(i);
                }
            }
        }
        ready
    }
}

/// Downloads `missing` into `cache` and scans each of `targets` with `scan` as soon as its
/// blobs are there (those already in the cache at once), at most `at_once` scans at a time on
/// threads of their own. Returns the results in target order; the first error (a download or
/// a scan) stops both.
#[allow(clippy::too_many_arguments)]
pub(super) fn download_and_scan<T: Send>(
    registry: &Registry,
    cache: &Path,
    missing: Vec<(Digest, Descriptor, Repo)>,
    jobs: usize,
    targets: &[Target],
    at_once: usize,
    scan: &(dyn Fn(&Target) -> Result<T, CollectError> + Sync),
    reporter: &dyn Reporter,
) -> Result<Vec<T>, CollectError> {
    let downloading: HashSet<Digest> = missing.iter().map(|(d, _, _)| d.clone()).collect();
    let (mut waiting, mut ready) = Waiting::new(targets, &downloading);
    let (downloaded, mut downloads) = download::queue(missing.len());
    // At most `at_once` scans run, each sends one result: the queue never fills.
    let at_once = at_once.max(1);
    let (scanned, mut results) =
        tokio::sync::mpsc::channel::<(usize, Result<T, CollectError>)>(at_once);
    let rt = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let scan_stage = async {
                let mut out: Vec<Option<T>> = targets.iter().map(|_| None).collect();
                let mut running = 0;
                let mut downloading = true;
                loop {
                    while running < at_once {
                        let Some(i) = ready.pop_front() else { break };
                        let Some(target) = targets.get(i) else { break };
                        let scanned = scanned.clone();
                        scope.spawn(move || {
                            // Nobody to tell when the stage has stopped on an error already.
                            let _ = scanned.blocking_send((i, scan(target)));
                        });
                        running += 1;
                    }
                    if running == 0 && !downloading {
                        break;
                    }
                    tokio::select! {
                        d = downloads.recv(), if downloading => match d {
                            // Taking it gives its share of the download-ahead budget back.
                            Some(d) => ready.extend(waiting.arrived(&d.digest)),
                            None => downloading = false,
                        },
                        Some((i, r)) = results.recv() => {
                            running -= 1;
                            if let Some(slot) = out.get_mut(i) {
                                *slot = Some(r?);
                            }
                        }
                        // Not reached: this stage holds a sender of `results` itself.
                        else => break,
                    }
                }
                // Every target was ready once every download was in; each was scanned.
                out.into_iter()
                    .zip(targets)
                    .map(|(r, t)| {
                        r.ok_or_else(|| {
                            CollectError::Scan(format!(
                                "internal: {} ({}) was not scanned",
                                t.name, t.digest
                            ))
                        })
                    })
                    .collect::<Result<Vec<T>, CollectError>>()
            };
            let download_stage =
                download_stage(registry, cache, missing, jobs, downloaded, reporter);
            rt.block_on(async {
                let ((), out) = tokio::try_join!(download_stage, scan_stage)?;
                Ok(out)
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(d: &Digest) -> Descriptor {
        Descriptor {
            media_type: crate::oci::media::OCI_LAYER_GZIP.into(),
            digest: d.clone(),
            size: 1,
            urls: Vec::new(),
            platform: None,
            annotations: Default::default(),
            artifact_type: None,
        }
    }

    fn target(name: &str, config: &Digest, layers: &[&Digest]) -> Target {
        Target {
            name: name.into(),
            digest: Digest::of(name.as_bytes()),
            index: None,
            platform: None,
            layers: layers.iter().map(|d| desc(d)).collect(),
            config: Some(desc(config)),
            manifest: Default::default(),
        }
    }

    /// A target whose blobs are all cached is ready at once; one waiting for downloads is
    /// ready when the last of them is in, whatever their order; a blob two targets share
    /// counts for both.
    #[test]
    fn a_target_is_ready_when_its_last_blob_is_in() {
        let [c1, c2, base, top, other] =
            ["c1", "c2", "base", "top", "x"].map(|x| Digest::of(x.as_bytes()));
        let targets = [
            target("cached", &c1, &[&base]),
            target("two", &c2, &[&base, &top]),
            target("one", &c1, &[&top]),
        ];
        let downloading: HashSet<Digest> = [&c2, &top].into_iter().cloned().collect();
        let (mut w, ready) = Waiting::new(&targets, &downloading);
        assert_eq!(ready, [0]);
        assert!(w.arrived(&other).is_empty(), "no target waits for it");
        assert_eq!(w.arrived(&top), [2], "`one` needed only `top`");
        assert_eq!(w.arrived(&c2), [1]);
        assert!(w.arrived(&c2).is_empty(), "counted once");
    }
}
