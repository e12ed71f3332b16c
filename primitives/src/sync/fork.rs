//! Fork awareness (seed 002, "Don't mix threads and fork").
//!
//! `fork(2)` in a process with several threads copies all of its memory but only the calling
//! thread. Every lock another thread held at that instant is held in the child by a thread that
//! does not exist there: without help, the child's first acquisition of it sleeps forever.
//!
//! ## What this crate does
//! One `pthread_atfork` registration (armed by the first `RawMutex`
//! made, or the first [`ForkHook`] installed) runs three handlers:
//!
//! | handler  | runs in                     | does                                                                 |
//! |----------|-----------------------------|----------------------------------------------------------------------|
//! | prepare  | the parent, before the copy | records the forking thread ([`forker`]); runs the installed hooks' `prepare` (the message logs take their sink locks, glibc malloc's way); then closes the *book gate*: waits until no thread holds a bookkeeping lock and holds new ones off |
//! | parent   | the parent, after           | opens the gate; runs the hooks' `parent` (the logs release their sink locks) |
//! | child    | the child, after            | bumps the [fork generation](generation); resets the gate; runs the hooks' `child` (the logs release their sink locks and drop the forking thread's stage) |
//!
//! *User* lock instances cannot all be taken in `prepare` (there is no list of them, and taking
//! them in some order would deadlock against the application's own order). Instead every
//! `RawMutex` stamps its word with the generation of the process that
//! locked it and records its owner thread: in a child, a lock stamped with an older generation
//! and owned by any thread but the [`forker`] is held by a thread that vanished in the fork, and
//! the child's acquirer **takes it over** (one CAS, so two child threads cannot both win) and is
//! told so, as a robust mutex's `EOWNERDEAD` tells its caller. The data it guards is as the
//! vanished thread left it — possibly half-updated; the guard's `owner_vanished_in_fork()` says
//! so, and [`takeovers`] counts them.
//!
//! ## What a forked child may do
//! - lock every lock of this crate (`RawMutex`, `Mutex`, `ReentrantLock`): free ones as usual;
//!   ones the forking thread held stay its own (release them as usual); ones another thread held
//!   are taken over (check `owner_vanished_in_fork()` if the data matters);
//! - log through every `MessageLog` (its sink was consistent at the fork: the sink lock was
//!   held by `prepare`); messages the forking thread had staged before the fork belong to the
//!   parent, which delivers them — the child starts with an empty stage;
//! - start threads, fork again (generations nest).
//!
//! An `MVar`'s internal lock is a `RawMutex` too and is taken over likewise, but its queues may
//! still list waiters that were threads of the parent: a child should not rely on an MVar the
//! parent's other threads were using at the fork.
//!
//! It may **not** rely on anything else another thread held: std's locks (`std::sync::Mutex`,
//! stdout/stderr's lock), other libraries' state. The scenario `torture fork` children call only
//! this crate, `write(2)` and `_exit(2)`. A forking thread must not call `fork` from inside a
//! message sink's `deliver` of another log's sink or while a bookkeeping lock is held (neither
//! happens in this crate).
//!
//! The negative control `fork-held-lock` ([`set_handling`]`(false)`) turns the takeover and the
//! logs' hooks off: the child then sleeps forever on the first lock another thread held.
//!
//! Under loom and shuttle there is no fork: the generation is always 0 and nothing is armed.

