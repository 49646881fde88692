//! The host frame path with no waste: a packed frame in, the network's tensor, a packed frame
//! out, with every buffer kept from one frame to the next.
//!
//! Compared with composing [`crate::frame`]'s functions, it
//! - resizes straight from the frame's memory (no copy of the full frame first) when its rows
//!   have no padding, which is how GStreamer lays out RGB-family frames;
//! - converts the small image to the padded planar tensor in one pass, and the network's
//!   output (cropped on the fly) back to bytes in one pass;
//! - resizes straight into the frame when the frame is RGB;
//! - reuses every intermediate buffer, so a frame allocates nothing once the size is known
//!   (fresh multi-megabyte buffers cost page faults on every frame);
//! - splits the resizes and conversions into row bands over the stylizer's threads (the
//!   network's cores, idle between two inferences): at 720p the two resizes alone were a
//!   few percent of the network's time on one thread.
//!
//! The results are the same bytes as the composed functions (tests below).

use std::cell::RefCell;
use std::sync::Mutex;

use fast_image_resize as fr;

use crate::error::{Error, Result};
use crate::frame::{FrameLayout, PixelFormat, RgbImage};
use crate::par;
use crate::size::Size;
use crate::tensor::Tensor;

/// Buffers and the thread count of one stylizer's host path.
pub struct FramePath {
    threads: usize,
    /// The frame at the inference size, RGB: what the network and the temporal filter see.
    pub small: RgbImage,
    /// The frame at the inference size in a 4-byte layout, before its colours are picked.
    small4: Vec<u8>,
    /// The frame's colours without row padding, for frames whose rows have some.
    tight: RgbImage,
    /// The padded planar input of the network.
    pub content: Tensor,
    /// The network's output.
    pub output: Tensor,
    /// The stylized picture at the inference size.
    pub styled: RgbImage,
    /// The stylized picture at the frame size, when it cannot be resized into the frame.
    full: RgbImage,
}

impl Default for FramePath {
    fn default() -> Self {
        Self {
            threads: par::default_threads(),
            small: RgbImage::new(0, 0),
            small4: Vec::new(),
            tight: RgbImage::new(0, 0),
            content: Tensor::zeros(3, 0, 0),
            output: Tensor::zeros(3, 0, 0),
            styled: RgbImage::new(0, 0),
            full: RgbImage::new(0, 0),
        }
    }
}

fn resize_options() -> fr::ResizeOptions {
    // Bilinear, and a 4th byte that is not alpha-weighted (it is padding or kept alpha).
    fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
        .use_alpha(false)
}

fn to_u32(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Frame(format!("size {v} does not fit in 32 bits")))
}

/// Bands per resize, whatever the thread count (so the bytes do not depend on it). Each band
/// computes its own filter coefficients and allocates their tables, tens of microseconds
/// for a 1280-pixel row: 16 bands made a 720p upscale 60 % slower on one thread, 4 cost a
/// few percent and still let two threads even out a late start.
const RESIZE_BANDS: usize = 4;

/// Below this many destination pixels a resize is one band, on the calling thread.
const MIN_BANDED_PIXELS: usize = 1 << 15;

thread_local! {
    /// Each thread's resizer: it keeps the intermediate buffer of its bands between frames.
    static RESIZER: RefCell<fr::Resizer> = RefCell::new(fr::Resizer::new());
}

