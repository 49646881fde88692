//! `stylize file` as a video editor uses it: nothing of the user's is ever destroyed,
//! every stream kept, interruptions leave a playable file, options checked (issue 16).

#[path = "common.rs"]
mod common;

use std::os::unix::fs::FileTypeExt;
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

/// Scripts tell failures apart by the exit status: before, every failure of the element
/// (missing model, corrupt model, unknown style) exited 1 with a source location appended.
#[test]
fn the_exit_status_says_what_kind_of_failure_it_was() {
    if common::asset("models/multistyle26.onnx").is_none() {
        return;
    }
    let dir = common::scratch("exit-status");
    let input = dir.join("in.mp4");
    h264_clip(&input, 3);
    let not_a_model = dir.join("notes.onnx");
    std::fs::write(&not_a_model, "not a model").unwrap();
    for (args, code, says) in [
        (vec!["--style", "nosuch"], 2, "unknown style `nosuch`"),
        (
            vec!["--model", "/nonexistent/model.onnx"],
            3,
            "model file /nonexistent/model.onnx does not exist",
        ),
        (
            vec!["--model", not_a_model.to_str().unwrap()],
            4,
            "could not be loaded",
        ),
    ] {
        let output = dir.join("out.mkv");
        let out = file_cmd()
            .args(&args)
            .arg(&input)
            .arg(&output)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains(".rs("), "no source location: {err}");
        assert!(!output.exists(), "{args:?}");
    }
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

    // A FIFO (like a device node) is never replaced, even with --overwrite.
    let fifo = dir.join("pipe.mp4");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = file_cmd()
        .arg("--overwrite")
        .arg(&input)
        .arg(&fifo)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("not a regular file"),
        "{err}"
    );
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
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

/// One elementary stream of a file, demuxed without decoding.
#[derive(Debug)]
struct Packets {
    kind: String,
    /// Each packet's running time (PTS through the demuxer's segment), sorted.
    pts: Vec<gst::ClockTime>,
    /// End of the last packet (PTS + duration).
    end: gst::ClockTime,
}

/// Every stream's packet timestamps, in the demuxer's order of streams.
fn packets(path: &Path) -> Vec<Packets> {
    use std::sync::{Arc, Mutex};
    common::init_gst();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_str().unwrap())
        .build()
        .unwrap();
    let parse = gst::ElementFactory::make("parsebin").build().unwrap();
    pipeline.add_many([&src, &parse]).unwrap();
    src.link(&parse).unwrap();
    let found: Arc<Mutex<Vec<Packets>>> = Arc::default();
    let weak = pipeline.downgrade();
    let f = found.clone();
    parse.connect_pad_added(move |_, pad| {
        let pipeline = weak.upgrade().unwrap();
        let caps = pad.current_caps().unwrap();
        let name = caps.structure(0).unwrap().name().to_string();
        let kind = name.split('/').next().unwrap().to_string();
        let index = {
            let mut f = f.lock().unwrap();
            f.push(Packets {
                kind,
                pts: Vec::new(),
                end: gst::ClockTime::ZERO,
            });
            f.len() - 1
        };
        let queue = gst::ElementFactory::make("queue").build().unwrap();
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .unwrap();
        pipeline.add_many([&queue, &sink]).unwrap();
        queue.link(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        queue.sync_state_with_parent().unwrap();
        let record = f.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let buffer = info.buffer().unwrap();
            if let Some(pts) = buffer.pts() {
                // Running time: an edit list arrives as a segment, not in the PTS.
                let segment = pad.sticky_event::<gst::event::Segment>(0).unwrap();
                let segment = segment.segment().downcast_ref::<gst::ClockTime>().unwrap();
                let time = segment.to_running_time(pts).unwrap();
                let mut f = record.lock().unwrap();
                f[index].pts.push(time);
                let end = time + buffer.duration().unwrap_or_default();
                f[index].end = f[index].end.max(end);
            }
            gst::PadProbeReturn::Ok
        });
        pad.link(&queue.static_pad("sink").unwrap()).unwrap();
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("demuxing {}: {}", path.display(), e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let mut found = std::mem::take(&mut *found.lock().unwrap());
    for s in &mut found {
        s.pts.sort();
    }
    found
}

fn stream<'a>(streams: &'a [Packets], kind: &str) -> &'a Packets {
    streams
        .iter()
        .find(|s| s.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} stream in {streams:?}"))
}

