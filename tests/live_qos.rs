//! Live pipelines stay live: with a model slower than the camera, the element honours QoS
//! (frames that would reach the sink late are skipped, not stylized, and counted in QoS
//! messages), so the delay at the sink stays bounded; with QoS off the same pipeline builds a
//! backlog. The model is made slow by running it at 4× the frame's pixels.

#[path = "common.rs"]
mod common;

use std::sync::{Arc, Mutex};

use gst::prelude::*;

struct LiveRun {
    /// Buffers that reached the sink.
    rendered: usize,
    /// Clock time at the sink minus the buffer's running time, per buffer (ms).
    lateness_ms: Vec<f64>,
    /// (processed, dropped) from the element's last QoS message.
    qos_stats: Option<(u64, u64)>,
}

fn live_run(model: &std::path::Path, qos: bool, buffers: u32) -> LiveRun {
    common::init_gst();
    gststylize::plugin_register_static().ok();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true num-buffers={buffers} pattern=ball ! \
         video/x-raw,format=RGBx,width=160,height=120,framerate=30/1 ! \
         stylize name=st model=\"{}\" inference-width=640 stability=0 threads=1 qos={qos} ! \
         fakesink name=sink sync=true qos=true",
        model.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    let lateness: Arc<Mutex<Vec<f64>>> = Arc::default();
    let l = lateness.clone();
    let weak = pipeline.downgrade();
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let (Some(pipeline), Some(pts)) = (weak.upgrade(), info.buffer().and_then(|b| b.pts()))
            else {
                return gst::PadProbeReturn::Ok;
            };
            let segment = pad.sticky_event::<gst::event::Segment>(0);
            let running = segment.and_then(|s| {
                s.segment()
                    .downcast_ref::<gst::ClockTime>()?
                    .to_running_time(pts)
            });
            if let (Some(clock), Some(base), Some(running)) =
                (pipeline.clock(), pipeline.base_time(), running)
            {
                let now = clock.time().saturating_sub(base);
                l.lock()
                    .unwrap()
                    .push((now.nseconds() as f64 - running.nseconds() as f64) / 1e6);
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut qos_stats = None;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(300)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("live pipeline failed: {}", e.error()),
            gst::MessageView::Qos(q) if msg.src().is_some_and(|s| s.name() == "st") => {
                let (processed, dropped) = q.stats();
                qos_stats = Some((
                    u64::try_from(processed.value()).unwrap_or(0),
                    u64::try_from(dropped.value()).unwrap_or(0),
                ));
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let lateness_ms = lateness.lock().unwrap().clone();
    LiveRun {
        rendered: lateness_ms.len(),
        lateness_ms,
        qos_stats,
    }
}

#[test]
fn a_slow_model_skips_late_frames_and_keeps_latency_bounded() {
    let Some(model) = common::asset("models/multistyle26.onnx") else {
        return;
    };
    let buffers = 60; // 2 s of a 30 fps live source
    let with_qos = live_run(&model, true, buffers);
    let (processed, dropped) = with_qos
        .qos_stats
        .expect("the element posted QoS messages for the frames it skipped");
    assert!(dropped > 0, "no frame was skipped: {processed} processed");
    assert!(
        with_qos.rendered < buffers as usize,
        "every frame was stylized although the model is slower than the source"
    );
    let without = live_run(&model, false, buffers);
    assert_eq!(
        without.qos_stats, None,
        "qos=false must not skip frames or post QoS messages"
    );
    // Without QoS every frame is stylized and the delay grows frame after frame; with QoS
    // it stays within a few frame times of the model's own latency.
    let last = |r: &LiveRun| {
        let n = r.lateness_ms.len();
        r.lateness_ms[n.saturating_sub(5)..].iter().sum::<f64>() / 5f64.min(n as f64)
    };
    let (bounded, backlog) = (last(&with_qos), last(&without));
    eprintln!(
        "rendered {} with QoS ({dropped} skipped), {} without; delay at the end {bounded:.0} ms \
         with QoS, {backlog:.0} ms without",
        with_qos.rendered, without.rendered
    );
    assert!(
        backlog > 2.0 * bounded,
        "QoS did not bound the delay: {bounded:.0} ms with, {backlog:.0} ms without"
    );
}
