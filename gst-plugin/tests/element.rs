//! `stylize` element tests: gst_check::Harness for buffer flow, real pipelines for bus errors.

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use gst::prelude::*;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gststylize::plugin_register_static().expect("register stylize plugin");
    });
}

/// A fetched asset; missing assets skip the test locally and fail it under CI.
fn asset(relative: &str) -> Option<PathBuf> {
    let path = stylize_engines::runtime::assets_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: run scripts/setup",
        path.display()
    );
    eprintln!("skipping: {} is missing", path.display());
    None
}

const W: usize = 96;
const H: usize = 64;

fn caps(width: usize, height: usize) -> String {
    format!("video/x-raw,format=RGBA,width={width},height={height},framerate=25/1")
}

/// An RGBA test picture with a gradient, a bright square and a distinct alpha pattern.
fn picture(width: usize, height: usize, seed: u8) -> Vec<u8> {
    let mut data = vec![0u8; width * height * 4];
    for y in 0..height {
        for x in 0..width {
            let i = (y * width + x) * 4;
            let in_square =
                (width / 4..width / 2).contains(&x) && (height / 4..height / 2).contains(&y);
            data[i] = (x * 255 / width) as u8;
            data[i + 1] = (y * 255 / height) as u8;
            data[i + 2] = if in_square { 250 } else { seed };
            data[i + 3] = ((x + y) % 256) as u8;
        }
    }
    data
}

fn buffer(data: Vec<u8>, index: u64) -> gst::Buffer {
    let mut buf = gst::Buffer::from_mut_slice(data);
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(40 * index));
        b.set_duration(gst::ClockTime::from_mseconds(40));
    }
    buf
}

fn stylize_element(model: &std::path::Path, props: &[(&str, &str)]) -> gst::Element {
    init();
    let element = gst::ElementFactory::make("stylize")
        .property("model", model.to_str().unwrap())
        .property("threads", 2u32)
        .build()
        .unwrap();
    for (name, value) in props {
        element.set_property_from_str(name, value);
    }
    element
}

/// Start a harness on a configured element (playing, RGBA caps of W×H).
fn start_harness(element: &gst::Element) -> gst_check::Harness {
    let mut h = gst_check::Harness::with_element(element, Some("sink"), Some("src"));
    h.set_src_caps_str(&caps(W, H));
    h.play();
    h
}

fn harness(model: &std::path::Path, props: &[(&str, &str)]) -> gst_check::Harness {
    start_harness(&stylize_element(model, props))
}

fn pull_data(h: &mut gst_check::Harness) -> (gst::Buffer, Vec<u8>) {
    let out = h.pull().expect("an output buffer");
    let data = out.map_readable().unwrap().to_vec();
    (out, data)
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (i32::from(*x) - i32::from(*y)).unsigned_abs() as f64)
        .sum::<f64>()
        / a.len() as f64
}

#[test]
fn stylizes_every_frame_and_keeps_timestamps_and_alpha() {
    let Some(model) = asset("models/mosaic.onnx") else {
        return;
    };
    let mut h = harness(&model, &[]);
    for i in 0..4u64 {
        let input = picture(W, H, (i * 40) as u8);
        h.push(buffer(input.clone(), i)).unwrap();
        let (out, data) = pull_data(&mut h);
        assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(40 * i)));
        assert_eq!(out.duration(), Some(gst::ClockTime::from_mseconds(40)));
        assert_eq!(data.len(), W * H * 4);
        let colour = |d: &[u8]| {
            d.chunks(4)
                .flat_map(|p| p[..3].to_vec())
                .collect::<Vec<_>>()
        };
        assert!(
            mean_abs_diff(&colour(&data), &colour(&input)) > 20.0,
            "frame {i} was not stylized"
        );
        let alpha = |d: &[u8]| d.chunks(4).map(|p| p[3]).collect::<Vec<_>>();
        assert_eq!(alpha(&data), alpha(&input), "alpha must pass through");
    }
    assert_eq!(h.buffers_received(), 4);
}

