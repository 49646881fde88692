//! Dense motion between two grey images: block matching on a half-resolution level for
//! large motions, dense Lucas–Kanade refinement per pixel, and the forward–backward check.

use super::blur::{box_columns_twice, box_rows_each};
use super::grey::{axis_taps, halve, BilinearTaps, GreyImage};
use super::simd::kernel;
use crate::par::{for_bands, for_bands2};

/// Dense Lucas–Kanade refinement: steps, and its window: two box passes of 7 px (a smooth,
/// tent-like window of σ ≈ 2.8 px; three passes, closer to a Gaussian of σ 3, measured the
/// same flicker reduction and ghosting at half again the blur's cost).
const DENSE_STEPS: usize = 3;
const WINDOW_BOXES: [usize; 2] = [7, 7];
/// Narrowest half-resolution image blocks are matched on (its own coarse level is half that).
const MIN_HALF_WIDTH: usize = 80;
/// Forward–backward check: a vector passes when the round trip misses by at most
/// √(1 % of the motion² + this) pixels (flow resolution); dense vectors scatter by about a
/// pixel on real video, and a tighter check would refresh (flicker) good matches.
pub(crate) const CONSISTENCY_SLACK: f32 = 1.0;
/// Vectors shorter than this (pixels) are taken as no motion.
const STILL: f32 = 0.2;
/// Block size (pixels of the grey image) for block matching, and the grid step between blocks.
const BLOCK: usize = 8;
const STEP: usize = 4;
/// Side of a block's window for its sub-pixel refinement: one pixel of margin.
const WINDOW: usize = BLOCK + 2;
/// Search radius on the half-resolution level, and around its prediction on the full one.
const COARSE_RADIUS: i32 = 4;
const FINE_RADIUS: i32 = 2;

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
    pub(super) fn zero(cols: usize, rows: usize) -> Self {
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
    pub(super) fn at_pixel(&self, x: usize, y: usize, scale: f32) -> (f32, f32) {
        if scale == 1.0 && self.step == 1.0 && self.origin == 0.0 {
            let i = y * self.cols + x;
            return (self.dx[i], self.dy[i]);
        }
        self.sample(to_smaller(x, scale), to_smaller(y, scale))
    }

    /// Motion at a pixel of the estimation image (bilinear between grid points).
    #[inline(always)]
    pub fn sample(&self, x: f32, y: f32) -> (f32, f32) {
        let (gx, gy) = (self.grid_coord(x), self.grid_coord(y));
        let taps = BilinearTaps::new(gx, gy, self.cols, self.rows);
        (taps.apply(|i| self.dx[i]), taps.apply(|i| self.dy[i]))
    }

    /// A coordinate of the estimation image on the grid. A dense flow's grid is the pixel grid:
    /// no division (the same values).
    #[inline(always)]
    fn grid_coord(&self, v: f32) -> f32 {
        if self.step == 1.0 {
            v - self.origin
        } else {
            (v - self.origin) / self.step
        }
    }

    /// Where [`Flow::at_pixel`] reads the grid along x, for each column of an image `width`
    /// pixels wide and `scale` times the estimation image.
    pub(super) fn column_taps(&self, width: usize, scale: f32) -> ColumnTaps {
        let mut taps = ColumnTaps::default();
        for x in 0..width {
            let (c0, c1, fx) = axis_taps(self.grid_coord(to_smaller(x, scale)), self.cols);
            taps.c0.push(c0 as i32);
            taps.c1.push(c1 as i32);
            taps.fx.push(fx);
            taps.end = taps.end.max(c0.max(c1) + 1);
        }
        taps.held = [usize::MAX; 2];
        taps
    }

    /// [`Flow::at_pixel`] for a whole row `y` (`columns` from [`Flow::column_taps`]): the same
    /// values, in a loop without the per-pixel work on positions. Rows are read in order, so
    /// each grid row's samples along x are worked out once and kept in `columns` while the
    /// rows below read them.
    #[inline(always)]
    pub(super) fn row_at_pixels(
        &self,
        y: usize,
        scale: f32,
        columns: &mut ColumnTaps,
        dx: &mut [f32],
        dy: &mut [f32],
    ) {
        if scale == 1.0 && self.step == 1.0 && self.origin == 0.0 {
            dx.copy_from_slice(&self.dx[y * self.cols..][..dx.len()]);
            dy.copy_from_slice(&self.dy[y * self.cols..][..dy.len()]);
            return;
        }
        let (r0, r1, fy) = axis_taps(self.grid_coord(to_smaller(y, scale)), self.rows);
        let (top, bottom) = columns.grid_rows(self, r0, r1);
        let gy = 1.0 - fy;
        for (k, out) in [dx, dy].into_iter().enumerate() {
            let (t, b) = (&top[k][..out.len()], &bottom[k][..out.len()]);
            for ((o, t), b) in out.iter_mut().zip(t).zip(b) {
                *o = t * gy + b * fy;
            }
        }
    }
}

/// Where a row of bilinear samples reads a grid row along x: per output column, the two grid
/// columns and the weight of the second ([`axis_taps`]); and the last two grid rows sampled
/// so along x, both components.
#[derive(Default)]
pub(super) struct ColumnTaps {
    c0: Vec<i32>,
    c1: Vec<i32>,
    fx: Vec<f32>,
    /// One past the largest grid column read.
    end: usize,
    /// Which grid rows `across` holds (`usize::MAX`: none yet).
    held: [usize; 2],
    /// Per held row: dx and dy sampled along x at every output column.
    across: [[Vec<f32>; 2]; 2],
}

