//! The cross-process wait-for graph of a stuck `torture locks` run.
//!
//! Nodes are the workers. A worker whose last ledger record is `begin lock X` (no `done`) waits
//! for lock X; the lock's word names its owner's pid ([`SharedReentrantLock::owner`]); if that
//! pid is a worker Q, the graph has the edge "P waits for X held by Q". Each worker waits for at
//! most one lock, so every node has at most one outgoing edge and a cycle is found by following
//! them. A stopped worker (state `T`) is never part of a cycle: it is not waiting, and whoever
//! waits for a lock it holds "waits on a stopped process" — a freeze, not a deadlock.
//!
//! [`SharedReentrantLock::owner`]: primitives::lock::SharedReentrantLock::owner

use std::fmt::Write as _;

/// One worker as the hang detector saw it.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Its pid.
    pub pid: u32,
    /// Kernel state letter (`None`: gone).
    pub state: Option<char>,
    /// `state S wchan futex_wait_queue`, for the report.
    pub kernel: String,
    /// The lock it began to acquire and has not got (from its last ledger record), and for how
    /// many milliseconds it has been waiting.
    pub waits_for: Option<(usize, f64)>,
}

impl Seen {
    fn stopped(&self) -> bool {
        matches!(self.state, Some('T' | 't'))
    }

    fn gone(&self) -> bool {
        matches!(self.state, None | Some('Z' | 'X'))
    }
}

/// What the wait-for graph shows.
#[derive(Debug)]
pub struct Diagnosis {
    /// The workers of a cycle, in wait-for order (each waits for a lock held by the next, the
    /// last for one held by the first), starting at the lowest index.
    pub cycle: Option<Vec<usize>>,
    /// `DEADLOCK cycle: worker 0 (pid ..) waits for B held by worker 1 (pid ..) -> ...`.
    pub headline: Option<String>,
    /// One line per worker still present: what it waits for, what it holds, its kernel state.
    pub lines: String,
}

/// Builds the wait-for graph of `workers` (indexed as in the run) given each lock's owner pid
/// (`owners[x]`, `None`: free) and the lock names, and looks for a cycle. `known`: the owners
/// are known (without, every lock reads as free: the lines say "holder unknown").
pub fn analyse(workers: &[Seen], owners: &[Option<u32>], names: &[&str], known: bool) -> Diagnosis {
    let worker_of = |pid: u32| workers.iter().position(|w| w.pid == pid && !w.gone());
    // The one outgoing edge of each worker: (lock, holder).
    // A worker seen "waiting" for a lock it owns got it and has not written `done` yet: no edge.
    let edge: Vec<Option<(usize, usize)>> = workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let (lock, _) = w.waits_for?;
            if w.stopped() || w.gone() {
                return None;
            }
            let holder = worker_of((*owners.get(lock)?)?)?;
            (holder != i && !workers[holder].stopped()).then_some((lock, holder))
        })
        .collect();
    let cycle = find_cycle(&edge);
    let headline = cycle.as_ref().map(|c| {
        let mut s = String::from("DEADLOCK cycle: ");
        for (k, &p) in c.iter().enumerate() {
            let (lock, q) = edge[p].expect("a cycle follows edges");
            if k == 0 {
                let _ = write!(s, "worker {p} (pid {}) ", workers[p].pid);
            }
            let _ = write!(
                s,
                "waits for {} held by worker {q} (pid {}) -> worker {q}",
                names[lock], workers[q].pid
            );
            if k + 1 < c.len() {
                s.push(' ');
            }
        }
        s
    });
    let mut lines = String::new();
    for (i, w) in workers.iter().enumerate() {
        if w.gone() {
            continue;
        }
        let held: Vec<&str> = owners
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == Some(w.pid))
            .map(|(x, _)| names[x])
            .collect();
        let holds = if held.is_empty() {
            "holds nothing".to_string()
        } else {
            format!("holds {}", held.join(", "))
        };
        let what = match w.waits_for {
            _ if w.stopped() => "STOPPED by a signal: not waiting; whoever waits for a lock it holds waits on a stopped process (not a deadlock)".to_string(),
            None => "between acquisitions".to_string(),
            Some((lock, ms)) => {
                let name = names[lock];
                match owners.get(lock).copied().flatten() {
                    None if !known => format!("waits for {name} for {ms:.0} ms; its holder is unknown (no HOLDER capability)"),
                    None => format!("waits for {name} for {ms:.0} ms, which is free (a lost wake-up?)"),
                    Some(pid) => match worker_of(pid) {
                        Some(q) if q == i => format!(
                            "has acquired {name} (its ledger has not caught up)"
                        ),
                        Some(q) if workers[q].stopped() => format!(
                            "waits for {name} for {ms:.0} ms, held by worker {q} (pid {pid}): it waits on a stopped process (not a deadlock)"
                        ),
                        Some(q) => format!(
                            "waits for {name} for {ms:.0} ms, held by worker {q} (pid {pid})"
                        ),
                        None => format!(
                            "waits for {name} for {ms:.0} ms, held by pid {pid}, not a live worker of this run"
                        ),
                    },
                }
            }
        };
        let _ = writeln!(
            lines,
            "    worker {i} pid {}: {what}; {holds}; {}",
            w.pid, w.kernel
        );
    }
    Diagnosis {
        cycle,
        headline,
        lines,
    }
}

