//! Reports: the catalogue listing, the human-readable session report (failure, hang with the
//! wait registry, per-target summary, verdict line) and the JSON report.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::engine::{
    group_by_object, wait_for_cycle, wait_for_edges, Failure, FailureKind, Outcome, Plan, Waiter,
};
use super::panics::Captured;
use crate::report::Verdict;
use crate::units::human;

/// The first lines of a session: what runs, and the seed to replay it.
pub fn header(plan: &Plan, lockdep: &str) -> String {
    let what = match plan.targets.as_slice() {
        [t] => t.describe(),
        ts => format!("{} scenarios", ts.len()),
    };
    format!(
        "torture: {what}; threads={} rounds={} lockdep={lockdep}{}; duration {}, hang deadline {}; seed {}",
        plan.params.threads,
        plan.params.rounds,
        if plan.chaos { " chaos=on" } else { "" },
        human(plan.duration),
        human(plan.deadline),
        plan.seed
    )
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

/// Waiters beyond this many in one operation, holding the same locks, are one line with a count.
const SHOWN_ONE_BY_ONE: usize = 4;

/// One line per waiter, except that waiters of one object in the same operation holding the same
/// locks are one line with a count once they are more than [`SHOWN_ONE_BY_ONE`].
fn waiter_lines(ws: &[&Waiter]) -> Vec<String> {
    let mut kinds: Vec<(&str, &Vec<&'static str>, Vec<&Waiter>)> = Vec::new();
    for w in ws {
        match kinds
            .iter_mut()
            .find(|(op, holding, _)| *op == w.op && **holding == w.holding)
        {
            Some((_, _, v)) => v.push(w),
            None => kinds.push((w.op, &w.holding, vec![w])),
        }
    }
    let mut lines = Vec::new();
    for (op, holding, v) in kinds {
        if v.len() <= SHOWN_ONE_BY_ONE {
            lines.extend(v.iter().map(|w| waiter_line(w)));
            continue;
        }
        let min = v.iter().map(|w| w.waited).min().unwrap_or_default();
        let max = v.iter().map(|w| w.waited).max().unwrap_or_default();
        let ids: Vec<String> = v.iter().take(3).map(|w| format!("#{}", w.thread)).collect();
        let holding = if holding.is_empty() {
            "holding no tracked lock".to_string()
        } else {
            format!("holding [{}]", holding.join(", "))
        };
        lines.push(format!(
            "{} threads ({}, ...) in {op}, waiting {} to {}, {holding}",
            v.len(),
            ids.join(", "),
            human(min),
            human(max)
        ));
    }
    lines
}

fn waiter_line(w: &Waiter) -> String {
    let name = w
        .thread_name
        .as_deref()
        .map(|n| format!("'{n}'"))
        .unwrap_or_else(|| "(unnamed)".to_string());
    let holding = if w.holding.is_empty() {
        "holding no tracked lock".to_string()
    } else {
        format!("holding [{}]", w.holding.join(", "))
    };
    format!(
        "thread #{} {name} in {}, waiting {}, {holding}",
        w.thread,
        w.op,
        human(w.waited)
    )
}

fn panic_block(s: &mut String, p: &Captured, count: usize) {
    let _ = writeln!(
        s,
        "  thread '{}' panicked at {}:",
        p.thread,
        p.location.as_deref().unwrap_or("<unknown location>")
    );
    s.push_str(&indent(&p.message, "    "));
    if count > 1 {
        let _ = writeln!(s, "  ({count} panics in this run; the first is shown)");
    }
    if let Some(bt) = &p.backtrace {
        let _ = writeln!(s, "  backtrace of the first panic:");
        s.push_str(&indent(bt, "    "));
    }
}

/// The failure report: what, where, the first panic, the wait registry for a hang, the replay
/// command.
pub fn failure_text(f: &Failure, plan: &Plan, replay: &str) -> String {
    let mut s = String::new();
    let what = match f.kind {
        FailureKind::Panic => "FAIL (panic)",
        FailureKind::Hang => "HANG",
    };
    let _ = writeln!(
        s,
        "torture: {what} in {} after {}; iteration {} (run {} of {}); seed {}",
        f.target.describe(),
        human(f.after),
        f.iteration,
        f.run_of_target,
        f.target.name,
        plan.seed
    );
    match (&f.kind, &f.panic) {
        (FailureKind::Panic, Some(p)) => panic_block(&mut s, p, f.panics),
        (FailureKind::Panic, None) => {
            let _ = writeln!(s, "  a thread panicked (message not captured)");
        }
        (FailureKind::Hang, Some(p)) => {
            let _ = writeln!(
                s,
                "  a thread panicked before the run stopped making progress:"
            );
            panic_block(&mut s, p, f.panics);
        }
        (FailureKind::Hang, None) => {}
    }
    if let FailureKind::Hang = f.kind {
        registry_block(&mut s, &f.waiters);
    }
    let _ = writeln!(s, "  replay: {replay}");
    s
}

fn registry_block(s: &mut String, waiters: &[Waiter]) {
    if waiters.is_empty() {
        let _ = writeln!(
            s,
            "  wait registry: empty — no thread sleeps in a primitive; a thread spins, waits outside the \
             primitives, or lost its wake-up before registering"
        );
        return;
    }
    let groups = group_by_object(waiters);
    let _ = writeln!(
        s,
        "  wait registry: {} sleeping thread{} on {} object{} (longest waiting first)",
        waiters.len(),
        plural(waiters.len()),
        groups.len(),
        plural(groups.len())
    );
    for (object, ws) in &groups {
        let mut ops: Vec<&str> = Vec::new();
        for w in ws {
            if !ops.contains(&w.op) {
                ops.push(w.op);
            }
        }
        let _ = writeln!(
            s,
            "    object {object:#x} ({}): {} waiter{}",
            ops.join(", "),
            ws.len(),
            plural(ws.len())
        );
        for line in waiter_lines(ws) {
            let _ = writeln!(s, "      {line}");
        }
    }
    let edges = wait_for_edges(waiters);
    if edges.is_empty() {
        let _ = writeln!(
            s,
            "  wait-for graph: no sleeping thread holds a lock another one waits for (a lost wake-up, \
             or a holder that is running, stopped or gone)"
        );
        return;
    }
    let _ = writeln!(s, "  wait-for graph:");
    for (waiter, object, holder) in &edges {
        let _ = writeln!(
            s,
            "    thread #{waiter} waits for {object:#x}, held by thread #{holder}"
        );
    }
    if let Some(cycle) = wait_for_cycle(&edges) {
        let path: Vec<String> = cycle.iter().map(|t| format!("#{t}")).collect();
        let _ = writeln!(s, "  DEADLOCK cycle: {}", path.join(" -> "));
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Per-target lines and the verdict line.
pub fn summary_text(outcome: &Outcome, verdict: Verdict) -> String {
    let mut s = String::new();
    let w = outcome
        .stats
        .iter()
        .map(|(t, _)| t.name.len())
        .max()
        .unwrap_or(0);
    for (t, st) in &outcome.stats {
        let passed = st.runs
            - u64::from(
                outcome
                    .failure
                    .as_ref()
                    .is_some_and(|f| f.target.name == t.name),
            );
        let mean = if passed > 0 {
            Duration::from_nanos((st.total.as_nanos() / u128::from(passed)) as u64)
        } else {
            Duration::ZERO
        };
        if passed == 0 {
            let _ = writeln!(s, "  {:w$}  {:>8} runs  (none passed)", t.name, st.runs);
        } else {
            let _ = writeln!(
                s,
                "  {:w$}  {:>8} runs  mean {:>8}  max {:>8}",
                t.name,
                st.runs,
                human(mean),
                human(st.max)
            );
        }
    }
    let rate = outcome.total_runs as f64 / outcome.elapsed.as_secs_f64().max(1e-9);
    let secs = outcome.elapsed.as_secs_f64();
    let line = match (verdict, &outcome.failure) {
        (Verdict::Pass, _) => format!(
            "torture: {} scenario{}, {} runs in {secs:.1}s ({rate:.0} runs/s), no failure",
            outcome.stats.len(),
            plural(outcome.stats.len()),
            outcome.total_runs
        ),
        (Verdict::Fail, Some(f)) => format!(
            "torture: BUG FOUND in {}: {} (run {} of the session, after {})",
            f.target.describe(),
            kind_word(f),
            outcome.total_runs,
            human(outcome.elapsed)
        ),
        (Verdict::Caught, Some(f)) => format!(
            "torture: control {} caught: {} (run {}, after {})",
            f.target.name,
            caught_what(f),
            outcome.total_runs,
            human(outcome.elapsed)
        ),
        (Verdict::NotCaught, _) => {
            let t = outcome.stats.first().map(|(t, _)| t.name).unwrap_or("?");
            let blind = primitives::scenarios::catalogue::control(t)
                .and_then(|c| c.blind_spots.iter().find(|(e, _)| *e == "torture"))
                .map(|(_, why)| format!(" (documented blind spot of torture: {why})"))
                .unwrap_or_default();
            format!(
                "torture: control {t} NOT CAUGHT in {} runs ({secs:.1}s){blind}",
                outcome.total_runs
            )
        }
        _ => "torture: inconsistent outcome".to_string(),
    };
    s.push_str(&line);
    s.push('\n');
    s
}

fn kind_word(f: &Failure) -> &'static str {
    match (&f.kind, &f.panic) {
        (FailureKind::Panic, _) => "panic",
        (FailureKind::Hang, None) => "HANG",
        (FailureKind::Hang, Some(_)) => "panic, then HANG",
    }
}

/// `<first line of the panic message>` or `HANG (…waiting in Op…)`.
fn caught_what(f: &Failure) -> String {
    match (&f.kind, &f.panic) {
        (FailureKind::Panic, Some(p)) | (FailureKind::Hang, Some(p)) => {
            let first = p.message.lines().next().unwrap_or("").to_string();
            if let FailureKind::Hang = f.kind {
                format!("{first} (then HANG)")
            } else {
                first
            }
        }
        (FailureKind::Panic, None) => "panic".to_string(),
        (FailureKind::Hang, None) => {
            let mut ops: Vec<&str> = f.waiters.iter().map(|w| w.op).collect();
            ops.sort_unstable();
            ops.dedup();
            if ops.is_empty() {
                "HANG (no thread in the wait registry)".to_string()
            } else {
                format!(
                    "HANG ({} thread{} waiting in {})",
                    f.waiters.len(),
                    plural(f.waiters.len()),
                    ops.join(", ")
                )
            }
        }
    }
}

/// The JSON report (`--json PATH`).
#[derive(Debug, Serialize)]
pub struct JsonReport {
    /// `"torture"`.
    pub tool: &'static str,
    /// `"threads"`.
    pub command: &'static str,
    /// Crate version.
    pub version: &'static str,
    /// Verdict.
    pub verdict: Verdict,
    /// Process exit code.
    pub exit_code: u8,
    /// Seed of the order shuffle.
    pub seed: u64,
    /// `scenarios` or `control`.
    pub mode: &'static str,
    /// Worker threads.
    pub threads: usize,
    /// Rounds.
    pub rounds: usize,
    /// Lockdep mode.
    pub lockdep: String,
    /// Chaos mode (injected spurious wake-ups and delays) was on.
    pub chaos: bool,
    /// Requested duration.
    pub duration_ms: u128,
    /// Hang deadline.
    pub deadline_ms: u128,
    /// Actual elapsed time.
    pub elapsed_ms: u128,
    /// Runs in total.
    pub total_runs: u64,
    /// Per target.
    pub targets: Vec<JsonTarget>,
    /// The failure, if any.
    pub failure: Option<JsonFailure>,
    /// Command line that replays the session.
    pub replay: String,
}

/// Per-target statistics.
#[derive(Debug, Serialize)]
pub struct JsonTarget {
    /// Name.
    pub name: &'static str,
    /// Runs.
    pub runs: u64,
    /// Mean passing run.
    pub mean_us: u128,
    /// Longest passing run.
    pub max_us: u128,
}

/// A failure.
#[derive(Debug, Serialize)]
pub struct JsonFailure {
    /// `panic` or `hang`.
    pub kind: &'static str,
    /// Target name.
    pub target: &'static str,
    /// Global run index.
    pub iteration: u64,
    /// Run of this target (1-based).
    pub run_of_target: u64,
    /// Time into the run.
    pub after_ms: u128,
    /// First panic.
    pub panic: Option<Captured>,
    /// Panics in the run.
    pub panics: usize,
    /// Wait registry at the verdict.
    pub waiters: Vec<JsonWaiter>,
}

/// One waiter.
#[derive(Debug, Serialize)]
pub struct JsonWaiter {
    /// Facade thread id.
    pub thread: u64,
    /// OS thread name.
    pub thread_name: Option<String>,
    /// Operation.
    pub op: &'static str,
    /// Object address, hex.
    pub object: String,
    /// Time waited.
    pub waited_ms: u128,
    /// Held lock classes.
    pub holding: Vec<&'static str>,
    /// Held lock identities, hex (match another waiter's `object`).
    pub holding_objects: Vec<String>,
}

/// Builds the JSON report.
pub fn json_report(
    plan: &Plan,
    lockdep: &str,
    outcome: &Outcome,
    verdict: Verdict,
    replay: &str,
) -> JsonReport {
    let control = plan.targets.first().is_some_and(|t| t.control);
    let failed = outcome.failure.as_ref();
    JsonReport {
        tool: "torture",
        command: "threads",
        version: env!("CARGO_PKG_VERSION"),
        verdict,
        exit_code: verdict.exit_code(),
        seed: plan.seed,
        mode: if control { "control" } else { "scenarios" },
        threads: plan.params.threads,
        rounds: plan.params.rounds,
        lockdep: lockdep.to_string(),
        chaos: plan.chaos,
        duration_ms: plan.duration.as_millis(),
        deadline_ms: plan.deadline.as_millis(),
        elapsed_ms: outcome.elapsed.as_millis(),
        total_runs: outcome.total_runs,
        targets: outcome
            .stats
            .iter()
            .map(|(t, st)| {
                let passed = st.runs - u64::from(failed.is_some_and(|f| f.target.name == t.name));
                JsonTarget {
                    name: t.name,
                    runs: st.runs,
                    mean_us: if passed > 0 {
                        st.total.as_micros() / u128::from(passed)
                    } else {
                        0
                    },
                    max_us: st.max.as_micros(),
                }
            })
            .collect(),
        failure: failed.map(|f| JsonFailure {
            kind: match f.kind {
                FailureKind::Panic => "panic",
                FailureKind::Hang => "hang",
            },
            target: f.target.name,
            iteration: f.iteration,
            run_of_target: f.run_of_target,
            after_ms: f.after.as_millis(),
            panic: f.panic.clone(),
            panics: f.panics,
            waiters: f
                .waiters
                .iter()
                .map(|w| JsonWaiter {
                    thread: w.thread,
                    thread_name: w.thread_name.clone(),
                    op: w.op,
                    object: format!("{:#x}", w.object),
                    waited_ms: w.waited.as_millis(),
                    holding: w.holding.clone(),
                    holding_objects: w
                        .holding_objects
                        .iter()
                        .map(|o| format!("{o:#x}"))
                        .collect(),
                })
                .collect(),
        }),
        replay: replay.to_string(),
    }
}
