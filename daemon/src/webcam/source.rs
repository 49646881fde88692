//! Where frames come from: a camera in production, a test pattern or a file in tests.
//!
//! Every source delivers tightly packed RGBx frames of the size and rate asked for:
//! GStreamer converts, scales and re-times whatever the device or file offers, so the
//! stages after it never renegotiate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use gst::prelude::*;
use gst_video::prelude::*;

use super::{Frame, VideoSpec};

/// One attempt to read a frame.
pub enum Read {
    Frame(Frame),
    /// Nothing yet; call again (lets the caller check for shutdown).
    Idle,
    /// The source has no more frames (a file or a bounded test pattern).
    End,
}

/// An input error that no retry can fix: a misspelled test pattern, a folder, a file that is
/// not a playable video. The capture stage ends the daemon with it (exit 1, one message)
/// instead of retrying forever; every other error is a fault worth retrying.
#[derive(Debug)]
pub struct Permanent(pub String);

impl std::fmt::Display for Permanent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Permanent {}

/// Whether an error from a [`Source`] is [`Permanent`].
pub fn is_permanent(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Permanent>().is_some()
}

/// The test patterns `videotestsrc` knows, by nick.
fn test_patterns() -> Vec<String> {
    let Ok(src) = gst::ElementFactory::make("videotestsrc").build() else {
        return Vec::new();
    };
    let Some(pspec) = src.find_property("pattern") else {
        return Vec::new();
    };
    let Some(pspec) = pspec.downcast_ref::<gst::glib::ParamSpecEnum>() else {
        return Vec::new();
    };
    pspec
        .enum_class()
        .values()
        .iter()
        .map(|v| v.nick().to_string())
        .collect()
}

/// A frame source. An error from `open` or `read` is a fault: the capture stage closes the
/// source, waits with backoff and opens it again, unless the error is [`Permanent`].
pub trait Source: Send {
    fn open(&mut self) -> Result<()>;
    fn read(&mut self) -> Result<Read>;
    fn close(&mut self);
    /// For logs: the device or file.
    fn describe(&self) -> String;
}

/// What `--input` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A V4L2 capture device (`/dev/videoN`).
    Device(PathBuf),
    /// GStreamer's `videotestsrc` (`test`, or `test:PATTERN`, e.g. `test:ball`).
    TestPattern(String),
    /// A video file, decoded with `decodebin`.
    File(PathBuf),
}

impl Input {
    pub fn parse(spec: &str) -> Input {
        if let Some(pattern) = spec.strip_prefix("test:") {
            return Input::TestPattern(pattern.to_string());
        }
        if spec == "test" {
            return Input::TestPattern("smpte".into());
        }
        if spec.starts_with("/dev/") {
            return Input::Device(spec.into());
        }
        Input::File(spec.into())
    }
}

impl Input {
    /// The start of a GStreamer description producing raw video from this input (its first
    /// element is named `src`), and whether the sink should sync to pace it in real time.
    /// Cameras are paced by the device, test patterns by `is-live`, files by the sink.
    pub fn head(&self, realtime: bool, spec: VideoSpec) -> (String, bool) {
        match self {
            Input::Device(_) => (format!("v4l2src name=src ! {}", camera_caps(spec)), false),
            Input::TestPattern(pattern) => (
                format!("videotestsrc name=src is-live={realtime} pattern={pattern}"),
                false,
            ),
            Input::File(_) => (
                "filesrc name=src ! decodebin name=decode".to_string(),
                realtime,
            ),
        }
    }

    /// Set the device or file on the `src` element (not through the description, so any
    /// path works without quoting).
    pub fn configure(&self, pipeline: &gst::Bin) {
        let src = pipeline
            .by_name("src")
            .expect("descriptions name their source `src`");
        match self {
            Input::Device(path) => src.set_property("device", path.to_string_lossy().as_ref()),
            Input::File(path) => src.set_property("location", path.to_string_lossy().as_ref()),
            Input::TestPattern(_) => {}
        }
    }
}

