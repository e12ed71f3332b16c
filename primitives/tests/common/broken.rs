//! A third-party-style MVar with a lost wake-up, written directly on the model engine's own
//! `Mutex` and `Condvar` (std's on a real-threads build, as a user's type would be), for the engine tests to show that the
//! public `check` calls catch a defect in a type this crate knows nothing about.
//!
//! The defect: putters and takers wait on **one** condition variable and every operation wakes
//! **one** waiter. A `take` meant to wake a blocked putter can wake another taker instead, which
//! finds the box still empty and sleeps again — the putter's wake-up is lost, and with every
//! thread asleep the program deadlocks.

#[cfg(loom)]
use loom::sync::{Condvar, Mutex};
#[cfg(shuttle)]
use shuttle::sync::{Condvar, Mutex};
#[cfg(not(any(loom, shuttle)))]
use std::sync::{Condvar, Mutex};

use primitives::MVarApi;
use std::time::Duration;

/// The broken MVar (see the module docs).
#[derive(Default)]
pub struct OneCondvarMVar {
    slot: Mutex<Option<u64>>,
    changed: Condvar,
}

impl OneCondvarMVar {
    /// An empty one.
    pub fn new() -> Self {
        OneCondvarMVar {
            slot: Mutex::new(None),
            changed: Condvar::new(),
        }
    }
}

impl MVarApi<u64> for OneCondvarMVar {
    fn put(&self, value: u64) {
        let mut slot = self.slot.lock().unwrap();
        while slot.is_some() {
            slot = self.changed.wait(slot).unwrap();
        }
        *slot = Some(value);
        // The defect: one waiter of either kind.
        self.changed.notify_one();
    }
    fn take(&self) -> u64 {
        let mut slot = self.slot.lock().unwrap();
        loop {
            if let Some(v) = slot.take() {
                self.changed.notify_one();
                return v;
            }
            slot = self.changed.wait(slot).unwrap();
        }
    }
    fn try_put(&self, value: u64) -> Result<(), u64> {
        let mut slot = self.slot.lock().unwrap();
        if slot.is_some() {
            return Err(value);
        }
        *slot = Some(value);
        self.changed.notify_one();
        Ok(())
    }
    fn try_take(&self) -> Option<u64> {
        let v = self.slot.lock().unwrap().take();
        if v.is_some() {
            self.changed.notify_one();
        }
        v
    }
    // A timed call waits for nothing and acts like its `try_` form (allowed by the contract:
    // it waits "at most about" the timeout; under the model engines time is frozen anyway).
    fn put_timeout(&self, value: u64, _timeout: Duration) -> Result<(), u64> {
        self.try_put(value)
    }
    fn take_timeout(&self, _timeout: Duration) -> Option<u64> {
        self.try_take()
    }
}
