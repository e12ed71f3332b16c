//! `torture mvar`: seed 000's run across processes — the very run that hung for its author. A
//! master process puts `--procs` values into one shared-memory MVar; `--procs` slave processes
//! each take a value and put it back `--rounds` times, then take one for good. Every operation
//! blocks (as in the seed: no deadline the run relies on). At the end the box is empty and every
//! value was taken for good by exactly one slave.
//!
//! A run that stops committing for `--hang-timeout` (scaled by processes per core) is a HANG,
//! reported with each stuck worker's operation, kernel state and wait channel; sleeps that end
//! by their time slice although the box was ready are LOST WAKE-UPS, reported with the workers
//! asleep in a `take` while the box is full (or in a `put` while it is empty): seed 000's
//! private-futex failure, named take by take.
//!
//! The box is the reference `SharedMVar` (or a `--control` flavour of it), or a user's C library
//! (`--impl-lib PATH`, see [`crate::procs::impls`]), through one seam. What an implementation
//! does not promise is not checked, and the report lists it: without COMMITS progress is
//! judged from the ledgers' returned operations and values lost with killed workers are only
//! bounded, not counted exactly; without HOLDER a hang after a kill cannot be blamed on a dead
//! lock holder; the lost-wake-up statistic is the reference's own. A hang after a kill with
//! the lock held by a dead pid is NOT ROBUST (`not robust to kill -9: lock held by dead pid N`).

mod check;
mod kills;
mod linearize;

use self::check::{check, lost_wakeups, sleeper_despite_ready};
use super::kill_storm::payload;
use crate::procs::capture;
use crate::procs::crew::Crew;
use crate::procs::faults::{Freezer, KillArgs, Killer, StallClock, StopArgs};
use crate::procs::impls::judge::{
    dead_holder, diagnose, holder_state, no_holder, wedged_holder, DoneCount,
};
use crate::procs::impls::{self, Caps, Implementation, MVarHandle, Status};
use crate::procs::ledger::{self, Ledger, Op, Record, Writer};
use crate::procs::sweep::{self, Shard, Single, Sweep};
use crate::procs::{controls, Faults, Outcome, ProcScenario, SetupError, WorkerArgs};
use crate::report::{Finding, FindingKind};
use crate::units::{format_duration, parse_positive, shell_word};
use clap::{ArgMatches, Args};
use primitives::shm::ShmName;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Late wake-ups below this many are never reported. Nobody is killed here, so a late wake-up
/// has no excuse: the reference shows 0 in runs of 2–8 slaves and under 1% of sleeps at 50–500
/// (measured with and without four CPU hogs); the private-futex control shows 4 of 6 sleeps at
/// 2 slaves, ~15% at 50.
pub(crate) const LATE_WAKES_FLOOR: u64 = 2;
/// Bytes per value.
const PAYLOAD: usize = 64;
/// A worker's blocking operation gives up after this many hang timeouts (a safety valve only:
/// the runner reports the hang long before).
const VALVE: u32 = 20;

