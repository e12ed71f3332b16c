//! Lock-order validator, in the manner of Linux lockdep.
//!
//! Locks belong to named *classes* ([`LockClass`]). Each thread keeps a stack of the tracked
//! locks it holds. Every acquisition while holding other locks adds edges `held → acquired` to
//! an acquisition-order graph, each edge remembering where (source location, thread) it was
//! first seen. The first time a new edge closes a cycle (A→B then B→A, or A→B→C→A across three
//! threads), the validator reports it with both chains — *even though no deadlock happened*:
//! it is enough that both orders were seen once. Re-acquiring a lock you hold is fine for a
//! reentrant class and reported (`AA`, a certain self-deadlock) for a non-reentrant one.
//!
//! Two instances of the same class taken together add no edge (lockdep's "nested" case); the
//! order among instances of one class is what [`super::ordered`] enforces.
//!
//! Modes: [`Mode::Off`] does no graph work at all (only the per-thread held stack, which the
//! buffered message log needs, is kept); [`Mode::Report`] records reports (and prints each once
//! to stderr); [`Mode::Panic`] panics at the offending acquisition — before it can deadlock.
// loom's `thread_local!` does not accept a `const { }` initializer.
#![allow(clippy::missing_const_for_thread_local)]

use crate::sync::BookOrdering;
use crate::sync::{book_lock, engine_thread_local, BookMutex};
use crate::sync::{BookArc, BookAtomicU64};
use core::fmt;
use core::panic::Location;
use std::collections::HashMap;

/// What the validator does on a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No checking (zero graph cost).
    Off,
    /// Record the report, print it once, carry on.
    Report,
    /// Panic with the report at the offending acquisition.
    Panic,
}

/// One acquisition in a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acquisition {
    /// Lock class name.
    pub class: &'static str,
    /// Where it was acquired.
    pub at: &'static Location<'static>,
    /// [`crate::sync::current_thread_id`] of the acquirer.
    pub thread: u64,
}

/// What kind of violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// A cycle in the acquisition order: a potential deadlock.
    Inversion,
    /// A non-reentrant lock re-acquired by its holder: a certain self-deadlock.
    Recursive,
}

/// A lock-order violation, with both chains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which kind.
    pub kind: ViolationKind,
    /// The cycle of classes, first class repeated at the end (`[A, B, A]`).
    pub cycle: Vec<&'static str>,
    /// This thread's chain: the held lock(s), then the acquisition that closed the cycle.
    pub this_chain: Vec<Acquisition>,
    /// The chain(s) seen earlier that establish the opposite order, edge by edge.
    pub earlier_chain: Vec<Acquisition>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = match self.kind {
            ViolationKind::Inversion => "lock-order inversion (potential deadlock)",
            ViolationKind::Recursive => {
                "recursive acquisition of a non-reentrant lock (self-deadlock)"
            }
        };
        writeln!(f, "{title}: {}", self.cycle.join(" -> "))?;
        writeln!(f, "  this chain:")?;
        for a in &self.this_chain {
            writeln!(
                f,
                "    thread #{} acquires {:?} at {}",
                a.thread, a.class, a.at
            )?;
        }
        if !self.earlier_chain.is_empty() {
            writeln!(f, "  earlier chain establishing the opposite order:")?;
            for a in &self.earlier_chain {
                writeln!(
                    f,
                    "    thread #{} acquired {:?} at {}",
                    a.thread, a.class, a.at
                )?;
            }
        }
        Ok(())
    }
}

/// An order edge `held → acquired`, as first seen: the two acquisitions, in order.
type Edge = [Acquisition; 2];

#[derive(Default)]
struct Graph {
    names: Vec<&'static str>,
    reentrant: Vec<bool>,
    edges: HashMap<(usize, usize), Edge>,
    succ: Vec<Vec<usize>>,
    violations: Vec<Violation>,
}

