//! Finding and removing segments whose users are all dead.

use super::header::{HEADER_LEN, SLOT_LEN};
use super::participants::{Participants, Slot};
use super::segment::read_header;
use super::{ShmError, ShmName};
use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, munmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use std::num::NonZeroUsize;

/// Every segment this crate names starts with this (after the `/`).
pub const NAME_PREFIX: &str = "torture-";

/// One segment [`cleanup`] removed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cleaned {
    /// The segment's name.
    pub name: String,
    /// Why it was judged abandoned.
    pub reason: String,
}

/// Removes every segment in `/dev/shm` whose name starts with `/` + [`NAME_PREFIX`] + `filter`
/// and that nobody alive uses: the creator and every participant are dead (a valid header), or
/// — for a segment whose header is unreadable — the pid in its name is dead. Segments of live
/// users are left alone.
pub fn cleanup(filter: &str) -> Result<Vec<Cleaned>, ShmError> {
    let dir = std::fs::read_dir("/dev/shm")
        .map_err(|e| ShmError::Invalid(format!("cannot list /dev/shm: {e}")))?;
    let mut cleaned = Vec::new();
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(rest) = file.strip_prefix(NAME_PREFIX) else {
            continue;
        };
        if !rest.starts_with(filter) {
            continue;
        }
        let Ok(name) = ShmName::parse(file) else {
            continue;
        };
        if let Some(reason) = abandoned(&name, rest) {
            if shm_unlink(name.as_str()).is_ok() {
                cleaned.push(Cleaned {
                    name: name.to_string(),
                    reason,
                });
            }
        }
    }
    Ok(cleaned)
}

/// Why `name` is abandoned, or `None` if someone alive may use it.
fn abandoned(name: &ShmName, rest: &str) -> Option<String> {
    let name_pid: Option<u32> = rest.split('-').next().and_then(|p| p.parse().ok());
    let fd = shm_open(name.as_str(), OFlag::O_RDWR, Mode::empty()).ok()?;
    let info = match read_header(&fd, None) {
        Ok(info) => info,
        Err(e) => {
            return match name_pid {
                Some(pid) if !super::identity::process_exists(pid) => Some(format!(
                    "unreadable ({e}) and its creator (pid {pid}, from the name) is gone"
                )),
                _ => None,
            };
        }
    };
    if info.creator.is_alive() {
        return None;
    }
    let n = info.layout.participants as usize;
    let len = NonZeroUsize::new(HEADER_LEN + n * SLOT_LEN)?;
    // SAFETY: maps the header and participant table, whose size the validated header gives and
    // the file is at least as long as (checked by read_header); never executable.
    let base = unsafe {
        mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            &fd,
            0,
        )
    }
    .ok()?;
    // SAFETY: the table is inside the mapping just made, 64-aligned (HEADER_LEN is), and made
    // of atomics, valid for any bit pattern.
    let slots = unsafe {
        core::slice::from_raw_parts(base.as_ptr().cast::<u8>().add(HEADER_LEN).cast::<Slot>(), n)
    };
    let live = Participants::new(slots).live();
    // SAFETY: exactly the mapping made above; `slots` is not used after this.
    let _ = unsafe { munmap(base, len.get()) };
    live.is_empty().then(|| {
        format!(
            "{} whose creator (pid {}) and every participant are dead",
            info.layout.kind, info.creator.pid
        )
    })
}
