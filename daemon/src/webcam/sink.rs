//! Where stylized frames go: a v4l2loopback device in production, memory or an appsink in
//! tests, nowhere (`null`) in benchmarks.

use std::path::PathBuf;
#[cfg(test)]
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use gst::prelude::*;

use super::{Frame, VideoSpec};
use crate::webcam::source::bus_error;

/// A frame sink. `pts` is the output timestamp (strictly increasing); `repeat` marks a
/// re-send of the last good frame while no new one is available.
pub trait Sink: Send {
    fn write(&mut self, frame: &Frame, pts: Duration, repeat: bool) -> Result<()>;
    fn close(&mut self) {}
}

/// What `--output` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A v4l2loopback device (`/dev/videoN`).
    Device(PathBuf),
    /// Discard frames (`null`), for trials and benchmarks.
    Null,
}

impl Output {
    pub fn parse(spec: &str) -> Result<Output> {
        match spec {
            "null" => Ok(Output::Null),
            s if s.starts_with("/dev/") => Ok(Output::Device(s.into())),
            s => bail!("--output must be a v4l2loopback device (/dev/videoN) or `null`, got `{s}`"),
        }
    }

    /// The GStreamer description after the `appsrc`.
    fn tail(&self) -> String {
        match self {
            // v4l2loopback consumers (OBS, browsers) read YUY2 or I420; videoconvert picks
            // what the device accepts.
            Output::Device(_) => "videoconvert ! v4l2sink name=dev sync=false".into(),
            Output::Null => "fakesink sync=false".into(),
        }
    }
}

/// `appsrc ! <tail>`: pushes frames with their timestamps into a GStreamer pipeline.
pub struct GstSink {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    frame_duration: gst::ClockTime,
}

impl GstSink {
    pub fn open(output: &Output, spec: VideoSpec) -> Result<Self> {
        let sink = Self::with_tail(&output.tail(), spec)?;
        if let Output::Device(path) = output {
            if !path.exists() {
                bail!(
                    "output device {} does not exist (load v4l2loopback: \
                     sudo modprobe v4l2loopback exclusive_caps=1)",
                    path.display()
                );
            }
            sink.pipeline
                .by_name("dev")
                .expect("named v4l2sink")
                .set_property("device", path.to_string_lossy().as_ref());
        }
        sink.start()?;
        Ok(sink)
    }

    /// `appsrc` followed by any description (tests end it in an `appsink`).
    pub fn with_tail(tail: &str, spec: VideoSpec) -> Result<Self> {
        let pipeline = gst::parse::launch(&format!("appsrc name=src ! {tail}"))
            .context("building the output pipeline (run scripts/setup for the plugins)")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("output description is not a pipeline"))?;
        let appsrc = pipeline
            .by_name("src")
            .expect("named appsrc")
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| anyhow!("src is not an appsrc"))?;
        let caps = gst_video::VideoInfo::builder(
            gst_video::VideoFormat::Rgbx,
            spec.width as u32,
            spec.height as u32,
        )
        .fps(gst::Fraction::new(spec.fps as i32, 1))
        .build()?
        .to_caps()?;
        appsrc.set_caps(Some(&caps));
        appsrc.set_format(gst::Format::Time);
        appsrc.set_is_live(true);
        // A slow device must not make frames pile up here either.
        appsrc.set_max_bytes((spec.width * spec.height * 4 * 2) as u64);
        appsrc.set_leaky_type(gst_app::AppLeakyType::Downstream);
        Ok(Self {
            pipeline,
            appsrc,
            frame_duration: gst::ClockTime::SECOND / spec.fps.max(1) as u64,
        })
    }

    pub fn start(&self) -> Result<()> {
        let bus = self.pipeline.bus().expect("pipeline bus");
        if self.pipeline.set_state(gst::State::Playing).is_err() {
            let reason = bus_error(&bus).unwrap_or_else(|| "could not start".into());
            let _ = self.pipeline.set_state(gst::State::Null);
            bail!("output: {reason}");
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }
}

impl Sink for GstSink {
    fn write(&mut self, frame: &Frame, pts: Duration, _repeat: bool) -> Result<()> {
        if let Some(err) = bus_error(&self.pipeline.bus().expect("pipeline bus")) {
            bail!("output: {err}");
        }
        let mut buffer = gst::Buffer::from_slice(frame.data.clone());
        {
            let b = buffer.get_mut().expect("new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
            b.set_duration(self.frame_duration);
        }
        self.appsrc
            .push_buffer(buffer)
            .map_err(|e| anyhow!("output refused a frame: {e:?}"))?;
        Ok(())
    }

    fn close(&mut self) {
        let _ = self.appsrc.end_of_stream();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for GstSink {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// What a [`MemorySink`] saw of one frame.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub seq: u64,
    pub pts: Duration,
    pub repeat: bool,
    /// First pixel's bytes, to tell stylized from passed-through content.
    pub first_pixel: [u8; 4],
}

/// Records every frame written, for tests.
#[cfg(test)]
#[derive(Clone, Default)]
pub struct MemorySink {
    pub written: Arc<Mutex<Vec<Written>>>,
}

#[cfg(test)]
impl Sink for MemorySink {
    fn write(&mut self, frame: &Frame, pts: Duration, repeat: bool) -> Result<()> {
        let mut first_pixel = [0; 4];
        first_pixel.copy_from_slice(&frame.data[..4]);
        self.written.lock().unwrap().push(Written {
            seq: frame.seq,
            pts,
            repeat,
            first_pixel,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse() {
        assert_eq!(Output::parse("null").unwrap(), Output::Null);
        assert_eq!(
            Output::parse("/dev/video9").unwrap(),
            Output::Device("/dev/video9".into())
        );
        assert!(Output::parse("out.mp4").is_err());
    }

    #[test]
    fn missing_output_device_is_a_clear_error() {
        crate::init_gstreamer().unwrap();
        let spec = VideoSpec {
            width: 32,
            height: 24,
            fps: 30,
        };
        let err = GstSink::open(&Output::Device("/dev/video-missing".into()), spec)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("v4l2loopback"), "{err}");
    }

    #[test]
    fn gst_sink_keeps_timestamps_through_videoconvert() {
        crate::init_gstreamer().unwrap();
        let spec = VideoSpec {
            width: 32,
            height: 24,
            fps: 30,
        };
        let mut sink = GstSink::with_tail(
            "videoconvert ! video/x-raw,format=I420 ! appsink name=out sync=false",
            spec,
        )
        .unwrap();
        sink.start().unwrap();
        let appsink = sink
            .pipeline()
            .by_name("out")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let frame = Frame::new(vec![7; 32 * 24 * 4], spec, 0.0, 0.0);
        for i in 0..3u64 {
            sink.write(&frame, Duration::from_millis(40 * i), false)
                .unwrap();
            let sample = appsink
                .try_pull_sample(gst::ClockTime::from_seconds(5))
                .expect("frame reached the appsink");
            let pts = sample.buffer().unwrap().pts().unwrap();
            assert_eq!(pts, gst::ClockTime::from_mseconds(40 * i));
        }
        sink.close();
    }
}
