//! The lock-order graph in a shared-memory segment: what lets the validator follow lock classes
//! across processes.
//!
//! Seed 001 (MIDAS): one program took ODB then SYSMSG, another SYSMSG then ODB. Each process's
//! own validator only sees its own half, so neither could report the inversion. A validator made
//! with [`crate::lock::Validator::shared`] also writes every order edge it sees into this graph
//! and searches it, so the second process reports the inversion the first time it takes its
//! order — naming the other process's pid, thread and source locations — even though the two
//! never ran at the same time and nothing deadlocked.
//!
//! ## Layout (object area of a [`Kind::LockOrder`] segment; all zero = empty graph)
//! Parameter 0 is the class capacity `N` (`2..=`[`MAX_CLASSES`]); parameters 1–3 must be 0.
//!
//! | offset      | bytes          | what                                                  |
//! |-------------|----------------|-------------------------------------------------------|
//! | 0           | 64 × N         | class table: `N` × [`CLASS_ENTRY_LEN`] (state word, name)  |
//! | 64 N        | 320 × N × N    | edge matrix: entry `from * N + to` is the edge `from → to` |
//!
//! A **class entry** is a state word and the class name, up to [`NAME_BYTES`] bytes, NUL-padded.
//! Classes are identified across processes *by name*: registering a name that is in the table
//! returns its index.
//!
//! An **edge entry** is a state word, the acquiring thread (this crate's thread number and the
//! kernel tid) and the source locations (`file:line:col`, up to [`LOCATION_BYTES`] bytes each)
//! of the held lock and of the acquisition. The recording process is named by the state word.
//!
//! Every text field is a row of `AtomicU64`s (so concurrent readers and writers never race in
//! the language's sense); text is read back lossily (garbage becomes U+FFFD, never a panic).
//!
//! ## Claiming entries
//! Every entry starts with a state word naming its writer and whether it is FREE, WRITING or SET
//! (its bits and transitions are described with the entries, in `entry.rs`).
//!
//! **Registering a class** scans the table in index order. A SET entry with the same name is the
//! answer; a FREE entry is claimed; a WRITING entry of a live writer is *waited for* (at most
//! [`CLASS_WAIT`]) — it may be the same name, being registered concurrently, so it must not be
//! skipped: that is what gives two processes registering one new name at once one entry. The
//! loser of the claim CAS re-reads that same entry, waits for its commit and finds its name.
//!
//! **Recording an edge** claims a FREE entry; a SET entry or a live writer's WRITING entry is
//! left alone (someone else recorded the same order).
//!
//! ## Crash robustness
//! A process killed between claim and commit leaves an entry WRITING by a dead pid.
//! - *Edge:* the order was really attempted (an edge is recorded before the acquisition may
//!   block), so the path search counts it as **set, without details** — a report through it says
//!   "details lost: pid N died while recording". It is also **re-claimable**: the next process
//!   that sees the same order CASes `WRITING(dead) → WRITING(me)` and records its own details.
//! - *Class:* the half-written name is meaningless, so the entry is re-claimable the same way by
//!   the next registrant that reaches it (and skipped by the path search, which only ever
//!   follows edges).
//!
//! ## Hostile segment
//! The capacity comes from the checksummed header and was checked against the file's length
//! when the segment was opened; no index is ever read from shared memory (an entry's position
//! is its index), so every access is in bounds. A garbage state word (tag 3, or tag 0 with other
//! bits) is ignored: never matched, never claimed, never followed. A garbage pid is a dead
//! writer. Names are compared as raw words and printed lossily. Every loop is bounded (table
//! scans by `N`, path search by `N²` edge reads, waits by [`CLASS_WAIT`]), so no content of the
//! segment can make a validator panic or hang; the worst it can do is a spurious or missed
//! report.
//!
//! ## Notes about memory ordering
//! - Text is written with `Relaxed` stores and published by the `Release` commit store; readers
//!   load the state word with `Acquire` before reading text with `Relaxed` loads.
//! - Claims (CAS) and the state loads of the path search are `SeqCst`: two processes that record
//!   opposite edges at the same time and then each search for the other's form Dekker's pattern
//!   (store, then load the other's location). In the single total order of `SeqCst` operations
//!   the later of the two claims precedes its own search, which therefore sees the earlier claim:
//!   at least one of them reports the inversion.
//! - An edge still WRITING is followed by the search, so a report never waits for a commit.

