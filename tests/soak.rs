//! Soak: `stylize webcam --input test:ball --output null` for a while, under a steady trickle
//! of control traffic (stats, style and blend switches, pause/resume, idle and abandoned
//! connections), with the daemon's resident memory and open file descriptors sampled from
//! /proc and asserted flat: a leak per frame or per request shows as a trend.
//!
//! `STYLIZE_SOAK_SECONDS` sets the measured length after a warm-up of a quarter of it
//! (default 15 s, about 20 s in all: the CI run); `scripts/soak MINUTES`
//! runs the long version. Samples and the verdict go to stdout (`--nocapture`) and, with
//! `STYLIZE_SOAK_REPORT=FILE`, to a JSON file.

#[path = "common.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
struct Sample {
    at_s: f64,
    rss_kib: u64,
    fds: usize,
    threads: usize,
}

fn sample(pid: u32, start: Instant) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some(Sample {
        at_s: start.elapsed().as_secs_f64(),
        rss_kib: field("VmRSS:")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count(),
        threads: field("Threads:")? as usize,
    })
}

/// One request on its own connection; the reply line, if one came.
fn request(socket: &Path, line: &str) -> Option<serde_json::Value> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(line.as_bytes()).ok()?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).ok()?;
    serde_json::from_str(&reply).ok()
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn kill_on_drop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn webcam_memory_and_descriptors_stay_flat() {
    let Some(model) = common::asset("models/multistyle26.onnx") else {
        return;
    };
    let seconds: f64 = std::env::var("STYLIZE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15.0);
    let dir = common::scratch("soak");
    let socket = dir.join("ctl.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stylize"))
        .args(["webcam", "--input", "test:ball", "--output", "null"])
        .args([
            "--size",
            "160x120",
            "--fps",
            "30",
            "--scale",
            "0.5",
            "--threads",
            "1",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    while !socket.exists() {
        if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(60) {
            kill_on_drop(&mut child);
            panic!("the webcam did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // Warm-up (allocator pools, ONNX Runtime arenas, the first style switches) is excluded.
    let warm_up = (seconds * 0.25).clamp(3.0, 60.0);
    let run_start = Instant::now();
    let requests = [
        r#"{"cmd":"stats"}"#,
        r#"{"cmd":"style","name":"mosaic"}"#,
        r#"{"cmd":"blend","weights":"starry-swirls:0.7,mosaic:0.3"}"#,
        r#"{"cmd":"pause"}"#,
        r#"{"cmd":"resume"}"#,
        r#"{"cmd":"style","name":"no-such-style"}"#,
        "not json at all",
    ];
    let mut samples = Vec::new();
    let mut tick = 0usize;
    let mut failed_requests = 0;
    while run_start.elapsed().as_secs_f64() < warm_up + seconds {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the webcam exited during the soak: {status}");
        }
        let line = format!("{}\n", requests[tick % requests.len()]);
        if request(&socket, &line).is_none() {
            failed_requests += 1;
        }
        // Now and then a client that connects and leaves without a word.
        if tick.is_multiple_of(5) {
            drop(UnixStream::connect(&socket));
        }
        if run_start.elapsed().as_secs_f64() >= warm_up {
            if let Some(s) = sample(pid, run_start) {
                samples.push(s);
            }
        }
        tick += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    let stats = request(&socket, "{\"cmd\":\"stats\"}\n").expect("stats at the end");
    let _ = request(&socket, "{\"cmd\":\"quit\"}\n");
    let wait_start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if wait_start.elapsed() > Duration::from_secs(20) {
            kill_on_drop(&mut child);
            panic!("the webcam did not quit");
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    let quarter = (samples.len() / 4).max(1);
    let (first, last) = (&samples[..quarter], &samples[samples.len() - quarter..]);
    let rss = |s: &[Sample]| median(s.iter().map(|s| s.rss_kib).collect());
    let (rss_first, rss_last) = (rss(first), rss(last));
    let fds_first = first.iter().map(|s| s.fds).max().unwrap();
    let fds_last = last.iter().map(|s| s.fds).max().unwrap();
    let threads_max = samples.iter().map(|s| s.threads).max().unwrap();
    let report = serde_json::json!({
        "seconds": seconds,
        "warm_up_s": warm_up,
        "requests": tick,
        "failed_requests": failed_requests,
        "frames": stats["frames"],
        "rss_kib_first_quarter_median": rss_first,
        "rss_kib_last_quarter_median": rss_last,
        "fds_first_quarter_max": fds_first,
        "fds_last_quarter_max": fds_last,
        "threads_max": threads_max,
        "samples": samples.iter().map(|s| [s.at_s, s.rss_kib as f64, s.fds as f64]).collect::<Vec<_>>(),
    });
    println!("{report}");
    if let Ok(path) = std::env::var("STYLIZE_SOAK_REPORT") {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }

    assert!(status.success(), "{status}");
    assert_eq!(failed_requests, 0, "every request got a reply");
    assert!(
        stats["frames"]["written"].as_u64().unwrap() > (seconds * 5.0) as u64,
        "the stream kept flowing: {stats}"
    );
    // Flat: no descriptor leaked per request or connection; memory within 10 % + 8 MiB of
    // where it stood after the warm-up (allocator noise, not a trend).
    assert!(
        fds_last <= fds_first + 2,
        "fds grew: {fds_first} → {fds_last}"
    );
    assert!(
        rss_last <= rss_first + rss_first / 10 + 8 * 1024,
        "RSS grew: {rss_first} KiB → {rss_last} KiB"
    );
    assert!(threads_max <= 32, "threads stay bounded, got {threads_max}");
    let _ = std::fs::remove_dir_all(&dir);
}
