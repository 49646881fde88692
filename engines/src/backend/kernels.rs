//! Kernels for device-resident frames (GPU path), with CPU mirrors.
//!
//! The CUDA C source below is compiled at run time through NVRTC by the GPU backend (and by the
//! kernel checks of the test suite, `engines/tests/cuda_kernels.rs`, which need no GPU). Each
//! kernel has a Rust mirror (`*_pixel`: one GPU thread) written expression for expression, and
//! [`launch_on_cpu`] runs a mirror over the same launch grid, so the addressing (strides,
//! pixel layouts, chroma subsampling, resampling taps, padding, planar layout) is tested here
//! on the CPU against the engine's own host conversion.
//!
//! The device pipeline of one frame ([`device_frame_on_cpu`] on the CPU, `backend::device`
//! on a GPU): upload the packed frame; `packed_to_planar` resizes it to the inference size,
//! reflect-pads it and writes the planar float model input; the model runs; `planar_to_packed`
//! resizes the output back to the frame size and writes only the colour bytes into the
//! uploaded frame (alpha and padding bytes stay); download the frame.
//!
//! Resizing is a separable bilinear convolution with the taps of Pillow and
//! `fast_image_resize` (the engine's resizer): triangle filter, support scaled by the
//! downscale factor, half-pixel centres. The host resizer works in fixed point with 8-bit
//! intermediate rows, so resized values may differ from it by one level; same-size frames
//! match exactly.

use crate::error::{Error, Result};
use crate::frame::FrameLayout;
use crate::size::Size;
use crate::tensor::Tensor;

/// CUDA C for NVRTC. `Packed` and `Planar` mirror the `#[repr(C)]` structs of this module.
pub const CUDA_SOURCE: &str = r#"
struct Packed { int stride, bpp, r, g, b, width, height; };
struct Planar { int width, height, image_width, image_height; float scale; };

__device__ int reflect_index(int i, int n) {
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    int m = i % period;
    return m < n ? m : period - m;
}

struct Taps { int first, count; float center, inv_filter_scale, norm; };

__device__ float tap_weight(Taps t, int k) {
    float x = ((float)(t.first + k) - t.center + 0.5f) * t.inv_filter_scale;
    return fmaxf(1.0f - fabsf(x), 0.0f);
}

__device__ Taps taps(int i, int in_size, int out_size) {
    Taps t;
    float scale = (float)in_size / (float)out_size;
    float filter_scale = fmaxf(scale, 1.0f);
    float support = filter_scale;
    t.center = ((float)i + 0.5f) * scale;
    t.first = max((int)(t.center - support + 0.5f), 0);
    t.count = min((int)(t.center + support + 0.5f), in_size) - t.first;
    t.inv_filter_scale = 1.0f / filter_scale;
    t.norm = 0.0f;
    for (int k = 0; k < t.count; k++) t.norm += tap_weight(t, k);
    return t;
}

__device__ float to_level(float v) {
    return fminf(fmaxf(roundf(v), 0.0f), 255.0f);
}

extern "C" __global__ void packed_to_planar(const unsigned char* frame, Packed src,
                                            float* out, Planar dst) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst.width || y >= dst.height) return;
    Taps tx = taps(reflect_index(x, dst.image_width), src.width, dst.image_width);
    Taps ty = taps(reflect_index(y, dst.image_height), src.height, dst.image_height);
    float r = 0.0f, g = 0.0f, b = 0.0f;
    for (int j = 0; j < ty.count; j++) {
        float wy = tap_weight(ty, j);
        const unsigned char* row = frame + (ty.first + j) * src.stride;
        for (int i = 0; i < tx.count; i++) {
            float w = wy * tap_weight(tx, i);
            const unsigned char* px = row + (tx.first + i) * src.bpp;
            r += w * (float)px[src.r];
            g += w * (float)px[src.g];
            b += w * (float)px[src.b];
        }
    }
    float norm = tx.norm * ty.norm;
    float k = dst.scale / 255.0f;
    int plane = dst.width * dst.height;
    int at = y * dst.width + x;
    out[at] = to_level(r / norm) * k;
    out[plane + at] = to_level(g / norm) * k;
    out[2 * plane + at] = to_level(b / norm) * k;
}

