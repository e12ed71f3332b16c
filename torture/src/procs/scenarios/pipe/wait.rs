//! Who waits on whom, from `/proc`: the wait-for graph of the workers over the pipes, and its
//! cycle if it has one.
//!
//! A worker **waits on a pipe** when it is asleep (state `S`) in the kernel's pipe write path
//! (wait channel `anon_pipe_write` on recent kernels — seen on 6.18, for anonymous pipes and
//! FIFOs alike, by experiment; `pipe_write` on earlier 5.x/6.x ones, `pipe_wait` or
//! `pipe_wait_writable` on older ones) inside a `write(2)` whose fd (the first argument in `/proc/<pid>/syscall`) is one
//! of the pipes. Where `/proc/<pid>/syscall` cannot be read (it needs ptrace access), the pipe
//! is the one its last ledger record says it is writing. The kernel only sleeps a pipe writer
//! while the pipe has no free slot: the pipe is **full**, and the writer waits on the pipe's
//! reader, found by scanning the workers' `/proc/<pid>/fd` (`fdinfo` gives each end's mode).
//!
//! A **cycle** is a closed chain of such waits: A waits on B, B on ..., on A. A stopped worker
//! (state `T`) waits on nobody, runnable ones neither: neither can be part of a cycle.

use crate::procs::capture::ProcInfo;
use std::fmt::Write as _;

/// One worker as seen from `/proc`.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Its role (`client`, `server`).
    pub role: &'static str,
    /// Its pid.
    pub pid: u32,
    /// Kernel state and wait channel.
    pub info: ProcInfo,
    /// The pipe (inode) it is inside a write to, the fd, and how that is known.
    pub writing: Option<(u64, i32, &'static str)>,
}

/// Whether `wchan` is the kernel's pipe-writer sleep (names of several kernel versions).
pub fn pipe_write_wchan(wchan: &str) -> bool {
    wchan.ends_with("pipe_write") || wchan == "pipe_wait" || wchan == "pipe_wait_writable"
}

/// `(syscall number, first argument)` from `/proc/<pid>/syscall`, if it is inside one.
pub fn syscall(pid: u32) -> Option<(i64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    let mut w = text.split_whitespace();
    let nr: i64 = w.next()?.parse().ok()?;
    let a1 = u64::from_str_radix(w.next()?.trim_start_matches("0x"), 16).ok()?;
    (nr >= 0).then_some((nr, a1))
}

/// The pipe inode fd `fd` of `pid` refers to (`pipe:[INODE]`).
pub fn pipe_of(pid: u32, fd: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    link.to_str()?
        .strip_prefix("pipe:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Whether `pid` holds a read end of pipe `ino` open.
pub fn reads(pid: u32, ino: u64) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    dir.flatten().any(|e| {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            return false;
        };
        pipe_of(pid, fd) == Some(ino) && {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
            info.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .is_some_and(|f| f & libc::O_ACCMODE as u32 == libc::O_RDONLY as u32)
        }
    })
}

/// Whether `pid` is inside a `write(2)`/`writev(2)` on fd `fd`, per `/proc/<pid>/syscall`:
/// `None` if that file cannot be read.
pub fn in_write(pid: u32) -> Option<Option<i32>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    if text.trim() == "running" {
        return Some(None);
    }
    Some(syscall(pid).and_then(|(nr, fd)| {
        [libc::SYS_write, libc::SYS_writev]
            .contains(&nr)
            .then_some(fd as i32)
    }))
}

/// Bytes buffered in pipe `fd` of `pid` and the pipe's capacity, through a second read end
/// opened at `/proc/<pid>/fd/<fd>` (nonblocking; nothing is read from it).
pub fn fill(pid: u32, fd: i32) -> Option<(usize, usize)> {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/{pid}/fd/{fd}"))
        .ok()?;
    let cap = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GETPIPE_SZ).ok()?;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD on an open pipe fd writes one c_int through the pointer, which points
    // to a live local of that type.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
    (r == 0).then_some((n.max(0) as usize, cap.max(0) as usize))
}

/// Who `seen[i]` waits on: the index of the sole worker reading the pipe it sleeps writing.
/// Stopped, runnable and gone workers wait on nobody.
fn waits_on(seen: &[Seen], readers: &dyn Fn(usize, u64) -> bool, i: usize) -> Option<usize> {
    let s = &seen[i];
    if s.info.state != Some('S') {
        return None;
    }
    // An unreadable wait channel ("0" or empty: restricted) does not veto; a different one does.
    let w = s.info.wchan.as_str();
    if !(w.is_empty() || w == "0" || pipe_write_wchan(w)) {
        return None;
    }
    let (ino, _, _) = s.writing?;
    let mut by = (0..seen.len()).filter(|&j| readers(j, ino));
    let j = by.next()?;
    by.next().is_none().then_some(j)
}

