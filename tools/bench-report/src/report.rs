// SPDX-License-Identifier: GPL-2.0
//! The runs' JSON (what vslice-bench writes) and what they say together:
//! for every series and ratio the median across runs and the range (the
//! lowest and highest run), each ratio against its goal; facts the same
//! way; the markdown table docs/benchmarks.md shows.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// A goal for a ratio subject / peer, as vslice-bench writes it.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

impl Goal {
    pub fn value(self) -> f64 {
        match self {
            Goal::AtMost(v) | Goal::AtLeast(v) => v,
        }
    }

    pub fn met(self, x: f64) -> bool {
        match self {
            Goal::AtMost(v) => x <= v,
            Goal::AtLeast(v) => x >= v,
        }
    }

    fn text(self) -> String {
        match self {
            Goal::AtMost(v) => format!("≤ {v}"),
            Goal::AtLeast(v) => format!("≥ {v}"),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Series {
    pub label: String,
    pub median: f64,
    pub ratio: Option<f64>,
    #[serde(default)]
    pub goal: Option<Goal>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Row {
    pub id: String,
    pub what: String,
    pub unit: String,
    pub series: Vec<Series>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Curve {
    pub x: String,
    pub y: String,
    pub points: Vec<(f64, f64)>,
}

/// One run of vslice-bench.
#[derive(Clone, Debug, Deserialize)]
pub struct Run {
    pub meta: BTreeMap<String, String>,
    pub rows: Vec<Row>,
    pub facts: BTreeMap<String, f64>,
    #[serde(default)]
    pub curves: BTreeMap<String, Curve>,
    pub problems: Vec<String>,
    /// What the host's load average was around the run (set by the caller).
    #[serde(skip)]
    pub host_load: Option<String>,
}

/// Median, lowest and highest of some runs' values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    pub fn of(v: &[f64]) -> Option<Spread> {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: s[0],
            max: s[n - 1],
            runs: n,
        })
    }
}

/// One series across the runs.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesSum {
    pub label: String,
    pub value: Spread,
    /// None for the subject (the first series of a row).
    pub ratio: Option<Spread>,
    pub goal: Option<Goal>,
    /// Whether the goal held in every run (None without a goal).
    pub met_every_run: Option<bool>,
}

/// One measurement across the runs.
#[derive(Clone, Debug, Serialize)]
pub struct RowSum {
    pub id: String,
    pub what: String,
    pub unit: String,
    pub series: Vec<SeriesSum>,
}

/// Everything the runs say together.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub runs: usize,
    pub meta: Vec<BTreeMap<String, String>>,
    pub host_load: Vec<Option<String>>,
    pub rows: Vec<RowSum>,
    pub facts: BTreeMap<String, Spread>,
    /// Each run's curves, by name (run order).
    pub curves: BTreeMap<String, Vec<Curve>>,
    /// "run K: problem".
    pub problems: Vec<String>,
}

/// Puts the runs together; rows and series in the order the first run
/// that has them gives.
pub fn summarize(runs: &[Run]) -> Summary {
    let mut order: Vec<(String, String)> = Vec::new();
    for r in runs {
        for row in &r.rows {
            let k = (row.id.clone(), row.what.clone());
            if !order.contains(&k) {
                order.push(k);
            }
        }
    }
    let rows = order
        .iter()
        .map(|(id, what)| {
            let same: Vec<&Row> = runs
                .iter()
                .filter_map(|r| r.rows.iter().find(|x| &x.id == id && &x.what == what))
                .collect();
            let mut labels: Vec<&str> = Vec::new();
            for row in &same {
                for s in &row.series {
                    if !labels.contains(&s.label.as_str()) {
                        labels.push(&s.label);
                    }
                }
            }
            let series = labels
                .iter()
                .filter_map(|&l| {
                    let ss: Vec<&Series> = same
                        .iter()
                        .filter_map(|row| row.series.iter().find(|s| s.label == l))
                        .collect();
                    let value = Spread::of(&ss.iter().map(|s| s.median).collect::<Vec<_>>())?;
                    let ratios: Vec<f64> = ss.iter().filter_map(|s| s.ratio).collect();
                    let goal = ss.iter().find_map(|s| s.goal);
                    Some(SeriesSum {
                        label: l.to_string(),
                        value,
                        ratio: Spread::of(&ratios),
                        goal,
                        met_every_run: goal.map(|g| !ratios.is_empty() && ratios.iter().all(|&x| g.met(x))),
                    })
                })
                .collect();
            RowSum {
                id: id.clone(),
                what: what.clone(),
                unit: same.first().map(|r| r.unit.clone()).unwrap_or_default(),
                series,
            }
        })
        .collect();
    let mut fact_values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut curves: BTreeMap<String, Vec<Curve>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (k, r) in runs.iter().enumerate() {
        for (f, v) in &r.facts {
            fact_values.entry(f.clone()).or_default().push(*v);
        }
        for (name, c) in &r.curves {
            curves.entry(name.clone()).or_default().push(c.clone());
        }
        problems.extend(r.problems.iter().map(|p| format!("run {}: {p}", k + 1)));
    }
    Summary {
        runs: runs.len(),
        meta: runs.iter().map(|r| r.meta.clone()).collect(),
        host_load: runs.iter().map(|r| r.host_load.clone()).collect(),
        rows,
        facts: fact_values
            .into_iter()
            .filter_map(|(k, v)| Some((k, Spread::of(&v)?)))
            .collect(),
        curves,
        problems,
    }
}

fn num(x: f64) -> String {
    if x.abs() < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.0}")
    }
}

