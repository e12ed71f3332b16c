//! The robust MVar's protocol, written once: a box of a fixed number of bytes that any process
//! may `put` into or `take` from, robust to any participant being SIGKILLed at any instruction.
//! Its two homes hold the same `Core` over different memory: [`super::segment`] (a named
//! shared-memory segment) and `model` (ordinary memory, for loom and shuttle).
//!
//! ## Layout of the object area (`#[repr(C)]`, offsets only)
//! [`BoxState`] (64 bytes) then two payload slots of `align8(payload_len)` bytes each.
//!
//! ## The commit word and the state table
//! `word = gen << 2 | slot << 1 | full` (`AtomicU64`). `full` says whether the box holds a
//! value, `slot` which of the two payload slots holds it, `gen` counts commits (so a checker can
//! count puts and takes after a crash, and nothing can be confused with an older state).
//!
//! | operation | under the robust lock                                                       | commit (one store)                     |
//! |-----------|-----------------------------------------------------------------------------|----------------------------------------|
//! | `put`     | box empty; copy the value into the *other* slot                             | `full=1, slot=other, gen+1`            |
//! | `take`    | box full; copy slot `slot` out                                              | `full=0, gen+1`                        |
//! | `swap`    | box full; copy slot `slot` out, copy the new value into the other slot      | `slot=other, gen+1`                    |
//! | `read`    | box full; copy slot `slot` out                                              | none                                   |
//!
//! Only the holder of the robust lock ([`crate::shm::RobustWord`]) moves the word or writes a
//! slot. **Recovery rule:** a participant killed anywhere before the commit store leaves the
//! previous state intact (it only wrote the slot that the word does not point to); killed after
//! it, the operation happened. Either way the state is consistent, so the participant that
//! takes the lock over from a dead owner has nothing to repair in the box: it wakes every waiter
//! (the dead owner may have died before waking them), frees the dead participants' slots and
//! their waiter counts, and returns [`Outcome::recovered`] naming the dead owner. A value is
//! never torn (a reader only ever copies the slot the committed word names, under the lock),
//! never duplicated (one commit per take) and never lost: a taker killed after claiming (taking
//! the lock, copying) but before its commit leaves the value in the box; killed after the
//! commit, the value is its — which is the same as being killed just after `take` returned,
//! since nothing of the box is touched between the commit and the return.
//!
//! ## Waiting
//! How a blocked operation spins, sleeps and is woken is in `wait.rs` (its "Waiting" notes).
//!
//! ## Notes about memory ordering
//! * The lock's `Acquire`/`Release` order everything in a critical section: slot copies, the
//!   commit store, the waiter counters and sequence words (registration and commit both happen
//!   under the lock, so no store→load (Dekker) reasoning is needed — which loom could not check,
//!   as it models `SeqCst` as `AcqRel`).
//! * The lock-free snapshot loads of the commit word (spin loop, `is_full`) are `Acquire` and
//!   pair with the commit's `Release` store; they only decide whether to take the lock.
//! * The futex re-checks the sequence word in the kernel, closing the window between a waiter's
//!   unlock and its sleep.

use crate::mvar::{Outcome, SharedMVarError};
use crate::shm::{death_due, LockCx, Participants, RobustWord, Token, Watch};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::futex::{self, Scope, WaitResult};
use crate::sync::time::Instant;
use crate::sync::MODELLED;

pub use crate::shm::Died;

/// Returns `Err(Died)` where a model engine's victim must stop (never for real).
#[inline]
pub(crate) fn die_if_due() -> Result<(), Died> {
    if death_due() {
        Err(Died)
    } else {
        Ok(())
    }
}

const FULL: u64 = 1;
const SLOT: u64 = 2;
const GEN_ONE: u64 = 4;

/// Waiter-counter bits in a participant's `waiting` mask.
pub(super) const TAKERS_BIT: u32 = 0;
pub(super) const PUTTERS_BIT: u32 = 1;

