//! `stylize file` as a video editor uses it: nothing of the user's is ever destroyed,
//! every stream kept, interruptions leave a playable file, options checked (issue 16).

#[path = "common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gst::prelude::*;

fn stylize() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stylize"))
}

/// `stylize file` with the options that keep a test quick (small inference, no smoothing).
fn file_cmd() -> Command {
    let mut cmd = stylize();
    cmd.args(["file", "--quiet", "--threads", "2", "--stability", "0"])
        .args(["--inference-size", "64x0"]);
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Run a gst-launch description to EOS (makes the synthetic test clips).
fn gst_run(description: &str) {
    common::init_gst();
    let pipeline = gst::parse::launch(description).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{description}: {}", e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// A short H.264 MP4 (160x120, 25 fps) of `frames` frames.
fn h264_clip(path: &Path, frames: u32) {
    gst_run(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! \
         video/x-raw,width=160,height=120,framerate=25/1 ! x264enc ! mp4mux ! \
         filesink location=\"{}\"",
        path.display()
    ));
}

/// Assert the file holds exactly `bytes` and say what it is.
fn assert_intact(path: &Path, bytes: &[u8], what: &str) {
    assert_eq!(
        std::fs::read(path).unwrap_or_default(),
        bytes,
        "{what} {} was modified",
        path.display()
    );
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect()
}

#[test]
fn the_input_is_never_the_output() {
    let dir = common::scratch("same");
    let input = dir.join("a.mp4");
    h264_clip(&input, 5);
    let bytes = std::fs::read(&input).unwrap();
    let link = dir.join("link.mp4");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let hard = dir.join("hard.mp4");
    std::fs::hard_link(&input, &hard).unwrap();
    for output in [&input, &link, &hard] {
        for extra in [&[][..], &["--overwrite"][..]] {
            let out = file_cmd()
                .args(extra)
                .arg(&input)
                .arg(output)
                .output()
                .unwrap();
            let err = stderr(&out);
            assert!(!out.status.success());
            assert!(err.contains("is the input file"), "{err}");
            assert_intact(&input, &bytes, "input");
        }
    }
    assert!(temp_files(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_existing_output_survives_refusal_and_failure() {
    let dir = common::scratch("existing");
    let input = dir.join("in.mp4");
    h264_clip(&input, 5);
    let output = dir.join("out.mp4");
    std::fs::write(&output, b"an earlier edit").unwrap();

    // Refused before any work without --overwrite (no model needed to get there).
    let out = file_cmd().arg(&input).arg(&output).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("exists: pass --overwrite"), "{err}");
    assert_intact(&output, b"an earlier edit", "existing output");

    // With --overwrite, a run that fails still leaves it as it was.
    if common::asset("models/multistyle26.onnx").is_some() {
        let out = file_cmd()
            .args(["--overwrite", "--style", "nosuch"])
            .arg(&input)
            .arg(&output)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success());
        assert!(err.contains("unknown style `nosuch`"), "{err}");
        assert_intact(&output, b"an earlier edit", "existing output");
    }
    assert!(temp_files(&dir).is_empty(), "the temp file is removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_run_leaves_a_symlinks_target_and_a_device_alone() {
    if common::asset("models/multistyle26.onnx").is_none() {
        return;
    }
    let dir = common::scratch("symlink");
    let input = dir.join("in.mp4");
    h264_clip(&input, 5);
    let target = dir.join("precious.mp4");
    std::fs::write(&target, b"precious").unwrap();
    let link = dir.join("out.mp4");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = file_cmd()
        .args(["--overwrite", "--style", "nosuch"])
        .arg(&input)
        .arg(&link)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_intact(&target, b"precious", "symlink target");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(temp_files(&dir).is_empty());

    let out = file_cmd()
        .arg("--overwrite")
        .arg(&input)
        .arg("/dev/null")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("not a regular file"),
        "{err}"
    );
    assert!(Path::new("/dev/null").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn out_of_range_options_are_usage_errors_not_panics() {
    let dir = common::scratch("options");
    let input = dir.join("in.mp4");
    std::fs::write(&input, b"never read: options are checked first").unwrap();
    let output = dir.join("out.mp4");
    let cases: &[(&[&str], &str)] = &[
        (&["--scale", "0"], "outside 0.01 to 4"),
        (&["--scale", "nan"], "not a number"),
        (&["--scale", "1000"], "outside 0.01 to 4"),
        (&["--style-strength", "7"], "not between 0 and 1"),
        (&["--stability=-0.5"], "not between 0 and 1"),
        (&["--threads", "1000"], "limit of 256"),
        (&["--quantizer", "1000"], "outside 0 to 50"),
        (&["--inference-size", "9000x9000"], "past the limit"),
        (&["--inference-size", "0x0"], "cannot both be 0"),
    ];
    for (args, message) in cases {
        let out = stylize()
            .arg("file")
            .args(*args)
            .arg(&input)
            .arg(&output)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert!(!output.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
