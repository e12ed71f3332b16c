//! The participant table: one slot per thread (or process) using a shared object, so that a
//! lock word can name its owner in 32 bits and anyone can tell whether that owner is dead.
//!
//! ## A slot's state word (`AtomicU64`)
//! `pid << 32 | gen << 8 | state`, where `state` is:
//!
//! | state      | meaning                                   | moved by                                 |
//! |------------|-------------------------------------------|------------------------------------------|
//! | `FREE`     | unused                                    | claimer: `CAS FREE(g) → CLAIMING(g+1,pid)` |
//! | `CLAIMING` | identity being written by `pid`           | claimer: `CAS → LIVE`; reaper if `pid` is dead |
//! | `LIVE`     | owned by the identity in the slot         | owner: `→ FREE` on release; reaper if dead |
//!
//! A participant's **token** is `(gen & 0x3fff) << 16 | (index + 1)`; 0 means "nobody". A lock
//! word stores the token of its owner. The owner is *dead* when its slot no longer carries that
//! generation (it was released or reaped: the owner left without unlocking), or when the slot's
//! identity is no longer alive (see [`super::identity`]). The claimer's pid is part of the
//! state word, so a slot whose claimer dies half-way through `CLAIMING` is reaped safely.
//!
//! ## Advisory waiter counts
//! A participant that counts itself into an object's waiter counter (so that wakers know a
//! `futex_wake` is needed) also sets that counter's bit in its slot's `waiting` mask — counter
//! first, bit second; bit cleared first, counter second. Reaping a dead participant decrements
//! the counters of the bits still set. A crash between the two steps leaves a count one too
//! *high*, which costs a spare wake-up and never a hang (glibc BZ 21422's class is a stale count
//! that a waker *waits on*; nothing here waits on a count).
//!
//! Under loom / shuttle a participant dies by the harness setting its `dead` flag (the models
//! have no `/proc`).
//!
//! ## Notes about memory ordering
//! The `CAS CLAIMING → LIVE` is `Release` and pairs with the `Acquire` load of whoever checks
//! liveness: the identity fields written before it are visible to anyone who sees `LIVE`.
//! Identity fields are atomics so that a reader racing a claimer reads old or new values, never
//! torn ones.

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Slot states (low 8 bits of the state word).
const FREE: u64 = 0;
const CLAIMING: u64 = 1;
const LIVE: u64 = 2;
const STATE_MASK: u64 = 0xff;
const GEN_SHIFT: u32 = 8;
const GEN_MASK: u64 = 0xff_ffff;
const PID_SHIFT: u32 = 32;

/// Token bits: `index + 1` in the low 16 bits, generation in bits 16..30 (bits 30 and 31 are
/// left to the lock words for their "owner died" and "waiters" flags).
const TOKEN_INDEX_MASK: u32 = 0xffff;
const TOKEN_GEN_MASK: u32 = 0x3fff;
/// Most participants a table can have (the index must fit the token).
pub const MAX_PARTICIPANTS: u32 = 0xfffe;

/// A participant's name inside lock words: see the module docs. 0 is nobody.
pub type Token = u32;

/// One participant slot. `#[repr(C)]`, 64 bytes: it lives in shared memory.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Slot {
    state: AtomicU64,
    pid_start: AtomicU64,
    tid_start: AtomicU64,
    tid: AtomicU32,
    /// Bit `i` set: this participant is counted in waiter counter `i` of the object.
    waiting: AtomicU32,
    /// Model engines only: the harness marks a participant that "died".
    dead: AtomicU32,
    /// A process-level slot's **death beacon** ([`super::beacon`]): `tid | WAITERS` of the
    /// owner process's beacon thread while it lives (the kernel sets `OWNER_DIED` and clears
    /// the tid when the process dies), 0 when the owner has no beacon.
    pub(super) beacon: AtomicU32,
    /// The robust-list `next` pointer of the beacon's entry: an address in the *owner's*
    /// address space, written only by the owner and read only by its kernel at its death.
    pub(super) beacon_next: AtomicU64,
}

// The slot's layout is part of the segment layout (LAYOUT_VERSION): 64 bytes, the beacon
// word 4-aligned and the robust-list entry pointer-aligned. (The model engines' atomics have
// other sizes; their slots never live in a segment.)
#[cfg(not(any(loom, shuttle)))]
const _: () = assert!(core::mem::size_of::<Slot>() == 64);
#[cfg(not(any(loom, shuttle)))]
const _: () = assert!(core::mem::offset_of!(Slot, beacon) == 36);
#[cfg(not(any(loom, shuttle)))]
const _: () = assert!(core::mem::offset_of!(Slot, beacon_next) == 40);
#[cfg(not(any(loom, shuttle)))]
const _: () = assert!(
    core::mem::offset_of!(Slot, beacon) as isize
        - core::mem::offset_of!(Slot, beacon_next) as isize
        == super::beacon::FUTEX_OFFSET
);

