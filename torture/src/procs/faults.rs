//! Faults a process scenario can inject besides its own: kill and respawn ([`KillArgs`],
//! [`Killer`]: SIGKILL a random participant at `--kill-rate`, the scenario starts its
//! replacement), and freeze and thaw (seed 003's "limbo":
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
    #[arg(long = "stop-rate", value_name = "PER_SECOND", default_value_t = 0.0, value_parser = parse_rate)]
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

/// `--kill-rate`.
#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    /// SIGKILLs per second of random participants, each replaced at once (0: none).
    #[arg(long = "kill-rate", value_name = "PER_SECOND", default_value_t = 0.0, value_parser = parse_rate)]
    pub kill_rate: f64,
}

impl KillArgs {
    /// The flag as it replays (empty when no kills).
    pub fn replay(&self) -> String {
        if self.kill_rate > 0.0 {
            format!(" --kill-rate {}", self.kill_rate)
        } else {
            String::new()
        }
    }
}

/// `--chaos`.
#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// Chaos mode in every worker: spurious futex wake-ups and short random delays at the
    /// primitives' synchronisation points (drawn from the run's seed).
    #[arg(long)]
    pub chaos: bool,
}

impl ChaosArgs {
    /// The flag as it replays.
    pub fn replay(&self) -> &'static str {
        if self.chaos {
            " --chaos"
        } else {
            ""
        }
    }

    /// The seed the crew hands its workers (`None`: chaos off).
    pub fn seed(&self, run_seed: u64) -> Option<u64> {
        chaos_seed(self.chaos, run_seed)
    }
}

/// The crew's chaos seed for a run seeded `run_seed`, if `on` (`--chaos`).
pub fn chaos_seed(on: bool, run_seed: u64) -> Option<u64> {
    on.then_some(run_seed ^ 0xc4a0_5c4a_05c4_a05c)
}

/// A rate: a finite number >= 0.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a rate (a number >= 0, per second)")),
    }
}

/// Exponential gaps with mean `1/rate` from `rng`, capped at an hour.
fn exponential_gap(rng: &mut crate::prng::SplitMix64, rate: f64) -> Duration {
    let u = (rng.below(1_000_000) as f64 + 1.0) / 1_000_001.0;
    Duration::from_secs_f64((-u.ln() / rate).min(3600.0))
}

/// Picks kill victims at a rate (a Poisson process); the scenario kills and replaces them.
pub struct Killer {
    rate: f64,
    rng: crate::prng::SplitMix64,
    next: Option<Instant>,
    /// Kills delivered so far.
    pub kills: usize,
}

impl Killer {
    /// A killer for `args`, seeded.
    pub fn new(args: &KillArgs, seed: u64) -> Killer {
        let mut rng = crate::prng::SplitMix64::new(seed ^ 0x4b11_4b11);
        let rate = args.kill_rate;
        let next = (rate > 0.0).then(|| Instant::now() + exponential_gap(&mut rng, rate));
        Killer {
            rate,
            rng,
            next,
            kills: 0,
        }
    }

    /// The index (of `n` participants) to kill now, if a kill is due; counts it.
    pub fn due(&mut self, n: usize) -> Option<usize> {
        let next = self.next?;
        if n == 0 || Instant::now() < next {
            return None;
        }
        self.next = Some(next + exponential_gap(&mut self.rng, self.rate));
        self.kills += 1;
        Some(self.rng.below(n))
    }
}

/// How long a run has gone without progress, counting only time in which nobody was frozen by
/// us: a wait on a frozen participant is not a hang, but a real deadlock keeps accumulating
/// stall time between freezes, so frequent freezes cannot hide it (a clock reset at every thaw
/// would never reach the hang timeout at `--stop-rate` above one per timeout).
pub struct StallClock {
    last: Instant,
    stalled: Duration,
}

impl StallClock {
    /// A clock at zero.
    pub fn new() -> StallClock {
        StallClock {
            last: Instant::now(),
            stalled: Duration::ZERO,
        }
    }

    /// Advances the clock: back to zero on `progress`, else it adds the time since the last
    /// call unless `frozen`. Returns the stall so far.
    pub fn tick(&mut self, progress: bool, frozen: bool) -> Duration {
        let now = Instant::now();
        if progress {
            self.stalled = Duration::ZERO;
        } else if !frozen {
            self.stalled += now - self.last;
        }
        self.last = now;
        self.stalled
    }

    /// Back to zero.
    pub fn reset(&mut self) {
        self.tick(true, false);
    }
}

impl Default for StallClock {
    fn default() -> Self {
        StallClock::new()
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
        };
        f.schedule();
        f
    }

    fn schedule(&mut self) {
        if self.rate > 0.0 {
            self.next = Instant::now() + exponential_gap(&mut self.rng, self.rate);
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
        self.frozen.retain(|(pid, until)| {
            if *until <= now {
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGCONT);
                false
            } else {
                true
            }
        });
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
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.thaw_all();
    }
}
