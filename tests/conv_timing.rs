//! Ad-hoc timing (ignored): direct conv forward vs im2col+GEMM per real shape.
use kernels::conv2d;
use kernels::gemm::{gemm, Mat};
use kernels::geom::{ConvGeom, Padding};
use std::time::Instant;

#[test]
#[ignore]
fn time_forward_paths() {
    let shapes = [
        (28, 28, 32, 32, 1),
        (28, 28, 1, 32, 2),
        (14, 14, 32, 64, 2),
        (7, 7, 64, 128, 1),
        (28, 28, 64, 128, 2),
        (14, 14, 128, 128, 2),
        (28, 28, 1, 64, 1),
    ];
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().unwrap();
    for (h, w, ci, co, s) in shapes {
        let g = ConvGeom::new(h, w, ci, co, 3, s, Padding::Same).unwrap();
        let n = 64;
        let x = vec![0.5f32; n * g.x_len()];
        let wt = vec![0.01f32; g.w_len()];
        let mut y = vec![0.0; n * g.y_len()];
        let mut scratch = vec![0.0; conv2d::scratch_len(&g, n)];
        let flop = 2.0 * (g.macs() * n) as f64;
        let reps = 5;
        conv2d::forward(&g, n, &x, &wt, None, &mut y, &mut scratch);
        let t = Instant::now();
        for _ in 0..reps {
            conv2d::forward(&g, n, &x, &wt, None, &mut y, &mut scratch);
        }
        let direct = flop * reps as f64 / t.elapsed().as_secs_f64() / 1e9;
        let mut cols = vec![0.0; g.cols_len()];
        let t = Instant::now();
        for _ in 0..reps {
            for (xi, yi) in x.chunks(g.x_len()).zip(y.chunks_mut(g.y_len())) {
                conv2d::im2col(&g, xi, &mut cols);
                gemm(
                    Mat::rows(&cols, g.h_out * g.w_out, g.patch_len()),
                    Mat::rows(&wt, g.patch_len(), co),
                    0.0,
                    yi,
                );
            }
        }
        let im2col = flop * reps as f64 / t.elapsed().as_secs_f64() / 1e9;
        let mut dw = vec![0.0; g.w_len()];
        let t = Instant::now();
        for _ in 0..reps {
            conv2d::backward_weight(&g, n, &x, &y, &mut dw, None, &mut scratch);
        }
        let bw = flop * reps as f64 / t.elapsed().as_secs_f64() / 1e9;
        eprintln!("{h}x{w} {ci}->{co} s{s}: direct {direct:.1} GFLOP/s, im2col+gemm {im2col:.1}, backward_weight {bw:.1} (1 thread)");
    }
}
