//! The wait registry: every thread that is about to *sleep* in a primitive publishes what it
//! waits for (operation, object, since when, which tracked locks it holds). A watchdog that sees
//! no progress turns a snapshot of this registry into a hang report instead of "timed out".
//!
//! Only the slow path (a thread that is really going to sleep) registers, so the cost is one
//! short bookkeeping lock per sleep. Under a model engine the registry is empty: the engine
//! itself reports deadlocks.

#[cfg(not(any(loom, shuttle)))]
use super::held;
use crate::sync::time::Instant;
#[cfg(not(any(loom, shuttle)))]
use crate::sync::{book_lock, current_thread_id, BookMutex};

/// What one sleeping thread waits for.
#[derive(Clone, Debug)]
pub struct WaitEntry {
    /// [`crate::sync::current_thread_id`] of the waiter.
    pub thread: u64,
    /// The OS thread's name, if it has one.
    pub thread_name: Option<String>,
    /// The operation, e.g. `"MVar::take"`.
    pub op: &'static str,
    /// Address of the object waited on (identifies it within the process).
    pub object: usize,
    /// When the wait started.
    pub since: Instant,
    /// Classes of the tracked locks the waiter holds, outermost first.
    pub holding: Vec<&'static str>,
    /// Identities of those locks (the `object` a thread waiting for one of them registers),
    /// so a watchdog can follow "waits for a lock held by" edges into a wait-for graph.
    pub holding_objects: Vec<usize>,
}

impl WaitEntry {
    /// One line for a hang report: "thread #7 (name) sleeps in MVar::take on object 0x… for
    /// 120 ms, holding [\"odb\"]".
    pub fn describe(&self) -> String {
        format!(
            "thread #{}{} sleeps in {} on object {:#x} for {:.0} ms, holding {:?}",
            self.thread,
            self.thread_name
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            self.op,
            self.object,
            self.since.elapsed().as_secs_f64() * 1e3,
            self.holding
        )
    }
}

/// Removes its entry from the registry when dropped.
#[must_use]
pub struct WaitToken {
    #[cfg(not(any(loom, shuttle)))]
    thread: u64,
}

#[cfg(not(any(loom, shuttle)))]
static REGISTRY: BookMutex<Vec<WaitEntry>> = BookMutex::new(Vec::new());

/// Registers the calling thread as waiting in `op` on `object` until the token is dropped.
pub fn enter<T: ?Sized>(op: &'static str, object: &T) -> WaitToken {
    #[cfg(not(any(loom, shuttle)))]
    {
        let thread = current_thread_id();
        let held = held::held_locks();
        let entry = WaitEntry {
            thread,
            thread_name: std::thread::current().name().map(str::to_owned),
            op,
            object: object as *const T as *const () as usize,
            since: Instant::now(),
            holding: held.iter().map(|h| h.0).collect(),
            holding_objects: held.iter().map(|h| h.1).collect(),
        };
        let mut reg = book_lock(&REGISTRY);
        reg.retain(|e| e.thread != thread);
        reg.push(entry);
        WaitToken { thread }
    }
    #[cfg(any(loom, shuttle))]
    {
        let _ = (op, object);
        WaitToken {}
    }
}

impl Drop for WaitToken {
    fn drop(&mut self) {
        #[cfg(not(any(loom, shuttle)))]
        book_lock(&REGISTRY).retain(|e| e.thread != self.thread);
    }
}

/// A copy of the current registry, longest waiter first.
pub fn snapshot() -> Vec<WaitEntry> {
    #[cfg(not(any(loom, shuttle)))]
    {
        let mut v = book_lock(&REGISTRY).clone();
        v.sort_by_key(|e| e.since);
        v
    }
    #[cfg(any(loom, shuttle))]
    Vec::new()
}
