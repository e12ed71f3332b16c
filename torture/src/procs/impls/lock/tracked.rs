//! A worker's lock: an implementation's handle under torture's lock-order validator. Each
//! acquisition is checked *before* it may block ([`LockClass::before_acquire`]), recorded as
//! held once got, and released by dropping its [`Held`] — also when the validator's panic
//! unwinds — so the validator and the track hooks (a staged log message is delivered at the
//! outermost release) see any implementation exactly as they see this crate's own locks.

use super::LockHandle;
use crate::procs::impls::{Status, Wait};
use primitives::lock::LockClass;

/// An open lock and its validator class.
pub struct Tracked {
    handle: Box<dyn LockHandle>,
    class: LockClass,
}

/// What an acquisition that did not fail got.
pub enum Got<'a> {
    /// The lock, held until dropped; `true` if it was taken over from a dead holder
    /// (`OWNER_DIED`: what it protects may be half-updated).
    Held(Held<'a>, bool),
    /// The wait ran out.
    TimedOut,
}

impl Tracked {
    /// `handle` checked as `class`.
    pub fn new(handle: Box<dyn LockHandle>, class: LockClass) -> Tracked {
        Tracked { handle, class }
    }

    /// The handle (its holder, its takeover count).
    pub fn handle(&self) -> &dyn LockHandle {
        &*self.handle
    }

    /// The lock's identity for the validator: the handle's address, unique while it lives.
    fn id(&self) -> usize {
        &*self.handle as *const dyn LockHandle as *const () as usize
    }

    /// Acquires the lock within `wait`; the validator's chains name the caller's line. An
    /// implementation's error is the error's text.
    #[track_caller]
    pub fn acquire(&self, wait: Wait) -> Result<Got<'_>, String> {
        self.class.before_acquire(self.id());
        match self.handle.acquire(wait) {
            s @ (Status::Ok | Status::OwnerDied) => {
                self.class.acquired(self.id());
                Ok(Got::Held(Held(self), s == Status::OwnerDied))
            }
            Status::Timeout => Ok(Got::TimedOut),
            Status::Error(e) => Err(e),
        }
    }
}

/// One acquisition; dropping it releases the lock.
#[must_use = "the lock is released when this is dropped"]
pub struct Held<'a>(&'a Tracked);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // A release the implementation refuses leaves the lock held: the run's end check
        // (every lock free) and the hang detector see it.
        let _ = self.0.handle.release();
        self.0.class.released(self.0.id());
    }
}
