// SPDX-License-Identifier: GPL-2.0
//! `vslice-stress [--report FILE] load|fuzz|faultinj|security [options]`:
//! the guest half of the reliability suite (`--help` on each scenario
//! lists its options). Each scenario prints what it does, a summary line,
//! writes its JSON report to FILE and exits 1 on failure. A failure names
//! its seed (and step), so it replays exactly.

mod faultinj;
mod fuzz;
mod load;
mod report;
mod security;

use std::process::ExitCode;

use argh::FromArgs;
use report::Report;
use vslice::sysfs;
use vslice_tests::health::Kmsg;
use vslice_tests::measure::List;

/// The guest half of the reliability suite (docs/reliability.md): runs one
/// scenario, prints what it does and a summary line; exit status 1 if it
/// failed.
#[derive(FromArgs)]
struct Cli {
    /// write the scenario's JSON report to FILE
    #[argh(option, arg_name = "FILE")]
    report: Option<String>,
    #[argh(subcommand)]
    scenario: Scenario,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Scenario {
    Load(load::Opts),
    Fuzz(Fuzz),
    Faultinj(faultinj::How),
    Security(Security),
}

/// Seeded fuzzing of sysfs, VFIO ioctls, regions, mmap and eventfds on
/// one parent.
#[derive(FromArgs)]
#[argh(subcommand, name = "fuzz")]
struct Fuzz {
    /// seeds to run, one after the other (default 1)
    #[argh(option, arg_name = "A,B,..", default = "List(vec![1])")]
    seeds: List<u64>,
    /// steps per seed (default 300)
    #[argh(option, arg_name = "N", default = "300")]
    iterations: u64,
}

/// What a non-root user can and cannot do, given one instance.
#[derive(FromArgs)]
#[argh(subcommand, name = "security")]
struct Security {
    /// the user (default 1000)
    #[argh(option, default = "1000")]
    uid: u32,
    /// the parent (a PCI address)
    #[argh(option, arg_name = "BDF")]
    parent: String,
    /// the instance the user was given
    #[argh(option, arg_name = "UUID")]
    given: String,
    /// an instance the user was not given
    #[argh(option, arg_name = "UUID")]
    other: String,
}

fn main() -> ExitCode {
    let cli: Cli = vslice_args::parse();
    // faultinj and security take no seed: their report says 0.
    let (name, seed) = match &cli.scenario {
        Scenario::Load(o) => ("load", o.seed),
        Scenario::Fuzz(f) => ("fuzz", f.seeds.0.first().copied().unwrap_or(0)),
        Scenario::Faultinj(_) => ("faultinj", 0),
        Scenario::Security(_) => ("security", 0),
    };
    let mut r = Report::new(name, seed);
    match &cli.scenario {
        Scenario::Load(o) => load::run(o, &mut r),
        Scenario::Fuzz(f) => {
            let parent = sysfs::pci_devices().into_iter().find(|b| sysfs::is_parent(b));
            match (parent, Kmsg::open()) {
                (Some(p), Ok(mut k)) => {
                    for s in &f.seeds.0 {
                        println!("fuzz: seed {s}, {} steps on {p}", f.iterations);
                        fuzz::run_seed(&p, *s, f.iterations, &mut r, &mut k);
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
        Scenario::Faultinj(how) => match Kmsg::open() {
            Ok(mut k) => faultinj::run(*how, &mut r, &mut k),
            Err(e) => r.fail(e.to_string()),
        },
        Scenario::Security(s) => security::run(s.uid, &s.parent, &s.given, &s.other, &mut r),
    }
    if r.finish(cli.report.as_deref()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
