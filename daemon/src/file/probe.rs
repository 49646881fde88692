//! What an input holds, found by demuxing it without decoding: its streams and duration
//! (prerolling, in a fraction of a second), or every packet's timestamps (reading it
//! through, at disk speed).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use gst::prelude::*;

use super::format::make;
use super::pipeline::running_time;

/// One elementary stream.
#[derive(Debug, Clone)]
pub struct Stream {
    pub caps: gst::Caps,
    /// First and last packet time (with a full scan), and the end of the last packet; in
    /// running time, which puts streams with an edit list where they play.
    pub first_pts: Option<gst::ClockTime>,
    pub last_pts: Option<gst::ClockTime>,
    pub end: Option<gst::ClockTime>,
    pub packets: u64,
}

impl Stream {
    pub fn kind(&self) -> &str {
        let name = self.caps.structure(0).map_or("", |s| s.name().as_str());
        if name.starts_with("video/") || name.starts_with("image/") {
            "video"
        } else if name.starts_with("audio/") {
            "audio"
        } else {
            "other"
        }
    }
}

#[derive(Debug, Clone)]
pub struct MediaInfo {
    pub duration: Option<gst::ClockTime>,
    /// In the order the demuxer exposed them.
    pub streams: Vec<Stream>,
}

impl MediaInfo {
    pub fn video(&self) -> Option<&Stream> {
        self.streams.iter().find(|s| s.kind() == "video")
    }
}

/// How long a preroll may take before the input is called unreadable.
const PREROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// Streams and duration. `full`: also read every packet for first/last timestamps.
pub fn probe(path: &Path, full: bool) -> Result<MediaInfo> {
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let parse = make("parsebin")?;
    pipeline.add_many([&src, &parse])?;
    src.link(&parse)?;
    let streams: Arc<Mutex<Vec<Stream>>> = Arc::default();
    let weak = pipeline.downgrade();
    let found = streams.clone();
    parse.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let index = {
            let mut streams = found.lock().unwrap_or_else(|e| e.into_inner());
            streams.push(Stream {
                caps,
                first_pts: None,
                last_pts: None,
                end: None,
                packets: 0,
            });
            streams.len() - 1
        };
        // A queue per stream: a prerolled sink blocks its thread, and the demuxer must
        // still reach the other streams' first packets.
        let (Ok(queue), Ok(sink)) = (
            gst::ElementFactory::make("queue").build(),
            gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .build(),
        ) else {
            return;
        };
        if pipeline.add_many([&queue, &sink]).is_err() || queue.link(&sink).is_err() {
            return;
        }
        let _ = sink.sync_state_with_parent();
        let _ = queue.sync_state_with_parent();
        let record = found.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some(buffer) = info.buffer() {
                let mut streams = record.lock().unwrap_or_else(|e| e.into_inner());
                let s = &mut streams[index];
                s.packets += 1;
                if let Some(pts) = buffer.pts().map(|pts| running_time(pad, pts)) {
                    s.first_pts = Some(s.first_pts.map_or(pts, |f| f.min(pts)));
                    s.last_pts = Some(s.last_pts.map_or(pts, |l| l.max(pts)));
                    let end = pts + buffer.duration().unwrap_or_default();
                    s.end = Some(s.end.map_or(end, |e| e.max(end)));
                }
            }
            gst::PadProbeReturn::Ok
        });
        let _ = pad.link(&queue.static_pad("sink").expect("queue has a sink pad"));
    });

    let bus = pipeline.bus().expect("a pipeline has a bus");
    let result = run(&pipeline, &bus, full);
    let duration = pipeline
        .query_duration::<gst::ClockTime>()
        .filter(|d| !d.is_zero());
    let _ = pipeline.set_state(gst::State::Null);
    result.map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    let streams = streams.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(MediaInfo { duration, streams })
}

fn run(pipeline: &gst::Pipeline, bus: &gst::Bus, full: bool) -> Result<()> {
    let target = if full {
        gst::State::Playing
    } else {
        gst::State::Paused
    };
    if pipeline.set_state(target).is_err() {
        return Err(first_error(bus).unwrap_or_else(|| anyhow!("it does not open")));
    }
    let done = if full {
        gst::MessageType::Eos
    } else {
        gst::MessageType::AsyncDone
    };
    // A full scan reads at disk speed; a preroll stops at the first packets.
    let timeout = if full {
        gst::ClockTime::NONE
    } else {
        Some(gst::ClockTime::from_nseconds(
            PREROLL_TIMEOUT.as_nanos() as u64
        ))
    };
    match bus.timed_pop_filtered(timeout, &[done, gst::MessageType::Error]) {
        Some(msg) => match msg.view() {
            gst::MessageView::Error(err) => bail!("{}", err.error()),
            _ => Ok(()),
        },
        None => bail!("no stream found in {} s", PREROLL_TIMEOUT.as_secs()),
    }
}

fn first_error(bus: &gst::Bus) -> Option<anyhow::Error> {
    let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(err) => Some(anyhow!("{}", err.error())),
        _ => None,
    }
}
