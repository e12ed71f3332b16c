//! Kill-storm values: 64 bytes that carry their id and a pattern derived from it, so a value
//! copied half-way (torn) or invented is recognised.

/// Smallest payload (the id and some pattern).
pub const MIN_LEN: usize = 16;
const ID_LEN: usize = 8;

fn pattern_byte(id: u64, i: usize) -> u8 {
    let x = id
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left((i % 64) as u32);
    (x as u8) ^ (i as u8)
}

/// The `len`-byte payload of value `id`.
pub fn encode(id: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len.max(MIN_LEN)];
    b[..ID_LEN].copy_from_slice(&id.to_le_bytes());
    for (i, byte) in b.iter_mut().enumerate().skip(ID_LEN) {
        *byte = pattern_byte(id, i);
    }
    b
}

/// The id in `b`, whatever the rest says.
pub fn raw_id(b: &[u8]) -> u64 {
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&b[..ID_LEN]);
    u64::from_le_bytes(id)
}

/// The id of an intact payload; `None` if torn or garbage.
pub fn decode(b: &[u8]) -> Option<u64> {
    if b.len() < MIN_LEN {
        return None;
    }
    let id = raw_id(b);
    (id != 0
        && b.iter()
            .enumerate()
            .skip(ID_LEN)
            .all(|(i, &x)| x == pattern_byte(id, i)))
    .then_some(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_torn_detection() {
        let a = super::encode(42 << 32 | 7, 64);
        assert_eq!(super::decode(&a), Some(42 << 32 | 7));
        let b = super::encode(43 << 32 | 1, 64);
        let mut torn = a.clone();
        torn[32..].copy_from_slice(&b[32..]);
        assert_eq!(super::decode(&torn), None);
        assert_eq!(super::decode(&[0u8; 64]), None);
    }
}