impl ColumnTaps {
    /// Grid rows `r0` and `r1` of `flow` sampled along x (dx and dy each), from the two kept
    /// rows where they are there: what [`BilinearTaps::apply`] computes before it weighs the
    /// rows, the same bits.
    #[inline(always)]
    fn grid_rows(&mut self, flow: &Flow, r0: usize, r1: usize) -> (&[Vec<f32>; 2], &[Vec<f32>; 2]) {
        for r in [r0, r1] {
            if self.held.contains(&r) {
                continue;
            }
            // Replace a row neither r0 nor r1 needs.
            let slot = usize::from(self.held[0] == r0 || self.held[0] == r1);
            let cols = flow.cols;
            for (k, v) in [&flow.dx, &flow.dy].into_iter().enumerate() {
                let mut out = std::mem::take(&mut self.across[slot][k]);
                out.resize(self.c0.len(), 0.0);
                self.lerp_row(&v[r * cols..][..cols], &mut out);
                self.across[slot][k] = out;
            }
            self.held[slot] = r;
        }
        let at = |r: usize| usize::from(self.held[1] == r);
        (&self.across[at(r0)], &self.across[at(r1)])
    }

    /// Per output column, the bilinear sample of one grid row along x, as
    /// [`BilinearTaps::apply`] computes a row's part; eight columns at a time with gathers
    /// where the CPU has AVX2.
    #[inline(always)]
    fn lerp_row(&self, row: &[f32], out: &mut [f32]) {
        let mut first = 0;
        #[cfg(target_arch = "x86_64")]
        if super::simd::avx2() {
            // SAFETY: the CPU has AVX2 (checked just above).
            first = unsafe { self.lerp_row_avx2(row, out) };
        }
        let taps = self.c0.iter().zip(&self.c1).zip(&self.fx).skip(first);
        for (o, ((&c0, &c1), &fx)) in out[first..].iter_mut().zip(taps) {
            *o = row[c0 as usize] * (1.0 - fx) + row[c1 as usize] * fx;
        }
    }

    /// The whole vectors of [`ColumnTaps::lerp_row`]; returns where it stopped.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn lerp_row_avx2(&self, row: &[f32], out: &mut [f32]) -> usize {
        use super::gather::{load8, store8};
        use std::arch::x86_64::*;
        let n = out.len().min(self.c0.len());
        // Gather indices must be inside the row.
        assert!(row.len() >= self.end);
        let one = _mm256_set1_ps(1.0);
        let whole = n / 8 * 8;
        for x in (0..whole).step_by(8) {
            // SAFETY: x + 8 ≤ n ≤ the index vectors' length; every index is below `end`, at
            // most the row's length (asserted above).
            let (c0, c1) = unsafe {
                (
                    _mm256_loadu_si256(self.c0[x..x + 8].as_ptr().cast()),
                    _mm256_loadu_si256(self.c1[x..x + 8].as_ptr().cast()),
                )
            };
            let fx = load8(&self.fx, x);
            let gx = _mm256_sub_ps(one, fx);
            // SAFETY: as above.
            let at = |i: __m256i| unsafe { _mm256_i32gather_ps::<4>(row.as_ptr(), i) };
            store8(
                out,
                x,
                _mm256_add_ps(_mm256_mul_ps(at(c0), gx), _mm256_mul_ps(at(c1), fx)),
            );
        }
        whole
    }
}

