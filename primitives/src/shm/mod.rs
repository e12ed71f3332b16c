//! Named POSIX shared-memory segments, the participant table and the robust lock word that the
//! cross-process homes of the primitives are built on.
//!
//! ## Segment layout (no pointers inside: offsets only, so every process may map it anywhere)
//! | offset                | bytes           | what                                                     |
//! |-----------------------|-----------------|----------------------------------------------------------|
//! | 0                     | 128             | header: magic `TORTSHM\0`, layout version, object kind, header length, participant count, total length, 4 kind-specific parameters, creator pid + start time, FNV-1a checksum of all of that, then the `READY` word |
//! | 128                   | 64 × P          | participant table ([`participants`]): who uses the segment, for owner-death detection |
//! | align64(128 + 64 P)   | object length   | the object (MVar, reentrant lock, message ring, lock-order graph) |
//!
//! A segment is created with `shm_open(O_CREAT|O_EXCL|O_RDWR, 0600)`, `ftruncate`, `mmap
//! (MAP_SHARED, PROT_READ|PROT_WRITE)` — never executable. The all-zero bit pattern is the
//! initial state of every object, so creation is: write the header, set `READY`.
//!
//! **Opening treats the segment as hostile input.** The header is copied out with volatile byte
//! reads and checked — magic ([`ShmError::NotOurs`]), version, kind, checksum, parameters, and
//! the file's length against the layout ([`ShmError::Truncated`]) — before anything is mapped
//! beyond it, and the validated layout is kept in the process: nothing later re-reads a size
//! from shared memory. The mutable state (lock words, counters, the participant table) is
//! validated on every use: an owner token that names no slot is a dead owner, a counter is only
//! ever a hint. What is *not* defended: another process shrinking the file under a live
//! mapping (that raises `SIGBUS`, as for any mapped file).
//!
//! ## Lifetimes
//! Each process that creates or opens a segment claims a process-level participant slot; each
//! thread that operates on it claims a thread slot on first use. When the last [`Segment`]
//! handle of a process is dropped its slots are released, and if no other live participant
//! remains the name is unlinked ("the last user unlinks"). A segment whose users all died is
//! found and removed by [`cleanup`].

#[cfg(not(any(loom, shuttle)))]
mod beacon;
mod participants;
mod robust;
mod watch;

pub use participants::{Participants, Slot, TableFull, Token, Who, MAX_PARTICIPANTS};
pub use robust::{Acquired, LockCx, LockTimedOut, RobustWord, OWNER_DIED, WAITERS};
pub use watch::{beacon_wakes, set_beacon_watching, set_fallback_slice, FALLBACK_SLICE};
pub(crate) use watch::{Watch, Whom};

#[cfg(not(any(loom, shuttle)))]
mod header;
#[cfg(not(any(loom, shuttle)))]
pub mod identity;
#[cfg(not(any(loom, shuttle)))]
mod segment;
#[cfg(not(any(loom, shuttle)))]
pub use header::{
    check_object_len, Layout, ObjectLen, HEADER_LEN, LAYOUT_VERSION, MAGIC, SLOT_LEN,
};
#[cfg(not(any(loom, shuttle)))]
pub use segment::Segment;

#[cfg(not(any(loom, shuttle)))]
mod cleanup;
#[cfg(not(any(loom, shuttle)))]
pub use cleanup::{cleanup, Cleaned, NAME_PREFIX};

use core::fmt;

/// Participant slots of a new segment unless the creator says otherwise.
pub const DEFAULT_PARTICIPANTS: u32 = 256;

/// What a segment holds (stored in its header). A tag only: each object knows its own size
/// formula and checks the header's parameters against the header's length when it opens the
/// segment ([`Segment::open_object`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Kind {
    /// A shared MVar (the robust MVar's segment home).
    MVar = 1,
    /// A shared reentrant lock (the robust reentrant lock).
    ReentrantLock = 2,
    /// A shared message ring with per-participant staging.
    MessageRing = 3,
    /// A lock-order graph shared by the validators of several processes.
    LockOrder = 4,
    /// A table of fixed-size records owned by its user (e.g. `torture churn`'s client table):
    /// the user's object checks its own size formula, like every kind.
    Table = 5,
    /// A status board of records owned by its user (`torture`'s crews: what each worker is
    /// doing, for hang reports).
    Board = 6,
}

impl Kind {
    /// The kind stored as `v`, if any.
    pub fn from_u32(v: u32) -> Option<Kind> {
        match v {
            1 => Some(Kind::MVar),
            2 => Some(Kind::ReentrantLock),
            3 => Some(Kind::MessageRing),
            4 => Some(Kind::LockOrder),
            5 => Some(Kind::Table),
            6 => Some(Kind::Board),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::MVar => "MVar",
            Kind::ReentrantLock => "reentrant lock",
            Kind::MessageRing => "message ring",
            Kind::LockOrder => "lock-order graph",
            Kind::Table => "table",
            Kind::Board => "status board",
        })
    }
}

/// A valid POSIX shared-memory object name: `/` then 1–200 of `[A-Za-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShmName(String);

impl ShmName {
    /// Checks `s` (with or without the leading `/`).
    pub fn parse(s: &str) -> Result<ShmName, ShmError> {
        let body = s.strip_prefix('/').unwrap_or(s);
        if body.is_empty()
            || body.len() > 200
            || !body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            || body.starts_with('.')
        {
            return Err(ShmError::Invalid(format!(
                "{s:?} is not a shared-memory name (1-200 of [A-Za-z0-9._-] after an optional '/')"
            )));
        }
        Ok(ShmName(format!("/{body}")))
    }

