//! The torture runner: runs the `primitives` scenario catalogue on real OS threads, with a
//! hang watchdog, panic capture and a report.
//!
//! - [`cli`]: the command line (clap), duration parsing, the replay line;
//! - [`engine`]: round-robin runs under a watchdog; panics and hangs are results;
//! - [`panics`]: the hook that captures the first panic of a run instead of printing it;
//! - [`report`]: the listing, the human report (with the wait registry) and the JSON report;
//! - [`prng`]: the seeded order shuffle.
//!
//! Exit codes: 0 pass (or, with `--control`, NOT CAUGHT), 1 bug found (or control caught),
//! 2 usage or setup error.

pub mod cli;
pub mod engine;
pub mod panics;
pub mod prng;
pub mod report;
pub mod storm;

use std::ffi::OsString;
use std::io::Write as _;

use primitives::scenarios::catalogue::SCENARIOS;
use primitives::scenarios::Params;

use crate::cli::{Args, Parsed};
use crate::engine::{FailureKind, Plan, Target};
use crate::report::Verdict;

/// How the process should end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit code (0 pass, 1 bug found, 2 usage/setup error).
    pub code: u8,
    /// True when threads of a hung run are still blocked: end the process with
    /// `std::process::exit` at once (they cannot be killed or joined).
    pub abandon_threads: bool,
}

impl Exit {
    fn code(code: u8) -> Exit {
        Exit {
            code,
            abandon_threads: false,
        }
    }
}

/// The whole program, minus the final `exit`: parses `argv`, runs, prints, writes the JSON.
pub fn main_with_args<I, T>(argv: I) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let program = argv
        .first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "torture".to_string());
    match argv.get(1).and_then(|a| a.to_str()) {
        Some("storm") => return Exit::code(storm::cli::main(&program, argv[1..].to_vec())),
        Some("__storm-worker") => return Exit::code(storm::cli::worker_main(&argv[2..])),
        _ => {}
    }
    let args = match cli::parse(argv) {
        Parsed::Run(args) => args,
        Parsed::Info(text) => {
            print!("{text}");
            return Exit::code(0);
        }
        Parsed::Usage(line) => {
            eprintln!("{line}");
            return Exit::code(2);
        }
    };
    if args.list {
        print!("{}", report::list_text());
        return Exit::code(0);
    }
    run_session(&program, &args)
}

fn plan_of(args: &Args) -> Plan {
    let targets: Vec<Target> = if let Some(c) = args.control {
        vec![Target {
            name: c.name,
            control: true,
            run: c.run,
        }]
    } else {
        let chosen: Vec<_> = if args.scenarios.is_empty() {
            SCENARIOS.iter().collect()
        } else {
            args.scenarios.clone()
        };
        let mut targets: Vec<Target> = Vec::new();
        for e in chosen {
            if !targets.iter().any(|t| t.name == e.name) {
                targets.push(Target {
                    name: e.name,
                    control: false,
                    run: e.run,
                });
            }
        }
        targets
    };
    Plan {
        targets,
        params: Params {
            threads: args.threads as usize,
            rounds: args.rounds as usize,
            lockdep: args.lockdep.mode(),
        },
        duration: args.duration,
        deadline: args.deadline,
        seed: args.seed.unwrap_or_else(prng::fresh_seed),
    }
}

fn run_session(program: &str, args: &Args) -> Exit {
    let plan = plan_of(args);
    let replay = cli::replay_line(program, args, plan.seed);
    let lockdep = args.lockdep.as_str();
    println!("{}", report::header(&plan, lockdep));
    flush();
    let outcome = match engine::run(&plan) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("torture: setup error: {}", e.0);
            return Exit::code(2);
        }
    };
    let verdict = Verdict::of(args.control.is_some(), outcome.failure.is_some());
    if let Some(f) = &outcome.failure {
        print!("{}", report::failure_text(f, &plan, &replay));
    }
    print!("{}", report::summary_text(&outcome, verdict));
    if verdict == Verdict::NotCaught {
        println!("  replay: {replay}");
    }
    let mut code = verdict.exit_code();
    if let Some(path) = &args.json {
        let json = report::json_report(&plan, lockdep, &outcome, verdict, &replay);
        let written = serde_json::to_string_pretty(&json)
            .map_err(|e| e.to_string())
            .and_then(|text| std::fs::write(path, text + "\n").map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!(
                "torture: error: cannot write the JSON report to {}: {e}",
                path.display()
            );
            if code == 0 {
                code = 2;
            }
        }
    }
    flush();
    let hung = outcome
        .failure
        .as_ref()
        .is_some_and(|f| matches!(f.kind, FailureKind::Hang));
    Exit {
        code,
        abandon_threads: hung,
    }
}

fn flush() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}