/// `torture mvar` flags.
#[derive(Debug, Clone, Args)]
pub struct MvarArgs {
    /// Slave processes (plus one master): a count, or a sweep A:B:xK (geometric) or A:B:+K
    /// (arithmetic) run once per count.
    #[arg(long, default_value = "10", value_name = "N|A:B:xK|A:B:+K", value_parser = sweep::procs(1, 1000))]
    pub procs: Sweep,
    /// Of a sweep's runs, run those whose index is i-1 mod n (1-based).
    #[arg(long, value_name = "i/n", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// Take-and-put-back rounds per slave before its final take.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub rounds: u32,
    /// No commit for this long (scaled by processes per core) is a hang.
    #[arg(long = "hang-timeout", default_value = "2s", value_parser = parse_positive)]
    pub hang_timeout: Duration,
    /// Check the history for linearizability when it has at most this many operations.
    #[arg(long = "check-max-ops", default_value_t = 1000)]
    pub check_max_ops: usize,
    /// Seed (the run is deterministic but for scheduling; printed for the replay line).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run a negative control instead of the reference protocol (it should be caught).
    #[arg(long, value_parser = controls::parse)]
    pub control: Option<String>,
    /// Torture this C library's MVar instead (the ABI of torture/include/torture_mvar.h).
    #[arg(long = "impl-lib", value_name = "PATH", conflicts_with = "control")]
    pub impl_lib: Option<PathBuf>,
    /// Torture the implementation this binary registered under NAME (a user's binary that
    /// calls `torture::main` with a `Registry`).
    #[arg(long = "impl", value_name = "NAME", conflicts_with_all = ["control", "impl_lib"])]
    pub impl_name: Option<String>,
    /// Reports to write.
    #[command(flatten)]
    pub out: crate::report::Outputs,
    /// Freeze and thaw (seed 003).
    #[command(flatten)]
    pub stops: StopArgs,
    /// Chaos mode in the workers.
    #[command(flatten)]
    pub chaos: crate::procs::faults::ChaosArgs,
    /// Kill slaves at random and replace them (see `kills.rs`).
    #[command(flatten)]
    pub kills: KillArgs,
}

/// A worker's spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Spec {
    mvar: String,
    /// `None`: the master (puts `values` values); `Some(rounds)`: a slave.
    rounds: Option<u32>,
    values: u32,
    valve_ns: u64,
    control: Option<String>,
    /// The C library (absolute path) instead of the reference (`--impl-lib`).
    #[serde(default)]
    lib: Option<PathBuf>,
    /// The binary's registered implementation instead of the reference (`--impl`).
    #[serde(default)]
    plugin: Option<String>,
    /// A value to put back before the rounds (a killed predecessor held it).
    carry: Option<u64>,
    /// Whether the job ends with a take for good (a replacement's may already have).
    final_take: bool,
}

/// Seed 000's master/slaves across processes.
pub struct MasterSlaves;

impl ProcScenario for MasterSlaves {
    fn name(&self) -> &'static str {
        "mvar"
    }

    fn command(&self) -> clap::Command {
        MvarArgs::augment_args(clap::Command::new("mvar")).about(
            "Seed 000 across processes: a master puts N values, N slave processes take and put back, then take",
        )
    }

    fn controls(&self) -> Vec<(&'static str, &'static str)> {
        controls::mvar_controls()
            .map(|c| (c.name, c.defect))
            .collect()
    }

    fn main(&self, program: &str, flags: &ArgMatches) -> u8 {
        let args: MvarArgs = match crate::procs::parse_flags("mvar", flags) {
            Ok(a) => a,
            Err(code) => return code,
        };
        let imp =
            match impls::from_flags("mvar", args.impl_lib.as_deref(), args.impl_name.as_deref()) {
                Ok(Some(imp)) => imp,
                Ok(None) => Implementation::Reference(args.control.clone()),
                Err(e) => {
                    crate::out::warn!("{e}");
                    return 2;
                }
            };
        crate::signals::install();
        sweep::main(
            "mvar",
            &args.procs,
            args.shard,
            args.seed,
            &args.out,
            |n, seed| one(program, &args, &imp, n, seed),
        )
    }

    fn worker(&self, w: &WorkerArgs) -> u8 {
        crate::procs::worker_exit("mvar worker", w.id, worker(w))
    }

    fn plugs(&self) -> Option<crate::procs::impls::Abi> {
        Some(crate::procs::impls::Abi::MVar)
    }
}

/// What an operation's status means to a worker: done, or the error that stops it.
fn done(op: &str, valve: Duration, s: Status) -> Result<(), String> {
    match s {
        Status::Ok | Status::OwnerDied => Ok(()),
        Status::Timeout => Err(format!(
            "{op}: still blocked after {} (the safety valve)",
            format_duration(valve)
        )),
        Status::Error(e) => Err(format!("{op}: {e}")),
    }
}

