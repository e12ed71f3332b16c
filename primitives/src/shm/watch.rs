//! How a robust sleeper sleeps: on its own word *and* on the death beacons
//! ([`super::beacon`]) of the processes whose death it must not miss, so that an idle sleeper
//! costs no CPU and still hears of a death at once.
//!
//! | sleeper                                   | watches                                            |
//! |-------------------------------------------|----------------------------------------------------|
//! | a lock waiter ([`super::RobustWord`])     | the lock word + the beacon of the owner's process   |
//! | a robust MVar sleeper (lock free, on a sequence word) | its sequence word + the segment's *joins* word + the beacon of every other live process (any of them may take the lock and die holding it) |
//!
//! With every watched process covered by an armed beacon the sleep is one `futex_waitv(2)`
//! ([`crate::sync::futex::wait_any`]) bounded only by a long **fallback slice**
//! ([`FALLBACK_SLICE`], 3 s plus up to 50 % jitter; [`set_fallback_slice`]), the guard against
//! what the kernel cannot report: a *thread* that exits holding a lock while its process lives, a beacon that stopped
//! at the kernel's list limit. A sleeper woken by a beacon passes the wake on (the kernel wakes
//! one waiter per word) and asks for the liveness check; while a fired beacon's process is not
//! yet gone for `/proc` (its other threads are still exiting) the sleeper polls in 1 ms slices.
//! Where a watched process has no beacon (it could not start one, the table is not in a
//! segment), more than [`WAIT_ANY_MAX`] words would be needed, the kernel has no
//! `futex_waitv` (before 5.16: `ENOSYS`), or the word is a *private* futex (the seed-000
//! control: its wake-ups never cross processes, and its detection counts sleeps ended by a
//! short slice while the object was ready), the sleeper keeps the polling it always had:
//! slices of 1 ms doubling to 50 ms, each followed by the check.
//!
//! Under the model engines a sleep is one untimed wait on the word (the harness wakes every
//! word on a modelled death) and every wake-up asks for the check, as before.

use super::participants::{Participants, Token};
use crate::sync::atomic::AtomicU32;
use crate::sync::futex::{self, Scope, WaitResult};
use crate::sync::time::{Duration, Instant};

/// First and longest slice of the polling sleepers (no beacon to watch).
pub(crate) const FIRST_SLICE: Duration = Duration::from_millis(1);
const LONGEST_SLICE: Duration = Duration::from_millis(50);
/// The fallback slice of a sleeper whose every watched process has a beacon (each sleep adds
/// up to half of it again, at random, so that sleepers that went to sleep together do not all
/// wake together and queue on the lock).
pub const FALLBACK_SLICE: Duration = Duration::from_secs(3);
/// How many 1 ms checks a sleeper makes after a beacon fired before slowing down.
#[cfg_attr(any(loom, shuttle), allow(dead_code))]
const DYING_CHECKS: u32 = 200;

/// Whose death a sleeper must hear of.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(any(loom, shuttle), allow(dead_code))]
pub(crate) enum Whom {
    /// The owner of a lock word (its token).
    Owner(Token),
    /// Every process that may take the object's lock.
    Everyone,
}

/// What a sleep ended with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slept {
    /// `TimedOut`: a slice (or the caller's deadline) ran out; `Woken`: anything else.
    pub result: WaitResult,
    /// Run the liveness check now: a slice ran out or a watched beacon fired (modelled: any
    /// wake-up, since that is how the harness announces a death).
    pub check: bool,
    /// A watched process is gone but its slot is still live: reap before sleeping again
    /// ([`Whom::Everyone`] only; the sleep returned at once).
    pub stale: bool,
}

impl Slept {
    /// A sleep after which the liveness check runs (a slice, the deadline or a modelled death
    /// ended it), with no stale slot to reap.
    fn checked(result: WaitResult) -> Slept {
        Slept {
            result,
            check: true,
            stale: false,
        }
    }
}

/// One waiting operation's pacing (a fresh one per operation).
#[derive(Debug)]
pub(crate) struct Watch {
    slice: Duration,
    #[cfg_attr(any(loom, shuttle), allow(dead_code))]
    dying: u32,
}

impl Default for Watch {
    fn default() -> Self {
        Self::new()
    }
}

/// The sleep after which the owner's liveness is checked; `None` under the model engines.
fn slice_deadline(slice: Duration, deadline: Option<Instant>) -> Option<Instant> {
    if crate::sync::MODELLED {
        return deadline;
    }
    let end = crate::sync::time::deadline_after(slice);
    match (end, deadline) {
        (Some(e), Some(d)) => Some(e.min(d)),
        (e, d) => e.or(d),
    }
}

impl Watch {
    /// A new operation's pacing.
    pub(crate) fn new() -> Self {
        Watch {
            slice: FIRST_SLICE,
            dying: 0,
        }
    }

