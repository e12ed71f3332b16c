//! The in-process home of the MVar state machine (see [the module docs](super) for the state
//! table, fairness and orderings).

use super::{Policy, PutTimeoutError, Reference, TakeTimeoutError, TryPutError, TryTakeError};
use crate::lock::RawMutex;
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::futex::{self, WaitResult};
use crate::sync::spin::AdaptiveSpin;
use crate::sync::time::{deadline_after, Duration, Instant};
use crate::sync::{Arc, UnsafeCell};
use crate::track::waitreg;
use core::marker::PhantomData;
use std::collections::VecDeque;

/// A waiter's word: still queued.
const WAITING: u32 = 0;
/// A waiter's word: served; its slot holds the result.
const GRANTED: u32 = 1;
/// A waiter's word: still queued, and its waiter sleeps (or is about to) in `futex::wait`: the
/// server must wake it.
const SLEEPING: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Taker,
    /// A taker that leaves its own value in the box.
    Swapper,
    Putter,
    Reader,
}

struct Waiter<T> {
    word: AtomicU32,
    kind: Kind,
    /// In: a putter's or swapper's value. Out: a taker's, swapper's or reader's result.
    slot: UnsafeCell<Option<T>>,
    /// How a reader gets its copy.
    clone: Option<fn(&T) -> T>,
}

// SAFETY: a waiter's slot is only touched by the server under the MVar lock before `GRANTED` is
// published, and by the waiter itself after it observed `GRANTED` (Acquire) or under the lock,
// so the `T` inside moves between threads but is never shared; `T: Send` suffices.
unsafe impl<T: Send> Send for Waiter<T> {}
// SAFETY: as above: no two threads access the slot at once.
unsafe impl<T: Send> Sync for Waiter<T> {}

impl<T> Waiter<T> {
    fn new(kind: Kind, value: Option<T>, clone: Option<fn(&T) -> T>) -> Arc<Self> {
        Arc::new(Waiter {
            word: AtomicU32::new(WAITING),
            kind,
            slot: UnsafeCell::new(value),
            clone,
        })
    }

    /// Moves the slot's content out.
    ///
    /// # Safety
    /// The caller has exclusive access to the slot: it holds the MVar lock, or it is the
    /// waiter and has observed `GRANTED` with `Acquire`.
    unsafe fn take_slot(&self) -> Option<T> {
        // SAFETY: exclusive access, per this function's contract.
        self.slot.with_mut(|p| unsafe { (*p).take() })
    }

    /// Stores into the slot.
    ///
    /// # Safety
    /// As for [`Waiter::take_slot`].
    unsafe fn fill_slot(&self, v: T) {
        // SAFETY: exclusive access, per this function's contract.
        self.slot.with_mut(|p| unsafe { *p = Some(v) })
    }
}

struct Inner<T> {
    value: Option<T>,
    /// Takers and swappers, FIFO.
    takers: VecDeque<Arc<Waiter<T>>>,
    putters: VecDeque<Arc<Waiter<T>>>,
    readers: VecDeque<Arc<Waiter<T>>>,
}

/// An in-process MVar; `P` selects the reference or a negative control.
pub struct MVar<T, P: Policy = Reference> {
    lock: RawMutex,
    inner: UnsafeCell<Inner<T>>,
    /// How long this box's waiters spin before sleeping (learnt; nothing under the models).
    spin: AdaptiveSpin,
    _policy: PhantomData<P>,
}

// SAFETY: all access to `inner` is under `lock`; values of `T` move between threads (put on one,
// taken on another) but are never shared, so `T: Send` suffices for both.
unsafe impl<T: Send, P: Policy> Send for MVar<T, P> {}
// SAFETY: as above.
unsafe impl<T: Send, P: Policy> Sync for MVar<T, P> {}

impl<T: Send> MVar<T> {
    /// An empty MVar.
    pub fn new_empty() -> Self {
        Self::with_value(None)
    }

    /// A full MVar holding `value`.
    pub fn new_full(value: T) -> Self {
        Self::with_value(Some(value))
    }
}

/// Waiters served while the lock was held, woken after it is released.
type Wakes<T> = Vec<Arc<Waiter<T>>>;

