//! The runner: creates the two pipes, starts the client and the server with their ends, watches
//! progress, judges a run that stopped moving (wait cycle or not, from [`super::wait`]), and
//! checks the ledgers at the end.

use super::wait::{self, Seen};
use super::{PipeArgs, Role, Spec, BUSY_LIMIT};
use crate::procs::capture::{self, ProcInfo};
use crate::procs::crew::{Crew, Member};
use crate::procs::faults::{Freezer, StallClock};
use crate::procs::ledger::{self, Ledger, Op, Record};
use crate::procs::Outcome;
use crate::procs::SetupError;
use crate::report::{Finding, FindingKind};
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

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

/// Starts a worker with `fds` (and only those of the pipes) open across its exec: a new member,
/// or in place of member `slot`.
fn spawn_with(
    crew: &mut Crew,
    fds: [&OwnedFd; 2],
    spec: &Spec,
    slot: Option<usize>,
) -> Result<(), SetupError> {
    for fd in fds {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).map_err(setup("fcntl"))?;
    }
    let r = match slot {
        Some(i) => crew.respawn(i, spec),
        None => crew.spawn(spec).map(|_| ()),
    };
    for fd in fds {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(setup("fcntl"))?;
    }
    r
}

/// Makes two new pipes and starts a client and a server on them from request `first` (as
/// members 0 and 1, replacing them if `replace`); the runner's copies of the ends are closed
/// before it returns, so end of file and EPIPE mean what they should.
fn start_pair(
    crew: &mut Crew,
    args: &PipeArgs,
    seed: u64,
    first: u64,
    replace: bool,
) -> Result<Pipes, SetupError> {
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
        first,
    };
    let slot = |i: usize| replace.then_some(i);
    spawn_with(
        crew,
        [&resp_r, &req_w],
        &spec(Role::Client, pipes.fds[0]),
        slot(0),
    )?;
    spawn_with(
        crew,
        [&req_r, &resp_w],
        &spec(Role::Server, pipes.fds[1]),
        slot(1),
    )?;
    drop((req_r, req_w, resp_r, resp_w));
    Ok(pipes)
}

/// The responses the clients checked so far, in order, over every client's ledger (members
/// are started client first, so every other ledger is a client's).
fn checked(crew: &Crew) -> Vec<u64> {
    crew.all_ledgers()
        .iter()
        .step_by(2)
        .filter_map(|p| Ledger::read(p))
        .flat_map(|l| {
            l.records.into_iter().filter_map(|r| match r {
                Record::Done {
                    op: Op::Take,
                    id: Some(id),
                    ..
                } => Some(id),
                _ => None,
            })
        })
        .collect()
}

