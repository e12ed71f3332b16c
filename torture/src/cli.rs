//! The one command line: a clap `Command` with a subcommand per runner (`threads`, one per
//! process scenario of [`crate::procs::scenarios::CATALOGUE`], `list`, the hidden worker entry), value
//! parsers shared by all of them (durations) and shell quoting for replay lines.
//!
//! `torture` with no subcommand runs `threads` (the thread runner came first; `torture
//! --threads 8` still works), and `torture --list` is `torture list`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::procs::{self, ProcScenario, WorkerArgs};
use crate::threads::args::ThreadsArgs;

const ABOUT: &str = "\
Torture concurrency primitives: on real OS threads (`threads`), across processes under \
SIGKILL/SIGSTOP faults (the process scenarios), with hang reports instead of time-outs.";

const AFTER_HELP: &str = "\
Without a command, `threads` runs (so `torture --threads 8` works as before).

Exit codes (every command):
  0  pass (with --control: the control was NOT CAUGHT; the output says so)
  1  bug found: a broken invariant or a hang (with --control: caught, as expected)
  2  usage or setup error (one line on stderr)

Durations are written like 250us, 500ms, 10s, 1.5s, 2m or 1h.";

/// The `torture` command line (the fixed commands; process scenarios are added by
/// [`command`]).
#[derive(Debug, Parser)]
#[command(name = "torture", version, about = ABOUT, after_help = AFTER_HELP)]
#[command(subcommand_required = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Fixed,
}

/// The commands that are not process scenarios.
#[derive(Debug, Subcommand)]
pub enum Fixed {
    /// Run the scenario catalogue on real OS threads, with a hang watchdog (the default).
    Threads(ThreadsArgs),
    /// Every process scenario in turn, each with its defaults (or at every count of --procs); a
    /// summary table at the end.
    All(AllArgs),
    /// List every command, scenario and negative control (with its story and blind spots).
    List(ListArgs),
    /// The detection matrix: every engine against every negative control and the correct
    /// implementations (time and executions to first detection, false positives); JSON,
    /// Markdown and an SVG heat map.
    Matrix(crate::matrix::MatrixArgs),
    /// Internal: a worker process of a process scenario (started by the runner).
    #[command(name = "__worker", hide = true)]
    Worker(WorkerArgs),
    /// Internal: loads an `--impl-lib` library in a child process, so that one crashing
    /// cannot take the runner with it (see `procs::impls::probe`).
    #[command(name = "__probe-lib", hide = true)]
    ProbeLib(ProbeLibArgs),
}

/// `torture __probe-lib` flags.
#[derive(Debug, Clone, Args)]
pub struct ProbeLibArgs {
    /// Which ABI to probe.
    #[arg(long, value_enum, default_value = "mvar")]
    pub abi: crate::procs::impls::Abi,
    /// The object to create (the runner removes it afterwards, whatever happened).
    #[arg(long)]
    pub name: String,
    /// The library.
    pub path: PathBuf,
}

/// `torture all` flags.
#[derive(Debug, Clone, Args)]
pub struct AllArgs {
    /// Seed handed to every scenario (default: from the clock, printed); in a sweep each run's
    /// seed is derived from it and its process count.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Process count or sweep (A:B:xK, A:B:+K) for every scenario that has a process count
    /// (default: each scenario's own).
    #[arg(long, value_name = "N|A:B:xK|A:B:+K", value_parser = procs::sweep::procs(1, u32::MAX))]
    pub procs: Option<procs::sweep::Sweep>,
    /// Of the (scenario x count) runs, run those whose index is i-1 mod n (1-based).
    #[arg(long, value_name = "i/n", value_parser = procs::sweep::Shard::parse)]
    pub shard: Option<procs::sweep::Shard>,
    /// Also write the table and every run's report as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Also write a JUnit XML report to PATH (one test case per run).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Torture this C library in every scenario that takes one: mvar and storm if it exports
    /// torture_mvar.h, locks if it exports torture_lock.h; the others are listed as skipped.
    #[arg(long = "impl-lib", value_name = "PATH")]
    pub impl_lib: Option<PathBuf>,
    /// Torture the implementations this binary registered under NAME (MVar: mvar and storm;
    /// lock: locks); the others are listed as skipped.
    #[arg(long = "impl", value_name = "NAME", conflicts_with = "impl_lib")]
    pub impl_name: Option<String>,
}

