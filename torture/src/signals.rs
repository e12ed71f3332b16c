//! SIGINT and SIGTERM end a process run like a normal exit: the handler only records the
//! signal; the runner's loop sees it, stops, kills and reaps its workers, removes its segments
//! and ledger folder, prints what it saw and exits 2.
//!
//! Only runners that own children or segments install it; the thread runner keeps the default
//! action (it owns nothing outside the process).

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicI32, Ordering};

/// The last SIGINT/SIGTERM received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(signal: libc::c_int) {
    // Async-signal-safe: one atomic store.
    RECEIVED.store(signal, Ordering::Relaxed);
}

/// Installs the recording handler for SIGINT and SIGTERM (and SIGHUP: a closed terminal).
pub fn install() {
    let action = SigAction::new(
        SigHandler::Handler(record),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; no other
        // handler for these signals is relied upon anywhere in this program.
        let _ = unsafe { sigaction(s, &action) };
    }
}

/// The signal that asked this run to stop, if any.
pub fn received() -> Option<Signal> {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}
