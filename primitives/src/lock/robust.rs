//! `SharedReentrantLock`: a reentrant lock in a shared-memory segment — owner = (process,
//! thread), nested count, robust: a dead owner is detected and the next owner is told the
//! protected data may be inconsistent (the `EOWNERDEAD` of a robust pthread mutex).
//!
//! ## State (`#[repr(C)]`, in the segment's object area; all zero = free)
//! | field    | meaning                                                  | written by                     |
//! |----------|----------------------------------------------------------|--------------------------------|
//! | `word`   | [`RobustWord`]: owner's participant token \| `WAITERS`    | first / last acquisition, or a takeover |
//! | `count`  | nesting depth                                            | the owner only (`checked_add`) |
//! | `recoveries` | takeovers from dead owners so far                    | the recovering owner           |
//!
//! The owner is a participant token: a thread slot of the segment's participant table,
//! identified by pid, tid and both start times, so neither a reused tid nor a new thread of the
//! same process can pass for a dead owner (Rust issue 123458's cross-process form). A nested
//! acquisition is recognised by `word`'s owner being the caller's own token.
//!
//! **Recovery:** a thread that finds the owner dead takes the word over ([`Acquired::Recovered`])
//! and resets `count` to 1; [`SharedGuard::recovered`] tells it whose death it inherited. What
//! the dead owner was doing to the protected data is the caller's to repair.
//!
//! With a [`LockClass`], acquisitions are checked by the lock-order validator like any tracked
//! lock; a validator made with [`crate::lock::Validator::shared`] sees the orders of every
//! process that uses the same graph segment.
//!
//! ## Notes about memory ordering
//! As for [`RobustWord`]; `count` is only touched by the owner (`Relaxed`), and reset before the
//! `Release` unlock.

use super::order::{self, LockClass};
use crate::shm::{Acquired, Kind, Layout, LockCx, RobustWord, Segment, ShmError, ShmName, Who};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::futex::Scope;
use crate::sync::time::{deadline_after, Duration, Instant};
use core::fmt;
use core::marker::PhantomData;
use core::panic::Location;

/// The object length of a shared reentrant lock (no parameters).
pub fn object_len(_params: &[u64; 4]) -> Option<u64> {
    Some(64)
}

/// The lock's state in the segment.
#[repr(C, align(64))]
#[derive(Debug, Default)]
struct LockState {
    word: RobustWord,
    count: AtomicU32,
    recoveries: AtomicU64,
}

/// Why a shared lock was not taken.
#[derive(Debug)]
pub enum SharedLockError {
    /// The deadline passed.
    Timeout,
    /// The nesting count would overflow `u32`.
    Overflow,
    /// The segment could not be used.
    Shm(ShmError),
}

impl fmt::Display for SharedLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedLockError::Timeout => f.write_str("shared lock: timed out"),
            SharedLockError::Overflow => f.write_str("shared lock: nesting count overflow"),
            SharedLockError::Shm(e) => write!(f, "shared lock: {e}"),
        }
    }
}

impl std::error::Error for SharedLockError {}

impl From<ShmError> for SharedLockError {
    fn from(e: ShmError) -> Self {
        SharedLockError::Shm(e)
    }
}

/// A reentrant, robust lock in a named shared-memory segment (no data: it guards whatever the
/// processes agree it guards, e.g. a region of another segment).
#[derive(Clone)]
pub struct SharedReentrantLock {
    seg: Segment,
    class: Option<LockClass>,
    recover: bool,
}

impl fmt::Debug for SharedReentrantLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedReentrantLock")
            .field("name", self.seg.name())
            .field("class", &self.class.as_ref().map(|c| c.name()))
            .finish()
    }
}

impl SharedReentrantLock {
    /// Creates a free lock in a new segment `name`, with
    /// [`DEFAULT_PARTICIPANTS`](crate::shm::DEFAULT_PARTICIPANTS) participant slots.
    pub fn create(name: &ShmName) -> Result<Self, ShmError> {
        Self::create_with_participants(name, crate::shm::DEFAULT_PARTICIPANTS)
    }

    /// [`SharedReentrantLock::create`] with `participants` slots (1..=
    /// [`MAX_PARTICIPANTS`](crate::shm::MAX_PARTICIPANTS)): one per process and one per thread
    /// that uses the lock at the same time, respawned processes included.
    pub fn create_with_participants(name: &ShmName, participants: u32) -> Result<Self, ShmError> {
        let layout = Layout {
            kind: Kind::ReentrantLock,
            participants,
            params: [0; 4],
            object_len: 64,
        };
        Ok(Self::from_segment(Segment::create(name, layout)?))
    }

    /// Opens the lock `name`.
    pub fn open(name: &ShmName) -> Result<Self, ShmError> {
        Ok(Self::from_segment(Segment::open_object(
            name,
            Kind::ReentrantLock,
            object_len,
        )?))
    }

    fn from_segment(seg: Segment) -> Self {
        SharedReentrantLock {
            seg,
            class: None,
            recover: true,
        }
    }

    /// This handle's acquisitions are checked by the lock-order validator as `class`.
    pub fn tracked(mut self, class: &LockClass) -> Self {
        self.class = Some(class.clone());
        self
    }

