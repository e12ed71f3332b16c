//! Harness-owned time and sleepers for real threads: a [`Sim`] that threads *attach* to.
//!
//! A fuzz harness that runs real threads against a primitive wants two things a real clock and
//! a real futex cannot give it: timeouts that expire when the *harness* decides (not after real
//! milliseconds of sleep, which cap a fuzzer at a few hundred executions a second), and knowing
//! when every thread of a case is asleep (so it can act at once instead of waiting for "nothing
//! moved for a while"). A thread attached to a `Sim` ([`Sim::attach`]) gets both:
//!
//! | facade call (attached thread)        | behaviour                                                         |
//! |--------------------------------------|-------------------------------------------------------------------|
//! | [`time::deadline_after`], [`time::is_due`] | measured on the sim's *virtual clock*, which only moves in [`Sim::expire_next`] |
//! | [`futex::wait_in`] with a deadline   | already due: `TimedOut` at once; otherwise sleeps **untimed** until woken, or until the harness expires it ([`Sim::expire_next`]), then `TimedOut` |
//! | [`futex::wait_in`] (any)             | counted in [`Sim::asleep`] while it sleeps; the harness may wake it spuriously ([`Sim::wake_spuriously`]) |
//! | [`spin::AdaptiveSpin::until`]         | looks once, does not spin: the harness wants to see the thread asleep |
//! | [`futex::wake_in`]                   | the real wake, then a spin of [`Sim::set_wake_delay`] (0 by default): the woken thread runs before its waker goes on |
//!
//! Everything else is the real thing: real threads, real futexes, real wake-ups. Threads that
//! are not attached (the harness itself, other tests in the process) see the real clock.
//!
//! ## Why this is sound
//! The harness acts when every live thread of the case is asleep ([`Sim::asleep`]); the count
//! is exact for a thread that is really asleep, but a thread that was just woken counts as
//! asleep until it runs. The harness may therefore act a little early — and every action is
//! one the primitive's contract allows at *any* moment: a deadline that has passed may expire
//! (the virtual clock jumps to it, never past a deadline not yet due), a wait may return
//! spuriously, another participant may put or take. An early action changes the interleaving,
//! never the verdict. A hang is still declared only by the harness's own wall-clock deadline.
//!
//! ## Cost when no sim exists
//! Each hook is one relaxed load of a process-wide count of live sims; at 0 nothing else runs.
//! Under the model engines this module does not exist (they own time already: see
//! [`super`]).
//!
//! [`time::deadline_after`]: super::time::deadline_after
//! [`time::is_due`]: super::time::is_due
//! [`futex::wait_in`]: super::futex::wait_in
//! [`futex::wake_in`]: super::futex::wake_in
//! [`spin::AdaptiveSpin::until`]: super::spin::AdaptiveSpin::until

use super::atomic::AtomicU32;
use super::futex_sys::{self, Scope, WaitResult};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Live sims in the process: the hooks' one load.
static LIVE: AtomicUsize = AtomicUsize::new(0);

std::thread_local! {
    static CURRENT: RefCell<Option<Arc<Sim>>> = const { RefCell::new(None) };
}

/// One sleeping thread.
#[derive(Debug)]
struct Entry {
    id: u64,
    /// The word's address (the futex key) and flavour, to wake it.
    addr: usize,
    scope: Scope,
    /// Virtual deadline, if timed.
    deadline: Option<Instant>,
    /// The harness timed it out: the wait returns `TimedOut`.
    expired: bool,
}

#[derive(Debug, Default)]
struct Sleepers {
    next_id: u64,
    entries: Vec<Entry>,
}

/// What [`Sim::sleepers`] reports of one sleeping thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sleeper {
    /// Whether it sleeps with a deadline.
    pub timed: bool,
    /// Whether the harness has already expired it (it is about to return `TimedOut`).
    pub expired: bool,
}

/// A harness-owned clock and registry of sleepers (see the [module docs](self)).
#[derive(Debug)]
pub struct Sim {
    base: Instant,
    /// Virtual time since `base`, in nanoseconds.
    offset: AtomicU64,
    sleepers: Mutex<Sleepers>,
    /// Threads registered as sleeping (not yet returned from their wait).
    asleep: AtomicUsize,
    /// Bumped whenever a thread starts or ends a sleep.
    activity: AtomicU64,
    /// How long an attached thread spins after each wake it issues, in nanoseconds.
    wake_delay: AtomicU64,
}

