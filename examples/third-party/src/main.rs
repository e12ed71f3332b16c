//! Prints what the real-threads engine says about each third-party primitive
//! (`cargo run -p third-party-checks --release`). The model engines run from `tests/`.

#[cfg(not(any(loom, shuttle)))]
use primitives::check::{threads, Budget};
#[cfg(not(any(loom, shuttle)))]
use std::time::Duration;
#[cfg(not(any(loom, shuttle)))]
use third_party_checks::{ChannelMVar, CondvarMVar, ParkingLotReentrant};

#[cfg(any(loom, shuttle))]
fn main() {
    eprintln!("built for a model engine: run the tests (tests/models.rs) instead");
    std::process::exit(2);
}

#[cfg(not(any(loom, shuttle)))]
fn main() {
    let budget = Budget::default()
        .iterations(200)
        .time(Duration::from_secs(10));
    println!("{}", threads::mvar(ChannelMVar::new, budget));
    println!("{}", threads::mvar(CondvarMVar::new, budget));
    println!("{}", threads::lock(|_| ParkingLotReentrant::new(), budget));
}
