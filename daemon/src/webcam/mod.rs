//! `stylize webcam`: camera → stylize → virtual camera, live.
//!
//! Three stages on their own threads, joined by bounded queues ([`queue`]):
//!
//! ```text
//! capture (Source) ──q1──► stylize (Processor) ──q2──► output (Sink)
//! ```
//!
//! In live mode each queue drops its oldest frame when full, so a slow model costs frames,
//! never latency; drops are counted. The capture stage survives camera faults (unplugged,
//! busy) by reopening with backoff while the output stage keeps re-sending the last good
//! frame, so OBS or a browser never sees the stream stop. Runtime control (style, blend,
//! pause, stats, quit) arrives over a Unix socket ([`crate::control`]).

pub mod queue;
pub mod sink;
pub mod source;
mod stages;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::json;

use stylize_engines::frame::{FrameLayout, PixelFormat};
use stylize_engines::{InferenceSize, StyleRequest, StyleResolver, Stylizer, Timings};

use crate::control::{self, Request, Response};
use crate::file::parse_size;
use crate::stats::summarize;
use crate::StyleArgs;
use queue::Overflow;
use sink::{GstSink, Output, Sink};
use source::{GstSource, Input, Source};

#[derive(Args, Debug)]
pub struct WebcamArgs {
    /// Camera (/dev/videoN), a video file (played in real time), or `test[:PATTERN]`
    /// for GStreamer's test pattern.
    #[arg(long)]
    pub input: String,
    /// v4l2loopback device to write to (/dev/videoM), or `null` to discard.
    #[arg(long)]
    pub output: String,
    #[command(flatten)]
    pub style: StyleArgs,
    /// Frame size of capture and output, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_size, default_value = "640x480")]
    pub size: (u32, u32),
    /// Frame rate of capture and output.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Control socket (default: $XDG_RUNTIME_DIR/stylize.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Stop after this many captured frames (trials and tests).
    #[arg(long)]
    pub frames: Option<u64>,
}

/// Size and rate every stage works at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VideoSpec {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
}

impl VideoSpec {
    pub fn frame_interval(&self) -> Duration {
        Duration::from_secs(1) / self.fps.max(1)
    }
}

/// Milliseconds a frame spent in each stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FrameTimes {
    /// Copying the frame out of the capture pipeline.
    pub capture_ms: f64,
    /// Decoding in the capture pipeline (MJPEG from a camera, a file's codec; 0 for raw).
    pub decode_ms: f64,
    /// Waiting for the stylize stage.
    pub queue_ms: f64,
    pub convert_in_ms: f64,
    pub infer_ms: f64,
    pub convert_out_ms: f64,
    /// Motion-compensated smoothing (0 with `--stability 0`).
    pub temporal_ms: f64,
    /// Stylize stage done → written to the sink (queue wait and the write).
    pub output_ms: f64,
    /// Captured → written.
    pub end_to_end_ms: f64,
    /// When it was written, in seconds since the output stage started.
    pub written_at_s: f64,
}

/// One RGBx frame on its way through the stages.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Capture order, from 1.
    pub seq: u64,
    pub width: usize,
    pub height: usize,
    /// Tightly packed RGBx.
    pub data: Vec<u8>,
    pub captured: Instant,
    /// When the frame entered its current queue.
    pub handed_over: Instant,
    pub times: FrameTimes,
}

impl Frame {
    pub fn new(data: Vec<u8>, spec: VideoSpec, capture_ms: f64, decode_ms: f64) -> Self {
        let now = Instant::now();
        Self {
            seq: 0,
            width: spec.width,
            height: spec.height,
            data,
            captured: now,
            handed_over: now,
            times: FrameTimes {
                capture_ms,
                decode_ms,
                ..FrameTimes::default()
            },
        }
    }

    /// A black frame, sent before the camera delivered anything.
    pub fn black(spec: VideoSpec) -> Self {
        Self::new(vec![0; spec.width * spec.height * 4], spec, 0.0, 0.0)
    }
}

/// The stylize step; a trait so tests can run the stages with a deterministic slow stand-in.
pub trait Processor: Send {
    fn process(&mut self, frame: &mut Frame, conditioning: &[f32]) -> Result<Timings>;
}

