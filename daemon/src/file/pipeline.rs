//! The pipeline that stylizes one file.
//!
//! ```text
//! filesrc ! parsebin ─┬─ video ─ decodebin ─[fix PTS, gate]─ queue ! videoconvert ! stylize
//!                     │          ─[drop warm-up]─ videoconvert ! capsfilter ! encoder ─┐
//!                     ├─ audio ─[gate]─ queue ──────────────── (passed through) ──────┤ mux ! filesink
//!                     │                 └ decodebin ! audioconvert ! … ! encoder ─────┤
//!                     └─ subtitles ─ queue ─ (where the container takes them) ────────┘
//! ```
//!
//! `parsebin` exposes each stream still encoded, so audio and subtitles reach the muxer
//! untouched when it takes them; only the first video stream is decoded. The gates are
//! pad probes that end a branch (an end-of-stream event, so the muxer finalises the file)
//! on an interruption or at the end of the frame range, and drop what lies before the
//! range's start.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use gst::prelude::*;

use super::format::{make, Container, OutputFormat};
use super::probe::Stream;
use crate::StyleArgs;

/// The part of the input's timeline a run writes: frames with `start <= t < end`, in
/// running time (from 0 at the input's start).
/// `warmup` frames before `start` go through the stylizer (so temporal smoothing starts
/// warm) and are dropped before the encoder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    pub start: Option<gst::ClockTime>,
    pub end: Option<gst::ClockTime>,
    pub warmup: u32,
}

impl Range {
    /// The whole input.
    pub fn is_all(&self) -> bool {
        self.start.is_none() && self.end.is_none()
    }
}

/// Everything one file's pipeline needs.
pub struct Settings<'a> {
    pub input: &'a Path,
    /// Where the muxer writes (the temporary file beside the output).
    pub output: &'a Path,
    pub format: OutputFormat,
    pub style: &'a StyleArgs,
    pub scale: f64,
    pub inference_size: Option<(u32, u32)>,
    pub stability: f64,
    /// Keep the audio streams (false: `--no-audio`).
    pub audio: bool,
    /// The input's streams, from the probe: the muxer's pads are all requested before
    /// the pipeline starts (muxers refuse new pads once they have begun).
    pub streams: &'a [Stream],
    pub range: Range,
    /// Set by the first SIGINT/SIGTERM: every branch ends at its next buffer.
    pub stop: Arc<AtomicBool>,
}

const UNSET: u64 = u64::MAX;

/// What a probe returns for a buffer or event it removes from the stream. `Handled`, not
/// `Drop`: gstreamer-rs takes ownership of the data either way, and with `Drop`
/// GStreamer 1.22 then unrefs a NULL pointer (a CRITICAL per buffer).
const SWALLOW: gst::PadProbeReturn = gst::PadProbeReturn::Handled;

/// Counters and notes shared with the pad probes.
pub struct Stats {
    /// Frames into and out of the stylizer (warm-up frames included): must match.
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    /// Frames handed to the encoder.
    pub written: AtomicU64,
    /// PTS of the first and last frame written, and the end of the last (PTS + duration).
    pub first_pts: AtomicU64,
    pub last_pts: AtomicU64,
    pub last_end: AtomicU64,
    /// Frames whose PTS was missing or not increasing, derived from the DTS or frame rate.
    pub derived_pts: AtomicU64,
    /// Frame rate from the decoded caps, as numerator/denominator (0/0 when unknown).
    pub fps_num: AtomicU64,
    pub fps_den: AtomicU64,
    /// PTS of the first video frame not kept after an interruption or the range end.
    pub video_cut: AtomicU64,
    pub video_found: AtomicBool,
    /// What happened to each stream ("audio: AAC passed through"), shown to the user.
    pub notes: Mutex<Vec<String>>,
    /// Each written branch's entry pad (its queue's sink) and whether it has ended.
    branches: Mutex<Vec<Branch>>,
}