fn worker(w: &WorkerArgs) -> Result<u8, String> {
    let spec: Spec = w.spec()?;
    let imp = Implementation::select(
        spec.control.as_deref(),
        spec.lib.as_deref(),
        spec.plugin.as_deref(),
    )?;
    let mvar = imp.open(&spec.mvar, PAYLOAD)?;
    let mut ledger = w.writer()?;
    let valve = Duration::from_nanos(spec.valve_ns);
    let mut buf = vec![0u8; mvar.payload_len()];
    let begin = |op, id| Record::Begin {
        op,
        id,
        start_ns: ledger::now_ns(),
        deadline_ns: None,
    };
    let put = |ledger: &mut Writer, id: u64| -> Result<(), String> {
        ledger.record(&begin(Op::Put, Some(id)));
        done(
            "put",
            valve,
            mvar.put(&payload::encode(id, PAYLOAD), Some(valve)),
        )?;
        ledger.record(&Record::Done {
            op: Op::Put,
            id: Some(id),
            end_ns: Some(ledger::now_ns()),
        });
        Ok(())
    };
    let Some(rounds) = spec.rounds else {
        for id in 1..=u64::from(spec.values) {
            put(&mut ledger, id)?;
        }
        return Ok(0);
    };
    let mut take = |ledger: &mut Writer| -> Result<u64, String> {
        ledger.record(&begin(Op::Take, None));
        done("take", valve, mvar.take(&mut buf, Some(valve)))?;
        let Some(id) = payload::decode(&buf) else {
            ledger.record(&Record::Torn {
                id: payload::raw_id(&buf),
            });
            return Err("took a torn value".into());
        };
        ledger.record(&Record::Done {
            op: Op::Take,
            id: Some(id),
            end_ns: Some(ledger::now_ns()),
        });
        Ok(id)
    };
    if let Some(id) = spec.carry {
        put(&mut ledger, id)?;
    }
    for _ in 0..rounds {
        let id = take(&mut ledger)?;
        put(&mut ledger, id)?;
    }
    if spec.final_take {
        take(&mut ledger)?;
    }
    Ok(0)
}

/// One run at `slaves` slaves: its header, its replay line, the run.
fn one(program: &str, args: &MvarArgs, imp: &Implementation, slaves: u32, seed: u64) -> Single {
    let (mut control_flag, mut what) =
        crate::procs::control_words(args.control.as_deref(), "reference protocol");
    if let Some(lib) = imp.lib_path() {
        control_flag = format!(" --impl-lib {}", shell_word(&lib.to_string_lossy()));
        what = format!("{} (capabilities {})", imp.name(), imp.caps().words());
    }
    if let Some(name) = imp.plugin_name() {
        control_flag = format!(" --impl {}", shell_word(&name));
        what = format!("{} (capabilities {})", imp.name(), imp.caps().words());
    }
    let replay = format!(
        "{} mvar --procs {slaves} --rounds {} --hang-timeout {}{}{}{} --seed {seed}{control_flag}",
        shell_word(program),
        args.rounds,
        format_duration(args.hang_timeout),
        args.stops.replay(),
        args.chaos.replay(),
        args.kills.replay(),
    );
    crate::out::say!(
        "mvar: 1 master + {slaves} slaves, {} rounds, seed {seed}, {what}",
        args.rounds
    );
    Single {
        control: args.control.clone(),
        replay,
        run: run(args, imp, slaves, seed),
    }
}

