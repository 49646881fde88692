//! `stylize webcam`, `stylize ctl` and `stylize bench latency` end to end through the binary
//! with the real model; `stylize file` on the common containers.

#[path = "common.rs"]
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn stylize() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stylize"))
}

fn ctl(socket: &Path, args: &[&str]) -> (bool, serde_json::Value) {
    let out = stylize()
        .arg("ctl")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    let reply = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ctl {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), reply)
}

fn wait_for(path: &Path, child: &mut Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("webcam exited early: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no control socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > within {
            let _ = child.kill();
            panic!("webcam did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn webcam(socket: &Path, model: &Path, extra: &[&str]) -> Child {
    stylize()
        .args(["webcam", "--input", "test:ball", "--output", "null"])
        .args(["--size", "160x120", "--fps", "15", "--threads", "2"])
        // A bound (~2 min at 15 fps) so a child left behind by a failed assertion ends itself.
        .args(["--frames", "2000"])
        .arg("--model")
        .arg(model)
        .arg("--socket")
        .arg(socket)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr_of(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn webcam_is_controlled_over_its_socket_and_stops_on_sigterm() {
    let Some(model) = common::asset("models/multistyle26.onnx") else {
        return;
    };
    let dir = common::scratch("webcam");
    let socket = dir.join("ctl.sock");
    let mut child = webcam(&socket, &model, &[]);
    wait_for(&socket, &mut child);

    let start = Instant::now();
    loop {
        let (ok, stats) = ctl(&socket, &["stats"]);
        assert!(ok);
        if stats["frames"]["stylized"].as_u64().unwrap() >= 3 {
            assert!(stats["latency_ms"]["infer"]["p50"].as_f64().unwrap() > 0.0);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{stats}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, reply) = ctl(&socket, &["style", "mosaic"]);
    assert!(ok, "{reply}");
    let (ok, reply) = ctl(&socket, &["blend", "starry-swirls:0.7,mosaic:0.3"]);
    assert!(ok, "{reply}");
    let (ok, reply) = ctl(&socket, &["style", "no-such-style"]);
    assert!(!ok);
    assert!(reply["error"].as_str().unwrap().contains("unknown style"));
    let (ok, reply) = ctl(&socket, &["style-image", "painting.jpg"]);
    let error = reply["error"].as_str().unwrap();
    assert!(
        !ok && error.contains("style images need an arbitrary-style model"),
        "{reply}"
    );
    let (ok, stats) = ctl(&socket, &["stats"]);
    assert!(ok);
    assert_eq!(stats["style"], "starry-swirls:0.7,mosaic:0.3");

    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
    let err = stderr_of(child);
    assert!(err.contains("stylize webcam: stopped"), "{err}");
    assert!(!socket.exists(), "socket removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn webcam_quits_on_ctl_quit_and_refuses_a_bad_output() {
    let Some(model) = common::asset("models/multistyle26.onnx") else {
        return;
    };
    let dir = common::scratch("webcam-quit");
    let socket = dir.join("ctl.sock");
    let mut child = webcam(&socket, &model, &[]);
    wait_for(&socket, &mut child);
    let (ok, reply) = ctl(&socket, &["quit"]);
    assert!(ok && reply["quitting"] == true, "{reply}");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());

    let out = stylize()
        .args(["webcam", "--input", "test", "--output", "/dev/video-none"])
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("v4l2loopback"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_latency_writes_stage_percentiles_and_a_png() {
    let Some(model) = common::asset("models/multistyle26.onnx") else {
        return;
    };
    let dir = common::scratch("latency");
    let (json, png) = (dir.join("latency.json"), dir.join("latency.png"));
    let out = stylize()
        .args(["bench", "latency", "--frames", "6", "--warmup", "1"])
        .args(["--size", "96x64", "--threads", "2"])
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&json)
        .arg("--plot")
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    // Offline by default: every frame is processed, none dropped.
    assert_eq!(r["daemon"]["frames"], 6);
    assert_eq!(r["daemon"]["dropped"], 0);
    assert_eq!(r["element"]["frames"], 6);
    for (path, stages) in [
        (
            "daemon",
            &[
                "capture",
                "queue",
                "convert_in",
                "infer",
                "convert_out",
                "output",
                "end_to_end",
            ][..],
        ),
        (
            "element",
            &[
                "convert_in",
                "stylize",
                "infer",
                "convert",
                "convert_out",
                "end_to_end",
            ][..],
        ),
    ] {
        assert!(r[path]["fps"].as_f64().unwrap() > 0.0, "{path}");
        for stage in stages {
            let s = &r[path]["stages_ms"][*stage];
            assert_eq!(s["samples"], 6, "{path}.{stage}");
            let (p50, p95, p99) = (
                s["p50"].as_f64().unwrap(),
                s["p95"].as_f64().unwrap(),
                s["p99"].as_f64().unwrap(),
            );
            assert!(p50 >= 0.0 && p95 >= p50 && p99 >= p95, "{path}.{stage}");
        }
        // The parts fit inside the whole.
        let p50 = |stage: &str| r[path]["stages_ms"][stage]["p50"].as_f64().unwrap();
        assert!(
            p50("infer") > 0.0 && p50("infer") <= p50("end_to_end"),
            "{path}"
        );
    }
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Encode a short clip with gst-launch-1.0 (10 frames at 25 fps, optionally with audio).
fn make_clip(path: &Path, video: &str, mux: &str, audio: Option<&str>) {
    let mut pipeline = format!(
        "videotestsrc num-buffers=10 pattern=ball ! video/x-raw,width=96,height=64,framerate=25/1 ! \
         videoconvert ! {video} ! {mux} name=mux ! filesink location={}",
        path.display()
    );
    if let Some(audio) = audio {
        pipeline.push_str(&format!(
            " audiotestsrc num-buffers=20 samplesperbuffer=1024 ! audioconvert ! audioresample ! {audio} ! mux."
        ));
    }
    let out = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .output()
        .expect("gst-launch-1.0 (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "{pipeline}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn file_mode_reads_the_common_containers() {
    let Some(model) = common::asset("models/multistyle26.onnx") else {
        return;
    };
    let dir = common::scratch("containers");
    for (name, video, mux, audio) in [
        ("clip.mkv", "x264enc", "matroskamux", Some("vorbisenc")),
        ("clip.webm", "vp8enc", "webmmux", Some("opusenc")),
        ("clip.avi", "jpegenc", "avimux", None),
        ("clip.mov", "x264enc", "qtmux", Some("avenc_aac")),
        ("clip.mp4", "avenc_mpeg4", "mp4mux", None),
    ] {
        let input = dir.join(name);
        make_clip(&input, video, mux, audio);
        let output = dir.join(format!("{name}.out.mp4"));
        let out = stylize()
            .args(["file", "--quiet", "--threads", "2", "--style", "mosaic"])
            .arg("--model")
            .arg(&model)
            .arg(&input)
            .arg(&output)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {err}");
        assert!(err.contains("stylized 10 frames"), "{name}: {err}");
        let (pts, size) = common::decoded_frames(&output);
        assert_eq!((pts.len(), size), (10, (96, 64)), "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
