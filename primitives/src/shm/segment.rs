//! A named POSIX shared-memory segment: create (`O_CREAT|O_EXCL`, mode 0600), open, validate,
//! unlink. See the module docs of [`crate::shm`] for the layout.

use super::header::{
    check_object_len, decode_header, encode_header, HeaderInfo, Layout, ObjectLen, HEADER_LEN,
    MAX_SEGMENT_LEN, OFF_JOINS, OFF_READY, READY, READY_WAIT,
};
use super::participants::{Participants, Slot, Token, Who, MAX_PARTICIPANTS};
use super::{Kind, ShmError, ShmName};
use crate::sync::atomic::{AtomicU32, Ordering};
use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, munmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::{fstat, Mode};
use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;

static NEXT_NONCE: crate::sync::BookAtomicU64 = crate::sync::BookAtomicU64::new(1);

thread_local! {
    /// (mapping nonce, token) of the participant slots this thread holds.
    static MY_TOKENS: RefCell<Vec<(u64, Token)>> = const { RefCell::new(Vec::new()) };
}

/// One process's mapping of a segment. Unmapped when the last [`Segment`] clone is dropped.
#[derive(Debug)]
struct Mapping {
    name: ShmName,
    base: NonNull<u8>,
    len: usize,
    layout: Layout,
    nonce: u64,
    /// Tokens claimed through this mapping (released on drop).
    tokens: crate::sync::BookMutex<Vec<Token>>,
    unlink_on_drop: crate::sync::BookAtomicBool,
    /// Keeps the descriptor for `fstat` identity checks.
    _fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory; every access to it goes through atomics or through
// the objects' own locking protocols, so it may be used from any thread.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

/// A mapped segment (cheap to clone; all clones share one mapping).
#[derive(Clone, Debug)]
pub struct Segment {
    inner: crate::sync::BookArc<Mapping>,
}

/// Reserves the pages of a fresh segment of `len` bytes, so that a full `/dev/shm` is an error
/// here and not a `SIGBUS` in whichever participant first touches an unbacked page. tmpfs
/// supports `fallocate`; where the filesystem does not (`EOPNOTSUPP`, `EINVAL`), one byte per
/// page is written instead (`pwrite` reports `ENOSPC` where a store to the mapping would fault).
fn reserve(fd: &OwnedFd, len: u64) -> Result<(), ShmError> {
    let no_space = || {
        ShmError::Invalid(format!(
            "no space in /dev/shm for a segment of {len} bytes (ENOSPC); free or enlarge /dev/shm"
        ))
    };
    let reserved = loop {
        match nix::fcntl::posix_fallocate(fd, 0, len as libc::off_t) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    match reserved {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ENOSPC) => Err(no_space()),
        Err(nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::EINVAL) => {
            use std::os::unix::fs::FileExt;
            let file = std::fs::File::from(fd.try_clone().map_err(|e| {
                ShmError::Os(
                    "dup",
                    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                )
            })?);
            // A stride of the smallest page size touches every page whatever the real size is.
            for off in (0..len).step_by(4096) {
                match file.write_at(&[0], off) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Err(no_space()),
                    Err(e) => {
                        let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
                        return Err(ShmError::Os("pwrite", errno));
                    }
                }
            }
            Ok(())
        }
        Err(e) => Err(ShmError::Os("posix_fallocate", e)),
    }
}

fn map(fd: &OwnedFd, len: usize) -> Result<NonNull<u8>, ShmError> {
    let len = NonZeroUsize::new(len).ok_or(ShmError::Truncated { len: 0, needed: 1 })?;
    // SAFETY: a fresh shared mapping of a descriptor we own; never PROT_EXEC; the address is
    // chosen by the kernel, so no existing memory is replaced.
    let p = unsafe {
        mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )
    }
    .map_err(|e| ShmError::Os("mmap", e))?;
    Ok(p.cast())
}

