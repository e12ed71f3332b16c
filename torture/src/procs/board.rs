//! The status board: a shared-memory segment (one per crew) where every worker publishes what
//! it is doing — pid, incarnation, the operation it is inside and on what object, since when,
//! the locks it holds, its last operations — so that the runner's hang reports read the state
//! of every participant from one place, live, without parsing files.
//!
//! The board is written through the ledger's [`super::ledger::Writer`] (its observer, set by
//! [`super::WorkerArgs::writer`]): every record a worker writes to its ledger file is also
//! published in its slot (slot = the worker's index in the crew,
//! stable across respawns). The ledger file stays the durable history the end-of-run checks
//! read; the board is the live view. A worker whose slot is beyond the board's capacity, or
//! that cannot open the board, simply has no slot: reports fall back to its ledger's last
//! record.
//!
//! ## Slot layout (256 B, atomics only; written by its worker only)
//! | field | meaning |
//! |---|---|
//! | `seq` | a seqlock: odd while the worker writes the slot |
//! | `pid`, `id` | the worker process and its incarnation |
//! | `inside` | the operation begun and not yet ended (`Op` code + 1; 0: between operations) |
//! | `object`, `since_ns` | its value / lock id (`u64::MAX`: none), when it began |
//! | `held` | bit `k` set: lock `k` held (locks `0..64`, nesting counted separately) |
//! | `depth` | locks held, nesting included |
//! | `last` | the last [`LAST`] records, as (kind, op, object) triples, newest at `count % LAST` |
//!
//! A reader copies the slot between two equal even `seq` reads (retrying a few times), so it
//! never reports a torn mix of two records; a worker killed mid-write leaves `seq` odd, and the
//! slot is read as it is, marked "cut".

use super::ledger::{Op, Record};
use primitives::shm::{Kind, Layout, Segment, ShmError, ShmName};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Records kept per slot.
pub const LAST: usize = 8;
/// Records shown per worker in a report line.
const SHOWN: usize = 4;
/// Slots of a crew's board (workers past this many have none).
pub const SLOTS: usize = 1024;
const SLOT_LEN: u64 = 256;
/// Participant slots of the board segment (one per worker process opening it, reaped when
/// dead).
const PARTICIPANTS: u32 = 1100;
const NONE: u64 = u64::MAX;
const _: () = assert!(std::mem::size_of::<Slot>() as u64 <= SLOT_LEN && SLOT_LEN % 64 == 0);

#[repr(C, align(64))]
#[derive(Default)]
struct Slot {
    seq: AtomicU64,
    pid: AtomicU32,
    id: AtomicU32,
    inside: AtomicU32,
    depth: AtomicU32,
    object: AtomicU64,
    since_ns: AtomicU64,
    held: AtomicU64,
    count: AtomicU64,
    /// `LAST` × (kind << 8 | op code, object).
    last: [[AtomicU64; 2]; LAST],
}

/// The object length of a board of `params[0]` slots.
pub fn object_len(params: &[u64; 4]) -> Option<u64> {
    let n = params[0];
    (n > 0 && n <= SLOTS as u64 && params[1..].iter().all(|p| *p == 0)).then_some(n * SLOT_LEN)
}

/// A crew's board (the runner's handle, or a worker's).
pub struct Board {
    seg: Segment,
    slots: usize,
}

impl Board {
    /// Creates a board of [`SLOTS`] slots.
    pub fn create(name: &ShmName) -> Result<Board, ShmError> {
        let params = [SLOTS as u64, 0, 0, 0];
        let seg = Segment::create(
            name,
            Layout {
                kind: Kind::Board,
                participants: PARTICIPANTS,
                params,
                object_len: SLOTS as u64 * SLOT_LEN,
            },
        )?;
        Ok(Board { seg, slots: SLOTS })
    }

    /// Opens board `name` (header and size checked).
    pub fn open(name: &ShmName) -> Result<Board, ShmError> {
        let seg = Segment::open_object(name, Kind::Board, object_len)?;
        let slots = seg.layout().params[0] as usize;
        Ok(Board { seg, slots })
    }

