//! (b) pipe and (c) Unix-socket ping-pong with 8-byte messages. The child's ends become
//! its standard input (ping) and standard output (pong), so the child loop is the same
//! for both: read 8 bytes from descriptor 0, write them back to descriptor 1.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::fcntl::OFlag;

use crate::kinds::{ChildSpec, ParentSide, ProcessKind, SleeperSpec, STOP};
use crate::sys::{Res, ShmNames};

/// The parent's end: write ping, read pong. A dead child closes its ends, so the read
/// fails with end-of-file instead of hanging: no liveness polling needed.
struct FdParent {
    tx: File,
    rx: File,
}

impl ParentSide for FdParent {
    fn round_trip(&mut self, v: u64, _peer_alive: &dyn Fn() -> bool) -> Res<u64> {
        self.tx.write_all(&v.to_ne_bytes())?;
        let mut buf = [0u8; 8];
        self.rx.read_exact(&mut buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => "the child closed its end (exited?)".to_string(),
            _ => e.to_string(),
        })?;
        Ok(u64::from_ne_bytes(buf))
    }
}

fn pipe() -> Res<(OwnedFd, OwnedFd)> {
    // Close-on-exec: only the descriptors handed over as stdin/stdout reach a child.
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))?)
}

/// Descriptors 0 and 1 of this process, as files.
fn stdio_files() -> Res<(File, File)> {
    let rx = io::stdin().as_fd().try_clone_to_owned()?;
    let tx = io::stdout().as_fd().try_clone_to_owned()?;
    Ok((File::from(rx), File::from(tx)))
}

fn echo_stdio() -> Res<()> {
    let (mut rx, mut tx) = stdio_files()?;
    let mut buf = [0u8; 8];
    loop {
        rx.read_exact(&mut buf)?;
        tx.write_all(&buf)?;
        if u64::from_ne_bytes(buf) == STOP {
            return Ok(());
        }
    }
}

fn sleep_on_stdin(ready: &mut dyn FnMut() -> Res<()>) -> Res<()> {
    let (mut rx, _) = stdio_files()?;
    ready()?;
    let mut buf = [0u8; 8];
    // Nobody ever writes: blocks until SIGKILLed (or end-of-file if the parent goes).
    let _ = rx.read(&mut buf)?;
    Ok(())
}

/// (b) Two pipes.
pub struct Pipe;

impl ProcessKind for Pipe {
    fn id(&self) -> &'static str {
        "pipe"
    }

    fn label(&self) -> &'static str {
        "pipe pair"
    }

    fn setup(&self, _shm: &mut ShmNames) -> Res<(Box<dyn ParentSide>, ChildSpec)> {
        let (ping_r, ping_w) = pipe()?;
        let (pong_r, pong_w) = pipe()?;
        let parent = FdParent {
            tx: File::from(ping_w),
            rx: File::from(pong_r),
        };
        let spec = ChildSpec {
            args: Vec::new(),
            stdin: Some(ping_r),
            stdout: Some(pong_w),
        };
        Ok((Box::new(parent), spec))
    }

    fn child_loop(&self, _args: &[String]) -> Res<()> {
        echo_stdio()
    }

    fn sleeper_setup(&self, _shm: &mut ShmNames) -> Option<Res<SleeperSpec>> {
        Some(pipe().map(|(r, w)| SleeperSpec {
            keep: Box::new(w),
            args: Vec::new(),
            stdin: Some(r),
        }))
    }

    fn child_sleep(&self, _args: &[String], ready: &mut dyn FnMut() -> Res<()>) -> Res<()> {
        sleep_on_stdin(ready)
    }
}

/// (c) `socketpair(AF_UNIX, SOCK_STREAM)`; the child's end is its stdin and stdout.
pub struct Socket;

impl ProcessKind for Socket {
    fn id(&self) -> &'static str {
        "socket"
    }

    fn label(&self) -> &'static str {
        "unix socketpair"
    }

    fn setup(&self, _shm: &mut ShmNames) -> Res<(Box<dyn ParentSide>, ChildSpec)> {
        // std creates both ends close-on-exec.
        let (ours, theirs) = UnixStream::pair()?;
        let parent = FdParent {
            tx: File::from(OwnedFd::from(ours.try_clone()?)),
            rx: File::from(OwnedFd::from(ours)),
        };
        let spec = ChildSpec {
            args: Vec::new(),
            stdin: Some(OwnedFd::from(theirs.try_clone()?)),
            stdout: Some(OwnedFd::from(theirs)),
        };
        Ok((Box::new(parent), spec))
    }

    fn child_loop(&self, _args: &[String]) -> Res<()> {
        echo_stdio()
    }

    fn sleeper_setup(&self, _shm: &mut ShmNames) -> Option<Res<SleeperSpec>> {
        Some(
            UnixStream::pair()
                .map(|(ours, theirs)| SleeperSpec {
                    keep: Box::new(ours),
                    args: Vec::new(),
                    stdin: Some(OwnedFd::from(theirs)),
                })
                .map_err(Into::into),
        )
    }

    fn child_sleep(&self, _args: &[String], ready: &mut dyn FnMut() -> Res<()>) -> Res<()> {
        sleep_on_stdin(ready)
    }
}
