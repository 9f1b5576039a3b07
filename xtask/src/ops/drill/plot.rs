//! `failover-drill --plot FILE.svg`: each round as a person would rather see
//! it than read it. Acknowledged commits per 100 ms and every commit's
//! latency across the round, with the fault, the promotion, the re-point
//! and the first acknowledged write on the new primary marked. Plain SVG,
//! no fonts or browser needed to make it.

use super::DrillReport;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// One round's writes and the failover's steps, in ms from the fault
/// (negative: before it).
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub writes: Vec<Write>,
    pub promoted_ms: f64,
    pub repointed_ms: f64,
    pub first_write_ms: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Write {
    pub at_ms: f64,
    pub latency_ms: f64,
    pub acknowledged: bool,
}

const BIN_MS: f64 = 100.0;

/// Acknowledged commits per 100 ms bin between `from` and `to`, each as
/// (bin middle, count).
pub fn per_bin(t: &Timeline, from: f64, to: f64) -> Vec<(f64, u32)> {
    let n = ((to - from) / BIN_MS).ceil().max(0.0) as usize;
    let mut bins = vec![0u32; n];
    for w in t.writes.iter().filter(|w| w.acknowledged) {
        if w.at_ms >= from && w.at_ms < to {
            let i = ((w.at_ms - from) / BIN_MS) as usize;
            if let Some(b) = bins.get_mut(i) {
                *b += 1;
            }
        }
    }
    bins.iter()
        .enumerate()
        .map(|(i, c)| (from + (i as f64 + 0.5) * BIN_MS, *c))
        .collect()
}

pub fn draw(path: &Path, report: &DrillReport) -> Result<()> {
    let mut svg = String::new();
    render(&mut svg, report).map_err(|e| anyhow!("drawing {}: {e}", path.display()))?;
    crate::project::write_if_changed(path, &svg)?;
    Ok(())
}

