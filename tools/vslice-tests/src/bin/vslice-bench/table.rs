// SPDX-License-Identifier: GPL-2.0
//! The bench's results: rows of series (the subject first, then its
//! peers, each ratio with the goal it has, if any), curves (a quantity
//! against a size), printed as a table (median, p10, p90, ratio) and as
//! JSON (tools/bench-report reads it).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use vslice_tests::measure::{percentile, rounded};

/// The JSON results (scripts/bench-md.py reads them); numbers to 0.001.
#[derive(Serialize)]
struct Json<'a> {
    meta: &'a BTreeMap<String, String>,
    rows: Vec<RowJson<'a>>,
    facts: BTreeMap<&'a str, f64>,
    curves: &'a BTreeMap<String, Curve>,
    problems: &'a [String],
}

#[derive(Serialize)]
struct RowJson<'a> {
    id: &'a str,
    what: &'a str,
    unit: &'a str,
    series: Vec<SeriesJson<'a>>,
}

#[derive(Serialize)]
struct SeriesJson<'a> {
    label: &'a str,
    n: usize,
    median: f64,
    p10: f64,
    p90: f64,
    /// None for the subject itself.
    ratio: Option<f64>,
    /// What the ratio should be, if the project set a goal for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    goal: Option<Goal>,
}

/// A goal for a ratio subject / peer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

/// A quantity against a size (P5's create latency against the instance
/// count, P4's unbind time against the instances unbound): one point per
/// size, the median of its samples.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Curve {
    pub x: String,
    pub y: String,
    pub points: Vec<(f64, f64)>,
}