/// Keeps the calling thread attached to a [`Sim`]; dropping it detaches.
#[must_use = "the thread is detached when this is dropped"]
#[derive(Debug)]
pub struct Attached {
    previous: Option<Arc<Sim>>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The sim the calling thread is attached to, if any (one relaxed load when there is none).
#[inline]
pub(crate) fn current() -> Option<Arc<Sim>> {
    if LIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Runs `f` on the sim the calling thread is attached to, if any (without cloning it).
#[inline]
fn with_current<R>(f: impl FnOnce(&Sim) -> R) -> Option<R> {
    if LIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    CURRENT
        .try_with(|c| c.borrow().as_deref().map(f))
        .ok()
        .flatten()
}

/// Whether the calling thread is attached to a sim.
#[inline]
pub(crate) fn attached() -> bool {
    with_current(|_| ()).is_some()
}

/// "Now" for the calling thread: its sim's virtual clock, or the real one.
#[inline]
pub(crate) fn now() -> Instant {
    with_current(Sim::now).unwrap_or_else(Instant::now)
}

impl Sim {
    /// A new sim; its virtual clock starts at the real "now".
    pub fn new() -> Arc<Sim> {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Arc::new(Sim {
            base: Instant::now(),
            offset: AtomicU64::new(0),
            sleepers: Mutex::new(Sleepers::default()),
            asleep: AtomicUsize::new(0),
            activity: AtomicU64::new(0),
            wake_delay: AtomicU64::new(0),
        })
    }

    /// Attaches the calling thread until the returned guard is dropped.
    pub fn attach(self: &Arc<Self>) -> Attached {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        Attached { previous }
    }

    /// Makes every attached thread spin for `d` (real time) right after each futex wake it
    /// issues: the woken thread runs before its waker's next step — the window in which a
    /// waker that wakes *before* it publishes loses its wake-up. Zero (the default) turns it off.
    pub fn set_wake_delay(&self, d: Duration) {
        self.wake_delay.store(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// The hook after a futex wake by an attached thread.
    pub(crate) fn after_wake(&self) {
        let ns = self.wake_delay.load(Ordering::Relaxed);
        if ns > 0 {
            let start = Instant::now();
            let d = Duration::from_nanos(ns);
            while start.elapsed() < d {
                std::hint::spin_loop();
            }
        }
    }

    /// The virtual "now".
    pub fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset.load(Ordering::Acquire))
    }

    /// Attached threads sleeping in a futex wait right now (a thread just woken counts until it
    /// runs: see the [module docs](self)).
    pub fn asleep(&self) -> usize {
        self.asleep.load(Ordering::SeqCst)
    }

    /// A counter that moves whenever an attached thread starts or ends a sleep.
    pub fn activity(&self) -> u64 {
        self.activity.load(Ordering::SeqCst)
    }

    /// The sleepers, in the order they went to sleep.
    pub fn sleepers(&self) -> Vec<Sleeper> {
        self.book()
            .entries
            .iter()
            .map(|e| Sleeper {
                timed: e.deadline.is_some(),
                expired: e.expired,
            })
            .collect()
    }

    fn book(&self) -> MutexGuard<'_, Sleepers> {
        self.sleepers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Advances the virtual clock to the earliest deadline of a sleeping timed wait (never
    /// backwards) and times out every sleeper due by then. Returns how many it timed out (0: no
    /// timed sleeper, the clock did not move).
    ///
    /// A sleeper counts as asleep from the moment it registers, a little before it enters the
    /// kernel; a wake in between is lost (its word still holds the value it sleeps on). So a
    /// sleeper already timed out but still here is first woken again, and that is the call's
    /// whole effect (it returns how many): the harness calls again when everyone sleeps.
    pub fn expire_next(&self) -> usize {
        let mut book = self.book();
        let again = book.entries.iter().filter(|e| e.expired).count();
        if again > 0 {
            for e in book.entries.iter().filter(|e| e.expired) {
                wake_addr(e.scope, e.addr);
            }
            return again;
        }
        let Some(next) = book
            .entries
            .iter()
            .filter(|e| !e.expired)
            .filter_map(|e| e.deadline)
            .min()
        else {
            return 0;
        };
        let target = next.saturating_duration_since(self.base).as_nanos() as u64;
        self.offset.fetch_max(target, Ordering::AcqRel);
        let now = self.now();
        let mut n = 0;
        for e in book.entries.iter_mut() {
            if !e.expired && e.deadline.is_some_and(|d| d <= now) {
                e.expired = true;
                n += 1;
                // Woken under the book's lock: the sleeper removes its entry under the same
                // lock before its word can go away, so the address is still its word.
                wake_addr(e.scope, e.addr);
            }
        }
        n
    }

    /// Wakes the `k`-th sleeper (modulo their number) without changing anything it waits for:
    /// a spurious wake-up, which every wait must tolerate. Returns false if nobody sleeps.
    pub fn wake_spuriously(&self, k: usize) -> bool {
        let book = self.book();
        if book.entries.is_empty() {
            return false;
        }
        let e = &book.entries[k % book.entries.len()];
        wake_addr(e.scope, e.addr);
        true
    }

    /// The wait of an attached thread (see the [module docs](self)).
    pub(crate) fn wait(
        &self,
        scope: Scope,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
    ) -> WaitResult {
        if deadline.is_some_and(|d| self.now() >= d) {
            return WaitResult::TimedOut;
        }
        let id = {
            let mut book = self.book();
            let id = book.next_id;
            book.next_id += 1;
            book.entries.push(Entry {
                id,
                addr: word.as_ptr() as usize,
                scope,
                deadline,
                expired: false,
            });
            self.asleep.fetch_add(1, Ordering::SeqCst);
            self.activity.fetch_add(1, Ordering::SeqCst);
            id
        };
        // Untimed: only a wake (a server's, or the harness's expiry or spurious wake) ends it.
        let _ = futex_sys::wait(scope, word, expected, None);
        let expired = {
            let mut book = self.book();
            let i = book
                .entries
                .iter()
                .position(|e| e.id == id)
                .expect("sim: a sleeper's entry vanished");
            let e = book.entries.remove(i);
            self.asleep.fetch_sub(1, Ordering::SeqCst);
            self.activity.fetch_add(1, Ordering::SeqCst);
            e.expired
        };
        if expired {
            WaitResult::TimedOut
        } else {
            WaitResult::Woken
        }
    }
}

fn wake_addr(scope: Scope, addr: usize) {
    // SAFETY: `addr` is the address of a live `AtomicU32`: a sleeper's word, and the caller
    // holds the book's lock, without which the sleeper cannot leave `Sim::wait` (it removes its
    // entry under that lock first), so its word outlives this call.
    let word = unsafe { &*(addr as *const AtomicU32) };
    futex_sys::wake(scope, word, u32::MAX);
}
