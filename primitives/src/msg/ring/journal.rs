//! The ring lock and the flush step: how staged messages move to the ring exactly once, and
//! how the next lock holder settles a step a dead holder left half-done.
//!
//! ## State and who moves it
//! | word                       | meaning                                             | moved by                                           |
//! |----------------------------|-----------------------------------------------------|----------------------------------------------------|
//! | ring `lock`                | [`RobustWord`](crate::shm::RobustWord): free / held by a token             | appenders, flushers, drainers, rescuers            |
//! | ring `tail`                | next ring position; `[head, tail)` are messages     | ring-lock holder: **commit** of a direct append (one store); flush step; journal undo |
//! | ring `head`                | first undrained position, `tail - head ≤ R`         | ring-lock holder in `drain`: **commit** of a drain |
//! | ring `lost`                | messages dropped because the ring was full          | ring-lock holder; journal undo                     |
//! | ring `stage_lost`          | messages dropped because a staging area was full    | the stager (`fetch_add`, no lock)                  |
//! | ring `corrupt`             | records skipped because they failed validation      | ring-lock holder; journal undo                     |
//! | `lost_seen`, `corrupt_seen`| the counters as reported by the last drain          | ring-lock holder in `drain`                        |
//! | journal `state`            | `IDLE` or `ACTIVE` (a flush step is in progress)    | ring-lock holder; settled by the next lock holder  |
//! | stage `staged`             | messages ever staged in this area                   | the area's owner only: **commit** of a staged message (one store) |
//! | stage `delivered`          | messages ever moved out of it; `staged - delivered ≤ S` | ring-lock holder only: **commit** of a flush step (one store) |
//! | stage `owner`              | token of the participant staging there              | a participant on its first use of the area         |
//!
//!
//! ## Protocol: moving staged messages to the ring exactly once (the flush step)
//! Under the ring lock, for staging area `p`:
//! 1. read `s = staged` (Acquire), `d = delivered`, `n = s - d` (validated: `≤ S`);
//! 2. write the journal `{p, d, n, tail, lost, corrupt}`, then `state = ACTIVE`;
//! 3. copy each staged record `d..s` (validated: length, flags, checksum) to ring positions
//!    `tail, tail+1, …` — beyond `tail`, so invisible — or count it lost (ring full) or
//!    corrupt;
//! 4. store the new `tail`, `lost`, `corrupt`;
//! 5. **commit:** `delivered = d + n` (one store);
//! 6. `state = IDLE`.
//!
//! **Recovery.** Whoever takes the ring lock over from a dead owner — and anyone finding the
//! journal `ACTIVE` on acquiring it — settles the journal first: if `delivered == d + n` the
//! step committed and only the journal is dropped; if `delivered == d` it did not, and `tail`,
//! `lost`, `corrupt` are restored from the journal (nothing between `tail` and the restored
//! value was ever visible: `drain` needs the lock). The `n` messages are then still staged in
//! area `p`, whose owner is dead (it was the flusher, or the rescuer was flushing a dead
//! owner's area), and the recoverer's automatic [`SharedLog::rescue_dead`](super::SharedLog::rescue_dead) delivers them.
//! A killed flusher therefore delivers each message once or not yet, never twice, never lost.
//! A direct append (`tail + 1`) and a drain (`head + n`) are single-store commits.
//!
//! **Rescue** ([`SharedLog::rescue_dead`](super::SharedLog::rescue_dead), run automatically after every lock takeover, and by
//! `open`/`create` unless a live participant holds the ring lock): under the ring lock, every staging area with undelivered messages whose
//! `owner` is dead gets a flush step; only then are the dead participants' slots freed
//! ([`crate::shm::Participants::reap`]). A participant dying after the scan keeps its
//! messages: its `owner` token stays dead forever (slot freed or its generation moved on), so
//! the next rescue finds them. A participant that claims a slot whose area still holds a
//! previous owner's messages delivers them first (or, under a lock, stages behind them).
//!
//! ## Notes about memory ordering
//! * A stager writes the record, then `staged.store(s + 1, Release)`; a flusher's
//!   `staged.load(Acquire)` makes the record visible before it copies it.
//! * A flusher's reads of a staged record happen before its `delivered.store(Release)`; the
//!   stager's `delivered.load(Acquire)` before reusing that record's place orders them.
//! * Everything else in the ring header and the ring records is accessed under the
//!   [`RobustWord`](crate::shm::RobustWord): its `Acquire` takeover/lock pairs with the previous `Release` unlock.
//!   After a death there is no unlock to pair with: the settle step reads `delivered` with
//!   `Acquire` (pairing with the commit's `Release`, so a committed step's `tail` is seen), and
//!   the journal `state` with `Acquire` (pairing with the `Release` that published its fields).
//!   A killed process's stores have all reached memory once the kernel reports it dead.
//! * `stage_lost` is a plain counter (`Relaxed`): it is only ever reported, never trusted.
//! * Text bytes are copied with plain byte copies into private memory and validated there
//!   (length first, then the checksum), as the shared MVar copies its payload.