/// What a camera is asked for, best first: most USB cameras give 720p30 and above only as
/// MJPEG (raw YUYV at that size drops to a few fps on USB 2), so MJPEG at the requested
/// size and rate comes first, then raw at that size, then either at any size. `decodebin`
/// decodes MJPEG (jpegdec) and passes raw through.
pub fn camera_caps(spec: VideoSpec) -> String {
    let VideoSpec { width, height, fps } = spec;
    let exact = format!("width={width},height={height},framerate={fps}/1");
    format!(
        "capsfilter caps=\"image/jpeg,{exact};video/x-raw,{exact};image/jpeg;video/x-raw\" ! \
         decodebin name=decode"
    )
}

/// A GStreamer capture pipeline ending in an `appsink`.
pub struct GstSource {
    input: Input,
    spec: VideoSpec,
    /// Pace frames in real time (a camera always is; a file or pattern only when asked).
    realtime: bool,
    /// Stop after this many frames (test patterns and benchmarks).
    max_frames: Option<u64>,
    /// A camera that delivers nothing for this long is treated as gone.
    stall_timeout: Duration,
    running: Option<Running>,
    delivered: u64,
}

struct Running {
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    last_frame: Instant,
    decode: Arc<DecodeTimer>,
    /// Whether this opening delivered a frame: a file that fails before its first frame is
    /// not a playable video, and never will be.
    delivered_any: bool,
}

impl GstSource {
    pub fn new(input: Input, spec: VideoSpec, realtime: bool, max_frames: Option<u64>) -> Self {
        Self {
            input,
            spec,
            realtime,
            max_frames,
            stall_timeout: Duration::from_secs(3),
            running: None,
            delivered: 0,
        }
    }

    fn description(&self) -> String {
        let VideoSpec { width, height, fps } = self.spec;
        let (head, sync) = self.input.head(self.realtime, self.spec);
        format!(
            "{head} ! videoconvert name=decoded ! videoscale add-borders=true ! videorate ! \
             video/x-raw,format=RGBx,width={width},height={height},pixel-aspect-ratio=1/1,framerate={fps}/1 ! \
             appsink name=sink sync={sync} max-buffers=2 drop=false enable-last-sample=false"
        )
    }

    fn build(&self) -> Result<Running> {
        let pipeline = gst::parse::launch(&self.description())
            .context("building the capture pipeline (run scripts/setup for the plugins)")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("capture description is not a pipeline"))?;
        self.input.configure(pipeline.upcast_ref());
        if let Some(decode) = pipeline.by_name("decode") {
            // A file with no video (audio only) otherwise just never delivers a frame, or
            // fails with an unhelpful "not-linked"; say so on the bus, as a permanent error.
            decode.connect_no_more_pads(|decode| {
                let has_video = decode.src_pads().iter().any(|pad| {
                    pad.current_caps()
                        .and_then(|caps| caps.structure(0).map(|s| s.name().starts_with("video/")))
                        .unwrap_or(false)
                });
                if !has_video {
                    gst::element_error!(
                        decode,
                        gst::StreamError::WrongType,
                        ("the file has no video stream")
                    );
                }
            });
        }
        let appsink = pipeline
            .by_name("sink")
            .expect("named sink")
            .downcast::<gst_app::AppSink>()
            .map_err(|_| anyhow!("sink is not an appsink"))?;
        let decode = DecodeTimer::attach(&pipeline);
        Ok(Running {
            pipeline,
            appsink,
            decode,
            last_frame: Instant::now(),
            delivered_any: false,
        })
    }
}

