//! The machine's memory read bandwidth, for the GGUF benchmark's report (a decode step reads
//! every weight once, so this bounds tokens/s): sums a buffer of `MB` megabytes with one and
//! with two threads, best of five passes, and prints JSON.
//!
//! `cargo run --release -p duet-model --example mem_bandwidth -- [MB]` (default 512).

use std::time::Instant;

fn pass(buf: &[u64], threads: usize) -> f64 {
    let chunk = buf.len() / threads;
    let t = Instant::now();
    let s: u64 = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|k| {
                let b = &buf[k * chunk..(k + 1) * chunk];
                sc.spawn(move || b.iter().fold(0u64, |a, &x| a.wrapping_add(x)))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or(0))
            .fold(0, u64::wrapping_add)
    });
    std::hint::black_box(s);
    (chunk * threads * 8) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn main() {
    let mb: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let buf: Vec<u64> = (0..(mb << 20) / 8).map(|i| i as u64).collect();
    let best = |threads| (0..5).map(|_| pass(&buf, threads)).fold(0f64, f64::max);
    println!(
        "{}",
        serde_json::json!({"buffer_MB": mb, "gbps_1_thread": best(1), "gbps_2_threads": best(2)})
    );
}
