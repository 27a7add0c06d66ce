//! Line plots as PNG files, for loss curves and training histories.
//!
//! Drawn with `plotters` into an RGB buffer (no system fonts: DejaVu Sans is
//! compiled in) and written with the `image` crate through convlab's atomic
//! writer. One figure holds one or more panels side by side, so a training
//! run can show loss and accuracy per epoch next to each other:
//!
//! ```ignore
//! let loss = Panel::new("loss", "epoch", "loss").series("train", train_loss).series("test", test_loss);
//! let acc = Panel::new("accuracy", "epoch", "accuracy").series("test", test_acc);
//! plot::save_png(Path::new("train.png"), &[loss, acc], 1000, 400)?;
//! ```

use anyhow::{anyhow, bail};
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans (licence in `assets/fonts/DejaVuSans.LICENSE`).
static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Series colours, in order (colour-blind friendly: Okabe–Ito).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

/// One line: a label (shown in a legend when non-empty) and `(x, y)` points.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart: title, axis labels, lines; `log_y` for losses that fall by
/// orders of magnitude.
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    pub series: Vec<Series>,
}

impl Panel {
    /// An empty linear-scale panel.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Panel {
        Panel {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_y: false,
            series: Vec::new(),
        }
    }
    /// Use a logarithmic y axis (non-positive values are left out).
    pub fn log_y(mut self, on: bool) -> Panel {
        self.log_y = on;
        self
    }
    /// Add a line.
    pub fn series(mut self, label: &str, points: Vec<(f64, f64)>) -> Panel {
        self.series.push(Series {
            label: label.into(),
            points,
        });
        self
    }
}

fn font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        bail!("plot: the bundled font could not be loaded")
    }
}

/// Draws `panels` side by side into a `width` x `height` PNG at `path`.
/// Non-finite points (a diverged loss) are left out; a panel with nothing
/// to draw shows its axes only.
pub fn save_png(path: &Path, panels: &[Panel], width: u32, height: u32) -> anyhow::Result<()> {
    if panels.is_empty() || width < 100 || height < 100 {
        bail!("plot: need at least one panel and a size of at least 100x100");
    }
    font()?;
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    draw(&mut buf, panels, width, height).map_err(|e| anyhow!("plot: {e}"))?;
    convlab::io::write_atomic_with(path, |out| {
        PngEncoder::new(out)
            .write_image(&buf, width, height, ExtendedColorType::Rgb8)
            .map_err(std::io::Error::other)
    })?;
    Ok(())
}

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

fn draw(buf: &mut [u8], panels: &[Panel], width: u32, height: u32) -> DrawResult<()> {
    let root = BitMapBackend::with_buffer(buf, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, panels.len()));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        draw_panel(panel, area)?;
    }
    root.present()?;
    Ok(())
}

/// The points of `s` as drawn: finite, and on a log axis positive and in log10.
fn drawn(s: &Series, log_y: bool) -> Vec<(f64, f64)> {
    s.points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
        .map(|&(x, y)| (x, if log_y { y.log10() } else { y }))
        .collect()
}

fn draw_panel(
    panel: &Panel,
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
) -> DrawResult<()> {
    let lines: Vec<Vec<(f64, f64)>> = panel.series.iter().map(|s| drawn(s, panel.log_y)).collect();
    let all = lines.iter().flatten();
    let (mut x0, mut x1, mut y0, mut y1) = all.fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    // 5 % headroom so lines do not run along the frame.
    let pad = if y1 - y0 < 1e-12 {
        0.5
    } else {
        0.05 * (y1 - y0)
    };
    let (y0, y1) = (y0 - pad, y1 + pad);
    let log_y = panel.log_y;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    // As many decimals as the tick spacing (about a tenth of the range) needs.
    let decimals = (-((y1 - y0) / 10.0).log10().floor()).clamp(0.0, 6.0) as usize;
    let y_fmt = |v: &f64| {
        if log_y {
            format!("1e{:.0}", v)
        } else {
            format!("{v:.decimals$}")
        }
    };
    let x_fmt = |v: &f64| {
        if (v - v.round()).abs() < 1e-9 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .y_labels(if log_y {
            ((y1 - y0).ceil() as usize + 1).clamp(2, 12)
        } else {
            8
        })
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&x_fmt)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let mut legend = false;
    for (i, (s, pts)) in panel.series.iter().zip(lines).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let drawn = chart.draw_series(LineSeries::new(pts, colour.stroke_width(2)))?;
        if !s.label.is_empty() {
            legend = true;
            drawn.label(s.label.as_str()).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        }
    }
    if legend {
        chart
            .configure_series_labels()
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_of_the_requested_size_with_ink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        let loss = Panel::new("loss", "step", "loss")
            .log_y(true)
            .series(
                "train",
                (0..50)
                    .map(|i| (i as f64, 100.0 * 0.8f64.powi(i)))
                    .collect(),
            )
            .series(
                "diverged",
                vec![(0.0, 1.0), (1.0, f64::INFINITY), (2.0, f64::NAN)],
            );
        let acc = Panel::new("accuracy", "epoch", "accuracy")
            .series("", (0..5).map(|i| (i as f64, 0.2 * i as f64)).collect());
        save_png(&path, &[loss, acc], 800, 300).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (800, 300));
        // The first series' colour appears (a line was drawn), and some dark text.
        assert!(img.pixels().any(|p| p.0 == [0, 114, 178]));
        assert!(img
            .pixels()
            .any(|p| p.0[0] < 60 && p.0[1] < 60 && p.0[2] < 60));
    }

    #[test]
    fn bad_sizes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(save_png(&dir.path().join("p.png"), &[], 800, 300).is_err());
        assert!(save_png(
            &dir.path().join("p.png"),
            &[Panel::new("a", "b", "c")],
            50,
            300
        )
        .is_err());
        // An empty panel still draws.
        save_png(
            &dir.path().join("e.png"),
            &[Panel::new("a", "b", "c")],
            200,
            200,
        )
        .unwrap();
    }
}
