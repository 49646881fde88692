//! Time the temporal filter alone on raw RGB frames, for profiling (`perf record`) without a
//! network or a pipeline:
//!
//! ```sh
//! gst-launch-1.0 filesrc location=assets/media/bigbuckbunny.mp4 ! decodebin ! videoconvert \
//!   ! videoscale ! video/x-raw,format=RGB,width=640,height=360 ! identity eos-after=31 \
//!   ! filesink location=/tmp/bbb.rgb
//! cargo run -p stylize-engines --example temporal_timing -- /tmp/bbb.rgb 640 360 [rounds]
//! ```
//! Each frame's "stylized output" is the frame with per-frame noise (a flickering net); the
//! filter's cost does not depend on what the output shows. Prints the median over frames of
//! each frame's best wall and CPU time (all threads) over the rounds. With a fifth argument, writes the filtered frames there (raw
//! RGB) to compare two versions of the filter. `THREADS=n` sets the filter's threads.

use std::time::Instant;
use stylize_engines::frame::RgbImage;
use stylize_engines::temporal::{TemporalFilter, DEFAULT_STABILITY};

fn noisy(img: &RgbImage, frame: usize) -> RgbImage {
    let mut out = img.clone();
    let mut state = 0x1234_5678u32 ^ (frame as u32).wrapping_mul(0x9e37_79b9);
    for v in out.data.iter_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *v = (i32::from(*v) + (state % 41) as i32 - 20).clamp(0, 255) as u8;
    }
    out
}

/// CPU time of the whole process (every thread), in ms.
fn cpu_ms() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 * 1e-6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: temporal_timing FILE.rgb WIDTH HEIGHT [ROUNDS]");
        std::process::exit(2);
    }
    let bytes = std::fs::read(&args[1]).expect("reading the raw frames");
    let (w, h): (usize, usize) = (args[2].parse().unwrap(), args[3].parse().unwrap());
    let rounds: usize = args.get(4).map_or(1, |r| r.parse().unwrap());
    let frames: Vec<RgbImage> = bytes
        .chunks_exact(w * h * 3)
        .map(|c| RgbImage {
            width: w,
            height: h,
            data: c.to_vec(),
        })
        .collect();
    let outputs: Vec<RgbImage> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| noisy(f, i))
        .collect();
    // Per frame, the fastest of the rounds: on a shared machine, the rounds' spread is other
    // people's work.
    let (mut wall, mut cpu) = (
        vec![f64::INFINITY; frames.len()],
        vec![f64::INFINITY; frames.len()],
    );
    let mut dump = Vec::new();
    for round in 0..rounds {
        let mut filter = TemporalFilter::new(DEFAULT_STABILITY);
        if let Some(n) = std::env::var("THREADS").ok().and_then(|n| n.parse().ok()) {
            filter.set_threads(n);
        }
        let mut thrash = vec![
            0u8;
            if std::env::var("THRASH").is_ok() {
                64 << 20
            } else {
                0
            }
        ];
        for (i, (f, o)) in frames.iter().zip(&outputs).enumerate() {
            for (k, v) in thrash.iter_mut().enumerate().step_by(64) {
                *v = v.wrapping_add(k as u8);
            }
            let mut out = o.clone();
            let (t, c) = (Instant::now(), cpu_ms());
            filter.apply(f, &mut out);
            wall[i] = wall[i].min(t.elapsed().as_secs_f64() * 1e3);
            cpu[i] = cpu[i].min(cpu_ms() - c);
            if round == 0 {
                dump.extend_from_slice(&out.data);
            }
        }
    }
    // The first frame has nothing to smooth against.
    let (wall, cpu) = (wall[1..].to_vec(), cpu[1..].to_vec());
    println!(
        "{} frames {w}x{h}, best of {rounds}: wall median {:.1} ms, cpu median {:.1} ms",
        wall.len(),
        median(wall),
        median(cpu)
    );
    if let Some(path) = args.get(5) {
        std::fs::write(path, dump).expect("writing the filtered frames");
    }
}
