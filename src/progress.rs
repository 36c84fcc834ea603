//! Progress events. The library only reports; the CLI decides whether and how to draw bars.

/// Receives progress from long operations. Every method has a no-op default.
pub trait Reporter: Send + Sync {
    /// A new phase starts (`"pull"`, `"pack"`, `"verify"`, `"push"`), with its expected size.
    fn phase(&self, _name: &str, _total_bytes: u64) {}
    /// Bytes done in the current phase.
    fn advance(&self, _bytes: u64) {}
    /// Bytes that must be done again (a retried download).
    fn rewind(&self, _bytes: u64) {}
    /// One item (blob, artifact) finished; `label` is for people.
    fn item(&self, _label: &str) {}
    /// Something the user should know that is not an error.
    fn warn(&self, _message: &str) {}
    /// The current phase is over.
    fn finish_phase(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Reporter for NoProgress {}
