//! `stylize bench`: per-frame latency of our engine, of the GStreamer element inside a running
//! pipeline and of ONNX Runtime in Python (the peer), on the same model, input and threads,
//! **interleaved** in one run (each iteration runs every path once, in a rotating order), so a
//! noisy machine slows all of them alike. Medians come with a distribution-free 95 % interval;
//! the network's multiply-accumulates are read from the graph and the achieved GFLOP/s is put
//! against the machine's FMA peak. Results go to JSON.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use gst::prelude::*;
use serde::Serialize;
use serde_json::json;

use stylize_engines::frame::{self, FrameLayout, PixelFormat, RgbImage};
use stylize_engines::temporal::DEFAULT_STABILITY;
use stylize_engines::{runtime, InferenceSize, StyleResolver, Stylizer};

use crate::file::parse_size;
use crate::stats::{ratio_interval, summarize, Summary};
use crate::StyleArgs;

/// One benchmark case: the frame size and the size the network runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub frame: (u32, u32),
    pub inference: (u32, u32),
}

/// `WxH` (inference at the frame size) or `WxH:IWxIH`.
pub fn parse_case(s: &str) -> Result<Case, String> {
    let (frame, inference) = match s.split_once(':') {
        Some((f, i)) => (parse_size(f)?, parse_size(i)?),
        None => {
            let f = parse_size(s)?;
            (f, f)
        }
    };
    if [frame.0, frame.1, inference.0, inference.1].contains(&0) {
        return Err(format!("`{s}`: bench sizes need both a width and a height"));
    }
    stylize_engines::limits::check_inference_size(inference.0 as usize, inference.1 as usize)
        .and_then(|_| stylize_engines::limits::check_frame_size(frame.0 as usize, frame.1 as usize))
        .map_err(|e| e.to_string())?;
    Ok(Case { frame, inference })
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub style: StyleArgs,
    /// Cases, comma-separated: WIDTHxHEIGHT (the network at the frame size) or
    /// WIDTHxHEIGHT:IWxIH (frames of the first size, the network at the second).
    #[arg(long, visible_alias = "sizes", value_delimiter = ',', value_parser = parse_case,
          default_value = "320x180,640x360,1280x720,1280x720:640x360")]
    pub cases: Vec<Case>,
    /// Timed iterations per case (every path runs once per iteration).
    #[arg(long, default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub iterations: u32,
    /// Untimed warm-up iterations per case.
    #[arg(long, default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub warmup: u32,
    /// JSON output file.
    #[arg(long, default_value = "bench.json")]
    pub out: PathBuf,
    /// Python with onnxruntime for the peer measurement (default: the setup's venv).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the ONNX Runtime Python peer.
    #[arg(long)]
    pub no_python: bool,
    /// Skip the GStreamer element path.
    #[arg(long)]
    pub no_element: bool,
    /// Stability for the smoothing measurement (the engine frame path with the temporal
    /// filter on a moving picture); 0 skips it.
    #[arg(long, default_value_t = DEFAULT_STABILITY)]
    pub smoothing: f64,
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
struct Smoothing {
    stability: f64,
    /// The temporal filter alone, per frame.
    temporal_ms: Option<Summary>,
    /// Temporal filter p50 over the bare network's p50 at the same inference size, with the
    /// interval bounded by the two medians' intervals.
    ratio_to_network: Option<Ratio>,
    /// Median over iterations of temporal / network, paired as the overhead is.
    ratio_to_network_paired: Option<Ratio>,
}