#[test]
fn style_switch_applies_on_the_next_frame_and_is_deterministic() {
    let Some(model) = asset("models/multistyle26.onnx") else {
        return;
    };
    // Without smoothing, the same input and style give the same frame.
    let mut h = harness(&model, &[("style", "mosaic"), ("stability", "0")]);
    let input = picture(W, H, 90);
    h.push(buffer(input.clone(), 0)).unwrap();
    let (_, mosaic) = pull_data(&mut h);

    // A change is resolved off the streaming thread: a name or a blend lands on the next
    // frame unless the machine is very busy, so wait for it rather than count on it.
    h.element().unwrap().set_property("style", "starry-swirls");
    let (starry, _) = push_until_changed(&mut h, &input, 1, &mosaic);
    assert!(
        mean_abs_diff(&mosaic, &starry) > 10.0,
        "style did not change"
    );

    h.element()
        .unwrap()
        .set_property("style-weights", "mosaic:1,starry-swirls:1");
    let (blend, _) = push_until_changed(&mut h, &input, 100, &starry);
    assert!(mean_abs_diff(&blend, &mosaic) > 3.0 && mean_abs_diff(&blend, &starry) > 3.0);

    h.element()
        .unwrap()
        .set_property("style-weights", None::<&str>);
    h.element().unwrap().set_property("style", "style-25"); // alias of mosaic
    let (again, _) = push_until_changed(&mut h, &input, 200, &blend);
    assert_eq!(
        again, mosaic,
        "same style and input must give the same frame"
    );
}

#[test]
fn resolution_change_mid_stream_renegotiates() {
    let Some(model) = asset("models/mosaic.onnx") else {
        return;
    };
    let mut h = harness(&model, &[]);
    h.push(buffer(picture(W, H, 0), 0)).unwrap();
    assert_eq!(pull_data(&mut h).1.len(), W * H * 4);
    h.set_src_caps_str(&caps(120, 68));
    let input = picture(120, 68, 0);
    h.push(buffer(input.clone(), 1)).unwrap();
    let (out, data) = pull_data(&mut h);
    assert_eq!(data.len(), 120 * 68 * 4);
    assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(40)));
    assert!(mean_abs_diff(&data, &input) > 10.0);
}

#[test]
fn inference_size_is_independent_of_the_output_size() {
    let Some(model) = asset("models/mosaic.onnx") else {
        return;
    };
    let mut full = harness(&model, &[]);
    let mut small = harness(&model, &[("inference-width", "48")]);
    let input = picture(W, H, 30);
    full.push(buffer(input.clone(), 0)).unwrap();
    small.push(buffer(input, 0)).unwrap();
    let (_, a) = pull_data(&mut full);
    let (_, b) = pull_data(&mut small);
    assert_eq!(a.len(), b.len(), "output keeps the caps size");
    assert!(
        mean_abs_diff(&a, &b) > 2.0,
        "half-size inference must differ"
    );
}

#[test]
fn latency_query_reports_the_measured_model_time() {
    let Some(model) = asset("models/mosaic.onnx") else {
        return;
    };
    let mut h = harness(&model, &[]);
    h.push(buffer(picture(W, H, 0), 0)).unwrap();
    pull_data(&mut h);
    let latency = h.query_latency().expect("latency answered");
    assert!(latency > gst::ClockTime::ZERO, "latency {latency}");
    assert!(
        latency < gst::ClockTime::from_seconds(10),
        "latency {latency}"
    );
}

/// Run `launch` until EOS or an error; returns the error text (message + debug), if any,
/// and every warning seen. Never waits more than 60 s, so a hang fails the test.
fn run_pipeline(launch: &str) -> (Option<String>, Vec<String>, usize) {
    init();
    let pipeline = gst::parse::launch(launch).unwrap();
    let bus = pipeline.bus().unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let mut warnings = Vec::new();
    let mut frames = 0;
    let mut error = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                error = Some(format!("{} | {:?}", e.error(), e.debug()));
                break;
            }
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Element(e)
                if e.structure().is_some_and(|s| s.name() == "stylize-frame") =>
            {
                frames += 1
            }
            _ => {}
        }
    }
    assert!(
        std::time::Instant::now() < deadline,
        "pipeline hung: {launch}"
    );
    pipeline.set_state(gst::State::Null).unwrap();
    (error, warnings, frames)
}

