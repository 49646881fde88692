//! Temporal stability on real video, computed in Rust (no OpenCV needed): the engine with the
//! default `stability` against the same engine with it off, on the first frames of a real clip
//! and on a moving-edge clip.

mod common;

use gst::prelude::*;
use stylize_engines::backend::BackendOptions;
use stylize_engines::frame::{self, FrameLayout, PixelFormat, RgbImage};
use stylize_engines::temporal::{self, TemporalFilter, DEFAULT_STABILITY};
use stylize_engines::{style, Stylizer};

/// The first `n` frames of a video as RGB, scaled to `width`.
fn decode(path: &std::path::Path, n: usize, width: u32) -> Vec<RgbImage> {
    common::init_gst();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale ! \
         video/x-raw,width={width},pixel-aspect-ratio=1/1 ! videoconvert ! \
         video/x-raw,format=RGB ! appsink name=sink sync=false max-buffers=2",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = Vec::new();
    while frames.len() < n {
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(30))
            .expect("decoded frame");
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let map = sample.buffer().unwrap().map_readable().unwrap();
        let layout = FrameLayout {
            format: PixelFormat::Rgb,
            width: info.width() as usize,
            height: info.height() as usize,
            stride: info.stride()[0] as usize,
        };
        frames.push(frame::read_rgb(&map, &layout).unwrap());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    frames
}

fn stylize(st: &mut Stylizer, frames: &[RgbImage], w: &[f32], stability: f64) -> Vec<RgbImage> {
    st.set_stability(stability);
    st.reset_temporal();
    frames
        .iter()
        .map(|f| {
            let size = stylize_engines::InferenceSize {
                width: 192,
                height: 0,
                scale: 1.0,
            };
            st.stylize_image(f, size.resolve(f.width, f.height), w)
                .unwrap()
                .0
        })
        .collect()
}

fn stylizer() -> Option<(Stylizer, Vec<f32>)> {
    let model = common::asset("models/multistyle26.onnx")?;
    let st = Stylizer::load(&model, &BackendOptions::with_threads(2)).unwrap();
    let w = style::resolve(st.info(), Some("mosaic"), None).unwrap();
    Some((st, w))
}

#[test]
fn stability_lowers_warping_error_on_a_real_clip() {
    let (Some(clip), Some((mut st, w))) = (common::asset("media/bikes.mp4"), stylizer()) else {
        return;
    };
    let frames = decode(&clip, 6, 320);
    assert_eq!(frames.len(), 6);
    let off = stylize(&mut st, &frames, &w, 0.0);
    let on = stylize(&mut st, &frames, &w, DEFAULT_STABILITY);
    assert_eq!(
        off[0], on[0],
        "the first frame has nothing to smooth against"
    );
    let (e_off, e_on) = (
        temporal::sequence_warping_error(&frames, &off),
        temporal::sequence_warping_error(&frames, &on),
    );
    eprintln!("bikes.mp4, 6 frames: warping error off {e_off:.5}, on {e_on:.5}");
    assert!(
        e_on < 0.8 * e_off,
        "stability {DEFAULT_STABILITY}: warping error {e_on} vs {e_off} off"
    );
    // Deterministic inference: the same frames give the same output bytes.
    assert_eq!(stylize(&mut st, &frames[..2], &w, 0.0), off[..2]);
}

#[test]
fn moving_edges_leave_no_trail_through_the_model() {
    let Some((mut st, w)) = stylizer() else {
        return;
    };
    let inputs = temporal::moving_square_clip(192, 108, 8);
    let plain = stylize(&mut st, &inputs, &w, 0.0);
    let ours = stylize(&mut st, &inputs, &w, DEFAULT_STABILITY);
    let mut naive = TemporalFilter::naive(DEFAULT_STABILITY);
    let blended: Vec<RgbImage> = inputs
        .iter()
        .zip(&plain)
        .map(|(i, o)| {
            let mut o = o.clone();
            naive.apply(i, &mut o);
            o
        })
        .collect();
    let trail = temporal::worst_trail_ratio(&inputs, &plain, &ours);
    let naive_trail = temporal::worst_trail_ratio(&inputs, &plain, &blended);
    eprintln!("trail ratio {trail:.3}, plain blending {naive_trail:.3}");
    assert!(
        naive_trail > 0.4,
        "the measure must see plain blending's trail"
    );
    assert!(
        trail < 0.1,
        "trail ratio {trail} (plain blending {naive_trail})"
    );
}
