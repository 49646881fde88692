//! `stylize file IN OUT` (or `stylize file IN… --out-dir DIR`): decode any container
//! GStreamer can demux, stylize every frame of the first video stream, keep the other
//! streams, and write MP4, MOV, MKV or WebM by the output's extension. Frame-exact: frames
//! in and out are counted and must match; timestamps are kept.
//!
//! Nothing of the user's is destroyed ([`output`]); the first Ctrl-C finishes a playable
//! file with the frames done ([`interrupt`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use gst::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use crate::options::{
    parse_inference_size, parse_overlap, parse_quantizer, parse_scale, parse_segment, parse_unit,
};
/// Other subcommands take their sizes and stabilities from here.
pub use crate::options::{parse_size, parse_unit as parse_stability};
use crate::StyleArgs;

pub(crate) mod format;
mod interrupt;
pub(crate) mod output;
pub(crate) mod pipeline;
pub(crate) mod probe;

use format::OutputFormat;
pub use format::{Codec, Quality};
use interrupt::Interrupt;
pub use interrupt::Interrupted;
use output::{Existing, OutputFile};
use pipeline::{Range, Settings, Stats};

#[derive(Args, Debug)]
pub struct FileArgs {
    /// INPUT OUTPUT; or, with --out-dir, any number of input files and folders (every
    /// video file in a folder). Inputs: anything decodebin reads (mp4, mkv, webm, avi,
    /// mov, ts, ...). The output's extension picks the container: .mp4, .mov, .mkv, .webm.
    /// The output is written to a temporary file beside it and renamed on success; it is
    /// never the input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Write each input to DIR/NAME.EXT (see --ext) instead of naming one output.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Output extension with --out-dir: mp4, mov, mkv or webm.
    #[arg(long, default_value = "mp4", requires = "out_dir")]
    pub ext: String,
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
    /// Video codec (default: the container's first: H.264, or VP9 for .webm).
    #[arg(long, value_enum)]
    pub codec: Option<Codec>,
    /// Quality, mapped to the codec's own scale (docs/files.md).
    #[arg(long, value_enum, default_value_t)]
    pub quality: Quality,
    /// H.264/H.265 constant quantizer, 0 (lossless) to 50, instead of --quality (lower is
    /// better quality, larger files).
    #[arg(long, value_parser = parse_quantizer)]
    pub quantizer: Option<u32>,
    /// Drop the audio (by default it passes through, or is re-encoded when the container
    /// does not take it).
    #[arg(long)]
    pub no_audio: bool,
    /// Stylize only the K-th of N equal time ranges (K from 1), for jobs spread over
    /// machines; `stylize join OUT SEG...` puts the parts together without re-encoding.
    #[arg(long, value_name = "K/N", value_parser = parse_segment, conflicts_with = "out_dir")]
    pub segment: Option<(u32, u32)>,
    /// Continue an interrupted job: keep the existing output and stylize only what comes
    /// after its last frame (same options as the first run), then join the two.
    #[arg(long, conflicts_with_all = ["segment", "overwrite"])]
    pub resume: bool,
    /// Frames before a segment's cut run through the stylizer and are dropped, so temporal
    /// smoothing starts warm: 0 to 250.
    #[arg(long, default_value_t = 8, value_parser = parse_overlap)]
    pub overlap: u32,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The time range of segment `k` of `n` (from 1) of an input lasting `duration`: the
/// cuts are the same on every machine, so each frame lands in exactly one segment.
fn segment_range(k: u32, n: u32, duration: gst::ClockTime, overlap: u32) -> Range {
    let cut = |i: u32| {
        gst::ClockTime::from_nseconds(
            (duration.nseconds() as u128 * u128::from(i) / u128::from(n)) as u64,
        )
    };
    Range {
        start: (k > 1).then(|| cut(k - 1)),
        end: (k < n).then(|| cut(k)),
        warmup: overlap,
    }
}

/// One input and where it goes.
#[derive(Debug, Clone)]
struct Job {
    input: PathBuf,
    output: PathBuf,
    format: OutputFormat,
}

/// Video file extensions taken from a folder given as input.
const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "mts", "m2ts", "mpg", "mpeg", "flv", "wmv",
    "ogv", "3gp", "mxf", "dv", "y4m",
];

