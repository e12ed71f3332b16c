//! The robust MVar's waiting: spinning, sleeping on the sequence words, waking and passing a
//! wake on, and recovering the lock from a dead holder — the part of the [`super::core`]
//! protocol that blocks.
//!
//! A `put` on a full box (a `take`/`read` on an empty one) first spins briefly — an adaptive
//! bound learnt in the shared `spin` word, so a ping-pong partner answering within microseconds
//! is caught without a system call. Then it takes the lock, and if the box is still not ready it
//! counts itself in `putters` (`takers`) and reads `empty_seq` (`full_seq`) **under the lock**,
//! releases it and sleeps on that word with a *shared* futex — and on the segment's `joins`
//! word and the death beacon of every other live process ([`crate::shm::RobustWord`]'s module
//! and `shm/watch.rs`: any of them may take the lock and die holding it, and the kernel wakes
//! a watcher of its beacon when it dies), so an idle sleeper costs no CPU. It wakes for a
//! commit, a death, a process joining, or a long fallback slice (3–4.5 s; where a process has no
//! beacon, polling slices of at most 50 ms as before); each pass round the loop takes the lock
//! again, so a dead holder is found by the lock's own beacon-and-check. A watched process found
//! gone with its slot still live is reaped under the lock before the next sleep. A committer bumps the sequence word and reads
//! the counter under the same lock, so it cannot miss a registered waiter, and issues its
//! `futex_wake` *before* unlocking: a participant killed between its commit and its wake still
//! holds the lock, and whoever recovers the lock wakes everyone. A commit wakes one waiter
//! (a system call only if the counter is non-zero); a waiter that gives up at its deadline, or
//! only reads, passes the wake on.

use super::core::*;
use crate::shm::{Acquired, Token, Watch, Who, Whom};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::futex::{self, WaitResult};
#[cfg(not(any(loom, shuttle)))]
use crate::sync::spin_hint;
use crate::sync::time::Instant;

impl<'a, S: Slots> Core<'a, S> {
    /// Under the model engines spinning only multiplies the schedules: look once.
    #[cfg(any(loom, shuttle))]
    pub(super) fn spin(&self, ready: impl Fn() -> bool) -> bool {
        ready()
    }

    /// Spins (bounded, adaptive) until `ready`; returns whether it became true.
    #[cfg(not(any(loom, shuttle)))]
    pub(super) fn spin(&self, ready: impl Fn() -> bool) -> bool {
        // `est` tracks how long answers take (glibc's adaptive mutex idea): spin up to about
        // twice that. A fresh box (0) starts at the bound.
        let est = self.st.spin.load(Ordering::Relaxed).min(MAX_SPIN);
        let limit = if est == 0 {
            MAX_SPIN
        } else {
            (2 * est + MIN_SPIN).min(MAX_SPIN)
        };
        let moved = |target: u32| ((7 * u64::from(est) + u64::from(target)) / 8) as u32;
        for i in 0..limit {
            if ready() {
                self.st.spin.store(moved(i).max(1), Ordering::Relaxed);
                return true;
            }
            spin_hint();
        }
        // No answer within the limit: a short limit grows towards it (the partner may just be
        // slower than we guessed); the full bound failing halves the estimate, so a waiter that
        // is rarely served soon spends on average well under the bound before sleeping.
        let next = if limit >= MAX_SPIN {
            est / 2
        } else {
            moved(limit)
        };
        self.st.spin.store(next.max(1), Ordering::Relaxed);
        ready()
    }

