//! Temporal stability: motion-compensated texture propagation for the stylized output.
//!
//! A per-frame style net flickers: a small change of the input (noise, a sub-pixel move) can
//! flip the texture the net paints. Plain frame blending removes flicker but leaves trails
//! behind moving edges, and averaging two different brush textures washes the style out (the
//! output drifts toward the content). This filter instead
//! 1. estimates dense motion between the previous and the current *input* on a grey image at
//!    most 320 px wide: block matching on a half-resolution pyramid for large motions, then
//!    dense Lucas–Kanade steps per pixel (Gaussian window) for an accurate, smooth field;
//! 2. carries the previous *output* and the input its texture was painted for (the
//!    reference) along that motion, with a cubic kernel (repeated bilinear warps blur);
//! 3. keeps the carried texture only where the carried reference still matches the current
//!    input and the forward and backward motion agree: occlusions, uncovered background, a
//!    cut or a lighting change take this frame's stylization, so moving edges leave no trail;
//! 4. *selects* rather than averages: where the match holds the carried texture is used as
//!    is, with a short ramp at the mask's edge; then the fine-detail energy is matched to this
//!    frame's stylization locally, so resampling does not slowly blur or sharpen the strokes.
//!
//! Recursive: the stored output and reference are the propagated ones. Everything runs at the
//! inference size, before the upscale. docs/stability.md has the measurements.

use crate::frame::RgbImage;

/// Default `stability` of the element and the CLI: the lowest value that cuts the warping error
/// by 30 % or more on the three reference clips (docs/stability.md).
pub const DEFAULT_STABILITY: f64 = 0.7;

/// Grey images for motion estimation are at most this wide (the inference size of a 16:9
/// frame at `scale` 0.25 of 720p): blocks are matched at half this width, vectors refined here.
const FLOW_MAX_WIDTH: usize = 320;
/// Dense Lucas–Kanade refinement: steps, and the σ of its Gaussian window (pixels).
const DENSE_STEPS: usize = 3;
const DENSE_WINDOW_SIGMA: f32 = 3.0;
/// Narrowest half-resolution image blocks are matched on (its own coarse level is half that).
const MIN_HALF_WIDTH: usize = 80;
/// Forward–backward check: a vector passes when the round trip misses by at most
/// √(1 % of the motion² + this) pixels (flow resolution); dense vectors scatter by about a
/// pixel on real video, and a tighter check would refresh (flicker) good matches.
const CONSISTENCY_SLACK: f32 = 1.0;
/// Vectors shorter than this (pixels) are taken as no motion.
const STILL: f32 = 0.2;
/// Block size (pixels of the grey image) for block matching, and the grid step between blocks.
const BLOCK: usize = 8;
const STEP: usize = 4;
/// Search radius on the half-resolution level, and around its prediction on the full one.
const COARSE_RADIUS: i32 = 4;
const FINE_RADIUS: i32 = 2;
/// Mean absolute RGB difference (0–255) of warped previous vs current input at which the
/// previous output stops counting: full weight below `AGREE`, none above `DISAGREE`.
const AGREE: f32 = 6.0;
const DISAGREE: f32 = 18.0;
/// Fine detail is what a σ = 1.5 px blur removes; its energy is matched to the current frame's
/// over a σ = 8 px window, with a gain of at most 1.5 (or at least 1/1.5).
const DETAIL_SIGMA: f32 = 1.5;
const ENERGY_SIGMA: f32 = 8.0;
const MAX_DETAIL_GAIN: f32 = 1.5;

/// A single-channel float image.
#[derive(Debug, Clone, PartialEq)]
pub struct GreyImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl GreyImage {
    fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// Bilinear sample with clamping at the borders.
    #[inline(always)]
    fn sample(&self, x: f32, y: f32) -> f32 {
        bilinear(x, y, self.width, self.height, |xi, yi| self.at(xi, yi))
    }
}

/// Luma (BT.601) averaged over `factor`×`factor` boxes.
pub fn grey_downscaled(img: &RgbImage, factor: usize) -> GreyImage {
    let factor = factor.max(1);
    let (w, h) = ((img.width / factor).max(1), (img.height / factor).max(1));
    let mut data = vec![0f32; w * h];
    for (y, row) in data.chunks_exact_mut(w).enumerate() {
        for (x, out) in row.iter_mut().enumerate() {
            let mut sum = 0f32;
            let mut n = 0f32;
            for sy in y * factor..((y + 1) * factor).min(img.height) {
                for sx in x * factor..((x + 1) * factor).min(img.width) {
                    let p = &img.data[(sy * img.width + sx) * 3..][..3];
                    sum +=
                        0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
                    n += 1.0;
                }
            }
            *out = sum / n.max(1.0);
        }
    }
    GreyImage {
        width: w,
        height: h,
        data,
    }
}