    /// Its segment.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    fn slot(&self, i: usize) -> Option<&Slot> {
        (i < self.slots).then(|| {
            // SAFETY: i < slots, so the slot lies inside the object area (object_len, SLOT_LEN >=
            // size_of::<Slot>(), checked at compile time below); the area is 64-aligned and
            // SLOT_LEN a multiple of Slot's alignment (64); Slot is atomics only, valid for any
            // bytes; the mapping lives as long as `self.seg`.
            unsafe {
                &*self
                    .seg
                    .object_ptr()
                    .as_ptr()
                    .add(i * SLOT_LEN as usize)
                    .cast::<Slot>()
            }
        })
    }

    /// Claims slot `i` for the calling worker (incarnation `id`): resets it. `false`: no such
    /// slot.
    pub fn claim(&self, i: usize, id: u32) -> bool {
        let Some(s) = self.slot(i) else {
            return false;
        };
        let seq = s.seq.load(Ordering::Relaxed) | 1;
        s.seq.store(seq, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        s.pid.store(std::process::id(), Ordering::Relaxed);
        s.id.store(id, Ordering::Relaxed);
        s.inside.store(0, Ordering::Relaxed);
        s.depth.store(0, Ordering::Relaxed);
        s.object.store(NONE, Ordering::Relaxed);
        s.since_ns.store(0, Ordering::Relaxed);
        s.held.store(0, Ordering::Relaxed);
        s.count.store(0, Ordering::Relaxed);
        s.seq.store(seq + 1, Ordering::Release);
        true
    }

    /// What slot `i` says, if it was ever claimed.
    pub fn read(&self, i: usize) -> Option<Status> {
        let s = self.slot(i)?;
        let mut cut = true;
        let mut st = Status::default();
        for _ in 0..16 {
            let before = s.seq.load(Ordering::Acquire);
            st = Status::copy(s);
            std::sync::atomic::fence(Ordering::Acquire);
            if before % 2 == 0 && s.seq.load(Ordering::Relaxed) == before {
                cut = false;
                break;
            }
            std::thread::yield_now();
        }
        st.cut = cut;
        (st.pid != 0).then_some(st)
    }
}

impl Board {
    /// Publishes `r` (the record its worker just wrote to its ledger) in slot `i`.
    pub fn publish(&self, i: usize, r: &Record) {
        let Some(s) = self.slot(i) else {
            return;
        };
        let seq = s.seq.load(Ordering::Relaxed) | 1;
        s.seq.store(seq, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        let (kind, op, object) = encode(r);
        match *r {
            Record::Begin {
                op, id, start_ns, ..
            } => {
                s.inside.store(op.code() + 1, Ordering::Relaxed);
                s.object.store(id.unwrap_or(NONE), Ordering::Relaxed);
                s.since_ns.store(start_ns, Ordering::Relaxed);
            }
            Record::Done {
                op: Op::Lock, id, ..
            } => {
                s.inside.store(0, Ordering::Relaxed);
                s.depth.fetch_add(1, Ordering::Relaxed);
                if let Some(k) = id.filter(|k| *k < 64) {
                    s.held.fetch_or(1 << k, Ordering::Relaxed);
                }
            }
            Record::Released { op: Op::Lock } => {
                // Releases are innermost first; the ledger does not say which lock, so the held
                // set is exact only when the last one goes.
                let d = s.depth.load(Ordering::Relaxed).saturating_sub(1);
                s.depth.store(d, Ordering::Relaxed);
                if d == 0 {
                    s.held.store(0, Ordering::Relaxed);
                }
            }
            Record::Done { .. }
            | Record::TimedOut { .. }
            | Record::Refused { .. }
            | Record::Torn { .. } => s.inside.store(0, Ordering::Relaxed),
            _ => {}
        }
        let n = s.count.load(Ordering::Relaxed);
        let e = &s.last[n as usize % LAST];
        e[0].store((u64::from(kind) << 8) | u64::from(op), Ordering::Relaxed);
        e[1].store(object, Ordering::Relaxed);
        s.count.store(n + 1, Ordering::Relaxed);
        s.seq.store(seq + 1, Ordering::Release);
    }
}

/// Record kinds on the board.
const KINDS: [&str; 8] = [
    "begin",
    "done",
    "timeout",
    "refused",
    "released",
    "recovered",
    "torn",
    "?",
];

fn encode(r: &Record) -> (u8, u32, u64) {
    match *r {
        Record::Begin { op, id, .. } => (0, op.code(), id.unwrap_or(NONE)),
        Record::Done { op, id, .. } => (1, op.code(), id.unwrap_or(NONE)),
        Record::TimedOut { op, id } => (2, op.code(), id.unwrap_or(NONE)),
        Record::Refused { op, id } => (3, op.code(), id.unwrap_or(NONE)),
        Record::Released { op } => (4, op.code(), NONE),
        Record::Recovered { op, from } => (5, op.code(), u64::from(from)),
        Record::Torn { id } => (6, 0, id),
    }
}

/// One slot, as read.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// The worker process.
    pub pid: u32,
    /// Its incarnation.
    pub id: u32,
    /// The operation it is inside, on what, since when (CLOCK_MONOTONIC ns).
    pub inside: Option<(Op, Option<u64>, u64)>,
    /// Locks held (ids below 64) and the nesting depth.
    pub held: Vec<u64>,
    /// Locks held, nesting included.
    pub depth: u32,
    /// Its last records, oldest first, as text (`begin lock 1`, `done put 7`, ...).
    pub last: Vec<String>,
    /// The worker was killed while writing it (its last record may be half there).
    pub cut: bool,
}