fn run(
    args: &MvarArgs,
    imp: &Implementation,
    slaves: u32,
    seed: u64,
) -> Result<Outcome, SetupError> {
    let procs = slaves as usize;
    crate::procs::crew::check_nproc(procs + 1)?;
    let mut crew = Crew::new("mvar")?;
    crew.set_chaos(args.chaos.seed(seed));
    let caps = imp.caps();
    let name = ShmName::unique("mvar");
    let participants = (slaves + 1).saturating_mul(2).saturating_add(16);
    // Destroyed when dropped: on every exit path (`?` included), after the crew is reaped.
    let created = imp
        .create(&name, PAYLOAD, participants)
        .map_err(SetupError)?;
    let mvar = created.handle();
    let reference = mvar.reference();
    let hang = args.hang_timeout * capture::load_factor(procs + 1, 8).min(4);
    let spec = |rounds| Spec {
        mvar: created.name().to_string(),
        rounds,
        values: slaves,
        valve_ns: (hang * VALVE).as_nanos() as u64,
        control: args.control.clone(),
        lib: imp.lib_path(),
        plugin: imp.plugin_name(),
        carry: None,
        final_take: true,
    };
    let mut roles = Vec::new();
    let mut jobs = Vec::new();
    for _ in 0..procs {
        jobs.push(spec(Some(args.rounds)));
        crew.spawn(&jobs[jobs.len() - 1])?;
        roles.push("slave");
    }
    crew.spawn(&spec(None))?;
    roles.push("master");
    let mut freezer = Freezer::new(&args.stops, seed);
    let mut killer = Killer::new(&args.kills, seed);
    // Slaves killed after their final take returned: done, not replaced.
    let mut finished_dead = vec![false; procs + 1];
    // Pids the runner killed.
    let mut killed: Vec<u32> = Vec::new();
    // Operations cut by a kill: (puts, takes).
    let mut cut = (0u64, 0u64);
    // Takes still waiting when the run went quiet, all explained by values lost with killed
    // slaves (see kills.rs).
    let mut starved = 0u64;
    let mut holder_kills = 0u64;
    // Checks a missing capability prevents.
    let mut not_checked: Vec<String> = Vec::new();
    let mut skip = |what: &str| {
        if !not_checked.iter().any(|w| w == what) {
            not_checked.push(what.to_string());
        }
    };
    if reference.is_none() {
        skip("lost-wakeup statistic (kernel sleeps ended by their time slice although the box was ready: the reference's own counters)");
    }
    // Progress: the box's commit count, or (without COMMITS) the puts and takes the ledgers
    // show returned.
    let mut returned = DoneCount::default();
    let mut commits = |crew: &Crew| match mvar.commits() {
        Some(c) => c,
        None => returned.count(&crew.all_ledgers()),
    };
    // Every slave's takes and puts, and the master's puts: the commits of a complete run.
    let expected = u64::from(slaves) * (2 * u64::from(args.rounds) + 2);
    let mut progress = crate::procs::progress::Progress::new("commits", expected);
    let start = Instant::now();
    let mut findings = Vec::new();
    let mut last_gen = commits(&crew);
    let mut stall = StallClock::new();
    let mut interrupted = None;
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if let Some(sig) = crate::signals::received() {
            interrupted = Some(sig.as_str().to_string());
            break;
        }
        let exited: Vec<_> = crew
            .exited()
            .into_iter()
            .filter(|(i, _)| !finished_dead[*i])
            .collect();
        // A kill, if one is due: a random slave still on its job.
        let on_job: Vec<usize> = (0..procs)
            .filter(|i| !finished_dead[*i] && !exited.iter().any(|(j, _)| j == i))
            .collect();
        if let Some(k) = killer.due(on_job.len()) {
            // Every other kill strikes whoever holds the box's lock, inside its critical
            // section (frozen there first, as in the storm); the others strike at random.
            // Without HOLDER, every kill strikes at random.
            let mut i = on_job[k];
            if killer.kills % 2 == 0 && caps.holder {
                let pids: Vec<u32> = on_job.iter().map(|j| crew.members()[*j].pid()).collect();
                let holder = || match reference {
                    Some(r) => r.lock_holder().filter(|h| h.1).map(|h| h.0.pid),
                    None => mvar.holder().flatten(),
                };
                if let Some(capture::Caught::Stopped(j)) =
                    capture::catch_holder(&pids, holder, false, Duration::from_millis(20))
                {
                    i = on_job[j];
                    holder_kills += 1;
                }
            }
            killed.push(crew.members()[i].pid());
            crew.kill(i);
            let records = Ledger::read(&crew.members()[i].ledger).map_or(Vec::new(), |l| l.records);
            let r = kills::resume(&jobs[i], &records);
            match r.ambiguous {
                Some(Op::Put) => cut.0 += 1,
                Some(Op::Take) => cut.1 += 1,
                _ => {}
            }
            match r.spec {
                Some(next) => {
                    crew.respawn(i, &next)?;
                    jobs[i] = next;
                }
                None => finished_dead[i] = true,
            }
            continue;
        }
        let running: Vec<u32> = crew
            .members()
            .iter()
            .enumerate()
            .filter(|(i, _)| !exited.iter().any(|(j, _)| j == i))
            .map(|(_, m)| m.pid())
            .collect();
        freezer.tick(&running);
        let g = commits(&crew);
        progress.set(g, || format!("{} freezes", freezer.stops));
        for (i, status) in &exited {
            if !status.success() {
                let m = &crew.members()[*i];
                findings.push(Finding::new(
                    FindingKind::Worker,
                    format!(
                        "{} worker {} (pid {}) ended with {status}: its last record was {:?}",
                        roles[*i],
                        m.id,
                        m.pid(),
                        ledger::last_record(&m.ledger).map(|r| r.to_string())
                    ),
                ));
            }
        }
        if exited.len() + finished_dead.iter().filter(|d| **d).count() == crew.members().len() {
            break;
        }
        // A tenth of the sleeps late is the trigger; the finding needs a sleeper caught asleep
        // although the box is ready for it while nobody is runnable (a busy machine makes late
        // wake-ups of its own: the one woken for the box is still waiting for a CPU).
        if let Some(r) = reference {
            if let Some(f) = lost_wakeups(r, 10, || {
                let caught = sleeper_despite_ready(r, &crew, &roles, Duration::from_millis(300))?;
                Some(format!(
                    "{caught}\n{}",
                    diagnose(mvar, imp, &crew, &roles, &killed)
                ))
            }) {
                findings.push(f);
                break;
            }
        }
        // Time during which a participant is frozen by us does not count as a stall.
        let stalled = stall.tick(g != last_gen, freezer.any_frozen());
        if g != last_gen {
            last_gen = g;
        } else if stalled > hang {
            if killer.kills > 0 {
                // Quiet after kills with the lock held by a dead process: not robust.
                if let Some(f) =
                    dead_holder(mvar, &killed, stalled, killer.kills, holder_kills, || {
                        diagnose(mvar, imp, &crew, &roles, &killed)
                    })
                    .or_else(|| {
                        wedged_holder(mvar, caps, stalled, killer.kills, || {
                            diagnose(mvar, imp, &crew, &roles, &killed)
                        })
                    })
                {
                    findings.push(f);
                    break;
                }
                // Quiet after kills: starved takes are fine if exactly that many values died
                // with killed slaves — unless a non-robust implementation cannot say who holds
                // its lock: then the takes may as well wait on a lock a dead process holds.
                let ledgers: Vec<Ledger> = crew
                    .all_ledgers()
                    .iter()
                    .filter_map(|p| Ledger::read(p))
                    .collect();
                let quiet = Quiet {
                    mvar,
                    imp,
                    crew: &crew,
                    roles: &roles,
                    killed: &killed,
                };
                match starvation(&quiet, &exited, &finished_dead, &ledgers, cut) {
                    Ok(_) if !caps.holder && !caps.robust => {}
                    Ok(b) => {
                        starved = b;
                        break;
                    }
                    Err(Some(f)) => {
                        findings.push(f);
                        break;
                    }
                    Err(None) => {}
                }
                if !caps.holder {
                    findings.push(no_holder(stalled, killer.kills, || {
                        diagnose(mvar, imp, &crew, &roles, &killed)
                    }));
                    break;
                }
            }
            findings.push(Finding::new(
                FindingKind::Hang,
                format!(
                    "HANG: no commit for {:.1} s ({} of {} workers still running)\n{}",
                    stalled.as_secs_f64(),
                    crew.members().len() - exited.len(),
                    crew.members().len(),
                    diagnose(mvar, imp, &crew, &roles, &killed)
                ),
            ));
            break;
        }
    }
    let elapsed = start.elapsed();
    // A short run can end before the loop looked: judge the wake-ups once more at the end.
    if findings.is_empty() && interrupted.is_none() {
        if let Some(r) = reference {
            // Nobody is left to catch in the act: only a third of the sleeps late counts (the
            // reference, even on a machine 25 times oversubscribed, stays near a tenth).
            let ended = || Some("    (every worker has ended)".to_string());
            findings.extend(lost_wakeups(r, 3, ended));
        }
    }
    drop(progress);
    let stops = freezer.stops;
    drop(freezer);
    crew.kill_all();
    let ledgers: Vec<Ledger> = crew
        .all_ledgers()
        .iter()
        .filter_map(|p| Ledger::read(p))
        .collect();
    // Conservation is judged only on a run that ended by itself; the counts are always shown.
    // With kills, values died with killed slaves: the commit count must account for exactly as
    // many as takes starved (see kills.rs).
    let complete = findings.is_empty() && interrupted.is_none();
    // Every worker is gone: a try cannot wait on anyone (but a lock a dead process holds).
    let holder_dead =
        matches!(mvar.holder(), Some(Some(pid)) if holder_state(pid, &killed).starts_with("dead"));
    let full = if complete && !holder_dead && (killer.kills == 0 || caps.robust || caps.holder) {
        mvar.is_full()
    } else {
        None
    };
    if full.is_none() && complete {
        skip("the box is empty at the end (READ)");
    }
    let (takes, puts) = if killer.kills > 0 {
        if complete {
            match mvar.commits() {
                None => skip("exact accounting of values lost with killed workers (COMMITS)"),
                Some(g) => match kills::lost_values(g, kills::returned(&ledgers), cut) {
                    Ok(lost) if lost == starved && full != Some(true) => {}
                    Ok(lost) => findings.push(Finding::new(
                        FindingKind::Lost,
                        format!("LOST: {lost} values died with killed slaves (by the commit count) but {starved} takes starved at the end{}", if full == Some(true) { ", and the box is full" } else { "" }),
                    )),
                    Err(e) => findings.push(Finding::new(FindingKind::Count, format!("COUNT: {e}"))),
                },
            }
        }
        check(args, slaves, full, &ledgers, None)
    } else {
        check(
            args,
            slaves,
            full,
            &ledgers,
            complete.then_some(&mut findings),
        )
    };
    let (lin_line, lin_figures) = if interrupted.is_none() {
        linearize::judge(&ledgers, args.check_max_ops, &mut findings)
    } else {
        (String::new(), serde_json::Value::Null)
    };
    let (sleeps, late) = reference.map_or((0, 0), |r| r.sleep_stats());
    let ops = mvar.commits().unwrap_or((takes + puts) as u64);
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "mvar: {ops} {} in {:.2} s ({takes} takes, {puts} puts returned; {stops} freezes, {} kills){}",
        if mvar.commits().is_some() { "commits" } else { "operations returned" },
        elapsed.as_secs_f64(),
        killer.kills,
        if reference.is_some() {
            format!("; kernel sleeps {sleeps}, late wake-ups {late}")
        } else {
            String::new()
        }
    );
    if killer.kills > 0 && findings.is_empty() {
        let _ = writeln!(
            summary,
            "  {holder_kills} kills inside the box's critical section; {} operations cut by a kill ({} puts, {} takes); {starved} values died with killed slaves, as many takes starved at the end{}",
            cut.0 + cut.1,
            cut.0,
            cut.1,
            if mvar.commits().is_some() { ", as the commit count says" } else { " (at most one per cut operation)" }
        );
    }
    if findings.is_empty() {
        let _ = writeln!(
            summary,
            "  every value accounted for{}",
            match full {
                Some(false) => "; the box is empty",
                _ => "",
            }
        );
    }
    if !lin_line.is_empty() {
        let _ = writeln!(summary, "  {lin_line}");
    }
    for what in &not_checked {
        let _ = writeln!(summary, "  not checked (capability missing): {what}");
    }
    let figures = serde_json::json!({
        "procs": slaves, "rounds": args.rounds, "commits": mvar.commits(),
        "takes": takes, "puts": puts, "sleeps": sleeps, "late_wakes": late,
        "elapsed_ms": elapsed.as_secs_f64() * 1e3, "freezes": stops,
        "kills": killer.kills, "holder_kills": holder_kills, "cut_puts": cut.0, "cut_takes": cut.1, "starved": starved,
        "linearizability": lin_figures,
        "implementation": imp.name(), "capabilities": caps, "not_checked": not_checked,
        "segment": created.name(), "runner_pid": std::process::id(),
    });
    drop(crew);
    drop(created);
    Ok(Outcome {
        summary,
        figures,
        findings,
        interrupted,
        ops,
        elapsed,
        faults: Faults {
            kills: killer.kills as u64,
            stops: stops as u64,
        },
    })
}

