use super::*;
use super::{blur::*, detail::*, flow::*, grey::*, select::*};

/// Deterministic textured picture (smooth waves plus fine detail), shifted by (sx, sy):
/// pixel (x, y) shows the pattern at (x − sx, y − sy), i.e. the scene moved by (sx, sy).
fn textured(w: usize, h: usize, sx: f32, sy: f32) -> RgbImage {
    let mut img = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f32 - sx, y as f32 - sy);
            let base = 128.0
                + 50.0 * (u * 0.21).sin() * (v * 0.17).cos()
                + 30.0 * ((u + 2.0 * v) * 0.09).sin()
                + 20.0 * (u * 0.53 + v * 0.31).sin();
            let p = &mut img.data[(y * w + x) * 3..][..3];
            p[0] = base.clamp(0.0, 255.0) as u8;
            p[1] = (base * 0.8 + 20.0).clamp(0.0, 255.0) as u8;
            p[2] = (255.0 - base).clamp(0.0, 255.0) as u8;
        }
    }
    img
}

/// A bright square on a dark, flat background with its top-left corner at (x0, y0).
fn square(w: usize, h: usize, x0: usize, y0: usize, side: usize) -> RgbImage {
    let mut img = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let inside = (x0..x0 + side).contains(&x) && (y0..y0 + side).contains(&y);
            let v = if inside { 230 } else { 30 };
            img.data[(y * w + x) * 3..][..3].copy_from_slice(&[v, v / 2, 255 - v]);
        }
    }
    img
}

/// Every frame of a clip with its own [`flicker`]: a flickering net's output sequence.
fn flickered(inputs: &[RgbImage]) -> Vec<RgbImage> {
    inputs
        .iter()
        .enumerate()
        .map(|(t, i)| flicker(i, t))
        .collect()
}

/// Per-frame "style flicker": a fixed texture whose phase jumps every frame, so consecutive
/// outputs disagree even where the input does not move — what a style net does.
fn flicker(img: &RgbImage, frame: usize) -> RgbImage {
    let mut out = img.clone();
    let mut state = 0x1234_5678u32 ^ (frame as u32).wrapping_mul(0x9e37_79b9);
    for v in out.data.iter_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *v = (i32::from(*v) + (state % 41) as i32 - 20).clamp(0, 255) as u8;
    }
    out
}

#[test]
fn flow_recovers_a_known_shift() {
    let (w, h) = (96, 64);
    let prev = grey_downscaled(&textured(w, h, 0.0, 0.0), 1);
    for (sx, sy) in [(3.0, -2.0), (-5.0, 4.0), (1.5, 0.5), (9.0, 0.0)] {
        let cur = grey_downscaled(&textured(w, h, sx, sy), 1);
        let flow = estimate_flow(&cur, &prev);
        // Backward flow: the current pixel came from p − shift.
        let (mut ex, mut ey, mut n) = (0f32, 0f32, 0f32);
        for y in (16..h - 16).step_by(4) {
            for x in (16..w - 16).step_by(4) {
                let (dx, dy) = flow.sample(x as f32, y as f32);
                ex += (dx + sx).abs();
                ey += (dy + sy).abs();
                n += 1.0;
            }
        }
        let (ex, ey) = (ex / n, ey / n);
        eprintln!("shift ({sx},{sy}): mean error ({ex:.3},{ey:.3}) px");
        assert!(ex < 0.1 && ey < 0.1, "shift ({sx},{sy}): error ({ex},{ey})");
    }
}

#[test]
fn flow_of_identical_frames_is_zero() {
    let g = grey_downscaled(&textured(64, 48, 0.0, 0.0), 1);
    let flow = estimate_flow(&g, &g);
    assert!(flow.dx.iter().chain(&flow.dy).all(|v| v.abs() < 1e-6));
}

