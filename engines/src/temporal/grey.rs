//! Grey images for motion estimation: conversion, downscaling, bilinear sampling.

use super::simd::kernel;
use crate::frame::RgbImage;
use crate::par::for_bands;

/// A single-channel float image.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GreyImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl GreyImage {
    #[inline(always)]
    pub(super) fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// Whether the `side`×`side` square with its top-left pixel at (x, y) lies inside.
    #[inline(always)]
    pub(super) fn holds_square(&self, x: isize, y: isize, side: usize) -> bool {
        x >= 0 && y >= 0 && x as usize + side <= self.width && y as usize + side <= self.height
    }

    /// Bilinear sample with clamping at the borders.
    #[inline(always)]
    pub(super) fn sample(&self, x: f32, y: f32) -> f32 {
        BilinearTaps::new(x, y, self.width, self.height).apply(|i| self.data[i])
    }
}

/// Luma (BT.601) averaged over `factor`×`factor` boxes.
pub fn grey_downscaled(img: &RgbImage, factor: usize) -> GreyImage {
    grey_downscaled_with(img, factor, 1)
}

/// [`grey_downscaled`] on up to `threads` threads.
pub(super) fn grey_downscaled_with(img: &RgbImage, factor: usize, threads: usize) -> GreyImage {
    let factor = factor.max(1);
    let (w, h) = ((img.width / factor).max(1), (img.height / factor).max(1));
    let mut data = vec![0f32; w * h];
    for_bands(&mut data, w, threads, |rows, band| {
        grey_rows(img, factor, band, rows.start);
    });
    GreyImage {
        width: w,
        height: h,
        data,
    }
}

kernel! {
    /// Rows `y0..` of [`grey_downscaled`].
    fn grey_rows(img: &RgbImage, factor: usize, out: &mut [f32], y0: usize) {
        let w = (img.width / factor).max(1);
        // One pixel per grey pixel (the inference size is the flow's): the general loop's
        // sum of one term, divided by one, is the term itself; as a plain loop it vectorises.
        if factor == 1 {
            let rows = img.data[y0 * img.width * 3..].chunks_exact(img.width * 3);
            for (row, src) in out.chunks_exact_mut(w).zip(rows) {
                for (o, p) in row.iter_mut().zip(src.chunks_exact(3)) {
                    *o = 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
                }
            }
            return;
        }
        for (y, row) in (y0..).zip(out.chunks_exact_mut(w)) {
            for (x, out) in row.iter_mut().enumerate() {
                let mut sum = 0f32;
                let mut n = 0f32;
                for sy in y * factor..((y + 1) * factor).min(img.height) {
                    for sx in x * factor..((x + 1) * factor).min(img.width) {
                        let p = &img.data[(sy * img.width + sx) * 3..][..3];
                        sum += 0.299 * f32::from(p[0])
                            + 0.587 * f32::from(p[1])
                            + 0.114 * f32::from(p[2]);
                        n += 1.0;
                    }
                }
                *out = sum / n.max(1.0);
            }
        }
    }
}

pub(super) fn halve(img: &GreyImage) -> GreyImage {
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

/// Along one axis of `len` points, a bilinear sample at `x` (clamped to the axis): the two
/// neighbours and the weight of the second.
#[inline(always)]
pub(super) fn axis_taps(x: f32, len: usize) -> (usize, usize, f32) {
    let x = x.clamp(0.0, (len - 1) as f32);
    // x ≥ 0 here, so truncation is the floor (and no libm call on baseline x86-64).
    let x0 = x as usize;
    (x0, (x0 + 1).min(len - 1), x - x0 as f32)
}

/// Where and with which weights a bilinear sample reads a `w`×`h` grid: worked out once for
/// several grids of one size (the two components of a flow).
pub(super) struct BilinearTaps {
    /// Indices of the top-left, top-right, bottom-left and bottom-right neighbours.
    at: [usize; 4],
    fx: f32,
    fy: f32,
}

impl BilinearTaps {
    /// Taps at (x, y), coordinates clamped to the grid.
    #[inline(always)]
    pub(super) fn new(x: f32, y: f32, w: usize, h: usize) -> Self {
        let (x0, x1, fx) = axis_taps(x, w);
        let (y0, y1, fy) = axis_taps(y, h);
        Self {
            at: [y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1],
            fx,
            fy,
        }
    }

    /// The sample of the grid whose value at index i is `f(i)`.
    #[inline(always)]
    pub(super) fn apply(&self, f: impl Fn(usize) -> f32) -> f32 {
        let (fx, fy) = (self.fx, self.fy);
        let top = f(self.at[0]) * (1.0 - fx) + f(self.at[1]) * fx;
        let bottom = f(self.at[2]) * (1.0 - fx) + f(self.at[3]) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}
