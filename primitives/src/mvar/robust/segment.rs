//! [`SharedMVar`]: the shared-memory MVar's handle — a [`Segment`] holding one
//! [`BoxState`](super::core::BoxState) and its two payload slots.

use super::core::{BoxState, Core, Flavor, Slots};
use crate::mvar::{Outcome, SharedMVarError};
use crate::shm::{Kind, Layout, Segment, ShmError, ShmName, Who, DEFAULT_PARTICIPANTS};
use crate::sync::time::{deadline_after, Duration};
use core::ptr::NonNull;

/// The payload slots in the segment: two runs of `stride` bytes after the state.
#[derive(Clone, Copy)]
struct SegSlots {
    base: NonNull<u8>,
    len: usize,
    stride: usize,
}

impl Slots for SegSlots {
    fn len(&self) -> usize {
        self.len
    }
    unsafe fn write(&self, i: usize, src: &[u8]) -> Result<(), super::core::Died> {
        debug_assert!(i < 2 && src.len() == self.len);
        // SAFETY: slot `i` lies inside the validated object area; the caller holds the lock, so
        // no one else accesses it; `src` is a distinct, private buffer.
        unsafe {
            core::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.base.as_ptr().add(i * self.stride),
                self.len,
            )
        };
        Ok(())
    }
    unsafe fn read(&self, i: usize, dst: &mut [u8]) {
        debug_assert!(i < 2 && dst.len() == self.len);
        // SAFETY: as in `write`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.base.as_ptr().add(i * self.stride),
                dst.as_mut_ptr(),
                self.len,
            )
        };
    }
}

/// An MVar of `payload_len`-byte values in a named shared-memory segment, usable from any
/// process that opens it, robust to any participant being killed at any instruction. See
/// [`super::core`] for the protocol, its state table and the recovery rules.
///
/// Every operation returns an [`Outcome`] whose `recovered` names a dead participant this call
/// took the box over from. `Clone` shares the mapping.
#[derive(Clone)]
pub struct SharedMVar {
    seg: Segment,
    flavor: Flavor,
}

impl core::fmt::Debug for SharedMVar {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedMVar")
            .field("name", self.seg.name())
            .field("payload_len", &self.payload_len())
            .field("full", &self.is_full())
            .finish()
    }
}

impl SharedMVar {
    /// Creates an empty shared MVar for `payload_len`-byte values (1 byte to 1 MiB).
    pub fn create(name: &ShmName, payload_len: usize) -> Result<SharedMVar, ShmError> {
        Self::create_with(name, payload_len, DEFAULT_PARTICIPANTS, Flavor::REFERENCE)
    }

    /// [`SharedMVar::create`] with a participant-table size and a protocol flavour (the
    /// negative controls use a broken one).
    pub fn create_with(
        name: &ShmName,
        payload_len: usize,
        participants: u32,
        flavor: Flavor,
    ) -> Result<SharedMVar, ShmError> {
        let params = [payload_len as u64, 0, 0, 0];
        let object_len = super::core::object_len(&params).ok_or_else(|| {
            ShmError::Invalid(format!(
                "payload length must be 1..={} bytes, not {payload_len}",
                super::core::MAX_PAYLOAD
            ))
        })?;
        let layout = Layout {
            kind: Kind::MVar,
            participants,
            params,
            object_len,
        };
        Ok(SharedMVar {
            seg: Segment::create(name, layout)?,
            flavor,
        })
    }

    /// Opens the shared MVar `name` (made by any process).
    pub fn open(name: &ShmName) -> Result<SharedMVar, ShmError> {
        Self::open_with(name, Flavor::REFERENCE)
    }

    /// Negative control "unvalidated header" (see [`Segment::open_unchecked`]).
    #[doc(hidden)]
    pub fn open_unchecked(name: &ShmName) -> Result<SharedMVar, ShmError> {
        Ok(SharedMVar {
            seg: Segment::open_unchecked(name, Kind::MVar, super::core::object_len)?,
            flavor: Flavor::REFERENCE,
        })
    }

    /// [`SharedMVar::open`] with a protocol flavour.
    pub fn open_with(name: &ShmName, flavor: Flavor) -> Result<SharedMVar, ShmError> {
        Ok(SharedMVar {
            seg: Segment::open_object(name, Kind::MVar, super::core::object_len)?,
            flavor,
        })
    }

    /// The segment (name, participants, unlink).
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Bytes per value.
    pub fn payload_len(&self) -> usize {
        self.seg.layout().params[0] as usize
    }

