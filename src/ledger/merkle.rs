//! RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.
//!
//! * leaf hash `SHA-256(0x00 ‖ bytes)`, node hash `SHA-256(0x01 ‖ left ‖ right)`, the empty
//!   tree hashes to `SHA-256("")` ([RFC 9162 §2.1.1]).
//! * [`Tree`] keeps every complete-subtree hash, so the root of any prefix, inclusion proofs
//!   ([RFC 9162 §2.1.3]) and consistency proofs ([RFC 9162 §2.1.4]) cost O(log n) hashes.
//! * [`Frontier`] keeps only the O(log n) hashes needed to append and compute the root: it is
//!   what the ledger persists so that an append never rehashes the log.
//! * [`verify_inclusion`] and [`verify_consistency`] follow the algorithms of RFC 9162 and the
//!   error semantics of `transparency-dev/merkle`'s `proof` package (whose test vectors they
//!   pass), including rejecting consistency proofs from an empty tree.
//!
//! [RFC 9162 §2.1.1]: https://www.rfc-editor.org/rfc/rfc9162.html#section-2.1.1
//! [RFC 9162 §2.1.3]: https://www.rfc-editor.org/rfc/rfc9162.html#section-2.1.3
//! [RFC 9162 §2.1.4]: https://www.rfc-editor.org/rfc/rfc9162.html#section-2.1.4

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, a node hash or a root.
pub type Hash = [u8; 32];

/// Hash of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// RFC 6962 leaf hash: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 interior node hash: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Why a proof was rejected or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("index {index} is not inside a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The proof has the wrong number of hashes for the sizes given.
    #[error("proof has {got} hashes, a proof for these sizes has {want}")]
    WrongProofSize {
        /// Hashes in the proof.
        got: usize,
        /// Hashes a correct proof has.
        want: usize,
    },
    /// The root computed from the proof is not the root given.
    #[error("computed root {computed} does not match the expected root {expected}")]
    RootMismatch {
        /// Base64 of the root computed from the proof.
        computed: String,
        /// Base64 of the root the caller expected.
        expected: String,
    },
    /// The newer tree is smaller than the older one.
    #[error("tree size went down from {size1} to {size2}")]
    SizeDecreased {
        /// Older size.
        size1: u64,
        /// Newer size.
        size2: u64,
    },
    /// A consistency proof from the empty tree proves nothing and is rejected.
    #[error("a consistency proof from an empty tree proves nothing")]
    EmptyOldTree,
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn check_match(computed: &Hash, expected: &[u8]) -> Result<(), ProofError> {
    if computed.as_slice() == expected {
        Ok(())
    } else {
        Err(ProofError::RootMismatch {
            computed: b64(computed),
            expected: b64(expected),
        })
    }
}

/// Largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Splits an inclusion proof for `index` in a tree of `size` into the number of "inner" hashes
/// (below the point where the paths to `index` and to `size - 1` diverge) and "border" hashes.
fn decomp_incl_proof(index: u64, size: u64) -> (usize, usize) {
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    (inner, border)
}

fn chain_inner(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    let mut acc = seed;
    for (i, h) in proof.iter().enumerate() {
        acc = if (index >> i) & 1 == 0 {
            node_hash(&acc, h)
        } else {
            node_hash(h, &acc)
        };
    }
    acc
}

fn chain_inner_right(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    let mut acc = seed;
    for (i, h) in proof.iter().enumerate() {
        if (index >> i) & 1 == 1 {
            acc = node_hash(h, &acc);
        }
    }
    acc
}

fn chain_border_right(seed: Hash, proof: &[Hash]) -> Hash {
    proof.iter().fold(seed, |acc, h| node_hash(h, &acc))
}

/// Computes the root implied by an inclusion proof for the leaf at `index` in a tree of `size`.
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decomp_incl_proof(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::WrongProofSize {
            got: proof.len(),
            want: inner + border,
        });
    }
    let res = chain_inner(*leaf, &proof[..inner], index);
    Ok(chain_border_right(res, &proof[inner..]))
}

