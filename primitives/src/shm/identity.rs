//! Who a participant is, and whether it is still alive.
//!
//! A participant is a thread of a process (or a whole process, `tid == 0`). Its identity is
//! `(pid, tid)` **plus the kernel's start time** of each (field 22 of `/proc/<pid>/stat`, in
//! clock ticks since boot): pids and tids are reused, start times make the pair unique for the
//! life of the machine, so a new process that got a dead owner's pid is never mistaken for it.
//!
//! A participant is *dead* when its `/proc` entry is gone, is a zombie (`Z`, `X`: killed but not
//! yet reaped — it will never run again), or has a different start time. A stopped process
//! (`SIGSTOP`, state `T`) is alive: waits on it must time out, never "recover" it.

/// The identity of a thread or a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Process id.
    pub pid: u32,
    /// Thread id (Linux tid), or 0 for the process as a whole.
    pub tid: u32,
    /// Start time of the process, in clock ticks since boot.
    pub pid_start: u64,
    /// Start time of the thread (0 when `tid == 0`).
    pub tid_start: u64,
}

impl Identity {
    /// The calling thread.
    pub fn current_thread() -> Self {
        let pid = std::process::id();
        let tid = gettid();
        Identity {
            pid,
            tid,
            pid_start: stat_of(pid, 0).map_or(0, |s| s.start),
            tid_start: stat_of(pid, tid).map_or(0, |s| s.start),
        }
    }

    /// The calling process.
    pub fn current_process() -> Self {
        let pid = std::process::id();
        Identity {
            pid,
            tid: 0,
            pid_start: stat_of(pid, 0).map_or(0, |s| s.start),
            tid_start: 0,
        }
    }

    /// Whether this thread / process still runs (or can run again, if stopped).
    pub fn is_alive(&self) -> bool {
        if self.pid == 0 {
            return false;
        }
        let Some(p) = stat_of(self.pid, 0) else {
            return false;
        };
        if p.is_dead() || p.start != self.pid_start {
            return false;
        }
        if self.tid == 0 {
            return true;
        }
        match stat_of(self.pid, self.tid) {
            Some(t) => !t.is_dead() && t.start == self.tid_start,
            None => false,
        }
    }
}

impl core::fmt::Display for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.tid == 0 {
            write!(f, "process {}", self.pid)
        } else {
            write!(f, "process {} thread {}", self.pid, self.tid)
        }
    }
}

/// Whether process `pid` (any start time) exists and is not a zombie.
pub fn process_exists(pid: u32) -> bool {
    pid != 0 && stat_of(pid, 0).is_some_and(|s| !s.is_dead())
}

/// The kernel state letter of process `pid` (`R`, `S`, `D`, `T` stopped, `Z` zombie, …), or
/// `None` if it does not exist.
pub fn process_state(pid: u32) -> Option<u8> {
    stat_of(pid, 0).map(|s| s.state)
}

/// The calling thread's kernel thread id.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    tid as u32
}

/// The parts of `/proc/<pid>[/task/<tid>]/stat` liveness needs.
struct Stat {
    state: u8,
    start: u64,
}

impl Stat {
    fn is_dead(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

fn stat_of(pid: u32, tid: u32) -> Option<Stat> {
    let path = if tid == 0 {
        format!("/proc/{pid}/stat")
    } else {
        format!("/proc/{pid}/task/{tid}/stat")
    };
    let text = std::fs::read(path).ok()?;
    parse_stat(&text)
}

/// Parses the state (field 3) and start time (field 22) of a `stat` line. The command name
/// (field 2) is in parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the *last* `)`.
fn parse_stat(text: &[u8]) -> Option<Stat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Fields 4..=21 are skipped; field 22 is the start time.
    let start = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_hostile_command_name() {
        let line =
            b"42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, b'S');
        assert_eq!(s.start, 123456);
        assert!(parse_stat(b"garbage").is_none());
        assert!(parse_stat(b"1 (x) R 1 2").is_none());
    }

    #[test]
    fn the_caller_is_alive_and_a_changed_start_time_is_not() {
        let me = Identity::current_thread();
        assert!(me.pid_start > 0 && me.tid_start > 0);
        assert!(me.is_alive());
        assert!(Identity::current_process().is_alive());
        let reused = Identity {
            pid_start: me.pid_start + 1,
            ..me
        };
        assert!(
            !reused.is_alive(),
            "same pid, different start time = a different process"
        );
        let gone = Identity {
            tid: u32::MAX - 1,
            ..me
        };
        assert!(!gone.is_alive());
    }
}