/// The real step: the engine's [`Stylizer`] at an inference size.
pub struct StylizeStep {
    pub stylizer: Stylizer,
    pub size: InferenceSize,
}

impl Processor for StylizeStep {
    fn process(&mut self, frame: &mut Frame, conditioning: &[f32]) -> Result<Timings> {
        let layout = FrameLayout {
            format: PixelFormat::Rgbx,
            width: frame.width,
            height: frame.height,
            stride: frame.width * 4,
        };
        Ok(self
            .stylizer
            .stylize_frame(&mut frame.data, &layout, &self.size, conditioning)?)
    }
}

/// How the stages behave.
#[derive(Debug, Clone)]
pub struct Config {
    pub spec: VideoSpec,
    /// Drop-oldest queues and keep-alive output (a camera); else block and lose nothing.
    pub live: bool,
    /// Keep every frame's timings (benchmarks), not only the recent window.
    pub record_all: bool,
    /// First and longest wait between camera reopen attempts.
    pub backoff: (Duration, Duration),
}

impl Config {
    pub fn live(spec: VideoSpec) -> Self {
        Self {
            spec,
            live: true,
            record_all: false,
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
        }
    }

    fn overflow(&self) -> Overflow {
        if self.live {
            Overflow::DropOldest
        } else {
            Overflow::Block
        }
    }
}

#[derive(Default)]
pub struct Counters {
    pub captured: AtomicU64,
    pub stylized: AtomicU64,
    pub passed_through: AtomicU64,
    /// New frames written to the sink.
    pub written: AtomicU64,
    /// Re-sends of the last good frame (or black before the first) while none was new.
    pub repeated: AtomicU64,
    pub dropped_capture: Arc<AtomicU64>,
    pub dropped_output: Arc<AtomicU64>,
    pub source_faults: AtomicU64,
    pub source_recoveries: AtomicU64,
}

fn get(v: &AtomicU64) -> u64 {
    v.load(Ordering::Relaxed)
}

/// The style the stylize stage applies, swapped whole by the control server.
struct ActiveStyle {
    label: String,
    conditioning: Arc<Vec<f32>>,
}

/// Timings of written frames: a recent window for `stats`, everything for benchmarks.
#[derive(Default)]
struct TimeLog {
    recent: VecDeque<(Instant, FrameTimes)>,
    all: Vec<FrameTimes>,
}

const RECENT: usize = 300;

/// State shared by the stages, the control server and the signal handlers.
pub struct Shared {
    pub stop: Arc<AtomicBool>,
    pub paused: AtomicBool,
    /// False while the camera is faulted.
    pub source_healthy: AtomicBool,
    pub counters: Counters,
    /// Resolves control requests (may run the style predictor) off the streaming threads.
    resolver: Mutex<StyleResolver>,
    pub started: Instant,
    style: Mutex<ActiveStyle>,
    log: Mutex<TimeLog>,
    record_all: bool,
}

impl Shared {
    /// Validates the initial style against the model (no library, no predictor).
    #[cfg(test)]
    pub fn new(
        model: stylize_engines::model::ModelInfo,
        style: Option<&str>,
        blend: Option<&str>,
    ) -> Result<Self> {
        let request = StyleRequest {
            style: style.map(String::from),
            blend: blend.map(String::from),
            image: None,
        };
        let cache = stylize_engines::embedding::EmbeddingCache::new(
            stylize_engines::embedding::default_cache_dir(),
        );
        Self::with_resolver(StyleResolver::new(model, None, cache, None), &request)
    }

