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
//! Modes: [`Mode::Off`] does no graph work at all (only the per-thread held stack in
//! [`crate::track`], which the buffered message log needs, is kept); [`Mode::Report`] records reports (and prints each once
//! to stderr); [`Mode::Panic`] panics at the offending acquisition — before it can deadlock.
//!
//! ## Across processes
//! A validator made with [`Validator::shared`] also keeps its classes and edges in a shared
//! lock-order graph ([`super::order_shared`]), in a named segment that every process of the
//! system opens: classes are matched *by name*, each new edge is written there too, and a path
//! for the opposite order is searched there after the local graph. An inversion whose earlier
//! half was seen by another process is reported with that process's acquisitions
//! ([`Violation::remote_chain`]: pid, thread, source locations, class names). A class that
//! cannot be registered in the shared table (table full, name too long) is tracked by the local
//! graph only, and the failure is kept ([`Validator::shared_errors`]); [`Validator::try_class`]
//! returns it instead.
//!
//! ## Notes about memory ordering
//! The local graph is behind a mutex and each thread's held stack is thread-local, so no
//! ordering subtleties arise here; the shared graph's protocol is described in
//! [`super::order_shared`].
// loom's `thread_local!` does not accept a `const { }` initializer.
#![allow(clippy::missing_const_for_thread_local)]

pub use super::report::{Acquisition, RemoteAcquisition, Violation, ViolationKind};
use crate::sync::BookOrdering;
use crate::sync::{book_lock, BookMutex};
use crate::sync::{BookArc, BookAtomicU64};
use crate::track::held::{self, HeldLock};
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

/// An order edge `held → acquired`, as first seen: the two acquisitions, in order.
type Edge = [Acquisition; 2];

