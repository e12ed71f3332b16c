//! Three third-party primitives behind the suite's public traits, as a user would plug in their
//! own — and nothing else: every check is one call of `primitives::check` (see `tests/` and
//! `src/main.rs`).
//!
//! * [`ChannelMVar`]: crossbeam's `bounded(1)` channel as an MVar. Core contract only: a channel
//!   has no atomic `read`/`swap`, and crossbeam does not promise FIFO service of blocked
//!   receivers, so it declares neither and is never failed for them.
//! * [`CondvarMVar`]: an MVar made of a `Mutex<Option<u64>>` and two condition variables (one
//!   per waiter class), the textbook design done right. Declares atomic `read`/`swap` (both are
//!   one critical section). It is written against `std::sync`, or `shuttle::sync` / `loom::sync`
//!   under `--cfg shuttle` / `--cfg loom`, so the model engines can schedule it.
//! * [`ImmediateLog`]: the simplest log a user might write — every message delivered at once,
//!   under the log's own mutex (std's, or the model engine's). It keeps the whole log contract
//!   trivially (nothing is ever staged, so nothing can be lost at a release, an exit or a drop)
//!   and exposes no sink lock, so seed 001's self-deadlock cannot arise.
//! * [`ParkingLotReentrant`]: `parking_lot::ReentrantMutex<()>` as a reentrant lock. Its owner
//!   identity is the address of a thread-local, which a thread created after the owner exited
//!   can reuse: the scenario of a guard leaked on an exited thread is expected to catch that.

use primitives::scenarios::Delivered;
use primitives::traits::{LockApi, LogApi, MVarApi, MVarCaps};
use std::time::{Duration, Instant};

#[cfg(loom)]
use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(shuttle)]
use shuttle::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(any(loom, shuttle)))]
use std::sync::{Condvar, Mutex, MutexGuard};

/// crossbeam's `bounded(1)` channel as an MVar of `u64`.
#[derive(Debug)]
pub struct ChannelMVar {
    tx: crossbeam_channel::Sender<u64>,
    rx: crossbeam_channel::Receiver<u64>,
}

impl ChannelMVar {
    /// An empty box.
    pub fn new() -> ChannelMVar {
        let (tx, rx) = crossbeam_channel::bounded(1);
        ChannelMVar { tx, rx }
    }
}

impl Default for ChannelMVar {
    fn default() -> Self {
        ChannelMVar::new()
    }
}

impl MVarApi<u64> for ChannelMVar {
    fn put(&self, value: u64) {
        self.tx.send(value).expect("the box owns both ends");
    }
    fn take(&self) -> u64 {
        self.rx.recv().expect("the box owns both ends")
    }
    fn try_put(&self, value: u64) -> Result<(), u64> {
        self.tx.try_send(value).map_err(|e| e.into_inner())
    }
    fn try_take(&self) -> Option<u64> {
        self.rx.try_recv().ok()
    }
    fn put_timeout(&self, value: u64, timeout: Duration) -> Result<(), u64> {
        self.tx
            .send_timeout(value, timeout)
            .map_err(|e| e.into_inner())
    }
    fn take_timeout(&self, timeout: Duration) -> Option<u64> {
        self.rx.recv_timeout(timeout).ok()
    }
}

/// An MVar of `u64` made of a mutex and two condition variables.
#[derive(Debug, Default)]
pub struct CondvarMVar {
    slot: Mutex<Option<u64>>,
    /// Signalled when the box empties (putters wait here).
    emptied: Condvar,
    /// Signalled when the box fills (takers, readers and swappers wait here).
    filled: Condvar,
}

impl CondvarMVar {
    /// An empty box.
    pub fn new() -> CondvarMVar {
        CondvarMVar::default()
    }