impl Segment {
    /// Creates a new segment `name` for `layout` (fails if the name exists) and claims a
    /// process-level participant slot in it.
    pub fn create(name: &ShmName, layout: Layout) -> Result<Segment, ShmError> {
        if layout.participants == 0 || layout.participants > MAX_PARTICIPANTS {
            return Err(ShmError::Invalid(format!(
                "participants must be 1..={MAX_PARTICIPANTS}, not {}",
                layout.participants
            )));
        }
        if layout.total_len() > MAX_SEGMENT_LEN {
            return Err(ShmError::Invalid(format!(
                "segment of {} bytes is too large",
                layout.total_len()
            )));
        }
        let fd = shm_open(
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .map_err(|e| match e {
            nix::errno::Errno::EEXIST => ShmError::Exists(name.clone()),
            e => ShmError::Os("shm_open", e),
        })?;
        let created = (|| {
            nix::unistd::ftruncate(&fd, layout.total_len() as i64)
                .map_err(|e| ShmError::Os("ftruncate", e))?;
            reserve(&fd, layout.total_len())?;
            let base = map(&fd, layout.total_len() as usize)?;
            Ok::<_, ShmError>(base)
        })();
        let base = match created {
            Ok(b) => b,
            Err(e) => {
                let _ = shm_unlink(name.as_str());
                return Err(e);
            }
        };
        let header = encode_header(&layout);
        // SAFETY: the mapping is at least HEADER_LEN bytes (total_len > HEADER_LEN) and nobody
        // else can have validated it yet (READY is still 0), so this write races with no reader
        // that trusts it.
        unsafe { core::ptr::copy_nonoverlapping(header.as_ptr(), base.as_ptr(), HEADER_LEN) };
        let seg = Segment::from_parts(name.clone(), base, layout, fd);
        // Zero-filled memory is the initial state of every object (free locks, empty boxes,
        // free slots), so the segment is ready as soon as the header is written.
        seg.ready_word().store(READY, Ordering::Release);
        seg.attach()?;
        Ok(seg)
    }

    /// Opens the existing segment `name`, which must hold a `kind` object; checks its header
    /// (magic, version, kind, checksum, sizes against the file's length) and claims a
    /// process-level participant slot. The object's own parameters are not checked: an object
    /// opens its segment with [`Segment::open_object`].
    pub fn open(name: &ShmName, kind: Kind) -> Result<Segment, ShmError> {
        Self::open_as(name, kind, None, true)
    }

    /// [`Segment::open`] for the object that knows its size formula: `object_len` maps the
    /// header's parameters to the object area's length (`None`: invalid), which must equal the
    /// area the header's total length leaves. Checked before anything beyond the header is
    /// mapped or a participant slot is claimed.
    pub fn open_object(
        name: &ShmName,
        kind: Kind,
        object_len: ObjectLen,
    ) -> Result<Segment, ShmError> {
        Self::open_as(name, kind, Some(object_len), true)
    }

    /// **Negative control** "unvalidated header": opens like [`Segment::open`] but trusts the
    /// header's sizes without the checksum and without checking them against the file — what a
    /// segment reader that is not hostile-input-safe does. Used by the `shm_open` fuzz target
    /// (`FUZZ_CONTROL=unvalidated-header`), which must then find a crash.
    #[doc(hidden)]
    pub fn open_unchecked(
        name: &ShmName,
        kind: Kind,
        object_len: ObjectLen,
    ) -> Result<Segment, ShmError> {
        Self::open_as(name, kind, Some(object_len), false)
    }

    fn open_as(
        name: &ShmName,
        kind: Kind,
        object_len: Option<ObjectLen>,
        checked: bool,
    ) -> Result<Segment, ShmError> {
        let fd = shm_open(name.as_str(), OFlag::O_RDWR, Mode::empty()).map_err(|e| match e {
            nix::errno::Errno::ENOENT => ShmError::NotFound(name.clone()),
            e => ShmError::Os("shm_open", e),
        })?;
        // A creator between its `shm_open` and its header write leaves an empty or all-zero
        // file for a moment: wait for it (bounded) rather than calling the segment foreign.
        let started = std::time::Instant::now();
        let info = loop {
            match read_header_as(&fd, Some(kind), checked) {
                Err(ShmError::Truncated { len: 0, .. }) | Err(ShmError::Blank)
                    if started.elapsed() < READY_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(ShmError::Blank) => return Err(ShmError::NotReady(name.clone())),
                other => break other?,
            }
        };
        let mut info = info;
        match object_len {
            Some(f) if checked => check_object_len(&info.layout, f)?,
            // The control trusts the size the parameters give, whatever the header's length and
            // the file's say.
            Some(f) => {
                info.layout.object_len = f(&info.layout.params)
                    .ok_or_else(|| ShmError::Corrupted(format!("{kind} parameters are invalid")))?
            }
            None => {}
        }
        let base = map(&fd, info.layout.total_len() as usize)?;
        let seg = Segment::from_parts(name.clone(), base, info.layout, fd);
        // Do not unlink a segment we failed to open properly.
        seg.inner
            .unlink_on_drop
            .store(false, crate::sync::BookOrdering::Relaxed);
        while seg.ready_word().load(Ordering::Acquire) != READY {
            if started.elapsed() > READY_WAIT || !info.creator.is_alive() {
                return Err(ShmError::NotReady(name.clone()));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        seg.attach()?;
        // A last user may have unlinked the name between our shm_open and our attach: make sure
        // the name still refers to the object we mapped.
        if !seg.still_named() {
            return Err(ShmError::NotFound(name.clone()));
        }
        seg.inner
            .unlink_on_drop
            .store(true, crate::sync::BookOrdering::Relaxed);
        Ok(seg)
    }

    fn from_parts(name: ShmName, base: NonNull<u8>, layout: Layout, fd: OwnedFd) -> Segment {
        Segment {
            inner: crate::sync::BookArc::new(Mapping {
                name,
                base,
                len: layout.total_len() as usize,
                layout,
                nonce: NEXT_NONCE.fetch_add(1, crate::sync::BookOrdering::Relaxed),
                tokens: crate::sync::BookMutex::new(Vec::new()),
                unlink_on_drop: crate::sync::BookAtomicBool::new(true),
                _fd: fd,
            }),
        }
    }

    fn ready_word(&self) -> &AtomicU32 {
        // SAFETY: OFF_READY is 4-aligned inside the header of a live mapping (page-aligned base);
        // an all-bits pattern is a valid AtomicU32.
        unsafe { &*self.inner.base.as_ptr().add(OFF_READY).cast::<AtomicU32>() }
    }

    fn still_named(&self) -> bool {
        let Ok(fd) = shm_open(self.inner.name.as_str(), OFlag::O_RDONLY, Mode::empty()) else {
            return false;
        };
        match (fstat(&fd), fstat(&self.inner._fd)) {
            (Ok(a), Ok(b)) => a.st_ino == b.st_ino && a.st_dev == b.st_dev,
            _ => false,
        }
    }

    /// Claims a participant slot through this mapping (released when it is dropped).
    fn claim(&self, process_level: bool) -> Result<Token, ShmError> {
        let t = self
            .participants()
            .claim(process_level)
            .map_err(|f| ShmError::TooManyParticipants(f.slots))?;
        self.inner
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t);
        Ok(t)
    }

    fn attach(&self) -> Result<Token, ShmError> {
        self.claim(true)
    }

    /// The segment's name.
    pub fn name(&self) -> &ShmName {
        &self.inner.name
    }

    /// The validated layout.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The participant table.
    pub fn participants(&self) -> Participants<'_> {
        self.inner.participants()
    }

    /// Pointer to the object area (`layout().object_len` bytes, 64-aligned).
    pub fn object_ptr(&self) -> NonNull<u8> {
        let off = self.inner.layout.object_offset();
        debug_assert!(off as u64 + self.inner.layout.object_len <= self.inner.len as u64);
        // SAFETY: the object area is inside the mapping (validated layout).
        unsafe { NonNull::new_unchecked(self.inner.base.as_ptr().add(off)) }
    }

    /// The calling thread's participant token, claiming a slot on first use.
    pub fn me(&self) -> Result<Token, ShmError> {
        let nonce = self.inner.nonce;
        if let Some(t) = MY_TOKENS.with(|m| {
            m.borrow()
                .iter()
                .find(|(n, _)| *n == nonce)
                .map(|(_, t)| *t)
        }) {
            return Ok(t);
        }
        let t = self.claim(false)?;
        MY_TOKENS.with(|m| m.borrow_mut().push((nonce, t)));
        Ok(t)
    }

    /// Frees the slots of dead participants; `uncount(bit)` for each waiter counter a dead one
    /// was still counted in. Returns who was reaped.
    pub fn reap(&self, uncount: impl FnMut(usize, u32)) -> Vec<Who> {
        self.participants().reap(uncount)
    }

    /// Removes the name now (the mapping stays valid for everyone who has it).
    pub fn unlink(&self) -> Result<(), ShmError> {
        self.inner
            .unlink_on_drop
            .store(false, crate::sync::BookOrdering::Relaxed);
        shm_unlink(self.inner.name.as_str()).map_err(|e| match e {
            nix::errno::Errno::ENOENT => ShmError::NotFound(self.inner.name.clone()),
            e => ShmError::Os("shm_unlink", e),
        })
    }

    /// Whether dropping the last handle in this process unlinks the segment when no other
    /// participant is alive (the default), or leaves it for [`super::cleanup`].
    pub fn set_unlink_on_drop(&self, yes: bool) {
        self.inner
            .unlink_on_drop
            .store(yes, crate::sync::BookOrdering::Relaxed);
    }
}

impl Mapping {
    fn participants(&self) -> Participants<'_> {
        let n = self.layout.participants as usize;
        // SAFETY: the table lies inside the mapping (checked against its length when the header
        // was validated), HEADER_LEN is 64-aligned as Slot requires, and any bit pattern is a
        // valid Slot (it is made of atomics). It lives as long as `self`.
        let slots = unsafe {
            core::slice::from_raw_parts(self.base.as_ptr().add(HEADER_LEN).cast::<Slot>(), n)
        };
        // SAFETY: OFF_JOINS is 4-aligned inside the header of the live mapping; any bit pattern
        // is a valid AtomicU32; it lives as long as `self`.
        let joins = unsafe { &*self.base.as_ptr().add(OFF_JOINS).cast::<AtomicU32>() };
        Participants::in_segment(slots, joins)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let parts = self.participants();
        let tokens = std::mem::take(&mut *self.tokens.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tokens {
            parts.release(t, |_| {});
        }
        let nonce = self.nonce;
        let _ = MY_TOKENS.try_with(|m| m.borrow_mut().retain(|(n, _)| *n != nonce));
        if self.unlink_on_drop.load(crate::sync::BookOrdering::Relaxed) && parts.live().is_empty() {
            let _ = shm_unlink(self.name.as_str());
        }
        // No robust-list entry of this process may point into memory about to be unmapped
        // (whatever the slots say: `release` unlinked ours unless a peer changed them).
        super::beacon::unlink_range(self.base.as_ptr() as usize, self.len);
        // SAFETY: `base`/`len` are exactly what mmap returned; no reference into the mapping
        // outlives the last `Segment` clone (objects borrow from a `Segment`).
        let _ = unsafe { munmap(self.base.cast(), self.len) };
    }
}

/// Reads and checks the header of an open segment descriptor.
pub(crate) fn read_header(fd: &OwnedFd, kind: Option<Kind>) -> Result<HeaderInfo, ShmError> {
    read_header_as(fd, kind, true)
}

fn read_header_as(fd: &OwnedFd, kind: Option<Kind>, checked: bool) -> Result<HeaderInfo, ShmError> {
    let st = fstat(fd).map_err(|e| ShmError::Os("fstat", e))?;
    let file_len = st.st_size.max(0) as u64;
    if file_len < HEADER_LEN as u64 {
        return Err(ShmError::Truncated {
            len: file_len,
            needed: HEADER_LEN as u64,
        });
    }
    let base = map(fd, HEADER_LEN)?;
    let mut h = [0u8; HEADER_LEN];
    for (i, b) in h.iter_mut().enumerate() {
        // SAFETY: `i < HEADER_LEN`, inside the fresh mapping; a volatile byte read cannot tear
        // and makes no assumption about what another process writes concurrently.
        *b = unsafe { core::ptr::read_volatile(base.as_ptr().add(i)) };
    }
    // SAFETY: exactly the mapping made above, not referenced any more.
    let _ = unsafe { munmap(base.cast(), HEADER_LEN) };
    decode_header(&h, file_len, kind, checked)
}
