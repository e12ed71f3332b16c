//! What a "kind" of ping-pong is, and the registry table of all kinds.
//!
//! A round trip is: the parent puts a value into "ping", the peer (a child process or an
//! echo thread) takes it and puts it into "pong", the parent takes it from "pong". The
//! value [`STOP`] is echoed like any other and then ends the peer's loop.
//!
//! To add a kind: implement [`ProcessKind`] (cross-process) or [`ThreadKind`]
//! (in-process) on a unit struct, and add one line to [`REGISTRY`].

use std::any::Any;
use std::os::fd::OwnedFd;

use crate::sys::{Res, ShmNames};

/// Label of the baseline row the "ratio" column divides by.
pub const BASELINE: &str = "pthread pshared MVar";

/// Sent last: the peer echoes it and then exits its loop.
pub const STOP: u64 = u64::MAX;

/// The parent's end of one ping-pong pair.
pub trait ParentSide {
    /// Sends `v` to the peer and returns the value it echoed. Any wait longer than a short
    /// slice must poll `peer_alive` and fail once it returns false, so that a dead peer can
    /// never hang the parent.
    fn round_trip(&mut self, v: u64, peer_alive: &dyn Fn() -> bool) -> Res<u64>;

    /// Called once the peer has exited normally (after echoing [`STOP`]), so no other
    /// process or thread uses the shared state any more: the place to destroy it.
    fn after_clean_exit(&mut self) {}
}

/// How the parent hands a [`ProcessKind`]'s resources to its child. The child is the
/// current executable, run as `--child <id> <echo|sleep> <args...>`.
pub struct ChildSpec {
    /// Extra arguments for the child, e.g. segment names.
    pub args: Vec<String>,
    /// Becomes the child's standard input (descriptor 0); `None`: /dev/null.
    pub stdin: Option<OwnedFd>,
    /// Becomes the child's standard output (descriptor 1); `None`: /dev/null.
    /// (Sleepers' standard output is always the parent's "ready" pipe.)
    pub stdout: Option<OwnedFd>,
}

/// Resources that sleeper processes block on and that nobody ever fills.
pub struct SleeperSpec {
    /// Kept alive by the parent until the sleepers are reaped (mappings, descriptors).
    pub keep: Box<dyn Any>,
    /// Extra arguments for each sleeper.
    pub args: Vec<String>,
    /// Duplicated as each sleeper's standard input.
    pub stdin: Option<OwnedFd>,
}

/// A cross-process ping-pong (two processes).
pub trait ProcessKind: Sync {
    /// Short identifier, without spaces, passed to the child on its command line.
    fn id(&self) -> &'static str;
    /// Row label in the table.
    fn label(&self) -> &'static str;
    /// Parent, before spawning the child: create the shared state. Segment names must come
    /// from `shm` (they are unlinked as soon as the child has attached, and on any error).
    fn setup(&self, shm: &mut ShmNames) -> Res<(Box<dyn ParentSide>, ChildSpec)>;
    /// Child: attach to the state named in `args` (and/or descriptors 0 and 1), then take
    /// from ping and put into pong until [`STOP`] has been echoed.
    fn child_loop(&self, args: &[String]) -> Res<()>;
    /// Parent, `--sleepers N`: the state that N sleepers block on. `None`: unsupported.
    fn sleeper_setup(&self, _shm: &mut ShmNames) -> Option<Res<SleeperSpec>> {
        None
    }
    /// Sleeper child: attach, call `ready`, then block in a take that never completes
    /// (the parent SIGKILLs it at the end of the window).
    fn child_sleep(&self, _args: &[String], _ready: &mut dyn FnMut() -> Res<()>) -> Res<()> {
        Err("this kind has no sleepers".into())
    }
}

/// The peer half of an in-process ping-pong: runs on its own thread.
pub type EchoLoop = Box<dyn FnOnce() -> Res<()> + Send>;

/// In-process sleepers: threads blocked in a take that nobody fills.
pub trait ThreadSleepers {
    /// The blocking call one sleeper thread makes; returns once woken by `wake_all`.
    fn blocker(&self) -> Box<dyn FnOnce() + Send>;
    /// Wakes `n` blocked sleepers; false if that did not work (they are then left detached).
    fn wake_all(&mut self, n: usize) -> bool;
}

/// An in-process ping-pong (two threads).
pub trait ThreadKind: Sync {
    /// Row label in the table.
    fn label(&self) -> &'static str;
    /// The parent's side (used on the calling thread) and the echo loop (run on another).
    fn setup(&self) -> (Box<dyn ParentSide>, EchoLoop);
    /// `--sleepers N`: something N threads can block on. `None`: unsupported.
    fn sleepers(&self) -> Option<Box<dyn ThreadSleepers>> {
        None
    }
}

/// One row of the benchmark.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Two processes.
    Process(&'static dyn ProcessKind),
    /// Two threads of this process.
    Thread(&'static dyn ThreadKind),
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Process(k) => k.label(),
            Kind::Thread(k) => k.label(),
        }
    }
}
