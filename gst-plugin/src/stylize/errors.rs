//! The engine's errors as GStreamer errors and warnings: one mapping from
//! [`ErrorClass`] to an error domain, so applications can tell a missing model
//! (`RESOURCE_ERROR_NOT_FOUND`) from a bad setting (`LIBRARY_ERROR_SETTINGS`) without reading
//! the text.

use gst::prelude::*;
use gst::subclass::prelude::*;
use stylize_engines::{Error, ErrorClass};

/// The domain an error of this class is posted in.
enum Domain {
    Resource(gst::ResourceError),
    Library(gst::LibraryError),
    Stream(gst::StreamError),
}

fn domain(class: ErrorClass) -> Domain {
    match class {
        ErrorClass::NotFound => Domain::Resource(gst::ResourceError::NotFound),
        ErrorClass::BadFile => Domain::Resource(gst::ResourceError::OpenRead),
        ErrorClass::BadSetting => Domain::Library(gst::LibraryError::Settings),
        ErrorClass::Runtime => Domain::Library(gst::LibraryError::Init),
        ErrorClass::BadFrame => Domain::Stream(gst::StreamError::Format),
        ErrorClass::Failed => Domain::Stream(gst::StreamError::Failed),
    }
}

/// An error message for `start` (which GStreamer posts) or for posting directly.
pub(super) fn error_message(err: &Error, context: Option<&str>) -> gst::ErrorMessage {
    let text = match context {
        Some(context) => format!("{context}: {err}"),
        None => err.to_string(),
    };
    match domain(err.class()) {
        Domain::Resource(e) => gst::error_msg!(e, ("{text}")),
        Domain::Library(e) => gst::error_msg!(e, ("{text}")),
        Domain::Stream(e) => gst::error_msg!(e, ("{text}")),
    }
}

/// Post an engine error as a warning of `element`: the stream goes on (a bad style change
/// keeps the previous style).
pub(super) fn post_warning<T: ElementImpl>(imp: &T, err: &Error, text: &str) {
    let element = imp.obj();
    let element = element.upcast_ref::<gst::Element>();
    let message = match domain(err.class()) {
        Domain::Resource(e) => gst::message::Warning::builder(e, text),
        Domain::Library(e) => gst::message::Warning::builder(e, text),
        Domain::Stream(e) => gst::message::Warning::builder(e, text),
    };
    let _ = element.post_message(message.src(element).build());
}
