//! Matrix multiplication through the `gemm` crate (the kernels candle itself uses), on plain
//! row-major slices. `gemm` takes raw pointers; this module checks every length against the
//! dimensions before handing them over, so callers stay in safe code.
#![allow(unsafe_code)]

use gemm::Parallelism;

/// `c (m×n) = [c +] op(a) · op(b)` for row-major slices, where `op(a)` is `a` (m×k) or, with
/// `a_t`, the transpose of `a` stored (k×m); likewise `op(b)` is `b` (k×n) or, with `b_t`, the
/// transpose of `b` stored (n×k). With `accumulate` the product is added to `c`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
    a_t: bool,
    b_t: bool,
    accumulate: bool,
) {
    matmul_par(c, a, b, m, n, k, a_t, b_t, accumulate, true)
}

/// [`matmul`] on the calling thread only (for use inside parallel loops).
#[allow(clippy::too_many_arguments)]
pub fn matmul_serial(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
    a_t: bool,
    b_t: bool,
    accumulate: bool,
) {
    matmul_par(c, a, b, m, n, k, a_t, b_t, accumulate, false)
}

#[allow(clippy::too_many_arguments)]
fn matmul_par(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
    a_t: bool,
    b_t: bool,
    accumulate: bool,
    parallel: bool,
) {
    assert!(
        c.len() >= m * n,
        "matmul: c has {} values for {m}x{n}",
        c.len()
    );
    assert!(
        a.len() >= m * k,
        "matmul: a has {} values for {m}x{k}",
        a.len()
    );
    assert!(
        b.len() >= k * n,
        "matmul: b has {} values for {k}x{n}",
        b.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    // Strides (column, row) of each operand as gemm wants them.
    let (a_cs, a_rs) = if a_t {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let (b_cs, b_rs) = if b_t {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let threads = rayon::current_num_threads();
    let par = if !parallel || (m * n * k) < 32 * 32 * 32 || threads < 2 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    };
    // SAFETY: the asserts above guarantee that every element gemm addresses — row i < m,
    // column j < n, inner index p < k under the strides just computed — lies inside the
    // corresponding slice; `c` is borrowed mutably and does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, a_t: bool, b_t: bool) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let x = if a_t { a[p * m + i] } else { a[i * k + p] };
                    let y = if b_t { b[j * k + p] } else { b[p * n + j] };
                    c[i * n + j] += x * y;
                }
            }
        }
        c
    }

    #[test]
    fn every_transpose_combination_matches() {
        let (m, n, k) = (37, 29, 41);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1)
            .collect();
        for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
            let want = naive(&a, &b, m, n, k, a_t, b_t);
            let mut c = vec![1f32; m * n];
            matmul(&mut c, &a, &b, m, n, k, a_t, b_t, true);
            for (x, y) in c.iter().zip(&want) {
                assert!(
                    (x - (y + 1.0)).abs() < 1e-4,
                    "{a_t} {b_t}: {x} vs {}",
                    y + 1.0
                );
            }
            matmul(&mut c, &a, &b, m, n, k, a_t, b_t, false);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-4);
            }
        }
    }
}
