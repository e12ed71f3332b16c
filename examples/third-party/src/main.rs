//! Prints what the real-threads engine says about each third-party primitive
//! (`cargo run -p third-party-checks --release`). The model engines run from `tests/`.

use primitives::check::{threads, Budget};
use std::time::Duration;
use third_party_checks::{ChannelMVar, CondvarMVar, ParkingLotReentrant};

fn main() {
    let budget = Budget::default()
        .iterations(200)
        .time(Duration::from_secs(10));
    println!("{}", threads::mvar(ChannelMVar::new, budget));
    println!("{}", threads::mvar(CondvarMVar::new, budget));
    println!("{}", threads::lock(|_| ParkingLotReentrant::new(), budget));
}
