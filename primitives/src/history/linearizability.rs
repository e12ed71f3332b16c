//! A linearizability checker for histories of MVar operations.
//!
//! A history is a list of [`Operation`]s, each with the interval it ran in (`call_ns` to
//! `return_ns`, on one clock shared by every process) and what it did ([`Kind`]). It is
//! *linearizable* when every operation can be given one instant inside its interval such that,
//! taken in the order of those instants, the operations are legal for the sequential model: a
//! box that is `empty` or `full(v)`.
//!
//! | op | needs | leaves |
//! |---|---|---|
//! | `Put(v)` | empty | full(v) |
//! | `Take(v)` | full(v) | empty |
//! | `Read(v)` | full(v) | full(v) |
//! | `TryRead(Some(v))` | full(v) | full(v) |
//! | `TryRead(None)` | empty | empty |
//! | `Swap { new, old: v }` | full(v) | full(new) |
//! | `TryPut { v, ok: true }` | empty | full(v) |
//! | `TryPut { v, ok: false }` | full(_) | unchanged |
//! | `TryTake(Some(v))` | full(v) | empty |
//! | `TryTake(None)` | empty | empty |
//! | `TimedOut` | — | never placed |
//!
//! Blocking operations are placed only where their precondition holds (they would still be
//! waiting otherwise). `Take(None)` / `Read(None)` mean "result unknown" and match any value;
//! they make sense only for pending operations.
//!
//! **Pending operations** (`return_ns: None`: still blocked, or their process was killed) may
//! have taken effect at any instant after their call, or not at all: the search may place them
//! or leave them out. **Timed-out** operations had no effect (the MVar contract: a timed-out
//! `put`/`take` changes nothing), so they are never placed.
//!
//! # Algorithm
//! Wing & Gong's search with Lowe's memoisation (the approach Porcupine uses): depth-first, it
//! extends a linearized prefix by one operation that is *minimal* — no unplaced completed
//! operation returned before it was called — and legal in the current model state. A
//! configuration is the set of placed operations (a bitset) plus the model state; each is
//! explored at most once (a hash set of those seen), so the search is exponential only in the
//! width of the history (how many operations overlap), not its length, in the common case.
//!
//! # Cost and caps
//! The worst case is exponential: the search stops with [`Verdict::Unknown`] when it has tried
//! [`Limits::max_steps`] placements, and refuses up front histories of more than
//! [`Limits::max_ops`] operations. Memory is one cache entry (`max_ops / 64` words + a state) per
//! step at most. It never hangs.

use std::collections::HashSet;

/// What an operation did (see the module's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Blocking put of a value.
    Put(u64),
    /// Blocking take; the value it returned (`None`: unknown, for pending operations).
    Take(Option<u64>),
    /// Blocking read (the value stays); the value it returned (`None`: unknown).
    Read(Option<u64>),
    /// Non-blocking read: the value, or `None` if the box was empty.
    TryRead(Option<u64>),
    /// Blocking swap: put `new` in place of the value it returned (`old`, `None`: unknown).
    Swap {
        /// The value left in the box.
        new: u64,
        /// The value taken out.
        old: Option<u64>,
    },
    /// Non-blocking put: `ok` if it stored `value`, `!ok` if the box was full.
    TryPut {
        /// The value offered.
        value: u64,
        /// Whether it was stored.
        ok: bool,
    },
    /// Non-blocking take: the value, or `None` if the box was empty.
    TryTake(Option<u64>),
    /// A blocking operation that timed out: no effect, never placed.
    TimedOut,
}

/// One operation of a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Who ran it (for reports only).
    pub process: u32,
    /// When it was called.
    pub call_ns: u64,
    /// When it returned; `None` if it never did (pending, or its process was killed).
    pub return_ns: Option<u64>,
    /// What it did.
    pub kind: Kind,
}

/// The sequential model: the MVar's box.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    /// Nothing in it.
    Empty,
    /// A value in it.
    Full(u64),
}

/// How far the search may go before it answers [`Verdict::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Histories longer than this are not searched.
    pub max_ops: usize,
    /// Placements tried before giving up.
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_ops: 1024,
            max_steps: 1_000_000,
        }
    }
}

/// The checker's answer. Operations are named by their index in the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A legal order exists; `order` is one (pending operations that took effect included,
    /// those that did not and timed-out ones left out).
    Linearizable {
        /// The operations, in linearization order.
        order: Vec<usize>,
    },
    /// No legal order exists.
    NotLinearizable {
        /// The longest legal prefix the search found.
        prefix: Vec<usize>,
        /// The completed operations that could come next after it, none of them legal there.
        stuck: Vec<usize>,
    },
    /// The search gave up (or the history is malformed).
    Unknown {
        /// Why.
        reason: String,
    },
}

/// The state `kind` leaves `cell` in, or `None` if it cannot be placed there.
pub fn apply(kind: Kind, cell: Cell) -> Option<Cell> {
    let matches = |want: Option<u64>, v: u64| want.map_or(true, |w| w == v);
    match (kind, cell) {
        (Kind::Put(v), Cell::Empty) | (Kind::TryPut { value: v, ok: true }, Cell::Empty) => {
            Some(Cell::Full(v))
        }
        (Kind::TryPut { ok: false, .. }, Cell::Full(_)) => Some(cell),
        (Kind::Take(want), Cell::Full(v)) if matches(want, v) => Some(Cell::Empty),
        (Kind::TryTake(Some(w)), Cell::Full(v)) if w == v => Some(Cell::Empty),
        (Kind::TryTake(None), Cell::Empty) => Some(Cell::Empty),
        (Kind::Read(want), Cell::Full(v)) if matches(want, v) => Some(cell),
        (Kind::TryRead(Some(w)), Cell::Full(v)) if w == v => Some(cell),
        (Kind::TryRead(None), Cell::Empty) => Some(Cell::Empty),
        (Kind::Swap { new, old }, Cell::Full(v)) if matches(old, v) => Some(Cell::Full(new)),
        _ => None,
    }
}

