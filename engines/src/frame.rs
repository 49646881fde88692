//! Video frames ⇄ model tensors.
//!
//! Packed RGB-family frames (with any row stride) are read into a tight RGB image, resized to
//! the inference size with `fast_image_resize`, reflect-padded to the model's size multiple and
//! laid out as planar float; the way back crops, resizes to the output size and writes only the
//! colour bytes, so an alpha or padding byte of the frame is left as it was.
//! YUV formats (I420, NV12) are not converted here: the element negotiates them through
//! `videoconvert`, which is SIMD-optimised and already in every pipeline.

use fast_image_resize as fr;
/// The resizer the conversions take (its scratch buffers are reused across calls).
pub use fast_image_resize::Resizer;

use crate::error::{Error, Result};
use crate::par;
use crate::size::Size;
use crate::tensor::Tensor;

/// Packed 8-bit RGB layouts the engine reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Rgbx,
    Bgrx,
    Xrgb,
    Xbgr,
    Rgba,
    Bgra,
    Argb,
    Abgr,
}

impl PixelFormat {
    pub const ALL: [PixelFormat; 10] = [
        Self::Rgb,
        Self::Bgr,
        Self::Rgbx,
        Self::Bgrx,
        Self::Xrgb,
        Self::Xbgr,
        Self::Rgba,
        Self::Bgra,
        Self::Argb,
        Self::Abgr,
    ];

    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgb | Self::Bgr => 3,
            _ => 4,
        }
    }

    /// Byte offsets of R, G and B within a pixel.
    pub fn rgb_offsets(self) -> [usize; 3] {
        match self {
            Self::Rgb | Self::Rgbx | Self::Rgba => [0, 1, 2],
            Self::Bgr | Self::Bgrx | Self::Bgra => [2, 1, 0],
            Self::Xrgb | Self::Argb => [1, 2, 3],
            Self::Xbgr | Self::Abgr => [3, 2, 1],
        }
    }
}

/// A tightly packed 8-bit RGB image.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0; width * height * 3],
        }
    }
}

/// Borrowed frame memory: `stride` bytes per row, `height` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub stride: usize,
}

impl FrameLayout {
    pub(crate) fn check(&self, len: usize) -> Result<()> {
        let row = self.width * self.format.bytes_per_pixel();
        if self.width == 0 || self.height == 0 {
            return Err(Error::Frame("zero-sized frame".into()));
        }
        if self.stride < row {
            return Err(Error::Frame(format!(
                "stride {} is shorter than a row of {} bytes",
                self.stride, row
            )));
        }
        let needed = self.stride * (self.height - 1) + row;
        if len < needed {
            return Err(Error::Frame(format!(
                "buffer of {len} bytes is smaller than the {needed} bytes of a {}x{} {:?} frame",
                self.width, self.height, self.format
            )));
        }
        Ok(())
    }
}

/// Copy the colour channels of a packed frame into an RGB image.
pub fn read_rgb(data: &[u8], layout: &FrameLayout) -> Result<RgbImage> {
    layout.check(data.len())?;
    let mut img = RgbImage::new(layout.width, layout.height);
    read_rgb_into(data, layout, &mut img.data);
    Ok(img)
}

/// [`read_rgb`] into a tight RGB buffer of the frame's size (layout already checked).
pub(crate) fn read_rgb_into(data: &[u8], layout: &FrameLayout, out: &mut [u8]) {
    let bpp = layout.format.bytes_per_pixel();
    let [r, g, b] = layout.format.rgb_offsets();
    for (y, out_row) in out.chunks_exact_mut(layout.width * 3).enumerate() {
        let row = &data[y * layout.stride..y * layout.stride + layout.width * bpp];
        if layout.format == PixelFormat::Rgb {
            out_row.copy_from_slice(row);
            continue;
        }
        for (px, out) in row.chunks_exact(bpp).zip(out_row.chunks_exact_mut(3)) {
            out[0] = px[r];
            out[1] = px[g];
            out[2] = px[b];
        }
    }
}

/// Write an RGB image of the frame's size into a packed frame, leaving alpha/padding bytes.
pub fn write_rgb(img: &RgbImage, data: &mut [u8], layout: &FrameLayout) -> Result<()> {
    write_rgb_blend(img, data, layout, 1.0)
}

