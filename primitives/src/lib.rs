//! Reference concurrency primitives for the torture and fuzz suite.
//!
//! Every primitive is one state machine written against the [`sync`] facade, so that the same
//! source runs for real (std + Linux futex), under loom (`--cfg loom`) and under shuttle
//! (`--cfg shuttle`). The [`scenarios`] catalogue exercises any implementation of the public
//! [`traits`]; [`controls`] are deliberately broken variants every engine must catch.

pub mod controls;
pub mod lock;
pub mod msg;
pub mod mvar;
pub mod scenarios;
pub mod shm;
pub mod sync;
pub mod track;
pub mod traits;

pub use lock::{LockClass, Mode, Mutex, ReentrantLock, Validator};
pub use msg::{Message, MessageLog, MessageSink};
pub use mvar::MVar;
pub use traits::{LockApi, LogApi, MVarApi};
