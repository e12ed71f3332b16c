//! Shared by the engine tests: run a control in a child process (a copy of the test binary),
//! so that an engine's failure — which may abort the process while unwinding its model
//! threads — is observed from outside, and so that a hang cannot take the test run with it.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A third-party-style MVar with a lost wake-up, on the model engine's own Mutex and Condvar.
pub mod broken;

/// The repository's one way to start a child process (std + libc only, so it builds here, also
/// under `--cfg loom` / `--cfg shuttle`).
#[allow(dead_code)]
#[path = "../../../torture/src/procs/tied.rs"]
pub mod tied;

/// Env var that makes the `child` test of a test binary run one control.
pub const CONTROL_ENV: &str = "PRIMITIVES_CHILD_CONTROL";
/// Env var passing the engine configuration (scheduler, lockdep mode) to the child.
pub const CONFIG_ENV: &str = "PRIMITIVES_CHILD_CONFIG";
/// Exit code of a child whose engine caught the failure.
pub const CAUGHT: i32 = 3;

/// What a child reported.
#[derive(Debug)]
pub struct Outcome {
    /// Did the engine catch it?
    pub caught: bool,
    /// Executions / schedules explored until then.
    pub executions: usize,
    /// First line of the engine's failure message.
    pub message: String,
    /// All of the child's stderr (for diagnostics).
    pub stderr: String,
}

/// Installs a panic hook that reports the first failure with the execution count and exits,
/// before the engine unwinds its threads.
pub fn install_reporting_hook(counter: &'static std::sync::atomic::AtomicUsize) {
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let n = counter.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "ENGINE-CAUGHT executions={n} message={}",
            msg.replace('\n', " | ")
        );
        if let Some(loc) = info.location() {
            eprintln!("ENGINE-CAUGHT-AT {loc}");
        }
        std::process::exit(CAUGHT);
    }));
}

/// Runs the test named `child_test` of the current test binary with `control` and `config` in
/// its environment; kills it after `limit`.
pub fn run_child(child_test: &str, control: &str, config: &str, limit: Duration) -> Outcome {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", child_test, "--nocapture", "--test-threads=1"])
        .env(CONTROL_ENV, control)
        .env(CONFIG_ENV, config)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = tied::Tied::spawn(&mut cmd).expect("spawn child test");
    let mut stderr = child.child().stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // A child still running after `limit` is killed (its whole group) and reaped.
    let status = child.wait_timeout(limit);
    drop(child);
    let stderr = reader.join().unwrap_or_default();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("ENGINE-CAUGHT ") || l.starts_with("ENGINE-PASSED "));
    let executions = line
        .and_then(|l| l.split("executions=").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let message = line
        .and_then(|l| l.split("message=").nth(1))
        .unwrap_or("")
        .to_string();
    let caught = status.and_then(|s| s.code()) == Some(CAUGHT);
    Outcome {
        caught,
        executions,
        message,
        stderr,
    }
}

/// The `child` side of [`run_child`] under loom: runs the control named by [`CONTROL_ENV`]
/// (lockdep from [`CONFIG_ENV`]: `off` or panic) at `bound`, within `max` permutations and
/// `time` when given, counting executions in `counter`; reports `ENGINE-PASSED` (a failure is
/// reported and exits through [`install_reporting_hook`]). A no-op when no control is named.
#[cfg(loom)]
pub fn loom_child(
    counter: &'static std::sync::atomic::AtomicUsize,
    bound: usize,
    limits: Option<(usize, Duration)>,
) {
    use std::sync::atomic::Ordering;
    let Ok(name) = std::env::var(CONTROL_ENV) else {
        return;
    };
    let mode = match std::env::var(CONFIG_ENV).as_deref() {
        Ok("off") => primitives::lock::Mode::Off,
        _ => primitives::lock::Mode::Panic,
    };
    let c = primitives::scenarios::catalogue::control(&name).expect("control exists");
    install_reporting_hook(counter);
    let params = primitives::scenarios::Params::for_engine().with_lockdep(mode);
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(bound);
    b.max_branches = 10_000;
    if let Some((max, time)) = limits {
        b.max_permutations = Some(max);
        b.max_duration = Some(time);
    }
    let run = c.run;
    counter.store(0, Ordering::Relaxed);
    b.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        run(&params)
    });
    eprintln!(
        "ENGINE-PASSED executions={}",
        counter.load(Ordering::Relaxed)
    );
}
