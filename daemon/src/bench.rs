//! `stylize bench`: per-frame latency of the engine alone, of the GStreamer element inside a
//! pipeline, and of ONNX Runtime in Python (the peer) on the same model, input and threads,
//! all measured in the same run. Results go to JSON with the ratios against the peer.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use gst::prelude::*;
use serde::Serialize;

use stylize_engines::frame::{self, FrameLayout, PixelFormat, RgbImage};
use stylize_engines::{runtime, InferenceSize, Stylizer};

use crate::file::parse_size;
use crate::stats::{summarize, Summary};
use crate::StyleArgs;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub style: StyleArgs,
    /// Frame sizes, comma-separated WIDTHxHEIGHT.
    #[arg(long, value_delimiter = ',', value_parser = parse_size,
          default_value = "320x180,640x360,1280x720")]
    pub sizes: Vec<(u32, u32)>,
    /// Timed iterations per size and path (at least 1: no timing is no benchmark).
    #[arg(long, default_value_t = 5,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub iterations: usize,
    /// Untimed warm-up iterations per size and path.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// JSON output file.
    #[arg(long, default_value = "bench.json")]
    pub out: PathBuf,
    /// Python with onnxruntime for the peer measurement (default: the setup's venv).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the ONNX Runtime Python peer.
    #[arg(long)]
    pub no_python: bool,
    /// More models to measure in the same run, e.g. the arbitrary-style int8 and float32
    /// transfer nets (arbitrary models use --style-image, default Starry Night).
    #[arg(long, value_delimiter = ',')]
    pub compare: Vec<PathBuf>,
    /// Backends to compare on every model in the same run, e.g. `tensorrt,cuda,cpu`
    /// (default: --backend).
    #[arg(long, value_delimiter = ',')]
    pub backends: Vec<stylize_engines::backend::BackendKind>,
}

#[derive(Serialize)]
struct SizeResult {
    width: u32,
    height: u32,
    /// Backend run only: comparable with the Python peer's `session.run`.
    engine_infer_ms: Option<Summary>,
    /// Frame in → stylized frame out through the engine (conversion included).
    engine_frame_ms: Option<Summary>,
    /// A packed RGBx frame stylized in place (`stylize_frame`, smoothing off): the element's
    /// path, device-resident on GPU backends.
    engine_packed_frame_ms: Option<Summary>,
    /// Host↔device copies per packed frame (0 on the CPU, 2 device-resident).
    host_copies_per_frame: u32,
    /// Buffer entering the element → leaving it, inside a running GStreamer pipeline.
    element_ms: Option<Summary>,
    /// Frames per second of the whole pipeline (videotestsrc ! stylize ! fakesink).
    element_pipeline_fps: f64,
    ort_python_ms: Option<Summary>,
    /// p50 of ours divided by p50 of ONNX Runtime in Python (below 1 is faster).
    ratio_engine_infer_vs_python: Option<f64>,
    ratio_element_vs_python: Option<f64>,
}

#[derive(Serialize)]
struct ModelResult {
    model: String,
    family: String,
    backend: String,
    /// The style the model ran with (name, blend or style image).
    style: String,
    sizes: Vec<SizeResult>,
}

#[derive(Serialize)]
struct Report {
    tool: &'static str,
    threads: u32,
    iterations: usize,
    warmup: usize,
    cpus: usize,
    peer: String,
    unix_time: u64,
    models: Vec<ModelResult>,
}

/// Deterministic picture: gradients plus texture, so the net does realistic work.
fn test_image(width: usize, height: usize) -> RgbImage {
    let mut img = RgbImage::new(width, height);
    let mut state = 0x9e37_79b9_u32;
    for (i, px) in img.data.chunks_exact_mut(3).enumerate() {
        let (x, y) = (i % width, i / width);
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 64) as usize;
        px[0] = ((x * 191 / width + noise) % 256) as u8;
        px[1] = ((y * 191 / height + noise) % 256) as u8;
        px[2] = (((x + y) * 127 / (width + height) + noise) % 256) as u8;
    }
    img
}

