//! The shared client table of `torture churn` (MIDAS's ODB client list): a fixed array of
//! entries in a shared-memory segment ([`Kind::Table`]), read and written only under the
//! table lock (a [`primitives::lock::SharedReentrantLock`] of its own segment). Fields are
//! atomics so that the runner can read a snapshot without the lock (for a report) without a
//! data race; under the lock they are plain `Relaxed` loads and stores.
//!
//! ## Layout (object area; all zero = empty table)
//! | part | size | what |
//! |---|---|---|
//! | header | 64 B | `capacity`, counters: registered, deleted by their owner, removed by a watchdog, repaired |
//! | entries | `capacity` × 64 B | [`Entry`] |
//! | tick costs | (`capacity` + 1) × 16 B | per number of entries checked `n`: watchdog ticks, total ns |
//!
//! ## Handles
//! A handle is `(slot, serial)`. Every registration and every deletion bumps the slot's serial,
//! so a handle to a deleted client never matches the slot again, even when a new client got
//! the same slot: [`Table::get`] validates it. MIDAS's `cm_exist` race was exactly a handle
//! used after its client was deleted (and the slot reused) — the `churn-stale-handle` control.
//!
//! ## Crash safety
//! A client can be killed at any instruction, also while it holds the table lock halfway
//! through a registration; the next holder is told (the lock's recovery) and calls
//! [`Table::repair`]: a registration is written as `CLAIMING` (with the claimant's pid and
//! start time) first and only then `ALIVE`, so a half-done one is recognisable and freed; a
//! deletion is a single store of `FREE` plus serial bump (the serial is bumped first: a torn
//! deletion leaves a slot whose stale handles already fail).

use primitives::shm::identity::Identity;
use primitives::shm::{Kind, Layout, Segment, ShmError, ShmName};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Entry states.
pub const FREE: u32 = 0;
/// A registration is being written.
pub const CLAIMING: u32 = 1;
/// A registered client.
pub const ALIVE: u32 = 2;

const HEADER_LEN: u64 = 64;
const ENTRY_LEN: u64 = 64;
const TICK_LEN: u64 = 16;
/// The largest table.
pub const MAX_CAPACITY: u64 = 4096;

/// One client's entry.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct Entry {
    /// [`FREE`], [`CLAIMING`] or [`ALIVE`].
    pub state: AtomicU32,
    /// The client's pid.
    pub pid: AtomicU32,
    /// The client process's start time (with the pid: its identity).
    pub pid_start: AtomicU64,
    /// The client's id (its worker id: unique over the run).
    pub client: AtomicU64,
    /// Bumped at every registration and deletion of this slot.
    pub serial: AtomicU64,
    /// Who deleted the last client of this slot: a client id, or 0 for its owner / the runner.
    pub deleted_by: AtomicU64,
    /// The serial the last deleter's handle had (≠ the deleted serial: a stale handle).
    pub deleted_handle: AtomicU64,
    /// When the client last proved it was alive (CLOCK_MONOTONIC ns).
    pub heartbeat: AtomicU64,
}

#[repr(C, align(64))]
#[derive(Debug, Default)]
struct Header {
    capacity: AtomicU64,
    registered: AtomicU64,
    left: AtomicU64,
    removed: AtomicU64,
    repaired: AtomicU64,
}

#[repr(C)]
#[derive(Debug, Default)]
struct TickCost {
    ticks: AtomicU64,
    ns: AtomicU64,
}

/// A handle to a registered client: valid while the slot's serial is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle {
    /// The slot.
    pub slot: usize,
    /// The slot's serial at registration.
    pub serial: u64,
}

/// One entry as the watchdog snapshots it.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    /// The entry's handle.
    pub handle: Handle,
    /// Its client.
    pub client: u64,
    /// Its process.
    pub who: Identity,
}

/// Object length for `params[0]` entries.
pub fn object_len(params: &[u64; 4]) -> Option<u64> {
    let n = params[0];
    if n == 0 || n > MAX_CAPACITY || params[1..].iter().any(|&p| p != 0) {
        return None;
    }
    Some(HEADER_LEN + n * ENTRY_LEN + (n + 1) * TICK_LEN)
}

/// The table, mapped.
pub struct Table {
    seg: Segment,
    capacity: usize,
}

impl Table {
    /// Creates table `name` with `capacity` entries.
    pub fn create(name: &ShmName, capacity: usize, participants: u32) -> Result<Table, ShmError> {
        let params = [capacity as u64, 0, 0, 0];
        let object_len = object_len(&params)
            .ok_or_else(|| ShmError::Invalid(format!("a table of {capacity} entries")))?;
        let seg = Segment::create(
            name,
            Layout {
                kind: Kind::Table,
                participants,
                params,
                object_len,
            },
        )?;
        let t = Table { seg, capacity };
        t.header().capacity.store(capacity as u64, Relaxed);
        Ok(t)
    }

    /// Opens table `name` (its header and size checked).
    pub fn open(name: &ShmName) -> Result<Table, ShmError> {
        let seg = Segment::open_object(name, Kind::Table, object_len)?;
        let capacity = seg.layout().params[0] as usize;
        Ok(Table { seg, capacity })
    }

