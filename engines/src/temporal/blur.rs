//! Separable Gaussian blurs: exact for small σ, three box passes for large σ. Both run in
//! bands of rows ([`super::par`]) into buffers the caller keeps.

use super::simd::kernel;
use crate::par::for_bands;

/// Separable Gaussian blur (radius 3σ) of an interleaved image with `channels` channels,
/// borders clamped.
#[cfg(test)]
pub(super) fn gaussian_blur(
    img: &[f32],
    w: usize,
    h: usize,
    channels: usize,
    sigma: f32,
) -> Vec<f32> {
    let mut out = Vec::new();
    gaussian_blur_into(img, &mut out, &mut Vec::new(), w, h, channels, sigma, 1);
    out
}

/// [`gaussian_blur`] into `out`, with `tmp` between the passes, on up to `threads` threads.
#[allow(clippy::too_many_arguments)]
pub(super) fn gaussian_blur_into(
    img: &[f32],
    out: &mut Vec<f32>,
    tmp: &mut Vec<f32>,
    w: usize,
    h: usize,
    channels: usize,
    sigma: f32,
    threads: usize,
) {
    out.resize(img.len(), 0.0);
    if sigma >= BOX_SIGMA {
        out.copy_from_slice(img);
        box_gaussian_in_place(out, tmp, w, h, channels, sigma, threads);
        return;
    }
    let taps = gaussian_taps(sigma);
    let row_len = w * channels;
    tmp.resize(img.len(), 0.0);
    // Horizontal: each row padded by repeating its edge pixels; whole shifted rows are added,
    // so the inner loops are contiguous and vectorise.
    for_bands(tmp, row_len, threads, |rows, band| {
        let src = &img[rows.start * row_len..rows.end * row_len];
        gaussian_rows(src, band, w, channels, &taps);
    });
    // Vertical: each output row is the weighted sum of clamped neighbouring rows.
    let across = &*tmp;
    for_bands(out, row_len, threads, |rows, band| {
        gaussian_columns(across, band, rows.start, w, h, channels, &taps);
    });
}

kernel! {
    /// The horizontal pass of [`gaussian_blur`] over whole rows of `src` into `dst`.
    fn gaussian_rows(src: &[f32], dst: &mut [f32], w: usize, channels: usize, taps: &[f32]) {
        let radius = taps.len() / 2;
        let row_len = w * channels;
        let mut padded = vec![0f32; (w + 2 * radius) * channels];
        for (src, dst) in src.chunks_exact(row_len).zip(dst.chunks_exact_mut(row_len)) {
            pad_row(src, &mut padded, channels, radius);
            // The kernel is symmetric: pixels at ±k share a tap (one multiply for two).
            let at = |k: usize| &padded[k * channels..][..row_len];
            for (d, v) in dst.iter_mut().zip(at(radius)) {
                *d = taps[radius] * v;
            }
            for (k, t) in taps.iter().enumerate().take(radius) {
                for ((d, a), b) in dst.iter_mut().zip(at(k)).zip(at(2 * radius - k)) {
                    *d += t * (a + b);
                }
            }
        }
    }
}

/// `row` (pixels of `channels` values) into `padded` with its first and last pixel repeated
/// `pad` times before and after: one copy of the row, values copied one by one only at the
/// edges (a copy per pixel of a run-time length is a library call each).
#[inline(always)]
fn pad_row(row: &[f32], padded: &mut [f32], channels: usize, pad: usize) {
    let (edge, len) = (pad * channels, row.len());
    padded[edge..edge + len].copy_from_slice(row);
    for i in 0..edge {
        padded[i] = row[i % channels];
        padded[edge + len + i] = row[len - channels + i % channels];
    }
}

kernel! {
    /// The vertical pass of [`gaussian_blur`]: rows `y0..` of the output into `dst` from the
    /// whole horizontally blurred image `across`.
    fn gaussian_columns(
        across: &[f32],
        dst: &mut [f32],
        y0: usize,
        w: usize,
        h: usize,
        channels: usize,
        taps: &[f32],
    ) {
        let radius = taps.len() / 2;
        let row_len = w * channels;
        for (i, dst) in dst.chunks_exact_mut(row_len).enumerate() {
            // Row y + k − radius, clamped; symmetric taps as across.
            let at = |k: usize| {
                let sy = (y0 + i + k).saturating_sub(radius).min(h - 1);
                &across[sy * row_len..][..row_len]
            };
            for (d, v) in dst.iter_mut().zip(at(radius)) {
                *d = taps[radius] * v;
            }
            for (k, t) in taps.iter().enumerate().take(radius) {
                for ((d, a), b) in dst.iter_mut().zip(at(k)).zip(at(2 * radius - k)) {
                    *d += t * (a + b);
                }
            }
        }
    }
}