#[derive(Serialize)]
struct CaseResult {
    frame: [u32; 2],
    inference: [u32; 2],
    /// The tensor the network runs on (inference size rounded up to the model's multiple).
    tensor: [usize; 2],
    /// Multiply-accumulates of one run, read from the graph at this size.
    macs: Option<u64>,
    macs_per_pixel: Option<f64>,
    /// 2 × MACs / engine_infer p50.
    engine_gflops: Option<f64>,
    /// engine_gflops / the machine's fp32 FMA peak.
    fraction_of_fma_peak: Option<f64>,
    /// Backend run only, on a ready tensor: comparable with the peer's `session.run`.
    engine_infer_ms: Option<Summary>,
    /// A packed RGB frame stylized in place (`Stylizer::stylize_frame`, smoothing off): the
    /// element's work without GStreamer.
    engine_frame_ms: Option<Summary>,
    /// appsrc (RGB) ! stylize (stability 0) ! appsink: buffer pushed → stylized buffer pulled.
    element_ms: Option<Summary>,
    ort_python_ms: Option<Summary>,
    /// Per-frame overhead of the element over the bare network at the inference size:
    /// element p50 / engine_infer p50 − 1, with a conservative 95 % interval.
    element_overhead: Option<Ratio>,
    /// The same overhead paired by iteration: median over iterations of element / network − 1
    /// (the two run back to back in each iteration), with its 95 % interval. Slow phases of
    /// the machine that span an iteration cancel here; the ratio of medians above keeps them.
    element_overhead_paired: Option<Ratio>,
    element_overhead_vs_python: Option<Ratio>,
    /// engine_infer p50 / ort_python p50 (below 1: we are faster).
    engine_vs_python: Option<Ratio>,
    /// Median over iterations of engine_infer / ort_python, paired as the overhead is.
    engine_vs_python_paired: Option<Ratio>,
    host_copies_per_frame: u32,
    smoothing: Option<Smoothing>,
}

/// A ratio of two medians and the interval from the two medians' 95 % intervals.
#[derive(Serialize)]
struct Ratio {
    p50: f64,
    ci95: [f64; 2],
}

/// [`crate::stats::paired_ratio`] as a [`Ratio`], minus one when `minus_one`.
fn paired(ours: &[f64], peer: &[f64], minus_one: bool) -> Option<Ratio> {
    crate::stats::paired_ratio(ours, peer).map(|r| as_ratio(r, minus_one))
}

fn ratio(ours: &Option<Summary>, peer: &Option<Summary>, minus_one: bool) -> Option<Ratio> {
    let (a, b) = (ours.as_ref()?, peer.as_ref()?);
    Some(as_ratio(ratio_interval(a, b), minus_one))
}

/// A ratio and its interval, minus one when `minus_one` (an overhead rather than a ratio).
fn as_ratio((p50, [lo, hi]): (f64, [f64; 2]), minus_one: bool) -> Ratio {
    let k = if minus_one { 1.0 } else { 0.0 };
    Ratio {
        p50: p50 - k,
        ci95: [lo - k, hi - k],
    }
}

#[derive(Serialize)]
struct ModelResult {
    model: String,
    family: String,
    backend: String,
    /// Why that backend ran ("requested", or what `auto` found).
    backend_reason: String,
    /// The style the model ran with (name, blend or style image).
    style: String,
    cases: Vec<CaseResult>,
}

#[derive(Serialize)]
struct Machine {
    cpu: String,
    cpus: usize,
    mhz: f64,
    /// fp32 FMA peak of the cores used: threads × MHz × 16 lanes (one AVX-512 FMA, or two
    /// AVX2 FMAs, per cycle) × 2 FLOP. The nominal clock; turbo is not counted.
    fma_peak_gflops: f64,
}

#[derive(Serialize)]
struct Report {
    tool: &'static str,
    method: &'static str,
    threads: u32,
    iterations: u32,
    warmup: u32,
    machine: Machine,
    peer: String,
    unix_time: u64,
    models: Vec<ModelResult>,
}

const METHOD: &str = "every iteration runs each path once (engine network, engine frame, \
element pipeline, ONNX Runtime Python, engine frame with smoothing) in a rotating order; every \
ONNX Runtime session has the same options (intra-op threads, 1 inter-op thread, full graph \
optimisation, no intra-op spinning); p50 with a distribution-free 95 % interval (order \
statistics); ratios of two medians bound by the two intervals; *_paired ratios: the median \
over iterations of the two paths' ratio within an iteration, with its own interval";

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

/// The test picture moved `dx` pixels to the right (wrapping): motion for the smoothing path.
fn shifted(img: &RgbImage, dx: usize) -> Vec<u8> {
    let row = img.width * 3;
    let mut out = vec![0; img.data.len()];
    for (src, dst) in img.data.chunks_exact(row).zip(out.chunks_exact_mut(row)) {
        let cut = (img.width - dx % img.width) * 3;
        dst[row - cut..].copy_from_slice(&src[..cut]);
        dst[..row - cut].copy_from_slice(&src[cut..]);
    }
    out
}

