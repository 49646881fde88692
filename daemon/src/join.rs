//! `stylize join OUT SEG...`: put the segments of a `stylize file --segment K/N` job back
//! together, in the order given, without re-encoding.
//!
//! Each segment's packets are shifted so that it starts where the previous one's video
//! ends (containers such as MP4 restart every file at 0, so the offsets cannot be read
//! from the segments themselves), and `concat` plays the segments one after the other
//! into a single muxer. Audio packets that would overlap the previous segment's are
//! dropped, so a cut never plays a packet twice.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use gst::prelude::*;

use crate::file::format::{make, Container};
use crate::file::output::{check_destination, Existing, OutputFile};
use crate::file::probe::{probe, MediaInfo};

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// The joined file (.mp4, .mov, .mkv or .webm): written beside itself, renamed on
    /// success.
    pub output: PathBuf,
    /// The segments, in order (`stylize file --segment 1/N` first).
    #[arg(required = true)]
    pub segments: Vec<PathBuf>,
    /// Replace an existing output (only once the joined file is complete).
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(args: &JoinArgs) -> Result<()> {
    for seg in &args.segments {
        if !seg.is_file() {
            bail!("segment {} does not exist or is not a file", seg.display());
        }
    }
    let existing = if args.overwrite {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    let inputs: Vec<&Path> = args.segments.iter().map(PathBuf::as_path).collect();
    check_destination(&args.output, &inputs, existing)?;
    let container = Container::from_path(&args.output)?;
    crate::init_gstreamer()?;
    let out = OutputFile::create(&args.output, &inputs, existing)?;
    let frames = join(&args.segments, out.temp_path(), container)?;
    let dest = out.commit()?;
    eprintln!(
        "joined {} segments, {frames} video frames",
        args.segments.len()
    );
    println!(
        "{}",
        std::path::absolute(&dest).unwrap_or(dest.clone()).display()
    );
    Ok(())
}

/// How far a packet may start before the previous segment's end and still be kept.
const OVERLAP_SLACK_NS: u64 = 2_000_000;

/// Where one segment's packets go: shifted by `offset` (ns, running time), and for every
/// stream but the video, nothing before `not_before`.
#[derive(Debug, Clone, Copy)]
struct Shift {
    offset: i128,
    not_before: Option<u64>,
}

/// The offsets that lay the segments end to end on the video's timeline.
fn shifts(infos: &[MediaInfo]) -> Result<Vec<Vec<Shift>>> {
    let mut result = Vec::new();
    let mut next_start: Option<i128> = None;
    let mut stream_ends: Vec<Option<i128>> = Vec::new();
    for (index, info) in infos.iter().enumerate() {
        let video = info
            .video()
            .ok_or_else(|| anyhow!("segment {} has no video stream", index + 1))?;
        let (Some(first), Some(end)) = (video.first_pts, video.end) else {
            bail!("segment {} has no video frames", index + 1);
        };
        let (first, end) = (first.nseconds() as i128, end.nseconds() as i128);
        let start = next_start.unwrap_or(first);
        let offset = start - first;
        next_start = Some(start + (end - first));
        let mut shifts = Vec::new();
        stream_ends.resize(info.streams.len(), None);
        for (i, stream) in info.streams.iter().enumerate() {
            let not_before = if stream.kind() == "video" {
                None
            } else {
                stream_ends[i].map(|e| e.max(0) as u64)
            };
            if let Some(e) = stream.end {
                stream_ends[i] = Some(e.nseconds() as i128 + offset);
            }
            shifts.push(Shift { offset, not_before });
        }
        result.push(shifts);
    }
    Ok(result)
}

/// Check that every segment has the same streams, encoded the same way.
fn check_alike(segments: &[PathBuf], infos: &[MediaInfo]) -> Result<()> {
    let first = &infos[0];
    for (path, info) in segments.iter().zip(infos).skip(1) {
        if info.streams.len() != first.streams.len() {
            bail!(
                "{} has {} streams, {} has {}: not segments of one job",
                path.display(),
                info.streams.len(),
                segments[0].display(),
                first.streams.len()
            );
        }
        for (a, b) in first.streams.iter().zip(&info.streams) {
            if a.caps != b.caps {
                bail!(
                    "the {} of {} is encoded differently from {}'s (other settings?): \
                     segments join only when made by the same command",
                    b.kind(),
                    path.display(),
                    segments[0].display()
                );
            }
        }
    }
    Ok(())
}

/// Join `segments` into `output`; returns the number of video frames written.
pub fn join(segments: &[PathBuf], output: &Path, container: Container) -> Result<u64> {
    let infos: Vec<MediaInfo> = segments
        .iter()
        .map(|s| probe(s, true))
        .collect::<Result<_>>()?;
    check_alike(segments, &infos)?;
    let shifts = shifts(&infos)?;

    let pipeline = gst::Pipeline::new();
    let concat_pads = muxing_branches(&pipeline, &infos[0], segments.len(), output, container)?;
    let video_index = infos[0]
        .streams
        .iter()
        .position(|s| s.kind() == "video")
        .expect("checked by shifts");
    let frames = Arc::new(Mutex::new(0u64));
    for (k, segment) in segments.iter().enumerate() {
        let pads: VecDeque<(gst::Pad, Shift, bool)> = concat_pads
            .iter()
            .zip(&shifts[k])
            .enumerate()
            .map(|(i, (pads, shift))| (pads[k].clone(), *shift, i == video_index))
            .collect();
        add_segment(&pipeline, segment, pads, &frames)?;
    }
    play_to_end(&pipeline)?;
    let frames = *frames.lock().unwrap_or_else(|e| e.into_inner());
    Ok(frames)
}

/// `concat ! queue ! muxer ! filesink` for every stream; returns the concat sink pads,
/// one per segment in order, for each stream.
fn muxing_branches(
    pipeline: &gst::Pipeline,
    first: &MediaInfo,
    segments: usize,
    output: &Path,
    container: Container,
) -> Result<Vec<Vec<gst::Pad>>> {
    let mux = container.muxer()?;
    let sink = make("filesink")?;
    sink.set_property("location", output.to_string_lossy().as_ref());
    pipeline.add_many([&mux, &sink])?;
    mux.link(&sink)?;
    let mut concat_pads: Vec<Vec<gst::Pad>> = Vec::new();
    for stream in &first.streams {
        let concat = make("concat")?;
        // Timestamps are laid out here, not by concat.
        concat.set_property("adjust-base", false);
        let queue = make("queue")?;
        pipeline.add_many([&concat, &queue])?;
        concat.link(&queue)?;
        let template = match stream.kind() {
            "video" => "video_%u",
            "audio" => "audio_%u",
            _ => "subtitle_%u",
        };
        let mux_pad = mux
            .request_pad_simple(template)
            .with_context(|| format!("{} takes no {} stream", container.name(), stream.kind()))?;
        queue
            .static_pad("src")
            .expect("queue has a src pad")
            .link(&mux_pad)?;
        let pads = (0..segments)
            .map(|_| {
                concat
                    .request_pad_simple("sink_%u")
                    .context("concat gives no pad")
            })
            .collect::<Result<Vec<_>>>()?;
        concat_pads.push(pads);
    }
    Ok(concat_pads)
}

/// `filesrc ! parsebin` for one segment, its streams linked in order to `pads` (the
/// concat pad, the shift onto the joined timeline, and whether it is the counted video).
fn add_segment(
    pipeline: &gst::Pipeline,
    segment: &Path,
    pads: VecDeque<(gst::Pad, Shift, bool)>,
    frames: &Arc<Mutex<u64>>,
) -> Result<()> {
    let src = make("filesrc")?;
    src.set_property("location", segment.to_string_lossy().as_ref());
    let parse = make("parsebin")?;
    pipeline.add_many([&src, &parse])?;
    src.link(&parse)?;
    let pads = Mutex::new(pads);
    let frames = frames.clone();
    parse.connect_pad_added(move |_, pad| {
        let Some((target, shift, is_video)) =
            pads.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
        else {
            return;
        };
        let frames = is_video.then(|| frames.clone());
        shift_stream(pad, shift, frames);
        let _ = pad.link(&target);
    });
    Ok(())
}

fn play_to_end(pipeline: &gst::Pipeline) -> Result<()> {
    let bus = pipeline.bus().expect("a pipeline has a bus");
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| anyhow!("the join pipeline could not start"))?;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(err) => break Err(crate::exit::PipelineError::new(err).into()),
            _ => {}
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Lay one stream of one segment on the joined timeline: every timestamp becomes its
/// running time plus the segment's offset, under a plain segment (running time = PTS).
fn shift_stream(pad: &gst::Pad, shift: Shift, frames: Option<Arc<Mutex<u64>>>) {
    let original: Mutex<gst::FormattedSegment<gst::ClockTime>> =
        Mutex::new(gst::FormattedSegment::new());
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            if let Some(event) = info.event() {
                if let gst::EventView::Segment(seg) = event.view() {
                    if let Some(seg) = seg.segment().downcast_ref::<gst::ClockTime>() {
                        *original.lock().unwrap_or_else(|e| e.into_inner()) = seg.clone();
                    }
                    let plain = gst::FormattedSegment::<gst::ClockTime>::new();
                    let replacement = gst::event::Segment::builder(&plain)
                        .seqnum(event.seqnum())
                        .build();
                    info.data = Some(gst::PadProbeData::Event(replacement));
                }
                return gst::PadProbeReturn::Ok;
            }
            let segment = original.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let shifted = |t: gst::ClockTime| {
                let rt = match segment.to_running_time_full(t) {
                    Some(gst::Signed::Positive(v)) => v.nseconds() as i128,
                    Some(gst::Signed::Negative(v)) => -(v.nseconds() as i128),
                    None => t.nseconds() as i128,
                };
                gst::ClockTime::from_nseconds((rt + shift.offset).max(0) as u64)
            };
            let Some(buffer) = info.buffer_mut() else {
                return gst::PadProbeReturn::Ok;
            };
            let pts = buffer.pts().map(shifted);
            if let (Some(p), Some(limit)) = (pts, shift.not_before) {
                // Already played by the previous segment (whole packets: a resumed job's
                // audio overlaps by tens of ms; less is the containers' rounding).
                if p.nseconds() + OVERLAP_SLACK_NS <= limit {
                    return gst::PadProbeReturn::Handled;
                }
            }
            let dts = buffer.dts().map(shifted);
            let b = buffer.make_mut();
            b.set_pts(pts);
            b.set_dts(dts);
            if let Some(frames) = &frames {
                *frames.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            }
            gst::PadProbeReturn::Ok
        },
    );
}
