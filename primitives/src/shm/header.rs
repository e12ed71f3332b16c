//! The segment header: the 128 bytes at offset 0 that describe a segment — magic, layout
//! version, object kind (a tag), participant count, total length, the object's four parameters,
//! the creator — with its checksum, and the checks every opener runs on a copy of it. Each object
//! checks its own parameters against the length ([`check_object_len`]); the header knows no
//! object's size formula.

use super::identity::Identity;
use super::participants::{Slot, MAX_PARTICIPANTS};
use super::{Kind, ShmError};

/// "TORTSHM" + NUL: the first eight bytes of every segment this crate creates.
pub const MAGIC: [u8; 8] = *b"TORTSHM\0";
/// Bumped whenever any layout in a segment changes. Version 2 added the creator's PID
/// namespace (in bytes that were zero padding in version 1, under the checksum). Version 3
/// added the death beacons: each participant slot's beacon word and robust-list entry, and the
/// header's `joins` word (all in bytes that were zero padding).
pub const LAYOUT_VERSION: u32 = 3;
/// Bytes reserved for the header at offset 0.
pub const HEADER_LEN: usize = 128;
/// Size of one participant slot.
pub const SLOT_LEN: usize = core::mem::size_of::<Slot>();
/// Alignment of the participant table and of the object area.
pub(super) const AREA_ALIGN: usize = 64;
/// Largest segment this crate creates or opens (a bigger size field is corruption).
pub const MAX_SEGMENT_LEN: u64 = 1 << 32;

/// Header field offsets (all little-endian, native on every target this runs on).
pub(super) const OFF_VERSION: usize = 8;
pub(super) const OFF_KIND: usize = 12;
pub(super) const OFF_HEADER_LEN: usize = 16;
pub(super) const OFF_PARTICIPANTS: usize = 20;
pub(super) const OFF_TOTAL_LEN: usize = 24;
pub(super) const OFF_PARAMS: usize = 32;
pub(super) const N_PARAMS: usize = 4;
pub(super) const OFF_CREATOR_PID: usize = 64;
/// The inode number of the creator's `/proc/self/ns/pid` (the kernel's namespace inode numbers
/// are 32 bit), 0 if unknown: the creator pid and the participants' pids mean something only
/// in that PID namespace.
pub(super) const OFF_CREATOR_PIDNS: usize = 68;
pub(super) const OFF_CREATOR_START: usize = 72;
pub(super) const OFF_CHECKSUM: usize = 80;
/// Not covered by the checksum: the one header word that changes after creation.
pub(super) const OFF_READY: usize = 88;
pub(super) const READY: u32 = 1;
/// Not covered by the checksum either: bumped (and futex-woken) whenever a process-level
/// participant joins, for the sleepers that watch every process's death beacon.
pub(super) const OFF_JOINS: usize = 92;

/// How long `open` waits for a live creator to finish initialising.
pub(super) const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The immutable description of a segment, read from (and checked against) its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// What the segment holds.
    pub kind: Kind,
    /// Number of participant slots.
    pub participants: u32,
    /// Kind-specific sizes (e.g. the MVar's payload length).
    pub params: [u64; N_PARAMS],
    /// Length of the object area.
    pub object_len: u64,
}

impl Layout {
    /// Offset of the object area.
    pub fn object_offset(&self) -> usize {
        align_up(
            HEADER_LEN + self.participants as usize * SLOT_LEN,
            AREA_ALIGN,
        )
    }
    /// Length of the whole segment.
    pub fn total_len(&self) -> u64 {
        self.object_offset() as u64 + self.object_len
    }
}

