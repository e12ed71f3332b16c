//! `torture storm` flags, the replay line, and the scenario's entry in the catalogue.

use super::StormConfig;
use crate::procs::impls::Implementation;
use crate::procs::sweep::{self, Shard, Single, Sweep};
use crate::procs::{controls, Faults, Outcome, ProcScenario, WorkerArgs};
use crate::units::{format_duration, parse_positive, shell_word};
use clap::{ArgMatches, Args, FromArgMatches};
use std::path::PathBuf;
use std::time::Duration;

const ABOUT: &str = "Kill storm: worker processes share one MVar, lock and log in shared memory while the runner SIGKILLs them";

const LONG_ABOUT: &str = "\
Kill storm: --procs worker processes put, take and read values through one shared-memory MVar, \
and log messages under a shared reentrant lock, while the runner SIGKILLs a random worker every \
~--gap and starts a new one, --kills times (every other kill freezes the box's lock holder inside \
its critical section first). Then every value and message is accounted for from the workers' \
ledgers and the box's commit count: none torn, invented, duplicated or lost; no worker waited \
past its deadline; the box never wedged.";

const AFTER: &str = "\
Exit codes: 0 every invariant held (with --control: the control was NOT caught), \
1 a broken invariant or a hang (with --control: caught, as expected), 2 usage or setup error.";

/// `torture storm` flags.
#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    /// Worker processes alive at any time: a count, or a sweep A:B:xK (geometric) or A:B:+K
    /// (arithmetic) run once per count.
    #[arg(long, default_value = "6", value_name = "N|A:B:xK|A:B:+K", value_parser = sweep::procs(2, 1000))]
    pub procs: Sweep,
    /// Of a sweep's runs, run those whose index is i-1 mod n (1-based).
    #[arg(long, value_name = "i/n", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// SIGKILLs to deliver.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub kills: u32,
    /// Mean pause between two kills.
    #[arg(long, default_value = "10ms", value_parser = parse_positive)]
    pub gap: Duration,
    /// Longest deadline of one worker operation.
    #[arg(long = "op-timeout", default_value = "50ms", value_parser = parse_positive)]
    pub op_timeout: Duration,
    /// No commit for this long is a wedge; a worker silent for op-timeout + this is stuck
    /// (scaled up, at most threefold, past eight workers per core).
    #[arg(long, default_value = "3s", value_parser = parse_positive)]
    pub stall: Duration,
    /// A worker seen inside an operation longer than this past the operation's deadline, and
    /// still there, asleep, after as long again, is hung (scaled by workers per core).
    #[arg(long, default_value = "50ms", value_parser = parse_positive)]
    pub grace: Duration,
    /// Upper bound of the whole storm.
    #[arg(long = "max-time", default_value = "120s", value_parser = parse_positive)]
    pub max_time: Duration,
    /// Bytes per value (16 B to 1 MiB; bigger values keep the lock held longer, so more kills
    /// land mid-copy).
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u32).range(16..=1_048_576))]
    pub payload: u32,
    /// Seed of the kill schedule and the traffic (default: from the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run a negative control instead of the reference protocol (it should be caught).
    #[arg(long, value_parser = controls::parse)]
    pub control: Option<String>,
    /// Torture this C library's MVar as the shared box (the ABI of
    /// torture/include/torture_mvar.h); the lock and the log stay the reference's.
    #[arg(long = "impl-lib", value_name = "PATH", conflicts_with = "control")]
    pub impl_lib: Option<PathBuf>,
    /// Torture the implementation this binary registered under NAME as the shared box.
    #[arg(long = "impl", value_name = "NAME", conflicts_with_all = ["control", "impl_lib"])]
    pub impl_name: Option<String>,
    /// Reports to write.
    #[command(flatten)]
    pub out: crate::report::Outputs,
    /// Chaos mode in the workers.
    #[command(flatten)]
    pub chaos: crate::procs::faults::ChaosArgs,
}

impl StormArgs {
    /// The configuration these flags describe, at `procs` workers and `seed`.
    pub fn config(&self, procs: u32, seed: u64) -> StormConfig {
        StormConfig {
            procs: procs as usize,
            kills: self.kills as usize,
            gap: self.gap,
            op_timeout: self.op_timeout,
            stall: self.stall,
            grace: self.grace,
            max_time: self.max_time,
            seed,
            payload: self.payload as usize,
            control: self.control.clone(),
            chaos: self.chaos.chaos,
            lib: None,
            plugin: None,
        }
    }
}

