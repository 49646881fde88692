//! `stylize bench latency`: where the time of a live frame goes, stage by stage, for the
//! daemon's threaded pipeline (`stylize webcam`'s stages) and for the GStreamer element in a
//! pipeline. JSON with p50/p95/p99 per stage and fps, plus a PNG (histograms and per-frame
//! timelines).
//!
//! `stylize bench` without a subcommand is the engine/element/ONNX Runtime comparison in
//! [`crate::bench`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use gst::prelude::*;
use serde_json::{json, Value};

use crate::bench::BenchArgs;
use crate::file::parse_size;
use crate::plot::{self, Panel, Series};
use crate::stats::summarize;
use crate::webcam::sink::{GstSink, Output};
use crate::webcam::source::{GstSource, Input};
use crate::webcam::{self, Config, StylizeStep, VideoSpec, Webcam};
use crate::StyleArgs;

/// `stylize bench [latency]`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchCommand {
    #[command(subcommand)]
    pub sub: Option<BenchSub>,
    #[command(flatten)]
    pub args: BenchArgs,
}

// Parsed once at start-up: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum BenchSub {
    /// Per-stage latency (capture, convert, infer, convert back, output) of the webcam
    /// pipeline and of the GStreamer element: p50/p95/p99 and fps as JSON, plus a PNG plot.
    Latency(LatencyArgs),
    /// Temporal stability (warping error, flicker index), SSIM to the content and trails
    /// behind moving edges, with stability off and on; writes JSON.
    Quality(crate::quality::QualityArgs),
}

pub fn run(cmd: &BenchCommand) -> Result<()> {
    match &cmd.sub {
        Some(BenchSub::Latency(args)) => run_latency(args),
        Some(BenchSub::Quality(args)) => crate::quality::run(args),
        None => crate::bench::run(&cmd.args),
    }
}

#[derive(Args, Debug, Clone)]
pub struct LatencyArgs {
    /// A camera (/dev/videoN), a video file, or `test[:PATTERN]`.
    #[arg(long, default_value = "test:ball")]
    pub input: String,
    #[command(flatten)]
    pub style: StyleArgs,
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_size, default_value = "320x240")]
    pub size: (u32, u32),
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Inference and smoothing, the same for both paths.
    #[command(flatten)]
    pub stream: webcam::LiveArgs,
    /// Timed frames per path.
    #[arg(long, default_value_t = 60)]
    pub frames: usize,
    /// Untimed first frames per path (model warm-up).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Pace the input in real time and drop the oldest frame when inference falls behind,
    /// as `stylize webcam` does; by default every frame is processed.
    #[arg(long)]
    pub live: bool,
    /// Skip the GStreamer element path.
    #[arg(long)]
    pub no_element: bool,
    #[arg(long, default_value = "latency.json")]
    pub out: PathBuf,
    #[arg(long, default_value = "latency.png")]
    pub plot: PathBuf,
}

/// Per-stage samples → `{stage: Summary}` and plot series.
fn stage_report(stages: &[(String, Vec<f64>)]) -> (Value, Vec<Series>) {
    let mut summaries = serde_json::Map::new();
    let mut series = Vec::new();
    for (name, ms) in stages {
        summaries.insert(name.clone(), json!(summarize(ms)));
        series.push(Series {
            name: name.clone(),
            ms: ms.clone(),
        });
    }
    (Value::Object(summaries), series)
}

fn spec(args: &LatencyArgs) -> Result<VideoSpec> {
    let (w, h) = args.size;
    if w == 0 || h == 0 || args.fps == 0 {
        bail!("--size needs a width and a height, --fps above 0");
    }
    Ok(VideoSpec {
        width: w as usize,
        height: h as usize,
        fps: args.fps,
    })
}

