//! Lock mutants: reentrant locks with one seeded defect each against the [`LockApi`] contract,
//! caught by the lock scenarios `lock-owner-after-exit`, `lock-try-never-waits` and
//! `lock-nesting-overflow`. All are written on the [`sync`](crate::sync) facade and the
//! crate's [`RawMutex`], so loom, shuttle and real threads run the same code.
//!
//! | type                  | control               | defect                                          |
//! |-----------------------|-----------------------|-------------------------------------------------|
//! | [`RecycledOwnerLock`] | `lock-reused-owner-id`| owner id = a per-thread slot recycled at exit   |
//! | [`TryWaitsLock`]      | `lock-try-waits`      | `try_lock` waits for the holder                 |
//! | [`NarrowCountLock`]   | `lock-nesting-wraps`  | (`wrapping()`) a `u8` count that wraps at 255   |
//!
//! [`NarrowCountLock::refusing`] is the same narrow count done right (refused at 255): the
//! scenario's proof that a declared limit can be kept.
// loom's `thread_local!` does not accept a `const { }` initializer.
#![allow(clippy::missing_const_for_thread_local)]

use crate::lock::order::{self, LockClass};
use crate::lock::{RawMutex, ReentrantLock, ReentrantLockGuard};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::time::{deadline_after, Duration, Instant};
use crate::sync::{
    book_lock, current_thread_id, engine_thread_local, BookArc, BookMutex, BookWeak, UnsafeCell,
};
use crate::traits::LockApi;
use core::cell::RefCell;
use core::marker::PhantomData;
use core::panic::Location;

// ---------------------------------------------------------------------------------------------
// lock-reused-owner-id

/// The owner-id slots of one [`RecycledOwnerLock`]: a thread gets the lowest free slot on its
/// first use of the lock and gives it back when it exits — as a thread-local's address is
/// reused by the next thread the allocator places there.
#[derive(Debug, Default)]
struct Slots {
    /// Slots given back by exited threads.
    free: Vec<u64>,
    /// Slots ever handed out (ids are `1..=issued`).
    issued: u64,
}

/// A thread's slots, one per lock it used; given back when the thread exits.
struct Leases(Vec<(usize, u64, BookWeak<BookMutex<Slots>>)>);

impl Drop for Leases {
    fn drop(&mut self) {
        for (_, slot, slots) in self.0.drain(..) {
            if let Some(slots) = slots.upgrade() {
                book_lock(&slots).free.push(slot);
            }
        }
    }
}

engine_thread_local! {
    static LEASES: RefCell<Leases> = RefCell::new(Leases(Vec::new()));
}

/// Negative control `lock-reused-owner-id`: a reentrant lock that identifies its owner by a
/// per-thread slot which is recycled when the thread exits (the identity of Rust issue 123458:
/// a thread-local's address). A thread spawned after an owner exited holding the lock gets the
/// owner's slot and "re-enters" a lock it never took.
#[derive(Debug)]
pub struct RecycledOwnerLock {
    raw: RawMutex,
    /// The holder's slot; 0 when free.
    owner: AtomicU64,
    /// Nesting depth; touched by the owner only.
    count: UnsafeCell<u32>,
    slots: BookArc<BookMutex<Slots>>,
    class: Option<LockClass>,
}

// SAFETY: `count` is only touched by the thread whose slot is in `owner` (the defect makes that
// a thread that never locked, after the real owner exited: still one thread at a time, since
// the slot is handed out again only once its previous holder is gone).
unsafe impl Send for RecycledOwnerLock {}
// SAFETY: as above.
unsafe impl Sync for RecycledOwnerLock {}

impl RecycledOwnerLock {
    /// A free lock, tracked as `class`.
    pub fn new(class: &LockClass) -> Self {
        RecycledOwnerLock {
            raw: RawMutex::new("RecycledOwnerLock::lock"),
            owner: AtomicU64::new(0),
            count: UnsafeCell::new(0),
            slots: BookArc::new(BookMutex::new(Slots::default())),
            class: Some(class.clone()),
        }
    }

    fn addr(&self) -> usize {
        &self.raw as *const RawMutex as usize
    }

