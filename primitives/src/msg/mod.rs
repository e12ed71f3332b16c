//! Buffered messaging: the MIDAS `cm_msg` story (seed 001) done right.
//!
//! A [`MessageLog`] writes [`Message`]s to a [`MessageSink`] behind the log's own lock. The rule
//! that removes the ODB/SYSMSG inversion and the logger self-deadlock: **a thread that holds any
//! tracked lock never takes the sink lock** — its messages are *staged* in a per-thread buffer
//! instead, and flushed, in order, when the thread releases its outermost tracked lock (or calls
//! [`MessageLog::flush`], or exits). A sink that itself logs (the sink lock is a tracked lock)
//! therefore stages instead of re-entering.
//!
//! * Every message carries a log-wide sequence number (taken when `log` is called), the origin
//!   thread and the source location. Per thread, the sink receives messages in sequence order.
//! * The stage is bounded ([`MessageLog::with_stage_capacity`]): a full stage never blocks under
//!   a lock. The message is dropped, the drop is counted ([`MessageLog::overflowed`]) and the
//!   next flush delivers a marker message saying how many were lost — never silent.
//! * Staged messages are flushed by the thread-local destructor when a thread exits, and by
//!   `MessageLog`'s `Drop` for the dropping thread.
//!
//! ## Fork (seed 002)
//! Every log is registered in a process-wide list, and a [`ForkHook`] makes the logs fork-safe
//! as glibc's malloc makes its arenas: before a `fork` the forking thread takes every live
//! log's sink lock (not one it already holds), so no other thread is inside a `deliver` at the
//! copy; both the parent and the child release them after it. The child also drops the forking
//! thread's stage: what it staged before the fork is the parent's to deliver, not delivered
//! twice. A forked child can therefore log at once, staged or not (see [`crate::sync::fork`]).
// loom's `thread_local!` does not accept a `const { }` initializer.
#![allow(clippy::missing_const_for_thread_local)]

#[cfg(not(any(loom, shuttle)))]
pub mod ring;

use crate::lock::{LockClass, Mode, Mutex, RawMutex, Validator};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::fork::ForkHook;
use crate::sync::{
    book_lock, current_thread_id, engine_thread_local, BookArc, BookMutex, BookWeak,
};
use crate::track::{held_depth, run_release_hooks, ReleaseHook};
use core::cell::RefCell;
use core::fmt;
use core::panic::Location;

/// One log message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Log-wide sequence number, in `log` call order.
    pub seq: u64,
    /// Origin thread ([`current_thread_id`]).
    pub thread: u64,
    /// Origin source location.
    pub at: &'static Location<'static>,
    /// The text.
    pub text: String,
    /// Whether it went through the stage (logged under a lock).
    pub staged: bool,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} [thread {} at {}] {}",
            self.seq, self.thread, self.at, self.text
        )
    }
}

/// Where messages end up.
pub trait MessageSink: Send {
    /// Receives one message. Called with the log's sink lock held.
    fn deliver(&mut self, m: Message);
}

impl MessageSink for Vec<Message> {
    fn deliver(&mut self, m: Message) {
        self.push(m);
    }
}

/// A sink that prints to stderr.
#[derive(Debug, Default)]
pub struct StderrSink;
impl MessageSink for StderrSink {
    fn deliver(&mut self, m: Message) {
        eprintln!("{m}");
    }
}

/// The default bound of a thread's stage, per log.
pub const DEFAULT_STAGE_CAPACITY: usize = 1024;

trait StageTarget: Send + Sync {
    fn deliver_batch(&self, batch: Vec<Message>, dropped: u64);
    /// The sink lock's raw mutex (for the fork hook).
    fn sink_raw(&self) -> &RawMutex;
}

struct Shared<S> {
    seq: AtomicU64,
    overflow: AtomicU64,
    capacity: usize,
    sink: Mutex<S>,
}

impl<S: MessageSink> StageTarget for Shared<S> {
    fn sink_raw(&self) -> &RawMutex {
        self.sink.raw()
    }

