//! report.md and report.html from a [`Report`], written side by side by one walk through the
//! sections (`Doc`), so the two always say the same. report.html is self-contained (SVG
//! inline, PNG as base64 data URIs); report.md links the image files returned beside it.

use super::svg::{self, escape, Series, PALETTE};
use super::{Analysis, Report, KNN_K, SAMPLE, WORST};
use crate::data::IMAGE_LEN;
use crate::models::LATENT;
use crate::run::picture;
use crate::train::loss::Loss;
use crate::train::EpochStats;
use crate::Result;
use base64::Engine as _;
use std::fmt::Write as _;

/// The two documents and the image files report.md refers to (file name, bytes).
pub struct Rendered {
    pub markdown: String,
    pub html: String,
    pub files: Vec<(String, Vec<u8>)>,
}

/// Both documents at once.
struct Doc {
    md: String,
    html: String,
    files: Vec<(String, Vec<u8>)>,
}

impl Doc {
    fn heading(&mut self, level: usize, text: &str) {
        let _ = writeln!(self.md, "{} {text}\n", "#".repeat(level));
        let _ = writeln!(self.html, "<h{level}>{}</h{level}>", escape(text));
    }

    fn para(&mut self, text: &str) {
        let _ = writeln!(self.md, "{text}\n");
        let _ = writeln!(self.html, "<p>{}</p>", escape(text));
    }

    /// A table; columns from `first_numeric` on are right-aligned.
    fn table(&mut self, header: &[String], rows: &[Vec<String>], first_numeric: usize) {
        let cell = |s: &String| s.replace('|', "\\|");
        let _ = writeln!(self.md, "| {} |", header.iter().map(cell).collect::<Vec<_>>().join(" | "));
        let align: Vec<&str> = (0..header.len()).map(|i| if i >= first_numeric { "---:" } else { "---" }).collect();
        let _ = writeln!(self.md, "|{}|", align.join("|"));
        self.html.push_str("<table>\n<tr>");
        for h in header {
            let _ = write!(self.html, "<th>{}</th>", escape(h));
        }
        self.html.push_str("</tr>\n");
        for row in rows {
            let _ = writeln!(self.md, "| {} |", row.iter().map(cell).collect::<Vec<_>>().join(" | "));
            self.html.push_str("<tr>");
            for (i, c) in row.iter().enumerate() {
                let class = if i >= first_numeric { r#" class="num""# } else { "" };
                let _ = write!(self.html, "<td{class}>{}</td>", escape(c));
            }
            self.html.push_str("</tr>\n");
        }
        self.md.push('\n');
        self.html.push_str("</table>\n");
    }

    fn svg(&mut self, file: &str, alt: &str, caption: &str, svg: String) {
        let _ = writeln!(self.md, "![{alt}]({file})\n\n{caption}\n");
        let _ = writeln!(self.html, "<figure>{svg}<figcaption>{}</figcaption></figure>", escape(caption));
        self.files.push((file.to_string(), svg.into_bytes()));
    }

    fn png(&mut self, file: &str, alt: &str, caption: &str, bytes: Vec<u8>) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let _ = writeln!(self.md, "![{alt}]({file})\n\n{caption}\n");
        let _ = writeln!(
            self.html,
            r#"<figure><img src="data:image/png;base64,{b64}" alt="{}"><figcaption>{}</figcaption></figure>"#,
            escape(alt),
            escape(caption)
        );
        self.files.push((file.to_string(), bytes));
    }
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px}\
td.num{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1em 0}img{image-rendering:pixelated}";

fn f4(v: f64) -> String {
    format!("{v:.4}")
}

fn signed(v: f64) -> String {
    format!("{v:+.4}")
}

/// The models in report order: every run, then PCA.
fn models(r: &Report) -> Vec<(String, &Analysis)> {
    let mut v: Vec<(String, &Analysis)> =
        r.runs.iter().map(|run| (format!("{} ({})", run.record.model, run.dir), &run.analysis)).collect();
    v.push((format!("PCA-{LATENT}"), &r.baseline.pca));
    v
}

