//! Temporal smoothing on the device: the per-pixel stages of [`crate::temporal`]'s filter as
//! CUDA kernels, with CPU mirrors.
//!
//! With a GPU backend and smoothing on (the default `stability`), a frame's images stay on the
//! device: the input and the stylized output at the inference size, the previous output and
//! the reference carried with it. Per frame:
//! 1. `planar_to_rgb8` turns the model input and output tensors into the 8-bit images the
//!    filter works on (the host path's resized input and stylized image);
//! 2. `grey_downscale` makes the grey image motion is estimated on (at most
//!    `FLOW_MAX_WIDTH` wide) — downloaded, since the motion estimate itself (block matching
//!    and Lucas–Kanade, [`temporal::estimate_flow`]) runs on the host on that small image, and
//!    the two dense flow fields (backward, forward) are uploaded: two small copies per frame;
//! 3. `warp_cubic` carries the previous output and reference along the backward flow (the
//!    cubic taps applied across each row first, then down, as the host's `RowTaps::apply`);
//! 4. `round_trip` checks the forward–backward consistency once per pixel of the flow grid;
//!    `temporal_diff` and `temporal_blend`: the agreement of the carried reference with this
//!    input (3×3 maximum), times the round trip of the nearest flow pixel, the selection
//!    weight, the blend and the new reference (rounded half up, as the host stores bytes);
//! 5. the detail restoration, for this frame's stylization and the blend:
//!    `gauss_rows`/`gauss_cols` (σ = `DETAIL_SIGMA`, symmetric taps), `detail_power`, then the
//!    energy window at half resolution: `half_means` (2×2), `box_rows`/`box_cols` (the box
//!    approximation of σ = `ENERGY_SIGMA` / 2) and `upsample` (bilinear), or the boxes of
//!    σ = `ENERGY_SIGMA` at the full size below 4×4; then `detail_gain` writes the smoothed
//!    image;
//! 6. `rgb8_to_planar` hands it to `planar_to_packed` (see [`super::kernels`]) for the frame.
//!
//! Each kernel has a mirror (`*_pixel`, `*_line`: one GPU thread) written expression for
//! expression, and [`SmootherOnCpu`] runs the steps over the same launch grids with the same
//! state. It matches [`temporal::TemporalFilter`] bit for bit (tested): the kernels follow
//! the host filter's order of operations wherever it rounds (sums, blends, byte rounding),
//! and are compiled with `--fmad=false` so the GPU computes what the mirrors compute. The
//! filter's parameters come from `temporal::params`, passed to the kernels as arguments.

use super::kernels::{self, launch_on_cpu, FramePlan, Planar};
use crate::error::{Error, Result};
use crate::size::Size;
use crate::temporal::{self, params, GreyImage};
use crate::tensor::Tensor;

/// CUDA C for NVRTC, compiled after [`super::kernels::CUDA_SOURCE`] (it uses its `Planar` and
/// `to_level`).
pub const CUDA_SOURCE: &str = r#"
struct Smooth {
    int width, height, grey_width, grey_height;
    float scale, stability, agree, disagree, slack, max_gain;
};

__device__ float clampf(float v, float lo, float hi) { return fminf(fmaxf(v, lo), hi); }
__device__ int clampi(int v, int len) { return min(max(v, 0), len - 1); }
// A value of the filter's float arithmetic as the byte it is stored as: rounded half up, as
// the host filter's `to_byte` (not `to_level`'s round half away from zero).
__device__ unsigned char to_byte(float v) { return (unsigned char)(clampf(v, 0.0f, 255.0f) + 0.5f); }
// 2-D kernels: (x, y) of a pixel. Line kernels (one thread per row or column) use x only.
__device__ int thread_x() { return blockIdx.x * blockDim.x + threadIdx.x; }
__device__ int thread_y() { return blockIdx.y * blockDim.y + threadIdx.y; }

extern "C" __global__ void planar_to_rgb8(const float* t, Planar src, unsigned char* rgb) {
    int x = thread_x(), y = thread_y();
    if (x >= src.image_width || y >= src.image_height) return;
    float k = 255.0f / src.scale;
    int plane = src.width * src.height;
    int at = y * src.width + x;
    unsigned char* px = rgb + (y * src.image_width + x) * 3;
    for (int c = 0; c < 3; c++) px[c] = (unsigned char)to_level(t[c * plane + at] * k);
}

extern "C" __global__ void rgb8_to_planar(const unsigned char* rgb, Planar dst, float* t) {
    int x = thread_x(), y = thread_y();
    if (x >= dst.image_width || y >= dst.image_height) return;
    float k = dst.scale / 255.0f;
    int plane = dst.width * dst.height;
    int at = y * dst.width + x;
    const unsigned char* px = rgb + (y * dst.image_width + x) * 3;
    for (int c = 0; c < 3; c++) t[c * plane + at] = (float)px[c] * k;
}

extern "C" __global__ void grey_downscale(const unsigned char* rgb, int width, int height,
                                          int factor, float* grey, int gw, int gh) {
    int x = thread_x(), y = thread_y();
    if (x >= gw || y >= gh) return;
    float sum = 0.0f, n = 0.0f;
    int ye = min((y + 1) * factor, height), xe = min((x + 1) * factor, width);
    for (int sy = y * factor; sy < ye; sy++) {
        for (int sx = x * factor; sx < xe; sx++) {
            const unsigned char* p = rgb + (sy * width + sx) * 3;
            sum += 0.299f * (float)p[0] + 0.587f * (float)p[1] + 0.114f * (float)p[2];
            n += 1.0f;
        }
    }
    grey[y * gw + x] = sum / fmaxf(n, 1.0f);
}

__device__ float bilinear_at(const float* v, int w, int h, float x, float y) {
    x = clampf(x, 0.0f, (float)(w - 1));
    y = clampf(y, 0.0f, (float)(h - 1));
    int x0 = (int)x, y0 = (int)y;
    int x1 = min(x0 + 1, w - 1), y1 = min(y0 + 1, h - 1);
    float fx = x - (float)x0, fy = y - (float)y0;
    float top = v[y0 * w + x0] * (1.0f - fx) + v[y0 * w + x1] * fx;
    float bottom = v[y1 * w + x0] * (1.0f - fx) + v[y1 * w + x1] * fx;
    return top * (1.0f - fy) + bottom * fy;
}

__device__ float to_smaller(int i, float scale) { return ((float)i + 0.5f) / scale - 0.5f; }

