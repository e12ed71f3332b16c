//! Command line: flags, value parsers (durations, catalogue names) and the replay line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use primitives::scenarios::catalogue::{self, Control, Entry};
use primitives::Mode;

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

/// The `torture` command line.
#[derive(Debug, Parser)]
#[command(
    name = "torture",
    version,
    about = "Torture the reference concurrency primitives on real threads, with a hang watchdog"
)]
#[command(long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
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

    /// List the scenarios and the controls (with their defects and blind spots), then exit.
    #[arg(long)]
    pub list: bool,

    /// Also write a machine-readable report (JSON) to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
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

/// Result of parsing the command line.
pub enum Parsed {
    /// Run (or list) with these arguments.
    Run(Box<Args>),
    /// `--help` / `--version`: print this on stdout and exit 0.
    Info(String),
    /// A usage error: one line for stderr, exit 2.
    Usage(String),
}

/// Parses `argv` (program name first). Never panics and never exits.
pub fn parse<I, T>(argv: I) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Args::try_parse_from(argv) {
        Ok(args) => Parsed::Run(Box::new(args)),
        Err(e) => {
            use clap::error::ErrorKind;
            let text = e.to_string();
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Parsed::Info(text),
                _ => {
                    let first = text
                        .lines()
                        .next()
                        .unwrap_or("error: invalid command line")
                        .trim();
                    let first = first.strip_prefix("error: ").unwrap_or(first);
                    Parsed::Usage(format!("torture: error: {first} (see torture --help)"))
                }
            }
        }
    }
}

/// Parses a duration with a unit: `500ms`, `10s`, `1.5s`, `2m`, `1h` (also `us`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "expected a number with a unit, like 500ms, 10s or 2m; got {s:?}"
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("bad number {num:?} in duration {s:?}"))?;
    let scale = match unit.trim() {
        "" => {
            return Err(format!(
                "missing unit in {s:?}: write e.g. {num}s or {num}ms"
            ))
        }
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}: use us, ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("duration {s:?} out of range"))
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

/// Formats a duration the way [`parse_duration`] reads it back, exactly.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns % 1_000_000_000 == 0 {
        format!("{}s", ns / 1_000_000_000)
    } else if ns % 1_000_000 == 0 {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{}us", ns.div_ceil(1_000))
    }
}

/// A short human reading of a duration: `850us`, `12.3ms`, `4.00s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2}s")
    } else if s >= 1e-3 {
        format!("{:.1}ms", s * 1e3)
    } else {
        format!("{:.0}us", s * 1e6)
    }
}

/// The command line that replays a run: the same configuration, with the seed made explicit.
pub fn replay_line(program: &str, args: &Args, seed: u64) -> String {
    let mut v: Vec<String> = vec![shell_word(program)];
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
    v.push(format!("--seed {seed}"));
    v.join(" ")
}

fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (s, d) in [
            ("500ms", Duration::from_millis(500)),
            ("10s", Duration::from_secs(10)),
            ("2m", Duration::from_secs(120)),
            ("1.5s", Duration::from_millis(1500)),
            ("250us", Duration::from_micros(250)),
        ] {
            assert_eq!(parse_duration(s), Ok(d), "{s}");
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{s}");
        }
        for bad in ["", "10", "s", "1x", "1.2.3s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn unknown_name_is_one_line_usage_error() {
        match parse(["torture", "--scenario", "nope"]) {
            Parsed::Usage(msg) => {
                assert!(!msg.contains('\n'), "{msg}");
                assert!(msg.contains("unknown scenario \"nope\""), "{msg}");
            }
            _ => panic!("expected a usage error"),
        }
    }

    #[test]
    fn replay_line_parses_back() {
        let Parsed::Run(args) = parse([
            "torture",
            "--control",
            "exch-same-bucket",
            "--lockdep",
            "off",
            "--deadline",
            "1s",
        ]) else {
            panic!("parse failed")
        };
        let line = replay_line("torture", &args, 42);
        let Parsed::Run(again) = parse(line.split(' ')) else {
            panic!("replay line does not parse: {line}")
        };
        assert_eq!(again.seed, Some(42));
        assert_eq!(again.control.map(|c| c.name), Some("exch-same-bucket"));
        assert_eq!(again.lockdep, Lockdep::Off);
        assert_eq!(again.deadline, Duration::from_secs(1));
    }
}