fn halve(img: &GreyImage) -> GreyImage {
    let (w, h) = ((img.width / 2).max(1), (img.height / 2).max(1));
    let mut data = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let (x0, y0) = ((2 * x).min(img.width - 1), (2 * y).min(img.height - 1));
            let (x1, y1) = ((x0 + 1).min(img.width - 1), (y0 + 1).min(img.height - 1));
            data[y * w + x] =
                0.25 * (img.at(x0, y0) + img.at(x1, y0) + img.at(x0, y1) + img.at(x1, y1));
        }
    }
    GreyImage {
        width: w,
        height: h,
        data,
    }
}

/// Bilinear interpolation of `f` at (x, y), coordinates clamped to the image. Inlined: it
/// runs a dozen times per pixel, and a call per sample cost more than the arithmetic.
#[inline(always)]
fn bilinear(x: f32, y: f32, w: usize, h: usize, f: impl Fn(usize, usize) -> f32) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    // Both are ≥ 0 here, so truncation is the floor (and no libm call on baseline x86-64).
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let top = f(x0, y0) * (1.0 - fx) + f(x1, y0) * fx;
    let bottom = f(x0, y1) * (1.0 - fx) + f(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Backward motion on a grid (block centres, or every pixel): for a point p of the current
/// image, the matching point of the previous image is p + (dx, dy). Vectors are in pixels of
/// the image the flow was estimated on; `sample` interpolates them anywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Grid size; grid point (c, r) sits at pixel `origin + step·(c, r)`.
    pub cols: usize,
    pub rows: usize,
    pub origin: f32,
    pub step: f32,
    pub dx: Vec<f32>,
    pub dy: Vec<f32>,
}

impl Flow {
    /// Zero motion on the block grid.
    fn zero(cols: usize, rows: usize) -> Self {
        Self {
            cols,
            rows,
            origin: (BLOCK as f32 - 1.0) / 2.0,
            step: STEP as f32,
            dx: vec![0.0; cols * rows],
            dy: vec![0.0; cols * rows],
        }
    }

    /// Motion at pixel (x, y) of an image `scale` times the estimation image: the vector
    /// in the estimation image's pixels. A dense flow at the same size is a lookup.
    #[inline(always)]
    fn at_pixel(&self, x: usize, y: usize, scale: f32) -> (f32, f32) {
        if scale == 1.0 && self.step == 1.0 && self.origin == 0.0 {
            let i = y * self.cols + x;
            return (self.dx[i], self.dy[i]);
        }
        self.sample(to_smaller(x, scale), to_smaller(y, scale))
    }

    /// Motion at a pixel of the estimation image (bilinear between grid points).
    #[inline(always)]
    pub fn sample(&self, x: f32, y: f32) -> (f32, f32) {
        let gx = (x - self.origin) / self.step;
        let gy = (y - self.origin) / self.step;
        let at = |v: &Vec<f32>| bilinear(gx, gy, self.cols, self.rows, |c, r| v[r * self.cols + c]);
        (at(&self.dx), at(&self.dy))
    }
}

/// Sum of absolute differences of the block at (bx, by) in `cur` against `prev` displaced by
/// an integer (dx, dy); `None` when the displaced block leaves the image.
fn sad(cur: &GreyImage, prev: &GreyImage, bx: usize, by: usize, dx: i32, dy: i32) -> Option<f32> {
    let (px, py) = (bx as i32 + dx, by as i32 + dy);
    if px < 0 || py < 0 || px as usize + BLOCK > prev.width || py as usize + BLOCK > prev.height {
        return None;
    }
    let (px, py) = (px as usize, py as usize);
    // One accumulator per column: a float sum in a fixed order does not vectorise.
    let mut acc = [0f32; BLOCK];
    for r in 0..BLOCK {
        let c = &cur.data[(by + r) * cur.width + bx..][..BLOCK];
        let p = &prev.data[(py + r) * prev.width + px..][..BLOCK];
        for ((a, c), p) in acc.iter_mut().zip(c).zip(p) {
            *a += (c - p).abs();
        }
    }
    Some(acc.iter().sum())
}

/// Best integer vector within `radius` of `centre` (ties go to the smaller vector, so flat
/// areas stay still), refined to sub-pixel by Lucas–Kanade.
fn match_block(
    cur: &GreyImage,
    prev: &GreyImage,
    bx: usize,
    by: usize,
    centre: (i32, i32),
    radius: i32,
) -> (f32, f32) {
    let mut best = (0i32, 0i32);
    let mut best_cost = sad(cur, prev, bx, by, 0, 0).unwrap_or(f32::INFINITY);
    for dy in centre.1 - radius..=centre.1 + radius {
        for dx in centre.0 - radius..=centre.0 + radius {
            let Some(cost) = sad(cur, prev, bx, by, dx, dy) else {
                continue;
            };
            let smaller = dx.abs() + dy.abs() < best.0.abs() + best.1.abs();
            if cost < best_cost - 1e-3 || (cost <= best_cost + 1e-3 && smaller) {
                best = (dx, dy);
                best_cost = cost;
            }
        }
    }
    if !best_cost.is_finite() {
        return (0.0, 0.0);
    }
    let (fx, fy) = lucas_kanade(cur, prev, bx, by, best);
    (best.0 as f32 + fx, best.1 as f32 + fy)
}