// A dense flow (dx plane, then dy plane) at pixel (x, y) of the image `scale` times larger.
__device__ void flow_at_pixel(const float* flow, Smooth s, int x, int y, float* dx, float* dy) {
    int n = s.grey_width * s.grey_height;
    if (s.scale == 1.0f) {
        *dx = flow[y * s.grey_width + x];
        *dy = flow[n + y * s.grey_width + x];
        return;
    }
    float gx = to_smaller(x, s.scale), gy = to_smaller(y, s.scale);
    *dx = bilinear_at(flow, s.grey_width, s.grey_height, gx, gy);
    *dy = bilinear_at(flow + n, s.grey_width, s.grey_height, gx, gy);
}

// Keys cubic, a = -0.75: taps at base - 1 .. base + 2 of a sample at `pos` (>= 0).
__device__ float cubic_near(float d) { return ((-0.75f + 2.0f) * d - (-0.75f + 3.0f)) * d * d + 1.0f; }
__device__ float cubic_far(float d) {
    return ((-0.75f * d - 5.0f * -0.75f) * d + 8.0f * -0.75f) * d - 4.0f * -0.75f;
}
__device__ int cubic_taps(float pos, float* w) {
    float base = (float)(int)pos;
    float t = pos - base;
    w[0] = cubic_far(1.0f + t);
    w[1] = cubic_near(t);
    w[2] = cubic_near(1.0f - t);
    w[3] = cubic_far(2.0f - t);
    return (int)base - 1;
}

extern "C" __global__ void warp_cubic(const unsigned char* reference, const unsigned char* output,
                                      const float* back, Smooth s, float* warped_ref,
                                      float* warped_out) {
    int x = thread_x(), y = thread_y();
    if (x >= s.width || y >= s.height) return;
    float dx, dy;
    flow_at_pixel(back, s, x, y, &dx, &dy);
    float sx = clampf((float)x + dx * s.scale, 0.0f, (float)(s.width - 1));
    float sy = clampf((float)y + dy * s.scale, 0.0f, (float)(s.height - 1));
    float wx[4], wy[4];
    int x0 = cubic_taps(sx, wx), y0 = cubic_taps(sy, wy);
    // Separable, as the host's `RowTaps::apply`: each of the four rows across, then the rows.
    float r[3] = {0.0f, 0.0f, 0.0f}, o[3] = {0.0f, 0.0f, 0.0f};
    for (int j = 0; j < 4; j++) {
        int row = clampi(y0 + j, s.height) * s.width;
        float ra[3] = {0.0f, 0.0f, 0.0f}, oa[3] = {0.0f, 0.0f, 0.0f};
        for (int i = 0; i < 4; i++) {
            int t = (row + clampi(x0 + i, s.width)) * 3;
            for (int c = 0; c < 3; c++) {
                ra[c] += wx[i] * (float)reference[t + c];
                oa[c] += wx[i] * (float)output[t + c];
            }
        }
        for (int c = 0; c < 3; c++) {
            r[c] += wy[j] * ra[c];
            o[c] += wy[j] * oa[c];
        }
    }
    int at = (y * s.width + x) * 3;
    for (int c = 0; c < 3; c++) {
        warped_ref[at + c] = clampf(r[c], 0.0f, 255.0f);
        warped_out[at + c] = clampf(o[c], 0.0f, 255.0f);
    }
}

// Per pixel of the flow grid: 1 where the backward vector comes back along the forward flow
// (the host's `round_trip_holds` at integer grid coordinates).
extern "C" __global__ void round_trip(const float* flows, Smooth s, float* holds) {
    int x = thread_x(), y = thread_y();
    if (x >= s.grey_width || y >= s.grey_height) return;
    int n = s.grey_width * s.grey_height;
    int i = y * s.grey_width + x;
    float bx = flows[i], by = flows[n + i];
    const float* fwd = flows + 2 * n;
    float gx = (float)x + bx, gy = (float)y + by;
    float fx = bilinear_at(fwd, s.grey_width, s.grey_height, gx, gy);
    float fy = bilinear_at(fwd + n, s.grey_width, s.grey_height, gx, gy);
    float ex = bx + fx, ey = by + fy;
    float mag = bx * bx + by * by + fx * fx + fy * fy;
    holds[i] = ex * ex + ey * ey <= 0.01f * mag + s.slack ? 1.0f : 0.0f;
}

// The flow grid's row or column nearest to pixel `i`'s centre.
__device__ int nearest(int i, float scale, int len) {
    return min((int)fmaxf(to_smaller(i, scale) + 0.5f, 0.0f), len - 1);
}

extern "C" __global__ void temporal_diff(const float* warped_ref, const unsigned char* input,
                                         Smooth s, float* diff) {
    int x = thread_x(), y = thread_y();
    if (x >= s.width || y >= s.height) return;
    int i = y * s.width + x;
    float d = 0.0f;
    for (int c = 0; c < 3; c++) d += fabsf(warped_ref[i * 3 + c] - (float)input[i * 3 + c]);
    diff[i] = d / 3.0f;
}

__device__ float propagation_weight(float agreement, float stability) {
    if (stability >= 1.0f) return agreement > 0.0f ? 1.0f : 0.0f;
    return fminf(agreement * stability / (1.0f - stability), 1.0f);
}

extern "C" __global__ void temporal_blend(const float* diff, const float* round_trip,
                                          const unsigned char* styled,
                                          const unsigned char* input, const float* warped_ref,
                                          const float* warped_out, Smooth s, float* current,
                                          float* blended, unsigned char* reference) {
    int x = thread_x(), y = thread_y();
    if (x >= s.width || y >= s.height) return;
    float worst = 0.0f;
    for (int yy = max(y - 1, 0); yy < min(y + 2, s.height); yy++) {
        for (int xx = max(x - 1, 0); xx < min(x + 2, s.width); xx++) {
            worst = fmaxf(worst, diff[yy * s.width + xx]);
        }
    }
    float agreement = clampf((s.disagree - worst) / (s.disagree - s.agree), 0.0f, 1.0f);
    float holds = round_trip[nearest(y, s.scale, s.grey_height) * s.grey_width +
                             nearest(x, s.scale, s.grey_width)];
    float k = propagation_weight(agreement * holds, s.stability);
    int at = (y * s.width + x) * 3;
    for (int c = 0; c < 3; c++) {
        float cur = (float)styled[at + c];
        current[at + c] = cur;
        blended[at + c] = (1.0f - k) * cur + k * warped_out[at + c];
        float r = (1.0f - k) * (float)input[at + c] + k * warped_ref[at + c];
        reference[at + c] = to_byte(r);
    }
}

extern "C" __global__ void gauss_rows(const float* src, float* dst, int width, int height,
                                      int channels, const float* taps, int radius) {
    int x = thread_x(), y = thread_y();
    if (x >= width || y >= height) return;
    // Symmetric taps, as the host: the centre, then pixels at ±(radius − k) sharing tap k.
    for (int c = 0; c < channels; c++) {
        float acc = taps[radius] * src[(y * width + x) * channels + c];
        for (int k = 0; k < radius; k++) {
            int a = clampi(x + k - radius, width), b = clampi(x + radius - k, width);
            acc += taps[k] * (src[(y * width + a) * channels + c] +
                              src[(y * width + b) * channels + c]);
        }
        dst[(y * width + x) * channels + c] = acc;
    }
}

