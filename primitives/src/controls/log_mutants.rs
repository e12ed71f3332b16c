//! Log mutants: a buffered log built like the reference [`MessageLog`](crate::msg::MessageLog)
//! — messages logged under a tracked lock are staged per thread and delivered at the outermost
//! release (a [`ReleaseHook`]), by `flush`, at thread exit (the stage's thread-local destructor)
//! and when the log is dropped — with one seeded defect each against the
//! [`LogApi`] delivery contract, caught by the log scenarios:
//!
//! | [`LogDefect`]      | control               | defect                                         | caught by |
//! |--------------------|-----------------------|------------------------------------------------|-----------|
//! | `LostAtExit`       | `log-lost-at-exit`    | a thread's stage is discarded when it exits     | `log-exit-without-flush` |
//! | `LostAtDrop`       | `log-lost-at-drop`    | the stage keeps only a weak handle: messages staged when the last handle drops are lost | `log-drop-without-flush` |
//! | `OverflowSilent`   | `log-overflow-silent` | a full stage drops messages without counting or announcing them | `log-overflow-announced` |
//!
//! Written on the [`sync`](crate::sync) facade: the same code runs under loom and shuttle, whose
//! threads run their thread-local destructors at exit as real threads do.
// loom's `thread_local!` does not accept a `const { }` initializer.
#![allow(clippy::missing_const_for_thread_local)]

use crate::lock::{LockClass, Mutex};
use crate::msg::{Message, MessageSink, DEFAULT_STAGE_CAPACITY};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{current_thread_id, engine_thread_local, BookArc, BookWeak};
use crate::track::{held_depth, run_release_hooks, ReleaseHook};
use crate::traits::LogApi;
use core::cell::RefCell;
use core::panic::Location;

/// The one defect of a [`MutantLog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogDefect {
    /// `log-lost-at-exit`: what a thread still has staged when it exits is discarded.
    LostAtExit,
    /// `log-lost-at-drop`: a stage holds only a weak handle on its log, so what is staged when
    /// the last handle is dropped is discarded at the next flush.
    LostAtDrop,
    /// `log-overflow-silent`: a full stage drops messages without counting or announcing them.
    OverflowSilent,
}

impl LogDefect {
    /// The registry name of the control.
    pub fn control(self) -> &'static str {
        match self {
            LogDefect::LostAtExit => "log-lost-at-exit",
            LogDefect::LostAtDrop => "log-lost-at-drop",
            LogDefect::OverflowSilent => "log-overflow-silent",
        }
    }
}

/// Where a staged batch goes.
trait Target: Send + Sync {
    fn deliver(&self, batch: Vec<Message>, dropped: u64);
}

struct Shared<S> {
    seq: AtomicU64,
    sink: Mutex<S>,
}

impl<S: MessageSink> Target for Shared<S> {
    fn deliver(&self, batch: Vec<Message>, dropped: u64) {
        let mut g = self.sink.lock();
        for m in batch {
            g.with_mut(|s| s.deliver(m));
        }
        if dropped > 0 {
            let m = Message {
                seq: self.seq.fetch_add(1, Ordering::Relaxed),
                thread: current_thread_id(),
                at: Location::caller(),
                text: format!("[mutant log] {dropped} message(s) dropped: stage full"),
                staged: true,
            };
            g.with_mut(|s| s.deliver(m));
        }
    }
}

/// How a stage entry reaches its log.
enum Handle {
    /// Keeps the log's sink alive until delivered (as the reference does).
    Strong(BookArc<dyn Target>),
    /// `LostAtDrop`'s defect: does not.
    Weak(BookWeak<dyn Target>),
}

/// What one thread staged for one log.
struct Entry {
    key: usize,
    defect: LogDefect,
    handle: Handle,
    batch: Vec<Message>,
    dropped: u64,
}

