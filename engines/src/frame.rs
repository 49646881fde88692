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
    let (pw, ph) = (padded.width, padded.height);
    t.reshape(3, ph, pw);
    let k = scale / 255.0;
    let plane = ph * pw;
    let (w, h) = (img.width, img.height);
    let (r_plane, rest) = t.data.split_at_mut(plane);
    let (g_plane, b_plane) = rest.split_at_mut(plane);
    for y in 0..ph {
        let sy = reflect(y, h);
        let src_row = &img.data[sy * w * 3..(sy + 1) * w * 3];
        let out = y * pw..(y + 1) * pw;
        let (r, g, b) = (
            &mut r_plane[out.clone()],
            &mut g_plane[out.clone()],
            &mut b_plane[out],
        );
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
    // Clamp, then add ½ and truncate: rounds like `round()` on 0..255 (except at the one value
    // just under ½ that the addition rounds up) without a libm call per value, so it vectorises.
    let to_byte = |v: f32| ((v * k).clamp(0.0, 255.0) + 0.5) as u8;
    let (r, g, b) = (t.plane(0), t.plane(1), t.plane(2));
    for (y, out_row) in img.data.chunks_exact_mut(width * 3).enumerate() {
        let row = y * t.width..y * t.width + width;
        let (r, g, b) = (&r[row.clone()], &g[row.clone()], &b[row]);
        for (x, px) in out_row.chunks_exact_mut(3).enumerate() {
            px[0] = to_byte(r[x]);
            px[1] = to_byte(g[x]);
            px[2] = to_byte(b[x]);
        }
    }
    Ok(())
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