extern "C" __global__ void gauss_cols(const float* src, float* dst, int width, int height,
                                      int channels, const float* taps, int radius) {
    int x = thread_x(), y = thread_y();
    if (x >= width || y >= height) return;
    for (int c = 0; c < channels; c++) {
        float acc = taps[radius] * src[(y * width + x) * channels + c];
        for (int k = 0; k < radius; k++) {
            int a = clampi(y + k - radius, height), b = clampi(y + radius - k, height);
            acc += taps[k] * (src[(a * width + x) * channels + c] +
                              src[(b * width + x) * channels + c]);
        }
        dst[(y * width + x) * channels + c] = acc;
    }
}

extern "C" __global__ void detail_power(const float* img, const float* base, int n,
                                        float* detail, float* power) {
    int i = thread_x();
    if (i >= n || thread_y() >= 1) return;
    float p = 0.0f;
    for (int c = 0; c < 3; c++) {
        float d = img[i * 3 + c] - base[i * 3 + c];
        detail[i * 3 + c] = d;
        p += d * d;
    }
    power[i] = p / 3.0f;
}

// 2×2 means of a width×height image into hw×hh (the last row and column repeated when odd).
extern "C" __global__ void half_means(const float* img, int width, int height, float* half,
                                      int hw, int hh) {
    int x = thread_x(), y = thread_y();
    if (x >= hw || y >= hh) return;
    int top = 2 * y * width, bottom = min(2 * y + 1, height - 1) * width;
    int a = 2 * x, b = min(2 * x + 1, width - 1);
    half[y * hw + x] = 0.25f * (img[top + a] + img[top + b] + img[bottom + a] + img[bottom + b]);
}

// An image twice the size of `half` (hw×hh), bilinear with pixel centres aligned.
extern "C" __global__ void upsample(const float* half, int hw, int hh, float* out, int width,
                                    int height) {
    int x = thread_x(), y = thread_y();
    if (x >= width || y >= height) return;
    out[y * width + x] = bilinear_at(half, hw, hh, to_smaller(x, 2.0f), to_smaller(y, 2.0f));
}

// Running box sums, one thread per row / column (the host filter's order of additions).
extern "C" __global__ void box_rows(const float* src, float* dst, int width, int height, int r) {
    int y = thread_x();
    if (y >= height || thread_y() >= 1) return;
    float norm = 1.0f / (float)(2 * r + 1);
    const float* s = src + y * width;
    float* d = dst + y * width;
    float acc = 0.0f;
    for (int k = -r; k <= r; k++) acc += s[clampi(k, width)];
    for (int x = 0; x < width; x++) {
        float add = s[clampi(x + r + 1, width)], sub = s[clampi(x - r, width)];
        d[x] = acc * norm;
        acc += add - sub;
    }
}

// The host sums each band of `band` rows afresh (its bands run on separate threads), so
// the sum restarts there too: a running sum carried across would round differently.
extern "C" __global__ void box_cols(const float* src, float* dst, int width, int height, int r,
                                    int band) {
    int x = thread_x();
    if (x >= width || thread_y() >= 1) return;
    float norm = 1.0f / (float)(2 * r + 1);
    float acc = 0.0f;
    for (int y = 0; y < height; y++) {
        if (y % band == 0) {
            acc = 0.0f;
            for (int k = -r; k <= r; k++) acc += src[clampi(y + k, height) * width + x];
        }
        float add = src[clampi(y + r + 1, height) * width + x];
        float sub = src[clampi(y - r, height) * width + x];
        dst[y * width + x] = acc * norm;
        acc += add - sub;
    }
}

extern "C" __global__ void detail_gain(const float* base, const float* detail,
                                       const float* energy, const float* target, Smooth s,
                                       unsigned char* out) {
    int x = thread_x(), y = thread_y();
    if (x >= s.width || y >= s.height) return;
    int i = y * s.width + x;
    float gain = clampf(sqrtf((target[i] + 1.0f) / (energy[i] + 1.0f)), 1.0f / s.max_gain,
                        s.max_gain);
    for (int c = 0; c < 3; c++) {
        out[i * 3 + c] = to_byte(base[i * 3 + c] + gain * detail[i * 3 + c]);
    }
}
"#;

/// Kernel names in [`CUDA_SOURCE`].
pub const PLANAR_TO_RGB8: &str = "planar_to_rgb8";
pub const RGB8_TO_PLANAR: &str = "rgb8_to_planar";
pub const GREY_DOWNSCALE: &str = "grey_downscale";
pub const WARP_CUBIC: &str = "warp_cubic";
pub const TEMPORAL_DIFF: &str = "temporal_diff";
pub const TEMPORAL_BLEND: &str = "temporal_blend";
pub const GAUSS_ROWS: &str = "gauss_rows";
pub const GAUSS_COLS: &str = "gauss_cols";
pub const DETAIL_POWER: &str = "detail_power";
pub const BOX_ROWS: &str = "box_rows";
pub const BOX_COLS: &str = "box_cols";
pub const DETAIL_GAIN: &str = "detail_gain";
pub const ROUND_TRIP: &str = "round_trip";
pub const HALF_MEANS: &str = "half_means";
pub const UPSAMPLE: &str = "upsample";

pub const KERNELS: &[&str] = &[
    PLANAR_TO_RGB8,
    RGB8_TO_PLANAR,
    GREY_DOWNSCALE,
    WARP_CUBIC,
    ROUND_TRIP,
    TEMPORAL_DIFF,
    TEMPORAL_BLEND,
    GAUSS_ROWS,
    GAUSS_COLS,
    DETAIL_POWER,
    HALF_MEANS,
    UPSAMPLE,
    BOX_ROWS,
    BOX_COLS,
    DETAIL_GAIN,
];

/// Smoothing asked of the device for one frame: the filter's `stability`, and an epoch that
/// changes whenever the previous frame must be forgotten (a reset, smoothing turned off, a
/// frame that took the host path): the device drops its state when it sees a new one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Smoothing {
    pub stability: f32,
    pub epoch: u64,
}

/// The kernels' parameters for one frame (C `struct Smooth`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Smooth {
    pub width: i32,
    pub height: i32,
    pub grey_width: i32,
    pub grey_height: i32,
    /// Inference size over grey size.
    pub scale: f32,
    pub stability: f32,
    pub agree: f32,
    pub disagree: f32,
    pub slack: f32,
    pub max_gain: f32,
}