fn daemon_path(args: &LatencyArgs, spec: VideoSpec) -> Result<(Value, Vec<Series>)> {
    let (stylizer, mut shared) =
        webcam::open_session(&args.style, args.stream.stability, args.stream.inference())?;
    webcam::record_all(&mut shared);
    let shared = Arc::new(shared);
    let total = (args.frames + args.warmup) as u64;
    // Offline, the source stops after `total` frames and all of them come out. Live, frames
    // are dropped, so the source runs until `total` frames were written.
    let max_frames = (!args.live).then_some(total);
    let source = GstSource::new(Input::parse(&args.input), spec, args.live, max_frames);
    let sink = GstSink::open(&Output::Null, spec)?;
    let step = StylizeStep {
        stylizer,
        size: args.stream.inference(),
    };
    let config = Config {
        live: args.live,
        record_all: true,
        ..Config::live(spec)
    };
    let webcam = Webcam::start(
        config,
        shared.clone(),
        Box::new(source),
        Box::new(step),
        Box::new(sink),
    )?;
    let written = || {
        shared
            .counters
            .written
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    while !webcam.finished() && written() < total {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    shared.request_stop();
    webcam.wait()?;
    let all = shared.all_times();
    if all.len() <= args.warmup {
        bail!(
            "only {} frames came through (is {} a video?)",
            all.len(),
            args.input
        );
    }
    let timed = &all[args.warmup..all.len().min(total as usize)];
    let stages: Vec<(String, Vec<f64>)> = webcam::STAGES
        .iter()
        .map(|(name, f)| (name.to_string(), timed.iter().map(f).collect()))
        .collect();
    let span = timed.last().unwrap().written_at_s - timed[0].written_at_s;
    let fps = if timed.len() > 1 && span > 0.0 {
        (timed.len() - 1) as f64 / span
    } else {
        0.0
    };
    let (stages_ms, series) = stage_report(&stages);
    let c = &shared.counters;
    let get = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
    Ok((
        json!({
            "frames": timed.len(),
            "captured": get(&c.captured),
            "dropped": get(&c.dropped_capture) + get(&c.dropped_output),
            "repeated": get(&c.repeated),
            "fps": fps,
            "stages_ms": stages_ms,
        }),
        series,
    ))
}

/// Arrival times of buffers at a few pads, keyed by PTS (every element between them keeps
/// timestamps), plus the element's own per-frame report.
#[derive(Default)]
struct ElementLog {
    arrivals: HashMap<&'static str, HashMap<u64, Instant>>,
    order: Vec<u64>,
    reports: HashMap<u64, (f64, f64)>,
}

/// Keep the element's per-frame `stylize-frame` report (inference and conversion times).
fn record_report(msg: &gst::Message, log: &Mutex<ElementLog>) {
    let Some(s) = msg.structure().filter(|s| s.name() == "stylize-frame") else {
        return;
    };
    let pts = s.get::<Option<gst::ClockTime>>("pts").ok().flatten();
    let infer = s.get::<f64>("inference-ms").unwrap_or(f64::NAN);
    let convert = s.get::<f64>("convert-ms").unwrap_or(f64::NAN);
    if let Some(pts) = pts {
        log.lock()
            .unwrap()
            .reports
            .insert(pts.nseconds(), (infer, convert));
    }
}

fn element_path(args: &LatencyArgs, spec: VideoSpec) -> Result<(Value, Vec<Series>)> {
    let total = args.frames + args.warmup;
    let (pipeline, description) = element_pipeline(args, spec, total)?;
    let log: Arc<Mutex<ElementLog>> = Arc::default();
    time_buffers(&pipeline, &log);
    let wall = run_to(&pipeline, &log, total)?;
    let log = log.lock().unwrap();
    let (stages, frames) = element_stages(&log, args.warmup);
    if frames == 0 {
        bail!("no frame made it through the element pipeline");
    }
    let (stages_ms, series) = stage_report(&stages);
    Ok((
        json!({
            "frames": frames,
            "fps": log.arrivals.get("out").map_or(0, HashMap::len) as f64 / wall,
            "stages_ms": stages_ms,
            "pipeline": description,
        }),
        series,
    ))
}

/// `source ! videoconvert ! videoscale ! stylize ! videoconvert ! fakesink` with the same
/// session settings as the daemon path; returns it and its description.
fn element_pipeline(
    args: &LatencyArgs,
    spec: VideoSpec,
    total: usize,
) -> Result<(gst::Pipeline, String)> {
    let input = Input::parse(&args.input);
    let (head, sync) = input.head(args.live, spec);
    let description = format!(
        "{head} ! videoconvert name=cin ! videoscale add-borders=true ! \
         video/x-raw,format=RGBx,width={},height={},pixel-aspect-ratio=1/1 ! \
         stylize name=stylize ! videoconvert name=cout ! fakesink name=sink sync={sync}",
        spec.width, spec.height
    );
    let pipeline = gst::parse::launch(&description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline"))?;
    let stylize = pipeline.by_name("stylize").expect("named stylize");
    crate::file::configure_stylize(
        &stylize,
        &args.style,
        args.stream.scale,
        args.stream.inference_size,
    );
    stylize.set_property("stability", args.stream.stability);
    input.configure(pipeline.upcast_ref());
    if let Input::TestPattern(_) | Input::Device(_) = input {
        let src = pipeline.by_name("src").expect("src");
        src.set_property("num-buffers", total as i32);
    }
    Ok((pipeline, description))
}

/// Note when each buffer passes the four points the stages are measured between.
fn time_buffers(pipeline: &gst::Pipeline, log: &Arc<Mutex<ElementLog>>) {
    let pad = |element: &str, pad: &str| {
        pipeline
            .by_name(element)
            .and_then(|e| e.static_pad(pad))
            .expect("the pipeline's named pads")
    };
    let points: [(&'static str, gst::Pad); 4] = [
        ("in", pad("cin", "sink")),
        ("stylize_in", pad("stylize", "sink")),
        ("stylize_out", pad("stylize", "src")),
        ("out", pad("sink", "sink")),
    ];
    for (name, pad) in points {
        let log = log.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                let mut log = log.lock().unwrap();
                if name == "in" {
                    log.order.push(pts.nseconds());
                }
                log.arrivals
                    .entry(name)
                    .or_default()
                    .insert(pts.nseconds(), Instant::now());
            }
            gst::PadProbeReturn::Ok
        });
    }
}

/// Play until `total` frames reached the sink (files have no num-buffers) or the stream
/// ends, collecting the element's frame reports; returns the wall time in seconds.
fn run_to(pipeline: &gst::Pipeline, log: &Arc<Mutex<ElementLog>>, total: usize) -> Result<f64> {
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing)?;
    let started = Instant::now();
    let result = loop {
        let done = log
            .lock()
            .unwrap()
            .arrivals
            .get("out")
            .is_some_and(|a| a.len() >= total);
        if done {
            break Ok(());
        }
        if started.elapsed().as_secs() > 600 {
            break Err(anyhow!("element pipeline timed out"));
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(anyhow!("{}", e.error())),
            gst::MessageView::Element(_) => record_report(&msg, log),
            _ => {}
        }
    };
    // Reports of the last frames may still be queued on the bus.
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Element]) {
        record_report(&msg, log);
    }
    let wall = started.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    result.map(|()| wall)
}

