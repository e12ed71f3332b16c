//! The shared message ring (SYSMSG) and buffered messaging for processes: seed 001's `cm_msg`
//! without its admitted downside.
//!
//! [`SharedLog`] is a bounded multi-producer ring of fixed-size message records in a named
//! segment of kind [`Kind::MessageRing`], plus one **staging area per participant slot, in the
//! segment**. A thread that logs while it holds a tracked lock (`held_depth() > 0`, or the ring
//! lock itself) never takes the ring lock: it writes the message into its *own* staging area and
//! commits it with one store. The staged messages move to the ring, in order, when the thread
//! releases its outermost tracked lock ([`flush_thread_staged`] is a release hook installed in
//! [`crate::track`]), calls [`SharedLog::flush`], logs again without a lock, or exits.
//! Because the staging areas live in shared memory they outlive their process: any survivor
//! finds the areas of dead participants and delivers them ([`SharedLog::rescue_dead`]), so a
//! process that logs and is SIGKILLed at once loses nothing — MIDAS's buffered `cm_msg` lost
//! exactly those messages. [`SharedLog::with_private_staging`] keeps that defect as the negative
//! control "staged message lost when the process dies".
//!
//! ## Layout of the object area (offsets only; params `[R, T, S, P]`)
//! | offset                        | bytes   | what                                                  |
//! |-------------------------------|---------|-------------------------------------------------------|
//! | 0                             | 192     | ring header: lock word, `head`, `tail`, loss and corruption counters, the journal |
//! | 192                           | 64 × P  | staging headers, one per participant slot: `owner`, `staged`, `delivered`, next origin seq |
//! | `ring_offset`                 | R × L   | the ring: position `i` lives in record `i % R`         |
//! | `stage_records_offset`        | P × S × L | staging records: staged message `j` of slot `p` in record `p·S + j % S` |
//!
//! R = ring capacity, T = text bytes per record, S = staging capacity per participant, P = the
//! segment's participant count (stored as the fourth parameter and checked against the header).
//! A record is `L = align8(48 + T)` bytes: ring sequence, origin sequence, monotonic time (ns),
//! pid, tid, text length, flags (truncated / staged / rescued), an FNV-1a checksum of all that
//! and the text, then the UTF-8 text (cut at a char boundary and ended by
//! [`TRUNCATION_MARKER`] when too long). See [`RingLayout`].
//!
//! ## State and who moves it
//! | word                       | meaning                                             | moved by                                           |
//! |----------------------------|-----------------------------------------------------|----------------------------------------------------|
//! | ring `lock`                | [`RobustWord`]: free / held by a token             | appenders, flushers, drainers, rescuers            |
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
//! A staging area is a single-producer single-consumer queue: the producer is the (one live)
//! participant of that slot and writes only `staged` and the record at `staged % S`, which it
//! reuses only once `staged - delivered < S`; the consumer is whoever holds the ring lock and
//! writes only `delivered`, reading records in `[delivered, staged)`. So a rescuer and a new
//! owner of a reused slot may work on the same area concurrently without losing or duplicating
//! anything.
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
//! owner's area), and the recoverer's automatic [`SharedLog::rescue_dead`] delivers them.
//! A killed flusher therefore delivers each message once or not yet, never twice, never lost.
//! A direct append (`tail + 1`) and a drain (`head + n`) are single-store commits.
//!
//! **Rescue** ([`SharedLog::rescue_dead`], run automatically after every lock takeover, and by
//! `open`/`create` unless a live participant holds the ring lock): under the ring lock, every staging area with undelivered messages whose
//! `owner` is dead gets a flush step; only then are the dead participants' slots freed
//! ([`crate::shm::Participants::reap`]). A participant dying after the scan keeps its
//! messages: its `owner` token stays dead forever (slot freed or its generation moved on), so
//! the next rescue finds them. A participant that claims a slot whose area still holds a
//! previous owner's messages delivers them first (or, under a lock, stages behind them).
//!
//! **Never silent, never hung, never a panic.** A full ring or staging area drops the new
//! message, counts it, and the next [`SharedLog::drain`] reports how many were lost since the
//! previous one ([`Drained::lost`]). Every index and length read from the segment is
//! bounds-checked; a record that fails validation is skipped and counted
//! ([`Drained::corrupt`]); inconsistent ring indices give [`RingError::Corrupted`]. The ring
//! lock is taken with a deadline ([`LOCK_TIMEOUT`]).
//!
//! ## Notes about memory ordering
//! * A stager writes the record, then `staged.store(s + 1, Release)`; a flusher's
//!   `staged.load(Acquire)` makes the record visible before it copies it.
//! * A flusher's reads of a staged record happen before its `delivered.store(Release)`; the
//!   stager's `delivered.load(Acquire)` before reusing that record's place orders them.
//! * Everything else in the ring header and the ring records is accessed under the
//!   [`RobustWord`]: its `Acquire` takeover/lock pairs with the previous `Release` unlock.
//!   After a death there is no unlock to pair with: the settle step reads `delivered` with
//!   `Acquire` (pairing with the commit's `Release`, so a committed step's `tail` is seen), and
//!   the journal `state` with `Acquire` (pairing with the `Release` that published its fields).
//!   A killed process's stores have all reached memory once the kernel reports it dead.
//! * `stage_lost` is a plain counter (`Relaxed`): it is only ever reported, never trusted.
//! * Text bytes are copied with plain byte copies into private memory and validated there
//!   (length first, then the checksum), as the shared MVar copies its payload.