    fn core(&self) -> Core<'_, SegSlots> {
        let base = self.seg.object_ptr();
        let len = self.payload_len();
        // SAFETY: the object area starts with a 64-aligned BoxState (validated layout; any bit
        // pattern of its atomics is valid) and lives as long as `self.seg`.
        let st = unsafe { &*base.as_ptr().cast::<BoxState>() };
        Core {
            st,
            parts: self.seg.participants(),
            slots: SegSlots {
                // SAFETY: the slots follow the 64-byte state inside the object area.
                base: unsafe { NonNull::new_unchecked(base.as_ptr().add(64)) },
                len,
                stride: len.div_ceil(8) * 8,
            },
            flavor: self.flavor,
        }
    }

    /// Puts `value`, waiting while the box is full.
    pub fn put(&self, value: &[u8]) -> Result<Outcome<()>, SharedMVarError> {
        self.core().put(self.seg.me()?, value, None, false)
    }

    /// Puts unless the box is still full after `timeout`.
    pub fn put_timeout(
        &self,
        value: &[u8],
        timeout: Duration,
    ) -> Result<Outcome<()>, SharedMVarError> {
        self.core()
            .put(self.seg.me()?, value, deadline_after(timeout), false)
    }

    /// Puts if the box is empty ([`SharedMVarError::Full`] otherwise).
    pub fn try_put(&self, value: &[u8]) -> Result<Outcome<()>, SharedMVarError> {
        self.core().put(self.seg.me()?, value, None, true)
    }

    /// Takes the value into `dst`, waiting while the box is empty.
    pub fn take_into(&self, dst: &mut [u8]) -> Result<Outcome<()>, SharedMVarError> {
        self.core().take(self.seg.me()?, dst, None, false)
    }

    /// Takes the value, waiting while the box is empty.
    pub fn take(&self) -> Result<Outcome<Vec<u8>>, SharedMVarError> {
        let mut v = vec![0; self.payload_len()];
        let o = self.take_into(&mut v)?;
        Ok(Outcome {
            value: v,
            recovered: o.recovered,
        })
    }

    /// Takes unless the box is still empty after `timeout`.
    pub fn take_timeout(
        &self,
        dst: &mut [u8],
        timeout: Duration,
    ) -> Result<Outcome<()>, SharedMVarError> {
        self.core()
            .take(self.seg.me()?, dst, deadline_after(timeout), false)
    }

    /// Takes if the box is full ([`SharedMVarError::Empty`] otherwise).
    pub fn try_take(&self, dst: &mut [u8]) -> Result<Outcome<()>, SharedMVarError> {
        self.core().take(self.seg.me()?, dst, None, true)
    }

    /// Copies the value without taking it, waiting while the box is empty.
    pub fn read(&self, dst: &mut [u8]) -> Result<Outcome<()>, SharedMVarError> {
        self.core().read(self.seg.me()?, dst, None, false)
    }

    /// Copies the value if the box is full.
    pub fn try_read(&self, dst: &mut [u8]) -> Result<Outcome<()>, SharedMVarError> {
        self.core().read(self.seg.me()?, dst, None, true)
    }

    /// Replaces the value atomically (waiting while empty); the old one goes to `old`.
    pub fn swap(&self, new: &[u8], old: &mut [u8]) -> Result<Outcome<()>, SharedMVarError> {
        self.core().swap(self.seg.me()?, new, old, None)
    }

    /// Whether the box holds a value (a snapshot).
    pub fn is_full(&self) -> bool {
        self.core().is_full()
    }

    /// Commits so far: every put, take and swap that happened, including those of participants
    /// that died right after committing.
    pub fn generation(&self) -> u64 {
        self.core().generation()
    }

    /// Takeovers from dead lock holders so far (all participants).
    pub fn recoveries(&self) -> u64 {
        self.core().recoveries()
    }

    /// Advisory waiter counts `(takers and readers, putters)`.
    pub fn waiting(&self) -> (u32, u32) {
        self.core().waiting()
    }

    /// `(sleeps, late wake-ups)` of all participants so far: a late wake-up is a sleep that ended
    /// by its slice running out although the box had become ready meanwhile — a wake-up that
    /// never arrived (expected only when a waker died between its commit and its wake, or a
    /// woken waiter died; the "private futex" control makes almost every cross-process sleep
    /// one).
    pub fn sleep_stats(&self) -> (u64, u64) {
        self.core().sleep_stats()
    }

    /// Who holds the box's internal lock now, and whether they are alive.
    pub fn lock_holder(&self) -> Option<(Who, bool)> {
        let c = self.core();
        match c.lock_owner() {
            0 => None,
            t => Some((c.parts.who(t), !c.parts.is_dead(t))),
        }
    }

    /// Frees the participant slots (and waiter counts) of dead participants now.
    pub fn reap(&self) -> Vec<Who> {
        self.core().reap()
    }
}

