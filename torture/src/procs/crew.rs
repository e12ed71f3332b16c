//! The crew: worker processes of a process scenario. Every worker is this binary re-executed
//! (`torture __worker SCENARIO --id N --runner PID --ledger PATH --spec JSON`), never forked
//! from the threaded runner, with a typed, serialised spec instead of positional arguments.
//!
//! Discipline (each point was a reproduced failure of the first runner):
//! - Each worker is a [`Tied`] child: it **dies with its runner**, also under a subreaper and
//!   when the runner is PID 1, leads its own **process group**, and is killed and reaped when
//!   dropped. Spawning happens on the runner's main thread.
//! - **Every exit path reaps**: [`Crew`]'s `Drop` kills and reaps every worker and removes the
//!   ledger folder, passing or failing (a report quotes what it needs from the ledgers first).
//! - The ledger folder is made under `TMPDIR` (or `/tmp`), which must exist: a missing one is a
//!   setup error, never created silently.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use super::tied::Tied;
use super::SetupError;

/// One worker process.
pub struct Member {
    /// Unique per spawned worker of this crew (1, 2, ...): its incarnation.
    pub id: u32,
    /// The process (tied to the runner: see [`super::tied`]).
    pub child: Tied,
    /// Its ledger file.
    pub ledger: PathBuf,
    /// Ledger length at the last look.
    pub last_len: u64,
    /// When the ledger last grew.
    pub last_change: Instant,
}

impl Member {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait()
    }
}

/// The workers of one run; see the module docs.
pub struct Crew {
    exe: PathBuf,
    scenario: &'static str,
    dir: PathBuf,
    members: Vec<Member>,
    next_id: u32,
    chaos: Option<u64>,
    board: super::board::Board,
}

/// The folder under which ledger folders are made: `TMPDIR` if set (it must exist), else `/tmp`.
pub fn temp_root() -> Result<PathBuf, SetupError> {
    let root = std::env::var_os("TMPDIR")
        .filter(|t| !t.is_empty())
        .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    if !root.is_dir() {
        return Err(SetupError(format!(
            "the temporary folder {} (TMPDIR) does not exist or is not a folder",
            root.display()
        )));
    }
    Ok(root)
}

/// Refuses to run where `/proc` belongs to another PID namespace (a runner started by
/// `unshare --pid --fork` without `--mount-proc`): every liveness check of a participant reads
/// `/proc/<pid>`, and would read someone else's.
pub fn check_proc() -> Result<(), SetupError> {
    let me = std::process::id();
    match std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse::<u32>().ok()))
    {
        Some(p) if p == me => Ok(()),
        Some(p) => Err(SetupError(format!(
            "/proc is not this PID namespace's (it calls this process {p}, the kernel {me}): mount a /proc for it (e.g. unshare --pid --fork --mount-proc)"
        ))),
        None => Err(SetupError(
            "cannot read /proc/self: a mounted /proc is needed to tell live participants from dead ones".into(),
        )),
    }
}

/// Refuses a crew the user's process limit cannot hold (`RLIMIT_NPROC`; not enforced for root).
pub fn check_nproc(procs: usize) -> Result<(), SetupError> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
        .map_err(|e| SetupError(format!("cannot read RLIMIT_NPROC: {e}")))?;
    // A killed worker and its replacement overlap for a moment; the runner counts too.
    let needed = (procs as u64).saturating_mul(2) + 8;
    if soft != nix::sys::resource::RLIM_INFINITY && soft < needed {
        return Err(SetupError(format!(
            "--procs {procs} needs up to {needed} processes, but this user's process limit (ulimit -u) is {soft}"
        )));
    }
    Ok(())
}

impl Crew {
    /// A crew of `scenario` workers, with a fresh ledger folder.
    pub fn new(scenario: &'static str) -> Result<Crew, SetupError> {
        check_proc()?;
        let exe = std::env::current_exe()
            .map_err(|e| SetupError(format!("cannot find this binary to re-execute it: {e}")))?;
        let root = temp_root()?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = root.join(format!("torture-{scenario}-{}-{stamp}", std::process::id()));
        let board = super::board::Board::create(&primitives::shm::ShmName::unique("board"))
            .map_err(|e| SetupError(format!("cannot create the status board: {e}")))?;
        if let Err(e) = std::fs::create_dir(&dir) {
            let _ = board.segment().unlink();
            return Err(SetupError(format!("cannot create {}: {e}", dir.display())));
        }
        Ok(Crew {
            exe,
            scenario,
            dir,
            members: Vec::new(),
            next_id: 1,
            chaos: None,
            board,
        })
    }

    /// Workers started from now on run in chaos mode (`--chaos`): spurious wake-ups and short
    /// random delays at the primitives' synchronisation points, seeded from `seed` and their id.
    pub fn set_chaos(&mut self, seed: Option<u64>) {
        self.chaos = seed;
    }

    /// The ledger folder (removed when the crew is dropped).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The workers alive now (or not yet reaped).
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// As [`Crew::members`], mutable (for the ledger bookkeeping).
    pub fn members_mut(&mut self) -> &mut [Member] {
        &mut self.members
    }