/// report.md, report.html and their images.
pub fn render(r: &Report) -> Result<Rendered> {
    let mut doc = Doc { md: String::new(), html: String::new(), files: Vec::new() };
    let _ = writeln!(
        doc.html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Autoencoder report</title>\n<style>{STYLE}</style>\n</head>\n<body>"
    );
    doc.heading(1, "Autoencoder report");
    let n_test = r.test_labels.len();
    doc.para(&format!(
        "Data: {}. Split seed {} (the runs' own): {} train and {n_test} test images; every number below is on the test images. \
         ssim is the Gaussian 11x11 SSIM (tf.image.ssim), ssim_uniform7 scikit-image's default; MSE is per pixel.",
        r.data_origin, r.seed, r.n_train
    ));
    summary(&mut doc, r);
    curves(&mut doc, r);
    reconstructions(&mut doc, r)?;
    per_class(&mut doc, r);
    worst(&mut doc, r)?;
    latent(&mut doc, r);
    doc.html.push_str("</body>\n</html>\n");
    Ok(Rendered { markdown: doc.md, html: doc.html, files: doc.files })
}

fn summary(doc: &mut Doc, r: &Report) {
    doc.heading(2, "Summary");
    let pca = &r.baseline.pca.scores;
    doc.para(&format!(
        "The linear baseline is PCA with {LATENT} components (as many numbers as the autoencoders' code), fitted on the train \
         images by this engine; it keeps {:.1}% of the train pixels' variance. Its reconstructions are clipped to [0, 1]. \
         Margins are each model's score minus PCA's; the MSE ratio is PCA's MSE over the model's.",
        100.0 * r.baseline.pca_variance
    ));
    let header = [
        "model",
        "run",
        "epochs (best)",
        "ssim",
        "ssim_uniform7",
        "MSE",
        "ssim margin",
        "uniform7 margin",
        "MSE ratio",
    ];
    let mut rows: Vec<Vec<String>> = r
        .runs
        .iter()
        .map(|run| {
            let s = &run.analysis.scores;
            vec![
                run.record.model.to_string(),
                run.dir.clone(),
                format!("{} ({})", run.record.epochs_run, run.record.best_epoch),
                f4(s.ssim),
                f4(s.ssim_uniform7),
                format!("{:.6}", s.mse),
                signed(s.ssim - pca.ssim),
                signed(s.ssim_uniform7 - pca.ssim_uniform7),
                format!("{:.2}x", pca.mse / s.mse),
            ]
        })
        .collect();
    rows.push(vec![
        format!("PCA-{LATENT}"),
        "-".into(),
        "-".into(),
        f4(pca.ssim),
        f4(pca.ssim_uniform7),
        format!("{:.6}", pca.mse),
        "0".into(),
        "0".into(),
        "1.00x".into(),
    ]);
    doc.table(&header.map(String::from), &rows, 2);

    doc.heading(2, "What the code keeps: k-NN accuracy");
    doc.para(&format!(
        "Each test image is classified by the majority label of its {KNN_K} nearest train images (squared Euclidean \
         distance; ties go to the earlier train image, and a tied vote to the class of the nearest neighbour), \
         comparing representations of the same images."
    ));
    let mut rows = vec![vec!["raw pixels".to_string(), IMAGE_LEN.to_string(), f4(r.baseline.knn_pixels)]];
    rows.push(vec![format!("PCA-{LATENT} of the pixels"), LATENT.to_string(), f4(r.baseline.pca.knn_accuracy)]);
    for run in &r.runs {
        rows.push(vec![
            format!("{} code ({})", run.record.model, run.dir),
            LATENT.to_string(),
            f4(run.analysis.knn_accuracy),
        ]);
    }
    doc.table(&["representation", "numbers per image", "5-NN test accuracy"].map(String::from), &rows, 1);
}

