//! The hostile cases of issue 17 through the `stylize` binary: each test reproduces a case
//! that once destroyed data, lost work, panicked, retried forever or accepted nonsense.

#[path = "common.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn stylize() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stylize"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// `stylize webcam` on the test pattern with the small per-style model, plus `extra`.
fn webcam(model: &Path, extra: &[&str]) -> Command {
    let mut cmd = stylize();
    cmd.args(["webcam", "--output", "null", "--fps", "30"])
        .args(["--threads", "1", "--frames", "10"])
        .arg("--model")
        .arg(model);
    if !extra.contains(&"--size") {
        cmd.args(["--size", "64x48"]);
    }
    cmd.args(extra);
    cmd
}

/// Run with a deadline, so a regression to "retry forever" fails instead of hanging.
fn output_within(mut cmd: Command, within: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > within {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {within:?}: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn webcam_never_deletes_a_file_given_as_its_socket() {
    let Some(model) = common::asset("models/mosaic.onnx") else {
        return;
    };
    let dir = common::scratch("socket-file");
    let precious = dir.join("thesis.txt");
    std::fs::write(&precious, "three years of work").unwrap();
    let mut cmd = webcam(&model, &["--input", "test:ball", "--socket"]);
    cmd.arg(&precious);
    let out = output_within(cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is a regular file, not a control socket"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "three years of work"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn webcam_refuses_sizes_past_the_limits_before_loading_anything() {
    for (extra, reason) in [
        (&["--scale", "1000"][..], "scale 1000 is outside"),
        (&["--inference-size", "9000x9000"][..], "past the limit"),
        (&["--size", "20000x20000"][..], "past the limit"),
    ] {
        let mut cmd = webcam(Path::new("/nonexistent/model.onnx"), extra);
        cmd.args(["--input", "test:ball"]);
        let out = output_within(cmd, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(reason), "{extra:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("model file"),
            "checked before the model: {}",
            stderr(&out)
        );
    }
}

#[test]
fn webcam_ends_on_inputs_no_retry_can_fix() {
    let Some(model) = common::asset("models/mosaic.onnx") else {
        return;
    };
    let dir = common::scratch("permanent");
    let text = dir.join("notes.txt");
    std::fs::write(&text, "shopping list\n".repeat(50)).unwrap();
    for (input, reason) in [
        ("test:nosuch", "unknown test pattern `nosuch`"),
        (text.to_str().unwrap(), "is not a playable video"),
    ] {
        let mut cmd = webcam(&model, &["--input", input, "--socket"]);
        cmd.arg(dir.join("ctl.sock"));
        let out = output_within(cmd, Duration::from_secs(60));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{input}: {err}");
        assert!(err.contains(reason), "{input}: {err}");
        assert!(!err.contains("retrying"), "{input}: retried: {err}");
        assert!(
            !err.contains("scripts/setup"),
            "{input}: misleading hint: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parallel_library_writers_keep_every_entry() {
    let dir = common::scratch("parallel-adds");
    let library = dir.join("styles");
    let emb = dir.join("e.emb");
    std::fs::write(&emb, stylize_engines::embedding::encode(&[0.25, -0.5])).unwrap();
    // 20 processes at once, as 20 `stylize styles add` in a shell loop with `&`.
    let children: Vec<_> = (0..20)
        .map(|i| {
            stylize()
                .args(["styles", "add", &format!("style{i}"), "--embedding"])
                .arg(&emb)
                .arg("--library")
                .arg(&library)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let lib = stylize_engines::library::Library::open(&library).unwrap();
    assert_eq!(lib.entries().len(), 20, "{:?}", lib.names());
    let files = std::fs::read_dir(&library)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "emb")
        })
        .count();
    assert_eq!(files, 20, "one embedding file per entry, no orphans");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stdout whose reader is already gone: every write fails with EPIPE.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

fn assert_quiet_pipe_exit(out: &Output) {
    let err = stderr(out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{}: {err}",
        out.status
    );
}

#[test]
fn a_closed_stdout_is_a_quiet_exit_not_a_panic() {
    let dir = common::scratch("sigpipe");
    let library = dir.join("styles");
    let mut lib = stylize_engines::library::Library::open(&library).unwrap();
    for name in ["a", "b", "c"] {
        let kind = stylize_engines::library::StyleKind::Cin {
            style: "mosaic".into(),
        };
        lib.add(name, kind, None, None, false).unwrap();
    }
    // `stylize styles list | head -1`
    let out = stylize()
        .args(["styles", "list", "--library"])
        .arg(&library)
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_quiet_pipe_exit(&out);

    // `stylize ctl stats | head -3`, against a stand-in daemon.
    let socket = dir.join("ctl.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        let reply = format!(
            "{{\"ok\":true,\"frames\":{{\"captured\":{}}}}}\n",
            "1".repeat(99)
        );
        (&stream).write_all(reply.as_bytes()).unwrap();
    });
    let out = stylize()
        .args(["ctl", "--socket"])
        .arg(&socket)
        .arg("stats")
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    server.join().unwrap();
    assert_quiet_pipe_exit(&out);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn styles_add_refuses_bad_names_and_unknown_cin_styles() {
    let dir = common::scratch("styles-add");
    let library = dir.join("styles");
    let add = |args: &[&str]| {
        stylize()
            .args(["styles", "add"])
            .args(args)
            .arg("--library")
            .arg(&library)
            .output()
            .unwrap()
    };
    // A refused value exits 2, as clap's usage errors do.
    let out = add(&["a:b", "--cin", "mosaic"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid style name `a:b`"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("blend"), "{}", stderr(&out));
    if let Some(model) = common::asset("models/multistyle26.onnx") {
        let model = model.to_str().unwrap();
        let out = add(&["tiles", "--cin", "nosuch", "--model", model]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("unknown style `nosuch`"),
            "{}",
            stderr(&out)
        );
        let out = add(&["tiles", "--cin", "mosaic", "--model", model]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert!(
        !library.join("styles.toml").exists()
            || !std::fs::read_to_string(library.join("styles.toml"))
                .unwrap()
                .contains("nosuch"),
        "a refused style is not saved"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nonsense_numbers_are_usage_errors() {
    // `generate --truncation nan` wrote a black image with exit 0 (`bench --iterations 0`:
    // tests/cli.rs).
    for args in [
        &[
            "generate",
            "stylegan",
            "--mapping",
            "m.onnx",
            "--synthesis",
            "s.onnx",
            "--truncation",
            "nan",
        ],
        &[
            "generate",
            "dalle",
            "--prompt",
            "x",
            "--model",
            "m",
            "--temperature",
            "-1",
        ],
    ] {
        let out = stylize().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn tune_checks_its_report_path_before_tuning_or_saving() {
    let dir = common::scratch("tune-json");
    let library = dir.join("styles");
    let out = stylize()
        .args(["tune", "a red sky", "--save", "red", "--content"])
        .arg(dir.join("content.png"))
        .arg("--json")
        .arg(dir.join("no-such-folder/report.json"))
        .arg("--library")
        .arg(&library)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no-such-folder does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(!library.join("styles.toml").exists(), "nothing saved");
    let _ = std::fs::remove_dir_all(&dir);
}