impl<T: Send, P: Policy> MVar<T, P> {
    fn with_value(value: Option<T>) -> Self {
        MVar {
            lock: RawMutex::new("MVar(internal lock)"),
            inner: UnsafeCell::new(Inner {
                value,
                takers: VecDeque::new(),
                putters: VecDeque::new(),
                readers: VecDeque::new(),
            }),
            spin: AdaptiveSpin::new(),
            _policy: PhantomData,
        }
    }

    /// An empty MVar of policy `P` (the reference, or a negative control).
    pub fn with_policy_empty() -> Self {
        Self::with_value(None)
    }

    /// A full MVar of policy `P` holding `value`.
    pub fn with_policy_full(value: T) -> Self {
        Self::with_value(Some(value))
    }

    /// Runs `f` on the state under the lock (taken before `deadline`, or `None` if it passed),
    /// then wakes whoever `f` served.
    fn locked<R>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut Inner<T>, &mut Wakes<T>) -> R,
    ) -> Option<R> {
        if !self.lock.lock_until(deadline) {
            return None;
        }
        let mut wakes = Vec::new();
        // SAFETY: we hold `lock`, which guards `inner`; the reference does not outlive it.
        let r = self.inner.with_mut(|p| f(unsafe { &mut *p }, &mut wakes));
        // SAFETY: taken above.
        unsafe { self.lock.unlock() };
        for w in wakes {
            futex::wake_one(&w.word);
        }
        Some(r)
    }

    /// Marks `w` served. Its slot is already filled. Only a waiter that announced it sleeps
    /// (`SLEEPING`) is woken; one still spinning sees `GRANTED` by itself.
    fn grant(w: Arc<Waiter<T>>, wakes: &mut Wakes<T>) {
        if P::WAKE_BEFORE_GRANT {
            futex::wake_one(&w.word);
            w.word.store(GRANTED, Ordering::Release);
        } else if w.word.swap(GRANTED, Ordering::Release) == SLEEPING {
            wakes.push(w);
        }
    }

    /// The waiter a queue serves next: its first (the longest waiting), or — the negative
    /// control `mvar-lifo-waiters` — its last.
    fn next_waiter(q: &mut VecDeque<Arc<Waiter<T>>>) -> Option<Arc<Waiter<T>>> {
        if P::LIFO {
            q.pop_back()
        } else {
            q.pop_front()
        }
    }

    /// Restores "full ⇒ no takers/readers queued; empty ⇒ no putters queued".
    fn settle(inner: &mut Inner<T>, wakes: &mut Wakes<T>) {
        loop {
            match inner.value.take() {
                Some(v) => {
                    while let Some(r) = inner.readers.pop_front() {
                        let copy = (r.clone.expect("reader without clone"))(&v);
                        // SAFETY: we hold the lock and `r` is not yet granted.
                        unsafe { r.fill_slot(copy) };
                        Self::grant(r, wakes);
                    }
                    let Some(t) = Self::next_waiter(&mut inner.takers) else {
                        inner.value = Some(v);
                        return;
                    };
                    if t.kind == Kind::Swapper {
                        // SAFETY: we hold the lock and `t` is not yet granted.
                        inner.value = unsafe { t.take_slot() };
                    }
                    // SAFETY: as above.
                    unsafe { t.fill_slot(v) };
                    Self::grant(t, wakes);
                }
                None => {
                    let next = if P::SERVE_PUTTERS {
                        Self::next_waiter(&mut inner.putters)
                    } else {
                        None
                    };
                    let Some(p) = next else { return };
                    // SAFETY: we hold the lock and `p` is not yet granted.
                    inner.value = unsafe { p.take_slot() };
                    Self::grant(p, wakes);
                }
            }
        }
    }

    /// Waits until `w` is granted or `deadline` passes: spins (adaptive, bounded), then
    /// announces `SLEEPING`, registers in the wait registry and sleeps. Returns whether it was
    /// granted; if not, `w` has been removed from its queue and its slot still holds what it
    /// brought.
    fn await_grant(&self, w: &Arc<Waiter<T>>, deadline: Option<Instant>, op: &'static str) -> bool {
        if self
            .spin
            .until(|| w.word.load(Ordering::Acquire) == GRANTED)
        {
            return true;
        }
        let _registered = waitreg::enter(op, self);
        loop {
            // WAITING → SLEEPING, or already SLEEPING (woken spuriously): sleep; GRANTED: done.
            // The CAS and the server's swap are read-modify-writes of one word, so exactly one
            // of "the server saw SLEEPING (and wakes us)" and "we saw GRANTED" happens.
            if let Err(GRANTED) =
                w.word
                    .compare_exchange(WAITING, SLEEPING, Ordering::Acquire, Ordering::Acquire)
            {
                return true;
            }
            let r = futex::wait(&w.word, SLEEPING, deadline);
            if r == WaitResult::TimedOut {
                return self.cancel(w);
            }
            if P::WAIT_ONCE {
                return true;
            }
        }
    }

    /// Deadline passed: leave the queue unless served meanwhile (decided under the lock).
    fn cancel(&self, w: &Arc<Waiter<T>>) -> bool {
        self.locked(None, |inner, _| {
            if w.word.load(Ordering::Acquire) == GRANTED {
                return true;
            }
            let q = match w.kind {
                Kind::Taker | Kind::Swapper => &mut inner.takers,
                Kind::Putter => &mut inner.putters,
                Kind::Reader => &mut inner.readers,
            };
            q.retain(|x| !Arc::ptr_eq(x, w));
            false
        })
        .expect("an untimed lock always succeeds")
    }

    fn put_until(&self, value: T, deadline: Option<Instant>) -> Result<(), PutTimeoutError<T>> {
        let mut value = Some(value);
        let queued = self.locked(deadline, |inner, wakes| {
            let v = value.take().expect("value present until the closure runs");
            if inner.value.is_none() && inner.putters.is_empty() {
                inner.value = Some(v);
                Self::settle(inner, wakes);
                None
            } else {
                let w = Waiter::new(Kind::Putter, Some(v), None);
                inner.putters.push_back(w.clone());
                Some(w)
            }
        });
        match queued {
            // Not even the internal lock could be had before the deadline.
            None => Err(PutTimeoutError::Timeout(
                value.take().expect("closure did not run"),
            )),
            Some(None) => Ok(()),
            Some(Some(w)) => {
                if self.await_grant(&w, deadline, "MVar::put") {
                    Ok(())
                } else {
                    // SAFETY: not granted and removed from the queue under the lock: only we
                    // can reach the slot now.
                    Err(PutTimeoutError::Timeout(
                        unsafe { w.take_slot() }.expect("putter value"),
                    ))
                }
            }
        }
    }

    fn take_until(
        &self,
        deadline: Option<Instant>,
        kind: Kind,
        op: &'static str,
        new: Option<T>,
    ) -> Result<T, (TakeTimeoutError, Option<T>)> {
        let mut new = new;
        let fast = self.locked(deadline, |inner, wakes| match inner.value.take() {
            Some(v) => {
                if kind == Kind::Swapper {
                    inner.value = new.take();
                } else {
                    Self::settle(inner, wakes);
                }
                Ok(v)
            }
            None => {
                let w = Waiter::new(kind, new.take(), None);
                inner.takers.push_back(w.clone());
                Err(w)
            }
        });
        let w = match fast {
            None => return Err((TakeTimeoutError::Timeout, new)),
            Some(Ok(v)) => return Ok(v),
            Some(Err(w)) => w,
        };
        let granted = self.await_grant(&w, deadline, op);
        // SAFETY: granted (observed with Acquire in `await_grant`/`cancel`) or removed from the
        // queue under the lock: either way only we can reach the slot now.
        let slot = unsafe { w.take_slot() };
        if granted {
            Ok(slot.unwrap_or_else(|| panic!("{op}: woken without a value ({} MVar)", P::NAME)))
        } else {
            Err((TakeTimeoutError::Timeout, slot))
        }
    }

    /// Puts `value`, waiting while the box is full.
    pub fn put(&self, value: T) {
        if self.put_until(value, None).is_err() {
            unreachable!("an untimed put cannot time out");
        }
    }

    /// Takes the value, waiting while the box is empty.
    pub fn take(&self) -> T {
        match self.take_until(None, Kind::Taker, "MVar::take", None) {
            Ok(v) => v,
            Err(_) => unreachable!("an untimed take cannot time out"),
        }
    }

    /// Puts `value` unless the box stays full until `timeout` passes.
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutTimeoutError<T>> {
        self.put_until(value, deadline_after(timeout))
    }

    /// Takes the value unless the box stays empty until `timeout` passes.
    pub fn take_timeout(&self, timeout: Duration) -> Result<T, TakeTimeoutError> {
        self.take_until(deadline_after(timeout), Kind::Taker, "MVar::take", None)
            .map_err(|e| e.0)
    }

    /// Puts `value` if the box is empty (and no putter is queued); never waits.
    pub fn try_put(&self, value: T) -> Result<(), TryPutError<T>> {
        let mut value = Some(value);
        self.locked(None, |inner, wakes| {
            if inner.value.is_none() && inner.putters.is_empty() {
                inner.value = value.take();
                Self::settle(inner, wakes);
            }
        });
        match value {
            None => Ok(()),
            Some(v) => Err(TryPutError::Full(v)),
        }
    }

    /// Takes the value if the box is full; never waits.
    pub fn try_take(&self) -> Result<T, TryTakeError> {
        self.locked(None, |inner, wakes| {
            let v = inner.value.take();
            if v.is_some() {
                Self::settle(inner, wakes);
            }
            v
        })
        .flatten()
        .ok_or(TryTakeError::Empty)
    }

    /// Takes the current value and leaves `new` in its place, as one atomic step; waits (as a
    /// taker, in FIFO order) while the box is empty.
    pub fn swap(&self, new: T) -> T {
        match self.take_until(None, Kind::Swapper, "MVar::swap", Some(new)) {
            Ok(v) => v,
            Err(_) => unreachable!("an untimed swap cannot time out"),
        }
    }

    /// Whether the box is full right now (a snapshot).
    pub fn is_full(&self) -> bool {
        self.locked(None, |inner, _| inner.value.is_some())
            .unwrap_or(false)
    }
}