fn curves(doc: &mut Doc, r: &Report) {
    doc.heading(2, "Training curves");
    let mut ssim = Vec::new();
    let pts = |h: &[EpochStats], f: fn(&EpochStats) -> f64| h.iter().map(|e| (e.epoch as f64, f(e))).collect();
    for (i, run) in r.runs.iter().enumerate() {
        let (color, h, name) = (PALETTE[i % PALETTE.len()], &run.record.history, &run.label);
        ssim.push(Series { name: format!("{name} ssim"), color, dashed: false, points: pts(h, |e| e.val_ssim) });
        ssim.push(Series {
            name: format!("{name} uniform7"),
            color,
            dashed: true,
            points: pts(h, |e| e.val_ssim_uniform7),
        });
    }
    // One chart per loss: an MSE and a 1 - SSIM are not on one scale.
    for loss in Loss::ALL {
        let mut series = Vec::new();
        for (i, run) in r.runs.iter().enumerate().filter(|(_, run)| run.record.loss() == loss) {
            let (color, h, name) = (PALETTE[i % PALETTE.len()], &run.record.history, &run.label);
            series.push(Series {
                name: format!("{name} train"),
                color,
                dashed: true,
                points: pts(h, |e| e.train_loss),
            });
            series.push(Series { name: format!("{name} val"), color, dashed: false, points: pts(h, |e| e.val_loss) });
        }
        if series.is_empty() {
            continue;
        }
        let (what, file) = match loss {
            Loss::Mse => ("MSE", "loss.svg"),
            Loss::Ssim => ("1 - SSIM", "loss_ssim.svg"),
            Loss::MseSsim => ("MSE + SSIM", "loss_mse_ssim.svg"),
        };
        let chart = svg::line_chart(&format!("Loss ({what}) per epoch"), "epoch", "loss (log scale)", &series, true);
        let caption = format!("Training (dashed) and validation (solid) loss ({what}) per epoch, log scale.");
        doc.svg(file, &format!("{what} loss curves"), &caption, chart);
    }
    let chart = svg::line_chart("Validation SSIM per epoch", "epoch", "SSIM", &ssim, false);
    let caption = "Validation SSIM per epoch: Gaussian ssim (solid), ssim_uniform7 (dashed).";
    doc.svg("val_ssim.svg", "validation SSIM curves", caption, chart);
    // The same against the seconds spent (training and validation): what a user waits for.
    let timed: Vec<Series> = r
        .runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let mut wall = 0.0;
            let points = run.record.history.iter().map(|e| {
                wall += e.seconds;
                (wall, e.val_ssim_uniform7)
            });
            Series {
                name: run.label.clone(),
                color: PALETTE[i % PALETTE.len()],
                dashed: false,
                points: points.collect(),
            }
        })
        .collect();
    let chart = svg::line_chart("Validation SSIM against wall time", "seconds", "ssim_uniform7", &timed, false);
    let caption = "Validation ssim_uniform7 against the seconds of training and validation so far.";
    doc.svg("val_ssim_time.svg", "validation SSIM against wall time", caption, chart);

    // Only when a schedule changed some run's rate (the steps in the curves above line up with
    // its reductions); a flat line would say nothing.
    if r.runs.iter().any(|run| run.record.history.windows(2).any(|w| run.record.lr(&w[0]) != run.record.lr(&w[1]))) {
        let lr: Vec<Series> = r
            .runs
            .iter()
            .enumerate()
            .map(|(i, run)| Series {
                name: run.label.clone(),
                color: PALETTE[i % PALETTE.len()],
                dashed: false,
                points: run.record.history.iter().map(|e| (e.epoch as f64, f64::from(run.record.lr(e)))).collect(),
            })
            .collect();
        let chart = svg::line_chart("Learning rate per epoch", "epoch", "learning rate (log scale)", &lr, true);
        let caption = "The learning rate of each epoch (ReduceLROnPlateau's reductions).";
        doc.svg("lr.svg", "learning-rate curves", caption, chart);
    }
}