/// A branch into the muxer, ended once by whoever gets there first (its gate, or
/// [`Stats::end_all`]).
#[derive(Clone)]
struct Branch {
    entry: gst::Pad,
    ended: Arc<AtomicBool>,
}

impl Branch {
    fn new(entry: gst::Pad) -> Self {
        Self {
            entry,
            ended: Arc::new(AtomicBool::new(false)),
        }
    }

    fn has_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Send end-of-stream into the branch (after what its queue holds), once.
    fn end(&self) {
        if !self.ended.swap(true, Ordering::SeqCst) {
            self.entry.send_event(gst::event::Eos::new());
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            written: AtomicU64::new(0),
            first_pts: AtomicU64::new(UNSET),
            last_pts: AtomicU64::new(UNSET),
            last_end: AtomicU64::new(UNSET),
            derived_pts: AtomicU64::new(0),
            fps_num: AtomicU64::new(0),
            fps_den: AtomicU64::new(0),
            video_cut: AtomicU64::new(UNSET),
            video_found: AtomicBool::new(false),
            notes: Mutex::new(Vec::new()),
            branches: Mutex::new(Vec::new()),
        }
    }
}

fn load(v: &AtomicU64) -> Option<u64> {
    Some(v.load(Ordering::Relaxed)).filter(|v| *v != UNSET)
}

impl Stats {
    pub fn first_pts(&self) -> Option<gst::ClockTime> {
        load(&self.first_pts).map(gst::ClockTime::from_nseconds)
    }
    pub fn last_pts(&self) -> Option<gst::ClockTime> {
        load(&self.last_pts).map(gst::ClockTime::from_nseconds)
    }
    pub fn last_end(&self) -> Option<gst::ClockTime> {
        load(&self.last_end).map(gst::ClockTime::from_nseconds)
    }
    pub fn video_cut(&self) -> Option<gst::ClockTime> {
        load(&self.video_cut).map(gst::ClockTime::from_nseconds)
    }
    fn note(&self, text: String) {
        self.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text);
    }
    fn add_branch(&self, branch: &Branch) {
        self.branches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(branch.clone());
    }
    /// End every branch now, from the application thread: an interruption while no
    /// buffer flows (the model still loading, a stalled input) still finishes the file.
    pub fn end_all(&self) {
        let branches = self
            .branches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for branch in branches {
            branch.end();
        }
        // Followers that start later end at once.
        let _ = self
            .video_cut
            .compare_exchange(UNSET, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()))
    }
    /// One frame's duration from the negotiated frame rate (25 fps when unknown).
    pub fn frame_duration(&self) -> gst::ClockTime {
        let (n, d) = (
            self.fps_num.load(Ordering::Relaxed),
            self.fps_den.load(Ordering::Relaxed),
        );
        if n > 0 && d > 0 {
            gst::ClockTime::from_nseconds(1_000_000_000 * d / n)
        } else {
            gst::ClockTime::from_mseconds(40)
        }
    }
}

pub struct Transcode {
    pub pipeline: gst::Pipeline,
    pub stats: Arc<Stats>,
}

/// What a gate does with a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Drop,
    /// End the branch here: this buffer and everything after it are not written.
    End,
}

fn video_verdict(
    pts: gst::ClockTime,
    range: &Range,
    stopping: bool,
    frame: gst::ClockTime,
) -> Verdict {
    if stopping || range.end.is_some_and(|end| pts >= end) {
        return Verdict::End;
    }
    let warm = frame * u64::from(range.warmup);
    if range.start.is_some_and(|start| pts + warm < start) {
        return Verdict::Drop;
    }
    Verdict::Pass
}

/// Audio and subtitles follow the video: cut at the range and, once interrupted, at the
/// first video frame not kept.
fn follower_verdict(
    pts: Option<gst::ClockTime>,
    range: &Range,
    stopping: bool,
    video_cut: Option<gst::ClockTime>,
) -> Verdict {
    let Some(pts) = pts else {
        return Verdict::Pass;
    };
    if range.start.is_some_and(|start| pts < start) {
        return Verdict::Drop;
    }
    if range.end.is_some_and(|end| pts >= end) {
        return Verdict::End;
    }
    if stopping && video_cut.is_some_and(|cut| pts >= cut) {
        return Verdict::End;
    }
    Verdict::Pass
}