#[test]
fn warp_by_true_flow_reproduces_the_shifted_frame() {
    let (w, h) = (64, 48);
    let prev = textured(w, h, 0.0, 0.0);
    let cur = textured(w, h, 4.0, -3.0);
    let (cols, rows) = grid(&grey_downscaled(&prev, 2));
    let mut flow = Flow::zero(cols, rows);
    flow.dx.fill(-2.0); // in half-resolution pixels: −4 at full resolution
    flow.dy.fill(1.5);
    let warped = warp_rgb(&prev, &flow, 2.0);
    let mut worst = 0f32;
    for y in 6..h - 6 {
        for x in 6..w - 6 {
            for c in 0..3 {
                let i = (y * w + x) * 3 + c;
                worst = worst.max((warped[i] - f32::from(cur.data[i])).abs());
            }
        }
    }
    assert!(worst <= 1.0, "max interior error {worst}");
}

#[test]
fn mask_rejects_disagreement_and_its_neighbours_only() {
    let (w, h) = (20, 10);
    let cur = square(w, h, 0, 0, 0);
    let mut warped: Vec<f32> = cur.data.iter().map(|v| f32::from(*v)).collect();
    // One pixel (10, 5) disagrees strongly, one (3, 3) slightly (noise).
    for c in 0..3 {
        warped[(5 * w + 10) * 3 + c] += 100.0;
        warped[(3 * w + 3) * 3 + c] += 3.0;
    }
    let mask = agreement_mask(&warped, &cur);
    assert_eq!(mask[5 * w + 10], 0.0);
    assert_eq!(mask[4 * w + 11], 0.0, "neighbour of a disagreeing pixel");
    assert_eq!(mask[3 * w + 3], 1.0, "noise below the threshold");
    assert_eq!(mask[5 * w + 15], 1.0);
}

#[test]
fn box_approximation_matches_the_gaussian() {
    // Three odd boxes for σ 3 and 8 have the Gaussian's variance within 12 % (σ within 6 %).
    for sigma in [3.0f32, 8.0] {
        let var: f32 = boxes_for_gauss(sigma)
            .iter()
            .map(|&w| ((w * w) as f32 - 1.0) / 12.0)
            .sum();
        assert!(
            (var / (sigma * sigma) - 1.0).abs() < 0.12,
            "σ {sigma}: {var}"
        );
    }
    // An impulse spreads like the exact Gaussian (away from the borders).
    let (w, h) = (61, 61);
    let mut img = vec![0f32; w * h];
    img[30 * w + 30] = 1000.0;
    let radius = 9usize;
    let taps: Vec<f32> = (0..=2 * radius)
        .map(|k| (-((k as f32 - 9.0).powi(2)) / 18.0).exp())
        .collect();
    let norm: f32 = taps.iter().sum();
    let boxed = box_gaussian(&img, w, h, 1, 3.0);
    let exact_centre = 1000.0 * (taps[radius] / norm).powi(2);
    assert!((boxed[30 * w + 30] / exact_centre - 1.0).abs() < 0.15);
    let total: f32 = boxed.iter().sum();
    assert!((total - 1000.0).abs() < 0.5, "{total}");
}

#[test]
fn gaussian_blur_keeps_flat_images_and_total_weight() {
    let (w, h) = (21, 15);
    let flat = vec![7.0f32; w * h * 3];
    let blurred = gaussian_blur(&flat, w, h, 3, 2.0);
    assert!(blurred.iter().all(|v| (v - 7.0).abs() < 1e-4));
    let mut impulse = vec![0f32; w * h];
    impulse[7 * w + 10] = 1.0;
    let spread = gaussian_blur(&impulse, w, h, 1, 1.0);
    let total: f32 = spread.iter().sum();
    assert!((total - 1.0).abs() < 1e-4, "weight {total}");
    assert!(spread[7 * w + 10] > spread[7 * w + 11]);
    assert!(
        (spread[7 * w + 11] - spread[7 * w + 9]).abs() < 1e-6,
        "symmetric"
    );
}