/// Time from a buffer entering the video decoder (found inside `decodebin name=decode`:
/// `jpegdec` for an MJPEG camera, the codec's decoder for a file) to its decoded frame
/// reaching the `decoded` converter, matched by timestamp, which decoders keep. The newest
/// is reported with each frame: `videorate` after it may drop or repeat frames, so frames
/// are not matched one by one at the appsink.
#[derive(Default)]
struct DecodeTimer {
    entered: Mutex<HashMap<u64, Instant>>,
    last_us: AtomicU64,
}

impl DecodeTimer {
    /// Probes on the decoder's input and output; a pipeline without a decoder (a test
    /// pattern, a raw camera) reports 0.
    fn attach(pipeline: &gst::Pipeline) -> Arc<Self> {
        let timer = Arc::new(Self::default());
        let decode = pipeline.by_name("decode");
        let output = pipeline
            .by_name("decoded")
            .and_then(|e| e.static_pad("sink"));
        let (Some(decode), Some(output)) = (decode, output) else {
            return timer;
        };
        let t = timer.clone();
        decode
            .downcast_ref::<gst::Bin>()
            .expect("decodebin is a bin")
            .connect_deep_element_added(move |_, _, element| {
                let is_video_decoder = element.factory().is_some_and(|f| {
                    let klass = f.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or_default();
                    // jpegdec is an image decoder.
                    klass.contains("Decoder")
                        && (klass.contains("Video") || klass.contains("Image"))
                });
                if let (true, Some(input)) = (is_video_decoder, element.static_pad("sink")) {
                    let t = t.clone();
                    input.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                        if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                            t.entered_at(pts);
                        }
                        gst::PadProbeReturn::Ok
                    });
                }
            });
        let t = timer.clone();
        output.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                t.left_at(pts);
            }
            gst::PadProbeReturn::Ok
        });
        timer
    }

    fn entered_at(&self, pts: gst::ClockTime) {
        let mut entered = self.entered.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: frames a decoder drops are never matched.
        if entered.len() > 64 {
            entered.clear();
        }
        entered.insert(pts.nseconds(), Instant::now());
    }

    fn left_at(&self, pts: gst::ClockTime) {
        let entered = self
            .entered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pts.nseconds());
        if let Some(at) = entered {
            self.last_us
                .store(at.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
    }

    fn last_ms(&self) -> f64 {
        self.last_us.load(Ordering::Relaxed) as f64 / 1e3
    }
}

/// The first error on a bus, if any.
pub(super) fn bus_error(bus: &gst::Bus) -> Option<String> {
    bus.pop_filtered(&[gst::MessageType::Error])
        .and_then(|msg| match msg.view() {
            gst::MessageView::Error(e) => Some(match e.debug() {
                Some(d) => format!("{} ({d})", e.error()),
                None => e.error().to_string(),
            }),
            _ => None,
        })
}

impl Source for GstSource {
    fn open(&mut self) -> Result<()> {
        self.close();
        match &self.input {
            // Missing may be temporary (a file being copied in); a folder or a device is not.
            Input::File(path) if path.exists() && !path.is_file() => {
                let problem = stylize_engines::files::input_file_problem(path).unwrap_or_default();
                return Err(Permanent(format!(
                    "{problem} (give a video file, a /dev/videoN camera or test[:PATTERN])"
                ))
                .into());
            }
            Input::File(path) if !path.exists() => {
                bail!("input {} does not exist", path.display());
            }
            Input::TestPattern(pattern) if !test_patterns().contains(pattern) => {
                return Err(Permanent(format!(
                    "unknown test pattern `{pattern}` (known: {})",
                    test_patterns().join(", ")
                ))
                .into());
            }
            _ => {}
        }
        let running = self.build()?;
        let bus = running.pipeline.bus().expect("pipeline bus");
        if running.pipeline.set_state(gst::State::Playing).is_err() {
            let reason = bus_error(&bus).unwrap_or_else(|| "could not start".into());
            let _ = running.pipeline.set_state(gst::State::Null);
            if let Input::File(path) = &self.input {
                return Err(Permanent(format!(
                    "{} is not a playable video: {reason}",
                    path.display()
                ))
                .into());
            }
            bail!("{}: {reason}", self.describe());
        }
        self.running = Some(running);
        Ok(())
    }