    /// The calling thread's slot for this lock, leased on first use.
    fn my_slot(&self) -> u64 {
        let key = BookArc::as_ptr(&self.slots) as usize;
        LEASES.with(|l| {
            let mut l = l.borrow_mut();
            if let Some(&(_, slot, _)) = l.0.iter().find(|(k, _, _)| *k == key) {
                return slot;
            }
            let mut s = book_lock(&self.slots);
            s.free.sort_unstable_by(|a, b| b.cmp(a));
            let slot = s.free.pop().unwrap_or_else(|| {
                s.issued += 1;
                s.issued
            });
            drop(s);
            l.0.push((key, slot, BookArc::downgrade(&self.slots)));
            slot
        })
    }

    fn acquire(&self, deadline: Option<Instant>, wait: bool) -> Option<RecycledOwnerGuard<'_>> {
        let me = self.my_slot();
        let at = Location::caller();
        if self.owner.load(Ordering::Relaxed) == me {
            // SAFETY: the slot in `owner` is ours (see the `Sync` impl).
            self.count.with_mut(|c| unsafe { *c += 1 });
        } else {
            if let (Some(c), true) = (&self.class, wait) {
                order::check_acquire(c, self.addr(), at);
            }
            let got = if wait {
                self.raw.lock_until(deadline)
            } else {
                self.raw.try_lock()
            };
            if !got {
                return None;
            }
            self.owner.store(me, Ordering::Relaxed);
            // SAFETY: we hold `raw`.
            self.count.with_mut(|c| unsafe { *c = 1 });
        }
        if let Some(c) = &self.class {
            order::push_held(c, self.addr(), at);
        }
        Some(RecycledOwnerGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }
}

/// Releases one level of a [`RecycledOwnerLock`].
pub struct RecycledOwnerGuard<'a> {
    lock: &'a RecycledOwnerLock,
    _not_send: PhantomData<*const ()>,
}

impl Drop for RecycledOwnerGuard<'_> {
    fn drop(&mut self) {
        let l = self.lock;
        // SAFETY: a guard lives on the thread whose slot is in `owner`.
        let left = l.count.with_mut(|c| unsafe {
            *c -= 1;
            *c
        });
        if left == 0 {
            l.owner.store(0, Ordering::Relaxed);
            // SAFETY: the outermost guard: `raw` is held for this slot.
            unsafe { l.raw.unlock() };
        }
        if l.class.is_some() {
            order::pop_held(l.addr());
        }
    }
}

