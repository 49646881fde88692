//! GPU checks (feature `tensorrt`): TensorRT and CUDA against the CPU backend, the TensorRT
//! engine cache, and device-resident frames against the host path.
//!
//! They need an NVIDIA GPU and the libraries of scripts/setup-gpu, so they run only with
//! `STYLIZE_GPU_TESTS=1` (scripts/gpu-check sets it); without it each test returns at once
//! with a note. With it set, anything missing (GPU, libraries, models) fails the test.
//!
//! ```sh
//! STYLIZE_GPU_TESTS=1 ORT_DYLIB_PATH=assets/gpu/lib/libonnxruntime.so \
//!   LD_LIBRARY_PATH=assets/gpu/lib cargo test --release -p stylize-engines \
//!   --features tensorrt --test gpu -- --nocapture
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use stylize_engines::backend::{self, engine_cache, gpu, BackendKind, BackendOptions};
use stylize_engines::frame::{self, FrameLayout, PixelFormat, RgbImage};
use stylize_engines::model::{Family, ModelInfo};
use stylize_engines::tensor::Tensor;
use stylize_engines::{InferenceSize, Stylizer};

/// fp16 engines against the fp32 CPU, as fractions of the model's value range.
const MEAN_TOLERANCE: f32 = 0.01;
const P99_TOLERANCE: f32 = 0.05;

fn enabled(test: &str) -> bool {
    if std::env::var_os("STYLIZE_GPU_TESTS").is_some_and(|v| v == "1") {
        return true;
    }
    eprintln!("{test}: skipped (set STYLIZE_GPU_TESTS=1 on a machine with an NVIDIA GPU)");
    false
}

fn model(name: &str) -> PathBuf {
    let path = stylize_engines::runtime::assets_dir()
        .join("models")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup",
        path.display()
    );
    path
}

/// The CIN net and a per-style net (one CIN style frozen in).
fn models() -> [PathBuf; 2] {
    [model("multistyle26.onnx"), model("mosaic.onnx")]
}

/// A fresh engine cache folder per test and model, so builds are observed from cold.
fn fresh_cache(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stylize-gpu-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options(kind: BackendKind, cache: Option<&Path>) -> BackendOptions {
    BackendOptions {
        kind,
        engine_cache: cache.map(Path::to_path_buf),
        ..BackendOptions::default()
    }
}

/// Deterministic picture with gradients and texture, so the net does realistic work.
fn picture(width: usize, height: usize) -> RgbImage {
    let mut img = RgbImage::new(width, height);
    for (i, px) in img.data.chunks_exact_mut(3).enumerate() {
        let (x, y) = (i % width, i / width);
        let texture = (x * 7 + y * 13) % 41;
        px[0] = ((x * 191 / width + texture) % 256) as u8;
        px[1] = ((y * 191 / height + texture) % 256) as u8;
        px[2] = (((x + y) * 127 / (width + height) + texture * 2) % 256) as u8;
    }
    img
}

fn content(info: &ModelInfo, width: usize, height: usize) -> Tensor {
    let padded = stylize_engines::Size::new(
        frame::round_up(width, info.size_multiple),
        frame::round_up(height, info.size_multiple),
    );
    frame::image_to_tensor(&picture(width, height), padded, info.input_range.scale())
}

/// A blend of two styles for a CIN net, nothing for a per-style one.
fn conditioning(info: &ModelInfo) -> Vec<f32> {
    let mut weights = vec![0.0; info.conditioning_len];
    if info.family == Family::Cin {
        weights[3] = 0.7;
        weights[11] = 0.3;
    }
    weights
}

/// Mean and 99th percentile of a set of differences.
fn spread(mut d: Vec<f32>) -> (f32, f32) {
    assert!(!d.is_empty());
    let mean = d.iter().sum::<f32>() / d.len() as f32;
    d.sort_by(f32::total_cmp);
    (mean, d[d.len() * 99 / 100])
}

/// Mean and p99 of |got − reference| as fractions of the model's value range.
fn assert_close(what: &str, got: &Run, reference: &Run) {
    let (got, range) = (&got.output, reference.range);
    let reference = &reference.output;
    assert_eq!(got.shape(), reference.shape(), "{what}");
    let (mean, p99) = spread(
        got.data
            .iter()
            .zip(&reference.data)
            .map(|(a, b)| (a - b).abs() / range)
            .collect(),
    );
    eprintln!("{what}: mean {mean:.5}, p99 {p99:.5} of the range");
    assert!(
        mean <= MEAN_TOLERANCE && p99 <= P99_TOLERANCE,
        "{what}: mean {mean} (max {MEAN_TOLERANCE}), p99 {p99} (max {P99_TOLERANCE})"
    );
}

/// One model run on the 1280×720 picture.
struct Run {
    output: Tensor,
    /// The model's value range (1 or 255).
    range: f32,
    /// Load and run, in seconds.
    seconds: f64,
}

fn run_720p(path: &Path, options: &BackendOptions) -> Run {
    let start = Instant::now();
    let fail =
        |e: stylize_engines::Error| -> ! { panic!("{} on {}: {e}", options.kind, path.display()) };
    let mut b = backend::load(path, options).unwrap_or_else(|e| fail(e));
    let info = b.info().clone();
    let output = b
        .run(&content(&info, 1280, 720), &conditioning(&info))
        .unwrap_or_else(|e| fail(e));
    Run {
        output,
        range: info.input_range.scale(),
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn files(dir: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.insert(path);
            }
        }
    }
    found
}

