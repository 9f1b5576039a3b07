//! `failover-drill --plot FILE.svg`: each round as a person would rather see
//! it than read it. Acknowledged commits per 100 ms and every commit's
//! latency across the round, with the fault, the promotion, the re-point
//! and the first acknowledged write on the new primary marked. Plain SVG,
//! no fonts or browser needed to make it.

use super::{DrillReport, RoundReport};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// One round's writes and the failover's steps, in ms from the fault
/// (negative: before it).
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub writes: Vec<Write>,
    /// Absent when nothing was promoted (`sync-standby-partition`).
    pub promoted_ms: Option<f64>,
    pub repointed_ms: Option<f64>,
    /// The first acknowledged write on the new primary (or, without a
    /// promotion, once commits flow again).
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

/// Runs of up to this many rounds are drawn panel by panel; longer ones get
/// the summary first and panels only for the worst rounds and those asked
/// for.
pub const FEW: usize = 5;

pub fn draw(path: &Path, report: &DrillReport, asked: &[u32]) -> Result<()> {
    let mut svg = String::new();
    render(&mut svg, report, asked).map_err(|e| anyhow!("drawing {}: {e}", path.display()))?;
    crate::project::write_if_changed(path, &svg)?;
    Ok(())
}

/// The rounds drawn panel by panel: all of a short run; of a long one the
/// worst RTO, the worst write stall and those asked for, in round order.
pub fn panel_rounds(report: &DrillReport, asked: &[u32]) -> Vec<u32> {
    let rounds = &report.rounds;
    if rounds.len() <= FEW {
        return rounds.iter().map(|r| r.round).collect();
    }
    let mut out: Vec<u32> = worst_rounds(rounds)
        .into_iter()
        .chain(asked.iter().copied())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The round with the worst RTO (of those that promoted a standby) and
/// the one with the worst write stall.
pub fn worst_rounds(rounds: &[RoundReport]) -> Vec<u32> {
    let rto = rounds
        .iter()
        .filter(|r| r.failed_over())
        .max_by_key(|r| r.rto_ms)
        .map(|r| r.round);
    let stall = rounds
        .iter()
        .max_by_key(|r| r.write_stall_ms)
        .map(|r| r.round);
    [rto, stall].into_iter().flatten().collect()
}

const PANEL_H: u32 = 360;
const SUMMARY_H: u32 = 420;
const W: u32 = 1100;
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// The SVG text of [`draw`], written by the caller (atomically, never
/// through a link).
fn render(svg: &mut String, report: &DrillReport, asked: &[u32]) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let panels: Vec<&RoundReport> = panel_rounds(report, asked)
        .into_iter()
        .filter_map(|n| report.rounds.iter().find(|r| r.round == n))
        .filter(|r| !r.timeline.writes.is_empty())
        .collect();
    let summary = report.rounds.len() > 1;
    let height = if summary { SUMMARY_H } else { 0 } + PANEL_H * panels.len().max(1) as u32;
    let root = SVGBackend::with_string(svg, (W, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let rest = if summary {
        let (top, rest) = root.split_vertically(SUMMARY_H);
        draw_summary(&top, report).map_err(|x| e(&x))?;
        rest
    } else {
        root.clone()
    };
    let areas = rest.split_evenly((panels.len().max(1), 1));
    for (area, r) in areas.iter().zip(panels) {
        draw_round(area, r).map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    drop(root);
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult<T> = std::result::Result<T, DrawingAreaErrorKind<std::io::Error>>;

/// RTO and write stall of every round, coloured by fault (left), and each
/// fault's spread (right: worst, median and best as a bar with a tick).
fn draw_summary(area: &Area, report: &DrillReport) -> DrawResult<()> {
    let faults: Vec<&str> = report.per_fault.iter().map(|f| f.fault.as_str()).collect();
    let color =
        |fault: &str| PALETTE[faults.iter().position(|f| *f == fault).unwrap_or(0) % PALETTE.len()];
    let top = report
        .rounds
        .iter()
        .map(|r| r.rto_ms.max(r.write_stall_ms))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.15;
    let n = report.rounds.len() as f64;
    let (left, right) = area.split_horizontally(W * 62 / 100);
    let mut chart = ChartBuilder::on(&left)
        .caption(
            format!(
                "{} rounds: acknowledged {}, lost {}; RTO median {} ms, write stall median {} ms (worst {})",
                report.rounds.len(),
                report.acknowledged_total,
                report.lost_total,
                report.rto_median_ms,
                report.write_stall_median_ms,
                report.write_stall_worst_ms
            ),
            ("sans-serif", 15),
        )
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..n + 0.5, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc("ms (dot: RTO, ring: write stall)")
        .draw()?;
    for f in &faults {
        let c = color(f);
        let of = report.rounds.iter().filter(|r| r.fault == *f);
        chart
            .draw_series(
                of.clone()
                    .filter(|r| r.failed_over())
                    .map(|r| Circle::new((f64::from(r.round), r.rto_ms as f64), 3, c.filled())),
            )?
            .label(f.to_string())
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        chart.draw_series(of.map(|r| {
            Circle::new(
                (f64::from(r.round), r.write_stall_ms as f64),
                5,
                c.stroke_width(1),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    // The spread per fault: one row each, the stall's range and median.
    let rows = faults.len().max(1) as i32;
    let mut spread = ChartBuilder::on(&right)
        .caption(
            "write stall per fault: best, median, worst",
            ("sans-serif", 15),
        )
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(150)
        .build_cartesian_2d(0.0..top, (0..rows).into_segmented())?;
    spread
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(faults.len().max(1))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => faults
                .get(*i as usize)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        })
        .x_desc("ms")
        .draw()?;
    for (i, f) in report.per_fault.iter().enumerate() {
        let c = color(&f.fault);
        let best = report
            .rounds
            .iter()
            .filter(|r| r.fault == f.fault)
            .map(|r| r.write_stall_ms)
            .min()
            .unwrap_or(0) as f64;
        let y = SegmentValue::CenterOf(i as i32);
        spread.draw_series(std::iter::once(PathElement::new(
            vec![
                (best, y.clone()),
                (f.write_stall_worst_ms as f64, y.clone()),
            ],
            c.stroke_width(6),
        )))?;
        spread.draw_series(std::iter::once(Circle::new(
            (f.write_stall_median_ms as f64, y),
            6,
            BLACK.filled(),
        )))?;
    }
    Ok(())
}

/// One round: acknowledged commits per 100 ms above, every commit's latency
/// below, the fault and the failover's steps marked.
fn draw_round(area: &Area, r: &RoundReport) -> DrawResult<()> {
    let t = &r.timeline;
    let from = -1500.0;
    // The writer stops once the new primary has acknowledged enough: the
    // plot ends with its last write.
    let last = t
        .writes
        .iter()
        .map(|w| w.at_ms)
        .fold(t.first_write_ms, f64::max);
    let to = (last + BIN_MS).max(t.first_write_ms + 2.0 * BIN_MS);
    let bins = per_bin(t, from, to);
    let peak = bins.iter().map(|(_, c)| *c).max().unwrap_or(1).max(1) as f64 * 1.15;
    let (top, bottom) = area.split_vertically(PANEL_H * 55 / 100);
    let resumed = if r.failed_over() {
        "first acknowledged write on the new primary"
    } else {
        "commits flowing again"
    };
    let marks: Vec<(&str, f64, RGBColor)> = [
        Some(("fault", 0.0, RED)),
        t.promoted_ms.map(|v| ("promoted", v, MAGENTA)),
        t.repointed_ms.map(|v| ("standbys re-pointed", v, BLUE)),
        Some((resumed, t.first_write_ms, GREEN)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let caption = if r.failed_over() {
        format!(
            "round {} ({}): {} failed, {} promoted; RTO {} ms, write stall {} ms, acknowledged {}, lost {}",
            r.round, r.fault, r.failed_primary, r.promoted, r.rto_ms, r.write_stall_ms, r.acknowledged, r.lost
        )
    } else {
        format!(
            "round {} ({}): {} cut off, nothing promoted; write stall {} ms, acknowledged {}, lost {}",
            r.round,
            r.fault,
            r.also_failed.clone().unwrap_or_default(),
            r.write_stall_ms,
            r.acknowledged,
            r.lost
        )
    };
    let mut chart = ChartBuilder::on(&top)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(0)
        .y_label_area_size(60)
        .build_cartesian_2d(from..to, 0.0..peak)?;
    chart
        .configure_mesh()
        .y_desc("acknowledged / 100 ms")
        .x_labels(12)
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            bins.iter().map(|(x, c)| (*x, f64::from(*c))),
            BLACK.stroke_width(2),
        ))?
        .label("acknowledged commits per 100 ms")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(2)));
    for (label, at, color) in &marks {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                vec![(*at, 0.0), (*at, peak)],
                color.stroke_width(2),
            ))?
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
        .draw()?;
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
        .build_cartesian_2d(from..to, 0.0..top_latency)?;
    lat.configure_mesh()
        .x_desc("ms from the fault")
        .y_desc("commit latency, ms")
        .x_labels(12)
        .draw()?;
    lat.draw_series(shown.iter().map(|w| {
        let style = if w.acknowledged {
            BLACK.filled()
        } else {
            RED.filled()
        };
        Circle::new((w.at_ms, w.latency_ms), 2, style)
    }))?;
    for (_, at, color) in &marks {
        lat.draw_series(LineSeries::new(
            vec![(*at, 0.0), (*at, top_latency)],
            color.stroke_width(1),
        ))?;
    }
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
            promoted_ms: Some(200.0),
            repointed_ms: Some(300.0),
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
            write_stall_median_ms: 500,
            write_stall_worst_ms: 500,
            per_fault: vec![],
            acknowledged_total: 110,
            lost_total: 0,
            writable_nodes: vec!["slave1-db".into()],
            healthy: true,
            final_status: vec![],
        };
        draw(&path, &report, &[]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in [
            "round 1 (crash): master-db failed, slave1-db promoted; RTO 500 ms, write stall 0 ms",
            "promoted (200 ms)",
            "standbys re-pointed (300 ms)",
            "first acknowledged write on the new primary (500 ms)",
            "commit latency, ms",
        ] {
            assert!(svg.contains(text), "the plot lacks `{text}`");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_long_run_is_summarized_with_panels_for_its_worst_rounds() {
        let mut rounds = Vec::new();
        for i in 1..=12u32 {
            let partition = i % 2 == 0;
            rounds.push(super::super::RoundReport {
                round: i,
                fault: if partition {
                    "sync-standby-partition"
                } else {
                    "crash"
                }
                .into(),
                failed_primary: "m".into(),
                promoted: if partition {
                    String::new()
                } else {
                    "s1".into()
                },
                rto_ms: 300 + u64::from(i),
                write_stall_ms: if partition { 5000 + u64::from(i) } else { 250 },
                // Only the worst rounds keep their writes (as the drill does).
                timeline: if i == 11 || i == 12 {
                    timeline()
                } else {
                    Timeline::default()
                },
                ..Default::default()
            });
        }
        let summary = |fault: &str, stall| super::super::FaultSummary {
            fault: fault.into(),
            rounds: 6,
            write_stall_median_ms: stall,
            write_stall_worst_ms: stall + 6,
            ..Default::default()
        };
        let report = DrillReport {
            cluster: "x".into(),
            faults: vec!["crash".into(), "sync-standby-partition".into()],
            rounds,
            rto_median_ms: 306,
            rto_worst_ms: 312,
            write_stall_median_ms: 2600,
            write_stall_worst_ms: 5012,
            per_fault: vec![
                summary("crash", 250),
                summary("sync-standby-partition", 5006),
            ],
            acknowledged_total: 1,
            lost_total: 0,
            writable_nodes: vec![],
            healthy: true,
            final_status: vec![],
        };
        assert_eq!(panel_rounds(&report, &[]), [11, 12]);
        assert_eq!(panel_rounds(&report, &[3]), [3, 11, 12]);
        let mut svg = String::new();
        render(&mut svg, &report, &[]).unwrap();
        for text in [
            "12 rounds: acknowledged 1, lost 0",
            "write stall per fault",
            "sync-standby-partition",
            "round 11 (crash)",
            "round 12 (sync-standby-partition):  cut off, nothing promoted",
            "commits flowing again",
        ] {
            assert!(svg.contains(text), "the plot lacks `{text}`");
        }
        // Two panels, not twelve.
        assert_eq!(svg.matches("commit latency, ms").count(), 2);
    }
}
