// SPDX-License-Identifier: GPL-2.0
//! Small helpers shared by the stress and bench tools: comma-separated
//! option values, nearest-rank percentiles and JSON string quoting (the
//! static guest binaries carry no serde).

use std::fmt::Write;
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

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `x` as a JSON number (non-finite values, which JSON lacks, as null).
pub fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".into()
    }
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
    fn json_quoting() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(json_num(1.5), "1.500");
        assert_eq!(json_num(f64::INFINITY), "null");
    }
}
