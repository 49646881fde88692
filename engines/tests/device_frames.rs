//! The stylizer's device-resident frame path, with a stand-in device that runs the kernels'
//! CPU mirrors (`kernels::device_frame_on_cpu`, and with smoothing
//! `smoothing::stylize_smoothed_frame_on_cpu`): which frames take it, what it reports, and
//! that its output matches the host path. The CUDA version is checked in `gpu.rs`.

use std::path::PathBuf;

use stylize_engines::backend::kernels::{self, FramePlan};
use stylize_engines::backend::smoothing::{self, SmootherOnCpu, Smoothing};
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
    smoother: SmootherOnCpu,
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
            smoother: SmootherOnCpu::default(),
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
    fn run_frame(
        &mut self,
        data: &mut [u8],
        plan: &FramePlan,
        conditioning: &[f32],
        smoothing: Option<Smoothing>,
    ) -> Result<Timings> {
        self.device_frames += 1;
        let mut smoother = std::mem::take(&mut self.smoother);
        let model = |t: &Tensor| self.run(t, conditioning);
        match smoothing {
            None => kernels::device_frame_on_cpu(data, plan, model)?,
            Some(s) => {
                smoothing::stylize_smoothed_frame_on_cpu(data, plan, &mut smoother, s, model)?
            }
        }
        self.smoother = smoother;
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
fn a_strength_blend_keeps_frames_on_the_host_and_smoothing_does_not() {
    let mut stylizer = Invert::stylizer(true);
    let frame = |stylizer: &mut Stylizer| {
        stylizer
            .stylize_frame(&mut picture(), &layout(), &half(), &[])
            .unwrap()
            .host_copies
    };
    stylizer.set_stability(0.5);
    assert_eq!(frame(&mut stylizer), 2, "smoothing runs on the device");
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

/// The picture moved by `i` pixels right and half as many down, with a square moving the
/// other way: motion for the smoothing to follow, occlusions for it to refuse.
fn moving_picture(i: usize) -> Vec<u8> {
    let l = layout();
    let mut data = picture();
    for y in 0..H {
        for x in 0..W {
            let (sx, sy) = ((x + W - i % W) % W, (y + H - (i / 2) % H) % H);
            let texture = ((sx * 13 + sy * 7) % 17) as u8 * 3;
            let square = (x + 2 * i) % W < 12 && (10..22).contains(&y);
            let px = &mut data[y * l.stride + x * 4..][..3];
            px[0] = (sx * 255 / W) as u8 / 2 + texture;
            px[1] = (sy * 255 / H) as u8 / 2 + texture;
            px[2] = if square { 250 } else { 90 + texture };
        }
    }
    data
}

#[test]
fn smoothed_frames_on_the_device_match_the_host_path() {
    for size in [InferenceSize::default(), half()] {
        let (mut on_device, mut on_host) = (Invert::stylizer(true), Invert::stylizer(false));
        let mut plain = Invert::stylizer(true);
        for s in [&mut on_device, &mut on_host] {
            s.set_stability(0.7);
        }
        for i in 0..5 {
            let (mut device, mut host, mut unsmoothed) =
                (moving_picture(i), moving_picture(i), moving_picture(i));
            let t = on_device
                .stylize_frame(&mut device, &layout(), &size, &[])
                .unwrap();
            assert_eq!(
                t.host_copies, 2,
                "the stand-in reports the frame's two copies"
            );
            on_host
                .stylize_frame(&mut host, &layout(), &size, &[])
                .unwrap();
            plain
                .stylize_frame(&mut unsmoothed, &layout(), &size, &[])
                .unwrap();
            let diffs: Vec<u8> = device
                .iter()
                .zip(&host)
                .map(|(a, b)| a.abs_diff(*b))
                .collect();
            let worst = *diffs.iter().max().unwrap();
            let mean = diffs.iter().map(|d| f64::from(*d)).sum::<f64>() / diffs.len() as f64;
            if size == InferenceSize::default() {
                // Same size: every step is exact, the smoothing bit for bit the host filter.
                assert_eq!(worst, 0, "frame {i}");
            } else {
                // Half size: the resized input differs from the host's by up to a level, and
                // the motion estimated on it (and so what is carried where) a little.
                let mut sorted = diffs.clone();
                sorted.sort_unstable();
                let p99 = sorted[sorted.len() * 99 / 100];
                eprintln!("half size, frame {i}: mean {mean:.3}, p99 {p99}, worst {worst}");
                assert!(mean < 1.0 && p99 <= 6, "frame {i}: mean {mean}, p99 {p99}");
            }
            if i > 0 {
                assert_ne!(device, unsmoothed, "{size:?} frame {i} smoothed");
            }
        }
    }
}

#[test]
fn a_frame_on_the_host_path_restarts_the_device_smoothing() {
    let mut stylizer = Invert::stylizer(true);
    let mut plain = Invert::stylizer(true);
    stylizer.set_stability(0.7);
    let size = InferenceSize::default();
    let run = |s: &mut Stylizer, i: usize| {
        let mut frame = moving_picture(i);
        s.stylize_frame(&mut frame, &layout(), &size, &[]).unwrap();
        frame
    };
    run(&mut stylizer, 0);
    assert_ne!(
        run(&mut stylizer, 1),
        run(&mut plain, 1),
        "smoothed on the device"
    );
    stylizer.set_strength(0.5).unwrap();
    run(&mut stylizer, 2); // on the host
    stylizer.set_strength(1.0).unwrap();
    assert_eq!(
        run(&mut stylizer, 3),
        run(&mut plain, 3),
        "the first device frame after the host path is not smoothed against a stale frame"
    );
    assert_ne!(
        run(&mut stylizer, 4),
        run(&mut plain, 4),
        "then smoothing goes on"
    );
}