/// The jobs of a command line: `IN OUT`, or inputs (files, folders) with `--out-dir`.
fn plan(args: &FileArgs) -> Result<Vec<Job>> {
    let format =
        |output: &Path| OutputFormat::new(output, args.codec, args.quality, args.quantizer);
    let Some(dir) = &args.out_dir else {
        let [input, output] = args.paths.as_slice() else {
            bail!(
                "give INPUT OUTPUT, or inputs with --out-dir DIR ({} paths given)",
                args.paths.len()
            );
        };
        check_input(input)?;
        return Ok(vec![Job {
            input: input.clone(),
            output: output.clone(),
            format: format(output)?,
        }]);
    };
    if !dir.is_dir() {
        bail!("output folder {} does not exist", dir.display());
    }
    let mut inputs = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            inputs.extend(videos_in(path)?);
        } else {
            check_input(path)?;
            inputs.push(path.clone());
        }
    }
    if inputs.is_empty() {
        bail!("no video files in {}", args.paths[0].display());
    }
    let ext = args.ext.trim_start_matches('.');
    let mut jobs: Vec<Job> = Vec::new();
    for input in inputs {
        let stem = input.file_stem().unwrap_or(input.as_os_str());
        let output = dir.join(stem).with_extension(ext);
        if let Some(other) = jobs.iter().find(|j| j.output == output) {
            bail!(
                "{} and {} would both write {}",
                other.input.display(),
                input.display(),
                output.display()
            );
        }
        let format = format(&output)?;
        jobs.push(Job {
            input,
            output,
            format,
        });
    }
    Ok(jobs)
}

fn check_input(input: &Path) -> Result<()> {
    if !input.exists() {
        bail!("input {} does not exist", input.display());
    }
    if !input.is_file() {
        bail!("input {} is not a file", input.display());
    }
    Ok(())
}

/// The video files of a folder (by extension, hidden files skipped), sorted.
fn videos_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter(|p| {
            p.extension().is_some_and(|e| {
                VIDEO_EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str())
            })
        })
        .collect();
    files.sort();
    Ok(files)
}

pub fn run(args: &FileArgs) -> Result<()> {
    let jobs = plan(args)?;
    // --resume replaces its own earlier output (only once the joined file is complete).
    let existing = if args.overwrite || args.resume {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    // Every check that could refuse an output runs before any work.
    let inputs: Vec<&Path> = jobs.iter().map(|j| j.input.as_path()).collect();
    for job in &jobs {
        output::check_destination(&job.output, &inputs, existing)?;
    }
    crate::init_gstreamer()?;
    let infos = probe_inputs(&jobs)?;
    let run = Run {
        args,
        inputs: &inputs,
        existing,
        interrupt: Interrupt::install()?,
        bar: overall_bar(args, &infos),
    };
    let mut done_ms = 0;
    let started = Instant::now();
    let mut total_frames = 0;
    for (index, (job, info)) in jobs.iter().zip(&infos).enumerate() {
        if run.interrupt.requested() {
            eprintln!("stylize: skipping {}: interrupted", job.input.display());
            continue;
        }
        let prefix = if jobs.len() > 1 {
            format!("[{}/{}] ", index + 1, jobs.len())
        } else {
            String::new()
        };
        let result = run.job(job, info, &prefix, done_ms);
        done_ms += info.duration.map_or(0, |d| d.mseconds());
        if result.is_err() {
            run.bar.abandon();
        }
        total_frames += result?;
    }
    run.bar.finish_and_clear();
    if run.interrupt.requested() {
        return Err(Interrupted {
            code: run.interrupt.exit_code(),
        }
        .into());
    }
    if jobs.len() > 1 {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "stylized {} files, {total_frames} frames in {secs:.1} s",
            jobs.len()
        );
    }
    Ok(())
}

/// Streams and durations, from a demux-only preroll: an input without video is refused
/// here, in a fraction of a second, instead of stalling the muxer.
fn probe_inputs(jobs: &[Job]) -> Result<Vec<probe::MediaInfo>> {
    let mut infos = Vec::new();
    for job in jobs {
        let info = probe::probe(&job.input, false)?;
        if info.video().is_none() {
            let kinds: Vec<&str> = info.streams.iter().map(|s| s.kind()).collect();
            bail!(
                "{} has no video stream (streams: {}): nothing to stylize",
                job.input.display(),
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(", ")
                }
            );
        }
        infos.push(info);
    }
    Ok(infos)
}

