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