#[test]
fn cuda_matches_the_cpu_at_720p() {
    if !enabled("cuda_matches_the_cpu_at_720p") {
        return;
    }
    for path in models() {
        let reference = run_720p(&path, &options(BackendKind::Cpu, None));
        let cuda = run_720p(&path, &options(BackendKind::Cuda, None));
        assert_close(&format!("cuda {}", path.display()), &cuda, &reference);
    }
}

#[test]
fn tensorrt_matches_the_cpu_and_reuses_its_engine_cache() {
    if !enabled("tensorrt_matches_the_cpu_and_reuses_its_engine_cache") {
        return;
    }
    for path in models() {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let cache = fresh_cache(&format!("cache-{name}"));
        let opts = options(BackendKind::TensorRt, Some(&cache));
        let engine_dir = gpu::engine_dir(&path, &opts).unwrap();
        assert!(engine_cache::is_cold(&engine_dir));
        assert!(backend::engine_build_pending(&path, &opts), "cold cache");

        let first = run_720p(&path, &opts);
        let built = files(&cache);
        assert!(
            !engine_cache::is_cold(&engine_dir),
            "engine written: {built:?}"
        );
        assert!(!backend::engine_build_pending(&path, &opts), "warm cache");

        let second = run_720p(&path, &opts);
        assert_eq!(files(&cache), built, "a second start creates no new files");
        let (build_s, cached_s) = (first.seconds, second.seconds);
        eprintln!("tensorrt {name}: first start {build_s:.1} s, second {cached_s:.1} s");
        assert!(
            cached_s < build_s,
            "second start ({cached_s:.1} s) not faster than the build ({build_s:.1} s)"
        );

        let reference = run_720p(&path, &options(BackendKind::Cpu, None));
        assert_close(&format!("tensorrt {name}"), &first, &reference);
        assert_close(&format!("tensorrt {name} (cached)"), &second, &reference);
        std::fs::remove_dir_all(&cache).unwrap();
    }
}

fn rgba(img: &RgbImage) -> (Vec<u8>, FrameLayout) {
    let layout = FrameLayout {
        format: PixelFormat::Rgba,
        width: img.width,
        height: img.height,
        stride: img.width * 4,
    };
    let data = img
        .data
        .chunks_exact(3)
        .enumerate()
        .flat_map(|(i, p)| [p[0], p[1], p[2], (i % 251) as u8])
        .collect();
    (data, layout)
}

