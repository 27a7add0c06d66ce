//! A minimal PNG line plot of a training run: loss on the left, accuracy on
//! the right, one point per epoch. Drawn with plotters into an RGB buffer,
//! encoded with `image`, written atomically. (A general `plot.rs` is being
//! written on another branch; this one is only what `train-digits` needs.)

use anyhow::{anyhow, Context};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// One epoch's figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochPoint {
    pub loss: f64,
    pub train_acc: f64,
    pub test_acc: f64,
}

const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
const W: u32 = 1000;
const H: u32 = 420;

/// plotters' ab_glyph backend knows no fonts until one is registered.
fn register_font() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| anyhow!("plot: the bundled font cannot be read"));
    });
    result
}

/// Draws `history` (one point per epoch) to a PNG at `path`, titled `title`.
pub fn plot_training(path: &Path, title: &str, history: &[EpochPoint]) -> anyhow::Result<()> {
    register_font()?;
    let mut buf = vec![0u8; (W * H * 3) as usize];
    draw(&mut buf, title, history).map_err(|e| anyhow!("plot: {e}"))?;
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&buf, W, H, image::ExtendedColorType::Rgb8)
        .context("plot: cannot encode the PNG")?;
    convlab::io::write_atomic(path, &png)?;
    Ok(())
}

use image::ImageEncoder;

fn draw(buf: &mut [u8], title: &str, h: &[EpochPoint]) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(buf, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (left, right) = root.split_horizontally(W / 2);
    let epochs = h.len().max(1) as f64;
    let x_range = 1f64..epochs.max(2.0);

    let max_loss = h.iter().map(|p| p.loss).fold(0.0f64, f64::max).max(1e-3) * 1.05;
    let mut c = ChartBuilder::on(&left)
        .caption("training loss (cross-entropy)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(x_range.clone(), 0f64..max_loss)?;
    c.configure_mesh()
        .x_desc("epoch")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("loss")
        .label_style(("sans-serif", 13))
        .draw()?;
    c.draw_series(LineSeries::new(
        h.iter().enumerate().map(|(i, p)| (i as f64 + 1.0, p.loss)),
        RED.stroke_width(2),
    ))?;

    let lo = h
        .iter()
        .flat_map(|p| [p.train_acc, p.test_acc])
        .fold(100.0f64, f64::min)
        .clamp(0.0, 99.0);
    let lo = (lo / 5.0).floor() * 5.0;
    let mut c = ChartBuilder::on(&right)
        .caption("accuracy (%)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(x_range, lo..100.5)?;
    c.configure_mesh()
        .x_desc("epoch")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("%")
        .label_style(("sans-serif", 13))
        .draw()?;
    c.draw_series(LineSeries::new(
        h.iter()
            .enumerate()
            .map(|(i, p)| (i as f64 + 1.0, p.train_acc)),
        BLUE.stroke_width(2),
    ))?
    .label("train")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    c.draw_series(LineSeries::new(
        h.iter()
            .enumerate()
            .map(|(i, p)| (i as f64 + 1.0, p.test_acc)),
        GREEN.stroke_width(2),
    ))?
    .label("test")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], GREEN.stroke_width(2)));
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