    /// The ledger path of worker `id`.
    pub fn ledger_of(&self, id: u32) -> PathBuf {
        self.dir.join(format!("worker-{id}.ledger"))
    }

    /// Every ledger path of every worker ever spawned.
    pub fn all_ledgers(&self) -> Vec<PathBuf> {
        (1..self.next_id).map(|id| self.ledger_of(id)).collect()
    }

    /// The id the next spawned worker gets.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// The crew's status board (see [`super::board`]).
    pub fn board(&self) -> &super::board::Board {
        &self.board
    }

    fn start(&mut self, spec: &impl Serialize, slot: usize) -> Result<Member, SetupError> {
        let id = self.next_id;
        let ledger = self.ledger_of(id);
        let spec = serde_json::to_string(spec)
            .map_err(|e| SetupError(format!("cannot encode a worker spec: {e}")))?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("__worker")
            .arg(self.scenario)
            .arg("--id")
            .arg(id.to_string())
            .arg("--runner")
            .arg(std::process::id().to_string())
            .arg("--ledger")
            .arg(&ledger)
            .arg("--spec")
            .arg(spec)
            .arg("--board")
            .arg(self.board.segment().name().as_str())
            .arg("--slot")
            .arg(slot.to_string())
            .args(
                self.chaos
                    .map(|seed| ["--chaos".to_string(), (seed ^ u64::from(id)).to_string()])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = Tied::spawn(&mut cmd).map_err(|e| {
            SetupError(format!(
                "cannot start a worker ({}): {e}",
                self.exe.display()
            ))
        })?;
        self.next_id += 1;
        Ok(Member {
            id,
            child,
            ledger,
            last_len: 0,
            last_change: Instant::now(),
        })
    }

    /// Starts a worker with `spec`; returns its index in [`Crew::members`].
    pub fn spawn(&mut self, spec: &impl Serialize) -> Result<usize, SetupError> {
        let m = self.start(spec, self.members.len())?;
        self.members.push(m);
        Ok(self.members.len() - 1)
    }

    /// Kills worker `i` (its process group, SIGKILL) and reaps it.
    pub fn kill(&mut self, i: usize) {
        kill_member(&mut self.members[i]);
    }

    /// Kills worker `i` and starts a new one with `spec` in its place.
    pub fn respawn(&mut self, i: usize, spec: &impl Serialize) -> Result<(), SetupError> {
        self.kill(i);
        self.members[i] = self.start(spec, i)?;
        Ok(())
    }

    /// Workers that ended by themselves since the last call (they stay listed, reaped).
    pub fn exited(&mut self) -> Vec<(usize, ExitStatus)> {
        self.members
            .iter_mut()
            .enumerate()
            .filter_map(|(i, m)| m.exited().map(|s| (i, s)))
            .collect()
    }

    /// One line per worker for a hang report (pid, kernel state and wait channel, last ledger
    /// record, silent for how long); workers in the same state inside the same kind of
    /// operation are one line with a count once they are more than `one_by_one`.
    pub fn describe_members(&self, one_by_one: usize) -> String {
        use std::fmt::Write as _;
        let mut kinds: Vec<(String, Vec<String>)> = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            let last = super::ledger::last_record(&m.ledger);
            let state = super::capture::ProcInfo::of(m.pid()).describe();
            let now = super::ledger::now_ns();
            let board = self
                .board
                .read(i)
                .filter(|s| s.id == m.id)
                .map(|s| s.describe(now));
            let doing = match &last {
                Some(super::ledger::Record::Begin { op, .. }) => format!("inside a {op}"),
                Some(_) => "between operations".to_string(),
                None => "no record yet".to_string(),
            };
            let line = match board {
                Some(b) => format!("worker {} pid {}: {state}; {b}", m.id, m.pid()),
                None => format!(
                    "worker {} pid {}: {state}; last record {:?}; silent for {:.1} s",
                    m.id,
                    m.pid(),
                    last.map_or_else(String::new, |r| r.to_string()),
                    m.last_change.elapsed().as_secs_f64()
                ),
            };
            let key = format!("{state}, {doing}");
            match kinds.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(line),
                None => kinds.push((key, vec![line])),
            }
        }
        let mut s = String::new();
        for (key, lines) in kinds {
            if lines.len() <= one_by_one {
                for l in lines {
                    let _ = writeln!(s, "    {l}");
                }
            } else {
                let _ = writeln!(s, "    {} workers: {key} (e.g. {})", lines.len(), lines[0]);
            }
        }
        s
    }

    /// Whether any worker's ledger grew since the last call (updating each one's
    /// `last_len`/`last_change`).
    pub fn ledgers_grew(&mut self) -> bool {
        let mut grew = false;
        for m in &mut self.members {
            let len = std::fs::metadata(&m.ledger).map_or(0, |md| md.len());
            if len != m.last_len {
                m.last_len = len;
                m.last_change = Instant::now();
                grew = true;
            }
        }
        grew
    }

    /// Kills and reaps every worker.
    pub fn kill_all(&mut self) {
        for m in &mut self.members {
            kill_member(m);
        }
    }
}

fn kill_member(m: &mut Member) {
    m.child.kill();
}

impl Drop for Crew {
    fn drop(&mut self) {
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = self.board.segment().unlink();
    }
}
