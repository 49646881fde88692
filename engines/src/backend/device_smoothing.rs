//! Temporal smoothing of device-resident frames on an NVIDIA GPU (feature `tensorrt`): the
//! steps of [`super::smoothing`] with its kernels, the state kept on the device between
//! frames. Nothing here runs without a GPU; [`super::smoothing::SmootherOnCpu`] runs the same
//! steps with the kernels' mirrors, where they are tested against the host filter.

use std::sync::Arc;

use cudarc::driver::{
    CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};

use super::kernels::{self, Packed, Planar};
use super::smoothing::{self as sm, Sizes, Smooth, Smoothing};
use crate::error::{Error, Result};
use crate::size::Size;
use crate::temporal::{self, GreyImage};

// SAFETY: `#[repr(C)]` plain-old-data with the layout of `struct Smooth` in the CUDA source
// (checked by the `smoothing` tests), passed by value.
unsafe impl DeviceRepr for Smooth {}

fn cuda(e: impl std::fmt::Display) -> Error {
    Error::Inference(format!("CUDA: {e}"))
}

fn grid(width: usize, height: usize) -> LaunchConfig {
    let ((gx, gy), (bx, by)) = kernels::grid(width, height);
    LaunchConfig {
        grid_dim: (gx, gy, 1),
        block_dim: (bx, by, 1),
        shared_mem_bytes: 0,
    }
}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::Frame(format!("size {v} is too large for the GPU path")))
}

/// The smoothing kernels of the loaded module.
struct Functions {
    planar_to_rgb8: CudaFunction,
    rgb8_to_planar: CudaFunction,
    grey_downscale: CudaFunction,
    warp_cubic: CudaFunction,
    round_trip: CudaFunction,
    temporal_diff: CudaFunction,
    temporal_blend: CudaFunction,
    gauss_rows: CudaFunction,
    gauss_cols: CudaFunction,
    detail_power: CudaFunction,
    half_means: CudaFunction,
    upsample: CudaFunction,
    box_rows: CudaFunction,
    box_cols: CudaFunction,
    detail_gain: CudaFunction,
}

/// Device buffers for one inference size.
struct Buffers {
    sizes: Sizes,
    input: CudaSlice<u8>,
    styled: CudaSlice<u8>,
    reference: CudaSlice<u8>,
    new_reference: CudaSlice<u8>,
    output: CudaSlice<u8>,
    grey: CudaSlice<f32>,
    flows: CudaSlice<f32>,
    /// Where the motion's round trip holds, per pixel of the flow grid.
    round_trip: CudaSlice<f32>,
    warped_ref: CudaSlice<f32>,
    warped_out: CudaSlice<f32>,
    diff: CudaSlice<f32>,
    current: CudaSlice<f32>,
    blended: CudaSlice<f32>,
    across: CudaSlice<f32>,
    base: CudaSlice<f32>,
    detail: CudaSlice<f32>,
    energy: CudaSlice<f32>,
    target: CudaSlice<f32>,
    tmp: CudaSlice<f32>,
    /// The detail power at half resolution and the buffer between its box passes.
    half: CudaSlice<f32>,
    half_tmp: CudaSlice<f32>,
    /// The smoothed image as a planar tensor in bytes, for the output kernel.
    bytes: CudaSlice<f32>,
}

impl Buffers {
    fn new(stream: &Arc<CudaStream>, sizes: Sizes) -> Result<Self> {
        let (n, g, half) = (sizes.pixels(), sizes.grey_pixels(), sizes.half_pixels());
        let u8s = |len| stream.alloc_zeros::<u8>(len).map_err(cuda);
        let f32s = |len| stream.alloc_zeros::<f32>(len).map_err(cuda);
        Ok(Self {
            sizes,
            input: u8s(3 * n)?,
            styled: u8s(3 * n)?,
            reference: u8s(3 * n)?,
            new_reference: u8s(3 * n)?,
            output: u8s(3 * n)?,
            grey: f32s(g)?,
            flows: f32s(4 * g)?,
            round_trip: f32s(g)?,
            warped_ref: f32s(3 * n)?,
            warped_out: f32s(3 * n)?,
            diff: f32s(n)?,
            current: f32s(3 * n)?,
            blended: f32s(3 * n)?,
            across: f32s(3 * n)?,
            base: f32s(3 * n)?,
            detail: f32s(3 * n)?,
            energy: f32s(n)?,
            target: f32s(n)?,
            tmp: f32s(n)?,
            half: f32s(half)?,
            half_tmp: f32s(half)?,
            bytes: f32s(3 * n)?,
        })
    }
}