/// How long a `try_*` operation waits for the box's internal lock before giving up with
/// [`SharedMVarError::Timeout`].
pub const TRY_LOCK_WAIT: crate::sync::time::Duration =
    crate::sync::time::Duration::from_millis(100);

/// Largest payload a shared MVar accepts (1 MiB).
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Size of [`BoxState`] in the segment.
pub(super) const STATE_LEN: u64 = 64;
/// Bounds of the adaptive spin (iterations of the CPU's spin hint, ~10-40 ns each): a waiter
/// never spins longer than `MAX_SPIN` before sleeping in the kernel.
#[cfg(not(any(loom, shuttle)))]
pub(super) const MAX_SPIN: u32 = 4000;
#[cfg(not(any(loom, shuttle)))]
pub(super) const MIN_SPIN: u32 = 64;

pub(super) fn full(w: u64) -> bool {
    w & FULL != 0
}
pub(super) fn slot(w: u64) -> usize {
    usize::from(w & SLOT != 0)
}

/// Payload slot size for a payload length.
fn stride(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// The object length of a shared MVar whose parameters are `[payload_len, ..]`.
pub fn object_len(params: &[u64; 4]) -> Option<u64> {
    let len = params[0];
    (1..=MAX_PAYLOAD as u64)
        .contains(&len)
        .then(|| STATE_LEN + 2 * stride(len as usize) as u64)
}

/// The state of one shared MVar (`#[repr(C)]`; all zero = empty, unlocked).
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct BoxState {
    pub(super) lock: RobustWord,
    pub(super) full_seq: AtomicU32,
    pub(super) empty_seq: AtomicU32,
    pub(super) takers: AtomicU32,
    pub(super) putters: AtomicU32,
    /// Control "stale waiter count": wake-ups a waker still waits to see acknowledged.
    pub(super) acks: AtomicU32,
    /// Adaptive spin estimate (a hint: any value is safe).
    pub(super) spin: AtomicU32,
    pub(super) _pad: u32,
    pub(super) word: AtomicU64,
    pub(super) recoveries: AtomicU64,
    /// Statistics (hints): sleeps in the kernel, and sleeps that ended by their slice running
    /// out although the box had become ready meanwhile — a wake-up that never arrived.
    pub(super) sleeps: AtomicU64,
    pub(super) late_wakes: AtomicU64,
}

/// How one handle runs the protocol. [`Flavor::REFERENCE`] is the reference; the cross-process
/// negative controls (in the controls registry) each change one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flavor {
    /// Futex flavour of every word (`Private` = seed 000's defect: wakes never cross processes).
    pub scope: Scope,
    /// Take the lock over from a dead owner (`false` = a dead owner wedges the box).
    pub recover: bool,
    /// Control: a waker waits until every counted waiter acknowledged its wake-up (glibc
    /// BZ 21422's shape: a killed waiter never does).
    pub wait_for_acks: bool,
}

impl Flavor {
    /// The reference protocol.
    pub const REFERENCE: Flavor = Flavor {
        scope: Scope::Shared,
        recover: true,
        wait_for_acks: false,
    };
}

/// Where the two payload slots are. For real: bytes in the segment; under the model engines:
/// cells the checker can see races on.
pub(crate) trait Slots {
    /// Payload length in bytes.
    fn len(&self) -> usize;
    /// Copies `src` into slot `i` (under the model engines the writer may die half-way).
    ///
    /// # Safety
    /// The caller holds the box's lock (no one else reads or writes the slots).
    unsafe fn write(&self, i: usize, src: &[u8]) -> Result<(), Died>;
    /// Copies slot `i` into `dst`.
    ///
    /// # Safety
    /// As for `write`.
    unsafe fn read(&self, i: usize, dst: &mut [u8]);
}

/// One shared MVar's protocol over its state, participants and slots.
pub(crate) struct Core<'a, S: Slots> {
    pub st: &'a BoxState,
    pub parts: Participants<'a>,
    pub slots: S,
    pub flavor: Flavor,
}

