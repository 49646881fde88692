//! `stylize file IN OUT`: decode any container GStreamer can demux, stylize every frame,
//! encode H.264 into MP4. Frame-exact: frames in and out are counted and must match.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use gst::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

/// Other subcommands take their sizes from here.
pub use crate::options::parse_size;
use crate::options::{parse_inference_size, parse_quantizer, parse_scale, parse_unit};
use crate::StyleArgs;

mod output;

use output::{Existing, OutputFile};

#[derive(Args, Debug)]
pub struct FileArgs {
    /// Input video (mp4, mkv, webm, avi, mov, ... anything decodebin reads).
    pub input: PathBuf,
    /// Output MP4 (H.264). Written to a temporary file beside it and renamed on success;
    /// never the input.
    pub output: PathBuf,
    /// Replace an existing output (only once the new file is complete).
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub style: StyleArgs,
    /// Inference size as WIDTHxHEIGHT (0 in one dimension keeps the aspect ratio), at most
    /// 8192 a side and 3840x2160 in area; the output keeps the input size.
    #[arg(long, value_parser = parse_inference_size)]
    pub inference_size: Option<(u32, u32)>,
    /// Inference size as a fraction of the input size, 0.01 to 4 (ignored with
    /// --inference-size).
    #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
    pub scale: f64,
    /// Temporal stability 0 (off) to 1: motion-compensated smoothing against flicker
    /// (the element's `stability` property).
    #[arg(long, default_value_t = stylize_engines::temporal::DEFAULT_STABILITY,
          value_parser = parse_unit)]
    pub stability: f64,
    /// x264 constant quantizer, 0 (lossless) to 50 (lower is better quality, larger files).
    #[arg(long, default_value_t = 20, value_parser = parse_quantizer)]
    pub quantizer: u32,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Frame counters shared with the pad probes.
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    /// Some containers (MPEG-TS, edited MP4/MKV) start at a non-zero timestamp: progress is
    /// measured from the first frame's.
    first_pts_ns: AtomicU64,
    last_pts_ns: AtomicU64,
    /// Frame rate from the negotiated caps, as numerator/denominator (0/0 when unknown).
    fps_num: AtomicU64,
    fps_den: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            first_pts_ns: AtomicU64::new(u64::MAX),
            last_pts_ns: AtomicU64::new(0),
            fps_num: AtomicU64::new(0),
            fps_den: AtomicU64::new(0),
        }
    }
}

fn make(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory).build().with_context(|| {
        format!(
            "GStreamer element `{factory}` is missing (run scripts/setup to install the plugins)"
        )
    })
}

/// The stylize element configured from command-line options.
pub fn stylize_element(
    style: &StyleArgs,
    scale: f64,
    size: Option<(u32, u32)>,
) -> Result<gst::Element> {
    let element = gst::ElementFactory::make("stylize")
        .build()
        .context("the stylize element is not registered")?;
    configure_stylize(&element, style, scale, size);
    Ok(element)
}

/// Set the command-line options on a stylize element (one made by a pipeline description).
pub fn configure_stylize(
    element: &gst::Element,
    style: &StyleArgs,
    scale: f64,
    size: Option<(u32, u32)>,
) {
    element.set_property("model", style.model_path().to_string_lossy().as_ref());
    element.set_property("threads", style.threads);
    element.set_property_from_str("backend", &style.backend.to_string());
    element.set_property("scale", scale);
    if let Some(s) = &style.style {
        element.set_property("style", s);
    }
    if let Some(w) = &style.style_weights {
        element.set_property("style-weights", w);
    }
    if let Some(p) = &style.style_image {
        element.set_property("style-image", p.to_string_lossy().as_ref());
    }
    element.set_property("style-strength", style.style_strength);
    if let Some(p) = &style.predictor {
        element.set_property("predictor", p.to_string_lossy().as_ref());
    }
    element.set_property("library", style.library_dir().to_string_lossy().as_ref());
    if let Some((w, h)) = size {
        element.set_property("inference-width", w);
        element.set_property("inference-height", h);
    }
}

struct FilePipeline {
    pipeline: gst::Pipeline,
    counters: Arc<Counters>,
}