extern "C" __global__ void planar_to_packed(const float* tensor, Planar src,
                                            unsigned char* frame, Packed dst) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst.width || y >= dst.height) return;
    Taps tx = taps(x, src.image_width, dst.width);
    Taps ty = taps(y, src.image_height, dst.height);
    float k = 255.0f / src.scale;
    int plane = src.width * src.height;
    float r = 0.0f, g = 0.0f, b = 0.0f;
    for (int j = 0; j < ty.count; j++) {
        float wy = tap_weight(ty, j);
        int row = (ty.first + j) * src.width;
        for (int i = 0; i < tx.count; i++) {
            float w = wy * tap_weight(tx, i);
            int at = row + tx.first + i;
            r += w * to_level(tensor[at] * k);
            g += w * to_level(tensor[plane + at] * k);
            b += w * to_level(tensor[2 * plane + at] * k);
        }
    }
    float norm = tx.norm * ty.norm;
    unsigned char* px = frame + y * dst.stride + x * dst.bpp;
    px[dst.r] = (unsigned char)to_level(r / norm);
    px[dst.g] = (unsigned char)to_level(g / norm);
    px[dst.b] = (unsigned char)to_level(b / norm);
}

extern "C" __global__ void nv12_to_planar(const unsigned char* y_plane, int y_stride,
                                          const unsigned char* uv_plane, int uv_stride,
                                          int width, int height, float scale, float* out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= width || y >= height) return;
    float luma = (float)y_plane[y * y_stride + x] - 16.0f;
    int uv = (y / 2) * uv_stride + (x / 2) * 2;
    float u = (float)uv_plane[uv] - 128.0f;
    float v = (float)uv_plane[uv + 1] - 128.0f;
    float r = 1.164383f * luma + 1.792741f * v;
    float g = 1.164383f * luma - 0.213249f * u - 0.532909f * v;
    float b = 1.164383f * luma + 2.112402f * u;
    int plane = width * height;
    float k = scale / 255.0f;
    out[y * width + x] = fminf(fmaxf(r, 0.0f), 255.0f) * k;
    out[plane + y * width + x] = fminf(fmaxf(g, 0.0f), 255.0f) * k;
    out[2 * plane + y * width + x] = fminf(fmaxf(b, 0.0f), 255.0f) * k;
}
"#;

/// Kernel names in [`CUDA_SOURCE`].
pub const PACKED_TO_PLANAR: &str = "packed_to_planar";
pub const PLANAR_TO_PACKED: &str = "planar_to_packed";
pub const NV12_TO_PLANAR: &str = "nv12_to_planar";

/// The kernels of [`CUDA_SOURCE`].
pub const KERNELS: &[&str] = &[PACKED_TO_PLANAR, PLANAR_TO_PACKED, NV12_TO_PLANAR];

/// NVRTC options of the kernels. No architecture: the PTX targets NVRTC's oldest, and the
/// driver compiles it for the GPU at hand when the module loads. No fused multiply-adds: the
/// GPU then rounds every product and sum as the CPU mirrors do, so what the mirrors compute
/// (and the tests check against the host path) is what the GPU computes.
pub const NVRTC_OPTIONS: &[&str] = &["--fmad=false"];

/// The program the GPU path compiles: these kernels and the smoothing ones, which use this
/// module's structs and helpers.
pub fn source() -> String {
    format!("{CUDA_SOURCE}{}", super::smoothing::CUDA_SOURCE)
}

/// Every kernel of [`source`], for the compile checks.
pub fn all_kernels() -> impl Iterator<Item = &'static str> {
    KERNELS.iter().chain(super::smoothing::KERNELS).copied()
}