use super::layout::{Record, RingHeader, FLAG_RESCUED, FLAG_STAGED, JOURNAL_ACTIVE, JOURNAL_IDLE};
use super::{Inner, Rescued, RingError};
use crate::shm::{crash_point, Acquired, LockCx, Token, Who};
use crate::sync::atomic::Ordering;
use crate::sync::futex::Scope;
use crate::sync::time::{deadline_after, Duration, Instant};
use core::cell::RefCell;

/// How long an operation waits for the ring lock held by a live (e.g. stopped) participant.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// Sleep between two attempts when the lock is taken without the thread-local machinery (at
/// thread exit).
pub(super) const LOCK_POLL: Duration = Duration::from_millis(1);

thread_local! {
    /// Ring locks this thread holds: (ring header address, depth).
    static HOLDING: RefCell<Vec<(usize, u32)>> = const { RefCell::new(Vec::new()) };
}

/// Result of one flush step.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Step {
    pub(super) appended: u64,
}

/// Holds the ring lock (or one re-entry of it); releases on drop.
pub(super) struct RingGuard<'a> {
    pub(super) inner: &'a Inner,
    pub(super) outer: bool,
    /// What the automatic rescue after a takeover did.
    pub(super) rescued: Rescued,
}

impl Drop for RingGuard<'_> {
    fn drop(&mut self) {
        let key = self.inner.key();
        let _ = HOLDING.try_with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().position(|e| e.0 == key) {
                h[i].1 -= 1;
                if h[i].1 == 0 {
                    h.swap_remove(i);
                }
            }
        });
        if self.outer {
            self.inner.hdr().lock.unlock(Scope::Shared);
        }
    }
}

