//! GFLOP/s of the matrix products of one training step of benchmark config S (and M), as the
//! explicit path calls them: `cargo run --release -p duet-train --example gemm_shapes`.

use std::time::Instant;

fn main() {
    // (m, n, k, a_t, b_t): forward, then the two backward products of each forward one.
    let cases = |bt: usize, c: usize| {
        vec![
            (bt, 3 * c, c, false, false),
            (bt, c, c, false, false),
            (bt, 4 * c, c, false, false),
            (bt, c, 4 * c, false, false),
            (bt, c, 3 * c, false, true),
            (c, 3 * c, bt, true, false),
            (bt, 4 * c, c, false, true),
            (4 * c, c, bt, true, false),
        ]
    };
    for (name, bt, c) in [("S", 768, 128), ("M", 2048, 384)] {
        for (m, n, k, a_t, b_t) in cases(bt, c) {
            let a = vec![0.5f32; m * k];
            let b = vec![0.25f32; k * n];
            let mut out = vec![0f32; m * n];
            duet_train::fast::matmul::matmul(&mut out, &a, &b, m, n, k, a_t, b_t, false);
            let reps = (2e9 / (2.0 * (m * n * k) as f64)).max(3.0) as usize;
            let t = Instant::now();
            for _ in 0..reps {
                duet_train::fast::matmul::matmul(&mut out, &a, &b, m, n, k, a_t, b_t, true);
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{name} m={m:5} n={n:5} k={k:5} a_t={a_t:5} b_t={b_t:5}: {:6.1} GFLOP/s ({:.3} ms)",
                2.0 * (m * n * k) as f64 / s / 1e9,
                s * 1e3
            );
        }
    }
}
