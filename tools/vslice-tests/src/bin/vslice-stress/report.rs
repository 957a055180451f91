// SPDX-License-Identifier: GPL-2.0
//! What a scenario counted, and its JSON report. A `Tally` belongs to one
//! thread; the scenario merges them into its `Report`.

use std::collections::BTreeMap;
use std::io;

use serde::Serialize;
use vslice_tests::health;
pub use vslice_tests::measure::percentile;
use vslice_tests::measure::rounded;

/// Seeded, reproducible randomness (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent` %.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A value at a boundary of a field whose valid values are 0..max:
    /// 0, 1, max - 1, max, max + 1, `U32_MAX`, `U32_MAX` - 1, half of
    /// `U32_MAX` or `U64_MAX`. Random values almost never land on these.
    pub fn edge(&mut self, max: u64) -> u64 {
        let v = [
            0,
            1,
            max.saturating_sub(1),
            max,
            max.saturating_add(1),
            u32::MAX as u64,
            u32::MAX as u64 - 1,
            u32::MAX as u64 / 2 + 1,
            u64::MAX,
        ];
        *self.pick(&v)
    }

    /// `edge(max)` half of the time, else uniform in 0..max + 2.
    pub fn near(&mut self, max: u64) -> u64 {
        if self.chance(50) {
            self.edge(max)
        } else {
            self.below(max.saturating_add(2))
        }
    }

    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// Errors a user may see while a parent goes away under it: the device
/// or the file is gone, the parent is full or busy, the driver asked for
/// the device back (REQ, counted as ECONNABORTED).
pub const CLEAN: &[&str] = &[
    "ENODEV",
    "ENOENT",
    "EIO",
    "ENOSPC",
    "EBUSY",
    "EAGAIN",
    "ENXIO",
    "ECONNABORTED",
];

/// What fault injection adds: a failed allocation, reported as such.
pub const CLEAN_UNDER_FAULTS: &[&str] = &["ENOMEM"];

/// One thread's counts.
#[derive(Default)]
pub struct Tally {
    /// Errors that are also clean here (besides `CLEAN`).
    pub also_clean: &'static [&'static str],
    pub ops: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    /// Errors outside `CLEAN` (first few messages kept).
    pub unclean: Vec<String>,
    pub unclean_count: u64,
}

impl Tally {
    pub fn ok(&mut self, op: &str) {
        *self.ops.entry(op.into()).or_default() += 1;
    }

    /// Counts a failed `op`; returns the error's name.
    pub fn err(&mut self, op: &str, e: &io::Error) -> String {
        let name = health::error_name(e);
        *self.ops.entry(op.into()).or_default() += 1;
        *self.errors.entry(format!("{op}:{name}")).or_default() += 1;
        let clean = CLEAN.contains(&name.as_str()) || self.also_clean.contains(&name.as_str());
        if !clean {
            self.unclean(format!("{op}: {e} ({name})"));
        }
        name
    }

    pub fn unclean(&mut self, msg: String) {
        self.unclean_count += 1;
        if self.unclean.len() < 10 {
            self.unclean.push(msg);
        }
    }

    pub fn merge(&mut self, o: Tally) {
        for (k, v) in o.ops {
            *self.ops.entry(k).or_default() += v;
        }
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.unclean_count += o.unclean_count;
        for m in o.unclean {
            if self.unclean.len() < 10 {
                self.unclean.push(m);
            }
        }
    }
}

/// A scenario's report.
#[derive(Default)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub cycles: u64,
    pub tally: Tally,
    /// Unbind (PCI remove or driver unbind) times, ms.
    pub unbind_ms: Vec<f64>,
    pub leaks: Vec<String>,
    pub splats: Vec<String>,
    /// Why the scenario failed (empty: passed).
    pub failures: Vec<String>,
    /// Scenario-specific numbers.
    pub extra: BTreeMap<String, u64>,
}

/// The JSON report, field by field as docs/reliability.md ("Reports")
/// describes it.
#[derive(Serialize)]
struct Json<'a> {
    scenario: &'a str,
    seed: u64,
    passed: bool,
    cycles: u64,
    operations: &'a BTreeMap<String, u64>,
    operations_total: u64,
    errors_by_errno: BTreeMap<&'a str, u64>,
    errors_by_op: &'a BTreeMap<String, u64>,
    unclean_errors: u64,
    unclean_examples: &'a [String],
    unbind_ms: Spread,
    leaks: usize,
    leak_reports: &'a [String],
    splats: &'a [String],
    failures: &'a [String],
    extra: &'a BTreeMap<String, u64>,
}