mod entry;

use super::report::RemoteAcquisition;
use crate::shm::{Kind, Layout, Segment, ShmError, ShmName};
use crate::sync::atomic::Ordering;
use crate::sync::BookMutex as Mutex;
use core::fmt;
use entry::*;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Class capacity of a graph created by [`crate::lock::Validator::shared`].
pub const DEFAULT_CLASSES: usize = 64;
/// Largest class capacity (the edge matrix grows as its square).
pub const MAX_CLASSES: usize = 256;
/// Smallest class capacity (an order needs two classes).
pub const MIN_CLASSES: usize = 2;
/// Longest class name stored in the table, in bytes.
pub const NAME_BYTES: usize = 56;
/// Longest source location (`file:line:col`) stored in an edge, in bytes; longer ones keep their
/// tail, prefixed with [`ELLIPSIS`].
pub const LOCATION_BYTES: usize = 144;
/// Size of one class entry.
pub const CLASS_ENTRY_LEN: usize = 64;
/// Size of one edge entry.
pub const EDGE_ENTRY_LEN: usize = 320;
/// Longest wait for another process to finish writing a class entry.
pub const CLASS_WAIT: Duration = Duration::from_millis(250);
/// How long [`SharedGraph::create_or_open`] keeps retrying while another process is creating the
/// segment (name taken, header not yet written) or creating and unlinking it.
pub const CREATE_RACE_WAIT: Duration = Duration::from_secs(1);
/// Pause between two such retries.
const CREATE_RACE_SLEEP: Duration = Duration::from_millis(1);
/// Marks a location whose head was cut off.
pub const ELLIPSIS: &str = "...";

/// CAS attempts on one edge entry before giving up recording it (only a hostile writer can make
/// a claim fail more than once or twice).
const CLAIM_ATTEMPTS: usize = 16;
/// Waits for a class entry's writer start with this many yields before sleeping.
const WAIT_YIELDS: u32 = 64;
/// Sleep between two looks at a class entry being written.
const WAIT_SLEEP: Duration = Duration::from_micros(200);
/// Names read from shared graphs are interned (leaked) so that violations can hold
/// `&'static str`; beyond this many distinct names, [`TOO_MANY_NAMES`] is used instead.
const MAX_INTERNED: usize = 4096;
const TOO_MANY_NAMES: &str = "<class name not kept: too many distinct names>";

/// Object length of a lock-order graph with capacity `params[0]`; `None` if the parameters are
/// invalid.
pub fn object_len(params: &[u64; 4]) -> Option<u64> {
    let n = params[0];
    if n < MIN_CLASSES as u64 || n > MAX_CLASSES as u64 || params[1..].iter().any(|&p| p != 0) {
        return None;
    }
    Some(n * CLASS_ENTRY_LEN as u64 + n * n * EDGE_ENTRY_LEN as u64)
}

/// Why a class could not be registered in the shared table (the class is then tracked by the
/// local graph only; see [`crate::lock::Validator::class`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedError {
    /// The name does not fit in a class entry.
    NameTooLong {
        /// The name.
        name: String,
        /// Longest name stored, in bytes.
        max: usize,
    },
    /// Empty, or contains a NUL byte (NUL is the padding).
    BadName(String),
    /// Every entry holds another name.
    TableFull {
        /// The name that did not fit.
        name: String,
        /// Entries in the table.
        capacity: usize,
    },
    /// A live process kept an entry half-written for longer than [`CLASS_WAIT`].
    Busy {
        /// The name being registered.
        name: String,
        /// The entry.
        index: usize,
        /// Its writer.
        pid: u32,
    },
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedError::NameTooLong { name, max } => write!(
                f,
                "lock class {name:?} is longer than the {max} bytes the shared table stores"
            ),
            SharedError::BadName(name) => {
                write!(f, "lock class name {name:?} is empty or contains NUL")
            }
            SharedError::TableFull { name, capacity } => write!(
                f,
                "shared lock-class table is full ({capacity} classes): {name:?} not registered"
            ),
            SharedError::Busy { name, index, pid } => write!(
                f,
                "shared lock-class entry {index} stayed half-written by live pid {pid} for over \
                 {CLASS_WAIT:?}: {name:?} not registered"
            ),
        }
    }
}

