//! `torture all`: every process scenario of the catalogue in turn, each with its defaults (the
//! quick "is everything still sound" run), then one table of verdicts; the exit code is the
//! worst of them (2 over 1 over 0).

use super::CATALOGUE;
use crate::cli::AllArgs;
use crate::report::{JunitCase, Verdict};
use serde::Serialize;
use std::time::Instant;

#[derive(Serialize)]
struct Row {
    scenario: &'static str,
    exit_code: u8,
    seconds: f64,
}

/// Runs `torture all`.
pub fn main(program: &str, args: &AllArgs) -> u8 {
    let mut rows = Vec::new();
    for s in CATALOGUE {
        let mut argv = vec![s.name().to_string()];
        if let Some(seed) = args.seed {
            argv.push("--seed".into());
            argv.push(seed.to_string());
        }
        crate::say!("== torture {}", argv.join(" "));
        let flags = match s.command().try_get_matches_from(&argv) {
            Ok(m) => m,
            Err(e) => {
                crate::warn!("torture all: {}: {}", s.name(), e.to_string().trim());
                return 2;
            }
        };
        let start = Instant::now();
        let code = s.main(program, &flags);
        rows.push(Row {
            scenario: s.name(),
            exit_code: code,
            seconds: start.elapsed().as_secs_f64(),
        });
        if crate::signals::received().is_some() {
            break;
        }
    }
    crate::say!("\n| scenario | verdict | seconds |\n|---|---|--:|");
    for r in &rows {
        let verdict = match r.exit_code {
            0 => "pass",
            1 => "FAIL",
            _ => "setup error / interrupted",
        };
        crate::say!("| {} | {verdict} | {:.1} |", r.scenario, r.seconds);
    }
    let mut code = rows
        .iter()
        .map(|r| r.exit_code)
        .max_by_key(|c| match c {
            0 => 0,
            1 => 1,
            _ => 2,
        })
        .unwrap_or(0);
    if let Some(path) = &args.json {
        if let Err(e) = crate::report::write_json(path, &rows) {
            crate::warn!("torture all: error: {e}");
            code = 2;
        }
    }
    if let Some(path) = &args.junit {
        let cases: Vec<JunitCase> = rows
            .iter()
            .map(|r| JunitCase {
                name: r.scenario.to_string(),
                verdict: if r.exit_code == 0 {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                },
                message: (r.exit_code != 0).then(|| {
                    format!(
                        "torture {} exited {} (its report is in the output above)",
                        r.scenario, r.exit_code
                    )
                }),
                output: format!("{:.1} s", r.seconds),
                replay: format!("{program} {}", r.scenario),
            })
            .collect();
        if let Err(e) = crate::report::write_junit(path, "torture all", &cases) {
            crate::warn!("torture all: error: {e}");
            code = 2;
        }
    }
    code
}