/// One bar for every file, in milliseconds of input, when every duration is known. A
/// segment covers 1/N of its input.
fn overall_bar(args: &FileArgs, infos: &[probe::MediaInfo]) -> ProgressBar {
    let bar = progress_bar(args.quiet);
    let share = args.segment.map_or(1, |(_, n)| u64::from(n));
    let total_ms: Option<u64> = infos
        .iter()
        .map(|i| i.duration.map(|d| d.mseconds() / share))
        .sum();
    if let Some(total) = total_ms.filter(|t| *t > 0) {
        bar.set_length(total);
        bar.set_style(bar_style());
    }
    bar
}

/// What every job of one `stylize file` run shares.
struct Run<'a> {
    args: &'a FileArgs,
    inputs: &'a [&'a Path],
    existing: Existing,
    interrupt: std::sync::Arc<Interrupt>,
    bar: ProgressBar,
}

impl Run<'_> {
    /// Stylize one input into its output (a temporary file renamed on success); returns
    /// the frames written.
    fn job(&self, job: &Job, info: &probe::MediaInfo, prefix: &str, done_ms: u64) -> Result<u64> {
        // --resume: the existing output is the first part; the rest goes to a temporary
        // part, then both are joined over the output.
        let resume_at = if self.args.resume && job.output.exists() {
            match resume_point(&job.input, &job.output)? {
                Some(at) => Some(at),
                None => {
                    eprintln!(
                        "stylize: {} is complete: nothing to resume",
                        job.output.display()
                    );
                    return Ok(0);
                }
            }
        } else {
            None
        };
        let existing = if resume_at.is_some() {
            Existing::Replace
        } else {
            self.existing
        };
        let out = OutputFile::create(&job.output, self.inputs, existing)?;
        self.interrupt.set_temps(&[out.temp_path()]);
        let settings = Settings {
            input: &job.input,
            output: out.temp_path(),
            format: job.format,
            style: &self.args.style,
            scale: self.args.scale,
            inference_size: self.args.inference_size,
            stability: self.args.stability,
            audio: !self.args.no_audio,
            streams: &info.streams,
            range: self.range(job, info, resume_at)?,
            stop: self.interrupt.stop.clone(),
        };
        let done = transcode(&settings, &self.bar, prefix, done_ms)?;
        let dest = if resume_at.is_some() {
            let joined = OutputFile::create(&job.output, self.inputs, Existing::Replace)?;
            self.interrupt
                .set_temps(&[out.temp_path(), joined.temp_path()]);
            let parts = [job.output.clone(), out.temp_path().to_path_buf()];
            crate::join::join(&parts, joined.temp_path(), job.format.container)?;
            joined.commit()?
        } else {
            out.commit()?
        };
        self.interrupt.set_temps(&[]);
        self.bar
            .suspend(|| done.report(prefix, &dest, self.interrupt.requested()));
        println!("{}", absolute(&dest).display());
        Ok(done.frames)
    }

    /// The part of the input to stylize: all of it, the rest after a resume point, or a
    /// segment K/N.
    fn range(
        &self,
        job: &Job,
        info: &probe::MediaInfo,
        resume_at: Option<gst::ClockTime>,
    ) -> Result<Range> {
        Ok(match self.args.segment {
            None if resume_at.is_some() => Range {
                start: resume_at,
                end: None,
                warmup: self.args.overlap,
            },
            None => Range::default(),
            Some((k, n)) => {
                let duration = info.duration.ok_or_else(|| {
                    anyhow!(
                        "{} states no duration: it cannot be cut into segments",
                        job.input.display()
                    )
                })?;
                let range = segment_range(k, n, duration, self.args.overlap);
                let show = |t: Option<gst::ClockTime>, default| t.unwrap_or(default);
                eprintln!(
                    "stylize: segment {k}/{n}: {:.3} to {:.3}",
                    show(range.start, gst::ClockTime::ZERO),
                    show(range.end, duration)
                );
                range
            }
        })
    }
}

/// Where an interrupted output stops, in the input's running time (half a frame early,
/// so rounding in the container cannot skip a frame); None when it is complete.
fn resume_point(input: &Path, output: &Path) -> Result<Option<gst::ClockTime>> {
    let done = probe::probe(output, true)
        .map_err(|e| anyhow!("cannot resume from {}: {e:#}", output.display()))?;
    let video = done
        .video()
        .ok_or_else(|| anyhow!("cannot resume: {} has no video", output.display()))?;
    let (Some(first_out), Some(last_out), Some(end_out)) =
        (video.first_pts, video.last_pts, video.end)
    else {
        bail!("cannot resume: {} has no video frames", output.display());
    };
    let source = probe::probe(input, true)?;
    let Some((Some(first_in), Some(end_in))) = source.video().map(|v| (v.first_pts, v.end)) else {
        bail!("{} has no video frames", input.display());
    };
    let at = first_in + end_out.saturating_sub(first_out);
    if at >= end_in {
        return Ok(None);
    }
    let half_frame = end_out.saturating_sub(last_out) / 2;
    eprintln!(
        "stylize: resuming {} at {at:.3} ({} frames kept)",
        output.display(),
        video.packets
    );
    Ok(Some(at.saturating_sub(half_frame)))
}

