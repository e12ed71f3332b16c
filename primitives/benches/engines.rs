//! What the model engines cost, per catalogue scenario, measured in one run:
//! - `--cfg shuttle`: executions per second of bare `shuttle::check_random` and of this
//!   crate's driver (`sync::engine::shuttle`: panic capture, hang classification, the failing
//!   schedule kept for replay) on the same scenario body, and the driver's overhead (ratio of
//!   times; the goal is at most 1.5x);
//! - `--cfg loom`: loom's executions per second and executions per scenario at a preemption
//!   bound (`LOOM_PREEMPTION_BOUND`, default 2), each capped at `--secs`.
//!
//! `RUSTFLAGS="--cfg shuttle" CARGO_TARGET_DIR=target/shuttle cargo bench -p primitives --bench engines -- [--iterations N]`
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo bench -p primitives --bench engines -- [--secs N]`

#[cfg(not(any(loom, shuttle)))]
fn main() {
    eprintln!(
        "engines: build it for a model engine: RUSTFLAGS=\"--cfg shuttle\" (or \"--cfg loom\") \
         CARGO_TARGET_DIR=target/shuttle cargo bench -p primitives --bench engines"
    );
}

/// `--NAME VALUE` from the command line (cargo bench adds `--bench`).
#[cfg(any(loom, shuttle))]
fn flag(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => default,
        Some(i) => match args.get(i + 1).and_then(|v| v.parse::<f64>().ok()) {
            Some(v) if v > 0.0 => v,
            _ => {
                eprintln!("engines: {name} needs a positive number");
                std::process::exit(2);
            }
        },
    }
}

#[cfg(shuttle)]
fn main() {
    use primitives::scenarios::catalogue::SCENARIOS;
    use primitives::scenarios::Params;
    use primitives::sync::engine::{self, Scheduler};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let n = flag("--iterations", 1000.0) as usize;
    println!("Shuttle, random scheduler, {n} executions per scenario, seed 1, same body:");
    println!();
    println!(
        "| scenario | bare `check_random` exec/s | through `engine::shuttle` exec/s | overhead |"
    );
    println!("|---|--:|--:|--:|");
    let (mut bare_all, mut ours_all) = (0.0, 0.0);
    for e in SCENARIOS {
        let run = e.run;
        let params = Params::for_engine();
        let t = Instant::now();
        shuttle::check_random(move || run(&params), n);
        let bare = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let ended = engine::shuttle(
            &Scheduler::Random,
            n,
            Duration::from_secs(600),
            1,
            Arc::new(move || {
                run(&params);
                None
            }),
        );
        let ours = t.elapsed().as_secs_f64();
        if let Some(f) = ended.failure {
            eprintln!("engines: {} failed under the driver: {}", e.name, f.message);
            std::process::exit(1);
        }
        bare_all += bare;
        ours_all += ours;
        println!(
            "| {} | {:.0} | {:.0} | {:.2}x |",
            e.name,
            n as f64 / bare,
            ended.executions as f64 / ours,
            ours / bare
        );
    }
    println!(
        "| **all** | {:.0} | {:.0} | **{:.2}x** |",
        (n * SCENARIOS.len()) as f64 / bare_all,
        (n * SCENARIOS.len()) as f64 / ours_all,
        ours_all / bare_all
    );
}

#[cfg(loom)]
fn main() {
    use primitives::scenarios::catalogue::SCENARIOS;
    use primitives::scenarios::Params;
    use primitives::sync::engine;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let secs = flag("--secs", 20.0);
    let bound = std::env::var("LOOM_PREEMPTION_BOUND")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(2);
    println!("Loom, preemption bound {bound}, each scenario capped at {secs} s:");
    println!();
    println!("| scenario | executions | seconds | exec/s | complete |");
    println!("|---|--:|--:|--:|---|");
    for e in SCENARIOS {
        let run = e.run;
        let params = Params::for_engine();
        let cap = Duration::from_secs_f64(secs);
        let t = Instant::now();
        let ended = engine::loom(
            bound,
            10_000_000,
            cap,
            None,
            Arc::new(move || {
                run(&params);
                None
            }),
        );
        let took = t.elapsed();
        if let Some(f) = ended.failure {
            eprintln!("engines: {} failed under loom: {}", e.name, f.message);
            std::process::exit(1);
        }
        println!(
            "| {} | {} | {:.2} | {:.0} | {} |",
            e.name,
            ended.executions,
            took.as_secs_f64(),
            ended.executions as f64 / took.as_secs_f64().max(1e-9),
            if took < cap { "yes" } else { "no (capped)" }
        );
    }
}
