//! The messages on the two pipes: every message is one frame of `HEADER + size` bytes.
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `PIPE` |
//! | 4..8 | kind: [`REQUEST`] or [`RESPONSE`] |
//! | 8..16 | sequence number (1, 2, ...) |
//! | 16..24 | payload length |
//! | 24..32 | checksum of the payload ([`checksum`]) |
//!
//! A request's payload is a pseudo-random pattern determined by the run's seed and the
//! sequence number; the response's is the request's reversed with every byte complemented. The
//! client rebuilds the expected response of every request and compares the whole frame, so a
//! torn frame (bytes of two messages), a mixed-up one (another request's answer) and a corrupted
//! one are all told apart from a good one, and from each other.

use crate::prng::SplitMix64;

/// Bytes before the payload.
pub const HEADER: usize = 32;
const MAGIC: u32 = u32::from_le_bytes(*b"PIPE");
/// Kind of a request frame.
pub const REQUEST: u32 = 1;
/// Kind of a response frame.
pub const RESPONSE: u32 = 2;

/// A word-at-a-time 64-bit checksum (FNV-style multiply-xor, then a final mix): not
/// cryptographic, but any torn or shifted payload changes it.
pub fn checksum(payload: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325 ^ payload.len() as u64;
    let mut words = payload.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h ^ (h >> 32)
}

fn frame(kind: u32, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER + payload.len());
    f.extend_from_slice(&MAGIC.to_le_bytes());
    f.extend_from_slice(&kind.to_le_bytes());
    f.extend_from_slice(&seq.to_le_bytes());
    f.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    f.extend_from_slice(&checksum(payload).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// Request `seq` of a run with `seed`, `size` payload bytes.
pub fn request(seed: u64, seq: u64, size: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut payload = Vec::with_capacity(size + 8);
    while payload.len() < size {
        payload.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    payload.truncate(size);
    frame(REQUEST, seq, &payload)
}

/// The response to a (checked) request frame: its payload reversed, every byte complemented.
pub fn response_to(request: &[u8]) -> Vec<u8> {
    let payload: Vec<u8> = request[HEADER..].iter().rev().map(|b| !b).collect();
    frame(RESPONSE, field(request, 8), &payload)
}

fn field(f: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&f[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Checks a whole received frame: magic, kind, sequence number, length and checksum. The error
/// says what is wrong, in words for a report.
pub fn check(f: &[u8], kind: u32, seq: u64, size: usize) -> Result<(), String> {
    let name = if kind == REQUEST {
        "request"
    } else {
        "response"
    };
    if f.len() != HEADER + size {
        return Err(format!(
            "{name} {seq}: {} bytes, not {}",
            f.len(),
            HEADER + size
        ));
    }
    let magic = field(f, 0) as u32;
    let got_kind = (field(f, 0) >> 32) as u32;
    if magic != MAGIC || got_kind != kind {
        return Err(format!(
            "{name} {seq}: bad header (magic {magic:#x}, kind {got_kind}): torn or shifted data"
        ));
    }
    let (got_seq, len, sum) = (field(f, 8), field(f, 16), field(f, 24));
    if len != size as u64 {
        return Err(format!("{name} {seq}: length field {len}, not {size}"));
    }
    if got_seq != seq {
        return Err(format!(
            "{name} {seq}: carries sequence number {got_seq}: messages mixed up"
        ));
    }
    if checksum(&f[HEADER..]) != sum {
        return Err(format!(
            "{name} {seq}: payload checksum mismatch: torn or corrupted data"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_check_and_damage_is_named() {
        let size = 1000;
        let req = request(7, 3, size);
        assert_eq!(check(&req, REQUEST, 3, size), Ok(()));
        let resp = response_to(&req);
        assert_eq!(check(&resp, RESPONSE, 3, size), Ok(()));
        assert_ne!(resp[HEADER..], req[HEADER..]);
        assert!(check(&req, REQUEST, 4, size)
            .unwrap_err()
            .contains("mixed up"));
        assert!(check(&req, RESPONSE, 3, size).is_err());
        let mut torn = req.clone();
        torn[HEADER + 500] ^= 1;
        assert!(check(&torn, REQUEST, 3, size)
            .unwrap_err()
            .contains("checksum"));
        assert!(check(&req[..HEADER + 10], REQUEST, 3, size).is_err());
        assert_ne!(request(7, 3, size), request(7, 4, size));
        assert_ne!(request(7, 3, size), request(8, 3, size));
    }
}
