//! The shared MVar's protocol in ordinary memory, for loom and shuttle: the same
//! [`Core`](super::core::Core) code as the segment home, with participants that can *die* — stop
//! forever at any [`crash_point`](crate::shm::crash_point) of an operation.
//!
//! Payloads are 8 bytes, copied in two halves with a crash point between them, so a death in
//! the middle of a copy is explored too; the halves live in the engine's `UnsafeCell`s, so a
//! slot read while another participant writes it is reported as a data race.

use super::core::{die_if_due, BoxState, Core, Died, Flavor, Slots};
use crate::mvar::{Outcome, SharedMVarError};
use crate::shm::{Participants, Slot, TableFull, Token};
use crate::sync::time::Instant;
use crate::sync::UnsafeCell;

/// Payload length of the model MVar.
pub const MODEL_PAYLOAD: usize = 8;
const HALF: usize = MODEL_PAYLOAD / 2;

/// Two payload slots of two halves each.
#[derive(Debug)]
struct CellSlots {
    halves: [[UnsafeCell<[u8; HALF]>; 2]; 2],
}

// SAFETY: the cells are only accessed through `Slots`, whose callers hold the box's lock, which
// serialises every access (and the model engines check that it does).
unsafe impl Sync for CellSlots {}
// SAFETY: as above; the cells own plain bytes.
unsafe impl Send for CellSlots {}

impl Slots for &CellSlots {
    fn len(&self) -> usize {
        MODEL_PAYLOAD
    }
    unsafe fn write(&self, i: usize, src: &[u8]) -> Result<(), Died> {
        for (h, cell) in self.halves[i].iter().enumerate() {
            // SAFETY: the caller holds the box's lock, so nobody else touches the slot.
            cell.with_mut(|p| unsafe { (*p).copy_from_slice(&src[h * HALF..(h + 1) * HALF]) });
            if h == 0 {
                die_if_due()?;
            }
        }
        Ok(())
    }
    unsafe fn read(&self, i: usize, dst: &mut [u8]) {
        for (h, cell) in self.halves[i].iter().enumerate() {
            // SAFETY: as in `write`.
            cell.with(|p| dst[h * HALF..(h + 1) * HALF].copy_from_slice(unsafe { &*p }));
        }
    }
}

/// A shared MVar whose "segment" is an ordinary allocation (share it with an `Arc`).
#[derive(Debug)]
pub struct ModelMVar {
    st: BoxState,
    slots: Vec<Slot>,
    cells: CellSlots,
    flavor: Flavor,
}

impl ModelMVar {
    /// An empty box with `participants` slots, running `flavor`.
    pub fn new(participants: usize, flavor: Flavor) -> Self {
        let cell = || UnsafeCell::new([0u8; HALF]);
        ModelMVar {
            st: BoxState::default(),
            slots: (0..participants).map(|_| Slot::new()).collect(),
            cells: CellSlots {
                halves: [[cell(), cell()], [cell(), cell()]],
            },
            flavor,
        }
    }

    fn core(&self) -> Core<'_, &CellSlots> {
        Core {
            st: &self.st,
            parts: Participants::new(&self.slots),
            slots: &self.cells,
            flavor: self.flavor,
        }
    }

    /// Joins as a participant (one per model thread).
    pub fn join(&self) -> Result<Token, TableFull> {
        Participants::new(&self.slots).claim(false)
    }

    /// `put` by participant `me` (`try_only`: fail instead of waiting).
    pub fn put(
        &self,
        me: Token,
        v: u64,
        deadline: Option<Instant>,
        try_only: bool,
    ) -> Result<Outcome<()>, SharedMVarError> {
        self.core().put(me, &v.to_le_bytes(), deadline, try_only)
    }

    /// `take` by participant `me`.
    pub fn take(
        &self,
        me: Token,
        deadline: Option<Instant>,
        try_only: bool,
    ) -> Result<Outcome<u64>, SharedMVarError> {
        let mut b = [0u8; MODEL_PAYLOAD];
        let o = self.core().take(me, &mut b, deadline, try_only)?;
        Ok(Outcome {
            value: u64::from_le_bytes(b),
            recovered: o.recovered,
        })
    }

    /// `read` by participant `me`.
    pub fn read(&self, me: Token, try_only: bool) -> Result<Outcome<u64>, SharedMVarError> {
        let mut b = [0u8; MODEL_PAYLOAD];
        let o = self.core().read(me, &mut b, None, try_only)?;
        Ok(Outcome {
            value: u64::from_le_bytes(b),
            recovered: o.recovered,
        })
    }

    /// `swap` by participant `me`: returns the old value.
    pub fn swap(&self, me: Token, v: u64) -> Result<Outcome<u64>, SharedMVarError> {
        let mut b = [0u8; MODEL_PAYLOAD];
        let o = self.core().swap(me, &v.to_le_bytes(), &mut b, None)?;
        Ok(Outcome {
            value: u64::from_le_bytes(b),
            recovered: o.recovered,
        })
    }

    /// Participant `me` died: mark it and wake every sleeper (what a slice does for real).
    pub fn announce_death(&self, me: Token) {
        self.core().announce_death(me);
    }

    /// Commits so far.
    pub fn generation(&self) -> u64 {
        self.core().generation()
    }

    /// Whether the box is full.
    pub fn is_full(&self) -> bool {
        self.core().is_full()
    }

    /// Takeovers from dead owners so far.
    pub fn recoveries(&self) -> u64 {
        self.core().recoveries()
    }
}