/// Verifies that `leaf` is the leaf hash at `index` in the tree of `size` whose root is `root`.
///
/// `root` is a byte slice so that a root of the wrong length is simply a mismatch.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &[u8],
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(index, size, leaf, proof)?;
    check_match(&computed, root)
}

/// Verifies that the tree of `size2` with root `root2` extends the tree of `size1` with root
/// `root1` (RFC 9162 §2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots. A proof from the empty tree (`size1 == 0`)
/// is rejected as [`ProofError::EmptyOldTree`], as in `transparency-dev/merkle`: every tree
/// extends the empty tree, so such a "proof" says nothing; callers that hold a size-0
/// checkpoint check its root against [`empty_root`] themselves.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size2 < size1 {
        return Err(ProofError::SizeDecreased { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofSize {
                got: proof.len(),
                want: 0,
            });
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch {
                computed: b64(root1),
                expected: b64(root2),
            })
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongProofSize { got: 0, want: 1 });
    }
    let (inner, border) = decomp_incl_proof(size1 - 1, size2);
    let shift = size1.trailing_zeros() as usize;
    let inner = inner - shift; // shift < inner because size1 < size2
    let (seed, rest) = if size1 == 1u64 << shift {
        let Ok(seed) = Hash::try_from(root1) else {
            return Err(ProofError::RootMismatch {
                computed: String::new(),
                expected: b64(root1),
            });
        };
        (seed, proof)
    } else {
        (proof[0], &proof[1..])
    };
    let want = proof.len() - rest.len() + inner + border;
    if proof.len() != want {
        return Err(ProofError::WrongProofSize {
            got: proof.len(),
            want,
        });
    }
    let mask = (size1 - 1) >> shift;
    let hash1 = chain_border_right(
        chain_inner_right(seed, &rest[..inner], mask),
        &rest[inner..],
    );
    check_match(&hash1, root1)?;
    let hash2 = chain_border_right(chain_inner(seed, &rest[..inner], mask), &rest[inner..]);
    check_match(&hash2, root2)
}

/// Root of a list of leaf hashes, computed directly from the RFC 6962 definition (`MTH`).
/// O(n); used to cross-check the incremental structures.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// An in-memory tree that keeps every complete-subtree hash (about 2n hashes): appends are
/// amortised O(1), and roots of any prefix, inclusion and consistency proofs are O(log n)
/// (O(log² n) hash look-ups, no rehashing of leaves).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// `levels[h][i]` is the hash of the perfect subtree of leaves `[i·2^h, (i+1)·2^h)`.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a tree from leaf hashes.
    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut t = Self::new();
        for l in leaves {
            t.push_leaf_hash(l);
        }
        t
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends the leaf whose data is `data`; returns its index.
    pub fn push(&mut self, data: &[u8]) -> u64 {
        self.push_leaf_hash(leaf_hash(data))
    }

    /// Appends a leaf hash; returns its index.
    pub fn push_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let index = self.size();
        let mut h = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(h);
            let len = self.levels[level].len();
            if len % 2 == 1 {
                break;
            }
            h = node_hash(&self.levels[level][len - 2], &self.levels[level][len - 1]);
            level += 1;
        }
        index
    }

    /// The leaf hash at `index`, if inside the tree.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels
            .first()
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
    }

    /// Root of the first `size` leaves, or `None` if `size` is larger than the tree.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        root_at(self, size)
    }

    /// Root of the whole tree.
    pub fn root(&self) -> Hash {
        range_hash(self, 0, self.size())
    }

    /// Inclusion proof for leaf `index` in the tree of the first `size` leaves
    /// (RFC 9162 §2.1.3.1), from the leaf's sibling up to the root's child.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        inclusion_proof(self, index, size)
    }

    /// Consistency proof from the tree of the first `size1` leaves to that of the first
    /// `size2` (RFC 9162 §2.1.4.1). Empty when `size1` is 0 or equal to `size2`.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        consistency_proof(self, size1, size2)
    }
}