/// A texture blurred by repeated warps gets its fine-detail energy back from the frame the
/// net painted now, and an already matching image is left as it is.
#[test]
fn restore_detail_undoes_resampling_blur_only() {
    let (w, h) = (48, 40);
    let sharp = to_f32(&textured(w, h, 0.0, 0.0));
    let energy = |img: &[f32]| detail_and_energy(img, w, h).2.iter().sum::<f32>();
    let mut same = sharp.clone();
    restore_detail(&mut same, &sharp, w, h);
    let moved = same.iter().zip(&sharp).map(|(a, b)| (a - b).abs());
    assert!(
        moved.fold(0f32, f32::max) < 1e-3,
        "unchanged when energies match"
    );
    let blurred = gaussian_blur(&sharp, w, h, 3, 1.0);
    let mut restored = blurred.clone();
    restore_detail(&mut restored, &sharp, w, h);
    let (before, after, target) = (energy(&blurred), energy(&restored), energy(&sharp));
    let error = |img: &[f32]| {
        img.iter()
            .zip(&sharp)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
    };
    let (err_before, err_after) = (error(&blurred), error(&restored));
    eprintln!("detail energy: blurred {before:.0}, restored {after:.0}, target {target:.0}");
    eprintln!("squared error to the sharp image: {err_before:.0} -> {err_after:.0}");
    assert!(before < 0.8 * target, "the blur must remove detail");
    assert!(
        after > before * 1.05 && after < target,
        "{before} -> {after} vs {target}"
    );
    assert!(err_after < 0.8 * err_before, "{err_before} -> {err_after}");
}

#[test]
fn propagation_weight_selects_and_ramps() {
    assert_eq!(propagation_weight(1.0, 0.7), 1.0);
    assert_eq!(propagation_weight(0.5, 0.7), 1.0, "selected, not averaged");
    assert_eq!(propagation_weight(0.0, 0.7), 0.0);
    let low = propagation_weight(0.2, 0.7);
    assert!(low > 0.0 && low < 1.0, "ramp near the mask edge: {low}");
    assert!(
        propagation_weight(1.0, 0.1) < 0.2,
        "low stability propagates little"
    );
    assert_eq!(
        propagation_weight(0.0, 1.0),
        0.0,
        "never where the input disagrees"
    );
}

#[test]
fn off_passes_frames_unchanged() {
    let mut f = TemporalFilter::new(0.0);
    let input = textured(32, 32, 0.0, 0.0);
    for i in 0..3 {
        let out = flicker(&input, i);
        let mut smoothed = out.clone();
        f.apply(&input, &mut smoothed);
        assert_eq!(smoothed, out);
    }
}

#[test]
fn smoothing_lowers_warping_error_on_a_moving_scene() {
    let (w, h) = (96, 64);
    let inputs: Vec<RgbImage> = (0..6)
        .map(|t| textured(w, h, 2.0 * t as f32, t as f32))
        .collect();
    let plain = flickered(&inputs);
    let smoothed = TemporalFilter::new(DEFAULT_STABILITY).smooth_sequence(&inputs, &plain);
    let off = sequence_warping_error(&inputs, &plain);
    let on = sequence_warping_error(&inputs, &smoothed);
    eprintln!("warping error off {off:.5}, on {on:.5}");
    assert!(on < 0.5 * off, "warping error off {off}, on {on}");
}

/// A square moves over a still background; behind it, the smoothed output must show the
/// background, not a fading copy of the square. Plain blending must fail the same check,
/// so the measure is known to see trails.
#[test]
fn moving_edges_leave_no_trail() {
    let inputs = moving_square_clip(96, 64, 8);
    let plain = flickered(&inputs);
    let run = |mut filter: TemporalFilter| {
        let smoothed = filter.smooth_sequence(&inputs, &plain);
        worst_trail_ratio(&inputs, &plain, &smoothed)
    };
    let ours = run(TemporalFilter::new(DEFAULT_STABILITY));
    let naive = run(TemporalFilter::naive(DEFAULT_STABILITY));
    eprintln!("trail ratio: ours {ours:.4}, plain blending {naive:.4}");
    assert!(naive > 0.4, "plain blending should trail: {naive}");
    assert!(ours < 0.05, "trail ratio {ours} (plain blending: {naive})");
}

#[test]
fn reset_and_size_change_start_fresh() {
    let mut f = TemporalFilter::new(0.9);
    let a = textured(32, 32, 0.0, 0.0);
    let mut o = flicker(&a, 0);
    f.apply(&a, &mut o);
    f.reset();
    let plain = flicker(&a, 1);
    let mut o = plain.clone();
    f.apply(&a, &mut o);
    assert_eq!(o, plain, "first frame after reset is unchanged");
    let b = textured(40, 24, 0.0, 0.0);
    let plain = flicker(&b, 2);
    let mut o = plain.clone();
    f.apply(&b, &mut o);
    assert_eq!(o, plain, "first frame at a new size is unchanged");
}