/// Gives frames without a usable PTS one: from the DTS when that moves forward, else the
/// previous frame's plus one frame (what ffmpeg does). Some decoders (MPEG-4 part 2 with
/// B-frames in AVI) emit frames with no PTS or a repeated one; encoders and muxers refuse
/// both.
#[derive(Debug, Default)]
struct PtsFixer {
    last: Option<gst::ClockTime>,
}

impl PtsFixer {
    /// The PTS to use, and whether it was derived.
    fn fix(
        &mut self,
        pts: Option<gst::ClockTime>,
        dts: Option<gst::ClockTime>,
        frame: gst::ClockTime,
    ) -> (gst::ClockTime, bool) {
        let after_last = |t: &gst::ClockTime| self.last.is_none_or(|last| *t > last);
        let fixed = match pts.filter(after_last) {
            Some(p) => (p, false),
            None => (
                dts.filter(after_last)
                    .unwrap_or_else(|| self.last.map_or(gst::ClockTime::ZERO, |l| l + frame)),
                true,
            ),
        };
        self.last = Some(fixed.0);
        fixed
    }
}

pub fn build(s: &Settings) -> Result<Transcode> {
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", s.input.to_string_lossy().as_ref());
    let parse = make("parsebin")?;
    let mux = s.format.container.muxer()?;
    let sink = make("filesink")?;
    sink.set_property("location", s.output.to_string_lossy().as_ref());
    pipeline.add_many([&src, &parse, &mux, &sink])?;
    src.link(&parse)?;
    mux.link(&sink)?;

    // The video chain after the decoder is static; the decoder is added per stream.
    let queue = make("queue")?;
    let convert_in = make("videoconvert")?;
    let stylize = super::stylize_element(s.style, s.scale, s.inference_size)?;
    stylize.set_property("stability", s.stability);
    let convert_out = make("videoconvert")?;
    let filter = make("capsfilter")?;
    let raw_format = s.format.raw_format();
    filter.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", raw_format)
            .build(),
    );
    let encoder = s.format.video_encoder()?;
    let mut chain = vec![
        queue.clone(),
        convert_in,
        stylize.clone(),
        convert_out,
        filter.clone(),
    ];
    chain.extend(encoder);
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    chain
        .last()
        .expect("the chain has an encoder")
        .link(&mux)
        .context("the muxer does not take the video codec")?;

    let stats = Arc::new(Stats::default());
    count_stylized(&stylize, &stats, s.range);

    let video = Branch::new(queue.static_pad("sink").expect("queue has a sink pad"));
    stats.add_branch(&video);
    let mut followers = Vec::new();
    for stream in s.streams.iter().filter(|st| st.kind() != "video") {
        let kind = stream.kind();
        if kind == "audio" && !s.audio {
            stats.note(format!(
                "audio ({}) dropped (--no-audio)",
                describe(&stream.caps)
            ));
            followers.push(None);
            continue;
        }
        let follower = plan_follower(&pipeline, &mux, s.format.container, stream, &stats)
            .with_context(|| format!("cannot keep the {kind} stream"))?;
        followers.push(follower);
    }
    let ctx = Arc::new(Streams {
        pipeline: pipeline.downgrade(),
        mux,
        video,
        filter,
        raw_format,
        stats: stats.clone(),
        range: s.range,
        stop: s.stop.clone(),
        followers: Mutex::new(followers.into()),
    });
    let c = ctx.clone();
    parse.connect_pad_added(move |_, pad| c.stream_added(pad));
    let c = ctx.clone();
    let input = s.input.to_path_buf();
    parse.connect_no_more_pads(move |parse| {
        if !c.stats.video_found.load(Ordering::Relaxed) {
            gst::element_error!(
                parse,
                gst::StreamError::WrongType,
                ["{} has no video stream", input.display()]
            );
        }
    });
    Ok(Transcode { pipeline, stats })
}