/// The model's input and output tensors on the device, and the frame they go back to.
pub(super) struct FrameTensors<'a> {
    pub input: u64,
    pub input_plan: Planar,
    pub output: u64,
    pub output_plan: Planar,
    pub frame: &'a mut CudaSlice<u8>,
    pub frame_plan: Packed,
    /// `planar_to_packed`, which writes the frame.
    pub to_packed: &'a CudaFunction,
}

/// Smoothing state and buffers on the device.
pub(super) struct DeviceSmoother {
    stream: Arc<CudaStream>,
    functions: Functions,
    /// The detail split's Gaussian taps, uploaded once.
    taps: CudaSlice<f32>,
    radius: i32,
    buffers: Option<Buffers>,
    /// The previous frame's grey image (motion is estimated on the host), when the device
    /// holds its output and reference.
    previous: Option<GreyImage>,
    epoch: Option<u64>,
}

impl DeviceSmoother {
    pub(super) fn new(module: &Arc<CudaModule>, stream: Arc<CudaStream>) -> Result<Self> {
        let f = |name: &str| module.load_function(name).map_err(cuda);
        let functions = Functions {
            planar_to_rgb8: f(sm::PLANAR_TO_RGB8)?,
            rgb8_to_planar: f(sm::RGB8_TO_PLANAR)?,
            grey_downscale: f(sm::GREY_DOWNSCALE)?,
            warp_cubic: f(sm::WARP_CUBIC)?,
            round_trip: f(sm::ROUND_TRIP)?,
            temporal_diff: f(sm::TEMPORAL_DIFF)?,
            temporal_blend: f(sm::TEMPORAL_BLEND)?,
            gauss_rows: f(sm::GAUSS_ROWS)?,
            gauss_cols: f(sm::GAUSS_COLS)?,
            detail_power: f(sm::DETAIL_POWER)?,
            half_means: f(sm::HALF_MEANS)?,
            upsample: f(sm::UPSAMPLE)?,
            box_rows: f(sm::BOX_ROWS)?,
            box_cols: f(sm::BOX_COLS)?,
            detail_gain: f(sm::DETAIL_GAIN)?,
        };
        let taps = sm::detail_taps();
        let radius = int(taps.len() / 2)?;
        let taps = stream.clone_htod(&taps).map_err(cuda)?;
        Ok(Self {
            stream,
            functions,
            taps,
            radius,
            buffers: None,
            previous: None,
            epoch: None,
        })
    }

