//! In-process kinds (two threads): this crate's `MVar`, std `Mutex` + `Condvar` MVar,
//! `crossbeam_channel` `bounded(1)` pair, parking_lot `Mutex` + `Condvar` MVar. The MVars have the same shape
//! as the pthread one: one mutex, "not full" and "not empty" condition variables, a full
//! flag and a `u64` payload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::kinds::{EchoLoop, ParentSide, ThreadKind, ThreadSleepers, STOP};
use crate::sys::Res;

/// The parent waits in slices of this length and checks the echo thread between slices.
const SLICE: Duration = Duration::from_millis(100);
/// How long waking sleepers may take before they are left detached.
const WAKE_LIMIT: Duration = Duration::from_secs(5);

/// `peer_alive`: `None` waits indefinitely; `Some` waits in slices and gives up once false.
type Alive<'a> = Option<&'a dyn Fn() -> bool>;

fn gone() -> crate::sys::Error {
    "the peer thread is gone".into()
}

#[derive(Default)]
struct Slot {
    full: bool,
    v: u64,
}

/// A blocking one-slot box; the MVar operations the kinds need.
trait MVarOps: Send + Sync + 'static {
    fn put(&self, v: u64, peer_alive: Alive) -> Res<()>;
    fn take(&self, peer_alive: Alive) -> Res<u64>;
}

#[derive(Default)]
struct StdImpl {
    slot: std::sync::Mutex<Slot>,
    not_full: std::sync::Condvar,
    not_empty: std::sync::Condvar,
}

impl StdImpl {
    fn wait<'a>(
        cv: &std::sync::Condvar,
        g: std::sync::MutexGuard<'a, Slot>,
        peer_alive: Alive,
    ) -> Res<std::sync::MutexGuard<'a, Slot>> {
        match peer_alive {
            None => cv.wait(g).map_err(|_| "poisoned".into()),
            Some(alive) => {
                let (g, t) = cv.wait_timeout(g, SLICE).map_err(|_| "poisoned")?;
                if t.timed_out() && !alive() {
                    return Err(gone());
                }
                Ok(g)
            }
        }
    }
}

impl MVarOps for StdImpl {
    fn put(&self, v: u64, peer_alive: Alive) -> Res<()> {
        let mut g = self.slot.lock().map_err(|_| "poisoned")?;
        while g.full {
            g = Self::wait(&self.not_full, g, peer_alive)?;
        }
        *g = Slot { full: true, v };
        self.not_empty.notify_one();
        Ok(())
    }

    fn take(&self, peer_alive: Alive) -> Res<u64> {
        let mut g = self.slot.lock().map_err(|_| "poisoned")?;
        while !g.full {
            g = Self::wait(&self.not_empty, g, peer_alive)?;
        }
        g.full = false;
        self.not_full.notify_one();
        Ok(g.v)
    }
}

#[derive(Default)]
struct PlImpl {
    slot: parking_lot::Mutex<Slot>,
    not_full: parking_lot::Condvar,
    not_empty: parking_lot::Condvar,
}

impl PlImpl {
    fn wait(
        cv: &parking_lot::Condvar,
        g: &mut parking_lot::MutexGuard<'_, Slot>,
        peer_alive: Alive,
    ) -> Res<()> {
        match peer_alive {
            None => cv.wait(g),
            Some(alive) => {
                if cv.wait_for(g, SLICE).timed_out() && !alive() {
                    return Err(gone());
                }
            }
        }
        Ok(())
    }
}

impl MVarOps for PlImpl {
    fn put(&self, v: u64, peer_alive: Alive) -> Res<()> {
        let mut g = self.slot.lock();
        while g.full {
            Self::wait(&self.not_full, &mut g, peer_alive)?;
        }
        *g = Slot { full: true, v };
        self.not_empty.notify_one();
        Ok(())
    }

    fn take(&self, peer_alive: Alive) -> Res<u64> {
        let mut g = self.slot.lock();
        while !g.full {
            Self::wait(&self.not_empty, &mut g, peer_alive)?;
        }
        g.full = false;
        self.not_full.notify_one();
        Ok(g.v)
    }
}

struct MVarParent<M> {
    ping: Arc<M>,
    pong: Arc<M>,
}

impl<M: MVarOps> ParentSide for MVarParent<M> {
    fn round_trip(&mut self, v: u64, peer_alive: &dyn Fn() -> bool) -> Res<u64> {
        self.ping.put(v, Some(peer_alive))?;
        self.pong.take(Some(peer_alive))
    }
}

fn mvar_setup<M: MVarOps + Default>() -> (Box<dyn ParentSide>, EchoLoop) {
    let (ping, pong) = (Arc::new(M::default()), Arc::new(M::default()));
    let parent = MVarParent {
        ping: Arc::clone(&ping),
        pong: Arc::clone(&pong),
    };
    let echo: EchoLoop = Box::new(move || loop {
        let v = ping.take(None)?;
        pong.put(v, None)?;
        if v == STOP {
            return Ok(());
        }
    });
    (Box::new(parent), echo)
}

/// Sleepers for an MVar kind: all block in `take` on one MVar that nobody fills.
struct MVarSleepers<M> {
    mvar: Arc<M>,
}

impl<M: MVarOps> ThreadSleepers for MVarSleepers<M> {
    fn blocker(&self) -> Box<dyn FnOnce() + Send> {
        let mvar = Arc::clone(&self.mvar);
        Box::new(move || {
            let _ = mvar.take(None);
        })
    }

