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

use crate::StyleArgs;

#[derive(Args, Debug)]
pub struct FileArgs {
    /// Input video (mp4, mkv, webm, avi, mov, ... anything decodebin reads).
    pub input: PathBuf,
    /// Output MP4 (H.264).
    pub output: PathBuf,
    #[command(flatten)]
    pub style: StyleArgs,
    /// Inference size as WIDTHxHEIGHT (0 in one dimension keeps the aspect ratio);
    /// the output keeps the input size.
    #[arg(long, value_parser = parse_size)]
    pub inference_size: Option<(u32, u32)>,
    /// Inference size as a fraction of the input size (ignored with --inference-size).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Temporal stability 0 (off) to 1: motion-compensated smoothing against flicker
    /// (the element's `stability` property).
    #[arg(long, default_value_t = stylize_engines::temporal::DEFAULT_STABILITY,
          value_parser = parse_stability)]
    pub stability: f64,
    /// x264 constant quantizer (lower is better quality, larger files).
    #[arg(long, default_value_t = 20)]
    pub quantizer: u32,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_stability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a stability between 0 and 1")),
    }
}

pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT"))?;
    let num = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("`{v}` in `{s}` is not a number"))
    };
    let (w, h) = (num(w)?, num(h)?);
    if w == 0 && h == 0 {
        return Err("width and height cannot both be 0".into());
    }
    Ok((w, h))
}

/// Frame counters shared with the pad probes.
#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    last_pts_ns: AtomicU64,
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
        .property("model", style.model_path().to_string_lossy().as_ref())
        .property("threads", style.threads)
        .property("scale", scale)
        .build()
        .context("the stylize element is not registered")?;
    if let Some(s) = &style.style {
        element.set_property("style", s);
    }
    if let Some(w) = &style.style_weights {
        element.set_property("style-weights", w);
    }
    if let Some((w, h)) = size {
        element.set_property("inference-width", w);
        element.set_property("inference-height", h);
    }
    Ok(element)
}

struct FilePipeline {
    pipeline: gst::Pipeline,
    counters: Arc<Counters>,
}

fn build(args: &FileArgs) -> Result<FilePipeline> {
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
    sink.set_property("location", args.output.to_string_lossy().as_ref());
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
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            c.frames_out.fetch_add(1, Ordering::Relaxed);
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                c.last_pts_ns.store(pts.nseconds(), Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
    Ok(FilePipeline { pipeline, counters })
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg} (eta {eta})",
        )
        .expect("valid template"),
    );
    bar
}

fn error_text(err: &gst::message::Error) -> String {
    match err.debug() {
        Some(debug) => format!("{} ({debug})", err.error()),
        None => err.error().to_string(),
    }
}

pub fn run(args: &FileArgs) -> Result<()> {
    if !args.input.is_file() {
        bail!("input {} does not exist", args.input.display());
    }
    crate::init_gstreamer()?;
    let FilePipeline { pipeline, counters } = build(args)?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let bar = progress_bar(args.quiet);
    let started = Instant::now();
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| start_error(&bus))
        .and_then(|_| wait(&pipeline, &bus, &counters, &bar, &started))
        .inspect_err(|_| {
            bar.abandon();
            let _ = pipeline.set_state(gst::State::Null);
            let _ = std::fs::remove_file(&args.output);
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
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "stylized {frames_out} frames in {secs:.1} s ({:.1} fps)",
        frames_out as f64 / secs
    );
    println!("{}", absolute(&args.output).display());
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
        if duration.is_none() {
            duration = pipeline
                .query_duration::<gst::ClockTime>()
                .filter(|d| !d.is_zero());
            if let Some(d) = duration {
                bar.set_length(d.mseconds());
            }
        }
        let frames = counters.frames_out.load(Ordering::Relaxed);
        let pos = Duration::from_nanos(counters.last_pts_ns.load(Ordering::Relaxed));
        bar.set_position(pos.as_millis() as u64);
        let fps = frames as f64 / started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!("frame {frames}, {fps:.1} fps"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_clear_errors() {
        assert_eq!(parse_size("320x180"), Ok((320, 180)));
        assert_eq!(parse_size("320X0"), Ok((320, 0)));
        assert!(parse_size("320").unwrap_err().contains("WIDTHxHEIGHT"));
        assert!(parse_size("ax2").unwrap_err().contains("not a number"));
        assert!(parse_size("0x0").unwrap_err().contains("both be 0"));
        assert_eq!(parse_stability("0.5"), Ok(0.5));
        assert!(parse_stability("1.5")
            .unwrap_err()
            .contains("between 0 and 1"));
    }
}
