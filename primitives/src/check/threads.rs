//! The linearizability oracle on real threads, for any [`MVarApi<u64>`]: [`mvar_history`]
//! drives a box from several OS threads with random bounded operations (timed puts of unique
//! values, timed takes, `try_put`, `try_take`), records every call and return with its time and
//! value, and [`mvar_verdict`] judges the history with [`super::linearizability`] — from the
//! history alone, knowing nothing of the implementation. A box that hands a value out twice, or
//! loses one, or lets a timed-out operation take effect, has a history no single atomic box
//! could produce.
//!
//! Every blocking call is timed (`--timeout` of the traffic: [`Traffic::timeout`]) so that a
//! run always ends, whatever the box does; a timed-out call is recorded as having no effect,
//! which is what the contract promises (a timeout gives the value back).
//!
//! Real threads only (under loom or shuttle the checker owns time and the schedule: their
//! engines check the same properties with their own models).

use crate::history::linearizability::{check_with, Cell, Kind, Limits, Operation, Verdict};
use crate::traits::MVarApi;
use std::time::{Duration, Instant};

/// The traffic [`mvar_history`] runs.
#[derive(Clone, Copy, Debug)]
pub struct Traffic {
    /// Threads.
    pub threads: usize,
    /// Operations per thread.
    pub ops: usize,
    /// Timeout of the blocking calls.
    pub timeout: Duration,
    /// Seed of each thread's choice of operations.
    pub seed: u64,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            threads: 4,
            ops: 40,
            timeout: Duration::from_millis(2),
            seed: 1,
        }
    }
}

/// Runs `traffic` on `mvar` (empty at the start) and returns its history: one
/// [`Operation`] per call, `process` = the thread's index. Values put are unique
/// (`thread << 32 | n`, never 0).
pub fn mvar_history<M: MVarApi<u64> + Sync>(mvar: &M, traffic: Traffic) -> Vec<Operation> {
    let base = Instant::now();
    let ns = move || base.elapsed().as_nanos() as u64;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..traffic.threads)
            .map(|t| {
                s.spawn(move || {
                    let mut rng = traffic.seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    let mut next = move || {
                        // SplitMix64.
                        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
                        let mut z = rng;
                        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                        z ^ (z >> 31)
                    };
                    let mut ops = Vec::with_capacity(traffic.ops);
                    for n in 0..traffic.ops {
                        let value = ((t as u64 + 1) << 32) | n as u64;
                        let call_ns = ns();
                        let kind = match next() % 4 {
                            0 => match mvar.put_timeout(value, traffic.timeout) {
                                Ok(()) => Kind::Put(value),
                                Err(_) => Kind::TimedOut,
                            },
                            1 => match mvar.take_timeout(traffic.timeout) {
                                Some(v) => Kind::Take(Some(v)),
                                None => Kind::TimedOut,
                            },
                            2 => Kind::TryPut {
                                value,
                                ok: mvar.try_put(value).is_ok(),
                            },
                            _ => Kind::TryTake(mvar.try_take()),
                        };
                        ops.push(Operation {
                            process: t as u32,
                            call_ns,
                            return_ns: Some(ns()),
                            kind,
                        });
                    }
                    ops
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Runs `traffic` on a fresh box from `make` for each of `runs` seeds (`traffic.seed`,
/// `+1`, ...) and judges every history; returns the first verdict that is not
/// [`Verdict::Linearizable`] with its seed and history, or `None` if all were linearizable.
pub fn mvar_verdict<M: MVarApi<u64> + Sync>(
    make: impl Fn() -> M,
    traffic: Traffic,
    runs: u64,
) -> Option<(u64, Verdict, Vec<Operation>)> {
    (0..runs).find_map(|r| {
        let seed = traffic.seed.wrapping_add(r);
        let mvar = make();
        let history = mvar_history(&mvar, Traffic { seed, ..traffic });
        match check_with(&history, Cell::Empty, Limits::default()) {
            Verdict::Linearizable { .. } => None,
            v => Some((seed, v, history)),
        }
    })
}