/// Count frames through the stylizer and drop the warm-up frames after it.
fn count_stylized(stylize: &gst::Element, stats: &Arc<Stats>, range: Range) {
    let st = stats.clone();
    stylize
        .static_pad("sink")
        .expect("stylize has a sink pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            st.frames_in.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    let st = stats.clone();
    stylize
        .static_pad("src")
        .expect("stylize has a src pad")
        .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            st.frames_out.fetch_add(1, Ordering::Relaxed);
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let pts = buffer.pts().unwrap_or(gst::ClockTime::ZERO);
            if range
                .start
                .is_some_and(|start| running_time(pad, pts) < start)
            {
                return SWALLOW;
            }
            st.written.fetch_add(1, Ordering::Relaxed);
            st.first_pts.fetch_min(pts.nseconds(), Ordering::Relaxed);
            st.last_pts.store(pts.nseconds(), Ordering::Relaxed);
            let end = pts + buffer.duration().unwrap_or_else(|| st.frame_duration());
            st.last_end.store(end.nseconds(), Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
}

/// What the stream callbacks share.
struct Streams {
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    mux: gst::Element,
    video: Branch,
    filter: gst::Element,
    raw_format: &'static str,
    stats: Arc<Stats>,
    range: Range,
    stop: Arc<AtomicBool>,
    /// The non-video streams in the demuxer's order: a prepared branch, or None to drop.
    followers: Mutex<std::collections::VecDeque<Option<Follower>>>,
}

/// A prepared branch for an audio or subtitle stream, linked to the muxer.
struct Follower {
    branch: Branch,
}

impl Streams {
    fn stream_added(&self, pad: &gst::Pad) {
        let Some(pipeline) = self.pipeline.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
            return;
        };
        let result = if name.starts_with("video/") || name.starts_with("image/") {
            if self.stats.video_found.swap(true, Ordering::Relaxed) {
                self.stats
                    .note(format!("extra video stream ({}) dropped", describe(&caps)));
                drop_stream(pad);
                Ok(())
            } else {
                self.add_video(&pipeline, pad)
            }
        } else {
            let next = self
                .followers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            match next.flatten() {
                Some(follower) => {
                    let entry = follower.branch.entry.clone();
                    gate_follower(pad, follower.branch, &self.stats, self.range, &self.stop);
                    pad.link(&entry)
                        .map(|_| ())
                        .map_err(|e| anyhow::anyhow!("{e:?}"))
                }
                None => {
                    drop_stream(pad);
                    Ok(())
                }
            }
        };
        if let Err(err) = result {
            gst::element_error!(
                self.mux,
                gst::StreamError::Failed,
                ["cannot keep the {name} stream: {err:#}"]
            );
        }
    }

    /// Decode the video stream into the static chain, with the PTS fixer and the gate.
    fn add_video(&self, pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<()> {
        let decode = make("decodebin")?;
        // Decode errors (a corrupt region) are skipped with a warning, as gst-launch
        // and ffmpeg do, instead of ending the job after the decoders' default of 10.
        decode.connect("deep-element-added", false, |args| {
            let element = args[2].get::<gst::Element>().ok()?;
            if element.find_property("max-errors").is_some() {
                element.set_property("max-errors", -1i32);
            }
            None
        });
        pipeline.add(&decode)?;
        decode.sync_state_with_parent()?;
        pad.link(&decode.static_pad("sink").expect("decodebin has a sink pad"))?;
        let video = self.video.clone();
        let stats = self.stats.clone();
        let filter = self.filter.clone();
        let raw_format = self.raw_format;
        let range = self.range;
        let stop = self.stop.clone();
        decode.connect_pad_added(move |_, pad| {
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let raw = caps.structure(0).is_some_and(|s| s.name() == "video/x-raw");
            if !raw || video.entry.is_linked() {
                drop_stream(pad);
                return;
            }
            gate_video(pad, &video, &stats, &filter, raw_format, range, &stop);
            if let Err(err) = pad.link(&video.entry) {
                gst::element_error!(
                    filter,
                    gst::CoreError::Negotiation,
                    ["cannot link the decoded video: {err:?}"]
                );
            }
        });
        Ok(())
    }
}

/// Audio or subtitles: into the muxer as they are when it takes them, else (audio)
/// decoded and re-encoded, else dropped; each said in a note. Built before the pipeline
/// starts; the stream's pad is linked to the returned branch when it appears.
fn plan_follower(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    container: Container,
    stream: &Stream,
    stats: &Stats,
) -> Result<Option<Follower>> {
    let caps = &stream.caps;
    let kind = if stream.kind() == "audio" {
        "audio"
    } else {
        "subtitle"
    };
    let what = describe(caps);
    let template_name = if kind == "audio" {
        "audio_%u"
    } else {
        "subtitle_%u"
    };
    // Ask for the pad first and judge it by its caps: looking the template up from Rust
    // is unsafe here (webmmux's pad templates are still floating in GStreamer 1.22,
    // and a wrapper taking them would free them).
    let Some(mux_pad) = mux.request_pad_simple(template_name) else {
        stats.note(format!(
            "{kind} stream ({what}) dropped: {} does not take it",
            container.name()
        ));
        return Ok(None);
    };
    let passthrough = mux_pad.query_caps(None).can_intersect(caps);
    let queue = make("queue")?;
    // Audio runs ahead of the slow video branch: room for seconds of it, whatever the
    // packet count, so a coarse interleave cannot stall the demuxer.
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 10_000_000_000u64);
    let mut chain = vec![queue.clone()];
    let note;
    if passthrough {
        note = format!("{kind}: {what} passed through");
    } else if kind == "audio" {
        let (encoder, name) = container.audio_encoder()?;
        chain.extend([
            make("decodebin")?,
            make("audioconvert")?,
            make("audioresample")?,
        ]);
        chain.extend(encoder);
        note = format!(
            "audio: {what} re-encoded to {name} ({} does not take {what})",
            container.name()
        );
    } else {
        mux.release_request_pad(&mux_pad);
        stats.note(format!(
            "{kind} stream ({what}) dropped: {} does not take it",
            container.name()
        ));
        return Ok(None);
    }
    pipeline.add_many(&chain)?;
    // decodebin's output pad appears later: link around it.
    for pair in chain.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        if prev.factory().is_some_and(|f| f.name() == "decodebin") {
            let next = next.static_pad("sink").expect("has a sink pad");
            prev.connect_pad_added(move |_, pad| {
                if !next.is_linked() {
                    let _ = pad.link(&next);
                }
            });
        } else {
            prev.link(next)?;
        }
    }
    chain
        .last()
        .expect("a queue at least")
        .static_pad("src")
        .expect("has a src pad")
        .link(&mux_pad)
        .context("linking it to the muxer")?;
    stats.note(note);
    let branch = Branch::new(queue.static_pad("sink").expect("queue has a sink pad"));
    stats.add_branch(&branch);
    Ok(Some(Follower { branch }))
}