/// The sizes of one frame's smoothing: the image at the inference size and its grey image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub width: usize,
    pub height: usize,
    /// Box factor of the grey image (the host filter's rule).
    pub factor: usize,
    pub grey_width: usize,
    pub grey_height: usize,
}

impl Sizes {
    pub fn new(width: usize, height: usize) -> Self {
        let factor = width.div_ceil(params::FLOW_MAX_WIDTH).max(1);
        Self {
            width,
            height,
            factor,
            grey_width: (width / factor).max(1),
            grey_height: (height / factor).max(1),
        }
    }

    pub fn pixels(&self) -> usize {
        self.width * self.height
    }

    pub fn grey_pixels(&self) -> usize {
        self.grey_width * self.grey_height
    }

    /// Whether the detail energy's window is taken at half resolution (the host's rule in
    /// `temporal::detail`: a blur at the full size below 4×4).
    pub fn energy_at_half(&self) -> bool {
        self.width >= 4 && self.height >= 4
    }

    /// The half-resolution image of the energy window (2×2 means, odd sizes rounded up).
    pub fn half_width(&self) -> usize {
        self.width.div_ceil(2)
    }

    pub fn half_height(&self) -> usize {
        self.height.div_ceil(2)
    }

    pub fn half_pixels(&self) -> usize {
        self.half_width() * self.half_height()
    }

    pub fn params(&self, stability: f32) -> Result<Smooth> {
        let int = |v: usize| {
            i32::try_from(v)
                .map_err(|_| Error::Frame(format!("size {v} is too large for the GPU path")))
        };
        Ok(Smooth {
            width: int(self.width)?,
            height: int(self.height)?,
            grey_width: int(self.grey_width)?,
            grey_height: int(self.grey_height)?,
            scale: self.width as f32 / self.grey_width as f32,
            stability,
            agree: params::AGREE,
            disagree: params::DISAGREE,
            slack: params::CONSISTENCY_SLACK,
            max_gain: params::MAX_DETAIL_GAIN,
        })
    }
}

/// The σ of the energy window at half resolution.
const HALF_ENERGY_SIGMA: f32 = params::ENERGY_SIGMA / 2.0;

// The device port takes the exact Gaussian for the detail split and boxes for the energy
// window (at half and at full resolution), as the host's `gaussian_blur_into` does for these σ.
const _: () = assert!(
    params::DETAIL_SIGMA < params::BOX_SIGMA
        && HALF_ENERGY_SIGMA >= params::BOX_SIGMA
        && params::ENERGY_SIGMA >= params::BOX_SIGMA
);

/// The detail split's Gaussian taps (radius = len / 2): what the host filter uses, uploaded
/// once to the device.
pub fn detail_taps() -> Vec<f32> {
    params::gaussian_taps(params::DETAIL_SIGMA)
}

/// The three box radii of the energy window: σ `ENERGY_SIGMA` / 2 on the half-resolution
/// image (`half`), else σ `ENERGY_SIGMA` at the full size.
pub fn energy_box_radii(half: bool) -> [usize; 3] {
    let sigma = if half {
        HALF_ENERGY_SIGMA
    } else {
        params::ENERGY_SIGMA
    };
    params::boxes_for_gauss(sigma).map(|width| width / 2)
}

/// The two dense flows of one frame in one buffer, as uploaded: backward dx, dy, forward dx,
/// dy, each `grey_width`×`grey_height`. The host's estimate is dense at the grey size.
pub fn pack_flows(back: &temporal::Flow, fwd: &temporal::Flow, sizes: &Sizes) -> Result<Vec<f32>> {
    let dense = |f: &temporal::Flow| {
        f.step == 1.0
            && f.origin == 0.0
            && f.cols == sizes.grey_width
            && f.rows == sizes.grey_height
            && f.dx.len() == sizes.grey_pixels()
            && f.dy.len() == sizes.grey_pixels()
    };
    if !dense(back) || !dense(fwd) {
        return Err(Error::Inference(
            "the motion estimate is not a dense field at the grey size".into(),
        ));
    }
    Ok([&back.dx, &back.dy, &fwd.dx, &fwd.dy]
        .into_iter()
        .flatten()
        .copied()
        .collect())
}

// ---- Mirrors: one GPU thread each, expression for expression. ----

fn clampf(v: f32, lo: f32, hi: f32) -> f32 {
    v.max(lo).min(hi)
}

fn clampi(v: i32, len: i32) -> usize {
    v.max(0).min(len - 1) as usize
}

/// Mirror of the CUDA `to_byte` (the host filter's rounding of its values to bytes).
#[allow(clippy::manual_clamp)] // as `clampf`: NaN gives 0
fn to_byte(v: f32) -> u8 {
    (clampf(v, 0.0, 255.0) + 0.5) as u8
}

/// Mirror of the CUDA `to_level` (see `kernels`).
#[allow(clippy::manual_clamp)] // `clamp` keeps NaN; the kernel's fmaxf/fminf give 0
fn to_level(v: f32) -> f32 {
    v.round().max(0.0).min(255.0)
}

/// Mirror of one `planar_to_rgb8` thread.
pub fn planar_to_rgb8_pixel(t: &[f32], src: &Planar, rgb: &mut [u8], x: usize, y: usize) {
    let (x, y) = (x as i32, y as i32);
    if x >= src.image_width || y >= src.image_height {
        return;
    }
    let k = 255.0 / src.scale;
    let plane = (src.width * src.height) as usize;
    let at = (y * src.width + x) as usize;
    let px = ((y * src.image_width + x) * 3) as usize;
    for c in 0..3 {
        rgb[px + c] = to_level(t[c * plane + at] * k) as u8;
    }
}

/// Mirror of one `rgb8_to_planar` thread.
pub fn rgb8_to_planar_pixel(rgb: &[u8], dst: &Planar, t: &mut [f32], x: usize, y: usize) {
    let (x, y) = (x as i32, y as i32);
    if x >= dst.image_width || y >= dst.image_height {
        return;
    }
    let k = dst.scale / 255.0;
    let plane = (dst.width * dst.height) as usize;
    let at = (y * dst.width + x) as usize;
    let px = ((y * dst.image_width + x) * 3) as usize;
    for c in 0..3 {
        t[c * plane + at] = f32::from(rgb[px + c]) * k;
    }
}

/// Mirror of one `grey_downscale` thread.
pub fn grey_downscale_pixel(rgb: &[u8], sizes: &Sizes, grey: &mut [f32], x: usize, y: usize) {
    let (factor, gw) = (sizes.factor, sizes.grey_width);
    if x >= gw || y >= sizes.grey_height {
        return;
    }
    let (mut sum, mut n) = (0.0f32, 0.0f32);
    let (ye, xe) = (
        ((y + 1) * factor).min(sizes.height),
        ((x + 1) * factor).min(sizes.width),
    );
    for sy in y * factor..ye {
        for sx in x * factor..xe {
            let p = &rgb[(sy * sizes.width + sx) * 3..];
            sum += 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
            n += 1.0;
        }
    }
    grey[y * gw + x] = sum / n.max(1.0);
}

