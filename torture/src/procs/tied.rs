//! A child process tied to its parent — the one way every process of this repository starts
//! another: the crew's workers, the tests' child processes, the benchmark's peers.
//!
//! - **It dies with its parent**, also under a subreaper (systemd user sessions, CI agents) and
//!   when the parent is PID 1: between `fork` and `exec` the child sets
//!   `PR_SET_PDEATHSIG = SIGKILL` and then checks that its parent is still the process that
//!   spawned it (a parent killed before that line would otherwise leave it adopted, alive).
//!   The death signal follows the *thread* that forked: spawn from a thread that outlives the
//!   child (the main thread).
//! - It leads **its own process group**: a terminal's Ctrl-C reaches the parent only, which stops
//!   in order; [`Tied::kill`] kills the group, so anything the child started goes too.
//! - **Dropping it kills and reaps it**: no path leaves a child behind.
//!
//! This file uses only `std` and `libc`, so that the `primitives` tests and benchmark, which
//! cannot depend on the `torture` crate (it depends on them), include it by path.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Ties the child that `cmd` will start to this process (see the module docs).
pub fn tie(cmd: &mut Command) -> &mut Command {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe system calls (prctl, getppid, setpgid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the line above: nobody would ever kill this child.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A running child tied to this process; killed and reaped when dropped.
pub struct Tied {
    child: Option<Child>,
}

impl Tied {
    /// Starts `cmd` tied to this process.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Tied> {
        let child = tie(cmd).spawn()?;
        Ok(Tied { child: Some(child) })
    }

    /// The child (for its pipes and pid).
    pub fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("a Tied child is present until dropped")
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Its exit status if it has ended (reaped), without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child().try_wait().ok().flatten()
    }

    /// Waits up to `limit` for it to end; `None` if it is still running (it is left running).
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills its process group (SIGKILL) unless it has already ended, and reaps it.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        if let Ok(None) = child.try_wait() {
            // SAFETY: kill(2) with a negative pid signals that process group; the child leads
            // its own group (set before exec), and it has not been reaped, so the id is ours.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.kill();
        }
        child.wait().ok()
    }
}

impl Drop for Tied {
    fn drop(&mut self) {
        self.kill();
    }
}