/// What a quiet run's judgement looks at.
struct Quiet<'a> {
    mvar: &'a dyn MVarHandle,
    imp: &'a Implementation,
    crew: &'a Crew,
    roles: &'a [&'a str],
    killed: &'a [u32],
}

/// When a run with kills has gone quiet: `Ok(B)` if the box is empty, the master is done and
/// the `B` slaves still on their job all wait in a take, and `B` values died with killed slaves
/// (exactly, by the commit count; without COMMITS, at most one per operation a kill cut);
/// `Err(Some(finding))` if the counts disagree; `Err(None)` if the run is not in that state (an
/// ordinary hang).
fn starvation(
    q: &Quiet,
    exited: &[(usize, std::process::ExitStatus)],
    finished_dead: &[bool],
    ledgers: &[Ledger],
    cut: (u64, u64),
) -> Result<u64, Option<Finding>> {
    let ended = |i: usize| finished_dead[i] || exited.iter().any(|(j, _)| *j == i);
    let master = q.roles.iter().position(|r| *r == "master");
    // A try is safe here: the lock's holder (if the implementation names it) is not dead.
    let caps: Caps = q.imp.caps();
    let full = if caps.robust || caps.holder {
        q.mvar.is_full()
    } else {
        None
    };
    if full == Some(true) || master.is_some_and(|m| !ended(m)) {
        return Err(None);
    }
    let mut waiting = 0;
    for (i, m) in q.crew.members().iter().enumerate() {
        if ended(i) {
            continue;
        }
        match ledger::last_record(&m.ledger) {
            Some(Record::Begin { op: Op::Take, .. }) => waiting += 1,
            _ => return Err(None),
        }
    }
    let diagnosis = || diagnose(q.mvar, q.imp, q.crew, q.roles, q.killed);
    let Some(g) = q.mvar.commits() else {
        return if waiting <= cut.0 + cut.1 {
            Ok(waiting)
        } else {
            Err(Some(Finding::new(
                FindingKind::Lost,
                format!(
                    "LOST: {waiting} slaves wait for a value in an empty box, but kills cut only {} operations (each can lose at most one value)\n{}",
                    cut.0 + cut.1,
                    diagnosis()
                ),
            )))
        };
    };
    match kills::lost_values(g, kills::returned(ledgers), cut) {
        Ok(lost) if lost == waiting => Ok(waiting),
        Ok(lost) => Err(Some(Finding::new(
            FindingKind::Lost,
            format!(
                "LOST: {waiting} slaves wait for a value in an empty box, but the commit count says {lost} values died with killed slaves\n{}",
                diagnosis()
            ),
        ))),
        Err(e) => Err(Some(Finding::new(FindingKind::Count, format!("COUNT: {e}")))),
    }
}
