//! Panic capture. A panic in a scenario is a *result* (a broken invariant), not a crash: the
//! hook records the first panic of a run — message, location, thread — instead of printing it
//! with a backtrace. That first panic is the interesting one: a scenario's sub-thread that
//! breaks an invariant surfaces in the scenario's own thread only as "X panicked" at `join`.
//!
//! Backtraces are noise in a torture report (the message and location name the broken
//! invariant), so `RUST_BACKTRACE` is ignored; set `TORTURE_BACKTRACE=1` to capture one for the
//! first panic and show it in the report. Panics outside a run (a bug in the runner itself) are
//! printed as one line.

use std::any::Any;
use std::backtrace::Backtrace;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

use serde::Serialize;

/// One captured panic.
#[derive(Clone, Debug, Serialize)]
pub struct Captured {
    /// The panic message (may span lines: lock-order reports do).
    pub message: String,
    /// `file:line:col` of the panic, if known.
    pub location: Option<String>,
    /// Name of the panicking thread, or `"<unnamed>"`.
    pub thread: String,
    /// Backtrace, only with `TORTURE_BACKTRACE=1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
}

static INSTALL: Once = Once::new();
/// `TORTURE_BACKTRACE` is set (and not `0`): capture backtraces.
static BACKTRACES: AtomicBool = AtomicBool::new(false);
/// True while a run is in progress: panics are captured, not printed.
static ARMED: AtomicBool = AtomicBool::new(false);
/// Panics seen since the last [`arm`].
static COUNT: AtomicUsize = AtomicUsize::new(0);
static FIRST: Mutex<Option<Captured>> = Mutex::new(None);

fn first() -> MutexGuard<'static, Option<Captured>> {
    FIRST.lock().unwrap_or_else(|e| e.into_inner())
}

/// Environment variable that turns on backtrace capture.
pub const BACKTRACE_ENV: &str = "TORTURE_BACKTRACE";

/// Installs the capturing hook (once per process).
pub fn install() {
    INSTALL.call_once(|| {
        let wanted = std::env::var_os(BACKTRACE_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        BACKTRACES.store(wanted, Ordering::SeqCst);
        std::panic::set_hook(Box::new(|info| {
            let current = std::thread::current();
            let captured = Captured {
                message: payload_message(info.payload()),
                location: info.location().map(|l| l.to_string()),
                thread: current.name().unwrap_or("<unnamed>").to_string(),
                backtrace: BACKTRACES
                    .load(Ordering::Relaxed)
                    .then(|| Backtrace::force_capture().to_string()),
            };
            if ARMED.load(Ordering::SeqCst) {
                COUNT.fetch_add(1, Ordering::SeqCst);
                first().get_or_insert(captured);
            } else {
                eprintln!(
                    "torture: internal panic in thread '{}' at {}: {}",
                    captured.thread,
                    captured.location.as_deref().unwrap_or("?"),
                    captured.message
                );
            }
        }));
    });
}

/// Starts capturing for a new run: forgets the previous run's panics.
pub fn arm() {
    *first() = None;
    COUNT.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
}

/// Stops capturing (between runs, and once a failure is being reported).
pub fn disarm() {
    ARMED.store(false, Ordering::SeqCst);
}

/// The first panic since [`arm`], if any.
pub fn first_panic() -> Option<Captured> {
    first().clone()
}

/// How many panics since [`arm`].
pub fn count() -> usize {
    COUNT.load(Ordering::SeqCst)
}

/// The text of a panic payload (`&str` or `String`; anything else is named as such).
pub fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<panic payload that is not a string>".to_string()
    }
}
