//! `torture threads`: the scenario catalogue on real OS threads, round-robin under a watchdog.
//!
//! - [`args`]: its flags and replay line;
//! - [`engine`]: round-robin runs under a watchdog; panics and hangs are results;
//! - [`panics`]: the hook that captures the first panic of a run instead of printing it;
//! - [`report`]: the human report (with the wait registry) and its JSON.

pub mod args;
pub mod engine;
pub mod panics;
pub mod report;

use primitives::scenarios::catalogue::SCENARIOS;
use primitives::scenarios::Params;

use self::args::ThreadsArgs;
use self::engine::{FailureKind, Plan, Target};
use crate::report::Verdict;
use crate::Exit;

fn plan_of(args: &ThreadsArgs) -> Plan {
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
            schedule: primitives::scenarios::Schedule::Real,
        },
        duration: args.duration,
        deadline: args.deadline,
        seed: args.seed.unwrap_or_else(crate::prng::fresh_seed),
        chaos: args.chaos,
    }
}

/// Runs `torture threads`.
pub fn main(program: &str, args: &ThreadsArgs) -> Exit {
    let plan = plan_of(args);
    let replay = args::replay_line(program, args, plan.seed);
    let lockdep = args.lockdep.as_str();
    crate::out::say!("{}", report::header(&plan, lockdep));
    let outcome = match engine::run(&plan) {
        Ok(o) => o,
        Err(e) => {
            crate::out::warn!("torture threads: setup error: {}", e.0);
            return Exit::code(2);
        }
    };
    let verdict = Verdict::of(args.control.is_some(), outcome.failure.is_some());
    if let Some(f) = &outcome.failure {
        crate::out::say_raw!("{}", report::failure_text(f, &plan, &replay));
    }
    crate::out::say_raw!("{}", report::summary_text(&outcome, verdict));
    if verdict == Verdict::NotCaught {
        crate::out::say!("  replay: {replay}");
    }
    let mut code = verdict.exit_code();
    if let Some(path) = &args.json {
        let json = report::json_report(&plan, lockdep, &outcome, verdict, &replay);
        if let Err(e) = crate::report::write_json(path, &json) {
            crate::out::warn!("torture threads: error: {e}");
            if code == 0 {
                code = 2;
            }
        }
    }
    if let Some(path) = &args.junit {
        let case = crate::report::JunitCase {
            name: match args.control {
                Some(c) => format!("threads --control {}", c.name),
                None => "threads".to_string(),
            },
            verdict,
            message: outcome
                .failure
                .as_ref()
                .map(|f| report::failure_text(f, &plan, &replay)),
            output: report::summary_text(&outcome, verdict),
            replay: replay.clone(),
        };
        if let Err(e) = crate::report::write_junit(path, "torture", &[case]) {
            crate::out::warn!("torture threads: error: {e}");
            if code == 0 {
                code = 2;
            }
        }
    }
    let hung = outcome
        .failure
        .as_ref()
        .is_some_and(|f| matches!(f.kind, FailureKind::Hang));
    Exit {
        code,
        abandon_threads: hung,
    }
}
