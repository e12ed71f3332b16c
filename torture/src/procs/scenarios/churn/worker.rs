//! A churn client: register, tick (work under nested locks + watchdog), leave or crash. See the
//! module docs of [`super`]. Every step is in the ledger before and after it runs.

use super::table::{Handle, Seen, Table};
use super::{Spec, CRASH_EXIT, LOCKDEP_EXIT, STALE_EXIT};
use crate::prng::SplitMix64;
use crate::procs::impls::lock::tracked::{Got, Held, Tracked};
use crate::procs::impls::lock::LockImpl;
use crate::procs::ledger::{now_ns, Op, Record, Writer};
use crate::procs::WorkerArgs;
use primitives::lock::{Mode, Validator};
use primitives::msg::ring::SharedLog;
use primitives::shm::ShmName;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Ledger id of the table lock in `lock` records.
pub const TABLE: u64 = 0;
/// Ledger id of the database lock.
pub const DB: u64 = 1;
/// Work ticks of a client's life: at least, and at most.
const LIFE: (usize, usize) = (5, 60);
/// Pause between two work ticks, in microseconds: at least, and at most.
const TICK_US: (usize, usize) = (500, 4000);

/// Where a client leaves what its runner must report (beside its ledger).
pub fn finding_path(ledger: &Path) -> PathBuf {
    ledger.with_extension("finding")
}

/// The shared objects a client uses.
struct Shared {
    table: Table,
    table_lock: Tracked,
    db: Tracked,
    log: SharedLog,
}

struct Client<'a> {
    me: u64,
    spec: &'a Spec,
    ledger: Writer,
    ledger_path: PathBuf,
    timeout: Duration,
    seq: u64,
}

/// Why a client stops early.
enum Stop {
    /// Exit with this code (its finding file written).
    Code(u8),
    /// An error (exit 2).
    Err(String),
}

impl From<String> for Stop {
    fn from(e: String) -> Stop {
        Stop::Err(e)
    }
}

/// Runs a client; `Ok(code)` is its exit code.
pub fn run(w: &WorkerArgs) -> Result<u8, String> {
    let spec: Spec = w.spec()?;
    let name = |s: &str| ShmName::parse(s).map_err(|e| format!("bad segment name {s:?}: {e}"));
    let validator = Validator::shared(Mode::Panic, &name(&spec.graph)?)
        .map_err(|e| format!("cannot open the lock-order graph: {e}"))?;
    let class = |n: &'static str| {
        validator
            .try_class(n, true)
            .map_err(|e| format!("cannot register lock class {n}: {e}"))
    };
    let (table_class, db_class) = (class("client table")?, class("database")?);
    let imp = LockImpl::select(spec.lib.as_deref(), spec.plugin.as_deref(), true)?;
    let open_lock = |n: &str| {
        imp.open(n)
            .map_err(|e| format!("cannot open lock {n}: {e}"))
    };
    let mut log =
        SharedLog::open(&name(&spec.log)?).map_err(|e| format!("cannot open the log: {e}"))?;
    if spec.control.as_deref() == Some("ring-private-staging") {
        log = log.with_private_staging();
    }
    let sh = Shared {
        table: Table::open(&name(&spec.table)?)
            .map_err(|e| format!("cannot open the client table: {e}"))?,
        table_lock: Tracked::new(open_lock(&spec.table_lock)?, table_class),
        db: Tracked::new(open_lock(&spec.db_lock)?, db_class),
        log,
    };
    let mut c = Client {
        me: u64::from(w.id),
        spec: &spec,
        ledger: w.writer()?,
        ledger_path: w.ledger.clone(),
        timeout: Duration::from_nanos(spec.op_timeout_ns),
        seq: 0,
    };
    crate::procs::lockdep::quiet_panics("churn client");
    let mut rng = SplitMix64::new(spec.seed ^ c.me.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let life = LIFE.0 + rng.below(LIFE.1 - LIFE.0 + 1);
    let crash = rng.below(100) < spec.crashes as usize;
    let outcome = catch_unwind(AssertUnwindSafe(|| c.live(&sh, &mut rng, life, crash)));
    match outcome {
        Ok(Ok(())) => Ok(0),
        Ok(Err(Stop::Code(code))) => Ok(code),
        Ok(Err(Stop::Err(e))) => Err(e),
        Err(payload) => {
            let msg = crate::procs::lockdep::message(&*payload);
            if msg.starts_with(crate::procs::lockdep::PANIC_PREFIX) {
                std::fs::write(finding_path(&w.ledger), msg)
                    .map_err(|e| format!("cannot leave the violation for the runner: {e}"))?;
                Ok(LOCKDEP_EXIT)
            } else {
                Err(format!("panicked: {msg}"))
            }
        }
    }
}