fn error_of(model: &str, extra: &str) -> String {
    let launch = format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGBx,width=64,height=48 ! \
         stylize {model} {extra} ! fakesink"
    );
    run_pipeline(&launch)
        .0
        .unwrap_or_else(|| panic!("expected an error from: {launch}"))
}

#[test]
fn bad_input_is_a_bus_error_with_a_clear_message() {
    let Some(mosaic) = asset("models/mosaic.onnx") else {
        return;
    };
    let Some(upstream) = asset("upstream/multistyle26.onnx") else {
        return;
    };
    let Some(cin) = asset("models/multistyle26.onnx") else {
        return;
    };

    let err = error_of("", "");
    assert!(err.contains("no model set"), "{err}");

    let err = error_of("model=/nonexistent/style.onnx", "");
    assert!(
        err.contains("model file /nonexistent/style.onnx does not exist"),
        "{err}"
    );

    let corrupt = std::env::temp_dir().join(format!("stylize-corrupt-{}.onnx", std::process::id()));
    std::fs::write(&corrupt, b"\x08\x07garbage that is not an ONNX graph").unwrap();
    let err = error_of(&format!("model={}", corrupt.display()), "");
    assert!(err.contains("could not be loaded"), "{err}");

    let err = error_of(&format!("model={}", upstream.display()), "");
    assert!(err.contains("breaks the stylize contract"), "{err}");
    assert!(err.contains("input `content`"), "{err}");

    let err = error_of(&format!("model={}", cin.display()), "style=no-such-style");
    assert!(err.contains("unknown style `no-such-style`"), "{err}");
    assert!(err.contains("mosaic (style-25)"), "{err}");

    let err = error_of(
        &format!("model={}", cin.display()),
        "style-weights=mosaic:x",
    );
    assert!(err.contains("`x` is not a number"), "{err}");

    let err = error_of(
        &format!("model={}", mosaic.display()),
        "style=starry-swirls",
    );
    assert!(
        err.contains("per-style model has only its own style"),
        "{err}"
    );

    // Unsupported caps: a GRAY8 stream is refused at negotiation, not mis-read.
    let mut h = harness(&mosaic, &[]);
    h.set_src_caps_str("video/x-raw,format=GRAY8,width=64,height=48,framerate=25/1");
    let pushed = h.push(buffer(vec![0u8; 64 * 48], 0));
    assert_eq!(pushed, Err(gst::FlowError::NotNegotiated));
}

#[test]
fn unknown_style_while_playing_warns_and_keeps_going() {
    let Some(cin) = asset("models/multistyle26.onnx") else {
        return;
    };
    init();
    let launch = format!(
        "videotestsrc num-buffers=6 ! video/x-raw,format=RGBx,width=64,height=48 ! \
         stylize name=s model={} style=mosaic ! fakesink",
        cin.display()
    );
    let pipeline = gst::parse::launch(&launch).unwrap();
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let stylize = bin.by_name("s").unwrap();
    let pad = stylize.static_pad("sink").unwrap();
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let el = stylize.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2 {
            el.set_property("style", "no-such-style");
        }
        gst::PadProbeReturn::Ok
    });
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut warnings = Vec::new();
    let mut frames = 0;
    let mut eos = false;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => {
                eos = true;
                break;
            }
            gst::MessageView::Error(e) => panic!("unexpected error {}", e.error()),
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Element(e)
                if e.structure().is_some_and(|s| s.name() == "stylize-frame") =>
            {
                frames += 1
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(eos, "pipeline must reach EOS");
    assert_eq!(frames, 6, "every frame still stylized");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("unknown style `no-such-style`"),
        "{warnings:?}"
    );
    assert!(
        warnings[0].contains("keeping the previous style"),
        "{warnings:?}"
    );
}

#[test]
fn frame_messages_count_every_frame() {
    let Some(model) = asset("models/mosaic.onnx") else {
        return;
    };
    let launch = format!(
        "videotestsrc num-buffers=5 ! video/x-raw,format=BGRx,width=80,height=60 ! \
         stylize model={} scale=0.5 ! fakesink",
        model.display()
    );
    let (error, warnings, frames) = run_pipeline(&launch);
    assert_eq!(error, None);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(frames, 5);
}

