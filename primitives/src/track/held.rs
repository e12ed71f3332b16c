//! The per-thread held-lock stack and the hooks run at a thread's outermost release.
//!
//! Every *tracked* lock (one with a lock class) pushes an entry here when its thread acquires
//! it and pops it at the release. The lock-order validator reads the stack to add order edges;
//! the wait registry reads it to publish which locks a sleeping thread holds; the buffered
//! message logs read [`held_depth`] to decide whether to stage a message.
//!
//! When a release empties the stack (the thread's *outermost* tracked lock), every
//! [`ReleaseHook`] installed so far runs on that thread. The message log and the shared message
//! ring install one each to flush what the thread staged while it held locks: the layers above
//! register themselves here, so this layer never names them (as parking_lot_core's `deadlock`
//! module is called *down* into by the lock code).
// loom's `thread_local!` does not accept a `const { }` initializer.
#![allow(clippy::missing_const_for_thread_local)]

use crate::sync::{engine_thread_local, BookAtomicUsize, BookOnce, BookOnceLock, BookOrdering};
use core::cell::RefCell;
use core::panic::Location;

/// One acquisition on a thread's held stack.
#[derive(Clone, Copy, Debug)]
pub struct HeldLock {
    /// Identity of the tracker (e.g. the lock-order validator) that owns the class.
    pub tracker: u64,
    /// The class's index within its tracker.
    pub class: usize,
    /// The class's name.
    pub name: &'static str,
    /// The lock's identity: the address of its raw lock word, which is also the object a
    /// thread sleeping on it registers in the wait registry.
    pub lock: usize,
    /// Where it was acquired.
    pub at: &'static Location<'static>,
}

engine_thread_local! {
    static HELD: RefCell<Vec<HeldLock>> = RefCell::new(Vec::new());
}

/// Records that the calling thread now holds `entry.lock`.
pub(crate) fn push_held(entry: HeldLock) {
    let _ = HELD.try_with(|h| h.borrow_mut().push(entry));
}

/// Records that the calling thread released (one acquisition of) `lock`; when it was the
/// outermost tracked lock, every installed [`ReleaseHook`] runs.
pub(crate) fn pop_held(lock: usize) {
    let now_empty = HELD
        .try_with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|e| e.lock == lock) {
                h.remove(i);
            }
            h.is_empty()
        })
        .unwrap_or(false);
    if now_empty {
        run_release_hooks();
    }
}

/// Runs `f` on the calling thread's held stack, outermost first (`None` while the thread's
/// locals are being destroyed).
pub fn with_held<R>(f: impl FnOnce(&[HeldLock]) -> R) -> Option<R> {
    HELD.try_with(|h| f(&h.borrow())).ok()
}

/// Classes of the tracked locks the calling thread holds, outermost first.
pub fn held_classes() -> Vec<&'static str> {
    held_locks().into_iter().map(|(name, _)| name).collect()
}

/// The tracked locks the calling thread holds, outermost first: (class, lock identity — the
/// address of its `RawMutex`, as registered by a thread sleeping on it in the wait registry).
pub fn held_locks() -> Vec<(&'static str, usize)> {
    with_held(|h| h.iter().map(|e| (e.name, e.lock)).collect()).unwrap_or_default()
}

/// How many tracked lock acquisitions the calling thread holds (re-entries count).
pub fn held_depth() -> usize {
    with_held(<[HeldLock]>::len).unwrap_or(0)
}

/// Most hooks that can be installed (one per kind of staging buffer in the crate, with room).
pub const MAX_RELEASE_HOOKS: usize = 8;

static HOOKS: [BookOnceLock<fn()>; MAX_RELEASE_HOOKS] =
    [const { BookOnceLock::new() }; MAX_RELEASE_HOOKS];
static NEXT_HOOK: BookAtomicUsize = BookAtomicUsize::new(0);

/// A function run on a thread whenever it releases its outermost tracked lock (and by
/// [`run_release_hooks`]). Declared as a `static` by the layer that needs it, installed once.
pub struct ReleaseHook {
    run: fn(),
    once: BookOnce,
}

impl ReleaseHook {
    /// A hook that runs `run`; nothing happens until it is [installed](ReleaseHook::install).
    pub const fn new(run: fn()) -> Self {
        ReleaseHook {
            run,
            once: BookOnce::new(),
        }
    }

    /// Installs the hook (idempotent: later calls do nothing). It runs on every thread's
    /// outermost release from then on.
    ///
    /// # Panics
    /// If more than [`MAX_RELEASE_HOOKS`] distinct hooks are installed.
    pub fn install(&'static self) {
        self.once.call_once(|| {
            let i = NEXT_HOOK.fetch_add(1, BookOrdering::Relaxed);
            assert!(i < MAX_RELEASE_HOOKS, "too many release hooks");
            let _ = HOOKS[i].set(self.run);
        });
    }
}

/// Runs every installed [`ReleaseHook`] on the calling thread, in installation order. Called at
/// the outermost release; harmless at any other time (each hook checks for itself whether the
/// thread still holds locks).
pub fn run_release_hooks() {
    // Every slot is looked at: a slot claimed by a concurrent `install` may still be empty while
    // a later one is already set.
    for hook in HOOKS.iter().filter_map(BookOnceLock::get) {
        hook();
    }
}

#[cfg(all(test, not(any(loom, shuttle))))]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        static RUNS: Cell<u32> = const { Cell::new(0) };
    }

    fn count() {
        RUNS.with(|r| r.set(r.get() + 1));
    }

    static COUNT: ReleaseHook = ReleaseHook::new(count);

    fn entry(lock: usize) -> HeldLock {
        HeldLock {
            tracker: 0,
            class: 0,
            name: "test",
            lock,
            at: Location::caller(),
        }
    }

    #[test]
    fn hooks_run_at_the_outermost_release_only() {
        COUNT.install();
        COUNT.install(); // idempotent: still one slot, one run per release
        let runs = || RUNS.with(Cell::get);
        push_held(entry(1));
        push_held(entry(2));
        push_held(entry(2));
        assert_eq!((held_depth(), held_locks()[0], runs()), (3, ("test", 1), 0));
        pop_held(2);
        pop_held(1);
        assert_eq!(
            (held_depth(), runs()),
            (1, 0),
            "released out of order: not outermost yet"
        );
        pop_held(2);
        assert_eq!((held_depth(), runs()), (0, 1));
    }
}