/// The wait cycle through the workers, as indices in order, if there is one.
pub fn cycle(seen: &[Seen], readers: &dyn Fn(usize, u64) -> bool) -> Option<Vec<usize>> {
    for start in 0..seen.len() {
        let mut path = vec![start];
        let mut at = start;
        while let Some(next) = waits_on(seen, readers, at) {
            if next == start {
                return Some(path);
            }
            if path.contains(&next) {
                break;
            }
            path.push(next);
            at = next;
        }
    }
    None
}

/// `client (pid A) blocks writing the request pipe, full, whose reader server (pid B) blocks
/// writing the response pipe, full, whose reader is client (pid A)`.
pub fn describe_cycle(seen: &[Seen], cyc: &[usize], pipe_name: &dyn Fn(u64) -> String) -> String {
    let mut s = String::new();
    for (k, &i) in cyc.iter().enumerate() {
        let who = &seen[i];
        let pipe = who
            .writing
            .map_or_else(String::new, |(ino, _, _)| pipe_name(ino));
        if k == 0 {
            let _ = write!(s, "{} (pid {})", who.role, who.pid);
        }
        let _ = write!(s, " blocks writing the {pipe} pipe, full, whose reader");
        let next = &seen[cyc[(k + 1) % cyc.len()]];
        if k + 1 == cyc.len() {
            let _ = write!(s, " is {} (pid {})", next.role, next.pid);
        } else {
            let _ = write!(s, " {} (pid {})", next.role, next.pid);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: u64 = 100;
    const RESP: u64 = 200;

    fn seen(role: &'static str, pid: u32, state: char, wchan: &str, pipe: Option<u64>) -> Seen {
        Seen {
            role,
            pid,
            info: ProcInfo {
                state: Some(state),
                wchan: wchan.into(),
                run_queue_wait: None,
            },
            writing: pipe.map(|p| (p, 4, "test")),
        }
    }

    /// Client (0) reads the response pipe, server (1) the request pipe.
    fn readers(j: usize, ino: u64) -> bool {
        (j == 0 && ino == RESP) || (j == 1 && ino == REQ)
    }

    #[test]
    fn two_blocked_writers_are_a_cycle_and_only_that() {
        let client = seen("client", 10, 'S', "anon_pipe_write", Some(REQ));
        let server = seen("server", 11, 'S', "pipe_write", Some(RESP));
        let both = [client.clone(), server.clone()];
        let c = cycle(&both, &readers).expect("a cycle");
        let name = |ino| if ino == REQ { "request" } else { "response" }.to_string();
        assert_eq!(
            describe_cycle(&both, &c, &name),
            "client (pid 10) blocks writing the request pipe, full, whose reader server (pid 11) \
             blocks writing the response pipe, full, whose reader is client (pid 10)"
        );
        // The server merely slow (running, or asleep reading): the client waits, no cycle.
        for other in [
            seen("server", 11, 'R', "0", Some(RESP)),
            seen("server", 11, 'S', "anon_pipe_read", None),
            seen("server", 11, 'S', "do_nanosleep", Some(RESP)),
        ] {
            assert!(cycle(&[client.clone(), other], &readers).is_none());
        }
        // A stopped worker is never part of a cycle, whatever it was doing.
        let stopped = seen("server", 11, 'T', "do_signal_stop", Some(RESP));
        assert!(cycle(&[client.clone(), stopped], &readers).is_none());
        let stopped = seen("client", 10, 'T', "do_signal_stop", Some(REQ));
        assert!(cycle(&[stopped, server], &readers).is_none());
    }

    #[test]
    fn wchan_names_of_several_kernels() {
        for w in [
            "anon_pipe_write",
            "pipe_write",
            "fifo_pipe_write",
            "pipe_wait",
            "pipe_wait_writable",
        ] {
            assert!(pipe_write_wchan(w), "{w}");
        }
        for w in [
            "anon_pipe_read",
            "pipe_read",
            "pipe_wait_readable",
            "futex_wait_queue",
        ] {
            assert!(!pipe_write_wchan(w), "{w}");
        }
    }
}
