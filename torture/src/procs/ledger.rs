//! The ledger: each worker process records every operation in its own file *before* and
//! *after* it runs, one `write(2)` per record, so a SIGKILL cuts a ledger only between records.
//! The runner reads ledgers while the run goes on (the last record says whether a worker is
//! inside an operation, and since when) and at the end (to account for every value).
//!
//! One record type, one text form (`Display`), one parser (`FromStr`):
//!
//! | record | text |
//! |---|---|
//! | an operation starts | `begin put 42 <start_ns> <deadline_ns>` (id and deadline may be `-`) |
//! | it returned | `done take 42` (`done read -`: nothing to read), or `done take 42 <end_ns>` |
//! | it timed out | `timeout put 42` |
//! | it was refused (full) | `refused log 42` |
//! | a lock was released | `released lock` |
//! | the call took over from a dead participant | `recovered take <pid>` |
//! | a torn value was seen | `torn <id>` |
//!
//! Times are `CLOCK_MONOTONIC` nanoseconds ([`now_ns`]): the same clock in every process.

use std::fmt;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// An operation of a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Put a value.
    Put,
    /// Take a value.
    Take,
    /// Read a value without taking it.
    Read,
    /// Take a lock.
    Lock,
    /// Log a message.
    Log,
    /// Register in a shared table (the id is the slot).
    Register,
    /// Leave a shared table (delete one's own entry).
    Leave,
    /// Delete another participant's entry from a shared table (a watchdog).
    Remove,
    /// Fork a child (the fork scenario's worker).
    Fork,
}

impl Op {
    const ALL: [Op; 9] = [
        Op::Put,
        Op::Take,
        Op::Read,
        Op::Lock,
        Op::Log,
        Op::Register,
        Op::Leave,
        Op::Remove,
        Op::Fork,
    ];

    /// Its number on the status board (its place in `ALL`, which lists the variants in
    /// declaration order).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The operation numbered `code`.
    pub fn from_code(code: u32) -> Option<Op> {
        Op::ALL.get(code as usize).copied()
    }

    /// Its name in records and reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Take => "take",
            Op::Read => "read",
            Op::Lock => "lock",
            Op::Log => "log",
            Op::Register => "register",
            Op::Leave => "leave",
            Op::Remove => "remove",
            Op::Fork => "fork",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = ();
    fn from_str(s: &str) -> Result<Op, ()> {
        Op::ALL.into_iter().find(|o| o.name() == s).ok_or(())
    }
}

/// One ledger record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `op` starts, on value `id` if it has one, at `start_ns`, with a deadline of
    /// `deadline_ns` after the start if it has one.
    Begin {
        /// The operation.
        op: Op,
        /// The value (or message) it concerns.
        id: Option<u64>,
        /// When it started.
        start_ns: u64,
        /// Its time budget.
        deadline_ns: Option<u64>,
    },
    /// `op` returned (with value `id`), at `end_ns` if the worker wrote the time (the
    /// linearizability check needs it; the text form without it is still read).
    Done {
        /// The operation.
        op: Op,
        /// The value it returned or delivered.
        id: Option<u64>,
        /// When it returned.
        end_ns: Option<u64>,
    },
    /// `op` timed out.
    TimedOut {
        /// The operation.
        op: Op,
        /// Its value.
        id: Option<u64>,
    },
    /// `op` was refused (no room).
    Refused {
        /// The operation.
        op: Op,
        /// Its value.
        id: Option<u64>,
    },
    /// A lock taken by a `Begin { op: Lock }` was released.
    Released {
        /// The operation (`Lock`).
        op: Op,
    },
    /// `op` took the object over from dead participant `from` (its pid).
    Recovered {
        /// The operation.
        op: Op,
        /// The dead participant's pid.
        from: u32,
    },
    /// A torn value (its id field) was seen.
    Torn {
        /// The id field of the torn value.
        id: u64,
    },
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::Begin {
                op,
                id,
                start_ns,
                deadline_ns,
            } => write!(
                f,
                "begin {op} {} {start_ns} {}",
                opt(*id),
                opt(*deadline_ns)
            ),
            Record::Done { op, id, end_ns } => {
                write!(f, "done {op} {}", opt(*id))?;
                match end_ns {
                    Some(t) => write!(f, " {t}"),
                    None => Ok(()),
                }
            }
            Record::TimedOut { op, id } => write!(f, "timeout {op} {}", opt(*id)),
            Record::Refused { op, id } => write!(f, "refused {op} {}", opt(*id)),
            Record::Released { op } => write!(f, "released {op}"),
            Record::Recovered { op, from } => write!(f, "recovered {op} {from}"),
            Record::Torn { id } => write!(f, "torn {id}"),
        }
    }
}

