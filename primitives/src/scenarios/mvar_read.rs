//! `mvar-read-races`: blocking `read`s racing a prober (`try_read`, `try_put`) and a cycler
//! (`take` then `put` of a fresh value) on a box that starts full. A `read` must be one atomic
//! step that leaves the box full: a `read` built as `take` + `put` lets the prober's `try_put`
//! in (or its `try_read` see nothing) while no take is in flight — caught directly, and by the
//! oracle from the history alone. Needs [`MVarCaps::read_swap`](crate::traits::MVarCaps).

use super::mvar_common::{atomic_op_races, Ledger};
use super::MakeMVar;
use super::{Checked, Params};
use crate::history::linearizability::Kind;
use crate::history::Recorder;
use crate::sync::Arc;
use crate::traits::MVarApi;

/// The scenario's name.
pub const NAME: &str = "mvar-read-races";

/// Runs it once on a box made by `make`.
pub fn run<M: MVarApi<u64> + 'static>(p: &Params, make: &MakeMVar<M>) -> Checked {
    let m = Arc::new(make());
    if !m.capabilities().read_swap {
        return Checked::Skipped("read/swap not declared");
    }
    let readers = p.threads.saturating_sub(2).clamp(1, 2);
    atomic_op_races(NAME, p, m, readers, read_round);
    Checked::Yes
}

/// One round of a reader: a blocking `read`; the value must be one that was put.
fn read_round<M: MVarApi<u64>>(m: &M, rec: &mut Recorder, ledger: &mut Ledger, _: u32, _: u64) {
    let v = rec.record(|| m.read(), |v| Kind::Read(Some(*v)));
    ledger.seen.push(v);
}