/// A stream nobody writes: swallow its data (an unlinked pad would stop the demuxer with
/// not-linked; a fakesink would hold the end of stream back until the whole input is read).
fn drop_stream(pad: &gst::Pad) {
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        |_, _| SWALLOW,
    );
}

/// The video gate on the decoder's output: fix PTS, take the frame rate and colorimetry,
/// drop what lies before the range, end the branch at its end or on an interruption.
fn gate_video(
    pad: &gst::Pad,
    branch: &Branch,
    stats: &Arc<Stats>,
    filter: &gst::Element,
    raw_format: &'static str,
    range: Range,
    stop: &Arc<AtomicBool>,
) {
    let (stats, filter, stop) = (stats.clone(), filter.clone(), stop.clone());
    let fixer = Mutex::new(PtsFixer::default());
    let branch = branch.clone();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            if branch.has_ended() {
                // After our end of stream, nothing more (the input's own EOS included).
                return SWALLOW;
            }
            if let Some(event) = info.event() {
                if let gst::EventView::Caps(c) = event.view() {
                    keep_caps_fields(c.caps(), &filter, raw_format, &stats);
                }
                return gst::PadProbeReturn::Ok;
            }
            let frame = stats.frame_duration();
            let Some(buffer) = info.buffer_mut() else {
                return gst::PadProbeReturn::Ok;
            };
            let (pts, derived) = fixer.lock().unwrap_or_else(|e| e.into_inner()).fix(
                buffer.pts(),
                buffer.dts(),
                frame,
            );
            if derived {
                stats.derived_pts.fetch_add(1, Ordering::Relaxed);
                buffer.make_mut().set_pts(pts);
            }
            let time = running_time(pad, pts);
            match video_verdict(time, &range, stop.load(Ordering::Relaxed), frame) {
                Verdict::Pass => gst::PadProbeReturn::Ok,
                Verdict::Drop => SWALLOW,
                Verdict::End => {
                    stats.video_cut.store(time.nseconds(), Ordering::Relaxed);
                    // Into the queue after the frames it holds: they are still written.
                    branch.end();
                    SWALLOW
                }
            }
        },
    );
}