/// Stops both workers (SIGSTOP to each group) and waits, briefly, until they are stopped.
fn freeze_both(crew: &Crew) {
    for m in crew.members() {
        let _ = killpg(Pid::from_raw(m.pid() as i32), Signal::SIGSTOP);
    }
    let until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < until
        && crew
            .members()
            .iter()
            .any(|m| !matches!(ProcInfo::of(m.pid()).state, Some('T' | 't' | 'Z') | None))
    {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs the client and the server to the end, or to a hang.
pub(super) fn run(args: &PipeArgs, seed: u64) -> Result<Outcome, SetupError> {
    crate::procs::crew::check_nproc(2)?;
    let mut crew = Crew::new("pipe")?;
    let roles = [Role::Client, Role::Server];
    let start = Instant::now();
    let mut pipes = start_pair(&mut crew, args, seed, 1, false)?;
    let mut killer = crate::procs::faults::Killer::new(&args.kills, seed);
    let hang = args.hang_timeout * capture::load_factor(2, 1).min(4);
    let mut findings = Vec::new();
    let mut interrupted = None;
    let mut marks = progress(&crew);
    let mut stall = StallClock::new();
    let mut freezer = Freezer::new(&args.stops, seed);
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
        // A kill: one side dies at a random moment, and the pair is replaced by a new one on
        // new pipes that goes on from the first response not yet checked. Both sides are
        // frozen first, so that the count of checked responses cannot move under the runner and
        // the survivor does not report its peer's death (EPIPE) as its own failure.
        if exited.is_empty() {
            if let Some(victim) = killer.due(2) {
                freeze_both(&crew);
                let first = checked(&crew).last().map_or(1, |k| k + 1);
                if first <= u64::from(args.requests) {
                    crew.kill(victim);
                    pipes = start_pair(&mut crew, args, seed, first, true)?;
                    marks = progress(&crew);
                    stall.reset();
                    continue;
                }
                killer.kills -= 1; // nothing left to kill for
                for m in crew.members() {
                    let _ = killpg(Pid::from_raw(m.pid() as i32), Signal::SIGCONT);
                }
            }
        }
        let running: Vec<u32> = (0..crew.members().len())
            .filter(|i| !exited.iter().any(|(j, _)| j == i))
            .map(|i| crew.members()[i].pid())
            .collect();
        freezer.tick(&running);
        let now = progress(&crew);
        // Time during which a worker is frozen by us does not count as a stall.
        let stalled = stall.tick(now != marks, freezer.any_frozen());
        if now != marks {
            marks = now;
            continue;
        }
        if stalled <= hang {
            continue;
        }
        match judge(&crew, &roles, &pipes, hang) {
            Judged::Moved => {
                marks = progress(&crew);
                stall.reset();
            }
            Judged::Busy if stalled < hang * BUSY_LIMIT => {}
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
                        stalled.as_secs_f64()
                    ),
                ));
                break;
            }
            Judged::Cycle(text) => {
                findings.push(Finding::new(
                    FindingKind::Hang,
                    format!(
                        "{text}\n    no byte moved for {:.1} s; each side waits for the other to read before it reads: write what fits and read what is there (poll both directions), or bound what is in flight below the pipe buffer",
                        stalled.as_secs_f64()
                    ),
                ));
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    let stops = freezer.stops;
    drop(freezer);
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
    // Members start client first: ledger 2k is a client's, 2k+1 its server's.
    let count = |role: usize, op: Op| -> usize {
        ledgers
            .iter()
            .skip(role)
            .step_by(2)
            .flatten()
            .map(|l| {
                l.records
                    .iter()
                    .filter(|r| matches!(r, Record::Done { op: o, .. } if *o == op))
                    .count()
            })
            .sum()
    };
    let checked_ids = checked(&crew);
    let (checked, answered) = (checked_ids.len(), count(1, Op::Put));
    let complete = findings.is_empty() && interrupted.is_none();
    if complete && killer.kills == 0 {
        end_checks(args, &ledgers, &mut findings);
    } else if complete {
        // After kills, requests in flight were sent again by the next pair; what must hold is
        // that the clients together checked every response once, in order.
        let want: Vec<u64> = (1..=u64::from(args.requests)).collect();
        if checked_ids != want {
            findings.push(Finding::new(
                FindingKind::Count,
                format!(
                    "COUNT: after {} kills the clients checked {} responses, not 1..={} once each in order (first: {:?})",
                    killer.kills,
                    checked_ids.len(),
                    args.requests,
                    &checked_ids[..checked_ids.len().min(5)]
                ),
            ));
        }
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
    if killer.kills > 0 {
        let _ = writeln!(
            summary,
            "  {} kills, each followed by a new client and server on new pipes from the first response not yet checked",
            killer.kills
        );
    }
    if complete && findings.is_empty() {
        let _ = writeln!(
            summary,
            "  every response checked: {:.1} MiB moved, {mib_s:.0} MiB/s (requests + responses)",
            bytes as f64 / (1024.0 * 1024.0)
        );
    }
    let figures = serde_json::json!({
        "requests": n, "size": args.size, "pipe_buffer": pipes.capacity, "kills": killer.kills,
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
        // Messages: requests answered by the server, responses checked by the client.
        ops: (answered + checked) as u64,
        elapsed,
        faults: crate::procs::Faults {
            kills: killer.kills as u64,
            stops: stops as u64,
        },
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
                            ..
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