fn bilinear_at(v: &[f32], w: i32, h: i32, x: f32, y: f32) -> f32 {
    let x = clampf(x, 0.0, (w - 1) as f32);
    let y = clampf(y, 0.0, (h - 1) as f32);
    let (x0, y0) = (x as i32, y as i32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: i32, yy: i32| v[(yy * w + xx) as usize];
    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
    let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

fn to_smaller(i: i32, scale: f32) -> f32 {
    (i as f32 + 0.5) / scale - 0.5
}

fn flow_at_pixel(flow: &[f32], s: &Smooth, x: i32, y: i32) -> (f32, f32) {
    let n = (s.grey_width * s.grey_height) as usize;
    if s.scale == 1.0 {
        let i = (y * s.grey_width + x) as usize;
        return (flow[i], flow[n + i]);
    }
    let (gx, gy) = (to_smaller(x, s.scale), to_smaller(y, s.scale));
    (
        bilinear_at(flow, s.grey_width, s.grey_height, gx, gy),
        bilinear_at(&flow[n..], s.grey_width, s.grey_height, gx, gy),
    )
}

fn cubic_near(d: f32) -> f32 {
    ((-0.75 + 2.0) * d - (-0.75 + 3.0)) * d * d + 1.0
}

fn cubic_far(d: f32) -> f32 {
    ((-0.75 * d - 5.0 * -0.75) * d + 8.0 * -0.75) * d - 4.0 * -0.75
}

fn cubic_taps(pos: f32) -> (i32, [f32; 4]) {
    let base = pos as i32 as f32;
    let t = pos - base;
    let w = [
        cubic_far(1.0 + t),
        cubic_near(t),
        cubic_near(1.0 - t),
        cubic_far(2.0 - t),
    ];
    (base as i32 - 1, w)
}

/// Mirror of one `warp_cubic` thread.
#[allow(clippy::too_many_arguments)]
pub fn warp_cubic_pixel(
    reference: &[u8],
    output: &[u8],
    back: &[f32],
    s: &Smooth,
    warped_ref: &mut [f32],
    warped_out: &mut [f32],
    x: usize,
    y: usize,
) {
    let (x, y) = (x as i32, y as i32);
    if x >= s.width || y >= s.height {
        return;
    }
    let (dx, dy) = flow_at_pixel(back, s, x, y);
    let sx = clampf(x as f32 + dx * s.scale, 0.0, (s.width - 1) as f32);
    let sy = clampf(y as f32 + dy * s.scale, 0.0, (s.height - 1) as f32);
    let ((x0, wx), (y0, wy)) = (cubic_taps(sx), cubic_taps(sy));
    let (mut r, mut o) = ([0.0f32; 3], [0.0f32; 3]);
    for (j, ky) in wy.iter().enumerate() {
        let row = clampi(y0 + j as i32, s.height) * s.width as usize;
        let (mut ra, mut oa) = ([0.0f32; 3], [0.0f32; 3]);
        for (i, kx) in wx.iter().enumerate() {
            let t = (row + clampi(x0 + i as i32, s.width)) * 3;
            for c in 0..3 {
                ra[c] += kx * f32::from(reference[t + c]);
                oa[c] += kx * f32::from(output[t + c]);
            }
        }
        for c in 0..3 {
            r[c] += ky * ra[c];
            o[c] += ky * oa[c];
        }
    }
    let at = ((y * s.width + x) * 3) as usize;
    for c in 0..3 {
        warped_ref[at + c] = clampf(r[c], 0.0, 255.0);
        warped_out[at + c] = clampf(o[c], 0.0, 255.0);
    }
}

/// Mirror of one `round_trip` thread (a pixel of the flow grid).
pub fn round_trip_pixel(flows: &[f32], s: &Smooth, holds: &mut [f32], x: usize, y: usize) {
    let (x, y) = (x as i32, y as i32);
    if x >= s.grey_width || y >= s.grey_height {
        return;
    }
    let n = (s.grey_width * s.grey_height) as usize;
    let i = (y * s.grey_width + x) as usize;
    let (bx, by) = (flows[i], flows[n + i]);
    let fwd = &flows[2 * n..];
    let (gx, gy) = (x as f32 + bx, y as f32 + by);
    let fx = bilinear_at(fwd, s.grey_width, s.grey_height, gx, gy);
    let fy = bilinear_at(&fwd[n..], s.grey_width, s.grey_height, gx, gy);
    let (ex, ey) = (bx + fx, by + fy);
    let mag = bx * bx + by * by + fx * fx + fy * fy;
    holds[i] = if ex * ex + ey * ey <= 0.01 * mag + s.slack {
        1.0
    } else {
        0.0
    };
}

fn nearest(i: i32, scale: f32, len: i32) -> i32 {
    ((to_smaller(i, scale) + 0.5).max(0.0) as i32).min(len - 1)
}

/// Mirror of one `temporal_diff` thread.
pub fn temporal_diff_pixel(
    warped_ref: &[f32],
    input: &[u8],
    s: &Smooth,
    diff: &mut [f32],
    x: usize,
    y: usize,
) {
    let (x, y) = (x as i32, y as i32);
    if x >= s.width || y >= s.height {
        return;
    }
    let i = (y * s.width + x) as usize;
    let mut d = 0.0f32;
    for c in 0..3 {
        d += (warped_ref[i * 3 + c] - f32::from(input[i * 3 + c])).abs();
    }
    diff[i] = d / 3.0;
}

fn propagation_weight(agreement: f32, stability: f32) -> f32 {
    if stability >= 1.0 {
        return if agreement > 0.0 { 1.0 } else { 0.0 };
    }
    (agreement * stability / (1.0 - stability)).min(1.0)
}

/// The images `temporal_blend` reads.
pub struct BlendInputs<'a> {
    pub diff: &'a [f32],
    /// `round_trip`'s result per pixel of the flow grid.
    pub round_trip: &'a [f32],
    pub styled: &'a [u8],
    pub input: &'a [u8],
    pub warped_ref: &'a [f32],
    pub warped_out: &'a [f32],
}

/// The images `temporal_blend` writes.
pub struct BlendOutputs<'a> {
    pub current: &'a mut [f32],
    pub blended: &'a mut [f32],
    pub reference: &'a mut [u8],
}

