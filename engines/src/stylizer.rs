//! The per-frame pipeline: frame → (resize) → tensor → backend → tensor → (resize) → frame.

use std::path::Path;
use std::time::Instant;

use fast_image_resize as fr;

use crate::backend::kernels::FramePlan;
use crate::backend::smoothing::Smoothing;
use crate::backend::{self, Backend, BackendOptions};
use crate::error::{Error, Result};
use crate::frame::{self, FrameLayout, RgbImage};
use crate::frame_path::FramePath;
use crate::limits;
use crate::model::{Family, ModelInfo};
use crate::predictor::{self, StylePredictor};
use crate::size::Size;
use crate::temporal::TemporalFilter;
use crate::tensor::Tensor;
pub use crate::timings::Timings;

/// How large the network sees each frame, independent of the output size: a full-size style
/// net costs ~0.5 s at 640×360 on two cores, so downscale-infer-upscale is what makes live
/// video possible on a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InferenceSize {
    /// Explicit size; 0 in one dimension keeps the frame's aspect ratio.
    pub width: usize,
    pub height: usize,
    /// Used when neither width nor height is set: fraction of the frame size.
    pub scale: f64,
}

impl InferenceSize {
    /// Inference (width, height) for a frame; at least 8 pixels each way.
    pub fn resolve(&self, frame_width: usize, frame_height: usize) -> (usize, usize) {
        let aspect = frame_width as f64 / frame_height as f64;
        let (w, h) = match (self.width, self.height) {
            (0, 0) => {
                let s = if self.scale > 0.0 { self.scale } else { 1.0 };
                (
                    (frame_width as f64 * s).round() as usize,
                    (frame_height as f64 * s).round() as usize,
                )
            }
            (w, 0) => (w, (w as f64 / aspect).round() as usize),
            (0, h) => ((h as f64 * aspect).round() as usize, h),
            (w, h) => (w, h),
        };
        (w.max(8), h.max(8))
    }

    /// [`Self::resolve`], refusing a frame or an inference size past [`crate::limits`]
    /// before anything is allocated for it.
    pub fn resolve_checked(
        &self,
        frame_width: usize,
        frame_height: usize,
    ) -> Result<(usize, usize)> {
        limits::check_frame_size(frame_width, frame_height)?;
        let (w, h) = self.resolve(frame_width, frame_height);
        limits::check_inference_size(w, h)?;
        Ok((w, h))
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

pub struct Stylizer {
    backend: Box<dyn Backend>,
    resizer: fr::Resizer,
    /// Buffers of the packed-frame path, kept across frames.
    path: FramePath,
    predictor: Option<StylePredictor>,
    /// 1 = full style. Below 1 an arbitrary-style embedding is interpolated toward the frame's
    /// own embedding (Ghiasi et al.); other families blend the output with the input pixels.
    strength: f32,
    /// Output smoothing across frames; off (stability 0) unless set.
    temporal: TemporalFilter,
    /// Why this backend runs (`auto`'s choice), when loaded by [`Stylizer::load`].
    backend_reason: String,
    /// Changes whenever the device path must forget its previous frame (see
    /// [`Smoothing::epoch`]).
    smoothing_epoch: u64,
    /// Whether the last frame took the device path: smoothing state is kept on one side
    /// only, so switching sides starts it afresh.
    last_on_device: Option<bool>,
}

impl Stylizer {
    pub fn new(backend: Box<dyn Backend>) -> Self {
        Self {
            backend,
            resizer: fr::Resizer::new(),
            path: FramePath::default(),
            predictor: None,
            strength: 1.0,
            temporal: TemporalFilter::new(0.0),
            backend_reason: String::new(),
            smoothing_epoch: 0,
            last_on_device: None,
        }
    }

    /// Give an arbitrary-style model its style predictor (for style images and strength).
    pub fn attach_predictor(&mut self, predictor: StylePredictor) -> Result<()> {
        let (want, got) = (self.info().conditioning_len, predictor.info().embedding_len);
        if self.info().family != Family::Arbitrary || want != got {
            return Err(Error::Contract {
                path: predictor.info().path.clone(),
                tensor: "output `style_embedding`".into(),
                expected: format!("[1,{want}] for {}", self.info().path.display()),
                actual: format!("[1,{got}]"),
            });
        }
        self.predictor = Some(predictor);
        Ok(())
    }

    pub fn predictor_mut(&mut self) -> Option<&mut StylePredictor> {
        self.predictor.as_mut()
    }

    /// Style strength in 0..=1; below 1 an arbitrary-style model needs a predictor.
    pub fn set_strength(&mut self, strength: f32) -> Result<()> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(Error::BadSetting {
                setting: format!("style strength {strength}"),
                reason: "it must be between 0 and 1".into(),
            });
        }
        if strength < 1.0 && self.info().family == Family::Arbitrary && self.predictor.is_none() {
            return Err(Error::PredictorMissing {
                needed: format!("style strength {strength} (below 1)"),
                model: self.info().path.clone(),
            });
        }
        self.strength = strength;
        Ok(())
    }