impl Entry {
    fn deliver(self) {
        match self.handle {
            Handle::Strong(t) => t.deliver(self.batch, self.dropped),
            Handle::Weak(w) => {
                if let Some(t) = w.upgrade() {
                    t.deliver(self.batch, self.dropped);
                } // else the defect: the log is gone, and its staged messages with it
            }
        }
    }
}

/// The calling thread's stage of every mutant log.
struct Stage(Vec<Entry>);

impl Drop for Stage {
    /// Thread exit.
    fn drop(&mut self) {
        for e in core::mem::take(&mut self.0) {
            if e.defect != LogDefect::LostAtExit {
                e.deliver();
            } // else the defect: discarded with the thread
        }
    }
}

engine_thread_local! {
    static STAGE: RefCell<Stage> = RefCell::new(Stage(Vec::new()));
}

/// Delivers the calling thread's mutant stages; installed to run at the outermost release.
static FLUSH_STAGE: ReleaseHook = ReleaseHook::new(flush_stage);

fn flush_stage() {
    let entries = STAGE
        .try_with(|s| core::mem::take(&mut s.borrow_mut().0))
        .unwrap_or_default();
    for e in entries {
        e.deliver();
    }
}

/// A buffered log over a sink `S` with one seeded [`LogDefect`] (negative controls
/// `log-lost-at-exit`, `log-lost-at-drop`, `log-overflow-silent`). Its stage holds
/// [`DEFAULT_STAGE_CAPACITY`] messages per thread, as the reference's does.
pub struct MutantLog<S: MessageSink> {
    shared: BookArc<Shared<S>>,
    defect: LogDefect,
}

impl<S: MessageSink + 'static> MutantLog<S> {
    /// A log with `defect`, its sink lock tracked as `class`.
    pub fn new(sink: S, class: &LockClass, defect: LogDefect) -> Self {
        FLUSH_STAGE.install();
        MutantLog {
            shared: BookArc::new(Shared {
                seq: AtomicU64::new(0),
                sink: Mutex::tracked(sink, class),
            }),
            defect,
        }
    }

    fn key(&self) -> usize {
        BookArc::as_ptr(&self.shared) as *const () as usize
    }

    fn stage(&self, mut m: Message) {
        m.staged = true;
        let (key, defect) = (self.key(), self.defect);
        let target: BookArc<dyn Target> = self.shared.clone();
        let _ = STAGE.try_with(|s| {
            let mut s = s.borrow_mut();
            let i = match s.0.iter().position(|e| e.key == key) {
                Some(i) => i,
                None => {
                    let handle = if defect == LogDefect::LostAtDrop {
                        Handle::Weak(BookArc::downgrade(&target))
                    } else {
                        Handle::Strong(target)
                    };
                    s.0.push(Entry {
                        key,
                        defect,
                        handle,
                        batch: Vec::new(),
                        dropped: 0,
                    });
                    s.0.len() - 1
                }
            };
            let e = &mut s.0[i];
            if e.batch.len() < DEFAULT_STAGE_CAPACITY {
                e.batch.push(m);
            } else if defect != LogDefect::OverflowSilent {
                e.dropped += 1;
            } // else the defect: gone without a trace
        });
    }
}

impl<S: MessageSink> Drop for MutantLog<S> {
    fn drop(&mut self) {
        if held_depth() == 0 {
            run_release_hooks();
        }
    }
}

impl<S: MessageSink + 'static> LogApi for MutantLog<S> {
    #[track_caller]
    fn log(&self, text: String) {
        let m = Message {
            seq: self.shared.seq.fetch_add(1, Ordering::Relaxed),
            thread: current_thread_id(),
            at: Location::caller(),
            text,
            staged: false,
        };
        if held_depth() > 0 {
            self.stage(m);
        } else {
            run_release_hooks(); // what this thread staged first, to keep its order
            self.shared.deliver(vec![m], 0);
        }
    }
    fn flush(&self) {
        if held_depth() == 0 {
            run_release_hooks();
        }
    }
    fn under_sink_lock(&self, f: &mut dyn FnMut()) {
        let _g = self.shared.sink.lock();
        f()
    }
}