/// Mirror of one `temporal_blend` thread.
pub fn temporal_blend_pixel(i: &BlendInputs, s: &Smooth, o: &mut BlendOutputs, x: usize, y: usize) {
    let (x, y) = (x as i32, y as i32);
    if x >= s.width || y >= s.height {
        return;
    }
    let mut worst = 0.0f32;
    for yy in (y - 1).max(0)..(y + 2).min(s.height) {
        for xx in (x - 1).max(0)..(x + 2).min(s.width) {
            worst = worst.max(i.diff[(yy * s.width + xx) as usize]);
        }
    }
    let agreement = clampf((s.disagree - worst) / (s.disagree - s.agree), 0.0, 1.0);
    let holds = i.round_trip[(nearest(y, s.scale, s.grey_height) * s.grey_width
        + nearest(x, s.scale, s.grey_width)) as usize];
    let k = propagation_weight(agreement * holds, s.stability);
    let at = ((y * s.width + x) * 3) as usize;
    for c in 0..3 {
        let cur = f32::from(i.styled[at + c]);
        o.current[at + c] = cur;
        o.blended[at + c] = (1.0 - k) * cur + k * i.warped_out[at + c];
        let r = (1.0 - k) * f32::from(i.input[at + c]) + k * i.warped_ref[at + c];
        o.reference[at + c] = to_byte(r);
    }
}

/// The size of an interleaved float image for the blur kernels.
#[derive(Debug, Clone, Copy)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

/// Mirror of one `gauss_rows` thread (`vertical` false) or `gauss_cols` thread (true).
pub fn gauss_pixel(
    src: &[f32],
    dst: &mut [f32],
    p: Plane,
    taps: &[f32],
    vertical: bool,
    x: usize,
    y: usize,
) {
    let (w, h, ch) = (p.width as i32, p.height as i32, p.channels);
    let (x, y) = (x as i32, y as i32);
    if x >= w || y >= h {
        return;
    }
    let radius = (taps.len() / 2) as i32;
    // Pixel at offset `d` along the pass, clamped.
    let at = |d: i32| {
        if vertical {
            clampi(y + d, h) * w as usize + x as usize
        } else {
            y as usize * w as usize + clampi(x + d, w)
        }
    };
    for c in 0..ch {
        let mut acc = taps[radius as usize] * src[(y * w + x) as usize * ch + c];
        for k in 0..radius {
            let (a, b) = (at(k - radius), at(radius - k));
            acc += taps[k as usize] * (src[a * ch + c] + src[b * ch + c]);
        }
        dst[(y * w + x) as usize * ch + c] = acc;
    }
}

/// Mirror of one `detail_power` thread.
pub fn detail_power_pixel(
    img: &[f32],
    base: &[f32],
    n: usize,
    detail: &mut [f32],
    power: &mut [f32],
    i: usize,
    row: usize,
) {
    if i >= n || row >= 1 {
        return;
    }
    let mut p = 0.0f32;
    for c in 0..3 {
        let d = img[i * 3 + c] - base[i * 3 + c];
        detail[i * 3 + c] = d;
        p += d * d;
    }
    power[i] = p / 3.0;
}

/// Mirror of one `half_means` thread (`p` the full-size image, one channel).
pub fn half_means_pixel(img: &[f32], p: Plane, half: &mut [f32], x: usize, y: usize) {
    let (w, h) = (p.width, p.height);
    let (hw, hh) = (w.div_ceil(2), h.div_ceil(2));
    if x >= hw || y >= hh {
        return;
    }
    let (top, bottom) = (2 * y * w, (2 * y + 1).min(h - 1) * w);
    let (a, b) = (2 * x, (2 * x + 1).min(w - 1));
    half[y * hw + x] = 0.25 * (img[top + a] + img[top + b] + img[bottom + a] + img[bottom + b]);
}

/// Mirror of one `upsample` thread (`p` the full-size image, one channel).
pub fn upsample_pixel(half: &[f32], p: Plane, out: &mut [f32], x: usize, y: usize) {
    let (w, h) = (p.width, p.height);
    if x >= w || y >= h {
        return;
    }
    let (hw, hh) = (w.div_ceil(2) as i32, h.div_ceil(2) as i32);
    let (gx, gy) = (to_smaller(x as i32, 2.0), to_smaller(y as i32, 2.0));
    out[y * w + x] = bilinear_at(half, hw, hh, gx, gy);
}

/// Mirror of one `box_rows` thread (`vertical` false: row `line`) or `box_cols` thread (true:
/// column `line`, its sum restarted every `BAND_ROWS` rows).
pub fn box_line(
    src: &[f32],
    dst: &mut [f32],
    p: Plane,
    r: usize,
    vertical: bool,
    line: usize,
    row: usize,
) {
    let (w, h, r) = (p.width as i32, p.height as i32, r as i32);
    let (lines, len) = if vertical { (w, h) } else { (h, w) };
    let line = line as i32;
    if line >= lines || row >= 1 {
        return;
    }
    let at = |k: i32| -> usize {
        let k = clampi(k, len) as i32;
        (if vertical { k * w + line } else { line * w + k }) as usize
    };
    let norm = 1.0 / (2 * r + 1) as f32;
    let band = params::BAND_ROWS as i32;
    let mut acc = 0.0f32;
    for k in 0..len {
        // Columns restart their sum at every band of rows, as the host's do; rows never.
        if k == 0 || (vertical && k % band == 0) {
            acc = 0.0;
            for j in -r..=r {
                acc += src[at(k + j)];
            }
        }
        let (add, sub) = (src[at(k + r + 1)], src[at(k - r)]);
        dst[at(k)] = acc * norm;
        acc += add - sub;
    }
}

/// Mirror of one `detail_gain` thread.
#[allow(clippy::too_many_arguments)]
pub fn detail_gain_pixel(
    base: &[f32],
    detail: &[f32],
    energy: &[f32],
    target: &[f32],
    s: &Smooth,
    out: &mut [u8],
    x: usize,
    y: usize,
) {
    let (x, y) = (x as i32, y as i32);
    if x >= s.width || y >= s.height {
        return;
    }
    let i = (y * s.width + x) as usize;
    let gain = clampf(
        ((target[i] + 1.0) / (energy[i] + 1.0)).sqrt(),
        1.0 / s.max_gain,
        s.max_gain,
    );
    for c in 0..3 {
        out[i * 3 + c] = to_byte(base[i * 3 + c] + gain * detail[i * 3 + c]);
    }
}

/// The previous frame the smoothing carries forward, as the device keeps it.
struct Previous {
    sizes: Sizes,
    reference: Vec<u8>,
    output: Vec<u8>,
    /// On the host on the GPU too: motion is estimated there.
    grey: GreyImage,
}

