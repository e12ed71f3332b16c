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
//! The ring's parts: [`layout`] (where everything is, the records), [`journal`] (the ring lock
//! and the exactly-once flush step, its state table, recovery and memory-ordering notes) and
//! [`staging`] (per-participant staging areas and the thread's registry of them).
//!
//! **Never silent, never hung, never a panic.** A full ring or staging area drops the new
//! message, counts it, and the next [`SharedLog::drain`] reports how many were lost since the
//! previous one ([`Drained::lost`]). Every index and length read from the segment is
//! bounds-checked; a record that fails validation is skipped and counted
//! ([`Drained::corrupt`]); inconsistent ring indices give [`RingError::Corrupted`]. The ring
//! lock is taken with a deadline ([`LOCK_TIMEOUT`]).

pub mod journal;
pub mod layout;
pub mod staging;

pub use journal::LOCK_TIMEOUT;
pub use layout::{
    object_len, RingLayout, DELIVERED_OFFSET, HEAD_OFFSET, JOURNAL_ACTIVE_STATE, JOURNAL_OFFSET,
    JOURNAL_STATE_OFFSET, LOCK_OFFSET, MAX_OBJECT_LEN, MAX_RING_CAPACITY, MAX_STAGE_CAPACITY,
    MAX_TEXT_LEN, MIN_TEXT_LEN, OWNER_OFFSET, PARAM_RING_CAPACITY, PARAM_STAGES,
    PARAM_STAGE_CAPACITY, PARAM_TEXT_LEN, RECORD_LEN_OFFSET, RECORD_TEXT_OFFSET, STAGED_OFFSET,
    TAIL_OFFSET, TRUNCATION_MARKER,
};
pub use staging::flush_thread_staged;

use crate::shm::{
    crash_point, Acquired, Kind, Layout, Segment, ShmError, ShmName, DEFAULT_PARTICIPANTS,
    MAX_PARTICIPANTS,
};
use crate::sync::atomic::Ordering;
use crate::sync::BookArc as Arc;
use crate::track::held_depth;
use core::fmt;
use layout::Record;
use staging::FLUSH_RING_STAGES;

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

/// One process's view of a message ring (shared by the [`SharedLog`] handles made from it).
struct Inner {
    seg: Segment,
    geo: RingLayout,
    private_staging: bool,
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
