//! Command-line options.

pub const USAGE: &str = "\
usage: cargo bench -p primitives --bench pingpong -- [--secs N] [--only SUBSTRING] [--sleepers N]

  --secs N        wall-time budget per row, seconds (default 2; fractions allowed)
  --only S        run only the kinds whose label contains S (case-insensitive)
  --sleepers N    also run N sleepers per row, blocked for the whole window in a take
                  nobody fills (processes for cross-process kinds, threads otherwise),
                  and report the CPU they consumed (default 0)
  -h, --help      this text";

pub struct Options {
    pub secs: f64,
    pub only: Option<String>,
    pub sleepers: usize,
    /// The arguments as given (minus cargo's `--bench`), for the printed command.
    pub shown: Vec<String>,
}

/// `Ok(None)`: help was asked for.
pub fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut opts = Options {
        secs: 2.0,
        only: None,
        sleepers: 0,
        shown: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            // Passed by `cargo bench` to harness = false targets.
            "--bench" => continue,
            "-h" | "--help" => return Ok(None),
            "--secs" => {
                let v = value("--secs")?;
                opts.secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                    .ok_or_else(|| format!("--secs: expected seconds in (0, 3600], got {v:?}"))?;
                opts.shown.extend(["--secs".to_string(), v]);
            }
            "--only" => {
                let v = value("--only")?;
                if v.is_empty() {
                    return Err("--only: empty substring".into());
                }
                opts.shown.extend(["--only".to_string(), v.clone()]);
                opts.only = Some(v);
            }
            "--sleepers" => {
                let v = value("--sleepers")?;
                opts.sleepers =
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| *n <= 1000)
                        .ok_or_else(|| {
                            format!("--sleepers: expected a count in 0..=1000, got {v:?}")
                        })?;
                opts.shown.extend(["--sleepers".to_string(), v]);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(opts))
}
