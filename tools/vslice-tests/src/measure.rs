// SPDX-License-Identifier: GPL-2.0
//! Small helpers shared by the stress and bench tools: comma-separated
//! option values, nearest-rank percentiles, rounding for the reports.

use std::str::FromStr;

/// A comma-separated option value (`--seeds 1,2,3`); argh would take a
/// `Vec` as a repeated option instead.
#[derive(Clone, Debug, PartialEq)]
pub struct List<T>(pub Vec<T>);

impl<T: FromStr> FromStr for List<T> {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(|x| x.parse().map_err(|_| format!("'{x}' in '{s}' does not parse")))
            .collect::<Result<_, _>>()
            .map(List)
    }
}

/// The `p`-th percentile (0..=100) of `v`, nearest rank; 0 if empty.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// `x` rounded to `places` decimals, as the reports give numbers (a
/// non-finite value stays so; serde_json writes it as null).
pub fn rounded(x: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (x * k).round() / k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 10.0), 10.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn comma_separated_lists() {
        assert_eq!("1,2,3".parse(), Ok(List(vec![1u64, 2, 3])));
        assert_eq!("P1".parse(), Ok(List(vec!["P1".to_string()])));
        assert!("1,,3".parse::<List<u64>>().is_err());
        assert!("".parse::<List<u64>>().is_err());
    }

    #[test]
    fn rounding() {
        assert_eq!(rounded(2.0625, 3), 2.063);
        assert_eq!(rounded(99.95, 1), 100.0);
        assert_eq!(rounded(-1.25, 0), -1.0);
        assert!(rounded(f64::NAN, 3).is_nan() && rounded(f64::INFINITY, 1).is_infinite());
    }
}