/// Sub-pixel refinement of an integer match: two Lucas–Kanade steps on the block (solve
/// the 2×2 normal equations of the linearised brightness constancy). Zero when the residual
/// is zero, and skipped on flat blocks whose gradients cannot fix a direction.
fn lucas_kanade(
    cur: &GreyImage,
    prev: &GreyImage,
    bx: usize,
    by: usize,
    best: (i32, i32),
) -> (f32, f32) {
    let (mut fx, mut fy) = (0f32, 0f32);
    for _ in 0..2 {
        let (mut gxx, mut gxy, mut gyy, mut bxe, mut bye) = (0f32, 0f32, 0f32, 0f32, 0f32);
        for r in 0..BLOCK {
            for c in 0..BLOCK {
                let x = (bx + c) as f32 + best.0 as f32 + fx;
                let y = (by + r) as f32 + best.1 as f32 + fy;
                let gx = 0.5 * (prev.sample(x + 1.0, y) - prev.sample(x - 1.0, y));
                let gy = 0.5 * (prev.sample(x, y + 1.0) - prev.sample(x, y - 1.0));
                let e = prev.sample(x, y) - cur.at(bx + c, by + r);
                gxx += gx * gx;
                gxy += gx * gy;
                gyy += gy * gy;
                bxe += gx * e;
                bye += gy * e;
            }
        }
        let det = gxx * gyy - gxy * gxy;
        // Flat or one-dimensional texture: no reliable sub-pixel direction.
        if det <= 1e-3 * (gxx + gyy).powi(2).max(1e-6) {
            break;
        }
        let dx = -(gyy * bxe - gxy * bye) / det;
        let dy = -(gxx * bye - gxy * bxe) / det;
        fx = (fx + dx).clamp(-1.0, 1.0);
        fy = (fy + dy).clamp(-1.0, 1.0);
    }
    (fx, fy)
}

fn grid(img: &GreyImage) -> (usize, usize) {
    let n = |len: usize| {
        if len < BLOCK {
            0
        } else {
            (len - BLOCK) / STEP + 1
        }
    };
    (n(img.width), n(img.height))
}

fn block_flow(
    cur: &GreyImage,
    prev: &GreyImage,
    radius: i32,
    predict: impl Fn(f32, f32) -> (f32, f32),
) -> Flow {
    let (cols, rows) = grid(cur);
    let mut flow = Flow::zero(cols, rows);
    for r in 0..rows {
        for c in 0..cols {
            let (bx, by) = (c * STEP, r * STEP);
            let centre = (BLOCK as f32 - 1.0) / 2.0;
            let (px, py) = predict(bx as f32 + centre, by as f32 + centre);
            let (dx, dy) = match_block(
                cur,
                prev,
                bx,
                by,
                (px.round() as i32, py.round() as i32),
                radius,
            );
            flow.dx[r * cols + c] = dx;
            flow.dy[r * cols + c] = dy;
        }
    }
    median3(&mut flow);
    flow
}

/// 3×3 vector median (per component) over the block grid: removes isolated wrong matches.
fn median3(flow: &mut Flow) {
    let (cols, rows) = (flow.cols, flow.rows);
    for v in [&mut flow.dx, &mut flow.dy] {
        let src = v.clone();
        for r in 0..rows {
            for c in 0..cols {
                let mut window = [0f32; 9];
                let mut n = 0;
                for rr in r.saturating_sub(1)..(r + 2).min(rows) {
                    for cc in c.saturating_sub(1)..(c + 2).min(cols) {
                        window[n] = src[rr * cols + cc];
                        n += 1;
                    }
                }
                let w = &mut window[..n];
                w.sort_by(f32::total_cmp);
                v[r * cols + c] = w[n / 2];
            }
        }
    }
}

/// Position on an image `scale` times smaller of pixel `i`'s centre (pixel centres align).
fn to_smaller(i: usize, scale: f32) -> f32 {
    (i as f32 + 0.5) / scale - 0.5
}

/// Motion from `cur` back to `prev` on a block grid: block matching on a half-resolution
/// level, then refined around that prediction at full resolution.
fn block_motion(cur: &GreyImage, prev: &GreyImage) -> Flow {
    let (cols, rows) = grid(cur);
    if cols == 0 || rows == 0 {
        return Flow::zero(cols, rows);
    }
    let (cur_half, prev_half) = (halve(cur), halve(prev));
    let coarse = if grid(&cur_half).0 > 0 && grid(&cur_half).1 > 0 {
        Some(block_flow(&cur_half, &prev_half, COARSE_RADIUS, |_, _| {
            (0.0, 0.0)
        }))
    } else {
        None
    };
    block_flow(cur, prev, FINE_RADIUS, |x, y| match &coarse {
        Some(f) => {
            let (dx, dy) = f.sample(x / 2.0, y / 2.0);
            (2.0 * dx, 2.0 * dy)
        }
        None => (0.0, 0.0),
    })
}

