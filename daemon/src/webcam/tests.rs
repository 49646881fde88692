//! Stage tests with real GStreamer sources and a deterministic slow stand-in for the model.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::Value;
use stylize_engines::model::{Family, InputRange, ModelInfo};
use stylize_engines::Timings;

use super::sink::{MemorySink, Written};
use super::source::{GstSource, Input, Read, Source};
use super::*;
use crate::control::{Server, MAX_LINE};
use crate::ctl;

/// Inverts colour bytes after a fixed delay: slower than the source, checkable output.
struct SlowInvert {
    delay: Duration,
    seen: Arc<Mutex<Vec<f32>>>,
}

impl Processor for SlowInvert {
    fn process(&mut self, frame: &mut Frame, conditioning: &[f32]) -> Result<Timings> {
        std::thread::sleep(self.delay);
        for px in frame.data.chunks_exact_mut(4) {
            for v in &mut px[..3] {
                *v = 255 - *v;
            }
        }
        *self.seen.lock().unwrap() = conditioning.to_vec();
        Ok(Timings {
            infer_ms: self.delay.as_secs_f64() * 1e3,
            ..Timings::default()
        })
    }
}

fn slow(delay_ms: u64) -> (Box<SlowInvert>, Arc<Mutex<Vec<f32>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let p = SlowInvert {
        delay: Duration::from_millis(delay_ms),
        seen: seen.clone(),
    };
    (Box::new(p), seen)
}

fn cin_model() -> ModelInfo {
    ModelInfo {
        path: PathBuf::from("fake-cin.onnx"),
        family: Family::Cin,
        input_range: InputRange::Unit,
        size_multiple: 4,
        fixed_size: None,
        styles: vec!["swirls".into(), "mosaic".into(), "ink".into()],
        conditioning_len: 3,
    }
}

const SPEC: VideoSpec = VideoSpec {
    width: 64,
    height: 48,
    fps: 30,
};

fn config(live: bool) -> Config {
    Config {
        spec: SPEC,
        live,
        record_all: false,
        backoff: (Duration::from_millis(20), Duration::from_millis(100)),
    }
}

