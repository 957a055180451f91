// SPDX-License-Identifier: GPL-2.0
//! `vslice-stress`: the guest half of the reliability suite.
//!
//!   vslice-stress load [--cycles N] [--run-ms MS] [--creators N] [--users N]
//!                      [--parents N] [--unbind-bound-ms MS] [--leak-every N]
//!                      [--max-seconds S]
//!   vslice-stress fuzz [--seeds A,B,..] [--iterations N]
//!   vslice-stress faultinj [--max-n N] [--stride S] [--keep-going 1]
//!   vslice-stress security --uid UID --parent BDF --given UUID --other UUID
//!
//! Common: [--seed S] [--report FILE]. Each scenario prints what it does,
//! a summary line, writes its JSON report to FILE and exits 1 on failure.
//! A failure names its seed (and step), so it replays exactly.

mod faultinj;
mod fuzz;
mod load;
mod report;
mod security;

use std::process::ExitCode;

use report::Report;
use vslice::sysfs;
use vslice_tests::health::Kmsg;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else {
        eprintln!("usage: vslice-stress load|fuzz|faultinj|security [options] (see the source header)");
        return ExitCode::from(2);
    };
    let opt = match vslice_tests::measure::options(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vslice-stress: {e}");
            return ExitCode::from(2);
        }
    };
    // A number option that does not parse is an error, not its default.
    let bad: Vec<&String> = opt
        .iter()
        .filter(|(k, _)| !["report", "parent", "given", "other", "seeds"].contains(&k.as_str()))
        .filter(|(_, v)| v.parse::<u64>().is_err())
        .map(|(k, _)| k)
        .collect();
    if !bad.is_empty() {
        eprintln!("vslice-stress: --{} needs a number", bad[0]);
        return ExitCode::from(2);
    }
    let num = |k: &str, d: u64| -> u64 { opt.get(k).and_then(|v| v.parse().ok()).unwrap_or(d) };
    let seed = num("seed", 1);
    let mut r = Report::new(&cmd, seed);
    match cmd.as_str() {
        "load" => {
            let o = load::Opts {
                cycles: num("cycles", 20),
                run_ms: num("run-ms", 1500),
                creators: num("creators", 2) as u32,
                users: num("users", 2) as u32,
                seed,
                unbind_bound_ms: num("unbind-bound-ms", 30_000),
                leak_every: num("leak-every", 10),
                parents: num("parents", 2) as usize,
                max_seconds: num("max-seconds", 0),
            };
            load::run(&o, &mut r);
        }
        "fuzz" => {
            let seeds: Vec<u64> = opt
                .get("seeds")
                .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
                .unwrap_or_else(|| vec![seed]);
            if seeds.is_empty() || opt.get("seeds").is_some_and(|v| v.split(',').count() != seeds.len()) {
                eprintln!("vslice-stress: --seeds needs numbers separated by commas");
                return ExitCode::from(2);
            }
            let parent = sysfs::pci_devices().into_iter().find(|b| sysfs::is_parent(b));
            match (parent, Kmsg::open()) {
                (Some(p), Ok(mut k)) => {
                    for s in &seeds {
                        println!("fuzz: seed {s}, {} steps on {p}", num("iterations", 300));
                        fuzz::run_seed(&p, *s, num("iterations", 300), &mut r, &mut k);
                        r.cycles += 1;
                        if !r.failures.is_empty() {
                            break;
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_secs(6));
                    r.leak_scan();
                }
                (None, _) => r.fail("no bound vslice parent".into()),
                (_, Err(e)) => r.fail(e.to_string()),
            }
        }
        "faultinj" => match Kmsg::open() {
            Ok(mut k) => faultinj::run(
                faultinj::How {
                    max_n: num("max-n", 3000),
                    keep_going: num("keep-going", 0) != 0,
                    stride: num("stride", 1),
                },
                &mut r,
                &mut k,
            ),
            Err(e) => r.fail(e.to_string()),
        },
        "security" => {
            let s = |k: &str| opt.get(k).cloned().unwrap_or_default();
            security::run(num("uid", 1000) as u32, &s("parent"), &s("given"), &s("other"), &mut r);
        }
        _ => {
            eprintln!("vslice-stress: unknown scenario '{cmd}'");
            return ExitCode::from(2);
        }
    }
    if r.finish(opt.get("report").map(String::as_str)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
