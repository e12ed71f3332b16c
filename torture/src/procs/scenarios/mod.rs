//! One module per process scenario; each is listed once in [`super::CATALOGUE`].

pub mod churn;
pub mod fork;
pub mod kill_storm;
pub mod locks;
pub mod mvar;
pub mod pipe;