/// 2 s of a moving ball at 25 fps and a 440 Hz tone in AAC, in MP4.
fn clip_with_audio(path: &Path) {
    gst_run(&format!(
        "videotestsrc num-buffers=50 pattern=ball ! \
         video/x-raw,width=160,height=120,framerate=25/1 ! x264enc ! mux. \
         audiotestsrc num-buffers=86 samplesperbuffer=1024 ! audio/x-raw,rate=44100 ! \
         avenc_aac ! mux. mp4mux name=mux ! filesink location=\"{}\"",
        path.display()
    ));
}

const FRAME: gst::ClockTime = gst::ClockTime::from_mseconds(40);

fn diff(a: gst::ClockTime, b: gst::ClockTime) -> gst::ClockTime {
    if a > b {
        a - b
    } else {
        b - a
    }
}

#[test]
fn audio_passes_through_untouched_and_in_sync() {
    if common::asset("models/multistyle26.onnx").is_none() {
        return;
    }
    let dir = common::scratch("audio");
    let input = dir.join("in.mp4");
    clip_with_audio(&input);
    let output = dir.join("out.mp4");
    let out = file_cmd().arg(&input).arg(&output).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("audio: AAC passed through"), "{err}");

    let (inp, outp) = (packets(&input), packets(&output));
    let (vin, ain) = (stream(&inp, "video"), stream(&inp, "audio"));
    let (vout, aout) = (stream(&outp, "video"), stream(&outp, "audio"));
    assert_eq!(vout.pts.len(), 50);
    assert_eq!(aout.pts.len(), ain.pts.len(), "every audio packet kept");
    // The audio sits where it sat against the video, within one frame, start and end.
    let start_in = ain.pts[0].nseconds() as i64 - vin.pts[0].nseconds() as i64;
    let start_out = aout.pts[0].nseconds() as i64 - vout.pts[0].nseconds() as i64;
    assert!(
        (start_in - start_out).unsigned_abs() <= FRAME.nseconds(),
        "audio start moved: {start_in} ns → {start_out} ns against the video"
    );
    let end_in = ain.end.nseconds() as i64 - vin.end.nseconds() as i64;
    let end_out = aout.end.nseconds() as i64 - vout.end.nseconds() as i64;
    assert!(
        (end_in - end_out).unsigned_abs() <= FRAME.nseconds(),
        "audio end moved: {end_in} ns → {end_out} ns against the video"
    );
    for (a, b) in ain.pts.iter().zip(&aout.pts) {
        assert!(diff(*a - ain.pts[0], *b - aout.pts[0]) < gst::ClockTime::from_mseconds(1));
    }

    // --no-audio drops it; WebM takes no AAC: re-encoded to Opus, and said.
    let silent = dir.join("silent.mp4");
    let out = file_cmd()
        .arg("--no-audio")
        .arg(&input)
        .arg(&silent)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let kinds: Vec<_> = packets(&silent).into_iter().map(|s| s.kind).collect();
    assert_eq!(kinds, ["video"]);
    let webm = dir.join("out.webm");
    let out = file_cmd().arg(&input).arg(&webm).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("re-encoded to Opus"), "{err}");
    let streams = packets(&webm);
    assert_eq!(stream(&streams, "video").pts.len(), 50);
    let opus = stream(&streams, "audio");
    assert!(
        diff(opus.end, ain.end) <= FRAME,
        "{:?} vs {:?}",
        opus.end,
        ain.end
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_input_without_video_fails_within_seconds() {
    let dir = common::scratch("audio-only");
    let input = dir.join("song.mp4");
    gst_run(&format!(
        "audiotestsrc num-buffers=50 ! avenc_aac ! mp4mux ! filesink location=\"{}\"",
        input.display()
    ));
    let output = dir.join("out.mp4");
    let started = std::time::Instant::now();
    let out = file_cmd().arg(&input).arg(&output).output().unwrap();
    let err = stderr(&out);
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("has no video stream (streams: audio)"),
        "{err}"
    );
    assert!(!output.exists());
    assert!(temp_files(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// MPEG-4 part 2 with B-frames in AVI: the container has no PTS, and the decoder repeats
/// some; before issue 16 the muxer refused the frames ("Buffer has no PTS").
#[test]
fn frames_without_a_pts_get_one_derived() {
    if common::asset("models/multistyle26.onnx").is_none() {
        return;
    }
    let dir = common::scratch("nopts");
    let avi = dir.join("camera.avi");
    gst_run(&format!(
        "videotestsrc num-buffers=30 pattern=ball ! \
         video/x-raw,width=160,height=120,framerate=25/1 ! avenc_mpeg4 max-bframes=2 ! \
         avimux ! filesink location=\"{}\"",
        avi.display()
    ));
    let ts = dir.join("broadcast.ts");
    gst_run(&format!(
        "videotestsrc num-buffers=30 pattern=ball ! \
         video/x-raw,width=160,height=120,framerate=25/1 ! x264enc ! mpegtsmux ! \
         filesink location=\"{}\"",
        ts.display()
    ));
    for input in [&avi, &ts] {
        let output = dir.join(format!(
            "{}.mp4",
            input.file_stem().unwrap().to_string_lossy()
        ));
        let out = file_cmd().arg(input).arg(&output).output().unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{}: {err}", input.display());
        assert!(err.contains("stylized 30 frames"), "{err}");
        let (pts, _) = common::decoded_frames(&output);
        assert_eq!(pts.len(), 30, "{}", input.display());
        // Strictly increasing, one frame apart: 30 frames at 25 fps span 1.16 s.
        assert!(pts.windows(2).all(|w| w[1] > w[0]), "{pts:?}");
        assert_eq!(
            pts[29] - pts[0],
            gst::ClockTime::from_mseconds(1160),
            "{pts:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A corrupt region mid-file is skipped with warnings (as gst-launch does); a truncated
/// file ends with a warning naming where it stops.
#[test]
fn corrupt_and_truncated_inputs_finish_with_warnings() {
    if common::asset("models/multistyle26.onnx").is_none() {
        return;
    }
    let dir = common::scratch("corrupt");
    let clean = dir.join("clean.ts");
    gst_run(&format!(
        "videotestsrc num-buffers=100 pattern=ball ! \
         video/x-raw,width=160,height=120,framerate=25/1 ! x264enc key-int-max=25 ! \
         mpegtsmux ! filesink location=\"{}\"",
        clean.display()
    ));
    // Scramble the middle tenth (deterministic bytes, no RNG crate needed).
    let mut bytes = std::fs::read(&clean).unwrap();
    let n = bytes.len();
    let mut x: u32 = 12345;
    for b in &mut bytes[n * 4 / 10..n / 2] {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let corrupt = dir.join("corrupt.ts");
    std::fs::write(&corrupt, &bytes).unwrap();
    let output = dir.join("corrupt.mp4");
    let out = file_cmd().arg(&corrupt).arg(&output).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning"), "{err}");
    let (pts, _) = common::decoded_frames(&output);
    assert!(pts.len() > 50 && pts.len() < 100, "{} frames", pts.len());

    // Matroska keeps its stated duration in the header: cut the file at 60 %.
    let mkv = dir.join("full.mkv");
    gst_run(&format!(
        "videotestsrc num-buffers=100 pattern=ball ! \
         video/x-raw,width=160,height=120,framerate=25/1 ! x264enc ! matroskamux ! \
         filesink location=\"{}\"",
        mkv.display()
    ));
    let bytes = std::fs::read(&mkv).unwrap();
    let cut = dir.join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let output = dir.join("cut.mp4");
    let out = file_cmd().arg(&cut).arg(&output).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("the input ends at 0:00:0"), "{err}");
    assert!(
        err.contains("before its stated duration 0:00:04.000"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Start `stylize file` on the 132-frame clip and wait until it has written something.
fn start_and_wait_for_output(input: &Path, output: &Path) -> std::process::Child {
    let child = file_cmd()
        .arg(input)
        .arg(output)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = output.parent().unwrap();
    let started = std::time::Instant::now();
    while !temp_files(dir)
        .iter()
        .any(|t| std::fs::metadata(t).is_ok_and(|m| m.len() > 0))
    {
        assert!(started.elapsed().as_secs() < 120, "no output after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

fn signal(child: &std::process::Child, sig: i32) {
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

#[test]
fn interruptions_keep_a_playable_file_resume_finishes_it_and_a_second_signal_aborts() {
    let (Some(video), Some(_)) = (
        common::asset("media/bigbuckbunny.mp4"),
        common::asset("models/multistyle26.onnx"),
    ) else {
        return;
    };
    let dir = common::scratch("interrupt");
    let output = dir.join("out.mp4");
    let child = start_and_wait_for_output(&video, &output);
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let kept: usize = err
        .split("interrupted: kept the ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in: {err}"));
    assert!(kept > 0 && kept < 132, "{err}");
    // A finalised container: it decodes, with every frame said to be kept.
    let (pts, size) = common::decoded_frames(&output);
    assert_eq!(pts.len(), kept);
    assert_eq!(size, (1280, 720));
    let streams = packets(&output);
    assert!(!stream(&streams, "audio").pts.is_empty());
    assert!(temp_files(&dir).is_empty());

    // --resume finishes the job: the two parts joined are the whole input, frame for
    // frame and packet for packet.
    let out = file_cmd()
        .arg("--resume")
        .arg(&video)
        .arg(&output)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("({kept} frames kept)")), "{err}");
    assert!(
        err.contains(&format!("stylized {} frames", 132 - kept)),
        "{err}"
    );
    assert_eq!(
        common::decoded_frames(&output).0,
        common::decoded_frames(&video).0
    );
    let (whole, input) = (packets(&output), packets(&video));
    assert_eq!(
        stream(&whole, "audio").pts.len(),
        stream(&input, "audio").pts.len()
    );
    let kept = 132;

    // Stop, then abort: nothing is left but what was there before.
    let aborted = dir.join("aborted.mp4");
    let child = start_and_wait_for_output(&video, &aborted);
    signal(&child, libc::SIGINT);
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("aborted"), "{err}");
    assert!(!aborted.exists());
    assert!(temp_files(&dir).is_empty());
    assert_eq!(
        common::decoded_frames(&output).0.len(),
        kept,
        "the first output is intact"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The decoded video caps of a file and its parsed (encoded) video caps name.
fn video_caps(path: &Path) -> (gst::Caps, String) {
    common::init_gst();
    let decoded = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! video/x-raw ! fakesink name=sink",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    decoded.set_state(gst::State::Paused).unwrap();
    let (ok, _, _) = decoded.state(gst::ClockTime::from_seconds(30));
    ok.unwrap();
    let caps = decoded
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .current_caps()
        .unwrap();
    decoded.set_state(gst::State::Null).unwrap();
    let codec = packets_caps(path);
    (caps, codec)
}

/// The name of the first video stream's encoded caps (video/x-h264, ...).
fn packets_caps(path: &Path) -> String {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! parsebin ! video/x-h264;video/x-h265;video/x-vp9;\
         video/x-ffv;video/x-prores ! fakesink name=sink",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Paused).unwrap();
    let (ok, _, _) = pipeline.state(gst::ClockTime::from_seconds(30));
    ok.unwrap();
    let caps = pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .current_caps()
        .unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    caps.structure(0).unwrap().name().to_string()
}

#[test]
fn the_extension_picks_container_and_codec_and_the_picture_is_kept() {
    if common::asset("models/multistyle26.onnx").is_none() {
        return;
    }
    let dir = common::scratch("formats");
    let input = dir.join("in.mp4");
    // NTSC rate, non-square pixels, BT.709 on an SD size (not what a converter would guess).
    gst_run(&format!(
        "videotestsrc num-buffers=12 pattern=ball ! \
         video/x-raw,width=160,height=120,framerate=30000/1001,pixel-aspect-ratio=4/3,\
         colorimetry=bt709 ! x264enc ! mp4mux ! filesink location=\"{}\"",
        input.display()
    ));
    let (caps_in, _) = video_caps(&input);
    let s_in = caps_in.structure(0).unwrap();
    let (pts_in, _) = common::decoded_frames(&input);
    let cases: &[(&str, &[&str], &str)] = &[
        ("out.mp4", &[], "video/x-h264"),
        ("out.mov", &[], "video/x-h264"),
        ("out.mkv", &[], "video/x-h264"),
        ("out.webm", &[], "video/x-vp9"),
        ("h265.mp4", &["--codec", "h265"], "video/x-h265"),
        ("lossless.mkv", &["--codec", "ffv1"], "video/x-ffv"),
        (
            "edit.mov",
            &["--codec", "prores", "--quality", "high"],
            "video/x-prores",
        ),
    ];
    for (name, args, codec) in cases {
        let output = dir.join(name);
        let out = file_cmd()
            .args(*args)
            .arg(&input)
            .arg(&output)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let (caps, parsed) = video_caps(&output);
        assert_eq!(parsed, *codec, "{name}");
        let s = caps.structure(0).unwrap();
        // Matroska stores a display size in whole pixels: 4/3 reads back as 213/160.
        let par = |s: &gst::StructureRef| {
            let f = s.get::<gst::Fraction>("pixel-aspect-ratio").unwrap();
            f.numer() as f64 / f.denom() as f64
        };
        assert!((par(s) / par(s_in) - 1.0).abs() < 0.01, "{name}: {caps:?}");
        for field in ["width", "height", "framerate"] {
            assert_eq!(
                s.value(field).unwrap().serialize().unwrap(),
                s_in.value(field).unwrap().serialize().unwrap(),
                "{name}: {field}"
            );
        }
        if *codec != "video/x-ffv" {
            // FFV1 carries the stylized RGB as it is; the others are YUV like the input.
            assert_eq!(
                s.get::<String>("colorimetry").unwrap(),
                s_in.get::<String>("colorimetry").unwrap(),
                "{name}"
            );
        }
        let (pts, _) = common::decoded_frames(&output);
        // The same timestamps, to the container's time scale (Matroska: milliseconds).
        let scale = if name.ends_with(".mkv") || name.ends_with(".webm") {
            gst::ClockTime::from_useconds(500)
        } else {
            gst::ClockTime::from_useconds(1)
        };
        assert_eq!(pts.len(), pts_in.len(), "{name}");
        for (a, b) in pts.iter().zip(&pts_in) {
            let (a, b) = (*a - pts[0], *b - pts_in[0]);
            assert!(diff(a, b) <= scale, "{name}: {a} vs {b}");
        }
    }
    let err = stderr(
        &file_cmd()
            .args(["--codec", "h264"])
            .arg(&input)
            .arg(dir.join("x.webm"))
            .output()
            .unwrap(),
    );
    assert!(err.contains("WebM does not take H.264"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A long job cut in N segments (on N machines) and joined equals the whole-file run:
/// the same frames at the same times, every audio packet once. The segments run through
/// the cluster task scripts of deploy/ as Kubernetes and Slurm would start them.
#[test]
fn segments_joined_equal_the_whole_run() {
    if common::asset("models/multistyle26.onnx").is_none() {
        return;
    }
    let dir = common::scratch("segments");
    let input = dir.join("in.mp4");
    clip_with_audio(&input);
    let whole = dir.join("whole.mp4");
    let out = file_cmd().arg(&input).arg(&whole).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let deploy = common::repo().join("deploy");
    let parts = dir.join("parts");
    let quick = [
        "--threads",
        "2",
        "--stability",
        "0",
        "--inference-size",
        "64x0",
    ];
    // (scheduler variable, its value, the script a task runs) for segments 1, 2, 3.
    let tasks = [
        ("JOB_COMPLETION_INDEX", "0", deploy.join("stylize-segment")),
        (
            "SLURM_ARRAY_TASK_ID",
            "2",
            deploy.join("slurm/segments.sbatch"),
        ),
        ("JOB_COMPLETION_INDEX", "2", deploy.join("stylize-segment")),
    ];
    let mut frames = 0;
    for (var, value, script) in &tasks {
        let out = Command::new(script)
            .arg(&input)
            .arg(&parts)
            .arg("3")
            .args(quick)
            .env(var, value)
            .env("STYLIZE", env!("CARGO_BIN_EXE_stylize"))
            .env("STYLIZE_DEPLOY", &deploy)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{var}={value}: {err}");
        let done: usize = err
            .split("stylized ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{err}"));
        assert!(done > 0 && done < 50, "{var}={value}: {done} frames");
        frames += done;
    }
    assert_eq!(frames, 50, "each frame in exactly one segment");
    let segments: Vec<PathBuf> = (1..=3)
        .map(|k| parts.join(format!("part-{k:05}-of-00003.mp4")))
        .collect();
    let joined = dir.join("joined.mp4");
    let out = Command::new(deploy.join("stylize-join"))
        .arg(&joined)
        .arg(&parts)
        .arg("3")
        .env("STYLIZE", env!("CARGO_BIN_EXE_stylize"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("joined 3 segments, 50 video frames"), "{err}");

    let (pts_whole, _) = common::decoded_frames(&whole);
    let (pts_joined, _) = common::decoded_frames(&joined);
    assert_eq!(pts_joined, pts_whole, "same frames at the same timestamps");
    let (w, j) = (packets(&whole), packets(&joined));
    let (aw, aj) = (stream(&w, "audio"), stream(&j, "audio"));
    assert_eq!(aj.pts.len(), aw.pts.len(), "every audio packet once");
    for (a, b) in aw.pts.iter().zip(&aj.pts) {
        assert!(
            diff(*a, *b) < gst::ClockTime::from_mseconds(1),
            "{a} vs {b}"
        );
    }

    // The join script refuses while a part is missing; `stylize join` refuses a segment
    // of another job (other settings). Neither leaves anything behind.
    let out = Command::new(deploy.join("stylize-join"))
        .arg(dir.join("early.mp4"))
        .arg(&parts)
        .arg("4")
        .env("STYLIZE", env!("CARGO_BIN_EXE_stylize"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("4 of 4 segments missing"),
        "{err}"
    );
    let other = dir.join("other.mp4");
    let out = file_cmd()
        .args(["--segment", "2/3", "--quality", "draft"])
        .arg(&input)
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let refused = dir.join("refused.mp4");
    let out = stylize()
        .arg("join")
        .arg(&refused)
        .args([&segments[0], &other, &segments[2]])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("encoded differently"),
        "{err}"
    );
    assert!(!refused.exists() && temp_files(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn several_inputs_and_folders_go_to_an_out_dir() {
    if common::asset("models/multistyle26.onnx").is_none() {
        return;
    }
    let dir = common::scratch("batch");
    let shots = dir.join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    h264_clip(&shots.join("a.mp4"), 5);
    h264_clip(&shots.join("b.mp4"), 7);
    std::fs::write(shots.join("notes.txt"), "not a video").unwrap();
    let single = dir.join("c.mp4");
    h264_clip(&single, 3);
    let out_dir = dir.join("styled");
    std::fs::create_dir_all(&out_dir).unwrap();
    // An existing output refuses the whole batch before any work.
    std::fs::write(out_dir.join("c.mkv"), b"keep me").unwrap();
    let run = || {
        file_cmd()
            .arg(&shots)
            .arg(&single)
            .arg("--out-dir")
            .arg(&out_dir)
            .args(["--ext", "mkv"])
            .output()
            .unwrap()
    };
    let out = run();
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("c.mkv exists"),
        "{err}"
    );
    assert!(!out_dir.join("a.mkv").exists());
    assert_intact(&out_dir.join("c.mkv"), b"keep me", "existing output");
    std::fs::remove_file(out_dir.join("c.mkv")).unwrap();

    let out = run();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stylized 3 files, 15 frames"), "{err}");
    for (name, frames) in [("a", 5), ("b", 7), ("c", 3)] {
        let (pts, _) = common::decoded_frames(&out_dir.join(format!("{name}.mkv")));
        assert_eq!(pts.len(), frames, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