    /// Load a model on the backend the options ask for (`auto`: the best that loads).
    pub fn load(path: &Path, options: &BackendOptions) -> Result<Self> {
        let (backend, choice) = backend::load_chosen(path, options)?;
        let mut stylizer = Self::new(backend);
        stylizer.backend_reason = choice.reason;
        // The frame path and the filter run between two inferences, on the network's cores.
        stylizer.temporal.set_threads(options.threads);
        stylizer.path.set_threads(options.threads);
        Ok(stylizer)
    }

    pub fn info(&self) -> &ModelInfo {
        self.backend.info()
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Why the backend runs: "requested", or what `auto` found (e.g. "auto: libcuda.so.1 (the
    /// NVIDIA driver) could not be loaded: ..."); empty for a backend given to [`Stylizer::new`].
    pub fn backend_reason(&self) -> &str {
        &self.backend_reason
    }

    /// `cpu (auto: ...)`: the backend and why, for logs and the command line.
    pub fn backend_summary(&self) -> String {
        if self.backend_reason.is_empty() {
            self.backend_name().to_string()
        } else {
            format!("{} ({})", self.backend_name(), self.backend_reason)
        }
    }

    /// Temporal stability, 0 (off) to 1: see [`crate::temporal`]. Takes effect on the next
    /// frame; turning it off forgets the previous frame.
    pub fn set_stability(&mut self, stability: f64) {
        self.temporal.set_stability(stability);
        if !self.temporal.enabled() {
            self.smoothing_epoch += 1;
        }
    }

    pub fn stability(&self) -> f64 {
        self.temporal.stability()
    }

    /// Forget the previous frame (seek, flush, new caps): the next frame is not smoothed.
    pub fn reset_temporal(&mut self) {
        self.temporal.reset();
        self.smoothing_epoch += 1;
    }

    /// Padded tensor size for an inference size: the model's fixed size if it has one,
    /// else rounded up to its size multiple.
    fn padded_size(&self, width: usize, height: usize) -> Result<Size> {
        let info = self.info();
        let asked = Size::new(width, height);
        match info.fixed_size {
            Some(fixed) if fixed != asked => Err(Error::Frame(format!(
                "model {} takes only {fixed} input, asked for {asked}",
                info.path.display()
            ))),
            Some(fixed) => Ok(fixed),
            None => Ok(Size::new(
                frame::round_up(width, info.size_multiple),
                frame::round_up(height, info.size_multiple),
            )),
        }
    }

    /// Run the model on a planar tensor of any size: pad to the model's multiple, crop back.
    pub fn run_tensor(&mut self, content: &Tensor, conditioning: &[f32]) -> Result<Tensor> {
        let padded = self.padded_size(content.width, content.height)?;
        let size = Size::new(content.width, content.height);
        let output = if padded == size {
            self.backend.run(content, conditioning)?
        } else {
            self.backend
                .run(&frame::pad_tensor(content, padded), conditioning)?
        };
        frame::crop_tensor(&output, size)
    }

    /// The backend alone on a ready tensor (padded to the model's multiple) into a kept
    /// output: what ONNX Runtime's `session.run` does, for benchmarks.
    pub fn run_network(
        &mut self,
        content: &Tensor,
        conditioning: &[f32],
        out: &mut Tensor,
    ) -> Result<()> {
        self.backend.run_into(content, conditioning, out)
    }

    /// Stylize an RGB image at the given inference size; the result has the input's size.
    pub fn stylize_image(
        &mut self,
        img: &RgbImage,
        inference: (usize, usize),
        conditioning: &[f32],
    ) -> Result<(RgbImage, Timings)> {
        let mut timings = Timings::default();
        let start = Instant::now();
        let (iw, ih) = inference;
        limits::check_inference_size(iw, ih)?;
        let small = frame::resize_rgb(&mut self.resizer, img, iw, ih)?;
        let scale = self.info().input_range.scale();
        let padded = self.padded_size(iw, ih)?;
        let content = frame::image_to_tensor(&small, padded, scale);
        timings.convert_in_ms = ms_since(start);

        let start = Instant::now();
        let mixed;
        let conditioning = match (self.strength < 1.0, self.predictor.as_mut()) {
            (true, Some(predictor)) => {
                let own = predictor.embed(img)?;
                mixed = predictor::lerp(conditioning, &own, self.strength);
                &mixed
            }
            _ => conditioning,
        };
        let output = self.backend.run(&content, conditioning)?;
        timings.infer_ms = ms_since(start);
        timings.host_copies = self.backend.host_copies();

        let start = Instant::now();
        let mut styled = frame::tensor_to_image(&output, Size::new(iw, ih), scale)?;
        timings.convert_out_ms = ms_since(start);

        // Smoothing runs at the inference size: motion and textures are the net's, and it
        // costs a fraction of what it would at the frame size.
        if self.temporal.enabled() {
            let start = Instant::now();
            self.temporal.apply(&small, &mut styled);
            timings.temporal_ms = ms_since(start);
        }

        let start = Instant::now();
        let mut out = frame::resize_rgb(&mut self.resizer, &styled, img.width, img.height)?;
        if self.strength < 1.0 && self.predictor.is_none() {
            let s = self.strength;
            for (o, i) in out.data.iter_mut().zip(&img.data) {
                *o = (s * f32::from(*o) + (1.0 - s) * f32::from(*i)).round() as u8;
            }
        }
        timings.convert_out_ms += ms_since(start);
        Ok((out, timings))
    }

    /// Stylize a packed video frame in place.
    pub fn stylize_frame(
        &mut self,
        data: &mut [u8],
        layout: &FrameLayout,
        size: &InferenceSize,
        conditioning: &[f32],
    ) -> Result<Timings> {
        let inference = size.resolve_checked(layout.width, layout.height)?;
        if let Some(timings) = self.stylize_on_device(data, layout, inference, conditioning)? {
            return Ok(timings);
        }
        if self.strength < 1.0 && self.predictor.is_some() {
            // The frame's own style embedding needs the whole picture: the composed path.
            return self.stylize_frame_via_image(data, layout, inference, conditioning);
        }
        let mut timings = Timings::default();
        let start = Instant::now();
        let scale = self.info().input_range.scale();
        let padded = self.padded_size(inference.0, inference.1)?;
        self.path.read_small(data, layout, inference)?;
        self.path.small_to_content(padded, scale);
        timings.convert_in_ms = ms_since(start);

        let start = Instant::now();
        self.backend
            .run_into(&self.path.content, conditioning, &mut self.path.output)?;
        timings.infer_ms = ms_since(start);
        timings.host_copies = self.backend.host_copies();

        let start = Instant::now();
        self.path.output_to_styled(inference, scale)?;
        timings.convert_out_ms = ms_since(start);
        // Smoothing runs at the inference size (see `stylize_image`).
        if self.temporal.enabled() {
            let start = Instant::now();
            self.temporal.apply(&self.path.small, &mut self.path.styled);
            timings.temporal_ms = ms_since(start);
        }
        let start = Instant::now();
        self.path.write_styled(data, layout, self.strength)?;
        timings.convert_out_ms += ms_since(start);
        Ok(timings)
    }

    /// A packed frame through [`Stylizer::stylize_image`].
    fn stylize_frame_via_image(
        &mut self,
        data: &mut [u8],
        layout: &FrameLayout,
        inference: (usize, usize),
        conditioning: &[f32],
    ) -> Result<Timings> {
        let start = Instant::now();
        let img = frame::read_rgb(data, layout)?;
        let read_ms = ms_since(start);
        let (out, mut timings) = self.stylize_image(&img, inference, conditioning)?;
        let start = Instant::now();
        frame::write_rgb(&out, data, layout)?;
        timings.convert_in_ms += read_ms;
        timings.convert_out_ms += ms_since(start);
        Ok(timings)
    }

    /// The device-resident path of a GPU backend, with temporal smoothing there too, or
    /// `None` for the host path. The strength blend works on host images, so it keeps the
    /// host path.
    fn stylize_on_device(
        &mut self,
        data: &mut [u8],
        layout: &FrameLayout,
        inference: (usize, usize),
        conditioning: &[f32],
    ) -> Result<Option<Timings>> {
        let on_device = self.strength >= 1.0 && self.backend.device_frames().is_some();
        if self.last_on_device == Some(!on_device) {
            // The previous frame's smoothing state is on the other side.
            self.reset_temporal();
        }
        self.last_on_device = Some(on_device);
        if !on_device {
            return Ok(None);
        }
        let padded = self.padded_size(inference.0, inference.1)?;
        let scale = self.info().input_range.scale();
        let inference = Size::new(inference.0, inference.1);
        let plan = FramePlan::new(layout, inference, padded, scale)?;
        let smoothing = self.temporal.enabled().then(|| Smoothing {
            stability: self.temporal.stability() as f32,
            epoch: self.smoothing_epoch,
        });
        let Some(device) = self.backend.device_frames() else {
            return Ok(None);
        };
        device
            .run_frame(data, &plan, conditioning, smoothing)
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Family, InputRange};
    use std::path::PathBuf;

    /// A backend that inverts its input, so the pipeline around it is testable without a model.
    struct Invert(ModelInfo);

    impl Backend for Invert {
        fn name(&self) -> &'static str {
            "invert"
        }
        fn info(&self) -> &ModelInfo {
            &self.0
        }
        fn run(&mut self, content: &Tensor, _: &[f32]) -> Result<Tensor> {
            assert_eq!(content.height % self.0.size_multiple, 0);
            assert_eq!(content.width % self.0.size_multiple, 0);
            let s = self.0.input_range.scale();
            Ok(Tensor {
                data: content.data.iter().map(|v| s - v).collect(),
                ..content.clone()
            })
        }
    }

    fn invert(range: InputRange) -> Stylizer {
        Stylizer::new(Box::new(Invert(ModelInfo {
            path: PathBuf::from("invert"),
            family: Family::PerStyle,
            input_range: range,
            size_multiple: 4,
            fixed_size: None,
            styles: vec![],
            conditioning_len: 0,
        })))
    }

    #[test]
    fn inference_size_rules() {
        let s = InferenceSize {
            width: 320,
            height: 0,
            scale: 1.0,
        };
        assert_eq!(s.resolve(1280, 720), (320, 180));
        let s = InferenceSize {
            width: 0,
            height: 0,
            scale: 0.5,
        };
        assert_eq!(s.resolve(1280, 720), (640, 360));
        assert_eq!(InferenceSize::default().resolve(1280, 720), (1280, 720));
        let s = InferenceSize {
            width: 0,
            height: 90,
            scale: 1.0,
        };
        assert_eq!(s.resolve(1280, 720), (160, 90));
    }

    #[test]
    fn sizes_past_the_limits_are_refused_before_allocating() {
        // inference-width=8192 on a 320x240 stream: 8192x6144 would take tens of GB.
        let wide = InferenceSize {
            width: 8192,
            height: 0,
            scale: 1.0,
        };
        let err = wide.resolve_checked(320, 240).unwrap_err().to_string();
        assert!(
            err.contains("inference size 8192x6144 is past the limit"),
            "{err}"
        );
        let scaled = InferenceSize {
            width: 0,
            height: 0,
            scale: 4.0,
        };
        assert!(scaled.resolve_checked(640, 480).is_ok());
        assert!(scaled.resolve_checked(3840, 2160).is_err());
        assert!(InferenceSize::default()
            .resolve_checked(7681, 4320)
            .is_err());
        let mut st = invert(InputRange::Unit);
        let layout = FrameLayout {
            format: crate::frame::PixelFormat::Rgbx,
            width: 32,
            height: 24,
            stride: 32 * 4,
        };
        let mut data = vec![0u8; 32 * 24 * 4];
        let err = st
            .stylize_frame(&mut data, &layout, &wide, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("past the limit"), "{err}");
        let img = RgbImage::new(4, 4);
        assert!(st.stylize_image(&img, (9000, 9000), &[]).is_err());
    }

    #[test]
    fn frame_pipeline_pads_runs_and_writes_back_in_both_ranges() {
        for range in [InputRange::Unit, InputRange::Byte] {
            let mut st = invert(range);
            let (w, h) = (11, 9); // not multiples of 4: padding and cropping are exercised
            let layout = FrameLayout {
                format: crate::frame::PixelFormat::Bgrx,
                width: w,
                height: h,
                stride: w * 4,
            };
            let orig: Vec<u8> = (0..w * h * 4).map(|i| (i * 13 % 256) as u8).collect();
            let mut data = orig.clone();
            st.stylize_frame(&mut data, &layout, &InferenceSize::default(), &[])
                .unwrap();
            for (i, (a, b)) in orig.iter().zip(&data).enumerate() {
                if i % 4 == 3 {
                    assert_eq!(a, b, "x byte kept");
                } else {
                    assert_eq!(255 - a, *b, "byte {i} inverted");
                }
            }
        }
    }

    #[test]
    fn run_tensor_crops_back_to_input_size() {
        let mut st = invert(InputRange::Unit);
        let t = Tensor {
            channels: 3,
            height: 5,
            width: 6,
            data: (0..90).map(|v| v as f32 / 90.0).collect(),
        };
        let out = st.run_tensor(&t, &[]).unwrap();
        assert_eq!(out.shape(), [1, 3, 5, 6]);
        assert!((out.data[10] - (1.0 - 10.0 / 90.0)).abs() < 1e-6);
    }
}
