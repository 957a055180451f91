// SPDX-License-Identifier: GPL-2.0
//! The charts, one SVG (plotters): every ratio's median across runs with
//! its run-to-run range against its goal; P5's create latency against the
//! number of instances; P4's unbind time against the instances unbound.
//! A curve is drawn once per run, so the spread between runs shows.

use std::error::Error;

use plotters::prelude::*;

use crate::report::{Curve, Summary};

const WIDTH: u32 = 1200;
const LABEL_AREA: u32 = 560;
const ROW_PX: u32 = 22;
const CURVE_PX: u32 = 360;

/// One ratio to draw: its label, median, range and goal.
struct Ratio {
    label: String,
    median: f64,
    min: f64,
    max: f64,
    goal: Option<f64>,
}

fn ratios(s: &Summary) -> Vec<Ratio> {
    let mut v = Vec::new();
    for row in &s.rows {
        for x in &row.series {
            let Some(r) = x.ratio else { continue };
            // The measurement is shortened, never the peer.
            let room = 92usize.saturating_sub(x.label.chars().count() + row.id.len() + 5);
            let mut what = row.what.clone();
            if what.chars().count() > room {
                what = what.chars().take(room.saturating_sub(3)).collect::<String>() + "...";
            }
            let label = format!("{} {what} / {}", row.id, x.label);
            v.push(Ratio {
                label,
                median: r.median,
                min: r.min,
                max: r.max,
                goal: x.goal.map(|g| g.value()),
            });
        }
    }
    v
}

/// Writes the charts of `s` to `path`.
pub fn write(s: &Summary, path: &str) -> Result<(), Box<dyn Error>> {
    let rs = ratios(s);
    let top = 80 + ROW_PX * rs.len().max(1) as u32;
    let root = SVGBackend::new(path, (WIDTH, top + 2 * CURVE_PX)).into_drawing_area();
    root.fill(&WHITE)?;
    let (upper, lower) = root.split_vertically(top);
    draw_ratios(&upper, &rs, s.runs)?;
    let (p5, p4) = lower.split_vertically(CURVE_PX);
    draw_curves(
        &p5,
        "P5: create latency as the parent fills (each run's median of its fills)",
        &[("p5.create_latency", "create")],
        s,
    )?;
    draw_curves(
        &p4,
        "P4: unbind time against the instances unbound (each run's median)",
        &[
            ("p4.unbind_idle", "unbind, idle"),
            ("p4.unbind_storm", "unbind under a create/remove storm"),
            ("p4.remove_one_by_one", "removing them one by one"),
        ],
        s,
    )?;
    root.present()?;
    Ok(())
}

fn draw_ratios<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    rs: &[Ratio],
    runs: usize,
) -> Result<(), Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    let lo = rs
        .iter()
        .flat_map(|r| [r.min, r.goal.unwrap_or(r.min)])
        .fold(1.0f64, f64::min)
        .max(1e-4)
        / 1.5;
    let hi = rs
        .iter()
        .flat_map(|r| [r.max, r.goal.unwrap_or(r.max)])
        .fold(1.0f64, f64::max)
        * 1.5;
    let n = rs.len();
    let labels: Vec<&str> = rs.iter().map(|r| r.label.as_str()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "vslice / peer over {runs} run(s): dot = median across runs, bar = lowest to highest run, red tick = goal"
            ),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(LABEL_AREA)
        .build_cartesian_2d((lo..hi).log_scale(), -0.6f64..(n as f64 - 0.4))?;
    // Row i is drawn at y = n - 1 - i, so the first is on top.
    let name = move |y: &f64| {
        let k = y.round();
        if (y - k).abs() > 1e-6 || k < 0.0 || k >= n as f64 {
            return String::new();
        }
        labels.get(n - 1 - k as usize).map_or(String::new(), |l| l.to_string())
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(2 * n + 2)
        .y_label_formatter(&name)
        .y_label_style(("sans-serif", 12))
        .x_desc("ratio (log scale; 1 = as fast or as small as the peer)")
        .draw()?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, -0.6), (1.0, n as f64 - 0.4)],
        BLACK.mix(0.3),
    )))?;
    for (i, r) in rs.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(r.min, y), (r.max, y)],
            BLUE.stroke_width(3),
        )))?;
        chart.draw_series(std::iter::once(Circle::new((r.median, y), 4, BLUE.filled())))?;
        if let Some(g) = r.goal {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(g, y - 0.4), (g, y + 0.4)],
                RED.stroke_width(3),
            )))?;
        }
    }
    Ok(())
}

fn draw_curves<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    which: &[(&str, &str)],
    s: &Summary,
) -> Result<(), Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    let found: Vec<(usize, &str, &Vec<Curve>)> = which
        .iter()
        .enumerate()
        .filter_map(|(k, (name, legend))| Some((k, *legend, s.curves.get(*name)?)))
        .collect();
    let pts = found
        .iter()
        .flat_map(|(_, _, cs)| cs.iter().flat_map(|c| c.points.iter()));
    let (xmax, ymax) = pts.fold((1.0f64, 1.0f64), |(a, b), &(x, y)| (a.max(x), b.max(y)));
    let (xd, yd) = found
        .first()
        .and_then(|(_, _, cs)| cs.first())
        .map_or((String::new(), String::new()), |c| (c.x.clone(), c.y.clone()));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..xmax * 1.05, 0.0..ymax * 1.1)?;
    chart
        .configure_mesh()
        .x_desc(xd)
        .y_desc(yd)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    if found.is_empty() {
        chart.draw_series(std::iter::once(Text::new(
            "no data in these runs",
            (xmax / 3.0, ymax / 2.0),
            ("sans-serif", 16),
        )))?;
        return Ok(());
    }
    for (k, legend, cs) in found {
        let color = Palette99::pick(k).to_rgba();
        for (run, c) in cs.iter().enumerate() {
            chart.draw_series(c.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            let line = chart.draw_series(LineSeries::new(c.points.iter().copied(), color.stroke_width(2)))?;
            if run == 0 {
                line.label(legend)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
