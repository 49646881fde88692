//! Carrying an RGB image along a flow (bilinear or cubic resampling).

use super::flow::Flow;
use crate::frame::RgbImage;

/// Sample an RGB image along a flow: pixel p of the result is `img` at p + flow(p)·scale, where
/// the flow was estimated on an image `scale` times smaller. Bilinear; returns float RGB.
pub fn warp_rgb(img: &RgbImage, flow: &Flow, scale: f32) -> Vec<f32> {
    warp_many(&[img], flow, scale, Kernel::Bilinear)
        .pop()
        .expect("one image in, one out")
}

/// Resampling kernel of a warp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kernel {
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
    #[inline(always)]
    pub(super) fn taps(self, pos: f32) -> (isize, [f32; 4], usize) {
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
pub(super) fn warp_many(
    imgs: &[&RgbImage],
    flow: &Flow,
    scale: f32,
    kernel: Kernel,
) -> Vec<Vec<f32>> {
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

/// One pixel of two images side by side, as floats: `[a R, a G, a B, 0, b R, b G, b B, 0]`.
/// The filter carries the previous reference and output together: one cubic tap of both is
/// one multiply-add of 8 lanes, and the flow and taps are worked out once for the two.
pub(super) type PixelPair = [f32; 8];

/// Both images of `pairs` (`w`×`h`) at (`sx`, `sy`), already clamped to the image, with the
/// cubic kernel; values clamped to 0–255. Separable: each of the four rows is combined across
/// first, then the rows (fixed-size loops that compile to whole 8-lane vectors).
#[inline(always)]
pub(super) fn cubic_pair(pairs: &[PixelPair], w: usize, h: usize, sx: f32, sy: f32) -> PixelPair {
    let (bx, by) = (sx as usize, sy as usize);
    if bx as f32 == sx && by as f32 == sy {
        // On a pixel centre (still areas: the flow is exactly zero there) the cubic's taps
        // are 0, 1, 0, 0: the pixel itself.
        return pairs[by * w + bx];
    }
    let (x0, wx, _) = Kernel::Cubic.taps(sx);
    let (y0, wy, _) = Kernel::Cubic.taps(sy);
    let clamp = |v: isize, len: usize| v.clamp(0, len as isize - 1) as usize;
    let cols: [usize; 4] = std::array::from_fn(|i| clamp(x0 + i as isize, w));
    let mut acc = [0f32; 8];
    for (j, ky) in wy.into_iter().enumerate() {
        let row = &pairs[clamp(y0 + j as isize, h) * w..][..w];
        let mut across = [0f32; 8];
        for i in 0..4 {
            let v = &row[cols[i]];
            for l in 0..8 {
                across[l] += wx[i] * v[l];
            }
        }
        for l in 0..8 {
            acc[l] += ky * across[l];
        }
    }
    acc.map(|a| a.clamp(0.0, 255.0))
}