impl std::error::Error for SharedError {}

/// What the local validator knows about an edge it records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EdgeRecord<'a> {
    /// [`crate::sync::current_thread_id`] of the acquirer.
    pub thread: u64,
    /// Where the held lock was acquired.
    pub held_at: &'a str,
    /// Where the new acquisition is.
    pub at: &'a str,
}

/// A mapped shared lock-order graph.
#[derive(Debug)]
pub struct SharedGraph {
    seg: Segment,
    classes: usize,
    /// This process as an entry writer (recomputed if the pid changed, i.e. after a fork).
    me: Mutex<Writer>,
    /// Registrations that failed (the classes are tracked locally only).
    errors: Mutex<Vec<SharedError>>,
}

impl SharedGraph {
    /// Creates the graph segment `name` with room for `classes` classes, or opens it if it
    /// exists (whatever its capacity). Handles the races of several processes doing the same
    /// (and of the last user unlinking it meanwhile).
    pub fn create_or_open(name: &ShmName, classes: usize) -> Result<SharedGraph, ShmError> {
        let params = [classes as u64, 0, 0, 0];
        let object_len = object_len(&params).ok_or_else(|| {
            ShmError::Invalid(format!(
                "a shared lock-order graph holds {MIN_CLASSES}..={MAX_CLASSES} classes, not {classes}"
            ))
        })?;
        let layout = Layout {
            kind: Kind::LockOrder,
            participants: crate::shm::DEFAULT_PARTICIPANTS,
            params,
            object_len,
        };
        let deadline = Instant::now() + CREATE_RACE_WAIT;
        loop {
            match Segment::create(name, layout) {
                Ok(seg) => return Self::from_segment(seg),
                Err(ShmError::Exists(_)) => {}
                Err(e) => return Err(e),
            }
            match Segment::open_object(name, Kind::LockOrder, self::object_len) {
                Ok(seg) => return Self::from_segment(seg),
                // Unlinked by its last user between our create and our open: create again.
                Err(ShmError::NotFound(_)) => {}
                // The creator has the name but has not sized it or written its header yet.
                Err(e @ (ShmError::NotOurs | ShmError::Truncated { .. })) => {
                    if Instant::now() > deadline {
                        return Err(e);
                    }
                    std::thread::sleep(CREATE_RACE_SLEEP);
                }
                Err(e) => return Err(e),
            }
            if Instant::now() > deadline {
                return Err(ShmError::NotFound(name.clone()));
            }
        }
    }

    /// Wraps an existing lock-order segment.
    pub fn from_segment(seg: Segment) -> Result<SharedGraph, ShmError> {
        let layout = *seg.layout();
        if layout.kind != Kind::LockOrder {
            return Err(ShmError::WrongKind {
                found: layout.kind,
                expected: Kind::LockOrder,
            });
        }
        // Checked here too: the segment may have been opened without its size formula.
        let classes = layout.params[0] as usize;
        if object_len(&layout.params) != Some(layout.object_len) {
            return Err(ShmError::Corrupted("lock-order graph parameters".into()));
        }
        Ok(SharedGraph {
            seg,
            classes,
            me: Mutex::new(current_writer()?),
            errors: Mutex::new(Vec::new()),
        })
    }

    /// The segment (e.g. to unlink it).
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Class capacity.
    pub fn capacity(&self) -> usize {
        self.classes
    }

    fn class_entries(&self) -> &[ClassEntry] {
        // SAFETY: the object area is 64-aligned and `object_len(params)` bytes long (checked in
        // `from_segment`), which starts with `classes` class entries of 64 bytes; they are made
        // of atomics, valid for any bit pattern; the mapping lives as long as `self.seg`.
        unsafe {
            core::slice::from_raw_parts(
                self.seg.object_ptr().as_ptr().cast::<ClassEntry>(),
                self.classes,
            )
        }
    }

