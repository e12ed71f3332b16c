//! Where everything is in a message ring's object area, and the records the ring and the
//! staging areas hold.
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

use super::{Inner, RingError, RingMessage};
use crate::shm::{RobustWord, Token, MAX_PARTICIPANTS};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::mem::{offset_of, size_of};
use core::ptr::NonNull;

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

/// Index of each parameter in the segment header's parameter array.
pub const PARAM_RING_CAPACITY: usize = 0;
/// See [`PARAM_RING_CAPACITY`].
pub const PARAM_TEXT_LEN: usize = 1;
/// See [`PARAM_RING_CAPACITY`].
pub const PARAM_STAGE_CAPACITY: usize = 2;
/// See [`PARAM_RING_CAPACITY`]: the number of staging areas (= participant slots).
pub const PARAM_STAGES: usize = 3;

/// Record flags.
pub(super) const FLAG_TRUNCATED: u32 = 1;
pub(super) const FLAG_STAGED: u32 = 2;
pub(super) const FLAG_RESCUED: u32 = 4;
pub(super) const KNOWN_FLAGS: u32 = FLAG_TRUNCATED | FLAG_STAGED | FLAG_RESCUED;

/// Journal states (an unlikely bit pattern for `ACTIVE`, so garbage is rarely taken for it).
pub(super) const JOURNAL_IDLE: u64 = 0;
pub(super) const JOURNAL_ACTIVE: u64 = u64::from_le_bytes(*b"RINGJRNL");

/// Low bits of a participant token: slot index + 1.
pub(super) const TOKEN_INDEX_MASK: u32 = 0xffff;
/// Records and their fields are 8-aligned.
pub(super) const RECORD_ALIGN: u64 = 8;
pub(super) const NANOS_PER_SEC: u64 = 1_000_000_000;
pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub(super) const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The ring header at offset 0 of the object area (`#[repr(C)]`; all zero = empty, unlocked).
#[repr(C, align(64))]
pub(super) struct RingHeader {
    pub(super) lock: RobustWord,
    pub(super) _pad: AtomicU32,
    pub(super) head: AtomicU64,
    pub(super) tail: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) stage_lost: AtomicU64,
    pub(super) lost_seen: AtomicU64,
    pub(super) corrupt: AtomicU64,
    pub(super) corrupt_seen: AtomicU64,
    pub(super) recoveries: AtomicU64,
    /// Flush steps left half-done by a dead lock holder and settled (completed or undone).
    pub(super) settled: AtomicU64,
    pub(super) journal: Journal,
}

/// The redo/undo journal of one flush step.
#[repr(C)]
pub(super) struct Journal {
    pub(super) state: AtomicU64,
    pub(super) slot: AtomicU64,
    pub(super) delivered0: AtomicU64,
    pub(super) count: AtomicU64,
    pub(super) tail0: AtomicU64,
    pub(super) lost0: AtomicU64,
    pub(super) corrupt0: AtomicU64,
}

/// One participant slot's staging header.
#[repr(C, align(64))]
pub(super) struct StageHeader {
    pub(super) owner: AtomicU32,
    pub(super) _pad: AtomicU32,
    pub(super) staged: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) next_origin_seq: AtomicU64,
}

/// The fixed part of a record; the text follows.
#[repr(C)]
pub(super) struct RecordHead {
    pub(super) seq: AtomicU64,
    pub(super) origin_seq: AtomicU64,
    pub(super) time_ns: AtomicU64,
    pub(super) pid: AtomicU32,
    pub(super) tid: AtomicU32,
    pub(super) len: AtomicU32,
    pub(super) flags: AtomicU32,
    pub(super) check: AtomicU64,
}

pub(super) const RING_HEADER_LEN: u64 = size_of::<RingHeader>() as u64;
pub(super) const STAGE_HEADER_LEN: u64 = size_of::<StageHeader>() as u64;
pub(super) const RECORD_HEAD_LEN: u64 = size_of::<RecordHead>() as u64;
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

