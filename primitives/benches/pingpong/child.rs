//! Child processes: spawning by re-executing this binary, liveness, reaping with
//! `wait4` (so each child's own rusage is known), and the child-side entry point.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::kinds::{process_kind, ChildSpec};
use crate::sys::{timeval_ns, Res};

/// Hidden first argument that turns this binary into a child.
pub const CHILD_FLAG: &str = "--child";

/// How a child ended, as reported by `wait4`.
pub struct Exit {
    /// Raw wait status.
    pub status: libc::c_int,
    /// Lifetime user + system CPU of the child, from its rusage.
    pub cpu_ns: u64,
}

impl Exit {
    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    pub fn describe(&self) -> String {
        if libc::WIFEXITED(self.status) {
            format!("exit status {}", libc::WEXITSTATUS(self.status))
        } else if libc::WIFSIGNALED(self.status) {
            format!("killed by signal {}", libc::WTERMSIG(self.status))
        } else {
            format!("wait status {:#x}", self.status)
        }
    }
}

/// A spawned child. Dropping it without a prior reap kills it (SIGKILL) and reaps it, so
/// no error path leaves a child running or a zombie behind.
pub struct ChildProc {
    pub pid: libc::pid_t,
    stdout: Option<ChildStdout>,
    exit: Option<Exit>,
}

impl ChildProc {
    /// Runs `<this exe> --child <kind> <role> <our pid> <args...>`. The descriptors in
    /// `stdin`/`stdout` become the child's 0 and 1 and are closed here after the spawn.
    pub fn spawn(
        kind: &str,
        role: &str,
        args: &[String],
        stdin: Option<OwnedFd>,
        stdout: Stdio,
    ) -> Res<Self> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg(CHILD_FLAG)
            .arg(kind)
            .arg(role)
            .arg(std::process::id().to_string())
            .args(args)
            .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(stdout)
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| format!("spawning child: {e}"))?;
        // Close our copies of the child's descriptors (held by `cmd`).
        drop(cmd);
        let pid = libc::pid_t::try_from(child.id())?;
        // `child` itself is dropped without waiting (std never kills or reaps on drop);
        // from here on the child is reaped with wait4 only.
        Ok(Self {
            pid,
            stdout: child.stdout.take(),
            exit: None,
        })
    }

    /// Spawns an echo child for a [`ChildSpec`].
    pub fn spawn_echo(kind: &str, spec: ChildSpec) -> Res<Self> {
        let stdout = spec.stdout.map_or_else(Stdio::null, Stdio::from);
        Self::spawn(kind, "echo", &spec.args, spec.stdin, stdout)
    }

    /// True until the child has exited (without reaping it).
    pub fn alive(&self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer; WNOWAIT leaves the child unreaped.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                libc::id_t::try_from(self.pid).unwrap_or(0),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` (or left it zeroed: no state change); si_pid is
        // the field waitid sets for WEXITED.
        r == 0 && unsafe { info.si_pid() } == 0
    }

    /// Waits for the one "ready" byte a sleeper writes on its standard output.
    pub fn wait_ready(&mut self, limit: Duration) -> Res<()> {
        let out = self.stdout.as_mut().ok_or("no ready pipe")?;
        let mut pfd = libc::pollfd {
            fd: out.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(limit.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `pfd` is one valid pollfd, and we pass a count of 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r <= 0 {
            return Err(format!("sleeper {} not ready after {limit:?}", self.pid).into());
        }
        let mut byte = [0u8; 1];
        out.read_exact(&mut byte)
            .map_err(|e| format!("sleeper {} failed before ready: {e}", self.pid))?;
        Ok(())
    }

    /// Blocking reap (wait4), keeping the exit status and the child's rusage.
    fn reap(&mut self) -> Res<&Exit> {
        if self.exit.is_none() {
            let mut status: libc::c_int = 0;
            // SAFETY: rusage is plain data; all zeroes is a valid value.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            loop {
                // SAFETY: valid out-pointers; `pid` is our unreaped child.
                let r = unsafe { libc::wait4(self.pid, &mut status, 0, &mut usage) };
                if r == self.pid {
                    break;
                }
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("wait4({}): {e}", self.pid).into());
                }
            }
            self.exit = Some(Exit {
                status,
                cpu_ns: timeval_ns(usage.ru_utime) + timeval_ns(usage.ru_stime),
            });
        }
        Ok(self.exit.as_ref().expect("set above"))
    }

    /// Waits up to `limit` for the child to exit on its own, then reaps it.
    pub fn wait_exit(&mut self, limit: Duration) -> Res<&Exit> {
        let until = Instant::now() + limit;
        while self.alive() {
            if Instant::now() >= until {
                return Err(format!("child {} did not exit within {limit:?}", self.pid).into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.reap()
    }

    /// SIGKILLs the child (if not yet reaped) and reaps it.
    pub fn kill_and_reap(&mut self) -> Res<&Exit> {
        if self.exit.is_none() {
            // SAFETY: plain syscall; `pid` is our child and not yet reaped, so the pid
            // cannot have been reused by another process.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        self.reap()
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.kill_and_reap();
    }
}

/// Entry point of a child: `<kind> <echo|sleep> <parent pid> <args...>`. Returns the exit
/// code.
pub fn child_main(args: &[String]) -> i32 {
    match child_run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pingpong child ({}): {e}", args.join(" "));
            1
        }
    }
}

fn child_run(args: &[String]) -> Res<()> {
    let [kind, role, ppid, rest @ ..] = args else {
        return Err("usage: --child <kind> <echo|sleep> <parent pid> [args...]".into());
    };
    // Die with the parent. Then check it did not die before the prctl took effect.
    // SAFETY: prctl(PR_SET_PDEATHSIG) only reads its integer arguments.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if r != 0 {
        return Err(format!(
            "prctl(PR_SET_PDEATHSIG): {}",
            std::io::Error::last_os_error()
        )
        .into());
    }
    let ppid: libc::pid_t = ppid.parse().map_err(|_| "bad parent pid")?;
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != ppid {
        return Err("parent already gone".into());
    }
    let kind = process_kind(kind).ok_or_else(|| format!("unknown kind {kind:?}"))?;
    match role.as_str() {
        "echo" => kind.child_loop(rest),
        "sleep" => {
            let mut ready = || -> Res<()> {
                let mut out = std::io::stdout().lock();
                out.write_all(b"r")?;
                out.flush()?;
                Ok(())
            };
            kind.child_sleep(rest, &mut ready)
        }
        other => Err(format!("unknown role {other:?}").into()),
    }
}