    /// Negative control "no dead-owner recovery": this handle never takes the lock over from a
    /// dead owner (it waits for it like for a live one).
    pub fn without_recovery(mut self) -> Self {
        self.recover = false;
        self
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    fn state(&self) -> &LockState {
        // SAFETY: the object area starts with a 64-aligned LockState (validated layout; atomics
        // are valid for any bit pattern) and lives as long as `self.seg`.
        unsafe { &*self.seg.object_ptr().as_ptr().cast::<LockState>() }
    }

    /// Identity of the lock for the validator and the wait registry (its address here).
    fn addr(&self) -> usize {
        self.state() as *const LockState as usize
    }

    fn acquire(
        &self,
        deadline: Option<Instant>,
        at: &'static Location<'static>,
        check: bool,
    ) -> Result<SharedGuard<'_>, SharedLockError> {
        let me = self.seg.me()?;
        let st = self.state();
        let nested = st.word.owner() == me;
        if let (Some(c), true) = (&self.class, check) {
            order::check_acquire(c, self.addr(), at);
        }
        let mut recovered = None;
        if nested {
            let n = st.count.load(Ordering::Relaxed);
            let n = n.checked_add(1).ok_or(SharedLockError::Overflow)?;
            st.count.store(n, Ordering::Relaxed);
        } else {
            let cx = LockCx {
                parts: self.seg.participants(),
                scope: Scope::Shared,
                op: "SharedReentrantLock::lock",
                recover: self.recover,
            };
            let acquired = if check {
                st.word.lock(&cx, me, deadline)
            } else if st.word.try_lock(me) {
                Ok(Acquired::Clean)
            } else {
                st.word
                    .try_take_over(&cx, me)
                    .ok_or(crate::shm::LockTimedOut)
            };
            match acquired.map_err(|_| SharedLockError::Timeout)? {
                Acquired::Clean => {}
                Acquired::Recovered(who) => {
                    st.recoveries.fetch_add(1, Ordering::Relaxed);
                    recovered = Some(who);
                }
            }
            st.count.store(1, Ordering::Relaxed);
        }
        if let Some(c) = &self.class {
            order::push_held(c, self.addr(), at);
        }
        Ok(SharedGuard {
            lock: self,
            recovered,
            _not_send: PhantomData,
        })
    }

    /// Locks, waiting as long as needed (taking the lock over from a dead owner).
    #[track_caller]
    pub fn lock(&self) -> Result<SharedGuard<'_>, SharedLockError> {
        self.acquire(None, Location::caller(), true)
    }

    /// Locks unless `timeout` passes first.
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<SharedGuard<'_>, SharedLockError> {
        self.acquire(deadline_after(timeout), Location::caller(), true)
    }

    /// Locks if free, held by the caller, or held by a dead owner; never waits (and, like
    /// lockdep's trylock, is not order-checked).
    #[track_caller]
    pub fn try_lock(&self) -> Result<SharedGuard<'_>, SharedLockError> {
        self.acquire(None, Location::caller(), false)
    }

    /// Takeovers from dead owners so far.
    pub fn recoveries(&self) -> u64 {
        self.state().recoveries.load(Ordering::Relaxed)
    }

    /// The owner now, if any (`pid`, `tid`).
    pub fn owner(&self) -> Option<Who> {
        match self.state().word.owner() {
            0 => None,
            t => Some(self.seg.participants().who(t)),
        }
    }
}

/// One acquisition of a [`SharedReentrantLock`]; dropping it releases it.
#[must_use = "the lock is released when the guard is dropped"]
pub struct SharedGuard<'a> {
    lock: &'a SharedReentrantLock,
    recovered: Option<Who>,
    /// The owner is the thread: a guard must be released by it.
    _not_send: PhantomData<*const ()>,
}

impl SharedGuard<'_> {
    /// `Some(who)` if this acquisition took the lock over from `who`, who died holding it: the
    /// data it protects may be half-updated.
    pub fn recovered(&self) -> Option<Who> {
        self.recovered
    }

    /// Current nesting depth.
    pub fn depth(&self) -> u32 {
        self.lock.state().count.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for SharedGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGuard")
            .field("depth", &self.depth())
            .field("recovered", &self.recovered)
            .finish()
    }
}

impl Drop for SharedGuard<'_> {
    fn drop(&mut self) {
        let st = self.lock.state();
        let n = st.count.load(Ordering::Relaxed).saturating_sub(1);
        st.count.store(n, Ordering::Relaxed);
        if n == 0 {
            st.word.unlock(Scope::Shared);
        }
        // After the unlock: popping the outermost tracked lock flushes staged messages.
        if self.lock.class.is_some() {
            order::pop_held(self.lock.addr());
        }
    }
}

/// The robust lock under the public trait, so the scenario catalogue runs on it. A failure to
/// use the segment (no participant slot left) or a nesting overflow is a broken run: it panics
/// with the error, as a scenario does on a broken invariant.
impl crate::traits::LockApi for SharedReentrantLock {
    type Guard<'a> = SharedGuard<'a>;

    #[track_caller]
    fn lock(&self) -> SharedGuard<'_> {
        SharedReentrantLock::lock(self).unwrap_or_else(|e| panic!("{e}"))
    }

    #[track_caller]
    fn lock_timeout(&self, timeout: Duration) -> Option<SharedGuard<'_>> {
        match SharedReentrantLock::lock_timeout(self, timeout) {
            Ok(g) => Some(g),
            Err(SharedLockError::Timeout) => None,
            Err(e) => panic!("{e}"),
        }
    }

    #[track_caller]
    fn try_lock(&self) -> Option<SharedGuard<'_>> {
        match SharedReentrantLock::try_lock(self) {
            Ok(g) => Some(g),
            Err(SharedLockError::Timeout) => None,
            Err(e) => panic!("{e}"),
        }
    }

    fn is_reentrant(&self) -> bool {
        true
    }
}
