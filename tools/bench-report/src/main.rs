// SPDX-License-Identifier: GPL-2.0
//! vslice-bench-report: puts one or more vslice-bench runs together
//! (scripts/bench.sh runs it on the host after `make bench RUNS=N`):
//! the markdown table docs/benchmarks.md shows (every value and ratio as
//! the median across runs with its range, each ratio against its goal),
//! the summary as JSON and the charts as SVG. A file HOST-LOAD next to a
//! run's JSON (one line, "before -> after" of /proc/loadavg's 1-minute
//! average) is reported with the run. Exits 1 if a run reported a
//! problem.

mod chart;
mod report;

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use argh::FromArgs;

/// Puts vslice-bench runs together: table, JSON summary, charts.
#[derive(FromArgs)]
struct Cli {
    /// write the markdown table here (default: standard output)
    #[argh(option, arg_name = "FILE")]
    md: Option<String>,
    /// write the summary as JSON here
    #[argh(option, arg_name = "FILE")]
    json: Option<String>,
    /// write the charts as SVG here
    #[argh(option, arg_name = "FILE")]
    svg: Option<String>,
    /// the runs' JSON files (vslice-bench --json)
    #[argh(positional, arg_name = "RUN.json")]
    runs: Vec<String>,
}

fn read_run(path: &str) -> Result<report::Run, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut run: report::Run = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let load = Path::new(path).with_file_name("HOST-LOAD");
    run.host_load = fs::read_to_string(load).ok().map(|s| s.trim().to_string());
    Ok(run)
}

fn main() -> ExitCode {
    let cli: Cli = vslice_args::parse();
    if cli.runs.is_empty() {
        eprintln!("vslice-bench-report: no run given");
        return ExitCode::from(vslice_args::USAGE_ERROR);
    }
    let runs = match cli.runs.iter().map(|p| read_run(p)).collect::<Result<Vec<_>, _>>() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vslice-bench-report: {e}");
            return ExitCode::FAILURE;
        }
    };
    let s = report::summarize(&runs);
    let md = report::markdown(&s);
    let mut ok = true;
    let mut put = |what: &str, path: &str, r: Result<(), String>| {
        if let Err(e) = r {
            eprintln!("vslice-bench-report: {what} {path}: {e}");
            ok = false;
        }
    };
    match &cli.md {
        Some(f) => put("markdown", f, fs::write(f, &md).map_err(|e| e.to_string())),
        None => print!("{md}"),
    }
    if let Some(f) = &cli.json {
        let j = serde_json::to_string_pretty(&s).map_err(|e| e.to_string());
        put(
            "JSON",
            f,
            j.and_then(|j| fs::write(f, j + "\n").map_err(|e| e.to_string())),
        );
    }
    if let Some(f) = &cli.svg {
        put("SVG", f, chart::write(&s, f).map_err(|e| e.to_string()));
    }
    if !ok {
        return ExitCode::FAILURE;
    }
    if s.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("vslice-bench-report: {} problem(s) in the runs", s.problems.len());
        ExitCode::FAILURE
    }
}
