//! The `stylize` element: a video filter that runs a style network on every frame.

use gst::glib;
use gst::prelude::*;

mod faults;
mod hold;
mod imp;

#[doc(hidden)]
pub use faults::panic_in_next_frame;
#[doc(hidden)]
pub use hold::{hold_background_loads, LoadHold};

glib::wrapper! {
    pub struct Stylize(ObjectSubclass<imp::Stylize>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Name of the element message posted after every frame.
pub const FRAME_MESSAGE: &str = "stylize-frame";

pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(plugin, "stylize", gst::Rank::NONE, Stylize::static_type())
}