#[test]
fn device_frames_match_the_host_path_with_two_copies_per_frame() {
    if !enabled("device_frames_match_the_host_path_with_two_copies_per_frame") {
        return;
    }
    let path = model("multistyle26.onnx");
    let half = InferenceSize {
        scale: 0.5,
        ..InferenceSize::default()
    };
    let cache = fresh_cache("device");
    // TensorRT at one size only: each new size is another engine build. Left out where
    // scripts/gpu-check found no TensorRT (STYLIZE_GPU_NO_TENSORRT).
    let mut runs = vec![(BackendKind::Cuda, vec![InferenceSize::default(), half])];
    if std::env::var_os("STYLIZE_GPU_NO_TENSORRT").is_none() {
        runs.push((BackendKind::TensorRt, vec![half]));
    }
    let (frame, layout) = rgba(&picture(1280, 720));
    for (kind, sizes) in runs {
        let opts = options(kind, Some(&cache));
        let mut device = Stylizer::load(&path, &opts).unwrap();
        let host_opts = BackendOptions {
            host_frames: true,
            ..opts
        };
        let mut host = Stylizer::load(&path, &host_opts).unwrap();
        let style = conditioning(device.info());
        let mut first = true;
        for size in sizes {
            for i in 0..3 {
                let (mut on_device, mut on_host) = (frame.clone(), frame.clone());
                let d = device
                    .stylize_frame(&mut on_device, &layout, &size, &style)
                    .unwrap();
                let h = host
                    .stylize_frame(&mut on_host, &layout, &size, &style)
                    .unwrap();
                // The style vector is uploaded once, with the first frame.
                let expected = if first { 3 } else { 2 };
                first = false;
                assert_eq!(d.host_copies, expected, "{kind} {size:?} frame {i}");
                assert_eq!(h.host_copies, 3, "host path: image, style vector, output");
                let (mean, p99) = spread(
                    on_device
                        .iter()
                        .zip(&on_host)
                        .map(|(a, b)| f32::from(a.abs_diff(*b)))
                        .collect(),
                );
                eprintln!(
                    "{kind} {size:?} frame {i}: device {:.2} ms, host {:.2} ms; \
                     bytes differ by mean {mean:.3}, p99 {p99}",
                    d.total_ms(),
                    h.total_ms()
                );
                assert!(mean <= 1.0 && p99 <= 4.0, "{kind} {size:?}: {mean} {p99}");
                let alpha = |v: &[u8]| v.iter().skip(3).step_by(4).copied().collect::<Vec<_>>();
                assert_eq!(alpha(&on_device), alpha(&frame), "alpha kept");
                assert_ne!(on_device, frame, "stylized");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&cache);
}

/// With smoothing on (the element's default stability), frames stay on the device too: the
/// smoothing kernels against the host filter of the same backend, and the copies: the frame
/// up and down, the grey image down, and from the second frame the motion fields up.
#[test]
fn smoothed_device_frames_match_the_host_path() {
    if !enabled("smoothed_device_frames_match_the_host_path") {
        return;
    }
    let path = model("multistyle26.onnx");
    let half = InferenceSize {
        scale: 0.5,
        ..InferenceSize::default()
    };
    let opts = options(BackendKind::Cuda, None);
    let mut device = Stylizer::load(&path, &opts).unwrap();
    let mut host = Stylizer::load(
        &path,
        &BackendOptions {
            host_frames: true,
            ..opts
        },
    )
    .unwrap();
    for s in [&mut device, &mut host] {
        s.set_stability(stylize_engines::temporal::DEFAULT_STABILITY);
    }
    let style = conditioning(device.info());
    // A window panning 3 pixels per frame over a wider picture: motion for the smoothing.
    let (wide, wide_layout) = rgba(&picture(1280 + 3 * 6, 720));
    let layout = FrameLayout {
        width: 1280,
        ..wide_layout
    };
    for i in 0..6usize {
        let frame = wide[3 * i * 4..].to_vec();
        let (mut on_device, mut on_host) = (frame.clone(), frame.clone());
        let d = device
            .stylize_frame(&mut on_device, &layout, &half, &style)
            .unwrap();
        host.stylize_frame(&mut on_host, &layout, &half, &style)
            .unwrap();
        // Frame 0: the style vector, the frame up, the grey image down, the frame down;
        // then: the frame up, the grey image down, the motion fields up, the frame down.
        assert_eq!(d.host_copies, 4, "frame {i}");
        let (mean, p99) = spread(
            on_device
                .iter()
                .zip(&on_host)
                .map(|(a, b)| f32::from(a.abs_diff(*b)))
                .collect(),
        );
        eprintln!(
            "smoothed frame {i}: device {:.2} ms (smoothing {:.2} ms); bytes differ by mean \
             {mean:.3}, p99 {p99}",
            d.total_ms(),
            d.temporal_ms
        );
        assert!(mean <= 1.5 && p99 <= 8.0, "frame {i}: {mean} {p99}");
    }
}