fn empty_library(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("stylize-el-lib-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.display().to_string()
}

#[test]
fn arbitrary_model_takes_style_images_and_strength_live() {
    let (Some(model), Some(starry), Some(coffee)) = (
        asset("models/arbitrary-transform.onnx"),
        asset("images/starry_night.jpg"),
        asset("images/coffee.png"),
    ) else {
        return;
    };
    let library = empty_library("arb");
    let mut h = harness(
        &model,
        &[
            ("style-image", starry.to_str().unwrap()),
            ("library", library.as_str()),
            ("stability", "0"),
        ],
    );
    let input = picture(W, H, 60);
    h.push(buffer(input.clone(), 0)).unwrap();
    let (_, starry_out) = pull_data(&mut h);
    assert!(mean_abs_diff(&starry_out, &input) > 20.0, "not stylized");

    h.element()
        .unwrap()
        .set_property("style-image", coffee.to_str().unwrap());
    // The new image is predicted in the background; frames go on meanwhile.
    let (coffee_out, pushed) = push_until_changed(&mut h, &input, 1, &starry_out);
    assert!(
        mean_abs_diff(&coffee_out, &starry_out) > 5.0,
        "style image switch"
    );

    h.element().unwrap().set_property("style-strength", 0.0f64);
    h.push(buffer(input.clone(), 1 + pushed)).unwrap();
    let (_, weak) = pull_data(&mut h);
    assert!(
        mean_abs_diff(&weak, &input) < mean_abs_diff(&coffee_out, &input),
        "strength 0 must stay closer to the content"
    );
}

/// Push `input` until the output differs from `before` (a style change resolved in the
/// background has landed): returns that output and how many frames it took. Bounded: a
/// change that never lands fails the test.
fn push_until_changed(
    h: &mut gst_check::Harness,
    input: &[u8],
    first_index: u64,
    before: &[u8],
) -> (Vec<u8>, u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for n in 0.. {
        h.push(buffer(input.to_vec(), first_index + n)).unwrap();
        let (_, out) = pull_data(h);
        if out != before {
            return (out, n + 1);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the style change never landed ({n} frames)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unreachable!()
}

#[test]
fn a_style_image_being_predicted_never_holds_up_frames() {
    let (Some(model), Some(starry), Some(coffee)) = (
        asset("models/arbitrary-transform.onnx"),
        asset("images/starry_night.jpg"),
        asset("images/coffee.png"),
    ) else {
        return;
    };
    let library = empty_library("no-stall");
    let props = [
        ("style-image", starry.to_str().unwrap()),
        ("library", library.as_str()),
        ("stability", "0"),
    ];
    let mut h = harness(&model, &props);
    let input = picture(W, H, 60);
    h.push(buffer(input.clone(), 0)).unwrap();
    let (_, starry_out) = pull_data(&mut h);

    // A resolve that cannot finish (held, as a slow disk or predictor would be): before,
    // the streaming thread hashed the image and ran the predictor itself, under the lock
    // that latency queries and property reads wait on, so this push would never return.
    let hold = gststylize::stylize::hold_style_resolves();
    h.element()
        .unwrap()
        .set_property("style-image", coffee.to_str().unwrap());
    for i in 1..=5 {
        h.push(buffer(input.clone(), i)).unwrap();
        let (_, out) = pull_data(&mut h);
        assert_eq!(
            out, starry_out,
            "frame {i}: the old style until the new one is ready"
        );
        // Neither do queries and property reads wait for the resolve or for a frame.
        let _ = h.query_latency();
        assert!(h
            .element()
            .unwrap()
            .property::<Option<String>>("model-styles")
            .is_some());
    }
    drop(hold);
    let (coffee_out, _) = push_until_changed(&mut h, &input, 6, &starry_out);
    assert!(mean_abs_diff(&coffee_out, &starry_out) > 5.0);
    // The same pixels as starting with that image: the resolved style, not a mix.
    let mut fresh = harness(
        &model,
        &[
            ("style-image", coffee.to_str().unwrap()),
            ("library", library.as_str()),
            ("stability", "0"),
        ],
    );
    fresh.push(buffer(input.clone(), 0)).unwrap();
    assert_eq!(pull_data(&mut fresh).1, coffee_out);
}

#[test]
fn arbitrary_model_bad_style_input_is_a_clear_error() {
    let (Some(model), Some(_)) = (
        asset("models/arbitrary-transform.onnx"),
        asset("models/arbitrary-predict.onnx"),
    ) else {
        return;
    };
    let library = empty_library("bad");
    let model = format!("model={} library={library}", model.display());
    let err = error_of(&model, "");
    assert!(
        err.contains("needs a style image or a library style"),
        "{err}"
    );
    let err = error_of(&model, "style=van-gogh");
    assert!(err.contains("unknown style `van-gogh`"), "{err}");
    assert!(err.contains("is empty"), "{err}");
    let not_image =
        std::env::temp_dir().join(format!("stylize-not-image-{}.jpg", std::process::id()));
    std::fs::write(&not_image, b"no pixels here").unwrap();
    let err = error_of(&model, &format!("style-image={}", not_image.display()));
    assert!(err.contains("cannot read image"), "{err}");
}

#[test]
fn stability_smooths_from_the_second_frame_and_zero_turns_it_off() {
    let Some(model) = asset("models/mosaic.onnx") else {
        return;
    };
    init();
    let element = gst::ElementFactory::make("stylize").build().unwrap();
    let default: f64 = element.property("stability");
    assert_eq!(default, stylize_engines::temporal::DEFAULT_STABILITY);
    let mut off = harness(&model, &[("stability", "0")]);
    let mut on = harness(&model, &[("stability", "0.9")]);
    // Slightly different frames (as a camera's noise would make them): the smoothed stream
    // agrees with the plain one on the first frame and departs from it afterwards.
    let mut diffs = Vec::new();
    for (i, seed) in [90u8, 93, 96].into_iter().enumerate() {
        let input = picture(W, H, seed);
        off.push(buffer(input.clone(), i as u64)).unwrap();
        on.push(buffer(input, i as u64)).unwrap();
        let (_, a) = pull_data(&mut off);
        let (_, b) = pull_data(&mut on);
        diffs.push(mean_abs_diff(&a, &b));
    }
    assert_eq!(diffs[0], 0.0, "first frame is never smoothed: {diffs:?}");
    assert!(diffs[1] > 0.05 && diffs[2] > 0.05, "{diffs:?}");
}

#[test]
fn frame_messages_report_the_temporal_filter_cost() {
    let Some(model) = asset("models/mosaic.onnx") else {
        return;
    };
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=3 pattern=ball ! video/x-raw,format=RGBx,width=64,height=48 ! \
         stylize model={} stability=0.5 ! fakesink",
        model.display()
    ))
    .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut temporal = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "stylize-frame") {
                    temporal.push(s.get::<f64>("temporal-ms").unwrap());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(temporal.len(), 3);
    assert!(temporal.iter().all(|t| *t > 0.0), "{temporal:?}");
}

#[test]
fn tuned_prompt_switches_style_and_an_untuned_one_warns_and_keeps_it() {
    use stylize_engines::library::{Library, StyleKind};
    let (Some(model), Some(starry)) = (
        asset("models/arbitrary-transform.onnx"),
        asset("images/starry_night.jpg"),
    ) else {
        return;
    };
    let library = empty_library("prompt");
    // A tuned prompt entry, as `stylize tune` writes it (the values stand in for a tuned E*).
    let tuned: Vec<f32> = (0..100)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0)
        .collect();
    let kind = StyleKind::Prompt {
        prompt: "golden tiles".into(),
        file: None,
    };
    Library::open(std::path::Path::new(&library))
        .unwrap()
        .add("tiles", kind, None, Some(&tuned), false)
        .unwrap();
    let props = [
        ("style-image", starry.to_str().unwrap()),
        ("library", library.as_str()),
        ("stability", "0"),
    ];
    let mut h = harness(&model, &props);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    let input = picture(W, H, 60);
    h.push(buffer(input.clone(), 0)).unwrap();
    let (_, starry_out) = pull_data(&mut h);

    h.element()
        .unwrap()
        .set_property("prompt", "Golden   Tiles");
    let (prompt_out, _) = push_until_changed(&mut h, &input, 1, &starry_out);
    assert!(
        mean_abs_diff(&prompt_out, &starry_out) > 2.0,
        "prompt applied"
    );
    // Same pixels as selecting the library entry by name.
    let mut by_name = harness(
        &model,
        &[
            ("style", "tiles"),
            ("library", library.as_str()),
            ("stability", "0"),
        ],
    );
    by_name.push(buffer(input.clone(), 0)).unwrap();
    assert_eq!(pull_data(&mut by_name).1, prompt_out);

    h.element()
        .unwrap()
        .set_property("prompt", "a prompt nobody tuned");
    // The failed resolve is reported when it lands; every frame until then and after keeps
    // the current style.
    let mut warnings: Vec<String> = Vec::new();
    for i in 0..500 {
        h.push(buffer(input.clone(), 100 + i)).unwrap();
        let (_, kept) = pull_data(&mut h);
        assert_eq!(
            kept, prompt_out,
            "an untuned prompt keeps the current style"
        );
        warnings.extend(
            std::iter::from_fn(|| bus.pop()).filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(w.error().to_string()),
                _ => None,
            }),
        );
        if !warnings.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("not tuned yet") && w.contains("keeping the previous style")),
        "{warnings:?}"
    );
}