/// Per-stage times of every frame after the warm-up that passed all points and reported.
fn element_stages(log: &ElementLog, warmup: usize) -> (Vec<(String, Vec<f64>)>, usize) {
    let between = |a: &str, b: &str, pts: u64| -> Option<f64> {
        let ta = log.arrivals.get(a)?.get(&pts)?;
        let tb = log.arrivals.get(b)?.get(&pts)?;
        Some(tb.duration_since(*ta).as_secs_f64() * 1e3)
    };
    let mut stages: Vec<(String, Vec<f64>)> = [
        "convert_in",
        "stylize",
        "infer",
        "convert",
        "convert_out",
        "end_to_end",
    ]
    .iter()
    .map(|n| (n.to_string(), Vec::new()))
    .collect();
    let mut frames = 0usize;
    for &pts in log.order.iter().skip(warmup) {
        let (Some(cin), Some(st), Some(cout), Some(e2e), Some(&(infer, convert))) = (
            between("in", "stylize_in", pts),
            between("stylize_in", "stylize_out", pts),
            between("stylize_out", "out", pts),
            between("in", "out", pts),
            log.reports.get(&pts),
        ) else {
            continue;
        };
        for (slot, v) in stages.iter_mut().zip([cin, st, infer, convert, cout, e2e]) {
            slot.1.push(v);
        }
        frames += 1;
    }
    (stages, frames)
}

