//! The kernels against the reference, and the reference against dequantized values.

use super::*;
use rand::{RngExt, SeedableRng};

const TYPES: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let v: f32 = rng.random_range(-1.0..1.0);
            // A few outliers, as real weights have.
            if i % 97 == 0 { v * 6.0 } else { v }
        })
        .collect()
}

/// The activations as the kernels see them, back in f32.
fn dequantized_acts(a: &Acts, i: usize) -> Vec<f32> {
    let r = a.row(i);
    match a.kind() {
        ActKind::Float => r.f.to_vec(),
        ActKind::Blocks32 => {
            r.qs.iter()
                .enumerate()
                .map(|(j, &q)| q as f32 * r.d[j / 32])
                .collect()
        }
        ActKind::Blocks256 => {
            r.qs.iter()
                .enumerate()
                .map(|(j, &q)| q as f32 * r.d[j / 256])
                .collect()
        }
    }
}

#[test]
fn quantization_round_trips_within_each_formats_precision() {
    let x = random(4 * 512, 1);
    for t in TYPES {
        let m = QMatrix::quantize(t, 4, 512, &x).unwrap();
        assert_eq!(m.bytes().len(), 4 * t.row_bytes(512).unwrap());
        let y = m.dequantize();
        let rms =
            (x.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / x.len() as f32).sqrt();
        let bound = match t {
            GgmlType::F32 => 0.0,
            GgmlType::F16 | GgmlType::BF16 => 0.01,
            GgmlType::Q8_0 => 0.01,
            GgmlType::Q6_K | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q5_K => 0.06,
            _ => 0.12,
        };
        assert!(rms <= bound, "{t}: rms error {rms} above {bound}");
    }
}

#[test]
fn reference_dot_equals_the_dot_of_dequantized_values() {
    // 576 = 18 blocks of 32 (SmolLM2's width, an even count) and 544 = 17 (odd); k-quants
    // need multiples of 256.
    for (t, cols) in TYPES.iter().flat_map(|&t| {
        let widths: &[usize] = if t.block().0 == 256 {
            &[256, 768]
        } else {
            &[576, 544, 64]
        };
        widths.iter().map(move |&c| (t, c))
    }) {
        let w = QMatrix::quantize(t, 3, cols, &random(3 * cols, 2)).unwrap();
        let x = random(2 * cols, 3);
        let acts = Acts::quantize(w.act_kind(), &x, cols);
        for i in 0..2 {
            let xa = dequantized_acts(&acts, i);
            for r in 0..3 {
                let mut wr = vec![0f32; cols];
                w.dequantize_row(r, &mut wr);
                let want: f32 = wr.iter().zip(&xa).map(|(a, b)| a * b).sum();
                let got = dot::dot_ref(t, w.row(r), &acts.row(i));
                let scale = wr.iter().map(|v| v.abs()).sum::<f32>().max(1.0);
                assert!(
                    (got - want).abs() <= 1e-4 * scale,
                    "{t} cols {cols}: reference {got} against dequantized {want}"
                );
            }
        }
    }
}

#[test]
fn simd_kernels_equal_the_reference() {
    let isa = Isa::detect();
    for t in TYPES {
        let widths: &[usize] = if t.block().0 == 256 {
            &[256, 1536]
        } else {
            &[576, 544, 1536, 32]
        };
        for &cols in widths {
            let w = QMatrix::quantize(t, 5, cols, &random(5 * cols, 4)).unwrap();
            let acts = Acts::quantize(w.act_kind(), &random(3 * cols, 5), cols);
            for i in 0..3 {
                for r in 0..5 {
                    let a = acts.row(i);
                    let want = dot::dot_ref(t, w.row(r), &a);
                    let got = dot::dot(isa, t, w.row(r), &a);
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{t} cols {cols} on {}: {got} against the reference {want}",
                        isa.name()
                    );
                }
            }
        }
    }
}