/// [`write_rgb`], blended with the frame's own pixels below `strength` 1:
/// `strength · image + (1 − strength) · frame`.
pub fn write_rgb_blend(
    img: &RgbImage,
    data: &mut [u8],
    layout: &FrameLayout,
    strength: f32,
) -> Result<()> {
    layout.check(data.len())?;
    if img.width != layout.width || img.height != layout.height {
        return Err(Error::Frame(format!(
            "image is {}x{}, frame is {}x{}",
            img.width, img.height, layout.width, layout.height
        )));
    }
    let bpp = layout.format.bytes_per_pixel();
    let [r, g, b] = layout.format.rgb_offsets();
    let blend =
        |o: u8, i: u8| (strength * f32::from(i) + (1.0 - strength) * f32::from(o)).round() as u8;
    for (y, in_row) in img.data.chunks_exact(layout.width * 3).enumerate() {
        let row = &mut data[y * layout.stride..y * layout.stride + layout.width * bpp];
        if strength >= 1.0 && layout.format == PixelFormat::Rgb {
            row.copy_from_slice(in_row);
            continue;
        }
        for (px, src) in row.chunks_exact_mut(bpp).zip(in_row.chunks_exact(3)) {
            if strength >= 1.0 {
                px[r] = src[0];
                px[g] = src[1];
                px[b] = src[2];
            } else {
                px[r] = blend(px[r], src[0]);
                px[g] = blend(px[g], src[1]);
                px[b] = blend(px[b], src[2]);
            }
        }
    }
    Ok(())
}

/// Bilinear resize (a no-op copy when the size already matches).
pub fn resize_rgb(
    resizer: &mut fr::Resizer,
    img: &RgbImage,
    width: usize,
    height: usize,
) -> Result<RgbImage> {
    if img.width == width && img.height == height {
        return Ok(img.clone());
    }
    resize_rgb_with(resizer, img, width, height, fr::FilterType::Bilinear)
}

/// Resize with a given convolution filter (predictor: Lanczos3; CLIP: Catmull-Rom, PIL's
/// bicubic).
pub fn resize_rgb_with(
    resizer: &mut fr::Resizer,
    img: &RgbImage,
    width: usize,
    height: usize,
    filter: fr::FilterType,
) -> Result<RgbImage> {
    let to_u32 = |v: usize| u32::try_from(v).map_err(|_| Error::Frame(format!("size {v}")));
    let src = fr::images::ImageRef::new(
        to_u32(img.width)?,
        to_u32(img.height)?,
        &img.data,
        fr::PixelType::U8x3,
    )
    .map_err(|e| Error::Frame(e.to_string()))?;
    let mut dst = fr::images::Image::new(to_u32(width)?, to_u32(height)?, fr::PixelType::U8x3);
    let options = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(filter));
    resizer
        .resize(&src, &mut dst, &options)
        .map_err(|e| Error::Frame(e.to_string()))?;
    Ok(RgbImage {
        width,
        height,
        data: dst.into_vec(),
    })
}

/// Smallest multiple of `multiple` that is ≥ `v`.
pub fn round_up(v: usize, multiple: usize) -> usize {
    v.div_ceil(multiple) * multiple
}

/// Mirror index for reflect padding (edge not repeated, as ONNX/NumPy `reflect`).
fn reflect(i: usize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i % period;
    if m < n {
        m
    } else {
        period - m
    }
}

/// Planar float tensor of an RGB image, scaled to `scale` (1 or 255), reflect-padded on the
/// right and bottom to `padded`.
pub fn image_to_tensor(img: &RgbImage, padded: Size, scale: f32) -> Tensor {
    let mut t = Tensor::zeros(3, 0, 0);
    image_to_tensor_into(img, padded, scale, &mut t);
    t
}

/// [`image_to_tensor`] into an existing tensor, keeping its allocation.
pub fn image_to_tensor_into(img: &RgbImage, padded: Size, scale: f32, t: &mut Tensor) {
    image_to_tensor_with(img, padded, scale, t, 1);
}

/// Rows per band of the frame conversions: a band's start-up is a few slice splits.
const CONVERT_BAND_ROWS: usize = 32;