/// Microseconds since `t`.
pub fn us(t: std::time::Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

/// Milliseconds since `t`.
pub fn ms(t: std::time::Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// The samples of one thing measured.
pub struct Series {
    pub label: String,
    pub v: Vec<f64>,
}

impl Series {
    pub fn new(label: impl Into<String>, v: Vec<f64>) -> Series {
        Series { label: label.into(), v }
    }

    pub fn median(&self) -> f64 {
        percentile(&self.v, 50.0)
    }
}

/// One measurement: `series[0]` is the subject (vslice, or what the row
/// is about); every other series is a peer, with ratio subject / peer.
pub struct Row {
    pub id: &'static str,
    pub what: String,
    pub unit: &'static str,
    pub series: Vec<Series>,
    /// Goals, by series index (a peer's).
    goals: Vec<(usize, Goal)>,
}

impl Row {
    pub fn new(id: &'static str, what: impl Into<String>, unit: &'static str, series: Vec<Series>) -> Row {
        Row {
            id,
            what: what.into(),
            unit,
            series,
            goals: Vec::new(),
        }
    }

    /// Sets the goal for the ratio against the peer labelled `peer`.
    pub fn goal(mut self, peer: &str, g: Goal) -> Row {
        if let Some(i) = self.series.iter().position(|s| s.label == peer) {
            self.goals.push((i, g));
        }
        self
    }

    fn goal_of(&self, i: usize) -> Option<Goal> {
        self.goals.iter().find(|(k, _)| *k == i).map(|(_, g)| *g)
    }

    /// subject median / series `i` median.
    pub fn ratio(&self, i: usize) -> f64 {
        self.series[0].median() / self.series[i].median()
    }
}

/// Everything one run measured.
#[derive(Default)]
pub struct Results {
    pub rows: Vec<Row>,
    /// Single numbers (maximum instances, counts), by name.
    pub facts: BTreeMap<String, f64>,
    /// Curves, by name.
    pub curves: BTreeMap<String, Curve>,
    /// Why the run is invalid (empty: valid).
    pub problems: Vec<String>,
}

impl Results {
    pub fn push(&mut self, r: Row) {
        for s in &r.series {
            if s.v.is_empty() || s.v.iter().any(|x| !x.is_finite()) {
                self.problems.push(format!(
                    "{} {}: {}: no valid samples ({:?})",
                    r.id, r.what, s.label, s.v
                ));
            }
        }
        self.rows.push(r);
    }

    pub fn fact(&mut self, k: impl Into<String>, v: f64) {
        self.facts.insert(k.into(), v);
    }

    /// Adds point (x, y) to curve `name` (axes `x` and `y` name them).
    pub fn point(&mut self, name: &str, x_axis: &str, y_axis: &str, x: f64, y: f64) {
        let c = self.curves.entry(name.to_string()).or_insert_with(|| Curve {
            x: x_axis.to_string(),
            y: y_axis.to_string(),
            points: Vec::new(),
        });
        c.points.push((rounded(x, 3), rounded(y, 3)));
    }

    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{:<58} {:>11} {:>11} {:>11} {:>9}",
            "measurement / series", "median", "p10", "p90", "ratio"
        );
        for r in &self.rows {
            let _ = writeln!(o, "{} {} ({})", r.id, r.what, r.unit);
            for (i, s) in r.series.iter().enumerate() {
                let ratio = if i == 0 {
                    "-".to_string()
                } else {
                    format!("{:.2}", r.ratio(i))
                };
                let _ = writeln!(
                    o,
                    "  {:<56} {:>11.1} {:>11.1} {:>11.1} {:>9}",
                    format!("{} (n={})", s.label, s.v.len()),
                    s.median(),
                    percentile(&s.v, 10.0),
                    percentile(&s.v, 90.0),
                    ratio
                );
            }
        }
        for (k, v) in &self.facts {
            let _ = writeln!(o, "{k}: {v}");
        }
        o
    }

    /// The results and `meta` as one line of JSON.
    pub fn json(&self, meta: &BTreeMap<String, String>) -> String {
        let n = |x: f64| rounded(x, 3);
        let rows = self
            .rows
            .iter()
            .map(|r| RowJson {
                id: r.id,
                what: &r.what,
                unit: r.unit,
                series: r
                    .series
                    .iter()
                    .enumerate()
                    .map(|(i, s)| SeriesJson {
                        label: &s.label,
                        n: s.v.len(),
                        median: n(s.median()),
                        p10: n(percentile(&s.v, 10.0)),
                        p90: n(percentile(&s.v, 90.0)),
                        ratio: (i > 0).then(|| n(r.ratio(i))),
                        goal: r.goal_of(i),
                    })
                    .collect(),
            })
            .collect();
        let j = Json {
            meta,
            rows,
            facts: self.facts.iter().map(|(k, v)| (k.as_str(), n(*v))).collect(),
            curves: &self.curves,
            problems: &self.problems,
        };
        serde_json::to_string(&j).expect("string-keyed maps always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_table_and_json() {
        let mut r = Results::default();
        r.push(
            Row::new(
                "P9",
                "thing",
                "us",
                vec![
                    Series::new("vslice", vec![4.0, 4.0, 4.0]),
                    Series::new("peer", vec![2.0, 2.0]),
                ],
            )
            .goal("peer", Goal::AtMost(1.5)),
        );
        r.push(Row::new("P9", "empty", "us", vec![Series::new("vslice", vec![])]));
        r.fact("max", 64.0);
        r.point("p5", "instances", "us", 1.0, 10.0);
        r.point("p5", "instances", "us", 2.0, 12.5);
        assert!((r.rows[0].ratio(1) - 2.0).abs() < 1e-9);
        assert_eq!(r.problems.len(), 1, "an empty series is a problem");
        let t = r.table();
        assert!(t.contains("peer (n=2)") && t.contains("2.00"), "{t}");
        let j = r.json(&BTreeMap::from([("kernel".to_string(), "7.3".to_string())]));
        let v: serde_json::Value = serde_json::from_str(&j).expect("valid JSON");
        assert_eq!(v["rows"][0]["series"][1]["ratio"], 2.0);
        assert_eq!(v["rows"][0]["series"][0]["ratio"], serde_json::Value::Null);
        assert_eq!(v["rows"][0]["series"][1]["goal"]["at_most"], 1.5);
        assert!(v["rows"][0]["series"][0].get("goal").is_none());
        assert_eq!(v["curves"]["p5"]["points"][1], serde_json::json!([2.0, 12.5]));
        assert_eq!(v["curves"]["p5"]["x"], "instances");
        assert_eq!(v["rows"][1]["series"][0]["n"], 0);
        assert_eq!(v["facts"]["max"], 64.0);
        assert_eq!(v["meta"]["kernel"], "7.3");
        assert_eq!(v["problems"].as_array().map(Vec::len), Some(1));
    }
}