/// The command line that replays `cfg`, durations exact.
pub fn replay_line(program: &str, cfg: &StormConfig) -> String {
    format!(
        "{} storm --procs {} --kills {} --payload {} --gap {} --op-timeout {} --stall {} --grace {} --max-time {}{} --seed {}{}",
        shell_word(program),
        cfg.procs,
        cfg.kills,
        cfg.payload,
        format_duration(cfg.gap),
        format_duration(cfg.op_timeout),
        format_duration(cfg.stall),
        format_duration(cfg.grace),
        format_duration(cfg.max_time),
        if cfg.chaos { " --chaos" } else { "" },
        cfg.seed,
        cfg.control
            .as_ref()
            .map(|c| format!(" --control {c}"))
            .unwrap_or_default()
    ) + &match (&cfg.lib, &cfg.plugin) {
        (_, Some(n)) => format!(" --impl {}", shell_word(n)),
        (Some(l), None) => format!(" --impl-lib {}", shell_word(&l.to_string_lossy())),
        (None, None) => String::new(),
    }
}

/// One storm of `cfg`: its header, its replay line, the run.
fn one(program: &str, cfg: &StormConfig, imp: Option<&Implementation>) -> Single {
    // Leftovers of storms whose runner was killed (their users are all dead).
    if let Ok(cleaned) = primitives::shm::cleanup("") {
        for c in cleaned {
            crate::out::say!("storm: removed abandoned segment {} ({})", c.name, c.reason);
        }
    }
    crate::out::say!(
        "storm: {} workers, {} kills, seed {}, {}",
        cfg.procs,
        cfg.kills,
        cfg.seed,
        match imp {
            Some(imp) => format!("{} (capabilities {})", imp.name(), imp.caps().words()),
            None => cfg
                .control
                .as_deref()
                .map_or("reference protocol".to_string(), |c| format!("CONTROL {c}")),
        }
    );
    let result = match imp {
        Some(imp) => super::seam::run(cfg, imp),
        None => super::run(cfg),
    };
    Single {
        control: cfg.control.clone(),
        replay: replay_line(program, cfg),
        // The summary is written before the findings move out (it says when there are none).
        run: result.map(|mut report| Outcome {
            summary: report.text(),
            findings: std::mem::take(&mut report.findings),
            figures: serde_json::to_value(&report).unwrap_or_default(),
            interrupted: report.interrupted.clone(),
            ops: report.commits,
            elapsed: report.elapsed,
            faults: Faults {
                kills: report.kills as u64,
                stops: 0,
            },
        }),
    }
}

/// The kill storm in the process-scenario catalogue.
pub struct KillStorm;

impl ProcScenario for KillStorm {
    fn name(&self) -> &'static str {
        "storm"
    }

    fn command(&self) -> clap::Command {
        StormArgs::augment_args(clap::Command::new("storm"))
            .about(ABOUT)
            .long_about(LONG_ABOUT)
            .after_help(AFTER)
    }

    fn controls(&self) -> Vec<(&'static str, &'static str)> {
        controls::mvar_controls()
            .map(|c| (c.name, c.defect))
            .collect()
    }

    fn main(&self, program: &str, flags: &ArgMatches) -> u8 {
        let args = match StormArgs::from_arg_matches(flags) {
            Ok(a) => a,
            Err(e) => {
                crate::out::warn!("torture storm: error: {}", e.to_string().trim());
                return 2;
            }
        };
        let imp = match crate::procs::impls::from_flags(
            "storm",
            args.impl_lib.as_deref(),
            args.impl_name.as_deref(),
        ) {
            Ok(imp) => imp,
            Err(e) => {
                crate::out::warn!("{e}");
                return 2;
            }
        };
        crate::signals::install();
        sweep::main(
            "storm",
            &args.procs,
            args.shard,
            args.seed,
            &args.out,
            |n, seed| {
                let mut cfg = args.config(n, seed);
                if let Some(imp) = &imp {
                    cfg.lib = imp.lib_path();
                    cfg.plugin = imp.plugin_name();
                }
                one(program, &cfg, imp.as_ref())
            },
        )
    }

    fn worker(&self, w: &WorkerArgs) -> u8 {
        super::worker::run(w)
    }

    fn plugs(&self) -> Option<crate::procs::impls::Abi> {
        Some(crate::procs::impls::Abi::MVar)
    }
}