/// [`image_to_tensor_into`] in bands of rows on up to `threads` threads (same values).
pub(crate) fn image_to_tensor_with(
    img: &RgbImage,
    padded: Size,
    scale: f32,
    t: &mut Tensor,
    threads: usize,
) {
    let (pw, ph) = (padded.width, padded.height);
    t.reshape(3, ph, pw);
    if pw == 0 || ph == 0 {
        return;
    }
    let k = scale / 255.0;
    let plane = ph * pw;
    let (r_plane, rest) = t.data.split_at_mut(plane);
    let (g_plane, b_plane) = rest.split_at_mut(plane);
    let band = CONVERT_BAND_ROWS * pw;
    let bands: Vec<_> = r_plane
        .chunks_mut(band)
        .zip(g_plane.chunks_mut(band))
        .zip(b_plane.chunks_mut(band))
        .collect();
    let threads = par::threads_for(3 * plane, threads);
    par::for_parts(bands, threads, |i, ((r, g), b)| {
        let y0 = i * CONVERT_BAND_ROWS;
        image_rows_to_planes(img, y0, pw, k, [r, g, b]);
    });
}

/// Rows from `y0` of the padded planes (`pw` values a row; as many rows as `planes` hold)
/// from `img`, reflected past its right and bottom edges.
fn image_rows_to_planes(img: &RgbImage, y0: usize, pw: usize, k: f32, planes: [&mut [f32]; 3]) {
    let (w, h) = (img.width, img.height);
    let [r_band, g_band, b_band] = planes;
    let rows = r_band
        .chunks_exact_mut(pw)
        .zip(g_band.chunks_exact_mut(pw))
        .zip(b_band.chunks_exact_mut(pw));
    for (y, ((r, g), b)) in (y0..).zip(rows) {
        let sy = reflect(y, h);
        let src_row = &img.data[sy * w * 3..(sy + 1) * w * 3];
        for (x, px) in src_row.chunks_exact(3).enumerate() {
            r[x] = f32::from(px[0]) * k;
            g[x] = f32::from(px[1]) * k;
            b[x] = f32::from(px[2]) * k;
        }
        for x in w..pw {
            let sx = reflect(x, w);
            r[x] = r[sx];
            g[x] = g[sx];
            b[x] = b[sx];
        }
    }
}

/// Pad an existing planar tensor the same way (used by tests and reference checks).
pub fn pad_tensor(t: &Tensor, padded: Size) -> Tensor {
    let (pw, ph) = (padded.width, padded.height);
    let mut out = Tensor::zeros(t.channels, ph, pw);
    for c in 0..t.channels {
        let src = t.plane(c);
        for y in 0..ph {
            let sy = reflect(y, t.height);
            for x in 0..pw {
                out.data[c * ph * pw + y * pw + x] = src[sy * t.width + reflect(x, t.width)];
            }
        }
    }
    out
}

/// Crop the top-left `size` of a tensor.
pub fn crop_tensor(t: &Tensor, size: Size) -> Result<Tensor> {
    let (width, height) = (size.width, size.height);
    if t.channels != 3 || t.height < height || t.width < width {
        return Err(Error::Inference(format!(
            "model output is [1,{},{},{}], smaller than the [1,3,{height},{width}] input",
            t.channels, t.height, t.width
        )));
    }
    let mut out = Tensor::zeros(3, height, width);
    for c in 0..3 {
        let src = t.plane(c);
        for y in 0..height {
            let d = c * height * width + y * width;
            out.data[d..d + width].copy_from_slice(&src[y * t.width..y * t.width + width]);
        }
    }
    Ok(out)
}

/// RGB image from the top-left `size` of a planar tensor in `scale` units.
pub fn tensor_to_image(t: &Tensor, size: Size, scale: f32) -> Result<RgbImage> {
    let mut img = RgbImage::new(size.width, size.height);
    tensor_to_image_into(t, size, scale, &mut img)?;
    Ok(img)
}

/// [`tensor_to_image`] into an image of `size`, cropping on the fly.
pub fn tensor_to_image_into(t: &Tensor, size: Size, scale: f32, img: &mut RgbImage) -> Result<()> {
    tensor_to_image_with(t, size, scale, img, 1)
}