/// Sum of absolute differences of the block at (bx, by) in `cur` against `prev` displaced by
/// an integer (dx, dy); `None` when the displaced block leaves the image.
#[inline(always)]
pub(super) fn sad(
    cur: &GreyImage,
    prev: &GreyImage,
    bx: usize,
    by: usize,
    dx: i32,
    dy: i32,
) -> Option<f32> {
    let (px, py) = (bx as i32 + dx, by as i32 + dy);
    if !prev.holds_square(px as isize, py as isize, BLOCK) {
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

/// Most candidates a block is tried at: no motion, then every vector within the largest
/// radius of its centre.
const MAX_CANDIDATES: usize = 1 + (2 * COARSE_RADIUS as usize + 1).pow(2);

/// Best integer vector within `radius` of `centre` (ties go to the smaller vector, so flat
/// areas stay still), refined to sub-pixel by Lucas–Kanade.
#[inline(always)]
pub(super) fn match_block(
    cur: &GreyImage,
    prev: &GreyImage,
    bx: usize,
    by: usize,
    centre: (i32, i32),
    radius: i32,
) -> (f32, f32) {
    // No motion first, then the window row by row: every cost at once (eight at a time with
    // AVX2), then the choice in that order.
    let mut candidates = [(0i32, 0i32); MAX_CANDIDATES];
    let mut n = 1;
    for dy in centre.1 - radius..=centre.1 + radius {
        for dx in centre.0 - radius..=centre.0 + radius {
            candidates[n] = (dx, dy);
            n += 1;
        }
    }
    let mut costs = [0f32; MAX_CANDIDATES];
    sad_costs(cur, prev, bx, by, &candidates[..n], &mut costs[..n]);
    let mut best = (0i32, 0i32);
    let mut best_cost = costs[0];
    for (&(dx, dy), &cost) in candidates[1..n].iter().zip(&costs[1..n]) {
        // Out of the image: never chosen.
        if cost == f32::INFINITY {
            continue;
        }
        let smaller = dx.abs() + dy.abs() < best.0.abs() + best.1.abs();
        if cost < best_cost - 1e-3 || (cost <= best_cost + 1e-3 && smaller) {
            best = (dx, dy);
            best_cost = cost;
        }
    }
    if !best_cost.is_finite() {
        return (0.0, 0.0);
    }
    let (fx, fy) = lucas_kanade(cur, prev, bx, by, best);
    (best.0 as f32 + fx, best.1 as f32 + fy)
}

/// [`sad`] of the block at (bx, by) for each candidate vector, infinity where the displaced
/// block leaves the image.
#[inline(always)]
fn sad_costs(
    cur: &GreyImage,
    prev: &GreyImage,
    bx: usize,
    by: usize,
    candidates: &[(i32, i32)],
    costs: &mut [f32],
) {
    let mut first = 0;
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() {
        // SAFETY: the CPU has AVX2 (checked just above).
        first = unsafe { sad_costs_avx2(cur, prev, bx, by, candidates, costs) };
    }
    for (&(dx, dy), cost) in candidates[first..].iter().zip(&mut costs[first..]) {
        *cost = sad(cur, prev, bx, by, dx, dy).unwrap_or(f32::INFINITY);
    }
}

/// [`sad_costs`] for whole groups of eight candidates; returns how many it did. Per candidate
/// the same sums as [`sad`]: one vector of column sums over the rows, then the columns added
/// in order, here for eight candidates at once after a transpose.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sad_costs_avx2(
    cur: &GreyImage,
    prev: &GreyImage,
    bx: usize,
    by: usize,
    candidates: &[(i32, i32)],
    costs: &mut [f32],
) -> usize {
    use super::gather::{load8, store8, transpose8};
    use std::arch::x86_64::*;
    const _: () = assert!(BLOCK == 8, "one vector per block row");
    // Closures would not be compiled for AVX2: plain loops.
    let mut block = [_mm256_setzero_ps(); BLOCK];
    for (r, row) in block.iter_mut().enumerate() {
        *row = load8(&cur.data, (by + r) * cur.width + bx);
    }
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let whole = candidates.len() / 8 * 8;
    for (group, out) in candidates[..whole]
        .chunks_exact(8)
        .zip(costs.chunks_exact_mut(8))
    {
        let mut inside = [true; 8];
        let mut sums = [_mm256_setzero_ps(); 8];
        for ((&(dx, dy), acc), fits) in group.iter().zip(&mut sums).zip(&mut inside) {
            let (px, py) = (bx as i32 + dx, by as i32 + dy);
            *fits = prev.holds_square(px as isize, py as isize, BLOCK);
            if *fits {
                let at = py as usize * prev.width + px as usize;
                for (r, c) in block.iter().enumerate() {
                    let p = load8(&prev.data, at + r * prev.width);
                    *acc = _mm256_add_ps(*acc, _mm256_and_ps(_mm256_sub_ps(*c, p), abs));
                }
            }
        }
        let columns = transpose8(sums);
        let mut total = columns[0];
        for c in &columns[1..] {
            total = _mm256_add_ps(total, *c);
        }
        store8(out, 0, total);
        for (cost, fits) in out.iter_mut().zip(inside) {
            if !fits {
                *cost = f32::INFINITY;
            }
        }
    }
    whole
}

/// Sub-pixel refinement of an integer match: one Lucas–Kanade step on the block (solve the
/// 2×2 normal equations of the linearised brightness constancy), at most a pixel each way.
/// Zero when the residual is zero, and skipped on flat blocks whose gradients cannot fix a
/// direction. (A second step, resampling the window at the sub-pixel match, measured the
/// same flicker reduction and ghosting: the dense steps that follow refine the vectors.)
#[inline(always)]
pub(super) fn lucas_kanade(
    cur: &GreyImage,
    prev: &GreyImage,
    bx: usize,
    by: usize,
    best: (i32, i32),
) -> (f32, f32) {
    // `prev` around the matched block, one pixel of margin for the central differences: each
    // point read once (the block's five samples per pixel share most of them).
    let mut window = [[0f32; WINDOW]; WINDOW];
    let (left, top) = (
        bx as isize - 1 + best.0 as isize,
        by as isize - 1 + best.1 as isize,
    );
    if prev.holds_square(left, top, WINDOW) {
        // The window's rows as they are.
        for (r, row) in window.iter_mut().enumerate() {
            let at = (top as usize + r) * prev.width + left as usize;
            row.copy_from_slice(&prev.data[at..at + WINDOW]);
        }
    } else {
        // Borders clamped.
        let clamp = |v: isize, len: usize| v.clamp(0, len as isize - 1) as usize;
        for (r, row) in window.iter_mut().enumerate() {
            let y = clamp(top + r as isize, prev.height);
            let src = &prev.data[y * prev.width..][..prev.width];
            for (c, v) in row.iter_mut().enumerate() {
                *v = src[clamp(left + c as isize, prev.width)];
            }
        }
    }
    // One accumulator per column and term (a float sum in a fixed order over all 64 pixels
    // would be a chain of dependent additions that does not vectorise).
    let mut acc = [[0f32; BLOCK]; 5];
    for r in 0..BLOCK {
        let (above, here, below) = (&window[r], &window[r + 1], &window[r + 2]);
        let cur_row = &cur.data[(by + r) * cur.width + bx..][..BLOCK];
        for c in 0..BLOCK {
            let gx = 0.5 * (here[c + 2] - here[c]);
            let gy = 0.5 * (below[c + 1] - above[c + 1]);
            let e = here[c + 1] - cur_row[c];
            acc[0][c] += gx * gx;
            acc[1][c] += gx * gy;
            acc[2][c] += gy * gy;
            acc[3][c] += gx * e;
            acc[4][c] += gy * e;
        }
    }
    let [gxx, gxy, gyy, bxe, bye] = acc.map(|a| a.iter().sum::<f32>());
    let det = gxx * gyy - gxy * gxy;
    // Flat or one-dimensional texture: no reliable sub-pixel direction.
    if det <= 1e-3 * (gxx + gyy).powi(2).max(1e-6) {
        return (0.0, 0.0);
    }
    let dx = -(gyy * bxe - gxy * bye) / det;
    let dy = -(gxx * bye - gxy * bxe) / det;
    (dx.clamp(-1.0, 1.0), dy.clamp(-1.0, 1.0))
}

pub(super) fn grid(img: &GreyImage) -> (usize, usize) {
    let n = |len: usize| {
        if len < BLOCK {
            0
        } else {
            (len - BLOCK) / STEP + 1
        }
    };
    (n(img.width), n(img.height))
}

/// Block vectors on `cur`'s grid, each searched within `radius` of its prediction: twice the
/// `coarse` flow (of the half-size images) at the block's centre, or no motion.
pub(super) fn block_flow(
    cur: &GreyImage,
    prev: &GreyImage,
    radius: i32,
    coarse: Option<&Flow>,
) -> Flow {
    let (cols, rows) = grid(cur);
    let mut flow = Flow::zero(cols, rows);
    match_blocks(cur, prev, radius, coarse, &mut flow);
    median3(&mut flow);
    flow
}

kernel! {
    fn match_blocks(
        cur: &GreyImage,
        prev: &GreyImage,
        radius: i32,
        coarse: Option<&Flow>,
        flow: &mut Flow,
    ) {
        let cols = flow.cols;
        for r in 0..flow.rows {
            for c in 0..cols {
                let (bx, by) = (c * STEP, r * STEP);
                let centre = (BLOCK as f32 - 1.0) / 2.0;
                let (x, y) = (bx as f32 + centre, by as f32 + centre);
                let (px, py) = match coarse {
                    Some(f) => {
                        let (dx, dy) = f.sample(x / 2.0, y / 2.0);
                        (2.0 * dx, 2.0 * dy)
                    }
                    None => (0.0, 0.0),
                };
                let predicted = (px.round() as i32, py.round() as i32);
                let (dx, dy) = match_block(cur, prev, bx, by, predicted, radius);
                flow.dx[r * cols + c] = dx;
                flow.dy[r * cols + c] = dy;
            }
        }
    }
}

/// 3×3 vector median (per component) over the block grid: removes isolated wrong matches.
pub(super) fn median3(flow: &mut Flow) {
    let (cols, rows) = (flow.cols, flow.rows);
    let mut keys = Vec::new();
    for v in [&mut flow.dx, &mut flow.dy] {
        let src = v.clone();
        // Inside the grid, a whole 3×3 window: a sorting network on the values' total-order
        // keys, a row at a time (it vectorises).
        if cols >= 3 && rows >= 3 {
            keys.clear();
            keys.extend(src.iter().map(|&x| total_order_key(x)));
            for r in 1..rows - 1 {
                median9_row(&keys, cols, r, &mut v[r * cols + 1..(r + 1) * cols - 1]);
            }
        }
        // The border: the windows the grid cuts, sorted.
        for r in 0..rows {
            let inner = r > 0 && r + 1 < rows;
            for c in 0..cols {
                if inner && c > 0 && c + 1 < cols {
                    continue;
                }
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

/// `x`'s bits as an integer that orders as [`f32::total_cmp`] orders the floats (and back: the
/// map is its own inverse). Equal keys are equal bits, so a median of keys is the median value.
#[inline(always)]
fn total_order_key(x: f32) -> i32 {
    let bits = x.to_bits() as i32;
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

kernel! {
    /// Row `r` of the 3×3 median of the keys (`cols` per row), columns 1 to cols − 2, as
    /// floats into `out`: the 19 compare-exchanges of a median-of-9 network (Paeth; Smith,
    /// "Implementing median filters in XC4000E FPGAs", 1996).
    fn median9_row(keys: &[i32], cols: usize, r: usize, out: &mut [f32]) {
        let row = |rr: usize, dc: usize| &keys[rr * cols + dc..][..cols - 2];
        let (a, b, c) = (row(r - 1, 0), row(r - 1, 1), row(r - 1, 2));
        let (d, e, f) = (row(r, 0), row(r, 1), row(r, 2));
        let (g, h, i) = (row(r + 1, 0), row(r + 1, 1), row(r + 1, 2));
        for (x, o) in out.iter_mut().enumerate() {
            let mut p = [a[x], b[x], c[x], d[x], e[x], f[x], g[x], h[x], i[x]];
            let mut op = |m: usize, n: usize| {
                let (lo, hi) = (p[m].min(p[n]), p[m].max(p[n]));
                p[m] = lo;
                p[n] = hi;
            };
            op(1, 2); op(4, 5); op(7, 8);
            op(0, 1); op(3, 4); op(6, 7);
            op(1, 2); op(4, 5); op(7, 8);
            op(0, 3); op(5, 8); op(4, 7);
            op(3, 6); op(1, 4); op(2, 5);
            op(4, 7); op(4, 2); op(6, 4);
            op(4, 2);
            *o = f32::from_bits(total_order_key(f32::from_bits(p[4] as u32)) as u32);
        }
    }
}

/// Position on an image `scale` times smaller of pixel `i`'s centre (pixel centres align).
#[inline(always)]
pub(super) fn to_smaller(i: usize, scale: f32) -> f32 {
    (i as f32 + 0.5) / scale - 0.5
}

/// Motion from `cur` back to `prev` on a block grid: block matching on the coarse level (the
/// two images at half their size), then refined around that prediction on `cur` and `prev`.
pub(super) fn block_motion(
    cur: &GreyImage,
    prev: &GreyImage,
    cur_coarse: &GreyImage,
    prev_coarse: &GreyImage,
) -> Flow {
    let (cols, rows) = grid(cur);
    if cols == 0 || rows == 0 {
        return Flow::zero(cols, rows);
    }
    let coarse = if grid(cur_coarse).0 > 0 && grid(cur_coarse).1 > 0 {
        Some(block_flow(cur_coarse, prev_coarse, COARSE_RADIUS, None))
    } else {
        None
    };
    block_flow(cur, prev, FINE_RADIUS, coarse.as_ref())
}

/// A grey image at half and a quarter of its size: the levels its blocks are matched on. The
/// filter keeps a frame's levels for the next frame (both directions of that frame's motion
/// match blocks of the two images).
#[derive(Default)]
pub(super) struct Pyramid {
    half: GreyImage,
    quarter: GreyImage,
}

impl Pyramid {
    pub(super) fn compute(&mut self, img: &GreyImage) {
        self.half = halve(img);
        self.quarter = halve(&self.half);
    }
}

/// Dense motion from `cur` back to `prev` (same size): block matching on the half-resolution
/// image finds large motions robustly, then a few dense Lucas–Kanade steps per pixel at full
/// resolution fit the vectors to the image. Block vectors alone are piecewise constant (one
/// per 8×8 block): texture carried along them lands up to a pixel off where the motion is not
/// a translation, which shows as flicker again.
pub fn estimate_flow(cur: &GreyImage, prev: &GreyImage) -> Flow {
    let mut flow = Flow::dense(0, 0);
    let mut scratch = LkScratch::default();
    let mut template = Template::default();
    template.compute(cur, &mut scratch.tmp, 1);
    let (mut cur_levels, mut prev_levels) = (Pyramid::default(), Pyramid::default());
    cur_levels.compute(cur);
    prev_levels.compute(prev);
    let images = FlowImages {
        cur,
        prev,
        template: &template,
        cur_levels: &cur_levels,
        prev_levels: &prev_levels,
    };
    estimate_flow_into(&images, &mut flow, &mut scratch, 1);
    flow
}

/// What [`estimate_flow_into`] reads: the two images, `cur`'s template ([`Template::compute`])
/// and the two images' block-matching levels ([`Pyramid::compute`]).
pub(super) struct FlowImages<'a> {
    pub(super) cur: &'a GreyImage,
    pub(super) prev: &'a GreyImage,
    pub(super) template: &'a Template,
    pub(super) cur_levels: &'a Pyramid,
    pub(super) prev_levels: &'a Pyramid,
}

impl Flow {
    /// Zero motion at every pixel of a `w`×`h` image.
    pub(super) fn dense(w: usize, h: usize) -> Self {
        Self {
            cols: w,
            rows: h,
            origin: 0.0,
            step: 1.0,
            dx: vec![0.0; w * h],
            dy: vec![0.0; w * h],
        }
    }
}

/// [`estimate_flow`] into a kept flow and buffers, its per-pixel steps on up to `threads`
/// threads.
pub(super) fn estimate_flow_into(
    images: &FlowImages<'_>,
    flow: &mut Flow,
    scratch: &mut LkScratch,
    threads: usize,
) {
    let (cur, prev, template) = (images.cur, images.prev, images.template);
    let (cl, pl) = (images.cur_levels, images.prev_levels);
    let (w, h) = (cur.width, cur.height);
    flow.cols = w;
    flow.rows = h;
    flow.origin = 0.0;
    flow.step = 1.0;
    // Every vector is written below (the block vectors first): no zeros first.
    flow.dx.resize(w * h, 0.0);
    flow.dy.resize(w * h, 0.0);
    if prev.width != w || prev.height != h || w < 2 * BLOCK || h < 2 * BLOCK {
        flow.dx.fill(0.0);
        flow.dy.fill(0.0);
        return;
    }
    // Blocks are matched at half resolution unless that would leave too few of them.
    let (blocks, scale) = if w / 2 >= MIN_HALF_WIDTH {
        (
            block_motion(&cl.half, &pl.half, &cl.quarter, &pl.quarter),
            2.0,
        )
    } else {
        (block_motion(cur, prev, &cl.half, &pl.half), 1.0)
    };
    for_bands2(&mut flow.dx, w, &mut flow.dy, w, threads, |rows, dx, dy| {
        blocks_to_pixels(&blocks, scale, w, dx, dy, rows.start);
    });
    for _ in 0..DENSE_STEPS {
        dense_lucas_kanade_step(cur, prev, template, flow, scratch, threads);
    }
    // Still areas: sensor noise gives them tiny vectors, and resampling a texture at tiny
    // offsets frame after frame slowly blurs it. Nothing that slow is visible as motion.
    for (dx, dy) in flow.dx.iter_mut().zip(flow.dy.iter_mut()) {
        if *dx * *dx + *dy * *dy < STILL * STILL {
            (*dx, *dy) = (0.0, 0.0);
        }
    }
}

kernel! {
    /// The block vectors (estimated on an image `scale` times smaller) at every pixel of rows
    /// `y0..`, bilinear, in pixels of this image.
    fn blocks_to_pixels(
        blocks: &Flow,
        scale: f32,
        w: usize,
        dx: &mut [f32],
        dy: &mut [f32],
        y0: usize,
    ) {
        let mut columns = blocks.column_taps(w, scale);
        let rows = dx.chunks_exact_mut(w).zip(dy.chunks_exact_mut(w));
        for (y, (rx, ry)) in (y0..).zip(rows) {
            blocks.row_at_pixels(y, scale, &mut columns, rx, ry);
            for v in rx.iter_mut().chain(ry.iter_mut()) {
                *v *= scale;
            }
        }
    }
}

/// Buffers of the Lucas–Kanade steps, kept from one step (and frame) to the next: fresh
/// multi-megabyte buffers cost a page fault per 4 KiB on every step.
#[derive(Default)]
pub(super) struct LkScratch {
    terms: Vec<f32>,
    tmp: Vec<f32>,
}

/// What every Lucas–Kanade step of one image (the template, `cur`) reuses: its gradient and the
/// inverse of its structure tensor summed over the window. The steps linearise around the
/// template's gradient rather than the warped image's (as inverse-compositional Lucas–Kanade
/// does; the two agree once the match is close, which block matching makes it), so the
/// window sums of gx², gx·gy, gy² and their inverse are worked out once per image instead of
/// once per step, and a step blurs two terms instead of five. The filter keeps a frame's
/// template for the next frame, whose forward motion has that frame as its template.
#[derive(Default)]
pub(super) struct Template {
    /// Per pixel: gx, gy (central differences, one-sided at the borders).
    grad: Vec<f32>,
    /// Per pixel: gyy/det, gxy/det, gxx/det of the window sums; zeros where the window is flat
    /// or one-dimensional (no reliable direction: the vector stays).
    inverse: Vec<f32>,
}

impl Template {
    /// `cur`'s template, with `tmp` as the blur's buffer, on up to `threads` threads.
    pub(super) fn compute(&mut self, cur: &GreyImage, tmp: &mut Vec<f32>, threads: usize) {
        let (w, h) = (cur.width, cur.height);
        self.grad.resize(w * h * 2, 0.0);
        self.inverse.resize(w * h * 3, 0.0);
        for_bands2(
            &mut self.grad,
            w * 2,
            &mut self.inverse,
            w * 3,
            threads,
            |rows, grad, products| gradient_rows(cur, grad, products, rows.start),
        );
        // The window sums: both boxes across, then both down, each band inverted as the second
        // box ends.
        let [r1, r2] = WINDOW_BOXES.map(|width| width / 2);
        let sums = &mut self.inverse;
        tmp.resize(sums.len(), 0.0);
        let products = &*sums;
        for_bands(tmp, w * 3, threads, |rows, band| {
            box_rows_each(
                &products[rows.start * w * 3..rows.end * w * 3],
                band,
                w,
                3,
                &[r1, r2],
            );
        });
        let across = &*tmp;
        for_bands(sums, w * 3, threads, |rows, band| {
            box_columns_twice(across, band, rows.start, w, h, 3, r1, r2);
            invert_rows(band);
        });
    }
}

/// One Lucas–Kanade step at every pixel: the error of `prev` warped by the current vectors
/// against the template, its products with the template's gradient summed over the
/// window, solved with the template's inverse structure tensor; each vector moves at most 1 px
/// per step.
///
/// Two passes over bands of rows: warp, error terms and both horizontal boxes; both vertical
/// boxes and the solve. A band's terms go through the horizontal boxes while they are in
/// cache, and the window sums go straight into the solve instead of a full image.
pub(super) fn dense_lucas_kanade_step(
    cur: &GreyImage,
    prev: &GreyImage,
    template: &Template,
    flow: &mut Flow,
    scratch: &mut LkScratch,
    threads: usize,
) {
    let (w, h) = (cur.width, cur.height);
    let [r1, r2] = WINDOW_BOXES.map(|width| width / 2);
    let LkScratch { terms, tmp } = scratch;
    // Per pixel: gx·e, gy·e, interleaved for one blur.
    terms.resize(w * h * 2, 0.0);
    tmp.resize(w * h * 2, 0.0);
    let (fdx, fdy, grad) = (&flow.dx, &flow.dy, &template.grad);
    for_bands2(terms, w * 2, tmp, w * 2, threads, |rows, band, across| {
        let px = rows.start * w..rows.end * w;
        error_terms_rows(
            prev,
            &fdx[px.clone()],
            &fdy[px.clone()],
            &cur.data[px.clone()],
            &grad[px.start * 2..px.end * 2],
            band,
            rows.start,
        );
        box_rows_each(band, across, w, 2, &[r1, r2]);
    });
    let (across, inverse) = (&*tmp, &template.inverse);
    for_bands2(&mut flow.dx, w, &mut flow.dy, w, threads, |rows, bx, by| {
        // The band's window sums, in a buffer per thread (a full image of them would leave
        // the cache before the solve reads it).
        thread_local! {
            static SUMS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut sums = SUMS.take();
        sums.resize(rows.len() * w * 2, 0.0);
        box_columns_twice(across, &mut sums, rows.start, w, h, 2, r1, r2);
        let px = rows.start * w..rows.end * w;
        lk_solve(&sums, &inverse[px.start * 3..px.end * 3], bx, by);
        SUMS.set(sums);
    });
}

/// Rows `y0..` of a step's error terms: `prev` warped by (`dx`, `dy`) (bilinear) minus the
/// template `cur`, times the template's gradient `grad` (gx·e, gy·e per pixel) into `out`;
/// eight pixels at a time with gathers where the CPU has AVX2 (the same values).
fn error_terms_rows(
    prev: &GreyImage,
    dx: &[f32],
    dy: &[f32],
    cur: &[f32],
    grad: &[f32],
    out: &mut [f32],
    y0: usize,
) {
    let w = prev.width;
    let mut first = 0;
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() {
        // SAFETY: the CPU has AVX2 (checked just above).
        first = unsafe { error_terms_avx2(prev, dx, dy, cur, grad, out, y0) };
    }
    if first == w {
        return;
    }
    // The columns left over (all of them without AVX2), a row at a time.
    let mut warped = vec![0f32; w];
    for (i, y) in (y0..).take(out.len() / (w * 2)).enumerate() {
        let px = i * w..(i + 1) * w;
        warp_grey_from(
            prev,
            &dx[px.clone()],
            &dy[px.clone()],
            &mut warped,
            y,
            first,
        );
        error_terms(
            &warped[first..],
            &cur[px.start + first..px.end],
            &grad[(px.start + first) * 2..px.end * 2],
            &mut out[(px.start + first) * 2..px.end * 2],
        );
    }
}

/// The whole vectors of each row of [`error_terms_rows`]; returns the column it stopped at.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn error_terms_avx2(
    prev: &GreyImage,
    dx: &[f32],
    dy: &[f32],
    cur: &[f32],
    grad: &[f32],
    out: &mut [f32],
    y0: usize,
) -> usize {
    use super::gather::{columns8, load8, store8, Taps8};
    use std::arch::x86_64::*;
    let (w, h) = (prev.width, prev.height);
    let whole = w / 8 * 8;
    // Each pixel's error twice, next to its gx and gy.
    let (low, high) = (
        _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3),
        _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7),
    );
    for (i, y) in (y0..).take(out.len() / (w * 2)).enumerate() {
        let yv = _mm256_set1_ps(y as f32);
        for x in (0..whole).step_by(8) {
            let p = i * w + x;
            let sx = _mm256_add_ps(columns8(x), load8(dx, p));
            let sy = _mm256_add_ps(yv, load8(dy, p));
            let warped = Taps8::new(sx, sy, w, h).apply(&prev.data);
            let e = _mm256_sub_ps(warped, load8(cur, p));
            let (e0, e1) = (
                _mm256_permutevar8x32_ps(e, low),
                _mm256_permutevar8x32_ps(e, high),
            );
            store8(out, p * 2, _mm256_mul_ps(load8(grad, p * 2), e0));
            store8(out, p * 2 + 8, _mm256_mul_ps(load8(grad, p * 2 + 8), e1));
        }
    }
    whole
}

/// Row `y` of `prev` displaced by (`dx`, `dy`) (bilinear), from column `x0` on, into `out`.
#[inline(always)]
fn warp_grey_from(prev: &GreyImage, dx: &[f32], dy: &[f32], out: &mut [f32], y: usize, x0: usize) {
    for x in x0..prev.width {
        out[x] = prev.sample(x as f32 + dx[x], y as f32 + dy[x]);
    }
}

kernel! {
    /// The template's gradient for rows `y0..` into `grad` (gx, gy per pixel) and its products
    /// gx², gx·gy, gy² into `products`.
    fn gradient_rows(cur: &GreyImage, grad: &mut [f32], products: &mut [f32], y0: usize) {
        let (w, h) = (cur.width, cur.height);
        let rows = grad.chunks_exact_mut(w * 2).zip(products.chunks_exact_mut(w * 3));
        for (y, (grad, products)) in (y0..).zip(rows) {
            let (up, down) = (y.saturating_sub(1), (y + 1).min(h - 1));
            let row = &cur.data[y * w..][..w];
            let (above, below) = (&cur.data[up * w..][..w], &cur.data[down * w..][..w]);
            let vertical = (down - up) as f32;
            for (x, (g, p)) in grad.chunks_exact_mut(2).zip(products.chunks_exact_mut(3)).enumerate() {
                let (left, right) = (x.saturating_sub(1), (x + 1).min(w - 1));
                let gx = (row[right] - row[left]) / (right - left) as f32;
                let gy = (below[x] - above[x]) / vertical;
                g.copy_from_slice(&[gx, gy]);
                p.copy_from_slice(&[gx * gx, gx * gy, gy * gy]);
            }
        }
    }
}

kernel! {
    /// Window sums gx², gx·gy, gy² → gyy/det, gxy/det, gxx/det, or zeros where the window is
    /// flat or one-dimensional.
    fn invert_rows(sums: &mut [f32]) {
        for t in sums.chunks_exact_mut(3) {
            let [gxx, gxy, gyy] = [t[0], t[1], t[2]];
            let det = gxx * gyy - gxy * gxy;
            let reliable = det > 1e-2 * (gxx + gyy).powi(2).max(1e-3);
            let inv = if reliable { 1.0 / det } else { 0.0 };
            t.copy_from_slice(&[gyy * inv, gxy * inv, gxx * inv]);
        }
    }
}

kernel! {
    /// Per pixel of a band: the warped image's error against the template, times the
    /// template's gradient (gx·e, gy·e).
    fn error_terms(warped: &[f32], cur: &[f32], grad: &[f32], out: &mut [f32]) {
        let pixels = out.chunks_exact_mut(2).zip(grad.chunks_exact(2)).zip(warped.iter().zip(cur));
        for ((t, g), (w, c)) in pixels {
            let e = w - c;
            t.copy_from_slice(&[g[0] * e, g[1] * e]);
        }
    }
}

kernel! {
    /// Move each pixel's vector by the solution of its 2×2 system (at most 1 px), from its
    /// window sums gx·e, gy·e and the template's inverse structure tensor.
    fn lk_solve(sums: &[f32], inverse: &[f32], dx: &mut [f32], dy: &mut [f32]) {
        let pixels = sums.chunks_exact(2).zip(inverse.chunks_exact(3));
        for ((t, m), (vx, vy)) in pixels.zip(dx.iter_mut().zip(dy.iter_mut())) {
            let (bxe, bye) = (t[0], t[1]);
            let ux = -(m[0] * bxe - m[1] * bye);
            let uy = -(m[2] * bye - m[1] * bxe);
            *vx += ux.clamp(-1.0, 1.0);
            *vy += uy.clamp(-1.0, 1.0);
        }
    }
}

/// Whether a backward vector `b` at a point `g` of the flow's image (current → previous) comes
/// back there along the forward flow (previous → current): within √(1 % of the motion² +
/// slack) pixels.
#[inline(always)]
pub(super) fn round_trip_holds(fwd: &Flow, gx: f32, gy: f32, (bx, by): (f32, f32)) -> bool {
    let (fx, fy) = fwd.sample(gx + bx, gy + by);
    let (ex, ey) = (bx + fx, by + fy);
    let mag = bx * bx + by * by + fx * fx + fy * fy;
    ex * ex + ey * ey <= 0.01 * mag + CONSISTENCY_SLACK
}

/// [`round_trip_holds`] at pixels `x0..` of row `y` of a dense backward flow (vectors `dx`,
/// `dy` of the row): 1 where it holds, 0 where not, into `out`. Eight pixels at a time with
/// gathers where the CPU has AVX2 (the same arithmetic); the pixels left over one by one.
#[inline(always)]
pub(super) fn round_trip_row(fwd: &Flow, y: usize, dx: &[f32], dy: &[f32], out: &mut [f32]) {
    let mut first = 0;
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() {
        // SAFETY: the CPU has AVX2 (checked just above).
        first = unsafe { round_trip_row_avx2(fwd, y, dx, dy, out) };
    }
    for x in first..out.len() {
        let holds = round_trip_holds(fwd, x as f32, y as f32, (dx[x], dy[x]));
        out[x] = if holds { 1.0 } else { 0.0 };
    }
}

/// The whole vectors of [`round_trip_row`]; returns where it stopped.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn round_trip_row_avx2(fwd: &Flow, y: usize, dx: &[f32], dy: &[f32], out: &mut [f32]) -> usize {
    use super::gather::{columns8, load8, store8, Taps8};
    use std::arch::x86_64::*;
    let whole = out.len() / 8 * 8;
    let (origin, step) = (_mm256_set1_ps(fwd.origin), _mm256_set1_ps(fwd.step));
    // `Flow::grid_coord`: no division on a dense flow's grid.
    let grid = |v: __m256| {
        let v = _mm256_sub_ps(v, origin);
        if fwd.step == 1.0 {
            v
        } else {
            _mm256_div_ps(v, step)
        }
    };
    let gy = _mm256_set1_ps(y as f32);
    let (hundredth, slack) = (_mm256_set1_ps(0.01), _mm256_set1_ps(CONSISTENCY_SLACK));
    let sq = |v: __m256| _mm256_mul_ps(v, v);
    for x in (0..whole).step_by(8) {
        let (bx, by) = (load8(dx, x), load8(dy, x));
        let taps = Taps8::new(
            grid(_mm256_add_ps(columns8(x), bx)),
            grid(_mm256_add_ps(gy, by)),
            fwd.cols,
            fwd.rows,
        );
        let (fx, fy) = (taps.apply(&fwd.dx), taps.apply(&fwd.dy));
        let (ex, ey) = (_mm256_add_ps(bx, fx), _mm256_add_ps(by, fy));
        let mag = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(sq(bx), sq(by)), sq(fx)), sq(fy));
        let miss = _mm256_add_ps(sq(ex), sq(ey));
        let bound = _mm256_add_ps(_mm256_mul_ps(hundredth, mag), slack);
        let holds = _mm256_cmp_ps::<_CMP_LE_OQ>(miss, bound);
        store8(out, x, _mm256_and_ps(holds, _mm256_set1_ps(1.0)));
    }
    whole
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
            if round_trip_holds(fwd, gx, gy, back.at_pixel(x, y, scale)) {
                mask[y * width + x] = 1.0;
            }
        }
    }
    mask
}