/// Dense motion from `cur` back to `prev` (same size): block matching on the half-resolution
/// image finds large motions robustly, then a few dense Lucas–Kanade steps per pixel at full
/// resolution fit the vectors to the image. Block vectors alone are piecewise constant (one
/// per 8×8 block): texture carried along them lands up to a pixel off where the motion is not
/// a translation, which shows as flicker again.
pub fn estimate_flow(cur: &GreyImage, prev: &GreyImage) -> Flow {
    let (w, h) = (cur.width, cur.height);
    let mut flow = Flow {
        cols: w,
        rows: h,
        origin: 0.0,
        step: 1.0,
        dx: vec![0.0; w * h],
        dy: vec![0.0; w * h],
    };
    if prev.width != w || prev.height != h || w < 2 * BLOCK || h < 2 * BLOCK {
        return flow;
    }
    // Blocks are matched at half resolution unless that would leave too few of them.
    let (blocks, scale) = if w / 2 >= MIN_HALF_WIDTH {
        (block_motion(&halve(cur), &halve(prev)), 2.0)
    } else {
        (block_motion(cur, prev), 1.0)
    };
    for y in 0..h {
        for x in 0..w {
            let (gx, gy) = (to_smaller(x, scale), to_smaller(y, scale));
            let (dx, dy) = blocks.sample(gx, gy);
            flow.dx[y * w + x] = scale * dx;
            flow.dy[y * w + x] = scale * dy;
        }
    }
    let mut scratch = LkScratch::default();
    for _ in 0..DENSE_STEPS {
        dense_lucas_kanade_step(cur, prev, &mut flow, &mut scratch);
    }
    // Still areas: sensor noise gives them tiny vectors, and resampling a texture at tiny
    // offsets frame after frame slowly blurs it. Nothing that slow is visible as motion.
    for (dx, dy) in flow.dx.iter_mut().zip(flow.dy.iter_mut()) {
        if dx.hypot(*dy) < STILL {
            (*dx, *dy) = (0.0, 0.0);
        }
    }
    flow
}

/// Buffers of the Lucas–Kanade steps, kept from one step to the next: fresh multi-megabyte
/// buffers cost a page fault per 4 KiB on every step.
#[derive(Default)]
struct LkScratch {
    warped: Vec<f32>,
    terms: Vec<f32>,
    tmp: Vec<f32>,
}

/// One Lucas–Kanade step at every pixel: linearise `prev` around the current match, sum the
/// normal equations over a Gaussian window, solve the 2×2 system, update (at most 1 px per
/// step). Flat or one-dimensional windows keep their vector.
fn dense_lucas_kanade_step(
    cur: &GreyImage,
    prev: &GreyImage,
    flow: &mut Flow,
    scratch: &mut LkScratch,
) {
    let (w, h) = (cur.width, cur.height);
    // `prev` warped by the current vectors; its central differences stand in for the gradient
    // of `prev` at the matched points (one bilinear sample per pixel instead of five).
    let LkScratch { warped, terms, tmp } = scratch;
    warped.resize(w * h, 0.0);
    for (i, v) in warped.iter_mut().enumerate() {
        let (x, y) = ((i % w) as f32, (i / w) as f32);
        *v = prev.sample(x + flow.dx[i], y + flow.dy[i]);
    }
    // Per pixel: gx², gx·gy, gy², gx·e, gy·e, interleaved for one blur.
    terms.resize(w * h * 5, 0.0);
    for y in 0..h {
        let (up, down) = (y.saturating_sub(1), (y + 1).min(h - 1));
        for x in 0..w {
            let (left, right) = (x.saturating_sub(1), (x + 1).min(w - 1));
            let i = y * w + x;
            let gx = (warped[y * w + right] - warped[y * w + left]) / (right - left) as f32;
            let gy = (warped[down * w + x] - warped[up * w + x]) / (down - up) as f32;
            let e = warped[i] - cur.at(x, y);
            terms[i * 5..i * 5 + 5].copy_from_slice(&[gx * gx, gx * gy, gy * gy, gx * e, gy * e]);
        }
    }
    box_gaussian_in_place(terms, tmp, w, h, 5, DENSE_WINDOW_SIGMA);
    let sums = &*terms;
    for (i, t) in sums.chunks_exact(5).enumerate() {
        let [gxx, gxy, gyy, bxe, bye] = [t[0], t[1], t[2], t[3], t[4]];
        let det = gxx * gyy - gxy * gxy;
        if det <= 1e-2 * (gxx + gyy).powi(2).max(1e-3) {
            continue;
        }
        let dx = -(gyy * bxe - gxy * bye) / det;
        let dy = -(gxx * bye - gxy * bxe) / det;
        flow.dx[i] += dx.clamp(-1.0, 1.0);
        flow.dy[i] += dy.clamp(-1.0, 1.0);
    }
}