    fn wait_until<'a>(
        &self,
        cv: &Condvar,
        mut s: MutexGuard<'a, Option<u64>>,
        deadline: Option<Instant>,
        ready: impl Fn(&Option<u64>) -> bool,
    ) -> Option<MutexGuard<'a, Option<u64>>> {
        while !ready(&s) {
            match deadline {
                None => s = cv.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    // A zero wait never sleeps (the model engines' timed waits never time out).
                    let left = d
                        .checked_duration_since(Instant::now())
                        .filter(|l| !l.is_zero())?;
                    s = cv
                        .wait_timeout(s, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        Some(s)
    }

    fn put_until(&self, value: u64, deadline: Option<Instant>) -> Result<(), u64> {
        let s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut s) = self.wait_until(&self.emptied, s, deadline, |s| s.is_none()) else {
            return Err(value);
        };
        *s = Some(value);
        // Every waiter on `filled` is a taker/reader/swapper: one of them can proceed (readers
        // leave it full, so wake them all; cheap at this size).
        self.filled.notify_all();
        Ok(())
    }

    fn take_until(&self, deadline: Option<Instant>) -> Option<u64> {
        let s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = self.wait_until(&self.filled, s, deadline, |s| s.is_some())?;
        let v = s.take();
        self.emptied.notify_one();
        v
    }
}

impl MVarApi<u64> for CondvarMVar {
    fn put(&self, value: u64) {
        let _ = self.put_until(value, None);
    }
    fn take(&self) -> u64 {
        self.take_until(None)
            .expect("an untimed take returns a value")
    }
    fn try_put(&self, value: u64) -> Result<(), u64> {
        self.put_until(value, Some(Instant::now()))
    }
    fn try_take(&self) -> Option<u64> {
        self.take_until(Some(Instant::now()))
    }
    fn put_timeout(&self, value: u64, timeout: Duration) -> Result<(), u64> {
        self.put_until(value, Instant::now().checked_add(timeout))
    }
    fn take_timeout(&self, timeout: Duration) -> Option<u64> {
        self.take_until(Instant::now().checked_add(timeout))
    }
    fn capabilities(&self) -> MVarCaps {
        MVarCaps {
            read_swap: true,
            fifo: false,
        }
    }
    fn read(&self) -> u64 {
        let s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let s = self
            .wait_until(&self.filled, s, None, |s| s.is_some())
            .expect("untimed");
        s.expect("full")
    }
    fn try_read(&self) -> Option<u64> {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn swap(&self, value: u64) -> u64 {
        let s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = self
            .wait_until(&self.filled, s, None, |s| s.is_some())
            .expect("untimed");
        let old = s.replace(value).expect("full");
        // Still full: another reader or swapper may proceed.
        self.filled.notify_all();
        old
    }
}

/// `parking_lot::ReentrantMutex<()>` as a reentrant lock.
#[derive(Debug, Default)]
pub struct ParkingLotReentrant(parking_lot::ReentrantMutex<()>);

impl ParkingLotReentrant {
    /// A free lock.
    pub fn new() -> ParkingLotReentrant {
        ParkingLotReentrant::default()
    }
}

impl LockApi for ParkingLotReentrant {
    type Guard<'a> = parking_lot::ReentrantMutexGuard<'a, ()>;
    fn lock(&self) -> Self::Guard<'_> {
        self.0.lock()
    }
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        self.0.try_lock_for(timeout)
    }
    fn try_lock(&self) -> Option<Self::Guard<'_>> {
        self.0.try_lock()
    }
    fn is_reentrant(&self) -> bool {
        true
    }
}

/// A log delivering every message at once into its sink, under its own mutex.
#[derive(Debug)]
pub struct ImmediateLog {
    sink: Mutex<Delivered>,
}

impl ImmediateLog {
    /// A log delivering into `sink`.
    pub fn new(sink: Delivered) -> ImmediateLog {
        ImmediateLog {
            sink: Mutex::new(sink),
        }
    }
}

impl LogApi for ImmediateLog {
    fn log(&self, text: String) {
        self.sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text);
    }
    fn flush(&self) {}
}