    /// The smoothed frame's tail on the device: the model's input and output to 8-bit images,
    /// smoothing, and the output kernel into the frame. Returns the host↔device copies made
    /// (the grey image down, and the flows up when there is a previous frame).
    pub(super) fn finish_frame(&mut self, t: FrameTensors, smoothing: Smoothing) -> Result<u32> {
        let (w, h) = (
            t.input_plan.image_width as usize,
            t.input_plan.image_height as usize,
        );
        let sizes = Sizes::new(w, h);
        if self.buffers.as_ref().map(|b| b.sizes) != Some(sizes) {
            self.buffers = None;
            self.previous = None;
        }
        if self.epoch != Some(smoothing.epoch) {
            self.previous = None;
            self.epoch = Some(smoothing.epoch);
        }
        let stream = self.stream.clone();
        let b = match &mut self.buffers {
            Some(b) => b,
            empty => empty.insert(Buffers::new(&stream, sizes)?),
        };
        let f = &self.functions;
        let s = sizes.params(smoothing.stability)?;
        let image = grid(w, h);
        // SAFETY (every launch below): the arguments match the kernel's C signature in
        // `smoothing::CUDA_SOURCE`; every buffer was allocated for `sizes` (3 bytes or floats
        // per pixel, one per grey pixel, four planes of flow), and the tensors hold what
        // their plans say, which bound every index the kernels compute.
        unsafe {
            let mut l = stream.launch_builder(&f.planar_to_rgb8);
            l.arg(&t.input).arg(&t.input_plan).arg(&mut b.input);
            l.launch(image).map_err(cuda)?;
            let mut l = stream.launch_builder(&f.planar_to_rgb8);
            l.arg(&t.output).arg(&t.output_plan).arg(&mut b.styled);
            l.launch(image).map_err(cuda)?;
            let (wi, hi, factor) = (int(w)?, int(h)?, int(sizes.factor)?);
            let (gw, gh) = (int(sizes.grey_width)?, int(sizes.grey_height)?);
            let mut l = stream.launch_builder(&f.grey_downscale);
            l.arg(&b.input)
                .arg(&wi)
                .arg(&hi)
                .arg(&factor)
                .arg(&mut b.grey)
                .arg(&gw)
                .arg(&gh);
            l.launch(grid(sizes.grey_width, sizes.grey_height))
                .map_err(cuda)?;
        }
        let mut grey = vec![0f32; sizes.grey_pixels()];
        stream.memcpy_dtoh(&b.grey, &mut grey).map_err(cuda)?;
        stream.synchronize().map_err(cuda)?;
        let mut copies = 1;
        let grey = GreyImage {
            width: sizes.grey_width,
            height: sizes.grey_height,
            data: grey,
        };
        match self.previous.take() {
            Some(prev) => {
                let back = temporal::estimate_flow(&grey, &prev);
                let fwd = temporal::estimate_flow(&prev, &grey);
                let flows = sm::pack_flows(&back, &fwd, &sizes)?;
                stream.memcpy_htod(&flows, &mut b.flows).map_err(cuda)?;
                copies += 1;
                // SAFETY: as above.
                unsafe { smooth(&stream, f, b, &s, &self.taps, self.radius)? };
                std::mem::swap(&mut b.reference, &mut b.new_reference);
            }
            None => stream
                .memcpy_dtod(&b.input, &mut b.reference)
                .map_err(cuda)?,
        }
        stream.memcpy_dtod(&b.styled, &mut b.output).map_err(cuda)?;
        self.previous = Some(grey);

        let bytes_plan = Planar::new(Size::new(w, h), Size::new(w, h), 255.0)?;
        // SAFETY: as above; `bytes` holds the 3·w·h floats of `bytes_plan`, the frame the
        // `frame_plan.bytes()` that bound `planar_to_packed`'s writes.
        unsafe {
            let mut l = stream.launch_builder(&f.rgb8_to_planar);
            l.arg(&b.styled).arg(&bytes_plan).arg(&mut b.bytes);
            l.launch(image).map_err(cuda)?;
            let mut l = stream.launch_builder(t.to_packed);
            l.arg(&b.bytes)
                .arg(&bytes_plan)
                .arg(&mut *t.frame)
                .arg(&t.frame_plan);
            l.launch(grid(
                t.frame_plan.width as usize,
                t.frame_plan.height as usize,
            ))
            .map_err(cuda)?;
        }
        Ok(copies)
    }
}

