//! Test seam: a panic injected into the next frame's inference, so tests can check that a
//! panic in the engine becomes an element error (never an unwind into GStreamer's C code) and
//! that the element stays usable (properties readable, state changes working) afterwards.

use std::sync::{Mutex, PoisonError};

/// Name of the element whose next frame panics.
static ARMED: Mutex<Option<String>> = Mutex::new(None);

/// Make the next frame's inference in the `stylize` element named `element` panic. For tests
/// of the element only.
#[doc(hidden)]
pub fn panic_in_next_frame(element: &str) {
    *ARMED.lock().unwrap_or_else(PoisonError::into_inner) = Some(element.to_string());
}

/// Called inside the guarded inference of every frame; `name` is asked for only when some
/// element is armed, so the frame path pays one uncontended lock.
pub(super) fn panic_if_armed(name: impl FnOnce() -> String) {
    let mut armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
    if armed.is_some() && armed.as_deref() == Some(name().as_str()) {
        *armed = None;
        drop(armed);
        panic!("injected panic (test seam)");
    }
}