impl<T: Send + Clone, P: Policy> MVar<T, P> {
    /// A copy of the value, waiting while the box is empty. Atomic: no other operation can
    /// see the box empty because of a read (unlike `take` + `put`).
    pub fn read(&self) -> T {
        let fast = self.locked(None, |inner, _| match &inner.value {
            Some(v) => Ok(v.clone()),
            None => {
                let w = Waiter::new(Kind::Reader, None, Some(T::clone as fn(&T) -> T));
                inner.readers.push_back(w.clone());
                Err(w)
            }
        });
        match fast.expect("untimed lock") {
            Ok(v) => v,
            Err(w) => {
                let granted = self.await_grant(&w, None, "MVar::read");
                debug_assert!(granted);
                // SAFETY: granted, observed with Acquire.
                unsafe { w.take_slot() }.unwrap_or_else(|| {
                    panic!("MVar::read: woken without a value ({} MVar)", P::NAME)
                })
            }
        }
    }

    /// A copy of the value if the box is full; never waits.
    pub fn try_read(&self) -> Result<T, TryTakeError> {
        self.locked(None, |inner, _| inner.value.clone())
            .flatten()
            .ok_or(TryTakeError::Empty)
    }
}

impl<T, P: Policy> core::fmt::Debug for MVar<T, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MVar")
            .field("policy", &P::NAME)
            .finish_non_exhaustive()
    }
}

impl<T: Send, P: Policy> crate::traits::MVarApi<T> for MVar<T, P> {
    fn put(&self, value: T) {
        MVar::put(self, value)
    }
    fn take(&self) -> T {
        MVar::take(self)
    }
    fn try_put(&self, value: T) -> Result<(), T> {
        MVar::try_put(self, value).map_err(|e| e.into_inner())
    }
    fn try_take(&self) -> Option<T> {
        MVar::try_take(self).ok()
    }
    fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), T> {
        MVar::put_timeout(self, value, timeout).map_err(|e| e.into_inner())
    }
    fn take_timeout(&self, timeout: Duration) -> Option<T> {
        MVar::take_timeout(self, timeout).ok()
    }
    fn capabilities(&self) -> crate::traits::MVarCaps {
        crate::traits::MVarCaps::ALL
    }
    fn read(&self) -> T
    where
        T: Clone,
    {
        MVar::read(self)
    }
    fn try_read(&self) -> Option<T>
    where
        T: Clone,
    {
        MVar::try_read(self).ok()
    }
    fn swap(&self, value: T) -> T {
        MVar::swap(self, value)
    }
}
