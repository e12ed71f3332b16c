//! `shm_open`: opening a segment that someone has tampered with. A case creates one shared object
//! (an MVar with a small payload, a reentrant lock, a message ring with small parameters, or a
//! lock-order graph) under a fresh name, optionally gives it some state (a value, a held lock,
//! logged messages, registered classes and edges), keeps or drops the creator's handle, then
//! writes a list of patches into the segment's file — in the header (optionally fixing the
//! checksum up afterwards, so the fuzzer gets past it), in the participant table, in the object
//! area, anywhere — optionally truncates or extends the file, and opens it.
//!
//! The open must give a value or a clear error (`ShmError` with a non-empty message); an opened
//! object then runs a short list of operations (MVar: try_put / try_take / try_read /
//! put_timeout / take_timeout of at most 5 ms; lock: try_lock / lock_timeout of at most 5 ms,
//! nested; ring: log, log under a tracked lock (staged), drain, rescue_dead, flush; graph: class
//! registration, nested acquisitions of tracked locks, queries of the shared graph), each of
//! which must return a value or an error with a non-empty message. A panic anywhere, or an
//! execution still running at the deadline, is a finding.
//!
//! Waits that the primitives document as bounded but longer than the execution deadline are not
//! provoked (each is a legitimate wait for a *live* participant, not a hang):
//! - `open` waits up to 2 s for a live creator to set `READY`, and for a blank header or an
//!   empty file: if the patched header names a live creator, `READY` is restored; a blank
//!   header is not opened; the file is never truncated to 0 bytes;
//! - a ring operation waits up to `LOCK_TIMEOUT` (2 s) for a live holder of the ring lock: such
//!   an operation is skipped while the ring lock word names a live participant other than the
//!   caller;
//! - a class registration waits up to 250 ms for a live writer's entry, and a `try_*` on a
//!   shared MVar up to 100 ms for a live holder of the box's lock: at most three registrations
//!   run per execution, and no operation is started once half the deadline is spent.
//!
//! Truncating the file is done only after the creator's handle is dropped: shrinking a file
//! under a live mapping raises `SIGBUS`, which the segment code documents as not defended.
//!
//! The name is always unlinked at the end (a drop guard, also when a check panics).
//!
//! The `Creator`, `Participant` and `Writer` values are the running process's pid and start
//! times, so an input that patches one of them over anything but an identity field (a size, a
//! counter) does not mean the same in another process: a finding that depends on that does not
//! replay. Rewrite such a finding with explicit values (`U64`, `Fill`, …) before it goes into
//! `fuzz/regressions/shm_open/` (its control must fail on every replay there).

use arbitrary::{Arbitrary, Unstructured};
use primitives::lock::order_shared::SharedGraph;
use primitives::lock::{LockClass, Mode, Mutex, SharedReentrantLock, Validator};
use primitives::msg::ring::{SharedLog, LOCK_OFFSET};
use primitives::mvar::{Flavor, SharedMVar};
use primitives::shm::identity::Identity;
use primitives::shm::{Kind, Segment, ShmName, HEADER_LEN, SLOT_LEN};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Most patches, operations per case, bytes per patch, locks per nested acquisition.
const MAX_PATCHES: usize = 12;
const MAX_OPS: usize = 10;
const MAX_PATCH_BYTES: usize = 16;
const MAX_NEST: usize = 4;

/// Header fields this case reads or writes (see `primitives::shm` for the layout).
const OFF_CREATOR_PID: usize = 64;
const OFF_CREATOR_START: usize = 72;
const OFF_CHECKSUM: usize = 80;
const OFF_READY: usize = 88;
const READY: u32 = 1;

/// Lock-word flags and participant-slot states (see `primitives::shm`).
const WAITERS: u32 = 1 << 31;
const OWNER_DIED: u32 = 1 << 30;
const SLOT_LIVE: u64 = 2;

/// Boundary values for counters, indices and lengths in the segment.
const EXTREMES: [u64; 8] = [
    u64::MAX,
    u64::MAX - 1,
    1 << 63,
    i64::MAX as u64,
    u32::MAX as u64,
    1 << 32,
    0,
    1,
];