fn shared() -> Arc<Shared> {
    Arc::new(Shared::new(cin_model(), None, None).unwrap())
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn assert_monotonic(written: &[Written]) {
    for pair in written.windows(2) {
        assert!(
            pair[1].pts > pair[0].pts,
            "output timestamps must increase: {:?} then {:?}",
            pair[0].pts,
            pair[1].pts
        );
    }
}

fn c(v: &std::sync::atomic::AtomicU64) -> u64 {
    v.load(Ordering::Relaxed)
}

#[test]
fn live_mode_drops_oldest_when_inference_is_slower_than_the_source() {
    crate::init_gstreamer().unwrap();
    // An unpaced test pattern delivers frames far faster than 15 ms per frame of "inference".
    let source = GstSource::new(Input::parse("test:white"), SPEC, false, Some(200));
    let (processor, _) = slow(15);
    let sink = MemorySink::default();
    let written = sink.written.clone();
    let shared = shared();
    let webcam = Webcam::start(
        config(true),
        shared.clone(),
        Box::new(source),
        processor,
        Box::new(sink),
    )
    .unwrap();
    webcam.wait().unwrap();

    let k = &shared.counters;
    let (captured, stylized) = (c(&k.captured), c(&k.stylized));
    let dropped = c(&k.dropped_capture);
    assert_eq!(captured, 200);
    assert!(
        dropped > 100,
        "a fast source must cost frames, dropped {dropped}"
    );
    // Every captured frame was either stylized or dropped and counted: nothing vanished,
    // nothing is still queued.
    assert_eq!(stylized + dropped, captured);
    assert_eq!(c(&k.written) + c(&k.dropped_output), stylized);

    let written = written.lock().unwrap();
    assert_monotonic(&written);
    let fresh: Vec<&Written> = written.iter().filter(|w| !w.repeat).collect();
    assert_eq!(fresh.len() as u64, c(&k.written));
    assert!(
        fresh.windows(2).all(|p| p[1].seq > p[0].seq),
        "frames leave in capture order"
    );
    assert!(
        fresh.iter().all(|w| w.first_pixel[..3] == [0, 0, 0]),
        "white frames come out inverted"
    );
    // Bounded queues: no frame waited behind a backlog. An unbounded queue would make the
    // last of 200 frames wait ~3 s (200 × 15 ms).
    let stats = shared.stats();
    let worst_queue = stats["latency_ms"]["queue"]["max"].as_f64().unwrap();
    assert!(worst_queue < 250.0, "queue wait {worst_queue} ms");
}

#[test]
fn offline_mode_loses_no_frame() {
    crate::init_gstreamer().unwrap();
    let source = GstSource::new(Input::parse("test:white"), SPEC, false, Some(20));
    let (processor, _) = slow(2);
    let sink = MemorySink::default();
    let written = sink.written.clone();
    let shared = shared();
    Webcam::start(
        config(false),
        shared.clone(),
        Box::new(source),
        processor,
        Box::new(sink),
    )
    .unwrap()
    .wait()
    .unwrap();
    let written = written.lock().unwrap();
    let seqs: Vec<u64> = written.iter().map(|w| w.seq).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    assert!(written.iter().all(|w| !w.repeat));
    assert_eq!(c(&shared.counters.dropped_capture), 0);
}

/// Wraps a source: after `fail_after` frames a read fails (camera unplugged) and reopening
/// fails until `outage` has passed; then the inner source works again.
struct FaultySource<S: Source> {
    inner: S,
    fail_after: u64,
    outage: Duration,
    delivered: u64,
    failed_at: Option<Instant>,
    open_attempts_during_outage: Arc<Mutex<u32>>,
}

impl<S: Source> Source for FaultySource<S> {
    fn open(&mut self) -> Result<()> {
        if let Some(t) = self.failed_at {
            if t.elapsed() < self.outage {
                *self.open_attempts_during_outage.lock().unwrap() += 1;
                bail!("device busy (injected)");
            }
        }
        self.inner.open()
    }
    fn read(&mut self) -> Result<Read> {
        if self.delivered == self.fail_after && self.failed_at.is_none() {
            self.failed_at = Some(Instant::now());
            bail!("camera unplugged (injected)");
        }
        let r = self.inner.read()?;
        if matches!(r, Read::Frame(_)) {
            self.delivered += 1;
        }
        Ok(r)
    }
    fn close(&mut self) {
        self.inner.close()
    }
    fn describe(&self) -> String {
        format!("faulty {}", self.inner.describe())
    }
}

#[test]
fn camera_fault_keeps_the_last_good_frame_flowing_and_recovers() {
    crate::init_gstreamer().unwrap();
    let attempts = Arc::new(Mutex::new(0));
    let source = FaultySource {
        inner: GstSource::new(Input::parse("test:white"), SPEC, true, None),
        fail_after: 10,
        outage: Duration::from_millis(500),
        delivered: 0,
        failed_at: None,
        open_attempts_during_outage: attempts.clone(),
    };
    let (processor, _) = slow(1);
    let sink = MemorySink::default();
    let written = sink.written.clone();
    let shared = shared();
    let webcam = Webcam::start(
        config(true),
        shared.clone(),
        Box::new(source),
        processor,
        Box::new(sink),
    )
    .unwrap();
    let k = &shared.counters;
    wait_until(
        "recovery and 10 more frames",
        Duration::from_secs(20),
        || c(&k.source_recoveries) == 1 && c(&k.captured) >= 20,
    );
    shared.request_stop();
    webcam.wait().unwrap();

    assert_eq!(c(&k.source_faults), 1);
    assert!(
        *attempts.lock().unwrap() >= 2,
        "reopening is retried with backoff during the outage"
    );
    let written = written.lock().unwrap();
    assert_monotonic(&written);
    // The outage shows up as a run of re-sends of the last good (stylized) frame…
    let last_before = written.iter().rfind(|w| !w.repeat && w.seq == 10).unwrap();
    let run: Vec<&Written> = written
        .iter()
        .skip_while(|w| !std::ptr::eq(*w, last_before))
        .skip(1)
        .take_while(|w| w.repeat)
        .collect();
    // 500 ms at 30 fps is 15 frame intervals; allow for a loaded machine.
    assert!(
        run.len() >= 8,
        "only {} re-sends during the outage",
        run.len()
    );
    assert!(run
        .iter()
        .all(|w| w.seq == 10 && w.first_pixel[..3] == [0, 0, 0]));
    // …that spans the outage in output time, and new frames follow it.
    let span = run.last().unwrap().pts - last_before.pts;
    assert!(span >= Duration::from_millis(300), "re-sends span {span:?}");
    assert!(written.iter().any(|w| !w.repeat && w.seq > 10));
}

#[test]
fn absent_camera_sends_black_frames_until_stopped() {
    crate::init_gstreamer().unwrap();
    let source = GstSource::new(Input::parse("/nonexistent-camera.mp4"), SPEC, true, None);
    let (processor, _) = slow(1);
    let sink = MemorySink::default();
    let written = sink.written.clone();
    let shared = shared();
    let webcam = Webcam::start(
        config(true),
        shared.clone(),
        Box::new(source),
        processor,
        Box::new(sink),
    )
    .unwrap();
    wait_until("black keep-alive frames", Duration::from_secs(10), || {
        written.lock().unwrap().len() >= 5
    });
    assert!(!shared.source_healthy.load(Ordering::Relaxed));
    let stop_requested = Instant::now();
    shared.request_stop();
    webcam.wait().unwrap();
    assert!(
        stop_requested.elapsed() < Duration::from_secs(2),
        "prompt stop"
    );
    let written = written.lock().unwrap();
    assert!(written
        .iter()
        .all(|w| w.repeat && w.first_pixel[..3] == [0, 0, 0]));
    assert_monotonic(&written);
}

fn scratch_socket(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stylize-ctl-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("ctl.sock")
}

#[test]
fn every_control_command_round_trips_over_the_socket() {
    crate::init_gstreamer().unwrap();
    let source = GstSource::new(Input::parse("test:white"), SPEC, true, None);
    let (processor, seen) = slow(2);
    let sink = MemorySink::default();
    let written = sink.written.clone();
    let shared = shared();
    let webcam = Webcam::start(
        config(true),
        shared.clone(),
        Box::new(source),
        processor,
        Box::new(sink),
    )
    .unwrap();
    let socket = scratch_socket("all");
    let handler_shared = shared.clone();
    let server = Server::bind(
        &socket,
        Arc::new(move |r| handler_shared.handle(r)),
        shared.stop.clone(),
    )
    .unwrap();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    let send = |req: Request| ctl::send(&socket, &req).unwrap();
    let k = &shared.counters;
    wait_until("first frames", Duration::from_secs(10), || {
        c(&k.written) > 3
    });

    let stats = send(Request::Stats);
    assert!(stats.is_ok(), "{:?}", stats);
    assert!(stats.0["frames"]["captured"].as_u64().unwrap() > 3);
    assert_eq!(stats.0["style"], "default");
    assert!(stats.0["latency_ms"]["infer"]["p50"].as_f64().unwrap() >= 2.0);
    for key in ["p50", "p95", "p99"] {
        assert!(stats.0["latency_ms"]["end_to_end"][key].is_number());
    }

    // style: applied by the stylize stage from the next frame.
    let r = send(Request::Style {
        name: "mosaic".into(),
    });
    assert_eq!(r.0, serde_json::json!({"ok": true, "style": "mosaic"}));
    wait_until("mosaic conditioning", Duration::from_secs(5), || {
        *seen.lock().unwrap() == vec![0.0, 1.0, 0.0]
    });
    let r = send(Request::Style {
        name: "nope".into(),
    });
    assert!(!r.is_ok());
    assert!(r.error_message().unwrap().contains("unknown style `nope`"));
    assert_eq!(*shared.conditioning(), vec![0.0, 1.0, 0.0], "style kept");

    // blend
    let r = send(Request::Blend {
        weights: "swirls:3,ink:1".into(),
    });
    assert!(r.is_ok(), "{r:?}");
    wait_until("blend conditioning", Duration::from_secs(5), || {
        *seen.lock().unwrap() == vec![0.75, 0.0, 0.25]
    });
    let r = send(Request::Blend {
        weights: "swirls:-1".into(),
    });
    assert!(r.error_message().unwrap().contains("non-negative"));

    // style-image needs an arbitrary-style model: this CIN model says so and keeps going;
    // so does a prompt, which needs an embedding from `stylize tune`.
    let r = send(Request::StyleImage {
        path: "/tmp/p.jpg".into(),
    });
    assert!(
        r.error_message()
            .unwrap()
            .contains("style images need an arbitrary-style model"),
        "{r:?}"
    );
    let r = send(Request::Prompt {
        text: "blue watercolour".into(),
    });
    assert!(
        r.error_message()
            .unwrap()
            .contains("text prompts need an arbitrary-style model"),
        "{r:?}"
    );

    // pause: frames pass through unstylized (white stays white); resume: inverted again.
    let latest_fresh = || {
        written
            .lock()
            .unwrap()
            .iter()
            .rfind(|w| !w.repeat)
            .map(|w| w.first_pixel)
            .unwrap()
    };
    assert_eq!(send(Request::Pause).0["paused"], true);
    let passed = c(&k.passed_through);
    wait_until("pass-through frames", Duration::from_secs(5), || {
        c(&k.passed_through) > passed + 2 && latest_fresh()[..3] == [255, 255, 255]
    });
    assert_eq!(send(Request::Stats).0["paused"], true);
    assert_eq!(send(Request::Resume).0["paused"], false);
    let stylized = c(&k.stylized);
    wait_until("stylized frames again", Duration::from_secs(5), || {
        c(&k.stylized) > stylized + 2 && latest_fresh()[..3] == [0, 0, 0]
    });

    // Malformed, oversized and unknown input on one connection: error replies, then the
    // same connection still works and the stream kept running.
    let captured = c(&k.captured);
    let replies = ctl::exchange(
        &socket,
        &[
            "garbage".into(),
            "x".repeat(MAX_LINE + 10),
            r#"{"cmd":"reboot"}"#.into(),
            r#"{"cmd":"stats"}"#.into(),
        ],
    )
    .unwrap();
    let errors: Vec<&str> = replies[..3]
        .iter()
        .map(|r| r.error_message().unwrap())
        .collect();
    assert!(errors[0].contains("not JSON"), "{errors:?}");
    assert!(errors[1].contains("limit"), "{errors:?}");
    assert!(errors[2].contains("unknown command `reboot`"), "{errors:?}");
    assert!(replies[3].is_ok());
    wait_until("frames after bad input", Duration::from_secs(5), || {
        c(&k.captured) > captured + 2
    });

    // quit stops every stage and the server.
    let r = send(Request::Quit);
    assert_eq!(r.0["quitting"], Value::Bool(true));
    let quit_at = Instant::now();
    webcam.wait().unwrap();
    server.join();
    assert!(quit_at.elapsed() < Duration::from_secs(3));
    assert!(!socket.exists(), "socket removed on shutdown");
    assert_monotonic(&written.lock().unwrap());
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let socket = scratch_socket("busy");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handler: crate::control::Handler = Arc::new(|_| Response::ok(serde_json::json!({})));
    let first = Server::bind(&socket, handler.clone(), stop.clone()).unwrap();
    let err = Server::bind(&socket, handler.clone(), stop.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("in use"), "{err}");
    stop.store(true, Ordering::Relaxed);
    first.join();
    // A stale socket file (crashed daemon) is replaced.
    std::os::unix::net::UnixListener::bind(&socket).unwrap();
    stop.store(false, Ordering::Relaxed);
    let again = Server::bind(&socket, handler, stop.clone()).unwrap();
    stop.store(true, Ordering::Relaxed);
    again.join();
}

/// Real V4L2 devices: only where they exist (never on the build machines).
#[test]
fn real_camera_when_present() {
    let Some(device) = ["/dev/video0", "/dev/video1"]
        .into_iter()
        .find(|d| std::path::Path::new(d).exists())
    else {
        eprintln!("skipping: no /dev/video* device");
        return;
    };
    crate::init_gstreamer().unwrap();
    let mut cam = GstSource::new(Input::parse(device), SPEC, true, Some(3));
    cam.open().unwrap();
    let mut frames = 0;
    let start = Instant::now();
    while frames < 3 && start.elapsed() < Duration::from_secs(10) {
        if let Read::Frame(f) = cam.read().unwrap() {
            assert_eq!(f.data.len(), SPEC.width * SPEC.height * 4);
            frames += 1;
        }
    }
    assert_eq!(frames, 3, "{device} delivered frames");
}
