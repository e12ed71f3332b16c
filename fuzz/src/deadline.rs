//! "No hang beyond a timeout": every execution runs under a deadline (`FUZZ_DEADLINE_MS`,
//! default 1000). A watchdog thread that sees an execution still running past it prints the
//! case, every thread sleeping in a primitive (from the wait registry: operation, object, for
//! how long, which tracked locks it holds), and aborts — libFuzzer records the input as a crash.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The deadline of one execution.
pub fn deadline() -> Duration {
    static D: OnceLock<Duration> = OnceLock::new();
    *D.get_or_init(|| {
        let ms = std::env::var("FUZZ_DEADLINE_MS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .unwrap_or(1000);
        Duration::from_millis(ms)
    })
}

struct Running {
    target: &'static str,
    case: String,
    since: Instant,
}

static CURRENT: Mutex<Option<Running>> = Mutex::new(None);

fn watchdog() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("fuzz-deadline".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_millis(20));
                let late = {
                    let cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
                    cur.as_ref()
                        .filter(|r| r.since.elapsed() > deadline())
                        .map(|r| (r.target, r.case.clone(), r.since.elapsed()))
                };
                if let Some((target, case, took)) = late {
                    report_and_abort(target, &case, took);
                }
            })
            .expect("start the deadline watchdog");
    });
}

fn report_and_abort(target: &str, case: &str, took: Duration) -> ! {
    let mut s = format!(
        "\n==== HANG in fuzz target {target}: the execution is still running after {:.0} ms (deadline {} ms, FUZZ_DEADLINE_MS)\n",
        took.as_secs_f64() * 1e3,
        deadline().as_millis()
    );
    s.push_str(&format!("case: {case}\n"));
    let waiting = primitives::track::waitreg::snapshot();
    if waiting.is_empty() {
        s.push_str(
            "no thread sleeps in a primitive (a busy loop, or a wait outside the registry)\n",
        );
    }
    for w in waiting {
        s.push_str(&format!("  {}\n", w.describe()));
    }
    eprint!("{s}");
    std::process::abort();
}

/// Runs one execution of `target` on `case` (its `Debug` is the reproducer) under the deadline.
pub fn run<R>(target: &'static str, case: &impl std::fmt::Debug, f: impl FnOnce() -> R) -> R {
    watchdog();
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running {
        target,
        case: format!("{case:?}"),
        since: Instant::now(),
    });
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
    let _clear = Clear;
    f()
}
