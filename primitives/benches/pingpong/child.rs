//! Child processes: spawning by re-executing this binary, tied to this process
//! (`torture/src/procs/tied.rs`: it dies with us, leads its own process group, and is killed
//! and reaped on drop), liveness, reaping with each child's own CPU time, and the child-side
//! entry point.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::kinds::ChildSpec;
use crate::registry::process_kind;
use crate::sys::{timeval_ns, Res};
use crate::tied::Tied;

/// Hidden first argument that turns this binary into a child.
pub const CHILD_FLAG: &str = "--child";

/// How a child ended.
pub struct Exit {
    /// Exit status.
    pub status: ExitStatus,
    /// Lifetime user + system CPU of the child (and of its reaped descendants), from the
    /// rusage the kernel adds to ours when it is reaped (see [`ChildProc::reap_with`]).
    pub cpu_ns: u64,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn describe(&self) -> String {
        if let Some(code) = self.status.code() {
            format!("exit status {code}")
        } else if let Some(signal) = self.status.signal() {
            format!("killed by signal {signal}")
        } else {
            format!("wait status {:#x}", self.status.into_raw())
        }
    }
}

/// User + system CPU of this process's children that have been reaped so far, nanoseconds.
fn reaped_children_cpu_ns() -> Res<u64> {
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid out-pointer for the duration of the call.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return Err(format!("getrusage: {}", std::io::Error::last_os_error()).into());
    }
    Ok(timeval_ns(usage.ru_utime) + timeval_ns(usage.ru_stime))
}

/// A spawned child, tied to this process. Dropping it without a prior reap kills it (its
/// process group, SIGKILL) and reaps it (`Tied`), so no error path leaves a child running or
/// a zombie behind.
pub struct ChildProc {
    pub pid: libc::pid_t,
    child: Tied,
    stdout: Option<ChildStdout>,
    exit: Option<Exit>,
}

impl ChildProc {
    /// Runs `<this exe> --child <kind> <role> <args...>`, tied to this process. The
    /// descriptors in `stdin`/`stdout` become the child's 0 and 1 and are closed here after
    /// the spawn.
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
            .args(args)
            .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(stdout)
            .stderr(Stdio::inherit());
        let mut child = Tied::spawn(&mut cmd).map_err(|e| format!("spawning child: {e}"))?;
        // Close our copies of the child's descriptors (held by `cmd`).
        drop(cmd);
        let pid = libc::pid_t::try_from(child.id())?;
        let stdout = child.child().stdout.take();
        Ok(Self {
            pid,
            child,
            stdout,
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

    /// Takes the child's standard output pipe (after [`ChildProc::wait_ready`], for what the
    /// child says next; used by the `sleepers` bench).
    #[allow(dead_code)]
    pub fn stdout_take(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
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

    /// Reaps the child with `reap` (a `Tied` call that reaps it, or gives `None` if it is
    /// still running: then the error says the child `unreaped`), keeping the exit status and the child's lifetime CPU: what the kernel
    /// adds to this process's `RUSAGE_CHILDREN` when it reaps the child — the same figure
    /// `wait4` reports. Only the main thread starts and reaps the benchmark's children, one at
    /// a time, so no other child is reaped in between.
    fn reap_with(
        &mut self,
        reap: impl FnOnce(&mut Tied) -> Option<ExitStatus>,
        unreaped: &str,
    ) -> Res<&Exit> {
        if self.exit.is_none() {
            let before = reaped_children_cpu_ns()?;
            let Some(status) = reap(&mut self.child) else {
                return Err(format!("child {} {unreaped}", self.pid).into());
            };
            let cpu_ns = reaped_children_cpu_ns()?.saturating_sub(before);
            self.exit = Some(Exit { status, cpu_ns });
        }
        Ok(self.exit.as_ref().expect("set above"))
    }

    /// Waits up to `limit` for the child to exit on its own, then reaps it.
    pub fn wait_exit(&mut self, limit: Duration) -> Res<&Exit> {
        self.reap_with(
            |c| c.wait_timeout(limit),
            &format!("did not exit within {limit:?}"),
        )
    }

    /// SIGKILLs the child (its process group; if not yet reaped) and reaps it.
    pub fn kill_and_reap(&mut self) -> Res<&Exit> {
        self.reap_with(Tied::kill, "could not be reaped")
    }
}

/// Entry point of a child: `<kind> <echo|sleep> <args...>`. Returns the exit code. The
/// child dies with its parent: `tie` set that up before `exec`.
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
    let [kind, role, rest @ ..] = args else {
        return Err("usage: --child <kind> <echo|sleep> [args...]".into());
    };
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
