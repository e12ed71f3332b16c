//! The timed loop: attach, warm up, then round trips for a fixed wall-time budget.

use std::time::{Duration, Instant};

use crate::kinds::ParentSide;
use crate::sys::Res;

/// At most about this many latency samples per row (every k-th round trip is timed).
const MAX_SAMPLES: f64 = 1_000_000.0;
/// Round trips between deadline checks.
const BATCH: u64 = 16;

/// What one row measured.
pub struct Measurement {
    pub round_trips: u64,
    pub elapsed: Duration,
    /// Latencies of the timed round trips, nanoseconds, sorted.
    pub samples: Vec<u64>,
    /// Every `sample_every`-th round trip was timed.
    pub sample_every: u64,
    /// CPU (user + system) of both sides during the window, nanoseconds.
    pub cpu_ns: u64,
    /// CPU of all sleepers during the window, nanoseconds (if any).
    pub sleepers_window_ns: Option<u64>,
    pub warmup: Duration,
}

impl Measurement {
    pub fn per_sec(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64()
    }

    pub fn mean_us(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.round_trips as f64
    }

    /// Quantile `q` of the sampled latencies, microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        let n = self.samples.len();
        let idx = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        self.samples[idx] as f64 / 1e3
    }

    pub fn cpu_us_per_round_trip(&self) -> f64 {
        self.cpu_ns as f64 / 1e3 / self.round_trips as f64
    }
}

/// CPU-time probes read at the start and end of the window.
pub struct Probes<'a> {
    /// Both ping-pong sides, cumulative nanoseconds.
    pub cpu: &'a dyn Fn() -> Res<u64>,
    /// All sleepers, cumulative nanoseconds.
    pub sleepers: Option<&'a dyn Fn() -> Res<u64>>,
}

fn one(side: &mut dyn ParentSide, v: u64, alive: &dyn Fn() -> bool) -> Res<()> {
    let got = side.round_trip(v, alive)?;
    if got != v {
        return Err(format!("echo mismatch: sent {v}, got {got}").into());
    }
    Ok(())
}

/// Runs the first round trip (then calls `on_attached`), a warm-up, and the measured
/// window of `secs` seconds. Does not stop the peer.
pub fn measure(
    side: &mut dyn ParentSide,
    alive: &dyn Fn() -> bool,
    secs: f64,
    on_attached: &mut dyn FnMut(),
    probes: &Probes,
) -> Res<Measurement> {
    let mut v = 0u64;
    one(side, v, alive)?;
    on_attached();

    let warm_budget = Duration::from_secs_f64((secs * 0.2).clamp(0.05, 0.3));
    let warm_start = Instant::now();
    let mut warm_n = 0u64;
    while warm_start.elapsed() < warm_budget {
        for _ in 0..BATCH {
            v += 1;
            one(side, v, alive)?;
        }
        warm_n += BATCH;
    }
    let warmup = warm_start.elapsed();
    let rate = warm_n as f64 / warmup.as_secs_f64();
    let every = ((rate * secs * 1.5) / MAX_SAMPLES).ceil().max(1.0) as u64;
    let mut samples = Vec::with_capacity((MAX_SAMPLES * 1.5) as usize);

    let cpu0 = (probes.cpu)()?;
    let sl0 = probes.sleepers.map(|f| f()).transpose()?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut count = 0u64;
    loop {
        for _ in 0..BATCH {
            v += 1;
            if count % every == 0 {
                let t = Instant::now();
                one(side, v, alive)?;
                samples.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
            } else {
                one(side, v, alive)?;
            }
            count += 1;
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let elapsed = start.elapsed();
    let cpu1 = (probes.cpu)()?;
    let sl1 = probes.sleepers.map(|f| f()).transpose()?;
    samples.sort_unstable();
    Ok(Measurement {
        round_trips: count,
        elapsed,
        samples,
        sample_every: every,
        cpu_ns: cpu1.saturating_sub(cpu0),
        sleepers_window_ns: sl0.zip(sl1).map(|(a, b)| b.saturating_sub(a)),
        warmup,
    })
}