fn write_f32(path: &Path, data: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn machine(threads: u32) -> Machine {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let mhz = field("cpu MHz").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    Machine {
        cpu: field("model name").unwrap_or_else(|| "unknown".into()),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mhz,
        fma_peak_gflops: f64::from(threads) * mhz * 1e-3 * 16.0 * 2.0,
    }
}

pub fn run(args: &BenchArgs) -> Result<()> {
    crate::init_gstreamer()?;
    let threads = if args.style.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    } else {
        args.style.threads
    };
    let mut peer = match args.no_python {
        true => None,
        false => Some(Peer::start(
            &args
                .python
                .clone()
                .unwrap_or_else(|| runtime::assets_dir().join("venv/bin/python")),
            threads,
        )?),
    };
    let scratch = std::env::temp_dir().join(format!("stylize-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let backends = if args.backends.is_empty() {
        vec![args.style.backend]
    } else {
        args.backends.clone()
    };
    let all = std::iter::once(args.style.model_path()).chain(args.compare.iter().cloned());
    let mut models = Vec::new();
    let mut result = Ok(());
    'outer: for model in all {
        for &backend in &backends {
            let mut style = args.style.clone();
            style.model = Some(model.clone());
            style.threads = threads;
            style.backend = backend;
            match bench_model(args, &style, peer.as_mut(), &scratch) {
                Ok(m) => models.push(m),
                Err(e) => {
                    result = Err(e);
                    break 'outer;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let peer_version = peer
        .as_ref()
        .map_or("not run".into(), |p| p.version.clone());
    drop(peer);
    result?;

    let report = Report {
        tool: "stylize bench",
        method: METHOD,
        threads,
        iterations: args.iterations,
        warmup: args.warmup,
        machine: machine(threads),
        peer: peer_version,
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        models,
    };
    let json = serde_json::to_string_pretty(&report)?;
    crate::stats::write_report(&args.out, &json)?;
    for m in &report.models {
        for c in &m.cases {
            let p50 = |o: &Option<Summary>| o.as_ref().map_or(f64::NAN, |s| s.p50);
            eprintln!(
                "{} {}x{} (net {}x{}): network {:.1} ms, frame {:.1} ms, element {:.1} ms, \
                 ort-python {:.1} ms; element overhead {:+.1} % (paired {:+.1} %), \
                 engine/python {:.2}, smoothing/network {:.2}",
                m.model,
                c.frame[0],
                c.frame[1],
                c.inference[0],
                c.inference[1],
                p50(&c.engine_infer_ms),
                p50(&c.engine_frame_ms),
                p50(&c.element_ms),
                p50(&c.ort_python_ms),
                c.element_overhead
                    .as_ref()
                    .map_or(f64::NAN, |r| r.p50 * 100.0),
                c.element_overhead_paired
                    .as_ref()
                    .map_or(f64::NAN, |r| r.p50 * 100.0),
                c.engine_vs_python.as_ref().map_or(f64::NAN, |r| r.p50),
                c.smoothing
                    .as_ref()
                    .and_then(|s| s.ratio_to_network.as_ref())
                    .map_or(f64::NAN, |r| r.p50),
            );
        }
    }
    println!("{}", std::path::absolute(&args.out)?.display());
    Ok(())
}

/// The style's conditioning vector and a label for the report.
fn conditioning(resolver: &mut StyleResolver, style: &mut StyleArgs) -> Result<(Vec<f32>, String)> {
    let arbitrary = resolver.info().family == stylize_engines::model::Family::Arbitrary;
    if arbitrary && style.style_image.is_none() && style.style.is_none() {
        style.style_image = Some(runtime::assets_dir().join("images/starry_night.jpg"));
    }
    let request = style.request();
    let conditioning = resolver.resolve(&request)?.conditioning;
    let label = request
        .image
        .as_ref()
        .map(|p| p.display().to_string())
        .or(request.blend.clone())
        .or(request.style.clone())
        .unwrap_or_else(|| "default".into());
    Ok((conditioning, label))
}

fn bench_model(
    args: &BenchArgs,
    style: &StyleArgs,
    mut peer: Option<&mut Peer>,
    scratch: &Path,
) -> Result<ModelResult> {
    let model = style.model_path();
    // Smoothing off: the network and frame paths are measured alone; the smoothing path
    // opens its own session.
    let session = style.open_session(0.0, InferenceSize::default())?;
    let mut stylizer = session.stylizer;
    let mut resolver = session.resolver;
    let mut style = style.clone();
    let (conditioning, label) = conditioning(&mut resolver, &mut style)?;
    let mut cases = Vec::new();
    for &case in &args.cases {
        eprintln!(
            "bench {} {}x{} (network at {}x{})",
            model.display(),
            case.frame.0,
            case.frame.1,
            case.inference.0,
            case.inference.1
        );
        cases.push(bench_case(
            args,
            &style,
            &mut stylizer,
            &conditioning,
            peer.as_deref_mut(),
            scratch,
            case,
        )?);
    }
    Ok(ModelResult {
        model: model.display().to_string(),
        family: stylizer.info().family.to_string(),
        backend: stylizer.backend_name().to_string(),
        backend_reason: stylizer.backend_reason().to_string(),
        style: label,
        cases,
    })
}

/// Samples of every path for one case, filled by the interleaved loop.
#[derive(Default)]
struct Samples {
    infer: Vec<f64>,
    frame: Vec<f64>,
    element: Vec<f64>,
    python: Vec<f64>,
    temporal: Vec<f64>,
}

fn bench_case(
    args: &BenchArgs,
    style: &StyleArgs,
    stylizer: &mut Stylizer,
    conditioning: &[f32],
    mut peer: Option<&mut Peer>,
    scratch: &Path,
    case: Case,
) -> Result<CaseResult> {
    let (fw, fh) = (case.frame.0 as usize, case.frame.1 as usize);
    let (iw, ih) = (case.inference.0 as usize, case.inference.1 as usize);
    let info = stylizer.info().clone();
    let tensor = stylize_engines::Size::new(
        frame::round_up(iw, info.size_multiple),
        frame::round_up(ih, info.size_multiple),
    );
    let picture = test_image(fw, fh);
    let content = {
        let mut resizer = frame::Resizer::new();
        let small = frame::resize_rgb(&mut resizer, &picture, iw, ih)?;
        frame::image_to_tensor(&small, tensor, info.input_range.scale())
    };
    let size = InferenceSize {
        width: iw,
        height: ih,
        scale: 1.0,
    };
    let layout = FrameLayout {
        format: PixelFormat::Rgb,
        width: fw,
        height: fh,
        stride: fw * 3,
    };

    let macs = match peer.as_deref_mut() {
        Some(p) => {
            let input = scratch.join(format!("in-{iw}x{ih}.f32"));
            let weights = scratch.join("weights.f32");
            write_f32(&input, &content.data)?;
            write_f32(&weights, conditioning)?;
            Some(p.load(&style.model_path(), &input, &weights, tensor)?)
        }
        None => None,
    };
    let mut element = match args.no_element {
        true => None,
        false => Some(ElementPath::start(style, case)?),
    };
    let mut smoothing = match args.smoothing > 0.0 {
        true => Some(
            style
                .open_session(args.smoothing, InferenceSize::default())?
                .stylizer,
        ),
        false => None,
    };

    let mut samples = Samples::default();
    let mut scratch_frame = picture.data.clone();
    let mut network_out = stylize_engines::tensor::Tensor::zeros(3, 0, 0);
    let mut host_copies = 0;
    let total = (args.warmup + args.iterations) as usize;
    for i in 0..total {
        let timed = i >= args.warmup as usize;
        // Rotate the order so no path always runs right after another.
        for step in 0..5 {
            match (i + step) % 5 {
                0 => {
                    let t = Instant::now();
                    stylizer.run_network(&content, conditioning, &mut network_out)?;
                    let ms = ms_since(t);
                    if timed {
                        samples.infer.push(ms);
                    }
                }
                1 => {
                    scratch_frame.copy_from_slice(&picture.data);
                    let t = Instant::now();
                    let timings =
                        stylizer.stylize_frame(&mut scratch_frame, &layout, &size, conditioning)?;
                    let ms = ms_since(t);
                    host_copies = timings.host_copies;
                    if timed {
                        samples.frame.push(ms);
                    }
                }
                2 => {
                    if let Some(el) = element.as_mut() {
                        let ms = el.frame(&picture.data, i)?;
                        if timed {
                            samples.element.push(ms);
                        }
                    }
                }
                3 => {
                    if let Some(p) = peer.as_deref_mut() {
                        let ms = p.run()?;
                        if timed {
                            samples.python.push(ms);
                        }
                    }
                }
                _ => {
                    if let Some(s) = smoothing.as_mut() {
                        let mut moving = shifted(&picture, 3 * i);
                        let timings = s.stylize_frame(&mut moving, &layout, &size, conditioning)?;
                        // The first frame has nothing to smooth against.
                        if timed && i > 0 {
                            samples.temporal.push(timings.temporal_ms);
                        }
                    }
                }
            }
        }
    }
    if let Some(el) = element {
        el.finish()?;
    }

    let engine_infer_ms = summarize(&samples.infer);
    let element_ms = summarize(&samples.element);
    let ort_python_ms = summarize(&samples.python);
    let engine_gflops = macs
        .zip(engine_infer_ms.as_ref())
        .map(|(m, s)| 2.0 * m as f64 / (s.p50 * 1e-3) / 1e9);
    let peak = machine(style.threads).fma_peak_gflops;
    let temporal_ms = summarize(&samples.temporal);
    Ok(CaseResult {
        frame: [case.frame.0, case.frame.1],
        inference: [case.inference.0, case.inference.1],
        tensor: [tensor.width, tensor.height],
        macs,
        macs_per_pixel: macs.map(|m| m as f64 / tensor.pixels() as f64),
        engine_gflops,
        fraction_of_fma_peak: engine_gflops.filter(|_| peak > 0.0).map(|g| g / peak),
        element_overhead: ratio(&element_ms, &engine_infer_ms, true),
        element_overhead_paired: paired(&samples.element, &samples.infer, true),
        element_overhead_vs_python: ratio(&element_ms, &ort_python_ms, true),
        engine_vs_python: ratio(&engine_infer_ms, &ort_python_ms, false),
        engine_vs_python_paired: paired(&samples.infer, &samples.python, false),
        smoothing: smoothing.map(|_| Smoothing {
            stability: args.smoothing,
            ratio_to_network: ratio(&temporal_ms, &engine_infer_ms, false),
            ratio_to_network_paired: paired(&samples.temporal, &samples.infer, false),
            temporal_ms,
        }),
        engine_infer_ms,
        engine_frame_ms: summarize(&samples.frame),
        element_ms,
        ort_python_ms,
        host_copies_per_frame: host_copies,
    })
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// `appsrc ! stylize ! appsink` in PLAYING: one RGB buffer in, its stylized buffer out.
struct ElementPath {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst_app::AppSink,
}

impl ElementPath {
    fn start(style: &StyleArgs, case: Case) -> Result<Self> {
        let caps =
            gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, case.frame.0, case.frame.1)
                .fps(gst::Fraction::new(30, 1))
                .build()?
                .to_caps()?;
        let src = gst_app::AppSrc::builder()
            .caps(&caps)
            .format(gst::Format::Time)
            .build();
        let stylize = crate::file::stylize_element(style, 1.0, Some(case.inference))?;
        // The same work as the engine and the peer; smoothing is measured on its own.
        stylize.set_property("stability", 0.0f64);
        let sink = gst_app::AppSink::builder().sync(false).build();
        let pipeline = gst::Pipeline::new();
        pipeline.add_many([src.upcast_ref(), &stylize, sink.upcast_ref()])?;
        gst::Element::link_many([src.upcast_ref(), &stylize, sink.upcast_ref()])?;
        pipeline.set_state(gst::State::Playing)?;
        Ok(Self {
            pipeline,
            src,
            sink,
        })
    }

    /// Push one frame and wait for it to come out; milliseconds in between.
    fn frame(&mut self, rgb: &[u8], index: usize) -> Result<f64> {
        // Writable memory, as a decoder's or videoconvert's pooled buffers are: `from_slice`
        // wraps it read-only, and mapping that for the in-place transform copied the frame.
        let mut buffer = gst::Buffer::from_mut_slice(rgb.to_vec());
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            let pts = gst::ClockTime::from_nseconds(index as u64 * 33_333_333);
            b.set_pts(pts);
            b.set_duration(gst::ClockTime::from_nseconds(33_333_333));
        }
        let t = Instant::now();
        self.src
            .push_buffer(buffer)
            .map_err(|e| anyhow!("element pipeline refused a buffer: {e:?}"))?;
        let sample = self.sink.try_pull_sample(gst::ClockTime::from_seconds(120));
        let ms = ms_since(t);
        if sample.is_none() {
            bail!("element pipeline produced no frame: {}", self.bus_error());
        }
        Ok(ms)
    }

    fn bus_error(&self) -> String {
        let bus = self.pipeline.bus().expect("pipeline bus");
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                return e.error().to_string();
            }
        }
        "no error posted (timed out)".into()
    }

    fn finish(self) -> Result<()> {
        let _ = self.src.end_of_stream();
        self.pipeline.set_state(gst::State::Null)?;
        Ok(())
    }
}

/// ONNX Runtime in Python (scripts/ort_bench.py serve), driven one run at a time.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    version: String,
}