impl LockApi for RecycledOwnerLock {
    type Guard<'a> = RecycledOwnerGuard<'a>;
    fn lock(&self) -> Self::Guard<'_> {
        self.acquire(None, true).expect("untimed lock")
    }
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        self.acquire(deadline_after(timeout), true)
    }
    fn try_lock(&self) -> Option<Self::Guard<'_>> {
        self.acquire(None, false)
    }
    fn is_reentrant(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------------
// lock-try-waits

/// Negative control `lock-try-waits`: the reference [`ReentrantLock`], except that `try_lock`
/// is a plain `lock` — it waits for the holder instead of reporting "busy" (a `try_lock`
/// written as "lock with the default timeout", where the default is forever).
#[derive(Debug)]
pub struct TryWaitsLock {
    inner: ReentrantLock<()>,
}

impl TryWaitsLock {
    /// A free lock, tracked as `class`.
    pub fn new(class: &LockClass) -> Self {
        TryWaitsLock {
            inner: ReentrantLock::tracked((), class),
        }
    }
}

impl LockApi for TryWaitsLock {
    type Guard<'a> = ReentrantLockGuard<'a, ()>;
    #[track_caller]
    fn lock(&self) -> Self::Guard<'_> {
        self.inner.lock()
    }
    #[track_caller]
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        self.inner.lock_timeout(timeout).ok()
    }
    #[track_caller]
    fn try_lock(&self) -> Option<Self::Guard<'_>> {
        Some(self.inner.lock()) // the defect: waits
    }
    fn is_reentrant(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------------
// lock-nesting-wraps

/// The deepest nesting a [`NarrowCountLock`] declares: what its `u8` count holds.
pub const NARROW_MAX_NESTING: u64 = u8::MAX as u64;

/// A reentrant lock with a `u8` nesting count that declares [`NARROW_MAX_NESTING`] (255) as its
/// [`LockApi::max_nesting`]. [`NarrowCountLock::refusing`] keeps the promise (one level more is
/// refused: `try_lock`/`lock_timeout` give `None`, `lock` panics); negative control
/// `lock-nesting-wraps`, [`NarrowCountLock::wrapping`], lets the count wrap to 0 instead.
#[derive(Debug)]
pub struct NarrowCountLock {
    raw: RawMutex,
    /// The holder's [`current_thread_id`]; 0 when free.
    owner: AtomicU64,
    /// Nesting depth; touched by the owner only.
    count: UnsafeCell<u8>,
    /// The defect: `wrapping_add` instead of a refusal at 255.
    wraps: bool,
    class: Option<LockClass>,
}

// SAFETY: `count` is only touched by the owner.
unsafe impl Send for NarrowCountLock {}
// SAFETY: as above.
unsafe impl Sync for NarrowCountLock {}

impl NarrowCountLock {
    /// The correct narrow lock: nesting beyond 255 is refused. Tracked as `class`.
    pub fn refusing(class: &LockClass) -> Self {
        Self::build(class, false)
    }

    /// Negative control `lock-nesting-wraps`: at 255 the count wraps to 0. Tracked as `class`.
    pub fn wrapping(class: &LockClass) -> Self {
        Self::build(class, true)
    }

    fn build(class: &LockClass, wraps: bool) -> Self {
        NarrowCountLock {
            raw: RawMutex::new("NarrowCountLock::lock"),
            owner: AtomicU64::new(0),
            count: UnsafeCell::new(0),
            wraps,
            class: Some(class.clone()),
        }
    }

    fn addr(&self) -> usize {
        &self.raw as *const RawMutex as usize
    }

    /// `Err(())` on a refused overflow, `Ok(None)` on timeout / busy.
    fn acquire(
        &self,
        deadline: Option<Instant>,
        wait: bool,
    ) -> Result<Option<NarrowGuard<'_>>, ()> {
        let me = current_thread_id();
        let at = Location::caller();
        if self.owner.load(Ordering::Relaxed) == me {
            let wraps = self.wraps;
            // SAFETY: we are the owner; only the owner touches `count`.
            let ok = self.count.with_mut(|c| unsafe {
                if wraps {
                    *c = (*c).wrapping_add(1); // the defect
                    true
                } else if let Some(n) = (*c).checked_add(1) {
                    *c = n;
                    true
                } else {
                    false
                }
            });
            if !ok {
                return Err(());
            }
        } else {
            if let (Some(c), true) = (&self.class, wait) {
                order::check_acquire(c, self.addr(), at);
            }
            let got = if wait {
                self.raw.lock_until(deadline)
            } else {
                self.raw.try_lock()
            };
            if !got {
                return Ok(None);
            }
            self.owner.store(me, Ordering::Relaxed);
            // SAFETY: we hold `raw` and are the owner.
            self.count.with_mut(|c| unsafe { *c = 1 });
        }
        if let Some(c) = &self.class {
            order::push_held(c, self.addr(), at);
        }
        Ok(Some(NarrowGuard {
            lock: self,
            _not_send: PhantomData,
        }))
    }
}

/// Releases one level of a [`NarrowCountLock`].
pub struct NarrowGuard<'a> {
    lock: &'a NarrowCountLock,
    _not_send: PhantomData<*const ()>,
}

impl Drop for NarrowGuard<'_> {
    fn drop(&mut self) {
        let l = self.lock;
        // SAFETY: a guard exists only on the owning thread.
        let left = l.count.with_mut(|c| unsafe {
            *c = (*c).wrapping_sub(1);
            *c
        });
        if left == 0 {
            l.owner.store(0, Ordering::Relaxed);
            // SAFETY: the outermost guard of the owner: we hold `raw`.
            unsafe { l.raw.unlock() };
        }
        if l.class.is_some() {
            order::pop_held(l.addr());
        }
    }
}

impl LockApi for NarrowCountLock {
    type Guard<'a> = NarrowGuard<'a>;
    fn lock(&self) -> Self::Guard<'_> {
        match self.acquire(None, true) {
            Ok(g) => g.expect("untimed lock"),
            Err(()) => panic!("NarrowCountLock::lock: nesting deeper than {NARROW_MAX_NESTING}"),
        }
    }
    fn lock_timeout(&self, timeout: Duration) -> Option<Self::Guard<'_>> {
        self.acquire(deadline_after(timeout), true).ok().flatten()
    }
    fn try_lock(&self) -> Option<Self::Guard<'_>> {
        self.acquire(None, false).ok().flatten()
    }
    fn is_reentrant(&self) -> bool {
        true
    }
    fn max_nesting(&self) -> Option<u64> {
        Some(NARROW_MAX_NESTING)
    }
}
