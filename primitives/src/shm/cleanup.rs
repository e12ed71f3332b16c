//! Finding and removing segments whose users are all dead.

use super::header::pid_namespace;
use super::header::{HEADER_LEN, SLOT_LEN};
use super::participants::{Participants, Slot};
use super::segment::read_header;
use super::{ShmError, ShmName};
use nix::sys::mman::{mmap, munmap, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::fstat;
use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

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

/// A segment that is empty, has an all-zero header or a header of another layout version is
/// removed only after this age (by `mtime`, set by `ftruncate`; stores through a mapping do not
/// update a tmpfs file's `mtime`). Those are the states a live creator passes through — or a
/// live run of another build — possibly in another PID namespace, where the pid in the name
/// means nothing to us. A creator leaves them within microseconds; after a minute the segment
/// is a crashed creator's leftover.
const UNREADABLE_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes every segment in `/dev/shm` whose name starts with `/` + [`NAME_PREFIX`] + `filter`
/// and that nobody alive uses.
///
/// Only a **regular file owned by the caller's effective uid** is considered (checked with
/// `lstat`, then `fstat` on a descriptor opened with `O_NOFOLLOW`): FIFOs, symlinks,
/// directories and other users' files are never opened for reading, mapped or unlinked.
/// Among those, a segment is abandoned when
/// * its header is valid, it was created **in our PID namespace** (the header records the
///   creator's; pids of another namespace mean nothing here, so such a segment — a live run in
///   another container sharing `/dev/shm` — is left alone), and its creator and every
///   participant are dead; or
/// * its header is unreadable and the pid in its name is dead. If the segment is in a state a
///   live creator passes through (empty, all-zero header) or belongs to another layout version,
///   it must also be older than 60 s: the pid in the name is only meaningful in the creator's
///   namespace, which an unreadable header does not tell. A header no creator ever writes
///   (foreign magic, bad checksum, cut inside the header) is removed at once.
///
/// Nothing is judged when this process's `/proc` does not show its own PID namespace (liveness
/// checks read `/proc/<pid>`, which would then name other processes).
pub fn cleanup(filter: &str) -> Result<Vec<Cleaned>, ShmError> {
    let dir = std::fs::read_dir("/dev/shm")
        .map_err(|e| ShmError::Invalid(format!("cannot list /dev/shm: {e}")))?;
    let Some(our_ns) = judging_namespace() else {
        return Ok(Vec::new());
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
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
        let path = entry.path();
        let Some(fd) = open_own_regular(&path, euid) else {
            continue;
        };
        if let Some(reason) = abandoned(&fd, rest, our_ns) {
            // The name must still be the file we judged (not replaced since).
            let same = std::fs::symlink_metadata(&path)
                .ok()
                .zip(fstat(&fd).ok())
                .is_some_and(|(m, st)| m.ino() == st.st_ino && m.dev() == st.st_dev);
            if same && shm_unlink(name.as_str()).is_ok() {
                cleaned.push(Cleaned {
                    name: name.to_string(),
                    reason,
                });
            }
        }
    }
    Ok(cleaned)
}

/// Our PID namespace, if our `/proc` is that namespace's (`/proc/self` names our own pid):
/// only then do `/proc/<pid>` liveness checks mean anything.
fn judging_namespace() -> Option<u32> {
    let me = std::fs::read_link("/proc/self").ok()?;
    if me.to_str()? != std::process::id().to_string() {
        return None;
    }
    pid_namespace()
}

/// Opens `path` if it is a regular file owned by `euid` — without following a symlink or
/// blocking on a FIFO — and checks the opened descriptor again (the name may have changed
/// between the `lstat` and the `open`).
fn open_own_regular(path: &std::path::Path, euid: u32) -> Option<OwnedFd> {
    let m = std::fs::symlink_metadata(path).ok()?;
    if !m.file_type().is_file() || m.uid() != euid {
        return None;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let fd = OwnedFd::from(file);
    let st = fstat(&fd).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_uid == euid).then_some(fd)
}

/// Why the segment open as `fd` is abandoned, or `None` if someone alive may use it or it is
/// not ours to judge.
fn abandoned(fd: &OwnedFd, rest: &str, our_ns: u32) -> Option<String> {
    let name_pid: Option<u32> = rest.split('-').next().and_then(|p| p.parse().ok());
    let info = match read_header(fd, None) {
        Ok(info) => info,
        Err(e) => {
            let pid = name_pid.filter(|&p| !super::identity::process_exists(p))?;
            // States a live creator passes through (of this build or another), in whatever PID
            // namespace: wait until it cannot be one any more.
            let transient = matches!(
                e,
                ShmError::Blank | ShmError::Truncated { len: 0, .. } | ShmError::Version { .. }
            );
            if transient {
                let st = fstat(fd).ok()?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_secs();
                let age = now.saturating_sub(st.st_mtime.max(0) as u64);
                if age < UNREADABLE_MIN_AGE.as_secs() {
                    return None;
                }
            }
            return Some(format!(
                "unreadable ({e}) and its creator (pid {pid}, from the name) is gone"
            ));
        }
    };
    if info.creator_pidns != our_ns {
        return None;
    }
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
            fd,
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