impl Inner {
    pub(super) fn cx(&self) -> LockCx<'_> {
        LockCx {
            parts: self.seg.participants(),
            scope: Scope::Shared,
            op: "SharedLog ring lock",
            recover: true,
        }
    }

    pub(super) fn holding(&self) -> bool {
        let key = self.key();
        HOLDING
            .try_with(|h| h.borrow().iter().any(|e| e.0 == key))
            .unwrap_or(false)
    }

    pub(super) fn push_holding(&self) {
        let key = self.key();
        let _ = HOLDING.try_with(|h| {
            let mut h = h.borrow_mut();
            match h.iter_mut().find(|e| e.0 == key) {
                Some(e) => e.1 += 1,
                None => h.push((key, 1)),
            }
        });
    }

    /// Takes the ring lock (re-entrantly), settling the journal and rescuing dead participants
    /// after a takeover. `tls_ok = false` at thread exit: poll instead of sleeping on the word
    /// (the sleeping path registers in the wait registry, which needs thread-locals).
    pub(super) fn lock(&self, me: Token, tls_ok: bool) -> Result<RingGuard<'_>, RingError> {
        if self.holding() {
            self.push_holding();
            return Ok(RingGuard {
                inner: self,
                outer: false,
                rescued: Rescued::default(),
            });
        }
        let recovered = if tls_ok {
            match self
                .hdr()
                .lock
                .lock(&self.cx(), me, deadline_after(LOCK_TIMEOUT))
            {
                Ok(Acquired::Clean) => None,
                Ok(Acquired::Recovered(who)) => Some(who),
                Err(_) => return Err(RingError::Timeout),
            }
        } else {
            self.lock_polling(me)?
        };
        Ok(self.acquired(recovered))
    }

    /// Takes the ring lock if it is free now (re-entrantly).
    pub(super) fn try_lock(&self, me: Token) -> Option<RingGuard<'_>> {
        if self.holding() {
            self.push_holding();
            return Some(RingGuard {
                inner: self,
                outer: false,
                rescued: Rescued::default(),
            });
        }
        self.hdr().lock.try_lock(me).then(|| self.acquired(None))
    }

    pub(super) fn lock_polling(&self, me: Token) -> Result<Option<Who>, RingError> {
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            if self.hdr().lock.try_lock(me) {
                return Ok(None);
            }
            if let Some(Acquired::Recovered(who)) = self.hdr().lock.try_take_over(&self.cx(), me) {
                return Ok(Some(who));
            }
            if Instant::now() >= deadline {
                return Err(RingError::Timeout);
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    /// Just acquired (not re-entered): settle the journal; after a takeover, rescue.
    pub(super) fn acquired(&self, recovered: Option<Who>) -> RingGuard<'_> {
        self.push_holding();
        let mut g = RingGuard {
            inner: self,
            outer: true,
            rescued: Rescued::default(),
        };
        crash_point();
        self.settle_journal();
        if recovered.is_some() {
            self.hdr().recoveries.fetch_add(1, Ordering::Relaxed);
            if let Ok(r) = self.rescue_locked() {
                g.rescued = r;
            }
        }
        g
    }

    /// `(head, tail)`, checked: `head <= tail <= head + R`.
    pub(super) fn ring_state(&self) -> Result<(u64, u64), RingError> {
        let h = self.hdr();
        let head = h.head.load(Ordering::Relaxed);
        let tail = h.tail.load(Ordering::Relaxed);
        match tail.checked_sub(head) {
            // The tail must also leave room for a full ring of appends without overflowing
            // (a corrupted tail near u64::MAX, found by the shm_open fuzz target).
            Some(n)
                if n <= self.geo.ring_capacity
                    && tail.checked_add(self.geo.ring_capacity).is_some() =>
            {
                Ok((head, tail))
            }
            _ => Err(RingError::Corrupted(format!(
                "ring head {head} and tail {tail} are inconsistent (capacity {})",
                self.geo.ring_capacity
            ))),
        }
    }

    /// Lock held: completes or undoes a flush step a dead lock holder left half-done (module
    /// docs, "Recovery").
    pub(super) fn settle_journal(&self) {
        let h = self.hdr();
        let j = &h.journal;
        let state = j.state.load(Ordering::Acquire);
        if state == JOURNAL_IDLE {
            return;
        }
        let garbage = |h: &RingHeader| {
            h.corrupt.fetch_add(1, Ordering::Relaxed);
            h.journal.state.store(JOURNAL_IDLE, Ordering::Release);
        };
        if state != JOURNAL_ACTIVE {
            return garbage(h);
        }
        let slot = j.slot.load(Ordering::Relaxed);
        let d0 = j.delivered0.load(Ordering::Relaxed);
        let n = j.count.load(Ordering::Relaxed);
        if slot >= self.geo.stages || n == 0 || n > self.geo.stage_capacity {
            return garbage(h);
        }
        let Some(d1) = d0.checked_add(n) else {
            return garbage(h);
        };
        let delivered = self.stage(slot as usize).delivered.load(Ordering::Acquire);
        if delivered == d1 {
            // Committed: only the journal is left to drop.
            h.settled.fetch_add(1, Ordering::Relaxed);
            j.state.store(JOURNAL_IDLE, Ordering::Release);
            return;
        }
        if delivered != d0 {
            return garbage(h);
        }
        let tail0 = j.tail0.load(Ordering::Relaxed);
        let head = h.head.load(Ordering::Relaxed);
        if tail0 < head || tail0 - head > self.geo.ring_capacity {
            return garbage(h);
        }
        // Not committed: undo. The messages are still staged in `slot`.
        h.tail.store(tail0, Ordering::Relaxed);
        h.lost
            .store(j.lost0.load(Ordering::Relaxed), Ordering::Relaxed);
        h.corrupt
            .store(j.corrupt0.load(Ordering::Relaxed), Ordering::Relaxed);
        h.settled.fetch_add(1, Ordering::Relaxed);
        crash_point();
        j.state.store(JOURNAL_IDLE, Ordering::Release);
    }

    /// Lock held: the flush step for staging area `p` (module docs). `rescued`: the caller is
    /// not the messages' origin.
    pub(super) fn deliver_stage(&self, p: usize, rescued: bool) -> Result<Step, RingError> {
        let (head, tail) = self.ring_state()?;
        let h = self.hdr();
        let sh = self.stage(p);
        let s = sh.staged.load(Ordering::Acquire);
        let d = sh.delivered.load(Ordering::Relaxed);
        if s == d {
            return Ok(Step::default());
        }
        let n = match s.checked_sub(d) {
            Some(n) if n <= self.geo.stage_capacity => n,
            _ => {
                // Garbage counters: nothing in the area can be trusted. Skip it.
                sh.delivered.store(s, Ordering::Release);
                h.corrupt.fetch_add(1, Ordering::Relaxed);
                return Ok(Step::default());
            }
        };
        let lost0 = h.lost.load(Ordering::Relaxed);
        let corrupt0 = h.corrupt.load(Ordering::Relaxed);
        let j = &h.journal;
        j.slot.store(p as u64, Ordering::Relaxed);
        j.delivered0.store(d, Ordering::Relaxed);
        j.count.store(n, Ordering::Relaxed);
        j.tail0.store(tail, Ordering::Relaxed);
        j.lost0.store(lost0, Ordering::Relaxed);
        j.corrupt0.store(corrupt0, Ordering::Relaxed);
        j.state.store(JOURNAL_ACTIVE, Ordering::Release);
        crash_point();
        let (mut t, mut lost, mut corrupt) = (tail, lost0, corrupt0);
        let mut step = Step::default();
        for k in 0..n {
            match self.read_record(self.stage_record(p, d + k), 0) {
                Some(mut rec) if rec.flags & FLAG_STAGED != 0 => {
                    if t - head < self.geo.ring_capacity {
                        rec.seq = t;
                        if rescued {
                            rec.flags |= FLAG_RESCUED;
                        }
                        self.write_record(self.ring_record(t), &rec);
                        t += 1;
                        step.appended += 1;
                    } else {
                        lost = lost.saturating_add(1);
                    }
                }
                _ => corrupt = corrupt.saturating_add(1),
            }
            crash_point();
        }
        h.tail.store(t, Ordering::Release);
        crash_point();
        h.lost.store(lost, Ordering::Relaxed);
        h.corrupt.store(corrupt, Ordering::Relaxed);
        crash_point();
        // The commit.
        sh.delivered.store(d + n, Ordering::Release);
        crash_point();
        j.state.store(JOURNAL_IDLE, Ordering::Release);
        Ok(step)
    }

    /// Lock held: appends one message (a single-store commit of `tail`).
    pub(super) fn append_locked(&self, rec: &Record) -> Result<(), RingError> {
        let (head, tail) = self.ring_state()?;
        let h = self.hdr();
        if tail - head >= self.geo.ring_capacity {
            h.lost.fetch_add(1, Ordering::Relaxed);
            return Err(RingError::Overflow);
        }
        let mut rec = rec.clone();
        rec.seq = tail;
        self.write_record(self.ring_record(tail), &rec);
        crash_point();
        h.tail.store(tail + 1, Ordering::Release);
        Ok(())
    }

    /// Lock held: delivers every dead participant's staged messages, then frees their slots.
    pub(super) fn rescue_locked(&self) -> Result<Rescued, RingError> {
        let parts = self.seg.participants();
        let mut r = Rescued::default();
        for p in 0..self.geo.stages as usize {
            let sh = self.stage(p);
            if sh.staged.load(Ordering::Acquire) == sh.delivered.load(Ordering::Relaxed) {
                continue;
            }
            if !parts.is_dead(sh.owner.load(Ordering::Acquire)) {
                continue;
            }
            let step = self.deliver_stage(p, true)?;
            r.participants += 1;
            r.messages += step.appended;
        }
        r.reaped = parts.reap(|_, _| {}).len();
        Ok(r)
    }
}