    /// Validates the initial style with a resolver that may use a library and a predictor.
    pub fn with_resolver(mut resolver: StyleResolver, request: &StyleRequest) -> Result<Self> {
        let resolved = resolver.resolve(request)?;
        for note in &resolved.notes {
            eprintln!("stylize: warning: {note}");
        }
        let conditioning = resolved.conditioning;
        let label = request
            .image
            .as_ref()
            .map(|p| p.display().to_string())
            .or_else(|| request.blend.clone())
            .or_else(|| request.style.clone())
            .unwrap_or_else(|| "default".to_string());
        Ok(Self {
            resolver: Mutex::new(resolver),
            stop: Arc::default(),
            paused: AtomicBool::new(false),
            source_healthy: AtomicBool::new(false),
            counters: Counters::default(),
            started: Instant::now(),
            style: Mutex::new(ActiveStyle {
                label,
                conditioning: Arc::new(conditioning),
            }),
            log: Mutex::default(),
            record_all: false,
        })
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn conditioning(&self) -> Arc<Vec<f32>> {
        self.style.lock().unwrap().conditioning.clone()
    }

    pub fn style_label(&self) -> String {
        self.style.lock().unwrap().label.clone()
    }

    fn set_style(&self, label: String, conditioning: Vec<f32>) {
        *self.style.lock().unwrap() = ActiveStyle {
            label,
            conditioning: Arc::new(conditioning),
        };
    }

    fn record(&self, times: FrameTimes) {
        let mut log = self.log.lock().unwrap();
        if log.recent.len() == RECENT {
            log.recent.pop_front();
        }
        log.recent.push_back((Instant::now(), times));
        if self.record_all {
            log.all.push(times);
        }
    }

    /// Every written frame's timings (with `record_all`).
    pub fn all_times(&self) -> Vec<FrameTimes> {
        self.log.lock().unwrap().all.clone()
    }

    /// The `stats` reply.
    pub fn stats(&self) -> serde_json::Value {
        let c = &self.counters;
        let log = self.log.lock().unwrap();
        let times: Vec<FrameTimes> = log.recent.iter().map(|(_, t)| *t).collect();
        let fps = match (log.recent.front(), log.recent.back()) {
            (Some((first, _)), Some((last, _))) if log.recent.len() > 1 => {
                let span = last.duration_since(*first).as_secs_f64();
                (log.recent.len() - 1) as f64 / span.max(1e-9)
            }
            _ => 0.0,
        };
        drop(log);
        json!({
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "style": self.style_label(),
            "paused": self.paused.load(Ordering::Relaxed),
            "fps": fps,
            "frames": {
                "captured": get(&c.captured),
                "stylized": get(&c.stylized),
                "passed_through": get(&c.passed_through),
                "written": get(&c.written),
                "repeated": get(&c.repeated),
            },
            "dropped": {
                "capture_queue": get(&c.dropped_capture),
                "output_queue": get(&c.dropped_output),
            },
            "source": {
                "healthy": self.source_healthy.load(Ordering::Relaxed),
                "faults": get(&c.source_faults),
                "recoveries": get(&c.source_recoveries),
            },
            "latency_ms": stage_summaries(&times),
        })
    }

    /// Resolve a style request and make it current; the stream keeps its old style on error.
    fn apply(&self, label: String, request: StyleRequest) -> Response {
        let resolved = self.resolver.lock().unwrap().resolve(&request);
        match resolved {
            Ok(resolved) => {
                self.set_style(label.clone(), resolved.conditioning);
                let mut reply = json!({ "style": label });
                if !resolved.notes.is_empty() {
                    reply["notes"] = json!(resolved.notes);
                }
                Response::ok(reply)
            }
            Err(err) => Response::error(err.to_string()),
        }
    }

    /// Answer one control request.
    pub fn handle(&self, request: Request) -> Response {
        match request {
            Request::Style { name } => self.apply(
                name.clone(),
                StyleRequest {
                    style: Some(name),
                    ..Default::default()
                },
            ),
            Request::Blend { weights } => self.apply(
                weights.clone(),
                StyleRequest {
                    blend: Some(weights),
                    ..Default::default()
                },
            ),
            Request::StyleImage { path } => self.apply(
                path.display().to_string(),
                StyleRequest {
                    image: Some(path),
                    ..Default::default()
                },
            ),
            // A tuned prompt switches like a style; an untuned one is an error reply and the
            // stream keeps its current style.
            Request::Prompt { text } => {
                let resolved = self.resolver.lock().unwrap().resolve_prompt(&text);
                match resolved {
                    Ok(resolved) => {
                        let label = format!("prompt: {}", control::shorten(&text, 80));
                        self.set_style(label.clone(), resolved.conditioning);
                        Response::ok(json!({ "style": label, "notes": resolved.notes }))
                    }
                    Err(err) => Response::error(err.to_string()),
                }
            }
            Request::Pause => {
                self.paused.store(true, Ordering::Relaxed);
                Response::ok(json!({ "paused": true }))
            }
            Request::Resume => {
                self.paused.store(false, Ordering::Relaxed);
                Response::ok(json!({ "paused": false }))
            }
            Request::Stats => Response::ok(self.stats()),
            Request::Quit => {
                self.request_stop();
                Response::ok(json!({ "quitting": true }))
            }
        }
    }
}

/// Reads one stage's time from a frame's timings.
pub type StageField = fn(&FrameTimes) -> f64;

/// The stages reported by `stats` and `bench latency`, in pipeline order.
pub const STAGES: [(&str, StageField); 9] = [
    ("decode", |t| t.decode_ms),
    ("capture", |t| t.capture_ms),
    ("queue", |t| t.queue_ms),
    ("convert_in", |t| t.convert_in_ms),
    ("infer", |t| t.infer_ms),
    ("convert_out", |t| t.convert_out_ms),
    ("temporal", |t| t.temporal_ms),
    ("output", |t| t.output_ms),
    ("end_to_end", |t| t.end_to_end_ms),
];

/// p50/p95/p99 per stage (null when there are no samples).
pub fn stage_summaries(times: &[FrameTimes]) -> serde_json::Value {
    let map = STAGES
        .iter()
        .map(|(name, field)| {
            let samples: Vec<f64> = times.iter().map(field).collect();
            (name.to_string(), json!(summarize(&samples)))
        })
        .collect();
    serde_json::Value::Object(map)
}

/// Running stages.
pub struct Webcam {
    threads: Vec<(&'static str, JoinHandle<Result<()>>)>,
}

impl Webcam {
    pub fn start(
        config: Config,
        shared: Arc<Shared>,
        source: Box<dyn Source>,
        processor: Box<dyn Processor>,
        sink: Box<dyn Sink>,
    ) -> Result<Self> {
        if config.record_all && !shared.record_all {
            return Err(anyhow!("record_all must be set on Shared before start"));
        }
        let (capture_tx, capture_rx) = queue::stage_queue(
            1,
            config.overflow(),
            shared.counters.dropped_capture.clone(),
        );
        let (output_tx, output_rx) =
            queue::stage_queue(2, config.overflow(), shared.counters.dropped_output.clone());
        let mut threads = Vec::new();
        let spawn = |name: &'static str, f: Box<dyn FnOnce() -> Result<()> + Send>| {
            std::thread::Builder::new()
                .name(format!("stylize-{name}"))
                .spawn(f)
                .map(|h| (name, h))
        };
        let (s, c) = (shared.clone(), config.clone());
        threads.push(spawn(
            "capture",
            Box::new(move || stages::capture(&c, &s, source, capture_tx)),
        )?);
        let s = shared.clone();
        threads.push(spawn(
            "stylize",
            Box::new(move || stages::stylize(&s, processor, capture_rx, output_tx)),
        )?);
        let (s, c) = (shared.clone(), config);
        threads.push(spawn(
            "output",
            Box::new(move || stages::output(&c, &s, sink, output_rx)),
        )?);
        Ok(Self { threads })
    }

