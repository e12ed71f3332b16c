//! Seed 001: the logger before MIDAS buffered `cm_msg` — every message takes the sink (SYSMSG)
//! lock at once, whatever the caller holds. Under the ODB lock that is an ODB→SYSMSG order edge;
//! under the sink lock itself it is a self-deadlock.

use crate::lock::{LockClass, Mutex};
use crate::msg::{Message, MessageSink};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::current_thread_id;
use crate::traits::LogApi;
use core::panic::Location;

/// The unbuffered log (negative control `logger-self-deadlock`).
pub struct UnbufferedLog<S> {
    seq: AtomicU64,
    sink: Mutex<S>,
}

impl<S: MessageSink> UnbufferedLog<S> {
    /// A log whose sink lock is tracked as `class`.
    pub fn new(sink: S, class: &LockClass) -> Self {
        UnbufferedLog {
            seq: AtomicU64::new(0),
            sink: Mutex::tracked(sink, class),
        }
    }

    /// Runs `f` on the sink.
    pub fn with_sink<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        self.sink.lock().with_mut(f)
    }
}

impl<S: MessageSink> LogApi for UnbufferedLog<S> {
    #[track_caller]
    fn log(&self, text: String) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let m = Message {
            seq,
            thread: current_thread_id(),
            at: Location::caller(),
            text,
            staged: false,
        };
        self.sink.lock().with_mut(|s| s.deliver(m));
    }
    fn flush(&self) {}
    fn under_sink_lock(&self, f: &mut dyn FnMut()) {
        let _g = self.sink.lock();
        f()
    }
}
