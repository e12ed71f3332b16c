// The benchmark proper (included by `pingpong.rs` for real builds only).

#[path = "child.rs"]
mod child;
#[path = "cli.rs"]
mod cli;
#[path = "fdkinds.rs"]
mod fdkinds;
#[path = "kinds.rs"]
mod kinds;
#[path = "measure.rs"]
mod measure;
#[path = "ours.rs"]
mod ours;
#[path = "pshared.rs"]
mod pshared;
#[path = "registry.rs"]
mod registry;
#[path = "run.rs"]
mod run;
#[path = "sys.rs"]
mod sys;
#[path = "threads.rs"]
mod threads;
/// The repository's one way to start a child process (std + libc only).
#[allow(dead_code)]
#[path = "../../../torture/src/procs/tied.rs"]
mod tied;

use std::fmt::Write as _;

use kinds::{Kind, BASELINE};
use registry::REGISTRY;
use run::{Measured, Sleepers};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(child::CHILD_FLAG) {
        std::process::exit(child::child_main(&args[1..]));
    }
    let opts = match cli::parse(&args) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{}", cli::USAGE);
            return;
        }
        Err(msg) => {
            eprintln!("pingpong: {msg}\n\n{}", cli::USAGE);
            std::process::exit(2);
        }
    };
    let kinds: Vec<Kind> = REGISTRY
        .iter()
        .copied()
        .filter(|k| {
            let Some(only) = &opts.only else { return true };
            k.label().to_lowercase().contains(&only.to_lowercase())
        })
        .collect();
    if kinds.is_empty() {
        let labels: Vec<&str> = REGISTRY.iter().map(|k| k.label()).collect();
        eprintln!(
            "pingpong: --only {:?} matches no kind; kinds: {}",
            opts.only.as_deref().unwrap_or(""),
            labels.join(", ")
        );
        std::process::exit(2);
    }
    std::process::exit(run_all(&opts, &kinds));
}

struct Row {
    label: &'static str,
    who: &'static str,
    result: Result<Measured, String>,
}

fn run_all(opts: &cli::Options, kinds: &[Kind]) -> i32 {
    let mut rows = Vec::new();
    for &kind in kinds {
        eprintln!("pingpong: running {} ...", kind.label());
        let (who, result) = match kind {
            Kind::Process(k) => ("2 processes", run::run_process(k, opts)),
            Kind::Thread(k) => ("2 threads", run::run_thread(k, opts)),
        };
        let result = result.map_err(|e| e.to_string());
        if let Err(e) = &result {
            eprintln!("pingpong: {}: {e}", kind.label());
        }
        rows.push(Row {
            label: kind.label(),
            who,
            result,
        });
    }
    print!("{}", render(opts, &rows));
    if rows.iter().any(|r| r.result.is_err()) {
        1
    } else {
        0
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("Linux {kernel}, {cpus} CPUs available")
}

fn render(opts: &cli::Options, rows: &[Row]) -> String {
    let mut out = String::new();
    let args: Vec<String> = opts.shown.iter().map(|a| shell_quote(a)).collect();
    let mut cmd = "cargo bench -p primitives --bench pingpong".to_string();
    if !args.is_empty() {
        cmd = format!("{cmd} -- {}", args.join(" "));
    }
    let _ = writeln!(out, "Command: `{cmd}`\n");
    let _ = writeln!(
        out,
        "{}; {} s per row after a {:.2} s warm-up{}.\n",
        machine(),
        opts.secs,
        rows.iter()
            .find_map(|r| r.result.as_ref().ok())
            .map_or(0.0, |m| m.m.warmup.as_secs_f64()),
        if opts.sleepers > 0 {
            format!("; {} sleepers per row", opts.sleepers)
        } else {
            String::new()
        }
    );
    let baseline = rows
        .iter()
        .find(|r| r.label == BASELINE)
        .and_then(|r| r.result.as_ref().ok())
        .map(|m| m.m.per_sec());
    let with_sleepers = opts.sleepers > 0;
    let _ = write!(
        out,
        "| kind | processes/threads | round trips/s | ratio vs \"{BASELINE}\" | mean µs | p50 µs | p99 µs | CPU µs per round trip |"
    );
    if with_sleepers {
        let _ = write!(
            out,
            " sleepers' CPU in window, µs total | sleepers' lifetime CPU, µs total |"
        );
    }
    let _ = write!(out, "\n|---|---|--:|--:|--:|--:|--:|--:|");
    if with_sleepers {
        let _ = write!(out, "--:|--:|");
    }
    out.push('\n');
    for row in rows {
        let who = if with_sleepers {
            format!(
                "{} + {} sleeper {}",
                row.who,
                opts.sleepers,
                row.who.trim_start_matches("2 ")
            )
        } else {
            row.who.to_string()
        };
        match &row.result {
            Err(e) => {
                let cols = if with_sleepers { 7 } else { 5 };
                let _ = writeln!(
                    out,
                    "| {} | {who} | error: {} |{}",
                    row.label,
                    e.replace('|', "/"),
                    " |".repeat(cols)
                );
            }
            Ok(Measured { m, sleepers }) => {
                let rate = m.per_sec();
                let ratio = baseline.map_or("n/a".to_string(), |b| format!("{:.2}", rate / b));
                let _ = write!(
                    out,
                    "| {} | {who} | {:.0} | {ratio} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    row.label,
                    rate,
                    m.mean_us(),
                    m.quantile_us(0.50),
                    m.quantile_us(0.99),
                    m.cpu_us_per_round_trip(),
                );
                if with_sleepers {
                    match sleepers {
                        Sleepers::Measured(s) => {
                            let _ = write!(
                                out,
                                " {:.0} | {:.0} |",
                                s.window_ns as f64 / 1e3,
                                s.lifetime_ns as f64 / 1e3
                            );
                            debug_assert_eq!(s.n, opts.sleepers);
                        }
                        Sleepers::Unsupported | Sleepers::NotAsked => {
                            let _ = write!(out, " unsupported | unsupported |");
                        }
                    }
                }
                out.push('\n');
            }
        }
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "Latency: wall time of one round trip (parent puts, peer takes and puts back, parent \
         takes); mean = window / round trips; p50/p99 over every k-th round trip (k per row: {}).",
        rows.iter()
            .map(|r| r
                .result
                .as_ref()
                .map_or("-".to_string(), |m| m.m.sample_every.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "CPU: user+system of both sides over the window (the parent's measuring thread via \
         CLOCK_THREAD_CPUTIME_ID; the child process via clock_getcpuclockid, or the echo \
         thread via pthread_getcpuclockid), divided by round trips."
    );
    // Issue 13's headline: the in-process MVar against crossbeam's bounded(1), same run.
    let rate = |label: &str| {
        rows.iter()
            .find(|r| r.label == label)
            .and_then(|r| r.result.as_ref().ok())
            .map(|m| m.m.per_sec())
    };
    if let (Some(ours), Some(cb)) = (
        rate("ours: MVar (in-process)"),
        rate("crossbeam bounded(1) pair"),
    ) {
        let _ = writeln!(
            out,
            "\nIn-process MVar vs crossbeam bounded(1), this run: {:.2}x ({ours:.0} vs {cb:.0} round trips/s; goal >= 0.8x).",
            ours / cb
        );
    }
    if with_sleepers {
        let _ = writeln!(
            out,
            "Sleepers: blocked in a take nobody fills (the kind's own blocking call) for the \
             whole window; window CPU via the same clocks; lifetime CPU from the rusage the \
             kernel accounts when reaping (processes, includes exec and start-up) or the \
             thread's own clock (threads)."
        );
    }
    out
}