fn build(args: &FileArgs, output: &Path) -> Result<FilePipeline> {
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", args.input.to_string_lossy().as_ref());
    let decode = make("decodebin")?;
    let queue = make("queue")?;
    let convert_in = make("videoconvert")?;
    let stylize = stylize_element(&args.style, args.scale, args.inference_size)?;
    stylize.set_property("stability", args.stability);
    let convert_out = make("videoconvert")?;
    let encode = make("x264enc")?;
    encode.set_property_from_str("pass", "quant");
    encode.set_property("quantizer", args.quantizer);
    encode.set_property_from_str("speed-preset", "faster");
    // No B-frames: with them mp4mux shifts every PTS by the reorder delay (80 ms at 25 fps)
    // and the output would no longer carry the input's timestamps.
    encode.set_property("bframes", 0u32);
    let parse = make("h264parse")?;
    let mux = make("mp4mux")?;
    let sink = make("filesink")?;
    sink.set_property("location", output.to_string_lossy().as_ref());
    pipeline.add_many([
        &src,
        &decode,
        &queue,
        &convert_in,
        &stylize,
        &convert_out,
        &encode,
        &parse,
        &mux,
        &sink,
    ])?;
    src.link(&decode)?;
    gst::Element::link_many([
        &queue,
        &convert_in,
        &stylize,
        &convert_out,
        &encode,
        &parse,
        &mux,
        &sink,
    ])?;

    // decodebin exposes one pad per stream: the first video stream goes to the stylizer,
    // every other stream into a fakesink so it cannot stall the pipeline as not-linked.
    let pipeline_weak = pipeline.downgrade();
    let queue_sink = queue.static_pad("sink").expect("queue has a sink pad");
    decode.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_video = caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"));
        if is_video && !queue_sink.is_linked() {
            if let Err(err) = pad.link(&queue_sink) {
                eprintln!("stylize: could not link the video stream: {err:?}");
            }
            return;
        }
        if let Ok(fake) = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
        {
            if pipeline.add(&fake).is_ok() {
                let _ = fake.sync_state_with_parent();
                let _ = pad.link(&fake.static_pad("sink").expect("fakesink has a sink pad"));
            }
        }
    });

    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    stylize
        .static_pad("sink")
        .expect("stylize has a sink pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            c.frames_in.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    let c = counters.clone();
    stylize
        .static_pad("src")
        .expect("stylize has a src pad")
        .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            c.frames_out.fetch_add(1, Ordering::Relaxed);
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                c.first_pts_ns.fetch_min(pts.nseconds(), Ordering::Relaxed);
                c.last_pts_ns.store(pts.nseconds(), Ordering::Relaxed);
            }
            if c.fps_den.load(Ordering::Relaxed) == 0 {
                let rate = pad
                    .current_caps()
                    .and_then(|caps| caps.structure(0)?.get::<gst::Fraction>("framerate").ok());
                if let Some(r) = rate.filter(|r| r.numer() > 0 && r.denom() > 0) {
                    c.fps_num.store(r.numer() as u64, Ordering::Relaxed);
                    c.fps_den.store(r.denom() as u64, Ordering::Relaxed);
                }
            }
            gst::PadProbeReturn::Ok
        });
    Ok(FilePipeline { pipeline, counters })
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    // A spinner until the duration is known: a bar of length 0 would read 100%.
    let bar = ProgressBar::new(0);
    bar.set_style(spinner_style());
    bar.set_message("starting");
    bar
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").expect("valid template")
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg} (eta {eta})",
    )
    .expect("valid template")
}

fn error_text(err: &gst::message::Error) -> String {
    match err.debug() {
        Some(debug) => format!("{} ({debug})", err.error()),
        None => err.error().to_string(),
    }
}