pub fn run_latency(args: &LatencyArgs) -> Result<()> {
    crate::init_gstreamer()?;
    let spec = spec(args)?;
    if let Input::File(p) = Input::parse(&args.input) {
        if let Some(problem) = stylize_engines::files::input_file_problem(&p) {
            bail!("{problem}");
        }
    }
    let mut args = args.clone();
    if args.style.threads == 0 {
        args.style.threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    }
    eprintln!("bench latency: daemon pipeline ({} frames)", args.frames);
    let (daemon, daemon_series) = daemon_path(&args, spec)?;
    let (element, element_series) = if args.no_element {
        (Value::Null, Vec::new())
    } else {
        eprintln!("bench latency: element pipeline ({} frames)", args.frames);
        let (v, s) = element_path(&args, spec)?;
        (v, s)
    };
    let mut panels = vec![Panel {
        title: "stylize webcam stages".into(),
        series: daemon_series,
    }];
    if !element_series.is_empty() {
        panels.push(Panel {
            title: "GStreamer element pipeline".into(),
            series: element_series,
        });
    }
    plot::write_png(&args.plot, &panels)
        .with_context(|| format!("writing {}", args.plot.display()))?;
    let report = json!({
        "tool": "stylize bench latency",
        "model": args.style.model_path().display().to_string(),
        "input": args.input,
        "size": format!("{}x{}", spec.width, spec.height),
        "fps_requested": spec.fps,
        "inference_size": args.stream.inference_size.map(|(w, h)| format!("{w}x{h}")),
        "scale": args.stream.scale,
        "threads": args.style.threads,
        "frames": args.frames,
        "warmup": args.warmup,
        "live": args.live,
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "daemon": daemon,
        "element": element,
        "plot": std::path::absolute(&args.plot)?.display().to_string(),
    });
    crate::stats::write_report(&args.out, &serde_json::to_string_pretty(&report)?)?;
    let p = |v: &Value, stage: &str, q: &str| v["stages_ms"][stage][q].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "daemon: end-to-end p50 {:.1} / p95 {:.1} / p99 {:.1} ms, infer p50 {:.1} ms, {:.1} fps, {} dropped",
        p(&report["daemon"], "end_to_end", "p50"),
        p(&report["daemon"], "end_to_end", "p95"),
        p(&report["daemon"], "end_to_end", "p99"),
        p(&report["daemon"], "infer", "p50"),
        report["daemon"]["fps"].as_f64().unwrap_or(0.0),
        report["daemon"]["dropped"],
    );
    if !args.no_element {
        eprintln!(
            "element: end-to-end p50 {:.1} / p95 {:.1} / p99 {:.1} ms, infer p50 {:.1} ms, {:.1} fps",
            p(&report["element"], "end_to_end", "p50"),
            p(&report["element"], "end_to_end", "p95"),
            p(&report["element"], "end_to_end", "p99"),
            p(&report["element"], "infer", "p50"),
            report["element"]["fps"].as_f64().unwrap_or(0.0),
        );
    }
    println!("{}", std::path::absolute(&args.out)?.display());
    Ok(())
}