/// [`tensor_to_image_into`] in bands of rows on up to `threads` threads (same bytes).
pub(crate) fn tensor_to_image_with(
    t: &Tensor,
    size: Size,
    scale: f32,
    img: &mut RgbImage,
    threads: usize,
) -> Result<()> {
    let (width, height) = (size.width, size.height);
    if t.channels != 3 || t.height < height || t.width < width {
        return Err(Error::Inference(format!(
            "model output is [1,{},{},{}], smaller than the [1,3,{height},{width}] input",
            t.channels, t.height, t.width
        )));
    }
    if img.width != width || img.height != height || img.data.len() != width * height * 3 {
        return Err(Error::Frame(format!(
            "image is {}x{}, expected {width}x{height}",
            img.width, img.height
        )));
    }
    let k = 255.0 / scale;
    let (r, g, b) = (t.plane(0), t.plane(1), t.plane(2));
    let row_len = width * 3;
    par::for_bands_of(
        CONVERT_BAND_ROWS,
        &mut img.data,
        row_len,
        threads,
        |rows, band| {
            for (y, out_row) in rows.zip(band.chunks_exact_mut(row_len)) {
                let row = y * t.width..y * t.width + width;
                planes_to_row(&r[row.clone()], &g[row.clone()], &b[row], k, out_row);
            }
        },
    );
    Ok(())
}

/// One row of packed bytes from three plane rows, each value times `k`.
fn planes_to_row(r: &[f32], g: &[f32], b: &[f32], k: f32, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    let done = if std::arch::is_x86_feature_detected!("avx2") && !scalar_forced() {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { planes_to_row_avx2(r, g, b, k, out) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    planes_to_row_scalar(r, g, b, k, out, done);
}

/// Clamp, then add ½ and truncate: rounds like `round()` on 0..255 (except at the one value
/// just under ½ that the addition rounds up) without a libm call per value; NaN gives 0.
#[inline(always)]
fn to_byte(v: f32, k: f32) -> u8 {
    ((v * k).clamp(0.0, 255.0) + 0.5) as u8
}

/// [`planes_to_row`] from pixel `from` on, one value at a time.
fn planes_to_row_scalar(r: &[f32], g: &[f32], b: &[f32], k: f32, out: &mut [u8], from: usize) {
    for (x, px) in out.chunks_exact_mut(3).enumerate().skip(from) {
        px[0] = to_byte(r[x], k);
        px[1] = to_byte(g[x], k);
        px[2] = to_byte(b[x], k);
    }
}

/// [`planes_to_row`] eight pixels at a time with AVX2 (the compiler leaves the three-way
/// interleave scalar: a quarter of the 720p webcam path's conversions); returns the pixels
/// done, the rest is for the scalar loop. The same operations as [`to_byte`], so the same
/// bytes: `max(v, 0)` returns its second operand, 0, for NaN, as `clamp` then `as u8` do.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn planes_to_row_avx2(r: &[f32], g: &[f32], b: &[f32], k: f32, out: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    let n = out.len() / 3;
    assert!(r.len() >= n && g.len() >= n && b.len() >= n);
    let kv = _mm256_set1_ps(k);
    let to_ints = |v: __m256| {
        let clamped = _mm256_min_ps(
            _mm256_max_ps(_mm256_mul_ps(v, kv), _mm256_setzero_ps()),
            _mm256_set1_ps(255.0),
        );
        _mm256_cvttps_epi32(_mm256_add_ps(clamped, _mm256_set1_ps(0.5)))
    };
    // After the packs each 128-bit lane holds four pixels as r r r r g g g g b b b b 0 0 0 0;
    // this puts them in r g b order in the lane's first 12 bytes.
    #[rustfmt::skip]
    let interleave = _mm256_setr_epi8(
        0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1, -1, -1,
        0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1, -1, -1,
    );
    let mut x = 0;
    // Each lane is stored as 16 bytes of which 12 count, so a step writes 4 bytes past its
    // 24: only while they are still inside the row (the next step overwrites them).
    while x + 8 <= n && (x + 8) * 3 + 4 <= out.len() {
        // SAFETY: x + 8 <= n <= the planes' lengths (asserted), so the loads are in bounds;
        // the stores end at byte (x + 8) * 3 + 4 <= out.len() (the loop condition).
        unsafe {
            let ri = to_ints(_mm256_loadu_ps(r.as_ptr().add(x)));
            let gi = to_ints(_mm256_loadu_ps(g.as_ptr().add(x)));
            let bi = to_ints(_mm256_loadu_ps(b.as_ptr().add(x)));
            let rg = _mm256_packs_epi32(ri, gi);
            let b0 = _mm256_packs_epi32(bi, _mm256_setzero_si256());
            let pixels = _mm256_shuffle_epi8(_mm256_packus_epi16(rg, b0), interleave);
            let p = out.as_mut_ptr().add(x * 3);
            _mm_storeu_si128(p.cast(), _mm256_castsi256_si128(pixels));
            _mm_storeu_si128(p.add(12).cast(), _mm256_extracti128_si256::<1>(pixels));
        }
        x += 8;
    }
    x
}

/// Tests can run the scalar conversion on a machine with AVX2, to check both give the same.
#[cfg(test)]
static FORCE_SCALAR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(test)]
fn scalar_forced() -> bool {
    FORCE_SCALAR.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(not(test))]