    /// Sleeps while `word == expected` (or less: see the module docs), until `deadline`.
    pub(crate) fn sleep(
        &mut self,
        parts: &Participants<'_>,
        scope: Scope,
        word: &AtomicU32,
        expected: u32,
        whom: Whom,
        deadline: Option<Instant>,
    ) -> Slept {
        #[cfg(not(any(loom, shuttle)))]
        {
            real::sleep(self, parts, scope, word, expected, whom, deadline)
        }
        #[cfg(any(loom, shuttle))]
        {
            let _ = (parts, whom);
            // Slices are untimed: every wake-up may be a modelled death.
            let result =
                futex::wait_in(scope, word, expected, slice_deadline(self.slice, deadline));
            Slept::checked(result)
        }
    }

    /// Today's polling sleep: one slice (doubling up to 50 ms), then the check.
    pub(crate) fn poll(
        &mut self,
        scope: Scope,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
    ) -> Slept {
        let result = futex::wait_in(scope, word, expected, slice_deadline(self.slice, deadline));
        if result == WaitResult::TimedOut {
            self.slice = (self.slice * 2).min(LONGEST_SLICE);
        }
        Slept {
            result,
            check: result == WaitResult::TimedOut,
            stale: false,
        }
    }
}

/// Sleeps of this process that a death beacon ended (a statistic, for tests and benchmarks).
static BEACON_WAKES: crate::sync::BookAtomicU64 = crate::sync::BookAtomicU64::new(0);

/// How many sleeps of this process a death beacon (or a watcher passing its wake on) ended.
pub fn beacon_wakes() -> u64 {
    BEACON_WAKES.load(crate::sync::BookOrdering::Relaxed)
}

/// Sets the fallback slice of the sleepers that watch beacons (process-wide; for tests and
/// measurements — e.g. an hour, to show that a death is heard without it).
pub fn set_fallback_slice(d: Duration) {
    real_fallback::set(d);
}

#[cfg(not(any(loom, shuttle)))]
mod real_fallback {
    use super::{Duration, FALLBACK_SLICE};
    use crate::sync::BookOrdering;

    static MS: crate::sync::BookAtomicU64 =
        crate::sync::BookAtomicU64::new(FALLBACK_SLICE.as_millis() as u64);

    pub(super) fn set(d: Duration) {
        MS.store(d.as_millis().max(1) as u64, BookOrdering::Relaxed);
    }

    /// The fallback slice of one sleep: the setting plus up to half of it again (a cheap
    /// hash of the pid and a per-process counter: spread, not secret).
    pub(super) fn get() -> Duration {
        static N: crate::sync::BookAtomicU64 = crate::sync::BookAtomicU64::new(0);
        let ms = MS.load(BookOrdering::Relaxed);
        let n = N.fetch_add(1, BookOrdering::Relaxed) ^ (u64::from(std::process::id()) << 20);
        let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        Duration::from_millis(ms + (ms / 2) * (h % 1024) / 1024)
    }

    static WATCHING: crate::sync::BookAtomicBool = crate::sync::BookAtomicBool::new(true);

    pub(super) fn set_watching(on: bool) {
        WATCHING.store(on, BookOrdering::Relaxed);
    }

    pub(super) fn watching() -> bool {
        WATCHING.load(BookOrdering::Relaxed)
    }
}

#[cfg(any(loom, shuttle))]
mod real_fallback {
    pub(super) fn set(_d: super::Duration) {}
    pub(super) fn set_watching(_on: bool) {}
}

/// Whether this process's sleepers watch death beacons (the default) or poll in slices as
/// before beacons existed — for the benchmark's side-by-side "before" rows. Beacons of this
/// process are armed either way (other processes' sleepers rely on them).
pub fn set_beacon_watching(on: bool) {
    real_fallback::set_watching(on);
}

#[cfg(not(any(loom, shuttle)))]
mod real {
    use super::*;
    use crate::shm::beacon::armed;
    use crate::shm::participants::{live_identity, process_gone};
    use crate::sync::atomic::Ordering;
    use crate::sync::futex::{WaitAny, WaitOn, WAIT_ANY_MAX};

    /// The kernel has no `futex_waitv` (learnt once).
    static NO_WAITV: crate::sync::BookAtomicBool = crate::sync::BookAtomicBool::new(false);

    /// What the watched processes' beacons say.
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Cover {
        /// Every watched process has an armed beacon (now in the wait list).
        Covered,
        /// Some watched process has no beacon: poll.
        Uncovered,
        /// A watched process's beacon fired and `/proc` does not say it is gone yet: poll fast.
        Dying,
        /// A watched process is gone: check (or reap) now, without sleeping.
        Gone,
    }