impl Graph {
    /// A path `from →* to` as a list of class ids, if any (depth-first).
    fn path(&self, from: usize, to: usize) -> Option<Vec<usize>> {
        let mut seen = vec![false; self.names.len()];
        let mut stack = vec![(from, vec![from])];
        while let Some((n, p)) = stack.pop() {
            if n == to {
                return Some(p);
            }
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            for &s in &self.succ[n] {
                let mut q = p.clone();
                q.push(s);
                stack.push((s, q));
            }
        }
        None
    }
}

struct ValidatorInner {
    id: u64,
    mode: Mode,
    graph: BookMutex<Graph>,
}

/// A lock-order validator: a graph of classes. Cheap to clone (shared).
#[derive(Clone)]
pub struct Validator {
    inner: BookArc<ValidatorInner>,
}

static NEXT_VALIDATOR: BookAtomicU64 = BookAtomicU64::new(1);

impl Validator {
    /// A fresh validator (empty graph) in `mode`.
    pub fn new(mode: Mode) -> Self {
        Validator {
            inner: BookArc::new(ValidatorInner {
                id: NEXT_VALIDATOR.fetch_add(1, BookOrdering::Relaxed),
                mode,
                graph: BookMutex::new(Graph::default()),
            }),
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// Registers a class. Names need not be unique, but reports are clearer if they are.
    pub fn class(&self, name: &'static str, reentrant: bool) -> LockClass {
        let mut g = book_lock(&self.inner.graph);
        g.names.push(name);
        g.reentrant.push(reentrant);
        g.succ.push(Vec::new());
        LockClass {
            validator: self.clone(),
            id: g.names.len() - 1,
            name,
            reentrant,
        }
    }

    /// Every violation recorded so far (in Report and Panic mode).
    pub fn violations(&self) -> Vec<Violation> {
        book_lock(&self.inner.graph).violations.clone()
    }

    fn raise(&self, v: Violation) {
        let first = {
            let mut g = book_lock(&self.inner.graph);
            let dup = g
                .violations
                .iter()
                .any(|o| o.kind == v.kind && same_cycle(&o.cycle, &v.cycle));
            if !dup {
                g.violations.push(v.clone());
            }
            !dup
        };
        match self.inner.mode {
            Mode::Off => {}
            Mode::Report => {
                // Printed once per process and cycle: a torture run makes a fresh validator per
                // run, and the same inversion must not flood the log.
                let mut printed = book_lock(&PRINTED);
                if first
                    && !printed
                        .iter()
                        .any(|(k, c)| *k == v.kind && same_cycle(c, &v.cycle))
                {
                    printed.push((v.kind, v.cycle.clone()));
                    eprintln!("lockdep: {v}");
                }
            }
            Mode::Panic => panic!("lockdep: {v}"),
        }
    }
}

/// Violations already printed in `Report` mode by any validator of this process.
static PRINTED: BookMutex<Vec<(ViolationKind, Vec<&'static str>)>> = BookMutex::new(Vec::new());

fn same_cycle(a: &[&'static str], b: &[&'static str]) -> bool {
    let mut x: Vec<_> = a.to_vec();
    let mut y: Vec<_> = b.to_vec();
    x.sort_unstable();
    x.dedup();
    y.sort_unstable();
    y.dedup();
    x == y
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("id", &self.inner.id)
            .field("mode", &self.inner.mode)
            .finish()
    }
}

/// A named lock class registered with a [`Validator`].
#[derive(Clone, Debug)]
pub struct LockClass {
    validator: Validator,
    id: usize,
    name: &'static str,
    reentrant: bool,
}

impl LockClass {
    /// The class name.
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// Whether holders may re-acquire locks of this class.
    pub fn is_reentrant(&self) -> bool {
        self.reentrant
    }
}

struct Held {
    validator: u64,
    class: usize,
    name: &'static str,
    lock: usize,
    at: &'static Location<'static>,
}

engine_thread_local! {
    static HELD: core::cell::RefCell<Vec<Held>> = core::cell::RefCell::new(Vec::new());
}

/// Classes of the tracked locks the calling thread holds, outermost first.
pub fn held_classes() -> Vec<&'static str> {
    held_locks().into_iter().map(|(name, _)| name).collect()
}

/// The tracked locks the calling thread holds, outermost first: (class, lock identity — the
/// address of its `RawMutex`, as registered by a thread sleeping on it in the wait registry).
pub fn held_locks() -> Vec<(&'static str, usize)> {
    HELD.try_with(|h| h.borrow().iter().map(|e| (e.name, e.lock)).collect())
        .unwrap_or_default()
}

/// How many tracked lock acquisitions the calling thread holds (re-entries count).
pub fn held_depth() -> usize {
    HELD.try_with(|h| h.borrow().len()).unwrap_or(0)
}

/// Checks an acquisition of `lock` (of `class`) at `at` *before* it may block.
pub(crate) fn check_acquire(class: &LockClass, lock: usize, at: &'static Location<'static>) {
    let v = &class.validator;
    if v.inner.mode == Mode::Off {
        return;
    }
    let me = crate::sync::current_thread_id();
    let held: Vec<(usize, usize, &'static str, &'static Location<'static>)> = HELD
        .try_with(|h| {
            h.borrow()
                .iter()
                .filter(|e| e.validator == v.inner.id)
                .map(|e| (e.class, e.lock, e.name, e.at))
                .collect()
        })
        .unwrap_or_default();
    if let Some(&(_, _, name, held_at)) = held.iter().find(|e| e.1 == lock) {
        if !class.reentrant {
            v.raise(Violation {
                kind: ViolationKind::Recursive,
                cycle: vec![name, class.name],
                this_chain: vec![
                    Acquisition {
                        class: name,
                        at: held_at,
                        thread: me,
                    },
                    Acquisition {
                        class: class.name,
                        at,
                        thread: me,
                    },
                ],
                earlier_chain: Vec::new(),
            });
        }
        return; // a re-entry adds no order
    }
    let mut found = None;
    {
        let mut g = book_lock(&v.inner.graph);
        for &(hc, _, _, hat) in &held {
            if hc == class.id || g.edges.contains_key(&(hc, class.id)) {
                continue;
            }
            let edge: Edge = [
                Acquisition {
                    class: g.names[hc],
                    at: hat,
                    thread: me,
                },
                Acquisition {
                    class: class.name,
                    at,
                    thread: me,
                },
            ];
            // Does the opposite order already exist (class →* hc)?
            if found.is_none() {
                if let Some(p) = g.path(class.id, hc) {
                    let earlier_chain = p
                        .windows(2)
                        .flat_map(|w| g.edges[&(w[0], w[1])].clone())
                        .collect();
                    let mut cycle: Vec<&'static str> = vec![g.names[hc]];
                    cycle.extend(p.iter().map(|&c| g.names[c]));
                    found = Some(Violation {
                        kind: ViolationKind::Inversion,
                        cycle,
                        this_chain: edge.to_vec(),
                        earlier_chain,
                    });
                }
            }
            g.edges.insert((hc, class.id), edge);
            g.succ[hc].push(class.id);
        }
    }
    if let Some(violation) = found {
        v.raise(violation);
    }
}

/// Records that the calling thread now holds `lock`.
pub(crate) fn push_held(class: &LockClass, lock: usize, at: &'static Location<'static>) {
    let _ = HELD.try_with(|h| {
        h.borrow_mut().push(Held {
            validator: class.validator.inner.id,
            class: class.id,
            name: class.name,
            lock,
            at,
        })
    });
}

/// Records that the calling thread released (one acquisition of) `lock`; when it was the
/// outermost tracked lock, staged log messages are flushed.
pub(crate) fn pop_held(lock: usize) {
    let now_empty = HELD
        .try_with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|e| e.lock == lock) {
                h.remove(i);
            }
            h.is_empty()
        })
        .unwrap_or(false);
    if now_empty {
        crate::msg::flush_staged();
    }
}