/// Warning and error texts waiting on a bus.
fn bus_texts(bus: &gst::Bus) -> (Vec<String>, Vec<String>) {
    let (mut warnings, mut errors) = (Vec::new(), Vec::new());
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
            gst::MessageView::Error(e) => errors.push(e.error().to_string()),
            _ => {}
        }
    }
    (warnings, errors)
}

#[test]
fn frames_pass_through_during_a_background_load_then_are_stylized() {
    let Some(model) = asset("models/mosaic.onnx") else {
        return;
    };
    let props = [("background-load", "always"), ("stability", "0")];
    let hold = gststylize::stylize::hold_background_loads();
    let element = stylize_element(&model, &props);
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = start_harness(&element);
    let mut reference = harness(&model, &[("background-load", "never"), ("stability", "0")]);
    let push = |h: &mut gst_check::Harness, i: u64| {
        let input = picture(W, H, (i * 40 % 256) as u8);
        h.push(buffer(input.clone(), i)).unwrap();
        let (out, data) = pull_data(h);
        assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(40 * i)));
        assert_eq!(out.duration(), Some(gst::ClockTime::from_mseconds(40)));
        (input, data)
    };
    for i in 0..3 {
        let (input, data) = push(&mut h, i);
        assert_eq!(
            data, input,
            "frame {i} passes through unchanged while loading"
        );
    }
    drop(hold);

    // The load and the warm-up finish in the background; frames keep flowing meanwhile.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut i = 3;
    let first_stylized = loop {
        let (input, data) = push(&mut h, i);
        i += 1;
        if data != input {
            break (input, data);
        }
        assert!(std::time::Instant::now() < deadline, "never became ready");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut expect = |input: Vec<u8>| {
        reference.push(buffer(input, 0)).unwrap();
        pull_data(&mut reference).1
    };
    assert_eq!(
        first_stylized.1,
        expect(first_stylized.0),
        "the first stylized frame equals a blocking load's"
    );
    for _ in 0..2 {
        let (input, data) = push(&mut h, i);
        i += 1;
        assert_eq!(data, expect(input), "frame {i} stays stylized");
    }
    assert_eq!(h.buffers_received() as u64, i, "no frame dropped or added");
    let (warnings, errors) = bus_texts(&bus);
    assert!(errors.is_empty(), "{errors:?}");
    let notices: Vec<_> = warnings
        .iter()
        .filter(|w| w.contains("frames pass through unstylized until it is ready"))
        .collect();
    assert_eq!(notices.len(), 1, "one warning: {warnings:?}");
    assert!(notices[0].contains("in the background"), "{notices:?}");
}