/// The newest PTX ISA a CUDA 13.0 driver loads (PTX from NVRTC 13.1 and later is newer, and
/// such a driver rejects it): the kernel checks hold the compiled kernels to it.
pub const MAX_PTX_ISA: (u32, u32) = (9, 0);

/// [`source`] compiled to PTX: what the GPU path loads, and what the kernel checks assemble
/// with `ptxas` without a GPU.
pub fn compile_ptx(nvrtc: &super::nvrtc::Nvrtc) -> Result<String> {
    nvrtc.compile(&source(), "stylize_kernels.cu", NVRTC_OPTIONS)
}

/// A packed 8-bit RGB-family frame as the kernels address it (C `struct Packed`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    pub stride: i32,
    pub bpp: i32,
    /// Byte offsets of R, G and B within a pixel.
    pub r: i32,
    pub g: i32,
    pub b: i32,
    pub width: i32,
    pub height: i32,
}

/// A planar float [1,3,height,width] tensor whose top-left `image_width`×`image_height` is
/// the picture (the rest is padding), in units of `scale` (1 or 255) (C `struct Planar`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planar {
    pub width: i32,
    pub height: i32,
    pub image_width: i32,
    pub image_height: i32,
    pub scale: f32,
}

fn int(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::Frame(format!("{what} {v} is too large for the GPU path")))
}

impl Packed {
    pub fn of(layout: &FrameLayout) -> Result<Self> {
        let [r, g, b] = layout.format.rgb_offsets();
        Ok(Self {
            stride: int(layout.stride, "stride")?,
            bpp: layout.format.bytes_per_pixel() as i32,
            r: r as i32,
            g: g as i32,
            b: b as i32,
            width: int(layout.width, "width")?,
            height: int(layout.height, "height")?,
        })
    }

    /// Bytes from the first pixel to the last one: what is uploaded and downloaded.
    pub fn bytes(&self) -> usize {
        self.stride as usize * (self.height as usize - 1) + (self.width * self.bpp) as usize
    }
}

impl Planar {
    /// The image must fit in the tensor.
    pub fn new(tensor: Size, image: Size, scale: f32) -> Result<Self> {
        if image.pixels() == 0 || !image.fits_in(tensor) {
            return Err(Error::Inference(format!(
                "a {image} picture does not fit a [1,3,{},{}] tensor",
                tensor.height, tensor.width
            )));
        }
        Ok(Self {
            width: int(tensor.width, "tensor width")?,
            height: int(tensor.height, "tensor height")?,
            image_width: int(image.width, "width")?,
            image_height: int(image.height, "height")?,
            scale,
        })
    }

    /// The picture's size within the tensor.
    pub fn image(&self) -> Size {
        Size::new(self.image_width as usize, self.image_height as usize)
    }

