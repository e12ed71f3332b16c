//! Staging: what a thread logs while it holds a tracked lock goes to its participant slot's
//! staging area in the segment (or, for the private-staging control, to a thread-local list),
//! and moves to the ring at its outermost release.
//!
//! A staging area is a single-producer single-consumer queue: the producer is the (one live)
//! participant of that slot and writes only `staged` and the record at `staged % S`, which it
//! reuses only once `staged - delivered < S`; the consumer is whoever holds the ring lock and
//! writes only `delivered`, reading records in `[delivered, staged)`. So a rescuer and a new
//! owner of a reused slot may work on the same area concurrently without losing or duplicating
//! anything.

use super::layout::{fit, monotonic_ns, Record, FLAG_STAGED, FLAG_TRUNCATED};
use super::{Inner, RingError};
use crate::shm::{crash_point, Token};
use crate::sync::atomic::Ordering;
use crate::sync::BookArc as Arc;
use crate::track::{held_depth, ReleaseHook};
use core::cell::RefCell;

thread_local! {
    /// Shared logs this thread staged into since its last flush.
    static REGISTRY: RefCell<Registry> = const { RefCell::new(Registry(Vec::new())) };
}

/// A log this thread staged into: its token there and, for the private-staging control, the
/// messages themselves.
pub(super) struct Entry {
    pub(super) inner: Arc<Inner>,
    pub(super) me: Token,
    pub(super) private: Vec<Record>,
}

/// The thread's registry; flushed when the thread exits.
pub(super) struct Registry(Vec<Entry>);

impl Drop for Registry {
    fn drop(&mut self) {
        for mut e in std::mem::take(&mut self.0) {
            let inner = e.inner.clone();
            // Thread-local state may already be gone: take the lock by polling.
            let _ = inner.flush_entry(&mut e, false);
        }
    }
}

pub(super) fn entry_key(inner: &Inner) -> usize {
    inner as *const Inner as usize
}

/// Runs [`flush_thread_staged`] at every outermost release of a tracked lock; installed in
/// [`crate::track`] by the first `SharedLog` a process creates or opens.
pub(super) static FLUSH_RING_STAGES: ReleaseHook = ReleaseHook::new(flush_thread_staged);

/// Flushes everything the calling thread staged, in every shared log, unless it still holds a
/// tracked lock. Runs at the outermost release (a [`crate::track`] release hook) and from
/// [`crate::msg::flush_staged`].
pub fn flush_thread_staged() {
    if held_depth() > 0 {
        return;
    }
    let entries = REGISTRY
        .try_with(|r| std::mem::take(&mut r.borrow_mut().0))
        .unwrap_or_default();
    let mut keep = Vec::new();
    for mut e in entries {
        let inner = e.inner.clone();
        if inner.flush_entry(&mut e, true).is_err() {
            keep.push(e);
        }
    }
    if !keep.is_empty() {
        let _ = REGISTRY.try_with(|r| {
            let mut r = r.borrow_mut();
            keep.append(&mut r.0);
            r.0 = keep;
        });
    }
}

