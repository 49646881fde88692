//! `gst-launch-1.0` with the built plugin on the real Big Buck Bunny clip: every frame in comes
//! out, with its timestamp, and is actually stylized.

#[path = "common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Folder holding the built `libgststylize.so` (next to the `stylize` binary).
fn plugin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_stylize"))
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(
        dir.join("libgststylize.so").exists(),
        "{} has no libgststylize.so: run `cargo build --workspace` first",
        dir.display()
    );
    dir
}

/// Run gst-launch-1.0 -v and return the PTS that each named `identity` saw, in order.
fn launch(pipeline: &str, scratch: &Path) -> (Vec<String>, Vec<String>) {
    let out = Command::new("gst-launch-1.0")
        .arg("-v")
        .args(pipeline.split_whitespace())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", scratch.join("registry.bin"))
        .output()
        .expect("gst-launch-1.0 (install gstreamer1.0-tools: scripts/setup)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gst-launch-1.0 failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stdout.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    let pts_of = |name: &str| -> Vec<String> {
        stdout
            .lines()
            .filter(|l| l.contains(&format!("/GstIdentity:{name}: last-message = chain")))
            .filter_map(|l| l.split("pts: ").nth(1))
            .map(|rest| rest.split(',').next().unwrap().trim().to_string())
            .collect()
    };
    (pts_of("before"), pts_of("after"))
}

#[test]
fn gst_launch_stylizes_all_132_frames_of_big_buck_bunny() {
    let (Some(video), Some(model)) = (
        common::asset("media/bigbuckbunny.mp4"),
        common::asset("models/multistyle26.onnx"),
    ) else {
        return;
    };
    let dir = common::scratch("gst-launch");
    let decode = format!(
        "filesrc location={} ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! videoscale ! \
         video/x-raw,format=RGBx,width=320,height=180",
        video.display()
    );
    let styled = dir.join("styled.rgbx");
    let plain = dir.join("plain.rgbx");
    let (before, after) = launch(
        &format!(
            "{decode} ! identity name=before silent=false ! \
             stylize model={} style-weights=starry-swirls:0.6,mosaic:0.4 threads=2 ! \
             identity name=after silent=false ! filesink location={}",
            model.display(),
            styled.display()
        ),
        &dir,
    );
    assert_eq!(before.len(), 132, "frames into stylize");
    assert_eq!(after.len(), 132, "frames out of stylize");
    assert_eq!(
        before, after,
        "timestamps must pass through unchanged and in order"
    );
    assert_eq!(after[1], "0:00:00.040000000", "25 fps timestamps");

    launch(
        &format!("{decode} ! filesink location={}", plain.display()),
        &dir,
    );
    let (a, b) = (
        std::fs::read(&styled).unwrap(),
        std::fs::read(&plain).unwrap(),
    );
    assert_eq!(a.len(), 132 * 320 * 180 * 4);
    assert_eq!(a.len(), b.len());
    let frame = 320 * 180 * 4;
    for (i, (x, y)) in a.chunks(frame).zip(b.chunks(frame)).enumerate() {
        let diff: u64 = x
            .iter()
            .zip(y)
            .map(|(p, q)| u64::from(p.abs_diff(*q)))
            .sum();
        let mean = diff as f64 / frame as f64;
        assert!(
            mean > 10.0,
            "frame {i} barely changed (mean abs diff {mean:.2})"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A short stream with `background-load=always` used to end with SIGSEGV/SIGABRT in about one
/// run in six: the loader thread was still inside ONNX Runtime when the process's exit
/// handlers tore the library down. Twenty runs (a few seconds) make a regression all but
/// certain to show.
#[test]
fn short_streams_with_a_background_load_exit_cleanly_every_time() {
    let Some(model) = common::asset("models/mosaic.onnx") else {
        return;
    };
    let dir = common::scratch("exit");
    let plugins = plugin_dir();
    for run in 0..20 {
        let out = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(
                "videotestsrc num-buffers=3 ! video/x-raw,format=RGBx,width=32,height=24 !"
                    .split_whitespace(),
            )
            .arg("stylize")
            .arg(format!("model={}", model.display()))
            .args(["background-load=always", "threads=1", "!", "fakesink"])
            .env("GST_PLUGIN_PATH", &plugins)
            .env("GST_REGISTRY", dir.join("registry.bin"))
            .output()
            .expect("gst-launch-1.0");
        assert!(
            out.status.success(),
            "run {run}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