fn range(s: &Spread) -> String {
    format!("{} – {}", num(s.min), num(s.max))
}

/// The summary as markdown: the runs, the table, facts, problems.
pub fn markdown(s: &Summary) -> String {
    let mut o = String::new();
    let m = s.meta.first().cloned().unwrap_or_default();
    let get = |k: &str| m.get(k).map_or("?", String::as_str);
    let _ = writeln!(
        o,
        "{} run(s): kernel {}, parent {} ({} units), {} repetitions{}.",
        s.runs,
        get("kernel"),
        get("parent"),
        get("units"),
        get("reps"),
        if get("smoke") == "true" { " (smoke)" } else { "" }
    );
    if s.host_load.iter().any(Option::is_some) {
        let loads: Vec<String> = s
            .host_load
            .iter()
            .enumerate()
            .map(|(k, l)| format!("run {}: {}", k + 1, l.as_deref().unwrap_or("?")))
            .collect();
        let _ = writeln!(o, "Host: {}.", loads.join("; "));
    }
    let _ = writeln!(
        o,
        "\nValue: the median across runs of each run's median, and the range of those (lowest – highest run). \
         Ratio = the first series of the measurement / that series, per run; its median and range across runs."
    );
    let _ = writeln!(
        o,
        "\n| | measurement | series | unit | median | range | ratio | ratio range | goal |"
    );
    let _ = writeln!(o, "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |");
    for row in &s.rows {
        for (i, x) in row.series.iter().enumerate() {
            let first = i == 0;
            let (ratio, rrange) = x
                .ratio
                .as_ref()
                .map_or(("-".to_string(), String::new()), |r| (num(r.median), range(r)));
            let goal = match (x.goal, x.ratio) {
                (Some(g), Some(r)) => format!(
                    "{}: {}{}",
                    g.text(),
                    if g.met(r.median) { "met" } else { "**not met**" },
                    match x.met_every_run {
                        Some(true) => " (every run)",
                        Some(false) if g.met(r.median) => " (not in every run)",
                        _ => "",
                    }
                ),
                (Some(g), None) => format!("{}: no ratio", g.text()),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} (runs={}) | {} | {} | {} | {} | {} | {} |",
                if first { row.id.as_str() } else { "" },
                if first { row.what.as_str() } else { "" },
                x.label,
                x.value.runs,
                row.unit,
                num(x.value.median),
                range(&x.value),
                ratio,
                rrange,
                goal
            );
        }
    }
    if !s.facts.is_empty() {
        let _ = writeln!(o, "\n| fact | median | range |\n| --- | ---: | ---: |");
        for (k, v) in &s.facts {
            let _ = writeln!(o, "| {k} | {} | {} |", num(v.median), range(v));
        }
    }
    for p in &s.problems {
        let _ = writeln!(o, "\nproblem: {p}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(create: f64, mtty: f64, facts: f64) -> Run {
        let j = serde_json::json!({
            "meta": {"kernel": "7.3.4", "parent": "0000:00:03.0", "units": "64", "reps": "50"},
            "rows": [{"id": "P1", "what": "create", "unit": "us", "series": [
                {"label": "vslice", "n": 5, "median": create, "p10": 0, "p90": 0, "ratio": null},
                {"label": "mtty-1", "n": 5, "median": mtty, "p10": 0, "p90": 0,
                 "ratio": create / mtty, "goal": {"at_most": 1.5}}
            ]}],
            "facts": {"max": facts},
            "curves": {"p5.create_latency": {"x": "instances", "y": "us", "points": [[1.0, create]]}},
            "problems": []
        });
        serde_json::from_value(j).expect("a run")
    }

    #[test]
    fn spread_is_median_and_range() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).expect("values");
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        let s = Spread::of(&[4.0, 1.0]).expect("values");
        assert_eq!(s.median, 2.5);
        assert!(Spread::of(&[]).is_none());
        assert!(Spread::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn ratios_across_runs_against_their_goal() {
        let runs = [run(10.0, 10.0, 64.0), run(12.0, 6.0, 64.0), run(14.0, 10.0, 60.0)];
        let s = summarize(&runs);
        assert_eq!(s.runs, 3);
        let mt = &s.rows[0].series[1];
        let r = mt.ratio.expect("a ratio");
        assert_eq!((r.median, r.min, r.max), (1.4, 1.0, 2.0));
        assert_eq!(mt.goal, Some(Goal::AtMost(1.5)));
        assert_eq!(mt.met_every_run, Some(false));
        assert_eq!(s.rows[0].series[0].value.median, 12.0);
        assert!(s.rows[0].series[0].ratio.is_none());
        assert_eq!(s.facts["max"].min, 60.0);
        assert_eq!(s.curves["p5.create_latency"].len(), 3);
        let md = markdown(&s);
        assert!(
            md.contains(
                "| mtty-1 (runs=3) | us | 10 | 6.00 – 10 | 1.40 | 1.00 – 2.00 | ≤ 1.5: met (not in every run) |"
            ),
            "{md}"
        );
        assert!(md.contains("| max | 64 | 60 – 64 |"), "{md}");
    }

    #[test]
    fn a_goal_missed_says_so_and_problems_are_listed() {
        let mut runs = [run(20.0, 10.0, 1.0)];
        runs[0].problems.push("P5: empty".into());
        let md = markdown(&summarize(&runs));
        assert!(md.contains("≤ 1.5: **not met**"), "{md}");
        assert!(md.contains("problem: run 1: P5: empty"), "{md}");
    }
}
