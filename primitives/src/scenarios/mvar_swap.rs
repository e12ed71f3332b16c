//! `mvar-swap-races`: swappers (`swap` of fresh values) racing a prober (`try_read`,
//! `try_put`) and a cycler (`take` then `put`) on a box that starts full. Values are unique;
//! each must leave the box exactly once. A `swap` built as `take` + `put` empties the box for a
//! moment: the prober sees it while no take is in flight, and the oracle rejects the history.
//! Needs [`MVarCaps::read_swap`](crate::traits::MVarCaps).

use super::mvar_common::{atomic_op_races, value, Ledger, ROLE_WORKER};
use super::MakeMVar;
use super::{Checked, Params};
use crate::history::linearizability::Kind;
use crate::history::Recorder;
use crate::sync::Arc;
use crate::traits::MVarApi;

/// The scenario's name.
pub const NAME: &str = "mvar-swap-races";

/// Runs it once on a box made by `make`.
pub fn run<M: MVarApi<u64> + 'static>(p: &Params, make: &MakeMVar<M>) -> Checked {
    let m = Arc::new(make());
    if !m.capabilities().read_swap {
        return Checked::Skipped("read/swap not declared");
    }
    let swappers = p.threads.saturating_sub(2).clamp(1, 2);
    atomic_op_races(NAME, p, m, swappers, swap_round);
    Checked::Yes
}

/// One round of swapper `k`: swaps in a fresh value; the old one leaves, the new one enters.
fn swap_round<M: MVarApi<u64>>(m: &M, rec: &mut Recorder, ledger: &mut Ledger, k: u32, round: u64) {
    let new = value(ROLE_WORKER + k, round);
    let old = rec.record(
        || m.swap(new),
        |old| Kind::Swap {
            new,
            old: Some(*old),
        },
    );
    ledger.left.push(old);
    ledger.entered.push(new);
}
