//! A child process tied to the caller, for engines whose failures cannot be survived in-process
//! (loom may abort while unwinding after a deadlock): it dies with the process that started it
//! (`PR_SET_PDEATHSIG`), leads its own process group (so killing it kills whatever it started),
//! is killed after a time limit, and is always reaped.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a child ended.
pub(crate) struct Ended {
    /// Its exit status; `None` if it was killed at the time limit.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// A started child: killed (its group) and reaped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: kill(2) on a process group; the child leads its own group (set before
            // exec) and has not been reaped, so the id is still ours.
            unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs `cmd` (stdin and stdout to /dev/null, stderr captured) for at most `limit`.
pub(crate) fn run(cmd: &mut Command, limit: Duration) -> std::io::Result<Ended> {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the child between fork and exec and makes only
    // async-signal-safe system calls (prctl, getppid, setpgid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the death signal was armed: nobody would kill this one.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = Running(cmd.spawn()?);
    let mut pipe = child.0.stderr.take().expect("stderr is piped");
    // Drained on its own thread, so that a talkative child never blocks on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.0.try_wait()? {
            break Some(s);
        }
        if Instant::now() >= until {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Kills the group if it is still running (closing the pipe), and reaps it.
    drop(child);
    let stderr = reader.join().unwrap_or_default();
    Ok(Ended { status, stderr })
}
