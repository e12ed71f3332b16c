//! A kill-storm worker process: random put / take / read traffic on the shared MVar and nested
//! shared-lock + log traffic, every operation recorded in its ledger before and after it runs
//! (see [`crate::procs::ledger`]). Values it puts carry its id in their high half.

use super::steps::{lock_and_log, open_name};
use super::{payload, StormSpec};
use crate::procs::ledger::{now_ns, Op, Record};
use crate::procs::WorkerArgs;
use primitives::lock::{Mode, SharedReentrantLock, Validator};
use primitives::msg::ring::SharedLog;
use primitives::mvar::{SharedMVar, SharedMVarError};
use std::time::Duration;

/// Runs until killed. Returns an exit code only on a setup error (2) or a torn value (1).
pub fn run(w: &WorkerArgs) -> u8 {
    match run_inner(w) {
        Ok(code) => code,
        Err(e) => {
            crate::out::warn!("storm worker {}: {e}", w.id);
            2
        }
    }
}

fn run_inner(w: &WorkerArgs) -> Result<u8, String> {
    let spec: StormSpec = w.spec()?;
    if spec.lib.is_some() || spec.plugin.is_some() {
        return super::seam::worker(w, &spec);
    }
    let flavor = crate::procs::controls::flavor(spec.control.as_deref())
        .ok_or_else(|| format!("unknown control {:?}", spec.control))?;
    let mvar = SharedMVar::open_with(&open_name(&spec.mvar)?, flavor)
        .map_err(|e| format!("cannot open {}: {e}", spec.mvar))?;
    let validator = Validator::new(Mode::Report);
    let class = validator.class("storm-lock", true);
    let lock = SharedReentrantLock::open(&open_name(&spec.lock)?)
        .map_err(|e| format!("cannot open {}: {e}", spec.lock))?
        .tracked(&class);
    let log = SharedLog::open(&open_name(&spec.log)?)
        .map_err(|e| format!("cannot open {}: {e}", spec.log))?;
    let mut ledger = w.writer()?;
    let mut rng = crate::prng::SplitMix64::new(spec.seed.wrapping_add(u64::from(w.id)));
    let max_ms = (spec.op_timeout_ns / 1_000_000).max(1) as usize;
    let mut counter: u32 = 0;
    let mut next_id = || {
        counter = counter.wrapping_add(1);
        (u64::from(w.id) << 32) | u64::from(counter)
    };
    let len = mvar.payload_len();
    let mut buf = vec![0u8; len];
    let begin = |op, id, deadline: Duration| Record::Begin {
        op,
        id,
        start_ns: now_ns(),
        deadline_ns: Some(deadline.as_nanos() as u64),
    };
    loop {
        let timeout = Duration::from_millis(1 + rng.below(max_ms) as u64);
        match rng.below(10) {
            0..=3 => {
                let id = next_id();
                ledger.record(&begin(Op::Put, Some(id), timeout));
                match mvar.put_timeout(&payload::encode(id, len), timeout) {
                    Ok(o) => {
                        if let Some(who) = o.recovered {
                            ledger.record(&Record::Recovered {
                                op: Op::Put,
                                from: who.pid,
                            });
                        }
                        ledger.record(&Record::Done {
                            op: Op::Put,
                            id: Some(id),
                            end_ns: None,
                        });
                    }
                    Err(SharedMVarError::Timeout) => ledger.record(&Record::TimedOut {
                        op: Op::Put,
                        id: Some(id),
                    }),
                    Err(e) => return Err(format!("put: {e}")),
                }
            }
            4..=6 => {
                ledger.record(&begin(Op::Take, None, timeout));
                match mvar.take_timeout(&mut buf, timeout) {
                    Ok(o) => {
                        if let Some(who) = o.recovered {
                            ledger.record(&Record::Recovered {
                                op: Op::Take,
                                from: who.pid,
                            });
                        }
                        match payload::decode(&buf) {
                            Some(id) => ledger.record(&Record::Done {
                                op: Op::Take,
                                id: Some(id),
                                end_ns: None,
                            }),
                            None => {
                                ledger.record(&Record::Torn {
                                    id: payload::raw_id(&buf),
                                });
                                return Ok(1);
                            }
                        }
                    }
                    Err(SharedMVarError::Timeout) => ledger.record(&Record::TimedOut {
                        op: Op::Take,
                        id: None,
                    }),
                    Err(e) => return Err(format!("take: {e}")),
                }
            }
            7..=8 => {
                lock_and_log(&mut ledger, &lock, &log, &mut rng, &mut next_id, timeout)?;
            }
            _ => {
                // A try may wait up to TRY_LOCK_WAIT for the box's lock: that is its deadline.
                ledger.record(&begin(
                    Op::Read,
                    None,
                    primitives::mvar::shared::TRY_LOCK_WAIT,
                ));
                match mvar.try_read(&mut buf) {
                    Ok(_) => match payload::decode(&buf) {
                        Some(id) => ledger.record(&Record::Done {
                            op: Op::Read,
                            id: Some(id),
                            end_ns: None,
                        }),
                        None => {
                            ledger.record(&Record::Torn {
                                id: payload::raw_id(&buf),
                            });
                            return Ok(1);
                        }
                    },
                    // Empty, or the box's lock stayed held for TRY_LOCK_WAIT (no-recovery control).
                    Err(SharedMVarError::Empty | SharedMVarError::Timeout) => {
                        ledger.record(&Record::Done {
                            op: Op::Read,
                            id: None,
                            end_ns: None,
                        })
                    }
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        }
    }
}
