//! The entries of the shared lock-order graph and the state word each starts with: who is
//! writing or wrote it, packed so that one CAS claims it and one store commits it.
//!
//! | bits   | meaning                                                              |
//! |--------|----------------------------------------------------------------------|
//! | 62–63  | tag: `0` FREE, `1` WRITING, `2` SET, `3` invalid (garbage)            |
//! | 22–61  | start time of the writing process (clock ticks since boot), 0 = unknown |
//! | 0–21   | pid of the writing process (Linux pids are below 2²²)                 |
//!
//! FREE is the all-zero word; any other word with tag 0 is garbage. Transitions:
//! `FREE → WRITING(me)` by CAS (the claim), then the text is written, then `WRITING(me) →
//! SET(me)` with one store (the commit). SET is final. The pid *and* start time make the writer's
//! identity unique for the life of the machine, so a reused pid is never taken for a dead writer.

use super::{CLASS_ENTRY_LEN, EDGE_ENTRY_LEN, ELLIPSIS, LOCATION_BYTES, NAME_BYTES};
use crate::shm::identity::{process_exists, Identity};
use crate::shm::ShmError;
use crate::sync::atomic::{AtomicU64, Ordering};

pub(super) const WORD: usize = core::mem::size_of::<u64>();
pub(super) const NAME_WORDS: usize = NAME_BYTES / WORD;
pub(super) const LOCATION_WORDS: usize = LOCATION_BYTES / WORD;

pub(super) const TAG_SHIFT: u32 = 62;
pub(super) const TAG_FREE: u64 = 0;
pub(super) const TAG_WRITING: u64 = 1;
pub(super) const TAG_SET: u64 = 2;
pub(super) const PID_BITS: u32 = 22;
pub(super) const START_BITS: u32 = 40;
pub(super) const PID_MASK: u64 = (1 << PID_BITS) - 1;
pub(super) const START_MASK: u64 = (1 << START_BITS) - 1;

/// One class entry.
#[repr(C, align(64))]
pub(super) struct ClassEntry {
    pub(super) state: AtomicU64,
    pub(super) name: [AtomicU64; NAME_WORDS],
}

/// One edge entry.
#[repr(C, align(64))]
pub(super) struct EdgeEntry {
    pub(super) state: AtomicU64,
    /// This crate's thread number ([`crate::sync::current_thread_id`]) in the writing process.
    pub(super) thread: AtomicU64,
    /// Kernel tid of the acquiring thread.
    pub(super) tid: AtomicU64,
    /// Where the held lock, then the new one, was acquired.
    pub(super) at: [[AtomicU64; LOCATION_WORDS]; 2],
}

const _: () = assert!(core::mem::size_of::<ClassEntry>() == CLASS_ENTRY_LEN);
const _: () = assert!(core::mem::size_of::<EdgeEntry>() == EDGE_ENTRY_LEN);
const _: () = assert!(NAME_BYTES % WORD == 0 && LOCATION_BYTES % WORD == 0);

/// The process that wrote an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Writer {
    pub(super) pid: u32,
    /// Low 40 bits of the start time, 0 if unknown.
    pub(super) start: u64,
}

impl Writer {
    pub(super) fn is_alive(self) -> bool {
        if self.start == 0 {
            return process_exists(self.pid);
        }
        Identity {
            pid: self.pid,
            tid: 0,
            pid_start: self.start,
            tid_start: 0,
        }
        .is_alive()
    }

    pub(super) fn word(self, tag: u64) -> u64 {
        (tag << TAG_SHIFT)
            | ((self.start & START_MASK) << PID_BITS)
            | (u64::from(self.pid) & PID_MASK)
    }
}

/// A decoded state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    Free,
    Writing(Writer),
    Set(Writer),
    Garbage,
}

pub(super) fn decode(w: u64) -> State {
    let writer = Writer {
        pid: (w & PID_MASK) as u32,
        start: (w >> PID_BITS) & START_MASK,
    };
    match w >> TAG_SHIFT {
        TAG_FREE if w == 0 => State::Free,
        TAG_WRITING if writer.pid != 0 => State::Writing(writer),
        TAG_SET if writer.pid != 0 => State::Set(writer),
        _ => State::Garbage,
    }
}

/// This process as an entry writer.
pub(super) fn current_writer() -> Result<Writer, ShmError> {
    let id = Identity::current_process();
    if u64::from(id.pid) > PID_MASK {
        return Err(ShmError::Invalid(format!(
            "pid {} does not fit the shared lock-order graph's {PID_BITS}-bit field",
            id.pid
        )));
    }
    Ok(Writer {
        pid: id.pid,
        // A start time beyond 40 bits (over 300 years of uptime) is stored as "unknown".
        start: if id.pid_start > START_MASK {
            0
        } else {
            id.pid_start
        },
    })
}

/// `text` in words, NUL-padded (the caller made sure it fits).
pub(super) fn pack<const W: usize>(text: &[u8]) -> [u64; W] {
    let mut out = [0u64; W];
    for (w, chunk) in out.iter_mut().zip(text.chunks(WORD)) {
        let mut b = [0u8; WORD];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    out
}

/// The text stored in `words`, up to the first NUL, lossily decoded.
pub(super) fn unpack(words: &[AtomicU64]) -> String {
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `text` cut to [`LOCATION_BYTES`], keeping its tail (the file name and line) and marking the
/// cut; NULs (which would end the text early) become `?`.
pub(super) fn keep_tail(text: &str) -> String {
    let text = text.replace('\0', "?");
    if text.len() <= LOCATION_BYTES {
        return text;
    }
    let mut start = text.len() - (LOCATION_BYTES - ELLIPSIS.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{ELLIPSIS}{}", &text[start..])
}
