//! What the lock-order validator reports: a [`Violation`] with its chains of acquisitions — seen
//! in this process ([`Acquisition`]) or read from a shared lock-order graph
//! ([`RemoteAcquisition`]). Both the validator ([`super::order`]) and the shared graph
//! ([`super::order_shared`]) build them, so they live below both.

use core::fmt;
use core::panic::Location;

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

/// One acquisition in a chain recorded by another process (or another validator) in a shared
/// lock-order graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteAcquisition {
    /// Lock class name, as registered in the shared table.
    pub class: &'static str,
    /// Process that recorded it (0 if unknown).
    pub pid: u32,
    /// Kernel tid of the acquiring thread (0 if unknown).
    pub tid: u32,
    /// [`crate::sync::current_thread_id`] of the acquirer in its process (0 if unknown).
    pub thread: u64,
    /// Where it was acquired (`file:line:col`, possibly cut at the front); `None` when the
    /// recording process had not committed the details (or died before it did).
    pub at: Option<String>,
    /// The recording process died before committing the details.
    pub writer_died: bool,
}

impl fmt::Display for RemoteAcquisition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if self.tid != 0 {
            write!(f, " tid {} thread #{}", self.tid, self.thread)?;
        }
        write!(f, " acquired {:?} ", self.class)?;
        match (&self.at, self.writer_died) {
            (Some(at), _) => write!(f, "at {at}"),
            (None, true) => f.write_str("(details lost: the process died while recording them)"),
            (None, false) => f.write_str("(details still being recorded)"),
        }
    }
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
    /// The same, when the opposite order was found only in the shared graph
    /// ([`Validator::shared`](super::Validator::shared)): the acquisitions of the processes that recorded it, edge by
    /// edge (then `earlier_chain` is empty).
    pub remote_chain: Vec<RemoteAcquisition>,
}

impl Violation {
    /// One-line summary of an inversion found through the shared graph: `A -> B here (pid …,
    /// at … then …); earlier B -> A in pid … (at … then …)`.
    fn remote_summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let here: Vec<_> = self.this_chain.iter().map(|a| a.class).collect();
        let at: Vec<String> = self.this_chain.iter().map(|a| a.at.to_string()).collect();
        let thread = self.this_chain.first().map_or(0, |a| a.thread);
        write!(
            f,
            "  {} here (pid {}, thread #{thread}, at {})",
            here.join(" -> "),
            std::process::id(),
            at.join(" then ")
        )?;
        for (i, edge) in self.remote_chain.chunks(2).enumerate() {
            let sep = if i == 0 { "; earlier" } else { ", then" };
            let names: Vec<_> = edge.iter().map(|a| a.class).collect();
            let pid = edge.first().map_or(0, |a| a.pid);
            let at: Vec<String> = edge
                .iter()
                .map(|a| a.at.clone().unwrap_or_else(|| "?".into()))
                .collect();
            write!(f, "{sep} {} in pid {pid}", names.join(" -> "))?;
            match edge.first() {
                Some(a) if a.at.is_some() => {
                    write!(f, " (tid {}, at {})", a.tid, at.join(" then "))?
                }
                Some(a) if a.writer_died => {
                    f.write_str(" (details lost: it died recording them)")?
                }
                _ => f.write_str(" (details still being recorded)")?,
            }
        }
        writeln!(f)
    }
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
        if !self.remote_chain.is_empty() {
            self.remote_summary(f)?;
        }
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
        if !self.remote_chain.is_empty() {
            writeln!(
                f,
                "  earlier chain establishing the opposite order, from the shared graph:"
            )?;
            for a in &self.remote_chain {
                writeln!(f, "    {a}")?;
            }
        }
        Ok(())
    }
}