/// A set of operation indices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bits(Box<[u64]>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)].into_boxed_slice())
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
    fn flip(&mut self, i: usize) {
        self.0[i / 64] ^= 1 << (i % 64);
    }
}

/// Checks `history` from an empty box with [`Limits::default`].
pub fn check(history: &[Operation]) -> Verdict {
    check_with(history, Cell::Empty, Limits::default())
}

/// Checks `history`, starting from `initial`, within `limits`.
pub fn check_with(history: &[Operation], initial: Cell, limits: Limits) -> Verdict {
    let n = history.len();
    if n > limits.max_ops {
        return Verdict::Unknown {
            reason: format!("{n} operations, more than the cap of {}", limits.max_ops),
        };
    }
    if let Some(i) = (0..n).find(|&i| history[i].return_ns.is_some_and(|r| r < history[i].call_ns))
    {
        return Verdict::Unknown {
            reason: format!("operation {i} returns before it is called"),
        };
    }
    Search {
        ops: history,
        must: (0..n)
            .filter(|&i| history[i].return_ns.is_some() && history[i].kind != Kind::TimedOut)
            .count(),
        limits,
    }
    .run(initial)
}

struct Search<'a> {
    ops: &'a [Operation],
    /// How many operations must be placed: the completed ones that did not time out.
    must: usize,
    limits: Limits,
}

impl Search<'_> {
    /// Completed, not timed out: must be placed.
    fn required(&self, i: usize) -> bool {
        self.ops[i].return_ns.is_some() && self.ops[i].kind != Kind::TimedOut
    }

    /// The operations that may come next after `placed`: unplaced, not timed out, and called
    /// no later than the earliest return of an unplaced required operation.
    fn frontier(&self, placed: &Bits) -> Vec<usize> {
        let unplaced = |i: &usize| !placed.has(*i) && self.ops[*i].kind != Kind::TimedOut;
        let horizon = (0..self.ops.len())
            .filter(unplaced)
            .filter_map(|i| self.ops[i].return_ns)
            .min()
            .unwrap_or(u64::MAX);
        let mut next: Vec<usize> = (0..self.ops.len())
            .filter(unplaced)
            .filter(|&i| self.ops[i].call_ns <= horizon)
            .collect();
        // Popped from the back: try the earliest-returning first (pending ones last), a cheap
        // heuristic that follows real time and finds a legal order with little backtracking.
        next.sort_by_key(|&i| std::cmp::Reverse((self.ops[i].return_ns.unwrap_or(u64::MAX), i)));
        next
    }

    fn run(&self, initial: Cell) -> Verdict {
        let mut placed = Bits::new(self.ops.len());
        let mut cell = initial;
        let mut placed_required = 0;
        // The placed operations in order, each with the state before it.
        let mut path: Vec<(usize, Cell)> = Vec::new();
        // Per depth, the candidates not yet tried.
        let mut todo: Vec<Vec<usize>> = vec![self.frontier(&placed)];
        let mut seen: HashSet<(Bits, Cell)> = HashSet::new();
        // The deepest dead end: (prefix, stuck).
        let mut best: Option<(Vec<usize>, Vec<usize>)> = None;
        let mut steps = 0u64;
        if placed_required == self.must {
            return Verdict::Linearizable { order: Vec::new() };
        }
        while let Some(candidates) = todo.last_mut() {
            let Some(i) = candidates.pop() else {
                // Every candidate at this depth failed: the deepest failure explains the verdict.
                if best.as_ref().map_or(true, |b| path.len() > b.0.len()) {
                    let stuck = self.frontier(&placed);
                    best = Some((
                        path.iter().map(|p| p.0).collect(),
                        stuck
                            .into_iter()
                            .rev()
                            .filter(|&j| self.required(j))
                            .collect(),
                    ));
                }
                todo.pop();
                if let Some((j, before)) = path.pop() {
                    placed.flip(j);
                    placed_required -= usize::from(self.required(j));
                    cell = before;
                }
                continue;
            };
            steps += 1;
            if steps > self.limits.max_steps {
                return Verdict::Unknown {
                    reason: format!(
                        "search budget of {} steps exhausted ({} operations)",
                        self.limits.max_steps,
                        self.ops.len()
                    ),
                };
            }
            let Some(after) = apply(self.ops[i].kind, cell) else {
                continue;
            };
            placed.flip(i);
            if !seen.insert((placed.clone(), after)) {
                placed.flip(i);
                continue;
            }
            path.push((i, cell));
            cell = after;
            placed_required += usize::from(self.required(i));
            if placed_required == self.must {
                return Verdict::Linearizable {
                    order: path.iter().map(|p| p.0).collect(),
                };
            }
            todo.push(self.frontier(&placed));
        }
        let (prefix, stuck) = best.unwrap_or_default();
        Verdict::NotLinearizable { prefix, stuck }
    }
}