/// Sample an RGB image along a flow: pixel p of the result is `img` at p + flow(p)·scale, where
/// the flow was estimated on an image `scale` times smaller. Bilinear; returns float RGB.
pub fn warp_rgb(img: &RgbImage, flow: &Flow, scale: f32) -> Vec<f32> {
    warp_many(&[img], flow, scale, Kernel::Bilinear)
        .pop()
        .expect("one image in, one out")
}

/// Resampling kernel of a warp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// 2×2 taps: what the metrics use (as OpenCV's `INTER_LINEAR`).
    Bilinear,
    /// 4×4 taps, Keys cubic with a = −0.75 (OpenCV's `INTER_CUBIC`). The filter re-warps the
    /// same texture frame after frame; bilinear taps are a low-pass filter at sub-pixel
    /// offsets, and that blur compounds until the brush texture is gone. The cubic's slight
    /// overshoot keeps repeated warps close to neutral.
    Cubic,
}

impl Kernel {
    /// Taps (first integer position and weights) along one axis for a sample at `pos`.
    fn taps(self, pos: f32) -> (isize, [f32; 4], usize) {
        // Callers clamp `pos` to the image, so truncation is the floor.
        debug_assert!(pos >= 0.0);
        let base = (pos as isize) as f32;
        let t = pos - base;
        match self {
            Kernel::Bilinear => (base as isize, [1.0 - t, t, 0.0, 0.0], 2),
            Kernel::Cubic => {
                const A: f32 = -0.75;
                let near = |d: f32| ((A + 2.0) * d - (A + 3.0)) * d * d + 1.0;
                let far = |d: f32| ((A * d - 5.0 * A) * d + 8.0 * A) * d - 4.0 * A;
                let w = [far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t)];
                (base as isize - 1, w, 4)
            }
        }
    }
}

/// Warp several images of the same size along one flow (the flow is sampled once per pixel).
fn warp_many(imgs: &[&RgbImage], flow: &Flow, scale: f32, kernel: Kernel) -> Vec<Vec<f32>> {
    let (w, h) = (imgs[0].width, imgs[0].height);
    let mut outs = vec![vec![0f32; w * h * 3]; imgs.len()];
    let clamp = |v: isize, len: usize| v.clamp(0, len as isize - 1) as usize;
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = flow.at_pixel(x, y, scale);
            let sx = (x as f32 + dx * scale).clamp(0.0, (w - 1) as f32);
            let sy = (y as f32 + dy * scale).clamp(0.0, (h - 1) as f32);
            let (x0, wx, n) = kernel.taps(sx);
            let (y0, wy, _) = kernel.taps(sy);
            for (img, out) in imgs.iter().zip(outs.iter_mut()) {
                let mut acc = [0f32; 3];
                for (j, ky) in wy.iter().take(n).enumerate() {
                    let row = clamp(y0 + j as isize, h) * w;
                    for (i, kx) in wx.iter().take(n).enumerate() {
                        let t = (row + clamp(x0 + i as isize, w)) * 3;
                        let k = ky * kx;
                        for (a, v) in acc.iter_mut().zip(&img.data[t..t + 3]) {
                            *a += k * f32::from(*v);
                        }
                    }
                }
                let o = &mut out[(y * w + x) * 3..][..3];
                for (o, a) in o.iter_mut().zip(acc) {
                    *o = a.clamp(0.0, 255.0);
                }
            }
        }
    }
    outs
}

/// 1 where the backward flow (current → previous) and the forward flow (previous → current)
/// agree, 0 where they do not: pixels uncovered by a moving object have no true match in the
/// previous frame, and their backward vector, borrowed from the object, fails this check
/// (Sundaram et al. 2010). Per pixel of an image `scale` times the flow's size.
pub fn consistency_mask(
    back: &Flow,
    fwd: &Flow,
    width: usize,
    height: usize,
    scale: f32,
) -> Vec<f32> {
    let mut mask = vec![0f32; width * height];
    for y in 0..height {
        for x in 0..width {
            let (gx, gy) = (to_smaller(x, scale), to_smaller(y, scale));
            let (bx, by) = back.at_pixel(x, y, scale);
            let (fx, fy) = fwd.sample(gx + bx, gy + by);
            let (ex, ey) = (bx + fx, by + fy);
            let mag = bx * bx + by * by + fx * fx + fy * fy;
            if ex * ex + ey * ey <= 0.01 * mag + CONSISTENCY_SLACK {
                mask[y * width + x] = 1.0;
            }
        }
    }
    mask
}

