//! The reference lock behind the seam: `primitives::lock::SharedReentrantLock` (robust, names
//! its holder, reentrant, counts its takeovers). Its guards borrow the lock; this handle keeps
//! them in a stack so that the seam's acquire/release pair can drive it.

use super::LockHandle;
use crate::procs::impls::{Status, Wait};
use primitives::lock::{SharedGuard, SharedLockError, SharedReentrantLock};
use primitives::shm::ShmName;
use std::cell::RefCell;
use std::time::Duration;

/// A process's handle on a reference lock.
pub struct RefLock {
    /// The acquisitions held, innermost last. Declared before `lock`, and emptied in `Drop`:
    /// no guard outlives the lock it borrows.
    guards: RefCell<Vec<SharedGuard<'static>>>,
    lock: Box<SharedReentrantLock>,
}

fn parse(name: &str) -> Result<ShmName, String> {
    ShmName::parse(name).map_err(|e| format!("bad segment name: {e}"))
}

impl RefLock {
    /// Creates the lock `name` for up to `participants` processes and threads (it stays until
    /// [`RefLock::destroy`]).
    pub fn create(name: &str, participants: u32) -> Result<RefLock, String> {
        let n = parse(name)?;
        let lock = SharedReentrantLock::create_with_participants(&n, participants)
            .map_err(|e| format!("cannot create lock {n}: {e}"))?;
        // The lock outlives this handle: `destroy` removes it (the runner's, on every exit
        // path).
        lock.segment().set_unlink_on_drop(false);
        Ok(RefLock::new(lock))
    }

    /// Opens the lock `name`.
    pub fn open(name: &str) -> Result<RefLock, String> {
        let n = parse(name)?;
        SharedReentrantLock::open(&n)
            .map(RefLock::new)
            .map_err(|e| format!("cannot open {n}: {e}"))
    }

    /// Opens the lock `name` as the control `lock-no-recovery` does: a dead holder's lock is
    /// never taken over.
    pub fn open_without_recovery(name: &str) -> Result<RefLock, String> {
        let n = parse(name)?;
        SharedReentrantLock::open(&n)
            .map(|l| RefLock::new(l.without_recovery()))
            .map_err(|e| format!("cannot open {n}: {e}"))
    }

    /// Unlinks the lock `name`'s segment.
    pub fn destroy(name: &str) {
        if let Ok(c) = std::ffi::CString::new(name) {
            // SAFETY: a valid C string; a failure (already gone) changes nothing.
            unsafe { libc::shm_unlink(c.as_ptr()) };
        }
    }

    fn new(lock: SharedReentrantLock) -> RefLock {
        RefLock {
            guards: RefCell::new(Vec::new()),
            lock: Box::new(lock),
        }
    }
}

impl LockHandle for RefLock {
    fn acquire(&self, wait: Wait) -> Status {
        // SAFETY: the lock is boxed (its address never changes) and outlives every guard
        // borrowing it: guards live only in `self.guards`, emptied before the box is dropped.
        let lock: &'static SharedReentrantLock = unsafe { &*(&*self.lock as *const _) };
        let got = match wait {
            None => lock.lock(),
            Some(Duration::ZERO) => lock.try_lock(),
            Some(d) => lock.lock_timeout(d),
        };
        match got {
            Ok(g) => {
                let died = g.recovered().is_some();
                self.guards.borrow_mut().push(g);
                if died {
                    Status::OwnerDied
                } else {
                    Status::Ok
                }
            }
            Err(SharedLockError::Timeout) => Status::Timeout,
            Err(e) => Status::Error(e.to_string()),
        }
    }

    fn release(&self) -> Status {
        match self.guards.borrow_mut().pop() {
            Some(g) => {
                drop(g);
                Status::Ok
            }
            None => Status::Error("release without an acquisition".into()),
        }
    }

    fn holder(&self) -> Option<Option<u32>> {
        Some(self.lock.owner().map(|w| w.pid))
    }

    fn takeovers(&self) -> Option<u64> {
        Some(self.lock.recoveries())
    }
}

impl Drop for RefLock {
    fn drop(&mut self) {
        // Innermost first, before the box goes.
        while self.guards.get_mut().pop().is_some() {}
    }
}
