//! `shared` (lock): this suite's own robust `primitives::lock::SharedReentrantLock`, plugged in
//! through the public `CrossLock` trait exactly as a user's type would go (registry, re-executed
//! workers, `--impl shared`). The per-process handle is torture's own `ReferenceLock` (the
//! lock's guards kept as a stack behind the acquire/release pair). ROBUST, HOLDER, REENTRANT.

use torture::{CrossLock, LockCaps, LockHandle, ReferenceLock};

/// Participant slots of a lock (live processes and threads at once, replacements included).
const PARTICIPANTS: u32 = 1024;

/// The implementation.
pub struct SharedLock;

impl CrossLock for SharedLock {
    fn caps(&self) -> LockCaps {
        LockCaps::ALL
    }
    fn create(&self, name: &str) -> Result<(), String> {
        // The segment stays until `destroy` (the runner's, on every exit path).
        ReferenceLock::create(name, PARTICIPANTS).map(drop)
    }
    fn open(&self, name: &str) -> Result<Box<dyn LockHandle>, String> {
        Ok(Box::new(ReferenceLock::open(name)?))
    }
    fn destroy(&self, name: &str) {
        ReferenceLock::destroy(name);
    }
}