#[derive(Default)]
struct Graph {
    names: Vec<&'static str>,
    reentrant: Vec<bool>,
    /// Index of each class in the shared graph, if registered there.
    shared_ids: Vec<Option<usize>>,
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
    /// The shared graph of a [`Validator::shared`] (never in [`Mode::Off`]).
    #[cfg(not(any(loom, shuttle)))]
    shared: Option<super::order_shared::SharedGraph>,
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
                #[cfg(not(any(loom, shuttle)))]
                shared: None,
            }),
        }
    }

    /// A validator whose graph is also kept in the shared lock-order graph `name`, so that it
    /// sees the orders of every process using the same name. Creates the segment (with room for
    /// [`super::order_shared::DEFAULT_CLASSES`] classes) or opens it if it exists. The segment
    /// stays while any process holds a validator on it; the last one unlinks it.
    ///
    /// In [`Mode::Off`] no segment is touched: the result is [`Validator::new`]`(Mode::Off)`.
    #[cfg(not(any(loom, shuttle)))]
    pub fn shared(mode: Mode, name: &crate::shm::ShmName) -> Result<Self, crate::shm::ShmError> {
        Self::shared_with_capacity(mode, name, super::order_shared::DEFAULT_CLASSES)
    }

    /// [`Validator::shared`] with room for `classes` classes if the segment is created here (an
    /// existing segment keeps its capacity).
    #[cfg(not(any(loom, shuttle)))]
    pub fn shared_with_capacity(
        mode: Mode,
        name: &crate::shm::ShmName,
        classes: usize,
    ) -> Result<Self, crate::shm::ShmError> {
        if mode == Mode::Off {
            return Ok(Validator::new(mode));
        }
        let graph = super::order_shared::SharedGraph::create_or_open(name, classes)?;
        Ok(Validator {
            inner: BookArc::new(ValidatorInner {
                id: NEXT_VALIDATOR.fetch_add(1, BookOrdering::Relaxed),
                mode,
                graph: BookMutex::new(Graph::default()),
                shared: Some(graph),
            }),
        })
    }

    /// The shared graph's segment, for a [`Validator::shared`] (e.g. to unlink it).
    #[cfg(not(any(loom, shuttle)))]
    pub fn shared_segment(&self) -> Option<&crate::shm::Segment> {
        self.inner.shared.as_ref().map(|g| g.segment())
    }

    /// Classes that could not be registered in the shared graph (tracked locally only).
    #[cfg(not(any(loom, shuttle)))]
    pub fn shared_errors(&self) -> Vec<super::order_shared::SharedError> {
        self.inner
            .shared
            .as_ref()
            .map(|g| g.errors())
            .unwrap_or_default()
    }

    /// Like [`Validator::class`], but a class that a shared validator cannot register in the
    /// shared table is an error instead of a locally tracked class.
    #[cfg(not(any(loom, shuttle)))]
    pub fn try_class(
        &self,
        name: &'static str,
        reentrant: bool,
    ) -> Result<LockClass, super::order_shared::SharedError> {
        let shared = match &self.inner.shared {
            Some(g) => Some(g.register(name)?),
            None => None,
        };
        Ok(self.add_class(name, reentrant, shared))
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// Registers a class. Names need not be unique, but reports are clearer if they are.
    ///
    /// A shared validator also registers the name in the shared table (the same name in any
    /// process is the same class there); if that fails (table full, name longer than
    /// [`super::order_shared::NAME_BYTES`]), the class is tracked by the local graph only and
    /// the failure is kept in [`Validator::shared_errors`].
    pub fn class(&self, name: &'static str, reentrant: bool) -> LockClass {
        #[cfg(not(any(loom, shuttle)))]
        let shared = self
            .inner
            .shared
            .as_ref()
            .and_then(|g| g.register(name).ok());
        #[cfg(any(loom, shuttle))]
        let shared = None;
        self.add_class(name, reentrant, shared)
    }

    fn add_class(&self, name: &'static str, reentrant: bool, shared: Option<usize>) -> LockClass {
        let mut g = book_lock(&self.inner.graph);
        g.names.push(name);
        g.reentrant.push(reentrant);
        g.shared_ids.push(shared);
        g.succ.push(Vec::new());
        LockClass {
            validator: self.clone(),
            id: g.names.len() - 1,
            name,
            reentrant,
            shared,
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
    shared: Option<usize>,
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
    /// Index of the class in the shared graph's table (`None`: not a shared validator, or
    /// tracked locally only).
    pub fn shared_index(&self) -> Option<usize> {
        self.shared
    }

    /// For a lock this crate did not write (a user's, a C library's): checks an acquisition
    /// of the lock `lock` *before* the caller may block on it, exactly as this crate's tracked
    /// locks do (in [`Mode::Panic`] a violation panics here, so nothing deadlocks). `lock` is
    /// the lock's identity among the locks a thread holds: unique while the lock lives, e.g.
    /// the address of its handle. Then [`LockClass::acquired`] once it is held and
    /// [`LockClass::released`] after each release (re-entries included).
    #[track_caller]
    pub fn before_acquire(&self, lock: usize) {
        check_acquire(self, lock, Location::caller());
    }

    /// The calling thread now holds `lock` (see [`LockClass::before_acquire`]).
    #[track_caller]
    pub fn acquired(&self, lock: usize) {
        push_held(self, lock, Location::caller());
    }

    /// The calling thread released one acquisition of `lock`; at the outermost release of its
    /// last held lock the [`crate::track`] hooks run (staged log messages are delivered).
    pub fn released(&self, lock: usize) {
        pop_held(lock);
    }
}

/// Checks an acquisition of `lock` (of `class`) at `at` *before* it may block.
pub(crate) fn check_acquire(class: &LockClass, lock: usize, at: &'static Location<'static>) {
    let v = &class.validator;
    if v.inner.mode == Mode::Off {
        return;
    }
    let me = crate::sync::current_thread_id();
    let held: Vec<(usize, usize, &'static str, &'static Location<'static>)> =
        held::with_held(|h| {
            h.iter()
                .filter(|e| e.tracker == v.inner.id)
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
                remote_chain: Vec::new(),
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
                        remote_chain: Vec::new(),
                    });
                }
            }
            #[cfg(not(any(loom, shuttle)))]
            if let (Some(shared), Some(sh), Some(sc)) =
                (&v.inner.shared, g.shared_ids[hc], class.shared)
            {
                if sh != sc {
                    let remote = shared_edge(shared, sh, sc, &edge, me);
                    if found.is_none() {
                        found = remote;
                    }
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

/// Records the new edge `sh → sc` (shared indices; `edge` = its two acquisitions here) in the
/// shared graph, then looks there for the opposite order `sc →* sh`.
#[cfg(not(any(loom, shuttle)))]
fn shared_edge(
    shared: &super::order_shared::SharedGraph,
    sh: usize,
    sc: usize,
    edge: &Edge,
    me: u64,
) -> Option<Violation> {
    let (held_at, at) = (edge[0].at.to_string(), edge[1].at.to_string());
    shared.record(
        sh,
        sc,
        &super::order_shared::EdgeRecord {
            thread: me,
            held_at: &held_at,
            at: &at,
        },
    );
    let p = shared.path(sc, sh)?;
    let remote_chain = p
        .windows(2)
        .flat_map(|w| shared.edge_chain(w[0], w[1]))
        .collect();
    let mut cycle = vec![edge[0].class];
    cycle.extend(p.iter().map(|&c| shared.interned_class_name(c)));
    // The ends are this process's own names for the two classes.
    if let Some(last) = cycle.last_mut() {
        *last = edge[0].class;
    }
    if let Some(second) = cycle.get_mut(1) {
        *second = edge[1].class;
    }
    Some(Violation {
        kind: ViolationKind::Inversion,
        cycle,
        this_chain: edge.to_vec(),
        earlier_chain: Vec::new(),
        remote_chain,
    })
}

/// Records that the calling thread now holds `lock` (of `class`) on its held stack.
pub(crate) fn push_held(class: &LockClass, lock: usize, at: &'static Location<'static>) {
    held::push_held(HeldLock {
        tracker: class.validator.inner.id,
        class: class.id,
        name: class.name,
        lock,
        at,
    });
}

/// Records that the calling thread released (one acquisition of) `lock`; at the outermost
/// release the [`crate::track`] hooks run (they flush staged log messages).
pub(crate) fn pop_held(lock: usize) {
    held::pop_held(lock);
}