use crate::track::{held_depth, ReleaseHook};
use crate::shm::{
    crash_point, Acquired, Kind, Layout, LockCx, RobustWord, Segment, ShmError, ShmName, Token,
    Who, DEFAULT_PARTICIPANTS, MAX_PARTICIPANTS,
};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::futex::Scope;
use crate::sync::time::{deadline_after, Duration, Instant};
use core::cell::RefCell;
use core::fmt;
use core::mem::{offset_of, size_of};
use core::ptr::NonNull;
use std::sync::Arc;

/// Largest ring capacity, in records.
pub const MAX_RING_CAPACITY: u64 = 1 << 20;
/// Smallest text capacity of a record (room for the truncation marker and some text).
pub const MIN_TEXT_LEN: u64 = 8;
/// Largest text capacity of a record, in bytes.
pub const MAX_TEXT_LEN: u64 = 1 << 16;
/// Largest staging capacity per participant, in records.
pub const MAX_STAGE_CAPACITY: u64 = 1 << 16;
/// Largest object area a message ring may need (1 GiB).
pub const MAX_OBJECT_LEN: u64 = 1 << 30;
/// Appended to a text cut to fit a record.
pub const TRUNCATION_MARKER: &str = "\u{2026}";
/// How long an operation waits for the ring lock held by a live (e.g. stopped) participant.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// Sleep between two attempts when the lock is taken without the thread-local machinery (at
/// thread exit).
const LOCK_POLL: Duration = Duration::from_millis(1);

/// Index of each parameter in the segment header's parameter array.
pub const PARAM_RING_CAPACITY: usize = 0;
/// See [`PARAM_RING_CAPACITY`].
pub const PARAM_TEXT_LEN: usize = 1;
/// See [`PARAM_RING_CAPACITY`].
pub const PARAM_STAGE_CAPACITY: usize = 2;
/// See [`PARAM_RING_CAPACITY`]: the number of staging areas (= participant slots).
pub const PARAM_STAGES: usize = 3;

/// Record flags.
const FLAG_TRUNCATED: u32 = 1;
const FLAG_STAGED: u32 = 2;
const FLAG_RESCUED: u32 = 4;
const KNOWN_FLAGS: u32 = FLAG_TRUNCATED | FLAG_STAGED | FLAG_RESCUED;

/// Journal states (an unlikely bit pattern for `ACTIVE`, so garbage is rarely taken for it).
const JOURNAL_IDLE: u64 = 0;
const JOURNAL_ACTIVE: u64 = u64::from_le_bytes(*b"RINGJRNL");

/// Low bits of a participant token: slot index + 1.
const TOKEN_INDEX_MASK: u32 = 0xffff;
/// Records and their fields are 8-aligned.
const RECORD_ALIGN: u64 = 8;
const NANOS_PER_SEC: u64 = 1_000_000_000;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The ring header at offset 0 of the object area (`#[repr(C)]`; all zero = empty, unlocked).
#[repr(C, align(64))]
struct RingHeader {
    lock: RobustWord,
    _pad: AtomicU32,
    head: AtomicU64,
    tail: AtomicU64,
    lost: AtomicU64,
    stage_lost: AtomicU64,
    lost_seen: AtomicU64,
    corrupt: AtomicU64,
    corrupt_seen: AtomicU64,
    recoveries: AtomicU64,
    /// Flush steps left half-done by a dead lock holder and settled (completed or undone).
    settled: AtomicU64,
    journal: Journal,
}

/// The redo/undo journal of one flush step.
#[repr(C)]
struct Journal {
    state: AtomicU64,
    slot: AtomicU64,
    delivered0: AtomicU64,
    count: AtomicU64,
    tail0: AtomicU64,
    lost0: AtomicU64,
    corrupt0: AtomicU64,
}

/// One participant slot's staging header.
#[repr(C, align(64))]
struct StageHeader {
    owner: AtomicU32,
    _pad: AtomicU32,
    staged: AtomicU64,
    delivered: AtomicU64,
    next_origin_seq: AtomicU64,
}

/// The fixed part of a record; the text follows.
#[repr(C)]
struct RecordHead {
    seq: AtomicU64,
    origin_seq: AtomicU64,
    time_ns: AtomicU64,
    pid: AtomicU32,
    tid: AtomicU32,
    len: AtomicU32,
    flags: AtomicU32,
    check: AtomicU64,
}

