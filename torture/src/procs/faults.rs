//! Faults a process scenario can inject besides its own: freeze and thaw (seed 003's "limbo":
//! a participant stopped with `SIGSTOP` for a random while, then continued). A stopped
//! participant is alive; waits on it must time out or resume when it does, and it is never
//! reported as a deadlock. The runner calls [`Freezer::tick`] from its loop; dropping the
//! freezer continues everyone it stopped (every exit path).

use clap::Args;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

use crate::units::parse_duration;

/// `--stop-rate` / `--stop-max`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Freezes per second: a random participant is stopped (SIGSTOP) and continued later
    /// (0: none).
    #[arg(long = "stop-rate", value_name = "PER_SECOND", default_value_t = 0.0)]
    pub stop_rate: f64,
    /// Longest freeze (each lasts a random time up to this).
    #[arg(long = "stop-max", value_name = "DURATION", default_value = "200ms", value_parser = parse_duration)]
    pub stop_max: Duration,
}

impl StopArgs {
    /// The flags as they replay (empty when no freezes).
    pub fn replay(&self) -> String {
        if self.stop_rate > 0.0 {
            format!(
                " --stop-rate {} --stop-max {}",
                self.stop_rate,
                crate::units::format_duration(self.stop_max)
            )
        } else {
            String::new()
        }
    }
}

/// Stops and continues participants at random; see the module docs.
pub struct Freezer {
    rate: f64,
    max: Duration,
    rng: crate::prng::SplitMix64,
    next: Instant,
    frozen: Vec<(u32, Instant)>,
    /// Freezes delivered so far.
    pub stops: usize,
    /// When the last participant was thawed (a wait on it may resume only from then on).
    pub last_thaw: Option<Instant>,
}

impl Freezer {
    /// A freezer for `args`, seeded.
    pub fn new(args: &StopArgs, seed: u64) -> Freezer {
        let mut f = Freezer {
            rate: args.stop_rate.max(0.0),
            max: args.stop_max,
            rng: crate::prng::SplitMix64::new(seed ^ 0x5709_5709),
            next: Instant::now(),
            frozen: Vec::new(),
            stops: 0,
            last_thaw: None,
        };
        f.schedule();
        f
    }

    fn schedule(&mut self) {
        if self.rate > 0.0 {
            // Exponential gaps with mean 1/rate.
            let u = (self.rng.below(1_000_000) as f64 + 1.0) / 1_000_001.0;
            let gap = -u.ln() / self.rate;
            self.next = Instant::now() + Duration::from_secs_f64(gap.min(3600.0));
        }
    }

    /// Whether `pid` is frozen by us now.
    pub fn is_frozen(&self, pid: u32) -> bool {
        self.frozen.iter().any(|(p, _)| *p == pid)
    }

    /// Whether anyone is frozen by us now.
    pub fn any_frozen(&self) -> bool {
        !self.frozen.is_empty()
    }

    /// Thaws the participants whose freeze is over, and freezes one of `pids` when it is time.
    pub fn tick(&mut self, pids: &[u32]) {
        let now = Instant::now();
        let before = self.frozen.len();
        self.frozen.retain(|(pid, until)| {
            if *until <= now {
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGCONT);
                false
            } else {
                true
            }
        });
        if self.frozen.len() != before {
            self.last_thaw = Some(now);
        }
        if self.rate <= 0.0 || now < self.next || pids.is_empty() {
            return;
        }
        let pid = pids[self.rng.below(pids.len())];
        if !self.is_frozen(pid) && kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).is_ok() {
            let len = self.rng.below(self.max.as_micros().max(1) as usize) as u64;
            self.frozen.push((pid, now + Duration::from_micros(len)));
            self.stops += 1;
        }
        self.schedule();
    }

    /// Continues everyone frozen.
    pub fn thaw_all(&mut self) {
        for (pid, _) in self.frozen.drain(..) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        }
        self.last_thaw = Some(Instant::now());
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.thaw_all();
    }
}