    fn wake_all(&mut self, n: usize) -> bool {
        let limit = Instant::now() + WAKE_LIMIT;
        let in_time = || Instant::now() < limit;
        (0..n).all(|_| self.mvar.put(0, Some(&in_time)).is_ok())
    }
}

/// This crate's in-process `MVar` (FIFO service, direct hand-off).
struct OursImpl(primitives::MVar<u64>);

impl Default for OursImpl {
    fn default() -> Self {
        OursImpl(primitives::MVar::new_empty())
    }
}

impl MVarOps for OursImpl {
    fn put(&self, v: u64, peer_alive: Alive) -> Res<()> {
        match peer_alive {
            None => {
                self.0.put(v);
                Ok(())
            }
            Some(alive) => {
                let mut v = v;
                loop {
                    match self.0.put_timeout(v, SLICE) {
                        Ok(()) => return Ok(()),
                        Err(e) if alive() => v = e.into_inner(),
                        Err(_) => return Err(gone()),
                    }
                }
            }
        }
    }

    fn take(&self, peer_alive: Alive) -> Res<u64> {
        match peer_alive {
            None => Ok(self.0.take()),
            Some(alive) => loop {
                match self.0.take_timeout(SLICE) {
                    Ok(v) => return Ok(v),
                    Err(_) if alive() => {}
                    Err(_) => return Err(gone()),
                }
            },
        }
    }
}

/// This crate's in-process `MVar`.
pub struct OursMVar;

impl ThreadKind for OursMVar {
    fn label(&self) -> &'static str {
        "ours: MVar (in-process)"
    }

    fn setup(&self) -> (Box<dyn ParentSide>, EchoLoop) {
        mvar_setup::<OursImpl>()
    }

    fn sleepers(&self) -> Option<Box<dyn ThreadSleepers>> {
        Some(Box::new(MVarSleepers {
            mvar: Arc::new(OursImpl::default()),
        }))
    }
}

/// std `Mutex` + `Condvar` MVar.
pub struct StdMVar;

impl ThreadKind for StdMVar {
    fn label(&self) -> &'static str {
        "std Mutex+Condvar MVar"
    }

    fn setup(&self) -> (Box<dyn ParentSide>, EchoLoop) {
        mvar_setup::<StdImpl>()
    }

    fn sleepers(&self) -> Option<Box<dyn ThreadSleepers>> {
        Some(Box::new(MVarSleepers {
            mvar: Arc::new(StdImpl::default()),
        }))
    }
}

/// parking_lot `Mutex` + `Condvar` MVar.
pub struct ParkingLotMVar;

impl ThreadKind for ParkingLotMVar {
    fn label(&self) -> &'static str {
        "parking_lot Mutex+Condvar MVar"
    }

    fn setup(&self) -> (Box<dyn ParentSide>, EchoLoop) {
        mvar_setup::<PlImpl>()
    }

    fn sleepers(&self) -> Option<Box<dyn ThreadSleepers>> {
        Some(Box::new(MVarSleepers {
            mvar: Arc::new(PlImpl::default()),
        }))
    }
}

/// `crossbeam_channel::bounded(1)` pair (ping, pong).
pub struct CrossbeamBounded1;

struct ChannelParent {
    ping: Sender<u64>,
    pong: Receiver<u64>,
}

impl ParentSide for ChannelParent {
    fn round_trip(&mut self, v: u64, peer_alive: &dyn Fn() -> bool) -> Res<u64> {
        // The echo thread holds the other ends: if it is gone, these fail (disconnected).
        self.ping.send(v).map_err(|_| gone())?;
        loop {
            match self.pong.recv_timeout(SLICE) {
                Ok(v) => return Ok(v),
                Err(RecvTimeoutError::Timeout) if peer_alive() => {}
                Err(_) => return Err(gone()),
            }
        }
    }
}

struct ChannelSleepers {
    tx: Option<Sender<u64>>,
    rx: Receiver<u64>,
}

impl ThreadSleepers for ChannelSleepers {
    fn blocker(&self) -> Box<dyn FnOnce() + Send> {
        let rx = self.rx.clone();
        Box::new(move || {
            let _ = rx.recv();
        })
    }

    fn wake_all(&mut self, _n: usize) -> bool {
        // Disconnecting wakes every receiver.
        self.tx = None;
        true
    }
}

impl ThreadKind for CrossbeamBounded1 {
    fn label(&self) -> &'static str {
        "crossbeam bounded(1) pair"
    }

    fn setup(&self) -> (Box<dyn ParentSide>, EchoLoop) {
        let (ping_tx, ping_rx) = crossbeam_channel::bounded(1);
        let (pong_tx, pong_rx) = crossbeam_channel::bounded(1);
        let echo: EchoLoop = Box::new(move || loop {
            let v: u64 = ping_rx.recv()?;
            pong_tx.send(v)?;
            if v == STOP {
                return Ok(());
            }
        });
        let parent = ChannelParent {
            ping: ping_tx,
            pong: pong_rx,
        };
        (Box::new(parent), echo)
    }

    fn sleepers(&self) -> Option<Box<dyn ThreadSleepers>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        Some(Box::new(ChannelSleepers { tx: Some(tx), rx }))
    }
}
