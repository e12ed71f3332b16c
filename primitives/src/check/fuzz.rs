//! Fuzz-driven operation sequences as one public call for a user's type: [`mvar`], [`lock`],
//! [`log`]. A cargo-fuzz target for your MVar is then:
//!
//! ```ignore
//! #![no_main]
//! libfuzzer_sys::fuzz_target!(|data: &[u8]| primitives::check::fuzz::mvar(MyMVar::new, data));
//! ```
//!
//! Each call decodes the fuzzer's bytes (with `arbitrary`) into an operation sequence of at
//! most [`MAX_OPS`] operations — keeping only those the sequential model allows, exactly the
//! ones the proptest models of [`super::model`] generate (blocking operations only when they
//! cannot block, read/swap only when declared) — runs it on a fresh subject from `make` on the
//! calling thread with the executors of [`super::model`], and **panics** with the sequence and
//! what differed from the model on the first mismatch: that is how libFuzzer sees a finding.
//!
//! # Never hanging
//! Timed operations get at most about a millisecond. A subject that blocks anyway (a `put` on a
//! box the model knows is empty) is caught by a deadline (`FUZZ_DEADLINE_MS`, default 1000, as
//! the crate's own fuzz targets): past it a watchdog thread prints the sequence, the operation
//! running, and every thread asleep in one of this crate's primitives, and **aborts** the
//! process, which libFuzzer records as a crash.
//!
//! Inputs over [`MAX_INPUT`] bytes are ignored (libFuzzer then learns to stay small).

use super::model::{
    lock_case, lock_subject, log_case, log_subject, mvar_sequence, panic_text, LockOp, LogOp,
    MVarOp, Mismatch, Probe, LOCKS, MAX_TIMEOUT,
};
use crate::lock::LockClass;
use crate::scenarios::catalogue::Delivered;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::Arc;
use crate::traits::{LockApi, LogApi, MVarApi};
use arbitrary::{Result as ArbResult, Unstructured};
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Largest input decoded (bigger ones are ignored).
pub const MAX_INPUT: usize = 4096;
/// Longest operation sequence decoded from one input.
pub const MAX_OPS: usize = 64;

