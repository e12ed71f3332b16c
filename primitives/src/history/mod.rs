//! Histories of MVar operations and the linearizability oracle that judges them.
//!
//! A scenario (on any engine: real threads, shuttle, loom, or processes) gives each of its
//! threads a [`Recorder`]; the thread stamps every call and return on one shared [`Clock`] and
//! records what the operation did ([`Kind`]). [`judge`] merges the threads' records and asks
//! [`linearizability`] whether one atomic box could have produced them — from the history
//! alone, knowing nothing of the implementation. A `read` made of `take` + `put`, or a
//! `try_take` that hands out a value a timed-out `take` already returned, keeps every
//! per-operation invariant and is still caught here.
//!
//! The clock: for real, nanoseconds of the monotonic clock (no synchronisation between the
//! threads, so recording does not hide races); under a model engine (time frozen) a counter
//! bumped with `SeqCst` at every stamp, whose order is consistent with happens-before, which is
//! all real-time order needs.

pub mod linearizability;

use crate::sync::atomic::AtomicU64;
#[cfg(any(loom, shuttle))]
use crate::sync::atomic::Ordering;
use crate::sync::Arc;
use linearizability::{check_with, Cell, Kind, Limits, Operation, Verdict};

/// The clock every recorder of one history stamps with.
#[derive(Debug)]
pub struct Clock {
    #[cfg(not(any(loom, shuttle)))]
    base: std::time::Instant,
    ticks: AtomicU64,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Arc<Clock> {
        Arc::new(Clock {
            #[cfg(not(any(loom, shuttle)))]
            base: std::time::Instant::now(),
            ticks: AtomicU64::new(1),
        })
    }

    /// The time now (see the module docs).
    pub fn now(&self) -> u64 {
        #[cfg(not(any(loom, shuttle)))]
        {
            let _ = &self.ticks;
            self.base.elapsed().as_nanos() as u64
        }
        #[cfg(any(loom, shuttle))]
        {
            self.ticks.fetch_add(1, Ordering::SeqCst)
        }
    }
}

/// One thread's part of a history.
#[derive(Debug)]
pub struct Recorder {
    process: u32,
    clock: Arc<Clock>,
    ops: Vec<Operation>,
}

impl Recorder {
    /// A recorder for thread (or process) `process`, stamping with `clock`.
    pub fn new(process: u32, clock: &Arc<Clock>) -> Recorder {
        Recorder {
            process,
            clock: clock.clone(),
            ops: Vec::new(),
        }
    }

    /// Runs `op`, stamping its call and return, and records what `kind` says it did.
    pub fn record<R>(&mut self, op: impl FnOnce() -> R, kind: impl FnOnce(&R) -> Kind) -> R {
        let call_ns = self.clock.now();
        let r = op();
        let return_ns = Some(self.clock.now());
        self.ops.push(Operation {
            process: self.process,
            call_ns,
            return_ns,
            kind: kind(&r),
        });
        r
    }

    /// The operations recorded so far.
    pub fn into_ops(self) -> Vec<Operation> {
        self.ops
    }
}

/// Judges the merged history of `parts` from a box starting as `initial`: `Err` with a
/// readable account if no atomic box could have produced it. `Unknown` (search cap reached)
/// counts as a pass: the oracle never fails a run it could not decide.
pub fn judge(parts: Vec<Vec<Operation>>, initial: Cell) -> Result<(), String> {
    let history: Vec<Operation> = parts.into_iter().flatten().collect();
    match check_with(&history, initial, Limits::default()) {
        Verdict::NotLinearizable { prefix, stuck } => Err(explain(&history, &prefix, &stuck)),
        Verdict::Linearizable { .. } | Verdict::Unknown { .. } => Ok(()),
    }
}

/// "not linearizable: after [...] none of [...] can come next", naming operations by thread.
pub fn explain(history: &[Operation], prefix: &[usize], stuck: &[usize]) -> String {
    let show = |i: &usize| {
        let o = &history[*i];
        format!("t{}:{}", o.process, describe(o.kind))
    };
    let tail: Vec<String> = prefix.iter().rev().take(6).rev().map(show).collect();
    let stuck: Vec<String> = stuck.iter().map(show).collect();
    format!(
        "history not linearizable ({} ops): after {}[{}] none of [{}] can come next",
        history.len(),
        if prefix.len() > 6 { "… " } else { "" },
        tail.join(", "),
        stuck.join(", ")
    )
}

/// One operation, short.
pub fn describe(kind: Kind) -> String {
    let v = |x: Option<u64>| x.map_or("?".to_string(), |x| x.to_string());
    match kind {
        Kind::Put(x) => format!("put({x})"),
        Kind::Take(x) => format!("take→{}", v(x)),
        Kind::Read(x) => format!("read→{}", v(x)),
        Kind::TryRead(x) => format!("try_read→{}", v(x)),
        Kind::Swap { new, old } => format!("swap({new})→{}", v(old)),
        Kind::TryPut { value, ok } => {
            format!("try_put({value})→{}", if ok { "ok" } else { "full" })
        }
        Kind::TryTake(x) => format!("try_take→{}", x.map_or("empty".into(), |x| x.to_string())),
        Kind::TimedOut => "timed out".to_string(),
    }
}