/// The normalised taps of a Gaussian of `sigma`, radius 3σ (2·radius + 1 of them).
pub(crate) fn gaussian_taps(sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as usize;
    let taps: Vec<f32> = (0..=2 * radius)
        .map(|k| {
            let d = k as f32 - radius as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let norm: f32 = taps.iter().sum();
    taps.iter().map(|t| t / norm).collect()
}

/// From this σ on, a Gaussian is approximated by three box blurs (running sums: a cost per
/// pixel independent of σ). The detail-energy window (σ 8) takes this path;
/// the detail split (σ 1.5) stays exact because it defines what "fine detail" is.
pub(crate) const BOX_SIGMA: f32 = 2.5;

/// Widths (odd) of three box blurs whose sequence has the variance of a Gaussian of `sigma`
/// (Kovesi, "Fast almost-Gaussian filtering", 2010).
pub(crate) fn boxes_for_gauss(sigma: f32) -> [usize; 3] {
    let n = 3.0;
    let ideal = (12.0 * sigma * sigma / n + 1.0).sqrt();
    let mut lower = ideal.floor() as usize;
    if lower.is_multiple_of(2) {
        lower -= 1;
    }
    let wl = lower as f32;
    let m = ((12.0 * sigma * sigma - n * wl * wl - 4.0 * n * wl - 3.0 * n) / (-4.0 * wl - 4.0))
        .round() as usize;
    std::array::from_fn(|i| if i < m { lower } else { lower + 2 })
}

/// Gaussian blur as three box blurs, each a horizontal then a vertical running sum, borders
/// clamped like [`gaussian_blur`].
#[cfg(test)]
pub(super) fn box_gaussian(
    img: &[f32],
    w: usize,
    h: usize,
    channels: usize,
    sigma: f32,
) -> Vec<f32> {
    let mut a = img.to_vec();
    box_gaussian_in_place(&mut a, &mut Vec::new(), w, h, channels, sigma, 1);
    a
}

/// [`box_gaussian`] of `img` in place, with `tmp` as the buffer between passes, on up to
/// `threads` threads.
pub(super) fn box_gaussian_in_place(
    img: &mut [f32],
    tmp: &mut Vec<f32>,
    w: usize,
    h: usize,
    channels: usize,
    sigma: f32,
    threads: usize,
) {
    box_blurs_in_place(img, tmp, w, h, channels, &boxes_for_gauss(sigma), threads);
}

/// Box blurs of the given odd `widths` one after the other, each a horizontal then a vertical
/// running sum (borders clamped), of `img` in place with `tmp` as the buffer between passes.
pub(super) fn box_blurs_in_place(
    img: &mut [f32],
    tmp: &mut Vec<f32>,
    w: usize,
    h: usize,
    channels: usize,
    widths: &[usize],
    threads: usize,
) {
    tmp.resize(img.len(), 0.0);
    let row_len = w * channels;
    for &width in widths {
        let r = width / 2;
        let src = &*img;
        for_bands(tmp, row_len, threads, |rows, band| {
            box_rows(
                &src[rows.start * row_len..rows.end * row_len],
                band,
                w,
                channels,
                r,
            );
        });
        let src = &*tmp;
        for_bands(img, row_len, threads, |rows, band| {
            box_columns(src, band, rows.start, w, h, channels, r);
        });
    }
}

/// Horizontal running sums (box of radius `r`) over whole rows of `src` into `dst`.
pub(super) fn box_rows(src: &[f32], dst: &mut [f32], w: usize, channels: usize, r: usize) {
    box_rows_each(src, dst, w, channels, &[r]);
}

/// Horizontal boxes of each radius in `radii`, one after the other, over whole rows of `src`
/// into `dst`: a row goes through all of them while it is in cache.
pub(super) fn box_rows_each(
    src: &[f32],
    dst: &mut [f32],
    w: usize,
    channels: usize,
    radii: &[usize],
) {
    // Eight rows at a time in the lanes of AVX2 vectors where the CPU has them (the same sums
    // in the same order per row); the rows left over one by one.
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() && (w * channels).is_multiple_of(8) {
        // SAFETY: the CPU has AVX2 (checked just above).
        done = unsafe {
            match channels {
                1 => box_rows_avx2::<1>(src, dst, w, radii),
                2 => box_rows_avx2::<2>(src, dst, w, radii),
                3 => box_rows_avx2::<3>(src, dst, w, radii),
                5 => box_rows_avx2::<5>(src, dst, w, radii),
                _ => unreachable!("box blur of {channels} channels"),
            }
        };
    }
    let (src, dst) = (&src[done..], &mut dst[done..]);
    match radii {
        [] => dst.copy_from_slice(src),
        [r] => box_rows_scalar(src, dst, w, channels, *r),
        [r, rest @ ..] => {
            let mut once = vec![0f32; src.len()];
            box_rows_scalar(src, &mut once, w, channels, *r);
            box_rows_each(&once, dst, w, channels, rest);
        }
    }
}

kernel! {
    fn box_rows_scalar(src: &[f32], dst: &mut [f32], w: usize, channels: usize, r: usize) {
        // The channel count as a constant lets the per-pixel channel loop unroll and
        // vectorise.
        match channels {
            1 => box_rows_n::<1>(src, dst, w, r),
            2 => box_rows_n::<2>(src, dst, w, r),
            3 => box_rows_n::<3>(src, dst, w, r),
            5 => box_rows_n::<5>(src, dst, w, r),
            _ => unreachable!("box blur of {channels} channels"),
        }
    }
}

/// [`box_rows_n`] on groups of eight whole rows, one row per vector lane: the rows are
/// transposed (8×8 blocks) into a padded buffer where a pixel's channel is one vector, summed
/// as [`box_rows_n`] sums each row, and transposed back. Returns how many values it did (the
/// rows after the last whole group are left).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn box_rows_avx2<const C: usize>(src: &[f32], dst: &mut [f32], w: usize, radii: &[usize]) -> usize {
    // The padded rows, transposed: a buffer per thread, kept (zeroing a fresh one for every
    // band cost as much as the sums).
    thread_local! {
        static LANES: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut lanes = LANES.take();
    let done = box_rows_lanes::<C>(src, dst, w, radii, &mut lanes);
    LANES.set(lanes);
    done
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn box_rows_lanes<const C: usize>(
    src: &[f32],
    dst: &mut [f32],
    w: usize,
    radii: &[usize],
    lanes: &mut Vec<f32>,
) -> usize {
    use super::gather::{lanes_to_rows, load8, rows_to_lanes, store8};
    use std::arch::x86_64::*;
    const LANES: usize = 8;
    let row_len = w * C;
    let pad = radii.iter().max().map_or(0, |r| r + 1);
    let (edge, padded_len) = (pad * C, (w + 2 * pad) * C);
    let group = LANES * row_len;
    lanes.resize((padded_len + row_len) * LANES, 0.0);
    let (lanes, sums) = lanes.split_at_mut(padded_len * LANES);
    for (s, d) in src.chunks_exact(group).zip(dst.chunks_exact_mut(group)) {
        rows_to_lanes(s, row_len, &mut lanes[edge * LANES..]);
        for (pass, &r) in radii.iter().enumerate() {
            if pass > 0 {
                // The last pass's sums are this pass's rows.
                lanes[edge * LANES..(edge + row_len) * LANES].copy_from_slice(sums);
            }
            // The edge pixels repeated, as `pad_row` does.
            for i in 0..edge {
                let first = load8(lanes, (edge + i % C) * LANES);
                let last = load8(lanes, (edge + row_len - C + i % C) * LANES);
                store8(lanes, i * LANES, first);
                store8(lanes, (edge + row_len + i) * LANES, last);
            }
            let norm = _mm256_set1_ps(1.0 / (2 * r + 1) as f32);
            // Pixel x's window starts at padded pixel x + pad − r.
            let start = pad - r - 1;
            let mut acc = [_mm256_setzero_ps(); C];
            for p in start + 1..=start + 2 * r + 1 {
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_add_ps(*a, load8(lanes, (p * C + c) * LANES));
                }
            }
            for x in 0..w {
                for (c, a) in acc.iter_mut().enumerate() {
                    store8(sums, (x * C + c) * LANES, _mm256_mul_ps(*a, norm));
                    let add = load8(lanes, ((x + start + 2 * r + 2) * C + c) * LANES);
                    let sub = load8(lanes, ((x + start + 1) * C + c) * LANES);
                    *a = _mm256_add_ps(*a, _mm256_sub_ps(add, sub));
                }
            }
        }
        if radii.is_empty() {
            sums.copy_from_slice(&lanes[edge * LANES..(edge + row_len) * LANES]);
        }
        lanes_to_rows(sums, row_len, d);
    }
    src.len() / group * group
}

#[inline(always)]
fn box_rows_n<const C: usize>(src: &[f32], dst: &mut [f32], w: usize, r: usize) {
    // Rows are summed four at a time: a running sum is a chain of dependent additions, and
    // four independent chains keep the adder busy (the same sums as one row at a time).
    const ROWS: usize = 4;
    let norm = 1.0 / (2 * r + 1) as f32;
    // Each row with its edge pixels repeated r + 1 times on both sides: no clamping per pixel.
    let pad = r + 1;
    let padded_len = (w + 2 * pad) * C;
    let mut padded = vec![0f32; ROWS * padded_len];
    let groups = src.chunks(ROWS * w * C).zip(dst.chunks_mut(ROWS * w * C));
    for (s, d) in groups {
        let n = s.len() / (w * C);
        for (row, p) in s
            .chunks_exact(w * C)
            .zip(padded.chunks_exact_mut(padded_len))
        {
            pad_row(row, p, C, pad);
        }
        let mut acc = [[0f32; C]; ROWS];
        for (a, p) in acc.iter_mut().zip(padded.chunks_exact(padded_len)).take(n) {
            for px in p[C..].chunks_exact(C).take(2 * r + 1) {
                for c in 0..C {
                    a[c] += px[c];
                }
            }
        }
        // Pixel x adds padded pixel x + 2r + 2 and drops x + 1 (x + r + 1 and x − r unpadded).
        for x in 0..w {
            for (j, a) in acc.iter_mut().enumerate().take(n) {
                let p = &padded[j * padded_len..][..padded_len];
                let (add, sub) = (&p[(x + 2 * r + 2) * C..][..C], &p[(x + 1) * C..][..C]);
                let out = &mut d[(j * w + x) * C..][..C];
                for c in 0..C {
                    out[c] = a[c] * norm;
                    a[c] += add[c] - sub[c];
                }
            }
        }
    }
}

kernel! {
    /// Vertical running sums of `src` (the whole image) for the rows of `dst`, a band of the
    /// output that starts at row `y0`. Each band starts its sum afresh, so the result does not
    /// depend on how the rows are split.
    pub(super) fn box_columns(
        src: &[f32],
        dst: &mut [f32],
        y0: usize,
        w: usize,
        h: usize,
        channels: usize,
        r: usize,
    ) {
        let norm = 1.0 / (2 * r + 1) as f32;
        let row_len = w * channels;
        let row = |y: isize| {
            let y = y.clamp(0, h as isize - 1) as usize;
            &src[y * row_len..(y + 1) * row_len]
        };
        let y0 = y0 as isize;
        let mut acc = vec![0f32; row_len];
        for k in -(r as isize)..=r as isize {
            for (a, v) in acc.iter_mut().zip(row(y0 + k)) {
                *a += v;
            }
        }
        for (i, d) in dst.chunks_exact_mut(row_len).enumerate() {
            let y = y0 + i as isize;
            let (add, sub) = (row(y + r as isize + 1), row(y - r as isize));
            for (((o, a), p), m) in d.iter_mut().zip(acc.iter_mut()).zip(add).zip(sub) {
                *o = *a * norm;
                *a += p - m;
            }
        }
    }
}

/// Vertical boxes of radius `r1`, then `r2`, for the rows of `dst` (a band of the output that
/// starts at row `y0`) from `src` (the whole image). The first box's rows that the second
/// reads are summed afresh for the band, in a buffer per thread: the first box never goes
/// through a full image. The result depends only on the band's rows.
#[allow(clippy::too_many_arguments)]
pub(super) fn box_columns_twice(
    src: &[f32],
    dst: &mut [f32],
    y0: usize,
    w: usize,
    h: usize,
    channels: usize,
    r1: usize,
    r2: usize,
) {
    thread_local! {
        static MID: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let row_len = w * channels;
    let rows = dst.len() / row_len;
    // The first box's rows y0 − r2 to y0 + rows + r2, inside the image: every row the second
    // box reads once the image's border is clamped.
    let (lo, hi) = (y0.saturating_sub(r2), (y0 + rows + r2).min(h));
    let mut mid = MID.take();
    mid.resize((hi - lo) * row_len, 0.0);
    box_columns(src, &mut mid, lo, w, h, channels, r1);
    // Clamping to the buffer's rows is clamping to the image's here (see above).
    box_columns(&mid, dst, y0 - lo, w, hi - lo, channels, r2);
    MID.set(mid);
}