/// Resize tight pixels `src` of `from` (width, height) into the tight `to` buffer, in bands
/// of destination rows on up to `threads` threads.
///
/// A band is the same resize with the source cropped to the band's rows: the resizer clamps
/// its filter to the whole source image, not to the crop, so each band's rows are the bytes
/// the whole-image resize gives them (a test checks it for several ratios).
fn resize(
    src: &[u8],
    from: (usize, usize),
    (width, height, dst): (usize, usize, &mut [u8]),
    pixel: fr::PixelType,
    threads: usize,
) -> Result<()> {
    let src = fr::images::ImageRef::new(to_u32(from.0)?, to_u32(from.1)?, src, pixel)
        .map_err(frame_err)?;
    let width32 = to_u32(width)?;
    // Every band is at most this high, so its height fits in 32 bits too.
    to_u32(height)?;
    if dst.len() != width * height * pixel.size() {
        return Err(Error::Frame(format!(
            "resize target holds {} bytes, not {width}x{height} pixels",
            dst.len()
        )));
    }
    let rows_per_row = from.1 as f64 / height as f64;
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let row_len = width * pixel.size();
    // A small image is one band: its resize takes less than a helper's wake-up.
    let band_rows = if width * height < MIN_BANDED_PIXELS {
        height
    } else {
        height.div_ceil(RESIZE_BANDS)
    };
    par::for_bands_of(band_rows, dst, row_len, threads, |rows, band| {
        let options = if rows.len() == height {
            resize_options()
        } else {
            // The band's source rows, ending exactly at the image's bottom for the last band
            // (a product of rounded numbers may pass it, which the resizer refuses).
            let top = rows.start as f64 * rows_per_row;
            let bottom = if rows.end == height {
                from.1 as f64
            } else {
                rows.end as f64 * rows_per_row
            };
            resize_options().crop(0.0, top, from.0 as f64, bottom - top)
        };
        let result = fr::images::Image::from_slice_u8(width32, rows.len() as u32, band, pixel)
            .map_err(frame_err)
            .and_then(|mut band| {
                RESIZER
                    .with_borrow_mut(|resizer| resizer.resize(&src, &mut band, &options))
                    .map_err(frame_err)
            });
        if let Err(e) = result {
            failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(e);
        }
    });
    match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Reshape an image buffer, keeping its allocation.
fn reshape(img: &mut RgbImage, width: usize, height: usize) {
    img.width = width;
    img.height = height;
    img.data.resize(width * height * 3, 0);
}

fn frame_err(e: impl std::fmt::Display) -> Error {
    Error::Frame(e.to_string())
}

impl FramePath {
    /// Threads for the resizes and conversions (0: one per core, as the network's default).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = match threads {
            0 => par::default_threads(),
            n => n,
        };
    }

    /// Fill [`Self::small`] with the frame at `(width, height)`.
    pub fn read_small(
        &mut self,
        data: &[u8],
        layout: &FrameLayout,
        (width, height): (usize, usize),
    ) -> Result<()> {
        layout.check(data.len())?;
        let bpp = layout.format.bytes_per_pixel();
        let tight = layout.stride == layout.width * bpp;
        reshape(&mut self.small, width, height);
        if (width, height) == (layout.width, layout.height) {
            crate::frame::read_rgb_into(data, layout, &mut self.small.data);
            return Ok(());
        }
        let from = (layout.width, layout.height);
        // Tight rows: the frame is exactly width × height pixels from its first byte.
        let frame_bytes = &data[..layout.width * layout.height * bpp.min(layout.stride)];
        match (tight, bpp) {
            (true, 3) => {
                let to = (width, height, &mut self.small.data[..]);
                resize(frame_bytes, from, to, fr::PixelType::U8x3, self.threads)?;
                if layout.format == PixelFormat::Bgr {
                    self.small
                        .data
                        .chunks_exact_mut(3)
                        .for_each(|p| p.swap(0, 2));
                }
            }
            (true, 4) => {
                self.small4.resize(width * height * 4, 0);
                let to = (width, height, &mut self.small4[..]);
                resize(frame_bytes, from, to, fr::PixelType::U8x4, self.threads)?;
                let [r, g, b] = layout.format.rgb_offsets();
                for (px, out) in self
                    .small4
                    .chunks_exact(4)
                    .zip(self.small.data.chunks_exact_mut(3))
                {
                    out[0] = px[r];
                    out[1] = px[g];
                    out[2] = px[b];
                }
            }
            _ => {
                // Padded rows: gather the colours once, then resize.
                reshape(&mut self.tight, layout.width, layout.height);
                crate::frame::read_rgb_into(data, layout, &mut self.tight.data);
                let to = (width, height, &mut self.small.data[..]);
                resize(
                    &self.tight.data,
                    from,
                    to,
                    fr::PixelType::U8x3,
                    self.threads,
                )?;
            }
        }
        Ok(())
    }

    /// Fill [`Self::content`] from [`Self::small`]: planar, scaled to `scale` (1 or 255),
    /// reflect-padded on the right and bottom to `padded`.
    pub fn small_to_content(&mut self, padded: Size, scale: f32) {
        crate::frame::image_to_tensor_with(
            &self.small,
            padded,
            scale,
            &mut self.content,
            self.threads,
        );
    }

    /// Fill [`Self::styled`] from the top-left `height`×`width` of [`Self::output`].
    pub fn output_to_styled(&mut self, (width, height): (usize, usize), scale: f32) -> Result<()> {
        reshape(&mut self.styled, width, height);
        crate::frame::tensor_to_image_with(
            &self.output,
            Size::new(width, height),
            scale,
            &mut self.styled,
            self.threads,
        )
    }

    /// Write [`Self::styled`] into the frame, resized to the frame size; `strength` below 1
    /// blends it with the frame's own pixels.
    pub fn write_styled(
        &mut self,
        data: &mut [u8],
        layout: &FrameLayout,
        strength: f32,
    ) -> Result<()> {
        layout.check(data.len())?;
        if (self.styled.width, self.styled.height) == (layout.width, layout.height) {
            return crate::frame::write_rgb_blend(&self.styled, data, layout, strength);
        }
        let from = (self.styled.width, self.styled.height);
        let direct = layout.format == PixelFormat::Rgb
            && layout.stride == layout.width * 3
            && strength >= 1.0;
        if direct {
            let len = layout.width * layout.height * 3;
            let to = (layout.width, layout.height, &mut data[..len]);
            return resize(
                &self.styled.data,
                from,
                to,
                fr::PixelType::U8x3,
                self.threads,
            );
        }
        reshape(&mut self.full, layout.width, layout.height);
        let to = (layout.width, layout.height, &mut self.full.data[..]);
        resize(
            &self.styled.data,
            from,
            to,
            fr::PixelType::U8x3,
            self.threads,
        )?;
        crate::frame::write_rgb_blend(&self.full, data, layout, strength)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;

    fn frame_bytes(len: usize, seed: usize) -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 31 + seed * 7) % 253) as u8)
            .collect()
    }

    /// The fused path gives the same bytes as the composed functions, for every layout,
    /// tight and padded rows, same size, downscale and upscale.
    #[test]
    fn fused_path_equals_the_composed_functions() {
        for format in PixelFormat::ALL {
            for (w, h, iw, ih, pad) in [
                (13, 9, 13, 9, 0),
                (16, 12, 8, 6, 0),
                (16, 12, 8, 6, 8),
                (10, 6, 15, 9, 0),
                (10, 6, 15, 9, 4),
                // Large enough to be split into bands over threads.
                (1280, 720, 640, 360, 0),
                (640, 360, 1280, 720, 12),
            ] {
                let bpp = format.bytes_per_pixel();
                let layout = FrameLayout {
                    format,
                    width: w,
                    height: h,
                    stride: w * bpp + pad,
                };
                let data = frame_bytes(layout.stride * h, w + iw);
                let mut path = FramePath::default();
                path.set_threads(3);
                path.read_small(&data, &layout, (iw, ih)).unwrap();
                let img = frame::read_rgb(&data, &layout).unwrap();
                let mut resizer = fr::Resizer::new();
                let small = frame::resize_rgb(&mut resizer, &img, iw, ih).unwrap();
                assert_eq!(path.small, small, "{format:?} {w}x{h}->{iw}x{ih} pad {pad}");

                let padded = Size::new(frame::round_up(iw, 4), frame::round_up(ih, 4));
                path.small_to_content(padded, 255.0);
                assert_eq!(path.content, frame::image_to_tensor(&small, padded, 255.0));

                // A fake network output: the content itself.
                path.output = path.content.clone();
                path.output_to_styled((iw, ih), 255.0).unwrap();
                let styled =
                    frame::tensor_to_image(&path.output, Size::new(iw, ih), 255.0).unwrap();
                assert_eq!(path.styled, styled);

                let mut ours = data.clone();
                path.write_styled(&mut ours, &layout, 1.0).unwrap();
                let mut theirs = data.clone();
                let full = frame::resize_rgb(&mut resizer, &styled, w, h).unwrap();
                frame::write_rgb(&full, &mut theirs, &layout).unwrap();
                assert_eq!(ours, theirs, "{format:?} {w}x{h}<-{iw}x{ih} pad {pad}");
            }
        }
    }

    /// Resizing in bands of rows gives the same bytes on any thread count, and the bytes of
    /// one whole-image resize wherever the band edges fall on exact source positions (every
    /// ratio below but the last: halves, thirds, 1000/333, one axis only). Elsewhere a band's
    /// filter centres can differ from the whole image's in the last bit, which moves a few
    /// bytes by one level.
    #[test]
    fn banded_resize_equals_the_whole_image_resize() {
        for (from, to, exact) in [
            ((1280, 720), (640, 360), true),
            ((640, 360), (1280, 720), true),
            ((1920, 1080), (640, 360), true),
            ((1000, 563), (333, 187), true),
            ((640, 480), (640, 301), true),
            ((640, 360), (321, 360), true),
            ((719, 405), (720, 406), true),
            ((333, 187), (1000, 563), false),
        ] {
            for pixel in [fr::PixelType::U8x3, fr::PixelType::U8x4] {
                let bpp = pixel.size();
                let src = frame_bytes(from.0 * from.1 * bpp, to.0);
                let mut whole = vec![0u8; to.0 * to.1 * bpp];
                let src_img =
                    fr::images::ImageRef::new(from.0 as u32, from.1 as u32, &src, pixel).unwrap();
                let mut dst =
                    fr::images::Image::from_slice_u8(to.0 as u32, to.1 as u32, &mut whole, pixel)
                        .unwrap();
                fr::Resizer::new()
                    .resize(&src_img, &mut dst, &resize_options())
                    .unwrap();
                let mut one_thread = vec![0u8; whole.len()];
                resize(&src, from, (to.0, to.1, &mut one_thread), pixel, 1).unwrap();
                let case = format!("{from:?} -> {to:?} {pixel:?}");
                if exact {
                    let differ = one_thread.iter().zip(&whole).filter(|(a, b)| a != b);
                    assert_eq!(differ.count(), 0, "{case}: bytes differ");
                } else {
                    let most = one_thread.iter().zip(&whole).map(|(a, b)| a.abs_diff(*b));
                    assert!(most.max() <= Some(1), "{case}: more than one level off");
                }
                for threads in [2, 3] {
                    let mut banded = vec![0u8; whole.len()];
                    resize(&src, from, (to.0, to.1, &mut banded), pixel, threads).unwrap();
                    assert!(banded == one_thread, "{case} on {threads} threads");
                }
            }
        }
    }

    #[test]
    fn a_wrong_resize_target_is_an_error() {
        let src = vec![0u8; 8 * 4 * 3];
        let mut dst = vec![0u8; 5];
        assert!(resize(&src, (8, 4), (4, 2, &mut dst), fr::PixelType::U8x3, 2).is_err());
    }

    #[test]
    fn buffers_are_reused_across_frames() {
        let layout = FrameLayout {
            format: PixelFormat::Rgb,
            width: 32,
            height: 16,
            stride: 96,
        };
        let data = frame_bytes(96 * 16, 1);
        let mut path = FramePath::default();
        path.read_small(&data, &layout, (16, 8)).unwrap();
        path.small_to_content(Size::new(16, 8), 1.0);
        let (small_ptr, content_ptr) = (path.small.data.as_ptr(), path.content.data.as_ptr());
        path.read_small(&data, &layout, (16, 8)).unwrap();
        path.small_to_content(Size::new(16, 8), 1.0);
        assert_eq!(small_ptr, path.small.data.as_ptr());
        assert_eq!(content_ptr, path.content.data.as_ptr());
    }
}
