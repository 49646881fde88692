//! Latency plots as PNG: per-stage histograms and per-frame timelines.
//!
//! plotters draws into an RGB buffer and encodes PNG with the pure-Rust `image` crate. Text
//! needs a TrueType font: DejaVu Sans (Debian `fonts-dejavu-core`, installed by
//! scripts/setup) is loaded at run time; without it the plot is drawn without labels rather
//! than failing.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

/// One stage's samples in milliseconds, in frame order.
pub struct Series {
    pub name: String,
    pub ms: Vec<f64>,
}

/// One row of the figure: a histogram and a timeline of the same series.
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Register a sans-serif font once; false when none is installed.
fn fonts_available() -> bool {
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        FONT_PATHS.iter().any(|p| {
            std::fs::read(p).ok().is_some_and(|bytes| {
                // plotters keeps fonts for the process lifetime.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Counts of `ms` in `bins` equal bins over [0, max].
fn histogram(ms: &[f64], max: f64, bins: usize) -> Vec<(f64, u32)> {
    let width = max / bins as f64;
    let mut counts = vec![0u32; bins];
    for &v in ms {
        let i = ((v / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, n)| ((i as f64 + 0.5) * width, n))
        .collect()
}

pub fn write_png(path: &Path, panels: &[Panel]) -> Result<()> {
    let text = fonts_available();
    let height = 420 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let rows = root.split_evenly((panels.len().max(1), 2));
    for (panel, cells) in panels.iter().zip(rows.chunks(2)) {
        let series: Vec<&Series> = panel.series.iter().filter(|s| !s.ms.is_empty()).collect();
        let max_ms = series
            .iter()
            .flat_map(|s| s.ms.iter().copied())
            .fold(1e-3, f64::max)
            * 1.05;
        let frames = series.iter().map(|s| s.ms.len()).max().unwrap_or(1).max(2);
        let bins = 40;
        let hists: Vec<Vec<(f64, u32)>> = series
            .iter()
            .map(|s| histogram(&s.ms, max_ms, bins))
            .collect();
        let max_count = hists
            .iter()
            .flat_map(|h| h.iter().map(|(_, n)| *n))
            .max()
            .unwrap_or(1)
            .max(1);

        let mut hist = ChartBuilder::on(&cells[0]);
        hist.margin(12);
        if text {
            hist.caption(format!("{}: histogram", panel.title), ("sans-serif", 20))
                .x_label_area_size(36)
                .y_label_area_size(48);
        }
        let mut chart = hist
            .build_cartesian_2d(0.0..max_ms, 0u32..max_count + 1)
            .map_err(|e| anyhow!("plot: {e}"))?;
        draw_mesh(&mut chart, text, "ms", "frames")?;
        for (i, (s, h)) in series.iter().zip(&hists).enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let drawn = chart
                .draw_series(LineSeries::new(h.iter().copied(), colour.stroke_width(2)))
                .map_err(|e| anyhow!("plot: {e}"))?;
            if text {
                drawn
                    .label(s.name.clone())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
            }
        }
        if text {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| anyhow!("plot: {e}"))?;
        }

        let mut timeline = ChartBuilder::on(&cells[1]);
        timeline.margin(12);
        if text {
            timeline
                .caption(format!("{}: per frame", panel.title), ("sans-serif", 20))
                .x_label_area_size(36)
                .y_label_area_size(48);
        }
        let mut chart = timeline
            .build_cartesian_2d(0usize..frames, 0.0..max_ms)
            .map_err(|e| anyhow!("plot: {e}"))?;
        draw_mesh(&mut chart, text, "frame", "ms")?;
        for (i, s) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    s.ms.iter().copied().enumerate(),
                    colour.stroke_width(2),
                ))
                .map_err(|e| anyhow!("plot: {e}"))?;
        }
    }
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}

/// Axes with their descriptions, or (for the small panels without text) bare.
fn draw_mesh<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    text: bool,
    x_desc: &str,
    y_desc: &str,
) -> Result<()>
where
    DB: DrawingBackend,
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(x_desc).y_desc(y_desc);
    } else {
        mesh.disable_x_mesh()
            .disable_y_mesh()
            .x_labels(0)
            .y_labels(0);
    }
    mesh.draw().map_err(|e| anyhow!("plot: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_every_sample() {
        let h = histogram(&[0.0, 0.9, 1.0, 9.99, 10.0, 50.0], 10.0, 10);
        assert_eq!(h.len(), 10);
        assert_eq!(h.iter().map(|(_, n)| n).sum::<u32>(), 6);
        assert_eq!(h[0].1, 2);
        assert_eq!(h[1].1, 1);
        assert_eq!(h[9].1, 3, "values at or past the top go in the last bin");
    }

    #[test]
    fn png_has_the_requested_size() {
        let path = std::env::temp_dir().join(format!("stylize-plot-{}.png", std::process::id()));
        let panel = |title: &str| Panel {
            title: title.into(),
            series: vec![
                Series {
                    name: "infer".into(),
                    ms: (0..50).map(|i| 20.0 + (i % 7) as f64).collect(),
                },
                Series {
                    name: "empty".into(),
                    ms: vec![],
                },
            ],
        };
        write_png(&path, &[panel("daemon"), panel("element")]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (1400, 840));
        let _ = std::fs::remove_file(&path);
    }
}