    /// Appends the words to watch for `whom` to `v`; says how well they cover it.
    fn gather<'p>(parts: &Participants<'p>, whom: Whom, v: &mut Vec<WaitOn<'p>>) -> Cover {
        let Some(joins) = parts.joins() else {
            return Cover::Uncovered;
        };
        let me = std::process::id();
        match whom {
            Whom::Owner(token) => {
                let Some((pid, start)) = parts.live_slot(token) else {
                    // Released or reaped: the owner is dead, check now.
                    return Cover::Gone;
                };
                if pid == me {
                    // Another thread of ours: only its exit with the lock held (a leaked
                    // guard) can strand us, which the fallback slice covers.
                    return Cover::Covered;
                }
                let mut cover = Cover::Uncovered;
                for slot in parts.slots() {
                    if live_identity(slot) != Some((pid, start, 0)) {
                        continue;
                    }
                    let b = slot.beacon.load(Ordering::Acquire);
                    cover = watch_one(slot, b, pid, start, v);
                    if cover != Cover::Uncovered {
                        break;
                    }
                }
                cover
            }
            Whom::Everyone => {
                // Read before the scan: a process that goes live after it bumps the word
                // after, so the wait below sees it changed.
                v.push(WaitOn {
                    word: joins,
                    expected: joins.load(Ordering::Acquire),
                    scope: Scope::Shared,
                });
                let mut worst = Cover::Covered;
                let mut pids: Vec<u32> = Vec::new();
                for slot in parts.slots() {
                    let Some((pid, start, 0)) = live_identity(slot) else {
                        continue;
                    };
                    if pid == me || pids.contains(&pid) {
                        continue;
                    }
                    let b = slot.beacon.load(Ordering::Acquire);
                    let c = watch_one(slot, b, pid, start, v);
                    if c == Cover::Covered {
                        pids.push(pid);
                    }
                    worst = worst.max(c);
                    if worst == Cover::Gone || v.len() > WAIT_ANY_MAX {
                        break;
                    }
                }
                if v.len() > WAIT_ANY_MAX {
                    return worst.max(Cover::Uncovered);
                }
                worst
            }
        }
    }

    fn watch_one<'p>(
        slot: &'p crate::shm::Slot,
        b: u32,
        pid: u32,
        start: u64,
        v: &mut Vec<WaitOn<'p>>,
    ) -> Cover {
        if armed(b) {
            v.push(WaitOn {
                word: &slot.beacon,
                expected: b,
                scope: Scope::Shared,
            });
            Cover::Covered
        } else if b == 0 {
            Cover::Uncovered
        } else if process_gone(pid, start) {
            Cover::Gone
        } else {
            Cover::Dying
        }
    }

    pub(super) fn sleep(
        w: &mut Watch,
        parts: &Participants<'_>,
        scope: Scope,
        word: &AtomicU32,
        expected: u32,
        whom: Whom,
        deadline: Option<Instant>,
    ) -> Slept {
        // A private word in shared memory is the seed-000 control (no wake-up crosses
        // processes): it keeps the polling slices, so that its lost wake-ups stay visible as
        // sleeps ended by a slice while the object was ready (what catches the control), and
        // short, instead of lasting a fallback slice each.
        if scope == Scope::Private
            || NO_WAITV.load(crate::sync::BookOrdering::Relaxed)
            || !super::real_fallback::watching()
        {
            return w.poll(scope, word, expected, deadline);
        }
        let mut v = vec![WaitOn {
            word,
            expected,
            scope,
        }];
        match gather(parts, whom, &mut v) {
            Cover::Uncovered => w.poll(scope, word, expected, deadline),
            Cover::Gone => Slept {
                result: WaitResult::Woken,
                check: true,
                stale: matches!(whom, Whom::Everyone),
            },
            Cover::Dying => {
                let slice = if w.dying < DYING_CHECKS {
                    w.dying += 1;
                    FIRST_SLICE
                } else {
                    w.slice = (w.slice * 2).min(LONGEST_SLICE);
                    w.slice
                };
                let result = futex::wait_in(scope, word, expected, slice_deadline(slice, deadline));
                Slept::checked(result)
            }
            Cover::Covered => {
                let fallback = super::real_fallback::get();
                let end = slice_deadline(fallback, deadline);
                let woke = futex::wait_any(&v, end);
                w.slice = FIRST_SLICE;
                w.dying = 0;
                match woke {
                    WaitAny::Woken(0) => Slept {
                        result: WaitResult::Woken,
                        check: false,
                        stale: false,
                    },
                    WaitAny::Woken(i) => {
                        let joins = matches!(whom, Whom::Everyone) && i == 1;
                        if !joins {
                            // The kernel woke one watcher of this beacon: wake the others.
                            futex::wake_in(Scope::Shared, v[i].word, u32::MAX);
                            BEACON_WAKES.fetch_add(1, crate::sync::BookOrdering::Relaxed);
                        }
                        Slept {
                            result: WaitResult::Woken,
                            check: !joins,
                            stale: false,
                        }
                    }
                    WaitAny::Changed => Slept {
                        result: WaitResult::Woken,
                        // Our own word moved: nothing to check; else a beacon or joins did.
                        check: word.load(Ordering::Relaxed) == expected,
                        stale: false,
                    },
                    WaitAny::TimedOut => Slept::checked(WaitResult::TimedOut),
                    WaitAny::Unsupported => {
                        NO_WAITV.store(true, crate::sync::BookOrdering::Relaxed);
                        w.poll(scope, word, expected, deadline)
                    }
                }
            }
        }
    }
}
