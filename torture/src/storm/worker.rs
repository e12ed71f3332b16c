//! A kill-storm worker process: random put / take / read traffic on the shared MVar, every
//! operation recorded in its own ledger file *before* and *after* it runs, each record one
//! `write(2)` (so a SIGKILL can cut the ledger only between records).
//!
//! Ledger records (one per line):
//! * `P id start_ns deadline_ns` put starts, `p id` put returned, `x id` put timed out;
//! * `T start_ns deadline_ns` take starts, `t id` take returned `id`, `y` take timed out;
//! * `R start_ns deadline_ns` try-read starts (its deadline: the try's lock wait), `r id` read returned `id` (`r -`: empty);
//! * `K start_ns deadline_ns` shared lock starts, `k` released, `z` timed out; under it
//!   `L id` logging message `m id` starts, `l id` log returned, `o id` log refused (overflow);
//! * `V pid` this call recovered the box from dead `pid`, `W pid` the lock;
//! * `X id` a torn value was seen.

use super::payload;
use primitives::lock::{Mode, SharedLockError, SharedReentrantLock, Validator};
use primitives::msg::ring::SharedLog;
use primitives::mvar::{Flavor, SharedMVar, SharedMVarError};
use primitives::shm::ShmName;
use std::io::Write;
use std::time::Duration;

/// What a worker is told on its command line.
#[derive(Debug)]
pub struct WorkerArgs {
    /// The MVar's segment.
    pub name: ShmName,
    /// The shared reentrant lock's segment.
    pub lock: ShmName,
    /// The shared message ring's segment.
    pub log: ShmName,
    /// Its ledger file.
    pub ledger: std::path::PathBuf,
    /// Unique per spawned worker: the high half of every value id it puts.
    pub incarnation: u32,
    /// PRNG seed.
    pub seed: u64,
    /// Longest timeout of one operation.
    pub op_timeout: Duration,
    /// Protocol flavour (a negative control changes one field).
    pub flavor: Flavor,
}

impl WorkerArgs {
    /// Payload bytes (the box's).
    fn len(m: &SharedMVar) -> usize {
        m.payload_len()
    }
}

/// Runs until killed. Returns an exit code only on a setup error (2) or a torn value (1).
pub fn run(a: &WorkerArgs) -> u8 {
    // Die with the runner: a worker must never outlive the storm that started it.
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of the calling process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if nix::unistd::getppid().as_raw() == 1 {
        return 2;
    }
    let mvar = match SharedMVar::open_with(&a.name, a.flavor) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("storm worker: cannot open {}: {e}", a.name);
            return 2;
        }
    };
    let validator = Validator::new(Mode::Report);
    let class = validator.class("storm-lock", true);
    let (lock, log) = match (SharedReentrantLock::open(&a.lock), SharedLog::open(&a.log)) {
        (Ok(l), Ok(g)) => (l.tracked(&class), g),
        (Err(e), _) => {
            eprintln!("storm worker: cannot open {}: {e}", a.lock);
            return 2;
        }
        (_, Err(e)) => {
            eprintln!("storm worker: cannot open {}: {e}", a.log);
            return 2;
        }
    };
    let mut ledger = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&a.ledger)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("storm worker: ledger {}: {e}", a.ledger.display());
            return 2;
        }
    };
    let mut rec = |line: String| {
        // One write per record: a kill cuts the ledger between records, never inside one.
        let _ = ledger.write_all(line.as_bytes());
    };
    let mut rng = crate::prng::SplitMix64::new(a.seed);
    let max_ms = a.op_timeout.as_millis().max(1) as usize;
    let mut counter: u32 = 0;
    let len = WorkerArgs::len(&mvar);
    let mut buf = vec![0u8; len];
    loop {
        let timeout = Duration::from_millis(1 + rng.below(max_ms) as u64);
        match rng.below(10) {
            0..=3 => {
                counter = counter.wrapping_add(1);
                let id = (u64::from(a.incarnation) << 32) | u64::from(counter);
                rec(format!("P {id} {} {}\n", now_ns(), timeout.as_nanos()));
                match mvar.put_timeout(&payload::encode(id, len), timeout) {
                    Ok(o) => {
                        if let Some(w) = o.recovered {
                            rec(format!("V {}\n", w.pid));
                        }
                        rec(format!("p {id}\n"));
                    }
                    Err(SharedMVarError::Timeout) => rec(format!("x {id}\n")),
                    Err(e) => {
                        eprintln!("storm worker: put: {e}");
                        return 2;
                    }
                }
            }
            4..=6 => {
                rec(format!("T {} {}\n", now_ns(), timeout.as_nanos()));
                match mvar.take_timeout(&mut buf, timeout) {
                    Ok(o) => {
                        if let Some(w) = o.recovered {
                            rec(format!("V {}\n", w.pid));
                        }
                        match payload::decode(&buf) {
                            Some(id) => rec(format!("t {id}\n")),
                            None => {
                                rec(format!("X {}\n", payload::raw_id(&buf)));
                                return 1;
                            }
                        }
                    }
                    Err(SharedMVarError::Timeout) => rec("y\n".to_string()),
                    Err(e) => {
                        eprintln!("storm worker: take: {e}");
                        return 2;
                    }
                }
            }
            7..=8 => {
                // Lock (nested once) and log 1-3 messages while holding it: they are staged in
                // this process's area of the log's segment and flushed at the outermost release.
                rec(format!("K {} {}\n", now_ns(), timeout.as_nanos()));
                match lock.lock_timeout(timeout) {
                    Ok(outer) => {
                        if let Some(w) = outer.recovered() {
                            rec(format!("W {}\n", w.pid));
                        }
                        let inner = lock.lock();
                        for _ in 0..1 + rng.below(3) {
                            counter = counter.wrapping_add(1);
                            let id = (u64::from(a.incarnation) << 32) | u64::from(counter);
                            rec(format!("L {id}\n"));
                            match log.log(format!("m {id}")) {
                                Ok(()) => rec(format!("l {id}\n")),
                                Err(_) => rec(format!("o {id}\n")),
                            }
                        }
                        drop(inner);
                        drop(outer);
                        rec("k\n".to_string());
                    }
                    Err(SharedLockError::Timeout) => rec("z\n".to_string()),
                    Err(e) => {
                        eprintln!("storm worker: lock: {e}");
                        return 2;
                    }
                }
            }
            _ => {
                // A try may wait up to TRY_LOCK_WAIT for the box's lock: that is its deadline.
                rec(format!(
                    "R {} {}\n",
                    now_ns(),
                    primitives::mvar::shared::TRY_LOCK_WAIT.as_nanos()
                ));
                match mvar.try_read(&mut buf) {
                    Ok(_) => match payload::decode(&buf) {
                        Some(id) => rec(format!("r {id}\n")),
                        None => {
                            rec(format!("X {}\n", payload::raw_id(&buf)));
                            return 1;
                        }
                    },
                    // Empty, or the box's lock stayed held for TRY_LOCK_WAIT (no-recovery control).
                    Err(SharedMVarError::Empty | SharedMVarError::Timeout) => {
                        rec("r -\n".to_string())
                    }
                    Err(e) => {
                        eprintln!("storm worker: read: {e}");
                        return 2;
                    }
                }
            }
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process, so the runner can tell how
/// long an operation has been running.
pub fn now_ns() -> u128 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(std::time::Duration::ZERO, std::time::Duration::from);
    t.as_nanos()
}