/// What one finished file holds.
struct Done {
    frames: u64,
    secs: f64,
    derived_pts: u64,
    warnings: u64,
    /// Where the video stopped when the input is shorter than it says (truncated).
    truncated: Option<(gst::ClockTime, gst::ClockTime)>,
}

impl Done {
    fn report(&self, prefix: &str, dest: &Path, interrupted: bool) {
        let Done { frames, secs, .. } = *self;
        if self.derived_pts > 0 {
            eprintln!(
                "stylize: warning: {prefix}{} frames had a missing or out-of-order \
                 timestamp; derived from the decode timestamp or the frame rate",
                self.derived_pts
            );
        }
        if self.warnings > WARNINGS_SHOWN {
            eprintln!(
                "stylize: warning: {prefix}{} warnings in all about the input (corrupt data \
                 skipped); the first {WARNINGS_SHOWN} are above",
                self.warnings
            );
        }
        if let Some((last, duration)) = self.truncated {
            eprintln!(
                "stylize: warning: {prefix}the input ends at {last:.3}, before its stated \
                 duration {duration:.3} (truncated?); every decodable frame was kept"
            );
        }
        if interrupted {
            eprintln!(
                "stylize: interrupted: kept the {frames} frames done in {}",
                dest.display()
            );
        } else {
            eprintln!(
                "{prefix}stylized {frames} frames in {secs:.1} s ({:.1} fps)",
                frames as f64 / secs.max(1e-3)
            );
        }
    }
}