/// A message in private memory (before it is written to, or after it is read from, a record).
#[derive(Clone, Debug)]
pub(super) struct Record {
    pub(super) seq: u64,
    pub(super) origin_seq: u64,
    pub(super) time_ns: u64,
    pub(super) pid: u32,
    pub(super) tid: u32,
    pub(super) flags: u32,
    pub(super) text: Vec<u8>,
}

pub(super) fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

impl Record {
    pub(super) fn checksum(&self) -> u64 {
        let mut h = FNV_OFFSET;
        for v in [self.seq, self.origin_seq, self.time_ns] {
            h = fnv(h, &v.to_le_bytes());
        }
        for v in [self.pid, self.tid, self.text.len() as u32, self.flags] {
            h = fnv(h, &v.to_le_bytes());
        }
        fnv(h, &self.text)
    }

    pub(super) fn into_message(self) -> Option<RingMessage> {
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
pub(super) fn fit(text: &str, max: usize) -> (Vec<u8>, bool) {
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
pub(super) fn monotonic_ns() -> u64 {
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

impl Inner {
    pub(super) fn hdr(&self) -> &RingHeader {
        // SAFETY: the object area starts with a 64-aligned RingHeader (validated layout; the
        // area is at least RING_HEADER_LEN bytes); any bit pattern of its atomics is valid; it
        // lives as long as `self.seg`.
        unsafe { &*self.seg.object_ptr().as_ptr().cast::<RingHeader>() }
    }

    /// Address of the ring header in this process (identifies the mapping).
    pub(super) fn key(&self) -> usize {
        self.seg.object_ptr().as_ptr() as usize
    }

    pub(super) fn stage(&self, p: usize) -> &StageHeader {
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
    pub(super) fn ring_record(&self, pos: u64) -> NonNull<u8> {
        let off = self.geo.ring_offset + (pos % self.geo.ring_capacity) * self.geo.record_len;
        // SAFETY: `pos % R < R`: inside the ring area of the validated object area.
        unsafe { NonNull::new_unchecked(self.seg.object_ptr().as_ptr().add(off as usize)) }
    }

    /// The record of staged message number `n` of area `p`.
    pub(super) fn stage_record(&self, p: usize, n: u64) -> NonNull<u8> {
        assert!(
            (p as u64) < self.geo.stages,
            "staging area index out of range"
        );
        let index = p as u64 * self.geo.stage_capacity + n % self.geo.stage_capacity;
        let off = self.geo.stage_records_offset + index * self.geo.record_len;
        // SAFETY: `p < P` and `n % S < S`: inside the staging records of the object area.
        unsafe { NonNull::new_unchecked(self.seg.object_ptr().as_ptr().add(off as usize)) }
    }

    pub(super) fn head_of(&self, at: NonNull<u8>) -> &RecordHead {
        // SAFETY: `at` comes from `ring_record`/`stage_record` of `self`: a record inside the
        // mapping `self.seg` keeps alive, 8-aligned (all offsets and L are multiples of 8), at
        // least RECORD_HEAD_LEN bytes; atomics accept any bit pattern.
        unsafe { &*at.as_ptr().cast::<RecordHead>() }
    }

    /// Writes `rec` into the record at `at`. The caller owns that record (stage owner beyond
    /// `staged`, or ring-lock holder beyond `tail`).
    pub(super) fn write_record(&self, at: NonNull<u8>, rec: &Record) {
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
    pub(super) fn read_record(&self, at: NonNull<u8>, expect_seq: u64) -> Option<Record> {
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
    pub(super) fn slot_of(&self, me: Token) -> Result<usize, RingError> {
        let idx = (me & TOKEN_INDEX_MASK) as u64;
        if idx == 0 || idx > self.geo.stages {
            return Err(RingError::Corrupted(format!(
                "participant token {me:#x} names no staging area"
            )));
        }
        Ok(idx as usize - 1)
    }
}
