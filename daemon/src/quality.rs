//! `stylize bench quality IN...`: temporal stability and content preservation of the stylized
//! video, with the temporal filter off and at each requested `stability`.
//!
//! Frames are decoded (and scaled to `--width`) with GStreamer, stylized by the engine, the
//! same path the element runs, once per stability value, and dumped as raw RGB. The metrics
//! come from `scripts/quality_metrics.py` (OpenCV Farneback flow as an independent reference:
//! the filter's own flow must not grade itself) plus a Rust cross-check; a synthetic clip with
//! a moving square measures trails behind moving edges. Everything goes to one JSON file.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use gst::prelude::*;
use serde::Serialize;

use stylize_engines::frame::{self, FrameLayout, PixelFormat, RgbImage};
use stylize_engines::temporal::{self, TemporalFilter, DEFAULT_STABILITY};
use stylize_engines::{runtime, Stylizer};

use crate::file::parse_size;
use crate::stats::{summarize, Summary};
use crate::StyleArgs;

#[derive(Args, Debug)]
pub struct QualityArgs {
    /// Input videos (default: bigbuckbunny.mp4, bikes.mp4 and vtest.avi from scripts/setup).
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub style: StyleArgs,
    /// Frames taken from the start of each video.
    #[arg(long, default_value_t = 40)]
    pub frames: usize,
    /// Frames are scaled to this width (aspect kept) before stylizing; 0 keeps the size.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Network size as WIDTHxHEIGHT (0 keeps the aspect ratio).
    #[arg(long, value_parser = parse_size, default_value = "320x0")]
    pub inference_size: (u32, u32),
    /// Stability values to compare, comma-separated; 0 (off) is always included.
    #[arg(long, value_delimiter = ',', default_values_t = [DEFAULT_STABILITY])]
    pub stability: Vec<f64>,
    /// JSON output file.
    #[arg(long, default_value = "quality.json")]
    pub out: PathBuf,
    /// Python with numpy and OpenCV (default: the setup's venv).
    #[arg(long)]
    pub python: Option<PathBuf>,
}

#[derive(Serialize)]
struct Variant {
    stability: f64,
    /// OpenCV-flow metrics from scripts/quality_metrics.py.
    warping_error: f64,
    flicker_index: f64,
    ssim_content: f64,
    /// SSIM to content per frame: shows whether a difference builds up over time or comes
    /// from the frames the propagated texture was painted on.
    ssim_per_frame: serde_json::Value,
    /// Same warping error with the engine's own flow (cross-check).
    warping_error_rust: f64,
    /// Relative to stability 0, in percent (negative: lower).
    warping_error_change_pct: f64,
    ssim_change_pct: f64,
    infer_ms: Option<Summary>,
    /// Cost of the temporal filter per frame (at the inference size).
    temporal_ms: Option<Summary>,
}

#[derive(Serialize)]
struct Clip {
    input: String,
    frames: usize,
    width: usize,
    height: usize,
    inference: (usize, usize),
    input_warping_error: f64,
    masked_fraction: f64,
    variants: Vec<Variant>,
}

#[derive(Serialize)]
struct Ghosting {
    clip: String,
    /// Worst trail ratio over the frames per stability (0 = no trail; see
    /// `temporal::trail_ratio`), and the same for plain frame blending at each stability.
    motion_compensated: Vec<(f64, f64)>,
    plain_blend: Vec<(f64, f64)>,
}

#[derive(Serialize)]
struct Report {
    tool: &'static str,
    model: String,
    style: Option<String>,
    threads: usize,
    default_stability: f64,
    metrics: serde_json::Value,
    clips: Vec<Clip>,
    ghosting: Ghosting,
}

