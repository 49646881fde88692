//! Pre-processing kernels for device-resident frames (GPU path), with CPU mirrors.
//!
//! The CUDA C source below is compiled at run time through NVRTC by the GPU backend. Each
//! kernel's per-pixel index math has a Rust mirror (`*_pixel`) written expression for
//! expression, so the addressing (strides, chroma subsampling, planar output layout) is
//! tested here on the CPU against the engine's own conversion.

/// NV12 (BT.709 limited range, as GStreamer tags HD video) and RGBA → planar float RGB.
pub const CUDA_SOURCE: &str = r#"
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

extern "C" __global__ void rgba_to_planar(const unsigned char* rgba, int stride,
                                          int width, int height, float scale, float* out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= width || y >= height) return;
    const unsigned char* px = rgba + y * stride + x * 4;
    int plane = width * height;
    float k = scale / 255.0f;
    out[y * width + x] = (float)px[0] * k;
    out[plane + y * width + x] = (float)px[1] * k;
    out[2 * plane + y * width + x] = (float)px[2] * k;
}
"#;

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

/// Mirror of one `rgba_to_planar` thread.
#[allow(clippy::too_many_arguments)]
pub fn rgba_pixel(
    rgba: &[u8],
    stride: usize,
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
    let px = &rgba[y * stride + x * 4..];
    let plane = width * height;
    let k = scale / 255.0;
    out[y * width + x] = f32::from(px[0]) * k;
    out[plane + y * width + x] = f32::from(px[1]) * k;
    out[2 * plane + y * width + x] = f32::from(px[2]) * k;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{self, FrameLayout, PixelFormat, RgbImage};

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

    #[test]
    fn rgba_kernel_matches_the_engine_conversion_exactly() {
        let (w, h, stride) = (37, 21, 37 * 4 + 12); // odd sizes, padded rows, partial blocks
        let data: Vec<u8> = (0..stride * h).map(|i| (i * 31 % 251) as u8).collect();
        let mut out = vec![f32::NAN; 3 * w * h];
        launch_on_cpu(w, h, |x, y| {
            rgba_pixel(&data, stride, w, h, 1.0, &mut out, x, y)
        });
        let layout = FrameLayout {
            format: PixelFormat::Rgba,
            width: w,
            height: h,
            stride,
        };
        let expected =
            frame::image_to_tensor(&frame::read_rgb(&data, &layout).unwrap(), (h, w), 1.0);
        assert_eq!(out, expected.data);
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
        let expected = frame::image_to_tensor(&img, (h, w), 255.0);
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
