//! Throughput of the quantized matrix–vector and matrix–matrix kernels per format, on
//! SmolLM2-135M's shapes: `cargo run --release -p duet-model --example quant_kernels [THREADS] [COPIES]`.
//! Prints GB/s of weights read and GMAC/s; the weights of a shape are replicated so that the
//! set exceeds the caches (as a decode step streams every weight once).

use std::time::Instant;

use duet_model::quant::{Acts, GgmlType, Isa, QMatrix, pool::Pool};

fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let pool = Pool::new(threads);
    println!("isa {}, {} threads", Isa::detect().name(), pool.threads());
    let copies: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let rows = 1536;
    let x: Vec<f32> = (0..rows * 1536)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    for t in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::F16,
    ] {
        let cols = if t.block().0 == 256 { 1536 } else { 576 };
        let x = &x[..rows * cols];
        let w = QMatrix::quantize(t, rows, cols, x).expect("quantize");
        // COPIES copies (default 64: ~40-120 MB, past the caches; 1: in the L2 cache).
        let ws: Vec<QMatrix> = (0..copies)
            .map(|_| QMatrix::from_bytes(t, rows, cols, w.bytes().to_vec()).expect("copy"))
            .collect();
        for n in [1usize, 64] {
            let acts = Acts::quantize(w.act_kind(), &x[..n * cols], cols);
            let mut out = vec![0f32; n * rows];
            let reps = if n == 1 { 1280 / copies } else { 128 / copies };
            let start = Instant::now();
            for _ in 0..reps {
                for w in &ws {
                    w.matmul(&acts, &mut out, &pool);
                }
            }
            let s = start.elapsed().as_secs_f64();
            let bytes = (reps * ws.len() * w.bytes().len()) as f64;
            let macs = (reps * ws.len() * rows * cols * n) as f64;
            println!(
                "{:>5} n={n:<3} {:7.2} GB/s  {:7.2} GMAC/s",
                t.name(),
                bytes / s / 1e9,
                macs / s / 1e9
            );
        }
    }
}
