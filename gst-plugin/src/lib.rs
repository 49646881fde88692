//! GStreamer plugin `stylize`: registers the `stylize` element (neural style transfer per frame).
//!
//! All model, tensor and style logic lives in `stylize-engines`; this crate maps GStreamer
//! buffers, caps and properties onto it and reports errors on the bus.

use gst::glib;

pub mod stylize;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    stylize::register(Some(plugin))
}

gst::plugin_define!(
    stylize,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
