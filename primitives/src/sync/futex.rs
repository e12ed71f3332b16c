//! Futex-style blocking on a 32-bit word: `wait(word, expected, deadline)`, `wake_one`,
//! `wake_all`.
//!
//! * For real (default build) these are the Linux `futex(2)` operations `FUTEX_WAIT` /
//!   `FUTEX_WAKE`, in a *private* flavour (one process; the kernel keys the wait queue on the
//!   virtual address) and a *shared* flavour (key = the underlying page, so waiters and wakers
//!   in different processes that map the same segment meet). Using the private flavour on
//!   shared memory is exactly seed 000's failure class: the wake never reaches the waiter.
//! * Under loom / shuttle both flavours are one model: a table of waiters behind the engine's
//!   `Mutex`, with a `Condvar` to block on. See the module docs of [`crate::sync`].
//!
//! `wait` may return spuriously; every caller re-checks its condition in a loop. On real
//! threads [chaos mode](super::chaos) makes it do so on purpose.

use super::atomic::AtomicU32;
use super::time::Instant;

pub use super::futex_sys::{Scope, WaitResult};

/// Blocks while `word == expected`, until woken or until `deadline` (private flavour).
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
    wait_in(Scope::Private, word, expected, deadline)
}

/// Wakes at most one waiter blocked on `word` (private flavour).
pub fn wake_one(word: &AtomicU32) {
    wake_in(Scope::Private, word, 1)
}

/// Wakes every waiter blocked on `word` (private flavour).
pub fn wake_all(word: &AtomicU32) {
    wake_in(Scope::Private, word, u32::MAX)
}

/// Blocks while `word == expected` in the given [`Scope`].
pub fn wait_in(
    scope: Scope,
    word: &AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
) -> WaitResult {
    // A thread attached to a harness's sim sleeps on its virtual clock (see [`super::sim`]).
    // With no sim in the process, this is one relaxed load.
    #[cfg(not(any(loom, shuttle)))]
    if let Some(sim) = super::sim::current() {
        return sim.wait(scope, word, expected, deadline);
    }
    // With chaos on (real threads only), a wait may return spuriously, at once or after a
    // short sleep although not woken: see [`super::chaos`]. Off, this is one relaxed load.
    #[cfg(not(any(loom, shuttle)))]
    match super::chaos::before_wait() {
        super::chaos::BeforeWait::Proceed => {}
        super::chaos::BeforeWait::Spurious => return WaitResult::Woken,
        super::chaos::BeforeWait::WakeBy(by) => {
            let short = deadline.map_or(by, |d| d.min(by));
            return match imp::wait(scope, word, expected, Some(short)) {
                WaitResult::TimedOut if deadline.is_some_and(|d| d <= by) => WaitResult::TimedOut,
                _ => WaitResult::Woken,
            };
        }
    }
    imp::wait(scope, word, expected, deadline)
}

/// Wakes up to `n` waiters on `word` in the given [`Scope`].
pub fn wake_in(scope: Scope, word: &AtomicU32, n: u32) {
    // A thread attached to a harness's sim may be slowed after its wakes (see [`super::sim`]).
    #[cfg(not(any(loom, shuttle)))]
    if let Some(sim) = super::sim::current() {
        imp::wake(scope, word, n);
        sim.after_wake();
        return;
    }
    // With chaos on, a short random delay before or after the wake (see [`super::chaos`]).
    #[cfg(not(any(loom, shuttle)))]
    if super::chaos::before_wake() {
        imp::wake(scope, word, n);
        super::chaos::after_wake();
        return;
    }
    imp::wake(scope, word, n)
}

#[cfg(not(any(loom, shuttle)))]
use super::futex_sys as imp;

#[cfg(any(loom, shuttle))]
mod imp {
    //! The futex model: a waiter table behind the engine's mutex.
    use super::{Scope, WaitResult};
    use crate::sync::atomic::{AtomicU32, Ordering};
    use crate::sync::time::Instant;
    #[cfg(loom)]
    use loom::sync::{Condvar, Mutex};
    #[cfg(shuttle)]
    use shuttle::sync::{Condvar, Mutex};

    #[derive(Default)]
    struct Table {
        next_ticket: u64,
        /// (word address, ticket, released): FIFO per word.
        waiters: Vec<(usize, u64, bool)>,
    }

    struct Model {
        table: Mutex<Table>,
        cv: Condvar,
    }

    #[cfg(loom)]
    loom::lazy_static! {
        static ref MODEL: Model = Model { table: Mutex::new(Table::default()), cv: Condvar::new() };
    }
    #[cfg(shuttle)]
    shuttle::lazy_static! {
        static ref MODEL: Model = Model { table: Mutex::new(Table::default()), cv: Condvar::new() };
    }

    fn key(word: &AtomicU32) -> usize {
        word as *const AtomicU32 as usize
    }

    pub fn wait(
        _scope: Scope,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
    ) -> WaitResult {
        let model = &*MODEL;
        let mut t = model.table.lock().unwrap();
        // The kernel compares under its bucket lock; every waker takes this lock after
        // changing the word, so a change before this load is seen, and one after it finds us
        // registered.
        if word.load(Ordering::SeqCst) != expected {
            return WaitResult::Woken;
        }
        if deadline.is_some() {
            // Time is frozen in the model, so a timed wait cannot be woken "later": it times
            // out exactly when it would sleep. This makes the engine explore every race between
            // a waiter giving up and a server granting it, which a real clock rarely shows.
            return WaitResult::TimedOut;
        }
        let me = t.next_ticket;
        t.next_ticket += 1;
        t.waiters.push((key(word), me, false));
        loop {
            t = model.cv.wait(t).unwrap();
            let i = t
                .waiters
                .iter()
                .position(|w| w.1 == me)
                .expect("futex model: waiter lost");
            if t.waiters[i].2 {
                t.waiters.remove(i);
                return WaitResult::Woken;
            }
        }
    }

    pub fn wake(_scope: Scope, word: &AtomicU32, n: u32) {
        let model = &*MODEL;
        let mut t = model.table.lock().unwrap();
        let k = key(word);
        let mut left = n;
        let mut any = false;
        for w in t.waiters.iter_mut() {
            if w.2 {
                continue;
            }
            if w.0 == k {
                if left > 0 {
                    w.2 = true;
                    left -= 1;
                    any = true;
                }
            } else {
                // Spurious wake-up of a waiter on another word: correct code re-checks.
                w.2 = true;
                any = true;
            }
        }
        drop(t);
        if any {
            model.cv.notify_all();
        }
    }
}

#[cfg(not(any(loom, shuttle)))]
pub use super::futex_sys::{WaitAny, WaitOn, WAIT_ANY_MAX};

/// Blocks until any of `words` is woken, or does not hold its expected value, or `deadline`
/// passes: Linux's `futex_waitv(2)` (5.16+), whose wake-ups are the ordinary `FUTEX_WAKE`s
/// (so a word can be woken by [`wake_in`], or by the kernel's robust-list walk at a thread's
/// death). Real threads only: the model engines have no use for it. With chaos on, it may
/// return early like [`wait_in`].
#[cfg(not(any(loom, shuttle)))]
pub fn wait_any(words: &[WaitOn<'_>], deadline: Option<Instant>) -> WaitAny {
    let mut deadline = deadline;
    match super::chaos::before_wait() {
        super::chaos::BeforeWait::Proceed => {}
        super::chaos::BeforeWait::Spurious => return WaitAny::Changed,
        super::chaos::BeforeWait::WakeBy(by) => deadline = Some(deadline.map_or(by, |d| d.min(by))),
    }
    imp::wait_any(words, deadline)
}
