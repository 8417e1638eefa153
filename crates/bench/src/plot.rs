//! The latency-throughput plot (SVG, drawn with plotters).

use crate::error::{BenchError, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One point of a curve: a client count and what it achieved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Clients in flight.
    pub clients: usize,
    /// Requests per second.
    pub throughput: f64,
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
    /// Server CPU time per request, microseconds (summed over the members), when measured.
    #[serde(default)]
    pub server_cpu_us: Option<f64>,
}

/// One system's curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The system (`synod`, `etcd`).
    pub system: String,
    /// Its points, in increasing client count.
    pub points: Vec<CurvePoint>,
}

fn color_of(system: &str) -> RGBColor {
    match system {
        "synod" => RGBColor(31, 119, 180),
        "etcd" => RGBColor(214, 39, 40),
        _ => RGBColor(90, 90, 90),
    }
}

/// The range of `ys` (positive ones) rounded out to powers of ten, so a log axis has labelled
/// decades; none without a positive value.
fn decades(ys: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = ys
        .filter(|y| *y > 0.0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    (hi > 0.0).then(|| {
        (
            10f64.powf(lo.log10().floor()),
            10f64.powf(hi.log10().ceil()),
        )
    })
}

/// One panel: its caption, its y axis, what it reads off a point, and its y range.
struct Panel {
    caption: &'static str,
    y_desc: &'static str,
    pick: fn(&CurvePoint) -> Option<f64>,
    range: (f64, f64),
}

/// Draws p50 and p99 latency (log scale) against throughput for every curve, and where the
/// runs measured it the servers' CPU time per request, in panels side by side, each point
/// labelled with its client count.
pub fn latency_throughput(path: &Path, curves: &[Curve]) -> Result<()> {
    let err = |e: String| BenchError::Plot {
        path: path.to_path_buf(),
        message: e,
    };
    let pts = curves.iter().flat_map(|c| c.points.iter());
    let xmax = pts.clone().map(|p| p.throughput).fold(0.0, f64::max);
    let lat = decades(pts.clone().flat_map(|p| [p.p50, p.p99]));
    let (Some(lat), true) = (lat, xmax > 0.0) else {
        return Err(err("no points to plot".into()));
    };
    let mut panels = vec![
        Panel {
            caption: "p50 latency",
            y_desc: "p50 latency (ms, log scale)",
            pick: |p| Some(p.p50),
            range: lat,
        },
        Panel {
            caption: "p99 latency",
            y_desc: "p99 latency (ms, log scale)",
            pick: |p| Some(p.p99),
            range: lat,
        },
    ];
    if let Some(cpu) = decades(pts.filter_map(|p| p.server_cpu_us)) {
        panels.push(Panel {
            caption: "server CPU per request",
            y_desc: "server CPU per request (us, all members, log scale)",
            pick: |p| p.server_cpu_us,
            range: cpu,
        });
    }

    let root = SVGBackend::new(path, (600 * panels.len() as u32, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let root = root
        .titled(
            "Against throughput: 3-node Synod and 3-member etcd, put, 256-byte values",
            ("sans-serif", 20),
        )
        .map_err(|e| err(e.to_string()))?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(&panels) {
        let (ylo, yhi) = panel.range;
        let mut chart = ChartBuilder::on(area)
            .caption(panel.caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax * 1.1, (ylo..yhi).log_scale())
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("throughput (requests/s)")
            .y_desc(panel.y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y}"))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for c in curves {
            let color = color_of(&c.system);
            let labelled: Vec<(f64, f64, usize)> = c
                .points
                .iter()
                .filter_map(|p| Some((p.throughput, (panel.pick)(p)?, p.clients)))
                .collect();
            let xy: Vec<(f64, f64)> = labelled.iter().map(|&(x, y, _)| (x, y)).collect();
            chart
                .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(c.system.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(xy.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(labelled.iter().map(|&(x, y, clients)| {
                    // Beside the point rather than on it.
                    EmptyElement::at((x, y))
                        + Text::new(
                            format!("{clients}c"),
                            (7, -14),
                            ("sans-serif", 12).into_font().color(&color),
                        )
                }))
                .map_err(|e| err(e.to_string()))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(system: &str, k: f64) -> Curve {
        Curve {
            system: system.into(),
            points: [1usize, 16, 64]
                .iter()
                .map(|&c| CurvePoint {
                    clients: c,
                    throughput: k * c as f64 * 100.0,
                    p50: 0.3 * (c as f64).sqrt(),
                    p99: 1.0 * (c as f64).sqrt(),
                    server_cpu_us: (system == "synod").then(|| 500.0 / (c as f64).sqrt()),
                })
                .collect(),
        }
    }

    #[test]
    fn draws_an_svg_with_both_systems() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plot.svg");
        latency_throughput(&path, &[curve("synod", 4.0), curve("etcd", 1.0)]).expect("plot");
        let svg = std::fs::read_to_string(&path).expect("svg written");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for text in [
            "synod",
            "etcd",
            "p99 latency",
            "64c",
            "throughput (requests/s)",
            "server CPU per request",
        ] {
            assert!(svg.contains(text), "the plot lacks '{text}'");
        }
    }

    #[test]
    fn runs_without_cpu_figures_get_no_cpu_panel() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plot.svg");
        let mut old = curve("synod", 4.0);
        for p in &mut old.points {
            p.server_cpu_us = None;
        }
        latency_throughput(&path, &[old]).expect("plot");
        let svg = std::fs::read_to_string(&path).expect("svg written");
        assert!(svg.contains("p99 latency") && !svg.contains("server CPU"));
    }

    #[test]
    fn refuses_an_empty_plot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = Curve {
            system: "synod".into(),
            points: vec![],
        };
        assert!(latency_throughput(&dir.path().join("p.svg"), &[empty]).is_err());
    }
}