    fn edge_entries(&self) -> &[EdgeEntry] {
        let n = self.classes;
        // SAFETY: as for `class_entries`: the matrix of n × n entries of 320 bytes follows the
        // class table (n × 64 bytes, so still 64-aligned) inside the validated object area.
        unsafe {
            core::slice::from_raw_parts(
                self.seg
                    .object_ptr()
                    .as_ptr()
                    .add(n * CLASS_ENTRY_LEN)
                    .cast::<EdgeEntry>(),
                n * n,
            )
        }
    }

    fn edge(&self, from: usize, to: usize) -> Option<&EdgeEntry> {
        if from >= self.classes || to >= self.classes {
            return None;
        }
        self.edge_entries().get(from * self.classes + to)
    }

    fn me(&self) -> Writer {
        let mut me = self.me.lock().unwrap_or_else(|e| e.into_inner());
        if me.pid != std::process::id() {
            if let Ok(w) = current_writer() {
                *me = w;
            }
        }
        *me
    }

    /// The index of class `name`, registering it if new.
    pub fn register(&self, name: &str) -> Result<usize, SharedError> {
        let r = self.register_inner(name);
        if let Err(e) = &r {
            self.errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(e.clone());
        }
        r
    }

    fn register_inner(&self, name: &str) -> Result<usize, SharedError> {
        if name.is_empty() || name.contains('\0') {
            return Err(SharedError::BadName(name.to_string()));
        }
        if name.len() > NAME_BYTES {
            return Err(SharedError::NameTooLong {
                name: name.to_string(),
                max: NAME_BYTES,
            });
        }
        let want: [u64; NAME_WORDS] = pack(name.as_bytes());
        let me = self.me();
        let deadline = Instant::now() + CLASS_WAIT;
        let mut waits = 0u32;
        let mut i = 0;
        let entries = self.class_entries();
        while let Some(e) = entries.get(i) {
            let w = e.state.load(Ordering::Acquire);
            let claim = match decode(w) {
                State::Set(_) => {
                    if e.name
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.load(Ordering::Relaxed) == *b)
                    {
                        return Ok(i);
                    }
                    i += 1;
                    continue;
                }
                State::Garbage => {
                    i += 1;
                    continue;
                }
                State::Free => true,
                State::Writing(writer) => {
                    if waits % WAIT_YIELDS == 0 && !writer.is_alive() {
                        true
                    } else if Instant::now() > deadline {
                        return Err(SharedError::Busy {
                            name: name.to_string(),
                            index: i,
                            pid: writer.pid,
                        });
                    } else {
                        waits += 1;
                        if waits < WAIT_YIELDS {
                            std::thread::yield_now();
                        } else {
                            std::thread::sleep(WAIT_SLEEP);
                        }
                        false
                    }
                }
            };
            if claim
                && e.state
                    .compare_exchange(w, me.word(TAG_WRITING), Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                for (slot, v) in e.name.iter().zip(want) {
                    slot.store(v, Ordering::Relaxed);
                }
                e.state.store(me.word(TAG_SET), Ordering::Release);
                return Ok(i);
            }
            // Lost the claim, or waiting: look at the same entry again (bounded by the deadline:
            // only a hostile writer can make claims fail over and over).
            if claim && Instant::now() > deadline {
                return Err(SharedError::Busy {
                    name: name.to_string(),
                    index: i,
                    pid: 0,
                });
            }
        }
        Err(SharedError::TableFull {
            name: name.to_string(),
            capacity: self.classes,
        })
    }

    /// Registrations that failed so far.
    pub fn errors(&self) -> Vec<SharedError> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The registered name of class `index`, if its entry is set.
    pub fn class_name(&self, index: usize) -> Option<String> {
        let e = self.class_entries().get(index)?;
        match decode(e.state.load(Ordering::Acquire)) {
            State::Set(_) => Some(unpack(&e.name)),
            _ => None,
        }
    }

    /// Records the edge `from → to` unless it is recorded (or being recorded by a live process).
    pub(crate) fn record(&self, from: usize, to: usize, rec: &EdgeRecord<'_>) {
        let Some(e) = self.edge(from, to) else {
            return;
        };
        let me = self.me();
        for _ in 0..CLAIM_ATTEMPTS {
            let w = e.state.load(Ordering::SeqCst);
            match decode(w) {
                State::Set(_) | State::Garbage => return,
                State::Writing(writer) if writer.is_alive() => return,
                State::Writing(_) | State::Free => {}
            }
            if e.state
                .compare_exchange(w, me.word(TAG_WRITING), Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                e.thread.store(rec.thread, Ordering::Relaxed);
                e.tid
                    .store(u64::from(crate::shm::identity::gettid()), Ordering::Relaxed);
                let held: [u64; LOCATION_WORDS] = pack(keep_tail(rec.held_at).as_bytes());
                let at: [u64; LOCATION_WORDS] = pack(keep_tail(rec.at).as_bytes());
                for (row, text) in e.at.iter().zip([held, at]) {
                    for (slot, v) in row.iter().zip(text) {
                        slot.store(v, Ordering::Relaxed);
                    }
                }
                e.state.store(me.word(TAG_SET), Ordering::Release);
                return;
            }
        }
    }

    /// Whether the edge `from → to` is set or being written (a WRITING edge is an order that was
    /// really attempted).
    pub fn has_edge(&self, from: usize, to: usize) -> bool {
        self.edge(from, to).is_some_and(|e| {
            matches!(
                decode(e.state.load(Ordering::SeqCst)),
                State::Set(_) | State::Writing(_)
            )
        })
    }

    /// A path `from →* to` (class indices, both ends included) over the set edges, if any;
    /// breadth-first, so a shortest one.
    pub fn path(&self, from: usize, to: usize) -> Option<Vec<usize>> {
        let n = self.classes;
        if from >= n || to >= n {
            return None;
        }
        let mut prev = vec![usize::MAX; n];
        prev[from] = from;
        let mut queue = VecDeque::from([from]);
        while let Some(u) = queue.pop_front() {
            if u == to {
                let mut path = vec![to];
                let mut c = to;
                while c != from && path.len() <= n {
                    c = prev[c];
                    path.push(c);
                }
                path.reverse();
                return Some(path);
            }
            for (v, p) in prev.iter_mut().enumerate() {
                if *p == usize::MAX && v != u && self.has_edge(u, v) {
                    *p = u;
                    queue.push_back(v);
                }
            }
        }
        None
    }

    /// The two acquisitions that recorded edge `from → to` (`at: None` if its writer has not
    /// committed, or died first).
    pub fn edge_chain(&self, from: usize, to: usize) -> [RemoteAcquisition; 2] {
        let classes = [from, to].map(|c| self.interned_class_name(c));
        let state = self
            .edge(from, to)
            .map_or(State::Free, |e| decode(e.state.load(Ordering::Acquire)));
        let (writer, details) = match (state, self.edge(from, to)) {
            (State::Set(w), Some(e)) => (
                Some(w),
                Some((
                    e.thread.load(Ordering::Relaxed),
                    u32::try_from(e.tid.load(Ordering::Relaxed)).unwrap_or(0),
                    [unpack(&e.at[0]), unpack(&e.at[1])],
                )),
            ),
            (State::Writing(w), _) => (Some(w), None),
            _ => (None, None),
        };
        let pid = writer.map_or(0, |w| w.pid);
        let mut out = classes.map(|class| RemoteAcquisition {
            class,
            pid,
            tid: 0,
            thread: 0,
            at: None,
            writer_died: false,
        });
        match details {
            Some((thread, tid, at)) => {
                for (a, loc) in out.iter_mut().zip(at) {
                    a.thread = thread;
                    a.tid = tid;
                    a.at = Some(loc);
                }
            }
            None => {
                let died = writer.is_some_and(|w| !w.is_alive());
                for a in &mut out {
                    a.writer_died = died;
                }
            }
        }
        out
    }

    /// The name of class `index`, interned, or a placeholder naming the index.
    pub(crate) fn interned_class_name(&self, index: usize) -> &'static str {
        intern(
            self.class_name(index)
                .unwrap_or_else(|| format!("<shared class #{index}>")),
        )
    }
}