/// Class names of the graph case: three ordinary ones, one too long for the shared table, one
/// invalid.
const CLASS_NAMES: [&str; 5] = [
    "fz-a",
    "fz-b",
    "fz-c",
    "fz-a-class-name-that-is-much-too-long-for-a-shared-class-entry",
    "",
];
/// Registrations (which may each wait 250 ms for a live writer) per execution.
const MAX_REGISTRATIONS: usize = 3;

/// A timeout of 0–5 ms.
#[derive(Arbitrary, Clone, Copy)]
pub struct Ms(u8);

impl Ms {
    fn get(self) -> Duration {
        Duration::from_millis(u64::from(self.0 % 6))
    }
}

impl std::fmt::Debug for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", self.0 % 6)
    }
}

/// The object the case creates, its initial state and the operations run after opening. Sizes
/// are raw bytes: the size used is `lo + raw % (hi - lo + 1)` for the range documented.
#[derive(Arbitrary, Debug)]
pub enum Object {
    MVar {
        /// Payload length 1–64.
        payload: u8,
        /// Participant slots 1–8.
        participants: u8,
        /// The creator puts a value.
        prefill: bool,
        ops: Vec<MVarOp>,
    },
    Lock {
        /// The creator takes the lock and never releases it.
        hold: bool,
        ops: Vec<LockOp>,
    },
    Ring {
        /// Ring capacity 1–16, text bytes 8–71, staging capacity 1–8, participants 1–8.
        capacity: u8,
        text_len: u8,
        stage_capacity: u8,
        participants: u8,
        /// Messages the creator logs (0–3).
        prelog: u8,
        ops: Vec<RingOp>,
    },
    Graph {
        /// Class capacity 2–8.
        classes: u8,
        /// Classes the creator registers and takes nested, in order (0–3).
        preregister: u8,
        ops: Vec<GraphOp>,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum MVarOp {
    TryPut(u8),
    TryTake,
    TryRead,
    PutTimeout(u8, Ms),
    TakeTimeout(Ms),
    /// A put of a value of the wrong length.
    WrongLength(u8),
    Inspect,
    Reap,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum LockOp {
    /// try_lock, then nested try_locks: 1–4 acquisitions in all.
    TryLock(u8),
    /// lock_timeout, then nested ones: 1–4 acquisitions in all.
    LockTimeout(Ms, u8),
    Inspect,
    Reap,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum RingOp {
    /// A message of `len % 100` characters of a fill character (some are multi-byte).
    Log {
        len: u8,
        fill: u8,
    },
    /// 1–3 messages logged while holding a tracked lock (staged, flushed at the release).
    LogStaged(u8),
    Drain(u8),
    Rescue,
    Flush,
    Inspect,
    Reap,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum GraphOp {
    /// A class of the validator (registered in the shared table) by name index.
    Class(u8),
    /// Nested acquisitions of tracked locks of these classes, released in reverse.
    Nest(Vec<u8>),
    /// Registration straight into the shared table.
    Register(u8),
    /// Queries of the shared graph: has_edge, path, edge_chain, class_name.
    Query { from: u8, to: u8 },
    /// Errors and violations so far.
    Report,
}

/// Where a patch goes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Where {
    /// Header offset (mod 128).
    Header(u8),
    /// Participant slot (mod the creator's participant count), byte offset in it (mod 64).
    Slot { index: u8, offset: u8 },
    /// Offset in the object area (mod its length).
    Object(u16),
    /// Any file offset (mod file length + 64, then clamped).
    Raw(u32),
}

/// What a patch writes.
#[derive(Arbitrary, Debug, Clone)]
pub enum Value {
    Bytes(Vec<u8>),
    U32(u32),
    U64(u64),
    /// 1–64 copies of a byte.
    Fill {
        byte: u8,
        len: u8,
    },
    /// A 64-bit boundary value (see [`EXTREMES`]).
    Extreme(u8),
    /// A participant token (`gen << 16 | index + 1`) with optional lock-word flags.
    Token {
        index: u8,
        gen: u8,
        waiters: bool,
        owner_died: bool,
    },
    /// A LIVE participant slot of this process (or of the calling thread): state, pid start,
    /// tid start, tid — with `alive = false`, a wrong start time (a dead participant).
    Participant {
        gen: u8,
        thread: bool,
        alive: bool,
    },
    /// A graph entry state word (`tag << 62 | start << 22 | pid`) of this process (or of a dead
    /// one).
    Writer {
        tag: u8,
        alive: bool,
    },
    /// Creator pid and start time as in the header (16 bytes), of this process or a dead one.
    Creator {
        alive: bool,
    },
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Patch {
    pub at: Where,
    pub value: Value,
}

/// How the file's length is changed (only after the creator's handle is dropped).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Resize {
    /// Cut `n` bytes off the end (at least one byte stays).
    Shrink(u16),
    /// Add `n` zero bytes.
    Grow(u16),
}

/// The case.
#[derive(Arbitrary, Debug)]
pub struct Case {
    pub object: Object,
    pub keep_creator: bool,
    pub patches: Vec<Patch>,
    /// Recompute the header checksum after patching.
    pub fix_checksum: bool,
    pub resize: Option<Resize>,
}

pub fn fuzz(data: &[u8]) {
    // Checks FUZZ_CONTROL at the first input (an unknown name is a usage error).
    crate::control();
    if data.len() > crate::MAX_INPUT {
        return;
    }
    let Ok(case) = Case::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    crate::deadline::run("shm_open", &case, || run(&case));
}

/// Unlinks the segment's name when dropped (also while unwinding).
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The creator's handle, whichever the kind.
enum Creator {
    MVar(SharedMVar),
    Lock(SharedReentrantLock),
    Ring(SharedLog),
    Graph(Validator),
}

impl Creator {
    fn segment(&self) -> &Segment {
        match self {
            Creator::MVar(m) => m.segment(),
            Creator::Lock(l) => l.segment(),
            Creator::Ring(r) => r.segment(),
            Creator::Graph(v) => v
                .shared_segment()
                .expect("a shared validator has a segment"),
        }
    }
}

fn clamp(v: u8, lo: u8, hi: u8) -> u8 {
    lo + v % (hi - lo + 1)
}

fn check_msg(what: &str, msg: String) {
    assert!(!msg.is_empty(), "{what}: an error with an empty message");
}

fn run(case: &Case) {
    let name = ShmName::unique("fz");
    let path = format!("/dev/shm{}", name.as_str());
    let _unlink = Unlink(path.clone());
    let mut budget = Budget::new();

    let creator = create(&name, &case.object);
    let layout = *creator.segment().layout();
    // The creator's handle must not unlink the name when dropped: the case opens it afterwards.
    creator.segment().set_unlink_on_drop(false);
    let creator = if case.keep_creator {
        Some(creator)
    } else {
        drop(creator);
        None
    };

    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("the segment's file exists while the case runs");
    let file_len = file.metadata().expect("fstat the segment").len();
    for p in case.patches.iter().take(MAX_PATCHES) {
        apply(&file, file_len, &layout, p);
    }
    if case.fix_checksum && file_len >= HEADER_LEN as u64 {
        let mut h = [0u8; OFF_CHECKSUM];
        if file.read_exact_at(&mut h, 0).is_ok() {
            let _ = file.write_all_at(&fnv1a(&h).to_le_bytes(), OFF_CHECKSUM as u64);
        }
    }
    if let (None, Some(r)) = (&creator, case.resize) {
        let len = match r {
            Resize::Shrink(n) => file_len.saturating_sub(u64::from(n)).max(1),
            Resize::Grow(n) => file_len + u64::from(n),
        };
        file.set_len(len).expect("resize the segment's file");
    }
    if !avoid_ready_wait(&file) {
        return;
    }

    match &case.object {
        Object::MVar { ops, .. } => open_mvar(&name, ops, &mut budget),
        Object::Lock { ops, .. } => open_lock(&name, ops, &mut budget),
        Object::Ring { ops, .. } => open_ring(&name, &file, ops, &mut budget),
        Object::Graph { ops, .. } => open_graph(&name, ops, &mut budget),
    }
    drop(creator);
}

/// Creates the object and gives it its initial state. Creation must succeed.
fn create(name: &ShmName, object: &Object) -> Creator {
    match object {
        Object::MVar {
            payload,
            participants,
            prefill,
            ..
        } => {
            let len = usize::from(clamp(*payload, 1, 64));
            let m = SharedMVar::create_with(
                name,
                len,
                u32::from(clamp(*participants, 1, 8)),
                Flavor::REFERENCE,
            )
            .expect("create the shared MVar");
            if *prefill {
                let _ = m.try_put(&vec![0x5a; len]);
            }
            Creator::MVar(m)
        }
        Object::Lock { hold, .. } => {
            let l = SharedReentrantLock::create(name).expect("create the shared lock");
            if *hold {
                // The creator's thread keeps the lock: the word names its thread slot.
                if let Ok(g) = l.try_lock() {
                    std::mem::forget(g);
                }
            }
            Creator::Lock(l)
        }
        Object::Ring {
            capacity,
            text_len,
            stage_capacity,
            participants,
            prelog,
            ..
        } => {
            let r = SharedLog::create_with(
                name,
                usize::from(clamp(*capacity, 1, 16)),
                usize::from(clamp(*text_len, 8, 71)),
                usize::from(clamp(*stage_capacity, 1, 8)),
                u32::from(clamp(*participants, 1, 8)),
            )
            .expect("create the shared log");
            for i in 0..prelog % 4 {
                let _ = r.log(format!("creator message {i}"));
            }
            Creator::Ring(r)
        }
        Object::Graph {
            classes,
            preregister,
            ..
        } => {
            let v = Validator::shared_with_capacity(
                Mode::Report,
                name,
                usize::from(clamp(*classes, 2, 8)),
            )
            .expect("create the shared lock-order graph");
            let n = usize::from(preregister % 4);
            let locks: Vec<Mutex<()>> = CLASS_NAMES[..n]
                .iter()
                .map(|c| Mutex::tracked((), &v.class(c, false)))
                .collect();
            // Record the edges a → b → c.
            {
                let mut guards = Vec::new();
                for l in &locks {
                    if let Ok(g) = l.lock_timeout(Duration::from_millis(5)) {
                        guards.push(g);
                    }
                }
                while guards.pop().is_some() {}
            }
            drop(locks);
            Creator::Graph(v)
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The bytes a patch value stands for.
fn bytes_of(v: &Value) -> Vec<u8> {
    let me = Identity::current_process();
    match v {
        Value::Bytes(b) => b.iter().copied().take(MAX_PATCH_BYTES).collect(),
        Value::U32(x) => x.to_le_bytes().to_vec(),
        Value::U64(x) => x.to_le_bytes().to_vec(),
        Value::Fill { byte, len } => vec![*byte; usize::from(clamp(*len, 1, 64))],
        Value::Extreme(i) => EXTREMES[usize::from(*i) % EXTREMES.len()]
            .to_le_bytes()
            .to_vec(),
        Value::Token {
            index,
            gen,
            waiters,
            owner_died,
        } => {
            let mut t = (u32::from(*gen) << 16) | (u32::from(*index) + 1);
            if *waiters {
                t |= WAITERS;
            }
            if *owner_died {
                t |= OWNER_DIED;
            }
            t.to_le_bytes().to_vec()
        }
        Value::Participant { gen, thread, alive } => {
            let id = if *thread {
                Identity::current_thread()
            } else {
                me
            };
            let skew = u64::from(!*alive);
            let state = (u64::from(id.pid) << 32) | (u64::from(*gen) << 8) | SLOT_LIVE;
            let mut b = Vec::with_capacity(28);
            b.extend_from_slice(&state.to_le_bytes());
            b.extend_from_slice(&(id.pid_start + skew).to_le_bytes());
            b.extend_from_slice(&(id.tid_start + skew).to_le_bytes());
            b.extend_from_slice(&id.tid.to_le_bytes());
            b
        }
        Value::Writer { tag, alive } => {
            let start = me.pid_start + u64::from(!*alive);
            let w = (u64::from(tag % 4) << 62)
                | ((start & ((1 << 40) - 1)) << 22)
                | (u64::from(me.pid) & ((1 << 22) - 1));
            w.to_le_bytes().to_vec()
        }
        Value::Creator { alive } => {
            let mut b = Vec::with_capacity(16);
            b.extend_from_slice(&me.pid.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&(me.pid_start + u64::from(!*alive)).to_le_bytes());
            b
        }
    }
}

/// Writes one patch into the file (offsets clamped to its length).
fn apply(file: &File, file_len: u64, layout: &primitives::shm::Layout, p: &Patch) {
    let bytes = bytes_of(&p.value);
    if bytes.is_empty() || file_len == 0 {
        return;
    }
    let object_off = layout.object_offset() as u64;
    let off = match p.at {
        Where::Header(o) => u64::from(o) % HEADER_LEN as u64,
        Where::Slot { index, offset } => {
            let n = u64::from(layout.participants.max(1));
            HEADER_LEN as u64
                + (u64::from(index) % n) * SLOT_LEN as u64
                + u64::from(offset) % SLOT_LEN as u64
        }
        Where::Object(o) => object_off + u64::from(o) % layout.object_len.max(1),
        Where::Raw(o) => u64::from(o) % (file_len + 64),
    };
    let len = (bytes.len() as u64).min(file_len);
    let off = off.min(file_len - len);
    file.write_all_at(&bytes[..len as usize], off)
        .expect("patch the segment's file");
}

/// `open` waits up to 2 s for a live creator to set `READY` and for a blank header — legitimate
/// waits longer than the deadline. Restores `READY` when the header names a live creator;
/// returns false (do not open) for a blank header.
fn avoid_ready_wait(file: &File) -> bool {
    let mut h = [0u8; HEADER_LEN];
    if file.read_exact_at(&mut h, 0).is_err() {
        return true; // shorter than a header: `open` fails at once (never 0 bytes long)
    }
    if h.iter().all(|&b| b == 0) {
        return false;
    }
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
    let creator = Identity {
        pid: u32_at(OFF_CREATOR_PID),
        tid: 0,
        pid_start: u64_at(OFF_CREATOR_START),
        tid_start: 0,
    };
    if u32_at(OFF_READY) != READY && creator.is_alive() {
        file.write_all_at(&READY.to_le_bytes(), OFF_READY as u64)
            .expect("restore READY");
    }
    true
}

fn open_mvar(name: &ShmName, ops: &[MVarOp], budget: &mut Budget) {
    // FUZZ_CONTROL=unvalidated-header: a reader that trusts the header's sizes.
    let opened = if crate::control().as_deref() == Some("unvalidated-header") {
        SharedMVar::open_unchecked(name)
    } else {
        SharedMVar::open(name)
    };
    let m = match opened {
        Ok(m) => m,
        Err(e) => return check_msg("SharedMVar::open", e.to_string()),
    };
    let len = m.payload_len();
    let _ = format!("{m:?}");
    for op in ops.iter().take(MAX_OPS) {
        if budget.spent() {
            break;
        }
        let r = match *op {
            MVarOp::TryPut(b) => m.try_put(&vec![b; len]).map(|_| ()),
            MVarOp::TryTake => m.try_take(&mut vec![0; len]).map(|_| ()),
            MVarOp::TryRead => m.try_read(&mut vec![0; len]).map(|_| ()),
            MVarOp::PutTimeout(b, t) => m.put_timeout(&vec![b; len], t.get()).map(|_| ()),
            MVarOp::TakeTimeout(t) => m.take_timeout(&mut vec![0; len], t.get()).map(|_| ()),
            MVarOp::WrongLength(n) => {
                let n = (len + 1 + usize::from(n)) % (len + 8);
                let n = if n == len { len + 1 } else { n };
                m.try_put(&vec![1; n]).map(|_| ())
            }
            MVarOp::Inspect => {
                let _ = (m.is_full(), m.generation(), m.recoveries(), m.waiting());
                let _ = (m.sleep_stats(), m.lock_holder());
                Ok(())
            }
            MVarOp::Reap => {
                for w in m.reap() {
                    check_msg("Who", w.to_string());
                }
                Ok(())
            }
        };
        if let Err(e) = r {
            check_msg("SharedMVar operation", e.to_string());
        }
    }
}

fn open_lock(name: &ShmName, ops: &[LockOp], budget: &mut Budget) {
    let l = match SharedReentrantLock::open(name) {
        Ok(l) => l,
        Err(e) => return check_msg("SharedReentrantLock::open", e.to_string()),
    };
    let _ = format!("{l:?}");
    for op in ops.iter().take(MAX_OPS) {
        if budget.spent() {
            break;
        }
        match *op {
            LockOp::TryLock(n) | LockOp::LockTimeout(_, n) => {
                let mut guards = Vec::new();
                for _ in 0..1 + n % 4 {
                    let r = match *op {
                        LockOp::LockTimeout(t, _) => l.lock_timeout(t.get()),
                        _ => l.try_lock(),
                    };
                    match r {
                        Ok(g) => {
                            let _ = (g.depth(), g.recovered(), format!("{g:?}"));
                            guards.push(g);
                        }
                        Err(e) => {
                            check_msg("SharedReentrantLock acquisition", e.to_string());
                            break;
                        }
                    }
                }
                while guards.pop().is_some() {}
            }
            LockOp::Inspect => {
                let _ = (l.owner(), l.recoveries());
            }
            LockOp::Reap => {
                for w in l.segment().reap(|_, _| {}) {
                    check_msg("Who", w.to_string());
                }
            }
        }
    }
}

/// Whether a ring operation would wait for a live holder of the ring lock (up to
/// `LOCK_TIMEOUT`, longer than the deadline): the word names a live participant other than the
/// calling thread and is not marked `OWNER_DIED`.
fn ring_lock_busy(log: &SharedLog, file: &File) -> bool {
    let seg = log.segment();
    let mut w = [0u8; 4];
    let off = seg.layout().object_offset() + LOCK_OFFSET;
    if file.read_exact_at(&mut w, off as u64).is_err() {
        return false;
    }
    let w = u32::from_le_bytes(w);
    let owner = w & !(WAITERS | OWNER_DIED);
    if owner == 0 || w & OWNER_DIED != 0 {
        return false;
    }
    let me = seg.me().ok();
    me != Some(owner) && !seg.participants().is_dead(owner)
}

fn ring_text(len: u8, fill: u8) -> String {
    let c = ['x', 'é', '€', '𝄞', '\n', '\0'][usize::from(fill % 6)];
    (0..len % 100).map(|_| c).collect()
}

fn open_ring(name: &ShmName, file: &File, ops: &[RingOp], budget: &mut Budget) {
    let log = match SharedLog::open(name) {
        Ok(l) => l,
        Err(e) => return check_msg("SharedLog::open", e.to_string()),
    };
    let _ = (format!("{log:?}"), log.ring_layout());
    // A tracked lock, so that messages logged under it are staged.
    let validator = Validator::new(Mode::Off);
    let tracked = Mutex::tracked((), &validator.class("fz-ring-holder", false));
    for op in ops.iter().take(MAX_OPS) {
        if budget.spent() {
            break;
        }
        let locks = !matches!(op, RingOp::Inspect | RingOp::Reap);
        if locks && ring_lock_busy(&log, file) {
            continue;
        }
        let r = match *op {
            RingOp::Log { len, fill } => log.log(ring_text(len, fill)),
            RingOp::LogStaged(n) => {
                let g = tracked.lock_timeout(Duration::from_millis(5));
                let mut r = Ok(());
                for i in 0..1 + n % 3 {
                    r = r.and(log.log(format!("staged {i}")));
                }
                drop(g); // the outermost release flushes
                r
            }
            RingOp::Drain(max) => log.drain(usize::from(max % 8)).map(|d| {
                for m in &d.messages {
                    check_msg("RingMessage", m.to_string());
                }
            }),
            RingOp::Rescue => log.rescue_dead().map(|_| ()),
            RingOp::Flush => log.flush(),
            RingOp::Inspect => {
                let _ = (log.overflowed(), log.pending(), log.recoveries());
                let _ = log.settled_steps();
                Ok(())
            }
            RingOp::Reap => {
                for w in log.segment().reap(|_, _| {}) {
                    check_msg("Who", w.to_string());
                }
                Ok(())
            }
        };
        if let Err(e) = r {
            check_msg("SharedLog operation", e.to_string());
        }
    }
    // Deliver what this thread staged (a failed flush keeps it for a later one).
    if !ring_lock_busy(&log, file) {
        let _ = log.flush();
    }
}

/// Time budget of one execution: no operation (nor class registration) is started once half
/// the deadline is spent, so that a run of legitimate bounded waits (each try on a shared MVar
/// may wait 100 ms for a live holder of the box's lock, each registration 250 ms for a live
/// writer) never adds up to the deadline.
struct Budget {
    started: Instant,
    registrations: usize,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            started: Instant::now(),
            registrations: MAX_REGISTRATIONS,
        }
    }

    fn spent(&self) -> bool {
        self.started.elapsed() > crate::deadline::deadline() / 2
    }

    fn register(&mut self) -> bool {
        if self.registrations == 0 || self.spent() {
            return false;
        }
        self.registrations -= 1;
        true
    }
}

fn open_graph(name: &ShmName, ops: &[GraphOp], budget: &mut Budget) {
    // Opened directly first: `Validator::shared` retries some errors for a second (it takes them
    // for a creator racing it), which is longer than the deadline.
    let seg = match Segment::open(name, Kind::LockOrder) {
        Ok(s) => s,
        Err(e) => return check_msg("Segment::open (lock-order graph)", e.to_string()),
    };
    let graph = match SharedGraph::from_segment(seg) {
        Ok(g) => g,
        Err(e) => return check_msg("SharedGraph::from_segment", e.to_string()),
    };
    let validator = match Validator::shared_with_capacity(Mode::Report, name, 2) {
        Ok(v) => v,
        Err(e) => return check_msg("Validator::shared", e.to_string()),
    };
    let cap = graph.capacity();
    let mut classes: Vec<Option<(LockClass, Mutex<()>)>> =
        CLASS_NAMES.iter().map(|_| None).collect();
    for op in ops.iter().take(MAX_OPS) {
        if budget.spent() {
            break;
        }
        match op {
            GraphOp::Class(i) => {
                let i = usize::from(*i) % CLASS_NAMES.len();
                if classes[i].is_none() && budget.register() {
                    let c = validator.class(CLASS_NAMES[i], false);
                    let _ = (c.shared_index(), c.name());
                    let m = Mutex::tracked((), &c);
                    classes[i] = Some((c, m));
                }
            }
            GraphOp::Nest(order) => {
                let order: Vec<usize> = order
                    .iter()
                    .take(MAX_NEST)
                    .map(|&i| usize::from(i) % CLASS_NAMES.len())
                    .collect();
                for &i in &order {
                    if classes[i].is_none() && budget.register() {
                        let c = validator.class(CLASS_NAMES[i], false);
                        let m = Mutex::tracked((), &c);
                        classes[i] = Some((c, m));
                    }
                }
                let mut guards = Vec::new();
                for &i in &order {
                    let Some((_, m)) = &classes[i] else { continue };
                    // A lock held already: the validator reports it; the timeout ends the wait.
                    if let Ok(g) = m.lock_timeout(Duration::from_millis(1)) {
                        guards.push(g);
                    }
                }
                while guards.pop().is_some() {}
            }
            GraphOp::Register(i) => {
                if budget.register() {
                    let n = CLASS_NAMES[usize::from(*i) % CLASS_NAMES.len()];
                    if let Err(e) = graph.register(n) {
                        check_msg("SharedGraph::register", e.to_string());
                    }
                }
            }
            GraphOp::Query { from, to } => {
                let (from, to) = (usize::from(*from) % (cap + 1), usize::from(*to) % (cap + 1));
                let _ = (graph.has_edge(from, to), graph.path(from, to));
                let _ = (graph.class_name(from), graph.class_name(to));
                for a in graph.edge_chain(from, to) {
                    check_msg("RemoteAcquisition", a.to_string());
                }
            }
            GraphOp::Report => {
                for e in graph.errors().into_iter().chain(validator.shared_errors()) {
                    check_msg("SharedError", e.to_string());
                }
                for v in validator.violations() {
                    check_msg("Violation", v.to_string());
                }
            }
        }
    }
    for v in validator.violations() {
        check_msg("Violation", v.to_string());
    }
}
