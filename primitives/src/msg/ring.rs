//! The shared message ring (being written).

/// Object length of a message ring (being written).
pub fn object_len(_params: &[u64; 4]) -> Option<u64> {
    None
}
