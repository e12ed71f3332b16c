//! Output that survives a closed stdout: `torture … | head -1` must end quietly and still clean
//! up, never panic (Rust's `println!` panics on `EPIPE`, since the runtime ignores `SIGPIPE`).
//!
//! [`say!`](crate::say) and [`say_raw!`](crate::say_raw) write to stdout and, once a write
//! fails (the reader went away), drop everything further; the run goes on to its normal end,
//! reaps its children and removes its segments.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set at the first failed write to stdout; later writes are skipped.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout and flushes; after a failed write (closed pipe) does nothing.
pub fn write_stdout(text: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Whether stdout has been found closed.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes one line to stderr, ignoring a closed stderr.
pub fn write_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// `println!` that never panics on a closed stdout.
macro_rules! say {
    () => { $crate::out::write_stdout("\n") };
    ($($arg:tt)*) => { $crate::out::write_stdout(&format!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that never panics on a closed stdout.
macro_rules! say_raw {
    ($($arg:tt)*) => { $crate::out::write_stdout(&format!($($arg)*)) };
}

/// `eprintln!` that never panics on a closed stderr.
macro_rules! warn_line {
    ($($arg:tt)*) => { $crate::out::write_stderr(&format!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {say, say_raw, warn_line as warn};
