//! `torture storm ...` and the hidden `torture __storm-worker ...` command lines.

use super::{control_flavor, StormConfig, STORM_CONTROLS};
use crate::cli::parse_duration;
use clap::Parser;
use std::ffi::OsString;
use std::time::Duration;

const ABOUT: &str = "\
Kill storm: --procs worker processes put, take and read values through one shared-memory MVar \
while the runner SIGKILLs a random worker every ~--gap and starts a new one, --kills times. \
Then every value is accounted for from the workers' ledgers and the box's commit count: none \
torn, invented, duplicated or lost; no worker waited past its deadline; the box never wedged.";

const AFTER: &str = "\
Exit codes: 0 every invariant held (with --control: the control was NOT caught), \
1 a broken invariant or a hang (with --control: caught, as expected), 2 usage or setup error.";

fn controls_help() -> String {
    STORM_CONTROLS
        .iter()
        .map(|(n, d)| format!("{n}: {d}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn parse_control(s: &str) -> Result<String, String> {
    control_flavor(s)
        .map(|_| s.to_string())
        .ok_or_else(|| format!("unknown control {s:?}; known: {}", controls_help()))
}

fn parse_positive(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

/// `torture storm` flags.
#[derive(Debug, Parser)]
#[command(name = "torture storm", about = ABOUT, after_help = AFTER)]
pub struct StormArgs {
    /// Worker processes alive at any time.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub procs: u32,
    /// SIGKILLs to deliver.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub kills: u32,
    /// Mean pause between two kills.
    #[arg(long, default_value = "10ms", value_parser = parse_positive)]
    pub gap: Duration,
    /// Longest deadline of one worker operation.
    #[arg(long = "op-timeout", default_value = "50ms", value_parser = parse_positive)]
    pub op_timeout: Duration,
    /// No commit for this long is a wedge; a worker silent for op-timeout + this is stuck.
    #[arg(long, default_value = "3s", value_parser = parse_positive)]
    pub stall: Duration,
    /// A worker seen inside an operation longer than this past the operation's deadline is hung.
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
    #[arg(long, value_parser = parse_control)]
    pub control: Option<String>,
}

impl StormArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> StormConfig {
        StormConfig {
            procs: self.procs as usize,
            kills: self.kills as usize,
            gap: self.gap,
            op_timeout: self.op_timeout,
            stall: self.stall,
            grace: self.grace,
            max_time: self.max_time,
            seed: self.seed.unwrap_or_else(crate::prng::fresh_seed),
            payload: self.payload as usize,
            control: self.control.clone(),
        }
    }
}

/// Runs `torture storm ARGS` (argv without the program name's "storm"); returns the exit code.
pub fn main(program: &str, argv: Vec<OsString>) -> u8 {
    let args = match StormArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    print!("{e}");
                    0
                }
                _ => {
                    let text = e.to_string();
                    let first = text.lines().next().unwrap_or("invalid command line");
                    let first = first.strip_prefix("error: ").unwrap_or(first);
                    eprintln!("torture storm: error: {first} (see torture storm --help)");
                    2
                }
            };
        }
    };
    let cfg = args.config();
    // Leftovers of storms whose runner was killed (their users are all dead).
    if let Ok(cleaned) = primitives::shm::cleanup("") {
        for c in cleaned {
            println!("storm: removed abandoned segment {} ({})", c.name, c.reason);
        }
    }
    let replay = format!(
        "{program} storm --procs {} --kills {} --payload {} --gap {}ms --op-timeout {}ms --stall {}ms --grace {}ms --max-time {}s --seed {}{}",
        cfg.procs,
        cfg.kills,
        cfg.payload,
        cfg.gap.as_millis(),
        cfg.op_timeout.as_millis(),
        cfg.stall.as_millis(),
        cfg.grace.as_millis(),
        cfg.max_time.as_secs(),
        cfg.seed,
        cfg.control.as_ref().map(|c| format!(" --control {c}")).unwrap_or_default()
    );
    println!(
        "storm: {} workers, {} kills, seed {}, {}",
        cfg.procs,
        cfg.kills,
        cfg.seed,
        cfg.control
            .as_deref()
            .map_or("reference protocol".to_string(), |c| format!("CONTROL {c}"))
    );
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("torture storm: error: cannot find this binary: {e}");
            return 2;
        }
    };
    let report = match super::run(&exe, &cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("torture storm: setup error: {}", e.0);
            return 2;
        }
    };
    print!("{}", report.text());
    let failed = !report.failures.is_empty();
    match (&cfg.control, failed) {
        (None, false) => println!("PASS"),
        (None, true) => println!("FAIL\n  replay: {replay}"),
        (Some(c), true) => println!("CAUGHT: control {c} detected"),
        (Some(c), false) => {
            println!("NOT CAUGHT: control {c} passed every check\n  replay: {replay}")
        }
    }
    u8::from(failed)
}

/// Runs the hidden `__storm-worker MVAR LOCK LOG LEDGER INCARNATION SEED OP_MS CONTROL`.
pub fn worker_main(argv: &[OsString]) -> u8 {
    let a: Vec<String> = argv
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let parsed = (|| {
        let [name, lock, log, ledger, inc, seed, op_ms, control] = a.get(..8)? else {
            return None;
        };
        Some(super::worker::WorkerArgs {
            name: primitives::shm::ShmName::parse(name).ok()?,
            lock: primitives::shm::ShmName::parse(lock).ok()?,
            log: primitives::shm::ShmName::parse(log).ok()?,
            ledger: ledger.into(),
            incarnation: inc.parse().ok()?,
            seed: seed.parse().ok()?,
            op_timeout: Duration::from_millis(op_ms.parse().ok()?),
            flavor: if control == "reference" {
                primitives::mvar::Flavor::REFERENCE
            } else {
                control_flavor(control)?
            },
        })
    })();
    match parsed {
        Some(w) => super::worker::run(&w),
        None => {
            eprintln!(
                "torture __storm-worker: bad arguments (internal command of `torture storm`)"
            );
            2
        }
    }
}
