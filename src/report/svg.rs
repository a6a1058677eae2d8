//! Hand-written SVG plots, small and self-contained so report.html can inline them: line charts
//! (training curves) and a class-coloured scatter (latent codes). Coordinates are rounded to
//! 0.1 px to keep the files small.

use std::fmt::Write as _;

/// matplotlib's `tab10`, one colour per class or run.
pub const PALETTE: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub color: &'static str,
    /// Dashed instead of solid.
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// `&`, `<`, `>`, `"` escaped for XML text and attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// About `target` round tick values (steps of 1, 2 or 5 times a power of ten) covering
/// [lo, hi], and the decimals to print them with.
fn ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, usize) {
    let span = if hi > lo { hi - lo } else { 1.0 };
    let raw = span / target.max(1) as f64;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * pow).find(|&s| s >= raw).unwrap_or(10.0 * pow);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    ((first..=last).map(|i| i as f64 * step).collect(), decimals)
}

/// Ticks for a log10 axis spanning [lo, hi] (in log10 units): 1, 2 and 5 times each power of
/// ten inside, as (log10 position, label).
fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    for k in (lo.floor() as i32)..=(hi.ceil() as i32) {
        for m in [1.0, 2.0, 5.0] {
            let v: f64 = m * 10f64.powi(k);
            if (lo..=hi).contains(&v.log10()) {
                out.push((v.log10(), format!("{v:.*}", (-k).max(0) as usize)));
            }
        }
    }
    out
}

/// The finite range of `values`, widened a little (and made non-empty) so lines stay inside.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 * lo.abs().max(1e-3) };
    (lo - pad, hi + pad)
}

/// Plot area inside an SVG: margins for the axes and the title.
struct Frame {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    xr: (f64, f64),
    yr: (f64, f64),
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        self.x0 + (v - self.xr.0) / (self.xr.1 - self.xr.0) * self.w
    }
    fn y(&self, v: f64) -> f64 {
        self.y0 + self.h - (v - self.yr.0) / (self.yr.1 - self.yr.0) * self.h
    }

    /// Axes box, grid lines, tick labels (`y_ticks` as (position, label), or linear ones when
    /// `None`), axis labels and title.
    fn axes(&self, out: &mut String, title: &str, x_label: &str, y_label: &str, y_ticks: Option<Vec<(f64, String)>>) {
        let (x0, y0, w, h) = (self.x0, self.y0, self.w, self.h);
        let _ = write!(out, r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>"##);
        let (xt, xd) = ticks(self.xr.0, self.xr.1, 8);
        for t in xt {
            let x = self.x(t);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{t:.xd$}</text>"##,
                y0 + h,
                y0 + h + 14.0
            );
        }
        let y_ticks = y_ticks.unwrap_or_else(|| {
            let (yt, yd) = ticks(self.yr.0, self.yr.1, 6);
            yt.into_iter().map(|t| (t, format!("{t:.yd$}"))).collect()
        });
        for (t, label) in y_ticks {
            let y = self.y(t);
            let _ = write!(
                out,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
                x0 + w,
                x0 - 4.0,
                y + 4.0
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="16" text-anchor="middle" font-size="14">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(14,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            x0 + w / 2.0,
            escape(title),
            x0 + w / 2.0,
            y0 + h + 32.0,
            escape(x_label),
            y0 + h / 2.0,
            escape(y_label)
        );
    }
}

fn open(width: usize, height: usize) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11"><rect width="{width}" height="{height}" fill="white"/>"#
    )
}

/// A legend entry at (x, y): a short line (`dot` = false) or a dot, and the name.
fn legend_entry(out: &mut String, x: f64, y: f64, color: &str, dashed: bool, dot: bool, name: &str) {
    if dot {
        let _ = write!(out, r#"<circle cx="{:.1}" cy="{y:.1}" r="4" fill="{color}"/>"#, x + 9.0);
    } else {
        let dash = if dashed { r#" stroke-dasharray="5,3""# } else { "" };
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="2"{dash}/>"#,
            x + 18.0
        );
    }
    let _ = write!(out, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, x + 24.0, y + 4.0, escape(name));
}

/// A line chart of `series` (x and y axes fitted to the data; y logarithmic if `log_y`, where
/// values <= 0 are left out), the legend on the right.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series], log_y: bool) -> String {
    let (width, height) = (760, 340);
    let fy = |y: f64| if log_y { y.log10() } else { y };
    let all = || series.iter().flat_map(|s| s.points.iter()).map(|&(x, y)| (x, fy(y)));
    let f =
        Frame { x0: 64.0, y0: 28.0, w: 470.0, h: 260.0, xr: range(all().map(|p| p.0)), yr: range(all().map(|p| p.1)) };
    let mut out = open(width, height);
    f.axes(&mut out, title, x_label, y_label, log_y.then(|| log_ticks(f.yr.0, f.yr.1)));
    for (i, s) in series.iter().enumerate() {
        let mut d = String::new();
        let points = s.points.iter().map(|&(x, y)| (x, fy(y))).filter(|p| p.0.is_finite() && p.1.is_finite());
        for (j, (x, y)) in points.enumerate() {
            let _ = write!(d, "{}{:.1} {:.1}", if j == 0 { "M" } else { " L" }, f.x(x), f.y(y));
        }
        let dash = if s.dashed { r#" stroke-dasharray="5,3""# } else { "" };
        let _ = write!(out, r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.8"{dash}/>"#, s.color);
        legend_entry(&mut out, f.x0 + f.w + 12.0, f.y0 + 8.0 + 16.0 * i as f64, s.color, s.dashed, false, &s.name);
    }
    out.push_str("</svg>");
    out
}

/// A scatter of `points` (`[n, 2]`), point i coloured by `labels[i]`, legend of `class_names`.
/// Each class is one `<path>` of zero-length round-capped segments: a dot per point at about
/// 14 bytes, so 7,000 points stay near 100 kB.
pub fn scatter(
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[f32],
    labels: &[u8],
    class_names: &[String],
) -> String {
    let (width, height) = (640, 480);
    let f = Frame {
        x0: 64.0,
        y0: 28.0,
        w: 420.0,
        h: 410.0,
        xr: range(points.iter().step_by(2).map(|&v| f64::from(v))),
        yr: range(points.iter().skip(1).step_by(2).map(|&v| f64::from(v))),
    };
    let mut out = open(width, height);
    f.axes(&mut out, title, x_label, y_label, None);
    for (c, name) in class_names.iter().enumerate() {
        let color = PALETTE[c % PALETTE.len()];
        let mut d = String::new();
        let mine =
            points.chunks_exact(2).zip(labels).filter(|(p, &l)| usize::from(l) == c && p.iter().all(|v| v.is_finite()));
        for (p, _) in mine {
            let _ = write!(d, "M{:.1} {:.1}h0", f.x(f64::from(p[0])), f.y(f64::from(p[1])));
        }
        if !d.is_empty() {
            let _ = write!(
                out,
                r#"<path d="{d}" stroke="{color}" stroke-width="3" stroke-linecap="round" stroke-opacity="0.6"/>"#
            );
        }
        legend_entry(&mut out, f.x0 + f.w + 12.0, f.y0 + 8.0 + 18.0 * c as f64, color, false, true, name);
    }
    out.push_str("</svg>");
    out
}