/// Every row of an image is handed to exactly one call, in bands of whole rows that say where
/// they start, whatever the thread count.
#[test]
fn bands_cover_every_row_once() {
    for threads in [1, 2, 3, 8] {
        for (w, h) in [(7, 1), (5, 33), (300, 101)] {
            let mut rows = vec![0usize; w * h];
            crate::par::for_bands(&mut rows, w, threads, |range, band| {
                assert_eq!(band.len(), range.len() * w);
                for (y, row) in range.zip(band.chunks_exact_mut(w)) {
                    row.iter_mut().for_each(|v| *v += y + 1);
                }
            });
            for (y, row) in rows.chunks_exact(w).enumerate() {
                assert!(
                    row.iter().all(|v| *v == y + 1),
                    "{threads} threads, {w}x{h}"
                );
            }
        }
    }
}

/// The filter's output is the same bytes on one thread or several (bands are cut the same way
/// whatever the thread count), on an image large enough to be split.
#[test]
fn output_does_not_depend_on_threads() {
    let (w, h) = (200, 120);
    let inputs: Vec<RgbImage> = (0..4)
        .map(|t| textured(w, h, 1.5 * t as f32, -(t as f32)))
        .collect();
    let plain = flickered(&inputs);
    let run = |threads: usize| {
        let mut f = TemporalFilter::new(DEFAULT_STABILITY);
        f.set_threads(threads);
        f.smooth_sequence(&inputs, &plain)
    };
    let one = run(1);
    assert_ne!(one[3], plain[3], "the filter must change something");
    for threads in [2, 3, 5] {
        assert!(run(threads) == one, "{threads} threads");
    }
}

/// The kernels built for AVX2, and the hand-written AVX2 paths (gathers, eight rows per vector
/// in the box blur), give the same bytes as the baseline build of the same code (only the
/// vector width differs); the odd size has rows that are not whole vectors and bands of
/// fewer than eight rows. On a machine without AVX2 both runs take the baseline.
#[test]
fn avx2_and_baseline_kernels_agree() {
    use std::sync::atomic::Ordering;
    for (w, h) in [(200, 120), (203, 61)] {
        let inputs: Vec<RgbImage> = (0..4)
            .map(|t| textured(w, h, -2.5 * t as f32, 0.5 * t as f32))
            .collect();
        let plain = flickered(&inputs);
        let run = || TemporalFilter::new(DEFAULT_STABILITY).smooth_sequence(&inputs, &plain);
        let detected = run();
        super::simd::FORCE_BASELINE.store(true, Ordering::Relaxed);
        let baseline = run();
        super::simd::FORCE_BASELINE.store(false, Ordering::Relaxed);
        assert_ne!(detected[3], plain[3], "the filter must change something");
        assert!(detected == baseline, "{w}x{h}");
    }
}

#[test]
fn the_median_network_equals_sorting() {
    // Few distinct values (ties), both zeros and negative values: the network on total-order
    // keys must pick the value sorting picks, bit for bit, at every grid point.
    let (cols, rows) = (13, 7);
    let values = [-1.5f32, -0.0, 0.0, 0.25, 2.0, -3.0, 0.0];
    let mut state = 0x2545_f491u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        values[state as usize % values.len()]
    };
    let mut flow = Flow::zero(cols, rows);
    for v in flow.dx.iter_mut().chain(flow.dy.iter_mut()) {
        *v = next();
    }
    let mut expected = flow.clone();
    for (v, src) in [(&mut expected.dx, &flow.dx), (&mut expected.dy, &flow.dy)] {
        for r in 0..rows {
            for c in 0..cols {
                let mut window: Vec<f32> = (r.saturating_sub(1)..(r + 2).min(rows))
                    .flat_map(|rr| (c.saturating_sub(1)..(c + 2).min(cols)).map(move |cc| (rr, cc)))
                    .map(|(rr, cc)| src[rr * cols + cc])
                    .collect();
                window.sort_by(f32::total_cmp);
                v[r * cols + c] = window[window.len() / 2];
            }
        }
    }
    median3(&mut flow);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&flow.dx), bits(&expected.dx));
    assert_eq!(bits(&flow.dy), bits(&expected.dy));
}