/// The gate of an audio or subtitle stream, ahead of its queue.
fn gate_follower(
    pad: &gst::Pad,
    branch: Branch,
    stats: &Arc<Stats>,
    range: Range,
    stop: &Arc<AtomicBool>,
) {
    let (stats, stop) = (stats.clone(), stop.clone());
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            if branch.has_ended() {
                return SWALLOW;
            }
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let verdict = follower_verdict(
                buffer.pts().map(|pts| running_time(pad, pts)),
                &range,
                stop.load(Ordering::Relaxed),
                stats.video_cut(),
            );
            match verdict {
                Verdict::Pass => gst::PadProbeReturn::Ok,
                Verdict::Drop => SWALLOW,
                Verdict::End => {
                    branch.end();
                    SWALLOW
                }
            }
        },
    );
}

/// Keep the input's frame rate (for the progress and derived PTS), colorimetry and
/// chroma siting in the encoded output: the stylizer works in RGB, and without them the
/// converter back to YUV would pick defaults.
fn keep_caps_fields(
    caps: &gst::CapsRef,
    filter: &gst::Element,
    raw_format: &'static str,
    stats: &Stats,
) {
    let Some(s) = caps.structure(0) else {
        return;
    };
    if let Ok(rate) = s.get::<gst::Fraction>("framerate") {
        if rate.numer() > 0 && rate.denom() > 0 {
            stats.fps_num.store(rate.numer() as u64, Ordering::Relaxed);
            stats.fps_den.store(rate.denom() as u64, Ordering::Relaxed);
        }
    }
    let input_yuv = gst_video::VideoInfo::from_caps(caps).is_ok_and(|i| i.is_yuv());
    let output_yuv =
        gst_video::VideoFormatInfo::from_format(gst_video::VideoFormat::from_string(raw_format))
            .is_yuv();
    let mut out = gst::Caps::builder("video/x-raw").field("format", raw_format);
    if input_yuv && output_yuv {
        for field in ["colorimetry", "chroma-site"] {
            if let Ok(v) = s.get::<String>(field) {
                out = out.field(field, v);
            }
        }
    }
    filter.set_property("caps", out.build());
}

/// A buffer's running time: the clock every stream shares (a demuxer may express an edit
/// list as a segment; PTS alone would put audio and video apart). Ranges and cuts are in
/// running time.
pub fn running_time(pad: &gst::Pad, pts: gst::ClockTime) -> gst::ClockTime {
    pad.sticky_event::<gst::event::Segment>(0)
        .and_then(|event| {
            let segment = event.segment().downcast_ref::<gst::ClockTime>()?.clone();
            match segment.to_running_time_full(pts)? {
                gst::Signed::Positive(t) => Some(t),
                gst::Signed::Negative(_) => Some(gst::ClockTime::ZERO),
            }
        })
        .unwrap_or(pts)
}

