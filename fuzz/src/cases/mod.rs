//! Fuzz cases on real threads (the default build).

pub mod lock_ops;
pub mod msg_ops;
pub mod mvar_ops;
pub mod shm_open;