/// Run one file's pipeline to the end (or to an interruption's end).
fn transcode(settings: &Settings, bar: &ProgressBar, prefix: &str, done_ms: u64) -> Result<Done> {
    let pipeline::Transcode { pipeline, stats } = pipeline::build(settings)?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let started = Instant::now();
    let result = pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| start_error(&bus))
        .and_then(|_| {
            let progress = Progress {
                bar,
                prefix,
                done_ms,
            };
            wait(&pipeline, &bus, &stats, &settings.stop, &progress, &started)
        });
    let _ = pipeline.set_state(gst::State::Null);
    let outcome = result?;

    let frames_in = stats.frames_in.load(Ordering::Relaxed);
    let frames_out = stats.frames_out.load(Ordering::Relaxed);
    if frames_in != frames_out {
        bail!("{frames_in} frames went in but {frames_out} came out");
    }
    let frames = stats.written.load(Ordering::Relaxed);
    if frames == 0 {
        if settings.stop.load(Ordering::Relaxed) {
            bail!("interrupted before any frame was done: nothing kept");
        }
        if !settings.range.is_all() {
            bail!("this segment holds no frames (more segments than frames?)");
        }
        bail!("{} has no video frames", settings.input.display());
    }
    let interrupted = settings.stop.load(Ordering::Relaxed);
    let truncated = match (outcome.duration, stats.first_pts(), stats.last_end()) {
        (Some(duration), Some(first), Some(end)) if !interrupted && settings.range.is_all() => {
            let span = end.saturating_sub(first);
            let slack = gst::ClockTime::from_seconds(1).max(stats.frame_duration() * 3);
            (span + slack < duration).then_some((end, duration))
        }
        _ => None,
    };
    Ok(Done {
        frames,
        secs: started.elapsed().as_secs_f64(),
        derived_pts: stats.derived_pts.load(Ordering::Relaxed),
        warnings: outcome.warnings,
        truncated,
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
        .map_err(|_| anyhow!("the stylize element is not registered"))?;
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
    if let Some(l) = &style.library {
        element.set_property("library", l.to_string_lossy().as_ref());
    }
    if let Some((w, h)) = size {
        element.set_property("inference-width", w);
        element.set_property("inference-height", h);
    }
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

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Why the pipeline refused to start: the first error an element posted, if any.
fn start_error(bus: &gst::Bus) -> anyhow::Error {
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(err) = msg.view() {
            return crate::exit::PipelineError::new(err).into();
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

/// What the bus said by the end of stream.
struct Outcome {
    duration: Option<gst::ClockTime>,
    /// Warnings posted while reading (corrupt data skipped by demuxers and decoders).
    warnings: u64,
}

/// How long an interruption waits for the gates before ending the branches itself.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Warnings shown in full before they are only counted.
const WARNINGS_SHOWN: u64 = 5;

/// Where one file's progress goes on the overall bar.
struct Progress<'a> {
    bar: &'a ProgressBar,
    /// "[2/5] " with several files.
    prefix: &'a str,
    /// Input milliseconds of the files before this one.
    done_ms: u64,
}

fn wait(
    pipeline: &gst::Pipeline,
    bus: &gst::Bus,
    stats: &Stats,
    stop: &AtomicBool,
    progress: &Progress,
    started: &Instant,
) -> Result<Outcome> {
    let Progress {
        bar,
        prefix,
        done_ms,
    } = *progress;
    let mut duration = None;
    let mut warnings = 0;
    let mut stop_seen: Option<Instant> = None;
    loop {
        // The gates end each branch at its next buffer; when none comes (the model still
        // loading, a stalled input), end them from here.
        if stop.load(Ordering::SeqCst) {
            let since = *stop_seen.get_or_insert_with(Instant::now);
            if since.elapsed() > STOP_GRACE {
                stats.end_all();
            }
        }
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
            match msg.view() {
                gst::MessageView::Eos(_) => return Ok(Outcome { duration, warnings }),
                gst::MessageView::Error(err) => {
                    return Err(crate::exit::PipelineError::new(err).into())
                }
                gst::MessageView::Element(e) => {
                    if let Some(line) = backend_line(e.structure()) {
                        bar.suspend(|| eprintln!("stylize: {prefix}{line}"));
                    }
                }
                gst::MessageView::Warning(w) => {
                    // Corrupt input makes demuxers and decoders warn for what they skip:
                    // the first few are shown, all are counted.
                    warnings += 1;
                    if warnings <= WARNINGS_SHOWN {
                        let from = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                        bar.suspend(|| {
                            eprintln!("stylize: warning: {prefix}{from}: {}", w.error())
                        });
                    }
                }
                _ => {}
            }
        }
        for note in stats.take_notes() {
            bar.suspend(|| eprintln!("stylize: {prefix}{note}"));
        }
        let frames = stats.written.load(Ordering::Relaxed);
        if duration.is_none() {
            // Streams without a duration (some AVI/WebM/TS) keep the spinner: no ETA to
            // give, only frames and speed.
            duration = pipeline
                .query_duration::<gst::ClockTime>()
                .filter(|d| !d.is_zero());
        }
        if frames == 0 {
            continue;
        }
        let (Some(first), Some(last)) = (stats.first_pts(), stats.last_pts()) else {
            continue;
        };
        bar.set_position(done_ms + last.saturating_sub(first).mseconds());
        let fps = frames as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let total = expected_frames(
            duration.map(Duration::from),
            stats.fps_num.load(Ordering::Relaxed),
            stats.fps_den.load(Ordering::Relaxed),
        );
        bar.set_message(format!("{prefix}{}", progress_message(frames, total, fps)));
    }
}

/// "backend cpu (auto: ...)" from the element's `stylize-backend` message: which backend the
/// model runs on and why, said once per start.
fn backend_line(s: Option<&gst::StructureRef>) -> Option<String> {
    let s = s.filter(|s| s.name() == gststylize::stylize::BACKEND_MESSAGE)?;
    let backend = s.get::<String>("backend").ok()?;
    match s.get::<String>("reason").ok().filter(|r| !r.is_empty()) {
        Some(reason) => Some(format!("backend {backend} ({reason})")),
        None => Some(format!("backend {backend}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_input_once() {
        let d = gst::ClockTime::from_mseconds(5280);
        let ranges: Vec<_> = (1..=4).map(|k| segment_range(k, 4, d, 8)).collect();
        assert_eq!(ranges[0].start, None);
        assert_eq!(ranges[3].end, None);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "adjacent, no gap, no overlap");
        }
        assert_eq!(ranges[1].start, Some(gst::ClockTime::from_mseconds(1320)));
        assert_eq!(
            segment_range(1, 1, d, 8),
            Range {
                warmup: 8,
                ..Range::default()
            }
        );
    }

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
