//! The ordered multi-lock: take a *set* of locks from one table in a single global order
//! (ascending index), each lock once — the fix for seed 004's `exch`, which locked bucket
//! `b1` then `b2` and so deadlocked when both keys hashed to one bucket (it locked it twice)
//! or against another `exch` taking the same two buckets the other way round.

use super::{Mutex, MutexGuard};

/// Guards of several locks of one table, taken in ascending index order.
pub struct MultiGuard<'a, T> {
    /// (table index, guard), ascending by index, each index once.
    guards: Vec<(usize, MutexGuard<'a, T>)>,
}

impl<T> MultiGuard<'_, T> {
    /// Exclusive access to the data of table entry `index` (one of the locked ones).
    ///
    /// # Panics
    /// If `index` was not among the locked indices.
    pub fn with_mut<R>(&mut self, index: usize, f: impl FnOnce(&mut T) -> R) -> R {
        let g = self
            .guards
            .iter_mut()
            .find(|(i, _)| *i == index)
            .unwrap_or_else(|| panic!("MultiGuard: index {index} is not locked"));
        g.1.with_mut(f)
    }

    /// The locked indices, ascending.
    pub fn indices(&self) -> Vec<usize> {
        self.guards.iter().map(|(i, _)| *i).collect()
    }
}

impl<T> Drop for MultiGuard<'_, T> {
    fn drop(&mut self) {
        // Release in reverse order of acquisition.
        while self.guards.pop().is_some() {}
    }
}

/// Locks `table[i]` for every `i` in `indices`: sorted, deduplicated, so two keys that map to
/// the same bucket lock it once, and every caller acquires in the same global order.
///
/// # Panics
/// If an index is out of bounds.
pub fn lock_many<'a, T>(table: &'a [Mutex<T>], indices: &[usize]) -> MultiGuard<'a, T> {
    let mut order: Vec<usize> = indices.to_vec();
    order.sort_unstable();
    order.dedup();
    let guards = order.into_iter().map(|i| (i, table[i].lock())).collect();
    MultiGuard { guards }
}
