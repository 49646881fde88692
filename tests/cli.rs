//! The `stylize` binary end to end: file mode on real media, the benchmark, bad input.

#[path = "common.rs"]
mod common;

use std::process::Command;

fn stylize() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stylize"))
}

#[test]
fn file_mode_is_frame_exact_and_prints_the_output_path() {
    let Some(video) = common::asset("media/bigbuckbunny.mp4") else {
        return;
    };
    let dir = common::scratch("file");
    let output = dir.join("bbb styled.mp4");
    let out = stylize()
        .args([
            "file",
            "--quiet",
            "--style",
            "starry-swirls",
            "--threads",
            "2",
        ])
        .args(["--inference-size", "320x0"])
        .arg(&video)
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("stylized 132 frames"), "{stderr}");
    // Which backend the element took and why (this build and machine: the CPU).
    assert!(stderr.contains("stylize: backend cpu (auto: "), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        output.display().to_string()
    );

    let (pts_in, size_in) = common::decoded_frames(&video);
    let (pts_out, size_out) = common::decoded_frames(&output);
    assert_eq!(pts_in.len(), 132);
    assert_eq!(size_out, size_in, "output keeps the input size");
    assert_eq!(pts_out, pts_in, "same frames at the same timestamps");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn file_mode_bad_input_fails_clearly_and_leaves_no_output() {
    let Some(video) = common::asset("media/bigbuckbunny.mp4") else {
        return;
    };
    let dir = common::scratch("bad");
    let output = dir.join("out.mp4");
    let run = |args: &[&str], input: &std::path::Path| {
        let out = stylize()
            .args(["file", "--quiet"])
            .args(args)
            .arg(input)
            .arg(&output)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&[], &dir.join("missing.mp4"));
    assert!(err.contains("missing.mp4 does not exist"), "{err}");
    let err = run(&["--model", "/nonexistent.onnx"], &video);
    assert!(
        err.contains("model file /nonexistent.onnx does not exist"),
        "{err}"
    );
    let err = run(&["--style", "no-such-style"], &video);
    assert!(err.contains("unknown style `no-such-style`"), "{err}");
    assert!(
        !output.exists(),
        "a failed run must not leave a partial file"
    );
    let not_video = dir.join("notes.txt");
    std::fs::write(&not_video, "not a video").unwrap();
    let err = run(&[], &not_video);
    assert!(err.to_lowercase().contains("error"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_interleaves_engine_element_and_peer_and_writes_intervals() {
    let (Some(teacher), Some(_)) = (
        common::asset("models/multistyle26.onnx"),
        common::asset("venv/bin/python"),
    ) else {
        return;
    };
    let dir = common::scratch("bench");
    let json = dir.join("bench.json");
    let out = stylize()
        .arg("bench")
        .arg("--model")
        .arg(&teacher)
        .args([
            "--cases",
            "64x48,96x64:48x32",
            "--iterations",
            "3",
            "--warmup",
            "1",
            "--threads",
            "2",
        ])
        .arg("--out")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["threads"], 2);
    assert!(report["peer"]
        .as_str()
        .unwrap()
        .starts_with("onnxruntime 1.32.0"));
    assert!(report["machine"]["fma_peak_gflops"].as_f64().unwrap() > 0.0);
    let models = report["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["family"], "cin");
    let cases = models[0]["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[1]["frame"], serde_json::json!([96, 64]));
    assert_eq!(cases[1]["inference"], serde_json::json!([48, 32]));
    for c in cases {
        for key in [
            "engine_infer_ms",
            "engine_frame_ms",
            "element_ms",
            "ort_python_ms",
        ] {
            assert_eq!(c[key]["samples"], 3, "{key}");
            let s = &c[key];
            let (p50, lo, hi) = (
                s["p50"].as_f64().unwrap(),
                s["p50_ci95"][0].as_f64().unwrap(),
                s["p50_ci95"][1].as_f64().unwrap(),
            );
            assert!(
                p50 > 0.0 && lo <= p50 && p50 <= hi,
                "{key}: {p50} [{lo}, {hi}]"
            );
        }
        let ratio = c["engine_vs_python"]["p50"].as_f64().unwrap();
        let expected = c["engine_infer_ms"]["p50"].as_f64().unwrap()
            / c["ort_python_ms"]["p50"].as_f64().unwrap();
        assert!((ratio - expected).abs() < 1e-9);
        let overhead = c["element_overhead"]["p50"].as_f64().unwrap();
        let expected = c["element_ms"]["p50"].as_f64().unwrap()
            / c["engine_infer_ms"]["p50"].as_f64().unwrap()
            - 1.0;
        assert!((overhead - expected).abs() < 1e-9);
        // Paired by iteration: a median of per-iteration ratios, inside its interval, and
        // inside what the two paths' extremes allow.
        let paired = &c["element_overhead_paired"];
        let (p, lo, hi) = (
            paired["p50"].as_f64().unwrap(),
            paired["ci95"][0].as_f64().unwrap(),
            paired["ci95"][1].as_f64().unwrap(),
        );
        assert!(lo <= p && p <= hi, "{lo} {p} {hi}");
        let (el, net) = (&c["element_ms"], &c["engine_infer_ms"]);
        let least = el["min"].as_f64().unwrap() / net["max"].as_f64().unwrap() - 1.0;
        let most = el["max"].as_f64().unwrap() / net["min"].as_f64().unwrap() - 1.0;
        assert!(least <= lo && hi <= most, "{least} {lo} {hi} {most}");
        // The MAC count comes from the graph: the 26-style net is ~19.4 k MAC per pixel.
        let per_px = c["macs_per_pixel"].as_f64().unwrap();
        assert!((15_000.0..25_000.0).contains(&per_px), "{per_px}");
        let smoothing = &c["smoothing"];
        assert!(smoothing["temporal_ms"]["p50"].as_f64().unwrap() > 0.0);
        // The filter's share of the network, with an interval around it.
        let share = &smoothing["ratio_to_network"];
        let expected = smoothing["temporal_ms"]["p50"].as_f64().unwrap()
            / c["engine_infer_ms"]["p50"].as_f64().unwrap();
        assert!((share["p50"].as_f64().unwrap() - expected).abs() < 1e-9);
        let (lo, hi) = (
            share["ci95"][0].as_f64().unwrap(),
            share["ci95"][1].as_f64().unwrap(),
        );
        assert!(lo <= expected && expected <= hi, "{lo} {expected} {hi}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_refuses_zero_iterations() {
    let out = stylize()
        .args(["bench", "--iterations", "0", "--no-python"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn styles_library_round_trip_through_the_cli() {
    let (Some(starry), Some(_)) = (
        common::asset("images/starry_night.jpg"),
        common::asset("models/arbitrary-predict.onnx"),
    ) else {
        return;
    };
    let dir = common::scratch("styles");
    let lib = dir.join("library");
    let run = |args: &[&str]| {
        let out = stylize()
            .arg("styles")
            .arg("--library")
            .arg(&lib)
            .args(args)
            .env("STYLIZE_CACHE_DIR", dir.join("cache"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, _, err) = run(&["add", "van-gogh", "--image", starry.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(run(&["add", "tiles", "--cin", "mosaic"]).0);
    assert!(run(&["add", "golf", "--prompt", "golf ball"]).0);
    let (ok, list, _) = run(&["list"]);
    assert!(ok);
    assert_eq!(
        list.lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect::<Vec<_>>(),
        vec!["van-gogh", "tiles", "golf"]
    );
    let (ok, show, _) = run(&["show", "van-gogh"]);
    assert!(ok && show.contains("embedding: 100 values"), "{show}");
    let (ok, _, err) = run(&["add", "van-gogh", "--cin", "mosaic"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(&["add", "bad:name", "--cin", "mosaic"]);
    assert!(!ok && err.contains("style names use"), "{err}");
    assert!(run(&["remove", "tiles"]).0);
    let (ok, _, err) = run(&["show", "tiles"]);
    assert!(!ok && err.contains("unknown style `tiles`"), "{err}");
    let (_, list, _) = run(&["list"]);
    assert_eq!(list.lines().count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
