//! The stylizer's device-resident frame path, with a stand-in device that runs the kernels'
//! CPU mirrors (`kernels::stylize_frame_on_cpu`): which frames take it, what it reports, and
//! that its output matches the host path. The CUDA version is checked in `gpu.rs`.

use std::path::PathBuf;

use stylize_engines::backend::kernels::{self, FramePlan};
use stylize_engines::backend::{Backend, DeviceFrames};
use stylize_engines::frame::{FrameLayout, PixelFormat};
use stylize_engines::model::{Family, InputRange, ModelInfo};
use stylize_engines::tensor::Tensor;
use stylize_engines::{InferenceSize, Result, Stylizer, Timings};

/// Inverts its input; with `device` set it also offers the device path.
struct Invert {
    info: ModelInfo,
    device: bool,
    device_frames: usize,
}

impl Invert {
    fn stylizer(device: bool) -> Stylizer {
        Stylizer::new(Box::new(Self {
            info: ModelInfo {
                path: PathBuf::from("invert"),
                family: Family::PerStyle,
                input_range: InputRange::Byte,
                size_multiple: 4,
                fixed_size: None,
                styles: vec![],
                conditioning_len: 0,
            },
            device,
            device_frames: 0,
        }))
    }
}

impl Backend for Invert {
    fn name(&self) -> &'static str {
        "invert"
    }

    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn run(&mut self, content: &Tensor, _: &[f32]) -> Result<Tensor> {
        Ok(Tensor {
            data: content.data.iter().map(|v| 255.0 - v).collect(),
            ..content.clone()
        })
    }

    fn device_frames(&mut self) -> Option<&mut dyn DeviceFrames> {
        if self.device {
            Some(self)
        } else {
            None
        }
    }
}

impl DeviceFrames for Invert {
    fn stylize_frame(
        &mut self,
        data: &mut [u8],
        plan: &FramePlan,
        conditioning: &[f32],
    ) -> Result<Timings> {
        self.device_frames += 1;
        kernels::stylize_frame_on_cpu(data, plan, |t| self.run(t, conditioning))?;
        Ok(Timings {
            host_copies: 2,
            ..Timings::default()
        })
    }
}

const W: usize = 64;
const H: usize = 40;

fn layout() -> FrameLayout {
    FrameLayout {
        format: PixelFormat::Bgra,
        width: W,
        height: H,
        stride: W * 4 + 8,
    }
}

/// Smooth colour ramps (the resizers agree within a level on them) and a distinct alpha.
fn picture() -> Vec<u8> {
    let l = layout();
    let mut data = vec![0u8; l.stride * H];
    for y in 0..H {
        for x in 0..W {
            let px = &mut data[y * l.stride + x * 4..][..4];
            px.copy_from_slice(&[
                (x * 255 / W) as u8,
                (y * 255 / H) as u8,
                (100 + (x + y) % 50) as u8,
                (x * 7 + y) as u8,
            ]);
        }
    }
    data
}

fn half() -> InferenceSize {
    InferenceSize {
        scale: 0.5,
        ..InferenceSize::default()
    }
}

#[test]
fn without_smoothing_frames_take_the_device_path_and_match_the_host_path() {
    for size in [InferenceSize::default(), half()] {
        let (mut on_device, mut on_host) = (Invert::stylizer(true), Invert::stylizer(false));
        let (mut device, mut host) = (picture(), picture());
        let t = on_device
            .stylize_frame(&mut device, &layout(), &size, &[])
            .unwrap();
        assert_eq!(t.host_copies, 2, "reported by the device path");
        let t = on_host
            .stylize_frame(&mut host, &layout(), &size, &[])
            .unwrap();
        assert_eq!(t.host_copies, 0, "host path of a CPU backend");
        assert_ne!(device, picture(), "stylized");
        let worst = device
            .iter()
            .zip(&host)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        // Same size: exact. Half size: two resizes, each within a level of the host's.
        let allowed = if size == half() { 2 } else { 0 };
        assert!(worst <= allowed, "{size:?}: worst byte difference {worst}");
        for (i, (a, b)) in device.iter().zip(picture()).enumerate() {
            let col = i % layout().stride;
            if col >= W * 4 || col % 4 == 3 {
                assert_eq!(*a, b, "byte {i} (alpha or row padding) kept");
            }
        }
    }
}

#[test]
fn smoothing_or_a_strength_blend_keep_frames_on_the_host() {
    let mut stylizer = Invert::stylizer(true);
    let frame = |stylizer: &mut Stylizer| {
        stylizer
            .stylize_frame(&mut picture(), &layout(), &half(), &[])
            .unwrap()
            .host_copies
    };
    stylizer.set_stability(0.5);
    assert_eq!(frame(&mut stylizer), 0, "smoothing needs host images");
    stylizer.set_stability(0.0);
    stylizer.set_strength(0.5).unwrap();
    assert_eq!(
        frame(&mut stylizer),
        0,
        "the strength blend needs host images"
    );
    stylizer.set_strength(1.0).unwrap();
    assert_eq!(frame(&mut stylizer), 2, "back on the device");
}