/// What an operation does once it holds the lock and the box is in the state it needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Put,
    Take,
    Read,
    Swap,
}

impl Op {
    pub(super) fn name(self) -> &'static str {
        match self {
            Op::Put => "SharedMVar::put",
            Op::Take => "SharedMVar::take",
            Op::Read => "SharedMVar::read",
            Op::Swap => "SharedMVar::swap",
        }
    }
    /// Whether it needs a full box (else an empty one).
    pub(super) fn needs_full(self) -> bool {
        self != Op::Put
    }
}

impl<'a, S: Slots> Core<'a, S> {
    pub(super) fn cx(&self, op: Op) -> LockCx<'a> {
        LockCx {
            parts: self.parts,
            scope: self.flavor.scope,
            op: op.name(),
            recover: self.flavor.recover,
        }
    }

    /// Whether the box holds a value (a snapshot).
    pub fn is_full(&self) -> bool {
        full(self.st.word.load(Ordering::Acquire))
    }

    /// Commits so far (puts + takes + swaps).
    pub fn generation(&self) -> u64 {
        self.st.word.load(Ordering::Acquire) >> 2
    }

    /// Lock takeovers from dead owners so far.
    pub fn recoveries(&self) -> u64 {
        self.st.recoveries.load(Ordering::Relaxed)
    }

    pub(super) fn check_len(&self, n: usize) -> Result<(), SharedMVarError> {
        if n == self.slots.len() {
            Ok(())
        } else {
            Err(SharedMVarError::Length {
                expected: self.slots.len(),
                got: n,
            })
        }
    }

    pub fn put(
        &self,
        me: Token,
        src: &[u8],
        deadline: Option<Instant>,
        try_only: bool,
    ) -> Result<Outcome<()>, SharedMVarError> {
        self.check_len(src.len())?;
        self.run(me, Op::Put, src, &mut [], deadline, try_only)
    }

    pub fn take(
        &self,
        me: Token,
        dst: &mut [u8],
        deadline: Option<Instant>,
        try_only: bool,
    ) -> Result<Outcome<()>, SharedMVarError> {
        self.check_len(dst.len())?;
        self.run(me, Op::Take, &[], dst, deadline, try_only)
    }

    pub fn read(
        &self,
        me: Token,
        dst: &mut [u8],
        deadline: Option<Instant>,
        try_only: bool,
    ) -> Result<Outcome<()>, SharedMVarError> {
        self.check_len(dst.len())?;
        self.run(me, Op::Read, &[], dst, deadline, try_only)
    }

    pub fn swap(
        &self,
        me: Token,
        src: &[u8],
        dst: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<Outcome<()>, SharedMVarError> {
        self.check_len(src.len())?;
        self.check_len(dst.len())?;
        self.run(me, Op::Swap, src, dst, deadline, false)
    }

    /// The one loop behind every operation: wait (spin, then sleep in slices) until the box is
    /// in the state `op` needs, take the lock, re-check, do it, commit, wake, unlock.
    pub(super) fn run(
        &self,
        me: Token,
        op: Op,
        src: &[u8],
        dst: &mut [u8],
        deadline: Option<Instant>,
        try_only: bool,
    ) -> Result<Outcome<()>, SharedMVarError> {
        let mut recovered = None;
        let mut watch = Watch::new();
        let mut stale = false;
        let ready = |w: u64| full(w) == op.needs_full();
        let mut slept_out = false;
        let mut first = true;
        loop {
            // Fast path: a partner answering within the adaptive spin needs no system call.
            // Only before the first sleep: a waiter woken later finds the box ready or sleeps
            // again, so a mostly-waiting participant does not spin at every slice.
            if std::mem::take(&mut first)
                && !try_only
                && !ready(self.st.word.load(Ordering::Acquire))
            {
                self.spin(|| ready(self.st.word.load(Ordering::Relaxed)));
            }
            // A try never waits for the box, and waits for the lock only so long: a live holder
            // keeps it for a copy, so a lock still held after TRY_LOCK_WAIT belongs to a stopped
            // process or is a corrupted word naming a live participant (found by fuzzing).
            let lock_deadline = match (try_only, deadline) {
                (true, None) => crate::sync::time::deadline_after(TRY_LOCK_WAIT),
                _ => deadline,
            };
            if !self.lock(me, op, lock_deadline, &mut recovered) {
                return Err(SharedMVarError::Timeout);
            }
            if death_due() {
                return Err(SharedMVarError::Died);
            }
            if std::mem::take(&mut stale) {
                // A process our last sleep watched is gone but its slot is live: free it (and
                // its waiter counts), or every sleep would stop at it again.
                self.reap();
            }
            let w = self.st.word.load(Ordering::Relaxed);
            if ready(w) && std::mem::take(&mut slept_out) {
                self.st.late_wakes.fetch_add(1, Ordering::Relaxed);
            }
            if ready(w) {
                // A participant that dies stops: no unlock, no return value.
                self.apply(op, w, src, dst)
                    .map_err(|Died| SharedMVarError::Died)?;
                self.st.lock.unlock(self.flavor.scope);
                return Ok(Outcome {
                    value: (),
                    recovered,
                });
            }
            if try_only {
                self.st.lock.unlock(self.flavor.scope);
                return Err(if op.needs_full() {
                    SharedMVarError::Empty
                } else {
                    SharedMVarError::Full
                });
            }
            // Not ready: register as a waiter *under the lock* (so the next committer, which
            // reads the count under the same lock, cannot miss us), then sleep one slice.
            self.st.sleeps.fetch_add(1, Ordering::Relaxed);
            slept_out =
                self.sleep(me, op, deadline, &mut watch, &mut stale) == WaitResult::TimedOut;
            if slept_out {
                // Modelled, slices are untimed: a timeout is the caller's deadline.
                if MODELLED || deadline.is_some_and(crate::sync::time::is_due) {
                    self.pass_on_wake(op);
                    return Err(SharedMVarError::Timeout);
                }
            }
        }
    }

    /// The critical section of `op` on committed word `w` (lock held, box in the right state).
    pub(super) fn apply(&self, op: Op, w: u64, src: &[u8], dst: &mut [u8]) -> Result<(), Died> {
        let cur = slot(w);
        let other = 1 - cur;
        if op != Op::Put {
            // SAFETY: we hold the lock.
            unsafe { self.slots.read(cur, dst) };
            die_if_due()?;
        }
        if matches!(op, Op::Put | Op::Swap) {
            // SAFETY: we hold the lock; `other` is not the slot the committed word names.
            unsafe { self.slots.write(other, src)? };
            die_if_due()?;
        }
        let gen = (w & !(FULL | SLOT)).wrapping_add(GEN_ONE);
        let (commit, seq, counter) = match op {
            Op::Put => (
                gen | FULL | ((other as u64) * SLOT),
                &self.st.full_seq,
                &self.st.takers,
            ),
            Op::Take => (gen | (w & SLOT), &self.st.empty_seq, &self.st.putters),
            Op::Swap => (
                gen | FULL | ((other as u64) * SLOT),
                &self.st.full_seq,
                &self.st.takers,
            ),
            Op::Read => {
                // No commit; others waiting for a full box may read or take it too.
                self.pass_on_wake(Op::Read);
                return Ok(());
            }
        };
        // The commit: one store.
        self.st.word.store(commit, Ordering::Release);
        #[cfg(any(loom, shuttle))]
        crate::shm::trace(|| format!("{} commit {commit:x}", op.name()));
        die_if_due()?;
        seq.fetch_add(1, Ordering::SeqCst);
        if counter.load(Ordering::SeqCst) > 0 {
            futex::wake_in(self.flavor.scope, seq, 1);
            if self.flavor.wait_for_acks {
                self.wait_for_acks(counter);
            }
        }
        die_if_due()
    }
}

#[cfg(not(any(loom, shuttle)))]
const _: () = assert!(core::mem::size_of::<BoxState>() as u64 == STATE_LEN);