/// A cycle of the functional graph `edge` (node -> (label, next)), rotated to start at its
/// lowest node.
fn find_cycle(edge: &[Option<(usize, usize)>]) -> Option<Vec<usize>> {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut color = vec![NEW; edge.len()];
    for start in 0..edge.len() {
        let mut path = Vec::new();
        let mut at = start;
        // Follow the edges until a node seen before (on this path: a cycle) or a node that
        // waits for nobody (a chain's end: no cycle).
        let mut closed = false;
        while color[at] == NEW {
            color[at] = ON_PATH;
            path.push(at);
            match edge[at] {
                Some((_, next)) => {
                    at = next;
                    closed = true;
                }
                None => {
                    closed = false;
                    break;
                }
            }
        }
        let found = (closed && color[at] == ON_PATH)
            .then(|| path.iter().position(|&p| p == at))
            .flatten();
        for &p in &path {
            color[p] = DONE;
        }
        if let Some(k) = found {
            let mut c = path[k..].to_vec();
            let low = c
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| **p)
                .map_or(0, |(i, _)| i);
            c.rotate_left(low);
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 3] = ["A", "B", "C"];

    fn waiting(pid: u32, lock: usize, state: char) -> Seen {
        Seen {
            pid,
            state: Some(state),
            kernel: format!("state {state}"),
            waits_for: Some((lock, 2000.0)),
        }
    }

    #[test]
    fn a_three_process_cycle_is_named_worker_by_worker() {
        // Worker 0 holds A and waits for B, 1 holds B and waits for C, 2 holds C and waits for A.
        let w = [
            waiting(10, 1, 'S'),
            waiting(11, 2, 'S'),
            waiting(12, 0, 'S'),
        ];
        let d = analyse(&w, &[Some(10), Some(11), Some(12)], &NAMES, true);
        assert_eq!(d.cycle, Some(vec![0, 1, 2]));
        assert_eq!(
            d.headline.as_deref(),
            Some(
                "DEADLOCK cycle: worker 0 (pid 10) waits for B held by worker 1 (pid 11) -> worker 1 waits for C held by worker 2 (pid 12) -> worker 2 waits for A held by worker 0 (pid 10) -> worker 0"
            )
        );
        assert!(
            d.lines.contains("worker 2 pid 12: waits for A"),
            "{}",
            d.lines
        );
    }

    #[test]
    fn a_stopped_holder_breaks_the_cycle_and_is_named() {
        let w = [
            waiting(10, 1, 'S'),
            waiting(11, 2, 'T'),
            waiting(12, 0, 'S'),
        ];
        let d = analyse(&w, &[Some(10), Some(11), Some(12)], &NAMES, true);
        assert_eq!(d.cycle, None);
        assert!(
            d.lines.contains("waits on a stopped process"),
            "{}",
            d.lines
        );
        assert!(d.lines.contains("worker 1 pid 11: STOPPED"), "{}", d.lines);
    }

    #[test]
    fn a_worker_whose_ledger_lags_its_own_acquisition_waits_for_nobody() {
        let w = [waiting(10, 0, 'S'), waiting(11, 0, 'S')];
        let d = analyse(&w, &[Some(10), None, None], &NAMES, true);
        assert_eq!(d.cycle, None);
        assert!(
            d.lines.contains("worker 0 pid 10: has acquired A"),
            "{}",
            d.lines
        );
        assert!(
            d.lines.contains("worker 1 pid 11: waits for A"),
            "{}",
            d.lines
        );
    }

    #[test]
    fn a_chain_without_a_cycle_and_a_free_lock_are_told_apart() {
        let idle = Seen {
            pid: 12,
            state: Some('S'),
            kernel: "state S".into(),
            waits_for: None,
        };
        let w = [waiting(10, 1, 'S'), waiting(11, 0, 'S'), idle];
        // B held by worker 2 (not waiting); A free.
        let d = analyse(&w, &[None, Some(12), None], &NAMES, true);
        assert_eq!(d.cycle, None);
        assert!(d.lines.contains("which is free"), "{}", d.lines);
        assert!(d
            .lines
            .contains("worker 2 pid 12: between acquisitions; holds B"));
    }
}
