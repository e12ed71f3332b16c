//! `torture pipe`: seed 004's pipe-buffer deadlock. A client process sends `--requests`
//! requests of `--size` bytes on a request pipe to a server process, which answers each with a
//! response of the same size on a response pipe; the client checks every response (framing and
//! payload: see `wire.rs`). Messages are larger than the pipe buffer by default (256 KiB against
//! Linux's 64 KiB).
//!
//! The reference is poll-driven on both sides (see `worker.rs`); the control `pipe-blocking`
//! writes each message whole with blocking writes before reading, and both sides end up asleep
//! in a pipe write. When nothing moves for `--hang-timeout` (no ledger record, no byte read or
//! written per `/proc/<pid>/io`), the runner builds the workers' wait-for graph from `/proc`
//! (see `wait.rs`) and reports a HANG naming the **wait cycle**: each worker, the pipe it is
//! blocked writing, and that pipe's reader. No progress without a cycle (a stopped worker, one
//! asleep elsewhere) is reported as such, never as a cycle; a runnable worker is given time.
//!
//! **Why anonymous pipes passed by fd, not FIFOs in the ledger folder:** the runner creates
//! both pipes with `pipe2(O_CLOEXEC)` and clears close-on-exec on exactly the two ends a worker
//! needs for the moment it starts that worker (the runner starts workers from its one thread,
//! so no other child can inherit them), then closes its own copies. Nothing has a name, so
//! nothing is left behind and nobody else can open them; there is no open-order rendezvous (a
//! FIFO's `open` blocks until its peer opens, one more place to hang); and end of file and
//! `EPIPE` mean what they should, because once the runner's copies are closed the only ends are
//! the workers'. The worker checks each fd it is given is a pipe end open the right way.

mod run;
mod wait;
mod wire;
mod worker;

use crate::procs::{ProcScenario, WorkerArgs};
use crate::units::{format_duration, parse_positive, shell_word};
use clap::{ArgMatches, Args};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The engine name process controls of this scenario list in `caught_by`.
const ENGINE: &str = "torture pipe";
/// A run without progress while a worker is runnable is judged anyway after this many hang
/// timeouts (a worker spinning without moving a byte is stuck too).
const BUSY_LIMIT: u32 = 4;

fn parse_control(s: &str) -> Result<String, String> {
    crate::procs::controls::parse_for(ENGINE, s)
}

/// `torture pipe` flags.
#[derive(Debug, Clone, Args)]
pub struct PipeArgs {
    /// Requests the client sends (each answered by one response).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub requests: u32,
    /// Payload bytes of every request and response (262144 = 256 KiB: four default pipe buffers).
    #[arg(long, default_value_t = 262_144, value_parser = clap::value_parser!(u32).range(1..=67_108_864))]
    pub size: u32,
    /// Nothing read or written for this long (scaled by processes per core) is a hang.
    #[arg(long = "hang-timeout", default_value = "2s", value_parser = parse_positive)]
    pub hang_timeout: Duration,
    /// Seed of the payloads (default: from the clock; printed for the replay line).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run a negative control instead of the poll-driven reference (it should be caught).
    #[arg(long, value_parser = parse_control)]
    pub control: Option<String>,
    /// Reports to write.
    #[command(flatten)]
    pub out: crate::report::Outputs,
    /// Freeze and thaw (seed 003): a frozen side is named as stopped, never part of a cycle.
    #[command(flatten)]
    pub stops: crate::procs::faults::StopArgs,
    /// Kill a side at random; both are replaced by a new pair on new pipes, which goes on from
    /// the first response not yet checked (a killed peer ends its conversation: EOF, EPIPE).
    #[command(flatten)]
    pub kills: crate::procs::faults::KillArgs,
    /// Not a flag of pipe (always a client and a server): rejected with a clear line.
    #[arg(long, hide = true, value_parser = no_procs)]
    pub procs: Option<u32>,
}

fn no_procs(_: &str) -> Result<u32, String> {
    Err("pipe always runs 2 processes (a client and a server); it takes no --procs or sweep".into())
}

/// Which side a worker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends requests, checks responses.
    Client,
    /// Answers requests.
    Server,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }
}

/// A worker's spec.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    role: Role,
    /// The pipe end it reads (left open across exec by the runner).
    read_fd: i32,
    /// The pipe end it writes.
    write_fd: i32,
    requests: u32,
    size: u32,
    seed: u64,
    control: Option<String>,
    /// The first request of this pair (a pair started after a kill goes on from the first
    /// response its predecessor had not checked).
    first: u64,
}

/// Seed 004's client and server over two pipes.
pub struct PipeDeadlock;

impl ProcScenario for PipeDeadlock {
    fn name(&self) -> &'static str {
        "pipe"
    }

    fn command(&self) -> clap::Command {
        PipeArgs::augment_args(clap::Command::new("pipe"))
            .about("Seed 004: a client and a server process exchange messages larger than the pipe buffer over two pipes")
            .after_help("Exit codes: 0 every response checked (with --control: NOT caught), 1 a damaged message or a hang (with --control: caught), 2 usage or setup error.")
    }

    fn controls(&self) -> Vec<(&'static str, &'static str)> {
        crate::procs::controls::caught_by(ENGINE)
            .map(|c| (c.name, c.defect))
            .collect()
    }

    fn main(&self, program: &str, flags: &ArgMatches) -> u8 {
        let args: PipeArgs = match crate::procs::parse_flags("pipe", flags) {
            Ok(a) => a,
            Err(code) => return code,
        };
        crate::signals::install();
        // Always two processes (client and server): one run, no --procs (see `sweep`).
        let two = crate::procs::sweep::Sweep::one(2);
        crate::procs::sweep::main("pipe", &two, None, args.seed, &args.out, |_, seed| {
            let (control_flag, what) =
                crate::procs::control_words(args.control.as_deref(), "poll-driven reference");
            let replay = format!(
                "{} pipe --requests {} --size {} --hang-timeout {}{}{} --seed {seed}{control_flag}",
                shell_word(program),
                args.requests,
                args.size,
                format_duration(args.hang_timeout),
                args.stops.replay(),
                args.kills.replay(),
            );
            crate::out::say!(
                "pipe: client + server, {} requests of {} bytes each way, seed {seed}, {what}",
                args.requests,
                args.size
            );
            crate::procs::sweep::Single {
                control: args.control.clone(),
                replay,
                run: run::run(&args, seed),
            }
        })
    }

    fn worker(&self, w: &WorkerArgs) -> u8 {
        worker::run(w)
    }
}
