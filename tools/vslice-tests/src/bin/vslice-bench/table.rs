// SPDX-License-Identifier: GPL-2.0
//! The bench's results: rows of series (the subject first, then its
//! peers), printed as a table (median, p10, p90, ratio) and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use vslice_tests::measure::{json_num, json_str, percentile};

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
}

impl Row {
    pub fn new(id: &'static str, what: impl Into<String>, unit: &'static str, series: Vec<Series>) -> Row {
        Row {
            id,
            what: what.into(),
            unit,
            series,
        }
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

    pub fn json(&self, meta: &BTreeMap<String, String>) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                let series: Vec<String> = r
                    .series
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        format!(
                            "{{\"label\": {}, \"n\": {}, \"median\": {}, \"p10\": {}, \"p90\": {}, \"ratio\": {}}}",
                            json_str(&s.label),
                            s.v.len(),
                            json_num(s.median()),
                            json_num(percentile(&s.v, 10.0)),
                            json_num(percentile(&s.v, 90.0)),
                            if i == 0 { "null".into() } else { json_num(r.ratio(i)) }
                        )
                    })
                    .collect();
                format!(
                    "{{\"id\": {}, \"what\": {}, \"unit\": {}, \"series\": [{}]}}",
                    json_str(r.id),
                    json_str(&r.what),
                    json_str(r.unit),
                    series.join(", ")
                )
            })
            .collect();
        let facts: Vec<String> = self
            .facts
            .iter()
            .map(|(k, v)| format!("{}: {}", json_str(k), json_num(*v)))
            .collect();
        let meta: Vec<String> = meta
            .iter()
            .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
            .collect();
        let problems: Vec<String> = self.problems.iter().map(|p| json_str(p)).collect();
        format!(
            "{{\"meta\": {{{}}}, \"rows\": [{}], \"facts\": {{{}}}, \"problems\": [{}]}}",
            meta.join(", "),
            rows.join(", "),
            facts.join(", "),
            problems.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_table_and_json() {
        let mut r = Results::default();
        r.push(Row::new(
            "P9",
            "thing",
            "us",
            vec![
                Series::new("vslice", vec![4.0, 4.0, 4.0]),
                Series::new("peer", vec![2.0, 2.0]),
            ],
        ));
        r.push(Row::new("P9", "empty", "us", vec![Series::new("vslice", vec![])]));
        r.fact("max", 64.0);
        assert!((r.rows[0].ratio(1) - 2.0).abs() < 1e-9);
        assert_eq!(r.problems.len(), 1, "an empty series is a problem");
        let t = r.table();
        assert!(t.contains("peer (n=2)") && t.contains("2.00"), "{t}");
        let j = r.json(&BTreeMap::from([("kernel".to_string(), "7.3".to_string())]));
        assert!(j.contains("\"ratio\": 2.000"), "{j}");
        assert!(
            j.contains("\"max\": 64.000") && j.contains("\"kernel\": \"7.3\""),
            "{j}"
        );
    }
}