impl Client<'_> {
    fn record(&mut self, r: Record) {
        self.ledger.record(&r);
    }

    /// Takes `lock` (`which`: [`TABLE`] or [`DB`]) within the operation timeout, recording it;
    /// `None`: timed out (a frozen holder: the caller skips this step). After taking the table
    /// over from a dead holder, repairs the table. The validator's chains name the caller's line.
    #[track_caller]
    fn lock<'l>(
        &mut self,
        lock: &'l Tracked,
        which: u64,
        table: &Table,
    ) -> Result<Option<Held<'l>>, Stop> {
        self.record(Record::Begin {
            op: Op::Lock,
            id: Some(which),
            start_ns: now_ns(),
            deadline_ns: Some(self.timeout.as_nanos() as u64),
        });
        match lock.acquire(Some(self.timeout)) {
            Ok(Got::Held(g, died)) => {
                if died {
                    // The dead holder's pid is the implementation's to know: 0.
                    self.record(Record::Recovered {
                        op: Op::Lock,
                        from: 0,
                    });
                    if which == TABLE {
                        table.repair();
                    }
                }
                self.record(Record::Done {
                    op: Op::Lock,
                    id: Some(which),
                    end_ns: None,
                });
                Ok(Some(g))
            }
            Ok(Got::TimedOut) => {
                self.record(Record::TimedOut {
                    op: Op::Lock,
                    id: Some(which),
                });
                Ok(None)
            }
            Err(e) => Err(Stop::Err(format!("lock: {e}"))),
        }
    }

    fn released(&mut self) {
        self.record(Record::Released { op: Op::Lock });
    }

    /// Logs the next message (under whatever locks are held), recording it.
    fn log_one(&mut self, log: &SharedLog) {
        self.seq += 1;
        let id = (self.me << 32) | self.seq;
        self.record(Record::Begin {
            op: Op::Log,
            id: Some(id),
            start_ns: now_ns(),
            deadline_ns: None,
        });
        let r = match log.log(crate::procs::delivery::text(id)) {
            Ok(()) => Record::Done {
                op: Op::Log,
                id: Some(id),
                end_ns: None,
            },
            Err(_) => Record::Refused {
                op: Op::Log,
                id: Some(id),
            },
        };
        self.record(r);
    }

    fn live(
        &mut self,
        sh: &Shared,
        rng: &mut SplitMix64,
        life: usize,
        crash: bool,
    ) -> Result<(), Stop> {
        let Some(h) = self.register(sh)? else {
            return Ok(());
        };
        let watchdog = Duration::from_nanos(self.spec.watchdog_ns);
        // Watchdogs of clients started together would tick together: start at a random phase.
        let mut next_watch =
            Instant::now() + Duration::from_nanos(rng.below(self.spec.watchdog_ns as usize) as u64);
        for tick in 0..life {
            std::thread::sleep(Duration::from_micros(
                (TICK_US.0 + rng.below(TICK_US.1 - TICK_US.0)) as u64,
            ));
            if Instant::now() >= next_watch {
                self.watch(sh)?;
                next_watch = Instant::now() + watchdog;
            }
            // Work: table lock, database lock nested twice, check the handle, log.
            let Some(tg) = self.lock(&sh.table_lock, TABLE, &sh.table)? else {
                continue;
            };
            let Some(dg) = self.lock(&sh.db, DB, &sh.table)? else {
                drop(tg);
                self.released();
                continue;
            };
            // Nested (when the implementation is reentrant).
            let nested = if self.spec.reenter {
                match sh.db.acquire(None) {
                    Ok(Got::Held(g, _)) => Some(g),
                    Ok(Got::TimedOut) => {
                        return Err(Stop::Err("nested lock: timed out without a timeout".into()))
                    }
                    Err(e) => return Err(Stop::Err(format!("nested lock: {e}"))),
                }
            } else {
                None
            };
            if sh.table.get(h).is_none() {
                return Err(self.stale(&sh.table, h, "at work"));
            }
            sh.table
                .entry(h.slot)
                .heartbeat
                .store(now_ns(), std::sync::atomic::Ordering::Relaxed);
            self.log_one(&sh.log);
            if crash && tick + 1 == life {
                // Dies right after logging, both locks held, its message staged.
                // SAFETY: _exit ends the process at once; nothing of ours runs after it.
                unsafe { libc::_exit(i32::from(CRASH_EXIT)) };
            }
            drop(nested);
            drop(dg);
            drop(tg);
            self.released();
        }
        self.leave(sh, h)?;
        let _ = sh.log.flush();
        Ok(())
    }

    /// Registers (retrying while the table lock times out or the table is full).
    fn register(&mut self, sh: &Shared) -> Result<Option<Handle>, Stop> {
        let give_up = Instant::now() + self.timeout * 10;
        while Instant::now() < give_up {
            self.record(Record::Begin {
                op: Op::Register,
                id: None,
                start_ns: now_ns(),
                deadline_ns: None,
            });
            if let Some(g) = self.lock(&sh.table_lock, TABLE, &sh.table)? {
                let h = sh.table.register(self.me, now_ns());
                if let Some(h) = h {
                    self.record(Record::Done {
                        op: Op::Register,
                        id: Some(h.slot as u64),
                        end_ns: None,
                    });
                    self.log_one(&sh.log);
                }
                drop(g);
                self.released();
                if h.is_some() {
                    return Ok(h);
                }
                self.record(Record::Refused {
                    op: Op::Register,
                    id: None,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(None)
    }

    /// Deletes its own entry.
    fn leave(&mut self, sh: &Shared, h: Handle) -> Result<(), Stop> {
        loop {
            self.record(Record::Begin {
                op: Op::Leave,
                id: Some(h.slot as u64),
                start_ns: now_ns(),
                deadline_ns: None,
            });
            let Some(g) = self.lock(&sh.table_lock, TABLE, &sh.table)? else {
                continue;
            };
            if !sh.table.delete(h, 0, true) {
                return Err(self.stale(&sh.table, h, "when leaving"));
            }
            self.record(Record::Done {
                op: Op::Leave,
                id: Some(h.slot as u64),
                end_ns: None,
            });
            drop(g);
            self.released();
            return Ok(());
        }
    }

    /// One watchdog tick: snapshot, liveness, confirmed deletions.
    fn watch(&mut self, sh: &Shared) -> Result<(), Stop> {
        let (table_lock, db) = (&sh.table_lock, &sh.db);
        let Some(g) = self.lock(table_lock, TABLE, &sh.table)? else {
            return Ok(());
        };
        // The tick's cost is the CPU time of its O(N) part (snapshot and liveness checks), not
        // the wait for the lock nor time spent preempted on a busy machine.
        let start = cpu_now();
        let seen = sh.table.snapshot(self.me);
        drop(g);
        self.released();
        let dead: Vec<Seen> = seen.iter().copied().filter(|s| !s.who.is_alive()).collect();
        sh.table.add_tick(
            seen.len(),
            cpu_now().saturating_sub(start).as_nanos() as u64,
        );
        if dead.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_nanos(self.spec.confirm_ns));
        let abba = self.spec.control.as_deref() == Some("churn-abba");
        let validate = self.spec.control.as_deref() != Some("churn-stale-handle");
        for d in dead {
            if d.who.is_alive() {
                continue;
            }
            let (first, second) = if abba {
                ((db, DB), (table_lock, TABLE))
            } else {
                ((table_lock, TABLE), (db, DB))
            };
            let Some(g1) = self.lock(first.0, first.1, &sh.table)? else {
                continue;
            };
            let Some(g2) = self.lock(second.0, second.1, &sh.table)? else {
                drop(g1);
                self.released();
                continue;
            };
            self.record(Record::Begin {
                op: Op::Remove,
                id: Some(d.client),
                start_ns: now_ns(),
                deadline_ns: None,
            });
            if sh.table.delete(d.handle, self.me, validate) {
                self.record(Record::Done {
                    op: Op::Remove,
                    id: Some(d.client),
                    end_ns: None,
                });
                self.log_one(&sh.log);
            } else {
                self.record(Record::Refused {
                    op: Op::Remove,
                    id: Some(d.client),
                });
            }
            drop(g2);
            drop(g1);
            self.released();
        }
        Ok(())
    }

    /// Its entry is gone although it is alive: leaves the diagnosis for the runner.
    fn stale(&mut self, table: &Table, h: Handle, when: &str) -> Stop {
        let e = table.entry(h.slot);
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let by = ld(&e.deleted_by);
        let text = format!(
            "client {} (pid {}) found its table entry (slot {}, serial {}) gone {when} although it never left: deleted by {} acting on a handle of serial {} (a stale handle: that client had left the slot, which was given to client {}); the slot now holds serial {}, client {}",
            self.me,
            std::process::id(),
            h.slot,
            h.serial,
            if by == 0 {
                "its owner or the runner".to_string()
            } else {
                format!("client {by}'s watchdog")
            },
            ld(&e.deleted_handle),
            self.me,
            ld(&e.serial),
            ld(&e.client),
        );
        match std::fs::write(finding_path(&self.ledger_path), text) {
            Ok(()) => Stop::Code(STALE_EXIT),
            Err(e) => Stop::Err(format!("cannot leave the finding for the runner: {e}")),
        }
    }
}

/// The calling thread's CPU time.
fn cpu_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(Duration::ZERO, Duration::from)
}