/// A line that is not a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord(pub String);

impl FromStr for Record {
    type Err = BadRecord;
    fn from_str(line: &str) -> Result<Record, BadRecord> {
        let bad = || BadRecord(line.to_string());
        let w: Vec<&str> = line.split(' ').collect();
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
        let maybe = |s: &str| {
            if s == "-" {
                Ok(None)
            } else {
                num(s).map(Some)
            }
        };
        let op = |s: &str| s.parse::<Op>().map_err(|()| bad());
        Ok(match w.as_slice() {
            ["begin", o, id, start, deadline] => Record::Begin {
                op: op(o)?,
                id: maybe(id)?,
                start_ns: num(start)?,
                deadline_ns: maybe(deadline)?,
            },
            ["done", o, id] => Record::Done {
                op: op(o)?,
                id: maybe(id)?,
                end_ns: None,
            },
            ["done", o, id, end] => Record::Done {
                op: op(o)?,
                id: maybe(id)?,
                end_ns: Some(num(end)?),
            },
            ["timeout", o, id] => Record::TimedOut {
                op: op(o)?,
                id: maybe(id)?,
            },
            ["refused", o, id] => Record::Refused {
                op: op(o)?,
                id: maybe(id)?,
            },
            ["released", o] => Record::Released { op: op(o)? },
            ["recovered", o, from] => Record::Recovered {
                op: op(o)?,
                from: from.parse().map_err(|_| bad())?,
            },
            ["torn", id] => Record::Torn { id: num(id)? },
            _ => return Err(bad()),
        })
    }
}

/// Of the puts and takes a box committed, those that no ledger shows returning: `(puts, takes)`.
/// A box that starts empty alternates put, take, put, ..., so `commits` of them are
/// `⌈commits/2⌉` puts and `⌊commits/2⌋` takes; the ones not recorded as returned were cut by a
/// kill after committing. `None`: more returned than committed (the counts cannot hold).
pub fn committed_unrecorded(
    commits: u64,
    returned_puts: u64,
    returned_takes: u64,
) -> Option<(u64, u64)> {
    Some((
        commits.div_ceil(2).checked_sub(returned_puts)?,
        (commits / 2).checked_sub(returned_takes)?,
    ))
}

/// `CLOCK_MONOTONIC` in nanoseconds.
pub fn now_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(std::time::Duration::ZERO, std::time::Duration::from);
    t.as_nanos() as u64
}

/// A worker's end of its ledger; every record also goes to its observer, if it has one (the
/// crew's status board: see [`super::WorkerArgs::writer`]).
pub struct Writer {
    file: std::fs::File,
    observer: Option<Observer>,
}

/// What sees every record a [`Writer`] writes.
type Observer = Box<dyn Fn(&Record)>;

impl Writer {
    /// Opens (appends to) the ledger at `path`.
    pub fn open(path: &Path) -> std::io::Result<Writer> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Writer {
            file,
            observer: None,
        })
    }

    /// Also hands every record, once written, to `observer`.
    pub fn with_observer(mut self, observer: impl Fn(&Record) + 'static) -> Writer {
        self.observer = Some(Box::new(observer));
        self
    }

    /// Appends `r` with one `write(2)`: a kill cuts the ledger between records, never inside one.
    pub fn record(&mut self, r: &Record) {
        let _ = self.file.write_all(format!("{r}\n").as_bytes());
        if let Some(observe) = &self.observer {
            observe(r);
        }
    }
}

/// One worker's ledger, read and parsed.
#[derive(Debug)]
pub struct Ledger {
    /// Where it was.
    pub path: PathBuf,
    /// Its records, in order.
    pub records: Vec<Record>,
    /// Lines that are not records (a worker bug: a kill cuts only the last, unterminated line,
    /// which is dropped, not reported).
    pub bad: Vec<BadRecord>,
}