    fn read(&mut self) -> Result<Read> {
        if self.max_frames.is_some_and(|max| self.delivered >= max) {
            return Ok(Read::End);
        }
        let describe = self.describe();
        let Some(running) = self.running.as_mut() else {
            bail!("{describe} is not open");
        };
        let bus = running.pipeline.bus().expect("pipeline bus");
        if let Some(err) = bus_error(&bus) {
            if let (Input::File(path), false) = (&self.input, running.delivered_any) {
                return Err(Permanent(format!(
                    "{} is not a playable video (no video stream GStreamer can decode): {err}",
                    path.display()
                ))
                .into());
            }
            bail!("{describe}: {err}");
        }
        let Some(sample) = running
            .appsink
            .try_pull_sample(gst::ClockTime::from_mseconds(50))
        else {
            if running.appsink.is_eos() {
                if matches!(self.input, Input::Device(_)) {
                    bail!("{describe}: the camera stopped streaming");
                }
                return Ok(Read::End);
            }
            if running.last_frame.elapsed() > self.stall_timeout {
                bail!(
                    "{describe}: no frame for {:.1} s",
                    running.last_frame.elapsed().as_secs_f64()
                );
            }
            return Ok(Read::Idle);
        };
        let started = Instant::now();
        let frame = frame_from_sample(&sample, self.spec)?;
        running.last_frame = Instant::now();
        running.delivered_any = true;
        self.delivered += 1;
        Ok(Read::Frame(Frame::new(
            frame,
            self.spec,
            started.elapsed().as_secs_f64() * 1e3,
            running.decode.last_ms(),
        )))
    }

    fn close(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.pipeline.set_state(gst::State::Null);
        }
    }

    fn describe(&self) -> String {
        match &self.input {
            Input::Device(p) => format!("camera {}", p.display()),
            Input::TestPattern(p) => format!("test pattern `{p}`"),
            Input::File(p) => format!("file {}", p.display()),
        }
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        self.close();
    }
}

