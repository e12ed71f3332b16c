//! The acquisitions a lock-order report is made of: one seen in this process
//! ([`Acquisition`]) and one read from a shared lock-order graph ([`RemoteAcquisition`]). Both
//! the validator ([`super::order`]) and the shared graph ([`super::order_shared`]) build them,
//! so they live below both.

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