/// Separable Gaussian blur (radius 3σ) of an interleaved image with `channels` channels,
/// borders clamped. Both passes add whole shifted rows, so the inner loops are contiguous and
/// vectorise.
fn gaussian_blur(img: &[f32], w: usize, h: usize, channels: usize, sigma: f32) -> Vec<f32> {
    if sigma >= BOX_SIGMA {
        return box_gaussian(img, w, h, channels, sigma);
    }
    let radius = (3.0 * sigma).ceil() as usize;
    let taps: Vec<f32> = (0..=2 * radius)
        .map(|k| {
            let d = k as f32 - radius as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let norm: f32 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|t| t / norm).collect();
    let row_len = w * channels;
    // Horizontal: each row padded by repeating its edge pixels.
    let mut across = vec![0f32; img.len()];
    let mut padded = vec![0f32; (w + 2 * radius) * channels];
    for (src, dst) in img
        .chunks_exact(row_len)
        .zip(across.chunks_exact_mut(row_len))
    {
        for (x, px) in padded.chunks_exact_mut(channels).enumerate() {
            let sx = x.saturating_sub(radius).min(w - 1);
            px.copy_from_slice(&src[sx * channels..][..channels]);
        }
        for (k, t) in taps.iter().enumerate() {
            let shifted = &padded[k * channels..][..row_len];
            for (d, v) in dst.iter_mut().zip(shifted) {
                *d += t * v;
            }
        }
    }
    // Vertical: each output row is the weighted sum of clamped neighbouring rows.
    let mut out = vec![0f32; img.len()];
    for (y, dst) in out.chunks_exact_mut(row_len).enumerate() {
        for (k, t) in taps.iter().enumerate() {
            let sy = (y + k).saturating_sub(radius).min(h - 1);
            for (d, v) in dst.iter_mut().zip(&across[sy * row_len..][..row_len]) {
                *d += t * v;
            }
        }
    }
    out
}

/// From this σ on, a Gaussian is approximated by three box blurs (running sums: a cost per
/// pixel independent of σ). The LK window (σ 3) and the energy window (σ 8) take this path;
/// the detail split (σ 1.5) stays exact because it defines what "fine detail" is.
const BOX_SIGMA: f32 = 2.5;

/// Widths (odd) of three box blurs whose sequence has the variance of a Gaussian of `sigma`
/// (Kovesi, "Fast almost-Gaussian filtering", 2010).
fn boxes_for_gauss(sigma: f32) -> [usize; 3] {
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
fn box_gaussian(img: &[f32], w: usize, h: usize, channels: usize, sigma: f32) -> Vec<f32> {
    let mut a = img.to_vec();
    box_gaussian_in_place(&mut a, &mut Vec::new(), w, h, channels, sigma);
    a
}

/// [`box_gaussian`] of `img` in place, with `tmp` as the buffer between passes.
fn box_gaussian_in_place(
    img: &mut [f32],
    tmp: &mut Vec<f32>,
    w: usize,
    h: usize,
    channels: usize,
    sigma: f32,
) {
    tmp.resize(img.len(), 0.0);
    for width in boxes_for_gauss(sigma) {
        let r = width / 2;
        box_rows(img, tmp, w, channels, r);
        box_columns(tmp, img, w, h, channels, r);
    }
}

fn box_rows(src: &[f32], dst: &mut [f32], w: usize, channels: usize, r: usize) {
    // The channel count as a constant lets the per-pixel channel loop unroll and vectorise.
    match channels {
        1 => box_rows_n::<1>(src, dst, w, r),
        3 => box_rows_n::<3>(src, dst, w, r),
        5 => box_rows_n::<5>(src, dst, w, r),
        _ => unreachable!("box blur of {channels} channels"),
    }
}

fn box_rows_n<const C: usize>(src: &[f32], dst: &mut [f32], w: usize, r: usize) {
    let norm = 1.0 / (2 * r + 1) as f32;
    let at = |x: isize| x.clamp(0, w as isize - 1) as usize * C;
    for (s, d) in src.chunks_exact(w * C).zip(dst.chunks_exact_mut(w * C)) {
        let mut acc = [0f32; C];
        for k in -(r as isize)..=r as isize {
            let px: &[f32; C] = s[at(k)..at(k) + C].try_into().expect("C values");
            for c in 0..C {
                acc[c] += px[c];
            }
        }
        for (x, out) in d.chunks_exact_mut(C).enumerate() {
            let x = x as isize;
            let add: &[f32; C] = s[at(x + r as isize + 1)..][..C].try_into().expect("C");
            let sub: &[f32; C] = s[at(x - r as isize)..][..C].try_into().expect("C");
            for c in 0..C {
                out[c] = acc[c] * norm;
                acc[c] += add[c] - sub[c];
            }
        }
    }
}

fn box_columns(src: &[f32], dst: &mut [f32], w: usize, h: usize, channels: usize, r: usize) {
    let norm = 1.0 / (2 * r + 1) as f32;
    let row_len = w * channels;
    let row = |y: isize| {
        let y = y.clamp(0, h as isize - 1) as usize;
        &src[y * row_len..(y + 1) * row_len]
    };
    let mut acc = vec![0f32; row_len];
    for k in -(r as isize)..=r as isize {
        for (a, v) in acc.iter_mut().zip(row(k)) {
            *a += v;
        }
    }
    for (y, d) in dst.chunks_exact_mut(row_len).enumerate() {
        let y = y as isize;
        let (add, sub) = (row(y + r as isize + 1), row(y - r as isize));
        for (((o, a), p), m) in d.iter_mut().zip(acc.iter_mut()).zip(add).zip(sub) {
            *o = *a * norm;
            *a += p - m;
        }
    }
}

/// Fine detail (the image minus its σ = `DETAIL_SIGMA` blur) and its local energy (mean over
/// channels of detail², averaged over a σ = `ENERGY_SIGMA` window).
fn detail_and_energy(img: &[f32], w: usize, h: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let base = gaussian_blur(img, w, h, 3, DETAIL_SIGMA);
    let detail: Vec<f32> = img.iter().zip(&base).map(|(v, b)| v - b).collect();
    let power: Vec<f32> = detail
        .chunks_exact(3)
        .map(|d| d.iter().map(|v| v * v).sum::<f32>() / 3.0)
        .collect();
    let energy = gaussian_blur(&power, w, h, 1, ENERGY_SIGMA);
    (base, detail, energy)
}

/// Give `propagated` the fine-detail energy of `current` (this frame's own stylization),
/// locally. Texture carried along motion is resampled every frame, and resampling at
/// sub-pixel offsets changes its finest detail (bilinear blurs it, cubic slightly sharpens
/// it); over many frames that drift would wash the brush strokes out, or sharpen them, and
/// change how the output relates to the content. Matching the energy to the frame the net
/// painted now keeps the texture's statistics those of a single stylized frame. The gain is
/// bounded both ways so a wrong estimate cannot add or remove much.
fn restore_detail(propagated: &mut [f32], current: &[f32], w: usize, h: usize) {
    let (_, _, target) = detail_and_energy(current, w, h);
    let (base, detail, energy) = detail_and_energy(propagated, w, h);
    for (i, px) in propagated.chunks_exact_mut(3).enumerate() {
        let gain = ((target[i] + 1.0) / (energy[i] + 1.0))
            .sqrt()
            .clamp(1.0 / MAX_DETAIL_GAIN, MAX_DETAIL_GAIN);
        for (c, v) in px.iter_mut().enumerate() {
            *v = base[i * 3 + c] + gain * detail[i * 3 + c];
        }
    }
}

/// Weight of the warped previous frame per pixel, 0–1: 1 where the warped previous input
/// matches the current input, 0 where it does not (occlusion, uncovered area, wrong motion).
/// The difference is taken as the maximum over a 3×3 neighbourhood, so a moving edge is
/// masked on both sides and a trail cannot start one pixel beside it.
pub fn agreement_mask(warped_prev_in: &[f32], cur_in: &RgbImage) -> Vec<f32> {
    let (w, h) = (cur_in.width, cur_in.height);
    let diff: Vec<f32> = warped_prev_in
        .chunks_exact(3)
        .zip(cur_in.data.chunks_exact(3))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(a, b)| (a - f32::from(*b)).abs())
                .sum::<f32>()
                / 3.0
        })
        .collect();
    let mut mask = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut worst = 0f32;
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    worst = worst.max(diff[yy * w + xx]);
                }
            }
            mask[y * w + x] = ((DISAGREE - worst) / (DISAGREE - AGREE)).clamp(0.0, 1.0);
        }
    }
    mask
}