    /// Called with the lock held and the box not ready for `op`: counts the caller in as a
    /// waiter, releases the lock and sleeps one slice (or until woken). `TimedOut`: the slice
    /// (or the deadline) ran out. Sets `*stale` if a watched process is gone with its slot
    /// still live (reap it under the lock before sleeping again).
    pub(super) fn sleep(
        &self,
        me: Token,
        op: Op,
        deadline: Option<Instant>,
        watch: &mut Watch,
        stale: &mut bool,
    ) -> WaitResult {
        let (seq, counter, bit) = if op.needs_full() {
            (&self.st.full_seq, &self.st.takers, TAKERS_BIT)
        } else {
            (&self.st.empty_seq, &self.st.putters, PUTTERS_BIT)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.parts.mark_waiting(me, bit);
        let seen = seq.load(Ordering::Relaxed);
        self.st.lock.unlock(self.flavor.scope);
        if deadline.is_some_and(crate::sync::time::is_due) {
            self.uncount(me, counter, bit);
            return WaitResult::TimedOut;
        }
        #[cfg(any(loom, shuttle))]
        crate::shm::trace(|| format!("{} me={me:x} sleeps seq={seen}", op.name()));
        let result = {
            let _registered = crate::track::waitreg::enter(op.name(), self.st);
            let slept = watch.sleep(
                &self.parts,
                self.flavor.scope,
                seq,
                seen,
                Whom::Everyone,
                deadline,
            );
            *stale = slept.stale;
            slept.result
        };
        #[cfg(any(loom, shuttle))]
        crate::shm::trace(|| format!("{} me={me:x} woke {result:?}", op.name()));
        self.uncount(me, counter, bit);
        result
    }

    pub(super) fn uncount(&self, me: Token, counter: &AtomicU32, bit: u32) {
        if self.parts.unmark_waiting(me, bit) {
            // Saturating: a corrupted counter never wraps to "someone is waiting" forever.
            let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1));
        }
        if self.flavor.wait_for_acks {
            // Control: acknowledge a waker that may be waiting for us.
            if self
                .st
                .acks
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| a.checked_sub(1))
                .is_ok()
            {
                futex::wake_in(self.flavor.scope, &self.st.acks, u32::MAX);
            }
        }
    }

    /// Control "stale waiter count" (glibc BZ 21422's shape): the waker, still holding the
    /// lock, waits — untimed — until every waiter it counted has woken and acknowledged. Without
    /// deaths every counted waiter does (the wake-all makes its sleep return at once); a waiter
    /// killed while counted never does, and the box is wedged behind a live lock holder.
    pub(super) fn wait_for_acks(&self, counter: &AtomicU32) {
        self.st
            .acks
            .store(counter.load(Ordering::SeqCst), Ordering::SeqCst);
        for seq in [&self.st.full_seq, &self.st.empty_seq] {
            seq.fetch_add(1, Ordering::SeqCst);
            futex::wake_in(self.flavor.scope, seq, u32::MAX);
        }
        loop {
            let a = self.st.acks.load(Ordering::SeqCst);
            if a == 0 {
                break;
            }
            let _registered =
                crate::track::waitreg::enter("SharedMVar::wake (waits for acks)", &self.st.acks);
            futex::wait_in(self.flavor.scope, &self.st.acks, a, None);
        }
    }

    /// Takes the lock (recovering from a dead owner). Returns false on deadline.
    pub(super) fn lock(
        &self,
        me: Token,
        op: Op,
        deadline: Option<Instant>,
        recovered: &mut Option<Who>,
    ) -> bool {
        match self.st.lock.lock(&self.cx(op), me, deadline) {
            Ok(Acquired::Clean) => true,
            Ok(Acquired::Recovered(who)) => {
                *recovered = Some(who);
                self.recover();
                true
            }
            Err(_) => false,
        }
    }

    /// Recovery, lock held, after a dead owner: the box is consistent by construction (see the
    /// module docs); wake everyone the dead owner may have owed a wake-up, free dead
    /// participants' slots and waiter counts.
    pub(super) fn recover(&self) {
        self.st.recoveries.fetch_add(1, Ordering::Relaxed);
        self.reap();
        for seq in [&self.st.full_seq, &self.st.empty_seq] {
            seq.fetch_add(1, Ordering::SeqCst);
            futex::wake_in(self.flavor.scope, seq, u32::MAX);
        }
    }

    /// Frees dead participants' slots and their waiter counts.
    pub fn reap(&self) -> Vec<Who> {
        self.parts.reap(|_, bit| {
            let counter = match bit {
                TAKERS_BIT => &self.st.takers,
                PUTTERS_BIT => &self.st.putters,
                _ => return,
            };
            let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1));
        })
    }

    /// `(sleeps, late wake-ups)`: see [`BoxState`].
    #[cfg_attr(any(loom, shuttle), allow(dead_code))]
    pub fn sleep_stats(&self) -> (u64, u64) {
        (
            self.st.sleeps.load(Ordering::Relaxed),
            self.st.late_wakes.load(Ordering::Relaxed),
        )
    }

    /// The lock holder's participant token (0 if free).
    #[cfg_attr(any(loom, shuttle), allow(dead_code))]
    pub fn lock_owner(&self) -> Token {
        self.st.lock.owner()
    }

    /// Advisory waiter counts (takers + readers, putters).
    #[cfg_attr(any(loom, shuttle), allow(dead_code))]
    pub fn waiting(&self) -> (u32, u32) {
        (
            self.st.takers.load(Ordering::Relaxed),
            self.st.putters.load(Ordering::Relaxed),
        )
    }

    /// A waiter leaving without using its wake-up hands it to the next one.
    pub(super) fn pass_on_wake(&self, op: Op) {
        let (seq, counter) = if op.needs_full() {
            (&self.st.full_seq, &self.st.takers)
        } else {
            (&self.st.empty_seq, &self.st.putters)
        };
        if full(self.st.word.load(Ordering::SeqCst)) == op.needs_full()
            && counter.load(Ordering::SeqCst) > 0
        {
            seq.fetch_add(1, Ordering::SeqCst);
            futex::wake_in(self.flavor.scope, seq, 1);
        }
    }

    #[cfg(any(loom, shuttle))]
    /// Model engines: `token` died; do what the passing of a slice does for real — every
    /// sleeper wakes up and looks.
    pub fn announce_death(&self, token: Token) {
        self.parts.mark_dead(token);
        for w in [&self.st.full_seq, &self.st.empty_seq] {
            w.fetch_add(1, Ordering::SeqCst);
            futex::wake_in(self.flavor.scope, w, u32::MAX);
        }
        futex::wake_in(self.flavor.scope, &self.st.acks, u32::MAX);
        self.st.lock.owner_died(token, self.flavor.scope);
    }
}