/// `torture list` flags.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Also write the listing as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// A parsed command.
pub enum Command {
    /// `threads`, `list` or the worker entry.
    Fixed(Fixed),
    /// A process scenario and its flags.
    Proc(&'static dyn ProcScenario, Box<ArgMatches>),
}

/// Result of parsing the command line.
pub enum Parsed {
    /// Run this.
    Run(Box<Command>),
    /// `--help` / `--version`: print this on stdout and exit 0.
    Info(String),
    /// A usage error: one line for stderr, exit 2.
    Usage(String),
}

/// The whole clap command: the fixed commands plus one subcommand per process scenario.
pub fn command() -> clap::Command {
    let mut c = Cli::command();
    for s in procs::scenarios::CATALOGUE {
        c = c.subcommand(s.command());
    }
    c
}

/// `argv` with the default command made explicit.
fn with_default(mut argv: Vec<OsString>) -> Vec<OsString> {
    if argv.is_empty() {
        argv.push("torture".into());
    }
    match argv.get(1).and_then(|a| a.to_str()) {
        None => argv.push("threads".into()),
        Some("--list") => argv[1] = "list".into(),
        Some("-h" | "--help" | "-V" | "--version") => {}
        Some(a) if a.starts_with('-') => argv.insert(1, "threads".into()),
        _ => {}
    }
    argv
}

/// Parses `argv` (program name first). Never panics and never exits.
pub fn parse<I, T>(argv: I) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv = with_default(argv.into_iter().map(Into::into).collect());
    let sub = argv
        .get(1)
        .and_then(|a| a.to_str())
        .filter(|a| command().get_subcommands().any(|c| c.get_name() == *a))
        .map(|a| format!("torture {a}"))
        .unwrap_or_else(|| "torture".to_string());
    let usage = |e: clap::Error| {
        use clap::error::ErrorKind;
        let text = e.to_string();
        match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Parsed::Info(text),
            _ => {
                let first = text
                    .lines()
                    .next()
                    .unwrap_or("error: invalid command line")
                    .trim();
                let first = first.strip_prefix("error: ").unwrap_or(first);
                Parsed::Usage(format!("{sub}: error: {first} (see {sub} --help)"))
            }
        }
    };
    let matches = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => return usage(e),
    };
    if let Some((name, m)) = matches.subcommand() {
        if let Some(s) = procs::scenarios::find(name) {
            return Parsed::Run(Box::new(Command::Proc(s, Box::new(m.clone()))));
        }
    }
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => Parsed::Run(Box::new(Command::Fixed(cli.command))),
        Err(e) => usage(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::args::{replay_line, Lockdep};
    use std::time::Duration;

    fn threads_args(argv: &[&str]) -> ThreadsArgs {
        match parse(argv) {
            Parsed::Run(c) => match *c {
                Command::Fixed(Fixed::Threads(a)) => a,
                _ => panic!("not the threads command: {argv:?}"),
            },
            _ => panic!("does not parse: {argv:?}"),
        }
    }

    #[test]
    fn unknown_name_is_one_line_usage_error() {
        for argv in [
            &["torture", "--scenario", "nope"][..],
            &["torture", "threads", "--scenario", "nope"],
            &["torture", "storm", "--procs", "x"],
            &["torture", "list", "--bogus"],
            &["torture", "nope"],
        ] {
            match parse(argv) {
                Parsed::Usage(msg) => {
                    assert!(!msg.contains('\n'), "{msg}");
                    assert!(msg.contains("error:"), "{msg}");
                }
                _ => panic!("expected a usage error for {argv:?}"),
            }
        }
    }

    #[test]
    fn default_command_is_threads() {
        assert_eq!(threads_args(&["torture", "--threads", "3"]).threads, 3);
        assert_eq!(threads_args(&["torture"]).threads, 4);
        assert!(matches!(
            parse(["torture", "--list"]),
            Parsed::Run(c) if matches!(*c, Command::Fixed(Fixed::List(_)))
        ));
    }

    #[test]
    fn replay_line_parses_back() {
        let args = threads_args(&[
            "torture",
            "--control",
            "exch-same-bucket",
            "--lockdep",
            "off",
            "--deadline",
            "1500us",
        ]);
        let line = replay_line("torture", &args, 42);
        let again = threads_args(&line.split(' ').collect::<Vec<_>>());
        assert_eq!(again.seed, Some(42));
        assert_eq!(again.control.map(|c| c.name), Some("exch-same-bucket"));
        assert_eq!(again.lockdep, Lockdep::Off);
        assert_eq!(again.deadline, Duration::from_micros(1500));
    }
}