/// The device smoothing run on the CPU: the same state, steps, kernels (mirrors) and launch
/// grids as `backend::device`. It is the reference for what the GPU computes, and equals
/// [`temporal::TemporalFilter`] bit for bit.
#[derive(Default)]
pub struct SmootherOnCpu {
    previous: Option<Previous>,
    epoch: Option<u64>,
}

impl SmootherOnCpu {
    /// Smooth `styled` (the stylized `input`, both 8-bit RGB of `width`×`height`) in place.
    pub fn apply(
        &mut self,
        input: &[u8],
        styled: &mut [u8],
        width: usize,
        height: usize,
        smoothing: Smoothing,
    ) -> Result<()> {
        let sizes = Sizes::new(width, height);
        if input.len() != sizes.pixels() * 3 || styled.len() != sizes.pixels() * 3 {
            return Err(Error::Frame(format!(
                "smoothing a {width}x{height} image needs {} bytes",
                sizes.pixels() * 3
            )));
        }
        if self.epoch != Some(smoothing.epoch) {
            self.previous = None;
            self.epoch = Some(smoothing.epoch);
        }
        let s = sizes.params(smoothing.stability)?;
        let mut grey = vec![0.0; sizes.grey_pixels()];
        launch_on_cpu(sizes.grey_width, sizes.grey_height, |x, y| {
            grey_downscale_pixel(input, &sizes, &mut grey, x, y)
        });
        let grey = GreyImage {
            width: sizes.grey_width,
            height: sizes.grey_height,
            data: grey,
        };
        let reference = match self.previous.take().filter(|p| p.sizes == sizes) {
            Some(prev) => {
                let back = temporal::estimate_flow(&grey, &prev.grey);
                let fwd = temporal::estimate_flow(&prev.grey, &grey);
                let flows = pack_flows(&back, &fwd, &sizes)?;
                smooth_on_cpu(input, styled, &prev.reference, &prev.output, &flows, &s)
            }
            None => input.to_vec(),
        };
        self.previous = Some(Previous {
            sizes,
            reference,
            output: styled.to_vec(),
            grey,
        });
        Ok(())
    }
}

/// Steps 3–5 of the module comment with the mirrors; returns the new reference.
fn smooth_on_cpu(
    input: &[u8],
    styled: &mut [u8],
    prev_reference: &[u8],
    prev_output: &[u8],
    flows: &[f32],
    s: &Smooth,
) -> Vec<u8> {
    let (w, h) = (s.width as usize, s.height as usize);
    let n = w * h;
    let (mut warped_ref, mut warped_out) = (vec![0.0; n * 3], vec![0.0; n * 3]);
    launch_on_cpu(w, h, |x, y| {
        warp_cubic_pixel(
            prev_reference,
            prev_output,
            flows,
            s,
            &mut warped_ref,
            &mut warped_out,
            x,
            y,
        )
    });
    let (gw, gh) = (s.grey_width as usize, s.grey_height as usize);
    let mut round_trip = vec![0.0; gw * gh];
    launch_on_cpu(gw, gh, |x, y| {
        round_trip_pixel(flows, s, &mut round_trip, x, y)
    });
    let mut diff = vec![0.0; n];
    launch_on_cpu(w, h, |x, y| {
        temporal_diff_pixel(&warped_ref, input, s, &mut diff, x, y)
    });
    let (mut current, mut blended, mut reference) =
        (vec![0.0; n * 3], vec![0.0; n * 3], vec![0; n * 3]);
    {
        let inputs = BlendInputs {
            diff: &diff,
            round_trip: &round_trip,
            styled,
            input,
            warped_ref: &warped_ref,
            warped_out: &warped_out,
        };
        let mut outputs = BlendOutputs {
            current: &mut current,
            blended: &mut blended,
            reference: &mut reference,
        };
        launch_on_cpu(w, h, |x, y| {
            temporal_blend_pixel(&inputs, s, &mut outputs, x, y)
        });
    }
    let taps = detail_taps();
    let sizes = Sizes::new(w, h);
    let at_half = sizes.energy_at_half();
    let radii = energy_box_radii(at_half);
    let rgb = Plane {
        width: w,
        height: h,
        channels: 3,
    };
    let grey = Plane { channels: 1, ..rgb };
    let (hw, hh) = (sizes.half_width(), sizes.half_height());
    let half_plane = Plane {
        width: hw,
        height: hh,
        channels: 1,
    };
    // The boxes of the energy window over a one-channel image of `p`'s size, in place.
    let boxes = |img: &mut [f32], p: Plane| {
        let mut tmp = vec![0.0; p.width * p.height];
        for r in radii {
            launch_on_cpu(p.height, 1, |line, row| {
                box_line(img, &mut tmp, p, r, false, line, row)
            });
            launch_on_cpu(p.width, 1, |line, row| {
                box_line(&tmp, img, p, r, true, line, row)
            });
        }
    };
    // Fine detail and its local energy (the host's `detail_and_energy`).
    let detail_and_energy = |img: &[f32]| {
        let (mut across, mut base) = (vec![0.0; n * 3], vec![0.0; n * 3]);
        launch_on_cpu(w, h, |x, y| {
            gauss_pixel(img, &mut across, rgb, &taps, false, x, y)
        });
        launch_on_cpu(w, h, |x, y| {
            gauss_pixel(&across, &mut base, rgb, &taps, true, x, y)
        });
        let (mut detail, mut energy) = (vec![0.0; n * 3], vec![0.0; n]);
        launch_on_cpu(n, 1, |i, row| {
            detail_power_pixel(img, &base, n, &mut detail, &mut energy, i, row)
        });
        // The power's local mean: at half resolution, or at the full size when small.
        if at_half {
            let mut half = vec![0.0; hw * hh];
            launch_on_cpu(hw, hh, |x, y| {
                half_means_pixel(&energy, grey, &mut half, x, y)
            });
            boxes(&mut half, half_plane);
            launch_on_cpu(w, h, |x, y| upsample_pixel(&half, grey, &mut energy, x, y));
        } else {
            boxes(&mut energy, grey);
        }
        (base, detail, energy)
    };
    let (_, _, target) = detail_and_energy(&current);
    let (base, detail, energy) = detail_and_energy(&blended);
    launch_on_cpu(w, h, |x, y| {
        detail_gain_pixel(&base, &detail, &energy, &target, s, styled, x, y)
    });
    reference
}