/// Times in ms, to 0.1 ms.
#[derive(Serialize)]
struct Spread {
    count: usize,
    median: f64,
    p99: f64,
    max: f64,
}

impl Report {
    /// Adds a kmemleak scan's reports; a scan that cannot run fails.
    pub fn leak_scan(&mut self) {
        match health::kmemleak_scan() {
            Ok(l) => self.leaks.extend(l),
            Err(e) => self.fail(format!("{e}")),
        }
    }

    pub fn new(scenario: &str, seed: u64) -> Report {
        Report {
            scenario: scenario.into(),
            seed,
            ..Default::default()
        }
    }

    pub fn fail(&mut self, why: String) {
        eprintln!("FAIL: {why}");
        if self.failures.len() < 20 {
            self.failures.push(why);
        }
    }

    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.tally.unclean_count == 0 && self.leaks.is_empty() && self.splats.is_empty()
    }

    /// The report as one line of JSON.
    pub fn json(&self) -> String {
        let mut errno: BTreeMap<&str, u64> = BTreeMap::new();
        for (k, v) in &self.tally.errors {
            let name = k.rsplit(':').next().unwrap_or(k);
            *errno.entry(name).or_default() += v;
        }
        let ms = &self.unbind_ms;
        let j = Json {
            scenario: &self.scenario,
            seed: self.seed,
            passed: self.passed(),
            cycles: self.cycles,
            operations: &self.tally.ops,
            operations_total: self.tally.ops.values().sum(),
            errors_by_errno: errno,
            errors_by_op: &self.tally.errors,
            unclean_errors: self.tally.unclean_count,
            unclean_examples: &self.tally.unclean,
            unbind_ms: Spread {
                count: ms.len(),
                median: rounded(percentile(ms, 50.0), 1),
                p99: rounded(percentile(ms, 99.0), 1),
                max: rounded(ms.iter().copied().fold(0.0, f64::max), 1),
            },
            leaks: self.leaks.len(),
            leak_reports: &self.leaks,
            splats: &self.splats,
            failures: &self.failures,
            extra: &self.extra,
        };
        serde_json::to_string(&j).expect("string-keyed maps always serialize")
    }

    /// Prints the summary, writes the JSON to `path`.
    pub fn finish(&self, path: Option<&str>) -> bool {
        let ok = self.passed();
        println!(
            "{}: seed {} cycles {} operations {} unclean {} unbind max {:.0} ms p99 {:.0} ms leaks {} splats {}: {}",
            self.scenario,
            self.seed,
            self.cycles,
            self.tally.ops.values().sum::<u64>(),
            self.tally.unclean_count,
            self.unbind_ms.iter().copied().fold(0.0, f64::max),
            percentile(&self.unbind_ms, 99.0),
            self.leaks.len(),
            self.splats.len(),
            if ok { "passed" } else { "FAILED" }
        );
        for f in &self.failures {
            println!("  failure: {f}");
        }
        for u in &self.tally.unclean {
            println!("  unclean: {u}");
        }
        for s in self.splats.iter().take(5) {
            println!("  splat: {s}");
        }
        for l in self.leaks.iter().take(3) {
            println!("  leak: {l}");
        }
        if let Some(p) = path {
            if let Err(e) = std::fs::write(p, self.json() + "\n") {
                println!("  cannot write {p}: {e}");
                return false;
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_json() {
        let mut r = Report::new("load", 7);
        r.tally.ok("create");
        r.tally.err("create", &io::Error::from_raw_os_error(libc::ENOSPC));
        r.tally.err("round", &io::Error::other("checksum \"x\" differs"));
        r.unbind_ms = vec![12.34, 5.0, 99.95];
        let j = r.json();
        assert!(!j.contains('\n'), "one line: {j}");
        let v: serde_json::Value = serde_json::from_str(&j).expect("valid JSON");
        assert_eq!(v["errors_by_errno"], serde_json::json!({"DATA": 1, "ENOSPC": 1}));
        assert_eq!(v["operations_total"], 3);
        assert_eq!(v["unclean_errors"], 1);
        assert_eq!(v["unclean_examples"][0], "round: checksum \"x\" differs (DATA)");
        assert_eq!(
            v["unbind_ms"],
            serde_json::json!({"count": 3, "median": 12.3, "p99": 100.0, "max": 100.0})
        );
        assert_eq!(v["passed"], false);
        assert!(!r.passed());
    }

    #[test]
    fn rng_is_reproducible() {
        let a: Vec<u64> = (0..4).scan(Rng::new(9), |r, _| Some(r.next())).collect();
        let b: Vec<u64> = (0..4).scan(Rng::new(9), |r, _| Some(r.next())).collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
