//! The scale scenarios' curves as SVG plots (plotters' SVG backend, line series only).

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::report::Curve;

const SIZE: (u32, u32) = (720, 420);

/// `curve` as an SVG document: one line per series, its points marked, a legend when there
/// is more than one series. The y axis starts at 0 so that a flat curve looks flat.
pub fn svg(curve: &Curve) -> Result<String> {
    let points = || curve.series.iter().flat_map(|s| s.points.iter().copied());
    let (x_min, x_max) = points().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
        (lo.min(x), hi.max(x))
    });
    let y_max = points().fold(0.0_f64, |hi, (_, y)| hi.max(y));
    if x_min > x_max {
        return Err(anyhow!("the curve {} has no points", curve.key));
    }
    // A little room around the points (a single x gets a range of its own).
    let (x_min, x_max) = if curve.log_x {
        (x_min.max(f64::MIN_POSITIVE) / 1.5, x_max * 1.5)
    } else {
        // Sizes and times are never negative: neither is the axis.
        let pad = ((x_max - x_min) * 0.05).max(0.5);
        let low = if x_min >= 0.0 {
            (x_min - pad).max(0.0)
        } else {
            x_min - pad
        };
        (low, x_max + pad)
    };
    let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let builder = |root| {
            let mut builder = ChartBuilder::on(root);
            builder
                .caption(&curve.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(64);
            builder
        };
        if curve.log_x {
            let mut chart = builder(&root)
                .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..y_max)
                .map_err(draw_error)?;
            draw_chart(&mut chart, curve)?;
        } else {
            let mut chart = builder(&root)
                .build_cartesian_2d(x_min..x_max, 0.0..y_max)
                .map_err(draw_error)?;
            draw_chart(&mut chart, curve)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(out)
}

/// The chart's mesh (axis names, short numbers), then its series and their legend.
fn draw_chart<'a, X>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
    >,
    curve: &Curve,
) -> Result<()>
where
    X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(curve.x_label)
        .y_desc(curve.y_label)
        .x_label_formatter(&|x| short(*x))
        .y_label_formatter(&|y| short(*y))
        .draw()
        .map_err(draw_error)?;
    for (i, series) in curve.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(
                LineSeries::new(series.points.iter().copied(), color.stroke_width(2)).point_size(4),
            )
            .map_err(draw_error)?
            .label(series.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if curve.series.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_error)?;
    }
    Ok(())
}

fn draw_error(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a plot: {err}")
}

/// An axis label: 1,500 → "1.5k", 2,000,000 → "2M", 0.25 → "0.25".
fn short(value: f64) -> String {
    let magnitude = value.abs();
    let (scaled, suffix) = if magnitude >= 1e6 {
        (value / 1e6, "M")
    } else if magnitude >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        // -0.001 rounds to "-0": zero is zero.
        "-0" => "0".to_owned(),
        _ => format!("{text}{suffix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Series;

    fn curve(log_x: bool) -> Curve {
        Curve {
            key: "backlog",
            title: "Drain rate by backlog".to_owned(),
            x_label: "messages waiting",
            y_label: "messages/s",
            log_x,
            series: vec![
                Series {
                    name: "drain".to_owned(),
                    points: vec![(10_000.0, 5_000.0), (100_000.0, 4_800.0), (1e6, 4_600.0)],
                },
                Series {
                    name: "lease p99".to_owned(),
                    points: vec![(10_000.0, 2.0), (100_000.0, 2.5), (1e6, 3.0)],
                },
            ],
        }
    }

    #[test]
    fn a_curve_is_drawn_as_an_svg_with_its_title_axes_points_and_legend() {
        for log_x in [true, false] {
            let svg = svg(&curve(log_x)).unwrap_or_else(|err| panic!("{err}"));

            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(svg.contains("Drain rate by backlog"), "{svg}");
            assert!(svg.contains("messages waiting"), "{svg}");
            assert!(
                svg.contains("lease p99"),
                "the legend names each series: {svg}"
            );
            // Two lines, and a marker per point of each.
            assert_eq!(
                svg.matches(r#"stroke-width="2" points="#).count(),
                2 + 2,
                "{svg}"
            );
            assert_eq!(svg.matches("<circle").count(), 6, "{svg}");
        }
    }

    #[test]
    fn a_curve_without_points_is_an_error_not_an_empty_plot() {
        let mut empty = curve(true);
        empty.series.clear();

        assert!(svg(&empty).is_err());
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(short(1_500.0), "1.5k");
        assert_eq!(short(2_000_000.0), "2M");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(10.0), "10");
        assert_eq!(short(-0.0001), "0");
    }
}
