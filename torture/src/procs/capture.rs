//! Looking at participants from outside: their kernel state, wait channel and run-queue delay
//! (`/proc`), catching a lock holder inside its critical section (freeze it with `SIGSTOP`,
//! check it still holds the lock), and telling a hung participant from a merely slow one.

use primitives::shm::identity::process_state;
use std::time::{Duration, Instant};

/// What `/proc` says of a process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcInfo {
    /// Kernel state letter (`R` running or runnable, `S` asleep, `D` disk sleep, `T` stopped,
    /// `Z` zombie); `None`: gone.
    pub state: Option<char>,
    /// Where in the kernel it sleeps (`futex_wait_queue`, `pipe_write`, ...).
    pub wchan: String,
    /// Total time it has spent waiting on a run queue (runnable but not running).
    pub run_queue_wait: Option<Duration>,
}

impl ProcInfo {
    /// Reads `/proc/<pid>`.
    pub fn of(pid: u32) -> ProcInfo {
        ProcInfo {
            state: process_state(pid).map(char::from),
            wchan: std::fs::read_to_string(format!("/proc/{pid}/wchan"))
                .unwrap_or_default()
                .trim()
                .to_string(),
            run_queue_wait: run_queue_wait(pid),
        }
    }

    /// `state X wchan Y` for reports.
    pub fn describe(&self) -> String {
        match self.state {
            None => "gone".to_string(),
            Some(s) if self.wchan.is_empty() || self.wchan == "0" => format!("state {s}"),
            Some(s) => format!("state {s} wchan {}", self.wchan),
        }
    }
}

/// The second field of `/proc/<pid>/schedstat`: nanoseconds spent runnable on a run queue.
pub fn run_queue_wait(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    let ns: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// How far `participants` exceed `per_core` on each core of this machine (never below 1):
/// deadlines and graces scale by this, so a busy machine is not mistaken for a hung primitive.
pub fn load_factor(participants: usize, per_core: usize) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    participants
        .div_ceil(cores.saturating_mul(per_core.max(1)))
        .max(1)
        .min(u32::MAX as usize) as u32
}

/// Whether a participant seen `over` past its operation's deadline is hung: a runnable one
/// (`R`: it only waits for a CPU) is not; one that spent the overrun waiting on a run queue
/// is not. `probe` looks again at it after `confirm` and says whether it is still in the same
/// operation.
pub fn confirm_hang(pid: u32, confirm: Duration, still_inside: impl Fn() -> bool) -> Verdict {
    let before = ProcInfo::of(pid);
    match before.state {
        None | Some('Z' | 'X') => return Verdict::Gone,
        Some('T' | 't') => return Verdict::Stopped,
        _ => {}
    }
    std::thread::sleep(confirm);
    if !still_inside() {
        return Verdict::Slow;
    }
    let after = ProcInfo::of(pid);
    if matches!(after.state, Some('R')) {
        return Verdict::Runnable;
    }
    if let (Some(a), Some(b)) = (before.run_queue_wait, after.run_queue_wait) {
        // Most of the confirmation window spent waiting for a CPU: the machine is busy.
        if b.saturating_sub(a) * 2 > confirm {
            return Verdict::Runnable;
        }
    }
    Verdict::Hung(after)
}

/// What [`confirm_hang`] concluded.
#[derive(Debug)]
pub enum Verdict {
    /// Asleep in the kernel, still inside the operation after the confirmation window.
    Hung(ProcInfo),
    /// It finished the operation meanwhile: slow, not hung.
    Slow,
    /// It is runnable or spent the window waiting for a CPU: the machine is busy.
    Runnable,
    /// Stopped by a signal (ours, or a debugger's): not a hang of the primitive.
    Stopped,
    /// It is gone.
    Gone,
}

/// A lock holder caught by [`catch_holder`].
pub enum Caught {
    /// Member `i` is stopped (SIGSTOP) inside its critical section: kill it there.
    Stopped(usize),
    /// Member `i` sleeps in the kernel while holding the lock (a hang).
    Asleep(usize),
}

/// Polls `holder()` (the pid holding a lock) for up to `window` for one of `pids`; freezes it
/// and, if it still holds the lock, returns it stopped — otherwise lets it go on and keeps
/// looking. With `detect_sleep`, a holder seen asleep holding the lock is reported.
pub fn catch_holder(
    pids: &[u32],
    holder: impl Fn() -> Option<u32>,
    detect_sleep: bool,
    window: Duration,
) -> Option<Caught> {
    let until = Instant::now() + window;
    while Instant::now() < until {
        if let Some(pid) = holder() {
            if let Some(i) = pids.iter().position(|p| *p == pid) {
                let holds = || holder() == Some(pid);
                if detect_sleep && sleeps_holding(pid, holds) {
                    return Some(Caught::Asleep(i));
                }
                if stopped_holding(pid, holds) {
                    return Some(Caught::Stopped(i));
                }
            }
        }
        std::hint::spin_loop();
    }
    None
}

/// Whether `pid` is asleep (state `S`) while `holds()` the lock, in two looks 2 ms apart. A
/// reference participant holds the box's lock only for a copy and a commit, never across a
/// sleep; one merely re-taking the lock between sleeps cannot be seen holding it asleep twice.
fn sleeps_holding(pid: u32, holds: impl Fn() -> bool) -> bool {
    for look in 0..2 {
        if look > 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        if !(holds() && process_state(pid) == Some(b'S') && holds()) {
            return false;
        }
    }
    true
}

/// Stops `pid` (SIGSTOP) and reports whether it is stopped while `holds()` a lock; if not,
/// continues it (SIGCONT).
fn stopped_holding(pid: u32, holds: impl Fn() -> bool) -> bool {
    use nix::sys::signal::{kill, Signal};
    let p = nix::unistd::Pid::from_raw(pid as i32);
    if kill(p, Signal::SIGSTOP).is_err() {
        return false;
    }
    let until = Instant::now() + Duration::from_millis(50);
    let stopped = loop {
        match process_state(pid) {
            Some(b'T' | b't') => break true,
            Some(b'Z' | b'X') | None => break false,
            _ if Instant::now() > until => break false,
            _ => std::thread::yield_now(),
        }
    };
    if stopped && holds() {
        return true;
    }
    let _ = kill(p, Signal::SIGCONT);
    false
}
