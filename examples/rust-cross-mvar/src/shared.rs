//! `shared`: this suite's own robust `primitives::mvar::SharedMVar`, through the public plug-in
//! traits exactly as a user's type would go (the same checks as the built-in reference, from
//! outside). ROBUST, HOLDER, COMMITS, READ.

use primitives::mvar::{Flavor, Outcome, SharedMVar, SharedMVarError};
use primitives::shm::ShmName;
use std::time::Duration;
use torture::{Caps, CrossMVar, MVarHandle, Status, Wait};

/// Participant slots of a box (live processes at once, replacements included).
const PARTICIPANTS: u32 = 1024;

/// The implementation.
pub struct Shared;

fn name(n: &str) -> Result<ShmName, String> {
    ShmName::parse(n).map_err(|e| format!("bad name {n:?}: {e}"))
}

impl CrossMVar for Shared {
    fn caps(&self) -> Caps {
        Caps::ALL
    }
    fn create(&self, n: &str, payload_len: usize) -> Result<(), String> {
        let m = SharedMVar::create_with(&name(n)?, payload_len, PARTICIPANTS, Flavor::REFERENCE)
            .map_err(|e| e.to_string())?;
        // The box outlives this handle: the runner destroys it (`destroy`) when the run ends.
        m.segment().set_unlink_on_drop(false);
        Ok(())
    }
    fn open(&self, n: &str) -> Result<Box<dyn MVarHandle>, String> {
        let m = SharedMVar::open(&name(n)?).map_err(|e| e.to_string())?;
        Ok(Box::new(Handle(m)))
    }
    fn destroy(&self, n: &str) {
        if let Ok(m) = name(n).and_then(|n| SharedMVar::open(&n).map_err(|e| e.to_string())) {
            let _ = m.segment().unlink();
        }
    }
}

/// One process's handle.
struct Handle(SharedMVar);

fn status<T>(r: Result<Outcome<T>, SharedMVarError>) -> Status {
    match r {
        Ok(o) if o.recovered.is_some() => Status::OwnerDied,
        Ok(_) => Status::Ok,
        Err(SharedMVarError::Timeout | SharedMVarError::Full | SharedMVarError::Empty) => {
            Status::Timeout
        }
        Err(e) => Status::Error(e.to_string()),
    }
}

impl MVarHandle for Handle {
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
}