fn write_f32(path: &PathBuf, data: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn ratio(ours: &Option<Summary>, peer: &Option<Summary>) -> Option<f64> {
    Some(ours.as_ref()?.p50 / peer.as_ref()?.p50)
}

pub fn run(args: &BenchArgs) -> Result<()> {
    crate::init_gstreamer()?;
    let threads = if args.style.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    } else {
        args.style.threads
    };
    let python = (!args.no_python).then(|| {
        args.python
            .clone()
            .unwrap_or_else(|| runtime::assets_dir().join("venv/bin/python"))
    });
    let scratch = std::env::temp_dir().join(format!("stylize-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let mut peer = String::from("not run");
    let mut models = Vec::new();
    let all = std::iter::once(args.style.model_path()).chain(args.compare.iter().cloned());
    let backends = if args.backends.is_empty() {
        vec![args.style.backend]
    } else {
        args.backends.clone()
    };
    for model in all {
        for &backend in &backends {
            let mut style = args.style.clone();
            style.model = Some(model.clone());
            style.threads = threads;
            style.backend = backend;
            models.push(bench_model(
                args,
                &style,
                python.as_ref(),
                &scratch,
                &mut peer,
            )?);
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);

    let report = Report {
        tool: "stylize bench",
        threads,
        iterations: args.iterations,
        warmup: args.warmup,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        peer,
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        models,
    };
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.out, &json).with_context(|| format!("writing {}", args.out.display()))?;
    for m in &report.models {
        for s in &m.sizes {
            let p50 = |o: &Option<Summary>| o.as_ref().map_or(f64::NAN, |s| s.p50);
            eprintln!(
                "{} {}x{}: engine {:.1} ms, element {:.1} ms, ort-python {:.1} ms (p50); ratio {:.2}",
                m.model,
                s.width,
                s.height,
                p50(&s.engine_infer_ms),
                p50(&s.element_ms),
                p50(&s.ort_python_ms),
                s.ratio_engine_infer_vs_python.unwrap_or(f64::NAN)
            );
        }
    }
    println!("{}", std::path::absolute(&args.out)?.display());
    Ok(())
}

fn bench_model(
    args: &BenchArgs,
    style: &StyleArgs,
    python: Option<&PathBuf>,
    scratch: &std::path::Path,
    peer_version: &mut String,
) -> Result<ModelResult> {
    let model = style.model_path();
    let mut stylizer = Stylizer::load(&model, &style.backend_options())?;
    let mut style = style.clone();
    let arbitrary = stylizer.info().family == stylize_engines::model::Family::Arbitrary;
    if arbitrary && style.style_image.is_none() && style.style.is_none() {
        style.style_image = Some(runtime::assets_dir().join("images/starry_night.jpg"));
    }
    let request = style.request();
    let conditioning = style
        .resolver(stylizer.info())?
        .resolve(&request)?
        .conditioning;
    let label = request
        .image
        .as_ref()
        .map(|p| p.display().to_string())
        .or(request.blend.clone())
        .or(request.style.clone())
        .unwrap_or_else(|| "default".into());

    let mut sizes = Vec::new();
    for &(width, height) in &args.sizes {
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 {
            bail!("bench sizes need both a width and a height, got {width}x{height}");
        }
        eprintln!("bench {} {width}x{height}: engine", model.display());
        let img = test_image(w, h);
        let info = stylizer.info().clone();
        let padded = (
            frame::round_up(h, info.size_multiple),
            frame::round_up(w, info.size_multiple),
        );
        let content = frame::image_to_tensor(&img, padded, info.input_range.scale());
        let layout = FrameLayout {
            format: PixelFormat::Rgbx,
            width: w,
            height: h,
            stride: w * 4,
        };
        let packed: Vec<u8> = img
            .data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        let (mut infer, mut frame_ms, mut packed_ms) = (Vec::new(), Vec::new(), Vec::new());
        let mut host_copies = 0;
        for i in 0..args.warmup + args.iterations {
            let t = Instant::now();
            stylizer.run_tensor(&content, &conditioning)?;
            let infer_ms = t.elapsed().as_secs_f64() * 1e3;
            let (_, timings) = stylizer.stylize_image(&img, (w, h), &conditioning)?;
            let in_place = stylizer.stylize_frame(
                &mut packed.clone(),
                &layout,
                &InferenceSize::default(),
                &conditioning,
            )?;
            host_copies = in_place.host_copies;
            if i >= args.warmup {
                infer.push(infer_ms);
                frame_ms.push(timings.total_ms());
                packed_ms.push(in_place.total_ms());
            }
        }

        eprintln!(
            "bench {} {width}x{height}: element pipeline",
            model.display()
        );
        let (element, fps) = element_latency(args, &style, width, height)?;

        let ort_python = match python {
            None => None,
            Some(py) => {
                eprintln!(
                    "bench {} {width}x{height}: onnxruntime (python)",
                    model.display()
                );
                let input = scratch.join(format!("in-{w}x{h}.f32"));
                let weights = scratch.join("weights.f32");
                write_f32(&input, &content.data)?;
                write_f32(&weights, &conditioning)?;
                let (ms, version) =
                    python_peer(py, &model, &input, &weights, padded, style.threads, args)?;
                *peer_version = format!("onnxruntime {version} (Python)");
                summarize(&ms)
            }
        };
        let engine_infer_ms = summarize(&infer);
        let element_ms = summarize(&element);
        sizes.push(SizeResult {
            width,
            height,
            ratio_engine_infer_vs_python: ratio(&engine_infer_ms, &ort_python),
            ratio_element_vs_python: ratio(&element_ms, &ort_python),
            engine_infer_ms,
            engine_frame_ms: summarize(&frame_ms),
            engine_packed_frame_ms: summarize(&packed_ms),
            host_copies_per_frame: host_copies,
            element_ms,
            element_pipeline_fps: fps,
            ort_python_ms: ort_python,
        });
    }
    Ok(ModelResult {
        model: model.display().to_string(),
        family: stylizer.info().family.to_string(),
        backend: stylizer.backend_name().to_string(),
        style: label,
        sizes,
    })
}

fn python_peer(
    python: &PathBuf,
    model: &std::path::Path,
    input: &PathBuf,
    weights: &PathBuf,
    (h, w): (usize, usize),
    threads: u32,
    args: &BenchArgs,
) -> Result<(Vec<f64>, String)> {
    let script = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/ort_bench.py"
    ));
    let out = Command::new(python)
        .arg(&script)
        .arg(model)
        .arg(input)
        .arg(h.to_string())
        .arg(w.to_string())
        .args(["--threads", &threads.to_string()])
        .args(["--iterations", &args.iterations.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .arg("--weights")
        .arg(weights)
        .output()
        .with_context(|| {
            format!(
                "running {} (use --no-python to skip the peer)",
                python.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "onnxruntime python peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    #[derive(serde::Deserialize)]
    struct PeerOut {
        ms: Vec<f64>,
        onnxruntime: String,
    }
    let parsed: PeerOut = serde_json::from_slice(&out.stdout).context("parsing peer output")?;
    Ok((parsed.ms, parsed.onnxruntime))
}

/// Per-buffer time inside the element (sink pad → src pad) and the pipeline's frame rate.
fn element_latency(
    args: &BenchArgs,
    style: &StyleArgs,
    width: u32,
    height: u32,
) -> Result<(Vec<f64>, f64)> {
    let frames = args.warmup + args.iterations;
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("videotestsrc")
        .property("num-buffers", frames as i32)
        .build()?;
    src.set_property_from_str("pattern", "smpte");
    let filter = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "RGBx")
                .field("width", width as i32)
                .field("height", height as i32)
                .build(),
        )
        .build()?;
    let stylize = crate::file::stylize_element(style, 1.0, None)?;
    // The same work as the engine and the peer; the temporal filter's own cost is in
    // `stylize bench quality`.
    stylize.set_property("stability", 0.0f64);
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()?;
    pipeline.add_many([&src, &filter, &stylize, &sink])?;
    gst::Element::link_many([&src, &filter, &stylize, &sink])?;

    let entered: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let left: Arc<Mutex<Vec<Instant>>> = Arc::default();
    for (pad, times) in [("sink", entered.clone()), ("src", left.clone())] {
        stylize.static_pad(pad).expect("stylize pads").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, _| {
                times.lock().unwrap().push(Instant::now());
                gst::PadProbeReturn::Ok
            },
        );
    }
    let bus = pipeline.bus().expect("pipeline bus");
    let started = Instant::now();
    pipeline.set_state(gst::State::Playing)?;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(300)) else {
            break Err(anyhow::anyhow!("element benchmark timed out"));
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(anyhow::anyhow!("{}", e.error())),
            _ => {}
        }
    };
    let wall = started.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    result?;
    let entered = entered.lock().unwrap();
    let left = left.lock().unwrap();
    if entered.len() != frames || left.len() != frames {
        bail!(
            "element benchmark lost frames: {} in, {} out",
            entered.len(),
            left.len()
        );
    }
    let ms = entered
        .iter()
        .zip(left.iter())
        .skip(args.warmup)
        .map(|(a, b)| b.duration_since(*a).as_secs_f64() * 1e3)
        .collect();
    Ok((ms, frames as f64 / wall))
}
