//! What every storm worker does the same way, whatever box it tortures: segment names, and the
//! nested shared-lock + log step (the lock and the log are always the reference's).

use crate::prng::SplitMix64;
use crate::procs::ledger::{now_ns, Op, Record, Writer};
use primitives::lock::{SharedLockError, SharedReentrantLock};
use primitives::msg::ring::SharedLog;
use primitives::shm::ShmName;
use std::time::Duration;

/// A segment name from a worker's spec.
pub(super) fn open_name(s: &str) -> Result<ShmName, String> {
    ShmName::parse(s).map_err(|e| format!("bad segment name {s:?}: {e}"))
}

/// Locks `lock` (nested once) within `timeout` and logs 1-3 messages while holding it: they
/// are staged in this process's area of the log's segment and flushed at the outermost
/// release. Every step is recorded in `ledger`; `next_id` names the messages.
pub(super) fn lock_and_log(
    ledger: &mut Writer,
    lock: &SharedReentrantLock,
    log: &SharedLog,
    rng: &mut SplitMix64,
    next_id: &mut impl FnMut() -> u64,
    timeout: Duration,
) -> Result<(), String> {
    ledger.record(&Record::Begin {
        op: Op::Lock,
        id: None,
        start_ns: now_ns(),
        deadline_ns: Some(timeout.as_nanos() as u64),
    });
    match lock.lock_timeout(timeout) {
        Ok(outer) => {
            if let Some(who) = outer.recovered() {
                ledger.record(&Record::Recovered {
                    op: Op::Lock,
                    from: who.pid,
                });
            }
            let inner = lock.lock();
            for _ in 0..1 + rng.below(3) {
                let id = next_id();
                ledger.record(&Record::Begin {
                    op: Op::Log,
                    id: Some(id),
                    start_ns: now_ns(),
                    deadline_ns: None,
                });
                let text = crate::procs::delivery::text(id);
                let id = Some(id);
                match log.log(text) {
                    Ok(()) => ledger.record(&Record::Done {
                        op: Op::Log,
                        id,
                        end_ns: None,
                    }),
                    Err(_) => ledger.record(&Record::Refused { op: Op::Log, id }),
                }
            }
            drop(inner);
            drop(outer);
            ledger.record(&Record::Released { op: Op::Lock });
            Ok(())
        }
        Err(SharedLockError::Timeout) => {
            ledger.record(&Record::TimedOut {
                op: Op::Lock,
                id: None,
            });
            Ok(())
        }
        Err(e) => Err(format!("lock: {e}")),
    }
}