impl Peer {
    fn start(python: &Path, threads: u32) -> Result<Self> {
        let script = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/ort_bench.py"
        ));
        let mut child = Command::new(python)
            .arg(&script)
            .args(["serve", "--threads", &threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "running {} (use --no-python to skip the peer)",
                    python.display()
                )
            })?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Self {
            child,
            stdin,
            stdout,
            version: "onnxruntime (Python)".into(),
        })
    }

    fn request(&mut self, req: serde_json::Value) -> Result<serde_json::Value> {
        writeln!(self.stdin, "{req}").context("writing to the Python peer")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .context("reading from the Python peer")?;
        let reply: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("the Python peer answered {line:?}"))?;
        if reply["ok"] != true {
            bail!("onnxruntime python peer failed: {}", reply["error"]);
        }
        Ok(reply)
    }

    /// Load the model on the tensor's size; returns its multiply-accumulates per run.
    fn load(
        &mut self,
        model: &Path,
        input: &Path,
        weights: &Path,
        tensor: stylize_engines::Size,
    ) -> Result<u64> {
        let (w, h) = (tensor.width, tensor.height);
        let reply = self.request(json!({
            "cmd": "load", "model": model, "input": input, "weights": weights,
            "height": h, "width": w,
        }))?;
        if let Some(v) = reply["onnxruntime"].as_str() {
            self.version = format!("onnxruntime {v} (Python)");
        }
        reply["macs"]
            .as_u64()
            .ok_or_else(|| anyhow!("the Python peer gave no MAC count"))
    }

    fn run(&mut self) -> Result<f64> {
        self.request(json!({"cmd": "run"}))?["ms"]
            .as_f64()
            .ok_or_else(|| anyhow!("the Python peer gave no time"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_parse_with_and_without_an_inference_size() {
        assert_eq!(
            parse_case("1280x720:640x360"),
            Ok(Case {
                frame: (1280, 720),
                inference: (640, 360)
            })
        );
        assert_eq!(
            parse_case("320x180"),
            Ok(Case {
                frame: (320, 180),
                inference: (320, 180)
            })
        );
        assert!(parse_case("320x0").is_err());
        assert!(parse_case("640x360:9000x9000").is_err());
    }

    #[test]
    fn shifted_pictures_wrap_around() {
        let img = RgbImage {
            width: 3,
            height: 1,
            data: vec![1, 1, 1, 2, 2, 2, 3, 3, 3],
        };
        assert_eq!(shifted(&img, 1), vec![3, 3, 3, 1, 1, 1, 2, 2, 2]);
        assert_eq!(shifted(&img, 3), img.data);
    }
}