impl Inner {
    /// Lock held: moves `me`'s staged messages (its area, and this thread's private stage for
    /// this handle) to the ring.
    pub(super) fn flush_locked(&self, e: &mut Entry) -> Result<(), RingError> {
        let p = self.slot_of(e.me)?;
        self.deliver_stage(p, false)?;
        let mut pending = std::mem::take(&mut e.private).into_iter();
        for rec in pending.by_ref() {
            match self.append_locked(&rec) {
                Ok(()) | Err(RingError::Overflow) => {}
                Err(err) => {
                    e.private = pending.collect();
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    pub(super) fn flush_entry(&self, e: &mut Entry, tls_ok: bool) -> Result<(), RingError> {
        let _g = self.lock(e.me, tls_ok)?;
        self.flush_locked(e)
    }

    /// First use of staging area `p` by `me`: a previous owner's undelivered messages are
    /// delivered first (under a lock only if the ring lock is free: they stay ahead of ours).
    pub(super) fn claim_stage(&self, me: Token, p: usize, deferred: bool) {
        let sh = self.stage(p);
        if sh.owner.load(Ordering::Acquire) == me {
            return;
        }
        if sh.staged.load(Ordering::Acquire) != sh.delivered.load(Ordering::Acquire) {
            let g = if deferred {
                self.try_lock(me)
            } else {
                self.lock(me, true).ok()
            };
            if let Some(_g) = g {
                let _ = self.deliver_stage(p, true);
            }
        }
        sh.next_origin_seq.store(0, Ordering::Relaxed);
        sh.owner.store(me, Ordering::Release);
    }

    pub(super) fn make_record(&self, p: usize, text: &str, staged: bool) -> Record {
        let sh = self.stage(p);
        let origin_seq = sh.next_origin_seq.load(Ordering::Relaxed);
        sh.next_origin_seq
            .store(origin_seq.wrapping_add(1), Ordering::Relaxed);
        let (text, truncated) = fit(text, self.geo.text_len as usize);
        Record {
            seq: 0,
            origin_seq,
            time_ns: monotonic_ns(),
            pid: std::process::id(),
            tid: crate::shm::identity::gettid(),
            flags: if truncated { FLAG_TRUNCATED } else { 0 }
                | if staged { FLAG_STAGED } else { 0 },
            text,
        }
    }

    /// Stages `rec` in area `p` (owner only): write the record, commit with one store.
    pub(super) fn stage_shared(&self, p: usize, rec: &Record) -> Result<(), RingError> {
        let sh = self.stage(p);
        let s = sh.staged.load(Ordering::Relaxed);
        let d = sh.delivered.load(Ordering::Acquire);
        let used = match s.checked_sub(d) {
            Some(u) if u <= self.geo.stage_capacity && s < u64::MAX => u,
            _ => {
                return Err(RingError::Corrupted(format!(
                    "staging area {p}: staged {s}, delivered {d}"
                )))
            }
        };
        if used == self.geo.stage_capacity {
            self.hdr().stage_lost.fetch_add(1, Ordering::Relaxed);
            return Err(RingError::Overflow);
        }
        self.write_record(self.stage_record(p, s), rec);
        crash_point();
        // The commit.
        sh.staged.store(s + 1, Ordering::Release);
        Ok(())
    }

    /// Records that this thread staged into `self` (`rec`: a privately staged message).
    pub(super) fn register(
        self: &Arc<Self>,
        me: Token,
        rec: Option<Record>,
    ) -> Result<(), RingError> {
        let key = entry_key(self);
        let cap = self.geo.stage_capacity as usize;
        let private = rec.is_some();
        let kept = REGISTRY.try_with(|r| {
            let mut r = r.borrow_mut();
            let i = match r.0.iter().position(|e| entry_key(&e.inner) == key) {
                Some(i) => i,
                None => {
                    r.0.push(Entry {
                        inner: self.clone(),
                        me,
                        private: Vec::new(),
                    });
                    r.0.len() - 1
                }
            };
            match rec {
                Some(rec) if r.0[i].private.len() >= cap => {
                    drop(rec);
                    false
                }
                Some(rec) => {
                    r.0[i].private.push(rec);
                    true
                }
                None => true,
            }
        });
        if kept == Ok(true) || !private {
            Ok(())
        } else {
            self.hdr().stage_lost.fetch_add(1, Ordering::Relaxed);
            Err(RingError::Overflow)
        }
    }

    /// Takes this thread's registry entry for `self` (or an empty one).
    pub(super) fn take_entry(self: &Arc<Self>, me: Token) -> Entry {
        let key = entry_key(self);
        REGISTRY
            .try_with(|r| {
                let mut r = r.borrow_mut();
                r.0.iter()
                    .position(|e| entry_key(&e.inner) == key)
                    .map(|i| r.0.remove(i))
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| Entry {
                inner: self.clone(),
                me,
                private: Vec::new(),
            })
    }

    /// Puts an entry that could not be flushed back.
    pub(super) fn put_back(e: Entry) {
        if e.private.is_empty() && e.inner.stage_empty(e.me) {
            return;
        }
        let _ = REGISTRY.try_with(|r| r.borrow_mut().0.insert(0, e));
    }

    pub(super) fn stage_empty(&self, me: Token) -> bool {
        self.slot_of(me).map_or(true, |p| {
            let sh = self.stage(p);
            sh.staged.load(Ordering::Acquire) == sh.delivered.load(Ordering::Acquire)
        })
    }
}