impl Subtrees for Tree {
    fn size(&self) -> u64 {
        Tree::size(self)
    }

    fn subtree(&self, level: u32, index: u64) -> Hash {
        self.levels[level as usize][index as usize]
    }
}

/// Where the hashes of perfect subtrees come from: memory ([`Tree`]) or a file of stored
/// hashes (the ledger's `tree-hashes`). Roots and proofs need only these, O(log² n) of them.
pub trait Subtrees {
    /// Number of leaves.
    fn size(&self) -> u64;
    /// Hash of the perfect subtree over leaves `[index·2^level, (index+1)·2^level)`, which
    /// lies inside the tree. A store that cannot read it returns any value and remembers the
    /// failure: every proof made from a store is checked against a signed root before use.
    fn subtree(&self, level: u32, index: u64) -> Hash;
}

/// `MTH(D[start:end])`; `start` is aligned as in the RFC 6962 recursion.
fn range_hash<S: Subtrees + ?Sized>(t: &S, start: u64, end: u64) -> Hash {
    let n = end - start;
    if n == 0 {
        return empty_root();
    }
    if n.is_power_of_two() && start & (n - 1) == 0 {
        let level = n.trailing_zeros();
        return t.subtree(level, start >> level);
    }
    let k = split_point(n);
    node_hash(
        &range_hash(t, start, start + k),
        &range_hash(t, start + k, end),
    )
}

/// Root of the first `size` leaves of `t`, or `None` if `size` is larger than the tree.
pub fn root_at<S: Subtrees + ?Sized>(t: &S, size: u64) -> Option<Hash> {
    (size <= t.size()).then(|| range_hash(t, 0, size))
}

/// Inclusion proof for leaf `index` in the tree of the first `size` leaves of `t`
/// (RFC 9162 §2.1.3.1), from the leaf's sibling up to the root's child.
pub fn inclusion_proof<S: Subtrees + ?Sized>(
    t: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size || size > t.size() {
        return Err(ProofError::IndexOutOfRange {
            index,
            size: size.min(t.size()),
        });
    }
    let mut proof = Vec::new();
    path(t, index, 0, size, &mut proof);
    Ok(proof)
}

fn path<S: Subtrees + ?Sized>(t: &S, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(t, m, start, start + k, out);
        out.push(range_hash(t, start + k, end));
    } else {
        path(t, m - k, start + k, end, out);
        out.push(range_hash(t, start, start + k));
    }
}

