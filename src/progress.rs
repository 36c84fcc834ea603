//! Progress events. The library only reports; the CLI decides whether and how to draw bars.
//!
//! A phase is the whole of one command's work in bytes (or items), counted once: a collect's
//! phase is the bundle's blob bytes as they are packed, not downloads plus packing. Work that
//! runs several at a time (blob downloads) is reported as tasks, each with its own total and
//! label, started when it starts, so a bar names what is running, not what last finished.
//! [`Tally`] is the accounting a drawer keeps.

use std::collections::BTreeMap;

/// Receives progress from long operations. Every method has a no-op default.
pub trait Reporter: Send + Sync {
    /// A new phase starts (`"pull"`, `"pack"`, `"verify"`, `"push"`), with its expected size.
    fn phase(&self, _name: &str, _total_bytes: u64) {}
    /// A new phase counted in items (references resolved, images scanned), not bytes.
    fn phase_items(&self, name: &str, total_items: u64) {
        self.phase(name, total_items)
    }
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
    /// A task (one blob download) starts: `id` names it in the calls that follow, `label` is
    /// for people, `total` its bytes. Tasks are not part of the phase's bytes.
    fn task_start(&self, _id: &str, _label: &str, _total: u64) {}
    /// Bytes of task `id` done.
    fn task_advance(&self, _id: &str, _bytes: u64) {}
    /// Bytes of task `id` to be done again.
    fn task_rewind(&self, _id: &str, _bytes: u64) {}
    /// Task `id` is over (done or failed).
    fn task_done(&self, _id: &str) {}
    /// A counted task starts (manifests pushed, tags set): like [`Reporter::task_start`] but
    /// in items, advanced with [`Reporter::task_advance`] and ended with
    /// [`Reporter::task_done`].
    fn count_start(&self, _id: &str, _label: &str, _total: u64) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Reporter for NoProgress {}

/// A task's view of a reporter: the plain byte events of code that knows nothing of tasks (a
/// blob download) become that task's.
pub struct Task<'a> {
    /// Where the events go.
    pub parent: &'a dyn Reporter,
    /// The task's id.
    pub id: &'a str,
}

impl Reporter for Task<'_> {
    fn advance(&self, bytes: u64) {
        self.parent.task_advance(self.id, bytes);
    }
    fn rewind(&self, bytes: u64) {
        self.parent.task_rewind(self.id, bytes);
    }
    fn warn(&self, message: &str) {
        self.parent.warn(message);
    }
}

/// A blob read inside a phase: its bytes count for the phase and for its own task (`id`), so
/// `verify` shows the phase and the blob being read.
pub struct TaskInPhase<'a> {
    /// Where the events go.
    pub parent: &'a dyn Reporter,
    /// The task's id.
    pub id: &'a str,
}

impl Reporter for TaskInPhase<'_> {
    fn advance(&self, bytes: u64) {
        self.parent.advance(bytes);
        self.parent.task_advance(self.id, bytes);
    }
    fn rewind(&self, bytes: u64) {
        self.parent.rewind(bytes);
        self.parent.task_rewind(self.id, bytes);
    }
    fn warn(&self, message: &str) {
        self.parent.warn(message);
    }
}

/// Passes on only warnings and item labels: for reading a bundle whose bytes are not the
/// progress being shown (an import counts a blob when the target has it, not when it is read).
pub struct Unsettled<'a>(pub &'a dyn Reporter);

impl Reporter for Unsettled<'_> {
    fn item(&self, label: &str) {
        self.0.item(label);
    }
    fn warn(&self, message: &str) {
        self.0.warn(message);
    }
}

/// The byte accounting behind task bars: each task's total counted once however often it is
/// started, its progress kept within `0..=total`.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    tasks: BTreeMap<String, TaskState>,
}

/// One task in a [`Tally`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    /// For people.
    pub label: String,
    /// Bytes expected.
    pub total: u64,
    /// Bytes done.
    pub done: u64,
    /// Over.
    pub finished: bool,
}

impl Tally {
    /// Starts task `id`; false (and nothing counted again) if it was already started.
    pub fn start(&mut self, id: &str, label: &str, total: u64) -> bool {
        if self.tasks.contains_key(id) {
            return false;
        }
        self.tasks.insert(
            id.to_owned(),
            TaskState {
                label: label.to_owned(),
                total,
                done: 0,
                finished: false,
            },
        );
        true
    }

    /// Adds `bytes` to task `id` (never past its total); its progress, if known.
    pub fn advance(&mut self, id: &str, bytes: u64) -> Option<u64> {
        let t = self.tasks.get_mut(id)?;
        t.done = t.done.saturating_add(bytes).min(t.total);
        Some(t.done)
    }

    /// Takes `bytes` back from task `id` (a retry); its progress, if known.
    pub fn rewind(&mut self, id: &str, bytes: u64) -> Option<u64> {
        let t = self.tasks.get_mut(id)?;
        t.done = t.done.saturating_sub(bytes);
        Some(t.done)
    }

    /// Marks task `id` over.
    pub fn finish(&mut self, id: &str) {
        if let Some(t) = self.tasks.get_mut(id) {
            t.finished = true;
        }
    }

    /// Sum of every task's total, each counted once.
    pub fn total(&self) -> u64 {
        self.tasks.values().map(|t| t.total).sum()
    }

    /// Sum of every task's progress.
    pub fn done(&self) -> u64 {
        self.tasks.values().map(|t| t.done).sum()
    }

    /// One task.
    pub fn get(&self, id: &str) -> Option<&TaskState> {
        self.tasks.get(id)
    }

    /// Labels of the tasks still running.
    pub fn running(&self) -> Vec<&str> {
        self.tasks
            .values()
            .filter(|t| !t.finished)
            .map(|t| t.label.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_counted_once_and_kept_within_its_total() {
        let mut t = Tally::default();
        assert!(t.start("a", "blob a", 100));
        assert!(
            !t.start("a", "blob a again", 100),
            "a second start counts nothing"
        );
        assert!(t.start("b", "blob b", 50));
        assert_eq!(t.total(), 150);
        assert_eq!(t.advance("a", 70), Some(70));
        assert_eq!(t.advance("a", 70), Some(100), "never past the total");
        assert_eq!(t.rewind("a", 30), Some(70));
        assert_eq!(t.advance("nope", 1), None);
        assert_eq!(t.done(), 70);
        t.finish("a");
        assert_eq!(t.running(), vec!["blob b"]);
    }

    #[test]
    fn a_task_view_turns_plain_bytes_into_task_bytes() {
        struct Rec(std::sync::Mutex<Tally>);
        impl Reporter for Rec {
            fn task_start(&self, id: &str, label: &str, total: u64) {
                self.0.lock().expect("lock").start(id, label, total);
            }
            fn task_advance(&self, id: &str, bytes: u64) {
                self.0.lock().expect("lock").advance(id, bytes);
            }
            fn task_rewind(&self, id: &str, bytes: u64) {
                self.0.lock().expect("lock").rewind(id, bytes);
            }
        }
        let r = Rec(std::sync::Mutex::new(Tally::default()));
        r.task_start("x", "x", 10);
        let task = Task {
            parent: &r,
            id: "x",
        };
        task.advance(8);
        task.rewind(3);
        task.advance(1);
        assert_eq!(r.0.lock().expect("lock").get("x").map(|t| t.done), Some(6));
    }
}