const RING_HEADER_LEN: u64 = size_of::<RingHeader>() as u64;
const STAGE_HEADER_LEN: u64 = size_of::<StageHeader>() as u64;
const RECORD_HEAD_LEN: u64 = size_of::<RecordHead>() as u64;
const _: () = assert!(RING_HEADER_LEN % 64 == 0 && STAGE_HEADER_LEN == 64);
const _: () = assert!(RECORD_HEAD_LEN % RECORD_ALIGN == 0);

/// Offset of the ring lock word in the object area.
pub const LOCK_OFFSET: usize = offset_of!(RingHeader, lock);
/// Offset of the ring's `head` (`u64`) in the object area.
pub const HEAD_OFFSET: usize = offset_of!(RingHeader, head);
/// Offset of the ring's `tail` (`u64`) in the object area.
pub const TAIL_OFFSET: usize = offset_of!(RingHeader, tail);
/// Offset of the journal's `state` (`u64`) in the object area.
pub const JOURNAL_STATE_OFFSET: usize =
    offset_of!(RingHeader, journal) + offset_of!(Journal, state);
/// Offset of the journal in the object area: seven `u64`s — state, staging slot, `delivered`
/// before, message count, `tail` before, `lost` before, `corrupt` before.
pub const JOURNAL_OFFSET: usize = offset_of!(RingHeader, journal);
/// The journal state of a flush step in progress (`u64` at [`JOURNAL_STATE_OFFSET`]).
pub const JOURNAL_ACTIVE_STATE: u64 = JOURNAL_ACTIVE;
/// Offset of `owner` (`u32` token) in a staging header.
pub const OWNER_OFFSET: usize = offset_of!(StageHeader, owner);
/// Offset of `staged` (`u64`) in a staging header.
pub const STAGED_OFFSET: usize = offset_of!(StageHeader, staged);
/// Offset of `delivered` (`u64`) in a staging header.
pub const DELIVERED_OFFSET: usize = offset_of!(StageHeader, delivered);
/// Offset of the text length (`u32`) in a record.
pub const RECORD_LEN_OFFSET: usize = offset_of!(RecordHead, len);
/// Offset of the text in a record.
pub const RECORD_TEXT_OFFSET: usize = size_of::<RecordHead>();

/// Where everything is in a message ring's object area, computed from (validated) parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Ring capacity R, in records.
    pub ring_capacity: u64,
    /// Text bytes per record T.
    pub text_len: u64,
    /// Staging capacity S per participant, in records.
    pub stage_capacity: u64,
    /// Number of staging areas P (= participant slots).
    pub stages: u64,
    /// Bytes per record L.
    pub record_len: u64,
    /// Offset of the staging headers.
    pub stage_headers_offset: u64,
    /// Offset of the ring records.
    pub ring_offset: u64,
    /// Offset of the staging records.
    pub stage_records_offset: u64,
    /// Length of the object area.
    pub object_len: u64,
}

impl RingLayout {
    /// The layout for `[R, T, S, P]`; `None` if a parameter is out of range or the object would
    /// exceed [`MAX_OBJECT_LEN`].
    pub fn from_params(params: &[u64; 4]) -> Option<RingLayout> {
        let ring_capacity = params[PARAM_RING_CAPACITY];
        let text_len = params[PARAM_TEXT_LEN];
        let stage_capacity = params[PARAM_STAGE_CAPACITY];
        let stages = params[PARAM_STAGES];
        if !(1..=MAX_RING_CAPACITY).contains(&ring_capacity)
            || !(MIN_TEXT_LEN..=MAX_TEXT_LEN).contains(&text_len)
            || !(1..=MAX_STAGE_CAPACITY).contains(&stage_capacity)
            || !(1..=u64::from(MAX_PARTICIPANTS)).contains(&stages)
        {
            return None;
        }
        let record_len = (RECORD_HEAD_LEN + text_len).div_ceil(RECORD_ALIGN) * RECORD_ALIGN;
        let stage_headers_offset = RING_HEADER_LEN;
        let ring_offset =
            stage_headers_offset.checked_add(stages.checked_mul(STAGE_HEADER_LEN)?)?;
        let stage_records_offset =
            ring_offset.checked_add(ring_capacity.checked_mul(record_len)?)?;
        let object_len = stage_records_offset.checked_add(
            stages
                .checked_mul(stage_capacity)?
                .checked_mul(record_len)?,
        )?;
        (object_len <= MAX_OBJECT_LEN).then_some(RingLayout {
            ring_capacity,
            text_len,
            stage_capacity,
            stages,
            record_len,
            stage_headers_offset,
            ring_offset,
            stage_records_offset,
            object_len,
        })
    }
}

/// The object length of a message ring whose parameters are `[R, T, S, P]` (see the module
/// docs); `None` if they are invalid.
pub fn object_len(params: &[u64; 4]) -> Option<u64> {
    RingLayout::from_params(params).map(|l| l.object_len)
}