/// The deadline of one execution: `FUZZ_DEADLINE_MS` (milliseconds), default 1000.
pub fn deadline() -> Duration {
    let ms = std::env::var("FUZZ_DEADLINE_MS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .unwrap_or(1000);
    Duration::from_millis(ms)
}

/// Runs a decoded sequence on an MVar from `make` (which must return an empty box): panics on
/// a mismatch with the sequential model, aborts on a hang (see the module documentation).
/// `read`/`try_read`/`swap` are decoded only if the box declares
/// [`read_swap`](crate::traits::MVarCaps::read_swap).
pub fn mvar<M: MVarApi<u64>>(make: impl Fn() -> M, data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let m = make();
    let read_swap = m.capabilities().read_swap;
    let ops = decode(data, |u, state: &mut Option<u64>| {
        let op = match u.int_in_range(0u8..=8)? {
            0 => MVarOp::Put(value(u)?),
            1 => MVarOp::Take,
            2 => MVarOp::TryPut(value(u)?),
            3 => MVarOp::TryTake,
            4 => MVarOp::PutTimeout(value(u)?, timeout(u)?),
            5 => MVarOp::TakeTimeout(timeout(u)?),
            6 => MVarOp::Read,
            7 => MVarOp::TryRead,
            _ => MVarOp::Swap(value(u)?),
        };
        Ok(op.allowed(*state, read_swap).then(|| {
            *state = op.next(*state);
            op
        }))
    });
    guarded::<M, _>("mvar", &ops, |step| {
        mvar_sequence(&m, &ops, read_swap, step)
    });
}

/// Runs a decoded sequence over [`LOCKS`] locks from `make` (one class, tracked in `Report`
/// mode): panics on a mismatch with the lock model, aborts on a hang.
pub fn lock<L: LockApi>(make: impl Fn(&LockClass) -> L, data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let probe_class =
        crate::lock::Validator::new(crate::lock::Mode::Off).class("check.fuzz.probe", true);
    let reentrant = make(&probe_class).is_reentrant();
    let subject = lock_subject(&make, reentrant);
    let ops = decode(data, |u, guards: &mut Vec<usize>| {
        let i = usize::from(u.int_in_range(0u8..=LOCKS as u8 - 1)?);
        let op = match u.int_in_range(0u8..=4)? {
            0 => LockOp::Lock(i),
            1 => LockOp::TryLock(i),
            2 => LockOp::LockTimeout(i, timeout(u)?),
            3 if !guards.is_empty() => {
                LockOp::Unlock(usize::from(u.arbitrary::<u8>()?) % guards.len())
            }
            3 => return Ok(None),
            _ => LockOp::Probe(
                i,
                if u.arbitrary::<bool>()? {
                    Probe::TryLock
                } else {
                    Probe::Timeout(timeout(u)?)
                },
            ),
        };
        Ok(op.allowed(guards, reentrant).then(|| {
            *guards = op.next(std::mem::take(guards), reentrant);
            op
        }))
    });
    guarded::<L, _>("lock", &ops, |step| lock_case(subject, &ops, step));
}

/// Runs a decoded log sequence (logging, from a sink callback, under an "ODB" lock, a watchdog
/// locking ODB under the sink lock, flush) on a log from `make`: panics on a mismatch with the
/// log model (lost, duplicated, reordered or unannounced dropped messages; a lock-order
/// violation, as the validator in `Panic` mode raises it), aborts on a hang.
pub fn log<G: LogApi>(make: impl Fn(Delivered, &LockClass) -> G, data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let subject = log_subject(&make);
    let ops = decode(data, |u, _: &mut ()| {
        Ok(Some(match u.int_in_range(0u8..=4)? {
            0 => LogOp::Log,
            1 => LogOp::LogUnderSinkLock,
            2 => LogOp::LogUnderOdb(u.int_in_range(1u8..=8)?),
            3 => LogOp::OdbUnderSinkLock,
            _ => LogOp::Flush,
        }))
    });
    guarded::<G, _>("log", &ops, |step| log_case(subject, &ops, step));
}

/// A value to put (few distinct ones: a value kept or handed back by mistake shows).
fn value(u: &mut Unstructured<'_>) -> ArbResult<u64> {
    Ok(u64::from(u.arbitrary::<u8>()?))
}

/// A timeout of zero (half the time) or up to [`MAX_TIMEOUT`].
fn timeout(u: &mut Unstructured<'_>) -> ArbResult<Duration> {
    let b = u.arbitrary::<u8>()?;
    let max = MAX_TIMEOUT.as_micros() as u64;
    Ok(if b < 128 {
        Duration::ZERO
    } else {
        Duration::from_micros(u64::from(b - 128) * max / 127)
    })
}

/// Decodes operations with `next` (given the model state; `None`: skip this one) until the
/// input runs out or [`MAX_OPS`] are decoded.
fn decode<T, S: Default>(
    data: &[u8],
    mut next: impl FnMut(&mut Unstructured<'_>, &mut S) -> ArbResult<Option<T>>,
) -> Vec<T> {
    let mut u = Unstructured::new(data);
    let mut state = S::default();
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS && !u.is_empty() {
        match next(&mut u, &mut state) {
            Ok(Some(op)) => ops.push(op),
            Ok(None) => {}
            Err(_) => break,
        }
    }
    ops
}

/// Runs `f` under the deadline watchdog and panics on its mismatch.
fn guarded<X: ?Sized, T: Debug>(
    what: &str,
    ops: &[T],
    f: impl FnOnce(&dyn Fn(usize)) -> Result<(), Mismatch>,
) {
    let subject = std::any::type_name::<X>();
    let watch = Watchdog::start(format!(
        "check::fuzz::{what} on {subject}: sequence ({} ops) {ops:?}",
        ops.len()
    ));
    let at = watch.at.clone();
    let step = move |i: usize| at.store(i + 1, Ordering::SeqCst);
    // A panic of the subject (or of the validator it reports to) is a finding too: re-raised
    // below with the sequence and the operation it happened in.
    let r = catch_unwind(AssertUnwindSafe(|| f(&step))).unwrap_or_else(|p| {
        let i = watch.at.load(Ordering::SeqCst);
        Err(Mismatch {
            at: (i > 0 && i <= ops.len()).then(|| i - 1),
            message: format!("panicked: {}", panic_text(&*p)),
        })
    });
    drop(watch);
    if let Err(m) = r {
        let op =
            m.at.and_then(|i| ops.get(i))
                .map(|op| format!(" ({op:?})"))
                .unwrap_or_default();
        panic!(
            "check::fuzz::{what}: {subject} differs from the sequential model at {m}{op}\n  sequence ({} ops): {ops:?}",
            ops.len()
        );
    }
}

/// A thread that aborts the process if the execution is still running past [`deadline`].
struct Watchdog {
    done: Arc<AtomicBool>,
    at: Arc<AtomicUsize>,
    thread: std::thread::Thread,
}

impl Watchdog {
    fn start(case: String) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let at = Arc::new(AtomicUsize::new(0));
        let (d, a) = (done.clone(), at.clone());
        let limit = deadline();
        let handle = std::thread::Builder::new()
            .name("check-fuzz-deadline".into())
            .spawn(move || {
                let t0 = Instant::now();
                while !d.load(Ordering::SeqCst) {
                    let waited = t0.elapsed();
                    if waited >= limit {
                        hang(&case, a.load(Ordering::SeqCst), waited, limit);
                    }
                    std::thread::park_timeout(limit - waited);
                }
            })
            .expect("start the deadline watchdog");
        Watchdog {
            done,
            at,
            thread: handle.thread().clone(),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

fn hang(case: &str, at: usize, waited: Duration, limit: Duration) -> ! {
    let mut s = format!(
        "\n==== HANG: the execution is still running after {:.0} ms (deadline {} ms, FUZZ_DEADLINE_MS)\n{case}\n",
        waited.as_secs_f64() * 1e3,
        limit.as_millis()
    );
    s.push_str(&match at {
        0 => "in setup\n".to_string(),
        i => format!(
            "in op #{} (or the final checks, if that is the last)\n",
            i - 1
        ),
    });
    for w in crate::track::waitreg::snapshot() {
        s.push_str(&format!("  {}\n", w.describe()));
    }
    eprint!("{s}");
    std::process::abort();
}