impl Slot {
    /// A free slot (the all-zero bit pattern is also a free slot, so a fresh zero-filled
    /// segment needs no initialisation).
    pub fn new() -> Self {
        Slot {
            state: AtomicU64::new(FREE),
            pid_start: AtomicU64::new(0),
            tid_start: AtomicU64::new(0),
            tid: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            dead: AtomicU32::new(0),
            beacon: AtomicU32::new(0),
            beacon_next: AtomicU64::new(0),
        }
    }
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

/// Who a participant was, for reports (`pid`, `tid`; zeros when unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Who {
    /// Process id (0 if the slot was already reused).
    pub pid: u32,
    /// Thread id (0 for a process-level participant or if unknown).
    pub tid: u32,
}

impl core::fmt::Display for Who {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match (self.pid, self.tid) {
            (0, _) => write!(f, "a participant that already left"),
            (p, 0) => write!(f, "process {p}"),
            (p, t) => write!(f, "process {p} thread {t}"),
        }
    }
}

/// The table is full (every slot is held by a live participant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFull {
    /// Number of slots.
    pub slots: usize,
}

/// A view of a participant table (in a segment, or in memory for the model engines).
#[derive(Clone, Copy, Debug)]
pub struct Participants<'a> {
    slots: &'a [Slot],
    /// The segment's "joins" word (bumped and woken whenever a process-level participant
    /// joins, so that a sleeper watching every process's beacon learns of a new one); `None`
    /// for a table outside a segment, which has no beacons.
    #[cfg_attr(any(loom, shuttle), allow(dead_code))]
    joins: Option<&'a AtomicU32>,
}

fn pack(pid: u32, gen: u64, state: u64) -> u64 {
    (u64::from(pid) << PID_SHIFT) | ((gen & GEN_MASK) << GEN_SHIFT) | state
}
fn state_of(w: u64) -> u64 {
    w & STATE_MASK
}
fn gen_of(w: u64) -> u64 {
    (w >> GEN_SHIFT) & GEN_MASK
}
fn pid_of(w: u64) -> u32 {
    (w >> PID_SHIFT) as u32
}

/// Splits a token into (slot index, generation); `None` for 0 or an index beyond `len`.
fn decode(token: Token, len: usize) -> Option<(usize, u32)> {
    let idx = (token & TOKEN_INDEX_MASK) as usize;
    if idx == 0 || idx > len {
        return None;
    }
    Some((idx - 1, (token >> 16) & TOKEN_GEN_MASK))
}

impl<'a> Participants<'a> {
    /// A view of `slots`.
    pub fn new(slots: &'a [Slot]) -> Self {
        Participants { slots, joins: None }
    }

    /// A view of a segment's table: process-level participants arm a death beacon
    /// ([`super::beacon`]) and announce themselves on `joins`.
    #[cfg(not(any(loom, shuttle)))]
    pub(super) fn in_segment(slots: &'a [Slot], joins: &'a AtomicU32) -> Self {
        Participants {
            slots,
            joins: Some(joins),
        }
    }