/// Steps 3–5 of `smoothing`'s module comment: warp, round trip on the flow grid, diff, blend,
/// detail restoration (energy at half resolution) into `styled`, the new reference into
/// `new_reference`.
///
/// # Safety
/// The buffers of `b` must have been allocated for `s`'s sizes and `taps` hold
/// `2·radius + 1` floats.
unsafe fn smooth(
    stream: &CudaStream,
    f: &Functions,
    b: &mut Buffers,
    s: &Smooth,
    taps: &CudaSlice<f32>,
    radius: i32,
) -> Result<()> {
    let (w, h) = (b.sizes.width, b.sizes.height);
    let n = b.sizes.pixels();
    let (wi, hi, ni) = (int(w)?, int(h)?, int(n)?);
    let image = grid(w, h);
    let mut l = stream.launch_builder(&f.warp_cubic);
    l.arg(&b.reference)
        .arg(&b.output)
        .arg(&b.flows)
        .arg(s)
        .arg(&mut b.warped_ref)
        .arg(&mut b.warped_out);
    l.launch(image).map_err(cuda)?;
    let mut l = stream.launch_builder(&f.round_trip);
    l.arg(&b.flows).arg(s).arg(&mut b.round_trip);
    l.launch(grid(b.sizes.grey_width, b.sizes.grey_height))
        .map_err(cuda)?;
    let mut l = stream.launch_builder(&f.temporal_diff);
    l.arg(&b.warped_ref).arg(&b.input).arg(s).arg(&mut b.diff);
    l.launch(image).map_err(cuda)?;
    let mut l = stream.launch_builder(&f.temporal_blend);
    l.arg(&b.diff)
        .arg(&b.round_trip)
        .arg(&b.styled)
        .arg(&b.input)
        .arg(&b.warped_ref)
        .arg(&b.warped_out)
        .arg(s)
        .arg(&mut b.current)
        .arg(&mut b.blended)
        .arg(&mut b.new_reference);
    l.launch(image).map_err(cuda)?;

    // The boxes of the energy window over a one-channel `width`×`height` image in place.
    let at_half = b.sizes.energy_at_half();
    let radii = sm::energy_box_radii(at_half);
    let boxes = |img: &mut CudaSlice<f32>,
                 tmp: &mut CudaSlice<f32>,
                 width: usize,
                 height: usize|
     -> Result<()> {
        let (wi, hi) = (int(width)?, int(height)?);
        let band = int(temporal::params::BAND_ROWS)?;
        for r in radii {
            let r = int(r)?;
            let mut l = stream.launch_builder(&f.box_rows);
            l.arg(&*img).arg(&mut *tmp).arg(&wi).arg(&hi).arg(&r);
            l.launch(grid(height, 1)).map_err(cuda)?;
            let mut l = stream.launch_builder(&f.box_cols);
            l.arg(&*tmp)
                .arg(&mut *img)
                .arg(&wi)
                .arg(&hi)
                .arg(&r)
                .arg(&band);
            l.launch(grid(width, 1)).map_err(cuda)?;
        }
        Ok(())
    };
    let (hw, hh) = (b.sizes.half_width(), b.sizes.half_height());
    let (hwi, hhi) = (int(hw)?, int(hh)?);
    // Fine detail and its local energy of an image (the host's `base_and_energy`): base
    // and detail into `base`/`detail`, the energy into `energy`.
    let three = 3i32;
    let detail_and_energy = |img: &CudaSlice<f32>,
                             across: &mut CudaSlice<f32>,
                             base: &mut CudaSlice<f32>,
                             detail: &mut CudaSlice<f32>,
                             energy: &mut CudaSlice<f32>,
                             tmp: &mut CudaSlice<f32>,
                             half: &mut CudaSlice<f32>,
                             half_tmp: &mut CudaSlice<f32>|
     -> Result<()> {
        let mut l = stream.launch_builder(&f.gauss_rows);
        l.arg(img)
            .arg(&mut *across)
            .arg(&wi)
            .arg(&hi)
            .arg(&three)
            .arg(taps)
            .arg(&radius);
        l.launch(image).map_err(cuda)?;
        let mut l = stream.launch_builder(&f.gauss_cols);
        l.arg(&*across)
            .arg(&mut *base)
            .arg(&wi)
            .arg(&hi)
            .arg(&three)
            .arg(taps)
            .arg(&radius);
        l.launch(image).map_err(cuda)?;
        let mut l = stream.launch_builder(&f.detail_power);
        l.arg(img)
            .arg(&*base)
            .arg(&ni)
            .arg(&mut *detail)
            .arg(&mut *energy);
        l.launch(grid(n, 1)).map_err(cuda)?;
        // The power's local mean: at half resolution (2×2 means, boxes, bilinear back), or
        // at the full size when the image is small.
        if !at_half {
            return boxes(energy, tmp, w, h);
        }
        let mut l = stream.launch_builder(&f.half_means);
        l.arg(&*energy)
            .arg(&wi)
            .arg(&hi)
            .arg(&mut *half)
            .arg(&hwi)
            .arg(&hhi);
        l.launch(grid(hw, hh)).map_err(cuda)?;
        boxes(half, half_tmp, hw, hh)?;
        let mut l = stream.launch_builder(&f.upsample);
        l.arg(&*half)
            .arg(&hwi)
            .arg(&hhi)
            .arg(&mut *energy)
            .arg(&wi)
            .arg(&hi);
        l.launch(image).map_err(cuda)?;
        Ok(())
    };
    // This frame's own stylization: only its energy is kept (the target).
    detail_and_energy(
        &b.current,
        &mut b.across,
        &mut b.base,
        &mut b.detail,
        &mut b.target,
        &mut b.tmp,
        &mut b.half,
        &mut b.half_tmp,
    )?;
    detail_and_energy(
        &b.blended,
        &mut b.across,
        &mut b.base,
        &mut b.detail,
        &mut b.energy,
        &mut b.tmp,
        &mut b.half,
        &mut b.half_tmp,
    )?;
    let mut l = stream.launch_builder(&f.detail_gain);
    l.arg(&b.base)
        .arg(&b.detail)
        .arg(&b.energy)
        .arg(&b.target)
        .arg(s)
        .arg(&mut b.styled);
    l.launch(image).map_err(cuda)?;
    Ok(())
}