#[test]
#[allow(clippy::needless_range_loop)] // rows and columns of a tile
fn four_row_kernels_equal_one_row_at_a_time_to_the_bit() {
    let isa = Isa::detect();
    // 544 columns: an odd number of 32-blocks, the last one outside the paired loop.
    let shapes = TYPES.iter().flat_map(|&t| {
        let widths: &[usize] = if t.block().0 == 256 {
            &[512]
        } else {
            &[576, 544]
        };
        widths.iter().map(move |&c| (t, c))
    });
    for (t, cols) in shapes {
        let w = QMatrix::quantize(t, 4, cols, &random(4 * cols, 8)).unwrap();
        let acts = Acts::quantize(w.act_kind(), &random(cols, 9), cols);
        let a = acts.row(0);
        let four = dot::dot4(isa, t, [w.row(0), w.row(1), w.row(2), w.row(3)], &a);
        for r in 0..4 {
            assert_eq!(
                four[r].to_bits(),
                dot::dot(isa, t, w.row(r), &a).to_bits(),
                "{t} row {r}"
            );
        }
        let acts4 = Acts::quantize(w.act_kind(), &random(4 * cols, 12), cols);
        let rows4 = [acts4.row(0), acts4.row(1), acts4.row(2), acts4.row(3)];
        let tile = dot::tile4(
            isa,
            t,
            [w.row(0), w.row(1), w.row(2), w.row(3)],
            [&rows4[0], &rows4[1], &rows4[2], &rows4[3]],
        );
        for r in 0..4 {
            for c in 0..4 {
                assert_eq!(
                    tile[r][c].to_bits(),
                    dot::dot(isa, t, w.row(r), &rows4[c]).to_bits(),
                    "{t} ({cols} columns) tile {r},{c}"
                );
            }
        }
    }
}

#[test]
fn f16_dot_kernels_equal_the_portable_ggml_order_to_the_bit() {
    let isa = Isa::detect();
    let x: Vec<half::f16> = random(300, 10)
        .iter()
        .map(|&v| half::f16::from_f32(v))
        .collect();
    let y: Vec<half::f16> = random(300, 11)
        .iter()
        .map(|&v| half::f16::from_f32(v))
        .collect();
    let f = |v: &[half::f16]| v.iter().map(|h| h.to_f32()).collect::<Vec<f32>>();
    for n in [1usize, 15, 16, 17, 63, 64, 65, 128, 200, 256, 300] {
        let (xf, yf) = (f(&x[..n]), f(&y[..n]));
        let mut xp = xf.clone();
        let mut yp = yf.clone();
        xp.resize(n.div_ceil(64) * 64, 0.0);
        yp.resize(n.div_ceil(64) * 64, 0.0);
        let want = ggml::dot_f16(&xp, &yp);
        let tiled = ggml::dot_f16_tiled(&xf, &yf);
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512Vnni {
            assert_eq!(
                x86::dot_f16_padded(&x[..n], &y[..n]).to_bits(),
                want.to_bits(),
                "padded, n {n}"
            );
            assert_eq!(
                x86::dot_f16_tiled(&x[..n], &y[..n]).to_bits(),
                tiled.to_bits(),
                "tiled, n {n}"
            );
        }
        let exact: f64 = xf.iter().zip(&yf).map(|(a, b)| *a as f64 * *b as f64).sum();
        assert!((want as f64 - exact).abs() < 1e-4 && (tiled as f64 - exact).abs() < 1e-4);
    }
}

#[test]
fn parallel_matmul_equals_row_by_row_dots() {
    let pool = pool::Pool::new(3);
    for t in [GgmlType::Q4_1, GgmlType::Q6_K, GgmlType::F16] {
        let (rows, cols, n) = (100, 512, 7);
        let w = QMatrix::quantize(t, rows, cols, &random(rows * cols, 6)).unwrap();
        let acts = Acts::quantize(w.act_kind(), &random(n * cols, 7), cols);
        let mut out = vec![0f32; n * rows];
        w.matmul(&acts, &mut out, &pool);
        for i in 0..n {
            for r in 0..rows {
                let want = dot::dot_ref(t, w.row(r), &acts.row(i));
                assert!((out[i * rows + r] - want).abs() <= 1e-4 * want.abs().max(1.0));
            }
        }
    }
}

#[test]
fn pool_runs_every_task_once_across_many_jobs() {
    let pool = pool::Pool::new(4);
    for round in 0..2000usize {
        let n = round % 37;
        let hits: Vec<std::sync::atomic::AtomicUsize> =
            (0..n).map(|_| Default::default()).collect();
        pool.run(n, &|i| {
            hits[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        assert!(
            hits.iter()
                .all(|h| h.load(std::sync::atomic::Ordering::Relaxed) == 1)
        );
    }
}

#[test]
fn a_panicking_task_fails_the_call_and_the_pool_survives() {
    let pool = pool::Pool::new(2);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.run(8, &|i| assert!(i != 5, "task five fails"));
    }));
    assert!(r.is_err());
    let count = std::sync::atomic::AtomicUsize::new(0);
    pool.run(10, &|_| {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(count.into_inner(), 10);
}