#[cfg(not(any(loom, shuttle)))]
mod real {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Once, OnceLock};

    pub(super) static GENERATION: AtomicU32 = AtomicU32::new(0);
    pub(super) static FORKER: AtomicU64 = AtomicU64::new(0);
    pub(super) static HANDLING: AtomicBool = AtomicBool::new(true);
    pub(super) static TAKEOVERS: AtomicU64 = AtomicU64::new(0);
    static ARMED: Once = Once::new();

    /// Bookkeeping locks held right now (low bits) and the "fork in progress" bit.
    static GATE: AtomicUsize = AtomicUsize::new(0);
    const CLOSING: usize = 1 << (usize::BITS - 1);

    thread_local! {
        /// Bookkeeping locks the calling thread holds (a nested one passes a closing gate).
        static BOOK_DEPTH: Cell<u32> = const { Cell::new(0) };
    }

    pub(super) const MAX_HOOKS: usize = 8;
    pub(super) static HOOKS: [OnceLock<&'static super::ForkHook>; MAX_HOOKS] =
        [const { OnceLock::new() }; MAX_HOOKS];
    pub(super) static NEXT_HOOK: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn arm() {
        ARMED.call_once(|| {
            // SAFETY: the three handlers are `extern "C"` functions with no arguments that never
            // unwind; registering them has no other precondition.
            let r = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
            assert_eq!(r, 0, "pthread_atfork failed");
        });
    }

    fn hooks() -> impl DoubleEndedIterator<Item = &'static super::ForkHook> {
        HOOKS.iter().filter_map(|h| h.get().copied())
    }

    extern "C" fn prepare() {
        FORKER.store(crate::sync::current_thread_id(), Ordering::Relaxed);
        if HANDLING.load(Ordering::Relaxed) {
            for h in hooks() {
                (h.prepare)();
            }
        }
        // Last: the hooks above may take bookkeeping locks.
        GATE.fetch_or(CLOSING, Ordering::Acquire);
        while GATE.load(Ordering::Acquire) & !CLOSING > BOOK_DEPTH.with(Cell::get) as usize {
            std::thread::yield_now();
        }
    }

    extern "C" fn parent() {
        GATE.fetch_and(!CLOSING, Ordering::Release);
        if HANDLING.load(Ordering::Relaxed) {
            for h in hooks().rev() {
                (h.parent)();
            }
        }
    }

    extern "C" fn child() {
        GENERATION.fetch_add(1, Ordering::Relaxed);
        // Only this thread exists now: only its own bookkeeping locks are held.
        GATE.store(BOOK_DEPTH.with(Cell::get) as usize, Ordering::Relaxed);
        if HANDLING.load(Ordering::Relaxed) {
            for h in hooks().rev() {
                (h.child)();
            }
        }
    }

    /// Passes the book gate (waits while a fork is being prepared by another thread).
    pub(super) fn book_enter() {
        let depth = BOOK_DEPTH.with(Cell::get);
        loop {
            let g = GATE.load(Ordering::Relaxed);
            if g & CLOSING != 0 && depth == 0 {
                std::thread::yield_now();
                continue;
            }
            if GATE
                .compare_exchange_weak(g, g + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        BOOK_DEPTH.with(|d| d.set(depth + 1));
    }

    pub(super) fn book_leave() {
        BOOK_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        GATE.fetch_sub(1, Ordering::Release);
    }
}

/// Functions an upper layer runs around every `fork` (see the module docs); declared as a
/// `static`, installed once, like the held-lock stack's `ReleaseHook`.
pub struct ForkHook {
    prepare: fn(),
    parent: fn(),
    child: fn(),
    #[cfg(not(any(loom, shuttle)))]
    once: std::sync::Once,
}

impl ForkHook {
    /// A hook: `prepare` in the parent before the copy, `parent` in the parent after it, `child`
    /// in the child. Nothing runs until it is [installed](ForkHook::install).
    pub const fn new(prepare: fn(), parent: fn(), child: fn()) -> Self {
        ForkHook {
            prepare,
            parent,
            child,
            #[cfg(not(any(loom, shuttle)))]
            once: std::sync::Once::new(),
        }
    }

    /// Installs the hook (idempotent) and arms the `pthread_atfork` handlers. Hooks' `prepare`
    /// run in installation order, `parent` and `child` in reverse. Does nothing under a model
    /// engine.
    ///
    /// # Panics
    /// If more than 8 hooks are installed.
    pub fn install(&'static self) {
        #[cfg(not(any(loom, shuttle)))]
        self.once.call_once(|| {
            use std::sync::atomic::Ordering;
            let i = real::NEXT_HOOK.fetch_add(1, Ordering::Relaxed);
            assert!(i < real::MAX_HOOKS, "too many fork hooks");
            let _ = real::HOOKS[i].set(self);
            real::arm();
        });
        #[cfg(any(loom, shuttle))]
        let _ = (self.prepare, self.parent, self.child);
    }
}

/// Arms the `pthread_atfork` handlers (idempotent; one atomic load once armed).
#[inline]
pub fn arm() {
    #[cfg(not(any(loom, shuttle)))]
    real::arm();
}

/// How many forks separate this process from the first one that armed the handlers (0 in it,
/// 1 in its children, ...). Always 0 under a model engine.
#[inline]
pub fn generation() -> u32 {
    #[cfg(not(any(loom, shuttle)))]
    return real::GENERATION.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(any(loom, shuttle))]
    0
}

/// The thread ([`current_thread_id`](crate::sync::current_thread_id)) that called the latest
/// `fork` of this process's ancestry: in a child, the one thread that came through the fork
/// (0 if this process never forked).
pub fn forker() -> u64 {
    #[cfg(not(any(loom, shuttle)))]
    return real::FORKER.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(any(loom, shuttle))]
    0
}

/// Whether locks take over from owners that vanished in a fork, and the logs prepare for forks
/// (on by default).
#[inline]
pub fn handling() -> bool {
    #[cfg(not(any(loom, shuttle)))]
    return real::HANDLING.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(any(loom, shuttle))]
    true
}

/// Turns fork handling off (`false`) for the whole process: **the negative control
/// `fork-held-lock` only** — a forked child then hangs on any lock another thread held.
pub fn set_handling(on: bool) {
    #[cfg(not(any(loom, shuttle)))]
    real::HANDLING.store(on, std::sync::atomic::Ordering::Relaxed);
    #[cfg(any(loom, shuttle))]
    let _ = on;
}

/// How many acquisitions in this process took a lock over from an owner that vanished in a
/// fork.
pub fn takeovers() -> u64 {
    #[cfg(not(any(loom, shuttle)))]
    return real::TAKEOVERS.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(any(loom, shuttle))]
    0
}

/// Counts one takeover (called by the lock that took over).
pub fn note_takeover() {
    #[cfg(not(any(loom, shuttle)))]
    real::TAKEOVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Held while a bookkeeping lock is held: `prepare` waits for none to be held, so a child
/// never inherits one held by a thread that is not there.
pub(crate) struct BookTicket(());

impl BookTicket {
    pub(crate) fn enter() -> BookTicket {
        #[cfg(not(any(loom, shuttle)))]
        real::book_enter();
        BookTicket(())
    }
}

impl Drop for BookTicket {
    fn drop(&mut self) {
        #[cfg(not(any(loom, shuttle)))]
        real::book_leave();
    }
}
