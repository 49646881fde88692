//! The CLI's exit status, mapped once from the engine's error classes. Errors that reach the
//! CLI through a pipeline (`stylize file`, the element) arrive as GStreamer errors, posted in
//! the domain the element maps each class to; they map back to the same status.
//!
//! 0 done; 1 failed while working; 2 a value the user gave is refused (also clap's usage
//! errors); 3 a file the user named does not exist; 4 a file cannot be used (corrupt, not
//! a model of the contract); 5 a runtime library is missing; 130/143 interrupted.

use gst::prelude::*;
use stylize_engines::{Error, ErrorClass};

pub const FAILED: u8 = 1;
pub const BAD_SETTING: u8 = 2;
pub const NOT_FOUND: u8 = 3;
pub const BAD_FILE: u8 = 4;
pub const RUNTIME: u8 = 5;

fn from_class(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::BadSetting => BAD_SETTING,
        ErrorClass::NotFound => NOT_FOUND,
        ErrorClass::BadFile => BAD_FILE,
        ErrorClass::Runtime => RUNTIME,
        ErrorClass::BadFrame | ErrorClass::Failed => FAILED,
    }
}

/// An error message from a pipeline, with the status its domain maps to.
#[derive(Debug)]
pub struct PipelineError {
    text: String,
    code: u8,
}

impl PipelineError {
    pub fn new(err: &gst::message::Error) -> Self {
        let error = err.error();
        let code = if error.matches(gst::ResourceError::NotFound) {
            NOT_FOUND
        } else if error.matches(gst::ResourceError::OpenRead) {
            BAD_FILE
        } else if error.matches(gst::LibraryError::Settings) {
            BAD_SETTING
        } else if error.matches(gst::LibraryError::Init) {
            RUNTIME
        } else {
            FAILED
        };
        // Our element's messages say everything; its debug field is only a source location.
        let ours = err
            .src()
            .and_then(|s| s.downcast_ref::<gst::Element>())
            .and_then(|e| e.factory())
            .is_some_and(|f| f.name() == "stylize");
        let text = match err.debug() {
            Some(debug) if !ours => format!("{error} ({debug})"),
            _ => error.to_string(),
        };
        Self { text, code }
    }
}

impl std::fmt::Display for PipelineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for PipelineError {}

/// The status for a failed command.
pub fn code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| {
            e.downcast_ref::<Error>()
                .map(|e| from_class(e.class()))
                .or_else(|| e.downcast_ref::<PipelineError>().map(|p| p.code))
        })
        .unwrap_or(FAILED)
}