/// Weight of the propagated texture from the agreement `a` (0–1) of its source input with the
/// current input: full (pure propagation, no averaging) once `a` reaches `1 − stability`
/// scaled as below, a ramp under it. Averaging two stylizations is what keeps more of the
/// content in the output (its texture halves, the content does not), so the filter selects
/// rather than blends wherever it can; the ramp avoids a visible seam at the mask's edges.
fn propagation_weight(agreement: f32, stability: f32) -> f32 {
    if stability >= 1.0 {
        return if agreement > 0.0 { 1.0 } else { 0.0 };
    }
    (agreement * stability / (1.0 - stability)).min(1.0)
}

fn to_u8(dst: &mut RgbImage, src: &[f32]) {
    for (o, v) in dst.data.iter_mut().zip(src) {
        *o = v.round().clamp(0.0, 255.0) as u8;
    }
}

fn to_f32(img: &RgbImage) -> Vec<f32> {
    img.data.iter().map(|v| f32::from(*v)).collect()
}

struct Previous {
    /// The input that `output`'s texture was painted for, carried along the motion with it:
    /// propagated texture is only kept while this still matches the current input, so a
    /// slow change (a fade, a lighting change) refreshes it instead of freezing it.
    reference: RgbImage,
    grey: GreyImage,
    output: RgbImage,
}

