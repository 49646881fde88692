//! Time the host frame path alone (no network) in the webcam case, for profiling the
//! element's overhead: a 1280×720 RGB frame read down to 640×360, converted to the network's
//! planar tensor, the "output" converted back and written up into the frame.
//!
//! ```sh
//! cargo run --release -p stylize-engines --example frame_path_timing -- [W H IW IH] [rounds]
//! ```
//! Prints the median and best time of each step over the rounds, in ms. `THREADS=n` sets the
//! path's threads (default: one per core).

use std::time::Instant;
use stylize_engines::frame::{FrameLayout, PixelFormat};
use stylize_engines::frame_path::FramePath;
use stylize_engines::Size;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (w, h, iw, ih) = match args[..] {
        [w, h, iw, ih, ..] => (w, h, iw, ih),
        _ => (1280, 720, 640, 360),
    };
    let rounds = args.get(4).copied().unwrap_or(200);
    let layout = FrameLayout {
        format: PixelFormat::Rgb,
        width: w,
        height: h,
        stride: w * 3,
    };
    let mut frame: Vec<u8> = (0..w * h * 3).map(|i| (i * 31 % 251) as u8).collect();
    let padded = Size::new(iw.div_ceil(4) * 4, ih.div_ceil(4) * 4);
    let mut path = FramePath::default();
    if let Some(n) = std::env::var("THREADS").ok().and_then(|n| n.parse().ok()) {
        path.set_threads(n);
    }
    let mut times = [vec![], vec![], vec![], vec![]];
    for _ in 0..rounds {
        let t0 = Instant::now();
        path.read_small(&frame, &layout, (iw, ih)).unwrap();
        let t1 = Instant::now();
        path.small_to_content(padded, 255.0);
        path.output.clone_from(&path.content);
        let t2 = Instant::now();
        path.output_to_styled((iw, ih), 255.0).unwrap();
        let t3 = Instant::now();
        path.write_styled(&mut frame, &layout, 1.0).unwrap();
        let t4 = Instant::now();
        for (v, (a, b)) in times
            .iter_mut()
            .zip([(t0, t1), (t1, t2), (t2, t3), (t3, t4)])
        {
            v.push((b - a).as_secs_f64() * 1e3);
        }
    }
    for (name, v) in [
        "read_small",
        "to_content(+copy)",
        "to_styled",
        "write_styled",
    ]
    .iter()
    .zip(times.iter_mut())
    {
        v.sort_by(f64::total_cmp);
        println!(
            "{name:>18}: median {:.3} ms, best {:.3} ms",
            v[v.len() / 2],
            v[0]
        );
    }
}