    /// Its segment.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    fn header(&self) -> &Header {
        // SAFETY: the object area is at least HEADER_LEN bytes (object_len), 64-aligned, lives
        // as long as the segment, and Header is atomics only (valid for any bytes).
        unsafe { &*self.seg.object_ptr().as_ptr().cast::<Header>() }
    }

    /// Entry `slot` (< capacity).
    pub fn entry(&self, slot: usize) -> &Entry {
        assert!(slot < self.capacity);
        // SAFETY: in bounds (checked), 64-aligned, atomics only; see `header`.
        unsafe {
            &*self
                .seg
                .object_ptr()
                .as_ptr()
                .add((HEADER_LEN + slot as u64 * ENTRY_LEN) as usize)
                .cast::<Entry>()
        }
    }

    fn tick_cost(&self, n: usize) -> &TickCost {
        let n = n.min(self.capacity);
        let off = HEADER_LEN + self.capacity as u64 * ENTRY_LEN + n as u64 * TICK_LEN;
        // SAFETY: n <= capacity, so inside the object area; 16-aligned; atomics only.
        unsafe {
            &*self
                .seg
                .object_ptr()
                .as_ptr()
                .add(off as usize)
                .cast::<TickCost>()
        }
    }

    /// Entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Registers the calling process as `client` (call under the table lock): the first free
    /// slot, written `CLAIMING` then `ALIVE`. `None`: the table is full.
    pub fn register(&self, client: u64, now_ns: u64) -> Option<Handle> {
        let me = Identity::current_process();
        let slot = (0..self.capacity).find(|&s| self.entry(s).state.load(Relaxed) == FREE)?;
        let e = self.entry(slot);
        e.pid.store(me.pid, Relaxed);
        e.pid_start.store(me.pid_start, Relaxed);
        e.state.store(CLAIMING, Relaxed);
        e.client.store(client, Relaxed);
        e.heartbeat.store(now_ns, Relaxed);
        let serial = e.serial.load(Relaxed) + 1;
        e.serial.store(serial, Relaxed);
        e.state.store(ALIVE, Relaxed);
        self.header().registered.fetch_add(1, Relaxed);
        Some(Handle { slot, serial })
    }

    /// The entry `h` designates, if it still does (call under the table lock).
    pub fn get(&self, h: Handle) -> Option<&Entry> {
        let e = self.entry(h.slot);
        (e.state.load(Relaxed) == ALIVE && e.serial.load(Relaxed) == h.serial).then_some(e)
    }

    /// Deletes the client in `h`'s slot (call under the table lock). `by`: the deleting
    /// client's id (0: the client itself). With `validate`, a stale handle deletes nothing
    /// (`false`); without — the control — whatever client is in the slot now is deleted.
    pub fn delete(&self, h: Handle, by: u64, validate: bool) -> bool {
        let e = self.entry(h.slot);
        if e.state.load(Relaxed) != ALIVE || (validate && e.serial.load(Relaxed) != h.serial) {
            return false;
        }
        e.serial.fetch_add(1, Relaxed);
        e.deleted_by.store(by, Relaxed);
        e.deleted_handle.store(h.serial, Relaxed);
        e.state.store(FREE, Relaxed);
        let counter = if by == 0 {
            &self.header().left
        } else {
            &self.header().removed
        };
        counter.fetch_add(1, Relaxed);
        true
    }

    /// Every registered client but `me` (call under the table lock): O(capacity).
    pub fn snapshot(&self, me: u64) -> Vec<Seen> {
        (0..self.capacity)
            .filter_map(|slot| {
                let e = self.entry(slot);
                let client = e.client.load(Relaxed);
                (e.state.load(Relaxed) == ALIVE && client != me).then(|| Seen {
                    handle: Handle {
                        slot,
                        serial: e.serial.load(Relaxed),
                    },
                    client,
                    who: identity(e),
                })
            })
            .collect()
    }

    /// Frees registrations cut short by a dead claimant (call under the table lock, after
    /// taking it over from a dead holder). Returns how many.
    pub fn repair(&self) -> usize {
        let mut n = 0;
        for slot in 0..self.capacity {
            let e = self.entry(slot);
            if e.state.load(Relaxed) == CLAIMING && !identity(e).is_alive() {
                e.serial.fetch_add(1, Relaxed);
                e.deleted_by.store(0, Relaxed);
                e.state.store(FREE, Relaxed);
                n += 1;
            }
        }
        self.header().repaired.fetch_add(n as u64, Relaxed);
        n
    }

    /// Adds one watchdog tick that checked `n` entries in `ns`.
    pub fn add_tick(&self, n: usize, ns: u64) {
        let t = self.tick_cost(n);
        t.ticks.fetch_add(1, Relaxed);
        t.ns.fetch_add(ns, Relaxed);
    }

    /// `(n, ticks, total ns)` for every `n` some tick checked.
    pub fn tick_costs(&self) -> Vec<(usize, u64, u64)> {
        (0..=self.capacity)
            .filter_map(|n| {
                let t = self.tick_cost(n);
                let ticks = t.ticks.load(Relaxed);
                (ticks > 0).then(|| (n, ticks, t.ns.load(Relaxed)))
            })
            .collect()
    }

    /// `(registered, left by their owner, removed by a watchdog, repaired)`.
    pub fn counters(&self) -> (u64, u64, u64, u64) {
        let h = self.header();
        (
            h.registered.load(Relaxed),
            h.left.load(Relaxed),
            h.removed.load(Relaxed),
            h.repaired.load(Relaxed),
        )
    }
}

/// The identity of an entry's process.
pub fn identity(e: &Entry) -> Identity {
    Identity {
        pid: e.pid.load(Relaxed),
        tid: 0,
        pid_start: e.pid_start.load(Relaxed),
        tid_start: 0,
    }
}