    pub fn len(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same picture in a model output of shape `dims` (expected [1,3,H,W] with H and W at
    /// least the picture's: models may round their output up, never down).
    pub fn output(&self, dims: &[i64]) -> Result<Self> {
        match *dims {
            [1, 3, h, w] if h > 0 && w > 0 => {
                Self::new(Size::new(w as usize, h as usize), self.image(), self.scale)
            }
            _ => Err(Error::Inference(format!(
                "model output has shape {dims:?}, expected [1,3,H,W]"
            ))),
        }
    }
}

/// One frame through the device pipeline: the frame, and the model input at the inference
/// size (padded to what the model takes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FramePlan {
    pub frame: Packed,
    pub input: Planar,
}

impl FramePlan {
    /// `padded` is the model's tensor size for the `inference` size.
    pub fn new(layout: &FrameLayout, inference: Size, padded: Size, scale: f32) -> Result<Self> {
        Ok(Self {
            frame: Packed::of(layout)?,
            input: Planar::new(padded, inference, scale)?,
        })
    }
}

/// Launch geometry: 16×16 blocks covering the frame.
pub fn grid(width: usize, height: usize) -> ((u32, u32), (u32, u32)) {
    (
        (width.div_ceil(16) as u32, height.div_ceil(16) as u32),
        (16, 16),
    )
}

/// Mirror of one `nv12_to_planar` thread.
#[allow(clippy::too_many_arguments)]
pub fn nv12_pixel(
    y_plane: &[u8],
    y_stride: usize,
    uv_plane: &[u8],
    uv_stride: usize,
    width: usize,
    height: usize,
    scale: f32,
    out: &mut [f32],
    x: usize,
    y: usize,
) {
    if x >= width || y >= height {
        return;
    }
    let luma = f32::from(y_plane[y * y_stride + x]) - 16.0;
    let uv = (y / 2) * uv_stride + (x / 2) * 2;
    let u = f32::from(uv_plane[uv]) - 128.0;
    let v = f32::from(uv_plane[uv + 1]) - 128.0;
    let r = 1.164383 * luma + 1.792741 * v;
    let g = 1.164383 * luma - 0.213249 * u - 0.532909 * v;
    let b = 1.164383 * luma + 2.112402 * u;
    let plane = width * height;
    let k = scale / 255.0;
    out[y * width + x] = r.clamp(0.0, 255.0) * k;
    out[plane + y * width + x] = g.clamp(0.0, 255.0) * k;
    out[2 * plane + y * width + x] = b.clamp(0.0, 255.0) * k;
}

/// Deliberate CPU mirror of the CUDA `reflect_index`, written as the kernel is (i32) so the
/// kernel tests compare like with like; the host frame path has its own `frame::reflect`.
fn reflect_index(i: i32, n: i32) -> i32 {
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

/// Mirror of the CUDA `Taps`: the input samples output sample `i` reads when resizing.
#[derive(Debug, Clone, Copy)]
struct Taps {
    first: i32,
    count: i32,
    center: f32,
    inv_filter_scale: f32,
    norm: f32,
}

impl Taps {
    fn new(i: i32, in_size: i32, out_size: i32) -> Self {
        let scale = in_size as f32 / out_size as f32;
        let filter_scale = scale.max(1.0);
        let support = filter_scale;
        let center = (i as f32 + 0.5) * scale;
        let first = ((center - support + 0.5) as i32).max(0);
        let mut t = Self {
            first,
            count: ((center + support + 0.5) as i32).min(in_size) - first,
            center,
            inv_filter_scale: 1.0 / filter_scale,
            norm: 0.0,
        };
        for k in 0..t.count {
            t.norm += t.weight(k);
        }
        t
    }

    fn weight(&self, k: i32) -> f32 {
        let x = ((self.first + k) as f32 - self.center + 0.5) * self.inv_filter_scale;
        (1.0 - x.abs()).max(0.0)
    }
}

/// Mirror of the CUDA `to_level`: round and clamp to 0..=255 (`max`/`min` treat NaN as
/// `fmaxf`/`fminf` do).
#[allow(clippy::manual_clamp)] // `clamp` keeps NaN; the kernel's fmaxf/fminf give 0
fn to_level(v: f32) -> f32 {
    v.round().max(0.0).min(255.0)
}

/// Mirror of one `packed_to_planar` thread.
pub fn packed_to_planar_pixel(
    frame: &[u8],
    src: &Packed,
    out: &mut [f32],
    dst: &Planar,
    x: usize,
    y: usize,
) {
    let (x, y) = (x as i32, y as i32);
    if x >= dst.width || y >= dst.height {
        return;
    }
    let tx = Taps::new(
        reflect_index(x, dst.image_width),
        src.width,
        dst.image_width,
    );
    let ty = Taps::new(
        reflect_index(y, dst.image_height),
        src.height,
        dst.image_height,
    );
    let (mut r, mut g, mut b) = (0.0f32, 0.0f32, 0.0f32);
    for j in 0..ty.count {
        let wy = ty.weight(j);
        let row = ((ty.first + j) * src.stride) as usize;
        for i in 0..tx.count {
            let w = wy * tx.weight(i);
            let px = &frame[row + ((tx.first + i) * src.bpp) as usize..];
            r += w * f32::from(px[src.r as usize]);
            g += w * f32::from(px[src.g as usize]);
            b += w * f32::from(px[src.b as usize]);
        }
    }
    let norm = tx.norm * ty.norm;
    let k = dst.scale / 255.0;
    let plane = (dst.width * dst.height) as usize;
    let at = (y * dst.width + x) as usize;
    out[at] = to_level(r / norm) * k;
    out[plane + at] = to_level(g / norm) * k;
    out[2 * plane + at] = to_level(b / norm) * k;
}

/// Mirror of one `planar_to_packed` thread.
pub fn planar_to_packed_pixel(
    tensor: &[f32],
    src: &Planar,
    frame: &mut [u8],
    dst: &Packed,
    x: usize,
    y: usize,
) {
    let (x, y) = (x as i32, y as i32);
    if x >= dst.width || y >= dst.height {
        return;
    }
    let tx = Taps::new(x, src.image_width, dst.width);
    let ty = Taps::new(y, src.image_height, dst.height);
    let k = 255.0 / src.scale;
    let plane = (src.width * src.height) as usize;
    let (mut r, mut g, mut b) = (0.0f32, 0.0f32, 0.0f32);
    for j in 0..ty.count {
        let wy = ty.weight(j);
        let row = (ty.first + j) * src.width;
        for i in 0..tx.count {
            let w = wy * tx.weight(i);
            let at = (row + tx.first + i) as usize;
            r += w * to_level(tensor[at] * k);
            g += w * to_level(tensor[plane + at] * k);
            b += w * to_level(tensor[2 * plane + at] * k);
        }
    }
    let norm = tx.norm * ty.norm;
    let px = &mut frame[(y * dst.stride + x * dst.bpp) as usize..];
    px[dst.r as usize] = to_level(r / norm) as u8;
    px[dst.g as usize] = to_level(g / norm) as u8;
    px[dst.b as usize] = to_level(b / norm) as u8;
}

/// Run a mirror over the launch grid exactly as the GPU would (every block, every thread,
/// including the out-of-frame threads of edge blocks).
pub fn launch_on_cpu(width: usize, height: usize, mut thread: impl FnMut(usize, usize)) {
    let ((gx, gy), (bx, by)) = grid(width, height);
    for block_y in 0..gy as usize {
        for block_x in 0..gx as usize {
            for ty in 0..by as usize {
                for tx in 0..bx as usize {
                    thread(block_x * bx as usize + tx, block_y * by as usize + ty);
                }
            }
        }
    }
}

/// The device pipeline run on the CPU with the mirrors: the same plan, kernels and grids as
/// the GPU path, with `model` standing in for the network (its output may be larger than its
/// input, as models may round sizes up). Tests compare it with the host path; it is the
/// reference for what the GPU path computes.
pub fn device_frame_on_cpu(
    data: &mut [u8],
    plan: &FramePlan,
    model: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<()> {
    let (frame, input) = (plan.frame, plan.input);
    if data.len() < frame.bytes() {
        return Err(Error::Frame(format!(
            "buffer of {} bytes is smaller than the {} bytes of the frame",
            data.len(),
            frame.bytes()
        )));
    }
    let mut content = Tensor::zeros(3, input.height as usize, input.width as usize);
    launch_on_cpu(content.width, content.height, |x, y| {
        packed_to_planar_pixel(data, &frame, &mut content.data, &input, x, y)
    });
    let styled = model(&content)?;
    let output = input.output(&styled.shape().map(|d| d as i64))?;
    launch_on_cpu(frame.width as usize, frame.height as usize, |x, y| {
        planar_to_packed_pixel(&styled.data, &output, data, &frame, x, y)
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{self, PixelFormat, RgbImage};
    use fast_image_resize as fr;

    /// BT.709 limited-range RGB → Y'CbCr, written independently of the kernel (forward
    /// direction, 2×2 chroma averaging), to produce NV12 test frames.
    fn to_nv12(img: &RgbImage, y_stride: usize, uv_stride: usize) -> (Vec<u8>, Vec<u8>) {
        let (w, h) = (img.width, img.height);
        let mut yp = vec![0u8; y_stride * h];
        let mut uvp = vec![0u8; uv_stride * h.div_ceil(2)];
        let px = |x: usize, y: usize| {
            let i = (y * w + x) * 3;
            (
                f32::from(img.data[i]),
                f32::from(img.data[i + 1]),
                f32::from(img.data[i + 2]),
            )
        };
        for y in 0..h {
            for x in 0..w {
                let (r, g, b) = px(x, y);
                let luma = 0.2126 * r + 0.7152 * g + 0.0722 * b;
                yp[y * y_stride + x] = (16.0 + luma * 219.0 / 255.0).round() as u8;
            }
        }
        for cy in 0..h.div_ceil(2) {
            for cx in 0..w.div_ceil(2) {
                let (mut cb, mut cr, mut n) = (0.0, 0.0, 0.0);
                for (x, y) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (x, y) = (cx * 2 + x, cy * 2 + y);
                    if x < w && y < h {
                        let (r, g, b) = px(x, y);
                        let luma = 0.2126 * r + 0.7152 * g + 0.0722 * b;
                        cb += (b - luma) / 1.8556;
                        cr += (r - luma) / 1.5748;
                        n += 1.0;
                    }
                }
                uvp[cy * uv_stride + cx * 2] = (128.0 + cb / n * 224.0 / 255.0).round() as u8;
                uvp[cy * uv_stride + cx * 2 + 1] = (128.0 + cr / n * 224.0 / 255.0).round() as u8;
            }
        }
        (yp, uvp)
    }

    fn smooth_image(w: usize, h: usize) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for (i, px) in img.data.chunks_exact_mut(3).enumerate() {
            let (x, y) = (i % w, i / w);
            px[0] = (40 + x * 150 / w) as u8;
            px[1] = (60 + y * 120 / h) as u8;
            px[2] = (200 - (x + y) * 100 / (w + h)) as u8;
        }
        img
    }

    fn layout(format: PixelFormat, width: usize, height: usize, pad: usize) -> FrameLayout {
        FrameLayout {
            format,
            width,
            height,
            stride: width * format.bytes_per_pixel() + pad,
        }
    }

    /// Every byte set (colour, alpha, row padding), with texture, so addressing errors show.
    fn textured(layout: &FrameLayout) -> Vec<u8> {
        (0..layout.stride * layout.height)
            .map(|i| (i * 31 % 251) as u8)
            .collect()
    }

    fn plan(
        layout: &FrameLayout,
        inference: (usize, usize),
        multiple: usize,
        scale: f32,
    ) -> FramePlan {
        let inference = Size::new(inference.0, inference.1);
        let padded = Size::new(
            frame::round_up(inference.width, multiple),
            frame::round_up(inference.height, multiple),
        );
        FramePlan::new(layout, inference, padded, scale).unwrap()
    }

    fn mirror_input(data: &[u8], plan: &FramePlan) -> Vec<f32> {
        let input = plan.input;
        let mut out = vec![f32::NAN; input.len()];
        launch_on_cpu(input.width as usize, input.height as usize, |x, y| {
            packed_to_planar_pixel(data, &plan.frame, &mut out, &input, x, y)
        });
        out
    }

    /// The engine's host path: read, resize, pad, scale.
    fn host_input(data: &[u8], layout: &FrameLayout, plan: &FramePlan) -> Vec<f32> {
        let input = plan.input;
        let img = frame::read_rgb(data, layout).unwrap();
        let (iw, ih) = (input.image_width as usize, input.image_height as usize);
        let small = frame::resize_rgb(&mut fr::Resizer::new(), &img, iw, ih).unwrap();
        let padded = Size::new(input.width as usize, input.height as usize);
        frame::image_to_tensor(&small, padded, input.scale).data
    }

    fn worst_level_error(a: &[f32], b: &[f32], scale: f32) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() * 255.0 / scale)
            .fold(0.0, f32::max)
    }

    #[test]
    fn packed_to_planar_matches_the_engine_exactly_at_the_frame_size() {
        for (i, format) in PixelFormat::ALL.into_iter().enumerate() {
            // Odd sizes, padded rows, partial blocks, reflect padding to a multiple of 8.
            let l = layout(format, 37, 21, 12);
            let data = textured(&l);
            let scale = if i % 2 == 0 { 1.0 } else { 255.0 };
            let p = plan(&l, (37, 21), 8, scale);
            assert_eq!((p.input.width, p.input.height), (40, 24));
            assert_eq!(
                mirror_input(&data, &p),
                host_input(&data, &l, &p),
                "{format:?}"
            );
        }
    }

    #[test]
    fn packed_to_planar_resizes_like_the_engine_within_one_level() {
        let cases = [
            ((64, 40), (37, 23)), // down, uneven factors
            ((96, 64), (24, 16)), // down 4x: wide taps
            ((20, 12), (47, 29)), // up
            ((30, 20), (30, 9)),  // one axis only
        ];
        for ((w, h), inference) in cases {
            let l = layout(PixelFormat::Bgrx, w, h, 4);
            let data = textured(&l);
            let p = plan(&l, inference, 4, 255.0);
            let got = mirror_input(&data, &p);
            assert!(got.iter().all(|v| v.is_finite()), "every input written");
            let worst = worst_level_error(&got, &host_input(&data, &l, &p), 255.0);
            assert!(
                worst <= 1.0,
                "{w}x{h} -> {inference:?}: worst {worst} levels"
            );
        }
    }

    /// Model output values, including some outside the range (clamped on the way out).
    fn output_tensor(height: usize, width: usize, scale: f32) -> Tensor {
        let mut t = Tensor::zeros(3, height, width);
        for (i, v) in t.data.iter_mut().enumerate() {
            *v = ((i * 37 % 113) as f32 / 100.0 - 0.05) * scale;
        }
        t
    }

    fn mirror_output(t: &Tensor, scale: f32, image: Size, data: &mut [u8], l: &FrameLayout) {
        let src = Planar::new(Size::new(t.width, t.height), image, scale).unwrap();
        let frame = Packed::of(l).unwrap();
        launch_on_cpu(l.width, l.height, |x, y| {
            planar_to_packed_pixel(&t.data, &src, data, &frame, x, y)
        });
    }

    /// The engine's host path: crop, to bytes, resize, write the colour bytes.
    fn host_output(t: &Tensor, scale: f32, image: Size, data: &mut [u8], l: &FrameLayout) {
        let img = frame::tensor_to_image(t, image, scale).unwrap();
        let full = frame::resize_rgb(&mut fr::Resizer::new(), &img, l.width, l.height).unwrap();
        frame::write_rgb(&full, data, l).unwrap();
    }

    #[test]
    fn planar_to_packed_matches_the_engine_exactly_at_the_frame_size_and_keeps_alpha() {
        for format in PixelFormat::ALL {
            let l = layout(format, 37, 21, 12);
            let original = textured(&l);
            for scale in [1.0, 255.0] {
                // Output larger than the picture (a model rounding up): cropped.
                let t = output_tensor(24, 41, scale);
                let (mut got, mut expected) = (original.clone(), original.clone());
                mirror_output(&t, scale, Size::new(37, 21), &mut got, &l);
                host_output(&t, scale, Size::new(37, 21), &mut expected, &l);
                assert_eq!(got, expected, "{format:?} scale {scale}");
            }
        }
    }

    #[test]
    fn planar_to_packed_resizes_like_the_engine_within_one_level() {
        for (image, (w, h)) in [((23, 37), (64, 40)), ((16, 24), (20, 12))] {
            let l = layout(PixelFormat::Abgr, w, h, 8);
            let original = textured(&l);
            let t = output_tensor(image.0 + 1, image.1 + 3, 1.0);
            let (mut got, mut expected) = (original.clone(), original.clone());
            // `image` is (height, width) here, as `output_tensor` takes it.
            let picture = Size::new(image.1, image.0);
            mirror_output(&t, 1.0, picture, &mut got, &l);
            host_output(&t, 1.0, picture, &mut expected, &l);
            let colour = |i: usize| {
                let (col, bpp) = (i % l.stride, l.format.bytes_per_pixel());
                col < l.width * bpp && l.format.rgb_offsets().contains(&(col % bpp))
            };
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                if colour(i) {
                    assert!(
                        a.abs_diff(*b) <= 1,
                        "{image:?} -> {w}x{h}: byte {i}: {a} vs {b}"
                    );
                } else {
                    assert_eq!(a, &original[i], "byte {i} is not colour: kept");
                }
            }
        }
    }