    fn deliver_batch(&self, batch: Vec<Message>, dropped: u64) {
        let mut g = self.sink.lock();
        let mut last = None;
        for m in batch {
            last = Some((m.thread, m.at));
            g.with_mut(|s| s.deliver(m));
        }
        if dropped > 0 {
            let (thread, at) = last.unwrap_or((current_thread_id(), Location::caller()));
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let text = format!("[msg] {dropped} message(s) dropped: stage full");
            g.with_mut(|s| {
                s.deliver(Message {
                    seq,
                    thread,
                    at,
                    text,
                    staged: true,
                })
            });
        }
    }
}

struct StageEntry {
    target: BookArc<dyn StageTarget>,
    key: usize,
    batch: Vec<Message>,
    dropped: u64,
}

/// The calling thread's stage; flushed when the thread exits.
struct Stage(Vec<StageEntry>);

impl Drop for Stage {
    fn drop(&mut self) {
        for e in std::mem::take(&mut self.0) {
            e.target.deliver_batch(e.batch, e.dropped);
        }
    }
}

engine_thread_local! {
    static STAGE: RefCell<Stage> = RefCell::new(Stage(Vec::new()));
}

/// Flushes the calling thread's in-process stages; installed in [`crate::track`] so that it runs
/// at the thread's outermost release of a tracked lock.
static FLUSH_STAGE: ReleaseHook = ReleaseHook::new(flush_stage);

fn flush_stage() {
    let entries = STAGE
        .try_with(|s| std::mem::take(&mut s.borrow_mut().0))
        .unwrap_or_default();
    for e in entries {
        e.target.deliver_batch(e.batch, e.dropped);
    }
}

/// Every log made in this process (weakly: a dropped log just leaves a dead entry).
static LOGS: BookMutex<Vec<BookWeak<dyn StageTarget>>> = BookMutex::new(Vec::new());
/// The sink locks the fork hook's `prepare` took, released after the fork.
static PREPARED: BookMutex<Vec<BookArc<dyn StageTarget>>> = BookMutex::new(Vec::new());

/// Makes the logs fork-safe: see the module docs.
static FORK: ForkHook = ForkHook::new(fork_prepare, fork_release, fork_child);

fn fork_prepare() {
    let logs: Vec<BookArc<dyn StageTarget>> = book_lock(&LOGS)
        .iter()
        .filter_map(BookWeak::upgrade)
        .collect();
    let mut taken = Vec::with_capacity(logs.len());
    for l in logs {
        // The forking thread may be inside a sink (forking from `deliver`): not taken twice.
        if !l.sink_raw().held_by_me() {
            l.sink_raw().lock();
            taken.push(l);
        }
    }
    *book_lock(&PREPARED) = taken;
}

fn fork_release() {
    let taken = std::mem::take(&mut *book_lock(&PREPARED));
    for l in taken {
        // SAFETY: `fork_prepare` took this sink lock on this thread (the one that forked; in
        // the child, the one that came through the fork) and nobody released it since.
        unsafe { l.sink_raw().unlock() };
    }
}

fn fork_child() {
    fork_release();
    // What the forking thread staged before the fork is the parent's to deliver.
    let _ = STAGE.try_with(|s| s.borrow_mut().0.clear());
}

/// Delivers every message the calling thread has staged, on every log (in-process logs and
/// shared message rings alike: every staging buffer that installed a release hook), in order.
/// Runs by itself when a thread releases its outermost tracked lock; harmless at any other time
/// without locks held.
pub fn flush_staged() {
    run_release_hooks();
}

/// A buffered message log over a sink `S`. Cheap to clone (shared).
pub struct MessageLog<S: MessageSink> {
    shared: BookArc<Shared<S>>,
}

impl<S: MessageSink> Clone for MessageLog<S> {
    fn clone(&self) -> Self {
        MessageLog {
            shared: self.shared.clone(),
        }
    }
}