pub(super) const fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// FNV-1a, 64 bit: detects accidental corruption of the header (not an adversary).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(super) fn put_u32(h: &mut [u8], off: usize, v: u32) {
    h[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
pub(super) fn put_u64(h: &mut [u8], off: usize, v: u64) {
    h[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
pub(super) fn get_u32(h: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(h[off..off + 4].try_into().expect("4 bytes"))
}
pub(super) fn get_u64(h: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(h[off..off + 8].try_into().expect("8 bytes"))
}

/// The calling process's PID namespace: the inode number of `/proc/self/ns/pid`, or `None` if
/// `/proc` cannot tell (not mounted, or the kernel's inode number does not fit 32 bits).
pub(crate) fn pid_namespace() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata("/proc/self/ns/pid").ok()?.ino();
    u32::try_from(ino).ok().filter(|&i| i != 0)
}

/// Encodes a header for `layout`.
pub(super) fn encode_header(layout: &Layout) -> [u8; HEADER_LEN] {
    let me = Identity::current_process();
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    put_u32(&mut h, OFF_VERSION, LAYOUT_VERSION);
    put_u32(&mut h, OFF_KIND, layout.kind as u32);
    put_u32(&mut h, OFF_HEADER_LEN, HEADER_LEN as u32);
    put_u32(&mut h, OFF_PARTICIPANTS, layout.participants);
    put_u64(&mut h, OFF_TOTAL_LEN, layout.total_len());
    for (i, p) in layout.params.iter().enumerate() {
        put_u64(&mut h, OFF_PARAMS + 8 * i, *p);
    }
    put_u32(&mut h, OFF_CREATOR_PID, me.pid);
    put_u32(&mut h, OFF_CREATOR_PIDNS, pid_namespace().unwrap_or(0));
    put_u64(&mut h, OFF_CREATOR_START, me.pid_start);
    let sum = fnv1a(&h[..OFF_CHECKSUM]);
    put_u64(&mut h, OFF_CHECKSUM, sum);
    h
}

/// What a header says, once checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeaderInfo {
    pub layout: Layout,
    pub creator: Identity,
    /// The creator's PID namespace (see [`pid_namespace`]), 0 if unknown.
    pub creator_pidns: u32,
}

/// Checks a header copied out of a segment of `file_len` bytes. `expect` = the kind the caller
/// wants (`None`: any kind, e.g. for cleanup).
pub(crate) fn decode_header(
    h: &[u8; HEADER_LEN],
    file_len: u64,
    expect: Option<Kind>,
    checked: bool,
) -> Result<HeaderInfo, ShmError> {
    if h[..8] != MAGIC {
        if h.iter().all(|&b| b == 0) {
            return Err(ShmError::Blank);
        }
        return Err(ShmError::NotOurs);
    }
    let version = get_u32(h, OFF_VERSION);
    if version != LAYOUT_VERSION {
        return Err(ShmError::Version {
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    let stored = get_u64(h, OFF_CHECKSUM);
    if checked && fnv1a(&h[..OFF_CHECKSUM]) != stored {
        return Err(ShmError::Corrupted("header checksum does not match".into()));
    }
    let kind_raw = get_u32(h, OFF_KIND);
    let kind = Kind::from_u32(kind_raw)
        .ok_or_else(|| ShmError::Corrupted(format!("unknown object kind {kind_raw}")))?;
    if let Some(want) = expect {
        if want != kind {
            return Err(ShmError::WrongKind {
                found: kind,
                expected: want,
            });
        }
    }
    if get_u32(h, OFF_HEADER_LEN) as usize != HEADER_LEN {
        return Err(ShmError::Corrupted("header length field is wrong".into()));
    }
    let participants = get_u32(h, OFF_PARTICIPANTS);
    if participants == 0 || participants > MAX_PARTICIPANTS {
        return Err(ShmError::Corrupted(format!(
            "participant count {participants} out of range"
        )));
    }
    let mut params = [0u64; N_PARAMS];
    for (i, p) in params.iter_mut().enumerate() {
        *p = get_u64(h, OFF_PARAMS + 8 * i);
    }
    let total = get_u64(h, OFF_TOTAL_LEN);
    if total > MAX_SEGMENT_LEN {
        return Err(ShmError::Corrupted(format!(
            "segment length {total} too large"
        )));
    }
    // The header's total length gives the object area; the object checks its own parameters
    // against it when it is opened (`Kind` is a tag only).
    let mut layout = Layout {
        kind,
        participants,
        params,
        object_len: 0,
    };
    let offset = layout.object_offset() as u64;
    layout.object_len = match total.checked_sub(offset) {
        Some(n) if n > 0 => n,
        // (Unchecked — the negative control — lets the object's formula decide, below.)
        _ if !checked => 0,
        _ => {
            return Err(ShmError::Corrupted(format!(
            "header says {total} bytes, its header and participant table need more than {offset}"
        )))
        }
    };
    if checked && file_len < total {
        return Err(ShmError::Truncated {
            len: file_len,
            needed: total,
        });
    }
    Ok(HeaderInfo {
        layout,
        creator: Identity {
            pid: get_u32(h, OFF_CREATOR_PID),
            tid: 0,
            pid_start: get_u64(h, OFF_CREATOR_START),
            tid_start: 0,
        },
        creator_pidns: get_u32(h, OFF_CREATOR_PIDNS),
    })
}

/// An object's size formula: the length of its object area for the header's parameters, or
/// `None` if they are invalid for it.
pub type ObjectLen = fn(&[u64; N_PARAMS]) -> Option<u64>;

/// Checks that `layout`'s object area is what the object's formula needs for its parameters.
pub fn check_object_len(layout: &Layout, object_len: ObjectLen) -> Result<(), ShmError> {
    let kind = layout.kind;
    let params = layout.params;
    match object_len(&params) {
        None => Err(ShmError::Corrupted(format!(
            "{kind} parameters {params:?} are invalid"
        ))),
        Some(n) if n != layout.object_len => Err(ShmError::Corrupted(format!(
            "{kind} parameters {params:?} need an object area of {n} bytes, the header's length \
             leaves {}",
            layout.object_len
        ))),
        Some(_) => Ok(()),
    }
}