    #[test]
    fn the_cpu_pipeline_returns_a_frame_unchanged_through_an_identity_model() {
        let l = layout(PixelFormat::Rgba, 45, 27, 4);
        let original = textured(&l);
        let mut data = original.clone();
        let p = plan(&l, (45, 27), 4, 1.0);
        // The "model" returns its input in a tensor rounded up further, as some models do.
        let rounded_up =
            |t: &Tensor| Ok(frame::pad_tensor(t, Size::new(t.width + 4, t.height + 4)));
        device_frame_on_cpu(&mut data, &p, rounded_up).unwrap();
        assert_eq!(data, original);
        let err = device_frame_on_cpu(&mut data[..100], &p, rounded_up).unwrap_err();
        assert!(err.to_string().contains("smaller than"), "{err}");
        let shrunk = |t: &Tensor| frame::crop_tensor(t, Size::new(t.width, t.height - 4));
        let err = device_frame_on_cpu(&mut data, &p, shrunk).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
    }

    #[test]
    fn kernel_parameter_structs_have_the_c_layout() {
        assert_eq!(std::mem::size_of::<Packed>(), 7 * 4);
        assert_eq!(std::mem::size_of::<Planar>(), 5 * 4);
        for name in KERNELS {
            assert!(
                CUDA_SOURCE.contains(&format!("__global__ void {name}(")),
                "{name}"
            );
        }
        let l = layout(PixelFormat::Rgb, 10, 4, 2);
        let p = Packed::of(&l).unwrap();
        assert_eq!((p.bpp, p.r, p.b, p.stride), (3, 0, 2, 32));
        assert_eq!(p.bytes(), 32 * 3 + 30);
        let err = Planar::new(Size::new(8, 8), Size::new(8, 9), 1.0).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        let input = Planar::new(Size::new(12, 8), Size::new(10, 6), 1.0).unwrap();
        assert!(input.output(&[1, 3, 8]).is_err());
        assert_eq!(input.output(&[1, 3, 8, 12]).unwrap(), input);
    }

    #[test]
    fn nv12_kernel_recovers_rgb_within_rounding() {
        let (w, h) = (45, 27);
        let (y_stride, uv_stride) = (64, 64);
        let img = smooth_image(w, h);
        let (yp, uvp) = to_nv12(&img, y_stride, uv_stride);
        let mut out = vec![f32::NAN; 3 * w * h];
        launch_on_cpu(w, h, |x, y| {
            nv12_pixel(&yp, y_stride, &uvp, uv_stride, w, h, 255.0, &mut out, x, y)
        });
        assert!(
            out.iter().all(|v| v.is_finite()),
            "every output written once"
        );
        let expected = frame::image_to_tensor(&img, Size::new(w, h), 255.0);
        let worst = out
            .iter()
            .zip(&expected.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 6.0, "worst channel error {worst} (of 255)");
    }

    #[test]
    fn grid_covers_the_frame() {
        assert_eq!(grid(1280, 720), ((80, 45), (16, 16)));
        assert_eq!(grid(17, 1), ((2, 1), (16, 16)));
    }
}
