//! `torture pipe`: seed 004's pipe-buffer deadlock. A client process sends `--requests`
//! requests of `--size` bytes on a request pipe to a server process, which answers each with a
//! response of the same size on a response pipe; the client checks every response (framing and
//! payload: see [`wire`]). Messages are larger than the pipe buffer by default (256 KiB against
//! Linux's 64 KiB).
//!
//! The reference is poll-driven on both sides (see [`worker`]); the control `pipe-blocking`
//! writes each message whole with blocking writes before reading, and both sides end up asleep
//! in a pipe write. When nothing moves for `--hang-timeout` (no ledger record, no byte read or
//! written per `/proc/<pid>/io`), the runner builds the workers' wait-for graph from `/proc`
//! (see [`wait`]) and reports a HANG naming the **wait cycle**: each worker, the pipe it is
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

mod wait;
mod wire;
mod worker;

use self::wait::Seen;
use crate::procs::capture::{self, ProcInfo};
use crate::procs::crew::{Crew, Member};
use crate::procs::ledger::{self, Ledger, Op, Record};
use crate::procs::{ProcScenario, SetupError, WorkerArgs};
use crate::report::{Finding, FindingKind, Report, Verdict};
use crate::units::{format_duration, parse_positive, shell_word};
use clap::{ArgMatches, Args, FromArgMatches};
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use primitives::controls::{Control, Home, CONTROLS};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The engine name process controls of this scenario list in `caught_by`.
const ENGINE: &str = "torture pipe";
/// A run without progress while a worker is runnable is judged anyway after this many hang
/// timeouts (a worker spinning without moving a byte is stuck too).
const BUSY_LIMIT: u32 = 4;

/// The registry's controls this scenario runs.
fn pipe_controls() -> impl Iterator<Item = &'static Control> {
    CONTROLS
        .iter()
        .filter(|c| c.home == Home::Process && c.caught_by.contains(&ENGINE))
}

fn parse_control(s: &str) -> Result<String, String> {
    pipe_controls()
        .find(|c| c.name == s)
        .map(|c| c.name.to_string())
        .ok_or_else(|| {
            let known: Vec<_> = pipe_controls().map(|c| c.name).collect();
            format!("unknown control {s:?}; known: {}", known.join(", "))
        })
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
    /// Also write a machine-readable report (JSON) to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
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
        pipe_controls().map(|c| (c.name, c.defect)).collect()
    }

    fn main(&self, program: &str, flags: &ArgMatches) -> u8 {
        let args = match PipeArgs::from_arg_matches(flags) {
            Ok(a) => a,
            Err(e) => {
                crate::warn!("torture pipe: error: {}", e.to_string().trim());
                return 2;
            }
        };
        crate::signals::install();
        let seed = args.seed.unwrap_or_else(crate::prng::fresh_seed);
        let replay = format!(
            "{} pipe --requests {} --size {} --hang-timeout {} --seed {seed}{}",
            shell_word(program),
            args.requests,
            args.size,
            format_duration(args.hang_timeout),
            args.control
                .as_ref()
                .map(|c| format!(" --control {c}"))
                .unwrap_or_default()
        );
        crate::say!(
            "pipe: client + server, {} requests of {} bytes each way, seed {seed}, {}",
            args.requests,
            args.size,
            args.control
                .as_deref()
                .map_or("poll-driven reference".to_string(), |c| format!(
                    "CONTROL {c}"
                ))
        );
        let outcome = match run(&args, seed) {
            Ok(o) => o,
            Err(e) => {
                crate::warn!("torture pipe: setup error: {}", e.0);
                return 2;
            }
        };
        if let Some(sig) = &outcome.interrupted {
            crate::say_raw!("{}", outcome.summary);
            crate::warn!("torture pipe: interrupted by {sig}; workers reaped, ledgers removed");
            return 2;
        }
        let verdict = Verdict::of(args.control.is_some(), !outcome.findings.is_empty());
        Report {
            tool: "torture",
            version: env!("CARGO_PKG_VERSION"),
            command: "pipe",
            control: args.control.clone(),
            seed,
            verdict,
            exit_code: verdict.exit_code(),
            summary: outcome.summary,
            figures: outcome.figures,
            findings: outcome.findings,
            replay,
        }
        .emit(args.json.as_deref())
    }

    fn worker(&self, w: &WorkerArgs) -> u8 {
        worker::run(w)
    }
}

struct Outcome {
    summary: String,
    figures: serde_json::Value,
    findings: Vec<Finding>,
    interrupted: Option<String>,
}