/// Why a ring operation failed.
#[derive(Debug)]
pub enum RingError {
    /// The segment could not be used (e.g. no participant slot left).
    Shm(ShmError),
    /// The ring lock stayed held by a live participant for [`LOCK_TIMEOUT`].
    Timeout,
    /// The ring or the caller's staging area was full: this message was dropped and counted,
    /// and the next drain reports it.
    Overflow,
    /// A ring or staging index read from the segment is inconsistent.
    Corrupted(String),
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::Shm(e) => write!(f, "message ring segment: {e}"),
            RingError::Timeout => write!(
                f,
                "the message ring lock stayed held by a live participant for {LOCK_TIMEOUT:?}"
            ),
            RingError::Overflow => {
                write!(
                    f,
                    "message dropped (ring or staging area full); it is counted as lost"
                )
            }
            RingError::Corrupted(why) => write!(f, "corrupted message ring: {why}"),
        }
    }
}

impl std::error::Error for RingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RingError::Shm(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ShmError> for RingError {
    fn from(e: ShmError) -> Self {
        RingError::Shm(e)
    }
}

/// One message taken out of the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingMessage {
    /// Ring position: consecutive over the ring's life (drops take no position).
    pub seq: u64,
    /// Origin process.
    pub pid: u32,
    /// Origin thread (kernel tid).
    pub tid: u32,
    /// The origin participant's own sequence number (per participant slot use, from 0).
    pub origin_seq: u64,
    /// `CLOCK_MONOTONIC` at `log`, in nanoseconds.
    pub time_ns: u64,
    /// The text (ends with [`TRUNCATION_MARKER`] if it was cut).
    pub text: String,
    /// The text was cut to fit a record.
    pub truncated: bool,
    /// It went through a staging area (logged under a lock).
    pub staged: bool,
    /// It was delivered by someone else than its origin (a rescuer).
    pub rescued: bool,
}

impl fmt::Display for RingMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} [pid {} tid {} #{}{}] {}",
            self.seq,
            self.pid,
            self.tid,
            self.origin_seq,
            if self.rescued { " rescued" } else { "" },
            self.text
        )
    }
}

/// What [`SharedLog::drain`] took out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// The messages, in ring order.
    pub messages: Vec<RingMessage>,
    /// Messages dropped (ring or staging area full) since the previous drain.
    pub lost: u64,
    /// Records skipped since the previous drain because they failed validation.
    pub corrupt: u64,
}

/// What [`SharedLog::rescue_dead`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rescued {
    /// Dead participants whose staged messages were delivered.
    pub participants: usize,
    /// Messages delivered for them.
    pub messages: u64,
    /// Dead participants' slots freed afterwards.
    pub reaped: usize,
}

impl Rescued {
    fn add(&mut self, o: Rescued) {
        self.participants += o.participants;
        self.messages += o.messages;
        self.reaped += o.reaped;
    }
}

/// A message in private memory (before it is written to, or after it is read from, a record).
#[derive(Clone, Debug)]
struct Record {
    seq: u64,
    origin_seq: u64,
    time_ns: u64,
    pid: u32,
    tid: u32,
    flags: u32,
    text: Vec<u8>,
}

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

impl Record {
    fn checksum(&self) -> u64 {
        let mut h = FNV_OFFSET;
        for v in [self.seq, self.origin_seq, self.time_ns] {
            h = fnv(h, &v.to_le_bytes());
        }
        for v in [self.pid, self.tid, self.text.len() as u32, self.flags] {
            h = fnv(h, &v.to_le_bytes());
        }
        fnv(h, &self.text)
    }

    fn into_message(self) -> Option<RingMessage> {
        let text = String::from_utf8(self.text).ok()?;
        Some(RingMessage {
            seq: self.seq,
            pid: self.pid,
            tid: self.tid,
            origin_seq: self.origin_seq,
            time_ns: self.time_ns,
            text,
            truncated: self.flags & FLAG_TRUNCATED != 0,
            staged: self.flags & FLAG_STAGED != 0,
            rescued: self.flags & FLAG_RESCUED != 0,
        })
    }
}

/// `text` cut to at most `max` bytes at a char boundary, with the marker; and whether it was cut.
fn fit(text: &str, max: usize) -> (Vec<u8>, bool) {
    if text.len() <= max {
        return (text.as_bytes().to_vec(), false);
    }
    let mut cut = max.saturating_sub(TRUNCATION_MARKER.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut v = Vec::with_capacity(cut + TRUNCATION_MARKER.len());
    v.extend_from_slice(&text.as_bytes()[..cut]);
    v.extend_from_slice(TRUNCATION_MARKER.as_bytes());
    (v, true)
}

/// `CLOCK_MONOTONIC` in nanoseconds (system-wide, so comparable across processes).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on every Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(NANOS_PER_SEC)
        .saturating_add(ts.tv_nsec.max(0) as u64)
}

/// Result of one flush step.
#[derive(Clone, Copy, Debug, Default)]
struct Step {
    appended: u64,
}

/// One process's view of a message ring (shared by the [`SharedLog`] handles made from it).
struct Inner {
    seg: Segment,
    geo: RingLayout,
    private_staging: bool,
}