impl<S: MessageSink + 'static> MessageLog<S> {
    /// A log whose sink lock is tracked by a private validator (mode off).
    pub fn new(sink: S) -> Self {
        Self::with_class(sink, &Validator::new(Mode::Off).class("msg.sink", false))
    }

    /// A log whose sink lock is tracked as `class` (e.g. of the validator that tracks the
    /// application's locks, so that inversions involving the sink are reported).
    pub fn with_class(sink: S, class: &LockClass) -> Self {
        Self::build(sink, class, DEFAULT_STAGE_CAPACITY)
    }

    /// As [`MessageLog::with_class`], with a stage bound of `capacity` messages per thread.
    pub fn with_stage_capacity(sink: S, class: &LockClass, capacity: usize) -> Self {
        Self::build(sink, class, capacity)
    }

    fn build(sink: S, class: &LockClass, capacity: usize) -> Self {
        FLUSH_STAGE.install();
        FORK.install();
        let shared = BookArc::new(Shared {
            seq: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
            capacity,
            sink: Mutex::tracked(sink, class),
        });
        let target: BookArc<dyn StageTarget> = shared.clone();
        let mut logs = book_lock(&LOGS);
        logs.retain(|w| w.strong_count() > 0);
        logs.push(BookArc::downgrade(&target));
        drop(logs);
        MessageLog { shared }
    }

    fn key(&self) -> usize {
        BookArc::as_ptr(&self.shared) as *const () as usize
    }

    /// Logs `text`: straight to the sink if the caller holds no tracked lock, else staged.
    #[track_caller]
    pub fn log(&self, text: impl Into<String>) {
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed);
        let m = Message {
            seq,
            thread: current_thread_id(),
            at: Location::caller(),
            text: text.into(),
            staged: false,
        };
        if held_depth() > 0 {
            self.stage(m);
        } else {
            // Deliver what this thread staged earlier first, to keep its order.
            flush_staged();
            self.shared.deliver_batch(vec![m], 0);
        }
    }

    fn stage(&self, mut m: Message) {
        m.staged = true;
        let key = self.key();
        let cap = self.shared.capacity;
        let target: BookArc<dyn StageTarget> = self.shared.clone();
        let staged = STAGE.try_with(|s| {
            let mut s = s.borrow_mut();
            let i = match s.0.iter().position(|e| e.key == key) {
                Some(i) => i,
                None => {
                    s.0.push(StageEntry {
                        target,
                        key,
                        batch: Vec::new(),
                        dropped: 0,
                    });
                    s.0.len() - 1
                }
            };
            let e = &mut s.0[i];
            if e.batch.len() >= cap {
                e.dropped += 1;
                false
            } else {
                e.batch.push(m);
                true
            }
        });
        if !matches!(staged, Ok(true)) {
            self.shared.overflow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Flushes the calling thread's staged messages now, if it holds no tracked lock (under a
    /// lock this does nothing: they flush at the outermost release).
    pub fn flush(&self) {
        if held_depth() == 0 {
            flush_staged();
        }
    }

    /// How many messages were dropped because a stage was full.
    pub fn overflowed(&self) -> u64 {
        self.shared.overflow.load(Ordering::Relaxed)
    }

    /// Runs `f` on the sink (takes the sink lock: do not call while holding tracked locks).
    pub fn with_sink<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        self.shared.sink.lock().with_mut(f)
    }
}

impl<S: MessageSink> Drop for MessageLog<S> {
    fn drop(&mut self) {
        if held_depth() == 0 {
            flush_staged();
        }
    }
}

impl<S: MessageSink + 'static> crate::traits::LogApi for MessageLog<S> {
    #[track_caller]
    fn log(&self, text: String) {
        MessageLog::log(self, text)
    }
    fn flush(&self) {
        MessageLog::flush(self)
    }
    fn under_sink_lock(&self, f: &mut dyn FnMut()) {
        MessageLog::with_sink(self, |_| f())
    }
}