static INTERNED: Mutex<Option<HashMap<String, &'static str>>> = Mutex::new(None);

/// A `'static` copy of `s` (one per distinct string, at most [`MAX_INTERNED`]).
fn intern(s: String) -> &'static str {
    let mut map = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    let map = map.get_or_insert_with(HashMap::new);
    if let Some(&s) = map.get(&s) {
        return s;
    }
    if map.len() >= MAX_INTERNED {
        return TOO_MANY_NAMES;
    }
    let leaked: &'static str = Box::leak(s.clone().into_boxed_str());
    map.insert(s, leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(classes: usize) -> SharedGraph {
        let name = ShmName::unique("order-unit");
        let g = SharedGraph::create_or_open(&name, classes).expect("create graph");
        g.segment().unlink().expect("unlink");
        g
    }

    fn rec<'a>() -> EdgeRecord<'a> {
        EdgeRecord {
            thread: 7,
            held_at: "a.rs:1:1",
            at: "b.rs:2:2",
        }
    }

    #[test]
    fn state_words_round_trip_and_garbage_is_recognised() {
        let w = Writer {
            pid: 4_000_000,
            start: (1 << 39) + 5,
        };
        assert_eq!(decode(w.word(TAG_WRITING)), State::Writing(w));
        assert_eq!(decode(w.word(TAG_SET)), State::Set(w));
        assert_eq!(decode(0), State::Free);
        assert_eq!(decode(1), State::Garbage);
        assert_eq!(decode(3 << TAG_SHIFT | 9), State::Garbage);
        assert_eq!(decode(TAG_SET << TAG_SHIFT), State::Garbage, "pid 0");
    }

    #[test]
    fn object_len_checks_its_parameters() {
        assert_eq!(object_len(&[1, 0, 0, 0]), None);
        assert_eq!(object_len(&[MAX_CLASSES as u64 + 1, 0, 0, 0]), None);
        assert_eq!(object_len(&[4, 1, 0, 0]), None);
        assert_eq!(object_len(&[4, 0, 0, 0]), Some(4 * 64 + 16 * 320));
    }

    #[test]
    fn long_locations_keep_their_tail() {
        let long = format!("{}/file.rs:12:34", "é".repeat(200));
        let kept = keep_tail(&long);
        assert!(kept.len() <= LOCATION_BYTES);
        assert!(kept.starts_with(ELLIPSIS) && kept.ends_with("/file.rs:12:34"));
    }

    #[test]
    fn an_edge_left_writing_by_a_dead_process_is_set_without_details_then_reclaimed() {
        let g = graph(4);
        let a = g.register("A").unwrap();
        let b = g.register("B").unwrap();
        let dead = Writer {
            pid: std::process::id(),
            start: 1, // not our start time: a former process with our pid
        };
        assert!(!dead.is_alive());
        let e = g.edge(a, b).unwrap();
        e.state.store(dead.word(TAG_WRITING), Ordering::SeqCst);
        assert_eq!(g.path(a, b), Some(vec![a, b]), "counted as set");
        let [x, y] = g.edge_chain(a, b);
        assert!(x.at.is_none() && x.writer_died && y.class == "B");
        g.record(a, b, &rec());
        let [x, y] = g.edge_chain(a, b);
        assert_eq!(
            (x.at.as_deref(), y.at.as_deref()),
            (Some("a.rs:1:1"), Some("b.rs:2:2"))
        );
        assert_eq!((x.pid, x.thread), (std::process::id(), 7));
    }

    #[test]
    fn a_class_half_written_by_a_dead_process_is_reclaimed() {
        let g = graph(4);
        let dead = Writer {
            pid: std::process::id(),
            start: 1,
        };
        g.class_entries()[0]
            .state
            .store(dead.word(TAG_WRITING), Ordering::SeqCst);
        g.class_entries()[0].name[0].store(0x4141, Ordering::Relaxed);
        assert_eq!(g.register("ODB"), Ok(0));
        assert_eq!(g.register("SYSMSG"), Ok(1));
        assert_eq!(g.register("ODB"), Ok(0));
        assert_eq!(g.class_name(0).as_deref(), Some("ODB"));
    }

    #[test]
    fn bad_names_are_refused() {
        let g = graph(2);
        assert!(matches!(g.register(""), Err(SharedError::BadName(_))));
        assert!(matches!(g.register("a\0b"), Err(SharedError::BadName(_))));
        let long = "x".repeat(NAME_BYTES + 1);
        assert!(matches!(
            g.register(&long),
            Err(SharedError::NameTooLong { .. })
        ));
        assert_eq!(g.register(&"y".repeat(NAME_BYTES)), Ok(0));
        assert_eq!(g.errors().len(), 3);
    }
}