/// Consistency proof from the tree of the first `size1` leaves of `t` to that of the first
/// `size2` (RFC 9162 §2.1.4.1). Empty when `size1` is 0 or equal to `size2`.
pub fn consistency_proof<S: Subtrees + ?Sized>(
    t: &S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, ProofError> {
    if size2 > t.size() {
        return Err(ProofError::IndexOutOfRange {
            index: size2,
            size: t.size(),
        });
    }
    if size1 > size2 {
        return Err(ProofError::SizeDecreased { size1, size2 });
    }
    let mut proof = Vec::new();
    if size1 > 0 && size1 < size2 {
        subproof(t, size1, 0, size2, true, &mut proof);
    }
    Ok(proof)
}

fn subproof<S: Subtrees + ?Sized>(
    t: &S,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) {
    let n = end - start;
    if m == n {
        if !complete {
            out.push(range_hash(t, start, end));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(t, m, start, start + k, complete, out);
        out.push(range_hash(t, start + k, end));
    } else {
        subproof(t, m - k, start + k, end, false, out);
        out.push(range_hash(t, start, start + k));
    }
}

/// Position of the perfect subtree `(level, index)` in the stored-hash order: the order in
/// which an append-only log completes subtrees (leaf `n`, then every subtree that leaf
/// completes, lowest first), as in Go's `golang.org/x/mod/sumdb/tlog`. A file of hashes in
/// this order grows by appends only and serves any subtree with one seek.
pub fn stored_hash_index(level: u32, index: u64) -> u64 {
    // The subtree is completed by its last leaf, `(index + 1)·2^level − 1`; before that
    // leaf's hash come 2·leaf − popcount(leaf) hashes, then the `level` hashes it completes
    // below this one.
    let leaf = ((index + 1) << level) - 1;
    2 * leaf - u64::from(leaf.count_ones()) + u64::from(level)
}

/// Number of hashes stored for a tree of `size` leaves (see [`stored_hash_index`]).
pub fn stored_hash_count(size: u64) -> u64 {
    2 * size - u64::from(size.count_ones())
}

/// The right edge of a tree: the roots of its perfect subtrees, largest first (one per set bit
/// of the size). Enough to append a leaf and compute the new root in O(log n).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a frontier from its parts; `None` if `hashes` does not have one hash per set
    /// bit of `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        (hashes.len() == size.count_ones() as usize).then_some(Self { size, hashes })
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree roots, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_stored(leaf, |_| {});
    }

    /// Appends a leaf hash, handing `stored` each hash the append completes in stored-hash
    /// order (the leaf, then each subtree it completes; see [`stored_hash_index`]).
    pub fn push_stored(&mut self, leaf: Hash, mut stored: impl FnMut(&Hash)) {
        stored(&leaf);
        let mut h = leaf;
        let mut s = self.size;
        while s & 1 == 1 {
            // Invariant: one stored hash per set bit of `size`, so a set bit has a hash.
            let left = self
                .hashes
                .pop()
                .expect("frontier has a hash for every set bit");
            h = node_hash(&left, &h);
            stored(&h);
            s >>= 1;
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// Root of the covered tree.
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(last) => it.fold(*last, |acc, h| node_hash(h, &acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn tree_frontier_and_definition_agree() {
        let ls = leaves(70);
        let mut t = Tree::new();
        let mut f = Frontier::new();
        assert_eq!(t.root(), empty_root());
        assert_eq!(f.root(), empty_root());
        for (i, l) in ls.iter().enumerate() {
            t.push_leaf_hash(*l);
            f.push(*l);
            let want = root_of(&ls[..=i]);
            assert_eq!(t.root(), want, "size {}", i + 1);
            assert_eq!(f.root(), want, "size {}", i + 1);
            assert_eq!(
                Frontier::from_parts(f.size(), f.hashes().to_vec()),
                Some(f.clone())
            );
        }
        for s in 0..=70 {
            assert_eq!(t.root_at(s), Some(root_of(&ls[..s as usize])));
        }
        assert_eq!(t.root_at(71), None);
    }

    #[test]
    fn generated_proofs_verify_and_tampered_ones_do_not() {
        let ls = leaves(33);
        let t = Tree::from_leaf_hashes(ls.iter().copied());
        for size in 1..=33u64 {
            let root = t.root_at(size).unwrap();
            for i in 0..size {
                let p = t.inclusion_proof(i, size).unwrap();
                verify_inclusion(i, size, &ls[i as usize], &p, &root).unwrap();
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(verify_inclusion(i, size, &ls[i as usize], &bad, &root).is_err());
                    // A sibling is not the leaf.
                    assert!(verify_inclusion(i, size, first, &p, &root).is_err());
                }
            }
            for s1 in 1..=size {
                let p = t.consistency_proof(s1, size).unwrap();
                let r1 = t.root_at(s1).unwrap();
                verify_consistency(s1, size, &p, &r1, &root).unwrap();
                if !p.is_empty() {
                    let mut bad = p.clone();
                    let last = bad.len() - 1;
                    bad[last][5] ^= 0x80;
                    assert!(verify_consistency(s1, size, &bad, &r1, &root).is_err());
                }
            }
        }
    }
}