#[test]
fn a_failed_background_load_posts_one_error_instead_of_panicking() {
    init();
    let junk = std::env::temp_dir().join(format!("stylize-junk-{}.onnx", std::process::id()));
    std::fs::write(&junk, b"this is not an ONNX model").unwrap();
    let hold = gststylize::stylize::hold_background_loads();
    let element = stylize_element(&junk, &[("background-load", "always")]);
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    // Starting succeeds: the load has not run yet.
    let mut h = start_harness(&element);
    let input = picture(W, H, 0);
    h.push(buffer(input.clone(), 0)).unwrap();
    assert_eq!(pull_data(&mut h).1, input, "passes through while loading");
    drop(hold);

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut i = 1;
    let flow = loop {
        match h.push(buffer(input.clone(), i)) {
            Ok(_) => {
                assert_eq!(pull_data(&mut h).1, input);
                assert!(
                    std::time::Instant::now() < deadline,
                    "the load never failed"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(flow) => break flow,
        }
        i += 1;
    };
    assert_eq!(flow, gst::FlowError::Error);
    assert_eq!(h.push(buffer(input, i + 1)), Err(gst::FlowError::Error));
    let (_, errors) = bus_texts(&bus);
    assert_eq!(errors.len(), 1, "one error, not one per frame: {errors:?}");
    assert!(errors[0].contains(junk.to_str().unwrap()), "{errors:?}");
    std::fs::remove_file(&junk).unwrap();
}

#[path = "../../engines/tests/support/tiny_onnx.rs"]
mod tiny_onnx;

/// Push one frame of the harness caps; the flow result and the errors on the element's bus.
fn push_and_collect(h: &mut gst_check::Harness, bus: &gst::Bus, i: u64) -> (bool, Vec<String>) {
    let pushed = h.push(buffer(picture(W, H, 0), i)).is_ok();
    if pushed {
        let _ = h.pull();
    }
    (pushed, bus_texts(bus).1)
}

#[test]
fn an_inference_size_past_the_limit_is_an_error_not_unbounded_memory() {
    let Some(model) = asset("models/mosaic.onnx") else {
        return;
    };
    // At negotiation: 8192 wide on a 96x64 stream is 8192x5461, past 3840x2160 in area.
    let element = stylize_element(&model, &[("inference-width", "8192")]);
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let start = std::time::Instant::now();
    let mut h = start_harness(&element);
    let (pushed, errors) = push_and_collect(&mut h, &bus, 0);
    assert!(!pushed);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("inference size 8192x5461 is past the limit")),
        "{errors:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    drop(h);

    // Set while PLAYING: the next frame is an error, and the element still stops.
    let element = stylize_element(&model, &[("inference-width", "32")]);
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = start_harness(&element);
    assert!(push_and_collect(&mut h, &bus, 0).0);
    element.set_property("inference-width", 8192u32);
    let start = std::time::Instant::now();
    let (pushed, errors) = push_and_collect(&mut h, &bus, 1);
    assert!(!pushed);
    assert!(
        errors.iter().any(|e| e.contains("past the limit")),
        "{errors:?}"
    );
    element.set_state(gst::State::Null).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_panic_in_inference_is_an_element_error_and_the_element_stays_usable() {
    let Some(model) = asset("models/mosaic.onnx") else {
        return;
    };
    let element = stylize_element(&model, &[("inference-width", "32")]);
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = start_harness(&element);
    assert!(push_and_collect(&mut h, &bus, 0).0);
    gststylize::stylize::panic_in_next_frame(&element.name());
    let (pushed, errors) = push_and_collect(&mut h, &bus, 1);
    assert!(!pushed);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("inference panicked: injected panic")),
        "{errors:?}"
    );
    for pspec in element.list_properties() {
        let _ = element.property_value(pspec.name());
    }
    element.set_property("style", "mosaic");
    element.set_state(gst::State::Null).unwrap();
}

