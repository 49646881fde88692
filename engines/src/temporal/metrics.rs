//! Flicker and trail metrics used by the tests, `stylize bench quality` and docs/stability.md.

use super::*;

/// Temporal warping error between consecutive outputs: the previous output is warped by motion
/// estimated on the *inputs* at full resolution, and only pixels whose motion passes a
/// forward–backward consistency check (not occluded) count. Mean squared error per channel
/// on a 0–1 scale. Independent of the filter's own mask, so the filter cannot grade itself
/// by its own notion of agreement.
pub fn warping_error(
    prev_in: &RgbImage,
    cur_in: &RgbImage,
    prev_out: &RgbImage,
    cur_out: &RgbImage,
) -> f64 {
    let (gp, gc) = (grey_downscaled(prev_in, 1), grey_downscaled(cur_in, 1));
    let back = estimate_flow(&gc, &gp);
    let fwd = estimate_flow(&gp, &gc);
    let warped = warp_rgb(prev_out, &back, 1.0);
    let (w, h) = (cur_in.width, cur_in.height);
    let mut sum = 0f64;
    let mut count = 0usize;
    for y in 0..h {
        for x in 0..w {
            let (bx, by) = back.sample(x as f32, y as f32);
            let (qx, qy) = (x as f32 + bx, y as f32 + by);
            if qx < 0.0 || qy < 0.0 || qx > (w - 1) as f32 || qy > (h - 1) as f32 {
                continue;
            }
            let (fx, fy) = fwd.sample(qx, qy);
            let (ex, ey) = (bx + fx, by + fy);
            let mag = bx * bx + by * by + fx * fx + fy * fy;
            if ex * ex + ey * ey > 0.01 * mag + 0.5 {
                continue;
            }
            let i = y * w + x;
            for c in 0..3 {
                let d = (f64::from(cur_out.data[i * 3 + c]) - f64::from(warped[i * 3 + c])) / 255.0;
                sum += d * d;
            }
            count += 3;
        }
    }
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

/// Ghosting behind moving edges: in the pixels that changed from object to background (or
/// back) between two frames — given as a mask — how much of the previous output's change is
/// undone by smoothing: mean |smoothed − unsmoothed| / mean |unsmoothed_t − unsmoothed_{t−1}|.
/// 0 means no trail; plain blending with weight a gives about a.
pub fn trail_ratio(
    changed: &[bool],
    prev_plain: &RgbImage,
    cur_plain: &RgbImage,
    cur_smoothed: &RgbImage,
) -> f64 {
    let mut ghost = 0f64;
    let mut change = 0f64;
    for (i, _) in changed.iter().enumerate().filter(|(_, c)| **c) {
        for c in 0..3 {
            let k = i * 3 + c;
            ghost += (f64::from(cur_smoothed.data[k]) - f64::from(cur_plain.data[k])).abs();
            change += (f64::from(cur_plain.data[k]) - f64::from(prev_plain.data[k])).abs();
        }
    }
    if change == 0.0 {
        0.0
    } else {
        ghost / change
    }
}

/// Test clip for trails: a square sliding 6 px per frame over a still, textured background;
/// every frame uncovers background behind the square's trailing edge, where plain blending
/// leaves a fading copy of the square.
pub fn moving_square_clip(width: usize, height: usize, frames: usize) -> Vec<RgbImage> {
    let side = height / 3;
    (0..frames)
        .map(|t| {
            let (x0, y0) = (width / 8 + 6 * t, height / 3);
            let mut img = RgbImage::new(width, height);
            for y in 0..height {
                for x in 0..width {
                    let inside = (x0..x0 + side).contains(&x) && (y0..y0 + side).contains(&y);
                    let px = if inside {
                        [235, 200, 40]
                    } else {
                        let g = 60.0 + 40.0 * (x as f32 * 0.05).sin() + (y * 60 / height) as f32;
                        [(g / 2.0) as u8, g as u8, 140]
                    };
                    img.data[(y * width + x) * 3..][..3].copy_from_slice(&px);
                }
            }
            img
        })
        .collect()
}

/// Worst [`trail_ratio`] over a sequence, taken in the pixels whose input changed between
/// consecutive frames: `smoothed` outputs against the unsmoothed `plain` ones.
pub fn worst_trail_ratio(inputs: &[RgbImage], plain: &[RgbImage], smoothed: &[RgbImage]) -> f64 {
    (1..inputs.len())
        .map(|t| {
            let changed: Vec<bool> = inputs[t]
                .data
                .chunks_exact(3)
                .zip(inputs[t - 1].data.chunks_exact(3))
                .map(|(a, b)| a != b)
                .collect();
            trail_ratio(&changed, &plain[t - 1], &plain[t], &smoothed[t])
        })
        .fold(0.0, f64::max)
}

/// Mean [`warping_error`] over consecutive frames of a sequence.
pub fn sequence_warping_error(inputs: &[RgbImage], outputs: &[RgbImage]) -> f64 {
    let errs: Vec<f64> = (1..inputs.len().min(outputs.len()))
        .map(|t| warping_error(&inputs[t - 1], &inputs[t], &outputs[t - 1], &outputs[t]))
        .collect();
    errs.iter().sum::<f64>() / errs.len().max(1) as f64
}
