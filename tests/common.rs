//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Once;

use gst::prelude::*;

pub fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A fetched asset; missing assets skip the test locally and fail it under CI.
pub fn asset(relative: &str) -> Option<PathBuf> {
    let path = stylize_engines::runtime::assets_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: run scripts/setup",
        path.display()
    );
    eprintln!(
        "skipping: {} is missing (run scripts/setup)",
        path.display()
    );
    None
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stylize-e2e-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn init_gst() {
    static INIT: Once = Once::new();
    INIT.call_once(|| gst::init().unwrap());
}

/// Decode the video stream of a file and return each frame's PTS, and the frame size.
pub fn decoded_frames(path: &Path) -> (Vec<gst::ClockTime>, (i32, i32)) {
    init_gst();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format=RGBx ! fakesink name=sink",
        path.display()
    ))
    .unwrap();
    let sink = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("sink")
        .unwrap();
    let pts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let size = std::sync::Arc::new(std::sync::Mutex::new((0, 0)));
    let (p, s) = (pts.clone(), size.clone());
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some(t) = info.buffer().and_then(|b| b.pts()) {
                p.lock().unwrap().push(t);
            }
            if let Some(caps) = pad.current_caps() {
                let st = caps.structure(0).unwrap();
                *s.lock().unwrap() = (st.get("width").unwrap(), st.get("height").unwrap());
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("decoding {}: {}", path.display(), e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let pts = pts.lock().unwrap().clone();
    let size = *size.lock().unwrap();
    (pts, size)
}