impl Status {
    fn copy(s: &Slot) -> Status {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let inside = s.inside.load(Ordering::Relaxed);
        let count = r(&s.count);
        let first = count.saturating_sub(LAST as u64);
        let last = (first..count)
            .map(|n| {
                let e = &s.last[n as usize % LAST];
                let (code, object) = (r(&e[0]), r(&e[1]));
                let kind = KINDS[((code >> 8) as usize).min(KINDS.len() - 1)];
                let op = Op::from_code((code & 0xff) as u32).map_or("?", Op::name);
                if object == NONE {
                    format!("{kind} {op}")
                } else {
                    format!("{kind} {op} {object}")
                }
            })
            .collect();
        let held = r(&s.held);
        Status {
            pid: s.pid.load(Ordering::Relaxed),
            id: s.id.load(Ordering::Relaxed),
            inside: (inside > 0)
                .then(|| Op::from_code(inside - 1))
                .flatten()
                .map(|op| {
                    let o = r(&s.object);
                    (op, (o != NONE).then_some(o), r(&s.since_ns))
                }),
            held: (0..64).filter(|k| held >> k & 1 == 1).collect(),
            depth: s.depth.load(Ordering::Relaxed),
            last,
            cut: false,
        }
    }

    /// One line for a report: what it is inside and for how long, what it holds, its last
    /// operations.
    pub fn describe(&self, now_ns: u64) -> String {
        let mut s = match self.inside {
            Some((op, obj, since)) => format!(
                "inside {op}{} for {:.1} s",
                obj.map_or(String::new(), |o| format!(" {o}")),
                now_ns.saturating_sub(since) as f64 / 1e9
            ),
            None => "between operations".to_string(),
        };
        if self.depth > 0 {
            s += &format!(
                "; holds {} lock(s){}",
                self.depth,
                if self.held.is_empty() {
                    String::new()
                } else {
                    format!(
                        " [{}]",
                        self.held
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
        // The last few records keep a 128-worker report readable; the slot keeps LAST.
        let shown = &self.last[self.last.len().saturating_sub(SHOWN)..];
        if !shown.is_empty() {
            s += &format!("; last: {}", shown.join(", "));
        }
        if self.cut {
            s += " (killed while publishing)";
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_shows_the_operation_inside_the_locks_held_and_the_last_records() {
        let name = ShmName::unique("board-test");
        let board = Board::create(&name).expect("create a board");
        let _ = board.segment().unlink();
        assert!(board.claim(3, 7));
        let w = |r: &Record| board.publish(3, r);
        let begin = |op, id| Record::Begin {
            op,
            id,
            start_ns: 1,
            deadline_ns: None,
        };
        let done = |op, id| Record::Done {
            op,
            id,
            end_ns: None,
        };
        w(&begin(Op::Lock, Some(0)));
        w(&done(Op::Lock, Some(0)));
        w(&begin(Op::Lock, Some(2)));
        let s = board.read(3).expect("claimed");
        assert_eq!((s.pid, s.id), (std::process::id(), 7));
        assert_eq!(s.inside, Some((Op::Lock, Some(2), 1)));
        assert_eq!((s.held.clone(), s.depth), (vec![0], 1));
        assert_eq!(s.last, ["begin lock 0", "done lock 0", "begin lock 2"]);
        w(&done(Op::Lock, Some(2)));
        w(&Record::Released { op: Op::Lock });
        w(&Record::Released { op: Op::Lock });
        let s = board.read(3).expect("claimed");
        assert_eq!((s.inside, s.depth, s.held.len()), (None, 0, 0));
        for k in 0..20 {
            w(&done(Op::Put, Some(k)));
        }
        let s = board.read(3).expect("claimed");
        assert_eq!(s.last.len(), LAST);
        assert_eq!(s.last[LAST - 1], "done put 19");
        assert!(board.read(4).is_none(), "an unclaimed slot says nothing");
        assert!(board.read(SLOTS).is_none());
    }
}
