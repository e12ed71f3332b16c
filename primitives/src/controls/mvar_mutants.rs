//! MVar mutants for the promised properties: each one breaks exactly one promise of
//! [`MVarApi`] — an atomic `read`, an atomic `swap`, a timeout without effect, FIFO service —
//! and still declares it, so the scenario that checks the promise must catch it.
//!
//! The first three wrap the reference [`MVar`] and replace one operation; the FIFO one is the
//! reference state machine with the [`Policy::LIFO`] knob turned. All of them are written on
//! the [`sync`](crate::sync) facade only, so loom, shuttle and real threads run the same code.

use crate::lock::Mutex;
use crate::mvar::{MVar, Policy};
use crate::sync::time::Duration;
use crate::traits::{MVarApi, MVarCaps};

/// Only `read/swap` is declared by the wrappers: the promise they break.
const READ_SWAP: MVarCaps = MVarCaps {
    read_swap: true,
    fifo: false,
};

/// The control `mvar-read-take-put`: `read` is a `take` followed by a `put` of the same value.
/// Every value is still delivered once, but between the two steps the box is empty: a
/// `try_put` can slip in (and the `put` back then waits), a `try_read` sees nothing.
#[derive(Debug)]
pub struct ReadTakePut(MVar<u64>);

impl Default for ReadTakePut {
    fn default() -> Self {
        ReadTakePut(MVar::new_empty())
    }
}

/// The control `mvar-swap-take-put`: `swap` is a `take` followed by a `put` of the new value.
/// Between the two steps the box is empty: a `try_read` sees nothing, a `try_put` slips in.
#[derive(Debug)]
pub struct SwapTakePut(MVar<u64>);

impl Default for SwapTakePut {
    fn default() -> Self {
        SwapTakePut(MVar::new_empty())
    }
}

/// Forwards the core operations of a wrapper to the reference MVar in field `.0`.
macro_rules! core_ops {
    () => {
        fn put(&self, value: u64) {
            MVarApi::put(&self.0, value)
        }
        fn take(&self) -> u64 {
            MVarApi::take(&self.0)
        }
        fn try_put(&self, value: u64) -> Result<(), u64> {
            MVarApi::try_put(&self.0, value)
        }
        fn try_take(&self) -> Option<u64> {
            MVarApi::try_take(&self.0)
        }
        fn put_timeout(&self, value: u64, timeout: Duration) -> Result<(), u64> {
            MVarApi::put_timeout(&self.0, value, timeout)
        }
        fn take_timeout(&self, timeout: Duration) -> Option<u64> {
            MVarApi::take_timeout(&self.0, timeout)
        }
        fn capabilities(&self) -> MVarCaps {
            READ_SWAP
        }
    };
}

impl MVarApi<u64> for ReadTakePut {
    core_ops!();
    fn read(&self) -> u64 {
        // The defect: two steps, the box empty in between.
        let v = MVarApi::take(&self.0);
        MVarApi::put(&self.0, v);
        v
    }
    fn try_read(&self) -> Option<u64> {
        MVarApi::try_read(&self.0)
    }
    fn swap(&self, value: u64) -> u64 {
        MVarApi::swap(&self.0, value)
    }
}

impl MVarApi<u64> for SwapTakePut {
    core_ops!();
    fn read(&self) -> u64 {
        MVarApi::read(&self.0)
    }
    fn try_read(&self) -> Option<u64> {
        MVarApi::try_read(&self.0)
    }
    fn swap(&self, value: u64) -> u64 {
        // The defect: two steps, the box empty in between.
        let old = MVarApi::take(&self.0);
        MVarApi::put(&self.0, value);
        old
    }
}

/// The control `mvar-timeout-takes-effect`: a timed `put` that gives up stays queued — the
/// classic "cancelled waiter not dequeued". The caller gets its value back (as the contract
/// says), yet the value is still stored the next time a take empties the box: it enters twice
/// if the caller puts it again, and a value the caller believes was never put shows up.
#[derive(Debug)]
pub struct TimedOutPutStores {
    inner: MVar<u64>,
    /// Values of timed-out puts still "queued": stored by the next take that empties the box.
    ghosts: Mutex<Vec<u64>>,
}

impl Default for TimedOutPutStores {
    fn default() -> Self {
        TimedOutPutStores {
            inner: MVar::new_empty(),
            ghosts: Mutex::new(Vec::new()),
        }
    }
}

impl TimedOutPutStores {
    /// After a take emptied the box: serves the oldest ghost putter, as a queue that still
    /// holds it would (never waits: if someone refilled the box first, the ghost stays queued).
    fn serve_ghost(&self) {
        let ghost = self.ghosts.lock().with_mut(|g| {
            if g.is_empty() {
                None
            } else {
                Some(g.remove(0))
            }
        });
        if let Some(v) = ghost {
            if let Err(v) = MVarApi::try_put(&self.inner, v) {
                self.ghosts.lock().with_mut(|g| g.insert(0, v));
            }
        }
    }

    /// `v` came out of the box: a take emptied it.
    fn took(&self, v: u64) -> u64 {
        self.serve_ghost();
        v
    }
}

impl MVarApi<u64> for TimedOutPutStores {
    fn put(&self, value: u64) {
        MVarApi::put(&self.inner, value)
    }
    fn take(&self) -> u64 {
        self.took(MVarApi::take(&self.inner))
    }
    fn try_put(&self, value: u64) -> Result<(), u64> {
        MVarApi::try_put(&self.inner, value)
    }
    fn try_take(&self) -> Option<u64> {
        MVarApi::try_take(&self.inner).map(|v| self.took(v))
    }
    fn put_timeout(&self, value: u64, timeout: Duration) -> Result<(), u64> {
        MVarApi::put_timeout(&self.inner, value, timeout).inspect_err(|&v| {
            // The defect: the timed-out putter is not dequeued.
            self.ghosts.lock().with_mut(|g| g.push(v));
        })
    }
    fn take_timeout(&self, timeout: Duration) -> Option<u64> {
        MVarApi::take_timeout(&self.inner, timeout).map(|v| self.took(v))
    }
    fn capabilities(&self) -> MVarCaps {
        READ_SWAP
    }
    fn read(&self) -> u64 {
        MVarApi::read(&self.inner)
    }
    fn try_read(&self) -> Option<u64> {
        MVarApi::try_read(&self.inner)
    }
    fn swap(&self, value: u64) -> u64 {
        MVarApi::swap(&self.inner, value)
    }
}

/// The control `mvar-lifo-waiters`: the reference MVar serving its blocked takers and putters
/// most recent first, while still declaring [`MVarCaps::fifo`] (the reference's
/// `capabilities()` is [`MVarCaps::ALL`] whatever the policy). Everything else is exact: no
/// value is lost and every history stays linearizable, so only a FIFO check sees it.
#[derive(Debug)]
pub struct LifoWaiters;
impl Policy for LifoWaiters {
    const NAME: &'static str = "mvar-lifo-waiters";
    const LIFO: bool = true;
}