/// Decode up to `limit` frames as RGB, scaled to `width` (0: as is).
pub fn decode(path: &Path, limit: usize, width: u32) -> Result<Vec<RgbImage>> {
    if let Some(problem) = stylize_engines::files::input_file_problem(path) {
        bail!("{problem}");
    }
    let scale = if width > 0 {
        format!("videoscale ! video/x-raw,width={width},pixel-aspect-ratio=1/1 ! ")
    } else {
        String::new()
    };
    let launch = format!(
        "filesrc name=src ! decodebin ! videoconvert ! {scale}videoconvert ! \
         video/x-raw,format=RGB ! appsink name=sink sync=false max-buffers=4"
    );
    let pipeline = gst::parse::launch(&launch)?
        .downcast::<gst::Pipeline>()
        .expect("a launch line with several elements is a pipeline");
    let by_name = |n: &str| pipeline.by_name(n).expect("named in the launch line");
    by_name("src").set_property("location", path.to_string_lossy().as_ref());
    let sink = by_name("sink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    pipeline.set_state(gst::State::Playing)?;
    let mut frames = Vec::new();
    let result = (|| {
        while frames.len() < limit {
            let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) else {
                if sink.is_eos() {
                    break;
                }
                let bus = pipeline.bus().expect("bus");
                if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
                    if let gst::MessageView::Error(e) = msg.view() {
                        bail!("decoding {}: {}", path.display(), e.error());
                    }
                }
                bail!("decoding {} timed out", path.display());
            };
            let caps = sample.caps().context("sample without caps")?;
            let info = gst_video::VideoInfo::from_caps(caps)?;
            let buffer = sample.buffer().context("sample without buffer")?;
            let map = buffer.map_readable()?;
            let layout = FrameLayout {
                format: PixelFormat::Rgb,
                width: info.width() as usize,
                height: info.height() as usize,
                stride: info.stride()[0] as usize,
            };
            frames.push(frame::read_rgb(&map, &layout)?);
        }
        Ok(())
    })();
    pipeline.set_state(gst::State::Null)?;
    result?;
    if frames.len() < 2 {
        bail!("{} has fewer than 2 video frames", path.display());
    }
    Ok(frames)
}

/// Stylize a sequence at one stability; returns the frames and per-frame timings.
fn stylize_all(
    stylizer: &mut Stylizer,
    frames: &[RgbImage],
    inference: (usize, usize),
    conditioning: &[f32],
    stability: f64,
) -> Result<(Vec<RgbImage>, Vec<f64>, Vec<f64>)> {
    stylizer.set_stability(stability);
    stylizer.reset_temporal();
    let (mut out, mut infer, mut temporal) = (Vec::new(), Vec::new(), Vec::new());
    for img in frames {
        let (styled, t) = stylizer.stylize_image(img, inference, conditioning)?;
        out.push(styled);
        infer.push(t.infer_ms);
        temporal.push(t.temporal_ms);
    }
    Ok((out, infer, temporal))
}