fn reconstructions(doc: &mut Doc, r: &Report) -> Result<()> {
    doc.heading(2, "Reconstructions");
    let n = SAMPLE.min(r.test_labels.len());
    let take = |v: &[f32]| v[..n * IMAGE_LEN].to_vec();
    let names: Vec<(String, &Analysis)> = models(r);
    let rows: Vec<Vec<f32>> = std::iter::once(take(&r.test)).chain(names.iter().map(|(_, a)| take(&a.recon))).collect();
    let sets: Vec<(&'static str, &[f32])> = rows.iter().map(|v| ("image set", v.as_slice())).collect();
    let (w, h, px) = picture::stack_pixels(&sets, n, 28, 28, 2)?;
    let order: Vec<&str> = names.iter().map(|(m, _)| m.as_str()).collect();
    let caption = format!("The first {n} test images (top row), then, row by row: {}.", order.join("; "));
    doc.png("reconstructions.png", "reconstructions", &caption, picture::encode_png(w, h, &px)?);
    Ok(())
}

fn per_class(doc: &mut Doc, r: &Report) {
    doc.heading(2, "Per-class test SSIM");
    let names = models(r);
    // Hardest first, by the mean over the autoencoders (PCA's hardest classes differ).
    let mut classes: Vec<usize> = (0..r.class_names.len()).collect();
    let mean = |c: usize| r.runs.iter().map(|run| run.analysis.per_class[c]).sum::<f64>() / r.runs.len() as f64;
    classes.sort_by(|&a, &b| mean(a).total_cmp(&mean(b)));
    let counts = r.test_labels.iter().fold(vec![0usize; r.class_names.len()], |mut c, &l| {
        c[usize::from(l)] += 1;
        c
    });
    let mut header = vec!["class".to_string(), "test images".to_string()];
    header.extend(names.iter().map(|(m, _)| format!("{m} ssim")));
    let rows: Vec<Vec<String>> = classes
        .iter()
        .map(|&c| {
            let mut row = vec![format!("{c} {}", r.class_names[c]), counts[c].to_string()];
            row.extend(names.iter().map(|(_, a)| f4(a.per_class[c])));
            row
        })
        .collect();
    doc.para(
        "Mean Gaussian SSIM of each class's test images, hardest class (lowest mean over the autoencoders) first.",
    );
    doc.table(&header, &rows, 1);
}

fn worst(doc: &mut Doc, r: &Report) -> Result<()> {
    doc.heading(2, "Worst-reconstructed test images");
    for run in &r.runs {
        let a = &run.analysis;
        let n = a.worst.len().min(WORST);
        let (mut orig, mut rec) = (Vec::new(), Vec::new());
        for &(t, _) in &a.worst[..n] {
            orig.extend_from_slice(&r.test[t * IMAGE_LEN..(t + 1) * IMAGE_LEN]);
            rec.extend_from_slice(&a.recon[t * IMAGE_LEN..(t + 1) * IMAGE_LEN]);
        }
        let (w, h, px) = picture::grid_pixels(&orig, &rec, n, 28, 28, 3)?;
        let list: Vec<String> = a.worst[..n]
            .iter()
            .map(|&(t, s)| format!("test #{t} {} {s:.3}", r.class_names[usize::from(r.test_labels[t])]))
            .collect();
        let caption = format!(
            "{} ({}): the {n} test images with the lowest Gaussian SSIM, worst first, above their reconstructions: {}.",
            run.record.model,
            run.dir,
            list.join(", ")
        );
        let alt = format!("worst reconstructions of {}", run.label);
        doc.png(&format!("worst-{}.png", run.label), &alt, &caption, picture::encode_png(w, h, &px)?);
    }
    Ok(())
}

fn latent(doc: &mut Doc, r: &Report) {
    doc.heading(2, "Latent codes in 2-D");
    doc.para(&format!(
        "The {LATENT}-number test codes projected on the first two principal axes of the train codes, one colour per class. \
         For PCA-{LATENT} the codes are the PCA coefficients, so its picture is the pixels' own first two components."
    ));
    for ((name, a), file) in models(r).into_iter().zip(r.runs.iter().map(|run| run.label.clone()).chain(["pca".into()]))
    {
        let title = format!("{name}: codes, first two principal axes");
        let plot = svg::scatter(&title, "axis 1", "axis 2", &a.codes_2d, &r.test_labels, &r.class_names);
        let caption = format!("{name}: the two axes hold {:.1}% of the codes' variance.", 100.0 * a.codes_2d_variance);
        doc.svg(&format!("latent-{file}.svg"), &format!("latent codes of {file}"), &caption, plot);
    }
}
