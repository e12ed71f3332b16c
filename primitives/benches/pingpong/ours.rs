//! (d) "ours: shared MVar": this crate's [`SharedMVar`] (robust lock word, adaptive spin, then
//! a shared futex in slices of at most 50 ms), one MVar per segment, 8-byte payload.
//!
//! (e) "ours: shared MVar, private futex (control)": the same with every futex word used
//! `FUTEX_PRIVATE` ([`Scope::Private`]), seed 000's defect class: wake-ups never cross
//! processes, so a waiter that has gone to sleep is only rescued by its slice running out
//! (1 ms, doubling up to 50 ms). Shows what that defect costs in our design.
//!
//! Names come from [`ShmNames`] (unlinked as soon as the child has attached, and on any error
//! path), so every handle is told not to unlink on drop: the names are the guard's alone.

use std::time::Duration;

use primitives::mvar::{Flavor, Outcome, SharedMVar, SharedMVarError};
use primitives::shm::{ShmName, DEFAULT_PARTICIPANTS};
use primitives::sync::futex::Scope;

use crate::kinds::{ChildSpec, ParentSide, ProcessKind, SleeperSpec, STOP};
use crate::sys::{Res, ShmNames};

/// Bytes per value (one `u64`).
const PAYLOAD: usize = 8;
/// The parent waits in timed operations of this length and checks the child between them.
const SLICE: Duration = Duration::from_millis(100);

/// A cross-process ping-pong over two [`SharedMVar`]s run with `flavor`.
pub struct Ours {
    id: &'static str,
    label: &'static str,
    flavor: Flavor,
}

/// (d) The reference protocol.
pub static OURS_SHARED_MVAR: Ours = Ours {
    id: "ours",
    label: "ours: shared MVar",
    flavor: Flavor::REFERENCE,
};

/// (e) Control: private futexes.
pub static OURS_PRIVATE_FUTEX: Ours = Ours {
    id: "ours-private",
    label: "ours: shared MVar, private futex (control)",
    flavor: Flavor {
        scope: Scope::Private,
        ..Flavor::REFERENCE
    },
};

impl Ours {
    fn create(&self, name: &str) -> Res<SharedMVar> {
        let name = ShmName::parse(name)?;
        let mvar = SharedMVar::create_with(&name, PAYLOAD, DEFAULT_PARTICIPANTS, self.flavor)?;
        mvar.segment().set_unlink_on_drop(false);
        Ok(mvar)
    }

    fn open(&self, name: &str) -> Res<SharedMVar> {
        let name = ShmName::parse(name)?;
        let mvar = SharedMVar::open_with(&name, self.flavor)?;
        mvar.segment().set_unlink_on_drop(false);
        if mvar.payload_len() != PAYLOAD {
            return Err(format!(
                "segment {name} holds {}-byte values, expected {PAYLOAD}",
                mvar.payload_len()
            )
            .into());
        }
        Ok(mvar)
    }
}

/// Nobody may die in this benchmark: a takeover from a dead participant is an error.
fn clean(o: Outcome<()>, what: &str) -> Res<()> {
    match o.recovered {
        None => Ok(()),
        Some(who) => Err(format!("{what}: took the MVar over from dead participant {who}").into()),
    }
}

/// Repeats a timed operation while it times out and the peer lives.
fn timed(
    what: &str,
    peer_alive: &dyn Fn() -> bool,
    mut op: impl FnMut() -> Result<Outcome<()>, SharedMVarError>,
) -> Res<()> {
    loop {
        match op() {
            Ok(o) => return clean(o, what),
            Err(SharedMVarError::Timeout) if peer_alive() => {}
            Err(SharedMVarError::Timeout) => return Err("the peer process is gone".into()),
            Err(e) => return Err(format!("{what}: {e}").into()),
        }
    }
}

struct Parent {
    ping: SharedMVar,
    pong: SharedMVar,
}

impl ParentSide for Parent {
    fn round_trip(&mut self, v: u64, peer_alive: &dyn Fn() -> bool) -> Res<u64> {
        let out = v.to_ne_bytes();
        timed("put ping", peer_alive, || {
            self.ping.put_timeout(&out, SLICE)
        })?;
        let mut back = [0u8; PAYLOAD];
        timed("take pong", peer_alive, || {
            self.pong.take_timeout(&mut back, SLICE)
        })?;
        Ok(u64::from_ne_bytes(back))
    }
}

impl ProcessKind for Ours {
    fn id(&self) -> &'static str {
        self.id
    }

    fn label(&self) -> &'static str {
        self.label
    }

    fn setup(&self, shm: &mut ShmNames) -> Res<(Box<dyn ParentSide>, ChildSpec)> {
        let (ping_name, pong_name) = (shm.fresh(), shm.fresh());
        let ping = self.create(&ping_name)?;
        let pong = self.create(&pong_name)?;
        let spec = ChildSpec {
            args: vec![ping_name, pong_name],
            stdin: None,
            stdout: None,
        };
        Ok((Box::new(Parent { ping, pong }), spec))
    }

    fn child_loop(&self, args: &[String]) -> Res<()> {
        let [ping, pong] = args else {
            return Err("expected two segment names".into());
        };
        let (ping, pong) = (self.open(ping)?, self.open(pong)?);
        let mut buf = [0u8; PAYLOAD];
        loop {
            // Untimed: if the parent dies, we die too (`tie` set PR_SET_PDEATHSIG).
            clean(ping.take_into(&mut buf)?, "take ping")?;
            clean(pong.put(&buf)?, "put pong")?;
            if u64::from_ne_bytes(buf) == STOP {
                return Ok(());
            }
        }
    }

    fn sleeper_setup(&self, shm: &mut ShmNames) -> Option<Res<SleeperSpec>> {
        let name = shm.fresh();
        Some(self.create(&name).map(|mvar| SleeperSpec {
            keep: Box::new(mvar),
            args: vec![name],
            stdin: None,
        }))
    }

    fn child_sleep(&self, args: &[String], ready: &mut dyn FnMut() -> Res<()>) -> Res<()> {
        let [name] = args else {
            return Err("expected one segment name".into());
        };
        let mvar = self.open(name)?;
        ready()?;
        // Nobody ever puts: blocks (in slices of at most 50 ms) until SIGKILLed.
        let mut buf = [0u8; PAYLOAD];
        clean(mvar.take_into(&mut buf)?, "take")?;
        Err("the sleepers' MVar was filled".into())
    }
}