pub fn run(args: &FileArgs) -> Result<()> {
    if !args.input.exists() {
        bail!("input {} does not exist", args.input.display());
    }
    if !args.input.is_file() {
        bail!("input {} is not a file", args.input.display());
    }
    // Every check that could refuse the output runs before any work.
    let existing = if args.overwrite {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    let output = OutputFile::create(&args.output, &[&args.input], existing)?;
    crate::init_gstreamer()?;
    let FilePipeline { pipeline, counters } = build(args, output.temp_path())?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let bar = progress_bar(args.quiet);
    let started = Instant::now();
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| start_error(&bus))
        .and_then(|_| wait(&pipeline, &bus, &counters, &bar, &started))
        .inspect_err(|_| {
            bar.abandon();
            // The temporary output goes when `output` drops; nothing else is touched.
            let _ = pipeline.set_state(gst::State::Null);
        })?;
    pipeline.set_state(gst::State::Null)?;

    let frames_in = counters.frames_in.load(Ordering::Relaxed);
    let frames_out = counters.frames_out.load(Ordering::Relaxed);
    bar.finish_and_clear();
    if frames_in != frames_out {
        bail!("{frames_in} frames went in but {frames_out} came out");
    }
    if frames_out == 0 {
        bail!("{} has no video frames", args.input.display());
    }
    let dest = output.commit()?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "stylized {frames_out} frames in {secs:.1} s ({:.1} fps)",
        frames_out as f64 / secs
    );
    println!("{}", absolute(&dest).display());
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Why the pipeline refused to start: the first error an element posted, if any.
fn start_error(bus: &gst::Bus) -> anyhow::Error {
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(err) = msg.view() {
            return anyhow!("{}", error_text(err));
        }
    }
    anyhow!("the pipeline could not start")
}

/// Frames a stream of `duration` holds at `num/den` fps, when both are known.
fn expected_frames(duration: Option<Duration>, num: u64, den: u64) -> Option<u64> {
    let d = duration?;
    (num > 0 && den > 0).then(|| (d.as_secs_f64() * num as f64 / den as f64).round() as u64)
}

/// The text after the bar: frames done (of how many, when known) and throughput.
fn progress_message(frames: u64, total: Option<u64>, fps: f64) -> String {
    match total {
        Some(t) => format!("frame {frames}/{}, {fps:.1} fps", t.max(frames)),
        None => format!("frame {frames}, {fps:.1} fps"),
    }
}

fn wait(
    pipeline: &gst::Pipeline,
    bus: &gst::Bus,
    counters: &Counters,
    bar: &ProgressBar,
    started: &Instant,
) -> Result<()> {
    let mut duration = None;
    loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
            match msg.view() {
                gst::MessageView::Eos(_) => return Ok(()),
                gst::MessageView::Error(err) => bail!("{}", error_text(err)),
                gst::MessageView::Warning(w) => {
                    bar.suspend(|| eprintln!("stylize: warning: {}", w.error()))
                }
                _ => {}
            }
        }
        let frames = counters.frames_out.load(Ordering::Relaxed);
        if duration.is_none() {
            duration = pipeline
                .query_duration::<gst::ClockTime>()
                .filter(|d| !d.is_zero());
            // Streams without a duration (some AVI/WebM/TS) keep the spinner: no ETA to
            // give, only frames and speed.
            if let Some(d) = duration {
                bar.set_length(d.mseconds());
                bar.set_style(bar_style());
            }
        }
        if frames == 0 {
            continue;
        }
        let first = counters.first_pts_ns.load(Ordering::Relaxed);
        let last = counters.last_pts_ns.load(Ordering::Relaxed);
        let pos = Duration::from_nanos(last.saturating_sub(first));
        bar.set_position(pos.as_millis() as u64);
        let fps = frames as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let total = expected_frames(
            duration.map(Duration::from),
            counters.fps_num.load(Ordering::Relaxed),
            counters.fps_den.load(Ordering::Relaxed),
        );
        bar.set_message(progress_message(frames, total, fps));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_frames_against_the_expected_total() {
        let d = Some(Duration::from_millis(5280));
        assert_eq!(expected_frames(d, 25, 1), Some(132));
        assert_eq!(expected_frames(d, 30000, 1001), Some(158));
        assert_eq!(expected_frames(d, 0, 0), None);
        assert_eq!(expected_frames(None, 25, 1), None);
        assert_eq!(
            progress_message(33, Some(132), 2.54),
            "frame 33/132, 2.5 fps"
        );
        // A rounding-short estimate never shows more frames done than expected.
        assert_eq!(
            progress_message(133, Some(132), 1.0),
            "frame 133/133, 1.0 fps"
        );
        assert_eq!(progress_message(7, None, 1.0), "frame 7, 1.0 fps");
    }
}
