//! The reference implementation behind the seam: `primitives::mvar::SharedMVar` in the flavour
//! `--control` names (the reference protocol without one). Robust, names its lock holder,
//! counts its commits, and tells whether the box is full without touching it.

use super::{MVarHandle, Status, Wait};
use primitives::mvar::{SharedMVar, SharedMVarError};
use primitives::shm::ShmName;
use std::time::Duration;

/// A process's handle on a reference box.
pub struct Reference(SharedMVar);

fn parse(name: &str) -> Result<ShmName, String> {
    ShmName::parse(name).map_err(|e| format!("bad segment name: {e}"))
}

fn flavor(control: Option<&str>) -> Result<primitives::mvar::Flavor, String> {
    crate::procs::controls::flavor(control).ok_or_else(|| format!("unknown control {control:?}"))
}

impl Reference {
    /// Creates the box `name` for up to `participants` processes.
    pub fn create(
        name: &ShmName,
        payload_len: usize,
        participants: u32,
        control: Option<&str>,
    ) -> Result<Reference, String> {
        SharedMVar::create_with(name, payload_len, participants, flavor(control)?)
            .map(Reference)
            .map_err(|e| format!("cannot create the shared MVar: {e}"))
    }

    /// Opens the box `name`.
    pub fn open(name: &str, control: Option<&str>) -> Result<Reference, String> {
        let n = parse(name)?;
        SharedMVar::open_with(&n, flavor(control)?)
            .map(Reference)
            .map_err(|e| format!("cannot open {n}: {e}"))
    }
}

fn status<T>(r: Result<primitives::mvar::Outcome<T>, SharedMVarError>) -> Status {
    match r {
        Ok(o) if o.recovered.is_some() => Status::OwnerDied,
        Ok(_) => Status::Ok,
        Err(SharedMVarError::Timeout | SharedMVarError::Full | SharedMVarError::Empty) => {
            Status::Timeout
        }
        Err(e) => Status::Error(e.to_string()),
    }
}

impl MVarHandle for Reference {
    fn put(&self, value: &[u8], wait: Wait) -> Status {
        status(match wait {
            None => self.0.put(value),
            Some(Duration::ZERO) => self.0.try_put(value),
            Some(d) => self.0.put_timeout(value, d),
        })
    }

    fn take(&self, out: &mut [u8], wait: Wait) -> Status {
        status(match wait {
            None => self.0.take_into(out),
            Some(Duration::ZERO) => self.0.try_take(out),
            Some(d) => self.0.take_timeout(out, d),
        })
    }

    fn payload_len(&self) -> usize {
        self.0.payload_len()
    }

    fn holder(&self) -> Option<Option<u32>> {
        Some(self.0.lock_holder().map(|(who, _)| who.pid))
    }

    fn commits(&self) -> Option<u64> {
        Some(self.0.generation())
    }

    fn is_full(&self) -> Option<bool> {
        Some(self.0.is_full())
    }

    fn reference(&self) -> Option<&SharedMVar> {
        Some(&self.0)
    }
}