    /// The slots (for the sleepers' beacon scan).
    #[cfg(not(any(loom, shuttle)))]
    pub(super) fn slots(&self) -> &'a [Slot] {
        self.slots
    }

    /// The segment's joins word, if this table lives in a segment.
    #[cfg(not(any(loom, shuttle)))]
    pub(super) fn joins(&self) -> Option<&'a AtomicU32> {
        self.joins
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the table has no slot at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Claims a slot for the calling thread (`process_level`: for the process) and returns its
    /// token. Reaps dead participants when every slot is taken.
    pub fn claim(&self, process_level: bool) -> Result<Token, TableFull> {
        for attempt in 0..2 {
            for (i, slot) in self.slots.iter().enumerate() {
                let w = slot.state.load(Ordering::Acquire);
                if state_of(w) != FREE {
                    continue;
                }
                let gen = gen_of(w) + 1;
                let pid = my_pid();
                if slot
                    .state
                    .compare_exchange(
                        w,
                        pack(pid, gen, CLAIMING),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_err()
                {
                    continue;
                }
                write_identity(slot, process_level);
                slot.waiting.store(0, Ordering::Relaxed);
                slot.dead.store(0, Ordering::Relaxed);
                // Armed before LIVE, so that a sleeper that sees the slot live sees its beacon
                // (or 0: no beacon, and it keeps polling).
                self.arm_beacon(slot, process_level);
                slot.state.store(pack(pid, gen, LIVE), Ordering::Release);
                self.announce_join(process_level);
                return Ok(((gen as u32 & TOKEN_GEN_MASK) << 16) | (i as u32 + 1));
            }
            if attempt == 0 {
                self.reap(|_, _| {});
            }
        }
        Err(TableFull {
            slots: self.slots.len(),
        })
    }

    /// Gives the slot of `token` back (its owner leaves). Counters the owner is still counted
    /// in are left for [`Participants::reap`]'s callback to fix, so the caller passes them.
    pub fn release(&self, token: Token, uncount: impl FnMut(u32)) {
        let Some((i, gen)) = decode(token, self.slots.len()) else {
            return;
        };
        let slot = &self.slots[i];
        let w = slot.state.load(Ordering::Acquire);
        if state_of(w) == LIVE && (gen_of(w) as u32 & TOKEN_GEN_MASK) == gen {
            drop_counts(slot, uncount);
            // A leaving process stops watching over the slot before freeing it; its beacon's
            // watchers are woken to look again.
            #[cfg(not(any(loom, shuttle)))]
            if self.joins.is_some() {
                super::beacon::disarm(&slot.beacon, &slot.beacon_next);
            }
            let _ = slot.state.compare_exchange(
                w,
                pack(0, gen_of(w), FREE),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// Whether the participant named by `token` is gone: its slot was released or reaped, or
    /// its thread/process no longer exists. An invalid token (corrupted memory) is dead.
    pub fn is_dead(&self, token: Token) -> bool {
        let Some((i, gen)) = decode(token, self.slots.len()) else {
            return true;
        };
        let slot = &self.slots[i];
        let w = slot.state.load(Ordering::Acquire);
        if state_of(w) != LIVE || (gen_of(w) as u32 & TOKEN_GEN_MASK) != gen {
            return true;
        }
        !slot_alive(slot, w)
    }

    /// Who `token` names (zeros if unknown).
    pub fn who(&self, token: Token) -> Who {
        match decode(token, self.slots.len()) {
            Some((i, _)) => {
                let slot = &self.slots[i];
                Who {
                    pid: pid_of(slot.state.load(Ordering::Acquire)),
                    tid: slot.tid.load(Ordering::Relaxed),
                }
            }
            None => Who::default(),
        }
    }

    /// Frees the slots of dead participants; `uncount(bit)` is called for every waiter counter
    /// a dead participant was still counted in. Returns who was reaped.
    pub fn reap(&self, mut uncount: impl FnMut(usize, u32)) -> Vec<Who> {
        let mut reaped = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let w = slot.state.load(Ordering::Acquire);
            let dead = match state_of(w) {
                LIVE => !slot_alive(slot, w),
                CLAIMING => !claimer_alive(slot, w),
                _ => false,
            };
            if !dead {
                continue;
            }
            let who = Who {
                pid: pid_of(w),
                tid: slot.tid.load(Ordering::Relaxed),
            };
            // Free the slot first: from then on no one else can reap it, so the counts are
            // dropped exactly once.
            if slot
                .state
                .compare_exchange(
                    w,
                    pack(0, gen_of(w), FREE),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                drop_counts(slot, |bit| uncount(i, bit));
                reaped.push(who);
            }
        }
        reaped
    }

    /// Counts `token` in waiter counter `bit` (after the caller incremented the counter).
    pub fn mark_waiting(&self, token: Token, bit: u32) {
        if let Some((i, _)) = decode(token, self.slots.len()) {
            self.slots[i].waiting.fetch_or(1 << bit, Ordering::AcqRel);
        }
    }

    /// Uncounts `token` from waiter counter `bit` (before the caller decrements the counter).
    /// Returns false if the bit was not set (a reaper already uncounted it).
    pub fn unmark_waiting(&self, token: Token, bit: u32) -> bool {
        match decode(token, self.slots.len()) {
            Some((i, _)) => {
                self.slots[i]
                    .waiting
                    .fetch_and(!(1 << bit), Ordering::AcqRel)
                    & (1 << bit)
                    != 0
            }
            None => false,
        }
    }

    /// Identities of the live participants (for cleanup and reports).
    pub fn live(&self) -> Vec<Who> {
        self.slots
            .iter()
            .filter_map(|slot| {
                let w = slot.state.load(Ordering::Acquire);
                (state_of(w) == LIVE && slot_alive(slot, w)).then(|| Who {
                    pid: pid_of(w),
                    tid: slot.tid.load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    /// Model engines: the participant `token` died (stops forever). The harness calls this
    /// after the thread reached its death step ([`crate::shm::death_due`]).
    pub fn mark_dead(&self, token: Token) {
        if let Some((i, _)) = decode(token, self.slots.len()) {
            self.slots[i].dead.store(1, Ordering::Release);
        }
    }
}

impl Participants<'_> {
    /// Arms `slot`'s death beacon for a process-level participant of a segment (see
    /// [`super::beacon`]); clears it otherwise.
    #[cfg(not(any(loom, shuttle)))]
    fn arm_beacon(&self, slot: &Slot, process_level: bool) {
        slot.beacon.store(0, Ordering::Relaxed);
        slot.beacon_next.store(0, Ordering::Relaxed);
        if process_level && self.joins.is_some() {
            super::beacon::arm(&slot.beacon, &slot.beacon_next);
        }
    }
    #[cfg(any(loom, shuttle))]
    fn arm_beacon(&self, _slot: &Slot, _process_level: bool) {}

    /// Tells the sleepers that watch every process's beacon that a process joined.
    #[cfg(not(any(loom, shuttle)))]
    fn announce_join(&self, process_level: bool) {
        if let (true, Some(joins)) = (process_level, self.joins) {
            joins.fetch_add(1, Ordering::SeqCst);
            crate::sync::futex::wake_in(crate::sync::futex::Scope::Shared, joins, u32::MAX);
        }
    }
    #[cfg(any(loom, shuttle))]
    fn announce_join(&self, _process_level: bool) {}

    /// The state word, pid start time and thread id of slot `i` if it is live (for the
    /// sleepers' beacon scan).
    #[cfg(not(any(loom, shuttle)))]
    pub(super) fn live_slot(&self, token: Token) -> Option<(u32, u64)> {
        let (i, gen) = decode(token, self.slots.len())?;
        let slot = &self.slots[i];
        let w = slot.state.load(Ordering::Acquire);
        (state_of(w) == LIVE && (gen_of(w) as u32 & TOKEN_GEN_MASK) == gen)
            .then(|| (pid_of(w), slot.pid_start.load(Ordering::Relaxed)))
    }
}

/// What a sleeper needs of a slot to watch its beacon: `(pid, pid start, tid)` of a live slot,
/// `None` otherwise.
#[cfg(not(any(loom, shuttle)))]
pub(super) fn live_identity(slot: &Slot) -> Option<(u32, u64, u32)> {
    let w = slot.state.load(Ordering::Acquire);
    (state_of(w) == LIVE).then(|| {
        (
            pid_of(w),
            slot.pid_start.load(Ordering::Relaxed),
            slot.tid.load(Ordering::Relaxed),
        )
    })
}

/// Whether the process that owns a live slot is gone (`/proc`), for a sleeper deciding
/// whether a fired beacon still matters.
#[cfg(not(any(loom, shuttle)))]
pub(super) fn process_gone(pid: u32, pid_start: u64) -> bool {
    !super::identity::Identity {
        pid,
        tid: 0,
        pid_start,
        tid_start: 0,
    }
    .is_alive()
}

fn drop_counts(slot: &Slot, mut uncount: impl FnMut(u32)) {
    let mask = slot.waiting.swap(0, Ordering::AcqRel);
    for bit in 0..32 {
        if mask & (1 << bit) != 0 {
            uncount(bit);
        }
    }
}

#[cfg(not(any(loom, shuttle)))]
fn my_pid() -> u32 {
    std::process::id()
}
#[cfg(any(loom, shuttle))]
fn my_pid() -> u32 {
    1
}

#[cfg(not(any(loom, shuttle)))]
fn write_identity(slot: &Slot, process_level: bool) {
    let id = if process_level {
        super::identity::Identity::current_process()
    } else {
        super::identity::Identity::current_thread()
    };
    slot.tid.store(id.tid, Ordering::Relaxed);
    slot.pid_start.store(id.pid_start, Ordering::Relaxed);
    slot.tid_start.store(id.tid_start, Ordering::Relaxed);
}
#[cfg(any(loom, shuttle))]
fn write_identity(slot: &Slot, _process_level: bool) {
    slot.tid.store(0, Ordering::Relaxed);
}

#[cfg(not(any(loom, shuttle)))]
fn slot_alive(slot: &Slot, w: u64) -> bool {
    super::identity::Identity {
        pid: pid_of(w),
        tid: slot.tid.load(Ordering::Relaxed),
        pid_start: slot.pid_start.load(Ordering::Relaxed),
        tid_start: slot.tid_start.load(Ordering::Relaxed),
    }
    .is_alive()
}
#[cfg(any(loom, shuttle))]
fn slot_alive(slot: &Slot, _w: u64) -> bool {
    slot.dead.load(Ordering::Acquire) == 0
}

#[cfg(not(any(loom, shuttle)))]
fn claimer_alive(_slot: &Slot, w: u64) -> bool {
    super::identity::process_exists(pid_of(w))
}
#[cfg(any(loom, shuttle))]
fn claimer_alive(slot: &Slot, _w: u64) -> bool {
    slot.dead.load(Ordering::Acquire) == 0
}