thread_local! {
    /// Ring locks this thread holds: (ring header address, depth).
    static HOLDING: RefCell<Vec<(usize, u32)>> = const { RefCell::new(Vec::new()) };
    /// Shared logs this thread staged into since its last flush.
    static REGISTRY: RefCell<Registry> = const { RefCell::new(Registry(Vec::new())) };
}

/// A log this thread staged into: its token there and, for the private-staging control, the
/// messages themselves.
struct Entry {
    inner: Arc<Inner>,
    me: Token,
    private: Vec<Record>,
}

/// The thread's registry; flushed when the thread exits.
struct Registry(Vec<Entry>);

impl Drop for Registry {
    fn drop(&mut self) {
        for mut e in std::mem::take(&mut self.0) {
            let inner = e.inner.clone();
            // Thread-local state may already be gone: take the lock by polling.
            let _ = inner.flush_entry(&mut e, false);
        }
    }
}

fn entry_key(inner: &Inner) -> usize {
    inner as *const Inner as usize
}

/// Runs [`flush_thread_staged`] at every outermost release of a tracked lock; installed in
/// [`crate::track`] by the first `SharedLog` a process creates or opens.
static FLUSH_RING_STAGES: ReleaseHook = ReleaseHook::new(flush_thread_staged);

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

/// Holds the ring lock (or one re-entry of it); releases on drop.
struct RingGuard<'a> {
    inner: &'a Inner,
    outer: bool,
    /// What the automatic rescue after a takeover did.
    rescued: Rescued,
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
    fn hdr(&self) -> &RingHeader {
        // SAFETY: the object area starts with a 64-aligned RingHeader (validated layout; the
        // area is at least RING_HEADER_LEN bytes); any bit pattern of its atomics is valid; it
        // lives as long as `self.seg`.
        unsafe { &*self.seg.object_ptr().as_ptr().cast::<RingHeader>() }
    }

    /// Address of the ring header in this process (identifies the mapping).
    fn key(&self) -> usize {
        self.seg.object_ptr().as_ptr() as usize
    }

    fn stage(&self, p: usize) -> &StageHeader {
        assert!(
            (p as u64) < self.geo.stages,
            "staging area index out of range"
        );
        let off = self.geo.stage_headers_offset + p as u64 * STAGE_HEADER_LEN;
        // SAFETY: `p < stages`, so the header lies inside the validated object area; offsets are
        // multiples of 64 from a 64-aligned base; atomics accept any bit pattern.
        unsafe {
            &*self
                .seg
                .object_ptr()
                .as_ptr()
                .add(off as usize)
                .cast::<StageHeader>()
        }
    }

    /// The record of ring position `pos`.
    fn ring_record(&self, pos: u64) -> NonNull<u8> {
        let off = self.geo.ring_offset + (pos % self.geo.ring_capacity) * self.geo.record_len;
        // SAFETY: `pos % R < R`: inside the ring area of the validated object area.
        unsafe { NonNull::new_unchecked(self.seg.object_ptr().as_ptr().add(off as usize)) }
    }

    /// The record of staged message number `n` of area `p`.
    fn stage_record(&self, p: usize, n: u64) -> NonNull<u8> {
        assert!(
            (p as u64) < self.geo.stages,
            "staging area index out of range"
        );
        let index = p as u64 * self.geo.stage_capacity + n % self.geo.stage_capacity;
        let off = self.geo.stage_records_offset + index * self.geo.record_len;
        // SAFETY: `p < P` and `n % S < S`: inside the staging records of the object area.
        unsafe { NonNull::new_unchecked(self.seg.object_ptr().as_ptr().add(off as usize)) }
    }

    fn head_of(&self, at: NonNull<u8>) -> &RecordHead {
        // SAFETY: `at` comes from `ring_record`/`stage_record` of `self`: a record inside the
        // mapping `self.seg` keeps alive, 8-aligned (all offsets and L are multiples of 8), at
        // least RECORD_HEAD_LEN bytes; atomics accept any bit pattern.
        unsafe { &*at.as_ptr().cast::<RecordHead>() }
    }

    /// Writes `rec` into the record at `at`. The caller owns that record (stage owner beyond
    /// `staged`, or ring-lock holder beyond `tail`).
    fn write_record(&self, at: NonNull<u8>, rec: &Record) {
        let len = rec.text.len().min(self.geo.text_len as usize);
        let h = self.head_of(at);
        h.seq.store(rec.seq, Ordering::Relaxed);
        h.origin_seq.store(rec.origin_seq, Ordering::Relaxed);
        h.time_ns.store(rec.time_ns, Ordering::Relaxed);
        h.pid.store(rec.pid, Ordering::Relaxed);
        h.tid.store(rec.tid, Ordering::Relaxed);
        h.len.store(len as u32, Ordering::Relaxed);
        h.flags.store(rec.flags, Ordering::Relaxed);
        // SAFETY: the text area is `text_len` bytes after the head, inside the record;
        // `len <= text_len`; the caller owns the record (see above); `rec.text` is private.
        unsafe {
            core::ptr::copy_nonoverlapping(
                rec.text.as_ptr(),
                at.as_ptr().add(RECORD_TEXT_OFFSET),
                len,
            )
        };
        h.check.store(rec.checksum(), Ordering::Relaxed);
    }

    /// Copies the record at `at` out and validates it; `None` if it is garbage.
    fn read_record(&self, at: NonNull<u8>, expect_seq: u64) -> Option<Record> {
        let h = self.head_of(at);
        let len = h.len.load(Ordering::Relaxed) as u64;
        let flags = h.flags.load(Ordering::Relaxed);
        let seq = h.seq.load(Ordering::Relaxed);
        if len > self.geo.text_len || flags & !KNOWN_FLAGS != 0 || seq != expect_seq {
            return None;
        }
        let mut text = vec![0u8; len as usize];
        // SAFETY: `len <= text_len` (checked above): the bytes are inside the record; `text` is
        // a private buffer of exactly `len` bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(
                at.as_ptr().add(RECORD_TEXT_OFFSET),
                text.as_mut_ptr(),
                len as usize,
            )
        };
        let rec = Record {
            seq,
            origin_seq: h.origin_seq.load(Ordering::Relaxed),
            time_ns: h.time_ns.load(Ordering::Relaxed),
            pid: h.pid.load(Ordering::Relaxed),
            tid: h.tid.load(Ordering::Relaxed),
            flags,
            text,
        };
        (rec.checksum() == h.check.load(Ordering::Relaxed)).then_some(rec)
    }

    /// The staging area of participant `me`.
    fn slot_of(&self, me: Token) -> Result<usize, RingError> {
        let idx = (me & TOKEN_INDEX_MASK) as u64;
        if idx == 0 || idx > self.geo.stages {
            return Err(RingError::Corrupted(format!(
                "participant token {me:#x} names no staging area"
            )));
        }
        Ok(idx as usize - 1)
    }

    fn cx(&self) -> LockCx<'_> {
        LockCx {
            parts: self.seg.participants(),
            scope: Scope::Shared,
            op: "SharedLog ring lock",
            recover: true,
        }
    }

    fn holding(&self) -> bool {
        let key = self.key();
        HOLDING
            .try_with(|h| h.borrow().iter().any(|e| e.0 == key))
            .unwrap_or(false)
    }

    fn push_holding(&self) {
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
    fn lock(&self, me: Token, tls_ok: bool) -> Result<RingGuard<'_>, RingError> {
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
    fn try_lock(&self, me: Token) -> Option<RingGuard<'_>> {
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

    fn lock_polling(&self, me: Token) -> Result<Option<Who>, RingError> {
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
    fn acquired(&self, recovered: Option<Who>) -> RingGuard<'_> {
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
    fn ring_state(&self) -> Result<(u64, u64), RingError> {
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
    fn settle_journal(&self) {
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
    fn deliver_stage(&self, p: usize, rescued: bool) -> Result<Step, RingError> {
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
    fn append_locked(&self, rec: &Record) -> Result<(), RingError> {
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
    fn rescue_locked(&self) -> Result<Rescued, RingError> {
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

    /// Lock held: moves `me`'s staged messages (its area, and this thread's private stage for
    /// this handle) to the ring.
    fn flush_locked(&self, e: &mut Entry) -> Result<(), RingError> {
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

    fn flush_entry(&self, e: &mut Entry, tls_ok: bool) -> Result<(), RingError> {
        let _g = self.lock(e.me, tls_ok)?;
        self.flush_locked(e)
    }

    /// First use of staging area `p` by `me`: a previous owner's undelivered messages are
    /// delivered first (under a lock only if the ring lock is free: they stay ahead of ours).
    fn claim_stage(&self, me: Token, p: usize, deferred: bool) {
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

    fn make_record(&self, p: usize, text: &str, staged: bool) -> Record {
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
    fn stage_shared(&self, p: usize, rec: &Record) -> Result<(), RingError> {
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
    fn register(self: &Arc<Self>, me: Token, rec: Option<Record>) -> Result<(), RingError> {
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
    fn take_entry(self: &Arc<Self>, me: Token) -> Entry {
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
    fn put_back(e: Entry) {
        if e.private.is_empty() && e.inner.stage_empty(e.me) {
            return;
        }
        let _ = REGISTRY.try_with(|r| r.borrow_mut().0.insert(0, e));
    }

    fn stage_empty(&self, me: Token) -> bool {
        self.slot_of(me).map_or(true, |p| {
            let sh = self.stage(p);
            sh.staged.load(Ordering::Acquire) == sh.delivered.load(Ordering::Acquire)
        })
    }
}

/// A shared message ring with per-participant staging in a named segment (see the module docs
/// for the layout and the protocol). Cheap to clone; usable from any thread and any process.
#[derive(Clone)]
pub struct SharedLog {
    inner: Arc<Inner>,
}

impl fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLog")
            .field("name", self.inner.seg.name())
            .field("layout", &self.inner.geo)
            .field("private_staging", &self.inner.private_staging)
            .finish()
    }
}

impl SharedLog {
    /// Creates a message ring of `ring_capacity` records of up to `text_len` text bytes, with a
    /// staging area of `stage_capacity` records for each of the default number of participant
    /// slots ([`DEFAULT_PARTICIPANTS`]).
    pub fn create(
        name: &ShmName,
        ring_capacity: usize,
        text_len: usize,
        stage_capacity: usize,
    ) -> Result<SharedLog, ShmError> {
        Self::create_with(
            name,
            ring_capacity,
            text_len,
            stage_capacity,
            DEFAULT_PARTICIPANTS,
        )
    }

    /// [`SharedLog::create`] with `participants` slots (and as many staging areas).
    pub fn create_with(
        name: &ShmName,
        ring_capacity: usize,
        text_len: usize,
        stage_capacity: usize,
        participants: u32,
    ) -> Result<SharedLog, ShmError> {
        let mut params = [0u64; 4];
        params[PARAM_RING_CAPACITY] = ring_capacity as u64;
        params[PARAM_TEXT_LEN] = text_len as u64;
        params[PARAM_STAGE_CAPACITY] = stage_capacity as u64;
        params[PARAM_STAGES] = u64::from(participants);
        let geo = RingLayout::from_params(&params).ok_or_else(|| {
            ShmError::Invalid(format!(
                "message ring parameters out of range: ring capacity {ring_capacity} (1..={MAX_RING_CAPACITY}), \
                 text length {text_len} ({MIN_TEXT_LEN}..={MAX_TEXT_LEN}), staging capacity \
                 {stage_capacity} (1..={MAX_STAGE_CAPACITY}), participants {participants} \
                 (1..={MAX_PARTICIPANTS}), object at most {MAX_OBJECT_LEN} bytes"
            ))
        })?;
        let layout = Layout {
            kind: Kind::MessageRing,
            participants,
            params,
            object_len: geo.object_len,
        };
        FLUSH_RING_STAGES.install();
        let log = SharedLog {
            inner: Arc::new(Inner {
                seg: Segment::create(name, layout)?,
                geo,
                private_staging: false,
            }),
        };
        log.rescue_if_lock_free();
        Ok(log)
    }

    /// Opens the message ring `name` and rescues the staged messages of dead participants.
    pub fn open(name: &ShmName) -> Result<SharedLog, ShmError> {
        let seg = Segment::open_object(name, Kind::MessageRing, object_len)?;
        let layout = *seg.layout();
        let geo = RingLayout::from_params(&layout.params)
            .ok_or_else(|| ShmError::Corrupted("message ring parameters are invalid".into()))?;
        if geo.stages != u64::from(layout.participants) {
            return Err(ShmError::Corrupted(format!(
                "message ring has {} staging areas for {} participant slots",
                geo.stages, layout.participants
            )));
        }
        FLUSH_RING_STAGES.install();
        let log = SharedLog {
            inner: Arc::new(Inner {
                seg,
                geo,
                private_staging: false,
            }),
        };
        log.rescue_if_lock_free();
        Ok(log)
    }

    /// Negative control "staged message lost when the process dies" (seed 001's buffered
    /// `cm_msg`): messages logged under a lock are staged in process-private memory (a
    /// thread-local list) instead of the segment. Nothing is lost while nobody dies; a process
    /// killed before its outermost release loses them, and no rescue can find them.
    pub fn with_private_staging(self) -> SharedLog {
        SharedLog {
            inner: Arc::new(Inner {
                seg: self.inner.seg.clone(),
                geo: self.inner.geo,
                private_staging: true,
            }),
        }
    }

    /// The segment (name, participants, unlink).
    pub fn segment(&self) -> &Segment {
        &self.inner.seg
    }

    /// Where everything is in the object area.
    pub fn ring_layout(&self) -> RingLayout {
        self.inner.geo
    }

    /// Logs `text` (cut to the record's text length, see [`TRUNCATION_MARKER`]). If the calling
    /// thread holds a tracked lock (or the ring lock), the message is staged in its own staging
    /// area and committed with one store; otherwise the thread's staged messages are flushed
    /// first and the message is appended to the ring. [`RingError::Overflow`]: dropped and
    /// counted (the next drain reports it).
    pub fn log(&self, text: impl Into<String>) -> Result<(), RingError> {
        let text = text.into();
        let inner = &self.inner;
        let me = inner.seg.me()?;
        let p = inner.slot_of(me)?;
        let deferred = held_depth() > 0 || inner.holding();
        inner.claim_stage(me, p, deferred);
        let rec = inner.make_record(p, &text, deferred);
        if deferred {
            return if inner.private_staging {
                inner.register(me, Some(rec))
            } else {
                let r = inner.stage_shared(p, &rec);
                // Without the registry entry (thread exiting) the message is still safe in the
                // segment: the next direct log, flush or rescue delivers it.
                let _ = inner.register(me, None);
                r
            };
        }
        let mut e = inner.take_entry(me);
        let result = (|| {
            let _g = inner.lock(me, true)?;
            inner.flush_locked(&mut e)?;
            inner.append_locked(&rec)
        })();
        Inner::put_back(e);
        result
    }

    /// Moves the calling thread's staged messages to the ring now, unless it holds a tracked
    /// lock or the ring lock (then they move at the outermost release).
    pub fn flush(&self) -> Result<(), RingError> {
        let inner = &self.inner;
        if held_depth() > 0 || inner.holding() {
            return Ok(());
        }
        let me = inner.seg.me()?;
        let mut e = inner.take_entry(me);
        let result = inner.flush_entry(&mut e, true);
        Inner::put_back(e);
        result
    }

    /// Removes up to `max` messages from the ring, in order, with the number of messages lost
    /// (and of corrupt records skipped) since the previous drain.
    pub fn drain(&self, max: usize) -> Result<Drained, RingError> {
        let inner = &self.inner;
        let me = inner.seg.me()?;
        let _g = inner.lock(me, true)?;
        let (head, tail) = inner.ring_state()?;
        let h = inner.hdr();
        let n = (tail - head).min(max as u64);
        let mut out = Drained::default();
        let mut corrupt_here = 0;
        for pos in head..head + n {
            match inner
                .read_record(inner.ring_record(pos), pos)
                .and_then(Record::into_message)
            {
                Some(m) => out.messages.push(m),
                None => corrupt_here += 1,
            }
        }
        // The commit.
        h.head.store(head + n, Ordering::Release);
        crash_point();
        let corrupt = h.corrupt.load(Ordering::Relaxed).wrapping_add(corrupt_here);
        h.corrupt.store(corrupt, Ordering::Relaxed);
        let lost = h
            .lost
            .load(Ordering::Relaxed)
            .wrapping_add(h.stage_lost.load(Ordering::Relaxed));
        out.lost = lost.saturating_sub(h.lost_seen.swap(lost, Ordering::Relaxed));
        out.corrupt = corrupt.saturating_sub(h.corrupt_seen.swap(corrupt, Ordering::Relaxed));
        Ok(out)
    }

    /// Messages dropped so far because the ring or a staging area was full (all participants).
    pub fn overflowed(&self) -> u64 {
        let h = self.inner.hdr();
        h.lost
            .load(Ordering::Relaxed)
            .wrapping_add(h.stage_lost.load(Ordering::Relaxed))
    }

    /// Messages in the ring now (a snapshot; 0 if the indices are corrupted).
    pub fn pending(&self) -> u64 {
        self.inner.ring_state().map_or(0, |(h, t)| t - h)
    }

    /// Takeovers of the ring lock from dead owners so far.
    pub fn recoveries(&self) -> u64 {
        self.inner.hdr().recoveries.load(Ordering::Relaxed)
    }

    /// Flush steps a dead lock holder left half-done that were settled (completed or undone)
    /// so far.
    pub fn settled_steps(&self) -> u64 {
        self.inner.hdr().settled.load(Ordering::Relaxed)
    }

    /// Delivers, in order and exactly once, the staged messages of every dead participant, then
    /// frees the dead participants' slots. Runs automatically on `open`/`create` (unless a live
    /// participant holds the ring lock) and whenever the ring lock is taken over from a dead
    /// owner; the result includes such an automatic rescue done while taking the lock for this
    /// call.
    pub fn rescue_dead(&self) -> Result<Rescued, RingError> {
        let inner = &self.inner;
        let me = inner.seg.me()?;
        let g = inner.lock(me, true)?;
        let mut r = g.rescued;
        r.add(inner.rescue_locked()?);
        Ok(r)
    }
}

impl SharedLog {
    /// [`SharedLog::rescue_dead`] if the ring lock is free or its owner is dead; never waits
    /// (attaching must not stall behind a live, e.g. stopped, lock holder).
    fn rescue_if_lock_free(&self) {
        let inner = &self.inner;
        let Ok(me) = inner.seg.me() else { return };
        let g = match inner.try_lock(me) {
            Some(g) => g,
            None => match inner.hdr().lock.try_take_over(&inner.cx(), me) {
                // Taking over rescues (see `acquired`).
                Some(Acquired::Recovered(who)) => inner.acquired(Some(who)),
                _ => return,
            },
        };
        if g.outer {
            let _ = inner.rescue_locked();
        }
    }
}

impl crate::traits::LogApi for SharedLog {
    fn log(&self, text: String) {
        let _ = SharedLog::log(self, text);
    }

    fn flush(&self) {
        let _ = SharedLog::flush(self);
    }

    /// Holds the ring lock while `f` runs (messages `f` logs are staged and move to the ring at
    /// the release). If the lock cannot be had within [`LOCK_TIMEOUT`], `f` runs anyway.
    fn under_sink_lock(&self, f: &mut dyn FnMut()) {
        let inner = &self.inner;
        match inner.seg.me() {
            Ok(me) => match inner.lock(me, true) {
                Ok(g) => {
                    f();
                    drop(g);
                }
                Err(_) => f(),
            },
            Err(_) => f(),
        }
        let _ = SharedLog::flush(self);
    }
}