impl Ledger {
    /// Reads the ledger at `path`; `None` if there is none (a worker killed before its first
    /// record).
    pub fn read(path: &Path) -> Option<Ledger> {
        let text = std::fs::read_to_string(path).ok()?;
        // Every record ends with a newline. A kill can still cut the last one: a write that
        // crosses a page boundary is stopped between pages by SIGKILL (seen: "relea"). An
        // unterminated tail is that cut record, never a bad one.
        let whole = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        let mut records = Vec::new();
        let mut bad = Vec::new();
        for line in whole.lines() {
            match line.parse() {
                Ok(r) => records.push(r),
                Err(b) => bad.push(b),
            }
        }
        Some(Ledger {
            path: path.to_path_buf(),
            records,
            bad,
        })
    }
}

/// The last record of the ledger at `path` (read from its tail only), if any parses.
pub fn last_record(path: &Path) -> Option<Record> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(160))).ok()?;
    let mut tail = String::new();
    f.read_to_string(&mut tail).ok()?;
    tail.lines().last()?.parse().ok()
}

/// If `r` opens an operation with a deadline: the operation and how far past its deadline it is
/// at `now_ns` (`None` while within it).
pub fn overrun(r: &Record, now_ns: u64) -> Option<(Op, std::time::Duration)> {
    let Record::Begin {
        op,
        start_ns,
        deadline_ns: Some(d),
        ..
    } = r
    else {
        return None;
    };
    let late = now_ns.checked_sub(start_ns.saturating_add(*d))?;
    Some((*op, std::time::Duration::from_nanos(late)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_code_names_its_op() {
        for op in Op::ALL {
            assert_eq!(Op::from_code(op.code()), Some(op));
        }
    }

    #[test]
    fn every_record_round_trips_and_garbage_is_refused() {
        let all = [
            Record::Begin {
                op: Op::Put,
                id: Some(42 << 32 | 7),
                start_ns: 123,
                deadline_ns: Some(50_000_000),
            },
            Record::Begin {
                op: Op::Log,
                id: Some(9),
                start_ns: 1,
                deadline_ns: None,
            },
            Record::Begin {
                op: Op::Take,
                id: None,
                start_ns: 5,
                deadline_ns: Some(6),
            },
            Record::Done {
                op: Op::Read,
                id: None,
                end_ns: None,
            },
            Record::Done {
                op: Op::Take,
                id: Some(3),
                end_ns: None,
            },
            Record::Done {
                op: Op::Take,
                id: Some(3),
                end_ns: Some(99),
            },
            Record::TimedOut {
                op: Op::Put,
                id: Some(3),
            },
            Record::Refused {
                op: Op::Log,
                id: Some(3),
            },
            Record::Released { op: Op::Lock },
            Record::Recovered {
                op: Op::Take,
                from: 77,
            },
            Record::Torn { id: 8 },
        ];
        for r in all {
            assert_eq!(r.to_string().parse::<Record>(), Ok(r.clone()), "{r}");
        }
        // The old form (no end time) is still read, and still written when there is none.
        assert_eq!(
            "done take 42".parse::<Record>(),
            Ok(Record::Done {
                op: Op::Take,
                id: Some(42),
                end_ns: None
            })
        );
        assert_eq!(
            "done take 42 7".parse::<Record>().map(|r| r.to_string()),
            Ok("done take 42 7".to_string())
        );
        for bad in [
            "",
            "begin put",
            "done jump 1",
            "done take 1 x",
            "done take 1 2 3",
            "torn x",
            "begin put 1 2 3 4",
            "P 1",
        ] {
            assert!(bad.parse::<Record>().is_err(), "{bad:?}");
        }
    }

    /// A record cut by a kill (no newline yet) is dropped; a bad whole line is still bad.
    #[test]
    fn a_cut_last_record_is_not_a_bad_one() {
        let dir = std::env::temp_dir().join(format!("ledger-cut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let p = dir.join("w.ledger");
        std::fs::write(&p, "done take 42\nrelea").expect("write");
        let l = Ledger::read(&p).expect("read");
        assert_eq!((l.records.len(), l.bad.len()), (1, 0));
        std::fs::write(&p, "done take 42\nrelea\n").expect("write");
        let l = Ledger::read(&p).expect("read");
        assert_eq!((l.records.len(), l.bad.len()), (1, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn overrun_only_past_the_deadline() {
        let r = Record::Begin {
            op: Op::Take,
            id: None,
            start_ns: 1_000,
            deadline_ns: Some(500),
        };
        assert_eq!(overrun(&r, 1_400), None);
        assert_eq!(
            overrun(&r, 2_000),
            Some((Op::Take, std::time::Duration::from_nanos(500)))
        );
        assert_eq!(overrun(&Record::Torn { id: 1 }, 9_999), None);
    }
}