    /// True once every stage has returned.
    pub fn finished(&self) -> bool {
        self.threads.iter().all(|(_, h)| h.is_finished())
    }

    /// Wait for every stage; the first stage error, if any.
    pub fn wait(self) -> Result<()> {
        let mut first = Ok(());
        for (name, handle) in self.threads {
            let result = handle
                .join()
                .map_err(|_| anyhow!("the {name} stage panicked"))
                .and_then(|r| r.with_context(|| format!("{name} stage")));
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}

/// Make `Shared` keep every frame's timings (benchmarks).
pub fn record_all(shared: &mut Shared) {
    shared.record_all = true;
}

/// Inference and smoothing options of the live paths (`webcam`, `bench latency`): the
/// network at half the frame size by default, where a camera's frame rate is in reach.
#[derive(clap::Args, Clone, Debug)]
pub struct LiveArgs {
    /// Inference size as WIDTHxHEIGHT (0 in one dimension keeps the aspect ratio).
    #[arg(long, value_parser = parse_size)]
    pub inference_size: Option<(u32, u32)>,
    /// Temporal stability 0 (off) to 1, as the element's `stability` (same default).
    #[arg(long, default_value_t = stylize_engines::session::DEFAULT_STABILITY,
          value_parser = crate::file::parse_stability)]
    pub stability: f64,
    /// Inference size as a fraction of the frame size (ignored with --inference-size).
    #[arg(long, default_value_t = 0.5)]
    pub scale: f64,
}

impl LiveArgs {
    pub fn inference(&self) -> InferenceSize {
        inference_size(self.inference_size, self.scale)
    }
}

pub fn inference_size(size: Option<(u32, u32)>, scale: f64) -> InferenceSize {
    match size {
        Some((w, h)) => InferenceSize {
            width: w as usize,
            height: h as usize,
            scale: 1.0,
        },
        None => InferenceSize {
            width: 0,
            height: 0,
            scale,
        },
    }
}

/// The stylizer for the stylize stage and the shared state that resolves its styles, from
/// the session constructor the element uses: the same model, predictor, strength and
/// temporal stability, so the webcam and the element do the same work per frame.
pub fn open_session(
    style: &StyleArgs,
    stability: f64,
    inference: InferenceSize,
) -> Result<(Stylizer, Shared)> {
    let session = style.open_session(stability, inference)?;
    let shared = Shared::with_resolver(session.resolver, &style.request())?;
    Ok((session.stylizer, shared))
}

pub fn run(args: &WebcamArgs) -> Result<()> {
    crate::init_gstreamer()?;
    let spec = VideoSpec {
        width: args.size.0 as usize,
        height: args.size.1 as usize,
        fps: args.fps,
    };
    if spec.width == 0 || spec.height == 0 || spec.fps == 0 {
        return Err(anyhow!("--size needs a width and a height, --fps above 0"));
    }
    // Sizes that drive allocations are checked before anything loads (`--scale 1000` or
    // `--inference-size 9000x9000` used to end in an abort or the OOM killer).
    if args.live.inference_size.is_none() {
        stylize_engines::limits::check_scale(args.live.scale)?;
    }
    args.live
        .inference()
        .resolve_checked(spec.width, spec.height)?;
    let output = Output::parse(&args.output)?;
    let (stylizer, shared) = open_session(&args.style, args.live.stability, args.live.inference())?;
    let shared = Arc::new(shared);
    let sink = GstSink::open(&output, spec)?;
    let input = Input::parse(&args.input);
    let source = GstSource::new(input, spec, true, args.frames);
    let socket = match &args.socket {
        Some(p) => p.clone(),
        None => control::default_socket_path()?,
    };
    let handler_shared = shared.clone();
    let server = control::Server::bind(
        &socket,
        Arc::new(move |req| handler_shared.handle(req)),
        shared.stop.clone(),
    )?;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while stopping exits at once (a stuck device must not trap the
        // user); the first one asks every stage to stop.
        signal_hook::flag::register_conditional_shutdown(signal, 130, shared.stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, shared.stop.clone()))
            .context("installing the signal handlers")?;
    }
    eprintln!(
        "stylize webcam: {} → {} at {}x{} {} fps; control: stylize ctl --socket {}",
        source.describe(),
        args.output,
        spec.width,
        spec.height,
        spec.fps,
        socket.display()
    );
    let step = StylizeStep {
        stylizer,
        size: args.live.inference(),
    };
    let webcam = Webcam::start(
        Config::live(spec),
        shared.clone(),
        Box::new(source),
        Box::new(step),
        Box::new(sink),
    )?;
    let result = webcam.wait();
    shared.request_stop();
    server.join();
    let stats = shared.stats();
    eprintln!(
        "stylize webcam: stopped; {} frames captured, {} written, {} repeated, {} dropped",
        stats["frames"]["captured"],
        stats["frames"]["written"],
        stats["frames"]["repeated"],
        get(&shared.counters.dropped_capture) + get(&shared.counters.dropped_output),
    );
    result
}

#[cfg(test)]
mod tests;