#[test]
fn models_the_frames_do_not_fit_post_the_reason_not_only_not_negotiated() {
    init();
    let dir = std::env::temp_dir().join(format!("stylize-tiny-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixed = dir.join("fixed32.onnx");
    tiny_onnx::fixed_size(32).write(&fixed);
    let err = error_of(&format!("model={}", fixed.display()), "");
    assert!(
        err.contains("cannot stylize 64x48 frames") && err.contains("takes only 32x32 input"),
        "{err}"
    );
    let shrink = dir.join("half.onnx");
    tiny_onnx::half_size_output().write(&shrink);
    let err = error_of(&format!("model={}", shrink.display()), "");
    assert!(err.contains("smaller than the [1,3,48,64] input"), "{err}");
    // A hostile size multiple is refused when the model loads, before any frame.
    let multiple = dir.join("multiple.onnx");
    tiny_onnx::dynamic_identity(vec![("stylize.size_multiple", "100000".into())]).write(&multiple);
    let err = error_of(&format!("model={}", multiple.display()), "");
    assert!(err.contains("stylize.size_multiple"), "{err}");
    // A directory is not "missing".
    let err = error_of(&format!("model={}", dir.display()), "");
    assert!(err.contains("is a directory"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn style_images_that_never_end_or_block_are_refused_quickly() {
    let (Some(model), Some(_)) = (
        asset("models/arbitrary-transform.onnx"),
        asset("models/arbitrary-predict.onnx"),
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("stylize-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("style.png");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let library = empty_library("fifo");
    for (image, expect) in [
        (
            "/dev/zero".to_string(),
            "a character device, not a regular file",
        ),
        (fifo.display().to_string(), "a FIFO, not a regular file"),
    ] {
        let start = std::time::Instant::now();
        let err = error_of(
            &format!("model={}", model.display()),
            &format!("style-image={image} library={library}"),
        );
        assert!(err.contains(expect), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            start.elapsed()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_style_library_keeps_the_models_own_styles() {
    let Some(cin) = asset("models/multistyle26.onnx") else {
        return;
    };
    let library = empty_library("corrupt");
    std::fs::create_dir_all(&library).unwrap();
    std::fs::write(format!("{library}/styles.toml"), "[[style]\nname = ").unwrap();
    let (error, warnings, frames) = run_pipeline(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGBx,width=64,height=48 ! \
         stylize model={} style=mosaic library={library} threads=2 ! fakesink",
        cin.display()
    ));
    assert_eq!(error, None);
    assert_eq!(frames, 3);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("styles.toml") && w.contains("model's own styles only")),
        "{warnings:?}"
    );
    let _ = std::fs::remove_dir_all(&library);
}

/// The `stylize-backend` messages waiting on a bus: (backend, requested, reason).
fn backend_messages(bus: &gst::Bus) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    while let Some(msg) = bus.pop() {
        let Some(s) = msg.structure() else { continue };
        if s.name() == gststylize::stylize::BACKEND_MESSAGE {
            let field = |name| s.get::<String>(name).unwrap();
            found.push((field("backend"), field("requested"), field("reason")));
        }
    }
    found
}

#[test]
fn the_backend_in_use_and_why_are_a_property_and_a_message() {
    let Some(model) = asset("models/mosaic.onnx") else {
        return;
    };
    let element = stylize_element(&model, &[]);
    let active = |e: &gst::Element| {
        (
            e.property::<Option<String>>("active-backend"),
            e.property::<Option<String>>("backend-reason"),
        )
    };
    assert_eq!(active(&element), (None, None), "nothing loaded yet");
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = start_harness(&element);
    h.push(buffer(picture(W, H, 0), 0)).unwrap();
    pull_data(&mut h);
    // This machine has no GPU (or this build no GPU support): `auto` runs on the CPU and
    // says why.
    let (name, reason) = active(&element);
    assert_eq!(name.as_deref(), Some("cpu"));
    let reason = reason.unwrap();
    assert!(reason.starts_with("auto: "), "{reason}");
    assert!(
        reason.contains("libcuda.so.1") || reason.contains("--features tensorrt"),
        "{reason}"
    );
    let messages = backend_messages(&bus);
    assert_eq!(
        messages,
        vec![("cpu".into(), "auto".into(), reason)],
        "one message per start"
    );

    // Asked for explicitly: "requested".
    let element = stylize_element(&model, &[("backend", "cpu")]);
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let _h = start_harness(&element);
    assert_eq!(
        active(&element),
        (Some("cpu".into()), Some("requested".into()))
    );
    assert_eq!(backend_messages(&bus).len(), 1);
}
