// SPDX-License-Identifier: MIT

/**
 * SECTION:element-stylize
 *
 * `stylize` runs a neural style network (ONNX) on every video frame: a per-style network, a
 * multi-style conditional-instance-norm network whose styles switch and blend per frame, or
 * an arbitrary-style network that takes its style from any image. Frames are scaled to the
 * inference size, stylized, smoothed against flicker (`stability`) and scaled back; caps,
 * timestamps and buffer flags pass through untouched.
 *
 * Packed RGB formats are handled natively; put `videoconvert` before it for YUV sources.
 * The model loads when the element starts; with `background-load` it loads (or builds a
 * TensorRT engine) on a background thread while frames pass through unstylized. Style
 * changes while PLAYING are resolved off the streaming thread and apply from the first frame
 * after they are ready. The element answers latency queries with its measured model time and
 * honours QoS: a frame that would arrive late downstream is dropped before inference.
 *
 * Errors go to the bus in their GStreamer domains: a missing model is
 * `GST_RESOURCE_ERROR_NOT_FOUND`, an unusable one `GST_RESOURCE_ERROR_OPEN_READ`, a bad
 * setting `GST_LIBRARY_ERROR_SETTINGS` (a warning when changed while running: the previous
 * style stays), a missing runtime `GST_LIBRARY_ERROR_INIT`.
 *
 * `backend=auto` (the default) runs the model with TensorRT, else CUDA, else on the CPU, by
 * what loads on the machine. Once the model is loaded the element says which it took and why
 * in a `stylize-backend` element message (`backend`, `requested`, `reason`) and in the
 * read-only `active-backend` and `backend-reason` properties.
 *
 * After every frame the element posts a `stylize-frame` element message with the frame
 * number, PTS and timings (`inference-ms`, `convert-ms`, `temporal-ms`, `total-ms`,
 * `host-copies`, `inference-width`, `inference-height`), unless `post-messages` is false.
 *
 * ## Example launch line
 * ```bash
 * gst-launch-1.0 videotestsrc num-buffers=30 ! video/x-raw,width=640,height=360 ! \
 *     videoconvert ! stylize model=assets/models/multistyle26-fast.onnx style=mosaic ! \
 *     videoconvert ! autovideosink
 * ```
 * Stylizes 30 test frames with the `mosaic` style of the 26-style model (`scripts/setup`
 * fetches it; `GST_PLUGIN_PATH=target/debug` finds the element in a build tree).
 *
 * Since: 0.1.0
 */
use gst::glib;
use gst::prelude::*;

mod errors;
mod faults;
mod hold;
mod imp;

#[doc(hidden)]
pub use faults::panic_in_next_frame;
#[doc(hidden)]
pub use hold::{hold_background_loads, hold_style_resolves, Hold};

glib::wrapper! {
    pub struct Stylize(ObjectSubclass<imp::Stylize>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Name of the element message posted after every frame (see `post-messages`).
pub const FRAME_MESSAGE: &str = "stylize-frame";

/// Name of the element message posted once a model is loaded: fields `backend` (cpu, cuda,
/// tensorrt), `requested` (the `backend` property) and `reason` (why, e.g. what `auto` found
/// missing).
pub const BACKEND_MESSAGE: &str = "stylize-backend";

pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    // The enums of the `backend` and `background-load` properties are documented with the
    // element (gst-inspect, the plugin cache).
    imp::Backend::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    imp::BackgroundLoad::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(plugin, "stylize", gst::Rank::NONE, Stylize::static_type())
}
