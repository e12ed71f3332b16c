//! The table of every kind the benchmark measures: the one place that names them all (the kinds
//! themselves name only the traits in `kinds.rs`).

use crate::fdkinds::{Pipe, Socket};
use crate::kinds::{Kind, ProcessKind};
use crate::ours::{OURS_PRIVATE_FUTEX, OURS_SHARED_MVAR};
use crate::pshared::PthreadPshared;
use crate::threads::{CrossbeamBounded1, OursMVar, ParkingLotMVar, StdMVar};

/// Every kind, in table order.
pub static REGISTRY: &[Kind] = &[
    Kind::Process(&PthreadPshared),
    Kind::Process(&OURS_SHARED_MVAR),
    Kind::Process(&OURS_PRIVATE_FUTEX),
    Kind::Process(&Pipe),
    Kind::Process(&Socket),
    Kind::Thread(&OursMVar),
    Kind::Thread(&StdMVar),
    Kind::Thread(&CrossbeamBounded1),
    Kind::Thread(&ParkingLotMVar),
];

/// Looks up a process kind by its child-side identifier.
pub fn process_kind(id: &str) -> Option<&'static dyn ProcessKind> {
    REGISTRY.iter().find_map(|k| match k {
        Kind::Process(p) if p.id() == id => Some(*p),
        _ => None,
    })
}