fn dump(path: &Path, frames: &[RgbImage]) -> Result<()> {
    let bytes: Vec<u8> = frames.iter().flat_map(|f| f.data.iter().copied()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn ghosting(
    stylizer: &mut Stylizer,
    conditioning: &[f32],
    stabilities: &[f64],
) -> Result<Ghosting> {
    let (w, h) = (320, 180);
    let inputs = temporal::moving_square_clip(w, h, 12);
    let (plain, _, _) = stylize_all(stylizer, &inputs, (w, h), conditioning, 0.0)?;
    let mut ours = Vec::new();
    let mut naive = Vec::new();
    for &s in stabilities.iter().filter(|s| **s > 0.0) {
        let (smoothed, _, _) = stylize_all(stylizer, &inputs, (w, h), conditioning, s)?;
        ours.push((s, temporal::worst_trail_ratio(&inputs, &plain, &smoothed)));
        let blended = TemporalFilter::naive(s).smooth_sequence(&inputs, &plain);
        naive.push((s, temporal::worst_trail_ratio(&inputs, &plain, &blended)));
    }
    Ok(Ghosting {
        clip: format!(
            "synthetic: {}px square moving 6 px/frame over a still texture, {w}x{h}, 12 frames",
            h / 3
        ),
        motion_compensated: ours,
        plain_blend: naive,
    })
}

pub fn run(args: &QualityArgs) -> Result<()> {
    crate::init_gstreamer()?;
    let inputs = if args.inputs.is_empty() {
        let media = runtime::assets_dir().join("media");
        ["bigbuckbunny.mp4", "bikes.mp4", "vtest.avi"]
            .iter()
            .map(|f| media.join(f))
            .collect()
    } else {
        args.inputs.clone()
    };
    if args.frames < 2 {
        bail!("--frames must be at least 2");
    }
    let stabilities = stabilities(&args.stability)?;
    let threads = if args.style.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.style.threads as usize
    };
    let model = args.style.model_path();
    let mut style = args.style.clone();
    style.threads = threads as u32;
    // The same session as the element's; each run below sets its own stability.
    let session = style.open_session(0.0, stylize_engines::InferenceSize::default())?;
    let mut resolver = session.resolver;
    let scratch = std::env::temp_dir().join(format!("stylize-quality-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let mut measure = ClipMeasure {
        args,
        stylizer: session.stylizer,
        conditioning: resolver.resolve(&style.request())?.conditioning,
        stabilities,
        python: args
            .python
            .clone()
            .unwrap_or_else(|| runtime::assets_dir().join("venv/bin/python")),
        scratch,
    };
    let mut clips = Vec::new();
    let mut metrics_meta = serde_json::Value::Null;
    for input in &inputs {
        let (clip, meta) = measure.clip(input)?;
        clips.push(clip);
        metrics_meta = meta;
    }
    eprintln!("quality: ghosting clip");
    let ghosting = ghosting(
        &mut measure.stylizer,
        &measure.conditioning,
        &measure.stabilities,
    )?;
    let _ = std::fs::remove_dir_all(&measure.scratch);

    let report = Report {
        tool: "stylize bench quality",
        model: model.display().to_string(),
        style: args
            .style
            .style
            .clone()
            .or(args.style.style_weights.clone()),
        threads,
        default_stability: DEFAULT_STABILITY,
        metrics: metrics_meta,
        clips,
        ghosting,
    };
    crate::stats::write_report(&args.out, &serde_json::to_string_pretty(&report)?)?;
    print_summary(&report);
    println!("{}", std::path::absolute(&args.out)?.display());
    Ok(())
}

/// 0 (off, the baseline) and the values asked for, each once.
fn stabilities(asked: &[f64]) -> Result<Vec<f64>> {
    let mut stabilities = vec![0.0];
    for &s in asked {
        if !(0.0..=1.0).contains(&s) {
            bail!("stability {s} is not between 0 and 1");
        }
        if !stabilities.contains(&s) {
            stabilities.push(s);
        }
    }
    Ok(stabilities)
}

/// What measuring one clip needs: the stylizer, the style, and where the metrics run.
struct ClipMeasure<'a> {
    args: &'a QualityArgs,
    stylizer: Stylizer,
    conditioning: Vec<f32>,
    stabilities: Vec<f64>,
    python: PathBuf,
    scratch: PathBuf,
}

impl ClipMeasure<'_> {
    /// Stylize a clip at every stability and grade each run with scripts/quality_metrics.py
    /// (OpenCV flow); returns the clip's results and the metrics' own description.
    fn clip(&mut self, input: &Path) -> Result<(Clip, serde_json::Value)> {
        let name = input.file_name().map_or_else(
            || input.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        eprintln!("quality {name}: decoding {} frames", self.args.frames);
        let frames = decode(input, self.args.frames, self.args.width)?;
        let (w, h) = (frames[0].width, frames[0].height);
        let size = stylize_engines::InferenceSize {
            width: self.args.inference_size.0 as usize,
            height: self.args.inference_size.1 as usize,
            scale: 1.0,
        };
        let inference = size.resolve(w, h);
        let input_dump = self.scratch.join(format!("{name}.input.rgb"));
        dump(&input_dump, &frames)?;
        let mut runs = Vec::new();
        let mut variants = Vec::new();
        for &s in &self.stabilities {
            eprintln!("quality {name}: stylizing at stability {s}");
            let (out, infer, temporal_ms) = stylize_all(
                &mut self.stylizer,
                &frames,
                inference,
                &self.conditioning,
                s,
            )?;
            let path = self.scratch.join(format!("{name}.{s}.rgb"));
            dump(&path, &out)?;
            variants.push(format!("{s}={}", path.display()));
            runs.push((
                s,
                temporal::sequence_warping_error(&frames, &out),
                infer,
                temporal_ms,
            ));
        }
        eprintln!("quality {name}: metrics (OpenCV)");
        let m = self.metrics(&input_dump, (w, h), frames.len(), &variants)?;
        let get = |s: f64, key: &str| {
            m["variants"][s.to_string()][key]
                .as_f64()
                .unwrap_or(f64::NAN)
        };
        let (off_warp, off_ssim) = (get(0.0, "warping_error"), get(0.0, "ssim_content"));
        let variants = runs
            .into_iter()
            .map(|(s, rust_err, infer, temporal_ms)| Variant {
                stability: s,
                warping_error: get(s, "warping_error"),
                flicker_index: get(s, "flicker_index"),
                ssim_content: get(s, "ssim_content"),
                ssim_per_frame: m["variants"][s.to_string()]["ssim_per_frame"].clone(),
                warping_error_rust: rust_err,
                warping_error_change_pct: 100.0 * (get(s, "warping_error") / off_warp - 1.0),
                ssim_change_pct: 100.0 * (get(s, "ssim_content") / off_ssim - 1.0),
                infer_ms: summarize(&infer),
                temporal_ms: summarize(&temporal_ms),
            })
            .collect();
        let clip = Clip {
            input: input.display().to_string(),
            frames: frames.len(),
            width: w,
            height: h,
            inference,
            input_warping_error: m["input_warping_error"].as_f64().unwrap_or(f64::NAN),
            masked_fraction: m["masked_fraction"].as_f64().unwrap_or(f64::NAN),
            variants,
        };
        Ok((
            clip,
            serde_json::json!({"opencv": m["opencv"], "flow": m["flow"]}),
        ))
    }

    /// scripts/quality_metrics.py on the dumped input and stylized runs.
    fn metrics(
        &self,
        input_dump: &Path,
        (w, h): (usize, usize),
        frames: usize,
        variants: &[String],
    ) -> Result<serde_json::Value> {
        let script = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/quality_metrics.py"
        ));
        let mut cmd = Command::new(&self.python);
        cmd.arg(&script)
            .args(["--width", &w.to_string(), "--height", &h.to_string()])
            .args(["--frames", &frames.to_string()])
            .arg("--input")
            .arg(input_dump);
        for v in variants {
            cmd.arg("--variant").arg(v);
        }
        let output = cmd.output().with_context(|| {
            format!(
                "running {} (scripts/setup makes the venv)",
                self.python.display()
            )
        })?;
        if !output.status.success() {
            bail!(
                "quality_metrics.py failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        serde_json::from_slice(&output.stdout).context("parsing quality_metrics.py output")
    }
}

fn print_summary(report: &Report) {
    for c in &report.clips {
        for v in c.variants.iter().filter(|v| v.stability > 0.0) {
            eprintln!(
                "{}: stability {}: warping error {:+.1} %, SSIM {:+.2} %, filter {:.2} ms/frame",
                c.input,
                v.stability,
                v.warping_error_change_pct,
                v.ssim_change_pct,
                v.temporal_ms.as_ref().map_or(f64::NAN, |s| s.mean)
            );
        }
    }
    for ((s, ours), (_, naive)) in report
        .ghosting
        .motion_compensated
        .iter()
        .zip(&report.ghosting.plain_blend)
    {
        eprintln!("moving square: stability {s}: trail {ours:.3} (plain blending {naive:.3})");
    }
}