/// A stream's codec in words, for the notes.
fn describe(caps: &gst::Caps) -> String {
    let Some(s) = caps.structure(0) else {
        return "unknown".into();
    };
    let version = s.get::<i32>("mpegversion").ok();
    match (s.name().as_str(), version) {
        ("audio/mpeg", Some(2 | 4)) => "AAC".into(),
        ("audio/mpeg", Some(1)) => "MP3".into(),
        ("audio/x-opus", _) => "Opus".into(),
        ("audio/x-vorbis", _) => "Vorbis".into(),
        ("audio/x-flac", _) => "FLAC".into(),
        ("audio/x-ac3", _) => "AC-3".into(),
        ("audio/x-eac3", _) => "E-AC-3".into(),
        ("audio/x-raw", _) => "PCM".into(),
        ("text/x-raw", _) => match s.get::<String>("format") {
            Ok(format) => format!("text ({format})"),
            Err(_) => "text".into(),
        },
        (name, _) => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> gst::ClockTime {
        gst::ClockTime::from_mseconds(v)
    }

    #[test]
    fn missing_and_repeated_pts_are_derived() {
        let mut f = PtsFixer::default();
        let frame = ms(40);
        assert_eq!(f.fix(Some(ms(0)), None, frame), (ms(0), false));
        assert_eq!(f.fix(None, Some(ms(40)), frame), (ms(40), true));
        assert_eq!(f.fix(None, None, frame), (ms(80), true));
        // A repeated PTS (seen from avdec_mpeg4 on AVI with B-frames) moves on one frame.
        assert_eq!(f.fix(Some(ms(80)), None, frame), (ms(120), true));
        assert_eq!(f.fix(Some(ms(200)), None, frame), (ms(200), false));
        assert_eq!(f.fix(None, Some(ms(100)), frame), (ms(240), true));
        let mut f = PtsFixer::default();
        assert_eq!(f.fix(None, None, frame), (ms(0), true));
    }

    #[test]
    fn gates_cut_at_the_range_and_on_interruption() {
        let frame = ms(40);
        let range = Range {
            start: Some(ms(1000)),
            end: Some(ms(2000)),
            warmup: 5,
        };
        assert_eq!(video_verdict(ms(0), &range, false, frame), Verdict::Drop);
        assert_eq!(video_verdict(ms(799), &range, false, frame), Verdict::Drop);
        assert_eq!(video_verdict(ms(800), &range, false, frame), Verdict::Pass);
        assert_eq!(video_verdict(ms(1999), &range, false, frame), Verdict::Pass);
        assert_eq!(video_verdict(ms(2000), &range, false, frame), Verdict::End);
        assert_eq!(video_verdict(ms(1500), &range, true, frame), Verdict::End);
        let all = Range::default();
        assert_eq!(video_verdict(ms(0), &all, false, frame), Verdict::Pass);

        assert_eq!(
            follower_verdict(Some(ms(999)), &range, false, None),
            Verdict::Drop
        );
        assert_eq!(
            follower_verdict(Some(ms(1000)), &range, false, None),
            Verdict::Pass
        );
        assert_eq!(
            follower_verdict(Some(ms(2000)), &range, false, None),
            Verdict::End
        );
        assert_eq!(follower_verdict(None, &range, false, None), Verdict::Pass);
        // Interrupted: audio runs up to the first video frame not kept.
        let cut = Some(ms(1500));
        assert_eq!(
            follower_verdict(Some(ms(1400)), &range, true, cut),
            Verdict::Pass
        );
        assert_eq!(
            follower_verdict(Some(ms(1500)), &range, true, cut),
            Verdict::End
        );
        assert_eq!(
            follower_verdict(Some(ms(1500)), &range, true, None),
            Verdict::Pass
        );
    }
}