/// How the previous output is brought to the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Motion-compensated and masked (the element's filter).
    MotionCompensated,
    /// Plain blend with the previous output, no motion, no mask: the peers' "temporal
    /// smoothing", kept as the reference that ghosting is measured against.
    Naive,
}

/// The recursive, motion-compensated output filter. One per stream; `reset` on a
/// discontinuity (seek, flush, caps change).
pub struct TemporalFilter {
    stability: f32,
    mode: Mode,
    previous: Option<Previous>,
}

impl TemporalFilter {
    /// Smooth a whole sequence of stylized frames (`outputs`) against their `inputs`.
    pub fn smooth_sequence(&mut self, inputs: &[RgbImage], outputs: &[RgbImage]) -> Vec<RgbImage> {
        inputs
            .iter()
            .zip(outputs)
            .map(|(i, o)| {
                let mut o = o.clone();
                self.apply(i, &mut o);
                o
            })
            .collect()
    }

    /// `stability` 0 (off) to 1 (previous frame only where motion is reliable); clamped.
    pub fn new(stability: f64) -> Self {
        Self {
            stability: stability.clamp(0.0, 1.0) as f32,
            mode: Mode::MotionCompensated,
            previous: None,
        }
    }

    /// Plain frame blending without motion or mask, for comparisons only.
    pub fn naive(stability: f64) -> Self {
        Self {
            mode: Mode::Naive,
            ..Self::new(stability)
        }
    }

    pub fn stability(&self) -> f64 {
        f64::from(self.stability)
    }

    pub fn set_stability(&mut self, stability: f64) {
        self.stability = stability.clamp(0.0, 1.0) as f32;
        if self.stability == 0.0 {
            self.previous = None;
        }
    }

    pub fn enabled(&self) -> bool {
        self.stability > 0.0
    }

    /// Forget the previous frame: the next frame passes unchanged.
    pub fn reset(&mut self) {
        self.previous = None;
    }

    /// Smooth `output` (the stylized `input`, same size) in place against the previous frame.
    pub fn apply(&mut self, input: &RgbImage, output: &mut RgbImage) {
        if !self.enabled() || input.width != output.width || input.height != output.height {
            self.previous = None;
            return;
        }
        let factor = input.width.div_ceil(FLOW_MAX_WIDTH).max(1);
        let grey = grey_downscaled(input, factor);
        let mut reference = input.clone();
        if let Some(prev) = self
            .previous
            .as_ref()
            .filter(|p| p.output.width == input.width && p.output.height == input.height)
        {
            let (w, h) = (input.width, input.height);
            let current = to_f32(output);
            match self.mode {
                Mode::MotionCompensated => {
                    let back = estimate_flow(&grey, &prev.grey);
                    let fwd = estimate_flow(&prev.grey, &grey);
                    let scale = w as f32 / grey.width as f32;
                    let mut warped = warp_many(
                        &[&prev.reference, &prev.output],
                        &back,
                        scale,
                        Kernel::Cubic,
                    );
                    let warped_out = warped.pop().expect("two warped");
                    let warped_ref = warped.pop().expect("two warped");
                    let agreement = agreement_mask(&warped_ref, input);
                    let consistent = consistency_mask(&back, &fwd, w, h, scale);
                    let mut out = current.clone();
                    let mut refr = to_f32(input);
                    for (i, (a, c)) in agreement.iter().zip(&consistent).enumerate() {
                        let k = propagation_weight(a * c, self.stability);
                        for ch in i * 3..i * 3 + 3 {
                            out[ch] = (1.0 - k) * out[ch] + k * warped_out[ch];
                            refr[ch] = (1.0 - k) * refr[ch] + k * warped_ref[ch];
                        }
                    }
                    restore_detail(&mut out, &current, w, h);
                    to_u8(output, &out);
                    to_u8(&mut reference, &refr);
                }
                Mode::Naive => {
                    let k = self.stability;
                    let out: Vec<f32> = current
                        .iter()
                        .zip(&prev.output.data)
                        .map(|(c, p)| (1.0 - k) * c + k * f32::from(*p))
                        .collect();
                    to_u8(output, &out);
                }
            }
        }
        self.previous = Some(Previous {
            reference,
            grey,
            output: output.clone(),
        });
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
        let plain: Vec<RgbImage> = inputs
            .iter()
            .enumerate()
            .map(|(t, i)| flicker(i, t))
            .collect();
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
        let plain: Vec<RgbImage> = inputs
            .iter()
            .enumerate()
            .map(|(t, i)| flicker(i, t))
            .collect();
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
}
