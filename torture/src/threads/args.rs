//! `torture threads` flags, their value parsers and the replay line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use primitives::scenarios::catalogue::{self, Control, Entry};
use primitives::Mode;

use crate::units::{format_duration, parse_duration, shell_word};

const LONG_ABOUT: &str = "\
Runs the scenario catalogue of the `primitives` crate on real OS threads, round-robin in an \
order shuffled by --seed, until --duration has elapsed (at least one full round). Each run \
executes in its own thread under a watchdog: a run that panics has broken an invariant; a run \
that has not finished after --deadline is a hang, reported with the wait registry (who sleeps \
on what, since when, holding which locks) and a command line that replays the run.

With --control NAME, a negative control (a variant with one seeded defect) is run instead; the \
engine is expected to catch it.";

const AFTER_HELP: &str = "\
Exit codes:
  0  pass: no failure in the given duration
     (with --control: the control was NOT CAUGHT; the output says so)
  1  bug found: a panic (broken invariant, lock-order violation) or a hang
     (with --control: the control was caught, as expected)
  2  usage or setup error

Durations are written like 500ms, 10s, 1.5s, 2m or 1h.
Reports never show backtraces (RUST_BACKTRACE is ignored); TORTURE_BACKTRACE=1 adds one for
the first panic of a failing run.";

/// `torture threads` flags.
#[derive(Debug, Clone, Args)]
#[command(long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct ThreadsArgs {
    /// Worker threads per scenario run (slaves, lockers, loggers).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: u32,

    /// Rounds per worker (values handed off, nesting depth, messages).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,

    /// How long to keep running scenarios (at least one full round is always run).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Hang deadline: a single run not finished after this long is reported as a HANG.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_deadline)]
    pub deadline: Duration,

    /// Run only this reference scenario (repeatable; default: all). See --list.
    #[arg(long = "scenario", value_name = "NAME", value_parser = parse_scenario)]
    pub scenarios: Vec<&'static Entry>,

    /// Run this negative control instead of the reference scenarios; it is expected to be
    /// caught (exit 1). If it is not caught within --duration, "NOT CAUGHT" is printed and
    /// the exit code is 0.
    #[arg(long, value_name = "NAME", value_parser = parse_control, conflicts_with = "scenarios")]
    pub control: Option<&'static Control>,

    /// Mode of the lock-order validator in each run.
    #[arg(long, value_enum, default_value_t = Lockdep::Panic)]
    pub lockdep: Lockdep,

    /// Seed of the scenario order shuffle (printed on every run, so that it can be replayed;
    /// default: from the clock).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Chaos mode: the primitives' futex waits sometimes return spuriously (at once, or after
    /// a short sleep although not woken), and waits, wakes and thread starts get short random
    /// delays (yield, spin of a few µs, sleep of 10–200 µs), drawn from --seed. Catches code
    /// that trusts a wake-up (e.g. --control mvar-if-not-while); the reference must pass.
    #[arg(long)]
    pub chaos: bool,

    /// Also write a machine-readable report (JSON) to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Also write a JUnit XML report to PATH (one test case: this session).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
}

/// `--lockdep`: the lock-order validator's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lockdep {
    /// No lock-order checking.
    Off,
    /// Print each violation once, carry on.
    Report,
    /// Panic at the offending acquisition (a failure of the run).
    Panic,
}

impl Lockdep {
    /// The validator mode.
    pub fn mode(self) -> Mode {
        match self {
            Lockdep::Off => Mode::Off,
            Lockdep::Report => Mode::Report,
            Lockdep::Panic => Mode::Panic,
        }
    }

    /// The spelling on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Lockdep::Off => "off",
            Lockdep::Report => "report",
            Lockdep::Panic => "panic",
        }
    }
}

fn parse_deadline(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(1) {
        return Err("the deadline must be at least 1ms".to_string());
    }
    Ok(d)
}

fn parse_scenario(s: &str) -> Result<&'static Entry, String> {
    catalogue::scenario(s).ok_or_else(|| {
        let known: Vec<&str> = catalogue::SCENARIOS.iter().map(|e| e.name).collect();
        let hint = if catalogue::control(s).is_some() {
            " (that is a control: use --control)"
        } else {
            ""
        };
        format!("unknown scenario {s:?}{hint}; known: {}", known.join(", "))
    })
}

fn parse_control(s: &str) -> Result<&'static Control, String> {
    catalogue::control(s).ok_or_else(|| {
        let known: Vec<&str> = catalogue::CONTROLS.iter().map(|c| c.name).collect();
        let hint = if catalogue::scenario(s).is_some() {
            " (that is a scenario: use --scenario)"
        } else {
            ""
        };
        format!("unknown control {s:?}{hint}; known: {}", known.join(", "))
    })
}

/// The command line that replays a run: the same configuration, with the seed made explicit.
pub fn replay_line(program: &str, args: &ThreadsArgs, seed: u64) -> String {
    let mut v: Vec<String> = vec![shell_word(program), "threads".to_string()];
    if let Some(c) = args.control {
        v.push(format!("--control {}", c.name));
    }
    for e in &args.scenarios {
        v.push(format!("--scenario {}", e.name));
    }
    v.push(format!("--threads {}", args.threads));
    v.push(format!("--rounds {}", args.rounds));
    v.push(format!("--lockdep {}", args.lockdep.as_str()));
    v.push(format!("--deadline {}", format_duration(args.deadline)));
    v.push(format!("--duration {}", format_duration(args.duration)));
    if args.chaos {
        v.push("--chaos".to_string());
    }
    v.push(format!("--seed {seed}"));
    v.join(" ")
}