/// The SVG text of [`draw`], written by the caller (atomically, never
/// through a link).
fn render(svg: &mut String, report: &DrillReport) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let rounds = &report.rounds;
    let (w, h) = (1100u32, 360u32);
    let root =
        SVGBackend::with_string(svg, (w, h * rounds.len().max(1) as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let areas = root.split_evenly((rounds.len().max(1), 1));
    for (area, r) in areas.iter().zip(rounds) {
        let t = &r.timeline;
        let from = -1500.0;
        // The writer stops once the new primary has acknowledged enough:
        // the plot ends with its last write.
        let last = t
            .writes
            .iter()
            .map(|w| w.at_ms)
            .fold(t.first_write_ms, f64::max);
        let to = (last + BIN_MS).max(t.first_write_ms + 2.0 * BIN_MS);
        let bins = per_bin(t, from, to);
        let peak = bins.iter().map(|(_, c)| *c).max().unwrap_or(1).max(1) as f64 * 1.15;
        let (top, bottom) = area.split_vertically(h * 55 / 100);
        let marks = [
            ("fault", 0.0, RED),
            ("promoted", t.promoted_ms, MAGENTA),
            ("standbys re-pointed", t.repointed_ms, BLUE),
            (
                "first acknowledged write on the new primary",
                t.first_write_ms,
                GREEN,
            ),
        ];
        let mut chart =
            ChartBuilder::on(&top)
                .caption(
                    format!(
                    "round {} ({}): {} failed, {} promoted; RTO {} ms, acknowledged {}, lost {}",
                    r.round, r.fault, r.failed_primary, r.promoted, r.rto_ms, r.acknowledged, r.lost
                ),
                    ("sans-serif", 16),
                )
                .margin(8)
                .x_label_area_size(0)
                .y_label_area_size(60)
                .build_cartesian_2d(from..to, 0.0..peak)
                .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .y_desc("acknowledged / 100 ms")
            .x_labels(12)
            .draw()
            .map_err(|x| e(&x))?;
        chart
            .draw_series(LineSeries::new(
                bins.iter().map(|(x, c)| (*x, f64::from(*c))),
                BLACK.stroke_width(2),
            ))
            .map_err(|x| e(&x))?
            .label("acknowledged commits per 100 ms")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(2)));
        for (label, at, color) in marks {
            chart
                .draw_series(LineSeries::new(
                    vec![(at, 0.0), (at, peak)],
                    color.stroke_width(2),
                ))
                .map_err(|x| e(&x))?
                .label(format!("{label} ({at:.0} ms)"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|x| e(&x))?;

        let shown: Vec<&Write> = t
            .writes
            .iter()
            .filter(|w| w.at_ms >= from && w.at_ms < to)
            .collect();
        let top_latency = shown.iter().map(|w| w.latency_ms).fold(1.0f64, f64::max) * 1.1;
        let mut lat = ChartBuilder::on(&bottom)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(from..to, 0.0..top_latency)
            .map_err(|x| e(&x))?;
        lat.configure_mesh()
            .x_desc("ms from the fault")
            .y_desc("commit latency, ms")
            .x_labels(12)
            .draw()
            .map_err(|x| e(&x))?;
        lat.draw_series(shown.iter().map(|w| {
            let style = if w.acknowledged {
                BLACK.filled()
            } else {
                RED.filled()
            };
            Circle::new((w.at_ms, w.latency_ms), 2, style)
        }))
        .map_err(|x| e(&x))?;
        for (_, at, color) in marks {
            lat.draw_series(LineSeries::new(
                vec![(at, 0.0), (at, top_latency)],
                color.stroke_width(1),
            ))
            .map_err(|x| e(&x))?;
        }
    }
    root.present().map_err(|x| e(&x))?;
    drop(root);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> Timeline {
        let mut writes = Vec::new();
        // 10 commits per 100 ms before the fault, none for 500 ms, then 5.
        for i in 0..100 {
            writes.push(Write {
                at_ms: -1000.0 + f64::from(i) * 10.0,
                latency_ms: 2.0,
                acknowledged: true,
            });
        }
        writes.push(Write {
            at_ms: 5.0,
            latency_ms: 40.0,
            acknowledged: false,
        });
        for i in 0..10 {
            writes.push(Write {
                at_ms: 500.0 + f64::from(i) * 20.0,
                latency_ms: 3.0,
                acknowledged: true,
            });
        }
        Timeline {
            writes,
            promoted_ms: 200.0,
            repointed_ms: 300.0,
            first_write_ms: 500.0,
        }
    }

    #[test]
    fn commits_are_counted_per_100_ms() {
        let bins = per_bin(&timeline(), -1000.0, 1000.0);
        assert_eq!(bins.len(), 20);
        assert_eq!(bins[0], (-950.0, 10));
        // The uncertain write at 5 ms is not an acknowledged commit.
        assert_eq!(bins[10].1, 0);
        assert_eq!(bins[15].1, 5);
        let total: u32 = bins.iter().map(|(_, c)| c).sum();
        assert_eq!(total, 110);
    }

    #[test]
    fn a_report_is_drawn_with_its_marks() {
        let dir = std::env::temp_dir().join(format!("pgrepl-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("drill.svg");
        let round = super::super::RoundReport {
            round: 1,
            fault: "crash".into(),
            failed_primary: "master-db".into(),
            promoted: "slave1-db".into(),
            rto_ms: 500,
            acknowledged: 110,
            timeline: timeline(),
            ..Default::default()
        };
        let report = DrillReport {
            cluster: "x".into(),
            faults: vec!["crash".into()],
            rounds: vec![round],
            rto_median_ms: 500,
            rto_worst_ms: 500,
            acknowledged_total: 110,
            lost_total: 0,
            writable_nodes: vec!["slave1-db".into()],
            healthy: true,
            final_status: vec![],
        };
        draw(&path, &report).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in [
            "round 1 (crash): master-db failed, slave1-db promoted; RTO 500 ms",
            "promoted (200 ms)",
            "standbys re-pointed (300 ms)",
            "first acknowledged write on the new primary (500 ms)",
            "commit latency, ms",
        ] {
            assert!(svg.contains(text), "the plot lacks `{text}`");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