#[inline(always)]
fn scalar_forced() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(format: PixelFormat, width: usize, height: usize, stride: usize) -> FrameLayout {
        FrameLayout {
            format,
            width,
            height,
            stride,
        }
    }

    /// Every band of both conversions, on any thread count, against a pixel-by-pixel
    /// reference with the reflected padding.
    #[test]
    fn banded_conversions_match_a_pixel_by_pixel_reference() {
        let (w, h) = (300, 170);
        let (pw, ph) = (304, 172);
        let mut img = RgbImage::new(w, h);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = (i * 7 % 256) as u8;
        }
        for threads in [1, 2, 3] {
            let mut t = Tensor::zeros(3, 0, 0);
            image_to_tensor_with(&img, Size::new(pw, ph), 255.0, &mut t, threads);
            for c in 0..3 {
                for y in 0..ph {
                    for x in 0..pw {
                        let src = (reflect(y, h) * w + reflect(x, w)) * 3 + c;
                        let got = t.data[(c * ph + y) * pw + x];
                        assert_eq!(
                            got,
                            f32::from(img.data[src]),
                            "{threads} threads ({c},{y},{x})"
                        );
                    }
                }
            }
            let mut back = RgbImage::new(w, h);
            tensor_to_image_with(&t, Size::new(w, h), 255.0, &mut back, threads).unwrap();
            assert!(
                back == img,
                "{threads} threads: the round trip changed bytes"
            );
        }
    }

    /// The vector conversion gives the scalar loop's bytes at every row length (the tail
    /// and the stores past a step), for values in and out of range and NaN.
    #[test]
    fn vector_and_scalar_conversions_agree() {
        let mut state = 0x2545_f491u32;
        let mut value = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            match state % 50 {
                0 => f32::NAN,
                1 => -0.0,
                _ => (state % 40_000) as f32 / 100.0 - 50.0,
            }
        };
        for n in 0..70 {
            let planes: Vec<Vec<f32>> = (0..3).map(|_| (0..n).map(|_| value()).collect()).collect();
            let mut fast = vec![7u8; n * 3];
            planes_to_row(&planes[0], &planes[1], &planes[2], 1.0, &mut fast);
            let mut slow = vec![7u8; n * 3];
            planes_to_row_scalar(&planes[0], &planes[1], &planes[2], 1.0, &mut slow, 0);
            assert_eq!(fast, slow, "{n} pixels");
        }
    }

    #[test]
    fn output_bytes_round_to_the_nearest_level_and_clamp() {
        // Values around every level and every halfway point, and out of range.
        let mut values = vec![-3.0f32, -0.0, 255.49, 255.5, 300.0, f32::NAN];
        for n in 0..=255 {
            for d in [-0.5001f32, -0.4999, -0.25, 0.0, 0.25, 0.4999, 0.5, 0.5001] {
                values.push(n as f32 + d);
            }
        }
        let mut t = Tensor::zeros(3, 1, values.len());
        for c in 0..3 {
            t.data[c * values.len()..][..values.len()].copy_from_slice(&values);
        }
        let img = tensor_to_image(&t, Size::new(values.len(), 1), 255.0).unwrap();
        for (i, v) in values.iter().enumerate() {
            let expected = v.round().clamp(0.0, 255.0) as u8;
            assert_eq!(img.data[i * 3], expected, "{v}");
            assert_eq!(img.data[i * 3 + 2], expected, "{v}");
        }
    }

    #[test]
    fn every_format_round_trips_and_keeps_alpha() {
        let (w, h) = (5, 3);
        for format in PixelFormat::ALL {
            let bpp = format.bytes_per_pixel();
            let stride = w * bpp + 3; // padded rows, as GStreamer aligns them
            let data: Vec<u8> = (0..stride * h).map(|i| (i * 7 % 251) as u8).collect();
            let l = layout(format, w, h, stride);
            let img = read_rgb(&data, &l).unwrap();
            let [r, g, b] = format.rgb_offsets();
            let px = &data[stride + 2 * bpp..];
            assert_eq!(
                &img.data[(w + 2) * 3..(w + 2) * 3 + 3],
                &[px[r], px[g], px[b]]
            );
            let mut out = data.clone();
            let inverted = RgbImage {
                data: img.data.iter().map(|v| 255 - v).collect(),
                ..img.clone()
            };
            write_rgb(&inverted, &mut out, &l).unwrap();
            assert_eq!(read_rgb(&out, &l).unwrap(), inverted, "{format:?}");
            // Bytes that are not colour (alpha, x, row padding) are untouched.
            for (i, (before, after)) in data.iter().zip(&out).enumerate() {
                let (row, col) = (i / stride, i % stride);
                let colour = col < w * bpp && [r, g, b].contains(&(col % bpp));
                if !colour {
                    assert_eq!(before, after, "{format:?} byte {i} (row {row})");
                }
            }
        }
    }

    #[test]
    fn short_buffer_is_an_error_not_a_panic() {
        let err = read_rgb(&[0; 10], &layout(PixelFormat::Rgbx, 4, 4, 16)).unwrap_err();
        assert!(err.to_string().contains("smaller than"), "{err}");
    }

    #[test]
    fn reflect_padding_matches_numpy() {
        // np.pad([0,1,2,3], (0,4), mode="reflect") == [0,1,2,3,2,1,0,1]
        let got: Vec<usize> = (0..8).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 2, 1, 0, 1]);
        assert_eq!(reflect(5, 1), 0);
    }

    #[test]
    fn tensor_round_trip_crops_padding() {
        let img = RgbImage {
            width: 3,
            height: 2,
            data: (0..18).map(|v| v as u8 * 10).collect(),
        };
        let t = image_to_tensor(&img, Size::new(4, 4), 1.0);
        assert_eq!(t.shape(), [1, 3, 4, 4]);
        assert!((t.data[0] - 0.0).abs() < 1e-6);
        assert!((t.data[1] - 30.0 / 255.0).abs() < 1e-6);
        // column 3 mirrors column 1
        assert_eq!(t.data[3], t.data[1]);
        assert_eq!(tensor_to_image(&t, Size::new(3, 2), 1.0).unwrap(), img);
        let t255 = image_to_tensor(&img, Size::new(3, 2), 255.0);
        assert_eq!(t255.data[1], 30.0);
        assert_eq!(tensor_to_image(&t255, Size::new(3, 2), 255.0).unwrap(), img);
    }

    #[test]
    fn resize_changes_size_and_keeps_flat_colour() {
        let mut resizer = fr::Resizer::new();
        let img = RgbImage {
            width: 8,
            height: 4,
            data: [10u8, 120, 250].repeat(32),
        };
        let small = resize_rgb(&mut resizer, &img, 4, 2).unwrap();
        assert_eq!((small.width, small.height), (4, 2));
        assert!(small.data.chunks(3).all(|p| p == [10, 120, 250]));
    }

    #[test]
    fn round_up_to_multiple() {
        assert_eq!(round_up(101, 4), 104);
        assert_eq!(round_up(100, 4), 100);
        assert_eq!(round_up(7, 1), 7);
    }
}