    /// A name unique to this run: `/torture-<pid>-<time>-<n>-<label>`. The pid lets
    /// [`cleanup`] remove leftovers of a dead run even when their header is unreadable.
    pub fn unique(label: &str) -> ShmName {
        static N: crate::sync::BookAtomicU64 = crate::sync::BookAtomicU64::new(0);
        let n = N.fetch_add(1, crate::sync::BookOrdering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let label: String = label
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            .take(64)
            .collect();
        ShmName(format!("/torture-{}-{t:x}-{n}-{label}", std::process::id()))
    }

    /// The name, with its leading `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a segment could not be created, opened or used.
#[derive(Debug)]
pub enum ShmError {
    /// No segment has this name.
    NotFound(ShmName),
    /// `create` found the name taken.
    Exists(ShmName),
    /// The segment does not start with this crate's magic.
    NotOurs,
    /// The header is all zero: a creator has not written it yet (or never will).
    Blank,
    /// Made by another layout version.
    Version {
        /// Version in the header.
        found: u32,
        /// Version this build understands.
        expected: u32,
    },
    /// Holds another kind of object.
    WrongKind {
        /// Kind in the header.
        found: Kind,
        /// Kind the caller asked for.
        expected: Kind,
    },
    /// Shorter than its header or layout says.
    Truncated {
        /// Length of the file.
        len: u64,
        /// Length required.
        needed: u64,
    },
    /// The header or a state word is inconsistent.
    Corrupted(String),
    /// The creator died (or took too long) before finishing initialisation.
    NotReady(ShmName),
    /// Every participant slot is held by a live participant.
    TooManyParticipants(usize),
    /// A bad argument (name, size).
    Invalid(String),
    /// A system call failed.
    Os(&'static str, nix::errno::Errno),
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmError::NotFound(n) => write!(f, "no shared-memory segment named {n}"),
            ShmError::Exists(n) => write!(f, "shared-memory segment {n} already exists"),
            ShmError::NotOurs => write!(f, "not a torture-suite segment (bad magic)"),
            ShmError::Blank => write!(f, "segment header is blank (creator unfinished or dead)"),
            ShmError::Version { found, expected } => write!(
                f,
                "segment layout version {found}, this build understands {expected}"
            ),
            ShmError::WrongKind { found, expected } => {
                write!(f, "segment holds a {found}, expected a {expected}")
            }
            ShmError::Truncated { len, needed } => {
                write!(f, "segment is {len} bytes, needs {needed}: truncated")
            }
            ShmError::Corrupted(why) => write!(f, "corrupted segment: {why}"),
            ShmError::NotReady(n) => {
                write!(f, "segment {n} was never finished by its creator")
            }
            ShmError::TooManyParticipants(n) => {
                write!(f, "all {n} participant slots are held by live participants")
            }
            ShmError::Invalid(why) => write!(f, "{why}"),
            ShmError::Os(call, e) => write!(f, "{call}: {e}"),
        }
    }
}

impl std::error::Error for ShmError {}

/// A model-engine thread that reached the step at which the harness told it to die.
#[derive(Debug)]
pub struct Died;

#[cfg(any(loom, shuttle))]
crate::sync::engine_thread_local! {
    #[allow(clippy::missing_const_for_thread_local)]
    static COUNTDOWN: core::cell::Cell<u32> = core::cell::Cell::new(u32::MAX);
}

/// A point at which a participant may be killed. For real this is nothing (SIGKILL can strike
/// anywhere); under loom / shuttle, a thread armed with [`arm_death`] panics with [`Died`] at its
/// `n`-th crash point, and the harness treats it as stopped forever.
#[inline]
pub fn crash_point() {
    #[cfg(any(loom, shuttle))]
    COUNTDOWN.with(|c| match c.get() {
        u32::MAX => {}
        0 => std::panic::panic_any(Died),
        n => c.set(n - 1),
    });
}

/// Like [`crash_point`], for code that stops by returning instead of unwinding (shuttle reports
/// every panic in a task, even a caught one): true when the calling thread must die here. Always
/// false for real.
#[inline]
pub fn death_due() -> bool {
    #[cfg(any(loom, shuttle))]
    {
        COUNTDOWN.with(|c| match c.get() {
            u32::MAX => false,
            0 => {
                c.set(u32::MAX);
                true
            }
            n => {
                c.set(n - 1);
                false
            }
        })
    }
    #[cfg(not(any(loom, shuttle)))]
    false
}

/// Model engines: the calling thread dies at its `n`-th next crash point (0 = the next one).
#[cfg(any(loom, shuttle))]
pub fn arm_death(n: u32) {
    COUNTDOWN.with(|c| c.set(n));
}

/// Model engines: the calling thread no longer dies.
#[cfg(any(loom, shuttle))]
pub fn disarm_death() {
    COUNTDOWN.with(|c| c.set(u32::MAX));
}

/// Model engines: an event trace for debugging a failing execution (cleared by the test).
#[cfg(any(loom, shuttle))]
pub static TRACE: crate::sync::BookMutex<Vec<String>> = crate::sync::BookMutex::new(Vec::new());

/// Model engines: records an event in [`TRACE`].
#[cfg(any(loom, shuttle))]
pub fn trace(f: impl FnOnce() -> String) {
    if let Ok(mut t) = TRACE.lock() {
        let id = crate::sync::current_thread_id();
        t.push(format!("[t{id}] {}", f()));
    }
}