/// The device pipeline of a smoothed frame on the CPU: [`kernels::device_frame_on_cpu`]'s
/// steps, with the model's input and output turned into 8-bit images, smoothed by `smoother`
/// and handed to the output kernel as a planar tensor in bytes (scale 255, so its levels
/// pass exactly).
pub fn stylize_smoothed_frame_on_cpu(
    data: &mut [u8],
    plan: &FramePlan,
    smoother: &mut SmootherOnCpu,
    smoothing: Smoothing,
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
    let (w, h) = (input.image_width as usize, input.image_height as usize);
    let mut content = Tensor::zeros(3, input.height as usize, input.width as usize);
    launch_on_cpu(content.width, content.height, |x, y| {
        kernels::packed_to_planar_pixel(data, &frame, &mut content.data, &input, x, y)
    });
    let mut small = vec![0u8; w * h * 3];
    launch_on_cpu(w, h, |x, y| {
        planar_to_rgb8_pixel(&content.data, &input, &mut small, x, y)
    });
    let styled_tensor = model(&content)?;
    let output = input.output(&styled_tensor.shape().map(|d| d as i64))?;
    let mut styled = vec![0u8; w * h * 3];
    launch_on_cpu(w, h, |x, y| {
        planar_to_rgb8_pixel(&styled_tensor.data, &output, &mut styled, x, y)
    });
    smoother.apply(&small, &mut styled, w, h, smoothing)?;
    let bytes = Planar::new(Size::new(w, h), Size::new(w, h), 255.0)?;
    let mut smoothed = vec![0.0; bytes.len()];
    launch_on_cpu(w, h, |x, y| {
        rgb8_to_planar_pixel(&styled, &bytes, &mut smoothed, x, y)
    });
    launch_on_cpu(frame.width as usize, frame.height as usize, |x, y| {
        kernels::planar_to_packed_pixel(&smoothed, &bytes, data, &frame, x, y)
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::RgbImage;
    use crate::temporal::TemporalFilter;

    /// A textured scene that moves by (dx, dy) per frame, with a square moving the other way
    /// (occlusions) and some noise, so every stage of the filter has work.
    fn scene(w: usize, h: usize, frame: usize) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        let (ox, oy) = (frame as f32 * 1.7, frame as f32 * 0.6);
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f32 + ox, y as f32 + oy);
                let square = (x + 3 * frame) % w < w / 4 && (h / 3..h / 2).contains(&y);
                let noise = ((x * 7919 + y * 104_729 + frame * 31) % 7) as f32;
                let px = &mut img.data[(y * w + x) * 3..][..3];
                px[0] = (128.0 + 60.0 * (fx * 0.21).sin() + noise) as u8;
                px[1] = (128.0 + 60.0 * (fy * 0.17).cos() + noise) as u8;
                px[2] = if square {
                    240
                } else {
                    (100.0 + 40.0 * ((fx + fy) * 0.05).sin()) as u8
                };
            }
        }
        img
    }

    /// A stand-in stylization that flickers: a texture that depends on the frame number.
    fn stylize(img: &RgbImage, frame: usize) -> RgbImage {
        let mut out = img.clone();
        for (i, v) in out.data.iter_mut().enumerate() {
            let flicker = ((i * 13 + frame * 57) % 23) as i32 - 11;
            *v = (i32::from(*v) + flicker).clamp(0, 255) as u8;
        }
        out
    }

    #[test]
    fn the_device_smoothing_equals_the_host_filter_bit_for_bit() {
        // 400 wide: a grey image at factor 2 (flow upsampled); 96 wide: factor 1; 97×61: odd
        // sizes (the half-resolution energy repeats its last row and column); 3 wide: the
        // energy window at the full size.
        for (w, h) in [(400, 90), (96, 60), (97, 61), (3, 40)] {
            for stability in [0.7, 1.0] {
                let mut host = TemporalFilter::new(f64::from(stability));
                let mut device = SmootherOnCpu::default();
                let smoothing = Smoothing {
                    stability,
                    epoch: 1,
                };
                for frame in 0..4 {
                    let input = scene(w, h, frame);
                    let styled = stylize(&input, frame);
                    let mut expected = styled.clone();
                    host.apply(&input, &mut expected);
                    let mut got = styled.data.clone();
                    device
                        .apply(&input.data, &mut got, w, h, smoothing)
                        .unwrap();
                    assert_eq!(
                        got, expected.data,
                        "{w}x{h} stability {stability} frame {frame}"
                    );
                    if frame > 0 {
                        assert_ne!(got, styled.data, "frame {frame} was smoothed");
                    }
                }
            }
        }
    }

    #[test]
    fn a_new_epoch_or_size_forgets_the_previous_frame() {
        let (w, h) = (64, 48);
        let mut device = SmootherOnCpu::default();
        let at = |epoch| Smoothing {
            stability: 0.7,
            epoch,
        };
        let input = scene(w, h, 0);
        let styled = stylize(&input, 0);
        device
            .apply(&input.data, &mut styled.data.clone(), w, h, at(1))
            .unwrap();
        let next = scene(w, h, 1);
        let styled_next = stylize(&next, 1);
        let mut same_epoch = styled_next.data.clone();
        device
            .apply(&next.data, &mut same_epoch, w, h, at(1))
            .unwrap();
        assert_ne!(same_epoch, styled_next.data, "smoothed against frame 0");
        let mut new_epoch = styled_next.data.clone();
        device
            .apply(&next.data, &mut new_epoch, w, h, at(2))
            .unwrap();
        assert_eq!(new_epoch, styled_next.data, "a new epoch passes unchanged");
        let (small, small_styled) = (scene(32, 24, 2), stylize(&scene(32, 24, 2), 2));
        let mut resized = small_styled.data.clone();
        device
            .apply(&small.data, &mut resized, 32, 24, at(2))
            .unwrap();
        assert_eq!(resized, small_styled.data, "a new size passes unchanged");
        let err = device
            .apply(&small.data, &mut resized, 33, 24, at(2))
            .unwrap_err();
        assert!(err.to_string().contains("33x24"), "{err}");
    }

    #[test]
    fn planar_round_trips_and_the_parameters_are_the_filters() {
        let (w, h) = (13, 7);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 256) as u8).collect();
        for scale in [1.0, 255.0] {
            let p = Planar::new(Size::new(w + 5, h + 3), Size::new(w, h), scale).unwrap();
            let mut t = vec![f32::NAN; p.len()];
            launch_on_cpu(w, h, |x, y| rgb8_to_planar_pixel(&rgb, &p, &mut t, x, y));
            let mut back = vec![0u8; w * h * 3];
            launch_on_cpu(p.width as usize, p.height as usize, |x, y| {
                planar_to_rgb8_pixel(&t, &p, &mut back, x, y)
            });
            assert_eq!(back, rgb, "scale {scale}");
        }
        let s = Sizes::new(641, 360);
        assert_eq!((s.factor, s.grey_width, s.grey_height), (3, 213, 120));
        assert_eq!(std::mem::size_of::<Smooth>(), 10 * 4);
        for name in KERNELS {
            assert!(
                CUDA_SOURCE.contains(&format!("__global__ void {name}(")),
                "{name}"
            );
        }
    }
}