/// Bytes of a [`WordMVar`]'s payload.
pub const WORD_PAYLOAD: usize = core::mem::size_of::<u64>();

/// A [`SharedMVar`] of `u64` values (an 8-byte payload in native byte order): the robust MVar
/// under the public [`MVarApi`](crate::traits::MVarApi), so the scenario catalogue runs on it.
/// `Clone` shares the mapping.
#[derive(Clone, Debug)]
pub struct WordMVar {
    inner: SharedMVar,
}

impl WordMVar {
    /// Creates an empty MVar of `u64` values in a new segment `name`.
    pub fn create(name: &ShmName) -> Result<WordMVar, ShmError> {
        SharedMVar::create(name, WORD_PAYLOAD).map(|inner| WordMVar { inner })
    }

    /// Wraps a shared MVar whose payload is 8 bytes.
    pub fn from_shared(inner: SharedMVar) -> Result<WordMVar, ShmError> {
        match inner.payload_len() {
            WORD_PAYLOAD => Ok(WordMVar { inner }),
            n => Err(ShmError::Invalid(format!(
                "a WordMVar needs {WORD_PAYLOAD}-byte values, this MVar holds {n}-byte ones"
            ))),
        }
    }

    /// The shared MVar underneath (recoveries, generation, the segment).
    pub fn shared(&self) -> &SharedMVar {
        &self.inner
    }
}

/// What an operation's error means under the trait: `Err(())` for "not now" (full, empty, timed
/// out — the trait gives the value back); anything else is a broken run and panics with it, as a
/// scenario does on a broken invariant.
fn not_now(r: Result<Outcome<()>, SharedMVarError>) -> Result<(), ()> {
    match r {
        Ok(_) => Ok(()),
        Err(SharedMVarError::Full | SharedMVarError::Empty | SharedMVarError::Timeout) => Err(()),
        Err(e) => panic!("{e}"),
    }
}

impl crate::traits::MVarApi<u64> for WordMVar {
    fn put(&self, value: u64) {
        if let Err(e) = self.inner.put(&value.to_ne_bytes()) {
            panic!("{e}");
        }
    }

    fn take(&self) -> u64 {
        let mut b = [0; WORD_PAYLOAD];
        if let Err(e) = self.inner.take_into(&mut b) {
            panic!("{e}");
        }
        u64::from_ne_bytes(b)
    }

    fn try_put(&self, value: u64) -> Result<(), u64> {
        not_now(self.inner.try_put(&value.to_ne_bytes())).map_err(|()| value)
    }

    fn try_take(&self) -> Option<u64> {
        let mut b = [0; WORD_PAYLOAD];
        not_now(self.inner.try_take(&mut b)).ok()?;
        Some(u64::from_ne_bytes(b))
    }

    fn put_timeout(&self, value: u64, timeout: Duration) -> Result<(), u64> {
        not_now(self.inner.put_timeout(&value.to_ne_bytes(), timeout)).map_err(|()| value)
    }

    fn take_timeout(&self, timeout: Duration) -> Option<u64> {
        let mut b = [0; WORD_PAYLOAD];
        not_now(self.inner.take_timeout(&mut b, timeout)).ok()?;
        Some(u64::from_ne_bytes(b))
    }

    fn capabilities(&self) -> crate::traits::MVarCaps {
        crate::traits::MVarCaps {
            read_swap: true,
            fifo: false,
        }
    }

    fn read(&self) -> u64 {
        let mut b = [0; WORD_PAYLOAD];
        if let Err(e) = self.inner.read(&mut b) {
            panic!("{e}");
        }
        u64::from_ne_bytes(b)
    }

    fn try_read(&self) -> Option<u64> {
        let mut b = [0; WORD_PAYLOAD];
        not_now(self.inner.try_read(&mut b)).ok()?;
        Some(u64::from_ne_bytes(b))
    }

    fn swap(&self, value: u64) -> u64 {
        let mut b = [0; WORD_PAYLOAD];
        if let Err(e) = self.inner.swap(&value.to_ne_bytes(), &mut b) {
            panic!("{e}");
        }
        u64::from_ne_bytes(b)
    }
}