/// The two pipes as the runner knows them: inodes, capacity, and each worker's fd numbers.
struct Pipes {
    request: u64,
    response: u64,
    capacity: usize,
    /// (read fd, write fd) of the client and of the server, by role index.
    fds: [(i32, i32); 2],
}

impl Pipes {
    fn name(&self, ino: u64) -> String {
        if ino == self.request {
            "request".into()
        } else if ino == self.response {
            "response".into()
        } else {
            format!("pipe:[{ino}]")
        }
    }

    /// The pipe role `i` writes.
    fn written_by(&self, i: usize) -> u64 {
        if i == 0 {
            self.request
        } else {
            self.response
        }
    }
}

fn setup(what: &str) -> impl FnOnce(nix::Error) -> SetupError + '_ {
    move |e| SetupError(format!("{what}: {e}"))
}

/// Starts a worker with `fds` (and only those of the pipes) open across its exec.
fn spawn_with(crew: &mut Crew, fds: [&OwnedFd; 2], spec: &Spec) -> Result<usize, SetupError> {
    for fd in fds {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).map_err(setup("fcntl"))?;
    }
    let r = crew.spawn(spec);
    for fd in fds {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(setup("fcntl"))?;
    }
    r
}

fn run(args: &PipeArgs, seed: u64) -> Result<Outcome, SetupError> {
    crate::procs::crew::check_nproc(2)?;
    let mut crew = Crew::new("pipe")?;
    let (req_r, req_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(setup("pipe2"))?;
    let (resp_r, resp_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(setup("pipe2"))?;
    let ino = |fd: &OwnedFd| nix::sys::stat::fstat(fd).map(|s| s.st_ino);
    let pipes = Pipes {
        request: ino(&req_r).map_err(setup("fstat"))?,
        response: ino(&resp_r).map_err(setup("fstat"))?,
        capacity: fcntl(&req_w, FcntlArg::F_GETPIPE_SZ).map_or(0, |c| c.max(0) as usize),
        fds: [
            (resp_r.as_raw_fd(), req_w.as_raw_fd()),
            (req_r.as_raw_fd(), resp_w.as_raw_fd()),
        ],
    };
    let spec = |role: Role, (read_fd, write_fd): (i32, i32)| Spec {
        role,
        read_fd,
        write_fd,
        requests: args.requests,
        size: args.size,
        seed,
        control: args.control.clone(),
    };
    let roles = [Role::Client, Role::Server];
    let start = Instant::now();
    spawn_with(&mut crew, [&resp_r, &req_w], &spec(roles[0], pipes.fds[0]))?;
    spawn_with(&mut crew, [&req_r, &resp_w], &spec(roles[1], pipes.fds[1]))?;
    // The workers' ends are now the only ones: end of file and EPIPE mean what they should.
    drop((req_r, req_w, resp_r, resp_w));
    let hang = args.hang_timeout * capture::load_factor(2, 1).min(4);
    let mut findings = Vec::new();
    let mut interrupted = None;
    let mut marks = progress(&crew);
    let mut last_progress = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if let Some(sig) = crate::signals::received() {
            interrupted = Some(sig.as_str().to_string());
            break;
        }
        let exited = crew.exited();
        for (i, status) in &exited {
            if !status.success() {
                findings.push(ended(&crew, roles[*i], *i, *status));
            }
        }
        if exited.len() == crew.members().len() || !findings.is_empty() {
            break;
        }
        let now = progress(&crew);
        if now != marks {
            marks = now;
            last_progress = Instant::now();
            continue;
        }
        if last_progress.elapsed() <= hang {
            continue;
        }
        match judge(&crew, &roles, &pipes, hang) {
            Judged::Moved => {
                marks = progress(&crew);
                last_progress = Instant::now();
            }
            Judged::Busy if last_progress.elapsed() < hang * BUSY_LIMIT => {}
            judged @ (Judged::Busy | Judged::Stuck(_)) => {
                let text = match judged {
                    Judged::Stuck(t) => t,
                    _ => details(crew.members(), &look(&crew, &roles, &pipes), &pipes)
                        .trim_end()
                        .to_string(),
                };
                findings.push(Finding::new(
                    FindingKind::Wedged,
                    format!(
                        "NO PROGRESS for {:.1} s, and no wait cycle among the workers\n{text}",
                        last_progress.elapsed().as_secs_f64()
                    ),
                ));
                break;
            }
            Judged::Cycle(text) => {
                findings.push(Finding::new(
                    FindingKind::Hang,
                    format!(
                        "{text}\n    no byte moved for {:.1} s; each side waits for the other to read before it reads: write what fits and read what is there (poll both directions), or bound what is in flight below the pipe buffer",
                        last_progress.elapsed().as_secs_f64()
                    ),
                ));
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    // Freeze both, then kill: a worker woken by its peer's death (EPIPE) has nothing to say.
    // Only workers not yet reaped: a reaped one's pid (and group) may belong to someone else.
    for sig in [Signal::SIGSTOP, Signal::SIGKILL] {
        for m in crew.members_mut() {
            if m.exited().is_none() {
                let _ = killpg(Pid::from_raw(m.pid() as i32), sig);
            }
        }
    }
    crew.kill_all();
    let ledgers: Vec<Option<Ledger>> = crew.all_ledgers().iter().map(|p| Ledger::read(p)).collect();
    let count = |i: usize, op: Op| {
        ledgers.get(i).and_then(Option::as_ref).map_or(0, |l| {
            l.records
                .iter()
                .filter(|r| matches!(r, Record::Done { op: o, .. } if *o == op))
                .count()
        })
    };
    let (checked, answered) = (count(0, Op::Take), count(1, Op::Put));
    let complete = findings.is_empty() && interrupted.is_none();
    if complete {
        end_checks(args, &ledgers, &mut findings);
    }
    let n = u64::from(args.requests);
    let bytes = 2 * n * u64::from(args.size);
    let mib_s = bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9);
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "pipe: {answered} of {n} requests answered, {checked} responses checked, {} bytes each, through {}-byte pipe buffers, in {:.3} s",
        args.size,
        pipes.capacity,
        elapsed.as_secs_f64()
    );
    if complete && findings.is_empty() {
        let _ = writeln!(
            summary,
            "  every response checked: {:.1} MiB moved, {mib_s:.0} MiB/s (requests + responses)",
            bytes as f64 / (1024.0 * 1024.0)
        );
    }
    let figures = serde_json::json!({
        "requests": n, "size": args.size, "pipe_buffer": pipes.capacity,
        "answered": answered, "checked": checked,
        "elapsed_ms": elapsed.as_secs_f64() * 1e3,
        "mib_per_s": if complete { mib_s } else { 0.0 },
    });
    drop(crew);
    Ok(Outcome {
        summary,
        figures,
        findings,
        interrupted,
    })
}

/// A worker that ended with a failure: TORN if it recorded a damaged message.
fn ended(crew: &Crew, role: Role, i: usize, status: std::process::ExitStatus) -> Finding {
    let m = &crew.members()[i];
    let last = ledger::last_record(&m.ledger);
    match last {
        Some(Record::Torn { id }) => Finding::new(
            FindingKind::Torn,
            format!(
                "TORN: the {} (pid {}) received a damaged or mixed-up message {id} ({status}; its stderr says how)",
                role.name(),
                m.pid()
            ),
        ),
        _ => Finding::new(
            FindingKind::Worker,
            format!(
                "the {} (pid {}) ended with {status}; its last record was {:?}",
                role.name(),
                m.pid(),
                last.map(|r| r.to_string())
            ),
        ),
    }
}

/// Every response checked in order by the client; every request answered by the server.
fn end_checks(args: &PipeArgs, ledgers: &[Option<Ledger>], findings: &mut Vec<Finding>) {
    let n = u64::from(args.requests);
    let done = |i: usize, op: Op| -> Vec<u64> {
        ledgers
            .get(i)
            .and_then(Option::as_ref)
            .map(|l| {
                l.records
                    .iter()
                    .filter_map(|r| match r {
                        Record::Done {
                            op: o,
                            id: Some(id),
                        } if *o == op => Some(*id),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let want: Vec<u64> = (1..=n).collect();
    for (i, op, what) in [
        (0, Op::Put, "client sent requests"),
        (0, Op::Take, "client checked responses"),
        (1, Op::Take, "server read requests"),
        (1, Op::Put, "server sent responses"),
    ] {
        let got = done(i, op);
        if got != want {
            findings.push(Finding::new(
                FindingKind::Count,
                format!(
                    "COUNT: {what}: {} records, not 1..={n} in order (first: {:?})",
                    got.len(),
                    &got[..got.len().min(5)]
                ),
            ));
        }
    }
    for l in ledgers.iter().flatten() {
        if let Some(b) = l.bad.first() {
            findings.push(Finding::new(
                FindingKind::Worker,
                format!("bad ledger record {:?} in {}", b.0, l.path.display()),
            ));
        }
    }
}

/// Progress marks: each worker's ledger length and bytes read + written (`/proc/<pid>/io`).
fn progress(crew: &Crew) -> Vec<u64> {
    crew.members()
        .iter()
        .flat_map(|m| {
            let len = std::fs::metadata(&m.ledger).map_or(0, |md| md.len());
            let io = std::fs::read_to_string(format!("/proc/{}/io", m.pid()))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("rchar:") || l.starts_with("wchar:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
            [len, io]
        })
        .collect()
}

/// Each worker as `/proc` (or, failing that, its ledger) shows it now.
fn look(crew: &Crew, roles: &[Role], pipes: &Pipes) -> Vec<Seen> {
    crew.members()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let pid = m.pid();
            let writing = match wait::in_write(pid) {
                Some(Some(fd)) => wait::pipe_of(pid, fd).map(|ino| (ino, fd, "/proc/PID/syscall")),
                Some(None) => None,
                // No ptrace access to /proc/<pid>/syscall: its ledger says what it writes.
                None => match ledger::last_record(&m.ledger) {
                    Some(Record::Begin { op: Op::Put, .. }) => {
                        Some((pipes.written_by(i), pipes.fds[i].1, "its ledger"))
                    }
                    _ => None,
                },
            };
            Seen {
                role: roles[i].name(),
                pid,
                info: ProcInfo::of(pid),
                writing,
            }
        })
        .collect()
}

enum Judged {
    /// Something moved during the look.
    Moved,
    /// A worker is runnable or waited for a CPU: the machine is busy, not the workers stuck.
    Busy,
    /// A wait cycle: the report's text.
    Cycle(String),
    /// Stuck without a cycle: the diagnosis.
    Stuck(String),
}

/// Looks twice, a confirmation window apart, at workers that have not moved for the hang
/// timeout: the same cycle both times, nothing moved and nobody runnable is a HANG.
fn judge(crew: &Crew, roles: &[Role], pipes: &Pipes, hang: Duration) -> Judged {
    let confirm = (hang / 10).clamp(Duration::from_millis(20), Duration::from_millis(500));
    let marks = progress(crew);
    let first = look(crew, roles, pipes);
    let readers = |seen: &[Seen]| {
        let pids: Vec<u32> = seen.iter().map(|s| s.pid).collect();
        move |j: usize, ino: u64| wait::reads(pids[j], ino)
    };
    let before = wait::cycle(&first, &readers(&first));
    std::thread::sleep(confirm);
    if progress(crew) != marks {
        return Judged::Moved;
    }
    let second = look(crew, roles, pipes);
    let queued = |s: &[Seen], i: usize| s[i].info.run_queue_wait.unwrap_or_default();
    let busy = second.iter().enumerate().any(|(i, s)| {
        s.info.state == Some('R')
            || queued(&second, i).saturating_sub(queued(&first, i)) * 2 > confirm
    });
    if busy {
        return Judged::Busy;
    }
    let after = wait::cycle(&second, &readers(&second));
    match (before, after) {
        (Some(a), Some(b)) if a == b => Judged::Cycle(format!(
            "HANG: wait cycle: {}\n{}",
            wait::describe_cycle(&second, &b, &|ino| pipes.name(ino)),
            details(crew.members(), &second, pipes).trim_end()
        )),
        _ => Judged::Stuck(
            details(crew.members(), &second, pipes)
                .trim_end()
                .to_string(),
        ),
    }
}

/// One line per worker: state, wait channel, the pipe it writes (and how full), last record.
fn details(members: &[Member], seen: &[Seen], pipes: &Pipes) -> String {
    let mut s = String::new();
    for (w, m) in seen.iter().zip(members) {
        let writing = match w.writing {
            Some((ino, fd, how)) => {
                let fill = wait::fill(w.pid, fd).map_or_else(String::new, |(n, cap)| {
                    format!(", {n} of {cap} bytes buffered")
                });
                format!(
                    "inside write(2) on fd {fd}, the {} pipe (pipe:[{ino}]{fill}; per {})",
                    pipes.name(ino),
                    how.replace("PID", &w.pid.to_string())
                )
            }
            None => "not writing a pipe".into(),
        };
        let stopped = if matches!(w.info.state, Some('T' | 't')) {
            " — STOPPED by a signal: never part of a wait cycle; whoever waits on it waits on a stopped process"
        } else {
            ""
        };
        let last = match ledger::last_record(&m.ledger) {
            Some(r @ Record::Begin { start_ns, .. }) => format!(
                "{:?} for {:.1} s",
                r.to_string(),
                ledger::now_ns().saturating_sub(start_ns) as f64 / 1e9
            ),
            Some(r) => format!("{:?}", r.to_string()),
            None => "none".into(),
        };
        let _ = writeln!(
            s,
            "    {} pid {}: {}; {writing}{stopped}; last record {last}",
            w.role,
            w.pid,
            w.info.describe()
        );
    }
    s
}