/// Copy an RGBx sample into a tight buffer (GStreamer may pad rows).
fn frame_from_sample(sample: &gst::Sample, spec: VideoSpec) -> Result<Vec<u8>> {
    let caps = sample.caps().context("sample without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps).context("sample caps are not video")?;
    if info.width() as usize != spec.width || info.height() as usize != spec.height {
        bail!(
            "source delivered {}x{}, expected {}x{}",
            info.width(),
            info.height(),
            spec.width,
            spec.height
        );
    }
    let buffer = sample.buffer().context("sample without a buffer")?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|_| anyhow!("could not map the captured frame"))?;
    let stride = frame.plane_stride()[0] as usize;
    let data = frame
        .plane_data(0)
        .map_err(|_| anyhow!("captured frame has no data"))?;
    let row = spec.width * 4;
    let mut out = Vec::with_capacity(row * spec.height);
    for y in 0..spec.height {
        out.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cameras are asked for MJPEG at the requested size first, and the caps parse and
    /// negotiate: a JPEG-encoding test source at that size reaches the appsink decoded.
    #[test]
    fn cameras_prefer_mjpeg_at_the_requested_size() {
        gst::init().unwrap();
        let spec = VideoSpec {
            width: 64,
            height: 48,
            fps: 30,
        };
        let caps = camera_caps(spec);
        assert!(
            caps.starts_with("capsfilter caps=\"image/jpeg,width=64,height=48,framerate=30/1;"),
            "{caps}"
        );
        let description = format!(
            "videotestsrc num-buffers=3 ! video/x-raw,width=64,height=48,framerate=30/1 ! \
             jpegenc ! {caps} ! videoconvert name=decoded ! video/x-raw,format=RGBx ! \
             appsink name=sink"
        );
        let pipeline = gst::parse::launch(&description)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        // The JPEG decode is timed as its own stage.
        let decode = DecodeTimer::attach(&pipeline);
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut frames = 0;
        while sink
            .try_pull_sample(gst::ClockTime::from_seconds(10))
            .is_some()
        {
            frames += 1;
        }
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(frames, 3);
        assert!(decode.last_ms() > 0.0, "decode time measured");
    }

    #[test]
    fn inputs_parse() {
        assert_eq!(
            Input::parse("/dev/video3"),
            Input::Device("/dev/video3".into())
        );
        assert_eq!(Input::parse("test"), Input::TestPattern("smpte".into()));
        assert_eq!(Input::parse("test:ball"), Input::TestPattern("ball".into()));
        assert_eq!(Input::parse("a.mp4"), Input::File("a.mp4".into()));
    }

    #[test]
    fn test_pattern_delivers_sized_frames_and_ends() {
        crate::init_gstreamer().unwrap();
        let spec = VideoSpec {
            width: 64,
            height: 48,
            fps: 30,
        };
        let mut src = GstSource::new(Input::parse("test:ball"), spec, false, Some(5));
        src.open().unwrap();
        let mut frames = 0;
        loop {
            match src.read().unwrap() {
                Read::Frame(f) => {
                    assert_eq!(f.data.len(), 64 * 48 * 4);
                    frames += 1;
                }
                Read::Idle => {}
                Read::End => break,
            }
        }
        assert_eq!(frames, 5);
    }

    #[test]
    fn inputs_no_retry_can_fix_are_permanent_errors() {
        crate::init_gstreamer().unwrap();
        let spec = VideoSpec {
            width: 64,
            height: 48,
            fps: 30,
        };
        let dir = std::env::temp_dir().join(format!("stylize-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("notes.txt");
        std::fs::write(&text, "not a video\n".repeat(100)).unwrap();
        let first_error = |input: &str| {
            let mut src = GstSource::new(Input::parse(input), spec, false, Some(5));
            if let Err(e) = src.open() {
                return e;
            }
            for _ in 0..200 {
                if let Err(e) = src.read() {
                    return e;
                }
            }
            panic!("{input}: no error");
        };
        for (input, reason) in [
            ("test:nosuch", "unknown test pattern `nosuch` (known: smpte"),
            (dir.to_str().unwrap(), "is a directory, not a file"),
            (text.to_str().unwrap(), "is not a playable video"),
        ] {
            let err = first_error(input);
            assert!(is_permanent(&err), "{input}: {err:#}");
            assert!(err.to_string().contains(reason), "{input}: {err:#}");
        }
        // An audio-only file has no video to show.
        let wav = dir.join("tone.wav");
        let pipeline = gst::parse::launch(&format!(
            "audiotestsrc num-buffers=10 ! wavenc ! filesink location=\"{}\"",
            wav.display()
        ))
        .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        pipeline.set_state(gst::State::Null).unwrap();
        let err = first_error(wav.to_str().unwrap());
        assert!(
            is_permanent(&err) && err.to_string().contains("is not a playable video"),
            "{err:#}"
        );
        // A missing file may still appear: retried like an unplugged camera.
        assert!(!is_permanent(&first_error("/nonexistent.mp4")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_file_and_device_are_errors() {
        crate::init_gstreamer().unwrap();
        let spec = VideoSpec {
            width: 64,
            height: 48,
            fps: 30,
        };
        let mut src = GstSource::new(Input::parse("/nonexistent.mp4"), spec, true, None);
        let err = src.open().unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        // Opening a device that is not there fails at start or on the first read; either way
        // the capture stage gets an error to retry on, never a hang.
        let mut cam = GstSource::new(Input::parse("/dev/video-missing"), spec, true, None);
        let failed = cam.open().is_err() || (0..200).any(|_| cam.read().is_err());
        assert!(failed, "a missing camera must be a fault");
    }
}
